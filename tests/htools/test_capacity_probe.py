"""hspace's batched shrink probes against one-size-at-a-time probing.

`allocate.FitProbe.counts_sizes` answers "does it fit, and why not" for many
sizes at once, and `capacity.tiered_alloc` walks its shrink chains in such
batches; both must give exactly what probing each size with
`allocate.fit_counts` and stepping one unit at a time (the plain reading of
Ganeti's ``tieredAlloc``) gives, failure counts and their keys included.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from corral.htools import allocate, capacity, pairs
from corral.htools.cluster import Cluster
from corral.htools.text import parse_text
from corral.htools.types import FailMode, Instance, ISpec

from .conftest import CORPUS, gen_cluster, needs_corpus


def _load(path: Path) -> Cluster:
    return parse_text(path.read_text())


def _squeezed(tmp_path: Path) -> Cluster:
    """A generated cluster with busier nodes and secondaries just above their N+1
    reservation (so that peer reservations make pairs fail)."""
    c = _load(gen_cluster(tmp_path, "datacenter", 40, 7))
    rng = np.random.default_rng(3)
    v = c.nodes
    for n in rng.choice(c.n_nodes, 8, replace=False):
        v["fdsk"][n] = int(v["fdsk"][n] * rng.uniform(0.3, 1.0))
        v["xmem"][n] += int(rng.integers(0, 8192))
    for n in range(0, c.n_nodes, 3):
        r = int(v["rmem"][n])
        target = int(v["tmem_i"][n] - v["nmem"][n] - v["imem"][n]) - (r + 2048)
        if r > 4096 and not v["failn1"][n] and target >= 0:
            v["xmem"][n] = target
    return c


def _check_sizes(c: Cluster, base: Instance, mems: list[int], dsks: list[int],
                 cpus: list[int], req: int) -> None:  # fmt: skip
    probe = allocate.FitProbe(c, 0)
    arr = [np.array(x, dtype=np.int64) for x in (mems, dsks, cpus)]
    ok, cnt, pres = probe.counts_sizes(base, *arr, req)
    for i, (m, d, cpu) in enumerate(zip(mems, dsks, cpus, strict=True)):
        inst = dataclasses.replace(base, mem=m, dsk=d, vcpus=cpu, disks=[(d, None)])
        fits, want = allocate.fit_counts(c, inst, 0, req)
        assert bool(ok[i]) == fits, (m, d, cpu)
        got = {FailMode(int(j)): int(cnt[i, j]) for j in np.flatnonzero(pres[i])}
        assert got == dict(want), (m, d, cpu)  # same keys, zero counts included
        assert int(cnt[i].sum()) == sum(want.values())


def _lines(mem: int, dsk: int, cpu: int) -> tuple[list[int], list[int], list[int]]:
    """Sizes along each resource (the others fixed), policy violations included."""
    mems = list(range(mem * 16, 0, -max(1, mem // 2)))
    dsks = list(range(dsk * 40, 0, -max(1, dsk)))
    cpus = list(range(40, 0, -1))
    return (
        mems + [mem] * (len(dsks) + len(cpus)),
        [dsk] * len(mems) + dsks + [dsk] * len(cpus),
        [cpu] * (len(mems) + len(dsks)) + cpus,
    )


@pytest.mark.parametrize(("template", "tags"), [("drbd", False), ("plain", False),
                                               ("drbd", True)])  # fmt: skip
def test_counts_sizes_equal_fit_counts(tmp_path: Path, template: str, tags: bool) -> None:
    c = _squeezed(tmp_path)
    base = Instance(name="x", mem=4096, dsk=51200, vcpus=2, disk_template=template,
                    disks=[(51200, None)])  # fmt: skip
    if tags:  # exclusion tags: nodes already running a tagged primary refuse it
        base.excl_tags = ["svc:db"]
        for n in range(0, c.n_nodes, 4):
            c.ptags[n]["svc:db"] = 1
    mems, dsks, cpus = _lines(4096, 51200, 2)
    _check_sizes(c, base, mems, dsks, cpus, 2 if template == "drbd" else 1)
    if template == "drbd":  # peer reservations do make some of these pairs fail
        allocate.fit_counts(c, base, 0, 2)
        assert pairs._PEER_FAILS[0] > 0


@needs_corpus
@pytest.mark.parametrize("name", ["office-40", "dc-40"])
def test_counts_sizes_on_corpus(name: str) -> None:
    c = _load(CORPUS / f"{name}.data")
    spec = c.ipolicy.std
    base = capacity._mk(spec, "drbd", 0)
    _check_sizes(c, base, *_lines(spec.memory, spec.disk, spec.cpu), 2)


# -- the plain unit-step tiered allocation, as a reference ---------------------------------


def _ref_try(c: Cluster, spec: ISpec, n: int) -> tuple[bool, Counter[FailMode]]:
    inst = capacity._mk(spec, "drbd", n)
    ok, cnt = False, Counter[FailMode]()
    for g, grp in enumerate(c.groups):
        if grp.alloc_policy != "unallocable":
            fits, gc = allocate.fit_counts(c, inst, g, 2)
            ok = ok or fits
            cnt.update(gc)
    return ok, cnt


def _ref_suffices(c: Cluster, spec: ISpec, mode: FailMode, n: int,
                  cnt: Counter[FailMode]) -> ISpec | None:  # fmt: skip
    cur: ISpec | None = spec
    ok, fails = False, cnt
    while cur is not None:
        if ok:
            return cur
        if fails.get(mode, 0) == 0:
            return None
        cur = capacity._shrink(c, cur, mode, jump=False)
        if cur is not None:
            ok, fails = _ref_try(c, cur, n)
    return None


def _ref_tiered(c: Cluster, spec: ISpec, limit: int) -> capacity.AllocRun:
    cc = c.copy()
    placed: list[Instance] = []
    cnt: Counter[FailMode] = Counter()
    reason = FailMode.OK
    cur: ISpec | None = spec
    while cur is not None and (limit < 0 or len(placed) < limit):
        run = capacity._alloc_loop(cc, cur, "drbd", limit - len(placed) if limit >= 0 else -1,
                                   len(placed))  # fmt: skip
        placed.extend(run.placed)
        cnt, reason = run.fail_counts, run.fail_reason
        if reason == FailMode.OK:
            break
        chain = [(cur, cnt)]
        nxt: ISpec | None = None
        s, e = cur, cnt
        while True:
            s2 = capacity._shrink(cc, s, capacity._ganeti_order(e)[-1], jump=False)
            if s2 is None:
                break
            ok, e2 = _ref_try(cc, s2, len(placed))
            if ok:
                nxt = s2
                break
            chain.append((s2, e2))
            s, e = s2, e2
        for s, e in reversed(chain if nxt is None else []):
            for mode in reversed(capacity._ganeti_order(e)):
                nxt = _ref_suffices(cc, s, mode, len(placed), e)
                if nxt is not None:
                    break
            if nxt is not None:
                break
        if nxt is None:
            cnt, reason = chain[-1][1], capacity._most_likely(chain[-1][1])
            break
        cur = nxt
    return capacity.AllocRun(placed, reason, cnt, cc)


def _same_tiered(c: Cluster, spec: ISpec, limit: int) -> int:
    got = capacity.tiered_alloc(c, spec, spec, "drbd", limit)
    want = _ref_tiered(c, spec, limit)
    assert [(i.mem, i.dsk, i.vcpus, i.pnode, i.snode) for i in got.placed] == [
        (i.mem, i.dsk, i.vcpus, i.pnode, i.snode) for i in want.placed
    ]
    assert got.fail_reason == want.fail_reason
    assert dict(got.fail_counts) == dict(want.fail_counts)
    return len(got.placed)


@needs_corpus
def test_tiered_office40_equals_unit_steps() -> None:
    """Whole run; it shrinks memory, disk and vCPUs through long failing chains."""
    c = _load(CORPUS / "office-40.data")
    assert _same_tiered(c, c.ipolicy.minmax[0][1], -1) == 18


def test_tiered_squeezed_equals_unit_steps(tmp_path: Path) -> None:
    c = _squeezed(tmp_path)
    spec = dataclasses.replace(c.ipolicy.std, memory=20000, disk=300000, cpu=6)
    assert _same_tiered(c, spec, 25) > 0
