"""LUInstanceCreate on fake nodes: the happy paths, every prerequisite error,
and the rollback of a create that fails half way (no disk, config entry or
reservation left behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    return instance_env(tmp_path)


def _disks_everywhere(rpc: InstanceRpc) -> dict[str, dict[str, int]]:
    return {name: dict(st.disks) for name, st in rpc.fake.items() if st.disks}


def test_file_instance_created_and_started(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    nodes = run_op(env, create_op())
    assert nodes == [f"node1.{DOMAIN}"]
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None
    assert inst.admin_state == C.ADMINST_UP
    assert inst.disk_template == C.DT_FILE
    assert [d.size for d in inst.disks] == [1024]
    assert inst.disks[0].logical_id[1].endswith(".file.disk0")
    assert inst.beparams == {C.BE_MINMEM: 128, C.BE_MAXMEM: 256}
    assert rpc.node("node1").running == {"vm1": 256}
    assert list(rpc.node("node1").disks.values()) == [1024]
    assert [n for n, _ in rpc.calls_of("instance_os_add")] == [f"node1.{DOMAIN}"]
    assert "* creating instance disks..." in env.feedback
    assert "adding instance vm1 to cluster config" in env.feedback
    assert "* running the instance OS create scripts..." in env.feedback
    assert len(inst.nics) == 1 and len(inst.nics[0].mac.split(":")) == 6
    assert inst.nics[0].nicparams == {}  # cluster defaults are not copied in


def test_drbd_instance_on_two_nodes_not_started(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    op = create_op(
        disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}", start=False, disks=[{"size": 2048}]
    )
    assert run_op(env, op) == [f"node1.{DOMAIN}", f"node2.{DOMAIN}"]
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None and inst.admin_state == C.ADMINST_DOWN
    assert not inst.disks_active
    disk = inst.disks[0]
    assert disk.dev_type == C.LD_DRBD8 and len(disk.children) == 2
    a, b, port, minor_a, minor_b, secret = disk.logical_id
    assert (a, b) == ("uuid-node1", "uuid-node2") and port > 11000 and len(secret) > 0
    assert minor_a == 0 and minor_b == 0
    # created on the secondary first, then on the primary
    creates = [n for n, _ in rpc.calls_of("blockdev_create")]
    assert creates == [f"node2.{DOMAIN}", f"node1.{DOMAIN}"]
    assert rpc.node("node1").running == {}
    assert any("Waiting for instance vm1 to sync disks" in line for line in env.feedback)


def test_diskless_no_install(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    run_op(env, create_op(disk_template=C.DT_DISKLESS, no_install=True, start=False))
    assert rpc.calls_of("instance_os_add") == []
    assert rpc.calls_of("blockdev_create") == []
    assert env.cfg.get_instance_by_name("vm1") is not None


def _fails(env: Env, op: object, exc: type[errors.GenericError], message: str) -> None:
    before = env.cfg.to_json()
    with pytest.raises(exc) as info:
        run_op(env, op)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert env.cfg.to_json() == before


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        (
            {"pnode": "nosuch"},
            errors.OpPrereqError,
            "Node 'nosuch' not known",
        ),
        (
            {"disk_template": C.DT_PLAIN},
            errors.OpPrereqError,
            "Disk template 'plain' is not enabled in cluster."
            " Enabled disk templates are: drbd,file,diskless",
        ),
        (
            {"os_type": "nosuchos"},
            errors.OpExecError,
            f"OS Parameters validation failed on node node1.{DOMAIN}:"
            " Directory for OS nosuchos not found in search path",
        ),
        (
            {"os_type": "image+nosuch"},
            errors.OpExecError,
            f"OS Parameters validation failed on node node1.{DOMAIN}: Unsupported OS variant",
        ),
        (
            {"beparams": {C.BE_MAXMEM: "abc"}},
            errors.OpPrereqError,
            "Invalid value 'abc' for parameter 'maxmem': Invalid format",
        ),
        (
            {"beparams": {C.BE_MINMEM: 512, C.BE_MAXMEM: 256}},
            errors.OpPrereqError,
            "Minimum memory (512) is bigger than maximum memory (256)",
        ),
        (
            {"beparams": {"nosuch": 1}},
            errors.OpPrereqError,
            "Unknown backend parameter 'nosuch'",
        ),
        (
            {"hvparams": {"nosuch": 1}},
            errors.OpPrereqError,
            "Hypervisor parameter validation failed: Unknown hypervisor parameter(s): nosuch",
        ),
        (
            {"beparams": {C.BE_MAXMEM: 4096}},
            errors.OpPrereqError,
            f"Not enough memory on node node1.{DOMAIN} for starting instance vm1:"
            " needed 4096 MiB, available 1920 MiB",
        ),
        (
            {"disks": [{"size": 20480}]},
            errors.OpPrereqError,
            f"Not enough disk space on target node node1.{DOMAIN} vg ganeti:"
            " required 20480 MiB, available 8192 MiB",
        ),
        (
            {"nics": [{"link": "nosuchbr"}]},
            errors.OpPrereqError,
            f"Error checking bridges on node 'node1.{DOMAIN}': Missing bridges nosuchbr",
        ),
        (
            {"disk_template": C.DT_DRBD8},
            errors.OpPrereqError,
            "The networked disk templates need a mirror node",
        ),
        (
            {"disk_template": C.DT_DRBD8, "snode": f"node1.{DOMAIN}"},
            errors.OpPrereqError,
            "The secondary node cannot be the primary node",
        ),
        (
            {"disks": []},
            errors.OpPrereqError,
            "No disks given for a non-diskless instance",
        ),
        (
            {"disks": [{"size": -1}]},
            errors.OpPrereqError,
            "Invalid disk size -1 for disk 0",
        ),
    ],
)
def test_prerequisite_errors_change_nothing(
    env_rpc: tuple[Env, InstanceRpc], kw: dict[str, object], exc: type, message: str
) -> None:
    env, rpc = env_rpc
    _fails(env, create_op(**kw), exc, message)
    assert _disks_everywhere(rpc) == {}
    assert rpc.calls_of("blockdev_create") == []


def test_out_of_memory_only_matters_when_starting(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    run_op(env, create_op(beparams={C.BE_MAXMEM: 4096, C.BE_MINMEM: 128}, start=False))
    assert env.cfg.get_instance_by_name("vm1") is not None


def test_drbd_space_counts_metadata_on_both_nodes(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.node("node2").storage_size = 1024 + 100  # enough for data, not for the 128M meta
    _fails(
        env,
        create_op(disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}", disks=[{"size": 1024}]),
        errors.OpPrereqError,
        f"Not enough disk space on target node node2.{DOMAIN} vg ganeti:"
        " required 1152 MiB, available 1124 MiB",
    )


def test_duplicate_name(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    run_op(env, create_op(start=False))
    _fails(env, create_op(), errors.OpPrereqError, "Instance 'vm1' is already in the cluster")
    assert len(env.cfg.all_instances()) == 1


def test_unreachable_node(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.dead.add(f"node2.{DOMAIN}")
    with pytest.raises(errors.OpPrereqError) as info:
        run_op(
            env,
            create_op(disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}", no_install=True),
        )
    assert str(info.value).startswith(
        f"Cannot get current information from node node2.{DOMAIN}: Node is unreachable"
    )
    assert env.cfg.all_instances() == []


def test_offline_node_refused(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    env.cfg.nodes["uuid-node2"].offline = True
    _fails(
        env,
        create_op(pnode=f"node2.{DOMAIN}"),
        errors.OpPrereqError,
        f"Can't use offline node node2.{DOMAIN}",
    )


@pytest.mark.parametrize(
    ("template", "snode"), [(C.DT_FILE, None), (C.DT_DRBD8, f"node2.{DOMAIN}")]
)
def test_os_create_failure_rolls_back(
    env_rpc: tuple[Env, InstanceRpc], template: str, snode: str | None
) -> None:
    env, rpc = env_rpc
    with pytest.raises(errors.OpExecError) as info:
        run_op(env, create_op(disk_template=template, snode=snode, os_type="failos+default"))
    assert str(info.value).startswith(
        f"Could not add os for instance vm1 on node node1.{DOMAIN}: OS create script failed"
    )
    assert _disks_everywhere(rpc) == {}
    assert env.cfg.get_instance_by_name("vm1") is None
    assert env.cfg.all_instances() == []
    assert rpc.node("node1").running == {}
    assert "adding instance vm1 to cluster config" in env.feedback  # it got that far
    # the DRBD minors went back to the pool with the job: a new create reuses them
    run_op(env, create_op(disk_template=template, snode=snode))
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None
    if template == C.DT_DRBD8:
        assert inst.disks[0].logical_id[3:5] == [0, 0]


def test_disk_create_failure_removes_the_disks_made(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    calls = {"n": 0}

    def flaky(node: str, disk: object, ctx: object, primary: bool, info: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise errors.BlockDeviceError("disk full")
        rpc._h_blockdev_create(node, disk, ctx, primary, info)  # type: ignore[arg-type]

    rpc.handlers["blockdev_create"] = flaky
    with pytest.raises(errors.OpExecError) as info:
        run_op(env, create_op(disk_template=C.DT_DRBD8, snode=f"node2.{DOMAIN}"))
    assert str(info.value) == (
        f"Can't create block device disk/0 on node node1.{DOMAIN} for instance vm1: disk full"
    )
    assert _disks_everywhere(rpc) == {}
    assert env.cfg.all_instances() == []


def test_start_failure_rolls_back(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    rpc.fail["instance_start"] = "qemu exploded"
    with pytest.raises(errors.OpExecError, match="Could not start instance: qemu exploded"):
        run_op(env, create_op())
    assert _disks_everywhere(rpc) == {}
    assert env.cfg.all_instances() == []


def test_allocator_required_without_node(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    env.cfg.cluster.default_iallocator = ""
    _fails(
        env,
        create_op(pnode=None),
        errors.OpPrereqError,
        "No iallocator or primary node given and no cluster-wide default"
        " iallocator found; please specify either an iallocator or a node,"
        " or set a cluster-wide default iallocator",
    )
