"""The gnt-* commands of issue 3 that the scenario tests do not run, end to end
on one 3-node testkit cluster, checked against real Ganeti 3.0.2 outputs
(/work/shared/reference/ganeti/cli-outputs, copied where needed as literals).

The tests share the cluster and run in file order: each leaves it as the next
one expects (documented at the top of each). Instances made by the fixture:
``d1`` (drbd, node1 primary, node2 secondary) and ``s1`` (sharedfile on
node2); node3 stays empty until the instance tests, so the group, drain and
remove tests can use it freely. ``slowos`` is an OS whose scripts sleep, for
a job that holds an instance lock long enough to cancel another one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from corral.testkit.cluster import Testkit
from tests.e2e.conftest import Result, init_argv, ok, run

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

DOMAIN = "project.edu"
N1, N2, N3 = (f"node{i}.{DOMAIN}" for i in (1, 2, 3))
NOCHECK = ("--no-name-check", "--no-ip-check")
SLOWOS = "/srv/ganeti/os/slowos"
VG_DIR = "/srv/ganeti/volumes/ganeti"
RUN_DIR = "/var/run/corral/instances"
STAMP = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"  # Ganeti's feedback time stamp


def field(kit: Testkit, name: str, fields: str) -> list[str]:
    return ok(kit, "gnt-instance", "list", "--no-headers", "-o", fields, name).split()


def roles(kit: Testkit) -> dict[str, str]:
    out = ok(kit, "gnt-node", "list", "--no-headers", "-o", "name,role")
    return dict(line.split() for line in out.splitlines())


def _slowos_script() -> str:
    lines = [f"mkdir -p {SLOWOS}"]
    for script in ("create", "import", "export", "rename"):
        lines.append(f"printf '#!/bin/sh\\nsleep 3\\nexit 0\\n' > {SLOWOS}/{script}")
        lines.append(f"chmod 755 {SLOWOS}/{script}")
    lines += [
        f"printf '#!/bin/sh\\nexit 0\\n' > {SLOWOS}/verify",
        f"chmod 755 {SLOWOS}/verify",
        f"echo 20 > {SLOWOS}/ganeti_api_version",
        f"echo default > {SLOWOS}/variants.list",
        f": > {SLOWOS}/parameters.list",
    ]
    return " && ".join(lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testkit]:
    if os.geteuid() != 0:
        pytest.skip("the testkit needs root (namespaces, loop devices)")
    kit = Testkit(tmp_path_factory.mktemp("cmdkit"))
    kit.up(nodes=3, disk_size="20G", memory=2048)
    try:
        ok(kit, *init_argv("--vg-name", "ganeti", templates="drbd,file,sharedfile,diskless"))
        for node in (N2, N3):
            ok(kit, "gnt-node", "add", node)
        for node in ("node1", "node2", "node3"):
            ok(kit, "sh", "-c", _slowos_script(), node=node)
        ok(
            kit, "gnt-instance", "add", "-t", "drbd", "-o", "image", "-s", "1G",
            "-B", "maxmem=128M", "-n", f"{N1}:{N2}", *NOCHECK, "d1",
        )  # fmt: skip
        ok(
            kit, "gnt-instance", "add", "-t", "sharedfile", "-o", "image", "-s", "1G",
            "-B", "maxmem=128M", "-n", N2, *NOCHECK, "s1",
        )  # fmt: skip
        yield kit
    finally:
        kit.down()


# -- gnt-cluster ---------------------------------------------------------------------------

# Top-level keys of gnt-cluster_info.txt, in Ganeti's order.
INFO_KEYS = [
    "Cluster name", "Cluster UUID", "Creation time", "Modification time", "Master node",
    "Architecture (this node)", "Tags", "Default hypervisor", "Enabled hypervisors",
    "Hypervisor parameters", "OS-specific hypervisor parameters", "OS parameters",
    "Hidden OSes", "Blacklisted OSes", "Cluster parameters", "Default node parameters",
    "Default instance parameters", "Default nic parameters", "Default disk parameters",
    "Instance policy - limits for instances", "Data collectors",
]  # fmt: skip


def test_cluster_info_version_getmaster(cluster: Testkit) -> None:
    info = ok(cluster, "gnt-cluster", "info")
    top = [line.split(":")[0] for line in info.splitlines() if line and line[0] != " "]
    assert top == INFO_KEYS, info
    assert re.search(r"^Cluster UUID: [0-9a-f-]{36}$", info, re.M)
    assert re.search(r"^Creation time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", info, re.M)
    for line in (
        f"Cluster name: cluster.{DOMAIN}",
        f"Master node: {N1}",
        "Tags: (none)",
        "Default hypervisor: fake",
        "Enabled hypervisors: fake",
        "  candidate pool size: 10",
        "  master netdev: br-man",
        "  lvm volume group: ganeti",
        "  file storage path: /srv/ganeti/file-storage",
        "  shared file storage path: /srv/ganeti/shared-file-storage",
        "  default instance allocator: hail",
        "  enabled disk templates: drbd, file, sharedfile, diskless",
        "    maxmem: 128",
        "    link: br-public",
        "    mode: bridged",
        "  allowed disk templates: drbd, file, sharedfile, diskless",
        "  vcpu-ratio: 4",
        "  spindle-ratio: 32",
    ):
        assert line in info.splitlines(), line
    version = ok(cluster, "gnt-cluster", "version")
    keys = [line.split(":")[0] for line in version.splitlines()]
    assert keys == [
        "Software version", "Internode protocol", "Configuration format", "OS api version",
        "Export interface", "VCS version",
    ]  # fmt: skip
    assert "OS api version: 20\n" in version and "Export interface: 0\n" in version
    for node in ("node1", "node2", "node3"):
        assert ok(cluster, "gnt-cluster", "getmaster", node=node) == f"{N1}\n"


def test_cluster_modify_tags_redist_conf(cluster: Testkit) -> None:
    out = ok(
        cluster, "gnt-cluster", "modify", "-B", "maxmem=256M", "--candidate-pool-size=5",
        "--ipolicy-vcpu-ratio=3", "-I", "/bin/true",
    )  # fmt: skip
    info = ok(cluster, "gnt-cluster", "info")
    for line in (
        "  candidate pool size: 5",
        "    maxmem: 256",
        "  vcpu-ratio: 3",
        "  default instance allocator: /bin/true",
    ):
        assert f"\n{line}\n" in info, f"{line}\n{out}"
    ok(
        cluster, "gnt-cluster", "modify", "-B", "maxmem=128M", "--candidate-pool-size=10",
        "--ipolicy-vcpu-ratio=4", "--default-iallocator=hail",
    )  # fmt: skip
    info = ok(cluster, "gnt-cluster", "info")
    assert "\n  default instance allocator: hail\n" in info
    assert "\n  candidate pool size: 10\n" in info

    ok(cluster, "gnt-cluster", "add-tags", "owner:alice", "env")
    assert ok(cluster, "gnt-cluster", "list-tags") == "env\nowner:alice\n"
    ok(cluster, "gnt-cluster", "remove-tags", "env")
    assert ok(cluster, "gnt-cluster", "list-tags") == "owner:alice\n"
    assert "\nTags: owner:alice\n" in ok(cluster, "gnt-cluster", "info")
    ok(cluster, "gnt-cluster", "remove-tags", "owner:alice")
    assert ok(cluster, "gnt-cluster", "list-tags") == ""
    assert run(cluster, "gnt-cluster", "remove-tags", "nosuchtag").code == 1

    ok(cluster, "gnt-cluster", "redist-conf")
    out = run(cluster, "gnt-cluster", "verify", "--error-codes").output
    assert "ECLUSTERCFG" not in out and "ECLUSTERFILECHECK" not in out, out


def _verify(kit: Testkit) -> Result:
    return run(kit, "gnt-cluster", "verify", "--error-codes")


def test_cluster_verify_reports_problems_then_clean(cluster: Testkit) -> None:
    res = _verify(cluster)
    assert res.code == 0 and " - ERROR" not in res.output, res.output
    assert re.search(r"^Submitted jobs \d+, \d+$", res.stdout, re.M), res.stdout
    assert re.search(rf"^{STAMP} \* Verifying orphan volumes$", res.stdout, re.M)

    # an orphan volume: a warning, exit code unchanged (as Ganeti)
    ok(cluster, "sh", "-c", f"mkdir -p {VG_DIR} && truncate -s 4M {VG_DIR}/stray-lv")
    res = _verify(cluster)
    warning = f"- WARNING:ENODEORPHANLV:node:{N1}:volume ganeti/stray-lv is unknown"
    assert res.code == 0 and warning in res.stdout, res.output
    ok(cluster, "rm", f"{VG_DIR}/stray-lv")

    # the VM of s1 dies behind corral's back. The watcher restarts it within
    # 30 s, so a round it beat us to is retried.
    error = f"- ERROR:EINSTANCEDOWN:instance:s1:instance not running on its primary node {N2}"
    for _ in range(3):
        ok(cluster, "sh", "-c", f"kill -9 $(cat {RUN_DIR}/s1.pid)", node="node2")
        time.sleep(0.3)
        res = _verify(cluster)
        if error in res.stdout:
            break
    assert error in res.stdout, res.output
    assert res.code == 1
    assert field(cluster, "s1", "status") in (["ERROR_down"], ["running"])
    ok(cluster, "gnt-instance", "start", "s1")
    res = _verify(cluster)
    assert res.code == 0 and "ERROR" not in res.stdout and "WARNING" not in res.stdout, res.output


# -- gnt-node: queries --------------------------------------------------------------------

NODE_INFO = """\
- Node name: {name}
  primary ip: {ip}
  secondary ip: {ip}
  master candidate: True
  drained: False
  offline: False
  master_capable: True
  vm_capable: True
  primary for instances:~
    - d1
  secondary for instances:~
  node parameters:~
    cpu_speed: default (1)
    exclusive_storage: default (False)
    oob_program: default ()
    ovs: default (False)
    ovs_link: default ()
    ovs_name: default (switch1)
    spindle_count: default (1)
    ssh_port: default (22)
