"""The fake VM launcher: one long-lived process per node that forks fake VMs.

Starting a VM as a fresh ``python -S`` costs ~10 ms of CPU (interpreter start
plus importing `fakevm`); with a few OS-script processes per instance that was
the floor of concurrent started creates on a 2-core node. The launcher (a
"zygote") has `fakevm` imported already and forks one VM per request, which
costs a fork. What a VM is does not change: the VM forked for a request is a
grandchild of the launcher (double fork, new session), so it is not the
launcher's child, survives the launcher and noded, and dies with its node; its
command line is rewritten to exactly the one a spawned VM has (`fakevm.set_cmdline`),
so the driver, the testkit and ``ps`` recognise it the same way.

Started by the fake driver (`corral.hypervisor.fakelaunch`) as::

    python -S -E -s -c BOOTSTRAP DIR corral-vmlauncher RUN_DIR TOKEN KEY ORPHAN IDLE PAD

It binds the abstract unix socket KEY (one launcher per node and code version:
a second one fails to bind and says ``ERR already running``), forks the daemon,
which checks that it can rewrite a forked child's command line, writes
``RUN_DIR/.launcher-pid`` and answers requests; the first process prints
``OK <daemon pid>`` and exits. PAD (spaces) only reserves room in the
argument area for the VMs' command lines.

Protocol: one connection per VM, one JSON line ``{"name", "argv", "config"}``
(`argv`: the command line a spawned VM would have; `config`: what a spawned
VM reads on stdin), one reply line from the forked starter, the same a spawned
VM prints: ``OK <pid> <migration port>`` or ``ERR <message>``; or
``FALLBACK <why>`` when the launcher cannot start this VM and the driver
should spawn it the old way.

The launcher exits on SIGTERM, when idle for IDLE seconds, or when its pidfile
is gone or names another process (checked every ORPHAN seconds: the run dir
was wiped, or a newer launcher took over); the driver starts a new one on demand.
Like `fakevm`, it imports only built-in C modules.
"""

from __future__ import annotations

import _socket
import posix
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from corral.hypervisor import fakevm
elif __name__ == "fakevm_launcher":  # run by BOOTSTRAP: a top-level module, like fakevm
    import fakevm
else:  # imported by the driver for its constants
    from corral.hypervisor import fakevm

MARKER = "corral-vmlauncher"
PIDFILE = ".launcher-pid"
LOGFILE = ".launcher.log"
PAD = 1024  # bytes of argument area reserved for a VM's command line
REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 16 * 1024 * 1024

BOOTSTRAP = (
    "import sys;sys.path[0]=sys.argv[1];import fakevm_launcher,posix;"
    "posix._exit(fakevm_launcher.main(sys.argv[1:]))"
)


def _owns_pidfile(path: str) -> bool:
    try:
        with open(path) as handle:
            return handle.read().strip() == str(posix.getpid())
    except (OSError, ValueError):
        return False


def _cmdline_settable(area: tuple[int, int]) -> bool:
    """Fork a child that rewrites its command line and checks /proc shows it."""
    args = [MARKER, "self-test"]
    data = fakevm.cmdline_bytes(args, area[1] - area[0])
    if data is None:
        return False
    child = posix.fork()
    if child == 0:
        code = 1
        try:
            fakevm.set_cmdline(area[0], data)
            with open("/proc/self/cmdline", "rb") as handle:
                shown = handle.read().split(b"\0")
            code = 0 if shown[:2] == [a.encode() for a in args] else 1
        finally:
            posix._exit(code)
    _, status = posix.waitpid(child, 0)
    return posix.WIFEXITED(status) and posix.WEXITSTATUS(status) == 0


