"""The filedrbd replication agent: one daemon process per assembled device.

TEST backend of ``drbd`` (see `drbd_filesync`). noded starts it with
``python -m corral.storage.drbd_filesync_agent <want file>``; it runs outside
noded (own session), so noded restarts do not touch replication, and dies with
the node. It plays the part of the kernel's DRBD device:

* always listens on ``(own replication IP, port)``; while Primary it connects
  to the peer instead and is the sync source (only a Primary initiates, so the
  direction of every session is clear; two Primaries meeting is a split brain
  and is refused, as DRBD's after-sb-2pri disconnect);
* the first pass after connecting is a resync (the whole file is walked, holes
  skipped with SEEK_DATA/SEEK_HOLE, progress reported over the full size and
  paced by ``resync-rate``); afterwards the source re-scans whenever the data
  file changed (mtime/size) and sends the changed chunks, so the secondary
  follows the primary within about a second (writes are not intercepted: this
  is asynchronous, unlike protocol C; a clean close/shutdown flushes first);
* disk state (UpToDate/Inconsistent) persists in the meta volume's header.

Control: the device rewrites the JSON "want" file (static config + one command
with a generation number) and sends SIGUSR1; the agent applies the command and
publishes ``gen`` and ``error`` in its status file. The pid file is held under
an exclusive flock for the agent's lifetime: a free lock means no agent
(robust against pid reuse and zombies).
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from corral.storage.drbd_filesync_net import NetAgent
from corral.storage.drbd_filesync_state import (
    CS_STANDALONE,
    CS_SYNCSOURCE,
    CS_SYNCTARGET,
    DS_UPTODATE,
    ROLE_PRIMARY,
    ROLE_SECONDARY,
    file_names,
    log,
    read_json,
    write_json_atomic,
)


class Agent(NetAgent):
    """The control (main) thread: applies commands, publishes the status."""

    # -- control thread -------------------------------------------------------------
    def apply(self, want: dict[str, Any]) -> None:
        net_keys = ("own_ip", "peer_ip", "port", "secret", "net")
        with self.lock:
            net_changed = any(want.get(k) != self.cfg.get(k) for k in net_keys)
            self.cfg = want
            had_session = self.session is not None
            epoch = self.sessions_ended
            if net_changed:
                self.drop_session = had_session
                self.net_changed.set()
        if net_changed:
            # Synchronous like drbdsetup disconnect/connect: the old link is gone
            # (and StandAlone reached when disabled) before the command is acked.
            deadline = time.monotonic() + 2 * float(self.c("timeout") or 5)
            while time.monotonic() < deadline:
                with self.lock:
                    gone = not had_session or self.sessions_ended > epoch
                    settled = bool(want.get("net")) or self.cstate == CS_STANDALONE
                if gone and settled:
                    break
                time.sleep(0.02)
        cmd = want.get("cmd") or {}
        op = cmd.get("op")
        error: str | None = None
        if op == "primary":
            error = self.make_primary(bool(cmd.get("force")))
        elif op == "secondary":
            error = self.make_secondary()
        elif op == "stop":
            self.stopping = True
        with self.lock:
            self.applied_gen = int(want.get("gen", 0))
            self.last_error = error
        if error:
            log.warning("gen %s %s: %s", self.applied_gen, op, error)

    def make_primary(self, force: bool) -> str | None:
        with self.lock:
            if self.role == ROLE_PRIMARY:
                return None
            if self.session == "target":
                if self.c("multimaster"):
                    self.role = ROLE_PRIMARY
                    return None
                if not force:
                    return (
                        "Can't make drbd device primary: the peer is primary"
                        " (multiple primaries not allowed)"
                    )
                self.drop_session = True
            if self.disk != DS_UPTODATE:
                if not force:
                    return "Can't make drbd device primary: need access to UpToDate data"
                self.set_disk(DS_UPTODATE)
            self.role = ROLE_PRIMARY
            self.net_changed.set()
            return None

    def make_secondary(self) -> str | None:
        with self.lock:
            if self.role == ROLE_SECONDARY:
                return None
            source = self.session == "source"
            if source:
                self.handover_done.clear()
                self.handover.set()
        if source and not self.handover_done.wait(float(self.c("flush_timeout") or 60)):
            return "Can't switch drbd device to secondary: flushing to the peer timed out"
        with self.lock:
            self.role = ROLE_SECONDARY
            self.net_changed.set()
        return None

    def status(self) -> dict[str, Any]:
        with self.lock:
            sync = dict(self.sync) if self.sync else None
            st: dict[str, Any] = {
                "pid": os.getpid(),
                "gen": self.applied_gen,
                "error": self.last_error,
                "role": self.role,
                "peer_role": self.peer_role,
                "cstate": self.cstate,
                "disk": self.disk,
                "peer_disk": self.peer_disk,
                "net_error": self.net_error,
                "sync_percent": None,
                "estimated_time": None,
            }
        if sync and self.cstate in (CS_SYNCSOURCE, CS_SYNCTARGET):
            total = max(1, int(sync["total"]))
            done = min(int(sync["done"]), total)
            st["sync_percent"] = round(100.0 * done / total, 2)
            elapsed = time.monotonic() - float(sync["start"])
            if done > 0 and elapsed > 0:
                st["estimated_time"] = int((total - done) * elapsed / done)
        return st

    def publish(self, force: bool = False) -> None:
        st = self.status()
        if force or st != self._last_status:
            write_json_atomic(self.files["status"], {**st, "updated": time.time()})
            self._last_status = st

    def run(self) -> None:
        signal.signal(signal.SIGUSR1, lambda *_: self.wake.set())
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        net = threading.Thread(target=self.net_loop, name="net", daemon=True)
        net.start()
        self.publish(force=True)
        last_mtime = 0
        while not self.stopping:
            self.wake.wait(0.25)
            self.wake.clear()
            try:
                mtime = os.stat(self.want_path).st_mtime_ns
            except FileNotFoundError:
                self.stopping = True
                break
            if mtime != last_mtime:
                last_mtime = mtime
                want = read_json(self.want_path)
                if isinstance(want, dict) and int(want.get("gen", 0)) > self.applied_gen:
                    self.apply(want)
            self.publish()
        # Let a source session flush and say goodbye before the network stops.
        self.net_changed.set()
        deadline = time.monotonic() + float(self.c("flush_timeout") or 60)
        while self.session is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.exiting = True
        self.net_changed.set()
        net.join(max(0.0, deadline - time.monotonic()) + 1.0)
        with self.lock:
            self.cstate = CS_STANDALONE
        self.publish(force=True)
        log.info("agent stopped")

    def _request_stop(self) -> None:
        self.stopping = True
        self.wake.set()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: drbd_filesync_agent WANT_FILE", file=sys.stderr)
        return 2
    faulthandler.register(signal.SIGUSR2, all_threads=True)  # stack dump for debugging
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s",
    )
    want = read_json(args[0])
    if not isinstance(want, dict):
        print(f"cannot read {args[0]}", file=sys.stderr)
        return 2
    files = file_names(want["run_dir"], int(want["minor"]))
    fd = os.open(files["pid"], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.info("another agent already serves minor %s", want["minor"])
        return 0
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    agent = Agent(args[0])
    log.info(
        "agent for minor %s: %s:%s <-> %s:%s",
        want["minor"], want["own_ip"], want["port"], want["peer_ip"], want["port"],
    )  # fmt: skip
    try:
        agent.run()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(files["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
