"""gnt-instance command functions with a fake master: prompts, job output, lists."""

from __future__ import annotations

from typing import Any

import pytest

from corral import opcodes as op
from corral.cli import _util, gnt_instance
from corral.cli._util import run_main

from .conftest import FakeClient, reference_lines

INSTANCE_FIELDS = {
    "name": ("Instance", "text"),
    "hypervisor": ("Hypervisor", "text"),
    "os": ("OS", "text"),
    "pnode": ("Primary_node", "text"),
    "snodes": ("Secondary_Nodes", "other"),
    "status": ("Status", "text"),
    "oper_ram": ("Memory", "unit"),
    "oper_state": ("Running", "bool"),
    "console": ("Console", "other"),
    "nic.links": ("NIC_links", "other"),
    "be/maxmem": ("ConfigMaxMem", "unit"),
}


def inst(name: str, **extra: Any) -> dict[str, Any]:
    row = {
        "name": name,
        "hypervisor": "fake",
        "os": "noop+default",
        "pnode": "node1.example.test",
        "snodes": [],
        "status": "running",
        "oper_ram": 512,
        "oper_state": True,
    }
    row.update(extra)
    return row


@pytest.fixture
def cluster(client: FakeClient) -> FakeClient:
    client.field_defs["instance"] = INSTANCE_FIELDS
    client.query_data["instance"] = [inst("inst1"), inst("inst2")]
    return client


