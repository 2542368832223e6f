"""The bounded pair search (`pairs.pair_best`) against the full pair matrix.

hspace and hail pick the best (primary, secondary) pair without building the
N x N score matrix; these tests check that the choice, its score (bit for
bit), the success/failure counts and whole hspace runs equal what the full
matrix gives (`pairs.FULL_SCAN`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from corral.htools import allocate, capacity, pairs
from corral.htools.cluster import Cluster
from corral.htools.text import parse_text
from corral.htools.types import Instance, ISpec

from .conftest import CORPUS, gen_cluster, needs_corpus


@pytest.fixture(params=["whole", "bounded"])
def search_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the one-block search of small groups and with the bounded
    search (what groups above `pairs._WHOLE` nodes use)."""
    if request.param == "bounded":
        monkeypatch.setattr(pairs, "_WHOLE", 0)
    return str(request.param)


@pytest.fixture
def full_scan() -> Iterator[None]:
    pairs.FULL_SCAN[0] = True
    try:
        yield
    finally:
        pairs.FULL_SCAN[0] = False


def _load(path: Path) -> Cluster:
    return parse_text(path.read_text())


def _perturbed(tmp_path: Path) -> Cluster:
    """A generated datacenter cluster, then some nodes made busier or emptier."""
    c = _load(gen_cluster(tmp_path, "datacenter", 40, 7))
    rng = np.random.default_rng(3)
    for n in rng.choice(c.n_nodes, 8, replace=False):
        c.nodes["fdsk"][n] = int(c.nodes["fdsk"][n] * rng.uniform(0.3, 1.0))
        c.nodes["xmem"][n] += int(rng.integers(0, 8192))
    return c


def _inst(i: int, mem: int = 2048, dsk: int = 20480, vcpus: int = 2) -> Instance:
    return Instance(name=f"t{i}", mem=mem, dsk=dsk, vcpus=vcpus, disks=[(dsk, None)])


def _check_same_choice(c: Cluster, inst: Instance) -> int | None:
    """pair_best's choice, value and counts equal the full matrix's; returns the choice."""
    cand = c.online_in_group(0)
    st = c.stats(c.group_nodes(0))
    mat, fp, fs = pairs.pair_scores(c, inst, cand, st, True)
    peer_fails = pairs._PEER_FAILS[0]
    flat, val, fp2, fs2, succ = pairs.pair_best(c, inst, cand, st, True)
    assert (fp == fp2).all() and (fs == fs2).all()
    assert succ == int(np.isfinite(mat).sum())
    assert pairs._PEER_FAILS[0] == peer_fails
    if not np.isfinite(mat).any():
        assert flat is None
        return None
    best = float(mat.min())
    expect = int(np.flatnonzero(mat.ravel() == best).min())
    assert flat == expect
    assert val == best  # same bits, not just close
    return flat


