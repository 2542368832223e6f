"""run_oob runs a real out-of-band program the way Ganeti's protocol says."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import errors
from corral.node import oob
from corral.node.context import NodeContext
from corral.paths import Paths

# A tiny management board: power state per node in files next to the script.
BMC = """#!/bin/sh
state="$(dirname "$0")/$2.power"
case "$1" in
  power-off) echo off > "$state" ;;
  power-on) echo on > "$state" ;;
  power-status)
    if [ "$(cat "$state" 2>/dev/null)" = off ]; then echo '{"powered": false}';
    else echo '{"powered": true}'; fi ;;
  health) echo '[["disk", "OK"], ["fan", "WARNING"]]' ;;
  power-cycle) echo "board on fire" >&2; exit 3 ;;
esac
"""


@pytest.fixture
def ctx(tmp_path: Path) -> NodeContext:
    return NodeContext(Paths.under(tmp_path), node_name="node1.project.edu")


@pytest.fixture
def bmc(tmp_path: Path) -> str:
    path = tmp_path / "bmc"
    path.write_text(BMC)
    path.chmod(0o755)
    return str(path)


def test_power_cycle_of_a_node_through_the_program(ctx: NodeContext, bmc: str) -> None:
    assert oob.run_oob(ctx, bmc, "power-status", "node3", 10) == {"powered": True}
    assert oob.run_oob(ctx, bmc, "power-off", "node3", 10) is None
    assert oob.run_oob(ctx, bmc, "power-status", "node3", 10) == {"powered": False}
    assert oob.run_oob(ctx, bmc, "health", "node3", 10) == [["disk", "OK"], ["fan", "WARNING"]]


def test_failures_say_why(ctx: NodeContext, bmc: str, tmp_path: Path) -> None:
    with pytest.raises(errors.OpExecError) as info:
        oob.run_oob(ctx, bmc, "power-cycle", "node3", 10)
    assert "failed with reason 'exited with exit code 3'; output: board on fire" in str(info.value)
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(errors.OpExecError, match="timeout after 1s"):
        oob.run_oob(ctx, str(slow), "power-off", "node3", 1)
    with pytest.raises(errors.OpExecError, match="is not an absolute path"):
        oob.run_oob(ctx, "bmc", "power-off", "node3", 10)
    with pytest.raises(errors.OpExecError, match="is not executable"):
        oob.run_oob(ctx, str(tmp_path / "nosuch"), "power-off", "node3", 10)
    with pytest.raises(errors.OpExecError, match="Unknown out-of-band command"):
        oob.run_oob(ctx, bmc, "rm -rf", "node3", 10)
    chatty = tmp_path / "chatty"
    chatty.write_text("#!/bin/sh\necho powering off now\n")
    chatty.chmod(0o755)
    with pytest.raises(errors.OpExecError, match="did not print valid JSON: powering off now"):
        oob.run_oob(ctx, str(chatty), "power-off", "node3", 10)
