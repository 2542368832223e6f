"""Fast hbal move search: pairwise delta scoring of (instance, target) pairs.

Why: Ganeti rescores the whole cluster for every candidate move, Θ(I·N·N) per
step. A DRBD move changes at most three nodes: the instance's primary ``p``,
its secondary ``s`` and one target ``t``. The score after the move follows from
the running sums (Σx, Σx² per metric over the online nodes, `score.Stats`)
plus the old and new metric values of those nodes (`PairEval._values` for whole
pair arrays, `candidates.score_parts` for listed candidates).

* What ``p`` and ``s`` become depends on the instance only: `Fixed` holds it
  per instance (computed with `nodeops`, exactly as the move applies it) and
  stays valid until ``p`` or ``s`` changes.
* What ``t`` becomes depends on the pair: `PairEval` computes it directly from
  the node arrays for the metrics a placement changes, broadcasting
  ``(instances, 1)`` against ``(1, targets)``. Two pair terms remain: the
  reserved memory of ``t`` (peer memory for ``p`` or ``s``) and of ``p``/``s``
  when they become the secondary of an instance whose primary is ``t``.

Moves (Ganeti ``Cluster/Moves.hs``): failover (s, p); replace-secondary
(p, t); replace-and-failover (t, p); replace-primary (t, s);
failover-and-replace (s, t). `PairEval.scan` finds every row's lowest score and
hbal's step among the rows scanned (`best_move`: over all rows); `greedy` and
`lazy` drive the steps. `PairEval.evaluate` lists each instance's best
`candidates.KEEP` candidates with their deltas (inspection and tests).

Exclusion tags (metric 11, ``pri_tags_score``) are modelled exactly: the
per-instance parts change the conflicts of ``p`` (loses its duplicates) and
``s`` (becoming primary); a target receiving the primary is refused when it
holds one of the instance's tags (strict placement) or gains one conflict per
such tag (forced), from a (nodes, tags) count matrix (`candidates.TagTable`).
Location tags too: the location score (metric 17; common location tags of the
new node pair, unsatisfied desired locations) from 0/1 location matrices
(`candidates.LocTable`), and with exclusion tags the location-exclusion map
statistic (metric 18) from the group's (location, tag) counts (`_map_fixed`);
that one changes for every instance sharing a tag, so `greedy` then
recomputes every row's `Fixed` after each move and searches exhaustively.

Scope: DRBD instances on groups without exclusive storage (`lean_supported`);
`balance` falls back to the generic per-step search otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.candidates import KEEP, Cands, KindResult, PeerTable
from corral.htools.cluster import Cluster
from corral.htools.moves import Move
from corral.htools.pairterms import FORTH, XM, PairTerms, Terms
from corral.htools.types import Instance

NDArray = np.ndarray[Any, Any]
Parts = dict[int, tuple[Any, Any]]

CHUNK_PAIRS = 40_000


def tie_tolerance(score_value: float) -> float:
    """How close two move scores must be to count as a tie (rounding noise)."""
    return 1e-12 * max(1.0, abs(score_value))


def lean_supported(c: Cluster, insts: list[Instance], nodes: NDArray) -> bool:
    """Whether the fast path models this group exactly (see module docstring)."""
    if c.nodes["excl"][nodes].any():
        return False
    return all(i.disk_template == "drbd" for i in insts)


def map_modelled(c: Cluster) -> bool:
    """Whether the location-exclusion map statistic can change (tags and locations)."""
    return any(c.loc_tags) and any(i.excl_tags for i in c.instances)


class Sizes:
    """Instance sizes and flags as arrays, in the shape `nodeops` accepts."""

    uses_local_storage = True
    has_secondary = True
    total_spindles = None  # only used on exclusive-storage nodes (not here)
    forthcoming = False

    def __init__(self, a: dict[str, NDArray]) -> None:
        self.a = a
        self.mem, self.dsk, self.vcpus = a["mem"], a["dsk"], a["vcpus"]
        self.spindle_use = a["su"]
        self.uses_memory, self.not_offline = a["umem"], a["noff"]
        self.uses_sec_mem = a["usec"]
        self.util = (a["u0"], a["u1"], a["u2"], a["u3"])

    @classmethod
    def of(cls, insts: list[Instance]) -> Sizes:
        def arr(f: Any, dt: Any) -> NDArray:
            return np.array([f(i) for i in insts], dtype=dt)

        a = {
            "mem": arr(lambda i: i.mem, np.int64),
            "dsk": arr(lambda i: i.dsk, np.int64),
            "vcpus": arr(lambda i: i.vcpus, np.int64),
            "su": arr(lambda i: i.spindle_use, np.int64),
            "umem": arr(lambda i: i.uses_memory, bool),
            "noff": arr(lambda i: i.not_offline, bool),
            "usec": arr(lambda i: i.uses_sec_mem, bool),
        }
        for j in range(4):
            a[f"u{j}"] = arr(lambda i, j=j: i.util[j], float)
        return cls(a)

    def take(self, rows: NDArray) -> Sizes:
        return Sizes({k: v[rows] for k, v in self.a.items()})

    def slice(self, sl: slice) -> Sizes:
        return Sizes({k: v[sl] for k, v in self.a.items()})


class Fixed:
    """Per-instance parts of every move: what happens to ``p`` and ``s``.

    Arrays indexed by instance. ``F`` (ic, 5, 2, 20) are the (Δ Σx, Δ Σx²) of
    p and s per move kind (`KINDS` order); ``ok`` (ic, 5) whether that part is
    feasible; ``x*`` describe p (replace-and-failover) and s (replace-primary)
    about to become a secondary, for the pair terms.
    """

    KINDS = (Move.FAILOVER, Move.REPLACE_SECONDARY, Move.REPLACE_AND_FAILOVER,
             Move.REPLACE_PRIMARY, Move.FAILOVER_AND_REPLACE)  # fmt: skip

    def __init__(self, a: dict[str, NDArray]) -> None:
        self.a = a

    def take(self, rows: NDArray) -> Fixed:
        return Fixed({k: v[rows] for k, v in self.a.items()})

    def slice(self, sl: slice) -> Fixed:
        return Fixed({k: v[sl] for k, v in self.a.items()})

    def put(self, rows: NDArray, other: Fixed) -> None:
        for k, v in other.a.items():
            self.a[k][rows] = v


class PairEval(PairTerms):
    """Candidate scores for one cluster state (rebuild after every applied move)."""

    def __init__(self, c: Cluster, gnodes: NDArray, peers: PeerTable, opts: Any) -> None:
        self.c = c
        self.opts = opts
        self.st = c.stats(gnodes)
        v = c.nodes
        self.v = v
        self.m = score.node_metrics(v)
        self.m2 = self.m * self.m
        with np.errstate(divide="ignore", invalid="ignore"):
            self.inv_tmem = 1.0 / np.where(v["tmem"] == 0, 1.0, v["tmem"])
            self.inv_tdsk = np.where(v["tdsk"] == 0, 0.0, 1.0 / v["tdsk"])
            self.dsk_one = (v["tdsk"] == 0).astype(float)
            ic = 1.0 / np.where(v["tcpu"] == 0, 1.0, v["tcpu"]) / v["speed"]
            self.inv_cpu = np.where(np.isfinite(ic), ic, 0.0)
            ih = 1.0 / v["hisp"]
            self.inv_hisp = np.where(np.isfinite(ih), ih, 0.0)
        self.unalloc = nodeops.unallocated(v)
        self.peers = peers
        self.tags = peers.tags
        self.locs = peers.locs
        # location-exclusion map statistic (metric 18): (location, tag) counts over
        # the group's online nodes; it changes for every instance sharing a tag, so
        # `greedy` recomputes every row's `Fixed` after each move
        self.map_on = map_modelled(c)
        if self.map_on:
            assert self.tags is not None and self.locs is not None
            K = np.zeros((len(self.locs.col), len(self.tags.col)))
            for n in gnodes:
                if v["offline"][n]:
                    continue
                for (loc, ex), k in c.imap[int(n)].items():
                    K[self.locs.col[loc], self.tags.col[ex]] += k
            self.mapK = K
        self.pm = peers.pm
        self.online = ~v["offline"]
        # Without forthcoming instances a *_forth metric equals its plain one for
        # every node and every move of a (never forthcoming) movable instance:
        # score it once with both weights (forth metric -> plain metric).
        self.dup = {f: p for f, p, keys in FORTH
                    if all(np.array_equal(v[k], v[k + "_f"]) for k in keys)}  # fmt: skip

    # -- per-instance parts -------------------------------------------------------
    def fixed(self, insts: list[Instance], sz: Sizes) -> Fixed:
        """`Fixed` parts for ``insts`` (sizes ``sz``) in the current state."""
        v, pm = self.v, self.pm
        ic = len(insts)
        pi = np.array([i.pnode for i in insts], dtype=np.int64)
        si = np.array([i.snode for i in insts], dtype=np.int64)
        off = v["offline"]
        fp_strict, fs_strict = ~off[pi], ~off[si]
        vp = {k: a[pi] for k, a in v.items()}
        vs = {k: a[si] for k, a in v.items()}
        p1 = nodeops.remove_pri(vp, sz)
        s1 = nodeops.remove_sec(vs, sz, pm[si, pi], self.peers.max_other(si, pi))
        a: dict[str, NDArray] = {"pi": pi, "si": si, "fps": fp_strict, "fss": fs_strict}
        gain_s = None
        if self.tags is not None:
            # exclusion tags (Cluster.remove_pri/add_pri): p loses one conflict per
            # tag it holds twice or more; s, becoming primary, gains one per tag it
            # holds and refuses the instance when strict
            inc = self.tags.incidence(insts)
            cnt = self.tags.cnt
            lose_p = (inc * (cnt[pi] > 1)).sum(axis=1)
            gain_s = (inc * (cnt[si] > 0)).sum(axis=1)
            p1["conflicts"] = vp["conflicts"] - lose_p
            a["tags"] = inc
        mp, ms = self.m[:, pi], self.m[:, si]
        mp1, ms1 = score.node_metrics(p1), score.node_metrics(s1)
        ok = np.zeros((ic, 5), dtype=bool)
        F = np.zeros((ic, 5, 2, score.NMETRICS))

        def put(kind: int, *pairs: tuple[NDArray, NDArray]) -> None:
            for new, old in pairs:
                F[:, kind, 0] += (new - old).T
                F[:, kind, 1] += (new * new - old * old).T

        # strictness differs per instance; compute both and pick
        rej = None if gain_s is None else gain_s > 0
        with np.errstate(divide="ignore", invalid="ignore"):  # offline s: no CPUs
            s2t, f2t = nodeops.add_pri(s1, sz, strict=True, tag_reject=rej)
        s2l, f2l = nodeops.add_pri(s1, sz, strict=False)
        s2 = {k: np.where(fp_strict, s2t[k], s2l[k]) for k in s2t}
        if gain_s is not None:
            s2["conflicts"] = s1["conflicts"] + gain_s
        ok2 = np.where(fp_strict, f2t == 0, f2l == 0)
        ms2 = score.node_metrics(s2)
        p2, f2 = nodeops.add_sec(p1, sz, pm[pi, si], strict=True)
        put(0, (score.node_metrics(p2), mp), (ms2, ms))
        ok[:, 0] = ok2 & (f2 == 0)
        p2r, f2r = nodeops.add_pri(p1, sz, strict=False)
        p2r["conflicts"] = vp["conflicts"]  # its own tags back: the conflicts too
        put(1, (score.node_metrics(p2r), mp), (ms1, ms))
        ok[:, 1] = f2r == 0  # Ganeti fails the move when the forced re-add fails
        # replace-and-failover: p1 becomes secondary of t (strict unless s offline)
        xa = self._x_base(p1, sz, fs_strict, "a", a)
        put(2, (ms1, ms), (xa, mp))
        ok[:, 2] = True
        # replace-primary: s2 drops the primary again, then becomes secondary of t
        s3 = nodeops.remove_pri(s2, sz)
        s3["conflicts"] = s1["conflicts"]
        xb = self._x_base(s3, sz, fp_strict, "b", a)
        put(3, (mp1, mp), (xb, ms))
        ok[:, 3] = ok2
        put(4, (mp1, mp), (ms2, ms))
        ok[:, 4] = ok2
        if self.locs is not None:
            self._loc_fixed(insts, a, F, pi, si, ~off[pi], ~off[si])
        if self.map_on:
            self._map_fixed(a, F, pi, si, ~off[pi], ~off[si])
        a["F"], a["ok"] = F, ok
        return Fixed(a)

    def _loc_fixed(self, insts: list[Instance], a: dict[str, NDArray], F: NDArray, pi: NDArray,
                   si: NDArray, onp: NDArray, ons: NDArray) -> None:  # fmt: skip
        """Per-instance parts of the location score (metric 17, a plain sum).

        The primary's node counts the instance's location score (common location
        tags of its pair) plus its unsatisfied desired locations there; online
        nodes only. The new primary's share depends on the target (`_loc_terms`).
        """
        assert self.locs is not None
        des = self.locs.desired(insts)
        nd = des.sum(axis=1)
        node = self.locs.node
        dp = nd - (des * node[pi]).sum(axis=1)
        ds = nd - (des * node[si]).sum(axis=1)
        o = np.array([i.location_score for i in insts], dtype=float)
        rem = onp * (o + dp)
        F[:, 0, 0, 17] += ons * (o + ds) - rem  # failover: same pair, s primary
        F[:, 2:, 0, 17] -= rem[:, None]
        F[:, 4, 0, 17] += ons * ds
        a.update(ldes=des, lnd=nd, lo=o, lonp=onp, lons=ons)

    def _map_fixed(self, a: dict[str, NDArray], F: NDArray, pi: NDArray, si: NDArray,
                   onp: NDArray, ons: NDArray) -> None:  # fmt: skip
        """Per-instance parts of the location-exclusion map change (metric 18).

        Moving the primary from p to n: each (location of p, tag) count drops by
        one (the statistic by one where the count was >= 2), each (location of n,
        tag) count rises by one (the statistic by one where the count, after the
        removal, was >= 1). With bp = p's locations (online p only), A = tags with
        count >= 2 and C = count >= 1 per location, the change is
        -(bp . A) + Q . bn, Q = bp A + (1 - bp) C: a row product (`_loc_terms`).
        """
        assert self.locs is not None
        inc = a["tags"].astype(float)
        K = self.mapK
        A = inc @ (K >= 2).T
        C = inc @ (K >= 1).T
        bp = self.locs.node[pi] * onp[:, None]
        Q = bp * A + (1.0 - bp) * C
        rem = (bp * A).sum(axis=1)
        to_s = (Q * (self.locs.node[si] * ons[:, None])).sum(axis=1)
        F[:, 0, 0, score.MAP_METRIC] += to_s - rem
        F[:, 2:4, 0, score.MAP_METRIC] -= rem[:, None]  # to a target: pair part
        F[:, 4, 0, score.MAP_METRIC] += to_s - rem
        a["mapq"] = Q

    def _x_base(self, xv: dict[str, NDArray], sz: Sizes, strict: NDArray, tag: str,
                a: dict[str, NDArray]) -> NDArray:  # fmt: skip
        """Node x becomes a secondary (peer memory 0 here; the pair term later)."""
        n = len(strict)
        zero = np.zeros(n, dtype=np.int64)
        bt, ft = nodeops.add_sec(xv, sz, zero, True)
        bl, fl = nodeops.add_sec(xv, sz, zero, False)
        base = {k: np.where(strict, bt[k], bl[k]) for k in bt}
        a[tag + "bad"] = np.where(strict, ft != 0, fl != 0)
        a[tag + "rmem"] = base["rmem"]
        a[tag + "free"] = nodeops.unallocated(xv)
        a[tag + "n1"] = xv["failn1"]
        a[tag + "cnt"] = base["npri"] + base["nsec"]
        a[tag + "strict"] = strict
        mb = score.node_metrics(base)
        for m in XM:
            a[f"{tag}m{m}"] = mb[m]
        return mb

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, fx: Fixed, sz: Sizes, targets: NDArray, with_failover: bool = True
                 ) -> Cands:  # fmt: skip
        """Best `KEEP` candidates per instance of ``fx`` against ``targets``."""
        ni = len(fx.a["pi"])
        out = Cands.empty(ni)
        k = len(targets)
        chunk = max(1, CHUNK_PAIRS // max(k, 1))
        for lo in range(0, ni, chunk):
            rr = np.arange(lo, min(ni, lo + chunk))
            found = self._eval_chunk(fx.take(rr), sz.take(rr), targets, with_failover)
            out.set(rr, Cands.best_of(found, len(rr)))
        return out

    def best_move(self, fx: Fixed, sz: Sizes, targets: NDArray, banned: set[tuple[int, int, int]]
                  ) -> tuple[float, int, Move, int] | None:  # fmt: skip
        """The lowest-scoring candidate over every (instance, move, target): hbal's step.

        Returns (score, row, move, target) or None. Ties resolve exactly as
        `evaluate` followed by choosing the best cached candidate does (first row;
        within the row the first of its `KEEP` best in the order `argpartition`
        leaves them), without keeping candidates or computing their deltas.
        ``banned`` lists (row, move, target) candidates to skip.
        """
        return self.scan(fx, sz, targets, banned)[1]

    def scan(self, fx: Fixed, sz: Sizes, targets: NDArray, banned: set[tuple[int, int, int]],
             rows: NDArray | None = None, with_failover: bool = True,
             ) -> tuple[NDArray, tuple[float, int, Move, int] | None]:  # fmt: skip
        """Every row's lowest score and the best candidate, as `best_move` chooses it.

        ``rows`` names the instance rows ``fx``/``sz`` hold (ascending; default
        0..n-1): the returned row and the rows in ``banned`` use those names, and
        among equal scores the first row wins, so scanning a subset of rows picks
        what scanning them all would pick among that subset. Scores within
        `tie_tolerance` count as equal: mathematically equal moves (identical
        instances) may differ in the last bits, and Ganeti takes the first.
        """
        ni = len(fx.a["pi"])
        ids = np.arange(ni) if rows is None else rows
        chunk = max(1, CHUNK_PAIRS // max(len(targets), 1))
        rmins = np.full(ni, np.inf)
        best: tuple[float, int, Move, int] | None = None
        for lo in range(0, ni, chunk):
            sl = slice(lo, min(ni, lo + chunk))
            found = self._eval_chunk(fx.slice(sl), sz.slice(sl), targets, with_failover)
            if not found:
                continue
            allv = np.concatenate([f.val for f in found], axis=1)
            offs = np.cumsum([0] + [f.val.shape[1] for f in found])
            for r, mv, t in banned:
                for loc in np.flatnonzero(ids[sl] == r):
                    for f, off in zip(found, offs, strict=False):
                        if int(f.move) == mv:
                            allv[loc, off + np.flatnonzero(f.tg == t)] = np.inf
            rmin = allv.min(axis=1)
            rmins[sl] = rmin
            low = float(rmin.min())
            if not np.isfinite(low):
                continue
            r = int(np.argmax(rmin <= low + tie_tolerance(low)))  # first of the ties
            if best is not None and not rmin[r] < best[0] - tie_tolerance(best[0]):
                continue
            row = allv[r]
            if len(row) > KEEP:
                sel = np.argpartition(row, KEEP - 1)[:KEEP]
                col = int(sel[np.argmin(row[sel])])
            else:
                col = int(np.argmin(row))
            i = int(np.searchsorted(offs, col, side="right")) - 1
            f = found[i]
            best = (float(rmin[r]), int(ids[lo + r]), f.move, int(f.tg[col - offs[i]]))
        return rmins, best

    def _kind_terms(self, kind: int, fx: Fixed, b: Sizes, Tc: NDArray
                    ) -> tuple[Terms, NDArray]:  # fmt: skip
        """Target/x terms and the infeasibility mask of one move kind (not failover)."""
        pm, a = self.pm, fx.a
        pi, si = a["pi"][:, None], a["si"][:, None]
        same = (Tc == pi) | (Tc == si)
        no_x: dict[int, NDArray] = {}
        if kind == 1:  # replace secondary: (p, t)
            tnew, bad = self._target_sec(Tc, b, pm[Tc, pi], a["fss"])
            self._loc_terms(kind, fx, Tc, tnew)
            return (tnew, no_x, no_x), bad | same | ~a["ok"][:, 1:2]
        if kind == 2:  # replace and failover: (t, p); Ganeti adds the primary non-forced
            strict = np.ones(len(pi), dtype=bool)
            tnew, bad = self._target_pri(Tc, b, strict)
            bad = self._tag_terms(fx, Tc, strict, tnew, bad)
            self._loc_terms(kind, fx, Tc, tnew)
            xn, xb, xbad = self._x_pair(fx, "a", a["pi"], b, pm[pi, Tc])
            return (tnew, xn, xb), bad | xbad | same
        okc = ~a["ok"][:, 3:4]
        if kind == 3:  # replace primary: (t, s)
            tnew, bad = self._target_pri(Tc, b, a["fps"])
            bad = self._tag_terms(fx, Tc, a["fps"], tnew, bad)
            self._loc_terms(kind, fx, Tc, tnew)
            xn, xb, xbad = self._x_pair(fx, "b", a["si"], b, pm[si, Tc])
            return (tnew, xn, xb), bad | xbad | same | okc
        # failover and replace: (s, t)
        tnew, bad = self._target_sec(Tc, b, pm[Tc, si], a["fps"])
        self._loc_terms(kind, fx, Tc, tnew)
        return (tnew, no_x, no_x), bad | same | okc

    def _eval_chunk(self, fx: Fixed, b: Sizes, T: NDArray, with_fo: bool) -> list[KindResult]:
        opts, a = self.opts, fx.a
        F, ok = a["F"], a["ok"]
        found: list[KindResult] = []
        if with_fo and opts.instance_moves:
            no: dict[int, NDArray] = {}
            val = self._values(F[:, 0], (no, no, no), None)
            F0 = F[:, 0]
            found.append(KindResult(np.where(~ok[:, :1], np.inf, val),
                                    lambda rr, cols: np.array(F0[rr]),
                                    Move.FAILOVER, np.array([-1])))  # fmt: skip
        if not (opts.disk_moves and len(T)):
            return found
        kinds = [1]
        if opts.instance_moves:
            kinds.append(2)
            if ok[:, 3].any():
                kinds += [3, 4]
        Tc = T[None, :]
        for kind in kinds:
            terms, bad = self._kind_terms(kind, fx, b, Tc)
            val = self._values(F[:, kind], terms, Tc)
            found.append(KindResult(np.where(bad, np.inf, val), self._fetcher(kind, fx, b, T),
                                    Fixed.KINDS[kind], T))  # fmt: skip
        return found

    def _fetcher(self, kind: int, fx: Fixed, b: Sizes, T: NDArray) -> Any:
        """Deltas of chosen (row, column) entries, recomputed for those pairs only."""

        def fetch(rr: NDArray, cols: NDArray) -> NDArray:
            sub = Fixed({k: v[rr] for k, v in fx.a.items() if k != "F"})  # F: one kind only
            Tc = T[cols][:, None]
            terms, _ = self._kind_terms(kind, sub, b.take(rr), Tc)
            return self._deltas(fx.a["F"][rr, kind], terms, Tc)

        return fetch
