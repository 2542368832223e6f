"""The "instance" query resource (gnt-instance list, RAPI, web UI).

Live fields (status, oper_*) come from one parallel ``all_instances_info`` call
to every online node; an unreachable primary makes them ``?`` (no data) and an
offline one ``*``, as in Ganeti.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral import constants as C
from corral import objects
from corral.cmdlib.base import MasterContext
from corral.cmdlib.params import fill_beparams, fill_hvparams, fill_nicparams
from corral.cmdlib.query_base import (
    NODATA,
    OFFLINE,
    QFT_BOOL,
    QFT_NUMBER,
    QFT_OTHER,
    QFT_TEXT,
    QFT_TIMESTAMP,
    QFT_UNIT,
    UNAVAIL,
    Field,
    TableQueryResource,
    known_objects,
)
from corral.cmdlib.registry import register_query
from corral.hypervisor import get_hypervisor_class

MAX_NICS = 8
MAX_DISKS = 16
_ORDINAL = ["1st", "2nd", "3rd"] + [f"{i}th" for i in range(4, 17)]


class Item:
    """An instance plus the config it lives in (getters need node names etc.)."""

    __slots__ = ("cfg", "inst")

    def __init__(self, cfg: Any, inst: objects.Instance) -> None:
        self.cfg = cfg
        self.inst = inst

    def node(self, uuid: str) -> objects.Node | None:
        node: objects.Node | None = self.cfg.get_node(uuid)
        return node


class Live:
    """Per node name: {instance name: runtime dict} or None when the node failed."""

    def __init__(self) -> None:
        self.by_node: dict[str, dict[str, Any] | None] = {}


def _runtime(item: Item, live: Live | None) -> Any:
    inst = item.inst
    pnode = item.node(inst.primary_node)
    if pnode is None or live is None:
        return NODATA
    if pnode.offline:
        return OFFLINE
    data = live.by_node.get(pnode.name)
    if data is None:
        return NODATA
    return data.get(inst.name)


def _status(item: Item, live: Live | None) -> Any:
    inst = item.inst
    pnode = item.node(inst.primary_node)
    if pnode is not None and pnode.offline:
        return C.INSTST_NODEOFFLINE
    rt = _runtime(item, live)
    if rt is NODATA:
        return C.INSTST_NODEDOWN
    if rt is not None:
        return C.INSTST_RUNNING if inst.admin_state == C.ADMINST_UP else C.INSTST_ERRORUP
    if live is not None:
        for node_name, data in live.by_node.items():
            if pnode is not None and node_name == pnode.name:
                continue
            if data and inst.name in data:
                return C.INSTST_WRONGNODE
    if inst.admin_state == C.ADMINST_UP:
        return C.INSTST_ERRORDOWN
    if inst.admin_state == C.ADMINST_OFFLINE:
        return C.INSTST_ADMINOFFLINE
    if inst.admin_state_source == C.ADMINST_SOURCE_USER:
        return C.INSTST_USERDOWN
    return C.INSTST_ADMINDOWN


def _oper(key: str) -> Callable[[Item, Any], Any]:
    def get(item: Item, live: Any) -> Any:
        rt = _runtime(item, live)
        if rt is NODATA or rt is OFFLINE:
            return rt
        if rt is None:
            return UNAVAIL
        return rt.get(key)

    return get


def _be(item: Item) -> dict[str, Any]:
    return fill_beparams(item.cfg.cluster, item.inst.beparams)


def _hv(item: Item) -> dict[str, Any]:
    return fill_hvparams(item.cfg.cluster, item.inst.hypervisor, item.inst.os, item.inst.hvparams)


def _nicp(item: Item, idx: int) -> dict[str, Any] | None:
    if idx >= len(item.inst.nics):
        return None
    return fill_nicparams(item.cfg.cluster, item.inst.nics[idx].nicparams)


def _nic_field(idx: int, what: str) -> Callable[[Item, Any], Any]:
    def get(item: Item, live: Any) -> Any:
        if idx >= len(item.inst.nics):
            return UNAVAIL
        nic = item.inst.nics[idx]
        params = _nicp(item, idx) or {}
        if what == "mac":
            return nic.mac
        if what == "ip":
            return nic.ip
        if what == "name":
            return nic.name
        if what == "uuid":
            return nic.uuid
        if what == "network":
            return nic.network
        if what == "network.name":
            net = item.cfg.get_network(nic.network) if nic.network else None
            return net.name if net is not None else None
        if what == "bridge":
            return params.get(C.NIC_LINK) if params.get(C.NIC_MODE) == C.NIC_MODE_BRIDGED else None
        return params.get(what)

    return get


def _nic_list(what: str) -> Callable[[Item, Any], Any]:
    def get(item: Item, live: Any) -> Any:
        return [_nic_field(i, what)(item, live) for i in range(len(item.inst.nics))]

    return get


def _disk_field(idx: int, what: str) -> Callable[[Item, Any], Any]:
    def get(item: Item, live: Any) -> Any:
        if idx >= len(item.inst.disks):
            return UNAVAIL
        return getattr(item.inst.disks[idx], what)

    return get


def _disk_usage(item: Item, live: Any) -> int:
    total = 0
    for disk in item.inst.disks:
        total += disk.size + (C.DRBD_META_SIZE if disk.dev_type == C.LD_DRBD8 else 0)
    return total


def _node_names(item: Item, uuids: list[str]) -> list[str]:
    return [item.cfg.node_name(u) for u in uuids]


def _group_of(item: Item, node_uuid: str, attr: str) -> Any:
    node = item.node(node_uuid)
    if node is None:
        return None
    if attr == "uuid":
        return node.group
    group = item.cfg.get_group(node.group)
    return group.name if group else None


def _console(item: Item, live: Any) -> Any:
    inst = item.inst
    if inst.network_port is None:
        return None
    hvp = _hv(item)
    return {
        "instance": inst.name,
        "kind": "vnc",
        "host": item.cfg.node_name(inst.primary_node),
        "port": inst.network_port,
        "display": inst.network_port - C.VNC_BASE_PORT,
        "bind": hvp.get("vnc_bind_address"),
    }


def _f(
    name: str,
    title: str,
    kind: str,
    doc: str,
    getter: Callable[[Item, Any], Any],
    live: bool = False,
) -> Field:
    return Field(name=name, title=title, kind=kind, doc=doc, getter=getter, live=live)


def _build_fields() -> list[Field]:
    F: list[Field] = [
        _f("name", "Instance", QFT_TEXT, "Instance name", lambda i, _l: i.inst.name),
        _f("uuid", "UUID", QFT_TEXT, "Instance UUID", lambda i, _l: i.inst.uuid),
        _f("os", "OS", QFT_TEXT, "Operating system", lambda i, _l: i.inst.os),
        _f(
            "hypervisor", "Hypervisor", QFT_TEXT, "Hypervisor name", lambda i, _l: i.inst.hypervisor
        ),
        _f(
            "pnode",
            "Primary_node",
            QFT_TEXT,
            "Primary node",
            lambda i, _l: i.cfg.node_name(i.inst.primary_node),
        ),
        _f(
            "pnode.group",
            "PrimaryNodeGroup",
            QFT_TEXT,
            "Primary node's group",
            lambda i, _l: _group_of(i, i.inst.primary_node, "name"),
        ),
        _f(
            "pnode.group.uuid",
            "PrimaryNodeGroupUUID",
            QFT_TEXT,
            "Primary node's group UUID",
            lambda i, _l: _group_of(i, i.inst.primary_node, "uuid"),
        ),
        _f(
            "snodes",
            "Secondary_Nodes",
            QFT_OTHER,
            "Secondary nodes; usually this will just be one node",
            lambda i, _l: _node_names(i, i.inst.secondary_nodes),
        ),
        _f(
            "snodes.group",
            "SecondaryNodesGroups",
            QFT_OTHER,
            "Node groups of secondary nodes",
            lambda i, _l: [_group_of(i, n, "name") for n in i.inst.secondary_nodes],
        ),
        _f(
            "snodes.group.uuid",
            "SecondaryNodesGroupsUUID",
            QFT_OTHER,
            "Node group UUIDs of secondary nodes",
            lambda i, _l: [_group_of(i, n, "uuid") for n in i.inst.secondary_nodes],
        ),
        _f(
            "admin_state",
            "InstanceState",
            QFT_TEXT,
            "Desired state of instance",
            lambda i, _l: i.inst.admin_state,
        ),
        _f(
            "admin_state_source",
            "InstanceStateSource",
            QFT_TEXT,
            "Who last changed the desired state of the instance",
            lambda i, _l: i.inst.admin_state_source,
        ),
        _f(
            "admin_up",
            "Autostart",
            QFT_BOOL,
            "Desired state of instance",
            lambda i, _l: i.inst.admin_state == C.ADMINST_UP,
        ),
        _f(
            "disks_active",
            "DisksActive",
            QFT_BOOL,
            "Desired state of instance disks",
            lambda i, _l: i.inst.disks_active,
        ),
        _f(
            "disk_template",
            "Disk_template",
            QFT_TEXT,
            "Instance disk template",
            lambda i, _l: i.inst.disk_template,
        ),
        _f(
            "network_port",
            "Network_port",
            QFT_OTHER,
            "Instance network port if available (e.g. for VNC console)",
            lambda i, _l: i.inst.network_port,
        ),
        _f("console", "Console", QFT_OTHER, "Instance console information", _console),
        _f("tags", "Tags", QFT_OTHER, "Tags", lambda i, _l: list(i.inst.tags)),
        _f("ctime", "CTime", QFT_TIMESTAMP, "Creation timestamp", lambda i, _l: i.inst.ctime),
        _f("mtime", "MTime", QFT_TIMESTAMP, "Modification timestamp", lambda i, _l: i.inst.mtime),
        _f(
            "serial_no",
            "SerialNo",
            QFT_NUMBER,
            "Instance object serial number, incremented on each modification",
            lambda i, _l: i.inst.serial_no,
        ),
        _f("tenant", "Tenant", QFT_TEXT, "Owning tenant (corral)", lambda i, _l: i.inst.tenant),
        _f(
            "forthcoming",
            "Forthcoming",
            QFT_BOOL,
            "whether the Instance is forthcoming",
            lambda i, _l: False,
        ),
        _f(
            "status",
            "Status",
            QFT_TEXT,
            'Instance status; "running" if instance is set to be running and actually is,'
            ' "ADMIN_down" if instance is stopped and is not running, "ERROR_wrongnode" if'
            ' instance is running on the wrong node, "ERROR_up" if instance is running but'
            ' should not, "ERROR_down" if instance should run but is not running,'
            ' "ERROR_nodedown" if instance\'s primary node is down, "ERROR_nodeoffline" if'
            ' instance\'s primary node is marked offline, "ADMIN_offline" if instance is'
            " offline and does not use dynamic resources",
            _status,
            live=True,
        ),
        _f(
            "oper_state",
            "Running",
            QFT_BOOL,
            "Actual state of instance",
            lambda i, live: (lambda rt: rt if rt in (NODATA, OFFLINE) else rt is not None)(
                _runtime(i, live)
            ),
            live=True,
        ),
        _f(
            "oper_ram",
            "Memory",
            QFT_UNIT,
            "Actual memory usage as seen by hypervisor",
            _oper("memory"),
            live=True,
        ),
        _f(
            "oper_vcpus",
            "VCPUs",
            QFT_NUMBER,
            "Actual number of VCPUs as seen by hypervisor",
            _oper("vcpus"),
            live=True,
        ),
        _f(
            "beparams",
            "BackendParameters",
            QFT_OTHER,
            "Backend parameters (merged)",
            lambda i, _l: _be(i),
        ),
        _f(
            "custom_beparams",
            "CustomBackendParameters",
            QFT_OTHER,
            "Custom backend parameters",
            lambda i, _l: dict(i.inst.beparams),
        ),
        _f(
            "hvparams",
            "HypervisorParameters",
            QFT_OTHER,
            "Hypervisor parameters (merged)",
            lambda i, _l: _hv(i),
        ),
        _f(
            "custom_hvparams",
            "CustomHypervisorParameters",
            QFT_OTHER,
            "Custom hypervisor parameters",
            lambda i, _l: dict(i.inst.hvparams),
        ),
        _f(
            "osparams",
            "OpSysParameters",
            QFT_OTHER,
            "Operating system parameters (merged)",
            lambda i, _l: dict(i.inst.osparams),
        ),
        _f(
            "custom_osparams",
            "CustomOpSysParameters",
            QFT_OTHER,
            "Custom operating system parameters",
            lambda i, _l: dict(i.inst.osparams),
        ),
        _f(
            "custom_nicparams",
            "CustomNicParameters",
            QFT_OTHER,
            "Custom network interface parameters",
            lambda i, _l: [dict(n.nicparams) for n in i.inst.nics],
        ),
        _f(
            "vcpus",
            "ConfigVCPUs",
            QFT_NUMBER,
            'The "vcpus" backend parameter',
            lambda i, _l: _be(i)[C.BE_VCPUS],
        ),
        _f(
            "disk_usage",
            "DiskUsage",
            QFT_UNIT,
            "Total disk space used by instance on each of its nodes; this is not the disk"
            " size visible to the instance, but the usage on the node",
            _disk_usage,
        ),
        _f("disk.count", "Disks", QFT_NUMBER, "Number of disks", lambda i, _l: len(i.inst.disks)),
        _f(
            "disk.sizes",
            "Disk_sizes",
            QFT_OTHER,
            "List of disk sizes",
            lambda i, _l: [d.size for d in i.inst.disks],
        ),
        _f(
            "disk.spindles",
            "Disk_spindles",
            QFT_OTHER,
            "List of disk spindles",
            lambda i, _l: [d.spindles for d in i.inst.disks],
        ),
        _f(
            "disk.names",
            "Disk_names",
            QFT_OTHER,
            "List of disk names",
            lambda i, _l: [d.name for d in i.inst.disks],
        ),
        _f(
            "disk.uuids",
            "Disk_UUIDs",
            QFT_OTHER,
            "List of disk UUIDs",
            lambda i, _l: [d.uuid for d in i.inst.disks],
        ),
        _f("sda_size", "Disk/0", QFT_UNIT, "Disk size of 1st disk", _disk_field(0, "size")),
        _f("sdb_size", "Disk/1", QFT_UNIT, "Disk size of 2nd disk", _disk_field(1, "size")),
        _f(
            "nic.count",
            "NICs",
            QFT_NUMBER,
            "Number of network interfaces",
            lambda i, _l: len(i.inst.nics),
        ),
        _f("ip", "NicIP/0", QFT_TEXT, "IP address of 1st network interface", _nic_field(0, "ip")),
        _f(
            "mac",
            "NicMAC/0",
            QFT_TEXT,
            "MAC address of 1st network interface",
            _nic_field(0, "mac"),
        ),
        _f(
            "bridge",
            "NicBridge/0",
            QFT_TEXT,
            "Bridge of 1st network interface",
            _nic_field(0, "bridge"),
        ),
        _f(
            "nic_link",
            "NicLink/0",
            QFT_TEXT,
            "Link of 1st network interface",
            _nic_field(0, C.NIC_LINK),
        ),
        _f(
            "nic_mode",
            "NicMode/0",
            QFT_TEXT,
            "Mode of 1st network interface",
            _nic_field(0, C.NIC_MODE),
        ),
        _f(
            "nic_network",
            "NicNetwork/0",
            QFT_TEXT,
            "Network of 1st network interface",
            _nic_field(0, "network"),
        ),
    ]
    nic_kinds = [
        ("mac", "macs", "NicMAC", "NIC_MACs", "MAC address"),
        ("ip", "ips", "NicIP", "NIC_IPs", "IP address"),
        ("mode", "modes", "NicMode", "NIC_modes", "Mode"),
        ("link", "links", "NicLink", "NIC_links", "Link"),
        ("vlan", "vlans", "NicVLAN", "NIC_VLANs", "VLAN"),
        ("bridge", "bridges", "NicBridge", "NIC_bridges", "Bridge"),
        ("name", "names", "NicName", "NIC_Names", "Name address"),
        ("uuid", "uuids", "NicUUID", "NIC_UUIDs", "UUID address"),
        ("network", "networks", "NicNetwork", "NIC_networks", "Network"),
        ("network.name", "networks.names", "NicNetworkName", "NIC_networks_names", "Network name"),
    ]
    for key, plural, title, ptitle, doc in nic_kinds:
        F.append(
            _f(
                f"nic.{plural}",
                ptitle,
                QFT_OTHER,
                f"List containing each network interface's {doc.split()[0]}",
                _nic_list(key),
            )
        )
        for idx in range(MAX_NICS):
            F.append(
                _f(
                    f"nic.{key}/{idx}",
                    f"{title}/{idx}",
                    QFT_TEXT,
                    f"{doc} of {_ORDINAL[idx]} network interface",
                    _nic_field(idx, key),
                )
            )
    for idx in range(MAX_DISKS):
        F.append(
            _f(
                f"disk.size/{idx}",
                f"Disk/{idx}",
                QFT_UNIT,
                f"Disk size of {_ORDINAL[idx]} disk",
                _disk_field(idx, "size"),
            )
        )
        F.append(
            _f(
                f"disk.name/{idx}",
                f"DiskName/{idx}",
                QFT_TEXT,
                f"Name of {_ORDINAL[idx]} disk",
                _disk_field(idx, "name"),
            )
        )
        F.append(
            _f(
                f"disk.uuid/{idx}",
                f"DiskUUID/{idx}",
                QFT_TEXT,
                f"UUID of {_ORDINAL[idx]} disk",
                _disk_field(idx, "uuid"),
            )
        )
        F.append(
            _f(
                f"disk.spindles/{idx}",
                f"DiskSpindles/{idx}",
                QFT_NUMBER,
                f"Spindles of {_ORDINAL[idx]} disk",
                _disk_field(idx, "spindles"),
            )
        )
    be_titles = {
        C.BE_MAXMEM: "ConfigMaxMem",
        C.BE_MINMEM: "ConfigMinMem",
        C.BE_VCPUS: "ConfigVCPUs",
        C.BE_AUTO_BALANCE: "Auto_balance",
    }
    for key, kind in C.BES_PARAMETER_TYPES.items():
        qkind = {"size": QFT_UNIT, "int": QFT_NUMBER, "bool": QFT_BOOL}[kind]
        src = C.BE_MAXMEM if key == C.BE_MEMORY else key
        F.append(
            _f(
                f"be/{key}",
                be_titles.get(src, f"be/{key}"),
                qkind,
                f'The "{src}" backend parameter',
                (lambda k: lambda i, _l: _be(i).get(k))(src),
            )
        )
    for key in sorted(get_hypervisor_class(C.HT_KVM).PARAMETERS):
        F.append(
            _f(
                f"hv/{key}",
                f"hv/{key}",
                QFT_OTHER,
                f'The "{key}" hypervisor parameter',
                (lambda k: lambda i, _l: _hv(i).get(k, UNAVAIL))(key),
            )
        )
    return F


class InstanceQuery(TableQueryResource):
    NAME = "instance"
    DEFAULT_FIELDS = ("name", "hypervisor", "os", "pnode", "status", "oper_ram")
    FIELDS = _build_fields()

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[Item]:
        cfg = ctx.cfg
        if not names:
            return [Item(cfg, i) for i in cfg.all_instances()]
        return [
            Item(cfg, i) for i in known_objects(names, cfg.expand_instance_name, cfg.get_instance)
        ]

    async def live_data(self, ctx: MasterContext, items: list[Item]) -> Live:
        live = Live()
        cfg = ctx.cfg
        hvs = list(cfg.cluster.enabled_hypervisors)
        nodes = [n for n in cfg.all_nodes() if not n.offline and n.vm_capable]
        results = await ctx.rpc.call_multi(
            "all_instances_info", [ctx.node_target(n.uuid) for n in nodes], hvs
        )
        for node in nodes:
            res = results.get(node.name)
            if res is None or res.failed:
                live.by_node[node.name] = None
                continue
            live.by_node[node.name] = {
                name: {"memory": rt.memory, "vcpus": rt.vcpus, "state": rt.state}
                for name, rt in (res.payload or {}).items()
            }
        return live


register_query(InstanceQuery())
