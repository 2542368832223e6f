"""The lazy hbal search (`corral.htools.lazy`) against the exhaustive one.

* before every step, every row's kept bound is at or below the row's true best
  score (an exact scan of every row), on generated clusters with offline nodes,
  exclusion tags, location tags and forthcoming resources;
* the bound is not vacuous: without its worst-case terms the same check fails;
* the lazy search takes exactly the exhaustive search's steps;
* `greedy.balance_group` picks exhaustive for small groups and the map
  statistic, lazy otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral.htools import balance, greedy, lazy, search
from corral.htools.cluster import Cluster
from corral.htools.text import parse_text
from tests.htools.test_exclusion import _gen, _with_locations


def _cluster(tmp: Path, case: str) -> Cluster:
    if case == "dc":
        return parse_text(_gen(tmp, "datacenter", 20, 2, 0).read_text())
    if case == "office-offline":
        return parse_text(_gen(tmp, "office", 20, 3, 0, offline=4).read_text())
    if case == "excl-tags":
        return parse_text(_gen(tmp, "datacenter", 16, 4, 5).read_text())
    if case == "locations":
        return parse_text(_with_locations(_gen(tmp, "office", 18, 5, 0).read_text()))
    c = parse_text(_gen(tmp, "datacenter", 20, 6, 0).read_text())
    # forthcoming resources: the *_forth metrics differ from the plain ones
    rng = np.random.default_rng(8)
    idx = rng.choice(c.n_nodes, 8, replace=False)
    c.nodes["fdsk_f"][idx] -= 4096
    c.nodes["ucpu_f"][idx[:4]] += 2
    return c


CASES = ["dc", "office-offline", "excl-tags", "locations", "forthcoming"]


def _path(c: Cluster, search: str) -> tuple[float, list[tuple[Any, ...]]]:
    _, fin, steps = balance.balance(c, 0, balance.BalanceOptions(search=search))
    return fin, [(s.inst, int(s.move), s.target, s.score) for s in steps]


def _checked_choose(seen: list[int]) -> Any:
    """`lazy._choose` that first checks every bound against an exact scan."""
    real = lazy._choose

    def choose(ev: Any, fixed: Any, sizes: Any, cand: Any, lb: Any, banned: Any) -> Any:
        true, _ = ev.scan(fixed, sizes, cand, banned)
        fin = np.isfinite(true)
        bad = np.flatnonzero(fin & (lb > true + 1e-12))
        over = lb[bad[:5]] - true[bad[:5]]
        assert not len(bad), f"bound above the true best on rows {bad[:5]}: {over}"
        seen.append(int(np.count_nonzero(fin & (lb > -np.inf))))
        return real(ev, fixed, sizes, cand, lb, banned)

    return choose


@pytest.mark.parametrize("case", CASES)
def test_bounds_hold_and_the_path_is_the_exhaustive_one(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = _cluster(tmp_path, case)
    assert not search.map_modelled(c)
    exh_fin, exh = _path(c.copy(), "exhaustive")
    assert len(exh) > 5
    seen: list[int] = []
    monkeypatch.setattr(lazy, "_choose", _checked_choose(seen))
    fin, got = _path(c, "lazy")
    assert got == exh and fin == exh_fin
    # rows with a finite bound were really checked (not just -inf ones)
    assert sum(seen) > 10 * len(seen)


def test_bound_without_its_worst_case_terms_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = _cluster(tmp_path, "dc")

    def common_only(self: lazy.RowBounds, before: Any, after: Any) -> Any:
        s0, s1 = before.st, after.st
        return np.full(len(self.D), s1.score() - s0.score())

    monkeypatch.setattr(lazy.RowBounds, "drift", common_only)
    monkeypatch.setattr(lazy, "_choose", _checked_choose([]))
    with pytest.raises(AssertionError, match="bound above the true best"):
        _path(c, "lazy")


@pytest.mark.parametrize(
    ("nodes", "tags", "locs", "want"),
    [(8, 0, False, "exhaustive"), (120, 0, False, "lazy"), (120, 4, True, "exhaustive")],
)
def test_dispatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: int, tags: int, locs: bool, want: str
) -> None:
    text = _gen(tmp_path, "datacenter", nodes, 1, tags).read_text()
    c = parse_text(_with_locations(text) if locs else text)
    used: list[str] = []
    monkeypatch.setattr(greedy, "_balance_exhaustive", lambda *a: used.append("exhaustive"))
    monkeypatch.setattr(lazy, "balance_lazy", lambda *a: used.append("lazy"))
    balance.balance(c, 0, balance.BalanceOptions())
    assert used == [want]


def test_a_rows_score_does_not_depend_on_the_rows_scored_with_it(tmp_path: Path) -> None:
    # the lazy search scores rows in varying batches; its tie-breaking equals the
    # exhaustive scan's only if every row's scores are bit-identical either way
    c = _cluster(tmp_path, "forthcoming")
    opts = balance.BalanceOptions(max_length=60)
    balance.balance(c, 0, opts)  # somewhere mid-run, where ties appear
    insts = balance.movable_instances(c, 0, opts)
    ev = greedy.PairEval(c, c.group_nodes(0), greedy.PeerTable(c), opts)
    sizes = greedy.Sizes.of(insts)
    fx = ev.fixed(insts, sizes)
    cand = c.online_in_group(0)
    assert len(cand) >= 16  # the batched (matrix product) target terms are in use
    full, _ = ev.scan(fx, sizes, cand, set())
    rng = np.random.default_rng(5)
    for _ in range(40):
        rows = np.sort(rng.choice(len(insts), int(rng.integers(1, 60)), replace=False))
        sub, _ = ev.scan(fx.take(rows), sizes.take(rows), cand, set(), rows)
        assert np.array_equal(sub, full[rows])
