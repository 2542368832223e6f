"""LockManager: modes, ALL_SET, order, fairness, aborting waits, no deadlocks."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from corral import errors
from corral.cmdlib.base import ALL_SET, LEVEL_CLUSTER, LEVEL_INSTANCE, LEVEL_NODE
from corral.jobs.locking import LockManager


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _blocked(coro: Any) -> asyncio.Task[Any]:
    """Start `coro` and check that it does not complete right away."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0.01)
    assert not task.done()
    return task


def test_shared_locks_are_compatible_exclusive_ones_not() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_INSTANCE, ["a"], shared=True)
        await lm.acquire(2, LEVEL_INSTANCE, ["a"], shared=True)
        waiter = await _blocked(lm.acquire(3, LEVEL_INSTANCE, ["a"]))
        assert lm.is_waiting(3)
        lm.release_all(1)
        await asyncio.sleep(0)
        assert not waiter.done()
        lm.release_all(2)
        await asyncio.wait_for(waiter, 1)
        assert lm.owned(3, LEVEL_INSTANCE) == ["a"]
        # different names never conflict
        await asyncio.wait_for(lm.acquire(4, LEVEL_INSTANCE, ["b"]), 1)

    run(scenario())


def test_all_set_conflicts_with_members_and_future_members() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_NODE, ALL_SET, shared=True)
        assert lm.owned(1, LEVEL_NODE) is ALL_SET
        # another shared reader of one node is fine
        await asyncio.wait_for(lm.acquire(2, LEVEL_NODE, ["n1"], shared=True), 1)
        # an exclusive lock on any node -- even one nobody named -- must wait
        writer = await _blocked(lm.acquire(3, LEVEL_NODE, ["n-new"]))
        lm.release_all(1)
        await asyncio.wait_for(writer, 1)
        # exclusive ALL_SET waits for the member holders
        everything = await _blocked(lm.acquire(4, LEVEL_NODE, ALL_SET))
        lm.release_all(2)
        await asyncio.sleep(0.01)
        assert not everything.done()
        lm.release_all(3)
        await asyncio.wait_for(everything, 1)

    run(scenario())


def test_fifo_fairness_prevents_writer_starvation() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_INSTANCE, ["a"], shared=True)
        writer = await _blocked(lm.acquire(2, LEVEL_INSTANCE, ["a"]))
        late_reader = await _blocked(lm.acquire(3, LEVEL_INSTANCE, ["a"], shared=True))
        lm.release_all(1)
        await asyncio.wait_for(writer, 1)
        await asyncio.sleep(0.01)
        assert not late_reader.done()
        lm.release_all(2)
        await asyncio.wait_for(late_reader, 1)

    run(scenario())


def test_level_order_is_enforced() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_NODE, ["n1"])
        with pytest.raises(errors.LockError, match="order"):
            await lm.acquire(1, LEVEL_INSTANCE, ["a"])
        # re-requesting what is held is a no-op, upgrading is refused
        await lm.acquire(1, LEVEL_NODE, ["n1"], shared=True)
        await lm.acquire(5, LEVEL_CLUSTER, ["BGL"], shared=True)
        with pytest.raises(errors.LockError, match="upgrade"):
            await lm.acquire(5, LEVEL_CLUSTER, ["BGL"])

    run(scenario())


def test_abort_waiting_raises_in_the_waiter_and_frees_the_queue() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_INSTANCE, ["a"])
        victim = await _blocked(lm.acquire(2, LEVEL_INSTANCE, ["a"]))
        behind = await _blocked(lm.acquire(3, LEVEL_INSTANCE, ["a"], shared=True))
        assert lm.abort_waiting(2, errors.JobCanceled("stop"))
        with pytest.raises(errors.JobCanceled):
            await victim
        lm.release_all(2)
        assert not lm.abort_waiting(2, errors.JobCanceled("again"))
        lm.release_all(1)
        await asyncio.wait_for(behind, 1)
        assert lm.info() == [
            ("instance/*", {"3": "IS"}, []),
            ("instance/a", {"3": "S"}, []),
        ]

    run(scenario())


def test_task_cancellation_while_waiting_cleans_up() -> None:
    async def scenario() -> None:
        lm = LockManager()
        await lm.acquire(1, LEVEL_INSTANCE, ["a"])
        victim = await _blocked(lm.acquire(2, LEVEL_INSTANCE, ["a"]))
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        lm.release_all(2)
        lm.release_all(1)
        assert lm.info() == []

    run(scenario())


def test_many_random_jobs_never_deadlock() -> None:
    """Random overlapping lock sets over several levels all complete."""

    async def job(lm: LockManager, owner: int, rng: random.Random, active: dict[str, int]) -> None:
        instances = rng.sample(["i1", "i2", "i3", "i4"], rng.randint(1, 3))
        nodes = rng.sample(["n1", "n2", "n3"], rng.randint(1, 2))
        shared = rng.random() < 0.4
        await lm.acquire(owner, LEVEL_CLUSTER, ["BGL"], shared=True)
        await lm.acquire(owner, LEVEL_INSTANCE, instances, shared=shared)
        if rng.random() < 0.2:
            await lm.acquire(owner, LEVEL_NODE, ALL_SET, shared=True)
        else:
            await lm.acquire(owner, LEVEL_NODE, nodes)
        if not shared:  # check mutual exclusion while holding
            for name in instances:
                assert active.get(name, 0) == 0
                active[name] = owner
        await asyncio.sleep(rng.random() * 0.002)
        if not shared:
            for name in instances:
                del active[name]
        lm.release_all(owner)

    async def scenario() -> None:
        lm = LockManager()
        rng = random.Random(42)
        active: dict[str, int] = {}
        await asyncio.wait_for(
            asyncio.gather(*(job(lm, owner, rng, active) for owner in range(200))), 20
        )
        assert lm.info() == []

    run(scenario())
