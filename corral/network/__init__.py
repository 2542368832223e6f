"""NIC plumbing for the node backend: bridges and persistent taps.

Module-level functions act on the node's current driver: the real one
(`LinuxNetwork`, pyroute2, in this process's network namespace) unless
`use_driver` installed another, or the environment variable
``CORRAL_NETWORK_DRIVER`` says ``fake`` (in memory) or ``fake:/path/state.json``
(a file-backed model shared between processes) -- for tests and for running
noded without touching the host's network.

    bridge_exists(name) -> bool
    missing_bridges(links) -> list[str]
    create_tap(name) / delete_tap(name)
    attach_to_bridge(tap, bridge) / detach(tap)
    tap_name_for(instance_name, nic_index, seq) -> str   (<= 15 chars, stable)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

from corral.network.base import NetworkDriver
from corral.network.fake import FakeNetwork
from corral.network.linux import LinuxNetwork
from corral.network.naming import tap_name_for

ENV_DRIVER = "CORRAL_NETWORK_DRIVER"

_lock = threading.Lock()
_driver: NetworkDriver | None = None


def driver_from_spec(spec: str) -> NetworkDriver:
    """``linux`` | ``fake`` | ``fake:/path/state.json`` -> a driver."""
    kind, _, arg = spec.partition(":")
    if kind in ("", "linux", "real"):
        return LinuxNetwork()
    if kind == "fake":
        return FakeNetwork(state_file=arg or None)
    raise ValueError(f"Unknown network driver '{spec}'")


def current() -> NetworkDriver:
    """The driver the module-level functions use."""
    global _driver
    with _lock:
        if _driver is None:
            _driver = driver_from_spec(os.environ.get(ENV_DRIVER, "linux"))
        return _driver


def use_driver(driver: NetworkDriver | None) -> None:
    """Install `driver` (None: back to the environment's choice on next use)."""
    global _driver
    with _lock:
        _driver = driver


def bridge_exists(name: str) -> bool:
    return current().bridge_exists(name)


def missing_bridges(links: Iterable[str]) -> list[str]:
    return current().missing_bridges(links)


def create_tap(name: str) -> None:
    current().create_tap(name)


def delete_tap(name: str) -> None:
    current().delete_tap(name)


def attach_to_bridge(tap: str, bridge: str) -> None:
    current().attach_to_bridge(tap, bridge)


def detach(tap: str) -> None:
    current().detach(tap)


__all__ = [
    "FakeNetwork",
    "LinuxNetwork",
    "NetworkDriver",
    "attach_to_bridge",
    "bridge_exists",
    "create_tap",
    "current",
    "delete_tap",
    "detach",
    "driver_from_spec",
    "missing_bridges",
    "tap_name_for",
    "use_driver",
]
