"""JobQueue: SQLite persistence, ids, recovery, import, long-poll, replication hook."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.jobs.model import QueuedJob
from corral.jobs.queue import JOB_NOTCHANGED, RECOVERY_REASON, JobQueue


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def delay(duration: float = 0.0) -> opcodes.OpCode:
    return opcodes.OpTestDelay(duration=duration)


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[int, bytes]] = []

    def job_updated(self, job_id: int, content: bytes) -> None:
        self.updates.append((job_id, content))


@pytest.fixture
def queue(tmp_path: Any) -> Any:
    q = JobQueue(str(tmp_path / "queue.sqlite"))
    q.open()
    yield q
    q.close()


def test_ids_grow_and_jobs_survive_reopen(tmp_path: Any) -> None:
    path = str(tmp_path / "queue.sqlite")
    q = JobQueue(path)
    q.open()
    ids = [q.create([delay()]).id for _ in range(3)]
    assert ids == [1, 2, 3]
    q.close()
    q2 = JobQueue(path)
    q2.open()
    assert [j.id for j in q2.jobs()] == [1, 2, 3]
    assert q2.create([delay()]).id == 4
    job = q2.get(2)
    assert job is not None and job.calc_status() == C.JOB_STATUS_QUEUED
    assert job.ops[0].input["OP_ID"] == "OP_TEST_DELAY"
    # Ganeti's reason trail entry for the opcode
    assert job.ops[0].input["reason"][-1][:2] == ["gnt:opcode:test_delay", "job=2;index=0"]
    q2.close()


def test_empty_jobs_and_drained_queue_are_refused(queue: JobQueue) -> None:
    with pytest.raises(errors.OpPrereqError):
        queue.create([])
    queue.set_drain_flag(True)
    with pytest.raises(errors.JobQueueDrainError):
        queue.create([delay()])
    queue.set_drain_flag(False)
    assert queue.create([delay()]).id == 1


def test_status_is_derived_from_opcodes() -> None:
    job = QueuedJob.new(1, [delay(), delay()])
    assert job.calc_status() == C.JOB_STATUS_QUEUED
    job.ops[0].status = C.JOB_STATUS_SUCCESS
    assert job.calc_status() == C.JOB_STATUS_QUEUED
    job.ops[1].status = C.JOB_STATUS_RUNNING
    assert job.calc_status() == C.JOB_STATUS_RUNNING
    job.ops[1].status = C.JOB_STATUS_SUCCESS
    assert job.calc_status() == C.JOB_STATUS_SUCCESS
    job.ops[0].status = C.JOB_STATUS_ERROR
    assert job.calc_status() == C.JOB_STATUS_ERROR
    assert job.field("summary") == ["TEST_DELAY", "TEST_DELAY"]
    assert job.field("nonsense") is None


def test_recover_fails_started_jobs_and_returns_queued(tmp_path: Any) -> None:
    path = str(tmp_path / "queue.sqlite")
    q = JobQueue(path)
    q.open()
    running = q.create([delay(), delay()])
    running.start_timestamp = [1, 0]
    running.ops[0].status = C.JOB_STATUS_RUNNING
    q.save(running)
    queued = q.create([delay()])
    waiting = q.create([delay()])
    waiting.start_timestamp = [1, 0]
    waiting.ops[0].status = C.JOB_STATUS_WAITING
    waiting.ops[0].start_timestamp = [1, 0]
    q.save(waiting)
    done = q.create([delay()])
    done.ops[0].status = C.JOB_STATUS_SUCCESS
    q.save(done)
    q.close()

    q = JobQueue(path)
    q.open()
    assert q.recover() == [queued.id, waiting.id]
    requeued = q.get(waiting.id)
    assert requeued is not None and requeued.calc_status() == C.JOB_STATUS_QUEUED
    job = q.get(running.id)
    assert job is not None
    assert job.calc_status() == C.JOB_STATUS_ERROR
    assert job.ops[1].result == ["OpExecError", [RECOVERY_REASON]]
    assert job.end_timestamp is not None
    q.close()


def test_import_replicated_files(queue: JobQueue, tmp_path: Any) -> None:
    qdir = tmp_path / "queue"
    qdir.mkdir()
    for jid in (7, 9):
        job = QueuedJob.new(jid, [delay()])
        job.ops[0].status = C.JOB_STATUS_SUCCESS
        (qdir / f"job-{jid}.json").write_bytes(job.encode())
    (qdir / "job-10.json").write_text("{broken")
    (qdir / "unrelated").write_text("x")
    assert queue.import_files(str(qdir)) == [7, 9]
    assert queue.import_files(str(qdir)) == []  # idempotent
    j9 = queue.get(9)
    assert j9 is not None and j9.calc_status() == C.JOB_STATUS_SUCCESS
    # new ids continue after the imported ones
    assert queue.create([delay()]).id == 10
    assert queue.import_files(str(tmp_path / "missing")) == []


def test_replicator_gets_every_change(tmp_path: Any) -> None:
    rec = Recorder()
    q = JobQueue(str(tmp_path / "q.sqlite"), replicator=rec)
    q.open()
    job = q.create([delay()])
    job.add_log(0, "hello")
    q.save(job)
    assert [jid for jid, _ in rec.updates] == [1, 1]
    assert QueuedJob.decode(rec.updates[-1][1]).ops[0].log[0][3] == "hello"
    q.close()


def test_wait_for_change_long_polls(queue: JobQueue) -> None:
    async def scenario() -> None:
        job = queue.create([delay()])
        fields = ["status"]
        first = await queue.wait_for_change(job.id, fields, None, None, 5)
        assert first == (["queued"], [])
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await queue.wait_for_change(job.id, fields, ["queued"], 0, 0.1) == JOB_NOTCHANGED
        assert loop.time() - started >= 0.09

        async def later() -> None:
            await asyncio.sleep(0.05)
            job.add_log(0, "* working")
            queue.save(job)

        task = asyncio.ensure_future(later())
        started = loop.time()
        info, entries = await queue.wait_for_change(job.id, fields, ["queued"], 0, 5)  # type: ignore[misc]
        assert loop.time() - started < 2
        assert info == ["queued"]
        assert [e[0] for e in entries] == [1]
        assert entries[0][2:] == ["message", "* working"]
        await task
        # finished job: answers at once even when nothing changed
        job.ops[0].status = C.JOB_STATUS_SUCCESS
        queue.save(job)
        result = await queue.wait_for_change(job.id, fields, ["success"], 1, 5)
        assert result == (["success"], [])
        assert await queue.wait_for_change(999, fields, None, None, 1) is None

    run(scenario())


def test_archive(queue: JobQueue) -> None:
    job = queue.create([delay()])
    assert not queue.archive(job.id)  # not finished
    job.ops[0].status = C.JOB_STATUS_SUCCESS
    job.finalize()
    queue.save(job)
    assert queue.archive(job.id)
    assert [j.id for j in queue.jobs(archived=False)] == []
    assert queue.get(job.id) is not None and queue.get(job.id).archived  # type: ignore[union-attr]
    other = queue.create([delay()])
    other.ops[0].status = C.JOB_STATUS_ERROR
    other.finalize()
    queue.save(other)
    assert queue.auto_archive(0, now=other.end_timestamp[0] + 1) == 1  # type: ignore[index]
    assert os.path.exists(queue.db_path)


def test_watcher_pause_survives_reopening(tmp_path: Any) -> None:
    path = str(tmp_path / "pause.db")
    first = JobQueue(path)
    first.open()
    assert first.watcher_pause() is None
    first.set_watcher_pause(1_900_000_000.5)
    first.close()
    again = JobQueue(path)
    again.open()
    assert again.watcher_pause() == 1_900_000_000.5  # a masterd restart keeps the pause
    again.set_watcher_pause(None)
    assert again.watcher_pause() is None
    again.close()
