"""Fast hbal move search: pairwise delta scoring of (instance, target) pairs.

Why: Ganeti rescores the whole cluster for every candidate move, Θ(I·N·N) per
step. A DRBD move changes at most three nodes: the instance's primary ``p``,
its secondary ``s`` and one target ``t``. The score after the move follows from
the running sums (Σx, Σx² per metric over the online nodes, `score.Stats`)
plus the old and new metric values of those nodes (`candidates.score_parts`).

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
failover-and-replace (s, t). `PairEval.evaluate` keeps each instance's best
`candidates.KEEP` candidates over all kinds. `greedy` drives the steps.

Scope: DRBD instances on groups without exclusive storage and instances
without exclusion tags (`lean_supported`); `balance` falls back to the generic
per-step search otherwise. Location scores are not predicted (the applied move
is rescored exactly, as everywhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools import nodeops, score
from corral.htools.candidates import Cands, KindResult, PeerTable, score_parts
from corral.htools.cluster import Cluster
from corral.htools.moves import Move
from corral.htools.types import Instance

NDArray = np.ndarray[Any, Any]
Parts = dict[int, tuple[Any, Any]]

CHUNK_PAIRS = 40_000
_XM = (2, 3, 19)  # metrics of p/s that depend on the target (peer memory)


def lean_supported(c: Cluster, insts: list[Instance], nodes: NDArray) -> bool:
    """Whether the fast path models this group exactly (see module docstring)."""
    if c.nodes["excl"][nodes].any():
        return False
    return all(i.disk_template == "drbd" and not i.excl_tags for i in insts)


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


class PairEval:
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
        self.pm = peers.pm
        self.online = ~v["offline"]

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
        mp, ms = self.m[:, pi], self.m[:, si]
        mp1, ms1 = score.node_metrics(p1), score.node_metrics(s1)
        ok = np.zeros((ic, 5), dtype=bool)
        F = np.zeros((ic, 5, 2, score.NMETRICS))

        def put(kind: int, *pairs: tuple[NDArray, NDArray]) -> None:
            for new, old in pairs:
                F[:, kind, 0] += (new - old).T
                F[:, kind, 1] += (new * new - old * old).T

        # strictness differs per instance; compute both and pick
        s2t, f2t = nodeops.add_pri(s1, sz, strict=True)
        s2l, f2l = nodeops.add_pri(s1, sz, strict=False)
        s2 = {k: np.where(fp_strict, s2t[k], s2l[k]) for k in s2t}
        ok2 = np.where(fp_strict, f2t == 0, f2l == 0)
        ms2 = score.node_metrics(s2)
        p2, f2 = nodeops.add_sec(p1, sz, pm[pi, si], strict=True)
        put(0, (score.node_metrics(p2), mp), (ms2, ms))
        ok[:, 0] = ok2 & (f2 == 0)
        p2r, _ = nodeops.add_pri(p1, sz, strict=False)
        put(1, (score.node_metrics(p2r), mp), (ms1, ms))
        ok[:, 1] = True
        a: dict[str, NDArray] = {"pi": pi, "si": si, "fps": fp_strict, "fss": fs_strict}
        # replace-and-failover: p1 becomes secondary of t (strict unless s offline)
        xa = self._x_base(p1, sz, fs_strict, "a", a)
        put(2, (ms1, ms), (xa, mp))
        ok[:, 2] = True
        # replace-primary: s2 drops the primary again, then becomes secondary of t
        s3 = nodeops.remove_pri(s2, sz)
        xb = self._x_base(s3, sz, fp_strict, "b", a)
        put(3, (mp1, mp), (xb, ms))
        ok[:, 3] = ok2
        put(4, (mp1, mp), (ms2, ms))
        ok[:, 4] = ok2
        a["F"], a["ok"] = F, ok
        return Fixed(a)

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
        for m in _XM:
            a[f"{tag}m{m}"] = mb[m]
        return mb

    # -- pair parts ------------------------------------------------------------------
    def _target_sec(self, T: NDArray, b: Sizes, peer: NDArray, strict: NDArray
                    ) -> tuple[dict[int, NDArray], NDArray]:  # fmt: skip
        """Target ``t`` receives the instance as secondary (``Node.addSecExEx``)."""
        v = self.v
        dsk = b.dsk[:, None]
        su = (b.spindle_use * 1.0)[:, None]
        secmem = (b.mem * b.uses_sec_mem)[:, None]
        fdsk = v["fdsk"][T][None, :] - dsk
        fdsk_f = v["fdsk_f"][T][None, :] - dsk
        isp = v["isp"][T][None, :] + su
        isp_f = v["isp_f"][T][None, :] + su
        rmem = np.maximum(v["rmem"][T][None, :], peer + secmem)
        old_mem = self.unalloc[T][None, :]
        failn1 = old_mem <= rmem
        hisp = v["hisp"][T][None, :]
        lodsk = v["lodsk"][T][None, :]
        soft = (fdsk < lodsk) | (isp > hisp) | (secmem >= old_mem)
        soft |= failn1 & ~v["failn1"][T][None, :]
        soft |= (fdsk_f <= 0) | (fdsk_f < lodsk) | (isp_f > hisp)
        soft |= secmem >= v["fmem_f"][T][None, :]
        bad = (fdsk <= 0) | (soft & strict[:, None])
        itd, one = self.inv_tdsk[T][None, :], self.dsk_one[T][None, :]
        ih = self.inv_hisp[T][None, :]
        cnt = (v["npri"][T] + v["nsec"][T] + 1)[None, :]
        r3 = rmem * self.inv_tmem[T][None, :]
        new = {
            1: fdsk * itd + one,
            2: np.where(failn1, cnt, 0),
            3: r3,
            9: v["ld"][T][None, :] + b.util[2][:, None],
            12: isp * ih,
            14: fdsk_f * itd + one,
            16: isp_f * ih,
            19: r3,
        }
        return new, bad

    def _target_pri(self, T: NDArray, b: Sizes, strict: NDArray
                    ) -> tuple[dict[int, NDArray], NDArray]:  # fmt: skip
        """Target ``t`` receives the instance as primary (``Node.addPriEx``)."""
        v = self.v
        mem = b.mem[:, None]
        dsk = b.dsk[:, None]
        su = (b.spindle_use * 1.0)[:, None]
        vc = (b.vcpus * b.not_offline)[:, None]
        memu = (b.mem * b.uses_memory)[:, None]
        fmem_f = v["fmem_f"][T][None, :] - mem
        fdsk_f = v["fdsk_f"][T][None, :] - dsk
        isp_f = v["isp_f"][T][None, :] + su
        ucpu_f = v["ucpu_f"][T][None, :] + vc
        unal = self.unalloc[T][None, :] - memu
        failn1 = unal <= v["rmem"][T][None, :]
        fdsk = v["fdsk"][T][None, :] - dsk
        isp = v["isp"][T][None, :] + su
        ucpu = v["ucpu"][T][None, :] + vc
        hisp = v["hisp"][T][None, :]
        lodsk = v["lodsk"][T][None, :]
        tcpu = v["tcpu"][T][None, :]
        vr = v["vratio"][T][None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            soft = (fdsk < lodsk) | (isp > hisp) | (failn1 & ~v["failn1"][T][None, :])
            soft |= (vr >= 0) & (vr < ucpu / tcpu)
            soft |= (fmem_f <= 0) | (fdsk_f <= 0) | (fdsk_f < lodsk) | (isp_f > hisp)
            soft |= (vr >= 0) & (vr < ucpu_f / tcpu)
        bad = (unal <= 0) | (fdsk <= 0) | (soft & strict[:, None])
        itm = self.inv_tmem[T][None, :]
        itd, one = self.inv_tdsk[T][None, :], self.dsk_one[T][None, :]
        ic = self.inv_cpu[T][None, :]
        ih = self.inv_hisp[T][None, :]
        cnt = (v["npri"][T] + 1 + v["nsec"][T])[None, :]
        new = {
            0: unal * itm,
            1: fdsk * itd + one,
            2: np.where(failn1, cnt, 0),
            6: ucpu * ic,
            7: v["lc"][T][None, :] + b.util[0][:, None],
            8: v["lm"][T][None, :] + b.util[1][:, None],
            9: v["ld"][T][None, :] + b.util[2][:, None],
            10: v["ln"][T][None, :] + b.util[3][:, None],
            12: isp * ih,
            13: fmem_f * itm,
            14: fdsk_f * itd + one,
            15: ucpu_f * ic,
            16: isp_f * ih,
        }
        return new, bad

    def _x_pair(self, fx: Fixed, tag: str, x: NDArray, b: Sizes, peer: NDArray
                ) -> tuple[dict[int, NDArray], dict[int, NDArray], NDArray]:  # fmt: skip
        """Pair terms of x becoming secondary of ``t``: new, base metrics, fail mask."""
        a = fx.a
        secmem = (b.mem * b.uses_sec_mem)[:, None]
        rmem = np.maximum(a[tag + "rmem"][:, None], peer + secmem)
        failn1 = a[tag + "free"][:, None] <= rmem
        bad = a[tag + "bad"][:, None] | ((a[tag + "strict"] & ~a[tag + "n1"])[:, None] & failn1)
        on = self.online[x][:, None]
        r3 = np.where(on, rmem * self.inv_tmem[x][:, None], 0.0)
        new = {2: np.where(failn1 & on, a[tag + "cnt"][:, None], 0), 3: r3, 19: r3}
        base = {m: a[f"{tag}m{m}"] for m in _XM}
        return new, base, bad

    def _combine(self, F: NDArray, tnew: dict[int, NDArray], T: NDArray,
                 xnew: dict[int, NDArray] | None = None,
                 xbase: dict[int, NDArray] | None = None) -> tuple[NDArray, Parts]:  # fmt: skip
        """Scores (ic, k) and per-metric deltas; ``F`` = fixed part (ic, 2, 20)."""
        parts: Parts = {}
        for m in range(score.NMETRICS):
            a1: Any = F[:, 0, m][:, None]
            a2: Any = F[:, 1, m][:, None]
            if m in tnew:
                nt = tnew[m]
                b1 = np.subtract(nt, self.m[m, T][None, :], dtype=float)
                b2 = np.multiply(nt, nt, dtype=float)
                b2 -= self.m2[m, T][None, :]
                a1, a2 = _acc(b1, a1), _acc(b2, a2)
            if xnew is not None and xbase is not None and m in xnew:
                nx, bx = xnew[m], xbase[m][:, None]
                c1 = np.subtract(nx, bx, dtype=float)
                c2 = np.multiply(nx, nx, dtype=float)
                c2 -= bx * bx
                a1, a2 = _acc(c1, a1), _acc(c2, a2)
            parts[m] = (a1, a2)
        return score_parts(self.st, parts), parts

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

    def improve(self, cache: Cands, rows: NDArray, fx: Fixed, sz: Sizes, targets: NDArray
                ) -> None:  # fmt: skip
        """Merge candidates aimed at ``targets`` into the cached rows ``rows``.

        ``fx``/``sz`` cover every instance (row i of the cache); only ``rows``
        are updated, and only where a new candidate beats the worst cached one.
        """
        ni = len(fx.a["pi"])
        k = len(targets)
        chunk = max(1, CHUNK_PAIRS // max(k, 1))
        if 2 * len(rows) < ni:  # few rows: evaluate just those
            for lo in range(0, len(rows), chunk):
                rr = rows[lo : lo + chunk]
                self._merge(cache, rr, self._eval_chunk(fx.take(rr), sz.take(rr), targets, False),
                            np.ones(len(rr), dtype=bool))  # fmt: skip
            return
        want = np.zeros(ni, dtype=bool)
        want[rows] = True
        for lo in range(0, ni, chunk):
            sl = slice(lo, min(ni, lo + chunk))
            found = self._eval_chunk(fx.slice(sl), sz.slice(sl), targets, False)
            self._merge(cache, np.arange(sl.start, sl.stop), found, want[sl])

    @staticmethod
    def _merge(cache: Cands, gr: NDArray, found: list[KindResult], want: NDArray) -> None:
        if not found:
            return
        best = np.min([f.val.min(axis=1) for f in found], axis=0)
        hit = np.flatnonzero((best < cache.val[gr].max(axis=1)) & want)
        if len(hit):
            sub = [f.subset(hit) for f in found]
            cache.set(gr[hit], Cands.best_of([cache.rows(gr[hit]), *sub], len(hit)))

    def _eval_chunk(self, fx: Fixed, b: Sizes, T: NDArray, with_fo: bool) -> list[KindResult]:
        opts, pm, a = self.opts, self.pm, fx.a
        pi, si, F, ok = a["pi"], a["si"], a["F"], a["ok"]
        found: list[KindResult] = []

        def add(res: tuple[NDArray, Parts], bad: NDArray, move: Move, tg: NDArray) -> None:
            val = np.broadcast_to(res[0], bad.shape)
            found.append(KindResult(np.where(bad, np.inf, val), res[1], move, tg))

        if with_fo and opts.instance_moves:
            fo = self._combine(F[:, 0], {}, T[:0])
            add(fo, ~ok[:, :1], Move.FAILOVER, np.array([-1]))
        k = len(T)
        if opts.disk_moves and k:
            same = (T[None, :] == pi[:, None]) | (T[None, :] == si[:, None])
            # replace secondary: (p, t)
            tnew, bad = self._target_sec(T, b, pm[T[None, :], pi[:, None]], a["fss"])
            add(self._combine(F[:, 1], tnew, T), bad | same, Move.REPLACE_SECONDARY, T)
        if opts.disk_moves and k and opts.instance_moves:
            # replace and failover: (t, p); Ganeti adds the primary non-forced
            tnew, bad = self._target_pri(T, b, np.ones(len(pi), dtype=bool))
            xn, xb, xbad = self._x_pair(fx, "a", pi, b, pm[pi[:, None], T[None, :]])
            res = self._combine(F[:, 2], tnew, T, xn, xb)
            add(res, bad | xbad | same, Move.REPLACE_AND_FAILOVER, T)
            rows = np.flatnonzero(ok[:, 3])
            if len(rows):
                okc = ~ok[:, 3:4]
                # replace primary: (t, s)
                tnew, bad = self._target_pri(T, b, a["fps"])
                xn, xb, xbad = self._x_pair(fx, "b", si, b, pm[si[:, None], T[None, :]])
                res = self._combine(F[:, 3], tnew, T, xn, xb)
                add(res, bad | xbad | same | okc, Move.REPLACE_PRIMARY, T)
                # failover and replace: (s, t)
                tnew, bad = self._target_sec(T, b, pm[T[None, :], si[:, None]], a["fps"])
                add(self._combine(F[:, 4], tnew, T), bad | same | okc,
                    Move.FAILOVER_AND_REPLACE, T)  # fmt: skip
        return found


def _acc(b: NDArray, a: Any) -> Any:
    """``b + a`` reusing ``b``'s buffer when the shapes allow it."""
    try:
        b += a
    except ValueError:
        return b + a
    return b


