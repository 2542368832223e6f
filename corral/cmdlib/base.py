"""Logical units: the contract between the executor and every operation.

An opcode class maps to one `LogicalUnit` subclass (``@lu_for(OpXxx)`` in
`corral.cmdlib.registry`). For each opcode of a job the executor
(`corral.jobs.executor`) drives a fresh LU through Ganeti's life cycle::

    lu = LUClass(op, ctx)
    lu.check_arguments()            syntax only, no cluster access
    lu.expand_names()               canonicalise names, fill needed_locks/share_locks
    for level in LEVELS:            cluster(BGL) > instance > nodegroup > node
        lu.declare_locks(level)       > node-res > network
        <acquire needed_locks[level]>     (job status "waiting" while blocked)
    await lu.check_prereq()         against the config; must not change anything;
                                    raise OpPrereqError
    <pre hooks>                     RPC run_hooks on build_hooks_nodes()[0];
                                    a failing script aborts (HooksAbort)
    if op.dry_run: result = lu.dry_run_result (stop)
    result = await lu.exec()        do the work; raise OpExecError; register undo
                                    steps with ctx.on_rollback(...) as you go
    <post hooks>                    on build_hooks_nodes()[1]; failures are warnings
    <release locks, release config reservations of the job>

If ``exec`` raises, the executor runs the registered rollback callbacks in
reverse order (each failure is only logged as a warning), then the opcode and
the job end in status "error" with ``errors.encode_exception(err)`` as result.
So an LU that creates A then B registers "remove A" right after A exists, and
a failure while creating B leaves no half-made state.

Locks are names per level: instances, node groups, nodes and networks are
locked by **UUID**; the cluster level has the single lock `BGL`. ``REQ_BGL =
True`` (Ganeti's default) takes the BGL exclusively, else it is shared.
``needed_locks[level] = ALL_SET`` locks every name of the level, including
names added later. ``share_locks[level] = True`` takes that level shared.
Locks are always acquired in level order and sorted within a level, which makes
deadlocks impossible; they are held until the opcode ends.

The LU talks to the world only through `LUContext` (``self.ctx``): the config
store, the node RPC runner, the job log, cancellation checks, follow-up jobs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from corral import opcodes
from corral.config.store import ConfigStore
from corral.errors import ECODE_NOENT, JobCanceled, OpPrereqError, ProgrammerError
from corral.paths import Paths

if TYPE_CHECKING:
    from corral.rpc.client import NodeTarget, RpcRunner

# --- lock levels (Ganeti's order; lower number = acquired first) -------------
LEVEL_CLUSTER: Final = 0
LEVEL_INSTANCE: Final = 1
LEVEL_NODEGROUP: Final = 2
LEVEL_NODE: Final = 3
LEVEL_NODE_RES: Final = 4
LEVEL_NETWORK: Final = 5
LEVELS: Final = (
    LEVEL_CLUSTER,
    LEVEL_INSTANCE,
    LEVEL_NODEGROUP,
    LEVEL_NODE,
    LEVEL_NODE_RES,
    LEVEL_NETWORK,
)
LEVEL_NAMES: Final[dict[int, str]] = {
    LEVEL_CLUSTER: "cluster",
    LEVEL_INSTANCE: "instance",
    LEVEL_NODEGROUP: "nodegroup",
    LEVEL_NODE: "node",
    LEVEL_NODE_RES: "node-res",
    LEVEL_NETWORK: "network",
}
BGL: Final = "BGL"

# recalculate_locks modes (Ganeti's constants.LOCKS_REPLACE / LOCKS_APPEND)
LOCKS_REPLACE: Final = "replace"
LOCKS_APPEND: Final = "append"


class AllSet:
    """Marker type of `ALL_SET`: every lock of a level, present and future."""

    _instance: AllSet | None = None

    def __new__(cls) -> AllSet:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_SET"


ALL_SET: Final = AllSet()

LockNames = list[str] | AllSet

# Hook types (GANETI_OBJECT_TYPE) and phases
HTYPE_CLUSTER: Final = "CLUSTER"
HTYPE_NODE: Final = "NODE"
HTYPE_GROUP: Final = "GROUP"
HTYPE_INSTANCE: Final = "INSTANCE"
HTYPE_NETWORK: Final = "NETWORK"
HOOKS_PHASE_PRE: Final = "pre"
HOOKS_PHASE_POST: Final = "post"

RollbackFn = Callable[[], Awaitable[None] | None]
SubmitFn = Callable[[list[list[opcodes.OpCode]]], Awaitable[list[int]]]


class MasterContext:
    """What master-side code outside a job (queries) may use: config, RPC, paths."""

    def __init__(self, *, cfg: ConfigStore, rpc: RpcRunner, paths: Paths) -> None:
        self.cfg = cfg
        self.rpc = rpc
        self.paths = paths

    def node_target(self, node: str) -> NodeTarget:
        """RPC target for a node UUID (or name), from the current config."""
        from corral.rpc.client import NodeTarget

        obj = self.cfg.get_node(node) or self.cfg.get_node_by_name(node)
        if obj is None:
            raise OpPrereqError(f"Node '{node}' not known", ECODE_NOENT)
        return NodeTarget(name=obj.name, ip=obj.primary_ip, offline=obj.offline)

    def node_targets(self, nodes: Sequence[str]) -> list[NodeTarget]:
        return [self.node_target(n) for n in nodes]


class LUContext(MasterContext):
    """What one opcode's LU may use; built by the executor for every opcode.

    * ``cfg``: the `ConfigStore`; ``rpc``: the node `RpcRunner`; ``paths``.
    * ``job_id`` (also the key of config reservations) and ``op_index``.
    * ``feedback(msg)``: one job log line as given (the CLI prints it after a
      timestamp, e.g. ``"* creating instance disks..."``);
      ``log_info(msg)`` -> ``" - INFO: msg"``, ``log_warning(msg)`` ->
      ``" - WARNING: msg"`` (Ganeti's LogInfo/LogWarning).
    * ``check_canceled()`` raises `JobCanceled` once cancellation was requested;
      ``await sleep(s)`` is a sleep that ends early with `JobCanceled`.
    * ``node_target(uuid_or_name)`` -> rpc ``NodeTarget`` (primary IP, offline).
    * ``await submit_jobs([[op, ...], ...])`` -> new job ids (follow-up jobs,
      e.g. cluster verify; return them with `result_with_jobs`).
    * ``on_rollback(fn)``: register an undo step (sync or async, no arguments)
      run in reverse order if the opcode fails after this point.
    """

    def __init__(
        self,
        *,
        cfg: ConfigStore,
        rpc: RpcRunner,
        paths: Paths,
        job_id: int,
        op_index: int = 0,
        feedback_fn: Callable[[str], None] | None = None,
        submit_fn: SubmitFn | None = None,
        cancel_event: asyncio.Event | None = None,
        owned_locks_fn: Callable[[int], list[str]] | None = None,
    ) -> None:
        super().__init__(cfg=cfg, rpc=rpc, paths=paths)
        self.job_id = job_id
        self.op_index = op_index
        self._feedback_fn = feedback_fn
        self._submit_fn = submit_fn
        self._cancel_event = cancel_event if cancel_event is not None else asyncio.Event()
        self._owned_locks_fn = owned_locks_fn
        self.rollbacks: list[RollbackFn] = []

    # -- job log -----------------------------------------------------------
    def feedback(self, msg: str) -> None:
        if self._feedback_fn is not None:
            self._feedback_fn(msg)

    def log_info(self, msg: str) -> None:
        self.feedback(f" - INFO: {msg}")

    def log_warning(self, msg: str) -> None:
        self.feedback(f" - WARNING: {msg}")

    # -- cancellation ------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        return self._cancel_event.is_set()

    def check_canceled(self) -> None:
        if self._cancel_event.is_set():
            raise JobCanceled("Job canceled by request")

    async def sleep(self, seconds: float) -> None:
        """Sleep, but raise `JobCanceled` as soon as the job is canceled."""
        self.check_canceled()
        try:
            await asyncio.wait_for(self._cancel_event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return
        self.check_canceled()

    # -- locks, jobs, rollback ---------------------------------------------
    def owned_locks(self, level: int) -> list[str]:
        """Names held by this opcode at `level` (sorted)."""
        if self._owned_locks_fn is None:
            return []
        return self._owned_locks_fn(level)

    async def submit_jobs(self, jobs: list[list[opcodes.OpCode]]) -> list[int]:
        if self._submit_fn is None:
            raise ProgrammerError("This context cannot submit jobs")
        return await self._submit_fn(jobs)

    def on_rollback(self, fn: RollbackFn) -> None:
        self.rollbacks.append(fn)

    async def run_rollbacks(self) -> None:
        """Run registered undo steps newest first; failures become warnings."""
        while self.rollbacks:
            fn = self.rollbacks.pop()
            try:
                result = fn()
                if inspect.isawaitable(result):
                    await result
            except Exception as err:
                self.log_warning(f"Rollback step failed: {err}")


def result_with_jobs(job_ids: list[int], **extra: Any) -> dict[str, Any]:
    """Ganeti's ResultWithJobs as an opcode result: ``{"jobs": [[True, id], ...]}``."""
    result: dict[str, Any] = {"jobs": [[True, jid] for jid in job_ids]}
    result.update(extra)
    return result


class LogicalUnit:
    """Base of every LU; see the module docstring for the life cycle.

    Class attributes:
      HPATH   hooks directory stem (``"instance-add"`` -> hooks/instance-add-pre.d),
              None for no hooks.
      HTYPE   GANETI_OBJECT_TYPE of the hooks (HTYPE_*).
      REQ_BGL True: the Big Ganeti Lock exclusively; False: shared.

    Instance attributes the LU fills in `expand_names`/`declare_locks`:
      needed_locks       {level: [uuid, ...] | ALL_SET}
      share_locks        {level: bool}
      recalculate_locks  {level: LOCKS_REPLACE|LOCKS_APPEND} (see
                         `lock_instances_nodes`)
      dry_run_result     returned instead of running `exec` when op.dry_run
    """

    HPATH: ClassVar[str | None] = None
    HTYPE: ClassVar[str | None] = None
    REQ_BGL: ClassVar[bool] = True

    def __init__(self, op: opcodes.OpCode, ctx: LUContext) -> None:
        self.op = op
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.rpc = ctx.rpc
        self.needed_locks: dict[int, LockNames] = {}
        self.share_locks: dict[int, bool] = {}
        self.recalculate_locks: dict[int, str] = {}
        self.dry_run_result: Any = None

    # -- life cycle (override) ---------------------------------------------
    def check_arguments(self) -> None:
        """Syntactic checks of the opcode; no config or node access."""

    def expand_names(self) -> None:
        """Canonicalise names from the opcode and declare `needed_locks`."""

    def declare_locks(self, level: int) -> None:
        """Late lock computation for `level` (called right before acquiring it)."""

    async def check_prereq(self) -> None:
        """Check the cluster state under the locks; raise OpPrereqError; change nothing."""

    def build_hooks_env(self) -> dict[str, Any]:
        """Hook environment (keys without the GANETI_ prefix; the executor adds it)."""
        return {}

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        """Node UUIDs for (pre, post) hooks."""
        return [], []

    async def exec(self) -> Any:
        """Do the work and return the opcode result (JSON-able)."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------
    def feedback(self, msg: str) -> None:
        self.ctx.feedback(msg)

    def log_info(self, msg: str) -> None:
        self.ctx.log_info(msg)

    def log_warning(self, msg: str) -> None:
        self.ctx.log_warning(msg)

    def owned_locks(self, level: int) -> list[str]:
        return self.ctx.owned_locks(level)

    def expand_and_lock_instance(self, name: str, *, shared: bool = False) -> tuple[str, str]:
        """Resolve an instance name and lock it; returns (uuid, name)."""
        uuid, full = self.cfg.expand_instance_name(name)
        self.needed_locks[LEVEL_INSTANCE] = [uuid]
        if shared:
            self.share_locks[LEVEL_INSTANCE] = True
        return uuid, full

    def lock_instances_nodes(self, *, primary_only: bool = False, level: int = LEVEL_NODE) -> None:
        """Fill `needed_locks[level]` with the nodes of the locked instances.

        Call from `declare_locks(level)` after setting
        ``recalculate_locks[level] = LOCKS_REPLACE`` (or APPEND) in expand_names,
        like Ganeti's _LockInstancesNodes.
        """
        mode = self.recalculate_locks.get(level)
        if mode is None:
            raise ProgrammerError("lock_instances_nodes without recalculate_locks")
        wanted: list[str] = []
        for inst_uuid in self.owned_locks(LEVEL_INSTANCE):
            inst = self.cfg.get_instance(inst_uuid)
            if inst is None:
                continue
            nodes = [inst.primary_node] if primary_only else inst.all_nodes
            for node in nodes:
                if node not in wanted:
                    wanted.append(node)
        current = self.needed_locks.get(level)
        if mode == LOCKS_APPEND and isinstance(current, list):
            wanted = sorted(set(current) | set(wanted))
        self.needed_locks[level] = sorted(wanted)
        del self.recalculate_locks[level]


class NoHooksLU(LogicalUnit):
    """An LU without hooks (HPATH stays None)."""
