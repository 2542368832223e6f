"""Executor: opcode life cycle, errors, rollback, hooks, cancel, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib import debug  # noqa: F401  (registers LUTestDelay)
from corral.cmdlib.base import (
    HTYPE_INSTANCE,
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LOCKS_REPLACE,
    LogicalUnit,
    NoHooksLU,
    result_with_jobs,
)
from corral.cmdlib.registry import lu_class
from corral.config import FileConfigStore
from corral.jobs.executor import Executor
from corral.jobs.model import QueuedJob
from corral.jobs.queue import JobQueue
from corral.paths import Paths
from tests.jobs.fakes import FakeRpc, make_instance, sample_config

EVENTS: list[str] = []


class LUHold(NoHooksLU):
    """Locks one instance (and its nodes), records start/end around a sleep."""

    REQ_BGL = False

    def expand_names(self) -> None:
        assert isinstance(self.op, opcodes.OpInstanceStartup)
        self.uuid, self.name = self.expand_and_lock_instance(self.op.instance_name)
        self.needed_locks[LEVEL_NODE] = []
        self.recalculate_locks[LEVEL_NODE] = LOCKS_REPLACE

    def declare_locks(self, level: int) -> None:
        if level == LEVEL_NODE:
            self.lock_instances_nodes()

    async def exec(self) -> Any:
        EVENTS.append(f"start {self.name}")
        await self.ctx.sleep(0.05)
        EVENTS.append(f"end {self.name}")
        return {"nodes": self.owned_locks(LEVEL_NODE), "inst": self.owned_locks(LEVEL_INSTANCE)}


class LUFail(NoHooksLU):
    """Makes things, registers undo steps, then fails."""

    async def exec(self) -> Any:
        self.feedback("* creating A")
        self.ctx.on_rollback(lambda: EVENTS.append("undo A"))
        self.cfg.generate_mac(self.ctx.job_id)
        self.log_info("created A")

        async def undo_b() -> None:
            EVENTS.append("undo B")

        self.ctx.on_rollback(undo_b)

        def bad_undo() -> None:
            raise RuntimeError("cannot undo C")

        self.ctx.on_rollback(bad_undo)
        raise errors.OpExecError("Could not create B")


class LUPrereq(NoHooksLU):
    async def check_prereq(self) -> None:
        raise errors.OpPrereqError("Instance 'x' is not running", errors.ECODE_STATE)

    async def exec(self) -> Any:
        raise AssertionError("exec must not run")


class LUSpawn(NoHooksLU):
    async def exec(self) -> Any:
        ids = await self.ctx.submit_jobs([[opcodes.OpTestDelay()], [opcodes.OpTestDelay()]])
        return result_with_jobs(ids, other=1)


class LUHooked(LogicalUnit):
    HPATH = "instance-reboot"
    HTYPE = HTYPE_INSTANCE

    def build_hooks_env(self) -> dict[str, Any]:
        return {"INSTANCE_NAME": "inst1", "INSTANCE_TAGS": ["a", "b"]}

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        return ["n1"], ["n1", "n2"]

    async def exec(self) -> Any:
        EVENTS.append("exec")
        return "done"


class LUCancelAware(NoHooksLU):
    REQ_BGL = False

    async def exec(self) -> Any:
        EVENTS.append("long start")
        self.ctx.on_rollback(lambda: EVENTS.append("long undo"))
        await self.ctx.sleep(30)
        return None


LUS: dict[type[opcodes.OpCode], type[LogicalUnit]] = {
    opcodes.OpInstanceStartup: LUHold,
    opcodes.OpInstanceRemove: LUFail,
    opcodes.OpInstanceShutdown: LUPrereq,
    opcodes.OpClusterVerify: LUSpawn,
    opcodes.OpInstanceReboot: LUHooked,
    opcodes.OpInstanceConsole: LUCancelAware,
}


def lookup(op: opcodes.OpCode) -> type[LogicalUnit]:
    return LUS.get(type(op)) or lu_class(op)


class Env:
    def __init__(self, cfg: FileConfigStore, queue: JobQueue, rpc: FakeRpc, ex: Executor) -> None:
        self.cfg, self.queue, self.rpc, self.ex = cfg, queue, rpc, ex

    def job(self, job_id: int) -> QueuedJob:
        job = self.queue.get(job_id)
        assert job is not None
        return job

    async def wait(self, job_id: int, timeout: float = 5) -> QueuedJob:
        async def loop() -> QueuedJob:
            while not self.job(job_id).finalized:
                await self.queue.wait_for_change(job_id, ["status"], None, None, 1)
                await asyncio.sleep(0.005)
            return self.job(job_id)

        return await asyncio.wait_for(loop(), timeout)

    async def status_becomes(self, job_id: int, status: str) -> None:
        for _ in range(500):
            if self.job(job_id).calc_status() == status:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"job {job_id} never reached {status}")


@asynccontextmanager
async def env(tmp_path: Any, max_running: int | None = None) -> AsyncIterator[Env]:
    EVENTS.clear()
    data = sample_config()
    data.cluster.highest_used_port = 12000
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), data)
    for idx, (pnode, snode) in enumerate([("n1", "n2"), ("n2", "n3"), ("n3", "n1")], 1):
        await cfg.add_instance(make_instance(f"inst{idx}.example.com", f"i{idx}", pnode, snode))
    queue = JobQueue(str(tmp_path / "queue.sqlite"))
    queue.open()
    rpc = FakeRpc()
    ex = Executor(
        queue=queue,
        cfg=cfg,
        rpc=rpc,  # type: ignore[arg-type]
        paths=Paths.under(tmp_path),
        lu_lookup=lookup,
        max_running=max_running,
    )
    try:
        yield Env(cfg, queue, rpc, ex)
    finally:
        await ex.shutdown(1)
        queue.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_successful_job_records_timestamps_and_result(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="inst1")])
            job = await e.wait(jid)
            assert job.calc_status() == C.JOB_STATUS_SUCCESS
            op = job.ops[0]
            assert op.result == {"nodes": ["n1", "n2"], "inst": ["i1"]}
            assert op.start_timestamp <= op.exec_timestamp <= op.end_timestamp  # type: ignore[operator]
            assert job.received_timestamp <= job.start_timestamp <= job.end_timestamp  # type: ignore[operator]
            # locks are gone
            assert e.ex.locks.info() == []

    run(scenario())


def test_failure_rolls_back_in_reverse_and_fails_later_opcodes(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            macs_before = set(e.cfg._macs.reserved())
            jid = await e.ex.submit(
                [opcodes.OpInstanceRemove(instance_name="x"), opcodes.OpTestDelay()]
            )
            job = await e.wait(jid)
            assert job.calc_status() == C.JOB_STATUS_ERROR
            assert job.field("opstatus") == ["error", "error"]
            assert job.ops[0].result == ["OpExecError", ["Could not create B"]]
            assert job.ops[1].result == ["OpExecError", ["Preceding opcode failed"]]
            assert EVENTS == ["undo B", "undo A"]
            texts = [entry[3] for entry in job.ops[0].log]
            assert texts == [
                "* creating A",
                " - INFO: created A",
                " - WARNING: Rollback step failed: cannot undo C",
            ]
            assert [entry[0] for entry in job.ops[0].log] == [1, 2, 3]
            # the job's MAC reservation was released
            assert set(e.cfg._macs.reserved()) == macs_before

    run(scenario())


def test_prereq_error_is_encoded_with_its_code(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpInstanceShutdown(instance_name="x")])
            job = await e.wait(jid)
            assert job.ops[0].result == [
                "OpPrereqError",
                ["Instance 'x' is not running", "wrong_state"],
            ]
            assert job.ops[0].exec_timestamp is not None

    run(scenario())


def test_unknown_instance_fails_in_expand_names(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="nope")])
            job = await e.wait(jid)
            assert job.ops[0].result == [
                "OpPrereqError",
                ["Instance 'nope' not known", "unknown_entity"],
            ]

    run(scenario())


def test_same_instance_serialises_different_instances_run_in_parallel(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            loop = asyncio.get_running_loop()
            started = loop.time()
            a = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="inst1")])
            b = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="inst1")])
            await asyncio.gather(e.wait(a), e.wait(b))
            assert EVENTS == [
                "start inst1.example.com",
                "end inst1.example.com",
                "start inst1.example.com",
                "end inst1.example.com",
            ]
            assert loop.time() - started >= 0.1
            EVENTS.clear()
            # lock-free jobs overlap: five 0.1 s delays take far less than 0.5 s
            ids = [await e.ex.submit([opcodes.OpTestDelay(duration=0.1)]) for _ in range(5)]
            started = loop.time()
            await asyncio.gather(*(e.wait(i) for i in ids))
            assert loop.time() - started < 0.45  # ran concurrently, not 5 x 0.1

    run(scenario())


def test_jobs_on_disjoint_instances_overlap(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            await e.cfg.add_instance(make_instance("solo1.example.com", "s1", "n1"))
            await e.cfg.add_instance(make_instance("solo2.example.com", "s2", "n2"))
            a = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="solo1")])
            b = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="solo2")])
            await asyncio.gather(e.wait(a), e.wait(b))
            assert EVENTS[:2] == ["start solo1.example.com", "start solo2.example.com"]

    run(scenario())


def test_max_running_jobs_limits_concurrency(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path, max_running=1) as e:
            a = await e.ex.submit([opcodes.OpTestDelay(duration=0.1)])
            b = await e.ex.submit([opcodes.OpTestDelay(duration=0.0)])
            await asyncio.sleep(0.03)
            assert e.job(a).calc_status() == C.JOB_STATUS_RUNNING
            assert e.job(b).calc_status() == C.JOB_STATUS_QUEUED
            await e.wait(b)
            assert e.job(a).end_timestamp <= e.job(b).start_timestamp  # type: ignore[operator]

    run(scenario())


def test_cancel_queued_waiting_and_running(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path, max_running=3) as e:
            holder = await e.ex.submit([opcodes.OpInstanceConsole(instance_name="x")])
            await e.status_becomes(holder, C.JOB_STATUS_RUNNING)
            # the holder has the BGL shared; an LU with REQ_BGL (exclusive) must wait
            waiting = await e.ex.submit([opcodes.OpInstanceRemove(instance_name="x")])
            await e.status_becomes(waiting, C.JOB_STATUS_WAITING)
            ok, msg = e.ex.cancel(waiting)
            assert (ok, msg) == (True, f"Job {waiting} canceled")
            assert e.job(waiting).calc_status() == C.JOB_STATUS_CANCELED
            # queued: beyond max_running
            fillers = [await e.ex.submit([opcodes.OpTestDelay(duration=5)]) for _ in range(2)]
            queued = await e.ex.submit([opcodes.OpTestDelay()])
            assert e.job(queued).calc_status() == C.JOB_STATUS_QUEUED
            assert e.ex.cancel(queued) == (True, f"Job {queued} canceled")
            assert e.job(queued).field("opstatus") == ["canceled"]
            # running: canceling, then canceled with rollback
            ok, msg = e.ex.cancel(holder)
            assert (ok, msg) == (True, f"Job {holder} will be canceled")
            job = await e.wait(holder)
            assert job.calc_status() == C.JOB_STATUS_CANCELED
            assert job.ops[0].result == ["JobCanceled", ["Job canceled by request"]]
            assert EVENTS == ["long start", "long undo"]
            for jid in fillers:
                e.ex.cancel(jid)
            assert e.ex.cancel(holder) == (False, f"Job {holder} is no longer waiting in the queue")
            assert e.ex.cancel(999) == (False, "Job 999 not found")

    run(scenario())


def test_cancel_stops_at_opcode_boundary(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit(
                [opcodes.OpInstanceStartup(instance_name="inst1"), opcodes.OpTestDelay()]
            )
            await e.status_becomes(jid, C.JOB_STATUS_RUNNING)
            e.ex.cancel(jid)
            assert e.job(jid).calc_status() == C.JOB_STATUS_CANCELING
            job = await e.wait(jid)
            # LUHold's sleep is cancel-aware: the first opcode is canceled
            assert job.field("opstatus") == ["canceled", "canceled"]

    run(scenario())


def test_hooks_run_and_failing_pre_hook_aborts(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            e.rpc.responders["run_hooks"] = lambda node, hpath, phase, env: [("10-ok", 2, "")]
            jid = await e.ex.submit([opcodes.OpInstanceReboot(instance_name="inst1")])
            job = await e.wait(jid)
            assert job.calc_status() == C.JOB_STATUS_SUCCESS
            calls = e.rpc.calls_of("run_hooks")
            assert [(node, args[1]) for node, args in calls] == [
                ("node1.example.com", "pre"),
                ("node1.example.com", "post"),
                ("node2.example.com", "post"),
            ]
            env_pre = calls[0][1][2]
            assert env_pre["GANETI_INSTANCE_NAME"] == "inst1"
            assert env_pre["GANETI_INSTANCE_TAGS"] == "a b"
            assert env_pre["GANETI_OP_CODE"] == "OP_INSTANCE_REBOOT"
            assert env_pre["GANETI_HOOKS_PATH"] == "instance-reboot"
            assert env_pre["GANETI_OBJECT_TYPE"] == "INSTANCE"
            assert env_pre["GANETI_MASTER"] == "node1.example.com"

            EVENTS.clear()
            e.rpc.responders["run_hooks"] = lambda node, hpath, phase, env: [
                ("10-check", 1, "not allowed\n")
            ]
            jid = await e.ex.submit([opcodes.OpInstanceReboot(instance_name="inst1")])
            job = await e.wait(jid)
            assert job.ops[0].result == [
                "HooksAbort",
                ["Hook script(s) failed: node node1.example.com, script 10-check: not allowed"],
            ]
            assert EVENTS == []

            # post hook failures and unreachable nodes are only warnings
            e.rpc.responders["run_hooks"] = lambda node, hpath, phase, env: (
                [("10-check", 1, "bad")] if phase == "post" else []
            )
            e.rpc.unreachable.add("node2.example.com")
            jid = await e.ex.submit([opcodes.OpInstanceReboot(instance_name="inst1")])
            job = await e.wait(jid)
            assert job.calc_status() == C.JOB_STATUS_SUCCESS
            texts = [entry[3] for entry in job.ops[0].log]
            assert (
                " - WARNING: Post hook failed on node node1.example.com, script 10-check: bad"
                in texts
            )
            assert any("Communication failure to node node2.example.com" in t for t in texts)

    run(scenario())


def test_dry_run_stops_before_exec(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpInstanceReboot(instance_name="i", dry_run=True)])
            job = await e.wait(jid)
            assert job.calc_status() == C.JOB_STATUS_SUCCESS
            assert EVENTS == []

    run(scenario())


def test_lu_can_submit_follow_up_jobs(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpClusterVerify()])
            job = await e.wait(jid)
            assert job.ops[0].result == {"jobs": [[True, jid + 1], [True, jid + 2]], "other": 1}
            for child in (jid + 1, jid + 2):
                assert (await e.wait(child)).calc_status() == C.JOB_STATUS_SUCCESS

    run(scenario())


def test_shutdown_marks_running_jobs(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpInstanceConsole(instance_name="x")])
            await e.status_becomes(jid, C.JOB_STATUS_RUNNING)
            await e.ex.shutdown(0.05)
            job = e.job(jid)
            assert job.calc_status() == C.JOB_STATUS_ERROR
            assert job.ops[0].result == [
                "OpExecError",
                ["job was running when the master daemon stopped"],
            ]
            assert EVENTS == ["long start", "long undo"]
            with pytest.raises(errors.JobQueueError):
                await e.ex.submit([opcodes.OpTestDelay()])

    run(scenario())


def test_test_delay_repeat_logs(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            jid = await e.ex.submit([opcodes.OpTestDelay(repeat=2, duration=0)])
            job = await e.wait(jid)
            assert [x[3] for x in job.ops[0].log] == [
                " - INFO: Test delay iteration 0/1",
                " - INFO: Test delay iteration 1/1",
            ]
            jid = await e.ex.submit([opcodes.OpTestDelay(duration=-1)])
            assert (await e.wait(jid)).ops[0].result[0] == "OpPrereqError"

    run(scenario())


def test_canceled_waiting_job_releases_its_earlier_locks(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with env(tmp_path) as e:
            holder = await e.ex.submit(
                [opcodes.OpTestDelay(duration=30, on_nodes=["node2"], no_locks=False)]
            )
            await e.status_becomes(holder, C.JOB_STATUS_RUNNING)
            # inst1 lives on n1+n2: gets the instance lock, then waits for n2
            waiter = await e.ex.submit([opcodes.OpInstanceStartup(instance_name="inst1")])
            await e.status_becomes(waiter, C.JOB_STATUS_WAITING)
            await asyncio.sleep(0.02)
            assert e.ex.locks.owned(waiter, LEVEL_INSTANCE) == ["i1"]
            assert e.ex.cancel(waiter) == (True, f"Job {waiter} canceled")
            await e.wait(waiter)
            assert e.ex.locks.owned(waiter, LEVEL_INSTANCE) == []
            # anyone else can take the instance at once
            await asyncio.wait_for(e.ex.locks.acquire("probe", LEVEL_INSTANCE, ["i1"]), 1)
            e.ex.locks.release_all("probe")
            e.ex.cancel(holder)
            assert (await e.wait(holder)).calc_status() == C.JOB_STATUS_CANCELED

    run(scenario())