""".replace("~", " ")  # Ganeti ends section titles with a space


def _columns(text: str) -> list[tuple[str, str]]:
    """(name, type) of a list-fields output, cut at the header's columns."""
    lines = text.splitlines()
    header = lines[0]
    t_start, t_end = header.index("Type"), header.index("Title")
    return [(line.split()[0], line[t_start:t_end].strip()) for line in lines[1:]]


def _reference(name: str) -> str:
    path = f"/work/shared/reference/ganeti/cli-outputs/{name}"
    with open(path) as fh:
        return "".join(line for line in fh if not line.startswith("#"))


def test_node_info_and_lists(cluster: Testkit) -> None:
    ip = cluster.node_ip("node1")
    assert ok(cluster, "gnt-node", "info", N1) == NODE_INFO.format(name=N1, ip=ip)
    out = ok(cluster, "gnt-node", "info")
    assert out.count("- Node name: ") == 3 and "    - s1\n" in out

    ours = dict(_columns(ok(cluster, "gnt-node", "list-fields")))
    assert ok(cluster, "gnt-node", "list-fields").split()[:4] == [
        "Name", "Type", "Title", "Description",
    ]  # fmt: skip
    for name, kind in _columns(_reference("gnt-node_list-fields.txt")):
        assert ours.get(name) == kind, name

    header = ok(cluster, "gnt-node", "list").splitlines()[0].split()
    assert header == ["Node", "DTotal", "DFree", "MTotal", "MNode", "MFree", "Pinst", "Sinst"]
    out = ok(
        cluster, "gnt-node", "list", "-o", "name,pinst_cnt,sinst_cnt,mtotal,pip",
        "--no-headers", "--separator=|", "--units=m",
    )  # fmt: skip
    rows = [line.split("|") for line in out.splitlines()]
    assert rows == [
        [N1, "1", "0", "2048", cluster.node_ip("node1")],
        [N2, "1", "1", "2048", cluster.node_ip("node2")],
        [N3, "0", "0", "2048", cluster.node_ip("node3")],
    ]
    out = ok(cluster, "gnt-node", "list", "-o", "name,mtotal", "--units=g", N2)
    assert out.splitlines() == ["Node              MTotal", f"{N2}    2.0"]
    out = ok(cluster, "gnt-node", "list", "-o", "name,mtotal", "--separator=,", N3)
    assert out == f"Node,MTotal\n{N3},2048\n"  # a separator means MiB (Ganeti)


