"""gnt-job: list, inspect, follow and cancel jobs (Ganeti's lib/client/gnt_job.py).

gnt-job list [--no-headers] [--separator=S] [-o [+]FIELDS] [-v]
             [--pending|--running|--error|--finished|--queued|--waiting]
             [--archived] [job_id...]
gnt-job list-fields [field...]
gnt-job info job_id...
gnt-job watch job_id
gnt-job wait job_id
gnt-job cancel [--pending|... [-f]] [job_id...]
gnt-job archive job_id...
gnt-job autoarchive AGE|all
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, Final

from corral import constants as C
from corral import errors
from corral.cli import common as cli

DEFAULT_FIELDS: Final = ("id", "status", "summary")
_INFO_FIELDS: Final = [
    "id", "status", "ops", "opresult", "opstatus", "oplog",
    "opstart", "opexec", "opend", "received_ts", "start_ts", "end_ts",
]  # fmt: skip
JOBS_PENDING: Final = (C.JOB_STATUS_QUEUED, C.JOB_STATUS_WAITING, C.JOB_STATUS_CANCELING)


def _summary(value: Any) -> str:
    return ",".join(str(item) for item in value or [])


def _timestamps(value: Any) -> str:
    return ",".join(cli.format_timestamp(ts) for ts in value or [])


LIST_FORMAT: Final[dict[str, tuple[cli.Formatter, bool | None]]] = {
    "summary": (_summary, False),
    "opstart": (_timestamps, None),
    "opexec": (_timestamps, None),
    "opend": (_timestamps, None),
}


def parse_job_ids(args: Sequence[str]) -> list[int]:
    try:
        return [int(a) for a in args]
    except (TypeError, ValueError) as err:
        raise errors.OpPrereqError(f"Invalid job ID passed: {err}", errors.ECODE_INVAL) from err


def _status_filter(statuses: Sequence[str] | None) -> list[Any] | None:
    if not statuses:
        return None
    return ["|", *[["=", "status", s] for s in statuses]]


def list_jobs(opts: argparse.Namespace, client: Any) -> int:
    fields = cli.parse_fields(opts.output, DEFAULT_FIELDS)
    if opts.archived and "archived" not in fields:
        fields.append("archived")
    qfilter = _status_filter(opts.status_filter)
    if not opts.archived:
        hide = ["!", ["?", "archived"]]
        qfilter = hide if qfilter is None else ["&", qfilter, hide]
    return cli.generic_list(
        client,
        "job",
        fields,
        parse_job_ids(opts.args),
        opts,
        name_field="id",
        qfilter=qfilter,
        format_override=LIST_FORMAT,
    )


def list_fields(opts: argparse.Namespace, client: Any) -> int:
    return cli.generic_list_fields(client, "job", opts.args, opts)


def _job_timestamp(name: str, ts: Any, prior: Any = None) -> tuple[str, str, str]:
    if ts is None:
        return (name, f"unknown ({ts})", "job_timestamp")
    delta = ""
    if prior is not None:
        delta = f" (delta {ts[0] - prior[0] + (ts[1] - prior[1]) / 1e6:.6f}s)"
    return (name, cli.format_timestamp(ts) + delta, "job_timestamp")


def _op_timestamp(name: str, ts: Any) -> tuple[str, str, str]:
    text = cli.format_timestamp(ts) if isinstance(ts, list | tuple) else "N/A"
    return (name, text, "opcode_timestamp")


def job_info_data(row: list[Any]) -> Any:
    """Ganeti's ShowJobs structure for one query row (see `_INFO_FIELDS`)."""
    (
        (_, job_id), (rs_status, status), (_, ops), (_, opresult), (_, opstatus), (_, oplog),
        (_, opstart), (_, opexec), (_, opend), (_, recv_ts), (_, start_ts), (_, end_ts),
    ) = row  # fmt: skip
    if rs_status != 0:
        return f"Job ID {job_id} not found"
    info: list[Any] = [("Job ID", job_id), ("Status", status)]
    info.append(_job_timestamp("Received", recv_ts))
    info.append(_job_timestamp("Processing start", start_ts, recv_ts))
    info.append(_job_timestamp("Processing end", end_ts, start_ts))
    if end_ts is not None and recv_ts is not None:
        total = end_ts[0] - recv_ts[0] + (end_ts[1] - recv_ts[1]) / 1e6
        info.append(("Total processing time", f"{total:.6f} seconds"))
    else:
        info.append(("Total processing time", "N/A"))
    opcodes_info: list[Any] = []
    for op, result, op_status, log, s_ts, x_ts, e_ts in zip(
        ops, opresult, opstatus, oplog, opstart, opexec, opend, strict=True
    ):
        exec_log = [
            [("Time", cli.format_timestamp(ts)), ("Content", (serial, kind, msg))]
            for serial, ts, kind, msg in log
        ]
        opcodes_info.append(
            [
                ("Opcode", op.get("OP_ID")),
                ("Status", op_status),
                _op_timestamp("Processing start", s_ts),
                _op_timestamp("Execution start", x_ts),
                _op_timestamp("Processing end", e_ts),
                ("Input fields", op),
                ("Result", result),
                ("Execution log", exec_log),
            ]
        )
    info.append(("Opcodes", opcodes_info))
    return info


