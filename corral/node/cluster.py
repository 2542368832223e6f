"""Cluster-level duties of a node: ssconf, config and queue copies, master role, hooks.

* ssconf: one small file per key, ``<ssconf_dir>/ssconf_<key>`` (Ganeti's
  layout), written atomically; read by the CLI on any node to find the master.
* master candidates keep a copy of ``config.data`` and of every job file
  (``<data_dir>/queue/job-<id>.json``) so a master failover keeps state.
* the master IP is an extra address on the master netdev (``ip addr add``).
* hooks: executables in ``<hooks_dir>/<hpath>-<phase>.d/`` run in name order
  with the ``GANETI_*`` environment; results use Ganeti's codes
  (0 = skipped, 1 = failed, 2 = succeeded).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import msgspec

from corral import errors
from corral.node.context import NodeContext
from corral.node.security import atomic_write

SSCONF_PREFIX = "ssconf_"
SSCONF_MAX_SIZE = 128 * 1024
_SSCONF_KEY = re.compile(r"^[a-z0-9_]+$")
_HOOK_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
HOOK_TIMEOUT = 600.0

HKR_SKIP = 0
HKR_FAIL = 1
HKR_SUCCESS = 2


# -- ssconf -------------------------------------------------------------------------------
def write_ssconf_files(ctx: NodeContext, values: dict[str, str]) -> None:
    """Write ``ssconf_<key>`` for every key given (others are left alone)."""
    for key, value in values.items():
        if not _SSCONF_KEY.match(key):
            raise errors.ParameterError(f"Invalid ssconf key '{key}'")
        data = value.encode()
        if len(data) > SSCONF_MAX_SIZE:
            raise errors.ParameterError(f"ssconf value for '{key}' is too big")
        if data and not data.endswith(b"\n"):
            data += b"\n"
        atomic_write(os.path.join(ctx.paths.ssconf_dir, SSCONF_PREFIX + key), data, 0o444)


def read_ssconf(ctx: NodeContext) -> dict[str, str]:
    result: dict[str, str] = {}
    try:
        names = os.listdir(ctx.paths.ssconf_dir)
    except OSError:
        return result
    for name in names:
        if name.startswith(SSCONF_PREFIX):
            try:
                with open(os.path.join(ctx.paths.ssconf_dir, name)) as fh:
                    result[name[len(SSCONF_PREFIX) :]] = fh.read().rstrip("\n")
            except OSError:
                continue
    return result


def remove_ssconf_files(ctx: NodeContext) -> None:
    for key in read_ssconf(ctx):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(ctx.paths.ssconf_dir, SSCONF_PREFIX + key))


# -- config and queue copies ----------------------------------------------------------------
def config_info(ctx: NodeContext) -> dict[str, Any]:
    """Serial and master of this node's config copy (master-failover voting);
    ``{"serial": None, "master": None}`` when the node holds no copy."""
    try:
        with open(ctx.paths.config_file, "rb") as fh:
            data = msgspec.json.decode(fh.read())
    except (OSError, msgspec.DecodeError):
        return {"serial": None, "master": None}
    cluster = data.get("cluster") or {}
    master_uuid = cluster.get("master_node")
    master = (data.get("nodes") or {}).get(master_uuid, {}).get("name", master_uuid)
    return {"serial": data.get("serial_no"), "master": master}


def upload_config(ctx: NodeContext, config_json: str, serial: int) -> None:
    """Store the master's config.data copy (master candidates)."""
    try:
        data = msgspec.json.decode(config_json)
    except msgspec.DecodeError as err:
        raise errors.ConfigurationError(f"Invalid configuration data: {err}") from err
    if isinstance(data, dict) and data.get("serial_no", serial) != serial:
        raise errors.ConfigurationError(
            f"Configuration serial mismatch: {data.get('serial_no')} != {serial}"
        )
    atomic_write(ctx.paths.config_file, config_json.encode(), 0o600)


def _queue_dir(ctx: NodeContext) -> str:
    return os.path.join(ctx.paths.data_dir, "queue")


def jobqueue_update(ctx: NodeContext, job_id: int, content_json: str) -> None:
    """Store one job's JSON (replicated queue on master candidates)."""
    if job_id < 0:
        raise errors.ParameterError(f"Invalid job id {job_id}")
    atomic_write(os.path.join(_queue_dir(ctx), f"job-{job_id}.json"), content_json.encode(), 0o600)


