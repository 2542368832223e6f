"""Moving all instances off a node: gnt-node migrate / evacuate.

Like Ganeti these LUs only compute what to do and return one job per instance
(`result_with_jobs`); the CLI waits for them. Primary instances are migrated
(live) or failed over; secondaries of DRBD instances need a new secondary
(``replace-disks -n/-I``, one job per instance, see `LUNodeEvacuate`).
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import NoHooksLU, result_with_jobs
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, OpPrereqError


@lu_for(opcodes.OpNodeMigrate)
class LUNodeMigrate(NoHooksLU):
    op: opcodes.OpNodeMigrate

    def expand_names(self) -> None:
        self.node_uuid, self.node_name = self.cfg.expand_node_name(self.op.node_name)

    async def exec(self) -> Any:
        prim, _sec = self.cfg.node_instances(self.node_uuid)
        jobs: list[list[opcodes.OpCode]] = []
        for uuid in prim:
            inst = self.cfg.get_instance(uuid)
            if inst is None or inst.disk_template not in C.DTS_MIRRORED:
                continue
            jobs.append(
                [
                    opcodes.OpInstanceMigrate(
                        instance_name=inst.name,
                        mode=self.op.mode,
                        live=self.op.live,
                        target_node=self.op.target_node,
                        allow_failover=True,
                        allow_runtime_changes=self.op.allow_runtime_changes,
                        ignore_ipolicy=self.op.ignore_ipolicy,
                    )
                ]
            )
        ids = await self.ctx.submit_jobs(jobs) if jobs else []
        return result_with_jobs(ids)


@lu_for(opcodes.OpNodeEvacuate)
class LUNodeEvacuate(NoHooksLU):
    """One job per instance to move off the node (Ganeti returns jobs too).

    * primary instances (modes ``primary-only``/``all``): migrated, or failed
      over when not running (mirrored templates only, as before);
    * DRBD instances using the node as secondary (``secondary-only``/``all``):
      ``replace-disks`` to a new secondary, the given ``-n`` node or the one
      the iallocator (``-I``, else the cluster default) picks per instance;
    * in ``all`` mode a DRBD instance migrated away from the node gets the node
      as its new secondary, so its job also replaces that secondary, leaving
      the node empty.
    """

    op: opcodes.OpNodeEvacuate

    def check_arguments(self) -> None:
        if self.op.mode not in (C.NODE_EVAC_PRI, C.NODE_EVAC_SEC, C.NODE_EVAC_ALL):
            raise OpPrereqError(f"Invalid evacuation mode '{self.op.mode}'", ECODE_INVAL)
        if self.op.remote_node is not None and self.op.iallocator is not None:
            raise OpPrereqError("Give either the iallocator or the new node, not both", ECODE_INVAL)

    def expand_names(self) -> None:
        self.node_uuid, self.node_name = self.cfg.expand_node_name(self.op.node_name)
        self.remote_uuid: str | None = None
        if self.op.remote_node is not None:
            self.remote_uuid, self.op.remote_node = self.cfg.expand_node_name(self.op.remote_node)
            if self.remote_uuid == self.node_uuid:
                raise OpPrereqError(
                    "Can not use evacuated node as a new secondary node", ECODE_INVAL
                )
            if self.op.mode != C.NODE_EVAC_SEC:
                raise OpPrereqError(
                    "Without the use of an iallocator only secondary instances can be evacuated",
                    ECODE_INVAL,
                )

    async def check_prereq(self) -> None:
        prim, sec = self.cfg.node_instances(self.node_uuid)
        self.primaries = [i for i in (self.cfg.get_instance(u) for u in prim) if i is not None]
        self.secondaries = [i for i in (self.cfg.get_instance(u) for u in sec) if i is not None]
        self.allocator = self.op.iallocator
        needs_new_secondary = (
            self.op.mode in (C.NODE_EVAC_SEC, C.NODE_EVAC_ALL) and self.secondaries
        ) or (
            self.op.mode == C.NODE_EVAC_ALL
            and any(i.disk_template in C.DTS_INT_MIRROR for i in self.primaries)
        )
        if needs_new_secondary and self.remote_uuid is None and self.allocator is None:
            self.allocator = self.cfg.cluster.default_iallocator or None
            if self.allocator is None:
                raise OpPrereqError(
                    "No iallocator or node given and no cluster-wide default iallocator"
                    " found; please specify either an iallocator or a node, or set a"
                    " cluster-wide default iallocator",
                    ECODE_INVAL,
                )

    def _replace_secondary(self, inst: objects.Instance) -> opcodes.OpInstanceReplaceDisks:
        return opcodes.OpInstanceReplaceDisks(
            instance_name=inst.name,
            mode=C.REPLACE_DISK_CHG,
            remote_node=self.op.remote_node,
            iallocator=None if self.op.remote_node is not None else self.allocator,
            early_release=self.op.early_release,
        )

    async def exec(self) -> Any:
        jobs: list[list[opcodes.OpCode]] = []
        if self.op.mode in (C.NODE_EVAC_PRI, C.NODE_EVAC_ALL):
            for inst in self.primaries:
                job: list[opcodes.OpCode] = [
                    opcodes.OpInstanceMigrate(instance_name=inst.name, allow_failover=True)
                ]
                if self.op.mode == C.NODE_EVAC_ALL and inst.disk_template in C.DTS_INT_MIRROR:
                    job.append(self._replace_secondary(inst))
                jobs.append(job)
        if self.op.mode in (C.NODE_EVAC_SEC, C.NODE_EVAC_ALL):
            for inst in self.secondaries:
                if inst.disk_template in C.DTS_INT_MIRROR:
                    jobs.append([self._replace_secondary(inst)])
        ids = await self.ctx.submit_jobs(jobs) if jobs else []
        return result_with_jobs(ids)