def show_jobs(opts: argparse.Namespace, client: Any) -> int:
    ids = parse_job_ids(opts.args)
    response = client.query("job", _INFO_FIELDS, cli.name_filter(ids, "id"))
    rows = {row[0][1]: row for row in response["data"]}
    entries: list[Any] = []
    for job_id in ids:
        row = rows.get(job_id)
        entries.append(f"Job ID {job_id} not found" if row is None else job_info_data(row))
    for line in cli.format_generic_info(entries):
        cli.write(line)
    return C.EXIT_SUCCESS


def _single_id(opts: argparse.Namespace) -> int:
    return parse_job_ids(opts.args)[0]


def watch_job(opts: argparse.Namespace, client: Any) -> int:
    job_id = _single_id(opts)
    msg = f"Output from job {job_id} follows"
    cli.write(msg)
    cli.write("-" * len(msg))
    try:
        cli.poll_job(client, job_id)
    except errors.GenericError as err:
        code, text = cli.format_error(err)
        cli.warn(f"Job {job_id} failed: {text}")
        return code
    return C.EXIT_SUCCESS


def wait_job(opts: argparse.Namespace, client: Any) -> int:
    job_id = _single_id(opts)
    try:
        cli.poll_job(client, job_id, feedback=lambda _line: None)
    except errors.GenericError as err:
        code, text = cli.format_error(err)
        cli.warn(f"Job {job_id} failed: {text}")
        return code
    return C.EXIT_SUCCESS


def cancel_jobs(opts: argparse.Namespace, client: Any) -> int:
    """Cancel the listed jobs, or (after confirmation) all with a status."""
    if bool(opts.args) == (opts.status_filter is not None):
        raise errors.OpPrereqError(
            "Either a status filter or job ID(s) must be specified and never both",
            errors.ECODE_INVAL,
        )
    if opts.status_filter is not None:
        response = client.query("job", list(DEFAULT_FIELDS), _status_filter(opts.status_filter))
        ids = [row[0][1] for row in response["data"]]
        if not ids:
            raise errors.OpPrereqError(
                "No jobs with the requested status have been found", errors.ECODE_STATE
            )
        if not opts.force:
            _code, lines = cli.format_query_result(response, format_override=LIST_FORMAT)
            for line in lines:
                cli.write(line)
            if not cli.ask_user("Cancel job(s) listed above?"):
                return C.EXIT_CONFIRMATION
    else:
        ids = parse_job_ids(opts.args)
    code = C.EXIT_SUCCESS
    for job_id in ids:
        ok, msg = client.cancel_job(job_id)
        if not ok:
            code = C.EXIT_FAILURE
        cli.write(msg)
    return code


