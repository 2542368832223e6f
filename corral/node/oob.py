"""Out-of-band management: run a node's ``oob_program`` (Ganeti's OOB protocol).

The master runs the program on itself (the program talks to the target's
management board, which is the point: the target may be dead) as
``PROGRAM COMMAND NODE_NAME``. A zero exit status is success; a non-empty
standard output is JSON (``power-status``: ``{"powered": bool}``, ``health``:
``[[item, status], ...]``), an empty one means "no data".
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from corral import constants as C
from corral import errors
from corral.node.context import NodeContext

_OUTPUT_LIMIT = 400


def run_oob(ctx: NodeContext, program: str, command: str, node: str, timeout: int) -> Any:
    """Run ``program command node``; its parsed JSON output, or None without output."""
    del ctx
    if command not in C.OOB_COMMANDS:
        raise errors.OpExecError(f"Unknown out-of-band command '{command}'")
    if not os.path.isabs(program):
        raise errors.OpExecError(f"Out-of-band program '{program}' is not an absolute path")
    if not os.access(program, os.X_OK):
        raise errors.OpExecError(f"Out-of-band program '{program}' is not executable")
    argv = [program, command, node]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise errors.OpExecError(
            f"'{' '.join(argv)}' failed with reason 'timeout after {timeout}s'"
        ) from None
    except OSError as err:
        raise errors.OpExecError(f"'{' '.join(argv)}' failed: {err.strerror}") from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-_OUTPUT_LIMIT:]
        reason = (
            f"exited with exit code {proc.returncode}"
            if proc.returncode > 0
            else f"terminated by signal {-proc.returncode}"
        )
        raise errors.OpExecError(
            f"'{' '.join(argv)}' failed with reason '{reason}'; output: {output}"
        )
    text = proc.stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise errors.OpExecError(
            f"'{' '.join(argv)}' did not print valid JSON: {text[:_OUTPUT_LIMIT]}"
        ) from None
