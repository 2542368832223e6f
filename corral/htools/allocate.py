"""Placement of new instances (hail ``allocate``, hspace) and the capacity check.

`alloc_in_group` finds the best placement of one new instance in a group:
pairs (DRBD) come from `pairs.pair_best` (the best entry of the pair score
matrix without building it), single nodes from `single_scores`; with the
capacity check (Ganeti's ``GlobalN1.redundant``, on by default in hail, see
`redundancy`) candidates are tried best score first and the first that keeps
the group redundant wins, so the answer is never worse than Ganeti's, which
drops a primary node altogether when its best pair fails the check.
`fit_counts`/`FitProbe` answer hspace's "does this size fit, and why not"
without scoring.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.cluster import Cluster
from corral.htools.pairs import (
    _PEER_FAILS,
    PairCache,
    Parts,
    _peer_failures,
    count_pairs,
    pair_best,
)
from corral.htools.pairs import FULL_SCAN as FULL_SCAN  # re-exported
from corral.htools.pairs import _pri_metrics as _pri_metrics
from corral.htools.pairs import _sec_metrics as _sec_metrics
from corral.htools.pairs import pair_scores as pair_scores
from corral.htools.policy import inst_matches_policy
from corral.htools.redundancy import _redundant_fast as _redundant_fast
from corral.htools.redundancy import _redundant_slow as _redundant_slow
from corral.htools.redundancy import redundant
from corral.htools.types import FAIL_NAMES, FailMode, Instance

NDArray = np.ndarray[Any, Any]


@dataclasses.dataclass
class Placement:
    nodes: list[int]
    score: float


@dataclasses.dataclass
class GroupSolution:
    """Result of one group's search: best placement (if any) and statistics."""

    group: int
    best: Placement | None
    successes: int
    failures: Counter[FailMode]

    def describe(self, c: Cluster) -> str:
        freasons = ", ".join(
            f"{FAIL_NAMES[m]}: {self.failures[FailMode(m)]}"
            for m in range(1, len(FAIL_NAMES))
            if self.failures[FailMode(m)] > 0
        )
        if self.best is None:
            return "No valid allocation solutions, failure reasons: " + (
                freasons if self.failures else "unknown reasons"
            )
        nodes = "/".join(c.names[n] for n in self.best.nodes)
        nfail = sum(self.failures.values())
        return (
            f"score: {self.best.score:.8f}, successes {self.successes}, failures {nfail}"
            f" ({freasons}) for node(s) {nodes}"
        )


