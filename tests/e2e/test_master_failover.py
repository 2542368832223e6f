"""Master failover keeps the configuration, the job history and the instances,
and an external iallocator (Ganeti's own hail) places instances."""

from __future__ import annotations

import os

import pytest

from corral.testkit.cluster import Testkit
from tests.e2e.conftest import init_argv, ok

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

GANETI_HAIL = "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail"


def _ok(kit: Testkit, node: str, *argv: str) -> str:
    return ok(kit, *argv, node=node, timeout=300)


@pytest.fixture(scope="module")
def cluster(kit: Testkit) -> Testkit:
    _ok(kit, "node1", *init_argv())
    for node in ("node2", "node3"):
        _ok(kit, "node1", "gnt-node", "add", f"{node}.project.edu")
    return kit


@pytest.mark.skipif(not os.access(GANETI_HAIL, os.X_OK), reason="ganeti-htools-3.0 not installed")
def test_ganeti_hail_places_a_drbd_instance(cluster: Testkit) -> None:
    out = _ok(
        cluster,
        "node1",
        "gnt-instance",
        "add",
        "-I",
        GANETI_HAIL,
        "-t",
        "drbd",
        "-o",
        "image",
        "-s",
        "1G",
        "-B",
        "maxmem=256M",
        "--no-name-check",
        "--no-ip-check",
        "ext1",
    )
    assert f"via allocator {GANETI_HAIL}:" in out
    row = _ok(
        cluster,
        "node1",
        "gnt-instance",
        "list",
        "--no-headers",
        "-o",
        "pnode,snodes,status",
        "ext1",
    ).split()
    assert row[0] != row[1] and row[2] == "running"


def test_master_failover_keeps_config_and_jobs(cluster: Testkit) -> None:
    _ok(
        cluster,
        "node1",
        "gnt-instance",
        "add",
        "-t",
        "file",
        "-o",
        "image",
        "-s",
        "512M",
        "-B",
        "maxmem=128M",
        "-n",
        "node3.project.edu",
        "--no-name-check",
        "--no-ip-check",
        "keep1",
    )
    jobs_before = _ok(cluster, "node1", "gnt-job", "list", "--no-headers").splitlines()
    _ok(cluster, "node2", "gnt-cluster", "master-failover")
    assert _ok(cluster, "node2", "gnt-cluster", "getmaster").strip() == "node2.project.edu"
    jobs_after = _ok(cluster, "node2", "gnt-job", "list", "--no-headers").splitlines()
    assert jobs_after[: len(jobs_before)] == jobs_before
    assert "keep1" in _ok(cluster, "node2", "gnt-instance", "list", "--no-headers", "-o", "name")
    # the new master runs jobs, and the old one no longer answers as master
    _ok(cluster, "node2", "gnt-instance", "stop", "keep1")
    old = cluster.exec("node1", ["gnt-instance", "list"], check=False)
    assert old.returncode == 11  # Ganeti's EXIT_NOTMASTER
    assert "This is not the master node, please connect to node 'node2.project.edu'" in (old.stderr)
    # the floating cluster address moved with the master role
    addrs = _ok(cluster, "node2", "ip", "-br", "addr", "show", "br-man")
    assert "192.168.20.220" in addrs
    assert "192.168.20.220" not in _ok(cluster, "node1", "ip", "-br", "addr", "show", "br-man")
