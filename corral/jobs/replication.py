"""Best-effort replication of the config and the job queue to master candidates.

Both are pushed over node RPC in the background and never block or fail a job:
an unreachable candidate is logged (once per outage) and retried with the
next change. `RpcConfigDistributor` plugs into the config store
(`ConfigStore.set_distributor`); `RpcQueueReplicator` into the job queue. The
queue replicator coalesces: while a push is in flight, further changes of a
job only keep its latest content, so a chatty job log costs one push per round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral import objects
from corral.config.store import ConfigStore
from corral.rpc.client import NodeTarget, RpcRunner

log = logging.getLogger(__name__)


def _target(node: objects.Node) -> NodeTarget:
    return NodeTarget(name=node.name, ip=node.primary_ip, offline=node.offline)


class RpcConfigDistributor:
    """`ConfigDistributor` over the ``upload_config`` RPC."""

    def __init__(self, rpc: RpcRunner) -> None:
        self.rpc = rpc

    async def upload_config(
        self, nodes: list[objects.Node], config_json: str, serial: int
    ) -> dict[str, str | None]:
        results = await self.rpc.call_multi(
            "upload_config", [_target(n) for n in nodes], config_json, serial
        )
        out: dict[str, str | None] = {}
        for node in nodes:
            res = results.get(node.name)
            out[node.uuid] = "no answer" if res is None else res.fail_msg
        return out


class RpcQueueReplicator:
    """`QueueReplicator` over the ``jobqueue_update`` RPC to online master candidates."""

    def __init__(self, rpc: RpcRunner, cfg: ConfigStore) -> None:
        self.rpc = rpc
        self.cfg = cfg
        self._pending: dict[int, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing: set[str] = set()
        self._known: set[str] = {t.name for t in self._targets()}
        self._all_jobs: Callable[[], list[tuple[int, bytes]]] | None = None
        self._full_targets: set[str] = set()

    def watch_candidates(self, all_jobs: Callable[[], list[tuple[int, bytes]]]) -> None:
        """Send the whole queue to every node that becomes a master candidate.

        `all_jobs` returns ``(job id, job JSON)`` for every job; it is called when
        the config store reports a new candidate (a node added or promoted), so a
        later master-failover to that node keeps the full job history. The full
        copy goes through the same sequential push loop as single updates, so a
        stale copy never overwrites a newer update of the same job.
        """
        self._all_jobs = all_jobs
        self.cfg.add_listener(self._config_changed)

    def _config_changed(self, _data: objects.ConfigData) -> None:
        targets = self._targets()
        new = {t.name for t in targets} - self._known
        self._known = {t.name for t in targets}
        if new and self._all_jobs is not None:
            self._full_targets |= new
            self._kick()

    def resync(self, node_names: set[str]) -> None:
        """Copy the whole queue again to these candidates (back after an outage)."""
        if self._all_jobs is not None and node_names:
            self._full_targets |= node_names
            self._kick()

    def _targets(self) -> list[NodeTarget]:
        master = self.cfg.cluster.master_node
        return [
            _target(n) for n in self.cfg.master_candidates(online_only=True) if n.uuid != master
        ]

    def job_updated(self, job_id: int, content: bytes) -> None:
        self._pending[job_id] = content
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (offline tools): nothing to push to
                self._pending.clear()
                self._full_targets.clear()
                return
            self._task = loop.create_task(self._run())

    async def _push_full(self) -> None:
        names, self._full_targets = self._full_targets, set()
        targets = [t for t in self._targets() if t.name in names]
        if not targets or self._all_jobs is None:
            return
        for job_id, content in self._all_jobs():
            results = await self.rpc.call_multi(
                "jobqueue_update", targets, job_id, content.decode()
            )
            for name, res in results.items():
                if res.fail_msg is not None:
                    log.warning("Could not copy the job queue to %s: %s", name, res.fail_msg)
                    targets = [t for t in targets if t.name != name]
            if not targets:
                return

    async def _run(self) -> None:
        while self._pending or self._full_targets:
            if self._full_targets:
                await self._push_full()
                continue
            batch, self._pending = self._pending, {}
            targets = self._targets()
            if not targets:
                continue
            results = await asyncio.gather(
                *(
                    self.rpc.call_multi("jobqueue_update", targets, job_id, content.decode())
                    for job_id, content in sorted(batch.items())
                ),
                return_exceptions=True,
            )
            failing: set[str] = set()
            for res in results:
                if isinstance(res, BaseException):
                    log.warning("Job queue replication failed: %s", res)
                    continue
                for name, one in res.items():
                    if one.fail_msg is not None:
                        failing.add(name)
                        if name not in self._failing:
                            log.warning(
                                "Could not replicate the job queue to %s: %s", name, one.fail_msg
                            )
            self._failing = failing

    async def flush(self) -> None:
        """Wait until everything changed so far was pushed (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
