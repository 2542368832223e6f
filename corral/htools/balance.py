"""Cluster balancing (hbal): greedy single moves that lower the cluster score.

Each step looks at every movable instance (DRBD or shared storage,
auto-balanced, both nodes in the group) and every move of it Ganeti's hbal
considers: failover, and for every other online node of the group
replace-secondary, replace-and-failover, replace-primary and
failover-and-replace (with ``--no-disk-moves`` failover only; shared storage:
failover to any node). The best move (lowest score) is applied if it lowers
the score, until no move improves it, ``-l`` moves were made, or the gain
drops below ``--min-gain`` while the score is under ``--min-gain-limit``.

Unlike Ganeti, a candidate is not scored by recomputing the whole score: a
move changes three nodes at most, so its score follows from the running sums
in O(metrics); all targets of one (instance, move kind) are scored in one
numpy pass, the new node states coming from the same `nodeops` arithmetic the
move itself applies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.cluster import Cluster
from corral.htools.moves import Move, apply_move
from corral.htools.nodeops import View
from corral.htools.types import FailMode, Instance

NDArray = np.ndarray[Any, Any]


@dataclasses.dataclass
class BalanceOptions:
    max_length: int = -1
    min_gain: float = 0.01
    min_gain_limit: float = 0.1
    disk_moves: bool = True
    instance_moves: bool = True
    evac_mode: bool = False
    epsilon: float = 1e-9
    # "auto" (default: the lazy exact search, exhaustive on small groups),
    # "exhaustive" (every pair every step, the reference), "lazy" (forced even on
    # small groups) or "legacy" (the generic per-step search, used anyway where
    # the pair search does not model the group)
    search: str = "auto"


@dataclasses.dataclass
class Step:
    inst: int
    old: tuple[int, int]
    new: tuple[int, int]
    move: Move
    target: int
    score: float


def _bcast(v: View, k: int) -> View:
    return {key: np.repeat(a, k) for key, a in v.items()}


class _Scorer:
    """Scores candidate moves from the group's running sums."""

    def __init__(self, c: Cluster, group_nodes: NDArray) -> None:
        self.c = c
        self.st = c.stats(group_nodes)
        self.metrics_cache: dict[int, NDArray] = {}

    def cur(self, n: int) -> NDArray:
        m = self.metrics_cache.get(n)
        if m is None:
            m = score.node_metrics(self.c.view(n))[:, 0]
            self.metrics_cache[n] = m
        return m

    def score(
        self, fixed: list[tuple[int, View]], var: list[tuple[NDArray, View]], k: int
    ) -> NDArray:
        """Scores when nodes in ``fixed`` (one state) and ``var`` (k states) change."""
        d1 = np.zeros((score.NMETRICS, k))
        d2 = np.zeros((score.NMETRICS, k))
        for n, v in fixed:
            old = self.cur(n)[:, None]
            new = score.node_metrics(v)
            d1 += new - old
            d2 += new * new - old * old
        for nodes, v in var:
            new = score.node_metrics(v)
            if not nodes.ndim:
                o = self.cur(int(nodes))[:, None]
                d1 += new - o
                d2 += new * new - o * o
            else:
                old = np.stack([self.cur(int(x)) for x in nodes], axis=1)
                d1 += new - old
                d2 += new * new - old * old
        return score.score_many(self.st, d1, d2)


def _ok(fail: NDArray) -> NDArray:
    return fail == 0  # type: ignore[no-any-return]


def _tag_hits(c: Cluster, nodes: NDArray, inst: Instance, more_than: int = 0) -> NDArray:
    """Per node: how many of the instance's exclusion tags its primaries hold > more_than times."""
    return np.array(
        [sum(1 for t in inst.excl_tags if c.ptags[int(x)].get(t, 0) > more_than) for x in nodes],
        dtype=np.int64,
    )


