"""Automatic failover of instances off a dead node (opt-in, fenced).

Off by default (cluster flag ``auto_failover``, ``gnt-cluster modify
--auto-failover yes``). Called by the watcher once per round with what each
node answered, it moves the DRBD instances marked up off a primary node that
stopped answering, in three steps, each an ordinary job:

1. the node must have stopped answering `DEAD_AFTER` seconds ago and missed
   at least `MIN_ROUNDS` rounds since (a reboot or a short network cut is not
   a death; ``CORRAL_AUTO_FAILOVER_AFTER`` in masterd's environment changes the
   delay), and be the primary of at least one such instance whose secondary
   answers;
2. **fencing**: ``OpOobCommand(power-off)`` through the node's
   ``oob_program`` (Ganeti's out-of-band protocol; the program talks to the
   node's management board). A node without an ``oob_program`` is never
   failed over automatically: an instance must not run twice, and only a
   powered-off node is known not to run it (a warning says so, once). A failed
   fence is retried in later rounds, at most `MAX_FENCE_ATTEMPTS` times;
3. once fenced: the node is marked offline (``OpNodeSetParams``, forced), and
   every such instance gets ``OpInstanceFailover(ignore_consistency=True,
   target_node=<its secondary>)``. Naming the target is what keeps this from
   racing a manual failover: the job takes the instance lock like any other,
   and if the instance was moved meanwhile its secondary is no longer that
   node, so the job stops in its prerequisites without touching anything.

Instances on shared storage (sharedfile) are not moved: choosing their new
node is the allocator's job and stays a manual ``gnt-node failover``.

All state is per node and dropped when the node answers again or the feature
is turned off, so a fence only ever counts for the outage it was made for.
A paused watcher or a drained queue skips whole rounds (see the watcher).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import MasterContext
from corral.errors import GenericError

log = logging.getLogger(__name__)

DEAD_AFTER = 300.0
MIN_ROUNDS = 3
MAX_FENCE_ATTEMPTS = 3

SubmitFn = Callable[[list[opcodes.OpCode]], Awaitable[int]]
JobDoneFn = Callable[[int], bool]
JobResultFn = Callable[[int], Any]
"""The result of a finished job's last opcode; None if the job did not succeed."""


def fenced(result: Any, node_name: str) -> bool:
    """Whether an ``OpOobCommand(power-off)`` result says `node_name` was powered off."""
    if not isinstance(result, list):
        return False
    for entry in result:
        try:
            (_s, name), (status, _payload) = entry
        except (TypeError, ValueError):
            continue
        if name == node_name:
            return bool(status == C.RS_NORMAL)
    return False


