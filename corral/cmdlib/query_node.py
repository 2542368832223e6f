"""The "node" and "group" query resources (gnt-node list, gnt-group list).

Live node fields (dtotal, dfree, mtotal, mnode, mfree, ctotal, ...) come from
one parallel ``node_info`` call; unreachable nodes show ``?`` and offline
ones ``*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral import constants as C
from corral import objects
from corral.cmdlib.base import MasterContext
from corral.cmdlib.common import gather_node_info
from corral.cmdlib.query_base import (
    NODATA,
    OFFLINE,
    QFT_BOOL,
    QFT_FLOAT,
    QFT_NUMBER,
    QFT_OTHER,
    QFT_TEXT,
    QFT_TIMESTAMP,
    QFT_UNIT,
    Field,
    TableQueryResource,
    known_objects,
)
from corral.cmdlib.registry import register_query
from corral.config.reader import filled_ndparams


class NodeItem:
    __slots__ = ("cfg", "node")

    def __init__(self, cfg: Any, node: objects.Node) -> None:
        self.cfg = cfg
        self.node = node


def _f(
    name: str,
    title: str,
    kind: str,
    doc: str,
    getter: Callable[[Any, Any], Any],
    live: bool = False,
) -> Field:
    return Field(name=name, title=title, kind=kind, doc=doc, getter=getter, live=live)


def _live(key: str) -> Callable[[NodeItem, Any], Any]:
    def get(item: NodeItem, live: Any) -> Any:
        if item.node.offline:
            return OFFLINE
        data = (live or {}).get(item.node.uuid)
        if data is None or key not in data:
            return NODATA
        return data[key]

    return get


def _role(item: NodeItem, _live: Any) -> str:
    node = item.node
    if node.uuid == item.cfg.cluster.master_node:
        return "M"
    if node.master_candidate:
        return "C"
    if node.drained:
        return "D"
    if node.offline:
        return "O"
    return "R"


def _ndparams(item: NodeItem) -> dict[str, Any]:
    return filled_ndparams(item.cfg.data, item.node)


def _instances(item: NodeItem, which: int) -> list[str]:
    lists = item.cfg.node_instances(item.node.uuid)
    return [item.cfg.get_instance(u).name for u in lists[which]]


def _group(item: NodeItem, attr: str) -> Any:
    group = item.cfg.get_group(item.node.group)
    if group is None:
        return None
    return group.uuid if attr == "uuid" else group.name


NODE_FIELDS: list[Field] = [
    _f("name", "Node", QFT_TEXT, "Node name", lambda i, _l: i.node.name),
    _f("uuid", "UUID", QFT_TEXT, "Node UUID", lambda i, _l: i.node.uuid),
    _f("pip", "PrimaryIP", QFT_TEXT, "Primary IP address", lambda i, _l: i.node.primary_ip),
    _f(
        "sip",
        "SecondaryIP",
        QFT_TEXT,
        "Secondary IP address",
        lambda i, _l: i.node.secondary_ip or i.node.primary_ip,
    ),
    _f(
        "master",
        "IsMaster",
        QFT_BOOL,
        "Whether node is master",
        lambda i, _l: i.node.uuid == i.cfg.cluster.master_node,
    ),
    _f(
        "master_candidate",
        "MasterC",
        QFT_BOOL,
        "Whether node is a master candidate",
        lambda i, _l: i.node.master_candidate,
    ),
    _f(
        "master_capable",
        "MasterCapable",
        QFT_BOOL,
        "Whether node can become a master candidate",
        lambda i, _l: i.node.master_capable,
    ),
    _f(
        "vm_capable",
        "VMCapable",
        QFT_BOOL,
        "Whether node can host instances",
        lambda i, _l: i.node.vm_capable,
    ),
    _f(
        "offline",
        "Offline",
        QFT_BOOL,
        "Whether node is marked offline",
        lambda i, _l: i.node.offline,
    ),
    _f("drained", "Drained", QFT_BOOL, "Whether node is drained", lambda i, _l: i.node.drained),
    _f(
        "powered",
        "Powered",
        QFT_BOOL,
        "Whether node is thought to be powered on",
        lambda i, _l: i.node.powered,
    ),
    _f(
        "role",
        "Role",
        QFT_TEXT,
        'Node role; "M" for master, "C" for master candidate, "R" for regular, "D" for'
        ' drained, "O" for offline',
        _role,
    ),
    _f("group", "Group", QFT_TEXT, "Node group", lambda i, _l: _group(i, "name")),
    _f("group.uuid", "GroupUUID", QFT_TEXT, "UUID of node group", lambda i, _l: _group(i, "uuid")),
    _f("tags", "Tags", QFT_OTHER, "Tags", lambda i, _l: list(i.node.tags)),
    _f(
        "serial_no",
        "SerialNo",
        QFT_NUMBER,
        "Node object serial number, incremented on each modification",
        lambda i, _l: i.node.serial_no,
    ),
    _f("ctime", "CTime", QFT_TIMESTAMP, "Creation timestamp", lambda i, _l: i.node.ctime),
    _f("mtime", "MTime", QFT_TIMESTAMP, "Modification timestamp", lambda i, _l: i.node.mtime),
    _f(
        "pinst_cnt",
        "Pinst",
        QFT_NUMBER,
        "Number of instances with this node as primary",
        lambda i, _l: len(_instances(i, 0)),
    ),
    _f(
        "sinst_cnt",
        "Sinst",
        QFT_NUMBER,
        "Number of instances with this node as secondary",
        lambda i, _l: len(_instances(i, 1)),
    ),
    _f(
        "pinst_list",
        "PriInstances",
        QFT_OTHER,
        "List of instances with this node as primary",
        lambda i, _l: _instances(i, 0),
    ),
    _f(
        "sinst_list",
        "SecInstances",
        QFT_OTHER,
        "List of instances with this node as secondary",
        lambda i, _l: _instances(i, 1),
    ),
    _f(
        "ndparams",
        "NodeParameters",
        QFT_OTHER,
        "Merged node parameters",
        lambda i, _l: _ndparams(i),
    ),
    _f(
        "custom_ndparams",
        "CustomNodeParameters",
        QFT_OTHER,
        "Custom node parameters",
        lambda i, _l: dict(i.node.ndparams),
    ),
    _f(
        "dtotal",
        "DTotal",
        QFT_UNIT,
        "Total storage space on storage unit for instance disk allocation",
        _live("storage_size"),
        live=True,
    ),
    _f(
        "dfree",
        "DFree",
        QFT_UNIT,
        "Available storage space on storage unit",
        _live("storage_free"),
        live=True,
    ),
    _f(
        "mtotal",
        "MTotal",
        QFT_UNIT,
        "Total amount of memory of physical machine",
        _live("memory_total"),
        live=True,
    ),
    _f(
        "mnode",
        "MNode",
        QFT_UNIT,
        "Amount of memory used by node (dom0 for Xen)",
        _live("memory_dom0"),
        live=True,
    ),
    _f(
        "mfree",
        "MFree",
        QFT_UNIT,
        "Memory available for instance allocations",
        _live("memory_free"),
        live=True,
    ),
    _f(
        "ctotal",
        "CTotal",
        QFT_NUMBER,
        "Number of logical processors",
        _live("cpu_total"),
        live=True,
    ),
    _f(
        "cnodes",
        "CNodes",
        QFT_NUMBER,
        "Number of NUMA domains on node (if exported by hypervisor)",
        _live("cpu_nodes"),
        live=True,
    ),
    _f(
        "csockets",
        "CSockets",
        QFT_NUMBER,
        "Number of physical CPU sockets (if exported by hypervisor)",
        _live("cpu_sockets"),
        live=True,
    ),
    _f(
        "cnos",
        "CNOs",
        QFT_NUMBER,
        "Number of logical processors used by the node OS (dom0 for Xen)",
        _live("cpu_dom0"),
        live=True,
    ),
    _f(
        "bootid",
        "BootID",
        QFT_TEXT,
        "Random UUID renewed for each system reboot, can be used for detecting reboots",
        _live("bootid"),
        live=True,
    ),
    _f(
        "sptotal",
        "SpTotal",
        QFT_NUMBER,
        "Total spindles in volume group (exclusive storage only)",
        lambda i, _l: 0,
    ),
    _f(
        "spfree",
        "SpFree",
        QFT_NUMBER,
        "Available spindles in volume group (exclusive storage only)",
        lambda i, _l: 0,
    ),
]
NODE_FIELDS += [
    _f("disk_state", "DiskState", QFT_OTHER, "Disk state", lambda i, _l: {}),
    _f("hv_state", "HypervisorState", QFT_OTHER, "Hypervisor state", lambda i, _l: {}),
]
# Titles Ganeti gives some node parameters (the others are titled "ndp/<name>").
_NDP_TITLES = {
    "exclusive_storage": "ExclusiveStorage",
    "oob_program": "OutOfBandProgram",
    "ovs": "OpenvSwitch",
    "ovs_link": "OpenvSwitchLink",
    "ovs_name": "OpenvSwitchName",
    "spindle_count": "SpindleCount",
}
for _key, _default in C.NDC_DEFAULTS.items():
    _kind = (
        QFT_BOOL
        if isinstance(_default, bool)
        else QFT_NUMBER
        if isinstance(_default, int)
        else QFT_FLOAT
        if isinstance(_default, float)
        else QFT_OTHER
    )
    NODE_FIELDS.append(
        _f(
            f"ndp/{_key}",
            _NDP_TITLES.get(_key, f"ndp/{_key}"),
            _kind,
            f'The "{_key}" node parameter',
            (lambda k: lambda i, _l: _ndparams(i).get(k))(_key),
        )
    )


class NodeQuery(TableQueryResource):
    NAME = "node"
    DEFAULT_FIELDS = (
        "name",
        "dtotal",
        "dfree",
        "mtotal",
        "mnode",
        "mfree",
        "pinst_cnt",
        "sinst_cnt",
    )
    FIELDS = NODE_FIELDS

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[NodeItem]:
        cfg = ctx.cfg
        if not names:
            return [NodeItem(cfg, n) for n in cfg.all_nodes()]
        return [NodeItem(cfg, n) for n in known_objects(names, cfg.expand_node_name, cfg.get_node)]

    async def live_data(self, ctx: MasterContext, items: list[NodeItem]) -> Any:
        return await gather_node_info(ctx, [i.node.uuid for i in items])


class GroupItem:
    __slots__ = ("cfg", "group")

    def __init__(self, cfg: Any, group: objects.NodeGroup) -> None:
        self.cfg = cfg
        self.group = group


def _group_nodes(item: GroupItem) -> list[str]:
    return [item.cfg.node_name(u) for u in item.cfg.group_nodes(item.group.uuid)]


def _group_instances(item: GroupItem) -> list[str]:
    nodes = set(item.cfg.group_nodes(item.group.uuid))
    return [i.name for i in item.cfg.all_instances() if i.primary_node in nodes]


def _group_ndparams(item: GroupItem) -> dict[str, Any]:
    merged = objects.fill_dict(dict(C.NDC_DEFAULTS), item.cfg.cluster.ndparams)
    return objects.fill_dict(merged, item.group.ndparams)


GROUP_FIELDS: list[Field] = [
    _f("name", "Group", QFT_TEXT, "Group name", lambda i, _l: i.group.name),
    _f("uuid", "UUID", QFT_TEXT, "Group UUID", lambda i, _l: i.group.uuid),
    _f(
        "alloc_policy",
        "AllocPolicy",
        QFT_TEXT,
        "Allocation policy for group",
        lambda i, _l: i.group.alloc_policy,
    ),
    _f("node_cnt", "Nodes", QFT_NUMBER, "Number of nodes", lambda i, _l: len(_group_nodes(i))),
    _f("node_list", "NodeList", QFT_OTHER, "List of nodes", lambda i, _l: _group_nodes(i)),
    _f(
        "pinst_cnt",
        "Instances",
        QFT_NUMBER,
        "Number of primary instances",
        lambda i, _l: len(_group_instances(i)),
    ),
    _f(
        "pinst_list",
        "InstanceList",
        QFT_OTHER,
        "List of primary instances",
        lambda i, _l: _group_instances(i),
    ),
    _f("ndparams", "NDParams", QFT_OTHER, "Node parameters", lambda i, _l: _group_ndparams(i)),
    _f(
        "custom_ndparams",
        "CustomNDParams",
        QFT_OTHER,
        "Custom node parameters",
        lambda i, _l: dict(i.group.ndparams),
    ),
    _f(
        "ipolicy",
        "InstancePolicy",
        QFT_OTHER,
        "Instance policy limitations (merged)",
        lambda i, _l: objects.fill_dict(i.cfg.cluster.ipolicy, i.group.ipolicy),
    ),
    _f(
        "custom_ipolicy",
        "CustomInstancePolicy",
        QFT_OTHER,
        "Custom instance policy",
        lambda i, _l: dict(i.group.ipolicy),
    ),
    _f(
        "diskparams",
        "DiskParameters",
        QFT_OTHER,
        "Disk parameters (merged)",
        lambda i, _l: dict(i.group.diskparams),
    ),
    _f("tags", "Tags", QFT_OTHER, "Tags", lambda i, _l: list(i.group.tags)),
    _f(
        "serial_no",
        "SerialNo",
        QFT_NUMBER,
        "Group object serial number",
        lambda i, _l: i.group.serial_no,
    ),
    _f("ctime", "CTime", QFT_TIMESTAMP, "Creation timestamp", lambda i, _l: i.group.ctime),
    _f("mtime", "MTime", QFT_TIMESTAMP, "Modification timestamp", lambda i, _l: i.group.mtime),
]


class GroupQuery(TableQueryResource):
    NAME = "group"
    DEFAULT_FIELDS = ("name", "node_cnt", "pinst_cnt", "alloc_policy", "ndparams")
    FIELDS = GROUP_FIELDS

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[GroupItem]:
        cfg = ctx.cfg
        if not names:
            return [GroupItem(cfg, g) for g in cfg.all_groups()]
        out = []
        for name in names:
            group = cfg.get_group_by_name(name) or cfg.get_group(name)
            if group is None:
                continue
            out.append(GroupItem(cfg, group))
        return out


register_query(NodeQuery())
register_query(GroupQuery())
