"""gnt-node: list/info printers against Ganeti 3.0.2, add's join prompt, modify, migrate."""

from __future__ import annotations

from typing import Any

import pytest

from corral import opcodes as op
from corral.cli import _node_add, gnt_node
from corral.cli._util import run_main

from .conftest import FakeClient, reference_lines

NODE_FIELDS = {
    "name": ("Node", "text"),
    "dtotal": ("DTotal", "unit"),
    "dfree": ("DFree", "unit"),
    "mtotal": ("MTotal", "unit"),
    "mnode": ("MNode", "unit"),
    "mfree": ("MFree", "unit"),
    "pinst_cnt": ("Pinst", "number"),
    "sinst_cnt": ("Sinst", "number"),
    "pip": ("PrimaryIP", "text"),
    "sip": ("SecondaryIP", "text"),
    "master": ("IsMaster", "bool"),
    "pinst_list": ("PriInstances", "other"),
    "sinst_list": ("SecInstances", "other"),
    "master_candidate": ("MasterC", "bool"),
    "drained": ("Drained", "bool"),
    "offline": ("Offline", "bool"),
    "master_capable": ("MasterCapable", "bool"),
    "vm_capable": ("VMCapable", "bool"),
    "powered": ("Powered", "bool"),
    "ndparams": ("NodeParameters", "other"),
    "custom_ndparams": ("CustomNodeParameters", "other"),
    "tags": ("Tags", "other"),
}
NDPARAMS = {
    "cpu_speed": 1,
    "exclusive_storage": False,
    "oob_program": "",
    "ovs": False,
    "ovs_link": "",
    "ovs_name": "switch1",
    "spindle_count": 1,
    "ssh_port": 22,
}


def node1(**extra: Any) -> dict[str, Any]:
    node = {
        "name": "node1.example.test",
        "dtotal": 258048,
        "dfree": 80077,
        "mtotal": 24064,
        "mnode": 192,
        "mfree": 23654,
        "pinst_cnt": 0,
        "sinst_cnt": 0,
        "pip": "198.51.100.1",
        "sip": "198.51.100.1",
        "master": True,
        "pinst_list": [],
        "sinst_list": [],
        "master_candidate": True,
        "drained": False,
        "offline": False,
        "master_capable": True,
        "vm_capable": True,
        "powered": True,
        "ndparams": dict(NDPARAMS),
        "custom_ndparams": {},
        "tags": [],
    }
    node.update(extra)
    return node


@pytest.fixture
def nodes(client: FakeClient) -> FakeClient:
    client.field_defs["node"] = NODE_FIELDS
    client.query_data["node"] = [node1()]
    return client


def run(client: FakeClient, *argv: str) -> int:
    return run_main("gnt-node", gnt_node.commands, list(argv), client)


