"""Conformance checks every network driver must pass.

Each check takes a fresh driver in an empty world (only ``lo``). The fake runs
them in-process; the Linux driver runs each one in a new network namespace
(``unshare -n``), through `main` below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from corral.errors import NetworkError
from corral.network import NetworkDriver, driver_from_spec


def check_bridges(net: NetworkDriver) -> None:
    assert not net.bridge_exists("br-man")
    net.create_bridge("br-man")
    net.create_bridge("br-man")  # idempotent
    assert net.bridge_exists("br-man")
    assert not net.bridge_exists("lo")  # an interface, not a bridge
    net.delete_bridge("br-man")
    net.delete_bridge("br-man")
    assert not net.bridge_exists("br-man")


def check_missing_bridges(net: NetworkDriver) -> None:
    net.create_bridge("br-man")
    net.create_bridge("br-public")
    assert net.missing_bridges([]) == []
    assert net.missing_bridges(["br-man", "br-public"]) == []
    assert net.missing_bridges(["br-man", "xen-br0", "lo", "xen-br0"]) == ["xen-br0", "lo"]


def check_tap_life_cycle(net: NetworkDriver) -> None:
    net.create_tap("tap-a")
    net.create_tap("tap-a")  # idempotent
    assert net.link_exists("tap-a")
    assert net.list_taps() == ["tap-a"]
    assert net.master_of("tap-a") is None
    net.delete_tap("tap-a")
    net.delete_tap("tap-a")
    assert not net.link_exists("tap-a")
    assert net.list_taps() == []


def check_attach_move_detach(net: NetworkDriver) -> None:
    net.create_bridge("br-man")
    net.create_bridge("br-public")
    net.create_tap("tap-a")
    net.attach_to_bridge("tap-a", "br-man")
    assert net.master_of("tap-a") == "br-man"
    net.attach_to_bridge("tap-a", "br-public")  # NIC modify: move between bridges
    assert net.master_of("tap-a") == "br-public"
    net.detach("tap-a")
    net.detach("tap-a")
    assert net.master_of("tap-a") is None
    net.attach_to_bridge("tap-a", "br-man")
    net.delete_tap("tap-a")  # deleting a plugged tap is fine
    assert not net.link_exists("tap-a")
    assert net.bridge_exists("br-man")


def check_errors(net: NetworkDriver) -> None:
    net.create_tap("tap-a")
    with pytest.raises(NetworkError, match="Bridge br-none does not exist"):
        net.attach_to_bridge("tap-a", "br-none")
    net.create_bridge("br-man")
    with pytest.raises(NetworkError, match="does not exist"):
        net.attach_to_bridge("tap-none", "br-man")
    with pytest.raises(NetworkError, match="not a tap"):
        net.create_tap("br-man")
    with pytest.raises(NetworkError, match="not a tap"):
        net.delete_tap("lo")
    with pytest.raises(NetworkError, match="not a bridge"):
        net.create_bridge("tap-a")
    with pytest.raises(NetworkError, match="Invalid interface name"):
        net.create_tap("much-too-long-name")
    with pytest.raises(NetworkError, match="does not exist"):
        net.detach("tap-none")


CHECKS: dict[str, Callable[[NetworkDriver], None]] = {
    fn.__name__: fn
    for fn in (
        check_bridges,
        check_missing_bridges,
        check_tap_life_cycle,
        check_attach_move_detach,
        check_errors,
    )
}


def main(argv: list[str]) -> int:
    """``python -m tests.network.conformance DRIVER_SPEC CHECK``: run one check."""
    spec, name = argv[1], argv[2]
    CHECKS[name](driver_from_spec(spec))
    print(f"{name}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
