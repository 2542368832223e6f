"""The kvm parameter table: Ganeti 3.0's names, defaults and checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.errors import HypervisorError
from corral.hypervisor import kvm_params, params
from corral.hypervisor.kvm import KvmHypervisor

REFERENCE = Path("/work/shared/reference/ganeti/rapi/curl_info.json")


def check(**updates: Any) -> None:
    """Convert CLI-style values like the CLI layer will, then syntax-check."""
    hv = params.fill(kvm_params.PARAMETERS, updates)
    KvmHypervisor.check_parameter_syntax(hv)


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference outputs not available")
def test_names_and_defaults_match_ganeti_3_0_2() -> None:
    ganeti = json.loads(REFERENCE.read_text())["hvparams"]["kvm"]
    assert KvmHypervisor.defaults() == ganeti


def test_defaults_pass() -> None:
    KvmHypervisor.check_parameter_syntax(KvmHypervisor.defaults())


def test_paper_lines_validate() -> None:
    # gnt-cluster init ... -H kvm:kernel_path=,initrd_path=,vnc_bind_address=0.0.0.0
    check(kernel_path="", initrd_path="", vnc_bind_address="0.0.0.0")
    # gnt-instance start -H boot_order=cdrom,cdrom_image_path=/iso/debian.iso
    check(
        kernel_path="", boot_order="cdrom", cdrom_image_path="/iso/debian-7.9.0-amd64-netinst.iso"
    )


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"boot_order": "foo"}, "Parameter 'boot_order' fails syntax check: The value must be one"),
        ({"vnc_bind_address": "notanip"}, "VNC: The vnc_bind_address parameter must be either"),
        ({"nic_type": "virtio"}, "Parameter 'nic_type' fails syntax check"),
        ({"disk_cache": ""}, "Parameter 'disk_cache' is required but is currently not defined"),
        ({"kernel_path": "boot/vmlinuz"}, "must be an absolute normalized path"),
        ({"cdrom_image_path": "x.iso"}, "must be an absolute normalized path or a URL"),
        ({"boot_order": "cdrom"}, "Cannot boot from cdrom without an ISO path"),
        ({"root_path": ""}, "Need a root partition"),
        ({"serial_speed": 1234}, "Invalid serial console speed"),
        ({"migration_port": 70000}, "invalid port number"),
        ({"cpu_mask": "0-x"}, "Multiple CPU mask definition is not well-formed"),
        ({"cpu_cores": -1}, "cannot be negative"),
        ({"virtio_net_queues": 9}, "invalid number of queues"),
        ({"migration_mode": "teleport"}, "invalid migration mode"),
        ({"security_model": "user"}, "A security domain"),
        ({"security_domain": "nobody"}, "Cannot have a security domain"),
        ({"spice_use_tls": True}, "SPICE: spice_use_tls requires spice_bind"),
        (
            {"spice_bind": "127.0.0.1", "vnc_bind_address": "127.0.0.1"},
            "Both SPICE and VNC are configured",
        ),
        ({"spice_bind": "::1", "spice_ip_version": 4}, "SPICE: Got an IPv6 address"),
        ({"vnc_x509_verify": True}, "vnc_x509_path must be defined"),
    ],
)
def test_bad_values(updates: dict[str, Any], message: str) -> None:
    with pytest.raises(HypervisorError) as err:
        check(**updates)
    assert message in str(err.value)


def test_unknown_parameter() -> None:
    with pytest.raises(HypervisorError, match="Parameter 'kernel_pth' is not supported"):
        KvmHypervisor.check_parameter_syntax({**KvmHypervisor.defaults(), "kernel_pth": ""})


@pytest.mark.parametrize(
    "updates",
    [
        {"cpu_mask": "0-1:2:all"},
        {"vnc_bind_address": "lo"},
        {"vnc_bind_address": "::1"},
        {"vnc_bind_address": "/var/run/vnc"},
        {"cdrom_image_path": "http://example.com/x.iso", "boot_order": "cdrom"},
        {"spice_bind": "127.0.0.1", "spice_ip_version": 4, "spice_use_tls": True},
        {"security_model": "user", "security_domain": "nobody"},
        {"serial_console": False, "serial_speed": 1234},
        {"usb_mouse": "tablet", "disk_type": "scsi-hd", "kvm_flag": "enabled"},
    ],
)
def test_good_values(updates: dict[str, Any]) -> None:
    check(**updates)


def test_node_checks(tmp_path: Path) -> None:
    hv = KvmHypervisor.defaults()
    iso = tmp_path / "x.iso"
    hv.update(kernel_path="", kvm_path="/bin/sh", cdrom_image_path=str(iso))
    with pytest.raises(HypervisorError, match="cdrom_image_path' fails validation: not found"):
        params.check_on_node(kvm_params.PARAMETERS, hv)
    iso.write_bytes(b"")
    params.check_on_node(kvm_params.PARAMETERS, hv)
    hv["mem_path"] = str(iso)
    with pytest.raises(HypervisorError, match="not found or not a directory"):
        params.check_on_node(kvm_params.PARAMETERS, hv)