class Answers(list[str]):
    """Questions asked; every answer is "no" unless a test queues replies."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[bool] = []

    def __call__(self, question: str) -> bool:
        self.append(question)
        return self.replies.pop(0) if self.replies else False


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    asked = Answers()
    monkeypatch.setattr(_util, "ask_user", asked)
    return asked


def run(client: FakeClient, *argv: str) -> int:
    return run_main("gnt-instance", gnt_instance.commands, list(argv), client)


def test_paper_start_prints_waiting_line(
    cluster: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.query_data["instance"] = [inst("testvm.project.edu")]
    assert (
        run(
            cluster,
            "start",
            "-H",
            "boot_order=cdrom,cdrom_image_path=/iso/debian-7.9.0-amd64-netinst.iso",
            "testvm.project.edu",
        )
        == 0
    )
    assert capsys.readouterr().out == "Waiting for job 100 for testvm.project.edu ...\n"
    assert cluster.ops[0].hvparams["boot_order"] == "cdrom"


def test_stop_reboot_outputs_match_ganeti(
    cluster: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.next_id = 269
    assert run(cluster, "stop", "inst1") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines("gnt-instance_stop_inst1.txt")
    assert isinstance(cluster.ops[0], op.OpInstanceShutdown)
    cluster.next_id = 273
    assert run(cluster, "reboot", "--type=full", "inst1") == 0
    assert capsys.readouterr().out.splitlines() == reference_lines(
        "gnt-instance_reboot_full_inst1.txt"
    )


def test_start_unknown_instance(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cluster, "start", "nosuch") == 1
    assert capsys.readouterr().err.splitlines() == [
        "Failure: prerequisites not met for this operation:",
        "error type: unknown_entity, error details:",
        "Instance 'nosuch' not known",
    ]


def test_start_many_asks_unless_forced(
    cluster: FakeClient, answers: Answers, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cluster, "start", "inst1", "inst2") == 1
    assert answers[0].startswith("The startup will operate on 2 instances.")
    assert cluster.jobs == []
    assert run(cluster, "start", "--all", "--force-multiple") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Submitted jobs 100, 101",
        "Waiting for job 100 for inst1 ...",
        "Waiting for job 101 for inst2 ...",
    ]


def test_failed_job_reports_and_exits_1(
    cluster: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.job_results[100] = ("error", ["error"], [["OpExecError", ["Could not start"]]], [])
    assert run(cluster, "reboot", "inst1") == 1
    err = capsys.readouterr().err
    assert "Job 100 for inst1 has failed: Failure: command execution error:" in err
    assert "Could not start" in err


def test_submit_prints_job_ids(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cluster, "stop", "--submit", "inst1") == 0
    assert capsys.readouterr().out == "100: inst1\n"
    assert run(cluster, "add", "-t", "diskless", "-o", "noop", "--submit", "vm9") == 0
    assert capsys.readouterr().out == "JobID: 101\n"


def test_add_prints_job_log(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.job_results[100] = (
        "success",
        ["success"],
        [["inst1"]],
        ["* creating instance disks...", "adding instance inst1 to cluster config"],
    )
    assert (
        run(
            cluster,
            "add",
            "-t",
            "file",
            "-o",
            "noop+default",
            "-s",
            "1G",
            "-n",
            "node1.example.test",
            "inst1",
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "Wed Nov 25 06:15:04 2026 * creating instance disks...",
        "Wed Nov 25 06:15:05 2026 adding instance inst1 to cluster config",
    ]


def test_add_error_message(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.job_results[100] = (
        "error",
        ["error"],
        [["OpPrereqError", ["Instance 'inst1' is already in the cluster", "already_exists"]]],
        [],
    )
    assert run(cluster, "add", "-t", "diskless", "-o", "noop+default", "inst1") == 1
    assert capsys.readouterr().err.splitlines() == reference_lines("gnt-instance_add_duplicate.txt")


def test_remove_confirmation(
    cluster: FakeClient, answers: Answers, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cluster, "remove", "inst1") == 1
    assert answers == [
        "This will remove the volumes of the instance inst1 (including mirrors), thus removing"
        " all the data of the instance. Continue?"
    ]
    assert cluster.jobs == []
    assert run(cluster, "remove", "--force", "inst1") == 0
    assert cluster.ops == [op.OpInstanceRemove(instance_name="inst1")]


def test_paper_migrate_asks(cluster: FakeClient, answers: Answers) -> None:
    cluster.query_data["instance"] = [inst("testvm.project.edu")]
    assert run(cluster, "migrate", "testvm.project.edu") == 1
    assert answers == [
        "Instance testvm.project.edu will be migrated. Note that migration might impact the"
        " instance if anything goes wrong (e.g. due to bugs in the hypervisor). Continue?"
    ]
    answers.replies.append(True)
    assert run(cluster, "migrate", "testvm.project.edu") == 0
    assert cluster.ops == [op.OpInstanceMigrate(instance_name="testvm.project.edu")]
    assert (
        run(
            cluster, "migrate", "-f", "--non-live", "--cleanup", "-n", "node3", "testvm.project.edu"
        )
        == 0
    )
    assert cluster.ops[1] == op.OpInstanceMigrate(
        instance_name="testvm.project.edu", mode="non-live", cleanup=True, target_node="node3"
    )


def test_paper_failover(cluster: FakeClient, answers: Answers) -> None:
    cluster.query_data["instance"] = [inst("testvm.project.edu")]
    assert run(cluster, "failover", "--ignore-consistency", "testvm.project.edu") == 1
    assert answers == [
        "Failover will happen to image testvm.project.edu. This requires a shutdown of the"
        " instance. Continue?"
    ]
    assert run(cluster, "failover", "-f", "--ignore-consistency", "testvm.project.edu") == 0
    assert cluster.ops == [
        op.OpInstanceFailover(instance_name="testvm.project.edu", ignore_consistency=True)
    ]


def test_paper_modify_asks_for_running_instance(
    cluster: FakeClient, answers: Answers, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cluster, "modify", "--net", "0:modify,link=br-man", "--hotplug", "inst1") == 1
    assert answers[0].startswith("You are about to hot-modify a NIC.")
    cluster.job_results[100] = ("success", ["success"], [[["nic.link/0", "br-man"]]], [])
    assert run(cluster, "modify", "-f", "--net", "0:modify,link=br-man", "inst1") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Modified instance inst1",
        " - nic.link/0 -> br-man",
        "Please don't forget that most parameters take effect only at the next (re)start of"
        " the instance initiated by ganeti; restarting from within the instance will not be"
        " enough.",
    ]


def test_modify_stopped_instance_does_not_ask(cluster: FakeClient, answers: Answers) -> None:
    cluster.query_data["instance"] = [inst("inst1", oper_state=False)]
    assert run(cluster, "modify", "--net", "0:modify,link=br-man", "inst1") == 0
    assert answers == []


def test_modify_needs_parameters(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cluster, "modify", "inst1") == 1
    assert "Please give at least one of the parameters." in capsys.readouterr().err


def test_list_default_fields(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    ref = reference_lines("gnt-instance_list.txt")
    names = [line.split()[0] for line in ref[1:]]
    cluster.query_data["instance"] = [inst(name) for name in names]
    assert run(cluster, "list") == 0
    assert capsys.readouterr().out.splitlines() == ref


def test_paper_list_with_fields(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.query_data["instance"] = [
        inst("firstvm", pnode="node3.project.edu"),
        inst("testvm.project.edu", pnode="node1.project.edu", snodes=["node2.project.edu"]),
    ]
    assert run(cluster, "list", "-o", "name,pnode,snodes,status") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Instance           Primary_node      Secondary_Nodes   Status",
        "firstvm            node3.project.edu                   running",
        "testvm.project.edu node1.project.edu node2.project.edu running",
    ]


def test_list_stopped_instance_and_units(
    cluster: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.query_data["instance"] = [inst("inst1", status="ADMIN_down")]
    rows = cluster.query_data["instance"]
    rows[0].pop("oper_ram")
    cluster.field_defs["instance"]["oper_ram"] = ("Memory", "unit")
    assert run(cluster, "list", "-o", "name,status,oper_ram,be/maxmem", "--units", "m") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["inst1", "ADMIN_down", "?", "?"]


def test_info_requires_names_or_all(
    cluster: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cluster, "info") == 1
    assert "No instance selected." in capsys.readouterr().err
    cluster.job_results[100] = ("success", ["success"], [{}], [])
    assert run(cluster, "info", "--static", "inst1") == 1
    assert cluster.ops == [op.OpInstanceQueryData(instances=["inst1"], static=True)]


def test_console_vnc(cluster: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.query_data["instance"] = [
        inst(
            "testvm",
            console={
                "kind": "vnc",
                "instance": "testvm",
                "host": "node2.project.edu",
                "port": 11003,
                "display": 5103,
            },
        )
    ]
    assert run(cluster, "console", "testvm") == 0
    assert capsys.readouterr().out == (
        "Instance testvm has VNC listening on node2.project.edu:11003 (display 5103),"
        " URL <vnc://node2.project.edu:11003/>\n"
    )
    cluster.query_data["instance"] = [inst("testvm", console=None, oper_state=False)]
    assert run(cluster, "console", "testvm") == 1
    assert "Instance testvm is not running, can't get console" in capsys.readouterr().err


def test_replace_disks_modes(cluster: FakeClient) -> None:
    assert run(cluster, "replace-disks", "-s", "inst1") == 0
    assert run(cluster, "replace-disks", "-n", "node3", "inst1") == 0
    assert [o.mode for o in cluster.ops] == ["replace_on_secondary", "replace_new_secondary"]
    assert run(cluster, "replace-disks", "-s", "-p", "inst1") == 1


def test_tags_and_rename(cluster: FakeClient, answers: Answers) -> None:
    assert run(cluster, "add-tags", "inst1", "web") == 0
    assert cluster.ops == [op.OpTagsSet(kind="instance", name="inst1", tags=["web"])]
    assert run(cluster, "rename", "--no-name-check", "inst1", "inst9") == 1
    assert "please verify that 'inst9' is a FQDN" in answers[0]
