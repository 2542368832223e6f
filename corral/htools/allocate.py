"""Placement of new instances (hail ``allocate``, hspace) and the capacity check.

`best_placements` scores *every* candidate primary (and, for DRBD, every
ordered (primary, secondary) pair) of a group at once: each node's metric
vector after receiving the instance is computed for all nodes in one numpy
pass, and since a placement changes at most two nodes, the score of a pair
follows from the running sums Σx, Σx² in O(metrics) -- done here for whole
blocks of the pair matrix with array arithmetic. Pairs whose secondary already
reserves memory for that primary (a sparse set) are re-scored exactly.

The capacity check (Ganeti's ``GlobalN1.redundant``, on by default in hail)
keeps a placement only if afterwards every node of the group could fail: its
DRBD primaries fail over to their secondaries (with all of Ganeti's strict
checks) and its non-mirrored instances, biggest memory first, can be
re-created on another node of the group (hard limits only). Ganeti re-creates
each on the best-scoring node; we pick the node with the most unallocated
memory left, which needs no score evaluation (the check is a feasibility
witness either way). Candidates are tried best score first and the first that
passes wins, so the answer is never worse than Ganeti's, which drops a primary
node altogether when its best pair fails the check.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.cluster import Cluster
from corral.htools.policy import inst_matches_policy
from corral.htools.types import FAIL_NAMES, FailMode, Instance

NDArray = np.ndarray[Any, Any]
CHUNK = 256
# pairs the last `pair_scores` call rejected in its exact peer re-check
_PEER_FAILS = [0]


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


def _any_loc(c: Cluster, nodes: NDArray) -> bool:
    """Whether any of ``nodes`` has location tags (cheap when none has)."""
    if not any(c.loc_tags):
        return False
    return any(c.loc_tags[int(n)] for n in nodes)


def _pri_metrics(
    c: Cluster, nodes: NDArray, inst: Instance, strict: bool
) -> tuple[NDArray, NDArray]:
    v = c.view(nodes)
    new, fail = nodeops.add_pri(v, inst, strict, c.tag_reject(nodes, inst))
    if inst.excl_tags:
        new["conflicts"] = new["conflicts"] + np.array(
            [sum(1 for t in inst.excl_tags if t in c.ptags[int(n)]) for n in nodes]
        )
    if not inst.forthcoming and (inst.desired_locations or _any_loc(c, nodes)):
        new["locscore"] = new["locscore"] + np.array(
            [
                len(inst.desired_locations) - len(inst.desired_locations & c.loc_tags[int(n)])
                for n in nodes
            ]
        )
    return score.node_metrics(new), fail


def _sec_metrics(
    c: Cluster, nodes: NDArray, inst: Instance, peer: NDArray, strict: bool
) -> tuple[NDArray, NDArray]:
    new, fail = nodeops.add_sec(c.view(nodes), inst, peer, strict)
    return score.node_metrics(new), fail


def _pair_block(
    st: score.Stats,
    a1: NDArray,
    a2: NDArray,
    b1: NDArray,
    b2: NDArray,
    pair_cls: list[int],
    row_term: NDArray,
    col_term: NDArray,
) -> NDArray:
    """Scores for a block of pairs: rows (primaries) x columns (secondaries)."""
    n = max(st.n, 1)
    out = row_term[:, None] + col_term[None, :]
    for j in pair_cls:
        s1 = st.s1[j] + a1[j][:, None] + b1[j][None, :]
        s2 = st.s2[j] + a2[j][:, None] + b2[j][None, :]
        mean = s1 / n
        var = s2 / n - mean * mean
        np.maximum(var, 0.0, out=var)
        out += score.WEIGHTS[j] * np.sqrt(var)
    return out


def _std(st: score.Stats, j: int, d1: NDArray, d2: NDArray) -> NDArray:
    n = max(st.n, 1)
    mean = (st.s1[j] + d1) / n
    return np.sqrt(np.maximum((st.s2[j] + d2) / n - mean * mean, 0.0))  # type: ignore[no-any-return]


def pair_scores(
    c: Cluster, inst: Instance, cand: NDArray, st: score.Stats, strict: bool
) -> tuple[NDArray, NDArray, NDArray]:
    """Score matrix (inf = invalid) of all (primary, secondary) pairs among ``cand``.

    Also returns the per-node failure codes as primary and as secondary.
    """
    k = len(cand)
    m0 = score.node_metrics(c.view(cand))
    mp, fp = _pri_metrics(c, cand, inst, strict)
    ms, fs = _sec_metrics(c, cand, inst, np.zeros(k, dtype=np.int64), strict)
    a1, a2 = score.deltas(m0, mp)
    b1, b2 = score.deltas(m0, ms)
    row = np.zeros(k)
    col = np.zeros(k)
    pair_cls: list[int] = []
    base = st.score()
    # Constant part: the base score with the std metrics removed, re-added per class.
    const = base
    for j in range(score.NMETRICS):
        if j == score.MAP_METRIC:
            continue
        if not score.STDDEV[j]:
            row += score.WEIGHTS[j] * a1[j]
            col += score.WEIGHTS[j] * b1[j]
            continue
        z0 = _std(st, j, np.zeros(1), np.zeros(1))[0]
        const -= score.WEIGHTS[j] * z0
        a_zero = not a1[j].any() and not a2[j].any()
        b_zero = not b1[j].any() and not b2[j].any()
        if b_zero:
            row += score.WEIGHTS[j] * _std(st, j, a1[j], a2[j])
        elif a_zero:
            col += score.WEIGHTS[j] * _std(st, j, b1[j], b2[j])
        else:
            pair_cls.append(j)
    row += const
    mat = np.full((k, k), np.inf)
    rows_ok = np.flatnonzero(fp == 0)
    cols_ok = np.flatnonzero(fs == 0)
    if len(cols_ok):
        b1c, b2c, colc = b1[:, cols_ok], b2[:, cols_ok], col[cols_ok]
        for lo in range(0, len(rows_ok), CHUNK):
            rr = rows_ok[lo : lo + CHUNK]
            blk = _pair_block(st, a1[:, rr], a2[:, rr], b1c, b2c, pair_cls, row[rr], colc)
            mat[np.ix_(rr, cols_ok)] = blk
    has_loc = _any_loc(c, cand)
    if has_loc:
        loc = np.array(
            [[len(c.loc_tags[int(p)] & c.loc_tags[int(s)]) for s in cand] for p in cand],
            dtype=float,
        )
        mat += score.WEIGHTS[17] * loc
    mat[fp != 0, :] = np.inf
    mat[:, fs != 0] = np.inf
    np.fill_diagonal(mat, np.inf)
    # exact re-scoring of pairs where the secondary already reserves memory for p
    ips, jss, vals = _peer_pairs(c, cand, fp)
    if len(ips):
        ipa, jsa = ips, jss
        msx, fsx = _sec_metrics(c, cand[jsa], inst, vals, strict)
        d1 = a1[:, ipa] + (msx - m0[:, jsa])
        d2 = a2[:, ipa] + (msx**2 - m0[:, jsa] ** 2)
        sc = score.score_many(st, d1, d2)
        if has_loc:
            sc = sc + score.WEIGHTS[17] * loc[ipa, jsa]
        mat[ipa, jsa] = np.where(fsx != 0, np.inf, sc)
        _PEER_FAILS[0] = int(((fsx != 0) & (fs[jsa] == 0)).sum())
    else:
        _PEER_FAILS[0] = 0
    return mat, fp, fs


def _peer_pairs(c: Cluster, cand: NDArray, fp: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """(primary, secondary) positions in ``cand`` whose secondary already reserves
    memory for that primary (and the amount), for primaries that are valid."""
    xs, ps, va = c.peer_entries()
    posarr = np.full(c.n_nodes, -1, dtype=np.int64)
    posarr[cand] = np.arange(len(cand))
    jsv, ipv = posarr[xs], posarr[ps]
    keep = (jsv >= 0) & (ipv >= 0) & (va > 0) & (ipv != jsv)
    keep[keep] &= fp[ipv[keep]] == 0
    return ipv[keep], jsv[keep], va[keep]


def fit_counts(c: Cluster, inst: Instance, gidx: int, req_nodes: int,
               strict: bool = True) -> tuple[bool, Counter[FailMode]]:  # fmt: skip
    """Whether ``inst`` fits somewhere in the group, and the failure counts.

    Same feasibility and counts as `alloc_in_group` (without a capacity
    check), but nothing is scored: used by hspace's shrink search, which only
    needs to know whether a size fits and why not.
    """
    cand = c.online_in_group(gidx)
    k = len(cand)
    cnt: Counter[FailMode] = Counter()
    if k < req_nodes or k == 0:
        return False, cnt
    pol = inst_matches_policy(inst, c.groups[gidx].ipolicy)
    if pol != FailMode.OK:
        cnt[pol] += k * (k - 1) if req_nodes == 2 else k
        return False, cnt
    _, fp = _pri_metrics(c, cand, inst, strict)
    if req_nodes != 2:
        for code in np.unique(fp[fp != 0]):
            cnt[FailMode(int(code))] += int((fp == code).sum())
        return bool((fp == 0).any()), cnt
    _, fs = _sec_metrics(c, cand, inst, np.zeros(k, dtype=np.int64), strict)
    ips, jss, vals = _peer_pairs(c, cand, fp)
    bad = 0
    if len(ips):
        _, fsx = _sec_metrics(c, cand[jss], inst, vals, strict)
        bad = int(((fsx != 0) & (fs[jss] == 0)).sum())
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
    r = c.add_pri(nodes[0], inst, strict=False)
    if len(nodes) > 1:
        r = r or c.add_sec(nodes[1], inst, nodes[0], strict=False)
    if r:
        raise AssertionError(f"placement of {inst.name} failed hard: {r.name}")
    c.set_nodes(inst, inst.pnode, inst.snode)


def _unplace_new(c: Cluster, inst: Instance) -> None:
    c.instances.pop()
    del c.inst_index[inst.name]


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
    efree = free0[escape].astype(np.int64)
    edsk = fdsk0[escape].astype(np.int64)
    epos = {int(x): j for j, x in enumerate(escape)}
    for n in escape:
        n = int(n)
        pl = c.plist[n]
        if not pl:
            continue
        free: dict[int, int] = {}
        fdsk: dict[int, int] = {}
        others: list[Instance] = []
        for i in pl:
            inst = insts[i]
            if inst.disk_template != "drbd":
                others.append(inst)
                continue
            s = inst.snode
            if s < 0:
                return False
            mem = inst.mem if inst.uses_memory else 0
            fs = free.get(s, int(free0[s])) - mem
            free[s] = fs
            if fs <= 0 or fdsk.get(s, int(fdsk0[s])) <= 0:
                return False
            # the failed node keeps the disks, now as the secondary
            if fdsk.get(n, int(fdsk0[n])) <= 0:
                return False
        if not others:
            continue
        if len(escape) < 2:
            return False
        tfree = efree.copy()
        tdsk = edsk.copy()
        for t, val in free.items():
            j = epos.get(t)
            if j is not None:
                tfree[j] = val
        allowed = np.ones(len(escape), dtype=bool)
        allowed[epos[n]] = False
        others.sort(key=lambda i: -i.mem)
        for inst in others:
            mem = inst.mem if inst.uses_memory else 0
            dsk = inst.dsk if inst.uses_local_storage else 0
            ok = allowed & (tfree - mem > 0) & (tdsk - dsk > 0)
            if not ok.any():
                return False
            j = int(np.argmax(np.where(ok, tfree - mem, np.iinfo(np.int64).min)))
            tfree[j] -= mem
            tdsk[j] -= dsk
    return True


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
) -> GroupSolution:
    """Best placement of a new instance inside one group."""
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
    st = c.stats(c.group_nodes(gidx))
    strict = not ignore_soft
    if req_nodes == 2:
        mat, fp, fs = pair_scores(c, inst, cand, st, strict)
        sol.failures = _pair_failures(fp, fs, mat)
    else:
        mat, fp = single_scores(c, inst, cand, st, strict)
        for code in np.unique(fp[fp != 0]):
            sol.failures[FailMode(int(code))] += int((fp == code).sum())
    sol.successes = int(np.isfinite(mat).sum())
    for flat in _ordered(mat):
        nodes = [int(cand[flat // k]), int(cand[flat % k])] if req_nodes == 2 else [int(cand[flat])]
        if capacity_check and not _passes_capacity(c, inst, nodes, gidx):
            continue
        c.checkpoint()
        place_new(c, inst, nodes)
        exact = c.score(c.group_nodes(gidx))
        c.rollback()
        _unplace_new(c, inst)
        sol.best = Placement(nodes, exact)
        break
    return sol


POLICY_RANK = {"preferred": 0, "last_resort": 1, "unallocable": 2}


def alloc_multi_group(
    c: Cluster,
    inst: Instance,
    req_nodes: int,
    group: int | None = None,
    capacity_check: bool = True,
    ignore_soft: bool = False,
    restrict: set[int] | None = None,
) -> tuple[GroupSolution | None, list[GroupSolution]]:
    """Try every allocable group (or the given one); best by (alloc policy, score)."""
    if group is not None:
        groups = [group]
    else:
        groups = [i for i, g in enumerate(c.groups) if g.alloc_policy != "unallocable"]
    sols = [
        alloc_in_group(c, inst, g, req_nodes, capacity_check, ignore_soft, restrict) for g in groups
    ]
    good = [s for s in sols if s.best is not None]
    if not good:
        return None, sols
    best = min(
        good,
        key=lambda s: (POLICY_RANK[c.groups[s.group].alloc_policy], s.best.score if s.best else 0),
    )
    return best, sols