def jobqueue_purge(ctx: NodeContext) -> None:
    shutil.rmtree(_queue_dir(ctx), ignore_errors=True)


# -- master role ------------------------------------------------------------------------------
def _ip(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise errors.OpExecError(f"Cannot run ip {' '.join(args)}: {err}") from err


def master_ip_activate(ctx: NodeContext, ip: str, netmask: int, netdev: str) -> None:
    """Add the master IP to `netdev` (already present is fine) and announce it."""
    res = _ip(["addr", "add", f"{ip}/{netmask}", "dev", netdev])
    already = ("File exists", "already assigned")
    if res.returncode != 0 and not any(text in res.stderr for text in already):
        raise errors.OpExecError(
            f"Could not activate master IP {ip} on {netdev}: {res.stderr.strip()}"
        )
    arping = shutil.which("arping")
    if arping and ":" not in ip:
        subprocess.run(
            [arping, "-q", "-U", "-c", "2", "-I", netdev, ip],
            capture_output=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def master_ip_deactivate(ctx: NodeContext, ip: str, netmask: int, netdev: str) -> None:
    """Remove the master IP from `netdev` (absent is fine)."""
    res = _ip(["addr", "del", f"{ip}/{netmask}", "dev", netdev])
    absent = ("Cannot assign requested address", "Address not found", "Cannot find device")
    if res.returncode != 0 and not any(text in res.stderr for text in absent):
        raise errors.OpExecError(
            f"Could not deactivate master IP {ip} on {netdev}: {res.stderr.strip()}"
        )


def _masterd_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "corral-masterd")
    if os.access(script, os.X_OK):
        return [script]
    found = shutil.which("corral-masterd")
    if found:
        return [found]
    return [sys.executable, "-m", "corral.daemons.masterd"]


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            pid = int(fh.read().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def start_masterd(ctx: NodeContext) -> None:
    """Start corral-masterd on this node (it daemonizes itself)."""
    if _read_pid(ctx.paths.masterd_pidfile) is not None:
        return
    try:
        res = subprocess.run(
            _masterd_command(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise errors.OpExecError(f"Could not start the master daemon: {err}") from err
    if res.returncode != 0:
        raise errors.OpExecError(
            f"Could not start the master daemon: {(res.stderr or res.stdout).strip()}"
        )


def stop_masterd(ctx: NodeContext) -> None:
    """Stop corral-masterd (SIGTERM, then SIGKILL after 30 s); not running is fine."""
    pid = _read_pid(ctx.paths.masterd_pidfile)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- hooks ---------------------------------------------------------------------------------------
def run_hooks(
    ctx: NodeContext, hpath: str, phase: str, env: dict[str, str]
) -> list[tuple[str, int, str]]:
    """Run ``<hooks_dir>/<hpath>-<phase>.d/*`` in order; ``[(name, status, output)]``."""
    if phase not in ("pre", "post"):
        raise errors.ParameterError(f"Unknown hooks phase '{phase}'")
    if not _HOOK_NAME.match(hpath.replace("/", "-")) or ".." in hpath:
        raise errors.ParameterError(f"Invalid hooks path '{hpath}'")
    directory = os.path.join(ctx.paths.hooks_dir, f"{hpath}-{phase}.d")
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise errors.OpExecError(f"Cannot read hooks directory {directory}: {err}") from err
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for key, value in env.items():
        full_env[key if key.startswith("GANETI_") else f"GANETI_{key}"] = str(value)
    full_env.setdefault("GANETI_HOOKS_VERSION", "2")
    full_env.setdefault("GANETI_HOOKS_PATH", hpath)
    full_env.setdefault("GANETI_HOOKS_PHASE", phase)
    results: list[tuple[str, int, str]] = []
    for name in names:
        script = os.path.join(directory, name)
        if (
            not _HOOK_NAME.match(name)
            or not os.path.isfile(script)
            or not os.access(script, os.X_OK)
        ):
            results.append((name, HKR_SKIP, ""))
            continue
        try:
            proc = subprocess.run(
                [script],
                env=full_env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=HOOK_TIMEOUT,
                check=False,
            )
            output = proc.stdout.decode(errors="replace")
            status = HKR_SUCCESS if proc.returncode == 0 else HKR_FAIL
        except subprocess.TimeoutExpired:
            output, status = f"Hook timed out after {HOOK_TIMEOUT:.0f}s", HKR_FAIL
        except OSError as err:
            output, status = f"Cannot run hook: {err}", HKR_FAIL
        results.append((name, status, output))
    return results
