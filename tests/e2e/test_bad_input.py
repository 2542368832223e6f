"""Bad input on a real 3-node testkit cluster (issue 3, point 11).

Every case runs the real command on the master node and checks that it
(a) exits with Ganeti's code, (b) prints Ganeti's kind of error and no
traceback, (c) leaves nothing half made: the instance list, the disk files
(file storage and the LV stand-ins under /srv/ganeti/volumes) and the fake
VMs' run files on every node are what they were before, and (d) the job it
submitted, if any, ended as ``error``.

The cluster has small nodes (2 GiB of memory, 8 GiB of disk) so the
out-of-memory and out-of-disk cases are cheap, a running file-backed
instance ``inst1`` (for the duplicate name and the modify cases) and an OS
definition ``failos`` whose scripts fail, for a failure during the create.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.testkit.cluster import Testkit
from tests.e2e.conftest import Result, init_argv, run
from tests.e2e.conftest import ok as ok_on

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

NODES = ("node1", "node2", "node3")
DOMAIN = "project.edu"
NOCHECK = ["--no-name-check", "--no-ip-check"]
PREREQ = "Failure: prerequisites not met for this operation:"
EXEC = "Failure: command execution error:"
FAILOS = "/srv/ganeti/os/failos"
# What must not change on a failed command, per node: instance disk files and
# directories, LV stand-ins, fake VM pid/state files.
WATCHED = ("srv/ganeti/file-storage", "srv/ganeti/volumes", "var/run/corral/instances")


def _failos_script() -> str:
    """Shell that installs an API-20 OS definition whose every script fails."""
    lines = [f"mkdir -p {FAILOS}"]
    for script in ("create", "import", "export", "rename"):
        lines.append(
            f"printf '#!/bin/sh\\necho failos {script} failed >&2\\nexit 1\\n' > {FAILOS}/{script}"
        )
        lines.append(f"chmod 755 {FAILOS}/{script}")
    lines += [
        f"printf '#!/bin/sh\\nexit 0\\n' > {FAILOS}/verify",
        f"chmod 755 {FAILOS}/verify",
        f"echo 20 > {FAILOS}/ganeti_api_version",
        f"echo default > {FAILOS}/variants.list",
        f": > {FAILOS}/parameters.list",
        "mkdir -p /etc/ganeti/instance-image/variants",
        "echo default > /etc/ganeti/instance-image/variants.list",
    ]
    return " && ".join(lines)


def gnt(kit: Testkit, *argv: str, node: str = "node1", timeout: float = 90) -> Result:
    return run(kit, *argv, node=node, timeout=timeout)


def ok(kit: Testkit, *argv: str, node: str = "node1") -> str:
    return ok_on(kit, *argv, node=node, timeout=90)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testkit]:
    if os.geteuid() != 0:
        pytest.skip("the testkit needs root (namespaces, loop devices)")
    kit = Testkit(tmp_path_factory.mktemp("badkit"))
    kit.up(nodes=3, disk_size="8G", memory=2048)
    try:
        ok(kit, *init_argv("--vg-name", "ganeti"))
        for node in NODES[1:]:
            ok(kit, "gnt-node", "add", f"{node}.{DOMAIN}")
        for node in NODES:
            ok(kit, "sh", "-c", _failos_script(), node=node)
        ok(
            kit,
            "gnt-instance",
            "add",
            "-t",
            "file",
            "-s",
            "256M",
            "-o",
            "image+default",
            "-B",
            "minmem=128M,maxmem=256M",
            *NOCHECK,
            "-n",
            f"node1.{DOMAIN}",
            "inst1",
        )
        yield kit
    finally:
        kit.down()


@dataclass
class Snapshot:
    instances: str
    files: dict[str, list[str]]
    jobs: list[list[str]]


def _files(kit: Testkit, node: str) -> list[str]:
    """Files and directories under `WATCHED` on `node`, seen from the host
    through the node's root (cheaper than a command on the node)."""
    root = Path(f"/proc/{kit.node_pid(node)}/root")
    found = []
    for top in WATCHED:
        for path in sorted((root / top).rglob("*")):
            if not (top.endswith("volumes") and path.is_dir()):
                found.append(str(path.relative_to(root)))
    return found


