"""Names, addresses, state file and argument checks (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.testkit import layout as L
from corral.testkit import state as S
from corral.testkit.cli import main
from corral.testkit.cluster import Testkit
from corral.testkit.errors import TestkitError


def test_node_addresses_follow_the_paper() -> None:
    assert L.node_ip(1) == "192.168.20.222"
    assert L.node_ip(2) == "192.168.20.223"
    assert L.node_fqdn(3) == "node3.project.edu"
    assert L.node_index("node12") == 12
    assert L.node_index("node2.project.edu") == 2
    assert L.node_index("node0") is None
    assert L.node_index("cluster") is None


def test_hosts_file_lists_nodes_and_floating_master_ip() -> None:
    lines = [line.split() for line in L.hosts_text(2).splitlines()]
    assert ["127.0.0.1", "localhost"] in lines
    assert ["192.168.20.220", "cluster.project.edu", "cluster"] in lines
    assert ["192.168.20.222", "node1.project.edu", "node1"] in lines
    assert ["192.168.20.223", "node2.project.edu", "node2"] in lines
    assert not any("node3" in words for words in lines)


def test_switch_name_differs_per_directory(tmp_path: Path) -> None:
    one = L.Layout.of(tmp_path / "a")
    two = L.Layout.of(tmp_path / "b")
    assert one.switch_netns != two.switch_netns
    assert one.switch_netns == L.Layout.of(tmp_path / "a" / ".." / "a").switch_netns
    assert one.noded_log("node1") == tmp_path / "a/node1/var/log/corral/noded.log"


def test_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "testkit.json"
    assert S.load(path) is None
    kit = S.KitState(kit_id="x", switch_netns="n", memory=2048, cpus=2, disk_mib=2048)
    kit.nodes.append(S.NodeState(name="node1", index=1, ip="192.168.20.222", pid=1, start_time=5))
    S.save(path, kit)
    again = S.load(path)
    assert again == kit
    assert again is not None and again.node("node1.project.edu").ip == "192.168.20.222"
    with pytest.raises(TestkitError, match="Unknown node 'node4'"):
        again.node("node4")


def test_dead_or_recycled_pid_is_not_up() -> None:
    me = S.process_start_time(1)
    assert me is not None
    assert S.is_alive(S.NodeState(name="n", index=1, ip="", pid=1, start_time=me))
    assert not S.is_alive(S.NodeState(name="n", index=1, ip="", pid=1, start_time=me + 1))
    assert not S.is_alive(S.NodeState(name="n", index=1, ip="", pid=None))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "between 1 and 32"),
        ({"nodes": 40}, "between 1 and 32"),
        ({"disk_size": "12Q"}, "Invalid disk size"),
        ({"disk_size": "10M"}, "at least 64M"),
        ({"memory": 100}, "Memory must exceed"),
    ],
)
def test_bad_up_arguments_make_nothing(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    site = tmp_path / "site"
    with pytest.raises(TestkitError, match=message):
        Testkit(site).up(**kwargs)  # type: ignore[arg-type]
    assert not site.exists()


def test_up_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(TestkitError, match="not empty and holds no testkit"):
        Testkit(tmp_path).up(nodes=1, disk_size="64M")
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


def test_cli_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", "--dir", str(tmp_path), "node1", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corral-testkit: No testkit in")
    assert err.count("\n") == 1
    assert main(["status", "--dir", str(tmp_path)]) == 1
