"""hbal's refresh schedule: which moves the cached search re-evaluates everything after.

* `RefreshSchedule.points` lists the documented move counts;
* `BalanceOptions.effective_schedule` picks the automatic schedule only for groups
  that are neither exhaustive (40 nodes) nor target-pruned (4000 nodes);
* `balance.balance` hands that schedule to the cached search, and the cached search
  evaluates every pair exactly after those moves (spied, not timed).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from corral.htools import balance, greedy
from corral.htools.balance import AUTO_SCHEDULE, BalanceOptions, RefreshSchedule
from corral.htools.search import PairEval
from corral.htools.text import parse_text
from tests.htools.conftest import CORPUS, needs_corpus


def _load(name: str):  # type: ignore[no-untyped-def]
    return parse_text((CORPUS / f"{name}.data").read_text())


def _first(s: RefreshSchedule, n: int) -> list[int]:
    return list(itertools.islice(s.points(), n))


def test_points_fixed_growing_and_bounded() -> None:
    assert _first(RefreshSchedule(), 5) == []
    assert _first(RefreshSchedule(every=10), 4) == [10, 20, 30, 40]
    assert list(RefreshSchedule(every=10, until=35).points()) == [10, 20, 30]
    # the period grows by `grow` after each refresh (rounded, at least one move)
    assert _first(RefreshSchedule(every=4, grow=1.5), 5) == [4, 10, 19, 33, 53]
    assert _first(RefreshSchedule(every=1, grow=0.5), 3) == [1, 2, 3]


def test_effective_schedule_by_group_size() -> None:
    auto = BalanceOptions()
    assert auto.effective_schedule(400) == AUTO_SCHEDULE
    # 4000-node groups are target-pruned instead: no full refreshes (per-move cost)
    assert auto.effective_schedule(balance.AUTO_PRUNE_ABOVE + 1) == RefreshSchedule()
    assert BalanceOptions(schedule=RefreshSchedule(every=2)).effective_schedule(4000).every == 2
    assert BalanceOptions(refresh=7).effective_schedule(400) == RefreshSchedule(every=7)
    assert BalanceOptions(refresh=-1).effective_schedule(400) == RefreshSchedule()
    mine = RefreshSchedule(every=3, until=9)
    assert BalanceOptions(refresh=5, schedule=mine).effective_schedule(4000) == mine


@needs_corpus
@pytest.mark.parametrize(("name", "want"), [("office-400", AUTO_SCHEDULE), ("dc-40", None)])
def test_balance_hands_the_schedule_to_the_search(
    name: str, want: RefreshSchedule | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kw: Any) -> tuple[float, float, list[Any]]:
        seen.update(kw)
        return 0.0, 0.0, []

    monkeypatch.setattr(greedy, "balance_cached", fake)
    balance.balance(_load(name), 0, BalanceOptions())
    assert seen["schedule"] == (want if want is not None else AUTO_SCHEDULE)
    # 40 nodes: the schedule is handed on but the search is exhaustive anyway
    assert seen["exhaustive"] is (want is None)
    balance.balance(_load(name), 0, BalanceOptions(refresh=10))  # hbal --refresh 10
    assert seen["schedule"] == RefreshSchedule(every=10)


@needs_corpus
def test_cached_search_refreshes_exactly_at_the_schedule_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = _load("office-40")
    opts = BalanceOptions(max_length=36)
    insts = balance.movable_instances(c, 0, opts)
    moves = [0]
    full_at: list[int] = []
    real = PairEval.evaluate

    def spy(self: PairEval, fixed: Any, sizes: Any, targets: Any) -> Any:
        if sizes.mem.shape[0] == len(insts):  # every row: a full evaluation
            full_at.append(moves[0])
        return real(self, fixed, sizes, targets)

    monkeypatch.setattr(PairEval, "evaluate", spy)

    def step(_st: Any, n: int) -> None:
        moves[0] = n

    sched = RefreshSchedule(every=5, grow=2.0, until=30)  # after moves 5, 15
    _, _, steps = greedy.balance_cached(c, 0, insts, opts, step, schedule=sched)
    assert len(steps) == 36
    assert full_at == [0, 5, 15]


@needs_corpus
def test_refresh_after_every_move_is_the_exhaustive_path() -> None:
    c1, c2 = _load("office-40"), _load("office-40")
    _, exh, s1 = balance.balance(c1, 0, BalanceOptions(search="exhaustive"))
    opts = BalanceOptions()
    insts = balance.movable_instances(c2, 0, opts)
    _, got, s2 = greedy.balance_cached(c2, 0, insts, opts, schedule=RefreshSchedule(every=1))
    assert [(s.inst, s.move, s.target) for s in s2] == [(s.inst, s.move, s.target) for s in s1]
    assert got == exh
