"""Capacity planning (hspace): how many more instances fit.

Two independent runs from the initial cluster, as Ganeti's hspace does:

* *tiered*: start from a large spec (``--tiered-alloc`` or the policy's max
  spec), allocate it repeatedly on the best-scoring placement; when it no
  longer fits, shrink the resource that failed most often (memory by 64 MiB,
  disk by 256 MiB, one vCPU) and go on, until the spec drops below the
  policy's minimum;
* *standard*: allocate the fixed spec (``--standard-alloc`` or the policy's
  std spec) until it no longer fits.

Every placement is searched exactly as a hail allocation (all nodes or node
pairs of every group, N+1 and policy checks per node); the global
redundancy check is not repeated per step.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from corral.htools import nodeops
from corral.htools.allocate import FitProbe, alloc_multi_group, place_new
from corral.htools.cluster import Cluster
from corral.htools.pairs import PairCache
from corral.htools.types import FailMode, Instance, ISpec

UNIT_MEM, UNIT_DSK, UNIT_CPU = 64, 256, 1


@dataclasses.dataclass
class AllocRun:
    placed: list[Instance]
    fail_reason: FailMode
    fail_counts: Counter[FailMode]
    cluster: Cluster


def _mk(spec: ISpec, template: str, n: int) -> Instance:
    return Instance(
        name=f"new-{n}", mem=spec.memory, dsk=spec.disk, vcpus=spec.cpu,
        disk_template=template, spindle_use=spec.spindle_use,
        disks=[(spec.disk, None)], nics=1,
    )  # fmt: skip


def _step_down(cur: int, unit: int, bound: int) -> int:
    """Next size on the ``cur - n*unit`` grid (n >= 1) that is <= ``bound``."""
    if cur - unit <= bound:
        return cur - unit
    n = -(-(cur - bound) // unit)
    return cur - n * unit


def _most_likely(cnt: Counter[FailMode]) -> FailMode:
    if not cnt:
        return FailMode.FailInternal
    best = max(cnt.values())
    return min(m for m, v in cnt.items() if v == best)


def _alloc_loop(
    c: Cluster, spec: ISpec, template: str, limit: int, start: int,
    caches: dict[int, PairCache] | None = None,
) -> AllocRun:  # fmt: skip
    """Allocate ``spec`` until it fails; ``caches`` (per group) may be shared
    by successive loops on the same cluster (hspace's tiered allocation)."""
    req = 2 if template == "drbd" else 1
    placed: list[Instance] = []
    n = start
    if caches is None:
        caches = {}
    while limit < 0 or len(placed) < limit:
        inst = _mk(spec, template, n)
        best, sols = alloc_multi_group(
            c, inst, req, capacity_check=False, exact_score=False, counts=False, caches=caches
        )
        if best is None or best.best is None:
            cnt: Counter[FailMode] = Counter()
            for s in sols:
                cnt.update(s.failures)
            return AllocRun(placed, _most_likely(cnt), cnt, c)
        place_new(c, inst, best.best.nodes)
        for pc in caches.values():
            pc.touch(best.best.nodes)
        placed.append(inst)
        n += 1
    return AllocRun(placed, FailMode.OK, Counter(), c)


def standard_alloc(c: Cluster, spec: ISpec, template: str, limit: int = -1) -> AllocRun:
    return _alloc_loop(c.copy(), spec, template, limit, 0)


def _ganeti_order(cnt: Counter[FailMode]) -> list[FailMode]:
    """Failure modes by count ascending, ties in enum order (Ganeti's stable sort)."""
    modes = [FailMode(m) for m in range(1, len(FailMode))]
    return sorted(modes, key=lambda m: cnt.get(m, 0))


def _shrink(c: Cluster, spec: ISpec, mode: FailMode, jump: bool) -> ISpec | None:
    """``Instance.shrinkByType`` (one unit), optionally jumping over sizes no node fits.

    The jump is exact for Ganeti's results: a size above the bound fails on
    every node with the same failure counts, so Ganeti's unit steps through
    that range change nothing but the time spent.
    """
    v = c.nodes
    on = ~v["offline"]
    if mode == FailMode.FailMem:
        bound = int((nodeops.unallocated(v)[on] - v["rmem"][on]).max()) - 1 if on.any() else 0
        mem = _step_down(spec.memory, UNIT_MEM, bound) if jump else spec.memory - UNIT_MEM
        return None if mem < UNIT_MEM else dataclasses.replace(spec, memory=mem)
    if mode == FailMode.FailDisk:
        bound = int(v["fdsk"][on].max()) - 1 if on.any() else 0
        dsk = _step_down(spec.disk, UNIT_DSK, bound) if jump else spec.disk - UNIT_DSK
        return None if dsk < UNIT_DSK else dataclasses.replace(spec, disk=dsk)
    if mode == FailMode.FailCPU:
        cpu = spec.cpu - UNIT_CPU
        return None if cpu < UNIT_CPU else dataclasses.replace(spec, cpu=cpu)
    return None


_FIELDS = {
    FailMode.FailMem: ("memory", UNIT_MEM),
    FailMode.FailDisk: ("disk", UNIT_DSK),
    FailMode.FailCPU: ("cpu", UNIT_CPU),
}
_FIRST_BATCH, _MAX_ELEMS = 8, 1 << 13


def _line(c: Cluster, spec: ISpec, mode: FailMode, count: int) -> list[int]:
    """The next (up to) ``count`` sizes of repeated ``_shrink(jump=True)`` along ``mode``.

    The cluster does not change meanwhile, so after the first (possibly
    jumping) step every step is one unit; the line ends below one unit.
    """
    first = _shrink(c, spec, mode, jump=True)
    if first is None:
        return []
    field, unit = _FIELDS[mode]
    sizes = [getattr(first, field)]
    while len(sizes) < count and sizes[-1] - unit >= unit:
        sizes.append(sizes[-1] - unit)
    return sizes


def _try_line(
    c: Cluster, spec: ISpec, mode: FailMode, sizes: list[int], template: str, n: int,
    probes: dict[int, FitProbe],
) -> tuple[Any, Any, Any]:  # fmt: skip
    """Allocation attempts (nothing placed) of ``spec`` with its ``mode`` resource at
    each of ``sizes``, all groups: fits per size, failure counts per size and
    `FailMode`, and which modes the attempt's `Counter` holds as keys."""
    req = 2 if template == "drbd" else 1
    field = _FIELDS[mode][0]
    arr = {
        f: np.full(len(sizes), getattr(spec, f), dtype=np.int64) for f in ("memory", "disk", "cpu")
    }
    arr[field] = np.array(sizes, dtype=np.int64)
    base = _mk(spec, template, n)
    ok = np.zeros(len(sizes), dtype=bool)
    cnt = np.zeros((len(sizes), len(FailMode)), dtype=np.int64)
    pres = np.zeros((len(sizes), len(FailMode)), dtype=bool)
    for g, grp in enumerate(c.groups):
        if grp.alloc_policy == "unallocable":
            continue
        if g not in probes:
            probes[g] = FitProbe(c, g)
        o, cn, pr = probes[g].counts_sizes(base, arr["memory"], arr["disk"], arr["cpu"], req)
        ok |= o
        cnt += cn
        pres |= pr
    return ok, cnt, pres


def _counter(cnt: Any, pres: Any) -> Counter[FailMode]:
    """One size's counts (a row of `_try_line`) as the `Counter` a single attempt gives."""
    return Counter({FailMode(int(m)): int(cnt[m]) for m in np.flatnonzero(pres)})


def _first_batch(c: Cluster) -> int:
    """Sizes in the first batch of a line: on big clusters a batch costs in
    proportion to its size and many lines end after a step or two."""
    return max(1, min(_FIRST_BATCH, _MAX_ELEMS // (4 * max(1, c.n_nodes))))


def _batch(c: Cluster, prev: int) -> int:
    k = max(1, c.n_nodes)
    return max(1, min(prev * 4, _MAX_ELEMS // k))


def _suffices_shrinking(c: Cluster, spec: ISpec, mode: FailMode, template: str, n: int,
                        cnt: Counter[FailMode],
                        probes: dict[int, FitProbe]) -> ISpec | None:  # fmt: skip
    """Ganeti's ``sufficesShrinking``: shrink by ``mode`` while it keeps failing for it.

    The first size with a solution wins, and a solution here is what Ganeti's
    probe (``tryAlloc`` with the capacity check on) accepts: a placement that
    fits its nodes *and* keeps the cluster globally N+1 redundant. (The
    placements themselves skip that check for DRBD, as Ganeti's
    ``iterateAllocSmallStep`` does.) A size that fits only without redundancy
    counts as a failure (N+1), so the walk goes on while ``mode`` still fails.
    """
    if cnt.get(mode, 0) == 0 or mode not in _FIELDS:
        return None
    field = _FIELDS[mode][0]
    s, batch = spec, _first_batch(c)
    while True:
        sizes = _line(c, s, mode, batch)
        if not sizes:
            return None
        ok, cn, _ = _try_line(c, s, mode, sizes, template, n, probes)
        for i, size in enumerate(sizes):
            grown = dataclasses.replace(s, **{field: size})
            if ok[i] and _redundant_solution(c, grown, template, n):
                return grown
            if cn[i, int(mode)] == 0:
                return None
        s = dataclasses.replace(s, **{field: sizes[-1]})
        batch = _batch(c, batch)


def _redundant_solution(c: Cluster, spec: ISpec, template: str, n: int) -> bool:
    """Whether some placement of ``spec`` passes the global N+1 capacity check."""
    req = 2 if template == "drbd" else 1
    best, _ = alloc_multi_group(c, _mk(spec, template, n), req, capacity_check=True,
                                exact_score=False, counts=False)  # fmt: skip
    return best is not None and best.best is not None


# a level of the one-unit chain: (spec, resource changed, its size) and failure counts
_Level = tuple[ISpec, str | None, int, Counter[FailMode]]


def _level_spec(lv: _Level) -> ISpec:
    return lv[0] if lv[1] is None else dataclasses.replace(lv[0], **{lv[1]: lv[2]})


def _walk_chain(c: Cluster, spec: ISpec, cnt: Counter[FailMode], template: str, n: int,
                probes: dict[int, FitProbe], chain: list[_Level]) -> ISpec | None:  # fmt: skip
    """The one-unit chain of `tiered_alloc`: shrink along the most frequent failure
    until a size fits (returned); every failing level is appended to ``chain``.

    Sizes are probed in batches along one failure mode; a batch is cut where
    a level's most frequent failure changes.
    """
    s, e = spec, cnt
    batch = _first_batch(c)
    while True:
        mode = _ganeti_order(e)[-1]
        if mode not in _FIELDS:
            return None
        sizes = _line(c, s, mode, batch)
        if not sizes:
            return None
        field = _FIELDS[mode][0]
        ok, cn, pr = _try_line(c, s, mode, sizes, template, n, probes)
        same = np.zeros(len(sizes), dtype=bool)
        same[1:] = (cn[1:] == cn[:-1]).all(axis=1) & (pr[1:] == pr[:-1]).all(axis=1)
        changed = False
        for i, size in enumerate(sizes):
            if ok[i]:
                return dataclasses.replace(s, **{field: size})
            if not same[i]:
                e = _counter(cn[i], pr[i])
                changed = _ganeti_order(e)[-1] != mode
            chain.append((s, field, size, e))
            if changed:
                break
        s = _level_spec(chain[-1])
        batch = batch if changed else _batch(c, batch)


def tiered_alloc(
    c: Cluster, spec: ISpec, minspec: ISpec, template: str, limit: int = -1
) -> AllocRun:
    """Ganeti's ``tieredAlloc``: allocate, shrink the most frequent failure, repeat.

    After a spec stops fitting, it is shrunk one unit along its most frequent
    failure (ties: the later failure mode) and allocation goes on; when a whole
    chain of such shrinks places nothing, the "big steps" of each level of the
    chain are tried, deepest first: shrink along one failure mode (most
    frequent first) until an allocation succeeds. ``minspec`` is not a stop
    condition (Ganeti shrinks down to one unit; the policy check rejects
    smaller instances with the matching failure mode).
    """
    del minspec
    cc = c.copy()
    placed: list[Instance] = []
    cnt: Counter[FailMode] = Counter()
    reason = FailMode.OK

    def remaining() -> int:
        return -1 if limit < 0 else limit - len(placed)

    cur: ISpec | None = spec
    caches: dict[int, PairCache] = {}
    while cur is not None and remaining() != 0:
        run = _alloc_loop(cc, cur, template, remaining(), len(placed), caches)
        probes: dict[int, FitProbe] = {}  # the cluster changed
        placed.extend(run.placed)
        cnt, reason = run.fail_counts, run.fail_reason
        if reason == FailMode.OK:
            break
        # one-unit chain along the most frequent failure
        chain: list[_Level] = [(cur, None, 0, cnt)]
        nxt = _walk_chain(cc, cur, cnt, template, len(placed), probes, chain)
        if nxt is None:
            for lv in reversed(chain):
                s, e = _level_spec(lv), lv[3]
                for mode in reversed(_ganeti_order(e)):
                    nxt = _suffices_shrinking(cc, s, mode, template, len(placed), e, probes)
                    if nxt is not None:
                        break
                if nxt is not None:
                    break
        if nxt is None:
            cnt, reason = chain[-1][3], _most_likely(chain[-1][3])
            break
        cur = nxt
    return AllocRun(placed, reason, cnt, cc)
