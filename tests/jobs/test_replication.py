"""Config and job queue replication over (fake) node RPC."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from corral.config import FileConfigStore
from corral.jobs.model import QueuedJob
from corral.jobs.replication import RpcConfigDistributor, RpcQueueReplicator
from tests.jobs.fakes import FakeRpc, make_instance, sample_config


def test_config_distributor_maps_results_to_node_uuids(tmp_path: Any) -> None:
    rpc = FakeRpc()
    rpc.unreachable.add("node3.example.com")
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), sample_config())
    cfg.set_distributor(RpcConfigDistributor(rpc))  # type: ignore[arg-type]

    async def scenario() -> None:
        await cfg.add_instance(make_instance("a.example.com", "ia"))
        await cfg.flush()

    asyncio.run(scenario())
    calls = rpc.calls_of("upload_config")
    assert sorted(node for node, _ in calls) == ["node2.example.com", "node3.example.com"]
    config_json, serial = calls[0][1]
    assert serial == cfg.serial_no
    assert "ia" in msgspec.json.decode(config_json)["instances"]
    assert list(cfg.stale_candidates()) == ["n3"]
    assert cfg.stale_candidates()["n3"].startswith("Node is unreachable")


def test_queue_replicator_coalesces_and_targets_online_candidates(tmp_path: Any) -> None:
    rpc = FakeRpc()
    rpc.delay = 0.01
    data = sample_config()
    data.nodes["n3"].offline = True
    data.nodes["n3"].master_candidate = False
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), data)
    rep = RpcQueueReplicator(rpc, cfg)  # type: ignore[arg-type]

    async def scenario() -> None:
        job = QueuedJob.new(5, [])
        for index in range(20):
            job.log_serial = index
            rep.job_updated(5, job.encode())
            await asyncio.sleep(0)
        await rep.flush()

    asyncio.run(scenario())
    calls = rpc.calls_of("jobqueue_update")
    assert {node for node, _ in calls} == {"node2.example.com"}
    assert len(calls) < 20  # coalesced while a push was in flight
    job_id, content = calls[-1][1]
    assert job_id == 5
    assert QueuedJob.decode(content).log_serial == 19  # the latest state won


def test_queue_replicator_without_loop_is_harmless(tmp_path: Any) -> None:
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), sample_config())
    rep = RpcQueueReplicator(FakeRpc(), cfg)  # type: ignore[arg-type]
    rep.job_updated(1, b"{}")  # no running loop: dropped, no exception


def test_new_candidate_gets_the_whole_queue_then_newer_updates(tmp_path: Any) -> None:
    rpc = FakeRpc()
    rpc.delay = 0.005
    data = sample_config()
    data.nodes["n3"].master_candidate = False
    cfg = FileConfigStore.create(str(tmp_path / "config.data"), data)
    rep = RpcQueueReplicator(rpc, cfg)  # type: ignore[arg-type]
    jobs = {1: QueuedJob.new(1, []), 2: QueuedJob.new(2, [])}
    rep.watch_candidates(lambda: [(jid, job.encode()) for jid, job in sorted(jobs.items())])

    async def scenario() -> None:
        node3 = cfg.get_node("n3")
        assert node3 is not None
        promoted = node3.copy()
        promoted.master_candidate = True
        await cfg.update_node(promoted)  # n3 becomes a candidate: full copy
        jobs[2].log_serial = 7  # the job moves on while the copy is running
        rep.job_updated(2, jobs[2].encode())
        await rep.flush()

    asyncio.run(scenario())
    to_node3 = [
        args for node, args in rpc.calls_of("jobqueue_update") if node == "node3.example.com"
    ]
    assert sorted({job_id for job_id, _ in to_node3}) == [1, 2]
    last_of_2 = [content for job_id, content in to_node3 if job_id == 2][-1]
    assert QueuedJob.decode(last_of_2).log_serial == 7  # never overwritten by a stale copy


def test_job_queries_redact_secrets() -> None:
    from corral import opcodes

    job = QueuedJob.new(
        9,
        [
            opcodes.OpNodeAdd(node_name="node4", join_token="s3cret"),
            opcodes.OpInstanceCreate(
                instance_name="i", disk_template="diskless", osparams_private={"pw": "x"}
            ),
        ],
    )
    shown = job.info(["ops"])[0]
    assert shown[0]["join_token"] == "<redacted>"
    assert shown[1]["osparams_private"] == {"pw": "<redacted>"}
    assert "s3cret" not in str(shown)
    # the stored job (replicated to candidates, rerun after a failover) keeps them
    assert QueuedJob.decode(job.encode()).ops[0].input["join_token"] == "s3cret"
