"""Driver side of the fake VM launcher (see `corral.hypervisor.fakevm_launcher`).

`VmLauncher.start_vm` asks the node's launcher to fork a VM, starting the
launcher first when it is not running (it is detached: it outlives noded and
exits by itself when idle). It returns None whenever the launcher cannot be
used -- it will not start, it died mid-request, the command line does not fit
-- and the driver then spawns the VM as a fresh interpreter, as it always did.

Also here: `run_helper`, which runs the launcher or a spawned VM's starter and
collects its output without Popen.wait's sleeping poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from corral.hypervisor import fakevm, fakevm_launcher

#: Seconds without a request after which a launcher exits (restarted on demand)
IDLE_EXIT = 30.0
#: After a launcher failed to start, spawn VMs directly for this long
RETRY_AFTER = 30.0
_CODE_DIR = os.path.dirname(os.path.abspath(fakevm.__file__))


def _code_version() -> str:
    """Changes when the VM or launcher code changes, so an upgrade gets a new launcher."""
    parts = []
    for module in (fakevm, fakevm_launcher):
        try:
            st = os.stat(os.path.abspath(str(module.__file__)))
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("?")
    return ",".join(parts)


_VERSION = _code_version()


def launcher_key(run_dir: str, token: str) -> str:
    """Abstract socket name of the launcher of the node whose run dir is `run_dir`."""
    node = f"{os.path.realpath(run_dir)}\0{token}\0{_VERSION}"
    return "corral-vmlauncher-" + hashlib.sha256(node.encode()).hexdigest()[:32]


def launcher_pid(run_dir: str) -> int | None:
    """The pid of `run_dir`'s live launcher (per its pidfile and command line), or None."""
    try:
        with open(os.path.join(run_dir, fakevm_launcher.PIDFILE)) as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if fakevm_launcher.MARKER.encode() in args else None


def stop_launcher(run_dir: str) -> None:
    """Terminate `run_dir`'s launcher if one runs (its VMs are not affected)."""
    pid = launcher_pid(run_dir)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


class VmLauncher:
    """One node's launcher, seen from the driver: start on demand, ask for VMs.

    Calls are serialised by the driver (they run under the node's start lock).
    """

    def __init__(self, run_dir: str, orphan_check: float, idle: float | None = None) -> None:
        self.run_dir = run_dir
        self.orphan_check = orphan_check
        self.idle = IDLE_EXIT if idle is None else idle
        self._broken_until = 0.0

    def start_vm(
        self, name: str, argv: list[str], config: dict[str, Any], token: str, timeout: float
    ) -> str | None:
        """Have the launcher fork VM `name`: its reply (``OK pid port``/``ERR msg``), or None.

        `argv` is the command line the VM would have if spawned (the forked VM
        gets the same), `config` what it would read on stdin. None means the
        launcher is unavailable: spawn the VM directly instead.
        """
        if time.monotonic() < self._broken_until:
            return None
        key = launcher_key(self.run_dir, token)
        deadline = time.monotonic() + timeout
        sock = _connect(key, timeout)
        if sock is None:
            if not self._start(key, token, timeout):
                return None
            sock = _connect(key, timeout)
            if sock is None:
                return None
        request = {"name": name, "argv": argv, "config": config}
        try:
            with sock:
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = _read_line(sock, deadline)
        except OSError:
            return None
        if not reply or reply.startswith("FALLBACK"):
            return None
        return reply

    def _start(self, key: str, token: str, timeout: float) -> bool:
        cmd = [
            sys.executable,
            "-S",
            "-E",
            "-s",
            "-c",
            fakevm_launcher.BOOTSTRAP,
            _CODE_DIR,
            fakevm_launcher.MARKER,
            self.run_dir,
            token,
            key,
            repr(float(self.orphan_check)),
            repr(float(self.idle)),
            " " * fakevm_launcher.PAD,
        ]
        try:
            stdout, _ = run_helper(cmd, b"", timeout)
        except (OSError, subprocess.TimeoutExpired):
            stdout = b""
        out = stdout.decode(errors="replace").strip()
        if out.startswith("OK ") or out == "ERR already running":
            return True
        self._broken_until = time.monotonic() + RETRY_AFTER
        return False


def _connect(key: str, timeout: float) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect("\0" + key)
    except OSError:
        sock.close()
        return None
    return sock


def _read_line(sock: socket.socket, deadline: float) -> str:
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def run_helper(cmd: list[str], data: bytes, timeout: float) -> tuple[bytes, bytes]:
    """Run `cmd` with `data` on stdin; its (stdout, stderr).

    ``subprocess.run(input=..., capture_output=True, timeout=...)`` without
    Popen.wait's sleeping poll at the end (0.5 ms, 1 ms... between checks):
    the exit is awaited on a pidfd. Raises OSError or
    subprocess.TimeoutExpired (the process is killed) like subprocess.run.
    """
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    ) as proc:
        try:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            try:
                proc.stdin.write(data)  # the helper reads all of it before writing
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it died early: its output says why
            streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
            poller = select.poll()
            for fd in streams:
                poller.register(fd, select.POLLIN)
            open_fds = set(streams)
            while open_fds:
                remaining = deadline - time.monotonic()
                ready = poller.poll(max(0, int(remaining * 1000) + 1)) if remaining > 0 else []
                if not ready:
                    raise subprocess.TimeoutExpired(cmd, timeout)
                for fd, _event in ready:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        streams[fd] += chunk
                    else:
                        poller.unregister(fd)
                        open_fds.discard(fd)
            pidfd = os.pidfd_open(proc.pid)
            try:
                if not wait_readable(pidfd, deadline - time.monotonic()):
                    raise subprocess.TimeoutExpired(cmd, timeout)
            finally:
                os.close(pidfd)
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return bytes(streams[proc.stdout.fileno()]), bytes(streams[proc.stderr.fileno()])


def wait_readable(fd: int, seconds: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(seconds * 1000) + 1)))
