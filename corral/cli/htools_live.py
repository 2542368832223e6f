"""hbal/hspace ``-L [SOCKET]``: the live corral cluster as an htools `Cluster`.

Ganeti's LUXI backend (``HTools/Backend/Luxi.hs``) asks the master four
questions and builds the same model its text backend builds; this module does
the same through corral's local API (`corral.api.client.Client`):

* ``query("group", [uuid, name, alloc_policy, ipolicy, tags])``: groups with
  their merged instance policy;
* ``query("node", [...])``: memory (``mtotal``/``mnode``/``mfree``), disk
  (``dtotal``/``dfree``), cpus (``ctotal``/``cnos``), ``offline``/``drained``/
  ``vm_capable``, spindles, group, tags, exclusive storage, cpu speed. As in
  Ganeti a node is *live* when it is online and vm-capable; the resources of a
  non-live node are not read (they are zero), and a node is offline for htools
  when it is not live or drained;
* ``query("instance", [...])``: memory is ``oper_ram`` when the hypervisor
  reports it, else ``be/memory`` (= maxmem); ``disk_usage`` is the space
  taken on each node; ``be/vcpus``, ``status``, ``pnode``, first of
  ``snodes``, tags, ``be/auto_balance``, ``disk_template``,
  ``be/spindle_use``, disk sizes/spindles, ``forthcoming``;
* ``QueryClusterInfo``: cluster tags, cluster ipolicy, master node.

A field that is not available for a live object (e.g. the live memory of a
node that did not answer) is an error, in Ganeti's wording: ``Node 'x', error
while reading attribute 'mtotal': No data for a field``. Every failure is
reported as ``failed to load data, aborting: ...`` (`HtoolsError`).

`register()` plugs `LiveLoader` into `corral.htools.loader.LIVE_LOADERS`
(the htools layer itself never talks to the API), together with the ``-m``
source, `corral.cli.htools_rapi.RapiLoader`, which turns RAPI answers into
the same rows and builds them with the same `build_cluster`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from corral import errors
from corral.htools.cluster import Cluster
from corral.htools.ialloc import parse_ipolicy
from corral.htools.loader import LIVE_LOADERS, Loader
from corral.htools.types import (
    ALLOC_POLICIES,
    DISK_TEMPLATES,
    INSTANCE_STATUSES,
    MOVABLE_TEMPLATES,
    Group,
    HtoolsError,
    Instance,
    IPolicy,
)

# Fields asked for, in Ganeti's order (Backend/Luxi.hs).
GROUP_FIELDS = ["uuid", "name", "alloc_policy", "ipolicy", "tags"]
NODE_FIELDS = [
    "name", "mtotal", "mnode", "mfree", "dtotal", "dfree", "ctotal", "cnos", "offline",
    "drained", "vm_capable", "ndp/spindle_count", "group.uuid", "tags",
    "ndp/exclusive_storage", "sptotal", "spfree", "ndp/cpu_speed",
]  # fmt: skip
INSTANCE_FIELDS = [
    "name", "disk_usage", "be/memory", "be/vcpus", "status", "pnode", "snodes", "tags",
    "oper_ram", "be/auto_balance", "disk_template", "be/spindle_use", "disk.sizes",
    "disk.spindles", "forthcoming",
]  # fmt: skip

# Ganeti's query result statuses and the complaint for each non-normal one.
RS_NORMAL = 0
_RS_TEXT = {
    1: "Unknown field",
    2: "No data for a field",
    3: "Ganeti reports unavailable data",
    4: "Ganeti reports resource as offline",
}
DEFAULT_SOCKET = "default"


class LiveData:
    """The four raw answers, as the API returned them (rows of [status, value])."""

    def __init__(
        self,
        groups: list[list[Any]],
        nodes: list[list[Any]],
        instances: list[list[Any]],
        cluster_info: dict[str, Any],
    ) -> None:
        self.groups = groups
        self.nodes = nodes
        self.instances = instances
        self.cluster_info = cluster_info


def read_data(client: Any) -> LiveData:
    """Ask the master for nodes, instances, cluster info and groups."""

    def rows(what: str, fields: list[str]) -> list[list[Any]]:
        answer = client.query(what, fields, None)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise HtoolsError(f"Invalid {what} query result: not a list of rows")
        for row in data:
            if not isinstance(row, list | tuple) or len(row) != len(fields):
                raise HtoolsError(f"Invalid {what} query result: {row!r}")
        return [list(r) for r in data]

    nodes = rows("node", NODE_FIELDS)
    instances = rows("instance", INSTANCE_FIELDS)
    cinfo = client.query_cluster_info()
    if not isinstance(cinfo, dict):
        raise HtoolsError("Cannot parse cluster info, not a JSON record")
    groups = rows("group", GROUP_FIELDS)
    return LiveData(groups, nodes, instances, cinfo)


# -- value conversion (Ganeti's fromJValWithStatus + JSON readers) -----------------------


class _Row:
    """One query row with Ganeti's per-attribute error annotation."""

    def __init__(self, kind: str, fields: Sequence[str], row: list[Any]) -> None:
        self.kind = kind
        self.cells = dict(zip(fields, row, strict=True))
        status, value = self._cell("name")
        if status != RS_NORMAL or not isinstance(value, str):
            raise HtoolsError(f"Parsing new {kind.lower()}: invalid name {value!r}")
        self.name = value

    def _cell(self, field: str) -> tuple[int, Any]:
        cell = self.cells[field]
        if not isinstance(cell, list | tuple) or len(cell) != 2:
            raise HtoolsError(f"{self.kind}: invalid query result cell for '{field}'")
        return int(cell[0]), cell[1]

    def _bad(self, attr: str, why: str) -> HtoolsError:
        return HtoolsError(
            f"{self.kind} '{self.name}', error while reading attribute '{attr}': {why}"
        )

    def available(self, field: str) -> bool:
        return self._cell(field)[0] == RS_NORMAL

    def raw(self, field: str, attr: str | None = None) -> Any:
        status, value = self._cell(field)
        if status != RS_NORMAL:
            raise self._bad(attr or field, _RS_TEXT.get(status, f"Invalid result status {status}"))
        return value

    def text(self, field: str, attr: str | None = None) -> str:
        value = self.raw(field, attr)
        if not isinstance(value, str):
            raise self._bad(attr or field, f"expected a string, got {value!r}")
        return value

    def flag(self, field: str, attr: str | None = None) -> bool:
        value = self.raw(field, attr)
        if not isinstance(value, bool):
            raise self._bad(attr or field, f"expected a boolean, got {value!r}")
        return value

    def number(self, field: str, attr: str | None = None, integer: bool = True) -> Any:
        value = self.raw(field, attr)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(attr or field, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise self._bad(attr or field, f"expected a finite number, got {value!r}")
        if value < 0:
            raise self._bad(attr or field, f"negative value {value!r}")
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise self._bad(attr or field, f"expected an integer, got {value!r}")
            return int(value)
        return float(value)

    def strings(self, field: str, attr: str | None = None) -> list[str]:
        value = self.raw(field, attr)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self._bad(attr or field, f"expected a list of strings, got {value!r}")
        return list(value)


def _merge_ipolicy(base: dict[str, Any], custom: Any) -> dict[str, Any]:
    """`custom` over `base`, the ``std`` spec merged key by key (Ganeti's fillIPolicy)."""
    out = dict(base)
    if not isinstance(custom, dict):
        return out
    for key, value in custom.items():
        if key == "std" and isinstance(value, dict) and isinstance(out.get("std"), dict):
            out["std"] = {**out["std"], **value}
        else:
            out[key] = value
    return out


def _policy(raw: Any, base: dict[str, Any], what: str) -> IPolicy:
    return parse_ipolicy(_merge_ipolicy(base, raw), what)


# -- the model ------------------------------------------------------------------------------


def build_cluster(data: LiveData) -> Cluster:
    """The finalized htools model of the live data (raises `HtoolsError`)."""
    c = Cluster()
    cinfo = data.cluster_info
    from corral import objects  # msgspec: only paid for by -L/-m, not by -t

    cluster_pol = _merge_ipolicy(objects.default_ipolicy(), cinfo.get("ipolicy"))
    c.ipolicy = parse_ipolicy(cluster_pol, "cluster")
    tags = cinfo.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HtoolsError("Parsing cluster info: invalid cluster tags")
    c.cluster_tags = list(tags)
    master = cinfo.get("master")
    for row in data.groups:
        _add_group(c, _Row("Group", GROUP_FIELDS, row), cluster_pol)
    for row in data.nodes:
        _add_node(c, _Row("Node", NODE_FIELDS, row), master)
    for row in data.instances:
        _add_instance(c, _Row("Instance", INSTANCE_FIELDS, row))
    c.finalize()
    return c


def _add_group(c: Cluster, r: _Row, cluster_pol: dict[str, Any]) -> None:
    apol = r.text("alloc_policy")
    if apol not in ALLOC_POLICIES:
        raise r._bad("alloc_policy", f"invalid allocation policy '{apol}'")
    pol = _policy(r.raw("ipolicy"), cluster_pol, f"group '{r.name}'")
    c.add_group(Group(r.name, r.text("uuid"), apol, r.strings("tags"), [], pol))


def _add_node(c: Cluster, r: _Row, master: Any) -> None:
    offline = r.flag("offline")
    drained = r.flag("drained")
    vm_capable = r.flag("vm_capable")
    gdx = c.group_index(r.text("group.uuid"), r.name)
    excl = r.flag("ndp/exclusive_storage", "exclusive_storage")
    speed = r.number("ndp/cpu_speed", "cpu_speed", integer=False)
    live = not offline and vm_capable

    def lv(field: str, integer: bool = True, optional: bool = False) -> Any:
        """A live value; zero for a non-live node (or a missing optional one)."""
        if not live or (optional and not r.available(field)):
            return 0 if integer else 0.0
        return r.number(field, integer=integer)

    spindles = lv("sptotal") if excl else r.number("ndp/spindle_count", "spindles")
    c.add_node(
        name=r.name, tmem=lv("mtotal", integer=False), nmem=lv("mnode"), fmem=lv("mfree"),
        tdsk=lv("dtotal", integer=False, optional=True), fdsk=lv("dfree", optional=True),
        tcpu=lv("ctotal", integer=False), offline=(not live) or drained,
        master=(r.name == master), group=gdx, spindles=spindles, tags=r.strings("tags"),
        excl=excl, fsp=lv("spfree", optional=True), ncpu=lv("cnos"), speed=speed,
    )  # fmt: skip


def _add_instance(c: Cluster, r: _Row) -> None:
    name = r.name
    if r.available("oper_ram") and isinstance(r.raw("oper_ram"), int | float):
        mem = r.number("oper_ram")
    else:
        mem = r.number("be/memory")
    status = r.text("status")
    if status not in INSTANCE_STATUSES:
        raise r._bad("status", f"invalid instance status '{status}'")
    template = r.text("disk_template")
    if template not in DISK_TEMPLATES:
        raise r._bad("disk_template", f"invalid disk template '{template}'")
    pnode = c.lookup_node(r.text("pnode"), name)
    snodes = r.strings("snodes")
    snode = c.lookup_node(snodes[0], name) if snodes else -1
    if snode == pnode:
        raise HtoolsError(f"Instance {name} has same primary and secondary node - {snodes[0]}")
    sizes = r.raw("disk.sizes")
    spindles = r.raw("disk.spindles") if r.available("disk.spindles") else []
    if not isinstance(sizes, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes
    ):
        raise r._bad("disk.sizes", f"expected a list of sizes, got {sizes!r}")
    if not isinstance(spindles, list):
        raise r._bad("disk.spindles", f"expected a list, got {spindles!r}")
    disks: list[tuple[int, int | None]] = []
    for i, size in enumerate(sizes):
        sp = spindles[i] if i < len(spindles) else None
        disks.append((size, sp if isinstance(sp, int) and not isinstance(sp, bool) else None))
    forthcoming = r.flag("forthcoming") if r.available("forthcoming") else False
    inst = Instance(
        name=name, mem=mem, dsk=r.number("disk_usage"), vcpus=r.number("be/vcpus"),
        status=status, auto_balance=r.flag("be/auto_balance", "auto_balance"),
        pnode=pnode, snode=snode, disk_template=template, tags=r.strings("tags"),
        spindle_use=r.number("be/spindle_use"), disks=disks, forthcoming=forthcoming,
    )  # fmt: skip
    inst.movable = template in MOVABLE_TEMPLATES
    c.add_instance(inst)


# -- the loader -------------------------------------------------------------------------------


class LiveLoader:
    """``-L [SOCKET]``: read the cluster through the local API.

    `socket` is the option's argument; ``"default"`` (a bare ``-L``) or None
    means the master socket (``paths.master_socket``). `client` replaces the
    API client (tests); it must offer ``query`` and ``query_cluster_info``.
    """

    def __init__(self, socket: str | None = DEFAULT_SOCKET, client: Any = None) -> None:
        self.socket = None if socket in (None, DEFAULT_SOCKET) else socket
        self.client = client

    def load(self) -> Cluster:
        client = self.client
        try:
            if client is None:
                from corral.api.client import Client

                with Client(self.socket) as own:
                    data = read_data(own)
            else:
                data = read_data(client)
            return build_cluster(data)
        except HtoolsError as err:
            raise HtoolsError(f"failed to load data, aborting: {err}") from None
        except errors.GenericError as err:
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise HtoolsError(f"failed to load data, aborting: {text}") from None


def _live(socket: str) -> Loader:
    return LiveLoader(socket)


def _rapi(cluster: str) -> Loader:
    from corral.cli.htools_rapi import RapiLoader

    return RapiLoader(cluster)


def register() -> None:
    """Plug the ``-L`` and ``-m`` sources into the htools loader."""
    LIVE_LOADERS["luxi"] = _live
    LIVE_LOADERS["rapi"] = _rapi