def _add_pri_tagged(
    c: Cluster, nodes: NDArray, v: View, inst: Instance, strict: bool
) -> tuple[View, NDArray]:
    """`nodeops.add_pri` plus exclusion tags (refusal when strict, else new conflicts)."""
    if not inst.excl_tags:
        return nodeops.add_pri(v, inst, strict=strict)
    hits = _tag_hits(c, nodes, inst)
    new, fail = nodeops.add_pri(v, inst, strict=strict, tag_reject=hits > 0)
    new["conflicts"] = v["conflicts"] + hits
    return new, fail


def candidate_moves(
    c: Cluster, inst: Instance, cand: NDArray, sc: _Scorer, opts: BalanceOptions
) -> list[tuple[float, Move, int]]:
    """Best score per move kind for one instance: [(score, move, target)].

    Exclusion tags are scored (conflicts of p, s and t; strict placements on a
    node holding one of the tags refused); the location metrics are not.
    """
    out: list[tuple[float, Move, int]] = []
    p, s = inst.pnode, inst.snode
    off = c.nodes["offline"]
    vp, vs = c.view(p), c.view(s) if s >= 0 else None
    tg = cand[(cand != p) & (cand != s)]
    k = len(tg)
    pp = np.array([p], dtype=np.int64)
    lose_p = _tag_hits(c, pp, inst, 1) if inst.excl_tags else 0
    if inst.disk_template != "drbd":
        if opts.instance_moves and k:
            p1 = nodeops.remove_pri(vp, inst)
            p1["conflicts"] = vp["conflicts"] - lose_p
            t1, ft = _add_pri_tagged(c, tg, c.view(tg), inst, strict=not bool(off[p]))
            scs = sc.score([(p, p1)], [(tg, t1)], k)
            scs[~_ok(ft)] = np.inf
            i = int(np.argmin(scs))
            out.append((float(scs[i]), Move.FAILOVER_TO_ANY, int(tg[i])))
        return out
    assert vs is not None
    peer_ps = np.array([c.peers[s].get(p, 0)], dtype=np.int64)
    p1 = nodeops.remove_pri(vp, inst)
    p1["conflicts"] = vp["conflicts"] - lose_p
    s1 = nodeops.remove_sec(vs, inst, peer_ps, np.array([c.peer_max_other(s, p)], dtype=np.int64))
    fp_strict = not bool(off[p])
    sp = np.array([s], dtype=np.int64)
    # failover
    if opts.instance_moves:
        s2, f1 = _add_pri_tagged(c, sp, s1, inst, strict=fp_strict)
        p2, f2 = nodeops.add_sec(p1, inst, np.array([c.peers[p].get(s, 0)]), strict=True)
        if f1[0] == 0 and f2[0] == 0:
            out.append((float(sc.score([(p, p2), (s, s2)], [], 1)[0]), Move.FAILOVER, -1))
    if not opts.disk_moves or k == 0:
        return out
    vt = c.view(tg)
    peer_t_p = c.peer_of(tg, p)
    # replace secondary
    t1, ft = nodeops.add_sec(vt, inst, peer_t_p, strict=not bool(off[s]))
    p2, fp2r = nodeops.add_pri(p1, inst, strict=False)
    p2["conflicts"] = vp["conflicts"]
    scs = sc.score([(p, p2), (s, s1)], [(tg, t1)], k)
    scs[~_ok(ft) | (fp2r[0] != 0)] = np.inf  # the forced re-add on p can fail (`moves`)
    i = int(np.argmin(scs))
    out.append((float(scs[i]), Move.REPLACE_SECONDARY, int(tg[i])))
    if not opts.instance_moves:
        return out
    s2, fs2 = _add_pri_tagged(c, sp, s1, inst, strict=fp_strict)
    # failover and replace: (s, t)
    if fs2[0] == 0:
        t1, ft = nodeops.add_sec(vt, inst, c.peer_of(tg, s), strict=fp_strict)
        scs = sc.score([(p, p1), (s, s2)], [(tg, t1)], k)
        scs[~_ok(ft)] = np.inf
        i = int(np.argmin(scs))
        out.append((float(scs[i]), Move.FAILOVER_AND_REPLACE, int(tg[i])))
    # replace and failover: (t, p)
    tp, ftp = _add_pri_tagged(c, tg, vt, inst, strict=True)
    peer_p_t = np.array([c.peers[p].get(int(t), 0) for t in tg], dtype=np.int64)
    p2v, fp2 = nodeops.add_sec(_bcast(p1, k), inst, peer_p_t, strict=not bool(off[s]))
    scs = sc.score([(s, s1)], [(tg, tp), (np.full(k, p), p2v)], k)
    scs[~(_ok(ftp) & _ok(fp2))] = np.inf
    i = int(np.argmin(scs))
    out.append((float(scs[i]), Move.REPLACE_AND_FAILOVER, int(tg[i])))
    # replace primary: (t, s)
    if fs2[0] == 0:
        s3 = nodeops.remove_pri(s2, inst)
        s3["conflicts"] = s1["conflicts"]
        tp2, ftp2 = _add_pri_tagged(c, tg, vt, inst, strict=fp_strict)
        peer_s_t = np.array([c.peers[s].get(int(t), 0) for t in tg], dtype=np.int64)
        s4, fs4 = nodeops.add_sec(_bcast(s3, k), inst, peer_s_t, strict=fp_strict)
        scs = sc.score([(p, p1)], [(tg, tp2), (np.full(k, s), s4)], k)
        scs[~(_ok(ftp2) & _ok(fs4))] = np.inf
        i = int(np.argmin(scs))
        out.append((float(scs[i]), Move.REPLACE_PRIMARY, int(tg[i])))
    return out


