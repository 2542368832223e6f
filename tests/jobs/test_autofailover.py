"""Automatic failover: opt-in, only after fencing, never racing a manual move."""

from __future__ import annotations

import asyncio
from typing import Any

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib.base import MasterContext
from corral.config import FileConfigStore
from corral.jobs.autofailover import DEAD_AFTER, MAX_FENCE_ATTEMPTS, MIN_ROUNDS, fenced
from corral.jobs.watcher import Watcher
from corral.paths import Paths
from corral.storage.base import SyncStatus
from tests.jobs.fakes import FakeRpc, make_instance, sample_config

DEAD = "node2.example.com"


class Harness:
    """A watcher over node1 (master), node2 (dead), node3, with two instances
    whose primary is node2: a DRBD one (secondary node3) and a diskless one."""

    def __init__(self, tmp_path: Any, *, auto: bool = True, oob: str = "/usr/bin/fence") -> None:
        data = sample_config()
        data.cluster.auto_failover = auto
        if oob:
            data.cluster.ndparams["oob_program"] = oob
        for inst in (
            make_instance("db.example.com", "i-db", "n2", "n3", admin_state=C.ADMINST_UP),
            make_instance("web.example.com", "i-web", "n2", admin_state=C.ADMINST_UP),
            make_instance("off.example.com", "i-off", "n2", "n3"),
        ):
            data.instances[inst.uuid] = inst
        self.cfg = FileConfigStore.create(str(tmp_path / "config.data"), data)
        self.rpc = FakeRpc()
        self.rpc.unreachable.add(DEAD)
        self.rpc.responders["instance_list"] = lambda node, _hvs: (
            ["db.example.com", "web.example.com"] if node == DEAD else []
        )
        self.rpc.responders["blockdev_getmirrorstatus"] = lambda node, disks, _ctx: [
            SyncStatus(dev_path="/x") for _ in disks
        ]
        self.jobs: list[list[opcodes.OpCode]] = []
        self.done: set[int] = set()
        self.results: dict[int, Any] = {}
        self.drained = False
        self.now = 0.0
        ctx = MasterContext(cfg=self.cfg, rpc=self.rpc, paths=Paths.under(tmp_path))  # type: ignore[arg-type]
        self.watcher = Watcher(
            ctx, self.submit, lambda job: job in self.done, job_result=self.results.get
        )
        assert self.watcher.auto_failover is not None
        self.watcher.auto_failover.clock = lambda: self.now

    async def submit(self, ops: list[opcodes.OpCode]) -> int:
        if self.drained:
            raise errors.JobQueueDrainError("Job queue is drained, refusing job")
        self.jobs.append(ops)
        return len(self.jobs)

    def round(self, seconds: float = 30.0) -> list[list[opcodes.OpCode]]:
        """One watcher round, `seconds` after the previous one."""
        before = len(self.jobs)
        asyncio.run(self.watcher.run_once())
        self.now += seconds
        return self.jobs[before:]

    def until_dead(self) -> None:
        """Rounds from now until the node has been silent just short of the limit."""
        start = self.now
        while self.now - start < DEAD_AFTER:
            assert self.round() == []  # a reboot-long absence is not a death

    def finish(self, job: int, powered_off: bool) -> None:
        status = C.RS_NORMAL if powered_off else C.RS_NODATA
        self.done.add(job)
        self.results[job] = [[[C.RS_NORMAL, DEAD], [status, None]]]


def _kinds(jobs: list[list[opcodes.OpCode]]) -> list[str]:
    return [type(ops[0]).__name__ for ops in jobs]


