"""Running OS scripts: create/import/export/rename with a per-run log, and verify.

Scripts run as Ganeti runs them: the OS directory as working directory, an
environment built from scratch (`corral.osapi.env`), their own process group
(so a timeout kills the whole tree), output to a log file named like Ganeti's
(``<log_dir>/os/add-<os>-<instance>-<YYYY-MM-DD_HH_MM_SS>.log``, kept after
the run). A non-zero exit raises `errors.OSError_` with Ganeti's wording and
the last lines of the log, which is what the user sees in the job error.

These calls block; noded runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO, Any

from corral import errors
from corral.osapi.definition import (
    OS_API_V20,
    OS_SCRIPTS,
    OS_VALIDATE_PARAMETERS,
    SCRIPT_CREATE,
    SCRIPT_CREATE_UNTRUSTED,
    SCRIPT_VERIFY,
    OsDefinition,
    check_variant,
    get_os,
    split_name,
)
from corral.osapi.env import core_env

#: Lines of the log quoted in a failure message (Ganeti: 20)
LOG_TAIL_LINES = 20
#: Default timeouts (seconds); Ganeti has none for create, we bound it anyway
DEFAULT_SCRIPT_TIMEOUT = 3600.0
DEFAULT_VERIFY_TIMEOUT = 60.0
#: Log file kinds per script (Ganeti's _InstanceLogName "kind")
LOG_KIND = {"create": "add", "import": "import", "export": "export", "rename": "rename"}

_Stream = int | IO[Any] | None


def log_file_name(
    os_log_dir: str,
    kind: str,
    os_name: str,
    instance_name: str,
    component: str | None = None,
    when: float | None = None,
) -> str:
    """Ganeti's _InstanceLogName: ``<dir>/<kind>-<os>-<instance><component>-<ts>.log``.

    `kind` is ``add``, ``import``, ``export`` or ``rename`` (see `LOG_KIND`);
    `os_name` is the full name with variant (``noop+default``).
    """
    stamp = time.strftime("%Y-%m-%d_%H_%M_%S", time.localtime(when))
    base = f"{kind}-{os_name}-{instance_name}{component or ''}-{stamp}.log"
    return os.path.join(os_log_dir, base.replace("/", "_"))


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of `path` (decoded leniently), or "" if unreadable."""
    try:
        with open(path, "rb") as fh:
            tail = deque(fh, maxlen=lines)
    except OSError:
        return ""
    return "\n".join(line.decode("utf-8", "replace").rstrip("\n") for line in tail)


def _fail_reason(returncode: int | None, timeout: float | None) -> str:
    """Ganeti's RunResult.fail_reason wording."""
    if returncode is None:
        return f"terminated after timeout of {timeout:.2f} seconds"
    if returncode < 0:
        return f"terminated by signal {-returncode}"
    return f"exited with exit code {returncode}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _poll_ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float | None) -> int:
    """``proc.wait(timeout)``, woken by the kernel the moment the process exits.

    Popen.wait with a timeout polls, sleeping 0.5 ms, 1 ms, 2 ms... between
    checks: that added 1-3 ms to each run of a short script (a third of a noop
    OS's create). A pidfd turns readable exactly when the process ends.
    Raises subprocess.TimeoutExpired like Popen.wait.
    """
    if timeout is None:
        return proc.wait()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(_poll_ms(timeout)):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


def _output_and_status(
    proc: subprocess.Popen[bytes], timeout: float | None
) -> tuple[bytes, int | None]:
    """All of `proc`'s stdout and its exit status; None (group killed) after `timeout`.

    ``communicate(timeout)`` without Popen.wait's sleeping poll (see `_wait_exit`).
    """
    assert proc.stdout is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    try:
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not poller.poll(_poll_ms(remaining)):
                    raise subprocess.TimeoutExpired(proc.args, timeout or 0)
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
        returncode: int | None = _wait_exit(
            proc, None if deadline is None else max(0.0, deadline - time.monotonic())
        )
        proc.stdout.close()
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rest, _ = proc.communicate()
        chunks.append(rest or b"")
        returncode = None
    return b"".join(chunks), returncode


def _command(os_def: OsDefinition, script: str, args: Sequence[str]) -> list[str]:
    if not os_def.status:
        raise errors.OSError_(os_def.diagnose)
    if script not in OS_SCRIPTS:
        raise errors.OSError_(f"Unknown OS script '{script}'")
    path = os_def.script_path(script)
    if script == SCRIPT_CREATE and not os_def.trusted:
        raise errors.OSError_(
            f"OS {os_def.name} has only an untrusted create script"
            f" ('{SCRIPT_CREATE_UNTRUSTED}'), which corral does not run"
        )
    if script == SCRIPT_VERIFY and max(os_def.api_versions) < OS_API_V20:
        raise errors.OSError_(f"OS {os_def.name} has no verify script (API < 20)")
    if not os.path.isfile(path):
        raise errors.OSError_(f"File '{script}' under path '{os_def.path}' is missing")
    return [path, *args]


