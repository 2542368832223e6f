"""The process behind one ``fake`` hypervisor VM.

Started in one of two ways, with the same result:

* forked by the node's launcher (`corral.hypervisor.fakevm_launcher`, the
  usual way: a fork instead of a fresh interpreter), which calls `start`; the
  VM then rewrites its command line (`set_cmdline`) to the one below;
* spawned by the fake driver as ``python -S -E -s -c BOOTSTRAP DIR corral-fakevm
  NAME RUN_DIR NODE_TOKEN`` (BOOTSTRAP imports this file as a top-level module from
  DIR, so its cached bytecode is used) with its start configuration (JSON) on
  stdin, when the launcher is unavailable.

Hundreds run at once in benchmarks, so it is built to be cheap: it imports
only built-in C modules (``posix``, ``_socket``, ``select``, ``_signal``,
``_struct``, ``_json``, ``time`` -- no ``os``, ``socket``, ``json``,
``typing`` or ``enum``), which keeps each VM near 3 MiB of private memory and
its start near 15 ms, and it runs one select() loop.

Life cycle:

1. Read the configuration, bind the sockets (control, console, incoming
   migration); a failure is reported as ``ERR message`` on stdout.
2. Fork. The child detaches (new session, stdio to the per-VM log), writes the
   runtime file and the pidfile, then closes a sync pipe; the parent waits for
   that, prints ``OK <pid> <migration port>`` (to the launcher's client when
   forked by the launcher) and exits. The VM is therefore
   never a child of noded: it survives noded restarts and dies only when killed
   (or with its node).
3. Serve until SIGTERM (clean shutdown) or SIGKILL (crash), or until its
   pidfile disappears (the node's run directory was wiped):

   * control socket (abstract unix socket, one JSON request line per
     connection, one JSON reply line): ``ping``, ``hotplug``, ``reboot``,
     ``balloon``, ``stop`` (pause), ``cont``, ``migrate``;
   * console port: speaks RFB 3.3/3.7/3.8 with security type None and answers
     full framebuffer update requests with a solid screen, so VNC probes and
     viewers see a real (if dull) display;
   * incoming migration port (target side): receives the source's runtime
     state (one JSON line), becomes ``running``, answers ``OK``.

After start the VM process is the only writer of ``RUN_DIR/NAME.json``; every
change is written atomically (temp file + rename), so readers need no lock.
"""

from __future__ import annotations

import _json
import _signal  # type: ignore[import-not-found]
import _socket
import _struct
import posix
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing would cost ~10 ms per VM
    from typing import Any

MARKER = "corral-fakevm"
RFB_BANNER = b"RFB 003.008\n"
FB_WIDTH = 640
FB_HEIGHT = 480
SCREEN_RGB = (16, 32, 64)
MIB = 1024 * 1024
DEVNULL = "/dev/null"
ORPHAN_CHECK = 10.0  # default seconds between checks that the VM still owns its pidfile

# Runtime keys that belong to the local process, never copied by a migration
_LOCAL_KEYS = frozenset(
    {
        "pid",
        "control",
        "console_host",
        "console_bound",
        "incoming",
        "incoming_host",
        "migration_port",
        "migration",
        "state",
    }
)


# -- JSON without the json package ---------------------------------------------------------
class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, Any] = {}


_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_quote = _json.encode_basestring_ascii


def loads(text: str) -> Any:
    text = text.strip()
    try:
        value, end = _scan(text, 0)
    except Exception:
        raise ValueError("malformed JSON") from None
    if end != len(text):
        raise ValueError("trailing data after JSON")
    return value


def dumps(obj: Any) -> str:
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    kind = type(obj)
    if kind is str:
        return str(_quote(obj))
    if kind is int:
        return int.__repr__(obj)
    if kind is float:
        return float.__repr__(obj)
    if kind is dict:
        return "{" + ", ".join(_quote(str(k)) + ": " + dumps(v) for k, v in obj.items()) + "}"
    if kind is list or kind is tuple:
        return "[" + ", ".join(dumps(v) for v in obj) + "]"
    raise TypeError(f"cannot encode {kind.__name__}")


