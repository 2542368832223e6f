"""The LU contract pieces: LUContext, LogicalUnit helpers, registry, query machinery."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from corral import errors, opcodes
from corral.cmdlib import registry
from corral.cmdlib.base import (
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LOCKS_APPEND,
    LOCKS_REPLACE,
    LUContext,
    MasterContext,
    NoHooksLU,
    result_with_jobs,
)
from corral.cmdlib.query_base import (
    NODATA,
    OFFLINE,
    QFT_NUMBER,
    QFT_TEXT,
    RS_NODATA,
    RS_NORMAL,
    RS_OFFLINE,
    RS_UNKNOWN,
    Field,
    TableQueryResource,
    check_filter,
    evaluate_filter,
    requested_names,
)
from corral.config import FileConfigStore
from corral.paths import Paths
from tests.jobs.fakes import FakeRpc, make_instance, sample_config


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def cfg(tmp_path: Any) -> FileConfigStore:
    data = sample_config()
    data.instances["i1"] = make_instance("inst1.example.com", "i1", "n1", "n2")
    data.instances["i2"] = make_instance("inst2.example.com", "i2", "n3")
    data.nodes["n3"].offline = True
    return FileConfigStore.create(str(tmp_path / "config.data"), data)


def make_ctx(cfg: FileConfigStore, tmp_path: Any, **kw: Any) -> tuple[LUContext, list[str]]:
    lines: list[str] = []
    ctx = LUContext(
        cfg=cfg,
        rpc=FakeRpc(),  # type: ignore[arg-type]
        paths=Paths.under(tmp_path),
        job_id=7,
        feedback_fn=lines.append,
        **kw,
    )
    return ctx, lines


# --- LUContext ----------------------------------------------------------------------------


def test_feedback_levels(cfg: FileConfigStore, tmp_path: Any) -> None:
    ctx, lines = make_ctx(cfg, tmp_path)
    ctx.feedback("* creating instance disks...")
    ctx.log_info("Waiting for instance inst1 to sync disks")
    ctx.log_warning("disk 0 is degraded")
    assert lines == [
        "* creating instance disks...",
        " - INFO: Waiting for instance inst1 to sync disks",
        " - WARNING: disk 0 is degraded",
    ]


def test_cancellation_and_sleep(cfg: FileConfigStore, tmp_path: Any) -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        ctx, _ = make_ctx(cfg, tmp_path, cancel_event=event)
        ctx.check_canceled()
        await ctx.sleep(0.01)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, event.set)
        started = loop.time()
        with pytest.raises(errors.JobCanceled, match="Job canceled by request"):
            await ctx.sleep(10)
        assert loop.time() - started < 2
        assert ctx.cancel_requested
        with pytest.raises(errors.JobCanceled):
            ctx.check_canceled()

    run(scenario())


def test_node_targets(cfg: FileConfigStore, tmp_path: Any) -> None:
    ctx, _ = make_ctx(cfg, tmp_path)
    target = ctx.node_target("n1")
    assert (target.name, target.ip, target.offline) == ("node1.example.com", "192.0.2.1", False)
    assert ctx.node_target("node3.example.com").offline is True
    assert [t.name for t in ctx.node_targets(["n2", "n1"])] == [
        "node2.example.com",
        "node1.example.com",
    ]
    with pytest.raises(errors.OpPrereqError, match="Node 'nx' not known"):
        ctx.node_target("nx")


def test_rollbacks_run_newest_first_and_survive_failures(
    cfg: FileConfigStore, tmp_path: Any
) -> None:
    ctx, lines = make_ctx(cfg, tmp_path)
    done: list[str] = []

    async def undo_async() -> None:
        done.append("async")

    def broken() -> None:
        raise RuntimeError("disk busy")

    ctx.on_rollback(lambda: done.append("first"))
    ctx.on_rollback(undo_async)
    ctx.on_rollback(broken)
    run(ctx.run_rollbacks())
    assert done == ["async", "first"]
    assert lines == [" - WARNING: Rollback step failed: disk busy"]
    assert ctx.rollbacks == []


def test_submit_jobs_needs_a_submitter(cfg: FileConfigStore, tmp_path: Any) -> None:
    ctx, _ = make_ctx(cfg, tmp_path)
    with pytest.raises(errors.ProgrammerError):
        run(ctx.submit_jobs([[opcodes.OpTestDelay()]]))
    submitted: list[Any] = []

    async def submit(jobs: list[list[opcodes.OpCode]]) -> list[int]:
        submitted.extend(jobs)
        return [10 + i for i in range(len(jobs))]

    ctx2, _ = make_ctx(cfg, tmp_path, submit_fn=submit)
    ids = run(ctx2.submit_jobs([[opcodes.OpTestDelay()], [opcodes.OpTestDelay()]]))
    assert ids == [10, 11] and len(submitted) == 2
    assert result_with_jobs(ids) == {"jobs": [[True, 10], [True, 11]]}


# --- LogicalUnit helpers ----------------------------------------------------------------------


class LUNodes(NoHooksLU):
    def expand_names(self) -> None:
        assert isinstance(self.op, opcodes.OpInstanceStartup)
        self.expand_and_lock_instance(self.op.instance_name, shared=True)
        self.needed_locks[LEVEL_NODE] = ["n3"]
        self.recalculate_locks[LEVEL_NODE] = LOCKS_APPEND

    def declare_locks(self, level: int) -> None:
        if level == LEVEL_NODE:
            self.lock_instances_nodes()


def test_expand_and_lock_instance_and_its_nodes(cfg: FileConfigStore, tmp_path: Any) -> None:
    owned = {LEVEL_INSTANCE: ["i1"]}
    ctx, _ = make_ctx(cfg, tmp_path, owned_locks_fn=lambda level: owned.get(level, []))
    lu = LUNodes(opcodes.OpInstanceStartup(instance_name="inst1"), ctx)
    lu.expand_names()
    assert lu.needed_locks[LEVEL_INSTANCE] == ["i1"]
    assert lu.share_locks[LEVEL_INSTANCE] is True
    lu.declare_locks(LEVEL_NODE)
    assert lu.needed_locks[LEVEL_NODE] == ["n1", "n2", "n3"]  # appended, sorted
    assert LEVEL_NODE not in lu.recalculate_locks
    # replace mode, primary only
    lu.needed_locks[LEVEL_NODE] = ["n3"]
    lu.recalculate_locks[LEVEL_NODE] = LOCKS_REPLACE
    lu.lock_instances_nodes(primary_only=True)
    assert lu.needed_locks[LEVEL_NODE] == ["n1"]
    with pytest.raises(errors.ProgrammerError):
        lu.lock_instances_nodes()
    with pytest.raises(errors.OpPrereqError, match="Instance 'zz' not known"):
        LUNodes(opcodes.OpInstanceStartup(instance_name="zz"), ctx).expand_names()


# --- registry -----------------------------------------------------------------------------------


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "LU_REGISTRY", {})
    registry.lu_for(opcodes.OpInstanceStartup)(LUNodes)
    registry.lu_for(opcodes.OpInstanceStartup)(LUNodes)  # same class: fine
    assert registry.lu_class(opcodes.OpInstanceStartup(instance_name="x")) is LUNodes

    class Other(NoHooksLU):
        pass

    with pytest.raises(errors.ProgrammerError, match="already served"):
        registry.lu_for(opcodes.OpInstanceStartup)(Other)
    with pytest.raises(errors.OpCodeUnknown, match="OP_TEST_DELAY"):
        registry.lu_class(opcodes.OpTestDelay())


def test_load_all_registers_the_test_delay_lu() -> None:
    registry.load_all()
    registry.load_all()
    from corral.cmdlib.debug import LUTestDelay

    assert registry.lu_class(opcodes.OpTestDelay()) is LUTestDelay


# --- query machinery ------------------------------------------------------------------------------


class NodeResource(TableQueryResource):
    NAME = "testnode"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field(name="name", title="Node", kind=QFT_TEXT, doc="Name", getter=lambda n, _l: n.name),
        Field(
            name="mfree",
            title="MFree",
            kind=QFT_NUMBER,
            doc="Free memory",
            live=True,
            getter=lambda n, live: OFFLINE if n.offline else live.get(n.uuid, NODATA),
        ),
    )

    def __init__(self) -> None:
        self.live_calls = 0

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[Any]:
        if names is None:
            return ctx.cfg.all_nodes()
        return [ctx.cfg.nodes[ctx.cfg.expand_node_name(n)[0]] for n in names]

    async def live_data(self, ctx: MasterContext, items: list[Any]) -> Any:
        self.live_calls += 1
        return {"n1": 1024}


def test_table_resource_query(cfg: FileConfigStore, tmp_path: Any) -> None:
    ctx = MasterContext(cfg=cfg, rpc=FakeRpc(), paths=Paths.under(tmp_path))  # type: ignore[arg-type]
    res = NodeResource()
    reply = run(res.query(ctx, ["name", "mfree", "nope"]))
    assert [f["kind"] for f in reply["fields"]] == ["text", "number", "unknown"]
    assert reply["data"] == [
        [(RS_NORMAL, "node1.example.com"), (RS_NORMAL, 1024), (RS_UNKNOWN, None)],
        [(RS_NORMAL, "node2.example.com"), (RS_NODATA, None), (RS_UNKNOWN, None)],
        [(RS_NORMAL, "node3.example.com"), (RS_OFFLINE, None), (RS_UNKNOWN, None)],
    ]
    # no live field -> no RPC round
    res.live_calls = 0
    reply = run(res.query(ctx, ["name"], ["|", ["=", "name", "node2"]]))
    assert res.live_calls == 0
    assert reply["data"] == [[(RS_NORMAL, "node2.example.com")]]
    # filter on a field that is not shown
    reply = run(res.query(ctx, ["name"], [">", "mfree", 100]))
    assert reply["data"] == [[(RS_NORMAL, "node1.example.com")]]
    with pytest.raises(errors.OpPrereqError, match="Unknown field 'zz' in filter"):
        run(res.query(ctx, ["name"], ["=", "zz", 1]))
    assert [f["name"] for f in res.query_fields()["fields"]] == ["mfree", "name"]
    assert res.query_fields(["x"])["fields"][0]["kind"] == "unknown"


def test_filters() -> None:
    row = {"name": "inst1.example.com", "tags": ["web", "db"], "vcpus": 3, "up": False, "ip": None}
    assert evaluate_filter(["=~", "name", "^inst"], row)
    assert evaluate_filter(["=[]", "tags", "db"], row)
    assert evaluate_filter(["&", [">=", "vcpus", 3], ["!", ["?", "up"]]], row)
    assert evaluate_filter(["|", ["==", "vcpus", 6], ["<", "vcpus", 4]], row)
    assert not evaluate_filter(["<", "name", 3], row)  # incomparable -> False
    assert not evaluate_filter(["=", "ip", "1.2.3.4"], row)
    assert evaluate_filter(["!=", "ip", "1.2.3.4"], row)
    assert requested_names(["|", ["=", "name", "a"], ["=", "name", "b"]], "name") == ["a", "b"]
    assert requested_names(["=", "name", "a"], "name") == ["a"]
    assert requested_names(["|", ["=", "name", "a"], ["=", "os", "b"]], "name") is None
    for bad in ([], ["~", "a", 1], ["!", 1, 2], ["=", 1, 2], ["=~", "name", "("]):
        with pytest.raises(errors.OpPrereqError):
            check_filter(bad)