def test_list_matches_ganeti(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(nodes, "list") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-node_list.txt")


def test_list_options(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    nodes.query_data["node"].append(
        node1(name="node2.example.test", offline=True, pinst_list=["b", "a"])
    )
    assert run(nodes, "list", "--no-headers", "--separator=|", "-o", "+pinst_list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "node1.example.test|258048|80077|24064|192|23654|0|0|"
    assert lines[1].endswith("|b,a")
    assert run(nodes, "list", "-o", "name,bogus") == 14
    captured = capsys.readouterr()
    assert "Warning: Queried for unknown fields bogus" in captured.err
    assert captured.out.splitlines()[1] == "node1.example.test ??"


def test_info_matches_ganeti(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(nodes, "info") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-node_info.txt")


def test_info_with_instances(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    names = [f"bd{i:02d}" for i in range(15, 0, -1)] + ["rapi2", "rapi1", "inst3", "inst2", "inst1"]
    nodes.query_data["node"] = [node1(pinst_list=names)]
    assert run(nodes, "info", "node1.example.test") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-node_info_20_instances.txt")


def test_info_unknown_node(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(nodes, "info", "node9") == 1
    assert "Node 'node9' not known" in capsys.readouterr().err


def test_add_with_prompt_accepted(
    nodes: FakeClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_node_add, "_seeded_token", lambda: False)
    monkeypatch.setattr(_node_add, "fetch_fingerprint", lambda host: "AB:CD")
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        _node_add, "confirm_fingerprint", lambda host, fp: asked.append((host, fp)) or True
    )
    nodes.job_results[100] = (
        "success",
        ["success"],
        [None],
        ["- INFO: Node will be a master candidate"],
    )
    assert run(nodes, "add", "node2.project.edu") == 0
    assert asked == [("node2.project.edu", "AB:CD")]
    assert nodes.ops == [op.OpNodeAdd(node_name="node2.project.edu", node_fingerprint="AB:CD")]
    out = capsys.readouterr()
    assert "-- WARNING --" in out.err
    assert out.out.endswith("2026 - INFO: Node will be a master candidate\n")


def test_add_prompt_refused_aborts(nodes: FakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_node_add, "_seeded_token", lambda: False)
    monkeypatch.setattr(_node_add, "fetch_fingerprint", lambda host: "AB:CD")
    monkeypatch.setattr(_node_add, "confirm_fingerprint", lambda host, fp: False)
    assert run(nodes, "add", "node2.project.edu") == 1
    assert nodes.jobs == []


def test_prompt_text_and_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def no_tty(*_a: Any, **_k: Any) -> Any:
        raise OSError("no tty")

    monkeypatch.setattr(builtins, "open", no_tty)
    assert _node_add.confirm_fingerprint("node2.project.edu", "AB") is False


def test_add_with_pinned_fingerprint_or_token(
    nodes: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(host: str) -> str:
        raise AssertionError("must not fetch")

    monkeypatch.setattr(_node_add, "fetch_fingerprint", boom)
    assert run(nodes, "add", "-s", "10.0.0.2", "--node-fingerprint", "AA:BB", "node2") == 0
    assert run(nodes, "add", "--join-token", "s3cret", "-g", "rack1", "node3") == 0
    assert nodes.ops[0] == op.OpNodeAdd(
        node_name="node2", secondary_ip="10.0.0.2", node_fingerprint="AA:BB"
    )
    assert nodes.ops[1] == op.OpNodeAdd(node_name="node3", join_token="s3cret", group="rack1")


def test_add_existing_node_needs_readd(
    nodes: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(nodes, "add", "--node-fingerprint", "x", "node1.example.test") == 1
    assert "please retry with '--readd'" in capsys.readouterr().err
    assert run(nodes, "add", "--readd", "--node-fingerprint", "x", "node1.example.test") == 1
    assert "is the master, cannot readd" in capsys.readouterr().err


def test_modify_flags(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    nodes.job_results[100] = ("success", ["success"], [[["drained", "True"]]], [])
    assert run(nodes, "modify", "-D", "yes", "-C", "no", "--auto-promote", "node1") == 0
    assert nodes.ops == [
        op.OpNodeSetParams(
            node_name="node1", drained=True, master_candidate=False, auto_promote=True
        )
    ]
    assert capsys.readouterr().out.splitlines() == ["Modified node node1", " - drained -> True"]
    assert run(nodes, "modify", "node1") == 1
    assert run(nodes, "modify", "-D", "maybe", "node1") == 1


def test_migrate_asks_then_follows_jobs(
    nodes: FakeClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from corral.cli import _util

    nodes.query_data["node"] = [node1(name="node2", pinst_list=["vm10", "vm2"])]
    questions: list[str] = []
    monkeypatch.setattr(_util, "ask_user", lambda q: questions.append(q) or False)
    assert run(nodes, "migrate", "node2") == 13
    assert questions == ["Migrate instance(s) vm2, vm10?"]
    nodes.job_results[100] = ("success", ["success"], [{"jobs": [[True, 7]]}], [])
    assert run(nodes, "migrate", "-f", "--non-live", "node2") == 0
    assert nodes.ops == [op.OpNodeMigrate(node_name="node2", mode="non-live")]
    assert capsys.readouterr().out.splitlines()[-1] == "All instances migrated successfully."


def test_evacuate_secondary_to_new_node(
    nodes: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes.query_data["node"] = [node1(name="node2", pinst_list=["a"], sinst_list=["b"])]
    nodes.job_results[100] = ("success", ["success"], [{"jobs": []}], [])
    assert run(nodes, "evacuate", "-f", "-n", "node3", "node2") == 0
    assert nodes.ops == [
        op.OpNodeEvacuate(node_name="node2", mode="secondary-only", remote_node="node3")
    ]
    assert "hence evacuating secondary instances only" in capsys.readouterr().err


def test_failover_node(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    nodes.query_data["node"] = [node1(name="node2", pinst_list=["vm1"])]
    assert run(nodes, "failover", "-f", "--ignore-consistency", "node2") == 0
    assert nodes.ops == [op.OpInstanceFailover(instance_name="vm1", ignore_consistency=True)]
    assert capsys.readouterr().out.splitlines() == [
        "Submitted jobs 100",
        "Waiting for job 100 for vm1 ...",
        "All 1 instance(s) failed over successfully.",
    ]


def test_power_off_asks_offlines_first_and_prints_the_table(
    nodes: FakeClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from corral.cli import _util

    questions: list[str] = []
    monkeypatch.setattr(_util, "ask_user", lambda q: questions.append(q) or False)
    assert run(nodes, "power", "off", "node3") == 1
    assert questions == [
        "The power off will operate on 1 nodes.\nDo you want to continue?\nAffected nodes:\n  node3"
    ]
    assert nodes.ops == []
    oob = [[[0, "node3"], [0, None]]]
    nodes.job_results[100] = ("success", ["success", "success"], [[], oob], [])
    assert run(nodes, "power", "-f", "off", "node3") == 0
    assert nodes.ops == [
        op.OpNodeSetParams(node_name="node3", offline=True),
        op.OpOobCommand(node_names=["node3"], command="power-off"),
    ]
    assert capsys.readouterr().out.splitlines() == ["Node  Status", "node3 invoked"]


def test_power_status_and_health_report_failures(
    nodes: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    status = [
        [[0, "node1"], [0, {"powered": True}]],
        [[0, "node2"], [2, None]],
        [[0, "node3"], [0, {"powered": False}]],
    ]
    nodes.job_results[100] = ("success", ["success"], [status], [])
    assert run(nodes, "power", "status", "--no-headers") == 1
    assert nodes.ops == [op.OpOobCommand(command="power-status")]
    assert capsys.readouterr().out.splitlines() == [
        "node1 powered",
        "node2 (nodata)",
        "node3 unpowered",
    ]
    health = [[[0, "node1"], [0, [["disk", "OK"], ["fan", "WARNING"]]]]]
    nodes.job_results[101] = ("success", ["success"], [health], [])
    assert run(nodes, "health", "node1") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Node  Status",
        "node1 disk=OK",
        "      fan=WARNING",
    ]
    assert run(nodes, "power", "explode", "node1") == 1
    assert "power subcommand explode not supported." in capsys.readouterr().err
    # options may come between arguments, as with Ganeti's optparse
    nodes.job_results[102] = ("success", ["success"], [status[2:]], [])
    assert run(nodes, "power", "status", "--no-headers", "node3") == 0
    assert nodes.jobs[-1] == [op.OpOobCommand(node_names=["node3"], command="power-status")]
    assert capsys.readouterr().out.splitlines() == ["node3 unpowered"]
    assert run(nodes, "power", "status", "node3", "--bogus") == 1
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_tags(nodes: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    nodes.tags[("node", "node1")] = ["rack:b", "rack:a"]
    assert run(nodes, "list-tags", "node1") == 0
    assert capsys.readouterr().out.splitlines() == ["rack:a", "rack:b"]
    assert run(nodes, "add-tags", "node1", "x", "y") == 0
    assert nodes.ops == [op.OpTagsSet(kind="node", name="node1", tags=["x", "y"])]
    assert run(nodes, "remove-tags", "node1") == 1