def _read_request(conn: _socket.socket) -> bytes:
    conn.settimeout(REQUEST_TIMEOUT)
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class Launcher:
    """The serving daemon: one request at a time (the driver serialises starts anyway)."""

    def __init__(self, run_dir: str, listener: _socket.socket, area: tuple[int, int]) -> None:
        self.run_dir = run_dir
        self.listener = listener
        self.area = area
        self.pid_path = f"{run_dir}/{PIDFILE}"

    def serve(self, orphan_check: float, idle: float) -> None:
        last_request = next_check = time.monotonic()
        next_check += orphan_check
        while True:
            readable, _, _ = select.select([self.listener], [], [], min(orphan_check, idle))
            now = time.monotonic()
            if now >= next_check:
                next_check = now + orphan_check
                if not _owns_pidfile(self.pid_path):
                    return
            if not readable:
                if now - last_request >= idle:
                    self.listener.close()
                    self.drop_pidfile()
                    return
                continue
            last_request = now
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]
            except OSError:
                continue
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
            try:
                self.handle(conn)
            except OSError:
                pass  # the driver went away: it will see no answer and fall back
            finally:
                conn.close()

    def drop_pidfile(self) -> None:
        if _owns_pidfile(self.pid_path):
            try:
                posix.unlink(self.pid_path)
            except OSError:
                return  # wiped meanwhile

    def handle(self, conn: _socket.socket) -> None:
        try:
            req = fakevm.loads(_read_request(conn).decode())
            name = str(req["name"])
            cfg = dict(req["config"])
            argv = [str(a) for a in req["argv"]]
        except Exception as err:
            conn.sendall(f"ERR bad launcher request: {err}\n".encode())
            return
        data = fakevm.cmdline_bytes(argv, self.area[1] - self.area[0])
        if data is None:
            conn.sendall(b"FALLBACK command line too long\n")
            return
        conn.settimeout(None)
        starter = posix.fork()
        if starter == 0:  # the starter: binds, forks the VM, answers, exits
            code = 1
            try:
                self.listener.close()
                code = fakevm.start(name, self.run_dir, cfg, conn.fileno(), (self.area[0], data))
            finally:
                posix._exit(code)
        posix.waitpid(starter, 0)


def main(argv: list[str]) -> int:
    """argv: [DIR, MARKER, RUN_DIR, TOKEN, KEY, ORPHAN_CHECK, IDLE, PAD]; see the docstring."""
    if len(argv) < 7 or argv[1] != MARKER:
        posix.write(
            2, b"usage: fakevm_launcher.py corral-vmlauncher RUN_DIR TOKEN KEY ORPHAN IDLE\n"
        )
        return 2
    run_dir, key = argv[2], argv[4]
    orphan_check, idle = float(argv[5]), float(argv[6])
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        listener.bind("\0" + key)
    except OSError:
        posix.write(1, b"ERR already running\n")
        return 1
    listener.listen(64)
    area = fakevm.arg_area()
    sync_r, sync_w = posix.pipe()
    child = posix.fork()
    if child:
        posix.close(sync_w)
        answer = posix.read(sync_r, 512).decode(errors="replace").strip()
        if answer:
            posix.write(1, f"ERR {answer}\n".encode())
            return 1
        posix.write(1, f"OK {child}\n".encode())
        return 0
    posix.close(sync_r)
    posix.setsid()
    fakevm.detach_io(f"{run_dir}/{LOGFILE}")
    if not _cmdline_settable(area):
        posix.write(sync_w, b"cannot set the command line of a forked VM")
        return 1
    pid_path = f"{run_dir}/{PIDFILE}"
    try:
        with open(pid_path + ".tmp", "w") as out:
            out.write(f"{posix.getpid()}\n")
        posix.replace(pid_path + ".tmp", pid_path)
    except OSError as err:
        posix.write(sync_w, f"cannot write {pid_path}: {err}".encode())
        return 1
    posix.close(sync_w)
    launcher = Launcher(run_dir, listener, area)
    try:
        launcher.serve(orphan_check, idle)
    except SystemExit:  # SIGTERM
        launcher.drop_pidfile()
    return 0
