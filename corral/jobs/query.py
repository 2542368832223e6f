"""The "job" query resource (gnt-job list / list-fields, RAPI /2/jobs)."""

from __future__ import annotations

from typing import Any, ClassVar

from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_base import (
    QFT_BOOL,
    QFT_NUMBER,
    QFT_OTHER,
    QFT_TEXT,
    Field,
    TableQueryResource,
)
from corral.jobs.model import QueuedJob
from corral.jobs.queue import JobQueue


def _f(name: str, title: str, kind: str, doc: str) -> Field:
    return Field(name=name, title=title, kind=kind, doc=doc, getter=lambda j, _l: j.field(name))


JOB_QUERY_FIELDS: tuple[Field, ...] = (
    _f("archived", "Archived", QFT_BOOL, "Whether job is archived"),
    _f(
        "end_ts",
        "End",
        QFT_OTHER,
        "Timestamp of job end (tuple containing seconds and microseconds)",
    ),
    _f("id", "ID", QFT_NUMBER, "Job ID"),
    _f("opend", "OpCode_end", QFT_OTHER, "List of opcode execution end timestamps"),
    _f(
        "opexec",
        "OpCode_exec",
        QFT_OTHER,
        "List of opcode execution start timestamps (after acquiring locks)",
    ),
    _f("oplog", "OpCode_log", QFT_OTHER, "List of opcode output logs"),
    _f("oppriority", "OpCode_prio", QFT_OTHER, "List of opcode priorities"),
    _f("opresult", "OpCode_result", QFT_OTHER, "List of opcodes results"),
    _f("ops", "OpCodes", QFT_OTHER, "List of all opcodes"),
    _f(
        "opstart",
        "OpCode_start",
        QFT_OTHER,
        "List of opcode start timestamps (before acquiring locks)",
    ),
    _f("opstatus", "OpCode_status", QFT_OTHER, "List of opcodes status"),
    _f("priority", "Priority", QFT_NUMBER, "Current job priority (19 to -20)"),
    _f(
        "received_ts",
        "Received",
        QFT_OTHER,
        "Timestamp of when job was received (tuple containing seconds and microseconds)",
    ),
    _f(
        "start_ts",
        "Start",
        QFT_OTHER,
        "Timestamp of job start (tuple containing seconds and microseconds)",
    ),
    _f("status", "Status", QFT_TEXT, "Job status"),
    _f("summary", "Summary", QFT_OTHER, "List of per-opcode summaries"),
)


class JobQueryResource(TableQueryResource):
    """Jobs of the queue, in id order; names are job ids."""

    NAME = "job"
    NAME_FIELD = "id"
    DEFAULT_FIELDS = ("id", "status", "summary")
    FIELDS: ClassVar[tuple[Field, ...]] = JOB_QUERY_FIELDS

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[Any]:
        if names is None:
            return self.queue.jobs()
        ids: list[int] = []
        for name in names:
            try:
                ids.append(int(name))
            except (TypeError, ValueError):
                continue
        jobs: list[QueuedJob] = self.queue.jobs(ids)
        return jobs
