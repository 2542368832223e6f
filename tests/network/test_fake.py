"""Network conformance against the fake driver (in memory and file-backed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from corral.network import FakeNetwork, NetworkDriver
from tests.network.conformance import CHECKS


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("backing", ["memory", "file"])
def test_fake_conformance(check: str, backing: str, tmp_path: Path) -> None:
    state = str(tmp_path / "net.json") if backing == "file" else None
    run: Callable[[NetworkDriver], None] = CHECKS[check]
    run(FakeNetwork(state_file=state))


def test_file_backed_state_is_shared(tmp_path: Path) -> None:
    state = str(tmp_path / "net.json")
    one, two = FakeNetwork(state_file=state), FakeNetwork(state_file=state)
    one.create_bridge("br-man")
    one.create_tap("tap-a")
    two.attach_to_bridge("tap-a", "br-man")
    assert one.master_of("tap-a") == "br-man"