# -- gnt-group -----------------------------------------------------------------------------


def test_groups_and_placement(cluster: Testkit) -> None:
    """node3, the emptiest node, alone in an unallocable group g2: the allocator
    does not place there; back in the default group, it gets the next one."""
    ok(cluster, "gnt-group", "add", "g2")
    out = ok(cluster, "gnt-group", "list")
    ref_header = _reference("gnt-group_list.txt").splitlines()[0].split()
    assert out.splitlines()[0].split() == ref_header
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()[1:]}
    assert rows == {"default": ["3", "2", "preferred"], "g2": ["0", "0", "preferred"]}
    ok(cluster, "gnt-group", "assign-nodes", "g2", N3)
    assert ok(cluster, "gnt-node", "list", "--no-headers", "-o", "group", N3) == "g2\n"
    fields = dict(_columns(ok(cluster, "gnt-group", "list-fields")))
    for name in ("name", "alloc_policy", "node_cnt", "node_list", "pinst_cnt", "uuid"):
        assert name in fields, name
    out = ok(cluster, "gnt-group", "modify", "--alloc-policy=unallocable", "g2")
    assert out == "Modified node group g2\n - alloc_policy -> unallocable\n", out
    ok(cluster, "gnt-instance", "add", "-t", "file", "-o", "image", "-s", "1G", "--no-start",
       *NOCHECK, "gfile1")  # fmt: skip
    assert field(cluster, "gfile1", "pnode") != [N3]
    res = run(cluster, "gnt-group", "remove", "g2")
    assert res.code == 1 and f"Group 'g2' not empty, has the following nodes: {N3}" in res.output
    ok(cluster, "gnt-group", "assign-nodes", "default", N3)
    ok(cluster, "gnt-instance", "add", "-t", "file", "-o", "image", "-s", "1G", "--no-start",
       *NOCHECK, "gfile2")  # fmt: skip
    assert field(cluster, "gfile2", "pnode") == [N3]
    for inst in ("gfile1", "gfile2"):
        ok(cluster, "gnt-instance", "remove", "-f", inst)
    ok(cluster, "gnt-group", "remove", "g2")
    assert ok(cluster, "gnt-group", "list", "--no-headers", "-o", "name") == "default\n"


