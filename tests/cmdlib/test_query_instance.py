"""The instance query resource and LUInstanceQueryData on fake nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from corral import errors, opcodes
from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_instance import InstanceQuery
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    env, rpc = instance_env(tmp_path)
    run_op(env, create_op("vm1"))
    run_op(env, create_op("vm2", pnode=f"node2.{DOMAIN}", start=False))
    return env, rpc


def _query(env: Env, rpc: InstanceRpc, fields: list[str], qfilter: Any = None) -> list[list[Any]]:
    ctx = MasterContext(cfg=env.cfg, rpc=rpc, paths=env.paths)  # type: ignore[arg-type]
    result = asyncio.run(InstanceQuery().query(ctx, fields, qfilter))
    return [[value for _status, value in row] for row in result["data"]]


def test_status_and_memory(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rows = _query(env, rpc, ["name", "pnode", "status", "oper_ram", "admin_state", "be/maxmem"])
    assert rows == [
        ["vm1", f"node1.{DOMAIN}", "running", 256, "up", 256],
        ["vm2", f"node2.{DOMAIN}", "ADMIN_down", None, "down", 256],
    ]


def test_status_when_things_go_wrong(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.node("node1").running.clear()  # vm1 died
    rpc.node("node3").running["vm2"] = 256  # vm2 runs where it should not
    rows = _query(env, rpc, ["name", "status"])
    assert rows == [["vm1", "ERROR_down"], ["vm2", "ERROR_wrongnode"]]
    rpc.dead.add(f"node1.{DOMAIN}")
    assert _query(env, rpc, ["status"], ["=", "name", "vm1"]) == [["ERROR_nodedown"]]


def test_name_filter_and_unknown_name(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    assert _query(env, rpc, ["name"], ["|", ["=", "name", "vm2"], ["=", "name", "nosuch"]]) == [
        ["vm2"]
    ]


def test_query_data(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    data = run_op(env, opcodes.OpInstanceQueryData(instances=["vm1"]))
    assert set(data) == {"vm1"}
    info = data["vm1"]
    assert info["pnode"] == f"node1.{DOMAIN}"
    assert info["run_state"] == "up"
    with pytest.raises(errors.OpPrereqError, match="Instance 'nosuch' not known"):
        run_op(env, opcodes.OpInstanceQueryData(instances=["nosuch"]))
