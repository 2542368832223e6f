"""LUInstanceReinstall: `gnt-instance reinstall [-o OS] [-O params] inst`.

As Ganeti's LUInstanceReinstall: the instance must be stopped (admin state
down and not running on its primary); an optional new OS (and OS parameters)
is validated on the primary node and recorded in the configuration; then the
disks are activated, the OS ``create`` script runs with
``INSTANCE_REINSTALL=1`` (RPC ``instance_os_add(reinstall=True)``), and the
disks are deactivated again, whatever the outcome of the script. For DRBD
the resync of what the script wrote is awaited first (corral addition: the
secondary must not keep an outdated copy marked up to date).
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.instance_ops import InstanceLU
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_STATE, OpExecError, OpPrereqError


@lu_for(opcodes.OpInstanceReinstall)
class LUInstanceReinstall(InstanceLU):
    HPATH = "instance-reinstall"
    op: opcodes.OpInstanceReinstall

    async def check_prereq(self) -> None:
        inst = self.instance
        op = self.op
        if inst.disk_template == C.DT_DISKLESS:
            raise OpPrereqError(f"Instance '{inst.name}' has no disks", ECODE_INVAL)
        if inst.admin_state == C.ADMINST_UP:
            raise OpPrereqError(
                f"Instance {inst.name} is marked to be up, cannot reinstall", ECODE_STATE
            )
        common.check_node_online(
            self, inst.primary_node, "Instance primary node offline, cannot reinstall"
        )
        running = await common.instance_running(self, inst)
        if running is None:
            raise OpPrereqError(
                f"Can't get data from node {self.cfg.node_name(inst.primary_node)}",
                "environment_error",
            )
        if running:
            raise OpPrereqError(f"Instance {inst.name} is running, cannot reinstall", ECODE_STATE)
        self.os_name = op.os_type or inst.os
        if not self.os_name:
            raise OpPrereqError(f"Instance '{inst.name}' has no OS, give one with -o", ECODE_INVAL)
        self.osparams = dict(inst.osparams)
        if op.osparams:
            self.osparams.update(op.osparams)
        if op.os_type is not None or op.osparams:
            target = self.ctx.node_target(inst.primary_node)
            res = await self.rpc.call("os_get", target, self.os_name)
            if res.failed:
                raise OpPrereqError(
                    f"OS '{self.os_name}' not in supported OS list for node {target.name}:"
                    f" {res.fail_msg}",
                    ECODE_INVAL,
                )
            res = await self.rpc.call("os_validate", target, self.os_name, self.osparams)
            if res.failed:
                raise OpPrereqError(
                    f"OS Parameters validation failed on node {target.name}: {res.fail_msg}",
                    ECODE_INVAL,
                )

    async def exec(self) -> Any:
        inst = self.instance
        if self.op.os_type is not None or self.op.osparams:
            if self.op.os_type is not None:
                self.feedback(f"Changing OS to {self.op.os_type}...")
            updated = inst.copy()
            updated.os = self.os_name
            updated.osparams = dict(self.osparams)
            await self.cfg.update_instance(updated)
            inst = self.instance
        disk_infos = await common.assemble_disks(self, inst, ignore_secondaries=True)
        try:
            self.feedback("Running the instance OS create scripts...")
            target = self.ctx.node_target(inst.primary_node)
            res = await self.rpc.call(
                "instance_os_add",
                target,
                inst,
                [str(d.get("path") or "") for d in disk_infos],
                True,
                self.op.debug_level,
            )
            if res.failed:
                raise OpExecError(
                    f"Could not install OS for instance {inst.name} on node {target.name}:"
                    f" {res.fail_msg}"
                )
            if inst.disk_template in C.DTS_INT_MIRROR:
                # the mirror must hold the new installation before the disks go down
                await common.wait_for_sync(self, inst)
        finally:
            await _shutdown_primary_first(self, inst)
        return None


async def _shutdown_primary_first(lu: InstanceLU, inst: objects.Instance) -> None:
    """Deactivate the disks, the primary first: a DRBD primary flushes what the
    OS script wrote to its still connected peer before it goes down."""
    for disk in inst.disks:
        nodes = disk.drbd_nodes() if disk.dev_type == C.LD_DRBD8 else (inst.primary_node,)
        for node in sorted(nodes, key=lambda n: n != inst.primary_node):
            target = lu.ctx.node_target(node)
            if target.offline:
                continue
            res = await lu.rpc.call(
                "blockdev_shutdown", target, disk, common.device_context(lu.cfg, node, disk)
            )
            if res.failed:
                lu.log_warning(
                    f"Could not shutdown block device {disk.iv_name} on node {target.name}:"
                    f" {res.fail_msg}"
                )
    await lu.cfg.set_disks_active(inst.uuid, False)
