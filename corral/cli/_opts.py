"""The gnt-* command tables: options, positional arguments, parsing.

Ganeti describes each ``gnt-xxx`` sub-command as (function, arguments,
options, usage, help); `Command` is that tuple with *named* positional
arguments, run by common.py's ``generic_main`` (`common_table`);
`parse_command` parses a command line the same way without running it, so
each command's parsing is testable without a master. Option value types
implement Ganeti's option types (keyval, identkeyval, unit, yes|no) and turn
bad values into usage errors. The common options keep Ganeti's ``cli_opts``
names (``FORCE_OPT`` ...).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral import constants as C
from corral import errors
from corral.cli import common
from corral.utils.keyval import (
    parse_bool,
    split_ident_key_val,
    split_key_val,
    split_multilist_ident_key_val,
)
from corral.utils.units import UNIT_CHOICES, parse_unit


class ClientLike(Protocol):
    """The part of ``corral.api.client.Client`` these commands use."""

    def submit_job(self, ops: list[Any]) -> int: ...

    def query(self, what: str, fields: list[str], qfilter: list[Any] | None) -> dict[str, Any]: ...

    def query_cluster_info(self) -> dict[str, Any]: ...

    def query_config_values(self, names: list[str]) -> list[Any]: ...

    def query_tags(self, kind: str, name: str | None) -> list[str]: ...


CommandFn = Callable[[argparse.Namespace, Any], int]


# --- command table -------------------------------------------------------------

#: one option (common.py's `Option`: argparse flags and keyword arguments)
Opt = common.Option
opt = common.option


@dataclass(frozen=True)
class Arg:
    """A positional argument; ``nargs`` as argparse (None = exactly one)."""

    name: str
    nargs: str | None = None
    metavar: str | None = None


@dataclass(frozen=True)
class Command:
    """One ``gnt-xxx <command>``: function, named arguments, options, usage, help.

    `as_common` turns it into common.py's `Command` (one ``args`` list); the
    wrapper hands the positional arguments to the function under their
    `Arg` names (``opts.name``, ``opts.names`` ...), after Ganeti's count
    check (``Error: Command add expects 1 argument(s)``, exit 1).
    """

    func: CommandFn
    args: list[Arg]
    options: list[Opt]
    usage: str
    help: str
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def arg_counts(self) -> tuple[int, int | None]:
        """(minimum, maximum or None) number of positional arguments."""
        low, high = 0, 0
        unbounded = False
        for arg in self.args:
            if arg.nargs is None:
                low, high = low + 1, high + 1
            elif arg.nargs == "?":
                high += 1
            else:
                unbounded = True
                low += 1 if arg.nargs == "+" else 0
        return low, None if unbounded else high

    def as_common(self, name: str) -> common.Command:
        def run(opts: argparse.Namespace, client: Any) -> int:
            try:
                distribute_args(name, self, opts)
            except UsageError as err:
                common.warn(str(err))
                return err.code
            return self.func(opts, client)

        return common.Command(
            func=run,
            help=self.help,
            usage=self.usage,
            nargs="*" if self.args else None,
            options=list(self.options),
            aliases=self.aliases,
            extra=dict(self.extra),
        )


class UsageError(Exception):
    """Wrong number of positional arguments (Ganeti: exit 1, "Error: ...")."""

    def __init__(self, message: str, code: int = C.EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def distribute_args(name: str, cmd: Command, opts: argparse.Namespace) -> None:
    """Check the argument count and set ``opts.<Arg.name>`` for each `Arg`."""
    given = list(getattr(opts, "args", None) or [])
    low, high = cmd.arg_counts()
    if len(given) < low or (high is not None and len(given) > high):
        if high is None:
            text = f"at least {low}"
        elif low == high:
            text = str(low)
        elif len(given) < low:
            text = f"at least {low}"
        else:
            text = f"at most {high}"
        raise UsageError(f"Error: Command {name} expects {text} argument(s)")
    rest = given
    for idx, arg in enumerate(cmd.args):
        if arg.nargs is None:
            setattr(opts, arg.name, rest[0])
            rest = rest[1:]
        elif arg.nargs == "?":
            needed_after = sum(1 for a in cmd.args[idx + 1 :] if a.nargs in (None, "+"))
            take = rest[:1] if len(rest) > needed_after else []
            setattr(opts, arg.name, take[0] if take else None)
            rest = rest[len(take) :]
        else:
            setattr(opts, arg.name, list(rest))
            rest = []


def common_table(commands: dict[str, Command]) -> dict[str, common.Command]:
    """The command table in common.py's form (what `generic_main` runs)."""
    return {name: cmd.as_common(name) for name, cmd in commands.items()}


def parse_command(
    prog: str, commands: dict[str, Command], argv: Sequence[str]
) -> tuple[Command, argparse.Namespace]:
    """Parse ``argv`` exactly as ``gnt-xxx`` does, without running anything.

    For tests and tools: raises `UsageError` (with the exit code) where the
    real program would print a usage error; ``--help`` raises SystemExit(0).
    """
    parser = common.build_parser(prog, common_table(commands))
    try:
        opts = common.parse_interleaved(parser, list(argv))
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise UsageError(f"usage error in: {' '.join(argv)}", int(exit_.code)) from None
    name = str(opts.command)
    cmd = commands.get(name) or next(c for c in commands.values() if name in c.aliases)
    distribute_args(name, cmd, opts)
    return cmd, opts


# --- option value types ----------------------------------------------------------


