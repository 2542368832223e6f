"""corral-masterd as a process: master check, daemonizing, pidfile, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from corral import constants as C
from corral import opcodes
from corral.api.client import Client
from corral.config import save_config_file
from corral.paths import Paths
from corral.rpc import tls
from tests.jobs.fakes import sample_config

PY = sys.executable


def _setup(tmp_path: Any) -> Paths:
    paths = Paths.under(tmp_path)
    save_config_file(paths.config_file, sample_config())
    ca = tls.create_ca("cluster.example.com")
    cert, key, _serial = tls.issue_node_cert(ca, "node1.example.com")
    tls.install_node_material(paths, ca[0], cert, key, ca[1])
    return paths


def _masterd(tmp_path: Any, *extra: str) -> list[str]:
    return [PY, "-m", "corral.daemons.masterd", "--paths-root", str(tmp_path), *extra]


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_refuses_to_run_on_a_non_master(tmp_path: Any) -> None:
    _setup(tmp_path)
    proc = subprocess.run(
        _masterd(tmp_path, "--node-name", "node2.example.com"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == C.EXIT_NOTMASTER
    assert proc.stderr.strip() == "This is not the master node"


def test_missing_config_is_a_clear_error(tmp_path: Any) -> None:
    proc = subprocess.run(
        _masterd(tmp_path, "--node-name", "node1"), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "Cannot read the configuration file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_daemon_serves_and_stops_on_sigterm(tmp_path: Any) -> None:
    paths = _setup(tmp_path)
    start = time.monotonic()
    proc = subprocess.run(
        _masterd(tmp_path, "--node-name", "node1"), capture_output=True, text=True, timeout=30
    )
    # the starting process returns once the socket listens
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 20
    assert os.path.exists(paths.master_socket)
    with open(paths.masterd_pidfile) as handle:
        pid = int(handle.read())
    try:
        client = Client(paths.master_socket, timeout=10)
        assert client.query_config_values(["master_node"]) == ["node1.example.com"]
        job = client.submit_job([opcodes.OpTestDelay(duration=0)])
        _wait_for(lambda: client.query_jobs([job], ["status"]) == [["success"]])
        # a second daemon refuses to start
        second = subprocess.run(
            _masterd(tmp_path, "--node-name", "node1", "--foreground"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        client.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    _wait_for(lambda: not os.path.exists(paths.masterd_pidfile))
    assert not os.path.exists(paths.master_socket)
    with open(os.path.join(paths.log_dir, "masterd.log")) as handle:
        log = handle.read()
    assert "corral-masterd stopped" in log


def test_idle_memory_is_small(tmp_path: Any) -> None:
    paths = _setup(tmp_path)
    proc = subprocess.Popen(
        _masterd(tmp_path, "--node-name", "node1", "--foreground"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: os.path.exists(paths.master_socket) or proc.poll() is not None)
        assert proc.poll() is None
        rss_kib = 0
        with open(f"/proc/{proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss_kib = int(line.split()[1])
        assert 0 < rss_kib < 60 * 1024, f"masterd idle RSS {rss_kib} KiB"
        with open(f"/proc/{proc.pid}/maps") as handle:
            assert "numpy" not in handle.read()  # every LU module loaded, numpy not
        modules = subprocess.run(
            [PY, "-c", "import sys, corral.daemons.masterd; print('numpy' in sys.modules)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert modules.stdout.strip() == "False"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("masterd did not stop on SIGTERM")
    assert proc.returncode == 0