# -- gnt-node: flags, remove, re-add -------------------------------------------------------


def test_node_modify_flags(cluster: Testkit) -> None:
    out = ok(cluster, "gnt-node", "modify", "-D", "yes", N3)
    assert out == (
        f"Modified node {N3}\n - drained -> True\n"
        " - master_candidate -> auto-demotion due to drain\n"
    )
    assert roles(cluster)[N3] == "D"
    # the allocator avoids the drained node, though it is the emptiest one
    ok(cluster, "gnt-instance", "add", "-t", "file", "-o", "image", "-s", "1G", "--no-start",
       *NOCHECK, "dr1")  # fmt: skip
    assert field(cluster, "dr1", "pnode") != [N3]
    ok(cluster, "gnt-instance", "remove", "-f", "dr1")
    out = ok(cluster, "gnt-node", "modify", "-D", "no", N3)
    assert " - drained -> False\n" in out and " - master_candidate -> True\n" in out, out
    assert roles(cluster)[N3] == "C"

    out = ok(cluster, "gnt-node", "modify", "-O", "yes", N3)
    assert " - offline -> True\n" in out, out
    assert roles(cluster)[N3] == "O"
    row = ok(cluster, "gnt-node", "list", "--no-headers", N3).split()
    assert row == [N3, "*", "*", "*", "*", "*", "0", "0"], row
    ok(cluster, "gnt-node", "modify", "-O", "no", N3)
    assert roles(cluster)[N3] == "C"

    ok(cluster, "gnt-node", "modify", "-C", "no", N2)
    assert roles(cluster)[N2] == "R"
    ok(cluster, "gnt-node", "modify", "-C", "yes", N2)
    assert roles(cluster) == {N1: "M", N2: "C", N3: "C"}
    res = run(cluster, "gnt-node", "modify", "-O", "yes", N1)
    assert res.code == 1 and "master-failover" in res.output, res.output

    ok(cluster, "gnt-node", "add-tags", N3, "rack:r1", "ssd")
    assert ok(cluster, "gnt-node", "list-tags", N3) == "rack:r1\nssd\n"
    ok(cluster, "gnt-node", "remove-tags", N3, "ssd")
    assert ok(cluster, "gnt-node", "list-tags", N3) == "rack:r1\n"
    assert ok(cluster, "gnt-node", "list", "--no-headers", "-o", "tags", N3) == "rack:r1\n"