def arg_type(fn: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return fn(value)
        except (errors.ParameterError, errors.UnitParseError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    convert.__name__ = what
    return convert


keyval_type = arg_type(split_key_val, "keyval")
identkeyval_type = arg_type(split_ident_key_val, "identkeyval")
multilist_type = arg_type(split_multilist_ident_key_val, "multilistidentkeyval")
unit_type = arg_type(parse_unit, "unit")
bool_type = arg_type(parse_bool, "yes|no")


def list_type(value: str) -> list[str]:
    """Comma separated list (empty string = empty list)."""
    return [item for item in value.split(",")] if value else []


def maybe_float_type(value: str) -> float | str:
    if value.lower() == "default":
        return "default"
    try:
        return float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"invalid number '{value}'") from err


# --- common options (Ganeti's cli_opts names) -------------------------------------

FORCE_OPT = opt("-f", "--force", action="store_true", default=False, help="Force the operation")
SUBMIT_OPT = opt(
    "--submit",
    dest="submit_only",
    action="store_true",
    default=False,
    help="Submit the job and return the job ID, but don't wait for the job to finish",
)
PRINT_JOBID_OPT = opt(
    "--print-jobid",
    dest="print_jobid",
    action="store_true",
    default=False,
    help="Additionally print the job as first line on stdout (for scripting).",
)
DRY_RUN_OPT = opt(
    "--dry-run",
    action="store_true",
    default=False,
    help="Do not execute the operation, just run the check steps and verify if it could be"
    " executed",
)
PRIORITY_OPT = opt(
    "--priority",
    default=None,
    choices=("low", "normal", "high"),
    help="Priority for opcode processing",
)
NOHDR_OPT = opt(
    "--no-headers", action="store_true", default=False, help="Don't display column headers"
)
SEP_OPT = opt(
    "--separator", default=None, help="Separator between output fields (defaults to one space)"
)
USEUNITS_OPT = opt(
    "--units", default=None, choices=UNIT_CHOICES, help="Specify units for output (one of h/m/g/t)"
)
FIELDS_OPT = opt(
    "-o", "--output", default=None, metavar="FIELDS", help="Comma separated list of output fields"
)
VERBOSE_OPT = opt(
    "-v",
    "--verbose",
    action="store_true",
    default=False,
    help="Increase the verbosity of the operation",
)
FORCE_FILTER_OPT = opt(
    "-F",
    "--filter",
    dest="force_filter",
    action="store_true",
    default=False,
    help="Whether command argument should be treated as filter",
)
TAG_SRC_OPT = opt("--from", dest="tags_source", default=None, help="File with tag names")
IALLOCATOR_OPT = opt(
    "-I",
    "--iallocator",
    default=None,
    metavar="<NAME>",
    help="Select nodes for the instance automatically using the <NAME> iallocator plugin",
)
EARLY_RELEASE_OPT = opt(
    "--early-release",
    action="store_true",
    default=False,
    help="Release the locks on the secondary node(s) early",
)
IGNORE_IPOLICY_OPT = opt(
    "--ignore-ipolicy",
    action="store_true",
    default=False,
    help="Ignore instance policy violations",
)
NODE_PARAMS_OPT = opt(
    "--node-parameters",
    dest="ndparams",
    type=keyval_type,
    default=None,
    help="Node parameters",
)
NODEGROUP_OPT = opt(
    "-g",
    "--node-group",
    dest="nodegroup",
    default=None,
    metavar="<nodegroup>",
    help="Node group (name or uuid)",
)
SUBMIT_OPTS = [SUBMIT_OPT, PRINT_JOBID_OPT]
LIST_OPTS = [NOHDR_OPT, SEP_OPT, USEUNITS_OPT, FIELDS_OPT, VERBOSE_OPT, FORCE_FILTER_OPT]

IPOLICY_OPTS = [
    opt(
        "--ipolicy-bounds-specs",
        dest="ipolicy_bounds_specs",
        type=multilist_type,
        default=None,
        help="Complete instance specs limits",
    ),
    opt(
        "--ipolicy-disk-templates",
        dest="ipolicy_disk_templates",
        type=list_type,
        default=None,
        help="Comma-separated list of enabled disk templates",
    ),
    opt(
        "--ipolicy-vcpu-ratio",
        dest="ipolicy_vcpu_ratio",
        type=maybe_float_type,
        default=None,
        help="The maximum allowed vcpu-to-cpu ratio",
    ),
    opt(
        "--ipolicy-spindle-ratio",
        dest="ipolicy_spindle_ratio",
        type=maybe_float_type,
        default=None,
        help="The maximum allowed instances to spindle ratio",
    ),
]

_PRIORITIES = {"low": 10, "normal": C.OP_PRIO_DEFAULT, "high": -10}


def op_common(opts: argparse.Namespace) -> dict[str, Any]:
    """Opcode fields every command sets from its options (dry run, priority)."""
    result: dict[str, Any] = {}
    if getattr(opts, "dry_run", False):
        result["dry_run"] = True
    prio = getattr(opts, "priority", None)
    if prio is not None:
        result["priority"] = _PRIORITIES[prio]
    return result


# Options shared by gnt-instance migrate and gnt-node migrate
NONLIVE_OPT = opt(
    "--non-live",
    dest="live",
    action="store_false",
    default=True,
    help="Do a non-live migration (this usually means freeze the instance, save the"
    " state, transfer and only then resume running on the secondary node)",
)
MIGRATION_MODE_OPT = opt(
    "--migration-mode",
    default=None,
    choices=["live", "non-live"],
    help="Override default migration mode (choose either live or non-live",
)
