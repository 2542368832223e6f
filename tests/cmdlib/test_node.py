"""LUNodeRemove and LUNodeSetParams on fake nodes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from corral import errors, opcodes
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    env, rpc = instance_env(tmp_path)
    rpc.handlers["node_leave"] = lambda node: None
    rpc.handlers["node_set_revoked"] = lambda node, serials: None
    run_op(env, create_op("vm1", pnode=f"node2.{DOMAIN}", start=False))
    return env, rpc


@pytest.mark.parametrize(
    "op",
    [
        opcodes.OpNodeRemove(node_name="nosuch"),
        opcodes.OpNodeSetParams(node_name="nosuch", drained=True),
    ],
    ids=["remove", "modify"],
)
def test_unknown_node(env_rpc: tuple[Env, InstanceRpc], op: opcodes.OpCode) -> None:
    env, _rpc = env_rpc
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, op)
    assert str(info.value) == "Node 'nosuch' not known"


def test_remove_node(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpNodeRemove(node_name="node3"))
    assert [n.name for n in env.cfg.all_nodes()] == [f"node1.{DOMAIN}", f"node2.{DOMAIN}"]
    assert [n for n, _ in rpc.calls_of("node_leave")] == [f"node3.{DOMAIN}"]


def test_refuse_removing_master_or_busy_node(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    before = env.cfg.to_json()
    with pytest.raises(errors.OpPrereqError, match="master"):
        run_op(env, opcodes.OpNodeRemove(node_name="node1"))
    with pytest.raises(errors.OpPrereqError, match="vm1"):
        run_op(env, opcodes.OpNodeRemove(node_name="node2"))
    assert env.cfg.to_json() == before


def test_set_params(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    run_op(env, opcodes.OpNodeSetParams(node_name="node3", drained=True))
    assert env.cfg.nodes["uuid-node3"].drained
    with pytest.raises(errors.OpPrereqError, match="Can't use drained node"):
        run_op(env, create_op("vm2", pnode=f"node3.{DOMAIN}"))
    run_op(env, opcodes.OpNodeSetParams(node_name="node3", drained=False))
    run_op(env, opcodes.OpNodeSetParams(node_name="node3", offline=True))
    assert env.cfg.nodes["uuid-node3"].offline
    with pytest.raises(errors.OpPrereqError, match="Please pass at least one modification"):
        run_op(env, opcodes.OpNodeSetParams(node_name="node3"))


def test_promoted_candidate_gets_the_ca_key(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    key_path = Path(env.paths.ca_key)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    rpc.handlers["upload_file"] = lambda node, *args: None
    run_op(env, opcodes.OpNodeSetParams(node_name="node3", master_candidate=False, force=True))
    assert not rpc.calls_of("upload_file")
    run_op(env, opcodes.OpNodeSetParams(node_name="node3", master_candidate=True))
    uploads = rpc.calls_of("upload_file")
    assert [node for node, _ in uploads] == [f"node3.{DOMAIN}"]
    path, data_b64, mode = uploads[0][1][:3]
    assert path == str(key_path) and mode == 0o600
    assert base64.b64decode(data_b64).decode() == key_path.read_text()
