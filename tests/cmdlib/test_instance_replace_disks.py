"""replace-disks, reinstall and node evacuate against the fake RPC runner: argument
and prerequisite checks, allocator requests, evacuation jobs, call order.

The data paths (real resyncs) are covered by test_replace_disks_local.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from corral import constants as C
from corral import errors, objects, opcodes
from corral.cmdlib import iallocator, registry
from corral.cmdlib.base import ALL_SET, LEVEL_NODE, LEVELS, LogicalUnit, LUContext
from corral.hypervisor.base import InstanceRuntime

from .test_cluster_fakes import DOMAIN, Env, make_env, node_uuid, run_lu

INST1 = f"inst1.{DOMAIN}"  # drbd node1 -> node2, running
INST2 = f"inst2.{DOMAIN}"  # file on node3


def prepared(env: Env, op: opcodes.OpCode) -> LogicalUnit:
    """The LU of `op` after check_prereq (exec not run)."""
    registry.load_all()

    async def go() -> LogicalUnit:
        owned: dict[int, list[str]] = {}
        ctx = LUContext(
            cfg=env.cfg,
            rpc=env.rpc,  # type: ignore[arg-type]
            paths=env.paths,
            job_id=1,
            feedback_fn=env.feedback.append,
            owned_locks_fn=lambda level: owned.get(level, []),
        )
        lu = registry.lu_class(op)(op, ctx)
        lu.check_arguments()
        lu.expand_names()
        for level in LEVELS:
            if level in lu.needed_locks:
                lu.declare_locks(level)
                names = lu.needed_locks[level]
                env.locks[level] = "ALL" if names is ALL_SET else sorted(names)  # type: ignore[arg-type]
                owned[level] = sorted(env.cfg.nodes) if names is ALL_SET else sorted(names)  # type: ignore[arg-type]
        await lu.check_prereq()
        return lu

    return asyncio.run(go())


def replace(mode: str, inst: str = INST1, **kw: Any) -> opcodes.OpInstanceReplaceDisks:
    return opcodes.OpInstanceReplaceDisks(instance_name=inst, mode=mode, **kw)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    env.rpc.handlers["instance_info"] = lambda node, name, hv: (
        InstanceRuntime(name=name, state="running", memory=512, vcpus=1)
        if name in env.rpc.state(node).running
        else None
    )
    return env


# -- replace-disks: arguments and prerequisites -------------------------------------------


def test_refuses_non_drbd_templates(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match=r"^Can only run replace disks for DRBD8-based"):
        prepared(env, replace(C.REPLACE_DISK_SEC, INST2))


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (replace(C.REPLACE_DISK_CHG), "When changing the secondary either an iallocator"),
        (replace(C.REPLACE_DISK_SEC, remote_node="node3"), "can only be used when changing"),
        (replace(C.REPLACE_DISK_PRI, iallocator="hail"), "can only be used when changing"),
        (replace(C.REPLACE_DISK_CHG, remote_node="node3", iallocator="hail"), "not both"),
        (replace("sideways"), "Invalid replace-disks mode"),
    ],
)
def test_argument_checks(env: Env, op: opcodes.OpCode, message: str) -> None:
    with pytest.raises(errors.OpPrereqError, match=message):
        prepared(env, op)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("node1", "The specified node is the primary node of the instance"),
        ("node2", "The specified node is already the secondary node of the instance"),
    ],
)
def test_new_secondary_must_be_a_third_node(env: Env, node: str, message: str) -> None:
    with pytest.raises(errors.OpPrereqError, match=message):
        prepared(env, replace(C.REPLACE_DISK_CHG, remote_node=node))


def test_disks_cannot_be_chosen_for_new_secondary(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="Cannot specify disks to be replaced"):
        prepared(env, replace(C.REPLACE_DISK_CHG, remote_node="node3", disks=[0]))


def test_invalid_disk_index(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="Invalid disk index 3"):
        prepared(env, replace(C.REPLACE_DISK_SEC, disks=[3]))


def test_replace_on_primary_needs_a_stopped_instance(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="is running"):
        prepared(env, replace(C.REPLACE_DISK_PRI))
    env.rpc.state(f"node1.{DOMAIN}").running.clear()
    lu = prepared(env, replace(C.REPLACE_DISK_PRI))
    assert (lu.target_node, lu.other_node) == (node_uuid(1), node_uuid(2))  # type: ignore[attr-defined]


def test_new_secondary_locks_it_and_checks_its_space(env: Env) -> None:
    env.rpc.handlers["node_info"] = lambda node, vg, hvs: {
        "memory_free": 1024,
        "storage": [{"type": "lvm-vg", "name": "xenvg", "storage_size": 900, "storage_free": 900}],
    }
    with pytest.raises(errors.OpPrereqError, match="Not enough disk space on target node node3"):
        prepared(env, replace(C.REPLACE_DISK_CHG, remote_node="node3"))
    assert env.locks[LEVEL_NODE] == [node_uuid(1), node_uuid(2), node_uuid(3)]


def test_iallocator_relocate_request(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    async def fake_run(name: str, document: dict[str, Any]) -> dict[str, Any]:
        seen.append(document["request"])
        return {"success": True, "info": "ok", "result": [f"node3.{DOMAIN}"]}

    monkeypatch.setattr(iallocator, "run_allocator", fake_run)
    env.rpc.handlers["node_info"] = lambda node, vg, hvs: {
        "memory_free": 1024,
        "storage": [{"type": "lvm-vg", "name": "xenvg", "storage_size": 9e5, "storage_free": 9e5}],
    }
    lu = prepared(env, replace(C.REPLACE_DISK_CHG, iallocator="hail"))
    assert seen == [
        {
            "type": "relocate",
            "name": INST1,
            "disk_space_total": 1024 + C.DRBD_META_SIZE,
            "required_nodes": 1,
            "relocate_from": [f"node2.{DOMAIN}"],
        }
    ]
    assert lu.new_node == node_uuid(3)  # type: ignore[attr-defined]
    assert f" - INFO: Selected new secondary for instance '{INST1}': node3.{DOMAIN}" in env.feedback
    assert env.locks[LEVEL_NODE] == "ALL"


def test_auto_mode_finds_the_broken_side(env: Env) -> None:
    missing = {f"node2.{DOMAIN}"}
    env.rpc.handlers["blockdev_find"] = lambda node, disk, ctx: (
        None if node in missing else env.rpc._h_blockdev_getmirrorstatus(node, [disk], ctx)[0]
    )
    lu = prepared(env, replace(C.REPLACE_DISK_AUTO))
    assert (lu.target_node, lu.disk_idx) == (node_uuid(2), [0])  # type: ignore[attr-defined]
    missing.add(f"node1.{DOMAIN}")
    with pytest.raises(errors.OpPrereqError, match="faulty disks on more than one node"):
        prepared(env, replace(C.REPLACE_DISK_AUTO))
    missing.clear()
    env2 = env
    run_lu(env2, replace(C.REPLACE_DISK_AUTO))
    assert f"No disks need replacement for instance '{INST1}'" in env2.feedback


def test_failed_new_storage_changes_nothing(env: Env) -> None:
    env.rpc.handlers["node_info"] = lambda node, vg, hvs: {
        "memory_free": 1024,
        "storage": [{"type": "lvm-vg", "name": "xenvg", "storage_size": 9e5, "storage_free": 9e5}],
    }
    env.rpc.handlers["blockdev_find"] = lambda node, disk, ctx: env.rpc._h_blockdev_getmirrorstatus(
        node, [disk], ctx
    )[0]
    env.rpc.fail["blockdev_create"] = "no space left"
    before = env.cfg.get_instance_by_name(INST1)
    assert before is not None
    lid = list(before.disks[0].logical_id)
    with pytest.raises(errors.OpExecError, match="no space left"):
        run_lu(env, replace(C.REPLACE_DISK_CHG, remote_node="node3"))
    after = env.cfg.get_instance_by_name(INST1)
    assert after is not None and after.disks[0].logical_id == lid
    assert env.rpc.calls_of("drbd_disconnect_net") == []
    assert env.rpc.calls_of("blockdev_shutdown") == []  # the running instance's disks stay up


# -- node evacuate ------------------------------------------------------------------------


def test_evacuate_secondaries_submits_replace_jobs(env: Env) -> None:
    res = run_lu(env, opcodes.OpNodeEvacuate(node_name="node2", mode=C.NODE_EVAC_SEC))
    assert res == {"jobs": [[True, 23]]}
    assert env.submitted == [
        [
            opcodes.OpInstanceReplaceDisks(
                instance_name=INST1, mode=C.REPLACE_DISK_CHG, iallocator=C.DEFAULT_IALLOCATOR
            )
        ]
    ]


def test_evacuate_all_also_replaces_the_secondary_of_migrated_drbd(env: Env) -> None:
    run_lu(env, opcodes.OpNodeEvacuate(node_name="node1", mode=C.NODE_EVAC_ALL, iallocator="hail"))
    (job,) = env.submitted
    assert [type(o) for o in job] == [opcodes.OpInstanceMigrate, opcodes.OpInstanceReplaceDisks]
    assert job[1] == opcodes.OpInstanceReplaceDisks(
        instance_name=INST1, mode=C.REPLACE_DISK_CHG, iallocator="hail"
    )


def test_evacuate_primary_only_migrates(env: Env) -> None:
    run_lu(env, opcodes.OpNodeEvacuate(node_name="node1", mode=C.NODE_EVAC_PRI))
    assert env.submitted == [[opcodes.OpInstanceMigrate(instance_name=INST1, allow_failover=True)]]


def test_evacuate_refusals(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="only secondary instances can be evacuated"):
        run_lu(env, opcodes.OpNodeEvacuate(node_name="node2", remote_node="node3"))
    with pytest.raises(errors.OpPrereqError, match="Can not use evacuated node"):
        run_lu(
            env,
            opcodes.OpNodeEvacuate(node_name="node2", mode=C.NODE_EVAC_SEC, remote_node="node2"),
        )
    cluster = env.cfg.cluster.copy()
    cluster.default_iallocator = ""
    asyncio.run(env.cfg.update_cluster(cluster))
    with pytest.raises(errors.OpPrereqError, match="no cluster-wide default iallocator"):
        run_lu(env, opcodes.OpNodeEvacuate(node_name="node2", mode=C.NODE_EVAC_SEC))
    # a node holding no secondaries needs no allocator
    assert run_lu(env, opcodes.OpNodeEvacuate(node_name="node3", mode=C.NODE_EVAC_SEC)) == {
        "jobs": []
    }


# -- reinstall ----------------------------------------------------------------------------


def _stopped(env: Env) -> None:
    inst = env.cfg.get_instance_by_name(INST1)
    assert inst is not None
    asyncio.run(env.cfg.set_instance_admin_state(inst.uuid, C.ADMINST_DOWN))
    env.rpc.state(f"node1.{DOMAIN}").running.clear()


def test_reinstall_refuses_running_instances(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match="is marked to be up, cannot reinstall"):
        run_lu(env, opcodes.OpInstanceReinstall(instance_name=INST1))
    inst = env.cfg.get_instance_by_name(INST1)
    assert inst is not None
    asyncio.run(env.cfg.set_instance_admin_state(inst.uuid, C.ADMINST_DOWN))
    with pytest.raises(errors.OpPrereqError, match="is running, cannot reinstall"):
        run_lu(env, opcodes.OpInstanceReinstall(instance_name=INST1))


def test_reinstall_validates_the_new_os(env: Env) -> None:
    _stopped(env)
    env.rpc.fail["os_get"] = "OS 'nope' not found"
    with pytest.raises(errors.OpPrereqError, match="OS 'nope' not in supported OS list"):
        run_lu(env, opcodes.OpInstanceReinstall(instance_name=INST1, os_type="nope"))
    assert env.rpc.calls_of("instance_os_add") == []


def test_reinstall_with_new_os(env: Env) -> None:
    _stopped(env)
    run_lu(env, opcodes.OpInstanceReinstall(instance_name=INST1, os_type="image+cd"))
    inst = env.cfg.get_instance_by_name(INST1)
    assert inst is not None and inst.os == "image+cd"
    ((node, args),) = env.rpc.calls_of("instance_os_add")
    assert node == f"node1.{DOMAIN}"
    assert isinstance(args[0], objects.Instance) and args[0].os == "image+cd"
    assert args[2] is True  # reinstall
    order = [
        (call, node) for call, node, _ in env.rpc.calls if call.startswith("blockdev_") and
        call in ("blockdev_assemble", "blockdev_shutdown")
    ]  # fmt: skip
    assert order == [
        ("blockdev_assemble", f"node2.{DOMAIN}"),
        ("blockdev_assemble", f"node1.{DOMAIN}"),
        ("blockdev_shutdown", f"node1.{DOMAIN}"),
        ("blockdev_shutdown", f"node2.{DOMAIN}"),
    ]
    assert "Changing OS to image+cd..." in env.feedback
    assert not inst.disks_active


def test_reinstall_shuts_disks_down_when_the_script_fails(env: Env) -> None:
    _stopped(env)
    env.rpc.fail["instance_os_add"] = "create script failed"
    with pytest.raises(errors.OpExecError, match="Could not install OS for instance"):
        run_lu(env, opcodes.OpInstanceReinstall(instance_name=INST1))
    assert len(env.rpc.calls_of("blockdev_shutdown")) == 2