# -- sockets ---------------------------------------------------------------------------------
def _family(host: str) -> int:
    return _socket.AF_INET6 if ":" in host else _socket.AF_INET


def _listen_tcp(host: str, port: int, backlog: int) -> _socket.socket:
    sock = _socket.socket(_family(host), _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _accept(listener: _socket.socket) -> _socket.socket:
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    return _socket.socket(listener.family, _socket.SOCK_STREAM, 0, fd)


class Conn:
    """One accepted connection and what it is for."""

    def __init__(self, sock: _socket.socket, kind: str) -> None:
        self.sock = sock
        self.kind = kind  # "control", "console", "incoming"
        self.buf = b""
        self.stage = "version"
        self.minor = 8
        self.encodings: tuple[int, ...] = ()
        # pixel format: bits per pixel, big endian, (max, shift) for r, g, b
        self.bpp = 32
        self.big_endian = False
        self.channels = ((255, 16), (255, 8), (255, 0))


class VM:
    def __init__(self, name: str, run_dir: str, cfg: dict[str, Any]) -> None:
        self.name = name
        self.run_dir = run_dir
        self.rt: dict[str, Any] = cfg["runtime"]
        self.runtime_path = f"{run_dir}/{name}.json"
        self.pid_path = f"{run_dir}/{name}.pid"
        self.control: _socket.socket | None = None
        self.console: _socket.socket | None = None
        self.incoming: _socket.socket | None = None
        self.conns: dict[int, Conn] = {}
        self.console_pending = False
        self.orphan_check = float(cfg.get("orphan_check") or ORPHAN_CHECK)

    # -- setup (before fork) -------------------------------------------------------
    def bind_all(self) -> None:
        ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            ctl.bind("\0" + self.rt["control"])
        except OSError:
            ctl.close()
            raise RuntimeError("already running") from None
        ctl.listen(16)
        self.control = ctl
        if self.rt.get("incoming"):
            host = str(self.rt["incoming_host"])
            try:
                mig = _listen_tcp(host, int(self.rt.get("migration_port") or 0), 1)
            except OSError as err:
                raise RuntimeError(f"cannot listen for the migration: {err.strerror}") from None
            self.incoming = mig
            self.rt["migration_port"] = mig.getsockname()[1]
            self.console_pending = self.rt.get("console_port") is not None
        elif self.rt.get("console_port") is not None and not self.bind_console():
            raise RuntimeError(
                f"cannot listen on console port {self.rt['console_port']}: address in use"
            )

    def bind_console(self) -> bool:
        host = str(self.rt.get("console_host") or "0.0.0.0")
        try:
            self.console = _listen_tcp(host, int(self.rt["console_port"]), 8)
        except OSError:
            return False
        self.console_pending = False
        self.rt["console_bound"] = True
        return True

    # -- files ---------------------------------------------------------------------
    def save(self) -> None:
        tmp = self.runtime_path + ".tmp"
        with open(tmp, "w") as out:
            out.write(dumps(self.rt))
        posix.replace(tmp, self.runtime_path)

    def owns_pidfile(self) -> bool:
        """False once our pidfile is gone or names another process.

        The driver only removes a pidfile after the VM is dead, so this only
        happens when the node's run directory was wiped (a test or testkit
        tearing a node down): the VM then exits instead of lingering forever.
        """
        try:
            with open(self.pid_path) as handle:
                return handle.read().strip() == str(posix.getpid())
        except (OSError, ValueError):
            return False

    def write_pidfile(self) -> None:
        tmp = self.pid_path + ".tmp"
        with open(tmp, "w") as out:
            out.write(f"{posix.getpid()}\n")
        posix.replace(tmp, self.pid_path)

    # -- main loop -----------------------------------------------------------------
    def serve(self) -> None:
        next_check = time.monotonic() + self.orphan_check
        while True:
            listeners = [s for s in (self.control, self.console, self.incoming) if s is not None]
            socks = listeners + [c.sock for c in self.conns.values()]
            timeout = 0.2 if self.console_pending else self.orphan_check
            readable, _, _ = select.select(socks, [], [], timeout)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.orphan_check
                if not self.owns_pidfile():
                    return
            if self.console_pending and self.rt.get("state") != "migrating" and self.bind_console():
                self.save()
            for sock in readable:
                if sock is self.control:
                    self.accept(sock, "control")
                elif sock is self.console:
                    self.accept(sock, "console")
                elif sock is self.incoming:
                    self.accept(sock, "incoming")
                else:
                    conn = self.conns.get(sock.fileno())
                    if conn is not None:
                        self.receive(conn)

    def accept(self, listener: _socket.socket, kind: str) -> None:
        try:
            sock = _accept(listener)
        except OSError:
            return
        conn = Conn(sock, kind)
        self.conns[sock.fileno()] = conn
        if kind == "console":
            self.send(conn, RFB_BANNER)

    def close(self, conn: Conn) -> None:
        if self.conns.pop(conn.sock.fileno(), None) is not None:
            conn.sock.close()

    def is_open(self, conn: Conn) -> bool:
        return self.conns.get(conn.sock.fileno()) is conn

    def send(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.settimeout(5)
            conn.sock.sendall(data)
        except OSError:
            self.close(conn)

    def receive(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        conn.buf += data
        if conn.kind == "console":
            self.console_input(conn)
        elif b"\n" in conn.buf:
            line = conn.buf.split(b"\n", 1)[0].decode("utf-8", "replace")
            if conn.kind == "control":
                self.control_request(conn, line)
            else:
                self.incoming_state(conn, line)
        elif len(conn.buf) > 16 * MIB:
            self.close(conn)

    # -- control -------------------------------------------------------------------
    def control_request(self, conn: Conn, line: str) -> None:
        after = None
        try:
            reply, after = self.handle(loads(line))
        except Exception as err:  # report, never die on a bad request
            reply = {"ok": False, "error": str(err)}
        self.send(conn, dumps(reply).encode() + b"\n")
        self.close(conn)
        if after is not None:
            after()

    def handle(self, req: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        cmd = req.get("cmd")
        rt = self.rt
        receiving = rt["state"] == "migrating"
        if cmd == "ping":
            return {"ok": True, "state": rt["state"], "pid": posix.getpid()}, None
        if cmd in ("reboot", "cont", "migrate", "hotplug") and receiving:
            raise RuntimeError("instance is receiving a migration")
        if cmd == "hotplug":
            self.hotplug(req["action"], req["dev_type"], req["device"], int(req["index"]))
        elif cmd == "reboot":
            rt["boot_count"] = int(rt.get("boot_count", 0)) + 1
            rt["booted_at"] = time.time()
            rt["state"] = "running"
        elif cmd == "balloon":
            rt["memory"] = int(req["memory"])
        elif cmd == "stop":
            rt["state"] = "paused"
        elif cmd == "cont":
            rt["state"] = "running"
        elif cmd == "migrate":
            if (rt.get("migration") or {}).get("status") == "active":
                raise RuntimeError("a migration is already in progress")
            live = bool(req.get("live", True))
            rt["migration"] = {"status": "active", "info": "", "total_ram": rt["memory"] * MIB}
            if not live:
                rt["state"] = "paused"
            self.save()
            host, port = str(req["host"]), int(req["port"])
            return {"ok": True}, lambda: self.migrate_out(host, port)
        else:
            raise RuntimeError(f"unknown command {cmd!r}")
        self.save()
        return {"ok": True}, None

    def hotplug(self, action: str, dev_type: str, device: dict[str, Any], index: int) -> None:
        key = {"nic": "nics", "disk": "disks"}.get(dev_type)
        if key is None:
            raise RuntimeError(f"unknown device type {dev_type!r}")
        devices: list[dict[str, Any]] = self.rt.setdefault(key, [])
        uuid = device.get("uuid") or ""
        found = -1
        if uuid:
            for pos, dev in enumerate(devices):
                if dev.get("uuid") == uuid:
                    found = pos
        elif action != "add" and 0 <= index < len(devices):
            found = index
        if action == "add":
            if found >= 0:
                raise RuntimeError(f"{dev_type} with UUID {uuid} is already attached")
            devices.insert(max(0, min(index, len(devices))), device)
            return
        if found < 0:
            raise RuntimeError(f"Cannot find runtime info for {dev_type} with UUID {uuid}")
        if action == "remove":
            del devices[found]
        elif action == "modify":
            devices[found] = device
        else:
            raise RuntimeError(f"unknown hotplug action {action!r}")

    # -- migration -----------------------------------------------------------------
    def migrate_out(self, host: str, port: int) -> None:
        """Send the state to the target and wait for its OK (blocking, bounded)."""
        rt = self.rt
        sock = _socket.socket(_family(host), _socket.SOCK_STREAM)
        try:
            sock.settimeout(10)
            sock.connect((host, port))
            state = {k: v for k, v in rt.items() if k not in _LOCAL_KEYS}
            sock.sendall(dumps({"name": self.name, "runtime": state}).encode() + b"\n")
            sock.settimeout(30)
            answer = b""
            while b"\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            text = answer.decode("utf-8", "replace").strip()
            if not text.startswith("OK"):
                raise RuntimeError(text or "connection closed by the target")
        except (OSError, RuntimeError) as err:
            rt["migration"] = {"status": "failed", "info": f"migration failed: {err}"}
            self.save()
            return
        finally:
            sock.close()
        total = int(rt["memory"]) * MIB
        rt["migration"] = {"status": "completed", "transferred_ram": total, "total_ram": total}
        rt["state"] = "paused"  # QEMU's postmigrate: the source stays, stopped
        self.save()

    def incoming_state(self, conn: Conn, line: str) -> None:
        try:
            msg = loads(line)
            if msg.get("name") != self.name:
                raise RuntimeError(f"expected instance {self.name}, got {msg.get('name')}")
            state = dict(msg["runtime"])
        except Exception as err:
            self.send(conn, f"ERR {err}\n".encode())
            self.close(conn)
            return
        for key, value in state.items():
            if key not in _LOCAL_KEYS:
                self.rt[key] = value
        self.rt["state"] = "running"
        self.rt["migration"] = None
        self.rt["incoming"] = False
        if self.console_pending:
            self.bind_console()
        self.save()
        self.send(conn, b"OK\n")
        self.close(conn)
        if self.incoming is not None:
            self.incoming.close()
            self.incoming = None

    # -- console (RFB) -------------------------------------------------------------
    def console_input(self, conn: Conn) -> None:
        while self.is_open(conn) and self.console_step(conn):
            pass

    def console_step(self, conn: Conn) -> bool:
        """Consume one protocol unit from conn.buf; False when more input is needed."""
        buf = conn.buf
        if conn.stage == "version":
            if len(buf) < 12:
                return False
            version, conn.buf = buf[:12], buf[12:]
            if not version.startswith(b"RFB 003.") or not version[8:11].isdigit():
                self.close(conn)
                return False
            conn.minor = int(version[8:11])
            if conn.minor >= 7:
                self.send(conn, b"\x01\x01")  # one security type: None
                conn.stage = "security"
            else:
                self.send(conn, _struct.pack(">I", 1))
                conn.stage = "init"
            return True
        if not buf:
            return False
        if conn.stage == "security":
            conn.buf = buf[1:]
            if conn.minor >= 8:
                self.send(conn, _struct.pack(">I", 0))
            conn.stage = "init"
            return True
        if conn.stage == "init":
            conn.buf = buf[1:]
            name = self.name.encode()
            pixel_format = _struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            init = _struct.pack(">HH", FB_WIDTH, FB_HEIGHT) + pixel_format
            self.send(conn, init + _struct.pack(">I", len(name)) + name)
            conn.stage = "session"
            return True
        return self.client_message(conn)

    def client_message(self, conn: Conn) -> bool:
        buf = conn.buf
        kind = buf[0]
        sizes = {0: 20, 3: 10, 4: 8, 5: 6}
        if kind in sizes:
            size = sizes[kind]
        elif kind == 2 and len(buf) >= 4:
            size = 4 + 4 * _struct.unpack(">H", buf[2:4])[0]
        elif kind == 6 and len(buf) >= 8:
            size = 8 + _struct.unpack(">I", buf[4:8])[0]
        elif kind in (2, 6):
            return False
        else:
            self.close(conn)  # not a message we know: not an RFB client
            return False
        if len(buf) < size:
            return False
        msg, conn.buf = buf[:size], buf[size:]
        if kind == 0:
            bpp, _depth, big, _true, rmax, gmax, bmax, rsh, gsh, bsh = _struct.unpack(
                ">BBBBHHHBBB", msg[4:17]
            )
            conn.bpp, conn.big_endian = bpp, bool(big)
            conn.channels = ((rmax, rsh), (gmax, gsh), (bmax, bsh))
        elif kind == 2:
            count = (size - 4) // 4
            conn.encodings = _struct.unpack(f">{count}i", msg[4:])
        elif kind == 3 and msg[1] == 0:
            x, y, w, h = _struct.unpack(">HHHH", msg[2:10])
            self.send(conn, self.screen_update(conn, x, y, w, h))
        return True

    def screen_update(self, conn: Conn, x: int, y: int, w: int, h: int) -> bytes:
        """A FramebufferUpdate painting the requested area in the screen colour."""
        w = max(0, min(w, FB_WIDTH - x))
        h = max(0, min(h, FB_HEIGHT - y))
        value = 0
        for level, (maximum, shift) in zip(SCREEN_RGB, conn.channels, strict=True):
            value |= (level * maximum // 255) << shift
        size = max(1, conn.bpp // 8)
        pixel = value.to_bytes(size, "big" if conn.big_endian else "little")
        header = b"\x00\x00" + _struct.pack(">H", 1)
        if 2 in conn.encodings:  # RRE: a background and no subrectangles
            rect = _struct.pack(">HHHHi", x, y, w, h, 2) + _struct.pack(">I", 0) + pixel
        else:
            rect = _struct.pack(">HHHHi", x, y, w, h, 0) + pixel * (w * h)
        return header + rect


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def detach_io(log_path: str) -> None:
    """Become a daemon's body: stdin from /dev/null, stdout/stderr to `log_path`,
    cwd /, SIGTERM ends the process, SIGHUP/SIGINT are ignored (shared by the VM
    processes and the launcher that forks them)."""
    null = posix.open(DEVNULL, posix.O_RDONLY)
    log = posix.open(log_path, posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND, 0o640)
    posix.dup2(null, 0)
    posix.dup2(log, 1)
    posix.dup2(log, 2)
    posix.close(null)
    posix.close(log)
    posix.chdir("/")
    _signal.signal(_signal.SIGTERM, _terminate)
    _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)


# How the driver runs a VM:
#   python -S -E -s -c BOOTSTRAP <dir of this file> MARKER NAME RUN_DIR NODE_TOKEN
# (NODE_TOKEN, the run dir's device:inode, only serves to recognise the process)
BOOTSTRAP = (
    "import sys;sys.path[0]=sys.argv[1];import fakevm,posix;posix._exit(fakevm.main(sys.argv[1:]))"
)


def main(argv: list[str]) -> int:
    """argv: [anything, MARKER, NAME, RUN_DIR, ...]; configuration on stdin."""
    if len(argv) < 4 or argv[1] != MARKER:
        sys.stderr.write("usage: fakevm.py corral-fakevm NAME RUN_DIR < config.json\n")
        return 2
    try:
        cfg = loads(sys.stdin.buffer.read().decode())
    except Exception as err:
        posix.write(1, f"ERR {err}\n".encode())
        return 1
    return start(argv[2], argv[3], cfg, 1)


def start(
    name: str, run_dir: str, cfg: dict[str, Any], out: int, title: tuple[int, bytes] | None = None
) -> int:
    """Bind the VM's sockets and fork the VM; report ``OK <pid> <port>`` or ``ERR ...`` on `out`.

    Returns the exit status in the calling process (after the report) and, in
    the VM, when the VM stops: both callers `posix._exit` with it. `title`
    (address of the argument area, its new bytes) rewrites the VM's command
    line before its pidfile appears (see `set_cmdline`): the launcher uses it
    so a forked VM reads like a spawned one in /proc/PID/cmdline.
    """
    try:
        vm = VM(name, run_dir, cfg)
        vm.bind_all()
    except Exception as err:
        posix.write(out, f"ERR {err}\n".encode())
        return 1
    log_path = cfg.get("log") or DEVNULL
    sync_r, sync_w = posix.pipe()
    child = posix.fork()
    if child:
        posix.close(sync_w)
        posix.read(sync_r, 1)  # returns at EOF: the child wrote its files (or died)
        posix.close(sync_r)
        try:
            with open(vm.pid_path) as pidfile:
                ok = int(pidfile.read().strip() or 0) == child
        except (OSError, ValueError):
            ok = False
        if not ok:
            posix.write(out, b"ERR the VM process died while starting\n")
            return 1
        posix.write(out, f"OK {child} {vm.rt.get('migration_port') or 0}\n".encode())
        return 0
    # the VM itself
    posix.close(sync_r)
    if posix.getsid(0) != posix.getpid():
        posix.setsid()
    if out > 2:
        posix.close(out)  # the launcher's connection: only the starter answers on it
    detach_io(log_path)
    if title is not None:
        try:
            set_cmdline(*title)
        except OSError:
            return 1  # no pidfile: the starter reports the failure
    vm.rt["pid"] = posix.getpid()
    vm.rt["booted_at"] = time.time()
    vm.save()
    vm.write_pidfile()
    posix.close(sync_w)
    try:
        vm.serve()
    except SystemExit:
        return 0
    return 0


# -- command line of a forked VM -----------------------------------------------------------
def arg_area() -> tuple[int, int]:
    """(start, end) address of this process's argument strings (/proc/self/stat 48-49)."""
    with open("/proc/self/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return int(fields[45]), int(fields[46])


def cmdline_bytes(args: list[str], size: int) -> bytes | None:
    """`args` as /proc/PID/cmdline shows them, NUL-padded to `size`; None if too long."""
    data = b"".join(a.encode() + b"\0" for a in args)
    if len(data) > size:
        return None
    return data + b"\0" * (size - len(data))


def set_cmdline(start: int, data: bytes) -> None:
    """Overwrite this process's argument strings in place (what setproctitle does).

    /proc/PID/cmdline is read from this memory: with the area's last byte NUL
    the kernel shows exactly the area, so a VM forked by the launcher carries
    the command line a spawned VM has (``... corral-fakevm NAME RUN_DIR TOKEN``)
    and is recognised the same way. Needs no capability (unlike PR_SET_MM).
    """
    fd = posix.open("/proc/self/mem", posix.O_RDWR)
    try:
        posix.lseek(fd, start, 0)
        if posix.write(fd, data) != len(data):
            raise OSError("short write to /proc/self/mem")
    finally:
        posix.close(fd)


if __name__ == "__main__":
    posix._exit(main(sys.argv))
