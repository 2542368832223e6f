"""hbal -L / -L -X / -m and hspace -L / -m on a live three-node testkit cluster.

Four drbd instances all on node1:node2 leave node3 empty; hbal reads that
through the local API, proposes moves, then executes them as jobs; the
instances really move and the score drops.
"""

from __future__ import annotations

import os
import re

import pytest

from corral.paths import DEFAULT_PATHS
from corral.testkit.cluster import Testkit
from tests.e2e.conftest import init_argv

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

INSTANCES = ("hb1", "hb2", "hb3", "hb4")
GANETI_HBAL = "/usr/lib/ganeti/3.0/usr/bin/hbal"


def _run(kit: Testkit, *argv: str, rc: int = 0) -> str:
    proc = kit.exec("node1", list(argv), check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == rc, f"{argv}: rc={proc.returncode}\n{out}"
    assert "Traceback" not in out
    return proc.stdout


def _placement(kit: Testkit) -> dict[str, tuple[str, str]]:
    out = _run(kit, "gnt-instance", "list", "--no-headers", "-o", "name,pnode,snodes")
    rows = [ln.split() for ln in out.splitlines() if ln.strip()]
    return {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in rows}


@pytest.fixture(scope="module")
def cluster(kit: Testkit) -> Testkit:
    _run(kit, *init_argv())
    for node in ("node2", "node3"):
        _run(kit, "gnt-node", "add", f"{node}.project.edu")
    for i, name in enumerate(INSTANCES):
        extra = ["--no-start"] if i % 2 else []
        _run(
            kit, "gnt-instance", "add", "-t", "drbd", "-o", "image", "-s", "1G",
            "-B", "maxmem=256M", "-n", "node1.project.edu:node2.project.edu",
            "--no-name-check", "--no-ip-check", *extra, name,
        )  # fmt: skip
    return kit


def _score(out: str, pattern: str) -> float:
    m = re.search(pattern, out)
    assert m, out
    return float(m.group(1))


@pytest.mark.skipif(not os.access(GANETI_HBAL, os.X_OK), reason="ganeti-htools-3.0 not installed")
def test_ganeti_hbal_reads_the_same_cluster(cluster: Testkit) -> None:
    """Ganeti's own hbal -L speaks to corral's master socket: same data, same score."""
    sock = DEFAULT_PATHS.master_socket
    ours = _run(cluster, "hbal", f"-L{sock}", "-C")
    theirs = _run(cluster, GANETI_HBAL, f"-L{sock}", "-C")
    pattern = r"Initial score: (\d+\.\d{8})\n"
    assert _score(ours, pattern) == _score(theirs, pattern)
    final = r"Cluster score improved from \d+\.\d{8} to (\d+\.\d{8})\n"
    assert _score(ours, final) <= _score(theirs, final)


def _hts(out: str) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in out.splitlines() if ln.startswith("HTS_"))


def test_hbal_m_reads_the_cluster_over_rapi(cluster: Testkit) -> None:
    """-m (RAPI, from another node) sees what -L (local API on the master) sees."""
    pattern = r"Initial score: (\d+\.\d{8})\n"
    local = _run(cluster, "hbal", "-L", "-C")
    proc = cluster.exec("node2", ["hbal", "-m", "node1.project.edu", "-C"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Loaded 3 nodes, 4 instances" in proc.stdout
    assert _score(proc.stdout, pattern) == _score(local, pattern)
    # the same solution too: the models are equal
    assert proc.stdout == local


def test_hbal_m_on_a_wrong_port_is_one_line(cluster: Testkit) -> None:
    proc = cluster.exec("node2", ["hbal", "-m", "node1.project.edu:5081"], check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: failed to load data, aborting: Cannot fetch ")
    assert proc.stderr.count("\n") == 1


@pytest.mark.skipif(not os.access(GANETI_HBAL, os.X_OK), reason="ganeti-htools-3.0 not installed")
def test_ganeti_hbal_reads_corral_rapi(cluster: Testkit) -> None:
    """Ganeti's own hbal -m (Haskell, curl) reads corral's RAPI: same score as corral's."""
    ip = cluster.node_ip("node1")
    theirs = cluster.exec("node2", [GANETI_HBAL, "-m", ip, "-C"], timeout=600)
    out = theirs.stdout + theirs.stderr
    if theirs.returncode != 0 and "Curl error" in out and "Unsupported" in out:
        pytest.skip(f"this Ganeti hbal cannot speak HTTPS/RAPI: {out.strip()}")
    assert theirs.returncode == 0, out
    ours = _run(cluster, "hbal", "-m", ip, "-C")
    pattern = r"Initial score: (\d+\.\d{8})\n"
    print(f"Ganeti's hbal -m {ip}:\n{theirs.stdout}\ncorral's hbal -m {ip}:\n{ours}")
    assert "Loaded 3 nodes, 4 instances" in theirs.stdout
    assert _score(theirs.stdout, pattern) == _score(ours, pattern)
    final = r"Cluster score improved from \d+\.\d{8} to (\d+\.\d{8})\n"
    assert _score(ours, final) <= _score(theirs.stdout, final)


def test_hbal_L_plans_then_X_executes(cluster: Testkit) -> None:
    before = _placement(cluster)
    assert all(before[n] == ("node1.project.edu", "node2.project.edu") for n in INSTANCES)

    plan = _run(cluster, "hbal", "-L", "-C")
    assert "Loaded 3 nodes, 4 instances" in plan
    initial = _score(plan, r"Initial score: (\d+\.\d{8})\n")
    final = _score(plan, r"Cluster score improved from \d+\.\d{8} to (\d+\.\d{8})\n")
    assert final < initial
    assert "gnt-instance" in plan

    done = _run(cluster, "hbal", "-L", "-X")
    assert _score(done, r"Initial score: (\d+\.\d{8})\n") == initial
    assert "Executing jobset for instances " in done
    assert re.search(r"Got job IDs \d+", done)

    after = _placement(cluster)
    assert after != before
    used = {node for pair in after.values() for node in pair}
    assert "node3.project.edu" in used
    assert all(p != s for p, s in after.values())

    again = _run(cluster, "hbal", "-L")
    assert _score(again, r"Initial score: (\d+\.\d{8})\n") < initial


def test_hspace_L_machine_readable(cluster: Testkit) -> None:
    out = _run(cluster, "hspace", "-L", "--machine-readable")
    kv = dict(ln.split("=", 1) for ln in out.splitlines() if ln.startswith("HTS_"))
    assert kv["HTS_OK"] == "1"
    assert kv["HTS_CLUSTER_NODES"] == "3"
    assert kv["HTS_INI_INST_CNT"] == "4"
    for key in ("HTS_INI_SCORE", "HTS_TRL_INST_CNT", "HTS_FIN_INST_CNT", "HTS_ALLOC_INSTANCES"):
        assert key in kv
    assert int(kv["HTS_FIN_INST_CNT"]) >= 4


def test_hspace_m_matches_L(cluster: Testkit) -> None:
    """hspace over RAPI (a full URL) and through the local API: the same HTS figures.

    Runs after the balancing test: hspace on the balanced cluster is quicker.
    """
    over_rapi = _run(
        cluster, "hspace", "-m", "https://node1.project.edu:5080", "--machine-readable"
    )
    via_luxi = _run(cluster, "hspace", "-L", "--machine-readable")
    assert _hts(over_rapi)["HTS_OK"] == "1"
    assert _hts(over_rapi) == _hts(via_luxi)
