"""Jobs as stored and reported: Ganeti's queued job / queued opcode shapes.

A job is a list of opcodes, each with its own status, result, log and
timestamps; the job's status is derived from its opcodes exactly as Ganeti's
``_QueuedJob.CalcStatus`` does. The JSON of a `QueuedJob` is what the queue
stores in SQLite and what is replicated to master candidates as
``<data_dir>/queue/job-<id>.json``.

Timestamps are ``[seconds, microseconds]`` pairs; log entries are
``[serial, [sec, usec], type, message]`` with one serial sequence per job.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

from corral import constants as C
from corral import opcodes

Timestamp = list[int]

JOB_FIELDS: Final = (
    "id",
    "status",
    "priority",
    "ops",
    "opresult",
    "opstatus",
    "oplog",
    "opstart",
    "opexec",
    "opend",
    "oppriority",
    "summary",
    "received_ts",
    "start_ts",
    "end_ts",
    "archived",
)


def split_time(value: float | None = None) -> Timestamp:
    """``time.time()`` (or `value`) as ``[sec, usec]``."""
    now = time.time() if value is None else value
    sec = int(now)
    return [sec, round((now - sec) * 1_000_000) % 1_000_000]


def merge_time(ts: Timestamp | None) -> float | None:
    if not ts:
        return None
    return ts[0] + ts[1] / 1_000_000


class QueuedOpCode(msgspec.Struct, kw_only=True):
    input: dict[str, Any]
    status: str = C.JOB_STATUS_QUEUED
    result: Any = None
    log: list[list[Any]] = msgspec.field(default_factory=list)
    priority: int = C.OP_PRIO_DEFAULT
    start_timestamp: Timestamp | None = None
    exec_timestamp: Timestamp | None = None
    end_timestamp: Timestamp | None = None

    def summary(self) -> str:
        """Ganeti's opcode summary (``INSTANCE_CREATE(inst1)``)."""
        try:
            return opcodes.decode_op(self.input).summary()
        except Exception:
            op_id = str(self.input.get("OP_ID", "OP_UNKNOWN"))
            return op_id[3:] if op_id.startswith("OP_") else op_id


class QueuedJob(msgspec.Struct, kw_only=True):
    id: int
    ops: list[QueuedOpCode]
    received_timestamp: Timestamp | None = None
    start_timestamp: Timestamp | None = None
    end_timestamp: Timestamp | None = None
    archived: bool = False
    log_serial: int = 0

    @classmethod
    def new(cls, job_id: int, ops: list[opcodes.OpCode]) -> QueuedJob:
        """A queued job for `ops`, with Ganeti's ``gnt:opcode:...`` reason entries."""
        now = time.time()
        qops: list[QueuedOpCode] = []
        for index, op in enumerate(ops):
            data = op.to_dict()
            reason = list(data.get("reason") or [])
            reason.append(
                [
                    f"gnt:opcode:{op.op_id()[3:].lower()}",
                    f"job={job_id};index={index}",
                    int(now * 1e9),
                ]
            )
            data["reason"] = reason
            qops.append(QueuedOpCode(input=data, priority=op.priority))
        return cls(id=job_id, ops=qops, received_timestamp=split_time(now))

    # -- status --------------------------------------------------------------
    def calc_status(self) -> str:
        """The job status from its opcodes (Ganeti's CalcStatus)."""
        status = C.JOB_STATUS_QUEUED
        all_success = True
        for op in self.ops:
            if op.status == C.JOB_STATUS_SUCCESS:
                continue
            all_success = False
            if op.status == C.JOB_STATUS_QUEUED:
                continue
            status = op.status
            break
        if all_success and self.ops:
            return C.JOB_STATUS_SUCCESS
        return status

    @property
    def finalized(self) -> bool:
        return self.calc_status() in C.JOBS_FINALIZED

    def mark_unfinished(self, status: str, result: Any) -> None:
        """Set every opcode not yet finished to `status` with `result`."""
        now = split_time()
        for op in self.ops:
            if op.status in C.JOBS_FINALIZED:
                continue
            op.status = status
            op.result = result
            if status in C.JOBS_FINALIZED:
                op.end_timestamp = op.end_timestamp or now

    def finalize(self) -> None:
        self.end_timestamp = self.end_timestamp or split_time()

    # -- log -----------------------------------------------------------------
    def add_log(self, op_index: int, message: str, log_type: str = C.ELOG_MESSAGE) -> list[Any]:
        self.log_serial += 1
        entry = [self.log_serial, split_time(), log_type, message]
        self.ops[op_index].log.append(entry)
        return entry

    def log_since(self, serial: int) -> list[list[Any]]:
        """Log entries with a serial above `serial`, in order."""
        return [entry for op in self.ops for entry in op.log if entry[0] > serial]

    # -- reporting -------------------------------------------------------------
    def priority(self) -> int:
        pending = [op.priority for op in self.ops if op.status not in C.JOBS_FINALIZED]
        return min(pending) if pending else (self.ops[-1].priority if self.ops else 0)

    def field(self, name: str) -> Any:
        """The value of one Ganeti job field (None for an unknown field)."""
        getter = _FIELD_GETTERS.get(name)
        return None if getter is None else getter(self)

    def info(self, fields: list[str]) -> list[Any]:
        return [self.field(name) for name in fields]

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, payload: bytes | str) -> QueuedJob:
        return msgspec.json.decode(payload, type=cls)


# Opcode fields whose values never leave the master (Ganeti shows private
# parameters as "<redacted>" too)
_SECRET_FIELDS = ("join_token", "osparams_private", "osparams_secret")


def _redacted(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key in _SECRET_FIELDS:
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = {k: "<redacted>" for k in value}
        elif value is not None:
            out[key] = "<redacted>"
    return out


_FIELD_GETTERS: dict[str, Any] = {
    "id": lambda j: j.id,
    "status": lambda j: j.calc_status(),
    "priority": lambda j: j.priority(),
    "ops": lambda j: [_redacted(op.input) for op in j.ops],
    "opresult": lambda j: [op.result for op in j.ops],
    "opstatus": lambda j: [op.status for op in j.ops],
    "oplog": lambda j: [op.log for op in j.ops],
    "opstart": lambda j: [op.start_timestamp for op in j.ops],
    "opexec": lambda j: [op.exec_timestamp for op in j.ops],
    "opend": lambda j: [op.end_timestamp for op in j.ops],
    "oppriority": lambda j: [op.priority for op in j.ops],
    "summary": lambda j: [op.summary() for op in j.ops],
    "received_ts": lambda j: j.received_timestamp,
    "start_ts": lambda j: j.start_timestamp,
    "end_ts": lambda j: j.end_timestamp,
    "archived": lambda j: j.archived,
}
