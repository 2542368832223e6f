"""gnt-cluster: parsing of the paper's commands, printers against Ganeti 3.0.2."""

from __future__ import annotations

import argparse
import sys
import time
import types
from typing import Any

import pytest

from corral import constants as C
from corral import errors
from corral import opcodes as op
from corral.cli import gnt_cluster
from corral.cli._cluster_build import build_init_params, build_set_params_op
from corral.cli._cluster_info import format_cluster_info, format_version
from corral.cli._generic_info import format_generic_info
from corral.cli._init_params import InitParams
from corral.cli._util import parse_command

from .conftest import FakeClient, load_json, reference_lines


def parse(line: str) -> argparse.Namespace:
    return parse_command("gnt-cluster", gnt_cluster.commands, line.split())[1]


def test_paper_init() -> None:
    params, notes = build_init_params(
        parse(
            "init --master-netdev=br-man --enabled-hypervisors=kvm -N link=br-public"
            " --vg-name ganeti cluster.project.edu"
        )
    )
    assert notes == []
    assert params.cluster_name == "cluster.project.edu"
    assert params.master_netdev == "br-man"
    assert params.enabled_hypervisors == ["kvm"]
    assert params.nicparams == {"mode": "bridged", "link": "br-public", "vlan": ""}
    assert params.vg_name == "ganeti"
    assert params.enabled_disk_templates == ["drbd", "plain"]
    assert params.drbd_helper == "/bin/true"
    assert params.beparams == C.BEC_DEFAULTS
    assert params.candidate_pool_size == 10
    assert params.ipolicy["minmax"][0]["max"]["memory-size"] == 32768


def test_init_defaults_and_options() -> None:
    params, _ = build_init_params(
        parse(
            "init --enabled-disk-templates=file,diskless -B maxmem=1G -H kvm:acpi=false"
            " -C 3 --auto-failover yes -s 10.0.0.1 --ipolicy-vcpu-ratio 8 c.example"
        )
    )
    assert params.vg_name is None and params.drbd_helper is None
    assert params.master_netdev == C.DEFAULT_BRIDGE
    assert params.beparams["maxmem"] == 1024
    assert params.hvparams == {"kvm": {"acpi": "false"}}
    assert params.candidate_pool_size == 3
    assert params.auto_failover is True
    assert params.secondary_ip == "10.0.0.1"
    assert params.ipolicy["vcpu-ratio"] == 8.0


def test_init_lvm_templates_need_a_volume_group() -> None:
    with pytest.raises(errors.OpPrereqError, match="vg name not set"):
        build_init_params(parse("init --vg-name= c.example"))
    params, notes = build_init_params(
        parse("init --enabled-disk-templates=file --vg-name=ganeti c.example")
    )
    assert params.vg_name == "ganeti" and "did not enable any disk template" in notes[0]


def test_init_calls_bootstrap_then_post_init(
    monkeypatch: pytest.MonkeyPatch, client: FakeClient
) -> None:
    seen: list[InitParams] = []
    fake = types.ModuleType("corral.cli.bootstrap")
    fake.init_cluster = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.cli.bootstrap", fake)
    from corral.cli._util import run_main

    assert run_main("gnt-cluster", gnt_cluster.commands, ["init", "c.example"], client) == 0
    assert seen[0].cluster_name == "c.example"
    assert client.ops == [op.OpClusterPostInit()]


def test_paper_modify_hypervisor_parameters() -> None:
    set_op, notes = build_set_params_op(
        parse("modify -H kvm:kernel_path=,initrd_path=,vnc_bind_address=0.0.0.0")
    )
    assert notes == []
    assert set_op == op.OpClusterSetParams(
        hvparams={"kvm": {"kernel_path": "", "initrd_path": "", "vnc_bind_address": "0.0.0.0"}}
    )


def test_modify_other_parameters() -> None:
    set_op, _ = build_set_params_op(
        parse(
            "modify -B maxmem=512M -N link=br0 --enabled-hypervisors=kvm,fake"
            " --enabled-disk-templates=drbd,plain -C 5 -I hail --vg-name ganeti"
            " --auto-failover no --ipolicy-bounds-specs"
            " min:memory-size=128M,cpu-count=1/max:memory-size=4G,cpu-count=4"
        )
    )
    assert set_op.beparams == {"maxmem": 512}
    assert set_op.nicparams == {"link": "br0"}
    assert set_op.enabled_hypervisors == ["kvm", "fake"]
    assert set_op.enabled_disk_templates == ["drbd", "plain"]
    assert set_op.candidate_pool_size == 5
    assert set_op.default_iallocator == "hail"
    assert set_op.vg_name == "ganeti"
    assert set_op.auto_failover is False
    assert set_op.ipolicy == {
        "minmax": [
            {
                "min": {"memory-size": 128, "cpu-count": 1},
                "max": {"memory-size": 4096, "cpu-count": 4},
            }
        ]
    }


