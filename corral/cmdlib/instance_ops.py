"""Instance life-cycle LUs: startup, shutdown, reboot, remove, rename, disks."""

from __future__ import annotations

import os
from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.base import (
    HTYPE_INSTANCE,
    LEVEL_NODE,
    LEVEL_NODE_RES,
    LOCKS_REPLACE,
    LogicalUnit,
)
from corral.cmdlib.params import check_beparams, check_hvparams, fill_beparams, fill_hvparams
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_EXISTS, ECODE_INVAL, ECODE_STATE, OpExecError, OpPrereqError


class InstanceLU(LogicalUnit):
    """An LU working on one instance named by ``op.instance_name``: locks it and
    its nodes, and exposes ``self.instance`` in check_prereq/exec."""

    HTYPE = HTYPE_INSTANCE
    REQ_BGL = False
    PRIMARY_ONLY = False

    def expand_names(self) -> None:
        name = str(self.op.instance_name)  # type: ignore[attr-defined]
        self.instance_uuid, self.instance_name = self.expand_and_lock_instance(name)
        self.needed_locks[LEVEL_NODE] = []
        self.needed_locks[LEVEL_NODE_RES] = []
        self.recalculate_locks[LEVEL_NODE] = LOCKS_REPLACE
        self.recalculate_locks[LEVEL_NODE_RES] = LOCKS_REPLACE

    def declare_locks(self, level: int) -> None:
        if level in (LEVEL_NODE, LEVEL_NODE_RES) and level in self.recalculate_locks:
            self.lock_instances_nodes(primary_only=self.PRIMARY_ONLY, level=level)

    @property
    def instance(self) -> objects.Instance:
        inst = self.cfg.get_instance(self.instance_uuid)
        if inst is None:
            raise OpPrereqError(f"Instance '{self.instance_name}' not known", "unknown_entity")
        return inst

    def build_hooks_env(self) -> dict[str, Any]:
        return common.instance_hook_env(self.cfg, self.instance)

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        nodes = [self.cfg.cluster.master_node, *self.instance.all_nodes]
        return nodes, nodes


@lu_for(opcodes.OpInstanceStartup)
class LUInstanceStartup(InstanceLU):
    HPATH = "instance-start"
    op: opcodes.OpInstanceStartup

    def check_arguments(self) -> None:
        self.be_override = check_beparams(dict(self.op.beparams))

    async def check_prereq(self) -> None:
        inst = self.instance
        if inst.admin_state == C.ADMINST_OFFLINE:
            raise OpPrereqError(
                f"Cannot start instance '{inst.name}': it is marked offline", ECODE_STATE
            )
        if self.op.hvparams:
            filled = fill_hvparams(self.cfg.cluster, inst.hypervisor, inst.os, inst.hvparams)
            filled.update(self.op.hvparams)
            check_hvparams(inst.hypervisor, filled)
        common.check_node_online(self, inst.primary_node)
        for node in inst.secondary_nodes:
            common.check_node_online(self, node, "Can't start instance on offline secondary")
        self.running = await common.instance_running(self, inst)
        if self.running is None:
            raise OpPrereqError(
                f"Can't get data from node {self.cfg.node_name(inst.primary_node)}",
                "environment_error",
            )
        if not self.running:
            await common.check_bridges(
                self, common.bridged_links(self.cfg.cluster, inst.nics), inst.primary_node
            )
            bep = fill_beparams(self.cfg.cluster, inst.beparams)
            bep.update(self.be_override)
            await common.check_node_free_memory(
                self,
                inst.primary_node,
                f"starting instance {inst.name}",
                int(bep[C.BE_MAXMEM]),
                inst.hypervisor,
            )

    async def exec(self) -> Any:
        inst = self.instance
        if not self.op.no_remember:
            await self.cfg.set_instance_admin_state(inst.uuid, C.ADMINST_UP, C.ADMINST_SOURCE_ADMIN)
        if self.running:
            self.log_info("Instance is already running")
            return None
        # As Ganeti: the instance stays marked up when the start fails, so the
        # intent is kept (list shows ERROR_down) and the watcher retries it.
        await common.start_instance(
            self,
            inst,
            hv_override=dict(self.op.hvparams),
            be_override=self.be_override,
            check_memory=False,
        )
        await self.cfg.set_disks_active(inst.uuid, True)
        return None