@needs_corpus
@pytest.mark.parametrize("name", ["office-40", "dc-40"])
@pytest.mark.usefixtures("search_path")
def test_pair_best_equals_matrix_along_a_run(name: str) -> None:
    c = _load(CORPUS / f"{name}.data")
    k = len(c.online_in_group(0))
    for i in range(40):
        inst = _inst(i, mem=128 if name.startswith("office") else 4096)
        flat = _check_same_choice(c, inst)
        if flat is None:
            break
        cand = c.online_in_group(0)
        allocate.place_new(c, inst, [int(cand[flat // k]), int(cand[flat % k])])


@pytest.mark.usefixtures("search_path")
def test_pair_best_on_perturbed_cluster(tmp_path: Path) -> None:
    c = _perturbed(tmp_path)
    k = len(c.online_in_group(0))
    for i in range(30):
        flat = _check_same_choice(c, _inst(i, mem=8192, dsk=102400, vcpus=4))
        if flat is None:
            break
        cand = c.online_in_group(0)
        allocate.place_new(c, _inst(100 + i, 8192, 102400, 4), [int(cand[flat // k]),
                                                                 int(cand[flat % k])])  # fmt: skip


@pytest.mark.usefixtures("search_path")
def test_peer_failures_counted_exactly(tmp_path: Path) -> None:
    """Secondaries squeezed to just above their N+1 reservation: pairs whose
    secondary already reserves memory for the primary fail, the others not."""
    c = _perturbed(tmp_path)
    v = c.nodes
    for n in range(c.n_nodes):
        r = int(v["rmem"][n])
        target = int(v["tmem_i"][n] - v["nmem"][n] - v["imem"][n]) - (r + 2048)
        if r > 4096 and not v["failn1"][n] and target >= 0:
            v["xmem"][n] = target
    _check_same_choice(c, _inst(0, mem=4096, dsk=51200))
    assert pairs._PEER_FAILS[0] > 0
    fits, cnt = allocate.fit_counts(c, _inst(1, mem=4096, dsk=51200), 0, 2)
    sol = allocate.alloc_in_group(c, _inst(1, mem=4096, dsk=51200), 0, 2, capacity_check=False)
    assert cnt == sol.failures and fits


def test_fit_counts_equal_allocation_counts(tmp_path: Path) -> None:
    """hspace's shrink probe counts failures like a full allocation attempt."""
    c = _perturbed(tmp_path)
    for mem, dsk in ((8192, 102400), (30000, 51200), (4096, 900000), (60000, 2000000)):
        inst = _inst(0, mem=mem, dsk=dsk, vcpus=4)
        fits, cnt = allocate.fit_counts(c, inst, 0, 2)
        sol = allocate.alloc_in_group(c, inst, 0, 2, capacity_check=False)
        assert fits == (sol.best is not None)
        assert cnt == sol.failures


@needs_corpus
def test_lower_bounds_hold_for_every_pair() -> None:
    """lr[p] + lc[s] never exceeds a valid pair's score (peer pairs included)."""
    c = _load(CORPUS / "dc-40.data")
    inst = _inst(0, mem=4096, dsk=51200)
    cand = c.online_in_group(0)
    st = c.stats(c.group_nodes(0))
    mat, fp, fs = pairs.pair_scores(c, inst, cand, st, True)
    t = pairs._pair_terms(c, inst, cand, st, True)
    rows, cols = np.flatnonzero(fp == 0), np.flatnonzero(fs == 0)
    lr, lc = pairs._lower_bounds(st, t, rows, cols)
    sub = mat[np.ix_(rows, cols)]
    bound = lr[:, None] + lc[None, :]
    fin = np.isfinite(sub)
    assert fin.sum() > 100
    assert (bound[fin] <= sub[fin] + 1e-12).all()
    # and tight (second order in the variance change: ~1e-5 at 40 nodes)
    assert float((sub[fin] - bound[fin]).min()) < 1e-4


def _run(c: Cluster, tspec: ISpec, sspec: ISpec, limit: int) -> tuple[object, ...]:
    trl = capacity.tiered_alloc(c, tspec, tspec, "drbd", limit)
    std = capacity.standard_alloc(c, sspec, "drbd", limit)
    return (
        [(i.pnode, i.snode, i.mem, i.dsk, i.vcpus) for i in trl.placed],
        trl.fail_reason, dict(trl.fail_counts),
        [(i.pnode, i.snode) for i in std.placed],
        std.fail_reason, dict(std.fail_counts),
        f"{trl.cluster.score():.8f}", f"{std.cluster.score():.8f}",
    )  # fmt: skip


def _hspace_both(c: Cluster, tspec: ISpec, sspec: ISpec, limit: int) -> None:
    fast = _run(c, tspec, sspec, limit)
    pairs.FULL_SCAN[0] = True
    try:
        full = _run(c, tspec, sspec, limit)
    finally:
        pairs.FULL_SCAN[0] = False
    assert fast == full


@needs_corpus
@pytest.mark.usefixtures("search_path")
def test_hspace_office40_equals_full_scan() -> None:
    """The whole office-40 hspace run (tiered + standard, to the end)."""
    c = _load(CORPUS / "office-40.data")
    pol = c.ipolicy
    tspec = pol.minmax[0][1]
    sspec = dataclasses.replace(pol.std, disk=4096, memory=128, cpu=1)
    _hspace_both(c, tspec, sspec, -1)


@pytest.mark.usefixtures("search_path")
def test_hspace_perturbed_equals_full_scan(tmp_path: Path) -> None:
    c = _perturbed(tmp_path)
    pol = c.ipolicy
    sspec = dataclasses.replace(pol.std, disk=51200, memory=4096, cpu=2)
    _hspace_both(c, dataclasses.replace(sspec, disk=102400, memory=8192), sspec, 80)


def test_pair_cache_matches_fresh_parts(tmp_path: Path) -> None:
    c = _perturbed(tmp_path)
    cache = pairs.PairCache()
    cand = c.online_in_group(0)
    k = len(cand)
    for i in range(10):
        inst = _inst(i, mem=4096, dsk=51200)
        st, parts = cache.stats_and_parts(c, inst, 0, cand, True)
        st0 = c.stats(c.group_nodes(0))
        assert (st.s1 == st0.s1).all() and (st.s2 == st0.s2).all()
        for a, b in zip(parts, pairs._node_parts(c, inst, cand, True), strict=True):
            assert (a == b).all()
        flat, *_ = pairs.pair_best(c, inst, cand, st, True, False, parts)
        assert flat is not None
        nodes = [int(cand[flat // k]), int(cand[flat % k])]
        allocate.place_new(c, inst, nodes)
        cache.touch(nodes)


def test_base_score_equals_stats_score(tmp_path: Path) -> None:
    """`pairs._base_score` is `Stats.score` bit for bit (randomly scaled metrics)."""
    from corral.htools import score

    c = _perturbed(tmp_path)
    m, on = c.metrics(), ~c.nodes["offline"]
    rng = np.random.default_rng(5)
    for t in range(300):
        mm = m * rng.uniform(0.5, 1.5, size=m.shape) if t else m
        st = score.Stats(mm, on, float(t % 3))
        assert pairs._base_score(st) == st.score()
