"""Automatic failover of instances off a dead node (opt-in, fenced).

Off by default (cluster flag ``auto_failover``, ``gnt-cluster modify
--auto-failover yes``). Called by the watcher once per round with what each
node answered, it moves the DRBD instances marked up off a primary node that
stopped answering, in three steps, each an ordinary job:

1. the node must have missed `ROUNDS_BEFORE_FENCING` rounds in a row (a
   reboot or a short network cut is not a death) and have at least one such
   instance whose secondary answers;
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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import MasterContext

log = logging.getLogger(__name__)

ROUNDS_BEFORE_FENCING = 3
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
    """Per-node bookkeeping across watcher rounds (missed rounds, fence jobs)."""

    def __init__(
        self, ctx: MasterContext, submit: SubmitFn, job_done: JobDoneFn, job_result: JobResultFn
    ) -> None:
        self.ctx = ctx
        self.submit = submit
        self.job_done = job_done
        self.job_result = job_result
        self._missed: dict[str, int] = {}  # node uuid -> rounds without an answer
        self._fence_job: dict[str, int] = {}  # node uuid -> its pending fence job
        self._attempts: dict[str, int] = {}  # node uuid -> fence jobs submitted
        self._warned: set[str] = set()

    def _forget(self, uuid: str) -> None:
        for table in (self._missed, self._fence_job, self._attempts):
            table.pop(uuid, None)
        self._warned.discard(uuid)

    def _victims(
        self, node: objects.Node, running: dict[str, set[str] | None], busy: Callable[[str], bool]
    ) -> list[objects.Instance]:
        """Up DRBD instances whose primary is `node` and whose secondary answers."""
        return [
            inst
            for inst in self.ctx.cfg.all_instances()
            if inst.primary_node == node.uuid
            and inst.admin_state == C.ADMINST_UP
            and inst.disk_template in C.DTS_INT_MIRROR
            and inst.secondary_nodes
            and all(running.get(s) is not None for s in inst.secondary_nodes)
            and not busy(inst.uuid)
        ]

    async def run(
        self,
        running: dict[str, set[str] | None],
        busy: Callable[[str], bool],
        claim: Callable[[str, int], None],
    ) -> list[int]:
        """One round: fence or fail over what is due; the ids of the jobs submitted.

        `running` is node UUID -> VMs it runs (None: no answer) for the online
        nodes; `busy(instance uuid)` says a watcher job for it is unfinished;
        `claim(instance uuid, job)` records the failover job as that instance's.
        """
        cfg = self.ctx.cfg
        if not cfg.cluster.auto_failover:
            self._missed.clear()
            return []
        master = cfg.cluster.master_node
        submitted: list[int] = []
        for node in cfg.all_nodes():
            if node.uuid == master or node.uuid not in running:
                self._forget(node.uuid)
                continue
            if running[node.uuid] is not None:
                self._forget(node.uuid)
                continue
            missed = self._missed[node.uuid] = self._missed.get(node.uuid, 0) + 1
            if missed < ROUNDS_BEFORE_FENCING:
                continue
            victims = self._victims(node, running, busy)
            if not victims:
                continue
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
            submitted += await self._fail_over(node, victims, claim)
        return submitted

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
        self._attempts[node.uuid] = attempts + 1
        log.warning("auto-failover: node %s is dead, powering it off (fencing)", node.name)
        job = await self.submit(
            [
                opcodes.OpOobCommand(
                    node_names=[node.name], command=C.OOB_POWER_OFF, ignore_status=True
                )
            ]
        )
        self._fence_job[node.uuid] = job
        return job

    async def _fail_over(
        self,
        node: objects.Node,
        victims: list[objects.Instance],
        claim: Callable[[str, int], None],
    ) -> list[int]:
        cfg = self.ctx.cfg
        log.warning(
            "auto-failover: node %s is fenced; failing over %s",
            node.name,
            ", ".join(i.name for i in victims),
        )
        jobs = [
            await self.submit(
                [opcodes.OpNodeSetParams(node_name=node.name, offline=True, force=True)]
            )
        ]
        for inst in victims:
            job = await self.submit(
                [
                    opcodes.OpInstanceFailover(
                        instance_name=inst.name,
                        ignore_consistency=True,
                        target_node=cfg.node_name(inst.secondary_nodes[0]),
                    )
                ]
            )
            claim(inst.uuid, job)
            jobs.append(job)
        self._forget(node.uuid)
        return jobs
