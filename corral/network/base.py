"""The NIC plumbing contract used by the node backend.

The node backend creates one persistent tap per NIC before the hypervisor
starts a VM, plugs it into the NIC's bridge (``link``), moves it when a NIC is
modified, and deletes it when the VM stops. Two implementations share this
contract and one conformance suite (tests/network/conformance.py):
`corral.network.linux.LinuxNetwork` (pyroute2 + /dev/net/tun, in the caller's
network namespace) and `corral.network.fake.FakeNetwork` (an in-memory or
file-backed model, for tests that must not touch the host).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

IFNAMSIZ = 15  # longest Linux interface name


class NetworkDriver(abc.ABC):
    """Bridges and taps on one node. Every failure raises `NetworkError`."""

    NAME: str = ""

    @abc.abstractmethod
    def bridge_exists(self, name: str) -> bool:
        """True if `name` is an existing bridge (not merely an interface)."""

    def missing_bridges(self, links: Iterable[str]) -> list[str]:
        """The names in `links` that are not bridges here, in order, without duplicates."""
        missing: list[str] = []
        for link in links:
            if link not in missing and not self.bridge_exists(link):
                missing.append(link)
        return missing

    @abc.abstractmethod
    def create_bridge(self, name: str) -> None:
        """Create a bridge (up); no-op if it exists. For tests and the testkit."""

    @abc.abstractmethod
    def delete_bridge(self, name: str) -> None:
        """Delete a bridge; no-op if it does not exist."""

    @abc.abstractmethod
    def create_tap(self, name: str) -> None:
        """Create a persistent tap (up, no bridge); no-op if that tap exists.

        Raises NetworkError if `name` is taken by an interface that is not a tap.
        """

    @abc.abstractmethod
    def delete_tap(self, name: str) -> None:
        """Delete a tap; no-op if it does not exist."""

    @abc.abstractmethod
    def attach_to_bridge(self, tap: str, bridge: str) -> None:
        """Plug `tap` into `bridge` (leaving any previous bridge)."""

    @abc.abstractmethod
    def detach(self, tap: str) -> None:
        """Unplug `tap` from its bridge; no-op if it is not plugged."""

    @abc.abstractmethod
    def link_exists(self, name: str) -> bool:
        """True if an interface called `name` exists."""

    @abc.abstractmethod
    def master_of(self, name: str) -> str | None:
        """The bridge `name` is plugged into, or None."""

    @abc.abstractmethod
    def list_taps(self) -> list[str]:
        """Names of all tap interfaces, sorted."""
