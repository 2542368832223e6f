"""A real 3-node site with a fake noded: namespaces, files, network, crash and boot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.testkit import netns
from corral.testkit import node as N
from corral.testkit.cluster import Testkit
from corral.testkit.errors import TestkitError
from corral.testkit.state import process_start_time

pytestmark = pytest.mark.needs_root

FAKE_NODED = f"{sys.executable} {Path(__file__).with_name('fake_noded.py')}"
HOST_PATHS = ("/etc/corral", "/etc/ganeti", "/var/lib/corral", "/srv/ganeti", "/iso")


def _host_view() -> dict[str, object]:
    """What the nodes must never change on the host."""
    return {
        "etc": sorted(os.listdir("/etc")),
        "hosts": Path("/etc/hosts").read_text(),
        "hostname": Path("/proc/sys/kernel/hostname").read_text(),
        "exists": [p for p in HOST_PATHS if os.path.lexists(p)],
        "srv": sorted(os.listdir("/srv")) if os.path.isdir("/srv") else None,
    }


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    return _host_view()


@pytest.fixture(scope="module")
def kit(
    tmp_path_factory: pytest.TempPathFactory, host_before: dict[str, object]
) -> Iterator[Testkit]:
    site = Testkit(tmp_path_factory.mktemp("site"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(N.NODED_ENV, FAKE_NODED)
        site.up(nodes=3, disk_size="2G", memory=4096, cpus=4)
    yield site
    site.down()


def _sh(kit: Testkit, node: str, script: str) -> str:
    return kit.exec(node, ["sh", "-c", script], check=True).stdout


def _tcp_probe(target: str, timeout: float) -> list[str]:
    code = (
        "import socket,sys\n"
        f"s = socket.create_connection(({target!r}, 1811), timeout={timeout})\n"
        "print(s.recv(100).decode().strip())\n"
    )
    return ["python3", "-c", code]


def test_each_node_has_its_hostname(kit: Testkit) -> None:
    assert kit.node_names == ["node1", "node2", "node3"]
    for name in kit.node_names:
        assert _sh(kit, name, "hostname").strip() == f"{name}.project.edu"
    assert kit.node_ip("node2") == "192.168.20.223"


def test_nodes_see_only_their_own_state_files(kit: Testkit) -> None:
    _sh(kit, "node1", "echo one > /etc/corral/mine; echo x > /var/lib/corral/data")
    assert _sh(kit, "node1", "cat /etc/corral/mine") == "one\n"
    assert kit.exec("node2", ["test", "-e", "/etc/corral/mine"]).returncode == 1
    assert kit.exec("node2", ["test", "-e", "/var/lib/corral/data"]).returncode == 1
    assert (kit.node_dir("node1") / "etc/corral/mine").read_text() == "one\n"
    tokens = {_sh(kit, n, "cat /etc/corral/join.token") for n in kit.node_names}
    assert len(tokens) == 1 and len(tokens.pop().strip()) >= 32
    hardware = _sh(kit, "node3", "cat /etc/corral/node-hardware.json")
    assert hardware.strip() == '{"memory_total": 4096, "cpu_total": 4, "memory_dom0": 128}'


def test_hosts_file_and_shared_storage(kit: Testkit) -> None:
    hosts = _sh(kit, "node2", "cat /etc/hosts")
    assert "192.168.20.220\tcluster.project.edu" in hosts
    assert "192.168.20.224\tnode3.project.edu node3" in hosts
    _sh(kit, "node1", "echo s > /srv/ganeti/shared-file-storage/f")
    assert _sh(kit, "node3", "cat /srv/ganeti/shared-file-storage/f") == "s\n"
    # file storage proper is per node
    _sh(kit, "node1", "touch /srv/ganeti/file-storage/only1")
    assert kit.exec("node2", ["ls", "/srv/ganeti/file-storage/only1"]).returncode != 0


def test_node_writes_never_reach_the_host(kit: Testkit, host_before: dict[str, object]) -> None:
    _sh(kit, "node1", "echo junk > /etc/corral-junk; mkdir -p /srv/other; echo y > /root/.junk")
    assert not os.path.exists("/etc/corral-junk")
    assert not os.path.exists("/srv/other")
    assert not os.path.exists("/root/.junk")
    assert _host_view() == host_before


def test_management_network_links_the_nodes(kit: Testkit) -> None:
    addrs = _sh(kit, "node1", "ip -o -4 addr show dev br-man")
    assert "192.168.20.222/24" in addrs
    assert _sh(kit, "node1", "ip -o -4 addr show dev br-public").strip() == ""
    if shutil.which("ping"):
        _sh(kit, "node1", "ping -c 1 -W 2 node2.project.edu")
    answer = kit.exec("node1", _tcp_probe("192.168.20.223", 5), check=True).stdout
    assert answer.strip() == "node2.project.edu"
    # nothing of it in the host's network namespace
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "br-man" not in host_links


def test_srv_ganeti_is_the_node_disk(kit: Testkit) -> None:
    fields = _sh(kit, "node1", "df -B1M --output=size,target /srv/ganeti").split()
    assert fields[-1] == "/srv/ganeti"
    assert 1800 < int(fields[-2]) <= 2048


def test_exec_passes_stdin_exit_code_and_environment(kit: Testkit) -> None:
    result = kit.exec("node2", ["sh", "-c", "cat; pwd; echo $HOME; exit 3"], input="hello\n")
    assert result.returncode == 3
    assert result.stdout == "hello\n/root\n/root\n"
    with pytest.raises(subprocess.TimeoutExpired):
        kit.exec("node2", ["sh", "-c", "sleep 30 | cat"], timeout=0.5)
    leftovers = kit.exec("node2", ["pgrep", "-f", "sleep 30"])
    assert leftovers.stdout == ""  # the timed-out command died inside the node too
    path = _sh(kit, "node2", "echo $PATH").strip().split(":")
    assert path[0] == str(Path(sys.executable).parent)
    cli = [str(Path(sys.executable).parent / "corral-testkit"), "exec", "--dir"]
    proc = subprocess.run(
        [*cli, str(kit.layout.root), "node3", "--", "sh", "-c", "tr a-z A-Z; exit 5"],
        input="abc\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout) == (5, "ABC\n")


def test_crash_kills_the_node_and_boot_restores_its_disks(kit: Testkit) -> None:
    _sh(kit, "node2", "echo keep > /var/lib/corral/keep; echo disk > /srv/ganeti/volumes/v1")
    _sh(kit, "node2", "echo gone > /var/run/corral/runtime; sleep 600 >/dev/null 2>&1 & true")
    pids = kit.node_pids("node2")
    assert len(pids) >= 3  # init, fake noded, sleep

    kit.crash("node2")
    assert not kit.is_up("node2")
    assert not [p for p in pids if process_start_time(p) is not None]  # gone or zombie
    switch = ["ip", "-n", kit.layout.switch_netns, "-o", "link"]
    switch_links = subprocess.run(switch, capture_output=True, text=True, check=True).stdout
    assert "n1-man" in switch_links and "n2-man" not in switch_links  # cable pulled
    start = time.monotonic()
    probe = kit.exec("node1", _tcp_probe("192.168.20.223", 1.5))
    assert probe.returncode != 0
    assert time.monotonic() - start < 5
    with pytest.raises(TestkitError, match="Node node2 is down"):
        kit.exec("node2", ["true"])
    with pytest.raises(TestkitError, match="already down"):
        kit.crash("node2")

    kit.boot("node2")
    assert _sh(kit, "node2", "cat /var/lib/corral/keep /srv/ganeti/volumes/v1") == "keep\ndisk\n"
    assert _sh(kit, "node2", "ls -A /var/run/corral") == ""
    answer = kit.exec("node1", _tcp_probe("192.168.20.223", 5), check=True).stdout
    assert answer.strip() == "node2.project.edu"
    with pytest.raises(TestkitError, match="already up"):
        kit.boot("node2")


def test_cli_lifecycle_with_default_disk_and_clean_down(tmp_path: Path) -> None:
    """`up` returns with stdout closed; default disk ~137.9G; `down` leaves nothing."""
    cli = str(Path(sys.executable).parent / "corral-testkit")
    site = str(tmp_path / "cli-site")
    env = {**os.environ, N.NODED_ENV: FAKE_NODED}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], capture_output=True, text=True, timeout=60, env=env, check=False
        )

    up = run("up", "--dir", site, "--nodes", "1")
    assert up.returncode == 0, up.stderr
    assert up.stdout == "node1\t192.168.20.222\tup\n"
    again = run("up", "--dir", site, "--nodes", "1")
    assert again.returncode == 1 and "already up" in again.stderr
    status = run("status", "--dir", site)
    assert "node1\t192.168.20.222\tup" in status.stdout
    size = run("exec", "--dir", site, "node1", "--", "df", "-B1M", "--output=size", "/srv/ganeti")
    assert round(int(size.stdout.split()[-1]) / 1024, 1) == 137.9  # as in the paper

    kit = Testkit(site)
    image = kit.layout.disk_image("node1")
    assert N.loop_devices(image)
    assert run("down", "--dir", site).returncode == 0
    assert not N.loop_devices(image)
    assert not netns.switch_exists(kit.layout.switch_netns)
    assert not N.stray_inits(kit.layout)
    assert "node1\t192.168.20.222\tdown" in run("status", "--dir", site).stdout
    assert run("down", "--dir", site).returncode == 0  # idempotent
    again = run("up", "--dir", site, "--nodes", "2", "--disk-size", "64M")  # reuses D
    assert again.returncode == 0, again.stderr
    assert Testkit(site).node_names == ["node1", "node2"]
    assert run("down", "--dir", site).returncode == 0


def test_noded_that_never_listens_is_reported_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(N.NODED_ENV, "sleep 60")
    kit = Testkit(tmp_path / "slow")
    with pytest.raises(TestkitError) as info:
        kit.up(nodes=1, disk_size="64M", noded_timeout=1)
    message = str(info.value)
    assert "node1" in message and "192.168.20.222:1811" in message
    assert str(kit.layout.noded_log("node1")) in message
    assert not netns.switch_exists(kit.layout.switch_netns)
    assert not N.stray_inits(kit.layout)
    assert not N.loop_devices(kit.layout.disk_image("node1"))


def test_node_that_cannot_mount_its_disk_is_reported_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_filesystem(layout: object, name: str, size_mib: int) -> None:
        Testkit(tmp_path / "bad").layout.disk_image(name).write_bytes(b"\0" * 1024 * 1024)

    monkeypatch.setenv(N.NODED_ENV, FAKE_NODED)
    monkeypatch.setattr(N, "create_disk", no_filesystem)
    kit = Testkit(tmp_path / "bad")
    with pytest.raises(TestkitError, match=r"Cannot start node node1: error: .*mount") as info:
        kit.up(nodes=1, disk_size="64M")
    assert str(kit.layout.init_log("node1")) in str(info.value)
    assert "\n" not in str(info.value)
    assert not N.stray_inits(kit.layout)
    assert not netns.switch_exists(kit.layout.switch_netns)
    assert kit.status()[0].up is False
