"""hbal ``-C`` / ``-X``: a move list turned into Ganeti's job sets, printed or executed.

Ganeti groups consecutive moves into *job sets*: a move joins the current set
when it touches none of the nodes the set already touches, otherwise it opens
a new set (``mergeJobs``). The jobs of one set run in parallel, the sets one
after the other.

Each move is one job, the opcodes of Ganeti 3.0's ``iMoveToJob``:

* failover ``f`` -> ``OpInstanceMigrate`` with ``allow_failover`` (a stopped
  instance is failed over instead), ``allow_runtime_changes=False``,
  ``ignore_hvversions=True``; for a forthcoming instance ``OpInstanceFailover``;
* ``fa:T`` -> the same migrate with ``target_node=T`` (shared storage);
* ``r:T`` -> ``OpInstanceReplaceDisks`` in mode ``replace_new_secondary`` with
  ``remote_node=T``;
* composite moves chain those (``f r:T f`` = migrate, replace, migrate).

`execute_job_sets` prints ``Executing jobset for instances a, b``, submits
the set's jobs at once (``Got job IDs 7, 8``), waits for all of them and
stops at the first set with a failed job (``Not all jobs completed
successfully: ...`` / ``Aborting.``). A first SIGINT asks to stop after the
current set, SIGTERM stops at once (exit 2), as Ganeti's hbal does.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from corral import constants as C
from corral import errors
from corral.htools.moves import Move, move_code
from corral.htools.types import HtoolsError

if TYPE_CHECKING:
    from corral import opcodes

WAIT_TIMEOUT = 10.0


@dataclasses.dataclass
class PlannedMove:
    """One step of hbal's solution, with the names needed to act on it."""

    instance: str
    move: Move
    target: str  # node name for r:/fa: moves, "" otherwise
    nodes: list[int]  # indices of every node the move touches
    alias: str = ""  # the instance name as printed (common suffix stripped)
    target_alias: str = ""
    forthcoming: bool = False
    running: bool = True  # Ganeti's isRunning: status running or ERROR_up


def job_sets(moves: Sequence[PlannedMove]) -> list[list[PlannedMove]]:
    """Ganeti's ``mergeJobs``: consecutive moves on disjoint nodes share a set."""
    sets: list[list[PlannedMove]] = []
    busy: set[int] = set()
    for pm in moves:
        touched = set(pm.nodes)
        if sets and not busy & touched:
            sets[-1].append(pm)
            busy |= touched
        else:
            sets.append([pm])
            busy = touched
    return sets


def move_commands(pm: PlannedMove) -> list[str]:
    """The ``gnt-instance`` commands hbal -C prints for one move.

    As in Ganeti, a stopped instance is shown with ``failover`` where a running
    one gets ``migrate`` (the job itself is a migrate allowed to fail over).
    """
    _, steps = move_code(pm.move, pm.target_alias or pm.target)
    name = pm.alias or pm.instance
    morf = "migrate" if pm.running else "failover"
    lines = []
    for kind, node in steps:
        if kind == "mig":
            lines.append(f"gnt-instance {morf} -f {name}")
        elif kind == "rep":
            lines.append(f"gnt-instance replace-disks -n {node} {name}")
        else:
            lines.append(f"gnt-instance {morf} -f -n {node} {name}")
    return lines


def format_commands(sets: Sequence[Sequence[PlannedMove]]) -> str:
    """The body of hbal -C's listing (``echo jobset N, M jobs`` ...)."""
    text = []
    for js_no, js in enumerate(sets, 1):
        text.append("  ")
        text.append(f"  echo jobset {js_no}, {len(js)} jobs")
        for j_no, pm in enumerate(js, 1):
            text.append(f"    echo job {js_no}/{j_no}")
            text.extend(f"    {ln}" for ln in move_commands(pm))
    return "\n".join(text) + "\n"


def move_opcodes(pm: PlannedMove) -> list[opcodes.OpCode]:
    """The opcodes of the job for one move (Ganeti's ``iMoveToJob``)."""
    from corral import opcodes  # msgspec: only for -X, not for every hbal run

    _, steps = move_code(pm.move, pm.target)
    ops: list[opcodes.OpCode] = []
    for kind, node in steps:
        if kind == "rep":
            ops.append(
                opcodes.OpInstanceReplaceDisks(
                    instance_name=pm.instance,
                    mode=C.REPLACE_DISK_CHG,
                    remote_node=node,
                    disks=[],
                    early_release=False,
                    ignore_ipolicy=False,
                )
            )
        elif pm.forthcoming and kind == "mig":
            ops.append(opcodes.OpInstanceFailover(instance_name=pm.instance))
        else:
            ops.append(
                opcodes.OpInstanceMigrate(
                    instance_name=pm.instance,
                    target_node=node or None,
                    allow_failover=True,
                    allow_runtime_changes=False,
                    ignore_ipolicy=False,
                    ignore_hvversions=True,
                    cleanup=False,
                )
            )
    return ops


