"""Moving all instances off a node: gnt-node migrate / evacuate.

Like Ganeti these LUs only compute what to do and return one job per instance
(`result_with_jobs`); the CLI waits for them. Primary instances are migrated
(live) or failed over; secondaries of DRBD instances need a new secondary
(replace-disks), which corral does not implement yet: evacuating secondaries
fails with a clear message instead of doing half the work.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import opcodes
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
    op: opcodes.OpNodeEvacuate

    def expand_names(self) -> None:
        self.node_uuid, self.node_name = self.cfg.expand_node_name(self.op.node_name)
        if self.op.mode not in (C.NODE_EVAC_PRI, C.NODE_EVAC_SEC, C.NODE_EVAC_ALL):
            raise OpPrereqError(f"Invalid evacuation mode '{self.op.mode}'", ECODE_INVAL)

    async def check_prereq(self) -> None:
        _prim, sec = self.cfg.node_instances(self.node_uuid)
        if sec and self.op.mode in (C.NODE_EVAC_SEC, C.NODE_EVAC_ALL):
            names = ", ".join(sorted(self.cfg.get_instance(u).name for u in sec))  # type: ignore[union-attr]
            raise OpPrereqError(
                f"Node {self.node_name} is secondary for {names}; changing secondaries"
                " (replace-disks --new-secondary) is not supported yet",
                ECODE_INVAL,
            )

    async def exec(self) -> Any:
        prim, _sec = self.cfg.node_instances(self.node_uuid)
        jobs: list[list[opcodes.OpCode]] = []
        if self.op.mode in (C.NODE_EVAC_PRI, C.NODE_EVAC_ALL):
            for uuid in prim:
                inst = self.cfg.get_instance(uuid)
                if inst is None:
                    continue
                jobs.append(
                    [
                        opcodes.OpInstanceMigrate(
                            instance_name=inst.name,
                            target_node=self.op.remote_node,
                            allow_failover=True,
                        )
                    ]
                )
        ids = await self.ctx.submit_jobs(jobs) if jobs else []
        return result_with_jobs(ids)
