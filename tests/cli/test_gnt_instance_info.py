"""gnt-instance info printer against Ganeti 3.0.2's output and the paper's figures."""

from __future__ import annotations

import copy
from typing import Any

from corral.cli._generic_info import format_generic_info
from corral.cli._instance_info import format_instance_info, vnc_console_info

from .conftest import load_json, reference_lines


def _inst1() -> dict[str, Any]:
    """inst1 as OpInstanceQueryData returned it, rolled back to the time of the
    reference output (before `modify --net` added a second NIC)."""
    job = load_json("client_instance_info_inst1_job.json")
    inst = copy.deepcopy(job["opresult"][0]["inst1"])
    inst["serial_no"] = 3
    inst["mtime"] = 1795587305.0
    inst["nics"] = [inst["nics"][0]]
    inst["nics"][0][5] = "gnt-br0"
    return inst


def test_info_matches_ganeti_output() -> None:
    text = format_generic_info([format_instance_info(_inst1())])
    assert text.splitlines() == reference_lines("gnt-instance_info_inst1.txt")


def test_static_info_has_no_runtime_data() -> None:
    inst = _inst1()
    inst["run_state"] = None
    for disk in inst["disks"]:
        disk["pstatus"] = None
    text = format_generic_info([format_instance_info(inst)])
    assert text.splitlines() == reference_lines("gnt-instance_info_inst1_static.txt")


def test_diskless_instance() -> None:
    inst = _inst1()
    inst.update(
        name="inst2",
        uuid="44bd2fad-f4b7-4579-8d16-777cc21a07f1",
        serial_no=2,
        ctime=1795587306.1,
        mtime=1795587306.9,
        disk_template="diskless",
        disks=[],
    )
    inst["nics"][0][1] = "bf56217f-ef91-4e13-9b52-bd7002f545b9"
    inst["nics"][0][3] = "aa:00:00:78:e5:bb"
    text = format_generic_info([format_instance_info(inst)])
    assert text.splitlines() == reference_lines("gnt-instance_info_inst2_diskless.txt")


def _drbd_testvm() -> dict[str, Any]:
    """The paper's testvm (Figures 3.3/3.4): kvm, drbd, VNC on port 11003."""
    lv = "6d61ceff-0e4e-40cc-8d02-4e6eb43b16d"

    def child(kind: str, size: int, minor: int, uuid: str) -> dict[str, Any]:
        path = f"/dev/ganeti/{lv}.disk0_{kind}"
        return {
            "dev_type": "plain",
            "size": size,
            "mode": "rw",
            "spindles": None,
            "logical_id": ["ganeti", f"{lv}.disk0_{kind}"],
            "iv_name": "",
            "pstatus": [path, 254, minor, None, None, False, 1],
            "sstatus": [path, 254, minor, None, None, False, 1],
            "name": None,
            "uuid": uuid,
            "children": [],
            "drbd_info": None,
        }

    return {
        "name": "testvm.project.edu",
        "uuid": "9c7fd8e-7a63-4d58-9424-c0260aa3993e",
        "serial_no": 2,
        "ctime": 1447864527,
        "mtime": 1447865358,
        "config_state": "up",
        "run_state": "up",
        "pnode": "node2.project.edu",
        "pnode_group_name": "default",
        "pnode_group_uuid": "7ee21ab-1874-4999-955f-4937b69ac536",
        "snodes": ["node1.project.edu"],
        "snodes_group_names": ["default"],
        "snodes_group_uuids": ["7ee21ab-1874-4999-955f-4937b69ac536"],
        "os": "image+cd",
        "os_instance": {},
        "os_actual": {},
        "network_port": 11003,
        "hypervisor": "kvm",
        "hv_instance": {},
        "hv_actual": {"acpi": True, "boot_order": "disk", "vnc_bind_address": "0.0.0.0"},
        "be_instance": {"maxmem": 512, "minmem": 256},
        "be_actual": {
            "always_failover": False,
            "auto_balance": True,
            "maxmem": 512,
            "minmem": 256,
            "spindle_use": 1,
            "vcpus": 1,
        },
        "nics": [
            [
                None,
                "6f0b9162-351c-4ef0-8005-348855243e63",
                None,
                "aa:00:00:02:99:0e",
                "bridged",
                "br-public",
                "",
                None,
                None,
            ]
        ],
        "disk_template": "drbd",
        "disks": [
            {
                "dev_type": "drbd",
                "size": 4096,
                "mode": "rw",
                "spindles": None,
                "iv_name": "disk/0",
                "name": None,
                "uuid": "aa8f28a-3783-464e-8211-8cc12ee68525",
                "logical_id": ["n2uuid", "n1uuid", 11004, 1, 1, "secret"],
                "drbd_info": {
                    "primary_node": "node2.project.edu",
                    "primary_minor": 1,
                    "secondary_node": "node1.project.edu",
                    "secondary_minor": 1,
                    "port": 11004,
                    "secret": "74faf18d6729f38437e90715544fec31e12614c5",
                },
                "pstatus": ["/dev/drbd1", 147, 1, None, None, False, 1],
                "sstatus": ["/dev/drbd1", 147, 1, None, None, False, 1],
                "children": [
                    child("data", 4096, 2, "174e3ee-2f9a-4808-816f-efe1ec3e832"),
                    child("meta", 128, 3, "1434ab6d-acee-4d3b-8c84-d7d4695a83e5"),
                ],
            }
        ],
    }


