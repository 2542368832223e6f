"""Cluster LUs: query (info shape), modify validation, post-init, master IP,
redist-conf, destroy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib.cluster import ssconf_values, update_ipolicy
from tests.cmdlib.test_cluster_fakes import (
    DOMAIN,
    Env,
    make_config,
    make_env,
    node_uuid,
    run_lu,
)

REFERENCE = Path("/work/shared/reference/ganeti/rapi/client_info.json")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


# -- query -------------------------------------------------------------------------------


def test_query_has_ganeti_shape(env: Env) -> None:
    info = run_lu(env, opcodes.OpClusterQuery())
    if REFERENCE.exists():
        reference = json.loads(REFERENCE.read_text())
        assert set(reference) - set(info) == set()
        for key in ("beparams", "nicparams", "ndparams", "ipolicy", "diskparams"):
            assert type(info[key]) is type(reference[key])
        assert set(info["diskparams"]) == set(reference["diskparams"])
        assert set(info["ndparams"]) == set(reference["ndparams"])
        assert set(info["beparams"]["default"]) == set(reference["beparams"]["default"])
        assert set(info["ipolicy"]) >= set(reference["ipolicy"])
    assert info["name"] == f"cluster.{DOMAIN}"
    assert info["master"] == f"node1.{DOMAIN}"
    assert info["default_hypervisor"] == C.HT_FAKE
    assert info["enabled_hypervisors"] == [C.HT_FAKE]
    # hvparams: every hypervisor's defaults, cluster overrides on top
    assert info["hvparams"]["fake"]["migration_mode"] == "live"
    assert "kvm_path" in info["hvparams"]["kvm"]
    assert info["beparams"]["default"]["maxmem"] == 128
    assert info["nicparams"]["default"] == {"mode": "bridged", "link": "br-man", "vlan": ""}
    assert info["architecture"][0] in ("64bits", "32bits")
    assert info["volume_group_name"] == "xenvg" and info["auto_failover"] is False
    json.dumps(info)  # JSON-able


def test_query_reflects_hvparams_override(env: Env) -> None:
    env.cfg.cluster.hvparams = {"fake": {"migration_mode": "non-live"}}
    info = run_lu(env, opcodes.OpClusterQuery())
    assert info["hvparams"]["fake"]["migration_mode"] == "non-live"


# -- modify ------------------------------------------------------------------------------


def _modify(env: Env, **kwargs: object) -> None:
    run_lu(env, opcodes.OpClusterSetParams(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hvparams": {"fake": {"migration_mode": "sideways"}}}, "Hypervisor parameter"),
        ({"hvparams": {"fake": {"no_such_param": "1"}}}, "unknown parameter"),
        ({"hvparams": {"xen": {"a": "b"}}}, "Unknown hypervisor 'xen'"),
        ({"beparams": {"maxmem": "lots"}}, "Invalid value 'lots' for parameter 'maxmem'"),
        ({"beparams": {"minmem": 1024, "maxmem": 512}}, "Minimum memory"),
        ({"beparams": {"bogus": 1}}, "Unknown backend parameter 'bogus'"),
        ({"ndparams": {"spindle_count": "x"}}, "Invalid value 'x' for node parameter"),
        ({"ndparams": {"nope": 1}}, "Unknown node parameter 'nope'"),
        ({"diskparams": {"drbd": {"resync-rate": "fast"}}}, "drbd disk parameter"),
        ({"diskparams": {"zfs": {}}}, "Invalid disk template 'zfs'"),
        ({"nicparams": {"mode": "tunnel"}}, "Invalid NIC mode 'tunnel'"),
        ({"mac_prefix": "zz:00:00"}, "Invalid MAC address prefix: zz:00:00"),
        ({"candidate_pool_size": 0}, "must be a positive integer"),
        ({"enabled_hypervisors": []}, "at least one member"),
        ({"enabled_hypervisors": ["xen-pvm"]}, "Unknown hypervisor 'xen-pvm'"),
        ({"enabled_disk_templates": ["drbd", "floppy"]}, "Invalid disk template 'floppy'"),
        ({"ipolicy": {"std": {"memory-size": 999999}}}, "min/max/std values for memory-size"),
        ({"ipolicy": {"minmax": [{"min": {"cpu-count": 9}}]}}, "min/max values for cpu-count"),
        ({"ipolicy": {"vcpu-ratio": -1}}, "Invalid value '-1' for ipolicy vcpu-ratio"),
        ({"ipolicy": {"colour": 1}}, "Invalid keys in ipolicy: colour"),
        ({"vg_name": ""}, "Cannot unset volume group"),
    ],
)
def test_modify_rejects_bad_values(env: Env, kwargs: dict[str, object], message: str) -> None:
    before = env.cfg.to_json()
    with pytest.raises(errors.OpPrereqError, match=message):
        _modify(env, **kwargs)
    assert env.cfg.to_json() == before  # nothing changed


def test_modify_refuses_disabling_used_template(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError) as exc:
        _modify(env, enabled_disk_templates=["plain", "file"])
    assert str(exc.value) == (
        "Cannot disable disk template 'drbd', because instance 'inst1.example.com' is using it."
    )


def test_modify_checks_bridge_on_vm_capable_nodes(env: Env) -> None:
    env.rpc.state(f"node2.{DOMAIN}").missing_bridges = ["br-new"]
    with pytest.raises(errors.OpPrereqError, match=r"node2\.example\.com.*Missing bridges br-new"):
        _modify(env, nicparams={"link": "br-new"})
    checked = sorted(n for n, _ in env.rpc.calls_of("bridges_exist"))
    assert checked == [f"node{i}.{DOMAIN}" for i in (1, 2, 3)]
    env.rpc.state(f"node2.{DOMAIN}").missing_bridges = []
    _modify(env, nicparams={"link": "br-new"})
    assert env.cfg.cluster.nicparams["default"]["link"] == "br-new"


def test_modify_applies_values(env: Env) -> None:
    serial = env.cfg.cluster.serial_no
    _modify(
        env,
        hvparams={"fake": {"migration_mode": "non-live"}},
        beparams={"maxmem": "1G", "minmem": "256M"},
        ndparams={"spindle_count": "2"},
        diskparams={"drbd": {"resync-rate": "1000"}},
        ipolicy={"std": {"memory-size": 256}, "vcpu-ratio": 8},
        candidate_pool_size=5,
        max_running_jobs=7,
        mac_prefix="AA:BB:CC",
        auto_failover=True,
        hidden_os=[["add", "lenny"], ["add", "lenny"], ["remove", "etch"]],
    )
    cluster = env.cfg.cluster
    assert cluster.serial_no == serial + 1
    assert cluster.hvparams["fake"] == {"migration_mode": "non-live"}
    assert cluster.beparams["default"] == {"maxmem": 1024, "minmem": 256}
    assert cluster.ndparams == {"spindle_count": 2}
    assert cluster.diskparams["drbd"] == {"resync-rate": 1000}
    assert cluster.ipolicy["std"]["memory-size"] == 256 and cluster.ipolicy["vcpu-ratio"] == 8.0
    assert (cluster.candidate_pool_size, cluster.max_running_jobs) == (5, 7)
    assert cluster.mac_prefix == "aa:bb:cc" and cluster.auto_failover is True
    assert cluster.hidden_os == ["lenny"]
    assert "OS lenny already in hidden OS list, ignoring" in env.feedback
    assert "OS etch not found in hidden OS list, ignoring" in env.feedback
    # ssconf refreshed on every node
    assert len(env.rpc.calls_of("write_ssconf_files")) == 3
    # "default" resets a hypervisor parameter
    _modify(env, hvparams={"fake": {"migration_mode": "default"}})
    assert env.cfg.cluster.hvparams["fake"] == {}


def test_modify_master_netdev_moves_master_ip(env: Env) -> None:
    _modify(env, master_netdev="br-new")
    calls = [(c, n, a) for c, n, a in env.rpc.calls if c.startswith("master_ip")]
    assert calls == [
        ("master_ip_deactivate", f"node1.{DOMAIN}", ("192.0.2.254", 24, "br-man")),
        ("master_ip_activate", f"node1.{DOMAIN}", ("192.0.2.254", 24, "br-new")),
    ]
    assert "Changing master_netdev from br-man to br-new" in env.feedback
    assert env.cfg.cluster.master_netdev == "br-new"


def test_modify_vg_same_value_feedback(env: Env) -> None:
    _modify(env, vg_name="xenvg")
    assert "Cluster LVM configuration already in desired state, not changing" in env.feedback


def test_update_ipolicy_keeps_bounds() -> None:
    new = update_ipolicy({}, {"minmax": [{"max": {"memory-size": 4096}}]})
    assert new["minmax"][0]["max"]["memory-size"] == 4096
    assert new["minmax"][0]["min"] == dict(C.ISPECS_MIN)


# -- post-init, master IP, redist, destroy --------------------------------------------


def test_post_init_activates_master_ip_and_writes_ssconf(env: Env) -> None:
    assert run_lu(env, opcodes.OpClusterPostInit()) is True
    assert env.rpc.calls_of("master_ip_activate") == [
        (f"node1.{DOMAIN}", ("192.0.2.254", 24, "br-man"))
    ]
    for i in (1, 2, 3):
        ssconf = env.rpc.state(f"node{i}.{DOMAIN}").ssconf
        assert ssconf["cluster_name"] == f"cluster.{DOMAIN}"
        assert ssconf["master_node"] == f"node1.{DOMAIN}"
        assert ssconf["node_primary_ips"].splitlines()[1] == f"node2.{DOMAIN} 192.0.2.2"
        assert ssconf["instance_list"] == f"inst1.{DOMAIN}\ninst2.{DOMAIN}"


def test_post_init_survives_dead_node(env: Env) -> None:
    env.rpc.dead.add(f"node3.{DOMAIN}")
    assert run_lu(env, opcodes.OpClusterPostInit()) is True
    assert any(
        "Could not update the ssconf files on node node3.example.com" in ln for ln in env.feedback
    )


def test_ssconf_values_offline_and_candidates(env: Env) -> None:
    node = env.cfg.nodes[node_uuid(3)]
    node.offline, node.master_candidate = True, False
    values = ssconf_values(env.cfg)
    assert values["offline_nodes"] == f"node3.{DOMAIN}"
    assert values["online_nodes"].splitlines() == [f"node1.{DOMAIN}", f"node2.{DOMAIN}"]
    assert values["master_candidates_ips"] == "192.0.2.1\n192.0.2.2"
    assert values["hvparams_fake"] == "migration_mode=live" or "migration_mode=live" in (
        values["hvparams_fake"].splitlines()
    )


def test_master_ip_activate_and_deactivate(env: Env) -> None:
    run_lu(env, opcodes.OpClusterActivateMasterIp())
    run_lu(env, opcodes.OpClusterDeactivateMasterIp())
    assert [c for c, _, _ in env.rpc.calls] == ["master_ip_activate", "master_ip_deactivate"]
    env.rpc.fail["master_ip_activate"] = "RTNETLINK answers: No such device"
    with pytest.raises(
        errors.OpExecError,
        match="Could not activate the master IP: RTNETLINK answers: No such device",
    ):
        run_lu(env, opcodes.OpClusterActivateMasterIp())


def test_redist_conf_pushes_config_and_ssconf(env: Env) -> None:
    pushed: list[int] = []

    class Distributor:
        async def upload_config(self, nodes: list, config_json: str, serial: int) -> dict:  # type: ignore[type-arg]
            pushed.append(serial)
            return {n.uuid: None for n in nodes}

    env.cfg.set_distributor(Distributor())
    run_lu(env, opcodes.OpClusterRedistConf())
    assert pushed == [env.cfg.serial_no]
    assert len(env.rpc.calls_of("write_ssconf_files")) == 3


def test_destroy_refuses_with_nodes_or_instances(tmp_path: Path) -> None:
    env = make_env(tmp_path / "a")
    with pytest.raises(
        errors.OpPrereqError, match=r"^There are still 2 node\(s\) in this cluster\.$"
    ):
        run_lu(env, opcodes.OpClusterDestroy())
    data = make_config(1, instances=False)
    env = make_env(tmp_path / "b", data)
    env.cfg.data.instances["x"] = make_config().instances["uuid-inst1"]
    with pytest.raises(
        errors.OpPrereqError, match=r"^There are still 1 instance\(s\) in this cluster\.$"
    ):
        run_lu(env, opcodes.OpClusterDestroy())


def test_destroy_last_node(tmp_path: Path) -> None:
    env = make_env(tmp_path, make_config(1, instances=False))
    assert run_lu(env, opcodes.OpClusterDestroy()) == node_uuid(1)
    assert env.rpc.calls_of("master_ip_deactivate") == [
        (f"node1.{DOMAIN}", ("192.0.2.254", 24, "br-man"))
    ]
