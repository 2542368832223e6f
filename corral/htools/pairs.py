"""Scoring new-instance placements over node pairs (hail ``allocate``, hspace).

Every candidate primary (and, for DRBD, every ordered (primary, secondary)
pair) of a group is scored from the running sums Σx, Σx² of the metrics:
each node's metric vector after receiving the instance is computed for all
nodes in one numpy pass, and since a placement changes at most two nodes the
score of a pair follows in O(metrics). Pairs whose secondary already reserves
memory for that primary (a sparse set) are re-scored exactly.

`pair_scores` builds the whole N x N matrix; `pair_best` finds its best entry
without building it (bounded search, see `_lower_bounds`), which is what makes
hspace at 4000 nodes feasible (tens of thousands of placements) and keeps
hail's memory small. `PairCache` keeps per-node parts across hspace's
placements. `FULL_SCAN` forces the matrix (tests compare the two).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.cluster import Cluster
from corral.htools.types import Instance

NDArray = np.ndarray[Any, Any]
CHUNK = 256
# pairs the last `pair_scores`/`pair_best` call rejected in the exact peer re-check
_PEER_FAILS = [0]


def _any_loc(c: Cluster, nodes: NDArray) -> bool:
    """Whether any of ``nodes`` has location tags (cheap when none has)."""
    if not any(c.loc_tags):
        return False
    return any(c.loc_tags[int(n)] for n in nodes)


def _pri_metrics(
    c: Cluster, nodes: NDArray, inst: Instance, strict: bool
) -> tuple[NDArray, NDArray]:
    new, fail = _pri_view(c, nodes, c.view(nodes), inst, strict)
    return score.node_metrics(new), fail


def _pri_view(
    c: Cluster, nodes: NDArray, v: nodeops.View, inst: Instance, strict: bool
) -> tuple[nodeops.View, NDArray]:
    """The nodes' view (``v``) after receiving ``inst`` as primary, and the failure codes."""
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
    return new, fail


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


def _std_rows(st: score.Stats, js: list[int], d1: NDArray, d2: NDArray) -> NDArray:
    """`_std` for several metrics at once (rows of ``d1``/``d2``), same values."""
    if not js:
        return np.zeros((0, *d1.shape[1:]))
    n = max(st.n, 1)
    mean = (st.s1[js][:, None] + d1) / n
    return np.sqrt(np.maximum((st.s2[js][:, None] + d2) / n - mean * mean, 0.0))  # type: ignore[no-any-return]


def _std(st: score.Stats, j: int, d1: NDArray, d2: NDArray) -> NDArray:
    n = max(st.n, 1)
    mean = (st.s1[j] + d1) / n
    return np.sqrt(np.maximum((st.s2[j] + d2) / n - mean * mean, 0.0))  # type: ignore[no-any-return]


@dataclasses.dataclass
class _Terms:
    """Per-node parts of the pair scores of one new instance (see `pair_scores`)."""

    m0: NDArray
    a1: NDArray
    a2: NDArray
    b1: NDArray
    b2: NDArray
    row: NDArray
    col: NDArray
    pair_cls: list[int]
    fp: NDArray
    fs: NDArray


# m0, fp, fs, a1, a2, b1, b2 (see `_node_parts`)
Parts = tuple[NDArray, NDArray, NDArray, NDArray, NDArray, NDArray, NDArray]


_FUSE = 64  # `_node_parts` of up to this many nodes computes their metrics in one pass


def _node_parts(c: Cluster, inst: Instance, cand: NDArray, strict: bool) -> Parts:
    """Per-node metrics now, failure codes as primary and as secondary (no
    peer), and the metric deltas (Σx and Σx² changes) of either placement."""
    k = len(cand)
    v = c.view(cand)
    newp, fp = _pri_view(c, cand, v, inst, strict)
    news, fs = nodeops.add_sec(v, inst, np.zeros(k, dtype=np.int64), strict)
    if k <= _FUSE:
        # one metrics pass over the three views side by side (metrics are per node)
        m = score.node_metrics({f: np.concatenate((a, newp[f], news[f])) for f, a in v.items()})
        m0, mp, ms = m[:, :k], m[:, k : 2 * k], m[:, 2 * k :]
    else:
        m0, mp, ms = score.node_metrics(v), score.node_metrics(newp), score.node_metrics(news)
    a1, a2 = score.deltas(m0, mp)
    b1, b2 = score.deltas(m0, ms)
    return m0, fp, fs, a1, a2, b1, b2


