"""Instance disk operations end to end on 3 testkit nodes: replace-disks -n and
-s, evacuating a secondary node, reinstall. Data is compared by sha256 of the
DRBD data volume files (filedrbd TEST backend) on the nodes."""

from __future__ import annotations

import re

import pytest

from corral.testkit.cluster import Testkit
from corral.testkit.scenario import Step, run_step, setup_steps

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

VM = "diskvm.project.edu"
VG_DIR = "/srv/ganeti/volumes/ganeti"
MARKER = "corral-disk-ops-marker"


def gnt(kit: Testkit, *argv: str) -> str:
    res = run_step(kit, Step(" ".join(argv), list(argv)))
    assert res.returncode == 0, f"{' '.join(argv)}: rc={res.returncode}\n{res.output}"
    return res.output


def data_files(kit: Testkit, node: str) -> list[str]:
    out = kit.exec(node, ["sh", "-c", f"ls {VG_DIR}/*.disk0_data 2>/dev/null || true"]).stdout
    return out.split()


def sha(kit: Testkit, node: str) -> str:
    (path,) = data_files(kit, node)
    return str(kit.exec(node, ["sha256sum", path], check=True).stdout.split()[0])


def nodes_of(kit: Testkit) -> tuple[str, str]:
    out = gnt(kit, "gnt-instance", "list", "--no-headers", "-o", "pnode,snodes", VM)
    pnode, snode = out.split()
    return pnode.split(".")[0], snode.split(".")[0]


def test_disk_operations(kit: Testkit) -> None:
    for step in setup_steps():
        if step.title.startswith(("2.10", "2.12")):
            res = run_step(kit, step)
            assert res.returncode in step.allowed_codes, f"{step.title}: {res.output}"
    gnt(
        kit, "gnt-instance", "add", "-t", "drbd", "-o", "image+cd", "-s", "256M",
        "-B", "minmem=128M,maxmem=128M", "-n", "node1.project.edu:node2.project.edu",
        "--no-start", "--no-name-check", "--no-ip-check", VM,
    )  # fmt: skip
    assert nodes_of(kit) == ("node1", "node2")
    (path,) = data_files(kit, "node1")
    kit.exec(
        "node1",
        ["sh", "-c", f"printf {MARKER} | dd of={path} bs=1 seek=1048576 conv=notrunc status=none"],
        check=True,
    )
    primary_sum = sha(kit, "node1")

    # -n: the mirror moves to node3, node2 keeps nothing
    out = gnt(kit, "gnt-instance", "replace-disks", "-n", "node3.project.edu", VM)
    for text in (
        "STEP 1/6 Check device existence",
        "STEP 4/6 Changing drbd configuration",
        "STEP 5/6 Sync devices",
        "STEP 6/6 Removing old storage",
        "- INFO: Checking disk/0 on node1.project.edu",
        "- INFO: Updating instance configuration",
    ):
        assert text in out, out
    assert nodes_of(kit) == ("node1", "node3")
    assert data_files(kit, "node2") == []
    assert sha(kit, "node3") == primary_sum

    # -s: new volumes on the secondary, resynced from the primary
    old = data_files(kit, "node3")
    inode = kit.exec("node3", ["stat", "-c", "%i", old[0]], check=True).stdout.strip()
    out = gnt(kit, "gnt-instance", "replace-disks", "-s", VM)
    assert "- INFO: Adding new mirror component on node3.project.edu" in out, out
    assert kit.exec("node3", ["stat", "-c", "%i", old[0]], check=True).stdout.strip() != inode
    assert sha(kit, "node3") == primary_sum
    assert "_replaced-" not in kit.exec("node3", ["ls", VG_DIR], check=True).stdout

    # evacuating the secondary node moves the mirror to the only free node
    out = gnt(kit, "gnt-node", "evacuate", "-f", "-s", "node3.project.edu")
    assert "All instances evacuated successfully." in out, out
    assert nodes_of(kit) == ("node1", "node2")
    assert sha(kit, "node2") == primary_sum
    assert data_files(kit, "node3") == []

    # reinstall (stopped instance) keeps the mirror consistent
    out = gnt(kit, "gnt-instance", "reinstall", "-f", VM)
    assert re.search(r"Running the instance OS create scripts", out), out
    assert sha(kit, "node2") == sha(kit, "node1")
    gnt(kit, "gnt-cluster", "verify")
