"""The watcher: periodic repair done by the master (Ganeti's ganeti-watcher).

Each round asks every online node once which VMs run there, then:

* an instance marked up whose primary node answered but does not run it is
  restarted (an ``OpInstanceStartup`` job), at most `MAX_RESTARTS` times in a
  row, as ganeti-watcher does, so a VM that cannot start is not hammered;
* a DRBD instance marked up whose disks report degraded while both of its nodes
  answer (typically: its secondary came back after a crash or reboot) gets an
  ``OpInstanceActivateDisks`` job, which reconnects and resyncs the mirror;
* a master candidate whose config copy went stale while it was unreachable
  gets the config and the whole job queue again once it answers.

The watcher only submits ordinary jobs: they take the usual locks, so it never
races a manual operation on the same instance, and it does not submit a new
job for an instance while its previous one is unfinished. Instances on nodes
that do not answer are left alone, unless the cluster opted in to automatic
(fenced) failover: see `corral.jobs.autofailover`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import MasterContext
from corral.cmdlib.common import device_context
from corral.jobs.autofailover import DEAD_AFTER, AutoFailover, JobResultFn

log = logging.getLogger(__name__)

MAX_RESTARTS = 5

SubmitFn = Callable[[list[opcodes.OpCode]], Awaitable[int]]
JobDoneFn = Callable[[int], bool]
ResyncFn = Callable[[set[str]], Awaitable[None]]


class Watcher:
    def __init__(
        self,
        ctx: MasterContext,
        submit: SubmitFn,
        job_done: JobDoneFn,
        resync: ResyncFn | None = None,
        job_result: JobResultFn | None = None,
        *,
        paused: Callable[[], bool] | None = None,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self.ctx = ctx
        self.submit = submit
        self.job_done = job_done
        self.resync = resync
        #: `gnt-cluster watcher pause` or a drained queue: rounds are skipped
        self.paused = paused
        #: automatic failover needs the fence job's result; without a way to read
        #: it (tests of the other duties) it is off
        self.auto_failover = (
            AutoFailover(ctx, submit, job_done, job_result, dead_after=dead_after)
            if job_result is not None
            else None
        )
        self._pending: dict[str, int] = {}  # instance uuid -> watcher job id
        self._restarts: dict[str, int] = {}  # instance uuid -> attempts in a row

    def _busy(self, uuid: str) -> bool:
        job = self._pending.get(uuid)
        if job is None:
            return False
        if self.job_done(job):
            del self._pending[uuid]
            return False
        return True

    async def _running(self) -> dict[str, set[str] | None]:
        """Node UUID -> names of the VMs it runs (None: no answer)."""
        cfg = self.ctx.cfg
        nodes = [n for n in cfg.all_nodes() if not n.offline and n.vm_capable]
        targets = [self.ctx.node_target(n.uuid) for n in nodes]
        results = await self.ctx.rpc.call_multi(
            "instance_list", targets, list(cfg.cluster.enabled_hypervisors)
        )
        out: dict[str, set[str] | None] = {}
        for node in nodes:
            res = results.get(node.name)
            out[node.uuid] = None if res is None or res.failed else set(res.payload or [])
        return out

    async def _degraded(self, inst: objects.Instance) -> bool:
        target = self.ctx.node_target(inst.primary_node)
        res = await self.ctx.rpc.call(
            "blockdev_getmirrorstatus",
            target,
            inst.disks,
            device_context(self.ctx.cfg, inst.primary_node),
        )
        if res.failed:
            return True
        return any(st.is_degraded for st in res.payload or [])

    async def run_once(self) -> list[int]:
        """One round; returns the ids of the jobs it submitted (none while paused)."""
        if self.paused is not None and self.paused():
            log.debug("watcher: paused (or the queue is drained), round skipped")
            return []
        cfg = self.ctx.cfg
        running = await self._running()
        # master candidates whose copies went stale while they were away
        back = {
            cfg.node_name(uuid) for uuid in cfg.stale_candidates() if running.get(uuid) is not None
        }
        if back and self.resync is not None:
            log.info("watcher: refreshing the config and queue copies of %s", sorted(back))
            await self.resync(back)
        submitted: list[int] = []
        if self.auto_failover is not None:

            def claim(uuid: str, job: int) -> None:
                self._pending[uuid] = job

            submitted += await self.auto_failover.run(running, claim)
        for inst in cfg.all_instances():
            if inst.admin_state != C.ADMINST_UP or self._busy(inst.uuid):
                continue
            on_primary = running.get(inst.primary_node)
            if on_primary is None:
                continue  # primary down or offline: nothing to do from here
            if inst.name not in on_primary:
                attempts = self._restarts.get(inst.uuid, 0)
                if attempts >= MAX_RESTARTS:
                    continue
                self._restarts[inst.uuid] = attempts + 1
                log.info("watcher: restarting instance %s (attempt %d)", inst.name, attempts + 1)
                job = await self.submit([opcodes.OpInstanceStartup(instance_name=inst.name)])
                self._pending[inst.uuid] = job
                submitted.append(job)
                continue
            self._restarts.pop(inst.uuid, None)
            if inst.disk_template not in C.DTS_INT_MIRROR:
                continue
            if any(running.get(node) is None for node in inst.secondary_nodes):
                continue  # the mirror cannot be repaired while its peer is away
            if await self._degraded(inst):
                log.info("watcher: activating the disks of %s (degraded mirror)", inst.name)
                job = await self.submit([opcodes.OpInstanceActivateDisks(instance_name=inst.name)])
                self._pending[inst.uuid] = job
                submitted.append(job)
        return submitted
