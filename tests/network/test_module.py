"""The module-level functions the node backend calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral import network
from corral.network import FakeNetwork, LinuxNetwork


@pytest.fixture
def fake() -> Iterator[FakeNetwork]:
    net = FakeNetwork()
    network.use_driver(net)
    yield net
    network.use_driver(None)


def test_functions_use_installed_driver(fake: FakeNetwork) -> None:
    fake.create_bridge("br-man")
    assert network.bridge_exists("br-man")
    assert network.missing_bridges(["br-man", "br-public"]) == ["br-public"]
    network.create_tap("tap-a")
    network.attach_to_bridge("tap-a", "br-man")
    assert fake.master_of("tap-a") == "br-man"
    network.detach("tap-a")
    network.delete_tap("tap-a")
    assert fake.list_taps() == []


def test_driver_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    network.use_driver(None)
    monkeypatch.setenv(network.ENV_DRIVER, f"fake:{tmp_path}/net.json")
    try:
        assert isinstance(network.current(), FakeNetwork)
    finally:
        network.use_driver(None)
    monkeypatch.delenv(network.ENV_DRIVER)
    try:
        assert isinstance(network.current(), LinuxNetwork)
    finally:
        network.use_driver(None)