def movable_instances(c: Cluster, gidx: int, opts: BalanceOptions) -> list[Instance]:
    off = c.nodes["offline"]
    res = []
    for inst in c.instances:
        if not (inst.movable and inst.auto_balance) or inst.forthcoming:
            continue
        if c.instance_group(inst) != gidx:
            continue
        if inst.disk_template == "drbd" and inst.snode < 0:
            continue
        if opts.evac_mode and not (off[inst.pnode] or (inst.snode >= 0 and off[inst.snode])):
            continue
        res.append(inst)
    return res


def best_step(c: Cluster, gidx: int, opts: BalanceOptions) -> Step | None:
    nodes = c.group_nodes(gidx)
    cand = c.online_in_group(gidx)
    sc = _Scorer(c, nodes)
    best: Step | None = None
    for inst in movable_instances(c, gidx, opts):
        for val, mv, t in candidate_moves(c, inst, cand, sc, opts):
            if np.isfinite(val) and (best is None or val < best.score):
                best = Step(inst.idx, (inst.pnode, inst.snode), (-1, -1), mv, t, val)
    return best


def balance(
    c: Cluster, gidx: int, opts: BalanceOptions, on_step: Any = None
) -> tuple[float, float, list[Step]]:
    """Run hbal's loop on one group; returns (initial score, final score, steps)."""
    nodes = c.group_nodes(gidx)
    if opts.search != "legacy":
        from corral.htools.greedy import balance_group
        from corral.htools.search import lean_supported

        insts = movable_instances(c, gidx, opts)
        if insts and lean_supported(c, insts, nodes):
            return balance_group(c, gidx, insts, opts, on_step)
    ini = c.score(nodes)
    cur = ini
    steps: list[Step] = []
    while opts.max_length < 0 or len(steps) < opts.max_length:
        st = best_step_batched(c, gidx, opts)
        if st is None or not st.score < cur - 1e-12:
            break
        if cur <= opts.min_gain_limit and cur - st.score < opts.min_gain:
            break
        inst = c.instances[st.inst]
        if apply_move(c, inst, st.move, st.target) != FailMode.OK:
            break
        st.new = (inst.pnode, inst.snode)
        st.score = c.score(nodes)
        cur = st.score
        steps.append(st)
        if on_step is not None:
            on_step(st, len(steps))
    return ini, cur, steps


