"""The lock manager: Ganeti's lock levels, shared/exclusive, asyncio, deadlock-free.

Levels and lock names are those of `corral.cmdlib.base` (cluster/BGL >
instance > node group > node > node resources > network; names are UUIDs).
Names are not registered in advance: a lock exists while someone holds or
waits for it.

``ALL_SET`` at a level is implemented with multi-granularity locking: every
level has a level lock ``"*"``. Locking named members takes the level lock in
an *intention* mode first (IS for shared, IX for exclusive), then each name;
locking ALL_SET takes the level lock itself in S or X. The compatibility of
IS/IX/S/X makes "all nodes, shared" conflict with "node A, exclusive" without
listing the nodes, and it covers nodes added later.

Deadlock freedom: an owner (a job) acquires in one global order -- level by
level, the level lock before the names, names sorted -- and holds locks until
its opcode ends. Waiters are granted strictly first-come first-served per
lock, so a stream of shared requests cannot starve an exclusive one. A waiter
only waits for holders (which wait, if at all, for a later lock in the order)
or earlier waiters of the same lock, so no wait cycle can form.

A wait can be aborted from outside (`abort_waiting`, used to cancel a job that
is waiting for locks): the waiting `acquire` raises the given exception.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Final

from corral.cmdlib.base import ALL_SET, LEVEL_NAMES, LEVELS, AllSet, LockNames
from corral.errors import LockError, ProgrammerError

MODE_IS: Final = "IS"
MODE_IX: Final = "IX"
MODE_S: Final = "S"
MODE_X: Final = "X"
_COMPATIBLE: Final[dict[str, frozenset[str]]] = {
    MODE_IS: frozenset({MODE_IS, MODE_IX, MODE_S}),
    MODE_IX: frozenset({MODE_IS, MODE_IX}),
    MODE_S: frozenset({MODE_IS, MODE_S}),
    MODE_X: frozenset(),
}
# a held mode already covers a request for these modes
_COVERS: Final[dict[str, frozenset[str]]] = {
    MODE_IS: frozenset({MODE_IS}),
    MODE_IX: frozenset({MODE_IS, MODE_IX}),
    MODE_S: frozenset({MODE_IS, MODE_S}),
    MODE_X: frozenset({MODE_IS, MODE_IX, MODE_S, MODE_X}),
}
LEVEL_LOCK: Final = "*"

Owner = Hashable
Key = tuple[int, str]


class _Waiter:
    __slots__ = ("future", "mode", "owner")

    def __init__(self, owner: Owner, mode: str, future: asyncio.Future[None]) -> None:
        self.owner = owner
        self.mode = mode
        self.future = future


class _Lock:
    __slots__ = ("holders", "waiters")

    def __init__(self) -> None:
        self.holders: dict[Owner, str] = {}
        self.waiters: deque[_Waiter] = deque()

    def compatible(self, mode: str, owner: Owner) -> bool:
        return all(held in _COMPATIBLE[mode] for who, held in self.holders.items() if who != owner)


class LockManager:
    def __init__(self) -> None:
        self._locks: dict[Key, _Lock] = {}
        self._owned: dict[Owner, dict[Key, str]] = {}
        self._waiting: dict[Owner, tuple[Key, _Waiter]] = {}

    # -- acquiring ---------------------------------------------------------------
    async def acquire(
        self,
        owner: Owner,
        level: int,
        names: LockNames,
        *,
        shared: bool = False,
        on_wait: Callable[[], None] | None = None,
        abort_check: Callable[[], None] | None = None,
    ) -> None:
        """Acquire `names` (or ALL_SET) at `level` for `owner`.

        `on_wait` is called once if the owner has to wait; `abort_check` is
        called before every wait and may raise to give up (a canceled job
        must not start waiting for its next lock). Levels must be
        acquired in increasing order (LockError otherwise); on any exception
        (including cancellation) the locks this call obtained stay recorded as
        owned, so the caller's `release_all` cleans everything up.
        """
        if level not in LEVEL_NAMES:
            raise ProgrammerError(f"Unknown lock level {level}")
        owned = self._owned.get(owner, {})
        if any(key[0] > level for key in owned):
            raise LockError(
                f"Lock order violation: {LEVEL_NAMES[level]} requested after a later level"
            )
        plan: list[tuple[Key, str]]
        if isinstance(names, AllSet):
            plan = [((level, LEVEL_LOCK), MODE_S if shared else MODE_X)]
        else:
            wanted = sorted(set(names))
            if LEVEL_LOCK in wanted:
                raise ProgrammerError(f"'{LEVEL_LOCK}' is not a valid lock name")
            if not wanted:
                return
            plan = [((level, LEVEL_LOCK), MODE_IS if shared else MODE_IX)]
            plan += [((level, name), MODE_S if shared else MODE_X) for name in wanted]
        waited = False
        for key, mode in plan:
            granted = self._try_grant(owner, key, mode)
            if granted:
                continue
            if abort_check is not None:
                abort_check()
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            await self._wait(owner, key, mode)

    def _try_grant(self, owner: Owner, key: Key, mode: str) -> bool:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _Lock()
        held = lock.holders.get(owner)
        if held is not None:
            if mode in _COVERS[held]:
                return True
            raise LockError(
                f"Cannot upgrade lock {LEVEL_NAMES[key[0]]}/{key[1]} from {held} to {mode}"
            )
        if not lock.waiters and lock.compatible(mode, owner):
            self._grant(lock, owner, key, mode)
            return True
        return False

    def _grant(self, lock: _Lock, owner: Owner, key: Key, mode: str) -> None:
        lock.holders[owner] = mode
        self._owned.setdefault(owner, {})[key] = mode

    async def _wait(self, owner: Owner, key: Key, mode: str) -> None:
        lock = self._locks[key]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(owner, mode, future)
        lock.waiters.append(waiter)
        self._waiting[owner] = (key, waiter)
        try:
            await future
        except BaseException:
            if waiter in lock.waiters:
                lock.waiters.remove(waiter)
                self._wake(key)
            raise
        finally:
            if self._waiting.get(owner, (None, None))[1] is waiter:
                del self._waiting[owner]

    def _wake(self, key: Key) -> None:
        """Grant queued requests from the head while they are compatible."""
        lock = self._locks.get(key)
        if lock is None:
            return
        while lock.waiters:
            waiter = lock.waiters[0]
            if waiter.future.done():  # aborted meanwhile
                lock.waiters.popleft()
                continue
            if not lock.compatible(waiter.mode, waiter.owner):
                break
            lock.waiters.popleft()
            self._grant(lock, waiter.owner, key, waiter.mode)
            waiter.future.set_result(None)
        if not lock.holders and not lock.waiters:
            del self._locks[key]

    # -- releasing ---------------------------------------------------------------
    def release(self, owner: Owner, level: int, names: list[str] | None = None) -> None:
        """Release `names` (None: everything, level lock included) at `level`."""
        owned = self._owned.get(owner, {})
        keys = [k for k in owned if k[0] == level and (names is None or k[1] in names)]
        for key in keys:
            self._release_key(owner, key)

    def release_all(self, owner: Owner) -> None:
        for key in list(self._owned.get(owner, {})):
            self._release_key(owner, key)
        self._owned.pop(owner, None)

    def _release_key(self, owner: Owner, key: Key) -> None:
        owned = self._owned.get(owner)
        if owned is not None:
            owned.pop(key, None)
            if not owned:
                del self._owned[owner]
        lock = self._locks.get(key)
        if lock is not None and lock.holders.pop(owner, None) is not None:
            self._wake(key)

    def abort_waiting(self, owner: Owner, exc: BaseException) -> bool:
        """Make the pending `acquire` of `owner` raise `exc`; False if not waiting."""
        entry = self._waiting.pop(owner, None)
        if entry is None:
            return False
        key, waiter = entry
        lock = self._locks.get(key)
        if lock is not None and waiter in lock.waiters:
            lock.waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.set_exception(exc)
        self._wake(key)
        return True

    # -- inspection --------------------------------------------------------------
    def owned(self, owner: Owner, level: int) -> list[str] | AllSet:
        """Names `owner` holds at `level`; ALL_SET if it holds the level lock S/X."""
        owned = self._owned.get(owner, {})
        mode = owned.get((level, LEVEL_LOCK))
        if mode in (MODE_S, MODE_X):
            return ALL_SET
        return sorted(k[1] for k in owned if k[0] == level and k[1] != LEVEL_LOCK)

    def is_waiting(self, owner: Owner) -> bool:
        return owner in self._waiting

    def info(self) -> list[tuple[str, dict[str, str], list[str]]]:
        """(``level/name``, {owner: mode}, [pending owner:mode]) per lock, for debugging."""
        out = []
        for (level, name), lock in sorted(self._locks.items()):
            out.append(
                (
                    f"{LEVEL_NAMES[level]}/{name}",
                    {str(o): m for o, m in lock.holders.items()},
                    [f"{w.owner}:{w.mode}" for w in lock.waiters],
                )
            )
        return out


__all__ = [
    "ALL_SET",
    "LEVELS",
    "LEVEL_LOCK",
    "MODE_IS",
    "MODE_IX",
    "MODE_S",
    "MODE_X",
    "LockManager",
]