def snapshot(kit: Testkit, nodes: tuple[str, ...] = NODES) -> Snapshot:
    files = {node: _files(kit, node) for node in nodes}
    out = ok(
        kit,
        "sh",
        "-c",
        "gnt-instance list --no-headers -o name,pnode,snodes,status && echo @@ &&"
        " gnt-job list --no-headers -o id,status,summary",
    )
    instances, jobs = out.split("@@\n")
    rows = [row.split() for row in jobs.splitlines()]
    return Snapshot(instances, files, rows)


def assert_unchanged(kit: Testkit, before: Snapshot, *, jobs: bool = True) -> None:
    nodes = tuple(before.files)
    after = snapshot(kit, nodes)
    assert after.instances == before.instances
    for node in nodes:
        assert after.files[node] == before.files[node], f"left behind on {node}"
    last = max((int(row[0]) for row in before.jobs), default=0)
    new = [row for row in after.jobs if int(row[0]) > last]
    if jobs:
        assert new, "the command submitted no job"
    assert all(row[1] == "error" for row in new), new


def matches(message: str, text: str) -> bool:
    """`text` is `message`, where ``<N>`` stands for any number."""
    pattern = re.escape(message).replace(re.escape("<N>"), r"\d+")
    return re.fullmatch(pattern, text.strip()) is not None


def assert_fails(
    kit: Testkit, argv: list[str], message: str, *, code: int = 1, jobs: bool = True
) -> Result:
    """Run `argv`; it must fail with `code` and print `message` (see `matches`) on stderr."""
    before = snapshot(kit)
    res = gnt(kit, *argv)
    assert "Traceback" not in res.output
    assert res.code == code, res.output
    assert matches(message, res.stderr), res.output
    assert_unchanged(kit, before, jobs=jobs)
    return res


def prereq(kind: str, text: str) -> str:
    return f"{PREREQ}\nerror type: {kind}, error details:\n{text}"


ADD_DISKLESS = ["gnt-instance", "add", "-t", "diskless", "-o", "image+default", *NOCHECK]


def add_with_disk(template: str, *rest: str) -> list[str]:
    """``gnt-instance add`` of a 1 GiB `template` instance, then `rest`."""
    return [
        "gnt-instance",
        "add",
        "-t",
        template,
        "-s",
        "1G",
        "-o",
        "image+default",
        *NOCHECK,
        *rest,
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["gnt-instance", "info", "nosuch"],
        ["gnt-instance", "remove", "-f", "nosuch"],
        ["gnt-instance", "start", "nosuch"],
        ["gnt-instance", "stop", "nosuch"],
        ["gnt-instance", "migrate", "-f", "nosuch"],
        ["gnt-instance", "modify", "-B", "maxmem=512M", "nosuch"],
    ],
    ids=lambda argv: argv[1],
)
def test_unknown_instance(cluster: Testkit, argv: list[str]) -> None:
    # start/stop expand names with a query first (as Ganeti): no job to look at
    jobs = argv[1] not in ("start", "stop")
    assert_fails(cluster, argv, prereq("unknown_entity", "Instance 'nosuch' not known"), jobs=jobs)


@pytest.mark.parametrize(
    "argv",
    [
        [*ADD_DISKLESS, "-n", "nosuch", "x1"],
        add_with_disk("drbd", "-n", f"node1.{DOMAIN}:nosuch", "x1"),
        ["gnt-node", "remove", "nosuch"],
        ["gnt-node", "info", "nosuch"],
    ],
    ids=["add-primary", "add-secondary", "node-remove", "node-info"],
)
def test_unknown_node(cluster: Testkit, argv: list[str]) -> None:
    jobs = argv[:2] != ["gnt-node", "info"]
    assert_fails(cluster, argv, prereq("unknown_entity", "Node 'nosuch' not known"), jobs=jobs)


