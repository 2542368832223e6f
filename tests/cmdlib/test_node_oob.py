"""LUOobCommand: Ganeti's out-of-band rules, results and recorded power state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib.node_oob import check_payload
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env, make_env, node_uuid, run_lu

OOB = "/usr/local/sbin/bmc"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    env.cfg.cluster.ndparams["oob_program"] = OOB
    return env


def _oob(command: str, *names: str, **kw: Any) -> opcodes.OpOobCommand:
    return opcodes.OpOobCommand(node_names=list(names), command=command, **kw)


def test_power_off_runs_the_program_on_the_master_and_records_it(env: Env) -> None:
    env.cfg.nodes[node_uuid(3)].offline = True
    result = run_lu(env, _oob(C.OOB_POWER_OFF, "node3"))
    assert result == [[[C.RS_NORMAL, f"node3.{DOMAIN}"], [C.RS_NORMAL, None]]]
    # the master runs `PROGRAM COMMAND NODE` (the target may well be dead)
    assert env.rpc.calls_of("run_oob") == [
        (f"node1.{DOMAIN}", (OOB, C.OOB_POWER_OFF, f"node3.{DOMAIN}", C.OOB_TIMEOUT))
    ]
    assert env.cfg.nodes[node_uuid(3)].powered is False
    run_lu(env, _oob(C.OOB_POWER_ON, "node3"))
    assert env.cfg.nodes[node_uuid(3)].powered is True


def test_power_off_needs_offline_or_ignore_status_and_never_the_master(env: Env) -> None:
    before = env.cfg.to_json()
    with pytest.raises(errors.OpPrereqError) as info:
        run_lu(env, _oob(C.OOB_POWER_OFF, "node3"))
    assert str(info.value) == (
        f"Cannot power off node node3.{DOMAIN} because it is not marked offline"
    )
    with pytest.raises(errors.OpPrereqError) as info:
        run_lu(env, _oob(C.OOB_POWER_CYCLE, "node1", ignore_status=True))
    assert str(info.value) == (
        f"Operating on the master node node1.{DOMAIN} is not allowed for power-cycle;"
        f" run '{OOB} power-cycle node1.{DOMAIN}' if you want to operate on the master"
        " regardless"
    )
    assert env.cfg.to_json() == before
    # ignore_status is what the watcher's fencing uses
    run_lu(env, _oob(C.OOB_POWER_OFF, "node3", ignore_status=True))
    assert env.cfg.nodes[node_uuid(3)].powered is False


def test_status_of_all_nodes_sorted_with_failures_per_node(env: Env) -> None:
    env.cfg.nodes[node_uuid(2)].ndparams["oob_program"] = ""

    def bmc(node: str, program: str, command: str, target: str, timeout: int) -> Any:
        if target.startswith("node3"):
            raise errors.OpExecError("'bmc power-status node3' failed with reason 'exit 1'")
        return {"powered": True}

    env.rpc.handlers["run_oob"] = bmc
    result = run_lu(env, _oob(C.OOB_POWER_STATUS))
    assert result == [
        [[C.RS_NORMAL, f"node1.{DOMAIN}"], [C.RS_NORMAL, {"powered": True}]],
        [[C.RS_NORMAL, f"node2.{DOMAIN}"], [C.RS_UNAVAIL, None]],
        [[C.RS_NORMAL, f"node3.{DOMAIN}"], [C.RS_NODATA, None]],
    ]
    assert any("Out-of-band RPC failed on node 'node3" in line for line in env.feedback)


def test_an_invalid_payload_is_no_data(env: Env) -> None:
    env.rpc.handlers["run_oob"] = lambda *a: "not a dict"
    result = run_lu(env, _oob(C.OOB_POWER_STATUS, "node2"))
    assert result[0][1] == [C.RS_NODATA, None]
    assert env.cfg.nodes[node_uuid(2)].powered is True


@pytest.mark.parametrize(
    ("command", "payload", "message"),
    [
        ("health", {"a": 1}, "command 'health' is expected to return a list"),
        ("health", [["disk", "MELTING"]], "health item 'disk' has invalid status 'MELTING'"),
        ("health", [["disk", ["OK"]]], "health item 'disk' has invalid status"),
        ("power-status", None, "power-status is expected to return a dict"),
        ("power-on", {"x": 1}, "power-on is expected to not return payload"),
    ],
)
def test_payload_rules(command: str, payload: Any, message: str) -> None:
    with pytest.raises(errors.OpExecError, match=message):
        check_payload(command, payload)
    check_payload("health", [["disk", "OK"], ["fan", "WARNING"]])
    check_payload("power-status", {"powered": False})


def test_bad_arguments(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="Invalid out-of-band command 'explode'"):
        run_lu(env, _oob("explode", "node2"))
    with pytest.raises(errors.OpPrereqError, match="Node 'nosuch' not known"):
        run_lu(env, _oob(C.OOB_HEALTH, "nosuch"))


def test_a_powered_off_node_must_be_powered_on_before_going_online(env: Env) -> None:
    node3 = env.cfg.nodes[node_uuid(3)]
    node3.offline = True
    run_lu(env, _oob(C.OOB_POWER_OFF, "node3"))
    with pytest.raises(errors.OpPrereqError) as info:
        run_lu(env, opcodes.OpNodeSetParams(node_name="node3", offline=False))
    assert str(info.value) == (
        f"Node node3.{DOMAIN} needs to be turned on before its offline status can be reset"
    )
    run_lu(env, _oob(C.OOB_POWER_ON, "node3"))
    run_lu(env, opcodes.OpNodeSetParams(node_name="node3", offline=False))
    assert not env.cfg.nodes[node_uuid(3)].offline
    # without an out-of-band program the power state cannot be set at all
    env.cfg.cluster.ndparams["oob_program"] = ""
    with pytest.raises(errors.OpPrereqError, match="does not support out-of-band handling"):
        run_lu(env, opcodes.OpNodeSetParams(node_name="node3", powered=False))