def _inst_key(inst: Instance) -> tuple[Any, ...]:
    """Everything of an instance the per-node parts depend on (not its name)."""
    return (
        inst.mem, inst.dsk, inst.vcpus, inst.status, inst.auto_balance, inst.disk_template,
        tuple(inst.tags), inst.spindle_use, tuple(inst.disks), inst.forthcoming,
        tuple(inst.excl_tags), inst.util, inst.desired_locations,
    )  # fmt: skip


@dataclasses.dataclass
class PairCache:
    """Per-node parts of one instance spec's search, kept across placements.

    hspace places the same spec again and again and each placement changes
    two nodes: the owner calls `touch` with them after every change to the
    cluster, and only those nodes' parts are recomputed. Every value is the
    same per-node arithmetic as a fresh computation, so results do not change.
    """

    key: tuple[Any, ...] | None = None
    dirty: set[int] = dataclasses.field(default_factory=set)
    gmetrics: NDArray | None = None
    parts: Parts | None = None

    def touch(self, nodes: list[int]) -> None:
        self.dirty.update(nodes)

    def stats_and_parts(
        self, c: Cluster, inst: Instance, gidx: int, cand: NDArray, strict: bool
    ) -> tuple[score.Stats, Parts]:
        gnodes = c.group_nodes(gidx)
        gkey = (gidx, gnodes.tobytes())
        key = (gkey, strict, cand.tobytes(), _inst_key(inst))
        dirty = np.array(sorted(self.dirty), dtype=np.int64)
        fresh_g = self.gmetrics is None or self.key is None or self.key[0] != gkey
        gm = score.node_metrics(c.view(gnodes)) if fresh_g else self.gmetrics
        assert gm is not None
        self.gmetrics = gm
        gi = _positions(gnodes, dirty) if len(dirty) and not fresh_g else dirty[:0]
        if key != self.key or self.parts is None:
            self.parts = _node_parts(c, inst, cand, strict)
        elif len(dirty):
            ci = _positions(cand, dirty)
            if len(ci):
                new = _node_parts(c, inst, cand[ci], strict)
                for whole, part in zip(self.parts, new, strict=True):
                    whole[..., ci] = part
                if len(gi) == len(ci) and (gnodes[gi] == cand[ci]).all():
                    # the same nodes: their current metrics were just computed
                    gm[:, gi] = new[0]
                    gi = gi[:0]
        if len(gi):
            gm[:, gi] = score.node_metrics(c.view(gnodes[gi]))
        self.key = key
        self.dirty = set()
        off = c.nodes["offline"][gnodes]
        st = score.Stats(gm, ~off, c.map_value(gnodes))
        return st, self.parts


def _positions(sorted_nodes: NDArray, nodes: NDArray) -> NDArray:
    """Positions in ``sorted_nodes`` (ascending) of those of ``nodes`` (ascending) it holds."""
    at = np.searchsorted(sorted_nodes, nodes)
    inside = at < len(sorted_nodes)
    at = at[inside]
    return at[sorted_nodes[at] == nodes[inside]]  # type: ignore[no-any-return]


_W_STD = score.WEIGHTS[score.STD_IDX].reshape(1, -1)
_W_SUM = score.WEIGHTS[score.SUM_IDX].reshape(1, -1)


def _base_score(st: score.Stats) -> float:
    """``st.score()`` without its per-call overhead: the same operations on the
    same values (the zero deltas added too, the same matrix products)."""
    n = max(st.n, 1)
    s1, s2 = st.s1 + 0.0, st.s2 + 0.0
    mean = s1[score.STD_IDX] / n
    var = np.maximum(s2[score.STD_IDX] / n - mean * mean, 0.0)
    total = np.dot(_W_STD, np.sqrt(var).reshape(-1, 1)).reshape(1)
    total = total + np.dot(_W_SUM, s1[score.SUM_IDX].reshape(-1, 1)).reshape(1)
    return float((total + score.WEIGHTS[score.MAP_METRIC] * (st.map_value + 0.0))[0])