def _rpc(kit: Testkit, node: str, cert_dir: str, ip: str) -> str:
    """POST an instance_list RPC from `node` with the certificate in `cert_dir`."""
    return ok(
        kit, "curl", "-sk", "--cert", f"{cert_dir}/node.pem", "--key", f"{cert_dir}/node.key",
        "-X", "POST", "-d", '[["fake"]]', "-w", " %{http_code}", f"https://{ip}:1811/instance_list",
        node=node,
    )  # fmt: skip


def test_node_remove_revokes_then_add_again(cluster: Testkit) -> None:
    ok(cluster, "sh", "-c", "mkdir -p /root/old && cp /etc/corral/node.* /root/old/", node="node3")
    assert _rpc(cluster, "node3", "/root/old", cluster.node_ip("node1")).endswith(" 200")
    ok(cluster, "gnt-node", "remove", N3)
    assert ok(cluster, "gnt-node", "list", "--no-headers", "-o", "name") == f"{N1}\n{N2}\n"
    # node3's old certificate is revoked on the cluster's nodes...
    answer = _rpc(cluster, "node3", "/root/old", cluster.node_ip("node1"))
    assert answer.endswith(" 403") and "Client certificate has been revoked" in answer, answer
    # ...and node3 no longer serves the master
    answer = _rpc(cluster, "node1", "/etc/corral", cluster.node_ip("node3"))
    assert answer.endswith(" 403") and f"Node {N3} is not part of a cluster" in answer, answer

    out = run(cluster, "gnt-node", "add", N3)
    assert out.code == 0, out.output
    assert re.search(rf"^{STAMP}  - INFO: Node will be a master candidate$", out.stdout, re.M)
    out = run(cluster, "gnt-node", "add", "--readd", N3)
    assert out.code == 0, out.output
    assert roles(cluster) == {N1: "M", N2: "C", N3: "C"}
    res = _verify(cluster)
    assert res.code == 0 and "ERROR" not in res.stdout, res.output
    assert _rpc(cluster, "node3", "/etc/corral", cluster.node_ip("node1")).endswith(" 200")


# -- gnt-instance --------------------------------------------------------------------------


def test_instance_lists(cluster: Testkit) -> None:
    out = ok(cluster, "gnt-instance", "list-fields")
    assert out.split()[:4] == ["Name", "Type", "Title", "Description"]
    ours = dict(_columns(out))
    for name, kind in _columns(_reference("gnt-instance_list-fields.txt")):
        if not name.startswith("hv/"):  # hypervisor parameters differ (fake = kvm's)
            assert ours.get(name) == kind, name
    out = ok(cluster, "gnt-instance", "list")
    assert out.splitlines()[0].split() == [
        "Instance",
        "Hypervisor",
        "OS",
        "Primary_node",
        "Status",
        "Memory",
    ]
    assert re.search(rf"^d1 +fake +image +{N1} +running +128M$", out, re.M), out
    out = ok(cluster, "gnt-instance", "list", "-o", "+be/maxmem,snodes", "d1")
    assert out.splitlines()[0].split() == [
        "Instance", "Hypervisor", "OS", "Primary_node", "Status", "Memory", "ConfigMaxMem",
        "Secondary_Nodes",
    ]  # fmt: skip
    out = ok(cluster, "gnt-instance", "list", "--separator=:", "-o", "name,pnode,snodes,status")
    assert out.splitlines() == [
        "Instance:Primary_node:Secondary_Nodes:Status",
        f"d1:{N1}:{N2}:running",
        f"s1:{N2}::running",
    ]
    out = ok(cluster, "gnt-instance", "list", "--no-headers", "-o", "name,disk_template")
    assert out.split() == ["d1", "drbd", "s1", "sharedfile"]


def _waiting(out: str, name: str) -> None:
    assert re.fullmatch(rf"Waiting for job \d+ for {name} \.\.\.\n", out), out


