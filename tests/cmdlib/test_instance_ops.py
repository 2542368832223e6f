"""Start, stop, reboot, remove, rename, (de)activate disks on fake nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, opcodes
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    env, rpc = instance_env(tmp_path)
    run_op(env, create_op("vm1", disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}"))
    env.feedback.clear()
    rpc.calls.clear()
    return env, rpc


def _state(env: Env) -> str:
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None
    return inst.admin_state


@pytest.mark.parametrize(
    "op",
    [
        opcodes.OpInstanceStartup(instance_name="nosuch"),
        opcodes.OpInstanceShutdown(instance_name="nosuch"),
        opcodes.OpInstanceReboot(instance_name="nosuch"),
        opcodes.OpInstanceRemove(instance_name="nosuch"),
        opcodes.OpInstanceRename(instance_name="nosuch", new_name="x", name_check=False),
        opcodes.OpInstanceActivateDisks(instance_name="nosuch"),
        opcodes.OpInstanceDeactivateDisks(instance_name="nosuch"),
    ],
    ids=lambda op: type(op).__name__,
)
def test_unknown_instance(env_rpc: tuple[Env, InstanceRpc], op: opcodes.OpCode) -> None:
    env, _rpc = env_rpc
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, op)
    assert str(info.value) == "Instance 'nosuch' not known"
    assert info.value.ecode == "unknown_entity"


def test_stop_then_start(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    assert _state(env) == C.ADMINST_DOWN
    assert rpc.node("node1").running == {}
    assert len(rpc.calls_of("blockdev_shutdown")) == 2  # both DRBD nodes
    run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))
    assert _state(env) == C.ADMINST_UP
    assert rpc.node("node1").running == {"vm1": 256}
    # starting a running instance only records the wish
    run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))
    assert env.feedback[-1] == " - INFO: Instance is already running"


def test_start_out_of_memory_keeps_it_down(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1", beparams={"maxmem": "4G"}))
    assert str(info.value) == (
        f"Not enough memory on node node1.{DOMAIN} for starting instance vm1:"
        " needed 4096 MiB, available 1920 MiB"
    )
    assert _state(env) == C.ADMINST_DOWN
    assert rpc.node("node1").running == {}


def test_start_failure_keeps_the_intent(env_rpc: tuple[Env, InstanceRpc]) -> None:
    """As Ganeti: a failed start leaves the instance marked up (ERROR_down), so
    the watcher retries it; its disks are deactivated again."""
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    rpc.fail["instance_start"] = "no such kernel"
    with pytest.raises(errors.OpExecError, match="Could not start instance: no such kernel"):
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))
    assert _state(env) == C.ADMINST_UP
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None and not inst.disks_active


def test_start_bad_hvparams(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    with pytest.raises(errors.OpPrereqError, match="Unknown hypervisor parameter"):
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1", hvparams={"nosuch": "1"}))


def test_start_with_unreachable_primary(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.dead.add(f"node1.{DOMAIN}")
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))
    assert str(info.value) == f"Can't get data from node node1.{DOMAIN}"


def test_start_missing_bridge(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    rpc.node("node1").bridges.discard("br-man")
    with pytest.raises(errors.OpPrereqError, match="Missing bridges br-man"):
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))
    assert _state(env) == C.ADMINST_DOWN


def test_offline_instance_cannot_start(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    env.cfg.instances[env.cfg.expand_instance_name("vm1")[0]].admin_state = C.ADMINST_OFFLINE
    with pytest.raises(errors.OpPrereqError, match="it is marked offline"):
        run_op(env, opcodes.OpInstanceStartup(instance_name="vm1"))


def test_reboot(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceReboot(instance_name="vm1", reboot_type="hard"))
    assert len(rpc.calls_of("instance_reboot")) == 1
    run_op(env, opcodes.OpInstanceReboot(instance_name="vm1", reboot_type="full"))
    assert [c[0] for c in rpc.calls if c[0].startswith("instance_s")] == [
        "instance_shutdown",
        "instance_start",
    ]
    assert rpc.node("node1").running == {"vm1": 256}
    with pytest.raises(errors.OpPrereqError, match="Invalid reboot type 'warm'"):
        run_op(env, opcodes.OpInstanceReboot(instance_name="vm1", reboot_type="warm"))


def test_remove(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, opcodes.OpInstanceRemove(instance_name="vm1"))
    assert env.cfg.all_instances() == []
    assert rpc.node("node1").running == {}
    assert rpc.node("node1").disks == {} and rpc.node("node2").disks == {}


def test_remove_failed_shutdown_keeps_everything(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["instance_shutdown"] = "stuck"
    with pytest.raises(errors.OpExecError) as info:
        run_op(env, opcodes.OpInstanceRemove(instance_name="vm1"))
    assert str(info.value) == f"Could not shutdown instance vm1 on node node1.{DOMAIN}: stuck"
    assert env.cfg.get_instance_by_name("vm1") is not None
    assert rpc.node("node2").disks


def test_remove_ignore_failures(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["instance_shutdown"] = "stuck"
    rpc.fail["blockdev_remove"] = "busy"
    run_op(env, opcodes.OpInstanceRemove(instance_name="vm1", ignore_failures=True))
    assert env.cfg.all_instances() == []
    assert any("Could not remove disk disk/0" in line for line in env.feedback)


def test_remove_disk_failure_without_ignore(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["blockdev_remove"] = "busy"
    with pytest.raises(errors.OpExecError, match="Can't remove instance's disks"):
        run_op(env, opcodes.OpInstanceRemove(instance_name="vm1"))
    assert env.cfg.get_instance_by_name("vm1") is not None


def test_rename(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    op = opcodes.OpInstanceRename(instance_name="vm1", new_name="vm2", name_check=False)
    with pytest.raises(errors.OpPrereqError, match="Instance vm1 is running, can't rename"):
        run_op(env, op)
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    run_op(env, create_op("vm3", disk_template=C.DT_DISKLESS, start=False))
    with pytest.raises(errors.OpPrereqError, match="Instance 'vm3' is already in the cluster"):
        run_op(env, opcodes.OpInstanceRename(instance_name="vm1", new_name="vm3", name_check=False))
    rpc.fail["instance_run_rename"] = "script failed"
    assert run_op(env, op) == "vm2"
    assert env.cfg.get_instance_by_name("vm2") is not None
    assert env.cfg.get_instance_by_name("vm1") is None
    assert any("but the instance has been renamed" in line for line in env.feedback)


def test_activate_and_deactivate_disks(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    with pytest.raises(errors.OpPrereqError, match="is running, can't shutdown disks"):
        run_op(env, opcodes.OpInstanceDeactivateDisks(instance_name="vm1"))
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    result = run_op(env, opcodes.OpInstanceActivateDisks(instance_name="vm1"))
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None and inst.disks_active
    assert result == [[f"node1.{DOMAIN}", "disk/0", f"/dev/fake/{inst.disks[0].uuid}"]]
    run_op(env, opcodes.OpInstanceDeactivateDisks(instance_name="vm1"))
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None and not inst.disks_active