def _pair_terms(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    parts: Parts | None = None,
) -> _Terms:
    """Metric deltas as primary (a) and secondary (b), separable row/column terms.

    A pair's score is ``row[p] + col[s] + sum over pair_cls of w * std(...)``:
    metrics that only one side changes are folded into ``row``/``col``.
    """
    k = len(cand)
    m0, fp, fs, a1, a2, b1, b2 = parts if parts is not None else _node_parts(c, inst, cand, strict)
    row = np.zeros(k)
    col = np.zeros(k)
    pair_cls: list[int] = []
    base = _base_score(st)
    # which side changes each metric (vectorised `.any()` per metric)
    a_any: NDArray = np.asarray(a1.any(axis=1) | a2.any(axis=1))
    b_any: NDArray = np.asarray(b1.any(axis=1) | b2.any(axis=1))
    std_idx = [int(j) for j in score.STD_IDX]
    z0 = dict(zip(std_idx, _std_rows(st, std_idx, np.zeros((len(std_idx), 1)),
                                     np.zeros((len(std_idx), 1)))[:, 0], strict=True))  # fmt: skip
    rows_j = [j for j in std_idx if not b_any[j]]
    cols_j = [j for j in std_idx if b_any[j] and not a_any[j]]
    rstd = dict(zip(rows_j, _std_rows(st, rows_j, a1[rows_j], a2[rows_j]), strict=True))
    cstd = dict(zip(cols_j, _std_rows(st, cols_j, b1[cols_j], b2[cols_j]), strict=True))
    # Constant part: the base score with the std metrics removed, re-added per class.
    # (Accumulated metric by metric in index order, as always: same float sums.)
    const = base
    for j in range(score.NMETRICS):
        if j == score.MAP_METRIC:
            continue
        if not score.STDDEV[j]:
            row += score.WEIGHTS[j] * a1[j]
            col += score.WEIGHTS[j] * b1[j]
            continue
        const -= score.WEIGHTS[j] * z0[j]
        if j in rstd:
            row += score.WEIGHTS[j] * rstd[j]
        elif j in cstd:
            col += score.WEIGHTS[j] * cstd[j]
        else:
            pair_cls.append(j)
    row += const
    return _Terms(m0, a1, a2, b1, b2, row, col, pair_cls, fp, fs)


def _block(st: score.Stats, t: _Terms, rr: NDArray, cc: NDArray) -> NDArray:
    """Scores of the pairs ``rr`` x ``cc`` (positions in ``cand``), no validity masks.

    Element by element the same arithmetic as the full matrix, so a block
    holds bit for bit the values `pair_scores` puts there.
    """
    a1, a2, b1, b2 = t.a1[:, rr], t.a2[:, rr], t.b1[:, cc], t.b2[:, cc]
    return _pair_block(st, a1, a2, b1, b2, t.pair_cls, t.row[rr], t.col[cc])


def _loc_matrix(c: Cluster, cand: NDArray) -> NDArray:
    return np.array(
        [[len(c.loc_tags[int(p)] & c.loc_tags[int(s)]) for s in cand] for p in cand],
        dtype=float,
    )


def _score_cols(st: score.Stats, d1: NDArray, d2: NDArray) -> NDArray:
    """`score.score_many` for a batch of columns, element by element.

    Each column's value does not depend on the other columns of the batch
    (no BLAS reduction), so scoring a subset gives the same bits.
    """
    n = max(st.n, 1)
    total = np.zeros(d1.shape[1])
    for j in score.STD_IDX:
        s1 = st.s1[j] + d1[j]
        mean = s1 / n
        var = np.maximum((st.s2[j] + d2[j]) / n - mean * mean, 0.0)
        total += score.WEIGHTS[j] * np.sqrt(var)
    for j in score.SUM_IDX:
        total += score.WEIGHTS[j] * (st.s1[j] + d1[j])
    return total + score.WEIGHTS[score.MAP_METRIC] * st.map_value  # type: ignore[no-any-return]