def test_instance_power_operations(cluster: Testkit) -> None:
    for kind in ("soft", "hard", "full"):
        _waiting(ok(cluster, "gnt-instance", "reboot", "--type", kind, "s1"), "s1")
        assert field(cluster, "s1", "status") == ["running"]
    _waiting(ok(cluster, "gnt-instance", "stop", "s1"), "s1")
    assert field(cluster, "s1", "status,admin_state") == ["ADMIN_down", "down"]
    assert ok(cluster, "ls", RUN_DIR, node="node2").split().count("s1.pid") == 0
    _waiting(ok(cluster, "gnt-instance", "start", "s1"), "s1")
    assert field(cluster, "s1", "status,admin_state") == ["running", "up"]
    out = ok(cluster, "gnt-instance", "console", "s1")
    assert "s1" in out and N2 in out, out


STATIC_INFO = [
    "- Instance name: s1",
    "  State: configured to be up",
    "  Nodes: ",
    f"    - primary: {N2}",
    "    - secondaries: ",
    "  Operating system: image",
    "  Hypervisor: fake",
    "  Back-end parameters: ",
    "    maxmem: 128",
    "    minmem: default (128)",
    "  NICs: ",
    "    - nic/0: ",
    "      mode: bridged",
    "      link: br-public",
    "  Disk template: sharedfile",
    "  Disks: ",
    "    - disk/0: sharedfile, size 1.0G",
    "      access mode: rw",
]


def test_instance_info_static_and_sharedfile_moves(cluster: Testkit) -> None:
    info = ok(cluster, "gnt-instance", "info", "--static", "s1")
    lines = info.splitlines()
    for line in STATIC_INFO:
        assert line in lines, line
    assert re.search(r"^      group: default \(UUID [0-9a-f-]{36}\)$", info, re.M)
    match = re.search(r"logical_id: \['loop', '(/srv/ganeti/shared-file-storage/s1/\S+)'\]", info)
    assert match, info
    disk = match.group(1)
    # the disk file lives in the directory all nodes share
    for node in ("node1", "node2", "node3"):
        ok(cluster, "test", "-f", disk, node=node)

    out = ok(cluster, "gnt-instance", "migrate", "-f", "-n", N3, "s1")
    assert re.search(rf"^{STAMP} \* migrating instance to {N3}$", out, re.M), out
    assert field(cluster, "s1", "pnode,status") == [N3, "running"]
    out = ok(cluster, "gnt-instance", "migrate", "-f", "--cleanup", "s1")
    assert "* instance confirmed to be running on its primary node" in out, out
    assert field(cluster, "s1", "pnode,status") == [N3, "running"]
    out = ok(cluster, "gnt-instance", "failover", "-f", "-n", N1, "s1")
    assert re.search(rf"^{STAMP} \* starting the instance on the target node {N1}$", out, re.M)
    assert field(cluster, "s1", "pnode,status") == [N1, "running"]
    assert "s1.pid" in ok(cluster, "ls", RUN_DIR, node="node1").split()
    assert "s1.pid" not in ok(cluster, "ls", RUN_DIR, node="node3").split()


MODIFY_NOTE = (
    "Please don't forget that most parameters take effect only at the next (re)start of the"
    " instance initiated by ganeti; restarting from within the instance will not be enough.\n"
)


def test_instance_modify_submit_and_jobs(cluster: Testkit) -> None:
    out = ok(cluster, "gnt-instance", "modify", "-B", "maxmem=256M", "s1")
    assert out == f"Modified instance s1\n - be/maxmem -> 256\n{MODIFY_NOTE}"
    ok(cluster, "gnt-instance", "stop", "s1")
    out = ok(cluster, "gnt-instance", "modify", "-H", "kernel_args=quiet", "s1")
    assert out == f"Modified instance s1\n - hv/kernel_args -> quiet\n{MODIFY_NOTE}"
    info = ok(cluster, "gnt-instance", "info", "--static", "s1").splitlines()
    assert "    kernel_args: quiet" in info and "    maxmem: 256" in info
    ok(cluster, "gnt-instance", "start", "s1")

    out = ok(cluster, "gnt-instance", "modify", "--submit", "-B", "maxmem=192M", "s1")
    match = re.fullmatch(r"JobID: (\d+)\n", out)
    assert match, out
    job = match.group(1)
    out = ok(cluster, "gnt-job", "watch", job)
    title = f"Output from job {job} follows"
    assert out.startswith(f"{title}\n{'-' * len(title)}\n"), out
    info = ok(cluster, "gnt-job", "info", job)
    assert info.startswith(f"- Job ID: {job}\n  Status: success\n"), info
    for line in ("    - Opcode: OP_INSTANCE_SET_PARAMS", "      Status: success",
                 "        instance_name: s1", "          maxmem: 192"):  # fmt: skip
        assert line in info.splitlines(), line
    assert "\n    maxmem: 192\n" in ok(cluster, "gnt-instance", "info", "--static", "s1")
    # several-instance commands print "<job id>: <name>" (Ganeti's JobExecutor)
    out = ok(cluster, "gnt-instance", "reboot", "--submit", "s1")
    assert re.fullmatch(r"\d+: s1\n", out), out
    ok(cluster, "gnt-job", "watch", out.split(":")[0])

    ok(cluster, "gnt-instance", "add-tags", "s1", "web", "tier:1")
    assert ok(cluster, "gnt-instance", "list-tags", "s1") == "tier:1\nweb\n"
    ok(cluster, "gnt-instance", "remove-tags", "s1", "web")
    assert ok(cluster, "gnt-instance", "list", "--no-headers", "-o", "tags", "s1") == "tier:1\n"


