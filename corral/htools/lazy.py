"""hbal's exhaustive step at a fraction of its cost: rows skipped only under a proof.

The exhaustive search (`greedy._balance_exhaustive`) scores every (instance,
move, target) at every step. Most of that work is wasted: one move changes
the values of at most three nodes, so a candidate that touches none of them
changes its score only through the cluster-wide sums of the score
(`score.Stats`). This module keeps, per instance row, a *lower bound* on the
row's best candidate score and evaluates exactly only the rows whose bound
could still beat the best exact score found this step. The step it takes is
the exhaustive step (same scores, same tie-breaking: `PairEval.scan`), so the
whole path, and the final score, equal the exhaustive search's; the pruning
is lossless and needs no benchmark evidence of quality.

The bound after a move (`RowBounds.drift`). For a standard-deviation metric
with N online nodes, sums S1, S2 and variance V, a candidate changing Σx by
Δ1 and Σx² by Δ2 leaves the variance V_c = V + a. When the applied move
shifts the sums by (e1, e2) the candidate's new variance is
V_c + δ - 2·e1·Δ1/N², with δ the change of V itself: the candidate's own
nodes were untouched, so Δ1 and Δ2 are unchanged. Its score term w·√V_c
therefore moves by the same amount as the cluster's own term w·√V up to a
difference that depends only on where V_c lies (√ is concave: the same
shift moves a small variance's root more); over an interval holding every
V_c of the row, the worst case of that difference is at one end. Plain-sum
metrics move every candidate by the same w·e1. Summed over the metrics this
gives each row a lower bound on how much any of its untouched candidates can
have dropped. Candidates aimed at a touched node are scored again exactly
(few columns) for every row whose floor for those nodes (`RowBounds.floor`:
the same interval with the target's own distance to the mean) could beat
its bound; rows whose instance sits on a touched node are evaluated again in
full.

The interval of V_c (`RowBounds._range`): a = a_ps + a_t + cross terms. The
part of the instance's own nodes, a_ps, is exact per move kind from its
`search.Fixed` deltas (the interval spans the kinds). The target's part is
(2·(x_t - μ)·d + d²)/N with 0 <= d <= D in the direction a node's value
moves when it receives an instance (up for used ratios and loads, down for
free memory and disk), D being the instance's size in that metric times the
largest per-node scale in the group (memory / the smallest node memory, ...)
and x_t any online node's value; the cross term is bounded by |Δ1_ps|·D/N².
Reserved memory also changes on the old node that becomes the target's
secondary, by at most D: one more node term for that metric.

`tests/htools/test_lazy.py` checks, before every step on varied generated
clusters, that every bound is at or below the row's true best, and that the
path equals the exhaustive one. Not used when the location-exclusion map
statistic is modelled: every row changes after every move there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools import score
from corral.htools.candidates import PeerTable
from corral.htools.greedy import Mover
from corral.htools.moves import Move
from corral.htools.search import Fixed, PairEval, Sizes, tie_tolerance

NDArray = np.ndarray[Any, Any]
Found = tuple[float, int, Move, int]

_STD = score.STD_IDX
_RMEM = int(np.flatnonzero(_STD == 3)[0])  # reserved memory's column among _STD
# +1 where a node's value grows when it receives an instance (used ratios,
# loads, reserved memory), -1 where it shrinks (free memory and disk)
_TOWARD = np.array([-1.0 if m in (0, 1, 13, 14) else 1.0 for m in _STD])
_SUM = score.SUM_IDX
# Float rounding: the bound is loosened by this much per move, and rows whose
# bound is within `_TIE` of the best exact score are evaluated too.
_SLACK = 1e-11
_TIE = 1e-9
# rows evaluated first besides those that must be (dirty): the likely winners
_FIRST = 8


class RowBounds:
    """Per-row drift bounds of the best candidate score (see the module docstring)."""

    def __init__(self, ev: PairEval, nodes: NDArray, sz: Sizes) -> None:
        self.nodes = nodes
        tm = float(ev.inv_tmem[nodes].max(initial=0.0))
        td = float(ev.inv_tdsk[nodes].max(initial=0.0))
        tc = float(ev.inv_cpu[nodes].max(initial=0.0))
        th = float(ev.inv_hisp[nodes].max(initial=0.0))
        D = np.zeros((len(sz.mem), score.NMETRICS))
        mem = np.abs(sz.mem) * tm
        D[:, 0] = D[:, 3] = D[:, 13] = mem
        D[:, 1] = D[:, 14] = np.abs(sz.dsk) * td
        D[:, 6] = D[:, 15] = np.abs(sz.vcpus) * tc
        for j in range(4):
            D[:, 7 + j] = np.abs(sz.util[j])
        D[:, 12] = D[:, 16] = np.abs(sz.spindle_use) * th
        # the direction of a target's change holds for non-negative sizes only
        neg = [bool((a < 0).any()) for a in (sz.mem, sz.dsk, sz.vcpus, sz.spindle_use, *sz.util)]
        self.signed = not any(neg)
        # a hair wider than the exact per-node change, for rounding
        self.D = D[:, _STD] * (1.0 + 1e-9) + 1e-15
        n = max(ev.st.n, 1)
        self.D2n = self.D * self.D / n  # D²/N
        self.D2nn = self.D * (2.0 / (n * n))  # 2·D/N²
        shape = self.D.shape
        self.amin, self.amax = np.zeros(shape), np.zeros(shape)
        self.d1, self.mu = np.zeros(shape), np.zeros(shape)
        self.smin = np.zeros(len(self.D))  # own-node part of the plain sums, best kind

    def online(self, ev: PairEval) -> NDArray:
        """The group's online nodes."""
        return self.nodes[~ev.v["offline"][self.nodes]]

    def drift(self, before: PairEval, after: PairEval) -> NDArray:
        """Per row: a lower bound on (new - old) score of any untouched candidate.

        Valid for every row whose nodes the move left alone (`update` holds their
        own-node parts); the others are evaluated again anyway.
        """
        s0, s1 = before.st, after.st
        n = max(s0.n, 1)
        w = score.WEIGHTS[_STD]
        V0 = _var(s0.s1, s0.s2, n)[_STD]
        V1 = _var(s1.s1, s1.s2, n)[_STD]
        own = w * (np.sqrt(V1) - np.sqrt(V0))
        common = float(own.sum())
        common += float(np.dot(score.WEIGHTS[_SUM], s1.s1[_SUM] - s0.s1[_SUM]))
        common += float(score.WEIGHTS[score.MAP_METRIC]) * (s1.map_value - s0.map_value)
        lo, hi = self._range(before, V0, n)
        e1 = np.abs(s1.s1[_STD] - s0.s1[_STD])
        # the most negative change of a candidate's variance, per row and metric
        dt = self.D * (-6.0 * e1 / (n * n))
        dt += V1 - V0
        neg = dt < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # dt >= 0: the change w·dt/(√(x+dt)+√x) shrinks with x: worst at hi;
            # dt < 0: it grows with x from x = -dt on (worst at lo); below that
            # the clamped term is -w·√x, worst at x = -dt
            x = np.where(neg, lo, hi)
            clamp = neg & (lo < -dt)
            den = np.sqrt(x + dt)
            den += np.sqrt(x)
            worst = dt / den
            if clamp.any():
                worst[clamp] = -np.sqrt(np.minimum(-dt, hi)[clamp])
        np.nan_to_num(worst, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        worst *= w
        worst -= own
        return common + worst.sum(axis=1) - _SLACK  # type: ignore[no-any-return]

    def update(self, rows: NDArray, F: NDArray, ev: PairEval) -> None:
        """Record the own-node parts of ``rows`` (``F``: their `search.Fixed` deltas).

        Per row and metric over the move kinds: the extremes of
        a = Δ2/N - 2·μ·Δ1/N - Δ1²/N² at the current mean μ, and of |Δ1|; when the
        mean has moved by dμ since, a moves by -2·dμ·Δ1/N (`_range`).
        """
        n = max(ev.st.n, 1)
        mu = ev.st.s1[_STD] / n
        d1 = F[:, :, 0][:, :, _STD]
        d2 = F[:, :, 1][:, :, _STD]
        a = d2 / n - (2.0 * mu / n) * d1 - d1 * d1 / (n * n)
        self.amin[rows] = a.min(axis=1)
        self.amax[rows] = a.max(axis=1)
        self.d1[rows] = np.abs(d1).max(axis=1)
        self.mu[rows] = mu
        self.smin[rows] = (F[:, :, 0][:, :, _SUM] @ score.WEIGHTS[_SUM]).min(axis=1)

    def _range(self, ev: PairEval, V: NDArray, n: int) -> tuple[NDArray, NDArray]:
        """Per row and metric: an interval holding every candidate's variance V_c.

        V_c - V = a_ps + a_t: the part of the instance's own nodes follows from
        its `search.Fixed` deltas (`update`; the interval spans the move kinds),
        the target's from its value's distance to the mean (any online node)
        and its change (at most D), the cross term from |Δ1_ps|·D. Metric 3
        (reserved memory) also moves on the old node that becomes the target's
        secondary (`search._x_pair`): one more node term.
        """
        mu, cross, extra = self.spread(ev, n)
        x = ev.m[_STD][:, self.online(ev)]
        # distance to the mean of the target's value, in the direction a target
        # moves when it receives an instance (_TOWARD) and against it
        dev = (x - mu[:, None]) * _TOWARD[:, None]
        far = np.maximum(dev.max(axis=1, initial=0.0), 0.0)  # along: the variance grows
        back = np.maximum(-dev.min(axis=1, initial=0.0), 0.0)  # against: it can shrink
        if not self.signed:  # negative sizes: no known direction, both ways as far
            far = back = np.maximum(far, back)
        # the target's term 2·(x-μ)·d + d² with d in [0, D] along the direction
        hi = V + self.amax
        hi += self.D * (2.0 * far / n)
        hi += self.D2n
        hi += cross
        hi[:, _RMEM] += extra
        return np.maximum(self.low(V, n, back, cross, extra), 0.0), hi

    def spread(self, ev: PairEval, n: int) -> tuple[NDArray, NDArray, NDArray]:
        """The mean, the cross term and reserved memory's extra node term.

        Shared by both ends of `_range` and by every `floor` of one state.
        """
        mu = ev.st.s1[_STD] / n
        cross = self.d1 * (np.abs(mu - self.mu) * (2.0 / n) + self.D2nn)
        cross += self.D2n / n
        R = np.abs(ev.m[_STD][_RMEM, self.online(ev)] - mu[_RMEM]).max(initial=0.0)
        Dr = self.D[:, _RMEM]
        extra = (2.0 * R * Dr + Dr * Dr) / n + 2.0 * Dr * Dr / (n * n)
        return mu, cross, extra

    def low(self, V: NDArray, n: int, back: NDArray, cross: NDArray, extra: NDArray
            ) -> NDArray:  # fmt: skip
        """Lower end of the interval (unclamped) for a target value at most ``back``
        against its direction from the mean: 2·(x-μ)·d + d² >= -back² (or
        D² - 2·back·D once back > D)."""
        D = self.D
        lo = V + self.amin
        lo -= np.where(back <= D, back * back / n, D * (2.0 * back / n) - self.D2n)
        lo -= cross
        lo[:, _RMEM] -= extra
        return lo

    def floor(self, ev: PairEval, t: int, V: NDArray, n: int,
              spread: tuple[NDArray, NDArray, NDArray]) -> NDArray:  # fmt: skip
        """Per row: a lower bound on every candidate aimed at node ``t`` (current state).

        `_range`'s lower end with this target's own distance to the mean instead
        of the farthest node's; the plain sums take the row's best own-node part
        (`update`), a target only ever adding to them (N+1 failures, reserved
        memory, tag conflicts). Not valid with location tags, whose pair score
        can drop: the caller scores every row then. ``spread``: `spread` of ``ev``.
        """
        mu, cross, extra = spread
        y = (ev.m[_STD][:, t] - mu) * _TOWARD
        back = np.maximum(-y, 0.0) if self.signed else np.abs(y)
        lo = self.low(V, n, back, cross, extra)
        np.maximum(lo, 0.0, out=lo)
        np.sqrt(lo, out=lo)
        out = lo @ score.WEIGHTS[_STD]
        out += self.smin
        out += float(score.WEIGHTS[_SUM] @ ev.st.s1[_SUM])
        out += float(score.WEIGHTS[score.MAP_METRIC]) * ev.st.map_value
        return out - _SLACK  # type: ignore[no-any-return]


def _before(a: Found, b: Found) -> bool:
    """Whether ``a`` wins over ``b`` as in the exhaustive scan: lower, or a tie on a lower row."""
    tol = tie_tolerance(b[0])
    return a[0] < b[0] - tol or (a[0] <= b[0] + tol and a[1] < b[1])


def _var(s1: NDArray, s2: NDArray, n: int) -> NDArray:
    mean = s1 / n
    return np.maximum(s2 / n - mean * mean, 0.0)


def balance_lazy(mover: Mover, cand: NDArray, ev: PairEval, pm: PeerTable) -> None:
    """hbal's loop with the exhaustive step, rows evaluated only when their bound asks."""
    c, insts = mover.c, mover.insts
    sizes = Sizes.of(insts)
    fixed = ev.fixed(insts, sizes)
    bounds = RowBounds(ev, mover.nodes, sizes)
    bounds.update(np.arange(len(insts)), fixed.a["F"], ev)
    lb, _ = ev.scan(fixed, sizes, cand, mover.banned)
    while mover.more():
        found = _choose(ev, fixed, sizes, cand, lb, mover.banned)
        if not mover.worth(found):
            break
        assert found is not None
        lifted = [r for r, _m, _t in mover.banned]
        touched = mover.apply(found)
        if touched is None:
            if len(mover.banned) > 100:
                break
            continue
        lb[lifted] = -np.inf  # their banned candidates count again
        for x in touched:
            pm.refresh(int(x))
        prev, ev = ev, PairEval(c, mover.nodes, pm, mover.opts)
        lb += bounds.drift(prev, ev)
        rows = mover.dirty(touched)
        fixed.put(rows, ev.fixed([insts[r] for r in rows], sizes.take(rows)))
        bounds.update(rows, fixed.a["F"][rows], ev)
        lb[rows] = -np.inf
        tt = touched[np.isin(touched, cand)]
        if len(tt):
            _score_columns(ev, bounds, fixed, sizes, tt, lb)


def _score_columns(ev: PairEval, bounds: RowBounds, fixed: Fixed, sizes: Sizes,
                   tt: NDArray, lb: NDArray) -> None:  # fmt: skip
    """Lower ``lb`` by the candidates aimed at the touched nodes ``tt``.

    Rows whose floor for those targets (`RowBounds.floor`) is not below their
    bound cannot gain: only the others are scored exactly.
    """
    live = np.isfinite(lb) | (lb > 0)  # -inf rows are evaluated in full anyway
    if ev.locs is None:
        n = max(ev.st.n, 1)
        V = _var(ev.st.s1, ev.st.s2, n)[_STD]
        spread = bounds.spread(ev, n)
        floor = np.min([bounds.floor(ev, int(t), V, n, spread) for t in tt], axis=0)
        live &= floor < lb
    rows = np.flatnonzero(live)
    if len(rows) == len(lb):
        colmin, _ = ev.scan(fixed, sizes, tt, set(), with_failover=False)
        np.minimum(lb, colmin, out=lb)
    elif len(rows):
        colmin, _ = ev.scan(fixed.take(rows), sizes.take(rows), tt, set(), rows,
                            with_failover=False)  # fmt: skip
        lb[rows] = np.minimum(lb[rows], colmin)


def _choose(
    ev: PairEval, fixed: Fixed, sizes: Sizes, cand: NDArray, lb: NDArray,
    banned: set[tuple[int, int, int]],
) -> Found | None:  # fmt: skip
    """The exhaustive step: evaluate rows in bound order until no bound can win.

    Evaluated rows get their exact minimum as their new bound. Among equal
    scores the lowest row wins, as in the exhaustive scan.
    """
    order = np.argsort(lb, kind="stable")
    best: Found | None = None
    i = 0
    n = len(order)
    first = int(np.count_nonzero(lb == -np.inf)) + _FIRST
    while i < n:
        nxt = float(lb[order[i]])
        if nxt == np.inf or (best is not None and nxt > best[0] + _TIE):
            break
        if best is None:
            k = first
        else:  # every remaining row that could still win, in one go
            k = int(np.searchsorted(lb[order[i:]], best[0] + _TIE, side="right"))
        rows = np.sort(order[i : i + max(k, 1)])
        rmin, got = ev.scan(fixed.take(rows), sizes.take(rows), cand, banned, rows)
        lb[rows] = rmin
        if got is not None and (best is None or _before(got, best)):
            best = got
        i += len(rows)
    return best
