"""``gnt-instance info``: OpInstanceQueryData result -> Ganeti's text.

Input, per instance (Ganeti's OpInstanceQueryData result, see
reference/ganeti/rapi/client_instance_info_inst1_job.json):

``name, uuid, serial_no, ctime, mtime, config_state, run_state (None when
--static), pnode, pnode_group_name, pnode_group_uuid, snodes,
snodes_group_names, snodes_group_uuids, os, os_instance, os_actual,
network_port, hypervisor, hv_instance, hv_actual, be_instance, be_actual,
nics`` (tuples ``[name, uuid, ip, mac, mode, link, vlan, network,
netinfo]``), ``disk_template, disks``.

Each disk: ``iv_name, dev_type, size, mode, spindles, logical_id, name,
uuid, pstatus, sstatus, children`` (disks again) and, for drbd,
``drbd_info`` = ``{primary_node, primary_minor, secondary_node,
secondary_minor, port, secret}``. ``pstatus``/``sstatus`` are None (static
query / not active) or ``[dev_path, major, minor, sync_percent,
estimated_time, is_degraded, ldisk_status]``.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral.cli._generic_info import (
    InfoList,
    comma_join,
    format_params_dict_info,
    format_time,
)
from corral.utils.units import format_unit

# local disk status (Ganeti's LDS_*)
LDS_OKAY = 1
LDS_UNKNOWN = 2
LDS_FAULTY = 3

_IP4_ANY = "0.0.0.0"


def _device_status(dev_type: str, status: list[Any] | None) -> str:
    """``/dev/drbd1 (147:1) in sync, status ok`` (Ganeti's wording)."""
    if not status:
        return "not active"
    path, major, minor, syncp, estt, degraded, ldisk = (list(status) + [None] * 7)[:7]
    major_s = "N/A" if major is None else str(major)
    minor_s = "N/A" if minor is None else str(minor)
    text = f"{path} ({major_s}:{minor_s})"
    if dev_type == C.LD_DRBD8:
        if syncp is not None:
            sync = f"*RECOVERING* {float(syncp):5.2f}%,"
            sync += f" ETA {estt}s" if estt else " ETA unknown"
        else:
            sync = "in sync"
        degr = "*DEGRADED*" if degraded else "ok"
        if ldisk == LDS_FAULTY:
            ltext = " *MISSING DISK*"
        elif ldisk == LDS_UNKNOWN:
            ltext = " *UNCERTAIN STATE*"
        else:
            ltext = ""
        text += f" {sync}, status {degr}{ltext}"
    elif dev_type == C.LD_LV and ldisk == LDS_FAULTY:
        text += " *FAILED* (failed drive?)"
    return text


def _disk_details(dev: dict[str, Any]) -> InfoList | list[str]:
    dev_type = dev.get("dev_type")
    drbd = dev.get("drbd_info")
    if dev_type == C.LD_DRBD8 and drbd:
        return [
            ("nodeA", f"{drbd['primary_node']}, minor={drbd['primary_minor']}"),
            ("nodeB", f"{drbd['secondary_node']}, minor={drbd['secondary_minor']}"),
            ("port", str(drbd["port"])),
            ("auth key", str(drbd["secret"])),
        ]
    logical_id = dev.get("logical_id")
    if dev_type == C.LD_LV and isinstance(logical_id, list | tuple) and len(logical_id) == 2:
        return [f"{logical_id[0]}/{logical_id[1]}"]
    return [str(logical_id)]


def format_disk(idx: int, top_level: bool, dev: dict[str, Any]) -> InfoList:
    """One disk (and, nested, its children) as Ganeti's _FormatBlockDevInfo."""
    label = (dev.get("iv_name") or f"disk {idx}") if top_level else f"child {idx}"
    size = dev.get("size")
    nice_size = format_unit(size, "h") if isinstance(size, int) else str(size)
    data: InfoList = [(label, f"{dev.get('dev_type')}, size {nice_size}")]
    if top_level:
        if dev.get("spindles") is not None:
            data.append(("spindles", dev["spindles"]))
        data.append(("access mode", dev.get("mode")))
    if dev.get("logical_id") is not None:
        details = _disk_details(dev)
        if len(details) == 1 and isinstance(details[0], str):
            data.append(("logical_id", details[0]))
        else:
            data.extend(d for d in details if isinstance(d, tuple))
    if dev.get("pstatus"):
        data.append(("on primary", _device_status(str(dev.get("dev_type")), dev["pstatus"])))
    if dev.get("sstatus"):
        data.append(("on secondary", _device_status(str(dev.get("dev_type")), dev["sstatus"])))
    data.append(("name", dev.get("name")))
    data.append(("UUID", dev.get("uuid")))
    children = dev.get("children") or []
    if children:
        data.append(
            (
                "child devices",
                [format_disk(cidx, False, child) for cidx, child in enumerate(children)],
            )
        )
    return data


def _format_nic(idx: int, nic: list[Any]) -> InfoList:
    name, uuid, ip, mac, mode, link, vlan, _network, netinfo = (list(nic) + [None] * 9)[:9]
    network_name = netinfo.get("name") if isinstance(netinfo, dict) else None
    return [
        (f"nic/{idx}", ""),
        ("MAC", str(mac)),
        ("IP", str(ip)),
        ("mode", str(mode)),
        ("link", str(link)),
        ("vlan", str(vlan)),
        ("network", str(network_name)),
        ("UUID", str(uuid)),
        ("name", str(name)),
    ]


def _format_nodes(inst: dict[str, Any]) -> list[InfoList]:
    pgroup = f"{inst.get('pnode_group_name')} (UUID {inst.get('pnode_group_uuid')})"
    secs = comma_join(
        f"{name} (group {gname}, group UUID {guuid})"
        for name, gname, guuid in zip(
            inst.get("snodes", []),
            inst.get("snodes_group_names", []),
            inst.get("snodes_group_uuids", []),
            strict=False,
        )
    )
    return [[("primary", inst.get("pnode")), ("group", pgroup)], [("secondaries", secs)]]


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)