def test_fences_then_offlines_and_fails_over_to_the_named_secondary(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.until_dead()
    (fence,) = h.round()
    assert isinstance(fence[0], opcodes.OpOobCommand)
    assert (fence[0].node_names, fence[0].command, fence[0].ignore_status) == (
        [DEAD],
        C.OOB_POWER_OFF,
        True,
    )
    assert h.round() == []  # fence job still running: nothing else
    h.finish(1, powered_off=True)
    jobs = h.round()
    assert _kinds(jobs) == ["OpNodeSetParams", "OpInstanceFailover"]
    offline, failover = jobs[0][0], jobs[1][0]
    assert isinstance(offline, opcodes.OpNodeSetParams) and offline.offline and offline.force
    assert isinstance(failover, opcodes.OpInstanceFailover)
    # only the DRBD instance marked up moves; the target is pinned to its secondary
    assert (failover.instance_name, failover.ignore_consistency, failover.target_node) == (
        "db.example.com",
        True,
        "node3.example.com",
    )
    # while that job runs the watcher does not also try to restart the instance
    assert all(_kinds([j]) != ["OpInstanceStartup"] for j in h.round())


def test_the_delay_is_time_and_rounds(tmp_path: Any) -> None:
    fast = Harness(tmp_path / "a")
    for _ in range(MIN_ROUNDS - 1):  # rounds every 10 minutes: still a few needed
        assert fast.round(seconds=600) == []
    assert _kinds(fast.round()) == ["OpOobCommand"]
    slow = Harness(tmp_path / "b")
    for _ in range(int(DEAD_AFTER)):  # rounds every second: the time decides
        if slow.now >= DEAD_AFTER:
            break
        assert slow.round(seconds=1) == []
    assert _kinds(slow.round()) == ["OpOobCommand"]


def test_an_instance_with_an_unfinished_job_still_fails_over(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.until_dead()
    h.round()
    h.finish(1, powered_off=True)
    h.watcher._pending["i-db"] = 99  # e.g. a restart the watcher submitted earlier
    jobs = h.round()
    assert _kinds(jobs) == ["OpNodeSetParams", "OpInstanceFailover"]


def test_nothing_happens_without_opt_in_or_without_a_fence(tmp_path: Any, caplog: Any) -> None:
    off = Harness(tmp_path / "a", auto=False)
    unfenceable = Harness(tmp_path / "b", oob="")
    for _ in range(int(DEAD_AFTER / 30) + 5):
        assert off.round() == []
        assert unfenceable.round() == []
    warnings = [r for r in caplog.records if "no oob_program" in r.getMessage()]
    assert len(warnings) == 1  # said once, not every round


def test_a_failed_fence_moves_nothing_and_is_retried_a_few_times(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.until_dead()
    fences = 0
    for _ in range(4 * MAX_FENCE_ATTEMPTS):
        for ops in h.round():
            assert isinstance(ops[0], opcodes.OpOobCommand)
            fences += 1
            h.finish(len(h.jobs), powered_off=False)
    assert fences == MAX_FENCE_ATTEMPTS


def test_a_drained_queue_does_not_use_up_the_attempts(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.until_dead()
    h.drained = True
    for _ in range(MAX_FENCE_ATTEMPTS + 2):
        assert h.round() == []  # refused jobs: logged, not counted, no traceback
    h.drained = False
    assert _kinds(h.round()) == ["OpOobCommand"]
    h.finish(len(h.jobs), powered_off=True)
    h.drained = True
    assert h.round() == []  # fenced, but the failover cannot be queued yet
    h.drained = False
    assert _kinds(h.round()) == ["OpNodeSetParams", "OpInstanceFailover"]


def test_a_paused_watcher_does_nothing(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.watcher.paused = lambda: True
    for _ in range(int(DEAD_AFTER / 30) + 5):
        assert h.round() == []


def test_an_old_fence_never_counts_for_a_new_outage(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.until_dead()
    h.round()
    h.finish(1, powered_off=True)
    # before the failover round the feature is turned off; the node answers for a
    # while, goes silent again, and only then the feature is turned back on
    h.cfg.cluster.auto_failover = False
    h.rpc.unreachable.discard(DEAD)
    h.round()
    h.rpc.unreachable.add(DEAD)
    h.round()
    h.cfg.cluster.auto_failover = True
    h.until_dead()
    assert _kinds(h.round()) == ["OpOobCommand"]  # a new fence, not a failover


def test_a_node_that_answers_again_starts_from_zero(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    for _ in range(MIN_ROUNDS + 2):
        h.round(seconds=DEAD_AFTER / (MIN_ROUNDS + 3))
    h.rpc.unreachable.discard(DEAD)
    h.round()
    h.rpc.unreachable.add(DEAD)
    h.until_dead()
    assert _kinds(h.round()) == ["OpOobCommand"]


def test_the_master_and_nodes_without_movable_instances_are_not_fenced(tmp_path: Any) -> None:
    h = Harness(tmp_path)
    h.rpc.unreachable.add("node3.example.com")  # the DRBD instance's secondary is dead too
    h.rpc.unreachable.add("node1.example.com")  # the master (cannot fence itself)
    for _ in range(int(DEAD_AFTER / 30) + 5):
        assert h.round() == []


def test_fenced_reads_the_oob_result() -> None:
    ok = [[[C.RS_NORMAL, "a"], [C.RS_NORMAL, None]], [[C.RS_NORMAL, "b"], [C.RS_NODATA, None]]]
    assert fenced(ok, "a") and not fenced(ok, "b") and not fenced(ok, "c")
    assert not fenced(None, "a") and not fenced([["junk"]], "a")