class AutoFailover:
    """Per-node bookkeeping across watcher rounds (outage start, fence jobs)."""

    def __init__(
        self,
        ctx: MasterContext,
        submit: SubmitFn,
        job_done: JobDoneFn,
        job_result: JobResultFn,
        *,
        dead_after: float = DEAD_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.submit = submit
        self.job_done = job_done
        self.job_result = job_result
        self.dead_after = dead_after
        self.clock = clock
        self._since: dict[str, float] = {}  # node uuid -> first round it did not answer
        self._missed: dict[str, int] = {}  # node uuid -> rounds without an answer
        self._fence_job: dict[str, int] = {}  # node uuid -> its pending fence job
        self._attempts: dict[str, int] = {}  # node uuid -> fence jobs accepted
        self._fenced: set[str] = set()  # powered off, failover not yet submitted
        self._warned: set[str] = set()

    def _forget(self, uuid: str) -> None:
        for table in (self._since, self._missed, self._fence_job, self._attempts):
            table.pop(uuid, None)
        self._fenced.discard(uuid)
        self._warned.discard(uuid)

    def _victims(
        self, node: objects.Node, running: dict[str, set[str] | None]
    ) -> list[objects.Instance]:
        """Up DRBD instances whose primary is `node` and whose secondary answers.

        Instances with an unfinished job are included: their failover job simply
        waits for the instance lock (skipping them would strand them on a node
        that is about to go offline)."""
        return [
            inst
            for inst in self.ctx.cfg.all_instances()
            if inst.primary_node == node.uuid
            and inst.admin_state == C.ADMINST_UP
            and inst.disk_template in C.DTS_INT_MIRROR
            and inst.secondary_nodes
            and all(running.get(s) is not None for s in inst.secondary_nodes)
        ]

    def _dead(self, uuid: str) -> bool:
        now = self.clock()
        since = self._since.setdefault(uuid, now)
        missed = self._missed[uuid] = self._missed.get(uuid, 0) + 1
        return missed >= MIN_ROUNDS and now - since >= self.dead_after

    async def run(
        self, running: dict[str, set[str] | None], claim: Callable[[str, int], None]
    ) -> list[int]:
        """One round: fence or fail over what is due; the ids of the jobs submitted.

        `running` is node UUID -> VMs it runs (None: no answer) for the online
        nodes; `claim(instance uuid, job)` records a failover job as that
        instance's unfinished watcher job.
        """
        cfg = self.ctx.cfg
        if not cfg.cluster.auto_failover:
            for uuid in list(self._since) + list(self._fence_job) + list(self._fenced):
                self._forget(uuid)
            return []
        master = cfg.cluster.master_node
        submitted: list[int] = []
        for node in cfg.all_nodes():
            if node.uuid == master or running.get(node.uuid, ()) is not None:
                self._forget(node.uuid)  # answers, offline, or the master itself
                continue
            if not self._dead(node.uuid):
                continue
            victims = self._victims(node, running)
            if not victims:
                continue
            if node.uuid not in self._fenced:
                job = self._fence_job.get(node.uuid)
                if job is None:
                    fence = await self._fence(node)
                    if fence is not None:
                        submitted.append(fence)
                    continue
                if not self.job_done(job):
                    continue
                del self._fence_job[node.uuid]
                if not fenced(self.job_result(job), node.name):
                    log.error("auto-failover: fencing node %s failed (job %d)", node.name, job)
                    continue
                self._fenced.add(node.uuid)
            submitted += await self._fail_over(node, victims, claim)
        return submitted

    async def _submit(self, what: str, ops: list[opcodes.OpCode]) -> int | None:
        try:
            return await self.submit(ops)
        except GenericError as err:
            log.warning("auto-failover: could not submit the %s job: %s", what, err)
            return None

    async def _fence(self, node: objects.Node) -> int | None:
        program = self.ctx.cfg.filled_ndparams(node).get("oob_program")
        if not program:
            if node.uuid not in self._warned:
                self._warned.add(node.uuid)
                log.warning(
                    "auto-failover: node %s is dead but has no oob_program to fence it with;"
                    " its instances stay where they are (use gnt-node failover)",
                    node.name,
                )
            return None
        attempts = self._attempts.get(node.uuid, 0)
        if attempts >= MAX_FENCE_ATTEMPTS:
            return None
        log.warning("auto-failover: node %s is dead, powering it off (fencing)", node.name)
        job = await self._submit(
            f"fence ({node.name})",
            [
                opcodes.OpOobCommand(
                    node_names=[node.name], command=C.OOB_POWER_OFF, ignore_status=True
                )
            ],
        )
        if job is not None:
            self._attempts[node.uuid] = attempts + 1
            self._fence_job[node.uuid] = job
        return job

    async def _fail_over(
        self,
        node: objects.Node,
        victims: list[objects.Instance],
        claim: Callable[[str, int], None],
    ) -> list[int]:
        """The offline job, then one failover job per instance (all or, if the
        queue refuses the first, none this round: tried again next round)."""
        cfg = self.ctx.cfg
        offline = await self._submit(
            f"offline ({node.name})",
            [opcodes.OpNodeSetParams(node_name=node.name, offline=True, force=True)],
        )
        if offline is None:
            return []
        log.warning(
            "auto-failover: node %s is fenced; failing over %s",
            node.name,
            ", ".join(i.name for i in victims),
        )
        jobs = [offline]
        for inst in victims:
            op = opcodes.OpInstanceFailover(
                instance_name=inst.name,
                ignore_consistency=True,
                target_node=cfg.node_name(inst.secondary_nodes[0]),
            )
            job = await self._submit(f"failover ({inst.name})", [op])
            if job is not None:
                claim(inst.uuid, job)
                jobs.append(job)
        self._forget(node.uuid)
        return jobs
