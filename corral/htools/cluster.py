"""The cluster model: groups, nodes (as arrays), instances, tags, policy.

A `Cluster` is built by a loader (text file, iallocator request, later the live
cluster) through `add_group`, `add_node`, `add_instance`, then `finalize()`,
which does what Ganeti's ``Loader.mergeData`` + ``checkData`` do: attach
instances to their nodes, compute peer (N+1) reservations, missing memory,
exclusion/location tags and per-group policy limits.

Node state is a struct of numpy arrays (`nodes`, keys = `nodeops.FIELDS`) plus
a few Python lists (instance lists, peer maps, tag maps). Placement changes go
through `add_pri` / `add_sec` / `remove_pri` / `remove_sec`, which use the
same arithmetic as the vectorised candidate scoring (`nodeops`), so what the
search predicts is exactly what is applied.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.nodeops import View
from corral.htools.score import Stats
from corral.htools.types import (
    DEFAULT_IPOLICY,
    FailMode,
    Group,
    HtoolsError,
    Instance,
    IPolicy,
)

NDArray = np.ndarray[Any, Any]

_EMPTY_ROW = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

EXTAGS_PREFIX = "htools:iextags:"
LOCATION_PREFIX = "htools:nlocation:"
DESIRED_LOCATION_PREFIX = "htools:desiredlocation:"


@dataclasses.dataclass
class _NodeIn:
    name: str
    tmem: float
    nmem: int
    fmem: int
    tdsk: float
    fdsk: int
    tcpu: float
    offline: bool
    master: bool
    group: int
    spindles: int
    tags: list[str]
    excl: bool
    fsp: int
    ncpu: int
    speed: float


class Cluster:
    """Groups, nodes, instances and cluster-wide data of one htools run."""

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self.group_by_uuid: dict[str, int] = {}
        self._nin: list[_NodeIn] = []
        self.names: list[str] = []
        self.node_index: dict[str, int] = {}
        self.node_tags: list[list[str]] = []
        self.master: list[bool] = []
        self.group: NDArray = np.zeros(0, dtype=np.int64)
        self.nodes: View = {}
        self.plist: list[list[int]] = []
        self.slist: list[list[int]] = []
        self.plist_f: list[list[int]] = []
        self.slist_f: list[list[int]] = []
        self.peers: list[dict[int, int]] = []
        self.ptags: list[dict[str, int]] = []
        self.loc_tags: list[frozenset[str]] = []
        self.imap: list[dict[tuple[str, str], int]] = []
        self.instances: list[Instance] = []
        self.inst_index: dict[str, int] = {}
        self.cluster_tags: list[str] = []
        self.ipolicy: IPolicy = DEFAULT_IPOLICY
        self.warnings: list[str] = []
        self.static_node_mem: int | None = None
        self.min_disk_ratio = 0.0
        self._journals: list[dict[Any, Any]] = []
        self._pm_rows: list[tuple[NDArray, NDArray]] | None = None
        self._pm_dirty: set[int] = set()
        self._pm_nz: tuple[NDArray, NDArray, NDArray] | None = None

    # -- building --------------------------------------------------------------
    def add_group(self, group: Group) -> int:
        if group.uuid in self.group_by_uuid:
            raise HtoolsError(f"Duplicate group uuid '{group.uuid}'")
        self.groups.append(group)
        self.group_by_uuid[group.uuid] = len(self.groups) - 1
        return len(self.groups) - 1

    def group_index(self, uuid: str, node: str) -> int:
        try:
            return self.group_by_uuid[uuid]
        except KeyError:
            raise HtoolsError(f"Unknown group '{uuid}' for node {node}") from None

    def find_group(self, ident: str) -> int:
        """Group index by name or uuid."""
        if ident in self.group_by_uuid:
            return self.group_by_uuid[ident]
        for i, g in enumerate(self.groups):
            if g.name == ident:
                return i
        raise HtoolsError(f"Unknown node group '{ident}'")

    def add_node(self, **kw: Any) -> int:
        nd = _NodeIn(**kw)
        if nd.name in self.node_index:
            raise HtoolsError(f"Duplicate node name '{nd.name}'")
        self.node_index[nd.name] = len(self._nin)
        self._nin.append(nd)
        self.names.append(nd.name)
        return len(self._nin) - 1

    def lookup_node(self, name: str, inst: str) -> int:
        try:
            return self.node_index[name]
        except KeyError:
            raise HtoolsError(f"Unknown node '{name}' for instance {inst}") from None

    def add_instance(self, inst: Instance) -> int:
        if inst.name in self.inst_index:
            raise HtoolsError(f"Duplicate instance name '{inst.name}'")
        if inst.mem < 0 or inst.dsk < 0 or inst.vcpus < 0:
            raise HtoolsError(f"Invalid negative size for instance {inst.name}")
        inst.idx = len(self.instances)
        self.instances.append(inst)
        self.inst_index[inst.name] = inst.idx
        return inst.idx

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    def finalize(self) -> None:
        """Attach instances to nodes and derive everything Ganeti's loader does."""
        nin = self._nin
        n = len(nin)

        def f(attr: str) -> NDArray:
            return np.array([getattr(x, attr) for x in nin])

        v: View = {}
        v["tmem"] = f("tmem").astype(float).reshape(n)
        v["tmem_i"] = np.trunc(v["tmem"]).astype(np.int64)
        nmem = f("nmem").astype(np.int64).reshape(n)
        if self.static_node_mem is not None:
            nmem = np.where(f("offline").astype(bool).reshape(n), nmem, self.static_node_mem)
        v["nmem"] = nmem
        v["imem"] = np.zeros(n, dtype=np.int64)
        v["xmem"] = np.zeros(n, dtype=np.int64)
        v["fmem"] = f("fmem").astype(np.int64).reshape(n)
        v["fmem_f"] = v["fmem"].copy()
        v["tdsk"] = f("tdsk").astype(float).reshape(n)
        v["fdsk"] = f("fdsk").astype(np.int64).reshape(n)
        v["fdsk_f"] = v["fdsk"].copy()
        v["tcpu"] = f("tcpu").astype(float).reshape(n)
        v["speed"] = f("speed").astype(float).reshape(n)
        v["ucpu"] = f("ncpu").astype(np.int64).reshape(n)
        v["ucpu_f"] = v["ucpu"].copy()
        v["tsp"] = f("spindles").astype(np.int64).reshape(n)
        v["fsp"] = f("fsp").astype(np.int64).reshape(n)
        v["fsp_f"] = v["fsp"].copy()
        v["isp"] = np.zeros(n)
        v["isp_f"] = np.zeros(n)
        self.group = f("group").astype(np.int64).reshape(n)
        ratio = np.array([self.groups[g].ipolicy.spindle_ratio for g in self.group], dtype=float)
        v["hisp"] = ratio.reshape(n) * v["tsp"]
        v["vratio"] = np.array(
            [self.groups[g].ipolicy.vcpu_ratio for g in self.group], dtype=float
        ).reshape(n)
        for k in ("lc", "lm", "ld", "ln"):
            v[k] = np.zeros(n)
        for k in ("rmem", "npri", "nsec", "conflicts", "locscore"):
            v[k] = np.zeros(n, dtype=np.int64)
        v["lodsk"] = np.floor(self.min_disk_ratio * v["tdsk"]).astype(np.int64)
        v["failn1"] = np.zeros(n, dtype=bool)
        v["offline"] = f("offline").astype(bool).reshape(n)
        v["excl"] = f("excl").astype(bool).reshape(n)
        self.nodes = v
        self.node_tags = [x.tags for x in nin]
        self.master = [x.master for x in nin]
        self.plist = [[] for _ in range(n)]
        self.slist = [[] for _ in range(n)]
        self.plist_f = [[] for _ in range(n)]
        self.slist_f = [[] for _ in range(n)]
        self.peers = [{} for _ in range(n)]
        self.ptags = [{} for _ in range(n)]
        self.imap = [{} for _ in range(n)]
        loc_prefixes = [
            t[len(LOCATION_PREFIX) :] for t in self.cluster_tags if t.startswith(LOCATION_PREFIX)
        ]
        self.loc_tags = [
            frozenset(t for t in tags if any(t.startswith(p + ":") for p in loc_prefixes))
            for tags in self.node_tags
        ]
        ex_prefixes = [
            t[len(EXTAGS_PREFIX) :] for t in self.cluster_tags if t.startswith(EXTAGS_PREFIX)
        ]
        ex_prefixes = [p for p in ex_prefixes if p]
        dl_prefixes = [
            t[len(DESIRED_LOCATION_PREFIX) :]
            for t in self.cluster_tags
            if t.startswith(DESIRED_LOCATION_PREFIX)
        ]
        for inst in self.instances:
            inst.excl_tags = [t for t in inst.tags if any(t.startswith(p) for p in ex_prefixes)]
            # Ganeti 3.0 compares the whole tag ("rack:r1") with the nodes'
            # location tags: desired prefix "rack" + instance tag "rack:r1" wants
            # a node tagged "rack:r1" (the prefix is not stripped)
            inst.desired_locations = frozenset(
                t for t in inst.tags if any(t.startswith(p + ":") for p in dl_prefixes)
            )
            self._set_location_score(inst)
        for inst in self.instances:
            self._set_initial(inst)
        # peers, r_mem, N+1 (Node.buildPeers: compares the *reported* free memory)
        for i in range(n):
            pm: dict[int, int] = {}
            for idx in self.slist[i]:
                inst = self.instances[idx]
                mem = inst.mem if inst.uses_sec_mem and not inst.forthcoming else 0
                pm[inst.pnode] = pm.get(inst.pnode, 0) + mem
            self.peers[i] = pm
            r = max(pm.values(), default=0)
            v["rmem"][i] = r
            v["failn1"][i] = v["fmem"][i] < r
        # missing memory (Loader.checkData)
        for i in range(n):
            imem = sum(
                self.instances[x].mem for x in self.plist[i] if self.instances[x].uses_memory
            )
            v["imem"][i] = imem
            dmem = int(v["tmem_i"][i]) - int(v["nmem"][i]) - int(v["fmem"][i]) - imem
            v["xmem"][i] = dmem
            ddsk = int(np.trunc(v["tdsk"][i])) - int(v["fdsk"][i])
            ddsk -= sum(self.instances[x].dsk for x in self.plist[i] + self.slist[i])
            if dmem > 512 or ddsk > 1024:
                self.warnings.append(
                    f"node {self.names[i]} is missing {dmem} MB ram and {ddsk // 1024} GB disk"
                )
        for i in range(n):
            t = self.ptags[i]
            v["conflicts"][i] = sum(t.values()) - len(t)

    def _set_location_score(self, inst: Instance) -> None:
        if inst.pnode < 0:
            inst.location_score = 0
            return
        if inst.snode >= 0:
            inst.location_score = len(self.loc_tags[inst.pnode] & self.loc_tags[inst.snode])
        else:
            inst.location_score = 0

    def _pri_loc_score(self, n: int, inst: Instance) -> int:
        dsrd = len(inst.desired_locations) - len(inst.desired_locations & self.loc_tags[n])
        return inst.location_score + dsrd

    def _set_initial(self, inst: Instance) -> None:
        """Ganeti's ``Node.setPri``/``setSec`` at load time (no resource checks)."""
        v = self.nodes
        p, s = inst.pnode, inst.snode
        uses_disk = inst.uses_local_storage
        su = float(inst.spindle_use) if uses_disk else 0.0
        if inst.forthcoming:
            self.plist_f[p].append(inst.idx)
        else:
            self.plist[p].append(inst.idx)
        self._add_tags(p, inst)
        if inst.not_offline:
            v["ucpu_f"][p] += inst.vcpus
        if not inst.uses_memory:
            v["fmem_f"][p] -= inst.mem
        if not v["excl"][p]:
            v["isp_f"][p] += su
        if inst.forthcoming:
            if uses_disk:
                v["fdsk_f"][p] -= inst.dsk
        else:
            if inst.not_offline:
                v["ucpu"][p] += inst.vcpus
            for k, u in zip(("lc", "lm", "ld", "ln"), inst.util, strict=True):
                v[k][p] += u
            if not v["excl"][p]:
                v["isp"][p] += su
            v["npri"][p] += 1
            v["locscore"][p] += self._pri_loc_score(p, inst)
            self._imap_add(p, inst, 1)
        if s < 0:
            return
        if inst.forthcoming:
            self.slist_f[s].append(inst.idx)
            if uses_disk:
                v["fdsk_f"][s] -= inst.dsk
        else:
            self.slist[s].append(inst.idx)
            v["ld"][s] += inst.util[2]
            if not v["excl"][s]:
                v["isp"][s] += su
            v["nsec"][s] += 1
        if not v["excl"][s]:
            v["isp_f"][s] += su

    def _add_tags(self, n: int, inst: Instance) -> None:
        t = self.ptags[n]
        for tag in inst.excl_tags:
            t[tag] = t.get(tag, 0) + 1

    def _del_tags(self, n: int, inst: Instance) -> None:
        t = self.ptags[n]
        for tag in inst.excl_tags:
            c = t.get(tag, 0)
            if c > 1:
                t[tag] = c - 1
            else:
                t.pop(tag, None)

    def _imap_add(self, n: int, inst: Instance, delta: int) -> None:
        if not inst.excl_tags or not self.loc_tags[n]:
            return
        m = self.imap[n]
        for loc in self.loc_tags[n]:
            for ex in inst.excl_tags:
                key = (loc, ex)
                c = m.get(key, 0) + delta
                if c > 0:
                    m[key] = c
                else:
                    m.pop(key, None)

    # -- views and score -----------------------------------------------------------
    def view(self, idx: NDArray | list[int] | int) -> View:
        ix = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        return {k: a[ix] for k, a in self.nodes.items()}

    # -- undo journal (nested checkpoints) -------------------------------------------
    def checkpoint(self) -> None:
        """Start recording changes so that `rollback` can undo them."""
        self._journals.append({})

    def commit(self) -> None:
        """Keep the changes since the last checkpoint (merging into an outer one)."""
        j = self._journals.pop()
        if self._journals:
            outer = self._journals[-1]
            for k, val in j.items():
                outer.setdefault(k, val)

    def rollback(self) -> None:
        j = self._journals.pop()
        for key, val in j.items():
            if key[0] == "n":
                n = key[1]
                view, pl, sl, plf, slf, peers, ptags, imap = val
                for k, a in self.nodes.items():
                    a[n] = view[k]
                self.plist[n], self.slist[n] = pl, sl
                self.plist_f[n], self.slist_f[n] = plf, slf
                self.peers[n], self.ptags[n], self.imap[n] = peers, ptags, imap
                self._pm_dirty.add(n)
            else:
                inst = self.instances[key[1]]
                inst.pnode, inst.snode, inst.location_score = val

    def _touch(self, n: int) -> None:
        if not self._journals:
            return
        j = self._journals[-1]
        key = ("n", n)
        if key in j:
            return
        j[key] = (
            {k: a[n].copy() for k, a in self.nodes.items()},
            list(self.plist[n]), list(self.slist[n]), list(self.plist_f[n]),
            list(self.slist_f[n]), dict(self.peers[n]), dict(self.ptags[n]), dict(self.imap[n]),
        )  # fmt: skip

    def store(self, idx: NDArray | list[int] | int, v: View) -> None:
        ix = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        for n in ix:
            self._touch(int(n))
            self._pm_dirty.add(int(n))
        for k, a in self.nodes.items():
            a[ix] = v[k]

    def map_value(self, nodes: NDArray | None = None) -> float:
        """Location-exclusion map statistic over the online nodes given."""
        if not any(self.imap):
            return 0.0
        total: dict[tuple[str, str], int] = {}
        idx = range(self.n_nodes) if nodes is None else nodes
        for i in idx:
            if self.nodes["offline"][i]:
                continue
            for k, c in self.imap[i].items():
                total[k] = total.get(k, 0) + c
        return float(sum(c - 1 for c in total.values()))

    def metrics(self, nodes: NDArray | None = None) -> NDArray:
        v = self.nodes if nodes is None else self.view(nodes)
        return score.node_metrics(v)

    def score(self, nodes: NDArray | None = None) -> float:
        return self.score_details(nodes)[0]

    def score_details(self, nodes: NDArray | None = None) -> tuple[float, NDArray]:
        m = self.metrics(nodes)
        off = self.nodes["offline"] if nodes is None else self.nodes["offline"][nodes]
        return score.exact_score(m, ~off, self.map_value(nodes))

    def stats(self, nodes: NDArray | None = None) -> Stats:
        m = self.metrics(nodes)
        off = self.nodes["offline"] if nodes is None else self.nodes["offline"][nodes]
        return score.Stats(m, ~off, self.map_value(nodes))

    # -- peer helpers ------------------------------------------------------------
    def peer_entries(self) -> tuple[NDArray, NDArray, NDArray]:
        """Peer entries as arrays (secondary node, primary node, memory), cached.

        Kept per node and rebuilt only for the nodes changed since the last call
        (hspace asks after every placement, hail once).
        """
        n = self.n_nodes
        if self._pm_rows is None or len(self._pm_rows) != n:
            self._pm_rows = [_EMPTY_ROW] * n
            self._pm_dirty = set(range(n))
        elif not self._pm_dirty and self._pm_nz is not None:
            return self._pm_nz
        rows = self._pm_rows
        for i in self._pm_dirty:
            d = self.peers[i]
            if d:
                rows[i] = (
                    np.fromiter(d.keys(), dtype=np.int64, count=len(d)),
                    np.fromiter(d.values(), dtype=np.int64, count=len(d)),
                )
            else:
                rows[i] = _EMPTY_ROW
        self._pm_dirty = set()
        lens = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=n)
        xs = np.repeat(np.arange(n, dtype=np.int64), lens)
        if len(xs):
            ps = np.concatenate([r[0] for r in rows])
            vs = np.concatenate([r[1] for r in rows])
        else:
            ps = vs = np.zeros(0, dtype=np.int64)
        self._pm_nz = (xs, ps, vs)
        return self._pm_nz

    def peer_of(self, nodes: NDArray, pnode: int) -> NDArray:
        return np.array([self.peers[int(i)].get(pnode, 0) for i in nodes], dtype=np.int64)

    def peer_max_other(self, node: int, pnode: int) -> int:
        return max((m for p, m in self.peers[node].items() if p != pnode), default=0)

    def tag_reject(self, nodes: NDArray, inst: Instance) -> NDArray | None:
        if not inst.excl_tags:
            return None
        return np.array(
            [any(t in self.ptags[int(i)] for t in inst.excl_tags) for i in nodes], dtype=bool
        )

    # -- mutations -------------------------------------------------------------
    def add_pri(self, n: int, inst: Instance, strict: bool = True) -> FailMode:
        v = self.view(n)
        new, fail = nodeops.add_pri(v, inst, strict, self.tag_reject(np.array([n]), inst))
        if fail[0]:
            return FailMode(int(fail[0]))
        self._touch(n)
        if inst.excl_tags:
            new["conflicts"] = new["conflicts"] + sum(
                1 for t in inst.excl_tags if t in self.ptags[n]
            )
        self._add_tags(n, inst)
        if inst.forthcoming:
            self.plist_f[n].append(inst.idx)
        else:
            self.plist[n].append(inst.idx)
            new["locscore"] = new["locscore"] + self._pri_loc_score(n, inst)
            self._imap_add(n, inst, 1)
        self.store(n, new)
        return FailMode.OK

    def add_sec(
        self, n: int, inst: Instance, pdx: int, strict: bool = True, ignore_disks: bool = False
    ) -> FailMode:
        v = self.view(n)
        peer = np.array([self.peers[n].get(pdx, 0)], dtype=np.int64)
        new, fail = nodeops.add_sec(v, inst, peer, strict, ignore_disks)
        if fail[0]:
            return FailMode(int(fail[0]))
        self._touch(n)
        if inst.forthcoming:
            self.slist_f[n].append(inst.idx)
        else:
            self.slist[n].append(inst.idx)
            secmem = inst.mem if inst.uses_sec_mem else 0
            self.peers[n][pdx] = int(peer[0]) + secmem
        self.store(n, new)
        return FailMode.OK

    def remove_pri(self, n: int, inst: Instance) -> None:
        self._touch(n)
        new = nodeops.remove_pri(self.view(n), inst)
        if inst.excl_tags:
            new["conflicts"] = new["conflicts"] - sum(
                1 for t in inst.excl_tags if self.ptags[n].get(t, 0) > 1
            )
        self._del_tags(n, inst)
        if inst.forthcoming:
            self.plist_f[n].remove(inst.idx)
        else:
            self.plist[n].remove(inst.idx)
            new["locscore"] = new["locscore"] - self._pri_loc_score(n, inst)
            self._imap_add(n, inst, -1)
        self.store(n, new)

    def remove_sec(self, n: int, inst: Instance) -> None:
        self._touch(n)
        p = inst.pnode
        old = self.peers[n].get(p, 0)
        mo = self.peer_max_other(n, p)
        new = nodeops.remove_sec(
            self.view(n), inst, np.array([old], dtype=np.int64), np.array([mo], dtype=np.int64)
        )
        if inst.forthcoming:
            self.slist_f[n].remove(inst.idx)
        else:
            self.slist[n].remove(inst.idx)
            secmem = inst.mem if inst.uses_sec_mem else 0
            nv = old - secmem
            if nv > 0:
                self.peers[n][p] = nv
            else:
                self.peers[n].pop(p, None)
        self.store(n, new)

    def set_nodes(self, inst: Instance, pnode: int, snode: int) -> None:
        """Record new nodes of an instance (after the node updates were applied)."""
        if self._journals:
            self._journals[-1].setdefault(
                ("i", inst.idx), (inst.pnode, inst.snode, inst.location_score)
            )
        inst.pnode, inst.snode = pnode, snode
        self._set_location_score(inst)

    def set_location_score(self, inst: Instance, pnode: int, snode: int) -> None:
        """Give ``inst`` the location score of the node pair (pnode, snode), journaled.

        Ganeti 3.0's moves do this before adding the instance to its new primary,
        so that the node's location score counts the new pair's common tags.
        """
        if self._journals:
            self._journals[-1].setdefault(
                ("i", inst.idx), (inst.pnode, inst.snode, inst.location_score)
            )
        inst.location_score = len(self.loc_tags[pnode] & self.loc_tags[snode])

    def copy(self) -> Cluster:
        """Independent copy for simulations (instances are copied too)."""
        c = copy.copy(self)
        c.nodes = {k: a.copy() for k, a in self.nodes.items()}
        for attr in ("plist", "slist", "plist_f", "slist_f"):
            setattr(c, attr, [list(x) for x in getattr(self, attr)])
        c.peers = [dict(x) for x in self.peers]
        c.ptags = [dict(x) for x in self.ptags]
        c.imap = [dict(x) for x in self.imap]
        c.instances = [dataclasses.replace(i) for i in self.instances]
        c.inst_index = dict(self.inst_index)
        c.warnings = list(self.warnings)
        c._journals = []
        c._pm_rows = None if self._pm_rows is None else list(self._pm_rows)
        c._pm_dirty = set(self._pm_dirty)
        c._pm_nz = self._pm_nz
        return c

    def group_nodes(self, gidx: int) -> NDArray:
        return np.flatnonzero(self.group == gidx)

    def online_in_group(self, gidx: int) -> NDArray:
        return np.flatnonzero((self.group == gidx) & ~self.nodes["offline"])

    def instance_group(self, inst: Instance) -> int | None:
        """Group of the instance's nodes; None when they span groups."""
        g = int(self.group[inst.pnode])
        if inst.snode >= 0 and int(self.group[inst.snode]) != g:
            return None
        return g