def pick_targets(ev: PairEval, cand: NDArray, insts: list[Instance], limit: int) -> NDArray:
    """The ``limit``-ish most promising targets (pruning for very large groups).

    Ranks every candidate node by the exact score after receiving a median
    instance as primary and as secondary, and adds the nodes with the most free
    memory and free disk so that large instances still find room.
    """
    if limit <= 0 or len(cand) <= limit:
        return cand
    med = sorted(insts, key=lambda i: (i.mem, i.dsk))[len(insts) // 2]
    b = Sizes.of([med])
    zero = np.zeros((1, 2, score.NMETRICS))
    yes = np.ones(1, dtype=bool)
    tn, bad = ev._target_pri(cand, b, yes)
    pri = np.where(bad, np.inf, ev._combine(zero, tn, cand)[0])[0]
    tn, bad = ev._target_sec(cand, b, np.zeros((1, len(cand)), dtype=np.int64), yes)
    sec = np.where(bad, np.inf, ev._combine(zero, tn, cand)[0])[0]
    q = max(1, limit // 8)
    picks = [
        cand[np.argsort(pri, kind="stable")[: limit // 2]],
        cand[np.argsort(sec, kind="stable")[: limit // 4]],
        cand[np.argsort(-ev.unalloc[cand], kind="stable")[:q]],
        cand[np.argsort(-ev.v["fdsk"][cand], kind="stable")[:q]],
    ]
    return np.unique(np.concatenate(picks))