def test_unknown_os(cluster: Testkit) -> None:
    argv = [
        "gnt-instance",
        "add",
        "-t",
        "diskless",
        "-o",
        "nosuchos",
        *NOCHECK,
        "-n",
        "node1",
        "x1",
    ]
    assert_fails(
        cluster,
        argv,
        f"{EXEC}\nOS Parameters validation failed on node node1.{DOMAIN}:"
        " Directory for OS nosuchos not found in search path",
    )


def test_unknown_os_variant(cluster: Testkit) -> None:
    argv = ["gnt-instance", "add", "-t", "file", "-s", "1G", "-o", "image+nosuchvariant"]
    assert_fails(
        cluster,
        [*argv, *NOCHECK, "-n", "node1", "x1"],
        f"{EXEC}\nOS Parameters validation failed on node node1.{DOMAIN}: Unsupported OS variant",
    )


def test_duplicate_name(cluster: Testkit) -> None:
    assert_fails(
        cluster,
        [*ADD_DISKLESS, "-n", "node2", "inst1"],
        prereq("already_exists", "Instance 'inst1' is already in the cluster"),
    )


def test_out_of_memory(cluster: Testkit) -> None:
    res = assert_fails(
        cluster,
        [*ADD_DISKLESS, "-B", "maxmem=4G", "-n", "node2", "x1"],
        prereq(
            "insufficient_resources",
            f"Not enough memory on node node2.{DOMAIN} for starting instance x1:"
            " needed 4096 MiB, available <N> MiB",
        ),
    )
    assert res.stdout == ""


def test_out_of_memory_on_start(cluster: Testkit) -> None:
    ok(cluster, "gnt-instance", "stop", "inst1")
    try:
        assert_fails(
            cluster,
            ["gnt-instance", "start", "-B", "maxmem=4G", "inst1"],
            "Job <N> for inst1 has failed: "
            + prereq(
                "insufficient_resources",
                f"Not enough memory on node node1.{DOMAIN} for starting instance inst1:"
                " needed 4096 MiB, available <N> MiB",
            ),
        )
    finally:
        ok(cluster, "gnt-instance", "start", "inst1")


@pytest.mark.parametrize(
    ("template", "nodes", "needed"),
    [("file", "node2", 20480), ("drbd", "node2:node3", 20480 + 128)],
)
def test_out_of_disk(cluster: Testkit, template: str, nodes: str, needed: int) -> None:
    argv = ["gnt-instance", "add", "-t", template, "-s", "20G", "-o", "image+default", *NOCHECK]
    assert_fails(
        cluster,
        [*argv, "-n", nodes, "x1"],
        prereq(
            "insufficient_resources",
            f"Not enough disk space on target node node2.{DOMAIN} vg ganeti:"
            f" required {needed} MiB, available <N> MiB",
        ),
    )


def test_disabled_template(cluster: Testkit) -> None:
    for template in ("plain", "sharedfile"):
        assert_fails(
            cluster,
            add_with_disk(template, "-n", "node1", "x1"),
            f"{PREREQ}\nDisk template '{template}' is not enabled in cluster."
            " Enabled disk templates are: drbd,file,diskless",
        )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("-B", "maxmem=abc", "Invalid value 'abc' for parameter 'maxmem': Invalid format"),
        (
            "-B",
            "minmem=512M,maxmem=256M",
            "Minimum memory (512) is bigger than maximum memory (256)",
        ),
        ("-B", "nosuchkey=1", "Unknown backend parameter 'nosuchkey'"),
        (
            "-H",
            "boot_order=foo",
            "Hypervisor parameter validation failed: Parameter 'boot_order' fails syntax check:"
            " The value must be one of: cdrom, disk, floppy, network (current value: 'foo')",
        ),
        (
            "-H",
            "nosuchparam=1",
            "Hypervisor parameter validation failed: Unknown hypervisor parameter(s): nosuchparam",
        ),
    ],
    ids=["maxmem-abc", "minmem-gt-maxmem", "unknown-be", "boot-order", "unknown-hv"],
)
def test_bad_parameters(cluster: Testkit, option: str, value: str, message: str) -> None:
    argv = ["gnt-instance", "add", "-t", "file", "-s", "1G", "-o", "image+default", *NOCHECK]
    # values that do not parse are refused by the client, before any job
    assert_fails(
        cluster,
        [*argv, option, value, "-n", "node1", "x1"],
        prereq("wrong_input", message),
        jobs=value != "maxmem=abc",
    )


