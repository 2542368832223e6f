"""The job queue: jobs persisted in SQLite (WAL) at ``paths.queue_db``.

* Job ids come from an AUTOINCREMENT key, so they only ever grow, also across
  restarts and after importing a replicated queue.
* Jobs that are not finished live in memory (`QueuedJob` objects the executor
  changes in place, then calls `save`); finished jobs are read from the
  database on demand.
* Every `save` persists the job, wakes the `wait_for_change` long-polls of that
  job (asyncio events, no polling) and hands the job JSON to the replicator,
  which pushes it to the master candidates in the background (best effort).
* `recover` runs at masterd start: jobs that had started are marked "error"
  ("job was running when the master daemon stopped"), queued ones are returned
  to be run. `import_files` loads the ``job-<id>.json`` copies replicated to this
  node when it becomes master (master-failover).

SQLite is used synchronously from the event loop: in WAL mode with
``synchronous=NORMAL`` a commit is a write to the WAL without fsync (well under
a millisecond for a job), which keeps the code simple; a crash of the machine
may lose the last commits, never corrupts the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from typing import Any, Final, Protocol

import msgspec

from corral import constants as C
from corral import errors, opcodes
from corral.jobs.model import QueuedJob

log = logging.getLogger(__name__)

#: longest a WaitForJobChange call waits before answering "nochange"
MAX_WAIT: Final = 30.0
JOB_NOTCHANGED: Final = "nochange"
RECOVERY_REASON: Final = "job was running when the master daemon stopped"

_JOB_FILE_RE: Final = re.compile(r"^job-(\d+)\.json$")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class QueueReplicator(Protocol):
    """Receives every job change; must not block (schedules an async push)."""

    def job_updated(self, job_id: int, content: bytes) -> None: ...


class JobQueue:
    def __init__(self, db_path: str, *, replicator: QueueReplicator | None = None) -> None:
        self.db_path = db_path
        self._replicator = replicator
        self._db: sqlite3.Connection | None = None
        self._active: dict[int, QueuedJob] = {}
        self._events: dict[int, asyncio.Event] = {}

    # -- life cycle ----------------------------------------------------------
    def open(self) -> None:
        os.makedirs(os.path.dirname(self.db_path) or ".", exist_ok=True)
        db = sqlite3.connect(self.db_path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        for job in self._load_where("status NOT IN (?, ?, ?)", tuple(C.JOBS_FINALIZED)):
            self._active[job.id] = job

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def set_replicator(self, replicator: QueueReplicator | None) -> None:
        self._replicator = replicator

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise errors.JobQueueError("The job queue is not open")
        return self._db

    # -- drain flag ------------------------------------------------------------
    def is_drained(self) -> bool:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'drained'").fetchone()
        return bool(row and row[0] == "1")

    def set_drain_flag(self, drained: bool) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('drained', ?)",
            ("1" if drained else "0",),
        )

    # -- watcher pause ---------------------------------------------------------
    def watcher_pause(self) -> float | None:
        """Until when the watcher is paused (a time.time() value), or None.

        Kept in the queue database next to the drain flag, so a pause set for a
        maintenance window survives a masterd restart (Ganeti keeps it in a file).
        """
        row = self.db.execute("SELECT value FROM meta WHERE key = 'watcher_pause'").fetchone()
        try:
            return float(row[0]) if row and row[0] else None
        except ValueError:
            return None

    def set_watcher_pause(self, until: float | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('watcher_pause', ?)",
            ("" if until is None else repr(float(until)),),
        )

    # -- creating and saving -----------------------------------------------------
    def create(self, ops: list[opcodes.OpCode]) -> QueuedJob:
        """Persist a new queued job for `ops` and return it (id assigned)."""
        if not ops:
            raise errors.OpPrereqError("Empty job (no opcodes)", errors.ECODE_INVAL)
        if self.is_drained():
            raise errors.JobQueueDrainError("Job queue is drained, refusing job")
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "INSERT INTO jobs (status, data) VALUES (?, ?)", (C.JOB_STATUS_QUEUED, b"")
            )
            job_id = cur.lastrowid
            assert job_id is not None
            job = QueuedJob.new(job_id, ops)
            db.execute("UPDATE jobs SET data = ? WHERE id = ?", (job.encode(), job_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._active[job_id] = job
        self._after_change(job)
        return job

    def save(self, job: QueuedJob) -> None:
        """Persist a changed job, wake its waiters, replicate it."""
        status = job.calc_status()
        self.db.execute(
            "UPDATE jobs SET status = ?, archived = ?, data = ? WHERE id = ?",
            (status, int(job.archived), job.encode(), job.id),
        )
        if status in C.JOBS_FINALIZED:
            self._active.pop(job.id, None)
        self._after_change(job)

    def _after_change(self, job: QueuedJob) -> None:
        event = self._events.pop(job.id, None)
        if event is not None:
            event.set()
        if self._replicator is not None:
            try:
                self._replicator.job_updated(job.id, job.encode())
            except Exception:
                log.exception("job replication failed for job %s", job.id)

    # -- reading ---------------------------------------------------------------
    def _load_where(self, where: str, params: tuple[Any, ...] = ()) -> list[QueuedJob]:
        rows = self.db.execute(
            f"SELECT id, data FROM jobs WHERE {where} ORDER BY id", params
        ).fetchall()
        out: list[QueuedJob] = []
        for job_id, data in rows:
            active = self._active.get(job_id)
            if active is not None:
                out.append(active)
                continue
            try:
                out.append(QueuedJob.decode(data))
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.error("job %s: unreadable entry in the queue database", job_id)
        return out

    def get(self, job_id: int) -> QueuedJob | None:
        active = self._active.get(job_id)
        if active is not None:
            return active
        found = self._load_where("id = ?", (job_id,))
        return found[0] if found else None

    def jobs(self, job_ids: list[int] | None = None, *, archived: bool = True) -> list[QueuedJob]:
        """Jobs by id (missing ones skipped), or all jobs in id order."""
        if job_ids is None:
            where = "1" if archived else "archived = 0"
            return self._load_where(where)
        out: list[QueuedJob] = []
        for jid in job_ids:
            job = self.get(jid)
            if job is not None:
                out.append(job)
        return out

    def active_jobs(self) -> list[QueuedJob]:
        return [self._active[k] for k in sorted(self._active)]

    def last_job_id(self) -> int:
        row = self.db.execute("SELECT MAX(id) FROM jobs").fetchone()
        return int(row[0] or 0)

    # -- archive ------------------------------------------------------------------
    def archive(self, job_id: int) -> bool:
        """Mark a finished job archived; False if unknown or still running."""
        job = self.get(job_id)
        if job is None or not job.finalized or job.archived:
            return job is not None and job.archived
        job.archived = True
        self.save(job)
        return True

    def auto_archive(self, age: float, now: float) -> int:
        """Archive finished jobs that ended more than `age` seconds ago."""
        count = 0
        finished = tuple(C.JOBS_FINALIZED)
        for job in self._load_where("archived = 0 AND status IN (?, ?, ?)", finished):
            end = job.end_timestamp[0] if job.end_timestamp else 0
            if age < 0 or now - end >= age:
                job.archived = True
                self.save(job)
                count += 1
        return count

    # -- start-up ----------------------------------------------------------------
    def recover(self) -> list[int]:
        """Fail jobs interrupted by a master stop; return the ids still to run.

        Queued jobs run again; jobs that were only waiting for locks (none of
        their opcodes executed) are queued again, as Ganeti does; jobs that
        were executing are marked failed.
        """
        to_run: list[int] = []
        failure = errors.encode_exception(errors.OpExecError(RECOVERY_REASON))
        for job in self.active_jobs():
            if job.start_timestamp is None and job.calc_status() == C.JOB_STATUS_QUEUED:
                to_run.append(job.id)
                continue
            if job.calc_status() == C.JOB_STATUS_WAITING and all(
                op.exec_timestamp is None and op.status != C.JOB_STATUS_SUCCESS for op in job.ops
            ):
                for op in job.ops:
                    op.status = C.JOB_STATUS_QUEUED
                    op.start_timestamp = None
                job.start_timestamp = None
                self.save(job)
                to_run.append(job.id)
                continue
            job.mark_unfinished(C.JOB_STATUS_ERROR, failure)
            job.finalize()
            self.save(job)
        return to_run

    def import_files(self, queue_dir: str) -> list[int]:
        """Import replicated ``job-<id>.json`` files unknown to this queue."""
        try:
            names = os.listdir(queue_dir)
        except FileNotFoundError:
            return []
        imported: list[int] = []
        for name in sorted(names):
            match = _JOB_FILE_RE.match(name)
            if not match:
                continue
            job_id = int(match.group(1))
            if self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                continue
            try:
                with open(os.path.join(queue_dir, name), "rb") as handle:
                    job = QueuedJob.decode(handle.read())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning("Cannot import replicated job file %s: %s", name, err)
                continue
            job.id = job_id
            self.db.execute(
                "INSERT INTO jobs (id, status, archived, data) VALUES (?, ?, ?, ?)",
                (job_id, job.calc_status(), int(job.archived), job.encode()),
            )
            if not job.finalized:
                self._active[job_id] = job
            imported.append(job_id)
        return imported

    # -- long poll ---------------------------------------------------------------
    async def wait_for_change(
        self,
        job_id: int,
        fields: list[str],
        prev_job_info: list[Any] | None,
        prev_log_serial: int | None,
        timeout: float,
    ) -> str | tuple[list[Any], list[list[Any]]] | None:
        """Ganeti's WaitForJobChange: (job info, new log entries), "nochange" or None.

        Returns as soon as the requested fields differ from `prev_job_info` or a
        log entry newer than `prev_log_serial` exists, at once if the job is
        finished, and "nochange" after `timeout` (at most `MAX_WAIT`) seconds.
        None means the job does not exist.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(timeout, MAX_WAIT))
        serial = prev_log_serial or 0
        while True:
            job = self.get(job_id)
            if job is None:
                return None
            info = msgspec.to_builtins(job.info(fields))
            entries = job.log_since(serial)
            if entries or info != prev_job_info or job.finalized:
                return info, entries
            remaining = deadline - loop.time()
            if remaining <= 0:
                return JOB_NOTCHANGED
            event = self._events.get(job_id)
            if event is None:
                event = self._events[job_id] = asyncio.Event()
            try:
                await asyncio.wait_for(event.wait(), timeout=remaining)
            except TimeoutError:
                return JOB_NOTCHANGED
