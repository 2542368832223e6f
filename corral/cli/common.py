"""Shared CLI plumbing for the gnt-* commands (Ganeti's lib/cli.py, the parts we need).

* `generic_main(prog, commands)`: argparse sub-commands from a `Command`
  table, ``--help`` per command, and the error policy: every corral error,
  KeyboardInterrupt and broken pipe becomes Ganeti's message on stderr and an
  exit code, never a traceback.
* Jobs: `submit_or_wait` (``--submit`` prints ``JobID: N`` and exits 0 via
  `JobSubmitted`), `poll_job` (follows the job log, printing
  ``time.ctime(sec) + " " + text``), `wait_for_result_jobs` (``Submitted jobs
  23, 24`` / ``Waiting for job 23 ...`` for LUs that spawn jobs).
* Lists: `generic_list` / `generic_list_fields` with ``-o [+]f1,f2``,
  ``--no-headers``, ``--separator``, ``--units``, ``-v``; special cells ``*``
  (offline), ``?`` (no data), ``-`` (unavailable), ``??`` (unknown field, exit
  14); numbers right-aligned; `format_unit` as Ganeti's FormatUnit.
* `format_generic_info`: Ganeti's PrintGenericInfo (YAML-like ``key: value``).
* `format_error`: Ganeti's FormatError wording, e.g. ``Failure: prerequisites
  not met for this operation:\\nerror type: X, error details:\\nmsg``.
* `ask_user`: yes/no on the terminal; no terminal means "no".

Nothing here imports asyncio; the API client is imported on first use.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from corral import constants as C
from corral import errors
from corral.utils.units import UNIT_CHOICES, format_unit

__all__ = [
    "Command",
    "JobSubmitted",
    "Option",
    "ask_user",
    "format_error",
    "format_generic_info",
    "format_log_line",
    "format_table",
    "format_timestamp",
    "format_unit",
    "generic_list",
    "generic_list_fields",
    "generic_main",
    "get_client",
    "option",
    "parse_fields",
    "poll_job",
    "submit_or_wait",
    "wait_for_result_jobs",
]

WAIT_TIMEOUT: Final = 10.0

# Result statuses of query cells (Ganeti's RS_*) and how they print
RS_NORMAL: Final = 0
_RS_TEXT: Final[dict[int, tuple[str, str]]] = {
    1: ("(unknown)", "??"),
    2: ("(nodata)", "?"),
    3: ("(unavail)", "-"),
    4: ("(offline)", "*"),
}
_KIND_NAMES: Final[dict[str, str]] = {
    "unknown": "Unknown",
    "text": "Text",
    "bool": "Boolean",
    "number": "Number",
    "float": "Floating-point number",
    "unit": "Storage size",
    "timestamp": "Timestamp",
    "other": "Custom",
}
_NUMERIC_KINDS: Final = frozenset({"number", "float", "unit"})


def format_result_error(status: int, verbose: bool = True) -> str:
    """Ganeti's FormatResultError: the text of a non-normal result status."""
    verbose_text, short = _RS_TEXT.get(status, ("(unknown)", "??"))
    return verbose_text if verbose else short


# --- output -----------------------------------------------------------------------------


def write(text: str = "") -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def warn(text: str) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def format_timestamp(ts: Sequence[int] | None) -> str:
    """``[sec, usec]`` as ``2026-11-25 06:17:07.543097`` (local time), "?" if unset."""
    if not isinstance(ts, list | tuple) or len(ts) != 2:
        return "?"
    sec, usec = int(ts[0]), int(ts[1])
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec)) + f".{usec:06d}"


def format_log_line(entry: Sequence[Any]) -> str:
    """A job log entry as the CLI prints it: ``time.ctime(sec) + " " + text``."""
    _serial, stamp, _kind, text = entry
    sec = stamp[0] if isinstance(stamp, list | tuple) else stamp
    return f"{time.ctime(float(sec))} {text}"


# --- errors -------------------------------------------------------------------------------