def test_modify_without_parameters(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    from corral.cli._util import run_main

    assert run_main("gnt-cluster", gnt_cluster.commands, ["modify"], client) == 1
    assert "Please give at least one of the parameters." in capsys.readouterr().err
    assert client.jobs == []


def test_info_matches_ganeti_output() -> None:
    info = load_json("client_info.json")
    info["mtime"] = 1795587219.5  # the RAPI dump was taken after a later modification
    text = format_generic_info(format_cluster_info(info))
    assert text.splitlines() == reference_lines("gnt-cluster_info.txt")


def test_version_matches_ganeti_output() -> None:
    info = load_json("client_info.json")
    assert format_version(info) == reference_lines("gnt-cluster_version.txt")


def _verify_client() -> FakeClient:
    client = FakeClient()
    # job 100 = OpClusterVerify itself, returning the two jobs it submitted
    client.job_results[100] = ("success", ["success"], [{"jobs": [[True, 9], [True, 10]]}], [])
    client.job_results[9] = (
        "success",
        ["success"],
        [True],
        [
            "* Verifying cluster config",
            "* Verifying cluster certificate files",
        ],
    )
    client.job_results[10] = (
        "success",
        ["success"],
        [False],
        [
            "* Verifying group 'default'",
            "  - ERROR: node node1.example.test: node setup error: something",
        ],
    )
    return client


def test_verify_follows_both_jobs_and_fails_on_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from corral.cli._util import run_main

    client = _verify_client()
    assert run_main("gnt-cluster", gnt_cluster.commands, ["verify"], client) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Submitted jobs 9, 10"
    assert out[1] == "Waiting for job 9 ..."
    assert out[2] == "Wed Nov 25 06:15:04 2026 * Verifying cluster config"
    assert out[4] == "Waiting for job 10 ..."
    assert out[6].endswith("  - ERROR: node node1.example.test: node setup error: something")
    assert isinstance(client.jobs[0][0], op.OpClusterVerify)


def test_verify_succeeds_when_all_groups_verify() -> None:
    from corral.cli._util import run_main

    client = _verify_client()
    client.job_results[10] = ("success", ["success"], [True], [])
    assert (
        run_main(
            "gnt-cluster", gnt_cluster.commands, ["verify", "--ignore-errors=ENODESETUP"], client
        )
        == 0
    )
    assert client.jobs[0][0].ignore_errors == ["ENODESETUP"]


def test_destroy_needs_yes_do_it(client: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    from corral.cli._util import run_main

    assert run_main("gnt-cluster", gnt_cluster.commands, ["destroy"], client) == 1
    assert "supply the --yes-do-it option" in capsys.readouterr().err


def test_copyfile_reports_failures(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    client: FakeClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from corral.cli._util import run_main

    calls: list[tuple[str, list[str]]] = []

    def copy_file(path: str, nodes: list[str]) -> list[tuple[str, str]]:
        calls.append((path, nodes))
        return [("node3", "connection refused")]

    fake = types.ModuleType("corral.cli.bootstrap")
    fake.copy_file = copy_file  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.cli.bootstrap", fake)
    target = tmp_path / "cd.conf"
    target.write_text("CDINSTALL=yes\n")
    assert run_main("gnt-cluster", gnt_cluster.commands, ["copyfile", str(target)], client) == 1
    assert calls == [(str(target), [])]
    assert "to node node3 failed: connection refused" in capsys.readouterr().err
    assert (
        run_main(
            "gnt-cluster", gnt_cluster.commands, ["copyfile", str(tmp_path / "missing")], client
        )
        == 1
    )


def test_queue_and_watcher_switches(capsys: pytest.CaptureFixture[str]) -> None:
    from corral.cli._util import run_main
    from tests.cli.conftest import FakeClient

    client = FakeClient()

    def run(*argv: str) -> tuple[int, str]:
        code = run_main("gnt-cluster", gnt_cluster.commands, list(argv), client)
        out, err = capsys.readouterr()
        return code, out + err

    assert run("queue", "drain") == (0, "")
    assert run("queue", "info") == (0, "The drain flag is set\n")
    run("queue", "undrain")
    assert run("queue", "info") == (0, "The drain flag is unset\n")
    code, out = run("watcher", "pause", "1h")
    assert code == 0 and out.startswith("The watcher is paused until ")
    assert client.config_values["watcher_pause"] > time.time() + 3500
    assert run("watcher", "info")[1] == out
    assert run("watcher", "continue") == (0, "The watcher is no longer paused.\n")
    assert run("watcher", "info") == (0, "The watcher is not paused.\n")
    assert run("watcher", "pause")[0] == 1
    assert "Missing pause duration" in run("watcher", "pause")[1]
    assert "Command 'bogus' is not valid." in run("queue", "bogus")[1]
