"""hbal's greedy loop on top of the cached pairwise search (`corral.htools.search`).

`balance_cached` makes the same decisions as hbal's loop in `balance` (one
best move per step, stop when no move lowers the score, ``-l``, min-gain) but
keeps every instance's best candidates between steps and only re-evaluates
what a move can have changed; see `search` for why that is safe enough and
when the cache is bypassed (``exhaustive``: evaluate every instance against
every target at every step, the reference the benchmark compares against).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools.candidates import Cands, PeerTable
from corral.htools.cluster import Cluster
from corral.htools.moves import Move, apply_move
from corral.htools.search import Fixed, PairEval, Sizes, pick_targets
from corral.htools.types import FailMode, Instance

NDArray = np.ndarray[Any, Any]


def balance_cached(
    c: Cluster,
    gidx: int,
    insts: list[Instance],
    opts: Any,
    on_step: Any = None,
    exhaustive: bool = False,
    target_limit: int = 0,
    verify: int = 16,
    schedule: Any = None,
) -> tuple[float, float, list[Any]]:
    """hbal's loop for one group (instances from `balance.movable_instances`).

    `schedule` (a `balance.RefreshSchedule`; default: never) says after which
    moves every pair is evaluated again instead of only what the move changed.
    """
    from corral.htools.balance import RefreshSchedule, Step

    if schedule is None:
        schedule = RefreshSchedule()

    nodes = c.group_nodes(gidx)
    cand = c.online_in_group(gidx)
    pos = np.array([i.pnode for i in insts], dtype=np.int64)
    sec = np.array([i.snode for i in insts], dtype=np.int64)
    pm = PeerTable(c)
    ini = c.score(nodes)
    cur = ini
    steps: list[Step] = []
    if opts.max_length == 0:
        return ini, cur, steps
    ev = PairEval(c, nodes, pm, opts)
    if exhaustive or ev.map_on:
        # the location-exclusion map statistic can change every instance's
        # candidates after any move: no cache then
        return _balance_exhaustive(c, nodes, cand, insts, opts, on_step, target_limit, ev, pm)
    targets = pick_targets(ev, cand, insts, target_limit)
    cache = Cands.empty(len(insts))
    all_rows = np.arange(len(insts))

    sizes = Sizes.of(insts)
    fixed = ev.fixed(insts, sizes)

    def full(rows: NDArray, tg: NDArray) -> None:
        cache.set(rows, ev.evaluate(fixed.take(rows), sizes.take(rows), tg))

    full(all_rows, targets)
    fresh = True  # every cached candidate evaluated in the current state
    complete = len(targets) == len(cand)  # ... and against every target
    failures = 0
    extra = np.zeros(0, dtype=np.int64)
    due = schedule.points()
    nxt = next(due, None)
    while opts.max_length < 0 or len(steps) < opts.max_length:
        j, val = _choose(cache, ev, fixed, sizes, np.union1d(targets, extra), fresh, verify)
        if (val is None or not val < cur - 1e-12) and not (fresh and complete):
            # nothing found in the cache: look again at everything before stopping
            full(all_rows, cand)
            fresh = complete = True
            continue
        if val is None or not val < cur - 1e-12:
            break
        if cur <= opts.min_gain_limit and cur - val < opts.min_gain:
            break
        inst = insts[j]
        col = int(np.argmin(cache.val[j]))
        move, t = Move(int(cache.kind[j, col])), int(cache.tgt[j, col])
        old = (inst.pnode, inst.snode)
        involved = sorted({x for x in (*old, t) if x >= 0})
        before = _snapshot(c, involved)
        load0 = {x: (int(c.nodes["npri"][x]), int(c.nodes["nsec"][x])) for x in involved}
        if apply_move(c, inst, move, t) != FailMode.OK:
            cache.val[j, col] = np.inf  # prediction disagreed with the exact check
            failures += 1
            if failures > 100:
                break
            continue
        st = Step(inst.idx, old, (inst.pnode, inst.snode), move, t, 0.0)
        cur = c.score(nodes)
        st.score = cur
        steps.append(st)
        if on_step is not None:
            on_step(st, len(steps))
        after = _snapshot(c, involved)
        touched = np.array([x for x, b, a in zip(involved, before, after, strict=True) if b != a],
                           dtype=np.int64)  # fmt: skip
        for x in touched:
            pm.refresh(int(x))
        pos[j], sec[j] = inst.pnode, inst.snode
        ev = PairEval(c, nodes, pm, opts)
        if target_limit > 0:
            targets = pick_targets(ev, cand, insts, target_limit)
        hit = np.isin(pos, touched) | np.isin(sec, touched)
        dirty = np.flatnonzero(hit | ev.map_on)  # map statistic: every row changes
        fixed.put(dirty, ev.fixed([insts[r] for r in dirty], sizes.take(dirty)))
        while nxt is not None and nxt < len(steps):
            nxt = next(due, None)
        if nxt == len(steps):
            # periodic full evaluation bounds how stale the cached ranking can get
            full(all_rows, targets)
            fresh, complete = True, len(targets) == len(cand)
            continue
        fresh = complete = False
        # Nodes that only received load get worse as targets: only the rows that
        # had them cached need another look. Nodes that lost load may now suit
        # any instance.
        gained = np.array(
            [
                x
                for x in touched
                if (
                    int(c.nodes["npri"][x]) >= load0[x][0]
                    and int(c.nodes["nsec"][x]) >= load0[x][1]
                )
            ],
            dtype=np.int64,
        )
        had = _member(cache.tgt, gained, c.n_nodes).any(axis=1)
        cache.val[_member(cache.tgt, touched, c.n_nodes)] = np.inf
        cache.rescore(ev.st)
        t_on = touched[np.isin(touched, targets)]
        t_all = t_on[~np.isin(t_on, gained)]
        t_had = t_on[np.isin(t_on, gained)]
        if len(t_all):
            ev.improve(cache, np.flatnonzero(~hit), fixed, sizes, t_all)
        rows_had = np.flatnonzero(~hit & had)
        if len(t_had) and len(rows_had):
            ev.improve(cache, rows_had, fixed, sizes, t_had)
        cache.val[dirty] = -np.inf  # must be evaluated before anything is chosen
        extra = t_on
    return ini, cur, steps


def _balance_exhaustive(
    c: Cluster, nodes: NDArray, cand: NDArray, insts: list[Instance], opts: Any, on_step: Any,
    target_limit: int, ev: PairEval, pm: PeerTable,
) -> tuple[float, float, list[Any]]:  # fmt: skip
    """Every pair evaluated at every step (`PairEval.best_move`); no candidate cache."""
    from corral.htools.balance import Step

    ini = cur = c.score(nodes)
    steps: list[Step] = []
    sizes = Sizes.of(insts)
    fixed = ev.fixed(insts, sizes)
    pos = np.array([i.pnode for i in insts], dtype=np.int64)
    sec = np.array([i.snode for i in insts], dtype=np.int64)
    banned: set[tuple[int, int, int]] = set()
    while opts.max_length < 0 or len(steps) < opts.max_length:
        targets = pick_targets(ev, cand, insts, target_limit)
        found = ev.best_move(fixed, sizes, targets, banned)
        if (found is None or not found[0] < cur - 1e-12) and len(targets) < len(cand):
            found = ev.best_move(fixed, sizes, cand, banned)  # look at every target before stopping
        if found is None or not found[0] < cur - 1e-12:
            break
        val, j, move, t = found
        if cur <= opts.min_gain_limit and cur - val < opts.min_gain:
            break
        inst = insts[j]
        old = (inst.pnode, inst.snode)
        involved = sorted({x for x in (*old, t) if x >= 0})
        before = _snapshot(c, involved)
        if apply_move(c, inst, move, t) != FailMode.OK:
            banned.add((j, int(move), t))  # prediction disagreed with the exact check
            if len(banned) > 100:
                break
            continue
        banned.clear()
        st = Step(inst.idx, old, (inst.pnode, inst.snode), move, t, 0.0)
        cur = c.score(nodes)
        st.score = cur
        steps.append(st)
        if on_step is not None:
            on_step(st, len(steps))
        after = _snapshot(c, involved)
        touched = [x for x, b, a in zip(involved, before, after, strict=True) if b != a]
        for x in touched:
            pm.refresh(int(x))
        pos[j], sec[j] = inst.pnode, inst.snode
        ev = PairEval(c, nodes, pm, opts)
        dirty = np.flatnonzero(np.isin(pos, touched) | np.isin(sec, touched) | ev.map_on)
        fixed.put(dirty, ev.fixed([insts[r] for r in dirty], sizes.take(dirty)))
    return ini, cur, steps


def _member(a: NDArray, nodes: NDArray, n: int) -> NDArray:
    """``np.isin(a, nodes)`` for node indices (``-1`` = no target) via a lookup table."""
    mark = np.zeros(n + 1, dtype=bool)
    mark[nodes] = True
    mark[-1] = False  # index -1 (no target) reads the spare last slot
    return mark[a]


def _choose(
    cache: Cands, ev: PairEval, fixed: Fixed, sizes: Sizes, targets: NDArray, fresh: bool,
    verify: int,
) -> tuple[int, float | None]:  # fmt: skip
    """Best instance row and its score; the most promising rows are re-evaluated.

    Cached candidates are exact (rescored under the current sums), but an
    instance's best target may have changed rank since it was evaluated, so the
    rows are evaluated afresh best-first, at least `verify` of them, until the
    best fresh score beats every remaining cached one.
    """
    best = cache.val.min(axis=1)
    if not fresh:
        order = np.argsort(best, kind="stable")
        dirty = int(np.count_nonzero(best == -np.inf))
        i = 0
        top = np.inf
        while i < len(order):
            nxt = best[order[i]]
            if not np.isfinite(nxt) and nxt > 0:
                break
            if i >= dirty + verify and top <= nxt:
                break
            width = dirty + verify if i == 0 else verify
            rows = order[i : i + width]
            cache.set(rows, ev.evaluate(fixed.take(rows), sizes.take(rows), targets))
            top = min(top, float(cache.val[rows].min()))
            i += width
        best = cache.val.min(axis=1)
    j = int(np.argmin(best))
    return j, (float(best[j]) if np.isfinite(best[j]) else None)


def _snapshot(c: Cluster, nodes: list[int]) -> list[Any]:
    """Comparable state of some nodes (to tell which ones a move really changed)."""
    v = c.nodes
    return [(tuple(a[x].item() for a in v.values()), tuple(sorted(c.peers[x].items())))
            for x in nodes]  # fmt: skip
