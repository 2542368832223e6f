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

from corral.htools import nodeops
from corral.htools.allocate import alloc_multi_group, place_new
from corral.htools.cluster import Cluster
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


def _alloc_loop(c: Cluster, spec: ISpec, template: str, limit: int, start: int) -> AllocRun:
    req = 2 if template == "drbd" else 1
    placed: list[Instance] = []
    n = start
    while limit < 0 or len(placed) < limit:
        inst = _mk(spec, template, n)
        best, sols = alloc_multi_group(c, inst, req, capacity_check=False)
        if best is None or best.best is None:
            cnt: Counter[FailMode] = Counter()
            for s in sols:
                cnt.update(s.failures)
            return AllocRun(placed, _most_likely(cnt), cnt, c)
        place_new(c, inst, best.best.nodes)
        placed.append(inst)
        n += 1
    return AllocRun(placed, FailMode.OK, Counter(), c)


def standard_alloc(c: Cluster, spec: ISpec, template: str, limit: int = -1) -> AllocRun:
    return _alloc_loop(c.copy(), spec, template, limit, 0)


def tiered_alloc(
    c: Cluster, spec: ISpec, minspec: ISpec, template: str, limit: int = -1
) -> AllocRun:
    cc = c.copy()
    placed: list[Instance] = []
    cnt: Counter[FailMode] = Counter()
    reason = FailMode.OK
    cur = spec
    while limit < 0 or len(placed) < limit:
        run = _alloc_loop(cc, cur, template, -1 if limit < 0 else limit - len(placed), len(placed))
        placed.extend(run.placed)
        cnt, reason = run.fail_counts, run.fail_reason
        if reason == FailMode.OK:
            break
        # Shrink by Ganeti's unit steps, skipping the sizes no node could take
        # (the bound is a necessary condition, so the result is the same).
        v = cc.nodes
        on = ~v["offline"]
        if not on.any():
            break
        if reason == FailMode.FailMem:
            bound = int((nodeops.unallocated(v)[on] - v["rmem"][on]).max()) - 1
            cur = dataclasses.replace(cur, memory=_step_down(cur.memory, UNIT_MEM, bound))
        elif reason == FailMode.FailDisk:
            bound = int(v["fdsk"][on].max()) - 1
            cur = dataclasses.replace(cur, disk=_step_down(cur.disk, UNIT_DSK, bound))
        elif reason == FailMode.FailCPU:
            cur = dataclasses.replace(cur, cpu=cur.cpu - UNIT_CPU)
        else:
            break
        if cur.memory < minspec.memory or cur.disk < minspec.disk or cur.cpu < minspec.cpu:
            break
    return AllocRun(placed, reason, cnt, cc)