class JobSubmitted(Exception):  # Ganeti: JobSubmittedException
    """Raised by `submit_or_wait` with --submit; generic_main prints ``JobID: N``."""

    def __init__(self, job_id: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def format_error(err: BaseException) -> tuple[int, str]:
    """(exit code, message) for an error, worded as Ganeti's FormatError."""
    code = C.EXIT_FAILURE
    if isinstance(err, JobSubmitted):
        return C.EXIT_SUCCESS, f"JobID: {err.job_id}"
    if isinstance(err, errors.OpPrereqError):
        text = "Failure: prerequisites not met for this operation:\n"
        if err.ecode:
            text += f"error type: {err.ecode}, error details:\n"
        return code, text + err.msg
    if isinstance(err, errors.OpExecError):
        return code, f"Failure: command execution error:\n{err}"
    if isinstance(err, errors.HooksAbort):
        return code, f"Failure: hooks execution failed:\n{err}"
    if isinstance(err, errors.HooksFailure):
        return code, f"Failure: hooks general failure: {err}"
    if isinstance(err, errors.ResolverError):
        return code, f"Failure: can't resolve hostname {err}"
    if isinstance(err, errors.ConfigurationError):
        return code, f"Corrupt configuration file: {err}\nAborting."
    if isinstance(err, errors.TagError):
        return code, f"Failure: invalid tag(s) given:\n{err}"
    if isinstance(err, errors.JobQueueDrainError):
        return code, ("Failure: the job queue is marked for drain and doesn't accept new requests")
    if isinstance(err, errors.TypeEnforcementError):
        return code, f"Parameter Error: {err}"
    if isinstance(err, errors.ParameterError):
        return code, f"Failure: unknown/wrong parameter name '{err}'"
    if isinstance(err, errors.JobLost):
        return code, f"Error checking job status: {err}"
    if isinstance(err, errors.NoMasterError):
        master = _known_master()
        if master and master != _this_node():
            return C.EXIT_NOTMASTER, (
                f"This is not the master node, please connect to node '{master}' and"
                " rerun the command"
            )
        return code, (
            "Cannot communicate with the master daemon.\n"
            "Is it running and listening for connections?"
        )
    if isinstance(err, errors.LocalApiError):
        return code, f"Error while talking to the master daemon:\n{err}"
    if isinstance(err, errors.GenericError):
        return code, f"Unhandled Ganeti error: {err}"
    return code, f"Unhandled exception: {err}"


def _known_master() -> str | None:
    """The master's name from this node's ssconf file, if it has one."""
    from corral.paths import DEFAULT_PATHS

    try:
        with open(os.path.join(DEFAULT_PATHS.ssconf_dir, "ssconf_master_node")) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _this_node() -> str:
    import socket

    return socket.gethostname()


# --- client and jobs ---------------------------------------------------------------------


def get_client() -> Any:
    """The local API client (imported lazily to keep `--help` fast)."""
    from corral.api.client import Client

    return Client()


class _Reporter:
    """Prints job log lines and Ganeti's "waiting" notices (once each)."""

    def __init__(self, job_id: int, feedback: Callable[[str], None] | None) -> None:
        self.job_id = job_id
        self.feedback = feedback if feedback is not None else write
        self.notified_queued = False
        self.notified_waitlock = False

    def log(self, entry: Sequence[Any]) -> None:
        self.feedback(format_log_line(entry))

    def not_changed(self, status: str | None) -> None:
        if status == C.JOB_STATUS_QUEUED and not self.notified_queued:
            warn(f"Job {self.job_id} is waiting in queue")
            self.notified_queued = True
        elif status == C.JOB_STATUS_WAITING and not self.notified_waitlock:
            warn(f"Job {self.job_id} is trying to acquire all necessary locks")
            self.notified_waitlock = True


def poll_job(client: Any, job_id: int, feedback: Callable[[str], None] | None = None) -> list[Any]:
    """Follow `job_id` until it ends, printing its log; return the opcode results.

    `feedback` receives each formatted log line (default: stdout). Raises the
    error of the failed opcode, OpExecError("Job was canceled") for a
    canceled job and JobLost if the job disappeared.
    """
    reporter = _Reporter(job_id, feedback)
    prev_info: list[Any] | None = None
    prev_serial: int | None = None
    while True:
        change = client.wait_for_job_change(
            job_id, ["status"], prev_info, prev_serial, WAIT_TIMEOUT
        )
        if change == "nochange":
            reporter.not_changed(prev_info[0] if prev_info else None)
            continue
        info, entries = change
        for entry in entries or []:
            reporter.log(entry)
            prev_serial = max(prev_serial or 0, int(entry[0]))
        status = info[0]
        if status in C.JOBS_FINALIZED:
            break
        prev_info = info
    rows = client.query_jobs([job_id], ["status", "opstatus", "opresult"])
    if not rows or rows[0] is None:
        raise errors.JobLost(f"Job with id {job_id} lost")
    status, opstatus, opresult = rows[0]
    if status == C.JOB_STATUS_SUCCESS:
        return list(opresult)
    if status in (C.JOB_STATUS_CANCELING, C.JOB_STATUS_CANCELED):
        raise errors.OpExecError("Job was canceled")
    for index, (op_status, result) in enumerate(zip(opstatus, opresult, strict=True)):
        if op_status == C.JOB_STATUS_SUCCESS:
            continue
        if op_status == C.JOB_STATUS_CANCELED:
            raise errors.OpExecError("Job was canceled")
        if result:
            raise errors.decode_exception(result)
        raise errors.OpExecError(f"Opcode {index} failed")
    raise errors.OpExecError(f"Job {job_id} ended with status {status}")


def submit_or_wait(ops: list[Any], opts: argparse.Namespace, client: Any = None) -> list[Any]:
    """Submit one job; with ``opts.submit_only`` raise `JobSubmitted`, else follow it.

    Returns the results of the job's opcodes. ``opts.dry_run`` and
    ``opts.priority`` (when present) are copied into every opcode.
    """
    if client is None:
        client = get_client()
    for op in ops:
        if getattr(opts, "dry_run", False):
            op.dry_run = True
        priority = getattr(opts, "priority", None)
        if priority is not None:
            op.priority = priority
    job_id = int(client.submit_job(ops))
    if getattr(opts, "submit_only", False):
        raise JobSubmitted(job_id)
    return poll_job(client, job_id)


def wait_for_result_jobs(client: Any, result: Any) -> list[tuple[bool, Any]]:
    """Follow the jobs an opcode spawned (``{"jobs": [[ok, id|msg], ...]}``).

    Prints ``Submitted jobs 9, 10`` then ``Waiting for job 9 ...`` and the log
    of each; returns (success, results or error text) per job.
    """
    jobs = result.get("jobs", []) if isinstance(result, dict) else []
    ids = [int(value) for ok, value in jobs if ok]
    if ids:
        write(f"Submitted jobs {', '.join(str(i) for i in ids)}")
    out: list[tuple[bool, Any]] = []
    for ok, value in jobs:
        if not ok:
            warn(f"Failed to submit job: {value}")
            out.append((False, value))
            continue
        write(f"Waiting for job {value} ...")
        try:
            out.append((True, poll_job(client, int(value))))
        except errors.GenericError as err:
            text = format_error(err)[1]
            warn(f"Job {value} has failed: {text}")
            out.append((False, text))
    return out


def ask_user(question: str) -> bool:
    """Ask a y/n question on the controlling terminal; no terminal means "no"."""
    try:
        # unbuffered binary + a text wrapper: text mode "r+" on a tty fails
        # ("not seekable")
        raw = open("/dev/tty", "r+b", buffering=0)  # noqa: SIM115 - closed below
    except OSError:
        return False
    tty = io.TextIOWrapper(raw, write_through=True)
    try:
        while True:
            tty.write(f"{question}\ny/[n]/?: ")
            tty.flush()
            answer = tty.readline()
            if not answer:
                return False
            answer = answer.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            tty.write("y - Perform the operation\nn - Do not perform the operation\n")
    except OSError:
        return False
    finally:
        tty.close()


# --- tables and lists ----------------------------------------------------------------------


def parse_fields(selected: str | None, default: Sequence[str]) -> list[str]:
    """``-o a,b`` replaces the default fields, ``-o +a,b`` appends to them."""
    if not selected:
        return list(default)
    if selected.startswith("+"):
        return [*default, *selected[1:].split(",")]
    return selected.split(",")


def format_table(
    rows: Sequence[Sequence[str]],
    titles: Sequence[str],
    right_align: Sequence[bool],
    *,
    header: bool = True,
    separator: str | None = None,
) -> list[str]:
    """Ganeti's FormatTable: padded columns, numbers right-aligned, last column unpadded."""
    data = [list(titles)] if header else []
    data += [list(r) for r in rows]
    if separator is not None:
        return [separator.join(row) for row in data]
    widths = [max((len(row[i]) for row in data), default=0) for i in range(len(titles))]
    lines = []
    for row in data:
        cells = []
        for index, (cell, width, right) in enumerate(zip(row, widths, right_align, strict=True)):
            if right:
                cells.append(cell.rjust(width))
            elif index == len(row) - 1:
                cells.append(cell)
            else:
                cells.append(cell.ljust(width))
        lines.append(" ".join(cells))
    return lines


Formatter = Callable[[Any], str]


def _format_value(kind: str, value: Any, units: str) -> str:
    if kind == "unit" and isinstance(value, int | float):
        return format_unit(value, units)
    if kind == "bool":
        return "Y" if value else "N"
    if kind == "timestamp" and isinstance(value, int | float):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if isinstance(value, list | tuple) and kind != "other":
        return ",".join(str(v) for v in value)
    return str(value)


def format_query_result(
    response: Mapping[str, Any],
    *,
    units: str = "h",
    separator: str | None = None,
    header: bool = True,
    verbose: bool = False,
    format_override: Mapping[str, tuple[Formatter, bool | None]] | None = None,
) -> tuple[int, list[str]]:
    """Render a Query reply; (exit code, lines). Unknown fields give exit 14."""
    override = format_override or {}
    fdefs = response["fields"]
    unknown = [f["name"] for f in fdefs if f.get("kind") == "unknown"]
    titles = [str(f.get("title") or f["name"]) for f in fdefs]
    right: list[bool] = []
    for fdef in fdefs:
        align = override.get(fdef["name"], (None, None))[1]
        right.append(fdef.get("kind") in _NUMERIC_KINDS if align is None else bool(align))
    rows: list[list[str]] = []
    for row in response["data"]:
        cells: list[str] = []
        for fdef, (status, value) in zip(fdefs, row, strict=True):
            if status != RS_NORMAL:
                verbose_text, short = _RS_TEXT.get(status, ("(unknown)", "??"))
                cells.append(verbose_text if verbose else short)
            elif fdef["name"] in override:
                cells.append(override[fdef["name"]][0](value))
            else:
                cells.append(_format_value(str(fdef.get("kind")), value, units))
        rows.append(cells)
    lines = format_table(rows, titles, right, header=header, separator=separator)
    return (C.EXIT_UNKNOWN_FIELD if unknown else C.EXIT_SUCCESS), lines


def name_filter(names: Sequence[Any], name_field: str = "name") -> list[Any] | None:
    """Ganeti's MakeSimpleFilter: any of `names` (None when no names)."""
    if not names:
        return None
    return ["|", *[["=", name_field, name] for name in names]]


def generic_list(
    client: Any,
    what: str,
    fields: list[str],
    names: Sequence[Any],
    opts: argparse.Namespace,
    *,
    name_field: str = "name",
    qfilter: list[Any] | None = None,
    format_override: Mapping[str, tuple[Formatter, bool | None]] | None = None,
) -> int:
    """Ganeti's GenericList: query `what` and print a table; returns the exit code."""
    separator = getattr(opts, "separator", None)
    units = getattr(opts, "units", None) or ("m" if separator is not None else "h")
    flt = name_filter(names, name_field)
    if qfilter is not None:
        flt = qfilter if flt is None else ["&", flt, qfilter]
    response = client.query(what, fields, flt)
    code, lines = format_query_result(
        response,
        units=units,
        separator=separator,
        header=not getattr(opts, "no_headers", False),
        verbose=getattr(opts, "verbose", False),
        format_override=format_override,
    )
    unknown = [f["name"] for f in response["fields"] if f.get("kind") == "unknown"]
    if unknown:
        warn(f"Warning: Queried for unknown fields {', '.join(unknown)}")
    for line in lines:
        write(line)
    return code


def generic_list_fields(
    client: Any, what: str, fields: Sequence[str], opts: argparse.Namespace
) -> int:
    """Ganeti's GenericListFields: Name, Type, Title, Description of each field."""
    response = client.query_fields(what, list(fields) or None)
    rows = [
        [
            f["name"],
            _KIND_NAMES.get(f.get("kind", ""), "Unknown"),
            f.get("title", ""),
            f.get("doc", ""),
        ]
        for f in response["fields"]
    ]
    unknown = [f["name"] for f in response["fields"] if f.get("kind") == "unknown"]
    for line in format_table(
        rows,
        ["Name", "Type", "Title", "Description"],
        [False] * 4,
        header=not getattr(opts, "no_headers", False),
        separator=getattr(opts, "separator", None),
    ):
        write(line)
    if unknown:
        warn(f"Warning: Queried for unknown fields {', '.join(unknown)}")
        return C.EXIT_UNKNOWN_FIELD
    return C.EXIT_SUCCESS


# --- generic info ------------------------------------------------------------------------------


def _is_pairs(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(x, tuple) and len(x) in (2, 3) for x in data)
    )


