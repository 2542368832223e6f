"""Fast hbal search, fast capacity check and tiered allocation against references.

* the pairwise delta scores predict exactly the score the applied move gives;
* the lazy search takes the exhaustive search's steps (Ganeti's path) on the corpus;
* the arithmetic global N+1 check agrees with the step-by-step simulation;
* tiered allocation shrinks specs in Ganeti's order (its TSPEC line).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from corral.htools import allocate, balance
from corral.htools.candidates import PeerTable
from corral.htools.capacity import tiered_alloc
from corral.htools.moves import Move, apply_move
from corral.htools.search import PairEval, Sizes
from corral.htools.text import parse_text
from corral.htools.types import ISpec
from tests.htools.conftest import CORPUS, needs_corpus


def _load(name: str):  # type: ignore[no-untyped-def]
    return parse_text((CORPUS / f"{name}.data").read_text())


@needs_corpus
@pytest.mark.parametrize(
    ("name", "forth"), [("dc-40", False), ("office-40", False), ("office-40", True)]
)
def test_predicted_scores_equal_applied_scores(name: str, forth: bool) -> None:
    c = _load(name)
    if forth:
        # resources held by forthcoming instances: the *_forth metrics then differ
        # from the plain ones and are scored separately (no folding)
        rng = np.random.default_rng(3)
        idx = rng.choice(c.n_nodes, 12, replace=False)
        c.nodes["fdsk_f"][idx] -= 4096
        c.nodes["ucpu_f"][idx[:6]] += 2
        c.nodes["isp_f"][idx[6:]] += 1.0
    opts = balance.BalanceOptions()
    insts = balance.movable_instances(c, 0, opts)
    nodes, cand = c.group_nodes(0), c.online_in_group(0)
    ev = PairEval(c, nodes, PeerTable(c), opts)
    assert bool(ev.dup) is not forth
    sizes = Sizes.of(insts)
    cands = ev.evaluate(ev.fixed(insts, sizes), sizes, cand)
    # the kept deltas (recomputed for the winners only) give back the same scores
    before = cands.val.copy()
    cands.rescore(ev.st)
    fin = np.isfinite(before)
    assert fin.sum() > 1000
    np.testing.assert_allclose(cands.val[fin], before[fin], rtol=0, atol=1e-9)
    rng = random.Random(4)
    checked = 0
    for row in rng.sample(range(len(insts)), 40):
        for col in range(cands.val.shape[1]):
            if not np.isfinite(cands.val[row, col]):
                continue
            cc = c.copy()
            inst = cc.instances[insts[row].idx]
            move, t = Move(int(cands.kind[row, col])), int(cands.tgt[row, col])
            assert apply_move(cc, inst, move, t) == 0
            assert cc.score(nodes) == pytest.approx(cands.val[row, col], abs=1e-9)
            checked += 1
    assert checked > 100


@needs_corpus
def test_best_move_is_the_best_evaluated_candidate() -> None:
    c = _load("dc-40")
    opts = balance.BalanceOptions()
    insts = balance.movable_instances(c, 0, opts)
    nodes, cand = c.group_nodes(0), c.online_in_group(0)
    ev = PairEval(c, nodes, PeerTable(c), opts)
    sizes = Sizes.of(insts)
    fx = ev.fixed(insts, sizes)
    cands = ev.evaluate(fx, sizes, cand)
    found = ev.best_move(fx, sizes, cand, set())
    assert found is not None
    val, row, move, t = found
    j = int(np.argmin(cands.val.min(axis=1)))
    col = int(np.argmin(cands.val[j]))
    assert (row, int(move), t) == (j, int(cands.kind[j, col]), int(cands.tgt[j, col]))
    assert val == cands.val[j, col]
    # a banned candidate is skipped: the next best is returned instead
    nxt = ev.best_move(fx, sizes, cand, {(row, int(move), t)})
    assert nxt is not None and nxt[0] >= val and nxt[1:] != (row, move, t)


@needs_corpus
def test_lazy_search_takes_the_exhaustive_path_on_office40() -> None:
    c1, c2 = _load("office-40"), _load("office-40")
    _, exh, s1 = balance.balance(c1, 0, balance.BalanceOptions(search="exhaustive"))
    _, lazy, s2 = balance.balance(c2, 0, balance.BalanceOptions(search="lazy"))
    assert f"{exh:.8f}" == "3.06644309"  # Ganeti 3.0.2's final score
    assert [(s.inst, s.move, s.target, s.score) for s in s2] == [
        (s.inst, s.move, s.target, s.score) for s in s1
    ]
    assert lazy == exh


@needs_corpus
@pytest.mark.parametrize("name", ["dc-40", "office-40"])
def test_fast_redundancy_check_agrees_with_simulation(name: str) -> None:
    c = _load(name)
    esc = c.online_in_group(0)
    rng = random.Random(7)
    seen = set()
    for _ in range(25):
        cc = c.copy()
        idx = rng.sample(range(c.n_nodes), max(1, c.n_nodes // 5))
        cc.nodes["nmem"][idx] += rng.choice([500, 2000, 8000, 30000])
        fast = allocate._redundant_fast(cc, esc)
        assert fast == allocate._redundant_slow(cc, esc)
        seen.add(fast)
    assert allocate._redundant_fast(c, esc) == allocate._redundant_slow(c, esc)
    if name == "dc-40":
        assert seen == {True, False}


@needs_corpus
def test_tiered_alloc_follows_ganeti_shrink_order() -> None:
    c = _load("office-40")
    pol = c.groups[0].ipolicy
    top = pol.minmax[0][1]
    run = tiered_alloc(c, top, pol.minmax[0][0], "drbd")
    counts: dict[tuple[int, int], int] = {}
    order: list[tuple[int, int]] = []
    for inst in run.placed:
        key = (inst.mem, inst.dsk)
        if key not in counts:
            order.append(key)
        counts[key] = counts.get(key, 0) + 1
    got = " ".join(f"{m},{d}={counts[(m, d)]}" for m, d in order)
    # Ganeti 3.0.2's HTS_TSPEC on office-40 (REPORT.md §7.2), without cpu/spindles
    assert got == (
        "1024,65536=1 960,65536=1 768,65536=1 384,65536=2 256,49920=1 256,35584=1 "
        "192,33280=1 128,29184=3 128,17664=1 64,17408=3 64,15104=1 64,11008=1 64,1280=1"
    )
    assert isinstance(top, ISpec)
