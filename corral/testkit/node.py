"""One testkit node seen from the host: its files, its init, its noded, entering it.

A node is held by its init process (`corral.testkit.nodeinit`); every other
process of the node is entered into the init's namespaces with ``nsenter``.
Killing the init with SIGKILL kills the whole node at once (PID namespace),
which is how ``crash`` pulls the plug.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from corral.testkit import layout as L
from corral.testkit.errors import TestkitError
from corral.testkit.state import process_start_time

NODED_ENV = "CORRAL_TESTKIT_NODED_CMD"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def venv_bin() -> Path:
    """Directory of the running interpreter's scripts (the venv's bin, not resolved)."""
    return Path(sys.executable).parent


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for commands on a node: the venv's bin first on PATH, HOME=/root."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{venv_bin()}:{_SYSTEM_PATH}"
    env["HOME"] = "/root"
    env.pop(NODED_ENV, None)
    return env


def nsenter_argv(pid: int, argv: list[str], cwd: str = "/root") -> list[str]:
    """argv running `argv` in every namespace of node init `pid`, in `cwd` (else /)."""
    return ["nsenter", "-t", str(pid), "-a", "--", "sh", "-c", _CD_EXEC, "sh", cwd, *argv]


# cd into $1 (falling back to /) and exec the rest; the command sees its argv untouched
_CD_EXEC = 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"'


def prepare_dirs(kit: L.Layout, name: str, token: str, hardware: dict[str, int]) -> None:
    """Fresh private state directories of a node (the host's /etc/ganeti copied in)."""
    node_dir = kit.node_dir(name)
    if node_dir.exists():
        shutil.rmtree(node_dir)
    for path in L.NODE_STATE_DIRS:
        if path == "/etc/ganeti" and Path(path).is_dir():
            shutil.copytree(path, kit.node_path(name, path), symlinks=True)
        kit.node_path(name, path).mkdir(parents=True, exist_ok=True)
    for top in L.OVERLAY_TOPS:
        for sub in ("upper", "work"):
            (kit.overlay_dir(name, top) / sub).mkdir(parents=True, exist_ok=True)
    kit.new_root(name).mkdir(parents=True, exist_ok=True)
    etc = kit.node_path(name, "/etc/corral")
    (etc / "join.token").write_text(token + "\n")
    (etc / "join.token").chmod(0o600)
    (etc / "node-hardware.json").write_text(json.dumps(hardware) + "\n")


def create_disk(kit: L.Layout, name: str, size_mib: int) -> None:
    """A sparse ext4 image of `size_mib` MiB, quick to make (lazy inode tables)."""
    image = kit.disk_image(name)
    image.unlink(missing_ok=True)
    with image.open("wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    proc = subprocess.run(
        # one inode per 32 KiB (a store of few, large files) and no room kept for
        # online growth, no blocks reserved for root: a 140G disk shows 137.9G
        # total and free, like the paper's nodes
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            name,
            "-i",
            "32768",
            "-m",
            "0",
            "-O",
            "^resize_inode",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            str(image),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise TestkitError(f"mkfs.ext4 of {image} failed: {proc.stderr.strip()}")


def _init_spec(kit: L.Layout, name: str) -> dict[str, object]:
    binds = [[str(kit.node_path(name, p)), p] for p in L.NODE_STATE_DIRS]
    binds.append([str(kit.shared_dir), L.SHARED_MOUNT])
    binds.append([str(kit.hosts_file), "/etc/hosts"])
    return {
        "hostname": L.node_fqdn(L.node_index(name) or 0),
        "new_root": str(kit.new_root(name)),
        "overlays": {
            top: [
                str(kit.overlay_dir(name, top) / "upper"),
                str(kit.overlay_dir(name, top) / "work"),
            ]
            for top in L.OVERLAY_TOPS
        },
        "disk_image": str(kit.disk_image(name)),
        "srv_mount": L.SRV_MOUNT,
        "srv_subdirs": list(L.SRV_SUBDIRS),
        "binds": binds,
        "tmpfs": ["/run", "/var/run"],
        "mkdirs": ["/run/corral", "/run/lock"],
    }


def start_init(kit: L.Layout, name: str, timeout: float = 30.0) -> tuple[int, int]:
    """Start the node's init; returns (host pid, start time) once its root is built."""
    spec_file = kit.init_spec(name)
    spec_file.write_text(json.dumps(_init_spec(kit, name), indent=1) + "\n")
    read_fd, write_fd = os.pipe()
    try:
        with kit.init_log(name).open("ab") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "corral.testkit.nodeinit", str(spec_file), str(write_fd)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
                start_new_session=True,
                check=False,
                timeout=timeout,
            )
        os.close(write_fd)
        write_fd = -1
        lines = _read_lines(read_fd, timeout)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    pid = next((int(x.split()[1]) for x in lines if x.startswith("pid ")), None)
    where = f"see {kit.init_log(name)}"
    if proc.returncode != 0 or pid is None:
        raise TestkitError(f"Cannot start node {name} (exit code {proc.returncode}); {where}")
    errors = [x for x in lines if x.startswith("error:")]
    if errors or "ready" not in lines:
        kill_init(pid, None)
        why = errors[0] if errors else "no answer from its init"
        raise TestkitError(f"Cannot start node {name}: {why}; {where}")
    start = process_start_time(pid)
    if start is None:
        raise TestkitError(f"Node {name} died while starting; {where}")
    return pid, start


def _read_lines(fd: int, timeout: float) -> list[str]:
    """Lines from `fd` until EOF, ``ready`` or an error, within `timeout` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        if b"ready\n" in data or (b"error:" in data and data.endswith(b"\n")):
            break
    return data.decode(errors="replace").splitlines()


def kill_init(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
    """SIGKILL a node init (and so every process of the node) and wait until it is gone."""
    if start_time is not None and process_start_time(pid) != start_time:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_start_time(pid) is not None:
        if time.monotonic() > deadline:
            raise TestkitError(f"Node init {pid} did not die within {timeout:.0f} s")
        time.sleep(0.02)


def noded_argv() -> list[str]:
    """The noded command: $CORRAL_TESTKIT_NODED_CMD, else corral-noded next to python."""
    override = os.environ.get(NODED_ENV)
    if override:
        return shlex.split(override)
    noded = venv_bin() / "corral-noded"
    if not noded.exists():
        raise TestkitError(f"{noded} not found; install corral or set {NODED_ENV}")
    return [str(noded)]


def start_noded(kit: L.Layout, name: str, pid: int, argv: list[str]) -> None:
    """Start noded on the node, detached (it is expected to daemonize or run forever)."""
    log = kit.noded_log(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # setsid -f: the launcher returns at once, noded is nobody's child here
        subprocess.run(
            ["setsid", "-f", *nsenter_argv(pid, argv, cwd="/")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=node_env(),
            check=False,
        )


def loop_devices(image: Path) -> list[str]:
    """Loop devices currently backed by `image`."""
    proc = subprocess.run(
        ["losetup", "-n", "-O", "NAME", "-j", str(image)],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.split()


def wait_disk_released(image: Path, timeout: float = 10.0, force: bool = True) -> None:
    """Wait until no loop device backs `image` (the dead node's mount is torn down).

    With `force`, detach whatever is still attached at the deadline.
    """
    deadline = time.monotonic() + timeout
    while loop_devices(image):
        if time.monotonic() > deadline:
            if not force:
                raise TestkitError(f"{image} is still attached to a loop device")
            for dev in loop_devices(image):
                subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
            return
        time.sleep(0.05)


def stray_inits(kit: L.Layout) -> list[int]:
    """Pids of node inits of this site, found by their command line.

    For cleaning after a run that died before it could record a pid.
    """
    prefix = str(kit.root) + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args]
        if "corral.testkit.nodeinit" in words and any(w.startswith(prefix) for w in words):
            found.append(int(entry.name))
    return found
