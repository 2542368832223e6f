"""Iallocator protocol v2: request parsing into a `Cluster` (Ganeti ``Backend/IAlloc.hs``).

Keys read are those Ganeti's hail reads: ``nodegroups``, ``nodes``,
``instances``, ``cluster_tags``, ``enabled_hypervisors`` and ``request``.
Drained nodes are treated as offline; offline or non-vm-capable nodes get zero
resources. With ``enabled_hypervisors[0] == "kvm"`` every node's reserved
memory is replaced by the static KVM node memory (hail's
``--static-kvm-node-memory``, default 4096 MiB), as Ganeti does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from corral.htools.cluster import Cluster
from corral.htools.types import (
    ALLOC_POLICIES,
    DEFAULT_IPOLICY,
    DISK_TEMPLATES,
    Group,
    HtoolsError,
    Instance,
    IPolicy,
    ISpec,
)

REQUEST_TYPES = (
    "allocate",
    "relocate",
    "change-group",
    "node-evacuate",
    "multi-allocate",
    "allocate-secondary",
)


@dataclasses.dataclass
class Request:
    kind: str
    data: dict[str, Any]


def _get(d: Any, key: str, what: str, typ: type | tuple[type, ...] = object) -> Any:
    if not isinstance(d, dict):
        raise HtoolsError(f"Invalid data for {what}: not a JSON object")
    if key not in d:
        raise HtoolsError(f"Invalid data for {what}: key '{key}' not found")
    val = d[key]
    if typ is not object and (not isinstance(val, typ) or (typ is int and isinstance(val, bool))):
        if typ in (float, (int, float)) and isinstance(val, int) and not isinstance(val, bool):
            return val
        raise HtoolsError(f"Invalid data for {what}: key '{key}' has wrong type")
    return val


def _num(d: Any, key: str, what: str, integer: bool = True, default: Any = None) -> Any:
    if type(d) is dict:  # fast path for the common, valid case
        val = d.get(key)
        if type(val) is int and 0 <= val <= 2**52:
            return val
    if default is not None and isinstance(d, dict) and key not in d:
        return default
    val = _get(d, key, what)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise HtoolsError(f"Invalid data for {what}: key '{key}' is not a number")
    if isinstance(val, float) and (val != val or val in (float("inf"), float("-inf"))):
        raise HtoolsError(f"Invalid data for {what}: key '{key}' is not a finite number")
    if integer:
        if isinstance(val, float) and not val.is_integer():
            raise HtoolsError(f"Invalid data for {what}: key '{key}' is not an integer")
        val = int(val)
    if val != val or val < 0:
        raise HtoolsError(f"Invalid data for {what}: key '{key}' is negative")
    if val > 2**52:
        raise HtoolsError(f"Invalid data for {what}: key '{key}' is too large")
    return val


def _ispec(d: Any, what: str) -> ISpec:
    return ISpec(
        _num(d, "memory-size", what),
        _num(d, "cpu-count", what),
        _num(d, "disk-size", what),
        _num(d, "disk-count", what),
        _num(d, "nic-count", what),
        _num(d, "spindle-use", what),
    )


def parse_ipolicy(d: Any, what: str) -> IPolicy:
    if not isinstance(d, dict):
        return DEFAULT_IPOLICY
    mm = _get(d, "minmax", what, list)
    minmax = tuple(
        (_ispec(_get(x, "min", what), what), _ispec(_get(x, "max", what), what)) for x in mm
    )
    dts = tuple(_get(d, "disk-templates", what, list))
    for dt in dts:
        if dt not in DISK_TEMPLATES:
            raise HtoolsError(f"Invalid data for {what}: unknown disk template '{dt}'")
    return IPolicy(
        minmax,
        _ispec(_get(d, "std", what), what),
        dts,
        float(_num(d, "vcpu-ratio", what, integer=False)),
        float(_num(d, "spindle-ratio", what, integer=False)),
    )


_MOVABLE = ("drbd", "sharedfile", "gluster", "blockdev", "rbd", "ext")
_MAXNUM = 2**52


def _fast_instance(name: str, d: dict[str, Any]) -> Instance | None:
    """`instance_from_dict` for the common, well-formed entry; None = take the slow path.

    Accepts only what the slow path accepts unchanged (plain ints in range,
    known template, list of disk dicts, string tags), so results are equal.
    """
    mem, vcpus, dt = d.get("memory"), d.get("vcpus"), d.get("disk_template")
    if type(mem) is not int or type(vcpus) is not int or type(dt) is not str:
        return None
    if not (0 <= mem <= _MAXNUM and 0 <= vcpus <= _MAXNUM) or dt not in DISK_TEMPLATES:
        return None
    raw = d.get("disks")
    if type(raw) is not list:
        return None
    disks: list[tuple[int, int | None]] = []
    total = 0
    for dk in raw:
        if type(dk) is not dict:
            return None
        size, sp = dk.get("size"), dk.get("spindles")
        if type(size) is not int or not 0 <= size <= _MAXNUM:
            return None
        if sp is not None and (type(sp) is not int or sp < 0):
            return None
        disks.append((size, sp))
        total += size
    if "disk_space_total" in d:
        total = d["disk_space_total"]
        if type(total) is not int or not 0 <= total <= _MAXNUM:
            return None
    tags = d.get("tags", [])
    if type(tags) is not list or not all(type(t) is str for t in tags):
        return None
    su = 1
    if "spindle_use" in d:
        su = d["spindle_use"]
        if type(su) is not int or not 0 <= su <= _MAXNUM:
            return None
    nics = d.get("nics", [{}])
    inst = Instance(
        name=name, mem=mem, dsk=total, vcpus=vcpus, disk_template=dt, tags=list(tags),
        spindle_use=su, disks=disks, nics=len(nics) if isinstance(nics, list) else 1,
    )  # fmt: skip
    inst.movable = dt in _MOVABLE
    return inst


def instance_from_dict(name: str, d: Any, what: str) -> Instance:
    """The instance fields shared by ``instances`` entries and allocate requests."""
    if type(d) is dict:
        fast = _fast_instance(name, d)
        if fast is not None:
            return fast
    mem = _num(d, "memory", what)
    vcpus = _num(d, "vcpus", what)
    dt = _get(d, "disk_template", what, str)
    if dt not in DISK_TEMPLATES:
        raise HtoolsError(f"Invalid data for {what}: unknown disk template '{dt}'")
    disks_raw = _get(d, "disks", what, list)
    disks: list[tuple[int, int | None]] = []
    for dk in disks_raw:
        size = _num(dk, "size", what)
        sp = dk.get("spindles") if isinstance(dk, dict) else None
        if sp is not None and (not isinstance(sp, int) or isinstance(sp, bool) or sp < 0):
            raise HtoolsError(f"Invalid data for {what}: bad disk spindles")
        disks.append((size, sp))
    dsk = _num(d, "disk_space_total", what, default=sum(x for x, _ in disks))
    tags = d.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HtoolsError(f"Invalid data for {what}: bad tags")
    su = _num(d, "spindle_use", what, default=1) if "spindle_use" in d else 1
    nics = d.get("nics", [{}])
    inst = Instance(
        name=name, mem=mem, dsk=dsk, vcpus=vcpus, disk_template=dt, tags=list(tags),
        spindle_use=su, disks=disks, nics=len(nics) if isinstance(nics, list) else 1,
    )  # fmt: skip
    inst.movable = dt in _MOVABLE
    return inst


_ADMIN_STATES = {"up": "running", "down": "ADMIN_down", "offline": "ADMIN_offline"}


def parse_request(req: Any, static_kvm_mem: int | None = 4096) -> tuple[Cluster, Request]:
    """Build the cluster and the request from a parsed iallocator v2 document."""
    if not isinstance(req, dict):
        raise HtoolsError("Invalid iallocator request: not a JSON object")
    c = Cluster()
    groups = _get(req, "nodegroups", "request", dict)
    for uuid, g in groups.items():
        what = f"group '{uuid}'"
        pol = _get(g, "alloc_policy", what, str)
        if pol not in ALLOC_POLICIES:
            raise HtoolsError(f"Invalid data for {what}: bad alloc_policy '{pol}'")
        grp = Group(
            _get(g, "name", what, str), uuid, pol, list(g.get("tags", []) or []),
            list(g.get("networks", []) or []), parse_ipolicy(g.get("ipolicy"), what),
        )  # fmt: skip
        c.add_group(grp)
    hvs = _get(req, "enabled_hypervisors", "request", list)
    if hvs and hvs[0] == "kvm" and static_kvm_mem:
        c.static_node_mem = static_kvm_mem
    nodes = _get(req, "nodes", "request", dict)
    for name, nd in nodes.items():
        what = f"node '{name}'"
        offline = bool(_get(nd, "offline", what, bool))
        drained = bool(_get(nd, "drained", what, bool))
        gdx = c.group_index(_get(nd, "group", what, str), name)
        ndp = _get(nd, "ndparams", what, dict)
        excl = bool(ndp.get("exclusive_storage", False))
        vm_capable = bool(nd.get("vm_capable", True))
        live = not offline and vm_capable

        def lv(
            key: str, integer: bool = True, nd: Any = nd, what: str = what, live: bool = live
        ) -> Any:
            return _num(nd, key, what, integer) if live else 0

        if excl:
            sp = lv("total_spindles")
        else:
            sp = _num(ndp, "spindle_count", what) if "spindle_count" in ndp else 1
        c.add_node(
            name=name, tmem=float(lv("total_memory", False)), nmem=lv("reserved_memory"),
            fmem=lv("free_memory"), tdsk=float(lv("total_disk", False)), fdsk=lv("free_disk"),
            tcpu=float(lv("total_cpus", False)),
            offline=(not live) or drained, master=False, group=gdx, spindles=sp,
            tags=list(nd.get("tags", []) or []), excl=excl,
            fsp=lv("free_spindles") if "free_spindles" in nd or not live else 0,
            ncpu=lv("reserved_cpus") if "reserved_cpus" in nd or not live else 1, speed=1.0,
        )  # fmt: skip
    insts = _get(req, "instances", "request", dict)
    for name, d in insts.items():
        what = f"instance '{name}'"
        inst = instance_from_dict(name, d, what)
        st = d.get("admin_state", "up")
        inst.status = _ADMIN_STATES.get(st, "")
        if not inst.status:
            raise HtoolsError(f"Invalid data for {what}: bad admin_state '{st}'")
        inst.forthcoming = bool(d.get("forthcoming", False))
        nl = _get(d, "nodes", what, list)
        if not nl:
            raise HtoolsError(f"Invalid data for {what}: empty node list")
        inst.pnode = c.lookup_node(nl[0], name)
        inst.snode = c.lookup_node(nl[1], name) if len(nl) > 1 else -1
        if inst.snode == inst.pnode:
            raise HtoolsError(f"Instance {name} has same primary and secondary node - {nl[0]}")
        c.add_instance(inst)
    tags = req.get("cluster_tags", [])
    c.cluster_tags = list(tags) if isinstance(tags, list) else []
    # Ganeti's hail reads only the groups' policies; its cluster policy stays the
    # built-in default (what `hail -S` writes), whatever the request says
    c.ipolicy = DEFAULT_IPOLICY
    c.finalize()
    rq = _get(req, "request", "request", dict)
    kind = _get(rq, "type", "request", str)
    if kind not in REQUEST_TYPES:
        raise HtoolsError(f"Invalid request type '{kind}'")
    return c, Request(kind, rq)
