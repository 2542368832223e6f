"""LUInstanceMigrate / LUInstanceFailover on fake nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, objects, opcodes
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    env, rpc = instance_env(tmp_path)
    rpc.handlers["version"] = lambda node: {"joined": True}
    run_op(env, create_op("vm1", disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}"))
    run_op(env, create_op("plain1", disk_template=C.DT_FILE, pnode=f"node3.{DOMAIN}"))
    env.feedback.clear()
    return env, rpc


def _inst(env: Env, name: str = "vm1") -> objects.Instance:
    inst = env.cfg.get_instance_by_name(name)
    assert inst is not None
    return inst


def test_live_migration_swaps_nodes(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1"))
    inst = _inst(env)
    assert inst.primary_node == "uuid-node2"
    assert inst.secondary_nodes == ["uuid-node1"]
    assert rpc.node("node2").running == {"vm1": 256}
    assert rpc.node("node1").running == {}
    assert "* memory transfer complete" in env.feedback
    assert env.feedback[-1] == "* done"


def test_failed_migration_keeps_primary(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.migration_result = "failed"
    with pytest.raises(errors.OpExecError) as info:
        run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1"))
    assert str(info.value) == "Could not migrate instance vm1: memory copy failed"
    assert _inst(env).primary_node == "uuid-node1"
    assert rpc.node("node1").running == {"vm1": 256}
    # dual-master mode was undone on both nodes
    attach = [(n, args[2]) for n, args in rpc.calls_of("drbd_attach_net")]
    assert attach[-2:] == [(f"node1.{DOMAIN}", False), (f"node2.{DOMAIN}", False)]


def test_refused_by_target(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["accept_instance"] = "no room"
    with pytest.raises(errors.OpExecError, match="Could not pre-migrate instance vm1: no room"):
        run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1"))
    assert _inst(env).primary_node == "uuid-node1"


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            opcodes.OpInstanceMigrate(instance_name="plain1"),
            "Instance's disk layout 'file' does not allow migrations",
        ),
        (
            opcodes.OpInstanceFailover(instance_name="plain1"),
            "Instance's disk layout 'file' does not allow failovers",
        ),
        (
            opcodes.OpInstanceMigrate(instance_name="vm1", target_node=f"node3.{DOMAIN}"),
            "Instances with disk template drbd cannot be migrated to arbitrary nodes",
        ),
        (opcodes.OpInstanceMigrate(instance_name="nosuch"), "Instance 'nosuch' not known"),
    ],
)
def test_refused_prerequisites(
    env_rpc: tuple[Env, InstanceRpc], op: opcodes.OpCode, message: str
) -> None:
    env, _rpc = env_rpc
    before = env.cfg.to_json()
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, op)
    assert str(info.value).startswith(message)
    assert env.cfg.to_json() == before


def test_target_without_memory(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.node("node2").memory_total = 256
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1"))
    assert str(info.value) == (
        f"Not enough memory on node node2.{DOMAIN} for migrating instance vm1:"
        " needed 256 MiB, available 128 MiB"
    )


def test_stopped_instance_needs_allow_failover(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    with pytest.raises(errors.OpPrereqError, match="is not running, cannot migrate"):
        run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1"))
    run_op(env, opcodes.OpInstanceMigrate(instance_name="vm1", allow_failover=True))
    assert _inst(env).primary_node == "uuid-node2"


def test_failover_running(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceFailover(instance_name="vm1"))
    assert _inst(env).primary_node == "uuid-node2"
    assert rpc.node("node2").running == {"vm1": 256}
    assert rpc.node("node1").running == {}


def test_failover_from_dead_node(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.dead.add(f"node1.{DOMAIN}")
    with pytest.raises(errors.OpExecError, match="use --ignore-consistency"):
        run_op(env, opcodes.OpInstanceFailover(instance_name="vm1"))
    assert _inst(env).primary_node == "uuid-node1"
    run_op(env, opcodes.OpInstanceFailover(instance_name="vm1", ignore_consistency=True))
    assert _inst(env).primary_node == "uuid-node2"
    assert rpc.node("node2").running == {"vm1": 256}


def test_failover_start_failure(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["instance_start"] = "boom"
    with pytest.raises(errors.OpExecError) as info:
        run_op(env, opcodes.OpInstanceFailover(instance_name="vm1"))
    assert str(info.value) == f"Could not start instance vm1 on node node2.{DOMAIN}: boom"
