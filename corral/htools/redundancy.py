"""Ganeti's global N+1 redundancy check (``GlobalN1.redundant``, hail's capacity check).

A group is redundant when every node could fail: its DRBD primaries fail over
to their secondaries (hard limits only) and its non-mirrored instances,
biggest memory first, can be re-created on another node of the group. Ganeti
re-creates each on the best-scoring node; we pick the node with the most
unallocated memory left, which needs no score evaluation (the check is a
feasibility witness either way).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools import nodeops
from corral.htools.cluster import Cluster
from corral.htools.types import FailMode, Instance

NDArray = np.ndarray[Any, Any]


def can_evacuate(c: Cluster, n: int, escape: NDArray) -> bool:
    """Whether node ``n`` could fail: see the module docstring (caller rolls back)."""
    drbd = [c.instances[i] for i in c.plist[n] if c.instances[i].disk_template == "drbd"]
    for inst in drbd:
        # fail over with hard limits only (the failed node keeps its disks)
        s = inst.snode
        if s < 0:
            return False
        c.remove_pri(n, inst)
        c.remove_sec(s, inst)
        if c.add_pri(s, inst, strict=False) != FailMode.OK:
            return False
        if c.add_sec(n, inst, s, strict=False) != FailMode.OK:
            return False
        c.set_nodes(inst, s, n)
    others = [c.instances[i] for i in c.plist[n] if c.instances[i].disk_template != "drbd"]
    others.sort(key=lambda i: -i.mem)
    targets = escape[escape != n]
    if len(targets) == 0:
        return not others
    for inst in others:
        v = c.view(targets)
        new, fail = nodeops.add_pri(v, inst, strict=False)
        ok = np.flatnonzero(fail == 0)
        if len(ok) == 0:
            return False
        free = nodeops.unallocated(new)[ok]
        t = int(targets[ok[int(np.argmax(free))]])
        if c.add_pri(t, inst, strict=False) != FailMode.OK:
            return False
    return True


def redundant(c: Cluster, gidx: int) -> bool:
    """Ganeti's global N+1 redundancy of one group (every node may fail)."""
    escape = c.online_in_group(gidx)
    if c.nodes["excl"][escape].any():
        return _redundant_slow(c, escape)
    return _redundant_fast(c, escape)


def _redundant_slow(c: Cluster, escape: NDArray) -> bool:
    for n in escape:
        if not c.plist[int(n)]:
            continue
        c.checkpoint()
        ok = can_evacuate(c, int(n), escape)
        c.rollback()
        if not ok:
            return False
    return True


def _redundant_fast(c: Cluster, escape: NDArray) -> bool:
    """`can_evacuate` for every node as plain arithmetic (no exclusive storage).

    Only the hard limits matter (forced additions): a node taking over an
    instance as primary must keep unallocated memory and free disk above 0; a
    node taking a secondary (the failed node, getting its disks back as the
    secondary) must keep free disk above 0. Same decisions as `can_evacuate`,
    without going through the cluster's bookkeeping.
    """
    v = c.nodes
    free0 = nodeops.unallocated(v)
    fdsk0 = v["fdsk"]
    insts = c.instances
    mixed = _drbd_failover_ok(c, escape, free0, fdsk0)
    if mixed is None:
        return False
    efree = free0[escape].astype(np.int64)
    edsk = fdsk0[escape].astype(np.int64)
    epos = {int(x): j for j, x in enumerate(escape)}
    pick = _Recreate(efree, edsk)
    for n in mixed:
        pl = c.plist[n]
        free: dict[int, int] = {}
        others: list[Instance] = []
        for i in pl:
            inst = insts[i]
            if inst.disk_template != "drbd":
                others.append(inst)
                continue
            # checked (with disks) by _drbd_failover_ok; the memory left matters here
            s = inst.snode
            mem = inst.mem if inst.uses_memory else 0
            free[s] = free.get(s, int(free0[s])) - mem
        if not others:
            continue
        if len(escape) < 2:
            return False
        cur_f = {epos[t]: val for t, val in free.items() if t in epos}
        others.sort(key=lambda i: -i.mem)
        if not pick.place_all(others, epos[n], cur_f):
            return False
    return True


