"""hbal's greedy loop on top of the pairwise search (`corral.htools.search`).

Both loops here make hbal's decisions (one best move per step, stop when no
move lowers the score, ``-l``, min-gain) and take exactly the same step:

* `_balance_exhaustive` scores every (instance, move, target) at every step,
  Ganeti's own method; used for small groups, where that is cheapest, and
  whenever the location-exclusion map statistic is modelled (it changes every
  instance's candidates after any move);
* `corral.htools.lazy.balance_lazy` proves most rows cannot win and scores
  only the rest; the default everywhere else.

`Mover` is the part they share: apply the chosen move, record the step, and
report which nodes really changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools.candidates import PeerTable
from corral.htools.cluster import Cluster
from corral.htools.moves import Move, apply_move
from corral.htools.search import PairEval, Sizes
from corral.htools.types import FailMode, Instance

NDArray = np.ndarray[Any, Any]

# groups with at most this many (instance, target) pairs are searched exhaustively
EXHAUSTIVE_PAIRS = 50_000


def balance_group(
    c: Cluster, gidx: int, insts: list[Instance], opts: Any, on_step: Any = None,
) -> tuple[float, float, list[Any]]:  # fmt: skip
    """hbal's loop for one group (instances from `balance.movable_instances`).

    ``opts.search``: "exhaustive" forces the reference search; anything else
    picks as described in the module docstring.
    """
    nodes = c.group_nodes(gidx)
    cand = c.online_in_group(gidx)
    pm = PeerTable(c)
    mover = Mover(c, nodes, insts, opts, on_step)
    if opts.max_length == 0:
        return mover.ini, mover.cur, mover.steps
    ev = PairEval(c, nodes, pm, opts)
    small = len(insts) * len(cand) <= EXHAUSTIVE_PAIRS
    if opts.search == "exhaustive" or ev.map_on or (small and opts.search != "lazy"):
        _balance_exhaustive(mover, cand, ev, pm)
    else:
        from corral.htools.lazy import balance_lazy

        balance_lazy(mover, cand, ev, pm)
    return mover.ini, mover.cur, mover.steps


class Mover:
    """The cluster side of hbal's loop: applies chosen moves and records the steps."""

    def __init__(self, c: Cluster, nodes: NDArray, insts: list[Instance], opts: Any,
                 on_step: Any) -> None:  # fmt: skip
        self.c, self.nodes, self.insts, self.opts, self.on_step = c, nodes, insts, opts, on_step
        self.ini = self.cur = c.score(nodes)
        self.steps: list[Any] = []
        self.banned: set[tuple[int, int, int]] = set()
        self.pos = np.array([i.pnode for i in insts], dtype=np.int64)
        self.sec = np.array([i.snode for i in insts], dtype=np.int64)

    def more(self) -> bool:
        """Whether ``-l`` allows another move."""
        limit: int = self.opts.max_length
        return limit < 0 or len(self.steps) < limit

    def worth(self, found: tuple[float, int, Move, int] | None) -> bool:
        """Whether the best candidate is taken: it lowers the score (and min-gain)."""
        if found is None or not found[0] < self.cur - 1e-12:
            return False
        opts = self.opts
        return not (self.cur <= opts.min_gain_limit and self.cur - found[0] < opts.min_gain)

    def apply(self, found: tuple[float, int, Move, int]) -> NDArray | None:
        """Apply the candidate; the nodes it changed, or None when the exact check refused.

        A refused candidate is banned until the next move that succeeds (the
        pair search predicted it feasible; `moves.apply_move` is the authority).
        """
        from corral.htools.balance import Step

        _, j, move, t = found
        c, inst = self.c, self.insts[j]
        old = (inst.pnode, inst.snode)
        involved = sorted({x for x in (*old, t) if x >= 0})
        before = _snapshot(c, involved)
        if apply_move(c, inst, move, t) != FailMode.OK:
            self.banned.add((j, int(move), t))
            return None
        self.banned.clear()
        st = Step(inst.idx, old, (inst.pnode, inst.snode), move, t, 0.0)
        self.cur = st.score = c.score(self.nodes)
        self.steps.append(st)
        if self.on_step is not None:
            self.on_step(st, len(self.steps))
        after = _snapshot(c, involved)
        self.pos[j], self.sec[j] = inst.pnode, inst.snode
        return np.array([x for x, b, a in zip(involved, before, after, strict=True) if b != a],
                        dtype=np.int64)  # fmt: skip

    def dirty(self, touched: NDArray) -> NDArray:
        """Rows whose instance sits on a touched node (their `search.Fixed` is stale)."""
        return np.flatnonzero(np.isin(self.pos, touched) | np.isin(self.sec, touched))


def _balance_exhaustive(mover: Mover, cand: NDArray, ev: PairEval, pm: PeerTable) -> None:
    """Every pair evaluated at every step (`PairEval.best_move`); the reference."""
    c, insts = mover.c, mover.insts
    sizes = Sizes.of(insts)
    fixed = ev.fixed(insts, sizes)
    while mover.more():
        found = ev.best_move(fixed, sizes, cand, mover.banned)
        if not mover.worth(found):
            break
        assert found is not None
        touched = mover.apply(found)
        if touched is None:
            if len(mover.banned) > 100:
                break
            continue
        for x in touched:
            pm.refresh(int(x))
        ev = PairEval(c, mover.nodes, pm, mover.opts)
        dirty = mover.dirty(touched)
        if ev.map_on:
            dirty = np.arange(len(insts))  # the map statistic changes every row
        fixed.put(dirty, ev.fixed([insts[r] for r in dirty], sizes.take(dirty)))


def _snapshot(c: Cluster, nodes: list[int]) -> list[Any]:
    """Comparable state of some nodes (to tell which ones a move really changed)."""
    v = c.nodes
    return [(tuple(a[x].item() for a in v.values()), tuple(sorted(c.peers[x].items())))
            for x in nodes]  # fmt: skip