@pytest.mark.parametrize(
    "argv",
    [
        [*ADD_DISKLESS, "--net", "0:link=nosuchbr", "-n", "node1", "x1"],
        ["gnt-instance", "modify", "-f", "--net", "0:modify,link=nosuchbr", "inst1"],
        ["gnt-instance", "modify", "--no-hotplug", "--net", "add:link=nosuchbr", "inst1"],
    ],
    ids=["add", "modify", "modify-add-nic"],
)
def test_missing_link(cluster: Testkit, argv: list[str]) -> None:
    before_info = ok(cluster, "gnt-instance", "info", "inst1")
    assert_fails(
        cluster,
        argv,
        prereq(
            "environment_error",
            f"Error checking bridges on node 'node1.{DOMAIN}': Missing bridges nosuchbr",
        ),
    )
    after_info = ok(cluster, "gnt-instance", "info", "inst1")
    assert "nosuchbr" not in after_info
    assert after_info.count("MAC:") == before_info.count("MAC:")


@pytest.mark.parametrize(
    ("template", "nodes"), [("file", "node2"), ("drbd", "node2:node3"), ("diskless", "node3")]
)
def test_failure_during_create_rolls_back(cluster: Testkit, template: str, nodes: str) -> None:
    disks = [] if template == "diskless" else ["-s", "1G"]
    argv = ["gnt-instance", "add", "-t", template, *disks, "-o", "failos+default", *NOCHECK]
    before = snapshot(cluster)
    res = gnt(cluster, *argv, "-n", nodes, "x1")
    assert res.code == 1, res.output
    assert "Traceback" not in res.output
    primary = nodes.split(":")[0]
    assert res.stderr.strip() == (
        f"{EXEC}\nCould not add os for instance x1 on node {primary}.{DOMAIN}:"
        " OS create script failed (exited with exit code 1), last lines in the log file:\n"
        "failos create failed"
    )
    assert_unchanged(cluster, before)
    verify = gnt(cluster, "gnt-cluster", "verify")
    assert verify.code == 0 and "ERROR" not in verify.output, verify.output


def test_node_down(cluster: Testkit) -> None:
    """A crashed node: shown as ``?``, and an add on it fails within seconds
    with the node's name and why, leaving nothing on the nodes still up."""
    before = snapshot(cluster)
    unreachable = "Node is unreachable: Connection timeout to host"
    cluster.crash("node3")
    try:
        listing = ok(cluster, "gnt-node", "list", "--no-headers")
        row = next(line.split() for line in listing.splitlines() if line.startswith("node3"))
        assert row[1:6] == ["?"] * 5, listing
        for argv, message in (
            (
                [*ADD_DISKLESS, "-n", "node3", "x1"],
                f"{EXEC}\nOS Parameters validation failed on node node3.{DOMAIN}: {unreachable}",
            ),
            (
                add_with_disk("drbd", "-n", "node1:node3", "x1"),
                prereq(
                    "environment_error",
                    f"Cannot get current information from node node3.{DOMAIN}: {unreachable}",
                ),
            ),
        ):
            start = time.monotonic()
            res = gnt(cluster, *argv, timeout=60)
            elapsed = time.monotonic() - start
            assert res.code == 1, res.output
            assert "Traceback" not in res.output
            assert res.stderr.strip().startswith(message), res.output
            assert elapsed < 15, f"took {elapsed:.1f}s"
    finally:
        cluster.boot("node3")
    assert_unchanged(cluster, before)
    listing = ok(cluster, "gnt-node", "list", "--no-headers")
    row = next(line.split() for line in listing.splitlines() if line.startswith("node3"))
    assert "?" not in row


def test_nothing_left_at_the_end(cluster: Testkit) -> None:
    rows = ok(cluster, "gnt-instance", "list", "--no-headers", "-o", "name,status").split()
    assert rows == ["inst1", "running"]
    verify = gnt(cluster, "gnt-cluster", "verify")
    assert verify.code == 0 and "ERROR" not in verify.output, verify.output
