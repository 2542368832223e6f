"""Running jobs from gnt-cluster/node/instance/os/group, on top of common.py.

common.py owns the single-job path (``submit_or_wait``, ``poll_job``,
``--submit`` -> ``JobID: N``), the error wording and the main loop; this
module adds what these commands need on top:

* `submit_or_wait` with the argument order used here, ``--priority`` names
  (low/normal/high) and ``--print-jobid``; it returns the result of the
  job's *last* opcode;
* `JobExecutor`: Ganeti's multi-job executor for commands that submit one
  job per instance (start/stop/reboot/reinstall, node failover):
  ``Submitted jobs 23, 24`` then ``Waiting for job 23 for NAME ...``;
* `run_main`: common.generic_main over a `corral.cli._opts.Command` table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from corral import errors
from corral.cli import common
from corral.cli._opts import Command, common_table, op_common

write = common.write
warn = common.warn
format_log_line = common.format_log_line
poll_job = common.poll_job
JobSubmitted = common.JobSubmitted


def format_error_text(err: BaseException) -> str:
    """An error as Ganeti's FormatError words it (common.format_error's text)."""
    return common.format_error(err)[1]


def ask_user(question: str) -> bool:
    """Yes/no on the terminal; no terminal means "no" (common.ask_user)."""
    return common.ask_user(question)


def _with_op_fields(opts: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``opts`` whose priority is the opcode's integer."""
    fields = op_common(opts)
    copy = argparse.Namespace(**vars(opts))
    copy.priority = fields.get("priority")
    copy.dry_run = fields.get("dry_run", False)
    return copy


def submit_or_wait(opts: argparse.Namespace, client: Any, ops: list[Any]) -> Any:
    """Submit one job and follow it; return the result of its last opcode.

    With ``--submit`` common.py raises `JobSubmitted` (printed as ``JobID:
    N``, exit 0) so nothing after the call runs; ``--print-jobid`` prints
    the job id first. Errors of the job are raised.
    """
    if getattr(opts, "print_jobid", False) and not getattr(opts, "submit_only", False):
        for op in ops:
            for key, value in op_common(opts).items():
                setattr(op, key, value)
        job_id = int(client.submit_job(ops))
        write(str(job_id))
        results = poll_job(client, job_id)
    else:
        results = common.submit_or_wait(ops, _with_op_fields(opts), client)
    return results[-1] if results else None


def wait_for_result_jobs(client: Any, result: Any) -> list[tuple[bool, Any]]:
    """Follow the jobs an opcode spawned (``{"jobs": [[ok, id], ...]}``)."""
    return common.wait_for_result_jobs(client, result)


class JobExecutor:
    """Submit several jobs, then wait for each (Ganeti's ``cli.JobExecutor``).

    ``verbose`` prints ``Submitted jobs 23, 24``; every waited job prints
    ``Waiting for job N for NAME ...`` before its log lines. A failed job is
    reported as ``Job N for NAME has failed: <error>`` and does not stop
    the others.
    """

    def __init__(self, client: Any, opts: argparse.Namespace, verbose: bool = True) -> None:
        self.client = client
        self.opts = opts
        self.verbose = verbose
        self.queue: list[tuple[str | None, list[Any]]] = []
        self.jobs: list[tuple[bool, Any, str | None]] = []

    def queue_job(self, name: str | None, *ops: Any) -> None:
        fields = op_common(self.opts)
        for op in ops:
            for key, value in fields.items():
                setattr(op, key, value)
        self.queue.append((name, list(ops)))

    def submit_pending(self) -> None:
        if not self.queue:
            return
        results = self.client.submit_many_jobs([ops for _, ops in self.queue])
        for (status, data), (name, _) in zip(results, self.queue, strict=True):
            self.jobs.append((bool(status), data, name))
        self.queue = []

    @staticmethod
    def _for(name: str | None) -> str:
        return f" for {name}" if name else ""

    def get_results(self) -> list[tuple[bool, Any]]:
        """Wait for all jobs; (success, opcode results or error text) per job."""
        self.submit_pending()
        if self.verbose:
            ok_ids = [str(job_id) for ok, job_id, _ in self.jobs if ok]
            if ok_ids:
                write(f"Submitted jobs {', '.join(ok_ids)}")
        results: list[tuple[bool, Any]] = []
        for ok, job_id, name in self.jobs:
            if not ok:
                warn(f"Failed to submit job{self._for(name)}: {job_id}")
                results.append((False, job_id))
                continue
            write(f"Waiting for job {job_id}{self._for(name)} ...")
            try:
                results.append((True, poll_job(self.client, int(job_id))))
            except errors.JobLost as err:
                warn(f"Job {job_id}{self._for(name)} has been archived, cannot check its result")
                results.append((False, str(err)))
            except errors.GenericError as err:
                text = format_error_text(err)
                warn(f"Job {job_id}{self._for(name)} has failed: {text}")
                results.append((False, text))
        return results

    def wait_or_show(self, wait: bool) -> list[tuple[bool, Any]]:
        """With ``wait`` like `get_results`; else print ``ID: name`` per job."""
        if wait:
            return self.get_results()
        self.submit_pending()
        for ok, job_id, name in self.jobs:
            if ok:
                write(f"{job_id}: {name}")
            else:
                warn(f"Failure for {name}: {job_id}")
        return [(ok, job_id) for ok, job_id, _ in self.jobs]


def run_main(
    prog: str,
    commands: dict[str, Command],
    argv: Sequence[str] | None = None,
    client: Any = None,
) -> int:
    """The ``main()`` of a gnt-* program: common.generic_main over our table."""
    return common.generic_main(prog, common_table(commands), argv, client)