class _Recreate:
    """Greedy re-creation of a failed node's non-DRBD instances (`_redundant_fast`).

    Each instance goes to the allowed node with the most unallocated memory
    left after it (first such node on ties) where memory and disk stay above
    0 -- ``argmax`` over the group, found by scanning the nodes in order of
    their memory before the failure: values only shrink during one node's
    simulation, so the scan stops at the first node that can no longer beat
    (or tie) the best found. A long fruitless scan falls back to the arrays.
    """

    SCAN = 64

    def __init__(self, efree: NDArray, edsk: NDArray) -> None:
        self.efree, self.edsk = efree, edsk
        order = np.lexsort((np.arange(len(efree)), -efree))
        self.order = order.tolist()
        self.base = efree[order].tolist()
        self.free_l = efree.tolist()
        self.dsk_l = edsk.tolist()

    def place_all(self, others: list[Instance], me: int, cur_f: dict[int, int]) -> bool:
        cur_d: dict[int, int] = {}
        for inst in others:
            mem = inst.mem if inst.uses_memory else 0
            dsk = inst.dsk if inst.uses_local_storage else 0
            j = self._best(mem, dsk, me, cur_f, cur_d)
            if j < 0:
                return False
            cur_f[j] = cur_f.get(j, self.free_l[j]) - mem
            cur_d[j] = cur_d.get(j, self.dsk_l[j]) - dsk
        return True

    def _best(
        self, mem: int, dsk: int, me: int, cur_f: dict[int, int], cur_d: dict[int, int]
    ) -> int:
        best_j, best_v = -1, 0
        order, base, free_l, dsk_l = self.order, self.base, self.free_l, self.dsk_l
        for idx in range(len(order)):
            j = order[idx]
            if best_j >= 0:
                # later nodes cannot beat best_v; equal ones come in index order
                b = base[idx]
                if b < best_v or (b == best_v and j > best_j):
                    return best_j
            elif idx >= self.SCAN:
                return self._best_arrays(mem, dsk, me, cur_f, cur_d)
            if j == me:
                continue
            f = cur_f.get(j, free_l[j])
            better = best_j < 0 or f > best_v or (f == best_v and j < best_j)
            if better and f - mem > 0 and cur_d.get(j, dsk_l[j]) - dsk > 0:
                best_j, best_v = j, f
        return best_j

    def _best_arrays(
        self, mem: int, dsk: int, me: int, cur_f: dict[int, int], cur_d: dict[int, int]
    ) -> int:
        tfree = self.efree.copy()
        tdsk = self.edsk.copy()
        for j, val in cur_f.items():
            tfree[j] = val
        for j, val in cur_d.items():
            tdsk[j] = val
        ok = (tfree - mem > 0) & (tdsk - dsk > 0)
        ok[me] = False
        if not ok.any():
            return -1
        return int(np.argmax(np.where(ok, tfree - mem, np.iinfo(np.int64).min)))


def _drbd_failover_ok(
    c: Cluster, escape: NDArray, free0: NDArray, fdsk0: NDArray
) -> list[int] | None:
    """The DRBD fail-over part of `_redundant_fast` for all nodes at once.

    A node's DRBD primaries fail over to their secondaries: each secondary
    must keep unallocated memory above 0 after taking all of them (memory only
    shrinks, so the running checks reduce to the total per (node, secondary))
    and both nodes must have free disk above 0. Returns None when some node
    cannot fail, else the nodes that also have non-DRBD primaries (left to the
    per-node check).
    """
    insts = c.instances
    pn: list[int] = []
    sn: list[int] = []
    mem: list[int] = []
    mixed: list[int] = []
    for n in escape:
        n = int(n)
        other = False
        for i in c.plist[n]:
            inst = insts[i]
            if inst.disk_template != "drbd":
                other = True
                continue
            if inst.snode < 0:
                return None
            pn.append(n)
            sn.append(inst.snode)
            mem.append(inst.mem if inst.uses_memory else 0)
        if other:
            mixed.append(n)
    if not pn:
        return mixed
    pa = np.array(pn, dtype=np.int64)
    sa = np.array(sn, dtype=np.int64)
    if (fdsk0[sa] <= 0).any() or (fdsk0[pa] <= 0).any():
        return None
    key = pa * c.n_nodes + sa
    uk, inv = np.unique(key, return_inverse=True)
    total = np.zeros(len(uk), dtype=np.int64)
    np.add.at(total, inv, np.array(mem, dtype=np.int64))
    if (free0[uk % c.n_nodes].astype(np.int64) - total <= 0).any():
        return None
    return mixed
