"""corral-noded as a real process: detaching, pidfile, signals, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import objects
from corral.hypervisor.base import InstanceStartSpec
from corral.paths import Paths
from corral.rpc import tls
from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner
from corral.rpc.join import fetch_fingerprint

NODED = [sys.executable, "-m", "corral.daemons.noded"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(root: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CORRAL_NETWORK_DRIVER=f"fake:{root}/net.json")
    return subprocess.run(
        [*NODED, "--paths-root", str(root), "--port", str(port), "--bind", "127.0.0.1", *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,  # the daemon must hand the pipes back at once
        env=env,
    )


def _pid(paths: Paths) -> int:
    return int(Path(paths.noded_pidfile).read_text())


def _stop(paths: Paths) -> None:
    try:
        pid = _pid(paths)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _stop(Paths.under(tmp_path))


def test_detaches_and_refuses_second_instance(root: Path) -> None:
    paths = Paths.under(root)
    port = _free_port()
    started = time.monotonic()
    first = _start(root, port)
    assert first.returncode == 0, first.stderr
    assert time.monotonic() - started < 10
    assert first.stdout == "" and first.stderr == ""
    pid = _pid(paths)
    assert pid != os.getpid()
    os.kill(pid, 0)  # alive, detached: own session, not our child (double fork)
    assert os.getsid(pid) != os.getsid(0)
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()
    fds = {os.readlink(f"/proc/{pid}/fd/{n}") for n in ("0", "1", "2")}
    assert fds == {"/dev/null", str(Path(paths.log_dir, "noded.log"))}
    # unjoined: serves its self-signed certificate
    fp = fetch_fingerprint("127.0.0.1", port)
    assert fp == tls.fingerprint(Path(paths.etc_dir, "noded-selfsigned.pem").read_text())
    second = _start(root, _free_port())
    assert second.returncode == 1
    assert second.stderr.strip() == f"corral-noded is already running (pid {pid})"
    assert _pid(paths) == pid
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not os.path.exists(paths.noded_pidfile):
            break
        time.sleep(0.05)
    assert not os.path.exists(paths.noded_pidfile)
    assert "shutting down" in Path(paths.log_dir, "noded.log").read_text()


def test_port_in_use_reported_by_parent(root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = _start(root, busy.getsockname()[1])
    assert res.returncode == 1
    assert res.stderr.startswith("Cannot listen on 127.0.0.1:")
    assert not os.path.exists(Paths.under(root).noded_pidfile)


def _material(paths: Paths) -> None:
    ca = tls.create_ca("c")
    cert, key, _ = tls.issue_node_cert(ca, "node1", ["127.0.0.1"])
    tls.install_node_material(paths, ca[0], cert, key)


async def _call(paths: Paths, port: int, name: str, *args: object) -> object:
    async with RpcRunner(ClientTLS.from_paths(paths), port=port) as runner:
        res = await runner.call(name, NodeTarget("node1", "127.0.0.1"), *args)
        res.raise_on_fail()
        return res.payload


def test_sighup_reloads_tls(root: Path) -> None:
    paths = Paths.under(root)
    port = _free_port()
    assert _start(root, port).returncode == 0
    _material(paths)
    os.kill(_pid(paths), signal.SIGHUP)
    for _ in range(50):
        if fetch_fingerprint("127.0.0.1", port) == tls.fingerprint(
            Path(paths.node_cert).read_text()
        ):
            break
        time.sleep(0.1)
    version = asyncio.run(_call(paths, port, "version"))
    assert isinstance(version, dict) and version["joined"] is True


def test_restart_keeps_running_vm_visible(root: Path) -> None:
    paths = Paths.under(root)
    _material(paths)
    port = _free_port()
    assert _start(root, port).returncode == 0
    inst = objects.Instance(
        name="vm1.project.edu",
        uuid="u1",
        primary_node="n1",
        hypervisor="fake",
        beparams={"maxmem": 128, "minmem": 128, "vcpus": 1},
    )
    spec = InstanceStartSpec(instance=inst, hvparams={}, beparams=inst.beparams, disks=[], nics=[])
    asyncio.run(_call(paths, port, "instance_start", spec, "fake"))
    try:
        vm_pid = asyncio.run(_call(paths, port, "instance_info", inst.name, "fake")).pid  # type: ignore[attr-defined]
        _stop(paths)
        assert _start(root, port).returncode == 0
        assert asyncio.run(_call(paths, port, "instance_list", ["fake"])) == [inst.name]
        info = asyncio.run(_call(paths, port, "instance_info", inst.name, "fake"))
        assert info.pid == vm_pid and info.state == "running"  # type: ignore[attr-defined]
    finally:
        asyncio.run(_call(paths, port, "instance_shutdown", inst.name, "fake", 5.0, True))
    assert asyncio.run(_call(paths, port, "instance_list", ["fake"])) == []