@lu_for(opcodes.OpInstanceShutdown)
class LUInstanceShutdown(InstanceLU):
    HPATH = "instance-stop"
    op: opcodes.OpInstanceShutdown

    async def check_prereq(self) -> None:
        inst = self.instance
        if not self.op.force and inst.admin_state == C.ADMINST_OFFLINE:
            raise OpPrereqError(f"Instance '{inst.name}' is marked offline", ECODE_STATE)
        if not self.op.ignore_offline_nodes:
            common.check_node_online(self, inst.primary_node)

    async def exec(self) -> Any:
        inst = self.instance
        if not self.op.no_remember:
            await self.cfg.set_instance_admin_state(
                inst.uuid, C.ADMINST_DOWN, C.ADMINST_SOURCE_ADMIN
            )
        target = self.ctx.node_target(inst.primary_node)
        if target.offline:
            self.log_warning("Primary node offline, marked instance as stopped")
            return None
        await common.stop_instance(self, inst, self.op.timeout, ignore_failure=True)
        await common.shutdown_disks(self, inst)
        await self.cfg.set_disks_active(inst.uuid, False)
        return None


@lu_for(opcodes.OpInstanceReboot)
class LUInstanceReboot(InstanceLU):
    HPATH = "instance-reboot"
    op: opcodes.OpInstanceReboot

    def check_arguments(self) -> None:
        if self.op.reboot_type not in ("soft", "hard", "full"):
            raise OpPrereqError(f"Invalid reboot type '{self.op.reboot_type}'", ECODE_INVAL)

    async def check_prereq(self) -> None:
        inst = self.instance
        common.check_node_online(self, inst.primary_node)
        self.running = await common.instance_running(self, inst)

    async def exec(self) -> Any:
        inst = self.instance
        if self.running and self.op.reboot_type in ("soft", "hard"):
            target = self.ctx.node_target(inst.primary_node)
            res = await self.rpc.call(
                "instance_reboot",
                target,
                inst.name,
                inst.hypervisor,
                self.op.reboot_type,
                None,
                float(self.op.shutdown_timeout),
            )
            res.raise_on_fail("Could not reboot instance")
        else:
            if self.running:
                await common.stop_instance(self, inst, self.op.shutdown_timeout)
                await common.shutdown_disks(self, inst)
            await common.start_instance(self, inst)
        await self.cfg.set_instance_admin_state(inst.uuid, C.ADMINST_UP, C.ADMINST_SOURCE_ADMIN)
        await self.cfg.set_disks_active(inst.uuid, True)
        return None


@lu_for(opcodes.OpInstanceRemove)
class LUInstanceRemove(InstanceLU):
    HPATH = "instance-remove"
    op: opcodes.OpInstanceRemove

    async def check_prereq(self) -> None:
        # Kept for the post hooks, which run once the instance has left the config.
        self.removed = self.instance

    def build_hooks_env(self) -> dict[str, Any]:
        return common.instance_hook_env(self.cfg, self.removed)

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        nodes = [self.cfg.cluster.master_node]
        return nodes, [*nodes, *self.removed.all_nodes]

    async def exec(self) -> Any:
        inst = self.instance
        self.feedback(
            f"* shutting down instance {inst.name} on node {self.cfg.node_name(inst.primary_node)}"
        )
        target = self.ctx.node_target(inst.primary_node)
        if not target.offline:
            res = await self.rpc.call(
                "instance_shutdown",
                target,
                inst.name,
                inst.hypervisor,
                float(self.op.shutdown_timeout),
            )
            if res.failed:
                if not self.op.ignore_failures:
                    raise OpExecError(
                        f"Could not shutdown instance {inst.name} on node {target.name}:"
                        f" {res.fail_msg}"
                    )
                self.log_warning(f"Warning: can't shutdown instance: {res.fail_msg}")
        await common.shutdown_disks(self, inst)
        self.feedback("* removing instance disks")
        await common.remove_disks(self, inst, ignore_failures=self.op.ignore_failures)
        self.feedback(f"* removing instance {inst.name} from cluster config")
        await self.cfg.remove_instance(inst.uuid)
        return None