def _peer_scores(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    t: _Terms,
    loc: NDArray | None,
) -> tuple[NDArray, NDArray, NDArray]:
    """Exact scores (inf = invalid) of the pairs whose secondary already reserves
    memory for the primary; sets `_PEER_FAILS`."""
    ips, jss, vals = _peer_pairs(c, cand, t.fp)
    if not len(ips):
        _PEER_FAILS[0] = 0
        return ips, jss, np.zeros(0)
    ipa, jsa = ips, jss
    msx, fsx = _sec_metrics(c, cand[jsa], inst, vals, strict)
    d1 = t.a1[:, ipa] + (msx - t.m0[:, jsa])
    d2 = t.a2[:, ipa] + (msx**2 - t.m0[:, jsa] ** 2)
    sc = _score_cols(st, d1, d2)
    if loc is not None:
        sc = sc + score.WEIGHTS[17] * loc[ipa, jsa]
    _PEER_FAILS[0] = int(((fsx != 0) & (t.fs[jsa] == 0)).sum())
    return ipa, jsa, np.where(fsx != 0, np.inf, sc)


def pair_scores(
    c: Cluster, inst: Instance, cand: NDArray, st: score.Stats, strict: bool
) -> tuple[NDArray, NDArray, NDArray]:
    """Score matrix (inf = invalid) of all (primary, secondary) pairs among ``cand``.

    Also returns the per-node failure codes as primary and as secondary.
    """
    k = len(cand)
    t = _pair_terms(c, inst, cand, st, strict)
    fp, fs = t.fp, t.fs
    mat = np.full((k, k), np.inf)
    rows_ok = np.flatnonzero(fp == 0)
    cols_ok = np.flatnonzero(fs == 0)
    if len(cols_ok):
        for lo in range(0, len(rows_ok), CHUNK):
            rr = rows_ok[lo : lo + CHUNK]
            mat[np.ix_(rr, cols_ok)] = _block(st, t, rr, cols_ok)
    loc = _loc_matrix(c, cand) if _any_loc(c, cand) else None
    if loc is not None:
        mat += score.WEIGHTS[17] * loc
    mat[fp != 0, :] = np.inf
    mat[:, fs != 0] = np.inf
    np.fill_diagonal(mat, np.inf)
    # exact re-scoring of pairs where the secondary already reserves memory for p
    ipa, jsa, pv = _peer_scores(c, inst, cand, st, strict, t, loc)
    if len(ipa):
        mat[ipa, jsa] = pv
    return mat, fp, fs


# Force the full pair matrix everywhere (tests compare it with the bounded search).
FULL_SCAN = [False]
_ROWS_PER_BLOCK = 32
_SMALL = 512  # groups up to this size take all peer pairs at once
_WHOLE = 64  # groups up to this size are scored in one block (`_best_whole`)


def _lower_bounds(
    st: score.Stats, t: _Terms, rows: NDArray, cols: NDArray
) -> tuple[NDArray, NDArray]:
    """Separable lower bounds: score(p, s) >= lr[p] + lc[s] for the valid ``rows`` x ``cols``.

    For a metric both nodes change, with n nodes, mean M = S1/n and
    x = a1[p]/n, y = b1[s]/n, the pair's variance is exactly
    ``V0 + alpha[p] + beta[s] - 2 x y`` (V0 the current variance,
    ``alpha = a2/n - 2 M x - x^2``, beta likewise). sqrt is concave, so on the
    range [lo, hi] the variances of all these pairs can take it lies above its
    chord, which is linear in the variance; the cross term is bounded per row
    by its extreme over the columns. What remains is a sum of a row term and a
    column term. The bound is tight to second order in the (tiny) variance
    changes a single placement causes, so only pairs within about that much of
    the best score need exact evaluation.
    """
    n = max(st.n, 1)
    lr = t.row[rows].copy()
    lc = t.col[cols].copy()
    for j in t.pair_cls:
        w = float(score.WEIGHTS[j])
        mean = st.s1[j] / n
        v0 = st.s2[j] / n - mean * mean
        x = t.a1[j][rows] / n
        y = t.b1[j][cols] / n
        al = t.a2[j][rows] / n - 2 * mean * x - x * x
        be = t.b2[j][cols] / n - 2 * mean * y - y * y
        xlo, xhi, ylo, yhi = float(x.min()), float(x.max()), float(y.min()), float(y.max())
        prods = (xlo * ylo, xlo * yhi, xhi * ylo, xhi * yhi)
        lo = v0 + float(al.min()) + float(be.min()) - 2 * max(prods)
        hi = v0 + float(al.max()) + float(be.max()) - 2 * min(prods)
        bottom = max(lo, 0.0)
        if not hi > bottom:
            # every variance is at most `bottom`: sqrt(max(var, 0)) >= sqrt(max(lo, 0))
            lr += w * math.sqrt(bottom) if hi >= bottom else 0.0
            continue
        slope = (math.sqrt(hi) - math.sqrt(bottom)) / (hi - bottom)
        cross = np.maximum(x * ylo, x * yhi)
        lr += w * (math.sqrt(bottom) + slope * (v0 - bottom + al - 2 * cross))
        lc += w * slope * be
    return lr, lc


