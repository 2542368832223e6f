"""replace-disks, reinstall and evacuate on in-process nodes with real storage.

Three nodes (`local_nodes.LocalCluster`): the real node backend, file volumes
and the filedrbd TEST backend replicating over 127.0.0.N, so every resync
really copies data. Instances are created by LUInstanceCreate itself. Data
checks compare sha256 of the data volume files on the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.storage import drbd_filesync_state as fstate

from .local_nodes import LocalCluster
from .test_cluster_fakes import DOMAIN, Env, run_lu_async

INST = f"inst1.{DOMAIN}"
N1, N2, N3 = (f"node{i}.{DOMAIN}" for i in (1, 2, 3))
MARKER = b"corral-replace-disks-marker" * 4096  # ~100 KiB of data


def _kill_agents(lc: LocalCluster) -> None:
    for paths in lc.paths.values():
        for pid_file in glob.glob(os.path.join(paths.run_dir, "filedrbd", "*.pid")):
            pid = fstate.agent_running(pid_file)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _agents(lc: LocalCluster) -> int:
    count = 0
    for paths in lc.paths.values():
        for pid_file in glob.glob(os.path.join(paths.run_dir, "filedrbd", "*.pid")):
            count += fstate.agent_running(pid_file) is not None
    return count


@pytest.fixture
def lc(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path)
    for paths in cluster.paths.values():
        os_dir = Path(paths.os_search_path[0]) / "marker"
        os_dir.mkdir(parents=True)
        (os_dir / "ganeti_api_version").write_text("20\n")
        (os_dir / "parameters.list").write_text("")
        for script in ("import", "export", "rename", "verify"):
            (os_dir / script).write_text("#!/bin/sh\nexit 0\n")
        (os_dir / "create").write_text(
            '#!/bin/sh\nprintf "installed reinstall=%s" "${INSTANCE_REINSTALL:-0}"'
            ' | dd of="$DISK_0_PATH" bs=1 seek=4096 conv=notrunc status=none\n'
        )
        for entry in os_dir.iterdir():
            entry.chmod(0o755)
    try:
        yield cluster
    finally:
        _kill_agents(cluster)


def _env(lc: LocalCluster) -> Env:
    return Env(cfg=lc.cfg, rpc=lc.rpc, paths=lc.main_paths)  # type: ignore[arg-type]


def run(lc: LocalCluster, op: opcodes.OpCode, env: Env | None = None) -> Any:
    return asyncio.run(run_lu_async(env or _env(lc), op))


def create(lc: LocalCluster, snode: str = N2) -> None:
    run(
        lc,
        opcodes.OpInstanceCreate(
            instance_name=INST,
            disk_template=C.DT_DRBD8,
            disks=[{"size": 32}],
            nics=[{"mode": C.NIC_MODE_ROUTED, "link": ""}],
            os_type="marker",
            pnode=N1,
            snode=snode,
            start=False,
            name_check=False,
            ip_check=False,
        ),
    )


def write_marker(lc: LocalCluster, node: str, offset: int = 1 << 20) -> None:
    with open(lc.data_file(INST, node), "r+b") as f:
        f.seek(offset)
        f.write(MARKER)


def test_new_secondary_moves_the_mirror(lc: LocalCluster) -> None:
    create(lc)
    inst = lc.cfg.get_instance_by_name(INST)
    assert inst is not None
    old_lid = list(inst.disks[0].logical_id)
    old_n2 = lc.data_file(INST, N2)
    write_marker(lc, N1)
    env = _env(lc)
    run(lc, opcodes.OpInstanceReplaceDisks(instance_name=INST, mode=C.REPLACE_DISK_CHG,
                                           remote_node="node3"), env)  # fmt: skip
    inst = lc.cfg.get_instance_by_name(INST)
    assert inst is not None
    lid = inst.disks[0].logical_id
    assert lid[:2] == [lc.node(1), lc.node(3)]
    assert lid[2] != old_lid[2]  # a new port
    assert lid[3] == old_lid[3] and lid[5] == old_lid[5]
    assert inst.secondary_nodes == [lc.node(3)]
    assert not old_n2.exists()  # old secondary's volumes removed
    assert lc.sha(lc.data_file(INST, N3)) == lc.sha(lc.data_file(INST, N1))
    assert MARKER in lc.data_file(INST, N3).read_bytes()
    assert not inst.disks_active and _agents(lc) == 0
    steps = [line for line in env.feedback if line.startswith("STEP")]
    assert steps == [
        "STEP 1/6 Check device existence",
        "STEP 2/6 Check peer consistency",
        "STEP 3/6 Allocate new storage",
        "STEP 4/6 Changing drbd configuration",
        "STEP 5/6 Sync devices",
        "STEP 6/6 Removing old storage",
    ]
    assert f" - INFO: Checking disk/0 on {N1}" in env.feedback
    assert " - INFO: Updating instance configuration" in env.feedback


def test_new_secondary_failure_leaves_everything(lc: LocalCluster) -> None:
    create(lc)
    inst = lc.cfg.get_instance_by_name(INST)
    assert inst is not None
    before = inst.copy()
    sha_n2 = lc.sha(lc.data_file(INST, N2))
    lc.rpc.fail[("drbd_attach_net", N1)] = "refused by test"
    with pytest.raises(errors.OpExecError, match="refused by test"):
        run(lc, opcodes.OpInstanceReplaceDisks(instance_name=INST, mode=C.REPLACE_DISK_CHG,
                                               remote_node="node3"))  # fmt: skip
    inst = lc.cfg.get_instance_by_name(INST)
    assert inst is not None
    assert inst.disks[0].logical_id == before.disks[0].logical_id
    assert lc.sha(lc.data_file(INST, N2)) == sha_n2
    vg_dir = Path(lc.paths[N3].volumes_dir) / "xenvg"
    assert not vg_dir.exists() or not list(vg_dir.iterdir())  # nothing left on node3
    assert not inst.disks_active and _agents(lc) == 0


@pytest.mark.parametrize("mode", [C.REPLACE_DISK_SEC, C.REPLACE_DISK_PRI])
def test_same_node_replace_resyncs_from_the_other_side(lc: LocalCluster, mode: str) -> None:
    create(lc)
    if mode == C.REPLACE_DISK_SEC:
        write_marker(lc, N1)  # the secondary must get the primary's data
        target, source = N2, N1
    else:
        write_marker(lc, N2)  # the primary must get the secondary's data
        target, source = N1, N2
    old_file = lc.data_file(INST, target)
    old_ino = old_file.stat().st_ino
    env = _env(lc)
    run(lc, opcodes.OpInstanceReplaceDisks(instance_name=INST, mode=mode), env)
    new_file = lc.data_file(INST, target)
    assert new_file.stat().st_ino != old_ino  # really a new volume
    assert lc.sha(new_file) == lc.sha(lc.data_file(INST, source))
    assert MARKER in new_file.read_bytes()
    leftovers = [p.name for p in new_file.parent.iterdir() if "_replaced-" in p.name]
    assert leftovers == []
    assert _agents(lc) == 0
    assert f" - INFO: Checking disk/0 consistency on node {source}" in env.feedback
    assert f" - INFO: Adding new mirror component on {target}" in env.feedback


def test_auto_repairs_the_lost_secondary(lc: LocalCluster) -> None:
    create(lc)
    write_marker(lc, N1)
    lc.data_file(INST, N2).unlink()
    env = _env(lc)
    run(lc, opcodes.OpInstanceReplaceDisks(instance_name=INST, mode=C.REPLACE_DISK_AUTO), env)
    assert lc.sha(lc.data_file(INST, N2)) == lc.sha(lc.data_file(INST, N1))
    assert f"Replacing disk(s) 0 for instance '{INST}'" in env.feedback
    # healthy now: nothing to do
    env = _env(lc)
    run(lc, opcodes.OpInstanceReplaceDisks(instance_name=INST, mode=C.REPLACE_DISK_AUTO), env)
    assert f"No disks need replacement for instance '{INST}'" in env.feedback


def test_evacuate_secondary_node_then_run_the_jobs(lc: LocalCluster) -> None:
    create(lc)
    env = _env(lc)
    result = run(
        lc,
        opcodes.OpNodeEvacuate(node_name="node2", mode=C.NODE_EVAC_SEC, remote_node="node3"),
        env,
    )
    assert result == {"jobs": [[True, 23]]}
    (job,) = env.submitted
    (op,) = job
    assert isinstance(op, opcodes.OpInstanceReplaceDisks)
    assert (op.mode, op.remote_node) == (C.REPLACE_DISK_CHG, N3)
    run(lc, op)
    inst = lc.cfg.get_instance_by_name(INST)
    assert inst is not None and inst.secondary_nodes == [lc.node(3)]
    assert lc.cfg.node_instances(lc.node(2)) == ([], [])


def test_reinstall_runs_create_with_reinstall_flag(lc: LocalCluster) -> None:
    create(lc)
    env = _env(lc)
    run(lc, opcodes.OpInstanceReinstall(instance_name=INST), env)
    data = lc.data_file(INST, N1).read_bytes()
    assert data[4096:4096 + 21] == b"installed reinstall=1"  # fmt: skip
    assert "Running the instance OS create scripts..." in env.feedback
    assert _agents(lc) == 0
    # the secondary got the new content before the disks went down
    assert lc.sha(lc.data_file(INST, N2)) == lc.sha(lc.data_file(INST, N1))