class FitProbe:
    """`fit_counts` for many instance sizes against one unchanged cluster state.

    The group's node view is taken once; the owner drops the
    probe as soon as the cluster changes (hspace's shrink search asks for one
    size after another between two placements).
    """

    def __init__(self, c: Cluster, gidx: int) -> None:
        self.c, self.gidx = c, gidx
        self.cand = c.online_in_group(gidx)
        self.view = c.view(self.cand)
        self._pos: NDArray | None = None
        self._peer_rows: dict[int, tuple[NDArray, NDArray]] = {}
        self._tiled: nodeops.View = {}
        self._old_mem: NDArray | None = None
        self._tiled_n = 0

    def counts(
        self, inst: Instance, req_nodes: int, strict: bool = True
    ) -> tuple[bool, Counter[FailMode]]:
        return fit_counts(self.c, inst, self.gidx, req_nodes, strict, self)

    def counts_sizes(
        self, base: Instance, mems: NDArray, dsks: NDArray, vcpus: NDArray, req_nodes: int,
        strict: bool = True,
    ) -> tuple[NDArray, NDArray, NDArray]:  # fmt: skip
        """`counts` for S instances at once: ``base`` with S (mem, dsk, vcpus) sizes.

        Each instance is ``base`` with ``mem``, ``dsk``, ``vcpus`` and, if
        ``base`` has one disk, that disk's size replaced (hspace's shrink
        search: one resource steps down, the rest is fixed). Returns, per
        instance, whether it fits, the failure counts (column = `FailMode`)
        and which modes its `Counter` would hold as keys (a secondary failure
        mode may be present with count 0). The node checks are
        `nodeops.add_pri`/`add_sec` on the view tiled S times, element by
        element the same arithmetic as one instance at a time.
        """
        S, k, nm = len(mems), len(self.cand), len(FailMode)
        cnt = np.zeros((S, nm), dtype=np.int64)
        pres = np.zeros((S, nm), dtype=bool)
        ok = np.zeros(S, dtype=bool)
        if k < req_nodes or k == 0:
            return ok, cnt, pres
        pol = self._policy(base, mems, dsks, vcpus)
        live = np.flatnonzero(pol == 0)
        bad_pol = np.flatnonzero(pol != 0)
        cnt[bad_pol, pol[bad_pol]] = k * (k - 1) if req_nodes == 2 else k
        pres[bad_pol, pol[bad_pol]] = True
        if not len(live):
            return ok, cnt, pres
        sv = len(live)
        if self._tiled_n < sv:  # the view repeated; a prefix serves smaller batches
            self._tiled_n = max(sv, 2 * self._tiled_n)
            idx = np.tile(np.arange(k), self._tiled_n)
            self._tiled = {f: a[idx] for f, a in self.view.items()}
        tiled = {f: a[: sv * k] for f, a in self._tiled.items()}
        binst = _SizedInst(base, np.repeat(mems[live], k), np.repeat(dsks[live], k),
                           np.repeat(vcpus[live], k))  # fmt: skip
        rej = self.c.tag_reject(self.cand, base)
        _, fp1 = nodeops.add_pri(tiled, binst, strict, None if rej is None else np.tile(rej, sv))
        fp = fp1.astype(np.int64).reshape(sv, k)
        w = nm + 1  # one more column: nodes left out of a count
        off = (np.arange(sv) * w)[:, None]
        hp = np.bincount((fp + off).ravel(), minlength=sv * w).reshape(sv, w)[:, :nm]
        if req_nodes != 2:
            cnt[live, 1:] = hp[:, 1:]
            pres[live, 1:] = hp[:, 1:] > 0
            ok[live] = hp[:, 0] > 0
            return ok, cnt, pres
        _, fs1 = nodeops.add_sec(tiled, binst, np.zeros(sv * k, dtype=np.int64), strict)
        fs = fs1.astype(np.int64).reshape(sv, k)
        okp = fp == 0
        hs = np.bincount((fs + off).ravel(), minlength=sv * w).reshape(sv, w)[:, :nm]
        both = np.bincount((np.where(okp, fs, nm) + off).ravel(), minlength=sv * w)
        both = both.reshape(sv, w)[:, :nm]
        nokp = hp[:, 0]
        c2 = hp * (k - 1) + nokp[:, None] * hs - both
        c2[:, 0] = 0
        pr = (hp > 0) | (hs > 0)
        pr[:, 0] = False
        bad = self._peer_bad(base, mems[live], okp, fs == 0, strict)
        c2[:, int(FailMode.FailMem)] += bad
        pr[:, int(FailMode.FailMem)] |= bad > 0
        cnt[live], pres[live] = c2, pr
        ok[live] = nokp * hs[:, 0] - both[:, 0] - bad > 0
        return ok, cnt, pres

    def _policy(self, base: Instance, mems: NDArray, dsks: NDArray, vcpus: NDArray) -> NDArray:
        """`inst_matches_policy` per size, evaluated once per class of sizes.

        The policy compares each size with the bounds of its min/max ranges
        only, so sizes that fall between the same consecutive bounds (for
        memory, disk and vCPUs alike) get the same answer.
        """
        ipol = self.c.groups[self.gidx].ipolicy
        keys = []
        for attr, vals in (("memory", mems), ("disk", dsks), ("cpu", vcpus)):
            edges = sorted({getattr(sp, attr) + d for r in ipol.minmax for sp, d in
                            ((r[0], 0), (r[1], 1))})  # fmt: skip
            keys.append(np.searchsorted(np.array(edges, dtype=np.int64), vals, "right"))
        out = np.zeros(len(mems), dtype=np.int64)
        memo: dict[tuple[int, int, int], int] = {}
        for i, key in enumerate(zip(*(kk.tolist() for kk in keys), strict=True)):
            if key not in memo:
                inst = _sized(base, int(mems[i]), int(dsks[i]), int(vcpus[i]))
                memo[key] = int(inst_matches_policy(inst, ipol))
            out[i] = memo[key]
        return out

    def _peer_bad(
        self, base: Instance, mems: NDArray, okp: NDArray, oks: NDArray, strict: bool
    ) -> NDArray:
        """`pairs._peer_failures` per size (rows of ``okp``/``oks``)."""
        sv = len(mems)
        none = np.zeros(sv, dtype=np.int64)
        if not strict or base.forthcoming:
            return none
        v = self.view
        secmem = mems * int(base.uses_sec_mem)
        if self._old_mem is None:
            self._old_mem = nodeops.unallocated(v)
        old_mem = self._old_mem
        # secondaries that may be near their limit for some size of the batch
        lo = int(secmem.max()) if sv else 0
        near_any = ~v["failn1"] & (old_mem <= v["rmem"] + lo) & oks.any(axis=0)
        js_near = np.flatnonzero(near_any)
        if not len(js_near):
            return none
        ent = [self._peer_row(int(j)) for j in js_near]
        ip = np.concatenate([e[0] for e in ent])
        if not len(ip):
            return none
        va = np.concatenate([e[1] for e in ent])
        js = np.repeat(js_near, [len(e[0]) for e in ent])
        near = oks[:, js] & (old_mem[js][None, :] <= v["rmem"][js][None, :] + secmem[:, None])
        hit = near & okp[:, ip] & (old_mem[js][None, :] - secmem[:, None] <= va[None, :])
        return hit.sum(axis=1)  # type: ignore[no-any-return]

    def _peer_row(self, js: int) -> tuple[NDArray, NDArray]:
        """Peer entries of secondary ``cand[js]``: (primary positions, memory), for
        primaries in the group other than itself and positive memory."""
        row = self._peer_rows.get(js)
        if row is None:
            c = self.c
            if self._pos is None:
                self._pos = np.full(c.n_nodes, -1, dtype=np.int64)
                self._pos[self.cand] = np.arange(len(self.cand))
            node = int(self.cand[js])
            pairs = [(int(self._pos[p]), val) for p, val in c.peers[node].items()
                     if val > 0 and p != node and self._pos[p] >= 0]  # fmt: skip
            row = (
                np.array([p for p, _ in pairs], dtype=np.int64),
                np.array([val for _, val in pairs], dtype=np.int64),
            )
            self._peer_rows[js] = row
        return row