def _min_flat(blk: NDArray, rr: NDArray, cc: NDArray, k: int) -> tuple[float, int]:
    """Smallest value of a block and, among equal values, the smallest flat index."""
    m = float(blk.min())
    if m == np.inf:
        return m, -1
    hit = np.flatnonzero(blk.ravel() == m)
    w = len(cc)
    flats = rr[hit // w] * k + cc[hit % w]
    return m, int(flats.min())


def _peer_monotone(n: int) -> bool:
    """Whether a bigger N+1 reservation on the secondary never lowers the score.

    Reserved memory enters the score as ``w3 * stddev`` and ``w19 * sum`` of
    the same per-node value; one node's value moves a population stddev by at
    most sqrt(n-1)/n per unit, so the sum wins when ``w19 >= w3 sqrt(n-1)/n``
    (n >= 16 with Ganeti's weights). The N+1 failure count only grows too.
    Then a pair whose secondary already reserves memory for the primary scores
    at least what the same pair would without that reservation.
    """
    w3, w19 = float(score.WEIGHTS[3]), float(score.WEIGHTS[19])
    return n >= 2 and w19 >= w3 * math.sqrt(n - 1) / n


def pair_best(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    counts: bool = True,
    parts: Parts | None = None,
) -> tuple[int | None, float, NDArray, NDArray, int]:
    """Best pair of `pair_scores`' matrix without building it.

    Returns (flat index ``p * k + s`` of the smallest entry, ties to the
    smallest index, or None; its score; failure codes as primary and as
    secondary; number of finite entries, -1 unless ``counts``). With
    ``counts`` it also sets `_PEER_FAILS` like `pair_scores`.

    Exact: rows are taken in the order of `_lower_bounds`, in blocks, each
    against the columns whose bound may still beat the best value found; a
    block holds bit for bit the matrix's values (pairs whose secondary already
    reserves memory for the primary re-scored the same way), and the search
    stops when no remaining row's bound reaches the best value (plus a margin
    far above the rounding error). Such peer pairs never score below their
    plain bound (`_peer_monotone`); below 16 nodes the matrix is built.
    """
    k = len(cand)
    if FULL_SCAN[0] or _any_loc(c, cand) or not _peer_monotone(max(st.n, 1)):
        mat, fp, fs = pair_scores(c, inst, cand, st, strict)
        succ = int(np.isfinite(mat).sum())
        if succ == 0:
            return None, np.inf, fp, fs, 0
        v, f = _min_flat(mat, np.arange(k), np.arange(k), k)
        return f, v, fp, fs, succ
    t = _pair_terms(c, inst, cand, st, strict, parts)
    fp, fs = t.fp, t.fs
    succ = count_pairs(c, inst, cand, fp, fs, strict) if counts else -1
    rows = np.flatnonzero(fp == 0)
    cols = np.flatnonzero(fs == 0)
    if len(rows) == 0 or len(cols) == 0:
        return None, np.inf, fp, fs, succ
    if k <= _WHOLE:
        v, f = _best_whole(c, inst, cand, st, strict, t, rows, cols)
        return (f if f >= 0 else None), v, fp, fs, succ
    lr, lc = _lower_bounds(st, t, rows, cols)
    order_r = np.argsort(lr, kind="stable")
    rs, lrs = rows[order_r], lr[order_r]
    order_c = np.argsort(lc, kind="stable")
    cs, lcs = cols[order_c], lc[order_c]
    pos = np.full(c.n_nodes, -1, dtype=np.int64)
    pos[cand] = np.arange(k)
    best_v, best_f = np.inf, -1
    small_peers: tuple[NDArray, NDArray, NDArray] | None = None
    # seed: a few of the most promising pairs give a first bound
    blocks = [(rs[:4], cs[:32])]
    i = 0
    while blocks or i < len(rs):
        if blocks:
            rr, cc = blocks.pop()
        else:
            tol = 1e-9 * (1.0 + abs(best_v)) if best_v < np.inf else np.inf
            if lrs[i] + lcs[0] > best_v + tol:
                break
            lim = best_v + tol - lrs[i]
            ncol = len(cs) if lim == np.inf else int(np.searchsorted(lcs, lim, "right"))
            rr, cc = rs[i : i + _ROWS_PER_BLOCK], cs[:ncol]
            i += _ROWS_PER_BLOCK
            if ncol == 0:
                continue
        blk = _block(st, t, rr, cc)
        blk[rr[:, None] == cc[None, :]] = np.inf
        if small_peers is None and k <= _SMALL:
            small_peers = _peer_pairs(c, cand, fp)
        _peer_fill(c, inst, cand, st, strict, t, blk, rr, cc, pos, small_peers)
        v, f = _min_flat(blk, rr, cc, k)
        if v < best_v or (v == best_v and f < best_f):
            best_v, best_f = v, f
    return (best_f if best_f >= 0 else None), best_v, fp, fs, succ


def _best_whole(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    t: _Terms,
    rows: NDArray,
    cols: NDArray,
) -> tuple[float, int]:
    """`pair_best` on a small group: every valid pair in one block.

    Pairs whose secondary already reserves memory for the primary are
    re-scored exactly only if their plain score could still be the best:
    their exact score is never below the plain one (`_peer_monotone`), so
    the others cannot be the matrix's smallest entry, nor tie with it.
    """
    k = len(cand)
    blk = _block(st, t, rows, cols)
    blk[rows[:, None] == cols[None, :]] = np.inf
    ips, jss, pv = _peer_pairs(c, cand, t.fp)
    if len(ips):
        rpos = np.full(k, -1, dtype=np.int64)
        rpos[rows] = np.arange(len(rows))
        cpos = np.full(k, -1, dtype=np.int64)
        cpos[cols] = np.arange(len(cols))
        ri, cj = rpos[ips], cpos[jss]
        keep = cj >= 0  # primaries of peer pairs are valid already
        ri, cj, jss, pv = ri[keep], cj[keep], jss[keep], pv[keep]
        plain = blk[ri, cj]
        blk[ri, cj] = np.inf
        low = float(blk.min())
        need = plain <= low + (1e-9 * (1.0 + abs(low)) if low < np.inf else np.inf)
        if need.any():
            _peer_put(c, inst, cand, st, strict, t, blk, rows, cols, ri[need], jss[need],
                      pv[need])  # fmt: skip
    return _min_flat(blk, rows, cols, k)


def count_pairs(
    c: Cluster, inst: Instance, cand: NDArray, fp: NDArray, fs: NDArray, strict: bool
) -> int:
    """Finite entries of `pair_scores`' matrix from the failure codes as primary
    (``fp``) and secondary (``fs``) (sets `_PEER_FAILS` like it)."""
    okp, oks = fp == 0, fs == 0
    succ = int(okp.sum()) * int(oks.sum()) - int((okp & oks).sum())
    _PEER_FAILS[0] = _peer_failures(c, inst, cand, fp, fs, strict)
    return succ - _PEER_FAILS[0]


def _peer_failures(
    c: Cluster, inst: Instance, cand: NDArray, fp: NDArray, fs: NDArray, strict: bool
) -> int:
    """Peer pairs (valid primary, secondary valid on its own) that the peer
    reservation makes fail.

    `nodeops.add_sec` with the peer memory differs from the plain check only
    in the new N+1 failure, so such a pair fails exactly when the secondary
    does not fail N+1 yet and its unallocated memory is at most peer +
    instance memory (strict checks only). A peer entry is at most the node's
    reservation r_mem, so only secondaries with unallocated memory <= r_mem +
    instance memory can have such pairs; their peer maps are read directly.
    """
    if not strict or inst.forthcoming:
        return 0
    v = c.nodes
    secmem = inst.mem * inst.uses_sec_mem
    old_mem = nodeops.unallocated(v)[cand]
    near = (fs == 0) & ~v["failn1"][cand] & (old_mem <= v["rmem"][cand] + secmem)
    js_near = np.flatnonzero(near)
    if not len(js_near):
        return 0
    pos = np.full(c.n_nodes, -1, dtype=np.int64)
    pos[cand] = np.arange(len(cand))
    okp = fp == 0
    bad = 0
    for js in js_near:
        node = int(cand[js])
        lim = int(old_mem[js]) - secmem
        for p, val in c.peers[node].items():
            ip = pos[p]
            if val > 0 and p != node and ip >= 0 and okp[ip] and lim <= val:
                bad += 1
    return bad


def _peer_fill(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    t: _Terms,
    blk: NDArray,
    rr: NDArray,
    cc: NDArray,
    pos: NDArray,
    small: tuple[NDArray, NDArray, NDArray] | None,
) -> None:
    """Put the exact scores of the block's peer pairs (as `_peer_scores`) in place.

    ``small``: all peer pairs (`_peer_pairs`), taken on small groups instead of
    walking the block's primaries.
    """
    if small is not None:
        ips, jss, pvals = small
        rpos = np.full(len(cand), -1, dtype=np.int64)
        rpos[rr] = np.arange(len(rr))
        sel = rpos[ips] >= 0
        ri_a, sj_a, va_a = rpos[ips[sel]], jss[sel], pvals[sel]
        _peer_put(c, inst, cand, st, strict, t, blk, rr, cc, ri_a, sj_a, va_a)
        return
    ri: list[int] = []
    sj: list[int] = []
    vals: list[int] = []
    insts, peers = c.instances, c.peers
    for a, p in enumerate(rr):
        node = int(cand[p])
        seen: set[int] = set()
        for ix in c.plist[node]:
            sn = insts[ix].snode
            if sn < 0 or sn == node or sn in seen:
                continue
            seen.add(sn)
            val = peers[sn].get(node, 0)
            if val > 0 and pos[sn] >= 0:
                ri.append(a)
                sj.append(int(pos[sn]))
                vals.append(val)
    if not ri:
        return
    rix = np.array(ri, dtype=np.int64)
    jsa = np.array(sj, dtype=np.int64)
    va = np.array(vals, dtype=np.int64)
    _peer_put(c, inst, cand, st, strict, t, blk, rr, cc, rix, jsa, va)


def _peer_put(
    c: Cluster,
    inst: Instance,
    cand: NDArray,
    st: score.Stats,
    strict: bool,
    t: _Terms,
    blk: NDArray,
    rr: NDArray,
    cc: NDArray,
    rix: NDArray,
    jsa: NDArray,
    va: NDArray,
) -> None:
    """Score peer pairs (block row, secondary position, peer memory) into the block."""
    if not len(rix):
        return
    cpos = np.full(len(cand), -1, dtype=np.int64)
    cpos[cc] = np.arange(len(cc))
    cj = cpos[jsa]
    keep = cj >= 0
    if not keep.any():
        return
    rix, jsa, cj, va = rix[keep], jsa[keep], cj[keep], va[keep]
    ipa = rr[rix]
    msx, fsx = _sec_metrics(c, cand[jsa], inst, va, strict)
    d1 = t.a1[:, ipa] + (msx - t.m0[:, jsa])
    d2 = t.a2[:, ipa] + (msx**2 - t.m0[:, jsa] ** 2)
    blk[rix, cj] = np.where(fsx != 0, np.inf, _score_cols(st, d1, d2))


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