def vnc_console_info(inst: dict[str, Any]) -> str | None:
    """``vnc to node2.project.edu:11003 (display 5103)`` or None without VNC."""
    bind = (inst.get("hv_actual") or {}).get("vnc_bind_address")
    if not bind:
        return None
    port = inst.get("network_port")
    pnode = inst.get("pnode")
    display = int(port) - C.VNC_BASE_PORT if port is not None else 0
    if display > 0 and bind == _IP4_ANY:
        where = f"{pnode}:{port} (display {display})"
    elif display > 0 and _is_ipv4(str(bind)):
        where = f"{bind}:{port} (node {pnode}) (display {display})"
    else:
        where = f"{pnode}:{bind}"
    return f"vnc to {where}"


def format_instance_info(inst: dict[str, Any]) -> InfoList:
    """The PrintGenericInfo tree of one instance."""
    state = f"configured to be {inst.get('config_state')}"
    if inst.get("run_state"):
        state += f", actual state is {inst['run_state']}"
    info: InfoList = [
        ("Instance name", inst.get("name")),
        ("UUID", inst.get("uuid")),
        ("Serial number", str(inst.get("serial_no"))),
        ("Creation time", format_time(inst.get("ctime"))),
        ("Modification time", format_time(inst.get("mtime"))),
        ("State", state),
        ("Nodes", _format_nodes(inst)),
        ("Operating system", inst.get("os")),
        (
            "Operating system parameters",
            format_params_dict_info(inst.get("os_instance") or {}, inst.get("os_actual") or {}),
        ),
    ]
    if "network_port" in inst:
        info.append(("Allocated network port", str(inst["network_port"])))
    info.append(("Hypervisor", inst.get("hypervisor")))
    console = vnc_console_info(inst)
    if console:
        info.append(("console connection", console))
    be_actual = dict(inst.get("be_actual") or {})
    if C.BE_MAXMEM in be_actual:
        be_actual[C.BE_MEMORY] = be_actual[C.BE_MAXMEM]
    info.extend(
        [
            (
                "Hypervisor parameters",
                format_params_dict_info(inst.get("hv_instance") or {}, inst.get("hv_actual") or {}),
            ),
            (
                "Back-end parameters",
                format_params_dict_info(inst.get("be_instance") or {}, be_actual),
            ),
            ("NICs", [_format_nic(idx, nic) for idx, nic in enumerate(inst.get("nics", []))]),
            ("Disk template", inst.get("disk_template")),
            (
                "Disks",
                [format_disk(idx, True, disk) for idx, disk in enumerate(inst.get("disks", []))],
            ),
        ]
    )
    return info