class _SizedInst:
    """An `Instance` stand-in for `nodeops` whose sizes are per-element arrays."""

    def __init__(self, base: Instance, mem: NDArray, dsk: NDArray, vcpus: NDArray) -> None:
        self.mem, self.dsk, self.vcpus = mem, dsk, vcpus
        self.uses_local_storage = base.uses_local_storage
        self.uses_memory = base.uses_memory
        self.uses_sec_mem = base.uses_sec_mem
        self.has_secondary = base.has_secondary
        self.not_offline = base.not_offline
        self.forthcoming = base.forthcoming
        self.spindle_use = base.spindle_use
        self.total_spindles = base.total_spindles
        self.util = base.util


def _sized(base: Instance, mem: int, dsk: int, vcpus: int) -> Instance:
    """``base`` with other sizes (its only disk, if it has one, resized too)."""
    disks = [(dsk, base.disks[0][1])] if len(base.disks) == 1 else list(base.disks)
    return dataclasses.replace(base, mem=mem, dsk=dsk, vcpus=vcpus, disks=disks)


def fit_counts(c: Cluster, inst: Instance, gidx: int, req_nodes: int,
               strict: bool = True,
               probe: FitProbe | None = None) -> tuple[bool, Counter[FailMode]]:  # fmt: skip
    """Whether ``inst`` fits somewhere in the group, and the failure counts.

    Same feasibility and counts as `alloc_in_group` (without a capacity
    check), but nothing is scored: used by hspace's shrink search, which only
    needs to know whether a size fits and why not.
    """
    cand = c.online_in_group(gidx) if probe is None else probe.cand
    k = len(cand)
    cnt: Counter[FailMode] = Counter()
    if k < req_nodes or k == 0:
        return False, cnt
    pol = inst_matches_policy(inst, c.groups[gidx].ipolicy)
    if pol != FailMode.OK:
        cnt[pol] += k * (k - 1) if req_nodes == 2 else k
        return False, cnt
    v = c.view(cand) if probe is None else probe.view
    # failure codes only (the same checks as `_pri_metrics`/`_sec_metrics`)
    _, fp = nodeops.add_pri(v, inst, strict, c.tag_reject(cand, inst))
    if req_nodes != 2:
        for code in np.unique(fp[fp != 0]):
            cnt[FailMode(int(code))] += int((fp == code).sum())
        return bool((fp == 0).any()), cnt
    _, fs = nodeops.add_sec(v, inst, np.zeros(k, dtype=np.int64), strict)
    bad = _peer_failures(c, inst, cand, fp, fs, strict)
    _PEER_FAILS[0] = bad
    cnt = _pair_failures(fp, fs, np.zeros((0, 0)))
    okp, oks = fp == 0, fs == 0
    good = int(okp.sum()) * int(oks.sum()) - int((okp & oks).sum()) - bad
    return good > 0, cnt


