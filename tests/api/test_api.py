"""Local API: a real Master in-process (temp paths, fake RPC) and the sync client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.api import protocol as P
from corral.api.client import Client
from corral.config import save_config_file
from corral.daemons.masterd import Master
from corral.paths import Paths
from tests.jobs.fakes import FakeRpc, make_instance, sample_config


@asynccontextmanager
async def master(tmp_path: Any) -> AsyncIterator[tuple[Master, Paths, FakeRpc]]:
    paths = Paths.under(tmp_path)
    data = sample_config()
    data.instances["i1"] = make_instance("inst1.example.com", "i1", tags=["web"])
    save_config_file(paths.config_file, data)
    rpc = FakeRpc()
    m = Master(paths, rpc=rpc, node_name="node1.example.com", watcher_interval=None)  # type: ignore[arg-type]
    await m.start()
    try:
        yield m, paths, rpc
    finally:
        await m.stop(timeout=1)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_submit_wait_and_query_a_job(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):
            client = Client(paths.master_socket, timeout=10)
            ops = [opcodes.OpTestDelay(duration=0.05, repeat=2)]
            job_id = await in_thread(client.submit_job, ops)
            assert job_id == 1
            # follow the job as the CLI does
            prev_info: Any = None
            serial = 0
            lines: list[str] = []
            while True:
                change = await in_thread(
                    client.wait_for_job_change, job_id, ["status"], prev_info, serial, 5
                )
                if change == "nochange":
                    continue
                info, entries = change
                lines.extend(e[3] for e in entries)
                if entries:
                    serial = entries[-1][0]
                prev_info = info
                if info[0] in C.JOBS_FINALIZED:
                    break
            assert info == ["success"]
            assert lines == [
                " - INFO: Test delay iteration 0/1",
                " - INFO: Test delay iteration 1/1",
            ]
            rows = await in_thread(
                client.query_jobs, [job_id, 99], ["id", "status", "summary", "opresult"]
            )
            assert rows == [[1, "success", ["TEST_DELAY"], [None]], None]
            result = await in_thread(client.query, "job", ["id", "status", "bogus"], None)
            assert [f["name"] for f in result["fields"]] == ["id", "status", "bogus"]
            assert result["fields"][2]["kind"] == "unknown"
            assert result["data"] == [[[0, 1], [0, "success"], [1, None]]]
            fields = await in_thread(client.query_fields, "job", None)
            assert [f["name"] for f in fields["fields"]][:3] == ["archived", "end_ts", "id"]
            client.close()

    run(scenario())


def test_submit_many_and_filters(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (m, paths, _rpc):
            client = Client(paths.master_socket)
            results = await in_thread(
                client.submit_many_jobs,
                [[opcodes.OpTestDelay()], [opcodes.OpTestDelay(duration=-1)]],
            )
            assert results == [(True, 1), (True, 2)]
            assert m.executor is not None
            await m.executor.wait_idle()
            flt = ["=", "status", "error"]
            data = await in_thread(client.query, "job", ["id", "status"], flt)
            assert data["data"] == [[[0, 2], [0, "error"]]]
            by_id = await in_thread(client.query, "job", ["id"], ["|", ["=", "id", 1]])
            assert by_id["data"] == [[[0, 1]]]
            client.close()

    run(scenario())


def test_errors_cross_the_api_as_corral_errors(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):
            client = Client(paths.master_socket)
            with pytest.raises(errors.OpCodeUnknown):
                await in_thread(client.call, P.REQ_SUBMIT_JOB, [{"OP_ID": "OP_NOPE"}])
            with pytest.raises(errors.OpPrereqError, match="Invalid parameters"):
                await in_thread(
                    client.call, P.REQ_SUBMIT_JOB, [{"OP_ID": "OP_TEST_DELAY", "duration": "x"}]
                )
            with pytest.raises(errors.LocalApiError, match="Unknown method"):
                await in_thread(client.call, "Frobnicate")
            with pytest.raises(errors.OpPrereqError, match="Resource type 'x' unknown"):
                await in_thread(client.query, "x", ["name"], None)
            with pytest.raises(errors.JobLost, match="Job with id 42 lost"):
                await in_thread(client.wait_for_job_change, 42, ["status"], None, 0, 1)
            with pytest.raises(errors.OpPrereqError, match="Unknown filter operator"):
                await in_thread(client.query, "job", ["id"], ["~~", "id", 1])
            # the connection is still usable after errors
            assert await in_thread(client.query_config_values, ["cluster_name"]) == [
                "cluster.example.com"
            ]
            client.close()

    run(scenario())


def test_cluster_info_config_values_tags_drain(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):
            client = Client(paths.master_socket)
            info = await in_thread(client.query_cluster_info)
            assert info["name"] == "cluster.example.com"
            assert info["master"] == "node1.example.com"
            assert info["enabled_hypervisors"] == ["fake"]
            assert info["max_running_jobs"] == C.DEFAULT_MAX_RUNNING_JOBS
            values = await in_thread(client.query_config_values, ["master_node", "drain_flag"])
            assert values == ["node1.example.com", False]
            assert await in_thread(client.query_tags, "instance", "inst1") == ["web"]
            with pytest.raises(errors.OpPrereqError, match="Instance 'zz' not known"):
                await in_thread(client.query_tags, "instance", "zz")
            await in_thread(client.set_drain_flag, True)
            with pytest.raises(errors.JobQueueDrainError):
                await in_thread(client.submit_job, [opcodes.OpTestDelay()])
            rows = await in_thread(client.query, "cluster", ["name", "master_node"], None)
            assert rows["data"] == [[[0, "cluster.example.com"], [0, "node1.example.com"]]]
            client.close()

    run(scenario())


def test_cancel_and_archive_over_the_api(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (m, paths, _rpc):
            client = Client(paths.master_socket)
            jid = await in_thread(client.submit_job, [opcodes.OpTestDelay(duration=30)])
            await asyncio.sleep(0.05)
            ok, msg = await in_thread(client.cancel_job, jid)
            assert (ok, msg) == (True, f"Job {jid} will be canceled")
            assert m.executor is not None
            await m.executor.wait_idle()
            assert await in_thread(client.query_jobs, [jid], ["status"]) == [["canceled"]]
            assert await in_thread(client.archive_job, jid) is True
            assert await in_thread(client.query_jobs, None, ["id"]) == []
            client.close()

    run(scenario())


def test_many_concurrent_clients(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):

            def work() -> int:
                with Client(paths.master_socket) as client:
                    return client.submit_job([opcodes.OpTestDelay()])

            ids = await asyncio.gather(*(in_thread(work) for _ in range(10)))
            assert sorted(ids) == list(range(1, 11))

    run(scenario())


def test_no_master_and_bad_frames(tmp_path: Any) -> None:
    client = Client(str(tmp_path / "nothing"))
    with pytest.raises(errors.NoMasterError, match="Cannot communicate with the master"):
        client.query_cluster_info()

    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):

            def raw(payload: bytes) -> bytes:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(5)
                    sock.connect(paths.master_socket)
                    sock.sendall(payload)
                    data = b""
                    while not data.endswith(P.EOM):
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    return data

            reply = P.decode((await in_thread(raw, b"{nope" + P.EOM))[:-1])
            assert reply["success"] is False
            assert reply["result"][0] == "LocalApiError"

    run(scenario())


def test_restart_recovers_and_reruns_queued_jobs(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (m, paths, _rpc):
            assert m.queue is not None
            running = await in_thread(
                Client(paths.master_socket).submit_job, [opcodes.OpTestDelay(duration=30)]
            )
            await asyncio.sleep(0.05)
            # a job that never started (as if the master died right after the submit)
            queued = m.queue.create([opcodes.OpTestDelay()])
        # stop() gave the running job 1 s, then marked it
        async with master(tmp_path) as (m, paths, _rpc):
            assert m.executor is not None
            await m.executor.wait_idle()
            client = Client(paths.master_socket)
            rows = await in_thread(client.query_jobs, [running, queued.id], ["status", "opresult"])
            assert rows[0] == [
                "error",
                [["OpExecError", ["job was running when the master daemon stopped"]]],
            ]
            assert rows[1] == ["success", [None]]
            assert await in_thread(client.submit_job, [opcodes.OpTestDelay()]) == queued.id + 1
            client.close()

    run(scenario())


def test_bad_arguments_are_reported(tmp_path: Any) -> None:
    async def scenario() -> None:
        async with master(tmp_path) as (_m, paths, _rpc):
            client = Client(paths.master_socket)
            with pytest.raises(errors.LocalApiError, match="Invalid arguments for CancelJob"):
                await in_thread(client.call, P.REQ_CANCEL_JOB)
            client.close()

    run(scenario())


def test_master_replicates_and_imports_the_queue(tmp_path: Any) -> None:
    from corral.jobs.model import QueuedJob

    paths = Paths.under(tmp_path)
    qdir = tmp_path / "var/lib/corral/queue"
    qdir.mkdir(parents=True)
    old = QueuedJob.new(40, [opcodes.OpTestDelay()])
    old.ops[0].status = C.JOB_STATUS_SUCCESS
    (qdir / "job-40.json").write_bytes(old.encode())

    async def scenario() -> None:
        async with master(tmp_path) as (m, _paths, rpc):
            client = Client(paths.master_socket)
            assert await in_thread(client.query_jobs, [40], ["status"]) == [["success"]]
            jid = await in_thread(client.submit_job, [opcodes.OpTestDelay()])
            assert jid == 41
            assert m.executor is not None and m.cfg is not None
            await m.executor.wait_idle()
            await asyncio.sleep(0.05)
            pushed = {(node, args[0]) for node, args in rpc.calls_of("jobqueue_update")}
            assert ("node2.example.com", 41) in pushed
            assert ("node3.example.com", 41) in pushed
            client.close()

    run(scenario())
