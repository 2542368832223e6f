"""Pair arithmetic of the hbal search: new target values and candidate scores.

`PairTerms` is the half of `search.PairEval` that works on (instance, target)
pairs: what a target becomes when it receives an instance (`_target_sec`,
`_target_pri`, Ganeti's ``Node.addSecExEx`` / ``addPriEx`` checks included), the
pair terms of the old nodes (`_x_pair`), the scores of whole pair arrays
(`_values`, `_outer_terms`), the tag and location terms of a target becoming
the primary (`_tag_terms`, `_loc_terms`) and the metric deltas of chosen pairs
(`_deltas`).
Split from `search` by aspect; the state it reads is set by `PairEval.__init__`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from corral.htools import score

if TYPE_CHECKING:
    from corral.htools.candidates import LocTable, TagTable
    from corral.htools.nodeops import View
    from corral.htools.search import Fixed, Sizes

NDArray = np.ndarray[Any, Any]
XM = (2, 3, 19)  # metrics of p/s that depend on the target (peer memory)


class PairTerms:
    """Pair arithmetic over the node state held by `search.PairEval`."""

    v: View
    m: NDArray
    m2: NDArray
    st: score.Stats
    inv_tmem: NDArray
    inv_tdsk: NDArray
    dsk_one: NDArray
    inv_cpu: NDArray
    inv_hisp: NDArray
    unalloc: NDArray
    online: NDArray
    dup: dict[int, int]
    map_on: bool
    tags: TagTable | None
    locs: LocTable | None

    # -- pair parts ------------------------------------------------------------------
    # ``Tc`` is the target index array shaped (1, k) to score every row against
    # every target, or (n, 1) to score row i against target Tc[i] only ("diagonal",
    # used to fetch the metric deltas of the chosen candidates).
    def _target_sec(self, Tc: NDArray, b: Sizes, peer: NDArray, strict: NDArray
                    ) -> tuple[dict[int, Any], NDArray]:  # fmt: skip
        """Target ``t`` receives the instance as secondary (``Node.addSecExEx``)."""
        v = self.v
        dsk = b.dsk[:, None]
        su = (b.spindle_use * 1.0)[:, None]
        secmem = (b.mem * b.uses_sec_mem)[:, None]
        fdsk = v["fdsk"][Tc] - dsk
        isp = v["isp"][Tc] + su
        rmem = np.maximum(v["rmem"][Tc], peer + secmem)
        old_mem = self.unalloc[Tc]
        failn1 = old_mem <= rmem
        hisp = v["hisp"][Tc]
        lodsk = v["lodsk"][Tc]
        soft = (fdsk < lodsk) | (isp > hisp) | (secmem >= old_mem)
        soft |= failn1 & ~v["failn1"][Tc]
        # forthcoming variants: the same arrays when self.dup says so (checks too)
        fdsk_f = fdsk if 14 in self.dup else v["fdsk_f"][Tc] - dsk
        isp_f = isp if 16 in self.dup else v["isp_f"][Tc] + su
        if 14 not in self.dup:
            soft |= (fdsk_f <= 0) | (fdsk_f < lodsk)
        if 16 not in self.dup:
            soft |= isp_f > hisp
        soft |= secmem >= v["fmem_f"][Tc]
        bad = (fdsk <= 0) | (soft & strict[:, None])
        itd, one = self.inv_tdsk[Tc], self.dsk_one[Tc]
        ih = self.inv_hisp[Tc]
        cnt = v["npri"][Tc] + v["nsec"][Tc] + 1
        r3 = rmem * self.inv_tmem[Tc]
        ndsk = -dsk
        new: dict[int, Any] = {
            1: _Outer(v["fdsk"][Tc] * itd + one, ndsk, itd),
            2: np.where(failn1, cnt, 0),
            3: r3,
            9: _Add(b.util[2][:, None]),
            12: _Outer(v["isp"][Tc] * ih, su, ih),
            19: r3,
        }
        if 14 not in self.dup:
            new[14] = _Outer(v["fdsk_f"][Tc] * itd + one, ndsk, itd)
        if 16 not in self.dup:
            new[16] = _Outer(v["isp_f"][Tc] * ih, su, ih)
        return new, bad

    def _target_pri(self, Tc: NDArray, b: Sizes, strict: NDArray
                    ) -> tuple[dict[int, Any], NDArray]:  # fmt: skip
        """Target ``t`` receives the instance as primary (``Node.addPriEx``)."""
        v = self.v
        mem = b.mem[:, None]
        dsk = b.dsk[:, None]
        su = (b.spindle_use * 1.0)[:, None]
        vc = (b.vcpus * b.not_offline)[:, None]
        memu = (b.mem * b.uses_memory)[:, None]
        fmem_f = v["fmem_f"][Tc] - mem
        unal = self.unalloc[Tc] - memu
        failn1 = unal <= v["rmem"][Tc]
        fdsk = v["fdsk"][Tc] - dsk
        isp = v["isp"][Tc] + su
        ucpu = v["ucpu"][Tc] + vc
        hisp = v["hisp"][Tc]
        lodsk = v["lodsk"][Tc]
        tcpu = v["tcpu"][Tc]
        vr = v["vratio"][Tc]
        # forthcoming variants: the same arrays when self.dup says so (checks too)
        fdsk_f = fdsk if 14 in self.dup else v["fdsk_f"][Tc] - dsk
        ucpu_f = ucpu if 15 in self.dup else v["ucpu_f"][Tc] + vc
        isp_f = isp if 16 in self.dup else v["isp_f"][Tc] + su
        with np.errstate(divide="ignore", invalid="ignore"):
            soft = (fdsk < lodsk) | (isp > hisp) | (failn1 & ~v["failn1"][Tc])
            soft |= (vr >= 0) & (vr < ucpu / tcpu)
            soft |= fmem_f <= 0
            if 14 not in self.dup:
                soft |= (fdsk_f <= 0) | (fdsk_f < lodsk)
            if 16 not in self.dup:
                soft |= isp_f > hisp
            if 15 not in self.dup:
                soft |= (vr >= 0) & (vr < ucpu_f / tcpu)
        bad = (unal <= 0) | (fdsk <= 0) | (soft & strict[:, None])
        itm = self.inv_tmem[Tc]
        itd, one = self.inv_tdsk[Tc], self.dsk_one[Tc]
        ic = self.inv_cpu[Tc]
        ih = self.inv_hisp[Tc]
        cnt = v["npri"][Tc] + 1 + v["nsec"][Tc]
        # new values as a_t + b_i * c_t (see _Outer); the pair arrays above only
        # decide feasibility
        ndsk = -dsk
        new: dict[int, Any] = {
            0: _Outer(self.unalloc[Tc] * itm, -memu, itm),
            1: _Outer(v["fdsk"][Tc] * itd + one, ndsk, itd),
            2: np.where(failn1, cnt, 0),
            6: _Outer(v["ucpu"][Tc] * ic, vc, ic),
            7: _Add(b.util[0][:, None]),
            8: _Add(b.util[1][:, None]),
            9: _Add(b.util[2][:, None]),
            10: _Add(b.util[3][:, None]),
            12: _Outer(v["isp"][Tc] * ih, su, ih),
            13: _Outer(v["fmem_f"][Tc] * itm, -mem, itm),
        }
        if 14 not in self.dup:
            new[14] = _Outer(v["fdsk_f"][Tc] * itd + one, ndsk, itd)
        if 15 not in self.dup:
            new[15] = _Outer(v["ucpu_f"][Tc] * ic, vc, ic)
        if 16 not in self.dup:
            new[16] = _Outer(v["isp_f"][Tc] * ih, su, ih)
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
        base = {m: a[f"{tag}m{m}"] for m in XM}
        return new, base, bad

    def _tag_terms(self, fx: Fixed, Tc: NDArray, strict: NDArray, tnew: dict[int, Any],
                   bad: NDArray) -> NDArray:  # fmt: skip
        """Exclusion tags of a target receiving the primary: refusal and conflicts.

        Ganeti's ``addPriEx`` refuses a strict placement on a node already holding
        one of the instance's exclusion tags; a forced one adds a conflict per such
        tag (metric 11, a plain sum: a pair term ``tnew[11]``).
        """
        inc = fx.a.get("tags")
        if inc is None or self.tags is None:
            return bad
        held = self.tags.cnt[Tc[0] if Tc.shape[0] == 1 else Tc[:, 0]] > 0
        if Tc.shape[0] == 1:
            hits = inc @ held.T.astype(np.int32)  # (rows, targets)
        else:  # diagonal: row i against target Tc[i]
            hits = (inc * held).sum(axis=1)[:, None]
        bad = bad | ((hits > 0) & strict[:, None])
        if not strict.all():
            tnew[11] = self.v["conflicts"][Tc] + hits
        return bad

    def _loc_terms(self, kind: int, fx: Fixed, Tc: NDArray, tnew: dict[int, Any]) -> None:
        """Pair part of the location score change (`_loc_fixed` has the rest)."""
        a = fx.a
        if "lo" not in a or self.locs is None:
            return
        node = self.locs.node
        row = Tc.shape[0] == 1
        bt = node[Tc[0] if row else Tc[:, 0]]

        def common(x: NDArray) -> NDArray:
            if row:
                return node[x] @ bt.T
            return (node[x] * bt).sum(axis=1)[:, None]  # type: ignore[no-any-return]

        def unsat() -> NDArray:
            des = a["ldes"]
            got = des @ bt.T if row else (des * bt).sum(axis=1)[:, None]
            return a["lnd"][:, None] - got  # type: ignore[no-any-return]

        if kind == 1:  # (p, t): p keeps the primary, its pair score changes
            d = a["lonp"][:, None] * (common(a["pi"]) - a["lo"][:, None])
        elif kind == 2:  # (t, p)
            d = common(a["pi"]) + unsat()
        elif kind == 3:  # (t, s)
            d = common(a["si"]) + unsat()
        else:  # (s, t)
            d = a["lons"][:, None] * common(a["si"])
        tnew[17] = self.m[17][Tc] + d
        if kind in (2, 3) and "mapq" in a:  # the target becomes the primary
            q = a["mapq"]
            tnew[score.MAP_METRIC] = q @ bt.T if row else (q * bt).sum(axis=1)[:, None]

    def _values(self, F: NDArray, terms: Terms, Tc: NDArray | None) -> NDArray:
        """Candidate scores, shape (rows, targets), computed metric by metric in place.

        ``F`` (ic, 2, 20) is the fixed part; ``terms`` the target (and x) terms.
        The same arithmetic as `candidates.score_parts` over `_deltas`, rearranged
        so that per-row constants are folded first and every metric costs a few
        passes over the pair array (loads, whose new value is the old one plus the
        instance's utilisation, need no pair array of their own).
        """
        tnew, xnew, xbase = terms
        st = self.st
        inv = 1.0 / max(st.n, 1)
        R1 = F[:, 0, :] + st.s1
        R2 = F[:, 1, :] + st.s2
        adds: list[tuple[int, NDArray]] = []
        pair: list[int] = []
        outer: list[int] = []
        batched = Tc is not None and Tc.shape[0] == 1 and Tc.shape[1] >= _OUTER_MIN
        for m, nt in tnew.items():
            # the batched product pays off from a few targets on; with very few
            # (cache updates against the touched nodes) plain pair arrays are cheaper
            if isinstance(nt, _Outer) and batched:
                outer.append(m)
            elif isinstance(nt, _Outer):
                tnew = {**tnew, m: nt.full()}
                pair.append(m)
            elif isinstance(nt, _Add):
                u = nt.row[:, 0]
                R1[:, m] += u
                R2[:, m] += u * u
                adds.append((m, u))
            else:
                pair.append(m)
        for m in xnew:
            if m not in tnew:
                pair.append(m)
        wt = list(_W)
        folded = set()
        for f, p in self.dup.items():
            if p in tnew and f not in tnew:  # see __init__: f's terms equal p's
                wt[p] += wt[f]
                folded.add(f)
        skip = {m for m, _ in adds} | set(pair) | set(outer) | folded
        srow = [m for m in _STD_L if m not in skip]
        lrow = [m for m in _SUM_L if m not in skip]
        mean = R1[:, srow] * inv
        var = R2[:, srow] * inv
        var -= mean * mean
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        # row sums, not a matrix-vector product: BLAS rounds a row differently
        # depending on its place in the block, and a row's score must not depend
        # on which other rows are scored with it (`lazy`)
        var *= score.WEIGHTS[srow]
        row = var.sum(axis=1)
        row += (R1[:, lrow] * score.WEIGHTS[lrow]).sum(axis=1)
        row += float(score.WEIGHTS[score.MAP_METRIC]) * st.map_value
        if self.map_on and score.MAP_METRIC not in tnew:  # per-instance map change
            row += float(score.WEIGHTS[score.MAP_METRIC]) * F[:, 0, score.MAP_METRIC]
        k = 1 if Tc is None else Tc.shape[1]
        total = np.empty((F.shape[0], k) if Tc is None or Tc.shape[0] == 1 else Tc.shape)
        total[...] = row[:, None]
        for m, u in adds:
            # var = A + B * m_t with A, B per row (W^2 folded in): no pair array but one
            w2 = wt[m] * wt[m]
            mu = R1[:, m] * inv
            a = (R2[:, m] * inv - mu * mu) * w2
            t = np.multiply((2.0 * inv * w2) * u[:, None], self.m[m][Tc])
            t += a[:, None]
            np.maximum(t, 0.0, out=t)
            np.sqrt(t, out=t)
            total += t
        if outer:
            self._outer_terms(total, tnew, outer, R1, R2, wt, Tc, inv)
        for m in pair:
            t1: Any = 0.0
            t2: Any = 0.0
            if m in tnew:
                nt = tnew[m]
                t1 = np.subtract(nt, self.m[m][Tc], dtype=float)
                t2 = np.multiply(nt, nt, dtype=float)
                t2 -= self.m2[m][Tc]
            if m in xnew:
                nx, bx = xnew[m], xbase[m][:, None]
                c1 = np.subtract(nx, bx, dtype=float)
                c2 = np.multiply(nx, nx, dtype=float)
                c2 -= bx * bx
                t1, t2 = _acc(c1, t1), _acc(c2, t2)
            t1 = _acc(t1, R1[:, m, None])
            if m in _STD:
                t1 *= inv
                t1 *= t1
                t2 = _acc(t2, R2[:, m, None])
                t2 *= inv
                t2 -= t1
                np.maximum(t2, 0.0, out=t2)
                np.sqrt(t2, out=t2)
                t2 *= wt[m]
                total += t2
            else:
                total += _W[m] * t1
        return total

    def _outer_terms(self, total: NDArray, tnew: dict[int, Any], outer: list[int], R1: NDArray,
                     R2: NDArray, wt: list[float], Tc: Any, inv: float) -> None:  # fmt: skip
        """Add the std terms of metrics whose new value is a_t + b_i c_t (`_Outer`).

        With S1 = R1 + e + b c (e = a - m_t) and S2 = R2 - m2_t + (a + b c)^2,
        the variance S2/n - (S1/n)^2 expands into six row x column products:
        [A, 1, b, b^2, R1, R1 b] . [1, X, Y, Z, U, V]; one batched matrix
        product gives every pair of every such metric (weights folded in as w^2).
        """
        ic, k = R1.shape[0], Tc.shape[1]
        inv2 = inv * inv
        T = Tc[0]
        # all outer metrics at once: (M, ic) row quantities, (M, k) column ones
        w2 = np.array([wt[m] * wt[m] for m in outer])[:, None]
        r1, r2 = R1[:, outer].T, R2[:, outer].T
        bb = np.stack([np.broadcast_to(tnew[m].b, (ic, 1))[:, 0] for m in outer])
        a = np.stack([tnew[m].a[0] for m in outer])
        c = np.stack([tnew[m].c[0] for m in outer])
        e = a - self.m[outer][:, T]
        rows = np.empty((len(outer), ic, 6))
        cols = np.empty((len(outer), 6, k))
        rows[:, :, 0] = (r2 * inv - r1 * r1 * inv2) * w2
        rows[:, :, 1] = w2
        rows[:, :, 2] = bb * w2
        rows[:, :, 3] = bb * bb * w2
        rows[:, :, 4] = r1 * w2
        rows[:, :, 5] = r1 * bb * w2
        cols[:, 0] = 1.0
        cols[:, 1] = (a * a - self.m2[outer][:, T]) * inv - e * e * inv2
        cols[:, 2] = 2.0 * a * c * inv - 2.0 * e * c * inv2
        cols[:, 3] = c * c * (inv - inv2)
        cols[:, 4] = -2.0 * e * inv2
        cols[:, 5] = -2.0 * c * inv2
        out = np.matmul(rows, cols)
        np.maximum(out, 0.0, out=out)
        np.sqrt(out, out=out)
        total += out.sum(axis=0)

    def _deltas(self, F: NDArray, terms: Terms, Tc: NDArray | None) -> NDArray:
        """Per-metric (Δ Σx, Δ Σx²) of diagonal candidates, shape (n, 2, 20)."""
        tnew, xnew, xbase = terms
        d = np.array(F, dtype=float)
        for m, nt in tnew.items():
            assert Tc is not None
            mt = self.m[m][Tc][:, 0]
            if isinstance(nt, _Outer):
                nt = nt.full()
            add = isinstance(nt, _Add)
            new = mt + nt.row[:, 0] if add else np.broadcast_to(nt, Tc.shape)[:, 0]
            d[:, 0, m] += new - mt
            d[:, 1, m] += new * new - self.m2[m][Tc][:, 0]
        for f, p in self.dup.items():
            if p in tnew and f not in tnew:
                d[:, :, f] = d[:, :, p]
        for m, nx in xnew.items():
            bx = xbase[m]
            new = np.broadcast_to(nx, (len(bx), 1))[:, 0]
            d[:, 0, m] += new - bx
            d[:, 1, m] += new * new - bx * bx
        return d


class _Outer:
    """A target metric whose new value is ``a + b * c``: ``a``, ``c`` per target, ``b`` per row."""

    __slots__ = ("a", "b", "c")

    def __init__(self, a: NDArray, b: NDArray, c: NDArray) -> None:
        self.a, self.b, self.c = a, b, c

    def full(self) -> NDArray:
        return self.a + self.b * self.c  # type: ignore[no-any-return]


class _Add:
    """A target metric whose new value is its current one plus ``row`` (per instance)."""

    __slots__ = ("row",)

    def __init__(self, row: NDArray) -> None:
        self.row = row


_OUTER_MIN = 1  # targets from which `_outer_terms` is used (pair arrays below)
FORTH = ((14, 1, ("fdsk", "fsp")), (15, 6, ("ucpu",)), (16, 12, ("isp",)))
Terms = tuple[dict[int, Any], dict[int, NDArray], dict[int, NDArray]]
_STD = frozenset(int(i) for i in score.STD_IDX)
_STD_L = [int(i) for i in score.STD_IDX]
_SUM_L = [int(i) for i in score.SUM_IDX]
_W = [float(w) for w in score.WEIGHTS]


def _acc(b: Any, a: Any) -> Any:
    """``b + a`` reusing ``b``'s buffer when it is an array of the result's shape."""
    if isinstance(b, np.ndarray):
        try:
            b += a
        except ValueError:
            return b + a
        return b
    return np.add(b, a, dtype=float)