def _info_lines(data: Any, indent: int, out: list[str], prefix: str) -> None:
    """Append the lines of `data`; `prefix` goes before the first line."""
    pad = "  " * indent
    if isinstance(data, dict):
        data = [(str(k), data[k]) for k in sorted(data, key=str)]
    if _is_pairs(data):
        groups: dict[Any, int] = {}
        for item in data:
            if len(item) == 3:
                groups[item[2]] = max(groups.get(item[2], 0), len(str(item[0])))
        first = True
        for item in data:
            key, value = str(item[0]), item[1]
            label = f"{key}:"
            if len(item) == 3:
                label = label.ljust(groups[item[2]] + 1)
            lead = prefix if first else pad
            first = False
            if isinstance(value, dict | list):
                out.append(f"{lead}{label} ")
                _info_lines(value, indent + 1, out, "  " * (indent + 1))
            else:
                out.append(f"{lead}{label} {_inline(value)}")
        return
    if isinstance(data, list):
        first = True
        for item in data:
            lead = prefix if first else pad
            first = False
            if isinstance(item, dict | list) and item:
                _info_lines(item, indent + 1, out, f"{lead}- ")
            else:
                out.append(f"{lead}- " + ("" if isinstance(item, dict | list) else _inline(item)))
        return
    out.append(f"{prefix}{_inline(data)}")