def run_script(
    os_def: OsDefinition,
    script: str,
    env: Mapping[str, str],
    log_path: str,
    timeout: float | None = DEFAULT_SCRIPT_TIMEOUT,
    *,
    stdin: _Stream = None,
    stdout: _Stream = None,
    args: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
) -> None:
    """Run `script` of `os_def` with exactly `env`; output goes to `log_path`.

    `log_path` is chosen by the caller (see `log_file_name`); its parent
    directories are created (mode 0750) and the file is kept. stdout and stderr
    both go to the log, except for ``export`` given a `stdout` (the disk dump
    stream; stderr still goes to the log). ``import`` reads `stdin` (default:
    /dev/null). `pass_fds` keeps extra descriptors open (``EXP_SIZE_FD``).

    Raises `errors.OSError_` -- ``OS <script> script failed (<reason>), last
    lines in the log file:`` followed by the log tail -- when the script exits
    non-zero, is killed or runs past `timeout` seconds (None = no limit).
    """
    cmd = _command(os_def, script, args)
    log_dir = os.path.dirname(log_path)
    if log_dir:
        os.makedirs(log_dir, mode=0o750, exist_ok=True)
    with open(log_path, "ab") as log:
        out: _Stream = stdout if stdout is not None else log
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=os_def.path,
                env=dict(env),
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                pass_fds=tuple(pass_fds),
            )
        except OSError as err:
            raise errors.OSError_(f"Can't run OS {script} script {cmd[0]}: {err}") from err
        try:
            returncode: int | None = _wait_exit(proc, timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            returncode = None
        except BaseException:
            _kill_group(proc)
            raise
    if returncode == 0:
        return
    reason = _fail_reason(returncode, timeout)
    raise errors.OSError_(
        f"OS {script} script failed ({reason}), last lines in the log file:\n{log_tail(log_path)}"
    )


def check_os_parameters(os_def: OsDefinition, names: Sequence[str]) -> None:
    """Ganeti's _CheckOSPList: every parameter must be declared by the OS."""
    supported = {pname for pname, _ in os_def.parameters}
    unknown = sorted(set(names) - supported)
    if unknown:
        raise errors.OSError_(
            f"The following parameters are not supported by the OS {os_def.name}:"
            f" {', '.join(unknown)}"
        )


def os_verify_parameters(
    search_path: Sequence[str],
    name_with_variant: str,
    osparams: Mapping[str, Any],
    *,
    required: bool = True,
    force_variant: bool = False,
    checks: Sequence[str] = (OS_VALIDATE_PARAMETERS,),
    timeout: float | None = DEFAULT_VERIFY_TIMEOUT,
    extra_env: Mapping[str, str] | None = None,
) -> bool:
    """Ganeti's ValidateOS on this node: find the OS, check variant and parameters.

    Returns False when the OS is not found and not `required` (the node simply
    lacks it), True when it validated (or has API < 20, which has no verify
    script). Raises `errors.OSError_` otherwise: the lookup/variant errors of
    `find_os`, undeclared parameters, or ``OS validation script failed
    (<reason>), output: <output>`` when ``verify parameters`` refuses them.
    """
    name, variant = split_name(name_with_variant)
    try:
        os_def = get_os(search_path, name)
    except errors.OSError_:
        if required:
            raise
        return False
    if not force_variant:
        check_variant(os_def, variant)
    if max(os_def.api_versions) < OS_API_V20:
        return True
    if OS_VALIDATE_PARAMETERS in checks:
        check_os_parameters(os_def, list(osparams))
    env = core_env(os_def, variant, osparams)
    if extra_env:
        env.update(extra_env)
    cmd = _command(os_def, SCRIPT_VERIFY, list(checks))
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=os_def.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        raise errors.OSError_(f"Can't run OS verify script {cmd[0]}: {err}") from err
    try:
        raw, returncode = _output_and_status(proc, timeout)
    except BaseException:
        _kill_group(proc)
        raise
    if returncode != 0:
        output = raw.decode("utf-8", "replace").strip()
        raise errors.OSError_(
            f"OS validation script failed ({_fail_reason(returncode, timeout)}), output: {output}"
        )
    return True