def test_paper_console_line_and_drbd_details() -> None:
    lines = format_generic_info([format_instance_info(_drbd_testvm())]).splitlines()
    assert "  console connection: vnc to node2.project.edu:11003 (display 5103)" in lines
    assert (
        "    - secondaries: node1.project.edu (group default, group UUID "
        "7ee21ab-1874-4999-955f-4937b69ac536)" in lines
    )
    start = lines.index("    - disk/0: drbd, size 4.0G")
    assert lines[start : start + 14] == [
        "    - disk/0: drbd, size 4.0G",
        "      access mode: rw",
        "      nodeA: node2.project.edu, minor=1",
        "      nodeB: node1.project.edu, minor=1",
        "      port: 11004",
        "      auth key: 74faf18d6729f38437e90715544fec31e12614c5",
        "      on primary: /dev/drbd1 (147:1) in sync, status ok",
        "      on secondary: /dev/drbd1 (147:1) in sync, status ok",
        "      name: None",
        "      UUID: aa8f28a-3783-464e-8211-8cc12ee68525",
        "      child devices: ",
        "        - child 0: plain, size 4.0G",
        "          logical_id: ganeti/6d61ceff-0e4e-40cc-8d02-4e6eb43b16d.disk0_data",
        "          on primary: /dev/ganeti/6d61ceff-0e4e-40cc-8d02-4e6eb43b16d.disk0_data (254:2)",
    ]
    assert "        - child 1: plain, size 128M" in lines


def test_drbd_resync_and_degraded_status() -> None:
    inst = _drbd_testvm()
    inst["disks"][0]["sstatus"] = ["/dev/drbd1", 147, 1, 17.6, 286, True, 2]
    lines = format_generic_info([format_instance_info(inst)]).splitlines()
    assert (
        "      on secondary: /dev/drbd1 (147:1) *RECOVERING* 17.60%, ETA 286s,"
        " status *DEGRADED* *UNCERTAIN STATE*"
    ) in lines


def test_vnc_console_variants() -> None:
    inst = {"pnode": "node2", "network_port": 11003, "hv_actual": {}}
    assert vnc_console_info(inst) is None
    inst["hv_actual"] = {"vnc_bind_address": "192.168.20.223"}
    assert vnc_console_info(inst) == "vnc to 192.168.20.223:11003 (node node2) (display 5103)"
    inst["hv_actual"] = {"vnc_bind_address": "/var/run/vnc.sock"}
    assert vnc_console_info(inst) == "vnc to node2:/var/run/vnc.sock"