def _inline(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def format_generic_info(data: Any) -> list[str]:
    """Ganeti's PrintGenericInfo as lines.

    Dicts print sorted by key; lists of ``(key, value)`` pairs are ordered
    mappings, ``(key, value, group)`` triples additionally align the values of
    keys in the same group; other lists print ``- item``; tuples print inline
    as ``[a, b, c]``; a key whose value is a container ends in ``": "`` and
    an empty container prints nothing more.
    """
    out: list[str] = []
    _info_lines(data, 0, out, "")
    return out


# --- main --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One command-line option: argparse flags and keyword arguments."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def option(*flags: str, **kwargs: Any) -> Option:
    return Option(flags, kwargs)


@dataclass(frozen=True)
class Command:
    """One ``gnt-xxx <command>`` (Ganeti's commands-dict entry).

    `func(opts, client)` returns the exit code; positional arguments are in
    ``opts.args`` (``nargs`` as argparse: None = none, "?", "*", "+", or 1).
    """

    func: Callable[[argparse.Namespace, Any], int]
    help: str
    usage: str = ""
    nargs: str | int | None = None
    options: Sequence[Option] = ()
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (~3 ms per CLI run)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized like argparse does but without its shutil import."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        warn(f"{self.prog}: error: {message}")
        raise SystemExit(C.EXIT_FAILURE)


# Common options (Ganeti's cli_opts)
NOHDR_OPT = option(
    "--no-headers", action="store_true", default=False, help="Don't display column headers"
)
SEP_OPT = option(
    "--separator", default=None, help="Separator between output fields (defaults to one space)"
)
FIELDS_OPT = option(
    "-o",
    "--output",
    dest="output",
    default=None,
    metavar="[+]FORMAT",
    help="Comma separated list of output fields (+f1,f2 appends to the default list)",
)
UNITS_OPT = option(
    "--units", default=None, choices=UNIT_CHOICES, help="Specify units for output (one of h/m/g/t)"
)
VERBOSE_OPT = option(
    "-v",
    "--verbose",
    action="store_true",
    default=False,
    help="Increase the verbosity of the operation",
)
SUBMIT_OPT = option(
    "--submit",
    dest="submit_only",
    action="store_true",
    default=False,
    help="Submit the job and return the job ID, but don't wait for the job to finish",
)
DRY_RUN_OPT = option(
    "--dry-run",
    action="store_true",
    default=False,
    help="Do not execute the operation, just run the check steps",
)
FORCE_OPT = option("-f", "--force", action="store_true", default=False, help="Force the operation")


def build_parser(
    prog: str, commands: Mapping[str, Command], only: str | None = None
) -> argparse.ArgumentParser:
    """The argparse parser of a ``gnt-*`` program.

    With `only` (a command name or alias) the options and arguments of that
    command alone are declared; the others get a bare sub-parser (their name,
    aliases and help, so top-level help and "invalid choice" errors read the
    same). Declaring every option of every command cost ~20 ms of each CLI run,
    and argparse selects the sub-parser by the first argument anyway.
    """
    parser = _Parser(
        prog=prog,
        usage=f"{prog} {{command}} [options...] [argument...]",
        description=f"{prog} <command> --help to see details",
    )
    subs = parser.add_subparsers(dest="command", metavar="command", title="commands")
    for name in sorted(commands):
        cmd = commands[name]
        sub = subs.add_parser(
            name,
            aliases=list(cmd.aliases),
            help=cmd.help,
            description=cmd.help,
            usage=f"{prog} {name} {cmd.usage}".rstrip(),
        )
        if only is not None and only != name and only not in cmd.aliases:
            continue
        for opt in cmd.options:
            sub.add_argument(*opt.flags, **opt.kwargs)
        if cmd.nargs is not None:
            sub.add_argument("args", nargs=cmd.nargs, metavar="ARG")
        sub.set_defaults(_command=cmd)
    return parser


def _invoked_command(commands: Mapping[str, Command], args: Sequence[str]) -> str | None:
    """The command `args` runs (argparse takes the first argument), or None."""
    if not args:
        return None
    first = args[0]
    if first in commands or any(first in cmd.aliases for cmd in commands.values()):
        return first
    return None


def parse_interleaved(parser: argparse.ArgumentParser, args: Sequence[str]) -> argparse.Namespace:
    """Parse letting options come between positional arguments.

    A corral convenience (Ganeti's optparse stops at the first positional):
    argparse fills a subcommand's positional list from the first run of
    positionals only, so ``gnt-node power status --no-headers node2`` would
    leave ``node2`` over. What is left over joins the list, for commands that
    take a variable number of arguments; anything else left over (an unknown
    option, one argument too many) is the usual usage error.
    """
    opts, extras = parser.parse_known_args(list(args))
    command = getattr(opts, "_command", None)
    variadic = command is not None and command.nargs in ("*", "+")
    unknown = [e for e in extras if e.startswith("-") and e != "-"]
    if unknown or (extras and not variadic):
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if extras:
        current = opts.args
        if current is None:
            current = []
        elif isinstance(current, str):
            current = [current]
        opts.args = [*current, *extras]
    return opts


def generic_main(
    prog: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
    client: Any = None,
) -> int:
    """Parse `argv`, run the command, map every failure to a message and exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, commands, _invoked_command(commands, args))
    if not args:
        parser.print_help(sys.stderr)
        return C.EXIT_FAILURE
    try:
        opts = parse_interleaved(parser, args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    cmd: Command = opts._command
    if not hasattr(opts, "args"):
        opts.args = []
    elif isinstance(opts.args, str):
        opts.args = [opts.args]
    elif opts.args is None:
        opts.args = []
    try:
        return int(cmd.func(opts, client if client is not None else _LazyClient()) or 0)
    except JobSubmitted as err:
        write(f"JobID: {err.job_id}")
        return C.EXIT_SUCCESS
    except errors.GenericError as err:
        code, text = format_error(err)
        warn(text)
        return code
    except KeyboardInterrupt:
        warn(
            "Aborted. Note that if the operation created any jobs, they might have been"
            " submitted and will continue to run in the background."
        )
        return C.EXIT_FAILURE
    except BrokenPipeError:
        # stdout went away (``| head``): avoid a second EPIPE when Python exits
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return C.EXIT_FAILURE


class _LazyClient:
    """Connects to the master on first use, so commands that need none never do."""

    def __init__(self) -> None:
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = get_client()
        return getattr(self._client, name)
