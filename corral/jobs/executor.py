"""The executor: runs queued jobs as asyncio tasks, one opcode after another.

At most ``cluster.max_running_jobs`` jobs run at once (read from the config
at every scheduling decision); the others stay "queued" in submission order.
Each opcode goes through the life cycle documented in `corral.cmdlib.base`:
the opcode is "waiting" while it acquires its locks and "running" from
`check_prereq` on. When an opcode fails, its result is
``errors.encode_exception(err)`` and the later opcodes of the job fail with
"Preceding opcode failed" (Ganeti's wording).

Cancelling (`cancel`):
  * queued job: canceled at once;
  * waiting for locks: the lock wait is aborted, the job is canceled at once;
  * running: marked "canceling"; the LU may notice (``ctx.check_canceled()``,
    ``ctx.sleep()``), otherwise the job stops at the next opcode boundary.
A cancellation that interrupts ``exec`` runs the LU's rollback steps.

At the end of every job, the config reservations made under its id and all
its locks are released.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib import registry
from corral.cmdlib.base import (
    BGL,
    HOOKS_PHASE_POST,
    HOOKS_PHASE_PRE,
    LEVEL_CLUSTER,
    LEVEL_INSTANCE,
    LEVEL_NETWORK,
    LEVEL_NODE,
    LEVEL_NODE_RES,
    LEVEL_NODEGROUP,
    LEVELS,
    AllSet,
    LogicalUnit,
    LUContext,
)
from corral.config.store import ConfigStore
from corral.jobs.hooks import run_hooks
from corral.jobs.locking import LockManager
from corral.jobs.model import QueuedJob, QueuedOpCode, split_time
from corral.jobs.queue import RECOVERY_REASON, JobQueue
from corral.paths import Paths
from corral.rpc.client import RpcRunner

log = logging.getLogger(__name__)

LuLookup = Callable[[opcodes.OpCode], type[LogicalUnit]]

PRECEDING_FAILED = "Preceding opcode failed"
CANCELED_MSG = "Job canceled by request"


class _Run:
    """Bookkeeping of one running job."""

    __slots__ = ("cancel", "task")

    def __init__(self) -> None:
        self.cancel = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


def _encode_result(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value)
    except (TypeError, msgspec.EncodeError) as err:
        raise errors.ProgrammerError(f"Opcode result is not serialisable: {err}") from err


class Executor:
    def __init__(
        self,
        *,
        queue: JobQueue,
        cfg: ConfigStore,
        rpc: RpcRunner,
        paths: Paths,
        locks: LockManager | None = None,
        lu_lookup: LuLookup | None = None,
        max_running: int | None = None,
    ) -> None:
        self.queue = queue
        self.cfg = cfg
        self.rpc = rpc
        self.paths = paths
        self.locks = locks if locks is not None else LockManager()
        self._lu_lookup = lu_lookup if lu_lookup is not None else registry.lu_class
        self._max_running = max_running
        self._pending: deque[int] = deque()
        self._running: dict[int, _Run] = {}
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    # -- public API ------------------------------------------------------------
    @property
    def max_running(self) -> int:
        if self._max_running is not None:
            return self._max_running
        return max(1, self.cfg.cluster.max_running_jobs)

    def start(self, job_ids: list[int]) -> None:
        """Schedule jobs recovered from the queue at start-up."""
        self._pending.extend(job_ids)
        self._schedule()

    async def submit(self, ops: list[opcodes.OpCode]) -> int:
        if not self._accepting:
            raise errors.JobQueueError("The master daemon is shutting down")
        job = self.queue.create(ops)
        self._pending.append(job.id)
        self._schedule()
        return job.id

    async def submit_many(self, jobs: list[list[opcodes.OpCode]]) -> list[tuple[bool, Any]]:
        """Ganeti's SubmitManyJobs: per job (True, id) or (False, error message)."""
        out: list[tuple[bool, Any]] = []
        for ops in jobs:
            try:
                out.append((True, await self.submit(ops)))
            except errors.GenericError as err:
                out.append((False, str(err)))
        return out

    async def _submit_ids(self, jobs: list[list[opcodes.OpCode]]) -> list[int]:
        return [await self.submit(ops) for ops in jobs]

    def cancel(self, job_id: int) -> tuple[bool, str]:
        job = self.queue.get(job_id)
        if job is None:
            return False, f"Job {job_id} not found"
        status = job.calc_status()
        encoded = errors.encode_exception(errors.JobCanceled(CANCELED_MSG))
        if status == C.JOB_STATUS_QUEUED and job_id not in self._running:
            if job_id in self._pending:
                self._pending.remove(job_id)
            job.mark_unfinished(C.JOB_STATUS_CANCELED, encoded)
            job.finalize()
            self.queue.save(job)
            return True, f"Job {job_id} canceled"
        run = self._running.get(job_id)
        if run is None or status in C.JOBS_FINALIZED:
            return False, f"Job {job_id} is no longer waiting in the queue"
        run.cancel.set()
        if status in (C.JOB_STATUS_QUEUED, C.JOB_STATUS_WAITING):
            self.locks.abort_waiting(job_id, errors.JobCanceled(CANCELED_MSG))
            job.mark_unfinished(C.JOB_STATUS_CANCELED, encoded)
            job.finalize()
            self.queue.save(job)
            return True, f"Job {job_id} canceled"
        job.mark_unfinished(C.JOB_STATUS_CANCELING, None)
        self.queue.save(job)
        return True, f"Job {job_id} will be canceled"

    def running_jobs(self) -> list[int]:
        return sorted(self._running)

    async def wait_idle(self) -> None:
        """Wait until no job runs and none is pending (tests)."""
        while self._running or self._pending:
            self._idle.clear()
            await self._idle.wait()

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop starting jobs; let running ones finish for `timeout` s, then stop them.

        Jobs stopped this way end in "error" ("job was running when the master
        daemon stopped"); queued jobs stay queued for the next master start.
        """
        self._accepting = False
        self._pending.clear()
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if not tasks:
            return
        _done, still = await asyncio.wait(tasks, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)

    # -- scheduling ----------------------------------------------------------------
    def _schedule(self) -> None:
        while self._accepting and self._pending and len(self._running) < self.max_running:
            job_id = self._pending.popleft()
            job = self.queue.get(job_id)
            if job is None or job.finalized:
                continue
            run = _Run()
            self._running[job_id] = run
            run.task = asyncio.get_running_loop().create_task(
                self._run_job(job, run), name=f"job-{job_id}"
            )
        if not self._running and not self._pending:
            self._idle.set()

    async def _run_job(self, job: QueuedJob, run: _Run) -> None:
        log.info("Job %s started", job.id)
        job.start_timestamp = job.start_timestamp or split_time()
        try:
            for index, qop in enumerate(job.ops):
                if qop.status in C.JOBS_FINALIZED:
                    continue
                if run.cancel.is_set():
                    raise errors.JobCanceled(CANCELED_MSG)
                await self._run_opcode(job, index, qop, run)
                if qop.status != C.JOB_STATUS_SUCCESS:
                    break
        except errors.JobCanceled as err:
            job.mark_unfinished(C.JOB_STATUS_CANCELED, errors.encode_exception(err))
        except asyncio.CancelledError:
            job.mark_unfinished(
                C.JOB_STATUS_ERROR, errors.encode_exception(errors.OpExecError(RECOVERY_REASON))
            )
            raise
        except Exception as err:  # a bug in the executor itself
            log.exception("Job %s: internal error", job.id)
            job.mark_unfinished(C.JOB_STATUS_ERROR, errors.encode_exception(err))
        finally:
            self.locks.release_all(job.id)
            self.cfg.release_reservations(job.id)
            job.finalize()
            self.queue.save(job)
            self._running.pop(job.id, None)
            log.info("Job %s finished: %s", job.id, job.calc_status())
            self._schedule()

    async def _run_opcode(self, job: QueuedJob, index: int, qop: QueuedOpCode, run: _Run) -> None:
        qop.status = C.JOB_STATUS_WAITING
        qop.start_timestamp = split_time()
        self.queue.save(job)
        try:
            result = await self._exec_opcode(job, index, qop, run)
        except errors.JobCanceled:
            raise
        except Exception as err:
            qop.status = C.JOB_STATUS_ERROR
            qop.result = errors.encode_exception(err)
            qop.end_timestamp = split_time()
            job.mark_unfinished(
                C.JOB_STATUS_ERROR, errors.encode_exception(errors.OpExecError(PRECEDING_FAILED))
            )
            if not isinstance(err, errors.GenericError):
                log.exception("Job %s opcode %s failed with an unexpected error", job.id, index)
        else:
            qop.status = C.JOB_STATUS_SUCCESS
            qop.result = result
            qop.end_timestamp = split_time()
        finally:
            self.locks.release_all(job.id)
        self.queue.save(job)

    def _owned_locks(self, job_id: int, level: int) -> list[str]:
        owned = self.locks.owned(job_id, level)
        if not isinstance(owned, AllSet):
            return owned
        cfg = self.cfg
        if level == LEVEL_CLUSTER:
            return [BGL]
        if level == LEVEL_INSTANCE:
            return sorted(cfg.instances)
        if level == LEVEL_NODEGROUP:
            return sorted(cfg.nodegroups)
        if level in (LEVEL_NODE, LEVEL_NODE_RES):
            return sorted(cfg.nodes)
        if level == LEVEL_NETWORK:
            return sorted(cfg.networks)
        return []

    async def _exec_opcode(self, job: QueuedJob, index: int, qop: QueuedOpCode, run: _Run) -> Any:
        op = opcodes.decode_op(qop.input)

        def feedback(msg: str) -> None:
            job.add_log(index, msg)
            self.queue.save(job)

        ctx = LUContext(
            cfg=self.cfg,
            rpc=self.rpc,
            paths=self.paths,
            job_id=job.id,
            op_index=index,
            feedback_fn=feedback,
            submit_fn=self._submit_ids,
            cancel_event=run.cancel,
            owned_locks_fn=lambda level: self._owned_locks(job.id, level),
        )
        lu = self._lu_lookup(op)(op, ctx)
        lu.check_arguments()
        lu.expand_names()
        await self._acquire_locks(job, lu)
        ctx.check_canceled()
        qop.status = C.JOB_STATUS_RUNNING
        qop.exec_timestamp = split_time()
        self.queue.save(job)
        await lu.check_prereq()
        await run_hooks(lu, HOOKS_PHASE_PRE)
        if op.dry_run:
            return _encode_result(lu.dry_run_result)
        try:
            result = await lu.exec()
        except BaseException:
            await asyncio.shield(ctx.run_rollbacks())
            raise
        encoded = _encode_result(result)
        try:
            await run_hooks(lu, HOOKS_PHASE_POST)
        except errors.GenericError as err:  # the work is done: only warn
            lu.log_warning(f"Post hooks could not run: {err}")
        return encoded

    async def _acquire_locks(self, job: QueuedJob, lu: LogicalUnit) -> None:
        """BGL, then each level the LU needs, in order (status stays "waiting")."""
        check = lu.ctx.check_canceled
        await self.locks.acquire(
            job.id, LEVEL_CLUSTER, [BGL], shared=not lu.REQ_BGL, abort_check=check
        )
        for level in LEVELS:
            if level == LEVEL_CLUSTER or level not in lu.needed_locks:
                continue
            check()
            lu.declare_locks(level)
            names = lu.needed_locks.get(level)
            if names is None:
                continue
            await self.locks.acquire(
                job.id,
                level,
                names,
                shared=bool(lu.share_locks.get(level, False)),
                abort_check=check,
            )