def archive_jobs(opts: argparse.Namespace, client: Any) -> int:
    code = C.EXIT_SUCCESS
    for job_id in parse_job_ids(opts.args):
        if not client.archive_job(job_id):
            cli.warn(f"Failed to archive job with ID '{job_id}'")
            code = C.EXIT_FAILURE
    return code


_TIMESPEC = re.compile(r"^(\d+)([smhdw]?)$")
_SUFFIX = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_timespec(value: str) -> int:
    """Ganeti's ParseTimespec: ``30``, ``5m``, ``2h``, ``1d``, ``1w`` -> seconds."""
    match = _TIMESPEC.match(value.strip())
    if not match:
        raise errors.OpPrereqError(f"Invalid time specification '{value}'", errors.ECODE_INVAL)
    return int(match.group(1)) * _SUFFIX[match.group(2)]


def autoarchive(opts: argparse.Namespace, client: Any) -> int:
    age = -1 if opts.args[0] == "all" else parse_timespec(opts.args[0])
    count, left = client.auto_archive_jobs(age)
    cli.write(f"Archived {count} jobs, {left} unchecked left")
    return C.EXIT_SUCCESS


def _status_opt(flag: str, statuses: Sequence[str], text: str) -> cli.Option:
    return cli.option(
        flag, dest="status_filter", action="store_const", const=tuple(statuses), help=text
    )


STATUS_OPTS: Final = (
    _status_opt("--pending", JOBS_PENDING, "Select jobs pending execution or being cancelled"),
    _status_opt("--running", (C.JOB_STATUS_RUNNING,), "Show jobs currently running only"),
    _status_opt("--error", (C.JOB_STATUS_ERROR,), "Show failed jobs only"),
    _status_opt("--finished", sorted(C.JOBS_FINALIZED), "Show finished jobs only"),
    _status_opt("--queued", (C.JOB_STATUS_QUEUED,), "Select queued jobs only"),
    _status_opt("--waiting", (C.JOB_STATUS_WAITING,), "Select waiting jobs only"),
)
ARCHIVED_OPT: Final = cli.option(
    "--archived", action="store_true", default=False, help="Include archived jobs in list"
)

COMMANDS: Final[dict[str, cli.Command]] = {
    "list": cli.Command(
        list_jobs,
        "Lists the jobs and their status. The available fields can be shown using the"
        ' "list-fields" command (see the man page for details). The default field list is'
        f" ({', '.join(DEFAULT_FIELDS)}).",
        usage="[job_id ...]",
        nargs="*",
        options=(
            cli.NOHDR_OPT,
            cli.SEP_OPT,
            cli.FIELDS_OPT,
            cli.VERBOSE_OPT,
            *STATUS_OPTS,
            ARCHIVED_OPT,
        ),
    ),
    "list-fields": cli.Command(
        list_fields,
        "Lists all available fields for jobs",
        usage="[fields...]",
        nargs="*",
        options=(cli.NOHDR_OPT, cli.SEP_OPT),
    ),
    "info": cli.Command(
        show_jobs, "Show detailed information about jobs", "<job-id> ...", nargs="+"
    ),
    "watch": cli.Command(
        watch_job, "Follows a job and prints its output as it arrives", "<job-id>", nargs=1
    ),
    "wait": cli.Command(wait_job, "Wait for a job to finish", "<job-id>", nargs=1),
    "cancel": cli.Command(
        cancel_jobs,
        "Cancel jobs",
        "{[--force] {--pending | --queued | --waiting} | <job-id> [<job-id> ...]}",
        nargs="*",
        options=(cli.FORCE_OPT, *STATUS_OPTS),
    ),
    "archive": cli.Command(
        archive_jobs, "Archive specified jobs", "<job-id> [<job-id> ...]", nargs="+"
    ),
    "autoarchive": cli.Command(
        autoarchive,
        "Auto archive jobs older than the given age",
        "<age>",
        nargs=1,
    ),
}


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    return cli.generic_main("gnt-job", COMMANDS, argv, client)


if __name__ == "__main__":
    sys.exit(main())
