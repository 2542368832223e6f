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


def _pri_metrics(
    c: Cluster, nodes: NDArray, inst: Instance, strict: bool
) -> tuple[NDArray, NDArray]:
    v = c.view(nodes)
    new, fail = nodeops.add_pri(v, inst, strict, c.tag_reject(nodes, inst))
    if inst.excl_tags:
        new["conflicts"] = new["conflicts"] + np.array(
            [sum(1 for t in inst.excl_tags if t in c.ptags[int(n)]) for n in nodes]
        )
    if not inst.forthcoming and (inst.desired_locations or any(c.loc_tags[int(n)] for n in nodes)):
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
    mat = np.empty((k, k))
    for lo in range(0, k, CHUNK):
        hi = min(k, lo + CHUNK)
        mat[lo:hi] = _pair_block(st, a1[:, lo:hi], a2[:, lo:hi], b1, b2, pair_cls, row[lo:hi], col)
    if any(c.loc_tags[int(n)] for n in cand):
        loc = np.array(
            [[len(c.loc_tags[int(p)] & c.loc_tags[int(s)]) for s in cand] for p in cand],
            dtype=float,
        )
        mat += score.WEIGHTS[17] * loc
    mat[fp != 0, :] = np.inf
    mat[:, fs != 0] = np.inf
    np.fill_diagonal(mat, np.inf)
    # exact re-scoring of pairs where the secondary already reserves memory for p
    pos = {int(n): i for i, n in enumerate(cand)}
    for js, s in enumerate(cand):
        for pdx, val in c.peers[int(s)].items():
            ip = pos.get(pdx)
            if ip is None or val <= 0 or ip == js:
                continue
            if fp[ip] != 0:
                continue
            msx, fsx = _sec_metrics(c, cand[js : js + 1], inst, np.array([val]), strict)
            if fsx[0] != 0:
                mat[ip, js] = np.inf
                continue
            d1 = a1[:, ip] + (msx[:, 0] - m0[:, js])
            d2 = a2[:, ip] + (msx[:, 0] ** 2 - m0[:, js] ** 2)
            sc = score.score_many(st, d1[:, None], d2[:, None])[0]
            if any(c.loc_tags[int(n)] for n in cand):
                sc += score.WEIGHTS[17] * len(c.loc_tags[pdx] & c.loc_tags[int(s)])
            mat[ip, js] = sc
    return mat, fp, fs


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
    # pairs invalidated by the exact peer re-check
    extra = int((~np.isfinite(mat[np.ix_(okp, fs == 0)])).sum()) - int((okp & (fs == 0)).sum())
    if extra > 0:
        cnt[FailMode.FailMem] += extra
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
    for n in escape:
        if not c.plist[int(n)]:
            continue
        c.checkpoint()
        ok = can_evacuate(c, int(n), escape)
        c.rollback()
        if not ok:
            return False
    return True


def _passes_capacity(c: Cluster, inst: Instance, nodes: list[int], gidx: int) -> bool:
    c.checkpoint()
    place_new(c, inst, nodes)
    ok = redundant(c, gidx)
    c.rollback()
    _unplace_new(c, inst)
    return ok


def _ordered(mat: NDArray, first: int = 32) -> Any:
    """Yield flat indices of finite entries, best first (lazily sorted)."""
    flat = mat.ravel()
    nfin = int(np.isfinite(flat).sum())
    if nfin == 0:
        return
    m = min(first, nfin)
    part = np.argpartition(flat, m - 1)[:m]
    part = part[np.argsort(flat[part], kind="stable")]
    yield from (int(x) for x in part)
    if nfin > m:
        rest = np.argsort(flat, kind="stable")[m:nfin]
        yield from (int(x) for x in rest)


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
