"""LUInstanceSetParams: parameter changes, NIC changes, hotplug and rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral import constants as C
from corral import errors, objects, opcodes
from corral.cmdlib.params import fill_nicparams
from tests.cmdlib.instance_fakes import InstanceRpc, create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN, Env


@pytest.fixture
def env_rpc(tmp_path: Path) -> tuple[Env, InstanceRpc]:
    env, rpc = instance_env(tmp_path)
    run_op(env, create_op("vm1"))
    rpc.handlers["hotplug_supported"] = lambda node, name, hv: None
    rpc.handlers["hotplug_device"] = lambda node, *args: None
    rpc.calls.clear()
    return env, rpc


def _inst(env: Env) -> objects.Instance:
    inst = env.cfg.get_instance_by_name("vm1")
    assert inst is not None
    return inst


def _modify(env: Env, **kw: Any) -> Any:
    return run_op(env, opcodes.OpInstanceSetParams(instance_name="vm1", **kw))


def test_beparams(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    result = _modify(env, beparams={C.BE_MAXMEM: "512M", C.BE_MINMEM: "256M"})
    assert result == [["be/maxmem", 512], ["be/minmem", 256]]
    assert _inst(env).beparams == {C.BE_MAXMEM: 512, C.BE_MINMEM: 256}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"beparams": {C.BE_MAXMEM: "abc"}}, "Invalid value 'abc' for parameter 'maxmem'"),
        ({"beparams": {C.BE_MINMEM: 1024}}, "Minimum memory (1024) is bigger than maximum"),
        ({"beparams": {"nosuch": 1}}, "Unknown backend parameter 'nosuch'"),
        ({"hvparams": {"boot_order": "foo"}}, "Parameter 'boot_order' fails syntax check"),
        ({"hvparams": {"nosuch": 1}}, "Unknown hypervisor parameter(s): nosuch"),
        ({}, "No changes submitted"),
        ({"nics": [["modify", 0, {"bogus": 1}]]}, "Invalid NIC parameter(s): bogus"),
        ({"offline": True}, "Instance vm1 is running, can't mark it offline"),
    ],
)
def test_bad_changes_leave_config(
    env_rpc: tuple[Env, InstanceRpc], kw: dict[str, Any], message: str
) -> None:
    env, _rpc = env_rpc
    before = env.cfg.to_json()
    with pytest.raises(errors.OpPrereqError) as info:
        _modify(env, **kw)
    assert message in str(info.value)
    assert env.cfg.to_json() == before


def test_nic_link_change_hotplugged(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    result = _modify(env, nics=[["modify", 0, {"link": "br-public"}]])
    assert ["nic.link/0", "br-public"] in result
    assert ["nic/0", "hotplug:modify"] in result
    assert _inst(env).nics[0].nicparams[C.NIC_LINK] == "br-public"
    assert [args[2] for _n, args in rpc.calls_of("hotplug_device")] == ["modify"]


def test_missing_bridge_changes_nothing(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    before = env.cfg.to_json()
    for nics in ([["modify", 0, {"link": "nosuchbr"}]], [["add", -1, {"link": "nosuchbr"}]]):
        with pytest.raises(errors.OpPrereqError) as info:
            _modify(env, nics=nics)
        assert str(info.value) == (
            f"Error checking bridges on node 'node1.{DOMAIN}': Missing bridges nosuchbr"
        )
        assert info.value.ecode == "environment_error"
    assert env.cfg.to_json() == before
    # the in-memory objects were not touched either (the LU works on a copy)
    assert _inst(env).nics[0].nicparams == {}
    assert len(_inst(env).nics) == 1
    assert rpc.calls_of("hotplug_device") == []


def test_hotplug_failure_restores_config(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc

    def broken(node: str, *args: Any) -> None:
        raise errors.HypervisorError("QMP said no")

    rpc.handlers["hotplug_device"] = broken
    with pytest.raises(errors.OpExecError, match="Hotplug of nic/1 failed: QMP said no"):
        _modify(env, nics=[["add", -1, {"link": "br-public"}]])
    assert len(_inst(env).nics) == 1


def test_failed_hotplug_undoes_the_earlier_ones(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc
    seen: list[tuple[str, int, str | None]] = []

    def third_fails(node: str, *args: Any) -> None:
        _name, _hv, action, _kind, device, idx = args
        seen.append((action, idx, device.get("link")))
        if len(seen) == 3:
            raise errors.HypervisorError("QMP said no")

    rpc.handlers["hotplug_device"] = third_fails
    before = _inst(env).nics
    with pytest.raises(errors.OpExecError, match="Hotplug of nic/2 failed: QMP said no"):
        _modify(
            env,
            nics=[
                ["modify", 0, {"link": "br-public"}],
                ["add", -1, {"link": "br-public"}],
                ["add", -1, {}],
            ],
        )
    # the second add failed; the first add is removed, the modify reverted, newest first
    assert [s[:2] for s in seen] == [
        ("modify", 0), ("add", 1), ("add", 2), ("remove", 1), ("modify", 0)
    ]  # fmt: skip
    assert seen[0][2] == "br-public"
    assert seen[-1][2] == fill_nicparams(env.cfg.cluster, {})[C.NIC_LINK]
    assert _inst(env).nics == before


def test_hotplug_not_supported(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, rpc = env_rpc

    def unsupported(node: str, name: str, hv: str) -> None:
        raise errors.HypervisorError("Hotplug is not supported by this hypervisor")

    rpc.handlers["hotplug_supported"] = unsupported
    with pytest.raises(errors.OpPrereqError, match="Hotplug is not possible"):
        _modify(env, nics=[["add", -1, {}]])
    assert len(_inst(env).nics) == 1
    result = _modify(env, nics=[["add", -1, {}]], hotplug=False, hotplug_if_possible=True)
    assert result[0][0] == "nic.1"
    assert len(_inst(env).nics) == 2


def test_nic_remove_and_offline(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    _modify(env, nics=[["remove", 0, {}]], hotplug=False)
    assert _inst(env).nics == []
    run_op(env, opcodes.OpInstanceShutdown(instance_name="vm1"))
    _modify(env, offline=True)
    assert _inst(env).admin_state == C.ADMINST_OFFLINE
    _modify(env, offline=False)
    assert _inst(env).admin_state == C.ADMINST_DOWN


def test_unknown_instance(env_rpc: tuple[Env, InstanceRpc]) -> None:
    env, _rpc = env_rpc
    with pytest.raises(errors.OpPrereqError, match="Instance 'nosuch' not known"):
        run_op(env, opcodes.OpInstanceSetParams(instance_name="nosuch", beparams={"vcpus": 2}))
