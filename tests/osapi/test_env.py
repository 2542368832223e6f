"""The OS script environment, key by key against real Ganeti 3.0.2 output."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import objects
from corral.osapi import (
    DiskEnv,
    NicEnv,
    OsDefinition,
    build_env,
    core_env,
    load_os,
    log_file_name,
    run_script,
)
from tests.osapi.conftest import MakeOs

REFERENCE = Path("/work/shared/reference/ganeti/cli-outputs/os_create_script_env_inst1.txt")
DISK_PATH = "/srv/ganeti/file-storage/inst1/c7b22c78-12df-4bdb-b931-b6ebd4a43198.file.disk0"
#: What the reference OS's create script printed (it filters the environment)
PRINTED = ("OS_", "INSTANCE_", "DISK_", "NIC_", "DEBUG_LEVEL", "HYPERVISOR")

PRINT_ENV_CREATE = """#!/bin/sh
echo "noop OS: create called"
env | grep -E '^(OS_|INSTANCE_|DISK_|NIC_|DEBUG_LEVEL|HYPERVISOR)' | sort
"""


def _reference_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key] = value
    return env


def _inst1() -> objects.Instance:
    """inst1 as Ganeti's RPC layer sent it (beparams/hvparams filled)."""
    disk = objects.Disk(
        uuid="76b0b581-1647-4752-97d7-2af65a90a9fd",
        dev_type=C.LD_FILE,
        size=1024,
        mode=C.DISK_RDWR,
        logical_id=["loop", DISK_PATH],
        iv_name="disk/0",
    )
    nic = objects.NIC(
        uuid="4a29f225-5a51-44d5-982a-ee02d271ef26",
        mac="aa:00:00:f6:5b:c8",
        nicparams={"mode": "bridged", "link": "gnt-br0"},
    )
    return objects.Instance(
        name="inst1",
        uuid="2587c4f1-6ace-4516-9871-1b32240fb943",
        primary_node="4c7251f7-5b47-41d2-836a-99852ed41a89",
        os="noop+default",
        hypervisor=C.HT_FAKE,
        hvparams={"migration_mode": "live"},
        beparams={
            "always_failover": False,
            "auto_balance": True,
            "maxmem": 512,
            "minmem": 256,
            "spindle_use": 1,
            "vcpus": 1,
        },
        disks=[disk],
        nics=[nic],
        disk_template=C.DT_FILE,
        ctime=1795587304.562973,
        mtime=1795587304.628372,
    )


