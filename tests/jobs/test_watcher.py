"""The watcher restarts instances that should run and repairs degraded mirrors."""

from __future__ import annotations

import asyncio
from typing import Any

from corral import constants as C
from corral import opcodes
from corral.cmdlib.base import MasterContext
from corral.config import FileConfigStore
from corral.jobs.watcher import MAX_RESTARTS, Watcher
from corral.paths import Paths
from corral.storage.base import SyncStatus
from tests.jobs.fakes import FakeRpc, make_instance, sample_config


def _setup(tmp_path: Any) -> tuple[FakeRpc, Watcher, list[list[opcodes.OpCode]], set[int]]:
    data = sample_config()
    for inst in (
        make_instance("up.example.com", "i-up", "n1", admin_state=C.ADMINST_UP),
        make_instance("down.example.com", "i-down", "n1"),
        make_instance(
            "mirror.example.com",
            "i-m",
            "n1",
            "n2",
            admin_state=C.ADMINST_UP,
        ),
        make_instance("away.example.com", "i-away", "n3", admin_state=C.ADMINST_UP),
    ):
        data.instances[inst.uuid] = inst
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), data)
    rpc = FakeRpc()
    rpc.unreachable.add("node3.example.com")
    rpc.responders["instance_list"] = lambda node, _hvs: (
        ["mirror.example.com"] if node == "node1.example.com" else []
    )
    rpc.responders["blockdev_getmirrorstatus"] = lambda node, disks, _ctx: [
        SyncStatus(dev_path="/x", is_degraded=True) for _ in disks
    ]
    submitted: list[list[opcodes.OpCode]] = []
    done: set[int] = set()

    async def submit(ops: list[opcodes.OpCode]) -> int:
        submitted.append(ops)
        return len(submitted)

    ctx = MasterContext(cfg=cfg, rpc=rpc, paths=Paths.under(tmp_path))  # type: ignore[arg-type]
    return rpc, Watcher(ctx, submit, lambda job: job in done), submitted, done


def test_restarts_down_instances_and_repairs_mirrors(tmp_path: Any) -> None:
    _rpc, watcher, submitted, done = _setup(tmp_path)
    asyncio.run(watcher.run_once())
    kinds = sorted(
        (type(ops[0]).__name__, str(ops[0].to_dict()["instance_name"])) for ops in submitted
    )
    # the stopped instance is left alone, the one on the dead node too
    assert kinds == [
        ("OpInstanceActivateDisks", "mirror.example.com"),
        ("OpInstanceStartup", "up.example.com"),
    ]
    # unfinished jobs are not submitted again
    asyncio.run(watcher.run_once())
    assert len(submitted) == 2
    done.update({1, 2})
    asyncio.run(watcher.run_once())
    assert len(submitted) == 4


def test_gives_up_after_repeated_failed_restarts(tmp_path: Any) -> None:
    rpc, watcher, submitted, done = _setup(tmp_path)
    rpc.responders["blockdev_getmirrorstatus"] = lambda node, disks, _ctx: [
        SyncStatus(dev_path="/x") for _ in disks
    ]
    for _ in range(MAX_RESTARTS + 3):
        asyncio.run(watcher.run_once())
        done.update(range(1, len(submitted) + 1))
    starts = [ops for ops in submitted if isinstance(ops[0], opcodes.OpInstanceStartup)]
    assert len(starts) == MAX_RESTARTS


def test_refreshes_copies_of_candidates_that_came_back(tmp_path: Any) -> None:
    _rpc, watcher, _submitted, _done = _setup(tmp_path)
    cfg = watcher.ctx.cfg
    cfg._stale.update({"n2": "was down", "n3": "still down"})  # as pushes left them
    resynced: list[set[str]] = []

    async def resync(names: set[str]) -> None:
        resynced.append(names)

    watcher.resync = resync
    asyncio.run(watcher.run_once())
    assert resynced == [{"node2.example.com"}]  # node3 does not answer yet
