"""``gnt-node power on|off|cycle|status`` and ``gnt-node health`` (out-of-band).

As Ganeti: ``off`` and ``cycle`` ask for confirmation unless ``-f``; ``off``
first marks the nodes offline (one job: ``OpNodeSetParams(offline=True)``
per node, then ``OpOobCommand``) unless ``--ignore-status``. Output is a
Node/Status table: ``powered``/``unpowered`` for ``status``, ``invoked`` for
the others, ``(nodata)``/``(unavail)`` for a node whose program failed or that
has none; any such node makes the exit code 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from corral import constants as C
from corral import opcodes as op
from corral.cli import _util as U
from corral.cli.common import format_result_error, format_table

POWER_COMMANDS = ("on", "off", "cycle", "status")
_ASK = (C.OOB_POWER_OFF, C.OOB_POWER_CYCLE)

OOB_TIMEOUT_OPT = U.opt(
    "--oob-timeout",
    type=int,
    default=C.OOB_TIMEOUT,
    metavar="SECONDS",
    help="Maximum time to wait for the out-of-band helper",
)
POWER_DELAY_OPT = U.opt(
    "--power-delay",
    type=float,
    default=C.OOB_POWER_DELAY,
    metavar="SECONDS",
    help="Time in seconds to wait between power-ons",
)
IGNORE_STATUS_OPT = U.opt(
    "--ignore-status",
    action="store_true",
    default=False,
    help="Ignore the offline status of the node(s) (potentially DANGEROUS)",
)


def _confirm(names: list[str], text: str) -> bool:
    affected = "\n".join(f"  {name}" for name in names)
    return U.ask_user(
        f"The {text} will operate on {len(names)} nodes.\n"
        f"Do you want to continue?\nAffected nodes:\n{affected}"
    )


def _print(opts: argparse.Namespace, rows: list[list[str]]) -> None:
    for line in format_table(
        rows,
        ["Node", "Status"],
        [False, False],
        header=not opts.no_headers,
        separator=opts.separator,
    ):
        U.write(line)


def power_node(opts: argparse.Namespace, client: Any) -> int:
    command, *names = opts.power_args
    if command not in POWER_COMMANDS:
        U.warn(f"power subcommand {command} not supported.")
        return C.EXIT_FAILURE
    oob_command = f"power-{command}"
    if oob_command in _ASK:
        if not names:
            U.warn("Please provide at least one node for this command")
            return C.EXIT_FAILURE
        if not opts.force and not _confirm(names, f"power {command}"):
            return C.EXIT_FAILURE
    ops: list[Any] = []
    if oob_command == C.OOB_POWER_OFF and not opts.ignore_status:
        ops += [
            op.OpNodeSetParams(node_name=name, offline=True, auto_promote=opts.auto_promote)
            for name in names
        ]
    ops.append(
        op.OpOobCommand(
            node_names=names,
            command=oob_command,
            ignore_status=opts.ignore_status,
            timeout=opts.oob_timeout,
            power_delay=opts.power_delay,
        )
    )
    result = U.submit_or_wait(opts, client, ops)
    errs = 0
    rows: list[list[str]] = []
    for (_status, name), (data_status, data) in result or []:
        if data_status != C.RS_NORMAL:
            errs += 1
            rows.append([name, format_result_error(data_status)])
        elif oob_command == C.OOB_POWER_STATUS:
            rows.append([name, "powered" if data[C.OOB_POWER_STATUS_POWERED] else "unpowered"])
        else:
            rows.append([name, "invoked"])
    _print(opts, rows)
    return C.EXIT_FAILURE if errs else C.EXIT_SUCCESS


def node_health(opts: argparse.Namespace, client: Any) -> int:
    ops = [op.OpOobCommand(node_names=list(opts.names), command=C.OOB_HEALTH,
                           timeout=opts.oob_timeout)]  # fmt: skip
    result = U.submit_or_wait(opts, client, ops)
    errs = 0
    rows: list[list[str]] = []
    for (_status, name), (data_status, data) in result or []:
        if data_status != C.RS_NORMAL:
            errs += 1
            rows.append([name, format_result_error(data_status)])
            continue
        items = list(data or [])
        first = f"{items[0][0]}={items[0][1]}" if items else ""
        rows.append([name, first])
        rows += [["", f"{item}={status}"] for item, status in items[1:]]
    _print(opts, rows)
    return C.EXIT_FAILURE if errs else C.EXIT_SUCCESS


POWER_OPTS = [
    *U.SUBMIT_OPTS,
    U.opt(
        "--auto-promote",
        action="store_true",
        default=False,
        help="Lock all nodes and auto-promote as needed to MC status",
    ),
    U.PRIORITY_OPT,
    IGNORE_STATUS_OPT,
    U.FORCE_OPT,
    U.NOHDR_OPT,
    U.SEP_OPT,
    OOB_TIMEOUT_OPT,
    POWER_DELAY_OPT,
]
HEALTH_OPTS = [U.NOHDR_OPT, U.SEP_OPT, OOB_TIMEOUT_OPT, U.PRIORITY_OPT]