def test_instance_rename_disks_remove(cluster: Testkit) -> None:
    ok(cluster, "gnt-instance", "add", "-t", "file", "-o", "image", "-s", "1G", "-n", N3,
       "--no-start", *NOCHECK, "rn1")  # fmt: skip
    # --no-name-check asks for a confirmation; no terminal means no
    res = run(cluster, "gnt-instance", "rename", "--no-name-check", "--no-ip-check", "rn1", "rn2")
    assert res.code == 1 and field(cluster, "rn1", "name") == ["rn1"], res.output
    ok(cluster, "sh", "-c", f"echo '192.168.20.250 rn2.{DOMAIN}' >> /etc/hosts")
    out = ok(cluster, "gnt-instance", "rename", "--no-ip-check", "rn1", f"rn2.{DOMAIN}")
    assert out == f"Instance 'rn1' renamed to 'rn2.{DOMAIN}'\n"
    new = f"rn2.{DOMAIN}"
    # the file storage directory follows the name, as in Ganeti
    out = ok(cluster, "gnt-instance", "activate-disks", new)
    assert re.fullmatch(
        rf"{N3}:disk/0:/srv/ganeti/file-storage/{re.escape(new)}/\S+\.file\.disk0\n", out
    ), out
    listing = ok(cluster, "ls", "/srv/ganeti/file-storage", node="node3").split()
    assert listing == [new], listing
    ok(cluster, "gnt-instance", "deactivate-disks", new)
    _waiting(ok(cluster, "gnt-instance", "start", new), new)
    assert field(cluster, new, "status") == ["running"]

    # remove asks for a confirmation: without a terminal nothing is removed
    res = run(cluster, "gnt-instance", "remove", new)
    assert res.code == 1 and field(cluster, new, "status") == ["running"], res.output
    out = ok(cluster, "gnt-instance", "remove", "-f", new)
    assert out.splitlines()[-1].endswith(f"* removing instance {new} from cluster config"), out
    assert "WARNING" not in out, out
    assert ok(cluster, "ls", "/srv/ganeti/file-storage", node="node3") == ""
    assert new not in ok(cluster, "gnt-instance", "list", "--no-headers", "-o", "name")


# -- gnt-os --------------------------------------------------------------------------------

SLOWOS_INFO = """\
slowos:
  - valid: True
  - hidden: False
  - blacklisted: False
  - API versions:
    - 20
  - variants:
    - default
  - parameters:
  - trusted: True

"""


def test_os_info_and_diagnose(cluster: Testkit) -> None:
    info = ok(cluster, "gnt-os", "info")
    assert SLOWOS_INFO in info, info
    assert ok(cluster, "gnt-os", "info", "slowos") == SLOWOS_INFO
    out = ok(cluster, "gnt-os", "diagnose")
    block = "OS: slowos [global status: valid]\n  Variants: [default]\n" + "".join(
        f"  Node: {node}, status: valid (path: {SLOWOS}) [API versions: 20]"
        " [variants: default] [no parameters] [trusted]\n"
        for node in (N1, N2, N3)
    )
    assert block in out, out


# -- node-wide moves -----------------------------------------------------------------------