# -- execution --------------------------------------------------------------------------------


class _Cancel:
    """Ganeti's cancel reference: SIGINT = stop after this set, SIGTERM = stop now."""

    def __init__(self, out: TextIO) -> None:
        self.requested = False
        self.out = out
        self.saved: list[tuple[int, Any]] = []

    def on_int(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        self.out.write(
            "Cancel request registered, will exit at the end of the current job set...\n"
        )
        self.out.flush()

    def on_term(self, _signum: int, _frame: FrameType | None) -> None:
        self.out.write("Double cancel request, exiting now...\n")
        self.out.flush()
        os._exit(2)

    def __enter__(self) -> _Cancel:
        try:
            for sig, fn in ((signal.SIGINT, self.on_int), (signal.SIGTERM, self.on_term)):
                self.saved.append((sig, signal.signal(sig, fn)))
        except ValueError:  # not the main thread (tests): no handlers
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved:
            signal.signal(sig, old)


def _wait(client: Any, job_id: int) -> None:
    """Block until `job_id` is finalized (its log is not printed, as in Ganeti)."""
    prev_info: list[Any] | None = None
    prev_serial: int | None = None
    while True:
        change = client.wait_for_job_change(
            job_id, ["status"], prev_info, prev_serial, WAIT_TIMEOUT
        )
        if change == "nochange":
            continue
        info, entries = change
        for entry in entries or []:
            prev_serial = max(prev_serial or 0, int(entry[0]))
        if info[0] in C.JOBS_FINALIZED:
            return
        prev_info = info


def _failure_reason(opstatus: Any, opresult: Any) -> str:
    for status, result in zip(opstatus or [], opresult or [], strict=False):
        if status != C.JOB_STATUS_SUCCESS and result:
            err = errors.decode_exception(result)
            return str(err).splitlines()[0] if str(err) else type(err).__name__
    return "no error message"


def run_job_set(client: Any, js: Sequence[PlannedMove], out: TextIO, err: TextIO) -> None:
    """Submit one job set, wait for all its jobs; raise `HtoolsError` if any failed."""
    out.write("Executing jobset for instances " + ", ".join(pm.instance for pm in js) + "\n")
    out.flush()
    submitted = client.submit_many_jobs([move_opcodes(pm) for pm in js])
    bad = [str(value) for ok, value in submitted if not ok]
    ids = [int(value) for ok, value in submitted if ok]
    if bad:
        raise HtoolsError("Job submission error: " + "; ".join(bad))
    out.write("Got job IDs " + ", ".join(str(i) for i in ids) + "\n")
    out.flush()
    for job_id in ids:
        _wait(client, job_id)
    rows = client.query_jobs(ids, ["status", "opstatus", "opresult"])
    failures = []
    for job_id, row in zip(ids, rows, strict=True):
        status = row[0] if row else "lost"
        if status != C.JOB_STATUS_SUCCESS:
            failures.append((job_id, status))
            reason = _failure_reason(row[1], row[2]) if row else "job lost"
            err.write(f"Job {job_id} ({status}): {reason}\n")
    if failures:
        shown = ",".join(f"({j},JOB_STATUS_{s.upper()})" for j, s in failures)
        raise HtoolsError(f"Not all jobs completed successfully: [{shown}]\nAborting.")


def execute_job_sets(
    sets: Sequence[Sequence[PlannedMove]],
    client: Any,
    out: TextIO | None = None,
    err: TextIO | None = None,
    run_set: Callable[[Any, Sequence[PlannedMove], TextIO, TextIO], None] = run_job_set,
) -> None:
    """Run the job sets in order; stop at the first failure (raises `HtoolsError`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    with _Cancel(out) as cancel:
        for n, js in enumerate(sets):
            if cancel.requested:
                raise HtoolsError(
                    f"Exiting early due to user request, {len(sets) - n} jobset(s) remaining."
                )
            try:
                run_set(client, js, out, err)
            except errors.GenericError as exc:
                if isinstance(exc, HtoolsError):
                    raise
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise HtoolsError(text) from None
