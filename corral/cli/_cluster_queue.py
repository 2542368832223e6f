"""``gnt-cluster queue drain|undrain|info`` and ``gnt-cluster watcher
pause DURATION|continue|info``, with Ganeti's words.

A drained queue accepts no new jobs; a paused watcher (or a drained queue)
makes the master's watcher skip its rounds, automatic failover included: the
switch for maintenance windows.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from corral import errors
from corral.cli import _util as U


def queue_ops(opts: argparse.Namespace, client: Any) -> int:
    command = opts.queue_command
    if command in ("drain", "undrain"):
        client.set_drain_flag(command == "drain")
    elif command == "info":
        (drained,) = client.query_config_values(["drain_flag"])
        U.write(f"The drain flag is {'set' if drained else 'unset'}")
    else:
        raise errors.OpPrereqError(f"Command '{command}' is not valid.", errors.ECODE_INVAL)
    return 0


def _show_pause(until: Any) -> None:
    if until is None or float(until) < time.time():
        U.write("The watcher is not paused.")
    else:
        U.write(f"The watcher is paused until {time.ctime(float(until))}.")


def watcher_ops(opts: argparse.Namespace, client: Any) -> int:
    command, *rest = opts.watcher_args
    if command == "continue":
        client.set_watcher_pause(None)
        U.write("The watcher is no longer paused.")
    elif command == "pause":
        if not rest:
            raise errors.OpPrereqError("Missing pause duration", errors.ECODE_INVAL)
        from corral.cli.gnt_job import parse_timespec

        until = time.time() + parse_timespec(rest[0])
        client.set_watcher_pause(until)
        _show_pause(until)
    elif command == "info":
        (until,) = client.query_config_values(["watcher_pause"])
        _show_pause(until)
    else:
        raise errors.OpPrereqError(f"Command '{command}' is not valid.", errors.ECODE_INVAL)
    return 0
