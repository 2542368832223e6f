"""LUInstanceReplaceDisks: `gnt-instance replace-disks` (Ganeti's TLReplaceDisks).

Only ``drbd`` instances have a mirror to rebuild from, so every other template
is refused with Ganeti's message. Modes (``op.mode``):

* ``-s`` (replace_on_secondary) / ``-p`` (replace_on_primary): new data and
  meta volumes on that node, resynced from the other node;
* ``-a`` (replace_auto): whichever node lost its storage (a volume missing, or a
  device reporting faulty local storage) is repaired as with -p/-s; nothing
  happens when both sides are healthy, an error when both are broken;
* ``-n NODE`` / ``-I ALLOC`` (replace_new_secondary): the secondary moves to
  another node (chosen by the iallocator with a ``relocate`` request for -I):
  new DRBD minors and a new port there, the old secondary's storage removed.

The job log follows Ganeti's (``STEP n/6 ...`` lines plus ``- INFO:`` details).

Code layout: this module holds the opcode checks and the dispatch;
`instance_replace_samenode` (-p/-s/-a) and `instance_replace_newsec` (-n/-I)
the two procedures, `instance_replace_base` what they share.

How corral does the same-node replacement: the node RPC has no
addchildren/removechildren, so instead of detaching the DRBD device from its
volumes while it keeps running, the device on the target node is shut down,
the old volumes are renamed to ``<name>_replaced-<time>``, the new (empty)
volumes take the old names and the device is re-created and assembled on
them; the other node, holding the good copy, is made the DRBD primary (the
resync source) until the resync is done. Because the target's device goes
away for the duration, -p (and -a repairing the primary) needs the instance
to be stopped; -s works on a running instance.

Failure handling ("nothing half-made"): every step undoes itself on error,
so a failed replace leaves the old volumes, names, minors, port and config
as they were. For -n the configuration switches to the new secondary only
once the primary is connected to it (Ganeti updates it just before
connecting; waiting for the connection lets a refused connection be rolled
back as well); the old secondary's storage is removed only after the resync.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common, iallocator
from corral.cmdlib.base import (
    ALL_SET,
    LEVEL_NODE,
    LEVEL_NODE_RES,
    LOCKS_APPEND,
)
from corral.cmdlib.instance_replace_newsec import NewSecondaryMixin
from corral.cmdlib.instance_replace_samenode import SameNodeMixin
from corral.cmdlib.registry import lu_for
from corral.errors import (
    ECODE_ENVIRON,
    ECODE_FAULT,
    ECODE_INVAL,
    ECODE_NOENT,
    ECODE_STATE,
    OpPrereqError,
)

_MODES = (C.REPLACE_DISK_PRI, C.REPLACE_DISK_SEC, C.REPLACE_DISK_CHG, C.REPLACE_DISK_AUTO)


def relocate_request(cfg: Any, inst: objects.Instance, relocate_from: list[str]) -> dict[str, Any]:
    """Ganeti's IAReqRelocate: find a new secondary for `inst` instead of `relocate_from`."""
    return {
        "type": "relocate",
        "name": inst.name,
        "disk_space_total": sum(d.size + C.DRBD_META_SIZE for d in inst.disks),
        "required_nodes": 1,
        "relocate_from": [cfg.node_name(n) for n in relocate_from],
    }


