"""gnt-os and gnt-group against Ganeti 3.0.2's outputs."""

from __future__ import annotations

from typing import Any

import pytest

from corral import opcodes as op
from corral.cli import gnt_group, gnt_os
from corral.cli._generic_info import format_generic_info
from corral.cli._util import run_main

from .conftest import FakeClient, reference_lines

NODE_UUID = "4c7251f7-5b47-41d2-836a-99852ed41a89"
FS_DOC = (
    "The filesystem type to use for the root partition. This has to be a filesystem"
    " type supported by ``mke2fs``. The default is 'ext4'."
)


def _oses() -> list[dict[str, Any]]:
    return [
        {
            "name": "debootstrap",
            "valid": True,
            "hidden": False,
            "blacklisted": False,
            "variants": ["default"],
            "api_versions": [20, 15, 10, 5],
            "parameters": [["filesystem", FS_DOC]],
            "trusted": True,
            "node_status": {
                NODE_UUID: [
                    [
                        "/usr/share/ganeti/os/debootstrap",
                        True,
                        "",
                        ["default"],
                        [["filesystem", FS_DOC]],
                        [20, 15, 10, 5],
                        True,
                    ]
                ]
            },
        },
        {
            "name": "noop",
            "valid": True,
            "hidden": False,
            "blacklisted": False,
            "variants": ["default", "minimal"],
            "api_versions": [20],
            "parameters": [],
            "trusted": True,
            "node_status": {
                NODE_UUID: [
                    ["/srv/ganeti/os/noop", True, "", ["default", "minimal"], [], [20], True]
                ]
            },
        },
        {
            "name": "broken",
            "valid": False,
            "hidden": False,
            "blacklisted": False,
            "variants": [],
            "api_versions": [],
            "parameters": [],
            "trusted": True,
            "node_status": {},
        },
        {
            "name": "secret",
            "valid": True,
            "hidden": True,
            "blacklisted": False,
            "variants": [],
            "api_versions": [20],
            "parameters": [],
            "trusted": True,
            "node_status": {},
        },
    ]


@pytest.fixture
def oses(client: FakeClient) -> FakeClient:
    client.query_data["os"] = _oses()
    return client


def run_os(client: FakeClient, *argv: str) -> int:
    return run_main("gnt-os", gnt_os.commands, list(argv), client)


def test_os_list(oses: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_os(oses, "list") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-os_list.txt")


def test_os_list_paper_variants() -> None:
    rows = [
        ["debootstrap", ["default"], True, False, False],
        ["image", ["cd", "default"], True, False, False],
        ["plain", None, True, False, False],
    ]
    assert gnt_os.format_os_list(rows, header=False) == [
        "debootstrap+default",
        "image+cd",
        "image+default",
        "plain",
    ]


def test_os_info(oses: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    oses.query_data["os"] = _oses()[:2]
    assert run_os(oses, "info") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-os_info.txt")


def test_os_diagnose(oses: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    oses.query_data["os"] = _oses()[:2]
    assert run_os(oses, "diagnose") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-os_diagnose.txt")


def test_os_diagnose_partial(oses: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    row = _oses()[1]
    row["node_status"]["node2"] = []
    oses.query_data["os"] = [row]
    assert run_os(oses, "diagnose") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OS: noop [global status: partial valid]"
    assert out[-2] == "  Node: node2, status: OS not found"


def test_os_modify(oses: FakeClient) -> None:
    assert run_os(oses, "modify", "--hidden", "yes", "-O", "filesystem=xfs", "debootstrap") == 0
    assert oses.ops == [
        op.OpClusterSetParams(
            osparams={"debootstrap": {"filesystem": "xfs"}}, hidden_os=[["add", "debootstrap"]]
        )
    ]
    assert run_os(oses, "modify", "noop") == 1


GROUP_FIELDS = {
    "name": ("Group", "text"),
    "node_cnt": ("Nodes", "number"),
    "pinst_cnt": ("Instances", "number"),
    "alloc_policy": ("AllocPolicy", "text"),
    "ndparams": ("NDParams", "other"),
}


def test_group_list(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    client.field_defs["group"] = GROUP_FIELDS
    client.query_data["group"] = [
        {
            "name": "default",
            "node_cnt": 1,
            "pinst_cnt": 20,
            "alloc_policy": "preferred",
            "ndparams": {
                "oob_program": "",
                "spindle_count": 1,
                "exclusive_storage": False,
                "ovs": False,
                "ovs_name": "switch1",
                "ovs_link": "",
                "ssh_port": 22,
                "cpu_speed": 1,
            },
        }
    ]
    assert run_main("gnt-group", gnt_group.commands, ["list"], client) == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-group_list.txt")


def test_group_commands(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*argv: str) -> int:
        return run_main("gnt-group", gnt_group.commands, list(argv), client)

    assert run("add", "--alloc-policy", "last_resort", "--ipolicy-vcpu-ratio", "2", "rack2") == 0
    assert run("assign-nodes", "rack2", "node3", "node4") == 0
    assert run("modify", "rack2") == 1
    assert run("remove", "rack2") == 0
    assert client.ops == [
        op.OpGroupAdd(group_name="rack2", alloc_policy="last_resort", ipolicy={"vcpu-ratio": 2.0}),
        op.OpGroupAssignNodes(group_name="rack2", nodes=["node3", "node4"]),
        op.OpGroupRemove(group_name="rack2"),
    ]
    assert run("add", "--alloc-policy", "sometimes", "x") == 1


def test_group_info() -> None:
    nd = {"cpu_speed": 1, "ovs": False}
    policy = {
        "minmax": [{"min": {"cpu-count": 1}, "max": {"cpu-count": 8}}],
        "disk-templates": ["drbd"],
        "vcpu-ratio": 4.0,
        "spindle-ratio": 32.0,
    }
    row = ["default", nd, {"ovs": True}, {"drbd": {"resync-rate": 61440}}, {}, policy, {}]
    text = format_generic_info([gnt_group.format_group_info(row)])
    assert text.splitlines() == [
        "- Node group: default",
        "  Node parameters: ",
        "    cpu_speed: default (1)",
        "    ovs: True",
        "  Disk parameters: ",
        "    drbd: ",
        "      resync-rate: default (61440)",
        "  Instance policy: ",
        "    bounds specs: ",
        "      - max/0: ",
        "          cpu-count: default (8)",
        "        min/0: ",
        "          cpu-count: default (1)",
        "    allowed disk templates: default (drbd)",
        "    vcpu-ratio: default (4)",
        "    spindle-ratio: default (32)",
    ]