def single_scores(
    c: Cluster, inst: Instance, cand: NDArray, st: score.Stats, strict: bool
) -> tuple[NDArray, NDArray]:
    m0 = score.node_metrics(c.view(cand))
    mp, fp = _pri_metrics(c, cand, inst, strict)
    d1, d2 = score.deltas(m0, mp)
    sc = score.score_many(st, d1, d2)
    sc[fp != 0] = np.inf
    return sc, fp


def _pair_failures(fp: NDArray, fs: NDArray, mat: NDArray) -> Counter[FailMode]:
    k = len(fp)
    cnt: Counter[FailMode] = Counter()
    for code in np.unique(fp[fp != 0]):
        cnt[FailMode(int(code))] += int((fp == code).sum()) * (k - 1)
    okp = fp == 0
    for code in np.unique(fs[fs != 0]):
        # pairs (p ok, s failing), p != s
        nbad = int((fs == code).sum())
        both = int(((fs == code) & okp).sum())
        cnt[FailMode(int(code))] += int(okp.sum()) * nbad - both
    # pairs invalidated by the exact peer re-check (counted by `pair_scores`)
    if _PEER_FAILS[0] > 0:
        cnt[FailMode.FailMem] += _PEER_FAILS[0]
    return cnt


def place_new(c: Cluster, inst: Instance, nodes: list[int]) -> None:
    """Add a new instance to the cluster on the given nodes (no checks)."""
    inst.pnode = nodes[0]
    inst.snode = nodes[1] if len(nodes) > 1 else -1
    if inst.name not in c.inst_index:
        c.add_instance(inst)
    if len(nodes) > 1:  # Ganeti's allocateOnPair: the pair's location score, then addPri
        c.set_location_score(inst, nodes[0], nodes[1])
    r = c.add_pri(nodes[0], inst, strict=False)
    if len(nodes) > 1:
        r = r or c.add_sec(nodes[1], inst, nodes[0], strict=False)
    if r:
        raise AssertionError(f"placement of {inst.name} failed hard: {r.name}")
    c.set_nodes(inst, inst.pnode, inst.snode)


def _unplace_new(c: Cluster, inst: Instance) -> None:
    c.instances.pop()
    del c.inst_index[inst.name]


def _passes_capacity(c: Cluster, inst: Instance, nodes: list[int], gidx: int) -> bool:
    c.checkpoint()
    place_new(c, inst, nodes)
    ok = redundant(c, gidx)
    c.rollback()
    _unplace_new(c, inst)
    return ok