@lu_for(opcodes.OpInstanceReplaceDisks)
class LUInstanceReplaceDisks(SameNodeMixin, NewSecondaryMixin):
    HPATH = "mirrors-replace"
    op: opcodes.OpInstanceReplaceDisks

    # -- arguments and locks ---------------------------------------------------------
    def check_arguments(self) -> None:
        op = self.op
        if op.mode not in _MODES:
            raise OpPrereqError(f"Invalid replace-disks mode '{op.mode}'", ECODE_INVAL)
        if op.mode == C.REPLACE_DISK_CHG:
            if op.remote_node is None and op.iallocator is None:
                raise OpPrereqError(
                    "When changing the secondary either an iallocator script must be used"
                    " or the new node given",
                    ECODE_INVAL,
                )
            if op.remote_node is not None and op.iallocator is not None:
                raise OpPrereqError(
                    "Give either the iallocator or the new node, not both", ECODE_INVAL
                )
        elif op.remote_node is not None or op.iallocator is not None:
            raise OpPrereqError(
                "The iallocator and new node options can only be used when changing the"
                " secondary node",
                ECODE_INVAL,
            )
        if any(idx < 0 for idx in op.disks):
            raise OpPrereqError(f"Invalid disk index in {op.disks}", ECODE_INVAL)

    def expand_names(self) -> None:
        super().expand_names()
        self.remote_uuid: str | None = None
        if self.op.remote_node is not None:
            self.remote_uuid, self.op.remote_node = self.cfg.expand_node_name(self.op.remote_node)
            for level in (LEVEL_NODE, LEVEL_NODE_RES):
                self.needed_locks[level] = [self.remote_uuid]
                self.recalculate_locks[level] = LOCKS_APPEND
        elif self.op.iallocator is not None:
            # the allocator may pick any node: lock them all (Ganeti locks the group's)
            for level in (LEVEL_NODE, LEVEL_NODE_RES):
                self.needed_locks[level] = ALL_SET
                self.recalculate_locks.pop(level, None)

    # -- prerequisites -------------------------------------------------------------------
    async def check_prereq(self) -> None:
        inst = self.instance
        op = self.op
        if inst.disk_template != C.DT_DRBD8:
            raise OpPrereqError("Can only run replace disks for DRBD8-based instances", ECODE_INVAL)
        if len(inst.secondary_nodes) != 1:
            raise OpPrereqError(
                "The instance has a strange layout, expected one secondary but found"
                f" {len(inst.secondary_nodes)}",
                ECODE_FAULT,
            )
        secondary = inst.secondary_nodes[0]
        self.old_secondary = secondary
        remote = self.remote_uuid
        if op.iallocator is not None:
            remote = await self._run_allocator(inst, op.iallocator)
            self.remote_uuid = remote
        if remote is not None:
            if remote == inst.primary_node:
                raise OpPrereqError(
                    "The specified node is the primary node of the instance", ECODE_INVAL
                )
            if remote == secondary:
                raise OpPrereqError(
                    "The specified node is already the secondary node of the instance",
                    ECODE_INVAL,
                )
        if op.disks and op.mode in (C.REPLACE_DISK_AUTO, C.REPLACE_DISK_CHG):
            raise OpPrereqError("Cannot specify disks to be replaced", ECODE_INVAL)
        for idx in op.disks:
            if idx >= len(inst.disks):
                raise OpPrereqError(
                    f"Invalid disk index {idx}, the instance has {len(inst.disks)} disks",
                    ECODE_INVAL,
                )
        self.new_node: str | None = None
        self.target_node: str | None = None
        self.other_node: str | None = None
        self.early_release = op.early_release
        self.disk_idx: list[int] = sorted(set(op.disks)) or list(range(len(inst.disks)))
        if op.mode == C.REPLACE_DISK_AUTO:
            for node in inst.all_nodes:
                common.check_node_online(self, node)
            faulty_p = await self._faulty_disks(inst, inst.primary_node)
            faulty_s = await self._faulty_disks(inst, secondary)
            if faulty_p and faulty_s:
                raise OpPrereqError(
                    f"Instance {inst.name} has faulty disks on more than one node and can"
                    " not be repaired automatically",
                    ECODE_STATE,
                )
            if faulty_p:
                self.disk_idx = faulty_p
                self.target_node, self.other_node = inst.primary_node, secondary
            elif faulty_s:
                self.disk_idx = faulty_s
                self.target_node, self.other_node = secondary, inst.primary_node
            else:
                self.disk_idx = []
        elif op.mode == C.REPLACE_DISK_PRI:
            self.target_node, self.other_node = inst.primary_node, secondary
        elif op.mode == C.REPLACE_DISK_SEC:
            self.target_node, self.other_node = secondary, inst.primary_node
        else:
            assert remote is not None
            self.new_node, self.target_node, self.other_node = remote, secondary, inst.primary_node
            common.check_node_usable(self, remote)
            old = self.cfg.get_node(secondary)
            if old is not None and old.offline and not self.early_release:
                self.early_release = True
                self.log_info(
                    f"Old secondary {old.name} is offline, automatically enabling"
                    " early-release mode"
                )
        for checked in (self.new_node, self.other_node):
            if checked is not None:
                common.check_node_online(self, checked)
        if self.new_node is None and self.target_node is not None and self.disk_idx:
            common.check_node_online(self, self.target_node)
            if self.target_node == inst.primary_node:
                running = await common.instance_running(self, inst)
                if running is not False:
                    raise OpPrereqError(
                        f"Instance {inst.name} is running (or its primary node cannot tell);"
                        " the disks of the primary node can only be replaced while it is"
                        " stopped (or fail it over and replace on the secondary)",
                        ECODE_STATE,
                    )
        if self.new_node is not None:
            space = sum(d.size + C.DRBD_META_SIZE for d in inst.disks)
            await common.check_node_free_disk(self, [self.new_node], space, inst.hypervisor)

    async def _run_allocator(self, inst: objects.Instance, name: str) -> str:
        live = await common.gather_node_info(
            self.ctx, [n.uuid for n in self.cfg.all_nodes()], inst.hypervisor
        )
        request = relocate_request(self.cfg, inst, inst.secondary_nodes)
        document = iallocator.build_request(self.cfg.data, live, request)
        answer = await iallocator.run_allocator(name, document)
        chosen = iallocator.allocated_nodes(name, answer, 1)[0]
        node = self.cfg.get_node_by_name(chosen)
        if node is None:
            raise OpPrereqError(f"Node {chosen} not found in configuration", ECODE_NOENT)
        self.log_info(f"Selected new secondary for instance '{inst.name}': {node.name}")
        return node.uuid

    async def _faulty_disks(self, inst: objects.Instance, node: str) -> list[int]:
        """Disks whose storage on `node` is gone or reported faulty."""
        target = self.ctx.node_target(node)
        faulty = []
        for idx, disk in enumerate(inst.disks):
            res = await self.rpc.call(
                "blockdev_find", target, disk, common.device_context(self.cfg, node, disk)
            )
            if res.failed:
                raise OpPrereqError(
                    f"Can't get data from node {target.name}: {res.fail_msg}", ECODE_ENVIRON
                )
            if res.payload is None or res.payload.ldisk_status == "faulty":
                faulty.append(idx)
        return faulty

    # -- hooks ------------------------------------------------------------------------------
    def build_hooks_env(self) -> dict[str, Any]:
        env = common.instance_hook_env(self.cfg, self.instance)
        env.update(
            {
                "MODE": self.op.mode,
                "NEW_SECONDARY": self.cfg.node_name(self.remote_uuid) if self.remote_uuid else "",
                "OLD_SECONDARY": self.cfg.node_name(self.old_secondary),
            }
        )
        return env

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        nodes = [self.cfg.cluster.master_node, self.instance.primary_node]
        if self.remote_uuid is not None:
            nodes.append(self.remote_uuid)
        return nodes, nodes

    # -- execution ---------------------------------------------------------------------------
    async def exec(self) -> Any:
        inst = self.instance
        if not self.disk_idx:
            self.feedback(f"No disks need replacement for instance '{inst.name}'")
            return None
        self.feedback(
            f"Replacing disk(s) {', '.join(map(str, self.disk_idx))} for instance '{inst.name}'"
        )
        self.feedback(f"Current primary node: {self._name(inst.primary_node)}")
        self.feedback(
            f"Current seconary node: {', '.join(self._name(n) for n in inst.secondary_nodes)}"
        )
        if self.new_node is not None:
            await self._exec_new_secondary(inst)
        else:
            await self._exec_same_node(inst)
        return None