class _Batch:
    """Several instances with the same flags, sizes as arrays (for `nodeops`)."""

    def __init__(self, insts: list[Instance], rep: int = 1) -> None:
        i0 = insts[0]
        self.uses_memory = i0.uses_memory
        self.not_offline = i0.not_offline
        self.uses_sec_mem = i0.uses_sec_mem
        self.uses_local_storage = i0.uses_local_storage
        self.has_secondary = i0.has_secondary
        self.total_spindles = i0.total_spindles
        self.forthcoming = False

        def arr(vals: list[Any]) -> NDArray:
            return np.repeat(np.array(vals), rep)

        self.mem = arr([i.mem for i in insts])
        self.dsk = arr([i.dsk for i in insts])
        self.vcpus = arr([i.vcpus for i in insts])
        self.spindle_use = arr([i.spindle_use for i in insts])
        self.util = tuple(arr([i.util[j] for i in insts]) for j in range(4))


def _gather(c: Cluster, idx: NDArray) -> View:
    return {k: a[idx] for k, a in c.nodes.items()}


def _rep(v: View, k: int) -> View:
    return {key: np.repeat(a, k) for key, a in v.items()}


BATCH_ELEMS = 200_000


def best_step_batched(c: Cluster, gidx: int, opts: BalanceOptions) -> Step | None:
    """`best_step` for DRBD instances evaluated in large array batches."""
    nodes = c.group_nodes(gidx)
    cand = c.online_in_group(gidx)
    st = c.stats(nodes)
    mall = score.node_metrics(c.nodes)
    n = c.n_nodes
    pm = np.zeros((n, n), dtype=np.int64)
    for i, d in enumerate(c.peers):
        if d:
            ks = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
            pm[i, ks] = np.fromiter(d.values(), dtype=np.int64, count=len(d))
    off = c.nodes["offline"]
    insts = movable_instances(c, gidx, opts)
    groups: dict[tuple[Any, ...], list[Instance]] = {}
    others: list[Instance] = []
    for inst in insts:
        if inst.disk_template != "drbd" or inst.excl_tags:
            others.append(inst)
            continue
        key = (
            inst.uses_memory, inst.not_offline, inst.uses_sec_mem, inst.total_spindles,
            bool(off[inst.pnode]), bool(off[inst.snode]),
        )  # fmt: skip
        groups.setdefault(key, []).append(inst)
    best: list[Any] = [np.inf, -1, Move.FAILOVER, -1]

    def consider(scores: NDArray, idx_inst: list[Instance], move: Move, targets: NDArray | None,
                 k: int) -> None:  # fmt: skip
        if scores.size == 0:
            return
        j = int(np.argmin(scores))
        if scores[j] < best[0]:
            best[0] = float(scores[j])
            best[1] = idx_inst[j // k if targets is not None else j].idx
            best[2] = move
            best[3] = int(targets[j]) if targets is not None else -1

    def sc(d1: NDArray, d2: NDArray) -> NDArray:
        return score.score_many(st, d1, d2)

    k = len(cand)
    for (_, _, _, _, offp, offs), glist in groups.items():
        fp_strict = not offp
        fs_strict = not offs
        chunk = max(1, BATCH_ELEMS // max(k, 1))
        for lo in range(0, len(glist), chunk):
            gl = glist[lo : lo + chunk]
            ic = len(gl)
            pi = np.array([i.pnode for i in gl], dtype=np.int64)
            si = np.array([i.snode for i in gl], dtype=np.int64)
            b1 = _Batch(gl)
            vp, vs = _gather(c, pi), _gather(c, si)
            mo = np.array([c.peer_max_other(int(s), int(p)) for p, s in zip(pi, si, strict=True)])
            p1 = nodeops.remove_pri(vp, b1)
            s1 = nodeops.remove_sec(vs, b1, pm[si, pi], mo)
            mp, ms = mall[:, pi], mall[:, si]
            mp1, ms1 = score.node_metrics(p1), score.node_metrics(s1)
            s2, fs2 = nodeops.add_pri(s1, b1, strict=fp_strict)
            ms2 = score.node_metrics(s2)
            if opts.instance_moves:
                p2, f2 = nodeops.add_sec(p1, b1, pm[pi, si], strict=True)
                mp2 = score.node_metrics(p2)
                d1 = (mp2 - mp) + (ms2 - ms)
                d2 = (mp2**2 - mp**2) + (ms2**2 - ms**2)
                fo = sc(d1, d2)
                fo[(fs2 != 0) | (f2 != 0)] = np.inf
                consider(fo, gl, Move.FAILOVER, None, 1)
            if not opts.disk_moves or k == 0:
                continue
            r = np.repeat(np.arange(ic), k)
            t = np.tile(cand, ic)
            bad = (t == pi[r]) | (t == si[r])
            vt = _gather(c, t)
            mt = mall[:, t]
            bk = _Batch(gl, k)
            # replace secondary: p re-added (forced), s -> s1, t gets the secondary
            p2r, _ = nodeops.add_pri(p1, b1, strict=False)
            mp2r = score.node_metrics(p2r)
            fix1 = (mp2r - mp) + (ms1 - ms)
            fix2 = (mp2r**2 - mp**2) + (ms1**2 - ms**2)
            t1, ft = nodeops.add_sec(vt, bk, pm[t, pi[r]], strict=fs_strict)
            mt1 = score.node_metrics(t1)
            res = sc(fix1[:, r] + mt1 - mt, fix2[:, r] + mt1**2 - mt**2)
            res[bad | (ft != 0)] = np.inf
            consider(res, gl, Move.REPLACE_SECONDARY, t, k)
            if not opts.instance_moves:
                continue
            # replace and failover: (t, p)
            tp, ftp = nodeops.add_pri(vt, bk, strict=True)
            mtp = score.node_metrics(tp)
            p2v, fp2 = nodeops.add_sec(_rep(p1, k), bk, pm[pi[r], t], strict=fs_strict)
            mp2v = score.node_metrics(p2v)
            mpr = mp[:, r]
            fix1 = ms1 - ms
            fix2 = ms1**2 - ms**2
            res = sc(
                fix1[:, r] + (mtp - mt) + (mp2v - mpr),
                fix2[:, r] + (mtp**2 - mt**2) + (mp2v**2 - mpr**2),
            )
            res[bad | (ftp != 0) | (fp2 != 0)] = np.inf
            consider(res, gl, Move.REPLACE_AND_FAILOVER, t, k)
            ok2 = fs2 == 0
            if not ok2.any():
                continue
            # replace primary: (t, s)
            s3 = nodeops.remove_pri(s2, b1)
            tp2, ftp2 = nodeops.add_pri(vt, bk, strict=fp_strict)
            mtp2 = score.node_metrics(tp2)
            s4, fs4 = nodeops.add_sec(_rep(s3, k), bk, pm[si[r], t], strict=fp_strict)
            ms4 = score.node_metrics(s4)
            msr = ms[:, r]
            fix1 = mp1 - mp
            fix2 = mp1**2 - mp**2
            res = sc(
                fix1[:, r] + (mtp2 - mt) + (ms4 - msr),
                fix2[:, r] + (mtp2**2 - mt**2) + (ms4**2 - msr**2),
            )
            res[bad | (ftp2 != 0) | (fs4 != 0) | ~ok2[r]] = np.inf
            consider(res, gl, Move.REPLACE_PRIMARY, t, k)
            # failover and replace: (s, t)
            t3, ft3 = nodeops.add_sec(vt, bk, pm[t, si[r]], strict=fp_strict)
            mt3 = score.node_metrics(t3)
            fix1 = (mp1 - mp) + (ms2 - ms)
            fix2 = (mp1**2 - mp**2) + (ms2**2 - ms**2)
            res = sc(fix1[:, r] + mt3 - mt, fix2[:, r] + mt3**2 - mt**2)
            res[bad | (ft3 != 0) | ~ok2[r]] = np.inf
            consider(res, gl, Move.FAILOVER_AND_REPLACE, t, k)
    if others:
        scr = _Scorer(c, nodes)
        for inst in others:
            for val, mv, tt in candidate_moves(c, inst, cand, scr, opts):
                if np.isfinite(val) and val < best[0]:
                    best = [val, inst.idx, mv, tt]
    if best[1] < 0:
        return None
    inst = c.instances[best[1]]
    return Step(best[1], (inst.pnode, inst.snode), (-1, -1), best[2], best[3], best[0])
