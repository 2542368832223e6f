"""The paper's scenario (sections 2.10-3.7) end to end on 3 testkit nodes."""

from __future__ import annotations

import re

import pytest

from corral.testkit.cluster import Testkit
from corral.testkit.scenario import INSTANCE, ISO, StepResult, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]


def _by_title(results: list[StepResult], prefix: str) -> StepResult:
    for res in results:
        if res.step.title.startswith(prefix):
            return res
    raise AssertionError(f"step {prefix!r} did not run; ran: {[r.step.title for r in results]}")


def test_paper_scenario(kit: Testkit) -> None:
    results = run_scenario(kit)
    failed = [r for r in results if r.returncode not in r.step.allowed_codes]
    assert not failed, "\n".join(f"{r.step.title}: rc={r.returncode}\n{r.output}" for r in failed)

    nodes = [r for r in results if r.step.title == "2.10 Node list"][-1].stdout.splitlines()
    assert nodes[0].split() == [
        "Node",
        "DTotal",
        "DFree",
        "MTotal",
        "MNode",
        "MFree",
        "Pinst",
        "Sinst",
    ]
    assert [line.split()[0] for line in nodes[1:]] == [
        "node1.project.edu",
        "node2.project.edu",
        "node3.project.edu",
    ]
    for line in nodes[1:]:
        cols = line.split()
        assert cols[1].endswith("G") and float(cols[1][:-1]) > 130  # 140 GB disk
        assert cols[3] == "2.0G"  # 2 GiB of memory

    oses = _by_title(results, "2.12 OS list").stdout.split()
    assert "image+cd" in oses and "image+default" in oses

    sums = {
        node: kit.exec(node, ["sha256sum", ISO], check=True).stdout.split()[0]
        for node in ("node1", "node3")
    }
    assert len(set(sums.values())) == 1

    add = _by_title(results, "2.14").output
    assert re.search(
        rf"- INFO: Selected nodes for instance {re.escape(INSTANCE)} via allocator hail:"
        r" node\d\.project\.edu, node\d\.project\.edu",
        add,
    )
    for text in (
        "* creating instance disks...",
        f"adding instance {INSTANCE} to cluster config",
        f"- INFO: Waiting for instance {INSTANCE} to sync disks",
        f"- INFO: Instance {INSTANCE}'s disks are in sync",
        "* running the instance OS create scripts...",
    ):
        assert text in add
    assert re.search(r"- INFO: - device disk/0: +\d+\.\d\d% done", add)

    assert "Waiting for job" in _by_title(results, "3.1").output

    verify = _by_title(results, "3.2").output
    phases = [
        "* Verifying cluster config",
        "* Verifying cluster certificate files",
        "* Verifying hypervisor parameters",
        "* Verifying all nodes belong to an existing group",
        "* Verifying group 'default'",
        "* Gathering data (3 nodes)",
        "* Verifying node status",
        "* Verifying instance status",
        "* Verifying orphan volumes",
        "* Verifying N+1 Memory redundancy",
        "* Hooks Results",
    ]
    positions = [verify.find(p) for p in phases]
    assert all(p >= 0 for p in positions), verify
    assert positions == sorted(positions)
    assert "ERROR" not in verify

    info = _by_title(results, "3.3").stdout
    match = re.search(
        r"console connection: vnc to (node\d\.project\.edu):(\d+) \(display (\d+)\)", info
    )
    assert match, info
    host, port = match.group(1), int(match.group(2))
    assert int(match.group(3)) == port - 5900
    assert "- disk/0: drbd, size 4.0G" in info
    assert re.search(r"nodeA: node\d\.project\.edu, minor=\d+", info)
    assert "auth key:" in info

    banner = kit.exec(
        "node1",
        [
            "python3",
            "-c",
            f"import socket; s=socket.create_connection(('{host}', {port}), 5);"
            " print(s.recv(12).decode())",
        ],
        check=True,
    ).stdout
    assert banner.startswith("RFB 003.008")

    modify = _by_title(results, "3.5").stdout
    assert "nic.link/0 -> br-man" in modify

    migrate = _by_title(results, "3.6")
    assert migrate.returncode == 0
    crash = _by_title(results, "3.7 Pull the plug")
    crashed = crash.extra["crashed"]

    final = _by_title(results, "3.7 Instance list").stdout.splitlines()
    assert final[0].split() == ["Instance", "Primary_node", "Secondary_Nodes", "Status"]
    row = next(line.split() for line in final[1:] if line.startswith(INSTANCE))
    assert row[1] != f"{crashed}.project.edu"
    assert row[2] == f"{crashed}.project.edu"
    assert row[3] == "running"


def test_dead_node_comes_back_and_the_watcher_repairs(kit: Testkit) -> None:
    """After the scenario: power the crashed node back on; within a couple of
    watcher rounds the mirror is in sync again and verify is clean."""
    import time

    crashed = next(n for n in kit.node_names if not kit.is_up(n))
    kit.boot(crashed)
    master = "node1" if crashed != "node1" else "node2"
    deadline = time.monotonic() + 120
    verify = ""
    while time.monotonic() < deadline:
        info = kit.exec(master, ["gnt-instance", "info", INSTANCE], check=True).stdout
        verify = kit.exec(master, ["gnt-cluster", "verify"], check=False).stdout
        # the first "on secondary:" line is the DRBD device itself (then its children)
        parts = info.split("on secondary:")
        synced = len(parts) > 1 and "in sync, status ok" in parts[1].splitlines()[0]
        if synced and "ERROR" not in verify and "WARNING" not in verify:
            break
        time.sleep(5)
    else:
        raise AssertionError(f"not repaired in time:\n{verify}")
