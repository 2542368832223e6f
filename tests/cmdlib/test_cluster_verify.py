"""gnt-cluster verify LUs against a fake 3-node cluster (see test_cluster_fakes)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.cluster_verify import check_certificates
from corral.rpc import tls
from tests.cmdlib.test_cluster_fakes import (
    DOMAIN,
    GROUP,
    Env,
    make_config,
    make_env,
    node_uuid,
    problems,
    run_lu,
    run_lu_async,
)

GROUP_PHASES = [
    "* Verifying group 'default'",
    "* Gathering data (3 nodes)",
    "* Gathering information about nodes (3 nodes)",
    "* Gathering disk information (3 nodes)",
    "* Verifying configuration file consistency",
    "* Verifying node status",
    "* Verifying instance status",
    "* Verifying orphan volumes",
    "* Verifying N+1 Memory redundancy",
    "* Other Notes",
    "* Hooks Results",
]


def install_certs(env: Env, *, foreign_ca: bool = False) -> None:
    ca = tls.create_ca(f"cluster.{DOMAIN}")
    signer = tls.create_ca("other") if foreign_ca else ca
    cert, _key, _ = tls.issue_node_cert(signer, f"node1.{DOMAIN}", ["192.0.2.1"])
    Path(env.paths.etc_dir).mkdir(parents=True, exist_ok=True)
    Path(env.paths.ca_cert).write_text(ca[0])
    Path(env.paths.node_cert).write_text(cert)


def verify_group(env: Env, **kwargs: object) -> object:
    return run_lu(env, opcodes.OpClusterVerifyGroup(group_name="default", **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    install_certs(e)
    return e


# -- LUClusterVerify ---------------------------------------------------------------------


def test_verify_submits_config_job_and_one_job_per_group(env: Env) -> None:
    env.cfg.data.nodegroups["uuid-g2"] = objects.NodeGroup(uuid="uuid-g2", name="second")
    op = opcodes.OpClusterVerify(
        error_codes=True, ignore_errors=["ENODEN1"], skip_checks=["nplusone_mem"], verbose=True
    )
    result = run_lu(env, op)
    assert result == {"jobs": [[True, 23], [True, 24], [True, 25]]}
    config_job, group1, group2 = env.submitted
    assert isinstance(config_job[0], opcodes.OpClusterVerifyConfig)
    assert config_job[0].error_codes and config_job[0].ignore_errors == ["ENODEN1"]
    assert [type(j[0]) for j in (group1, group2)] == [opcodes.OpClusterVerifyGroup] * 2
    assert [j[0].group_name for j in (group1, group2)] == ["default", "second"]  # type: ignore[attr-defined]
    assert group1[0].skip_checks == ["nplusone_mem"]  # type: ignore[attr-defined]
    assert group1[0].verbose and group1[0].error_codes  # type: ignore[attr-defined]
    # each group job depends on the config job (relative id, as Ganeti)
    assert group1[0].depends == [[-1, []]] and group2[0].depends == [[-2, []]]


def test_verify_single_group_has_no_config_job(env: Env) -> None:
    result = run_lu(env, opcodes.OpClusterVerify(group_name="default"))
    assert result == {"jobs": [[True, 23]]}
    assert isinstance(env.submitted[0][0], opcodes.OpClusterVerifyGroup)


def test_verify_unknown_group(env: Env) -> None:
    with pytest.raises(Exception, match="Node group 'nope' not found"):
        run_lu(env, opcodes.OpClusterVerify(group_name="nope"))


# -- LUClusterVerifyConfig ---------------------------------------------------------------


def test_verify_config_healthy(env: Env) -> None:
    assert run_lu(env, opcodes.OpClusterVerifyConfig()) is True
    assert env.feedback == [
        "* Verifying cluster config",
        "* Verifying cluster certificate files",
        "* Verifying hypervisor parameters",
        "* Verifying all nodes belong to an existing group",
    ]
    assert env.locks and all(v == "ALL" for v in env.locks.values())
    assert all(env.shared.values())


def test_verify_config_reports_problems(env: Env) -> None:
    install_certs(env, foreign_ca=True)
    inst = env.cfg.instances["uuid-inst1"]
    inst.hvparams = {"migration_mode": "sideways"}
    env.cfg.nodes[node_uuid(3)].group = "uuid-missing"
    env.cfg._stale[node_uuid(2)] = "Node is unreachable"  # a failed config push
    assert run_lu(env, opcodes.OpClusterVerifyConfig()) is False
    lines = problems(env)
    assert any("node node2.example.com: configuration copy is out of date" in ln for ln in lines)
    assert any(
        ln.startswith("  - ERROR: cluster: Certificate") and "is not signed by the cluster CA" in ln
        for ln in lines
    )
    assert any(
        ln.startswith(
            "  - ERROR: cluster: hypervisor fake parameters syntax check"
            " (source instance inst1.example.com):"
        )
        for ln in lines
    )
    assert (
        "  - ERROR: cluster: the following nodes (and their instances) belong to a non"
        " existing group: node3.example.com (inst2.example.com)"
    ) in lines


def test_verify_config_error_codes_and_ignore(env: Env) -> None:
    Path(env.paths.node_cert).unlink()
    op = opcodes.OpClusterVerifyConfig(error_codes=True)
    assert run_lu(env, op) is False
    (line,) = problems(env)
    assert line.startswith("  - ERROR:ECLUSTERCERT:cluster:None:Can't read certificate file")
    env.feedback.clear()
    op = opcodes.OpClusterVerifyConfig(ignore_errors=["ECLUSTERCERT"])
    assert run_lu(env, op) is True
    assert problems(env)[0].startswith("  - WARNING: cluster: Can't read certificate file")


def test_certificate_expiry_levels(tmp_path: Path) -> None:
    ca = tls.create_ca("c")
    cert, _, _ = tls.issue_node_cert(ca, "n")
    (tmp_path / "ca.pem").write_text(ca[0])
    (tmp_path / "node.pem").write_text(cert)
    ca_path, node_path = str(tmp_path / "ca.pem"), str(tmp_path / "node.pem")
    assert check_certificates(ca_path, node_path) == []
    far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365 * 200)
    found = check_certificates(ca_path, node_path, now=far)
    assert {level for level, _ in found} == {"ERROR"}
    assert all("Certificate is expired" in msg for _, msg in found)


# -- LUClusterVerifyGroup: healthy ---------------------------------------------------------


def test_verify_group_healthy(env: Env) -> None:
    assert verify_group(env) is True
    headers = [ln for ln in env.feedback if ln.startswith("* ")]
    assert headers == GROUP_PHASES
    assert problems(env) == ["  - NOTICE: 1 non-redundant instance(s) found."]
    # one node_verify per node, in one parallel batch; mirror status of active disks
    assert sorted(n for n, _ in env.rpc.calls_of("node_verify")) == [
        f"node{i}.{DOMAIN}" for i in (1, 2, 3)
    ]
    mirror_nodes = sorted(n for n, _ in env.rpc.calls_of("blockdev_getmirrorstatus"))
    assert mirror_nodes == [f"node{i}.{DOMAIN}" for i in (1, 2, 3)]
    hooks = env.rpc.calls_of("run_hooks")
    assert len(hooks) == 3 and hooks[0][1][:2] == ("cluster-verify", "post")
    assert env.locks[1] == ["uuid-inst1", "uuid-inst2"] and env.locks[2] == [GROUP]


def test_verify_group_skip_nplusone(env: Env) -> None:
    assert verify_group(env, skip_checks=["nplusone_mem"]) is True
    assert "* Verifying N+1 Memory redundancy" not in env.feedback


def test_verify_empty_group(tmp_path: Path) -> None:
    data = make_config()
    data.nodegroups["uuid-g2"] = objects.NodeGroup(uuid="uuid-g2", name="empty")
    env = make_env(tmp_path, data)
    assert run_lu(env, opcodes.OpClusterVerifyGroup(group_name="empty")) is True
    assert env.feedback == [
        "* Verifying group 'empty'",
        "* Empty node group, skipping verification",
    ]


# -- LUClusterVerifyGroup: failures ------------------------------------------------------


def test_instance_down(env: Env) -> None:
    env.rpc.state(f"node1.{DOMAIN}").running.clear()
    assert verify_group(env) is False
    assert (
        "  - ERROR: instance inst1.example.com: instance not running on its primary node"
        " node1.example.com"
    ) in problems(env)


def test_instance_down_error_codes(env: Env) -> None:
    env.rpc.state(f"node1.{DOMAIN}").running.clear()
    assert verify_group(env, error_codes=True) is False
    assert (
        "  - ERROR:EINSTANCEDOWN:instance:inst1.example.com:instance not running on its"
        " primary node node1.example.com"
    ) in problems(env)


def test_instance_running_but_marked_down_is_a_warning(env: Env) -> None:
    env.cfg.instances["uuid-inst2"].admin_state = C.ADMINST_DOWN
    assert verify_group(env) is True
    assert (
        "  - WARNING: instance inst2.example.com: instance is running on its primary node"
        " node3.example.com but is marked down"
    ) in problems(env)


def test_instance_on_wrong_node_and_unknown_instance(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").running += [f"inst2.{DOMAIN}", "ghost.example.com"]
    assert verify_group(env) is False
    lines = problems(env)
    assert (
        "  - ERROR: instance inst2.example.com: instance should not run on node node2.example.com"
        in lines
    )
    assert (
        "  - ERROR: node node2.example.com: node is running unknown instance ghost.example.com"
        in lines
    )


def test_orphan_volume_is_a_warning_as_in_ganeti(env: Env) -> None:
    env.rpc.state(f"node3.{DOMAIN}").volumes.append("xenvg/leftover")
    env.rpc.state(f"node3.{DOMAIN}").volumes.append("othervg/notours")
    assert verify_group(env) is True
    lines = problems(env)
    assert "  - WARNING: node node3.example.com: volume xenvg/leftover is unknown" in lines
    assert not any("othervg" in ln for ln in lines)
    env.cfg.cluster.reserved_lvs = ["xenvg/left.*"]
    env.feedback.clear()
    verify_group(env)
    assert not any("leftover" in ln for ln in problems(env))


def test_missing_volume_of_instance(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").volumes.clear()
    assert verify_group(env) is False
    assert any(
        ln.startswith("  - ERROR: instance inst1.example.com: volume xenvg/")
        and ln.endswith("missing on node node2.example.com")
        for ln in problems(env)
    )


def test_nplusone_failure(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").memory_free = 256
    assert verify_group(env) is False
    assert (
        "  - ERROR: node node2.example.com: not enough memory to accomodate instance failovers"
        " should node node1.example.com fail (512MiB needed, 256MiB available)"
    ) in problems(env)
    env.feedback.clear()
    assert verify_group(env, ignore_errors=["ENODEN1"]) is True
    assert problems(env)[0].startswith("  - WARNING: node node2.example.com: not enough memory")


def test_nplusone_ignores_non_auto_balanced(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").memory_free = 256
    env.cfg.instances["uuid-inst1"].beparams[C.BE_AUTO_BALANCE] = False
    assert verify_group(env) is True
    assert "  - NOTICE: 1 non-auto-balanced instance(s) found." in problems(env)


def test_dead_node_is_an_error_not_a_hang(env: Env) -> None:
    env.rpc.dead.add(f"node3.{DOMAIN}")

    async def bounded() -> object:
        return await asyncio.wait_for(
            run_lu_async(env, opcodes.OpClusterVerifyGroup(group_name="default")), timeout=10
        )

    assert asyncio.run(bounded()) is False
    lines = problems(env)
    assert any(
        ln.startswith(
            "  - ERROR: node node3.example.com: while contacting node: Node is unreachable"
        )
        for ln in lines
    )
    assert any("tcp communication with node 'node3.example.com'" in ln for ln in lines)
    # all phases still ran
    assert [ln for ln in env.feedback if ln.startswith("* ")] == GROUP_PHASES


def test_offline_node_is_a_notice(env: Env) -> None:
    node = env.cfg.nodes[node_uuid(3)]
    node.offline = True
    node.master_candidate = False
    env.cfg.instances.pop("uuid-inst2")
    assert verify_group(env, verbose=True) is True
    assert "  - NOTICE: 1 offline node(s) found." in problems(env)
    assert "* Skipping offline node node3.example.com" in env.feedback
    assert f"node3.{DOMAIN}" not in [n for n, _ in env.rpc.calls_of("node_verify")]


def test_degraded_disk(env: Env) -> None:
    st = env.rpc.state(f"node2.{DOMAIN}")
    st.degraded, st.ldisk = True, "faulty"
    assert verify_group(env) is False
    assert (
        "  - ERROR: instance inst1.example.com: disk/0 on node2.example.com is degraded;"
        " local disk state is 'faulty'"
    ) in problems(env)
    env.feedback.clear()
    st.ldisk = "ok"
    assert verify_group(env) is True
    assert any(
        ln.startswith("  - WARNING: instance inst1.example.com: disk/0") for ln in problems(env)
    )


def test_stale_config_copy_on_candidate(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").config_sum = "0" * 64
    assert verify_group(env) is False
    line = next(ln for ln in problems(env) if "different checksums" in ln)
    assert line.startswith(f"  - ERROR: cluster: File {env.paths.config_file} found with 2")
    assert "node2.example.com" in line and "node1.example.com, node3.example.com" in line


def test_node_problems(env: Env) -> None:
    st3 = env.rpc.state(f"node3.{DOMAIN}")
    st3.clock_offset = 400.0
    st3.missing_bridges = ["br-man"]

    def bad_version(node: str, checks: dict[str, object]) -> dict[str, object]:
        out = env.rpc._h_node_verify(node, checks)  # type: ignore[arg-type]
        if node == f"node2.{DOMAIN}":
            out["version"] = [1, "0.0.9"]
            out["hypervisor"] = {"fake": "cannot talk to fake"}
        return out

    env.rpc.handlers["node_verify"] = bad_version
    assert verify_group(env) is False
    lines = problems(env)
    assert (
        "  - WARNING: node node2.example.com: software version mismatch: master"
        f" {C.RELEASE_VERSION}, node 0.0.9"
    ) in lines
    assert (
        "  - ERROR: node node2.example.com: hypervisor fake verify failure: 'cannot talk to fake'"
        in lines
    )
    assert any(
        ln.startswith("  - ERROR: node node3.example.com: Node time diverges by at least")
        for ln in lines
    )
    assert "  - ERROR: node node3.example.com: missing bridges: br-man" in lines


def test_failed_hook_fails_verification(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").hooks = [["10-check", 1, "line one\nline two"]]
    assert verify_group(env) is False
    idx = env.feedback.index("  - ERROR: node node2.example.com: Script 10-check failed, output:")
    assert env.feedback[idx + 1] == "      line one\n      line two"
    assert env.feedback.index("* Hooks Results") < idx


def test_simulate_errors_reports_and_fails(env: Env) -> None:
    assert verify_group(env, debug_simulate_errors=True) is False
    assert len(problems(env)) > 10