def test_node_migrate_failover_evacuate(cluster: Testkit) -> None:
    """Start: d1 on node1 (secondary node2), s1 on node1."""
    assert field(cluster, "d1", "pnode,snodes") == [N1, N2]
    assert field(cluster, "s1", "pnode") == [N1]
    # d1 (drbd) fails over to its secondary, s1 (sharedfile) by the allocator
    out = ok(cluster, "gnt-node", "failover", "-f", N1)
    assert out.endswith("All 2 instance(s) failed over successfully.\n"), out
    assert field(cluster, "d1", "pnode,snodes,status") == [N2, N1, "running"]
    assert field(cluster, "s1", "pnode,status")[1] == "running"
    assert field(cluster, "s1", "pnode")[0] != N1
    # migrate every primary of node2 away
    s1_node = field(cluster, "s1", "pnode")[0]
    if s1_node != N2:
        ok(cluster, "gnt-instance", "migrate", "-f", "-n", N2, "s1")
    out = ok(cluster, "gnt-node", "migrate", "-f", N2)
    assert out.endswith("All instances migrated successfully.\n"), out
    assert field(cluster, "d1", "pnode,snodes,status") == [N1, N2, "running"]
    assert field(cluster, "s1", "pnode,status")[1] == "running"
    assert field(cluster, "s1", "pnode")[0] != N2
    # the secondary of node2 moves to node3, then node1's primaries leave it
    out = ok(cluster, "gnt-node", "evacuate", "-f", "-s", N2)
    assert out.endswith("All instances evacuated successfully.\n"), out
    assert field(cluster, "d1", "pnode,snodes") == [N1, N3]
    assert ok(cluster, "gnt-node", "list", "--no-headers", "-o", "pinst_cnt,sinst_cnt", N2) == (
        "0 0\n"
    )
    s1_node = field(cluster, "s1", "pnode")[0]
    out = ok(cluster, "gnt-node", "evacuate", "-f", "-p", s1_node)
    assert out.endswith("All instances evacuated successfully.\n"), out
    assert field(cluster, "s1", "pnode")[0] != s1_node
    assert field(cluster, "s1", "status") == ["running"]


# -- gnt-job -------------------------------------------------------------------------------


def test_job_list_info_cancel(cluster: Testkit) -> None:
    ok(cluster, "gnt-instance", "add", "-t", "file", "-o", "slowos+default", "-s", "1G",
       "-n", N3, "--no-start", *NOCHECK, "slow1")  # fmt: skip
    # the reinstall holds the instance's lock for a few seconds...
    first = ok(cluster, "gnt-instance", "reinstall", "--submit", "-f", "slow1")
    assert re.fullmatch(r"\d+: slow1\n", first), first
    first_id = first.split(":")[0]
    second = ok(cluster, "gnt-instance", "start", "--submit", "slow1")
    second_id = second.split(":")[0]
    deadline = time.monotonic() + 10
    while True:
        rows = ok(cluster, "gnt-job", "list", "--no-headers", "-o", "id,status", second_id)
        if rows.split() == [second_id, "waiting"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows.split() == [second_id, "waiting"], rows
    # ...so the start waits for it and can be cancelled
    out = ok(cluster, "gnt-job", "cancel", second_id)
    assert re.fullmatch(rf"Job {second_id} (will be )?canceled\n", out), out
    ok(cluster, "gnt-job", "watch", first_id)
    out = ok(cluster, "gnt-job", "list", "-o", "id,status,summary", first_id, second_id)
    assert out.splitlines()[0].split() == ["ID", "Status", "Summary"]
    assert [line.split() for line in out.splitlines()[1:]] == [
        [first_id, "success", "INSTANCE_REINSTALL(slow1)"],
        [second_id, "canceled", "INSTANCE_STARTUP(slow1)"],
    ]
    info = ok(cluster, "gnt-job", "info", second_id)
    assert info.startswith(f"- Job ID: {second_id}\n  Status: canceled\n"), info
    assert "\n      Execution start:  N/A\n" in info
    assert field(cluster, "slow1", "status") == ["ADMIN_down"]
    res = run(cluster, "gnt-job", "cancel", first_id)
    assert res.code == 1 and f"Job {first_id} is no longer waiting in the queue" in res.output
    ok(cluster, "gnt-instance", "remove", "-f", "slow1")
    res = _verify(cluster)
    assert res.code == 0 and "ERROR" not in res.stdout, res.output
