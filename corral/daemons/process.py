"""Process plumbing shared by corral-masterd and corral-noded.

* `PidFile`: an flock-ed pidfile, so a second copy of a daemon refuses to start
  (the lock lives as long as any copy of the descriptor is open).
* `daemonize`: double fork + setsid, stdio moved to the daemon's log file and
  /dev/null, so the daemon is detached from the terminal and from the pipes of
  whatever started it. The starting process waits on a readiness pipe and exits
  with the daemon's verdict: ``"ok"`` -> 0, anything else is printed and -> 1
  (or the code `exit_codes` maps the message to).
* `Ready`: the daemon's end of that pipe, written once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

from corral import errors


class PidFile:
    """``/var/run/corral/<daemon>.pid``, locked while the daemon runs."""

    def __init__(self, path: str, daemon: str) -> None:
        self.path = path
        self.daemon = daemon
        self.fd = -1

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            try:
                other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            except OSError:
                other = ""
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise errors.GenericError(
                    f"{self.daemon} is already running (pid {other or '?'})"
                ) from err
            raise
        self.fd = fd

    def write_pid(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Remove and unlock (idempotent)."""
        if self.fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = -1


class Ready:
    """The readiness pipe to the waiting parent (written once, then closed)."""

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd

    def notify(self, message: str) -> None:
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            os.write(fd, message.encode())
        except OSError:
            pass
        finally:
            os.close(fd)


def daemonize(log_file: str, daemon: str, exit_codes: dict[str, int] | None = None) -> Ready:
    """Detach; returns, in the daemon, the pipe on which to report readiness."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(wfd)
        chunks = []
        while data := os.read(rfd, 4096):
            chunks.append(data)
        os.waitpid(pid, 0)
        message = b"".join(chunks).decode(errors="replace").strip()
        if message == "ok":
            os._exit(0)
        sys.stderr.write((message or f"{daemon} failed to start") + "\n")
        os._exit((exit_codes or {}).get(message, 1))
    os.close(rfd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    # files the daemons create are private unless written with an explicit mode
    # (the job queue holds secrets: join tokens, private OS parameters)
    os.umask(0o077)
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    return Ready(wfd)