def _env_for(os_dir: Path, inst: objects.Instance, **kwargs: object) -> dict[str, str]:
    os_def = load_os("noop", str(os_dir))
    disks = [DiskEnv.from_disk(d, DISK_PATH) for d in inst.disks]
    nics = [NicEnv.from_nic(n) for n in inst.nics]
    return build_env(os_def, "default", inst, disks, nics, inst.hypervisor, {}, 0, None, **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference outputs not available")
def test_env_matches_ganeti_reference_key_by_key(make_os: MakeOs) -> None:
    os_dir = make_os("noop", (20,), variants=["default", "minimal"])
    env = _env_for(os_dir, _inst1())
    printed = {k: v for k, v in env.items() if k.startswith(PRINTED)}
    reference = _reference_env()
    for key in sorted(set(reference) | set(printed)):
        assert printed.get(key) == reference.get(key), key
    # not printed by the reference script but always set by Ganeti
    assert env["PATH"] == "/sbin:/bin:/usr/sbin:/usr/bin"
    assert set(env) - set(printed) == {"PATH"}


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference outputs not available")
def test_create_script_sees_the_reference_environment(make_os: MakeOs, tmp_path: Path) -> None:
    os_dir = make_os(
        "noop", (20,), variants=["default", "minimal"], scripts={"create": PRINT_ENV_CREATE}
    )
    os_def = load_os("noop", str(os_dir))
    env = _env_for(os_dir, _inst1())
    log = log_file_name(str(tmp_path / "log" / "os"), "add", "noop+default", "inst1")
    run_script(os_def, "create", env, log, timeout=30)
    expected = [
        line for line in REFERENCE.read_text().splitlines() if line and not line.startswith("#")
    ]
    assert Path(log).read_text().splitlines() == expected


def test_optional_disk_and_nic_variables() -> None:
    inst = _inst1()
    inst.hvparams = {"disk_type": "paravirtual", "nic_type": "e1000"}
    inst.disks[0].name = "root"
    inst.disks[0].dev_type = C.LD_DRBD8
    net = objects.Network(
        name="public",
        uuid="net-1",
        network="192.0.2.0/24",
        gateway="192.0.2.1",
        tags=["a", "b"],
    )
    nics = [
        NicEnv.from_nic(
            objects.NIC(uuid="n0", mac="aa:00:00:00:00:01", name="eth0", ip="192.0.2.10"),
            {"mode": "routed", "link": "100"},
            net,
        ),
        NicEnv.from_nic(objects.NIC(uuid="n1", mac="aa:00:00:00:00:02"), {"mode": "openvswitch"}),
    ]
    disks = [DiskEnv.from_disk(inst.disks[0], "/dev/drbd0", uri="nbd://node2:11000")]
    os_def = OsDefinition(name="noop", path="/x", status=True, api_versions=[10])
    env = build_env(
        os_def, None, inst, disks, nics, "kvm", {"root-size": 8, "dhcp": "no"}, 1, {"X": "y"}
    )
    assert env["OS_API_VERSION"] == "10"
    assert env["OS_VARIANT"] == ""
    assert env["DEBUG_LEVEL"] == "1"
    assert env["HYPERVISOR"] == "kvm"
    assert env["OSP_ROOT_SIZE"] == "8" and env["OSP_DHCP"] == "no"
    assert env["DISK_0_NAME"] == "root"
    assert env["DISK_0_PATH"] == "/dev/drbd0"
    assert env["DISK_0_URI"] == "nbd://node2:11000"
    assert env["DISK_0_BACKEND_TYPE"] == "block"
    assert env["DISK_0_FRONTEND_TYPE"] == "paravirtual"
    assert env["NIC_0_NAME"] == "eth0" and env["NIC_0_IP"] == "192.0.2.10"
    assert env["NIC_0_MODE"] == "routed" and env["NIC_0_LINK"] == "100"
    assert "NIC_0_BRIDGE" not in env
    assert env["NIC_0_NETWORK_NAME"] == "public"
    assert env["NIC_0_NETWORK_SUBNET"] == "192.0.2.0/24"
    assert env["NIC_0_NETWORK_GATEWAY"] == "192.0.2.1"
    assert env["NIC_0_NETWORK_TAGS"] == "a b"
    assert "NIC_0_NETWORK_SUBNET6" not in env
    assert env["NIC_0_FRONTEND_TYPE"] == "e1000"
    assert env["NIC_1_MODE"] == "openvswitch"
    assert "NIC_1_LINK" not in env and "NIC_1_IP" not in env
    assert env["NIC_COUNT"] == "2"
    assert env["X"] == "y"
    assert env["INSTANCE_HV_disk_type"] == "paravirtual"


def test_secondary_nodes_of_a_drbd_instance() -> None:
    inst = _inst1()
    inst.disks[0].dev_type = C.LD_DRBD8
    inst.disks[0].logical_id = [inst.primary_node, "node-b", 11000, 0, 0, "s"]
    os_def = OsDefinition(name="noop", path="/x", status=True, api_versions=[20])
    env = build_env(os_def, None, inst, [], [], "fake", {}, 0, None)
    assert env["INSTANCE_SECONDARY_NODES"] == "node-b"
    assert env["DISK_COUNT"] == "0"


def test_variant_defaults_to_first_and_image_config_dir(make_os: MakeOs) -> None:
    os_dir = make_os("noop", (20,), variants=["default", "minimal"])
    os_def = load_os("noop", str(os_dir))
    inst = _inst1()
    assert core_env(os_def, None, {})["OS_VARIANT"] == "default"
    assert core_env(os_def, "minimal", {})["OS_VARIANT"] == "minimal"
    env = build_env(
        os_def, "minimal", inst, [], [], "fake", {}, 0, None, image_config_dir="/r/instance-image"
    )
    assert env["IMAGE_CONFIG_DIR"] == "/r/instance-image"
    default = build_env(
        os_def,
        "minimal",
        inst,
        [],
        [],
        "fake",
        {},
        image_config_dir="/etc/ganeti/instance-image",
    )
    assert "IMAGE_CONFIG_DIR" not in default


def test_log_file_name_is_ganetis() -> None:
    name = log_file_name("/var/log/corral/os", "add", "noop+default", "inst1", when=0)
    assert name.startswith("/var/log/corral/os/add-noop+default-inst1-")
    stamp = name.removeprefix("/var/log/corral/os/add-noop+default-inst1-")
    assert len(stamp) == len("2026-11-25_06_15_04.log") and stamp.endswith(".log")