def _ordered(mat: NDArray, first: int = 32) -> Any:
    """Yield flat indices of finite entries, best first (lazily sorted).

    The first ``first`` come from the ``first`` rows with the smallest minima
    (every one of the matrix's ``first`` best entries lies in such a row), so a
    4000 x 4000 matrix is not sorted unless many candidates get rejected.
    """
    if mat.ndim == 1 or mat.shape[0] <= first:
        flat = mat.ravel()
        fin = np.flatnonzero(np.isfinite(flat))
        yield from (int(x) for x in fin[np.argsort(flat[fin], kind="stable")])
        return
    k = mat.shape[1]
    rmin = mat.min(axis=1)
    rows = np.flatnonzero(np.isfinite(rmin))
    if len(rows) == 0:
        return
    if len(rows) > first:
        rows = rows[np.argpartition(rmin[rows], first - 1)[:first]]
    rows = np.sort(rows)
    sub = mat[rows]
    fl = sub.ravel()
    m = min(first, int(np.isfinite(fl).sum()))
    part = np.argpartition(fl, m - 1)[:m]
    # stable order by (value, flat index) like a full stable sort would give
    cand = rows[part // k] * k + part % k
    order = np.lexsort((cand, fl[part]))
    head = [int(x) for x in cand[order]]
    yield from head
    seen = set(head)
    flat = mat.ravel()
    fin = np.flatnonzero(np.isfinite(flat))
    for x in fin[np.argsort(flat[fin], kind="stable")]:
        if int(x) not in seen:
            yield int(x)


def alloc_in_group(
    c: Cluster,
    inst: Instance,
    gidx: int,
    req_nodes: int,
    capacity_check: bool = True,
    ignore_soft: bool = False,
    restrict: set[int] | None = None,
    exact_score: bool = True,
    counts: bool = True,
    cache: PairCache | None = None,
) -> GroupSolution:
    """Best placement of a new instance inside one group.

    ``exact_score=False`` reports the search's own (predicted) score of the
    placement instead of re-computing it the careful way (hspace, one group);
    ``counts=False`` skips the success/failure counts when a placement is
    found (they are complete whenever none is); ``cache`` keeps per-node parts
    across calls (see `PairCache`).
    """
    cand = c.online_in_group(gidx)
    if restrict is not None:
        cand = np.array([n for n in cand if int(n) in restrict], dtype=np.int64)
    sol = GroupSolution(gidx, None, 0, Counter())
    if len(cand) < req_nodes or len(cand) == 0:
        return sol
    pol = inst_matches_policy(inst, c.groups[gidx].ipolicy)
    k = len(cand)
    if pol != FailMode.OK:
        sol.failures[pol] += k * (k - 1) if req_nodes == 2 else k
        return sol
    strict = not ignore_soft
    parts: Parts | None = None
    if cache is not None and req_nodes == 2 and restrict is None:
        st, parts = cache.stats_and_parts(c, inst, gidx, cand, strict)
    else:
        st = c.stats(c.group_nodes(gidx))
    if req_nodes == 2:
        first, pred, fp, fs, succ = pair_best(c, inst, cand, st, strict, counts, parts)
        if first is None and succ < 0:  # no placement: the counts are needed after all
            succ = count_pairs(c, inst, cand, fp, fs, strict)
        if succ >= 0:  # counts were taken (else a placement was found: none needed)
            sol.failures = _pair_failures(fp, fs, np.zeros((0, 0)))
        sol.successes = succ
        order = _pair_order(c, inst, cand, st, strict, first)
    else:
        mat, fp = single_scores(c, inst, cand, st, strict)
        for code in np.unique(fp[fp != 0]):
            sol.failures[FailMode(int(code))] += int((fp == code).sum())
        sol.successes = int(np.isfinite(mat).sum())
        order = _ordered(mat)
    for flat in order:
        nodes = [int(cand[flat // k]), int(cand[flat % k])] if req_nodes == 2 else [int(cand[flat])]
        if capacity_check and not _passes_capacity(c, inst, nodes, gidx):
            continue
        if exact_score:
            c.checkpoint()
            place_new(c, inst, nodes)
            value = c.score(c.group_nodes(gidx))
            c.rollback()
            _unplace_new(c, inst)
        else:
            value = pred if req_nodes == 2 else float(mat[flat])
        sol.best = Placement(nodes, value)
        break
    return sol


def _pair_order(
    c: Cluster, inst: Instance, cand: NDArray, st: score.Stats, strict: bool, first: int | None
) -> Any:
    """Pairs best first: the bounded search's best, then (only if the caller asks
    for more, i.e. the capacity check rejected it) the rest from the full matrix."""
    if first is None:
        return
    yield first
    mat, _, _ = pair_scores(c, inst, cand, st, strict)
    for flat in _ordered(mat):
        if flat != first:
            yield flat


POLICY_RANK = {"preferred": 0, "last_resort": 1, "unallocable": 2}


def alloc_multi_group(
    c: Cluster,
    inst: Instance,
    req_nodes: int,
    group: int | None = None,
    capacity_check: bool = True,
    ignore_soft: bool = False,
    restrict: set[int] | None = None,
    exact_score: bool = True,
    counts: bool = True,
    caches: dict[int, PairCache] | None = None,
) -> tuple[GroupSolution | None, list[GroupSolution]]:
    """Try every allocable group (or the given one); best by (alloc policy, score)."""
    if group is not None:
        groups = [group]
    else:
        groups = [i for i, g in enumerate(c.groups) if g.alloc_policy != "unallocable"]
    sols = [
        alloc_in_group(
            c,
            inst,
            g,
            req_nodes,
            capacity_check,
            ignore_soft,
            restrict,
            exact_score or len(groups) > 1,
            counts,
            None if caches is None else caches.setdefault(g, PairCache()),
        )
        for g in groups
    ]
    good = [s for s in sols if s.best is not None]
    if not good:
        return None, sols
    best = min(
        good,
        key=lambda s: (POLICY_RANK[c.groups[s.group].alloc_policy], s.best.score if s.best else 0),
    )
    return best, sols
