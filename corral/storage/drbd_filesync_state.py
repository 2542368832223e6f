"""Shared state of the filedrbd agent (see `drbd_filesync_agent`) and its files.

The device side (`drbd_filesync`) and the agent process both use the file
helpers here: names of the per-minor files in ``<run_dir>/filedrbd/``, atomic
JSON writes, the meta volume header (persistent disk state) and the
pid-file lock that tells whether an agent is alive.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
from typing import Any

META_MAGIC = "corral-filedrbd/1"
META_HEADER = 4096
DS_UPTODATE = "UpToDate"
DS_INCONSISTENT = "Inconsistent"
DS_UNKNOWN = "DUnknown"
ROLE_PRIMARY = "Primary"
ROLE_SECONDARY = "Secondary"
ROLE_UNKNOWN = "Unknown"
CS_STANDALONE = "StandAlone"
CS_WFCONNECTION = "WFConnection"
CS_CONNECTED = "Connected"
CS_SYNCSOURCE = "SyncSource"
CS_SYNCTARGET = "SyncTarget"

log = logging.getLogger("filedrbd")


# -- files shared with the device side ---------------------------------------------


def file_names(run_dir: str, minor: int) -> dict[str, str]:
    base = os.path.join(run_dir, "filedrbd", f"drbd{minor}")
    return {
        "want": base + ".want",
        "pid": base + ".pid",
        "status": base + ".status",
        "log": base + ".log",
        "lock": base + ".lock",
    }


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_meta(meta_path: str) -> dict[str, Any]:
    """The meta volume header ({} when never initialised)."""
    try:
        with open(meta_path, "rb") as f:
            raw = f.read(META_HEADER).rstrip(b"\0")
        data = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("magic") == META_MAGIC else {}


def write_meta(meta_path: str, **fields: Any) -> None:
    data = read_meta(meta_path) or {"magic": META_MAGIC}
    data.update(fields)
    raw = json.dumps(data, sort_keys=True).encode()
    if len(raw) > META_HEADER:
        raise ValueError("meta header too large")
    fd = os.open(meta_path, os.O_WRONLY)
    try:
        os.pwrite(fd, raw.ljust(META_HEADER, b"\0"), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def agent_running(pid_path: str) -> int | None:
    """Pid of the live agent holding `pid_path`'s lock, or None."""
    try:
        fd = os.open(pid_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raw = os.pread(fd, 32, 0).strip()
                return int(raw) if raw.isdigit() else -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# -- the agent ---------------------------------------------------------------------


class AgentState:
    """State shared by the control (main) thread and the network thread."""

    def __init__(self, want_path: str) -> None:
        self.want_path = want_path
        want = read_json(want_path)
        if not isinstance(want, dict):
            raise SystemExit(f"cannot read {want_path}")
        self.cfg: dict[str, Any] = want
        self.files = file_names(want["run_dir"], int(want["minor"]))
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.net_changed = threading.Event()
        self.role = ROLE_SECONDARY
        meta = read_meta(want["meta_path"])
        self.disk = meta.get("disk", DS_INCONSISTENT)
        self.peer_role = ROLE_UNKNOWN
        self.peer_disk = DS_UNKNOWN
        self.cstate = CS_STANDALONE
        self.session: str | None = None  # "source" | "target"
        self.sync: dict[str, Any] | None = None
        self.applied_gen = int(want.get("gen", 0))
        self.last_error: str | None = None
        self.net_error: str | None = None
        self.drop_session = False
        self.sessions_ended = 0
        self.handover = threading.Event()
        self.handover_done = threading.Event()
        self.stopping = False
        self.exiting = False
        self._last_status: dict[str, Any] | None = None

    # -- config ---------------------------------------------------------------------
    def c(self, key: str) -> Any:
        return self.cfg.get(key)

    def rate_bytes(self) -> float:
        rate = int(self.cfg.get("resync_rate") or 0)
        return rate * 1024.0 if rate > 0 else 0.0

    def set_disk(self, state: str) -> None:
        if state != self.disk:
            self.disk = state
            write_meta(self.c("meta_path"), disk=state)