@lu_for(opcodes.OpInstanceRename)
class LUInstanceRename(InstanceLU):
    HPATH = "instance-rename"
    op: opcodes.OpInstanceRename

    async def check_prereq(self) -> None:
        inst = self.instance
        new = self.op.new_name
        if self.op.name_check:
            import asyncio
            import socket

            try:
                new = (await asyncio.to_thread(socket.gethostbyname_ex, new))[0]
            except OSError as exc:
                raise OpPrereqError(
                    f"Host name {new} could not be resolved", "resolver_error"
                ) from exc
        if self.cfg.get_instance_by_name(new) is not None:
            raise OpPrereqError(f"Instance '{new}' is already in the cluster", ECODE_EXISTS)
        running = await common.instance_running(self, inst)
        if running:
            raise OpPrereqError(f"Instance {inst.name} is running, can't rename", ECODE_STATE)
        self.new_name = new

    async def exec(self) -> Any:
        inst = self.instance
        old = inst.name
        await self.cfg.rename_instance(inst.uuid, self.new_name)
        await self._rename_file_storage(old)
        renamed = self.instance
        if renamed.os:
            target = self.ctx.node_target(renamed.primary_node)
            infos = await common.assemble_disks(self, renamed) if renamed.disks else []
            try:
                res = await self.rpc.call(
                    "instance_run_rename",
                    target,
                    renamed,
                    old,
                    [str(i.get("path") or "") for i in infos],
                )
                if res.failed:
                    self.log_warning(
                        f"Could not run OS rename script for instance {renamed.name} on node"
                        f" {target.name} (but the instance has been renamed in Ganeti):"
                        f" {res.fail_msg}"
                    )
            finally:
                if renamed.disks:
                    await common.shutdown_disks(self, renamed)
        return renamed.name

    async def _rename_file_storage(self, old_name: str) -> None:
        """File-based disks live in ``<storage dir>/<instance name>/`` (Ganeti's
        layout): point their paths at the new name and move the directory on
        the primary node (the shared one for sharedfile)."""
        inst = self.instance.copy()
        moves: dict[str, str] = {}
        for disk in inst.disks:
            if disk.dev_type not in C.DTS_FILEBASED or len(disk.logical_id) < 2:
                continue
            path = str(disk.logical_id[1])
            old_dir = os.path.dirname(path)
            if os.path.basename(old_dir) != old_name:
                continue
            new_dir = os.path.join(os.path.dirname(old_dir), inst.name)
            moves[old_dir] = new_dir
            disk.logical_id = [disk.logical_id[0], os.path.join(new_dir, os.path.basename(path))]
        if not moves:
            return
        await self.cfg.update_instance(inst)
        target = self.ctx.node_target(inst.primary_node)
        for old_dir, new_dir in moves.items():
            res = await self.rpc.call("file_storage_dir_rename", target, old_dir, new_dir)
            res.raise_on_fail(
                f"Could not rename on node {target.name} directory '{old_dir}' to"
                f" '{new_dir}' (but the instance has been renamed in Ganeti)"
            )


@lu_for(opcodes.OpInstanceActivateDisks)
class LUInstanceActivateDisks(InstanceLU):
    op: opcodes.OpInstanceActivateDisks

    async def check_prereq(self) -> None:
        common.check_node_online(self, self.instance.primary_node)

    async def exec(self) -> Any:
        inst = self.instance
        infos = await common.assemble_disks(self, inst)
        await self.cfg.set_disks_active(inst.uuid, True)
        if self.op.wait_for_sync and not await common.wait_for_sync(self, inst):
            raise OpExecError("Some disks of the instance are degraded!")
        node = self.cfg.node_name(inst.primary_node)
        return [
            [node, d.iv_name, info.get("path")] for d, info in zip(inst.disks, infos, strict=False)
        ]


@lu_for(opcodes.OpInstanceDeactivateDisks)
class LUInstanceDeactivateDisks(InstanceLU):
    op: opcodes.OpInstanceDeactivateDisks

    async def check_prereq(self) -> None:
        inst = self.instance
        if not self.op.force and await common.instance_running(self, inst):
            raise OpPrereqError(
                f"Instance {inst.name} is running, can't shutdown disks", ECODE_STATE
            )

    async def exec(self) -> Any:
        inst = self.instance
        ok = await common.shutdown_disks(self, inst)
        await self.cfg.set_disks_active(inst.uuid, False)
        if not ok and not self.op.force:
            raise OpExecError("Could not shutdown all disks")
        return None
