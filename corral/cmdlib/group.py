"""Node group LUs: add, assign nodes, modify, remove."""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import HTYPE_GROUP, LogicalUnit
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_STATE, OpPrereqError

_POLICIES = (C.ALLOC_POLICY_PREFERRED, C.ALLOC_POLICY_LAST_RESORT, C.ALLOC_POLICY_UNALLOCABLE)


def _check_policy(policy: str | None) -> None:
    if policy is not None and policy not in _POLICIES:
        raise OpPrereqError(
            f"Invalid allocation policy '{policy}', must be one of {', '.join(_POLICIES)}",
            ECODE_INVAL,
        )


@lu_for(opcodes.OpGroupAdd)
class LUGroupAdd(LogicalUnit):
    HPATH = "group-add"
    HTYPE = HTYPE_GROUP
    op: opcodes.OpGroupAdd

    def check_arguments(self) -> None:
        _check_policy(self.op.alloc_policy)

    async def exec(self) -> Any:
        group = objects.NodeGroup(
            name=self.op.group_name,
            alloc_policy=self.op.alloc_policy or C.ALLOC_POLICY_PREFERRED,
            ndparams=dict(self.op.ndparams or {}),
            diskparams=dict(self.op.diskparams or {}),
            ipolicy=dict(self.op.ipolicy or {}),
        )
        await self.cfg.add_group(group)
        return None


@lu_for(opcodes.OpGroupAssignNodes)
class LUGroupAssignNodes(LogicalUnit):
    HTYPE = HTYPE_GROUP
    op: opcodes.OpGroupAssignNodes

    async def check_prereq(self) -> None:
        cfg = self.cfg
        self.group_uuid = cfg.lookup_group(self.op.group_name)
        self.node_uuids = [cfg.expand_node_name(n)[0] for n in self.op.nodes]
        if self.op.force:
            return
        moving = set(self.node_uuids)
        for inst in cfg.all_instances():
            nodes = inst.all_nodes
            if len(nodes) < 2 or not moving & set(nodes):
                continue
            groups = {
                self.group_uuid if n in moving else cfg.get_node(n).group  # type: ignore[union-attr]
                for n in nodes
            }
            if len(groups) > 1:
                raise OpPrereqError(
                    f"Instance {inst.name} would be split between node groups; use --force"
                    " to override",
                    ECODE_STATE,
                )

    async def exec(self) -> Any:
        for uuid in self.node_uuids:
            node = self.cfg.get_node(uuid)
            assert node is not None
            if node.group == self.group_uuid:
                continue
            new = node.copy()
            new.group = self.group_uuid
            await self.cfg.update_node(new)
        return None


@lu_for(opcodes.OpGroupSetParams)
class LUGroupSetParams(LogicalUnit):
    HPATH = "group-modify"
    HTYPE = HTYPE_GROUP
    op: opcodes.OpGroupSetParams

    def check_arguments(self) -> None:
        _check_policy(self.op.alloc_policy)

    async def exec(self) -> Any:
        uuid = self.cfg.lookup_group(self.op.group_name)
        group = self.cfg.get_group(uuid)
        assert group is not None
        new = group.copy()
        changes: list[list[str]] = []
        if self.op.alloc_policy:
            new.alloc_policy = self.op.alloc_policy
            changes.append(["alloc_policy", self.op.alloc_policy])
        if self.op.ndparams:
            new.ndparams.update(self.op.ndparams)
            changes.append(["ndparams", str(new.ndparams)])
        if self.op.diskparams:
            for tmpl, params in self.op.diskparams.items():
                new.diskparams.setdefault(tmpl, {}).update(params)
            changes.append(["diskparams", str(new.diskparams)])
        if self.op.ipolicy:
            new.ipolicy.update(self.op.ipolicy)
            changes.append(["ipolicy", str(new.ipolicy)])
        await self.cfg.update_group(new)
        return changes


@lu_for(opcodes.OpGroupRemove)
class LUGroupRemove(LogicalUnit):
    HPATH = "group-remove"
    HTYPE = HTYPE_GROUP
    op: opcodes.OpGroupRemove

    async def check_prereq(self) -> None:
        self.group_uuid = self.cfg.lookup_group(self.op.group_name)
        members = self.cfg.group_nodes(self.group_uuid)
        if members:
            names = ", ".join(self.cfg.node_name(n) for n in members)
            raise OpPrereqError(
                f"Group '{self.op.group_name}' not empty, has the following nodes: {names}",
                ECODE_STATE,
            )
        if len(self.cfg.nodegroups) == 1:
            raise OpPrereqError(
                f"Group '{self.op.group_name}' is the only group, cannot be removed", ECODE_STATE
            )

    async def exec(self) -> Any:
        await self.cfg.remove_group(self.group_uuid)
        return None
