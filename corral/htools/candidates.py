"""Candidate-move bookkeeping for the fast hbal search (`corral.htools.search`).

* `score_parts`: the cluster score after adding per-metric deltas (Δ Σx,
  Δ Σx²) to the running sums, for whole arrays of candidates at once.
* `Cands`: the best few candidate moves of every instance together with their
  deltas (`search.PairEval.evaluate`: inspection and tests; they rescore exactly
  under new sums).
* `PeerTable`: the N+1 peer memory as a dense matrix plus each row's top two
  entries, kept up to date row by row (with the `TagTable` of exclusion tags).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools import score
from corral.htools.cluster import Cluster
from corral.htools.moves import Move
from corral.htools.types import Instance

NDArray = np.ndarray[Any, Any]

KEEP = 12  # candidates kept per instance (> 3 nodes a move can touch)
STD = frozenset(int(i) for i in score.STD_IDX)
W = [float(w) for w in score.WEIGHTS]


def score_parts(st: score.Stats, parts: dict[int, tuple[Any, Any]]) -> NDArray:
    """Score from per-metric (Δ Σx, Δ Σx²) arrays (broadcastable shapes)."""
    inv = 1.0 / max(st.n, 1)
    total: Any = W[score.MAP_METRIC] * st.map_value
    for m in range(score.NMETRICS):
        d1, d2 = parts.get(m, (0.0, 0.0))
        if m == score.MAP_METRIC:  # a change of the map statistic (0 unless modelled)
            if np.any(d1):
                total = total + W[m] * np.asarray(d1)
            continue
        if m in STD:
            mean = np.add(d1, st.s1[m])
            mean *= inv
            var = np.add(d2, st.s2[m])
            var *= inv
            mean *= mean
            var -= mean
            np.maximum(var, 0.0, out=var)
            np.sqrt(var, out=var)
            var *= W[m]
            total = total + var
        else:
            total = total + W[m] * (st.s1[m] + d1)
    return np.asarray(total)


class Cands:
    """Up to `KEEP` candidate moves per instance, with their metric deltas.

    ``d`` has shape (2, 20, instances, KEEP): the change of Σx and Σx² per
    metric (metric-major, so that `rescore` reads each metric contiguously).
    It depends only on the nodes a move touches, so a candidate whose nodes
    did not change since it was found is rescored exactly under the current
    sums by `rescore`, without evaluating it again.
    """

    def __init__(self, val: NDArray, kind: NDArray, tgt: NDArray, d: NDArray) -> None:
        self.val, self.kind, self.tgt, self.d = val, kind, tgt, d

    @classmethod
    def empty(cls, ni: int, width: int = KEEP) -> Cands:
        return cls(np.full((ni, width), np.inf), np.zeros((ni, width), dtype=np.int64),
                   np.full((ni, width), -1, dtype=np.int64),
                   np.zeros((2, score.NMETRICS, ni, width)))  # fmt: skip

    def set(self, rows: NDArray, other: Cands) -> None:
        self.val[rows], self.kind[rows] = other.val, other.kind
        self.tgt[rows], self.d[:, :, rows] = other.tgt, other.d

    def fetch(self, rr: NDArray, cols: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        return np.moveaxis(self.d[:, :, rr, cols], -1, 0), self.kind[rr, cols], self.tgt[rr, cols]

    @classmethod
    def best_of(cls, sources: list[Any], ic: int) -> Cands:
        """The `KEEP` best candidates per row over several sources.

        A source has ``val`` (ic, w) and ``fetch(rows, cols)`` returning the
        deltas, kinds and targets of the chosen entries; deltas are fetched for
        the winners only (computing them for every pair is the expensive part).
        """
        if not sources:
            return cls.empty(ic)
        allv = np.concatenate([src.val for src in sources], axis=1)
        width = allv.shape[1]
        if width > KEEP:
            sel = np.argpartition(allv, KEEP - 1, axis=1)[:, :KEEP]
        else:
            sel = np.tile(np.arange(width), (ic, 1))
        out = cls.empty(ic, sel.shape[1])
        out.val = np.take_along_axis(allv, sel, axis=1)
        off = 0
        for src in sources:
            w = src.val.shape[1]
            rr, kk = np.nonzero((sel >= off) & (sel < off + w))
            if len(rr):
                d, kind, tgt = src.fetch(rr, sel[rr, kk] - off)
                out.d[:, :, rr, kk] = np.moveaxis(d, 0, -1)
                out.kind[rr, kk], out.tgt[rr, kk] = kind, tgt
            off += w
        if out.val.shape[1] < KEEP:
            return cls.best_of([out, cls.empty(ic, KEEP - out.val.shape[1])], ic)
        return out

    def rescore(self, st: score.Stats) -> None:
        """Recompute ``val`` under new sums (infeasible candidates stay inf)."""
        parts = {m: (self.d[0, m], self.d[1, m]) for m in range(score.NMETRICS)}
        new = score_parts(st, parts)
        self.val = np.where(np.isfinite(self.val), new, np.inf)


class KindResult:
    """Scores of one move kind for (ic, k) pairs; deltas computed on demand.

    ``delta_fn(rows, cols)`` returns the (Δ Σx, Δ Σx²) deltas, shape
    (len(rows), 2, 20), of the entries (rows[i], cols[i]) only: computing them
    for every pair is the expensive part, and only the kept winners need them.
    """

    def __init__(self, val: NDArray, delta_fn: Any, move: Move, tg: NDArray) -> None:
        self.val, self.delta_fn, self.move, self.tg = val, delta_fn, move, tg

    def fetch(self, rr: NDArray, cols: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        d = self.delta_fn(rr, cols)
        return d, np.full(len(rr), int(self.move), dtype=np.int64), self.tg[cols]


class PeerTable:
    """Dense ``pm[x, p]`` = memory node ``x`` reserves for primary node ``p``.

    Kept up to date row by row (`refresh` after a move, for the touched nodes),
    with each row's largest two entries so that "largest peer entry other than
    ``p``" (`Node.removeSec`) is a lookup.
    """

    def __init__(self, c: Cluster) -> None:
        n = c.n_nodes
        self.c = c
        self.tags = TagTable.of(c)
        self.locs = LocTable.of(c)
        self.pm = np.zeros((n, n), dtype=np.int64)
        self.max1 = np.zeros(n, dtype=np.int64)
        self.arg1 = np.full(n, -1, dtype=np.int64)
        self.max2 = np.zeros(n, dtype=np.int64)
        for i in range(n):
            self.refresh(i)

    def refresh(self, i: int) -> None:
        if self.tags is not None:
            self.tags.refresh(i)
        row = self.pm[i]
        row[:] = 0
        d = self.c.peers[i]
        vals = sorted(((m, p) for p, m in d.items()), reverse=True)
        for p, m in d.items():
            row[p] = m
        self.max1[i], self.arg1[i] = vals[0] if vals else (0, -1)
        self.max2[i] = vals[1][0] if len(vals) > 1 else 0

    def max_other(self, x: NDArray, p: NDArray) -> NDArray:
        return np.where(self.arg1[x] == p, self.max2[x], self.max1[x])


class TagTable:
    """Exclusion tags of primaries per node as a dense (nodes, tags) count matrix.

    Columns are every exclusion tag of any instance (sorted, fixed for one hbal
    run); ``cnt[n, g]`` = primaries of node ``n`` carrying tag ``g`` (Cluster's
    ``ptags``). A move's conflict change is then arithmetic: the target gains
    one conflict per instance tag it already holds (and strict placements are
    refused there, Ganeti's ``rejectAddTags``), the primary loses one per tag
    it holds more than once. Rows are refreshed with the `PeerTable` rows.
    """

    def __init__(self, c: Cluster, names: list[str]) -> None:
        self.c = c
        self.col = {t: j for j, t in enumerate(names)}
        self.cnt = np.zeros((c.n_nodes, len(names)), dtype=np.int32)
        for i in range(c.n_nodes):
            self.refresh(i)

    @classmethod
    def of(cls, c: Cluster) -> TagTable | None:
        """The table, or None when no instance has exclusion tags (nothing to model)."""
        names = sorted({t for i in c.instances for t in i.excl_tags})
        return cls(c, names) if names else None

    def refresh(self, i: int) -> None:
        row = self.cnt[i]
        row[:] = 0
        for t, k in self.c.ptags[i].items():
            j = self.col.get(t)
            if j is not None:
                row[j] = k

    def incidence(self, insts: list[Instance]) -> NDArray:
        """(instances, tags) matrix: how often each instance carries each tag."""
        a = np.zeros((len(insts), len(self.col)), dtype=np.int32)
        for r, inst in enumerate(insts):
            for t in inst.excl_tags:
                a[r, self.col[t]] += 1
        return a


class LocTable:
    """Node location tags and instances' desired locations as 0/1 matrices (static).

    ``node[n, j]`` = node ``n`` carries location tag ``j``; `desired` gives the
    same for instances' desired locations. Common tags of a node pair (an
    instance's location score) and unsatisfied desired locations on a node
    (`Cluster._pri_loc_score`) are then row products.
    """

    def __init__(self, c: Cluster, names: list[str]) -> None:
        self.col = {t: j for j, t in enumerate(names)}
        self.node = np.zeros((c.n_nodes, len(names)))
        for i, tags in enumerate(c.loc_tags):
            for t in tags:
                self.node[i, self.col[t]] = 1.0

    @classmethod
    def of(cls, c: Cluster) -> LocTable | None:
        """The table, or None without location tags and desired locations."""
        names: set[str] = set()
        for tags in c.loc_tags:
            names |= tags
        for inst in c.instances:
            names |= inst.desired_locations
        return cls(c, sorted(names)) if names else None

    def desired(self, insts: list[Instance]) -> NDArray:
        """(instances, tags) 0/1 matrix of desired locations."""
        a = np.zeros((len(insts), len(self.col)))
        for r, inst in enumerate(insts):
            for t in inst.desired_locations:
                a[r, self.col[t]] = 1.0
        return a
