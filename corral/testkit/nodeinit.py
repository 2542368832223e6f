"""The init process of one testkit node: builds its namespaces and holds them.

Run as ``python -m corral.testkit.nodeinit SPEC_JSON READY_FD`` (by the
controller, `corral.testkit.node`). It

1. unshares mount, UTS, IPC, network and PID namespaces and forks; the child
   is PID 1 of the node, the parent writes ``pid <host pid>`` to READY_FD and
   exits (so the caller never waits on a long-lived child and the node init
   keeps none of the caller's stdio: its stdout/stderr are the node's log);
2. in the child, makes every mount private, builds the node's root on a tmpfs:
   a copy-on-write overlay of the host's /etc, /var, /srv and /root (upper dirs
   under the node directory, so the host's never change), binds of the other
   top-level host directories, a fresh tmpfs /run, the node's sparse disk
   loop-mounted on /srv/ganeti, its private state directories and the shared
   file storage bound over their real paths, the hosts file over /etc/hosts, a
   fresh /proc and /sys; then pivots into it and sets the hostname;
3. writes ``ready`` (or ``error: <one line>``) to READY_FD, and reaps orphans
   until SIGTERM/SIGINT. When it exits (or is SIGKILLed from the host) the
   kernel kills every process of the node and tears its namespaces down, which
   also unmounts the disk and frees its loop device.

The spec (JSON) is built by the controller; keys are documented in `_Spec`.
Only the standard library is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

from corral.testkit import syscalls as sc


class _Spec(TypedDict):
    hostname: str
    new_root: str  # empty directory on the host, becomes the node's /
    overlays: dict[str, list[str]]  # top-level name -> [upper dir, work dir]
    disk_image: str  # ext4 image mounted on srv_mount
    srv_mount: str
    srv_subdirs: list[str]
    binds: list[list[str]]  # [host source, node path], in order, dirs or files
    tmpfs: list[str]  # node paths that get a fresh tmpfs (/run ...)
    mkdirs: list[str]  # node paths created last (e.g. /run/corral)


_SKIP_TOP = {"proc", "sys", "dev", "run", "tmp"}


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _ensure(target: str, like: str) -> None:
    """Create the mount point `target` as a directory or an empty file like `like`."""
    if os.path.isdir(like) or not os.path.exists(like):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()


def _build_root(spec: _Spec) -> None:
    root = spec["new_root"]
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("corral-node", root, "tmpfs", 0, "mode=0755")
    host_tops = set(os.listdir("/"))
    for name in sorted(host_tops | set(spec["overlays"])):
        host = "/" + name
        target = os.path.join(root, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), target)
        elif name in spec["overlays"]:
            upper, work = spec["overlays"][name]
            os.mkdir(target)
            if os.path.isdir(host):
                opts = f"lowerdir={host},upperdir={upper},workdir={work}"
                sc.mount("corral-overlay", target, "overlay", 0, opts)
            else:  # not on the host: a plain directory of the node's own
                sc.mount(upper, target, None, sc.MS_BIND)
        elif name in _SKIP_TOP:
            os.mkdir(target)
        elif name.startswith("old_root") or name == ".oldroot":
            continue
        else:
            _ensure(target, host)
            # /mnt without its submounts: the host's automounts stay the host's
            flags = sc.MS_BIND if name == "mnt" else sc.MS_BIND | sc.MS_REC
            sc.mount(host, target, None, flags)
    sc.mount("/dev", os.path.join(root, "dev"), None, sc.MS_BIND | sc.MS_REC)
    sc.mount("/tmp", os.path.join(root, "tmp"), None, sc.MS_BIND | sc.MS_REC)
    for path in spec["tmpfs"]:
        target = _inside(root, path)
        if os.path.islink(target):
            continue  # e.g. /var/run -> /run, already covered
        os.makedirs(target, exist_ok=True)
        sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0755")
    srv = _inside(root, spec["srv_mount"])
    os.makedirs(srv, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "ext4", "-o", "loop,noinit_itable", spec["disk_image"], srv],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    for sub in spec["srv_subdirs"]:
        os.makedirs(os.path.join(srv, sub), exist_ok=True)
    for source, path in spec["binds"]:
        target = _inside(root, path)
        _ensure(target, source)
        sc.mount(source, target, None, sc.MS_BIND)
    for path in spec["mkdirs"]:
        os.makedirs(_inside(root, path), exist_ok=True)
    sc.mount("proc", os.path.join(root, "proc"), "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    sys_dir = os.path.join(root, "sys")
    try:  # a sysfs of our own shows this node's network devices
        sc.mount("sysfs", sys_dir, "sysfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    except OSError:
        sc.mount("/sys", sys_dir, None, sc.MS_BIND | sc.MS_REC)
    old = os.path.join(root, ".oldroot")
    os.mkdir(old)
    os.chdir(root)
    sc.pivot_root(".", ".oldroot")
    os.chdir("/")
    sc.umount("/.oldroot", sc.MNT_DETACH)
    os.rmdir("/.oldroot")
    with contextlib.suppress(OSError):  # the copy of this root the /tmp rbind dragged in
        sc.umount(root, sc.MNT_DETACH)
    socket.sethostname(spec["hostname"])


def _reap_forever() -> None:
    """Reap orphans until SIGTERM or SIGINT (signals blocked, so no race)."""
    wanted = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    while True:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if signal.sigwait(wanted) in (signal.SIGTERM, signal.SIGINT):
            return


def main(argv: list[str]) -> int:
    spec: _Spec = json.loads(Path(argv[0]).read_text())
    ready = int(argv[1])
    sc.unshare(
        sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET | sc.CLONE_NEWPID
    )
    child = os.fork()
    if child:
        os.write(ready, f"pid {child}\n".encode())
        return 0
    try:
        _build_root(spec)
    except (OSError, subprocess.CalledProcessError) as err:
        os.write(ready, f"error: {err}\n".replace("\n", " ").strip().encode() + b"\n")
        return 1
    os.write(ready, b"ready\n")
    os.close(ready)
    print(f"node {spec['hostname']} up", flush=True)
    _reap_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
