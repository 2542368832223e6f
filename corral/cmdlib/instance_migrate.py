"""Moving a running instance: live migration and failover (Ganeti's TLMigrateInstance).

For DRBD the target must be the secondary node: the disks switch to
dual-primary for the memory transfer and back to single-primary afterwards.
For externally mirrored templates (sharedfile, diskless) any usable node is a
target. Failover stops the instance on the source (or gives up on a dead
source with ``--ignore-consistency``), activates the disks on the target as
primary and starts the instance there if it was marked up.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.base import ALL_SET, LEVEL_NODE, LEVEL_NODE_RES
from corral.cmdlib.instance_ops import InstanceLU
from corral.cmdlib.params import fill_beparams
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_STATE, OpExecError, OpPrereqError


def _check_movable(inst: objects.Instance, what: str) -> None:
    if inst.disk_template not in C.DTS_MIRRORED:
        raise OpPrereqError(
            f"Instance's disk layout '{inst.disk_template}' does not allow {what}s",
            ECODE_STATE,
        )


def _choose_target(lu: InstanceLU, inst: objects.Instance, target_node: str | None) -> str:
    if inst.disk_template in C.DTS_INT_MIRROR:
        secondaries = inst.secondary_nodes
        if not secondaries:
            raise OpPrereqError(f"Instance {inst.name} has no secondary node", ECODE_STATE)
        if target_node:
            uuid, _name = lu.cfg.expand_node_name(target_node)
            if uuid != secondaries[0]:
                raise OpPrereqError(
                    f"Instances with disk template {inst.disk_template} cannot be migrated"
                    f" to arbitrary nodes (neither an iallocator nor a target node can be"
                    f" passed), use the secondary node ({lu.cfg.node_name(secondaries[0])})",
                    ECODE_INVAL,
                )
        return secondaries[0]
    if not target_node:
        others = [
            n.uuid
            for n in lu.cfg.all_nodes()
            if n.uuid != inst.primary_node and not n.offline and not n.drained and n.vm_capable
        ]
        if not others:
            raise OpPrereqError("No node available as migration target", ECODE_STATE)
        return others[0]
    uuid, _name = lu.cfg.expand_node_name(target_node)
    if uuid == inst.primary_node:
        raise OpPrereqError(
            f"Instance {inst.name} is already on node {lu.cfg.node_name(uuid)}", ECODE_STATE
        )
    return uuid


class _MoveLU(InstanceLU):
    """Shared prerequisites of migrate and failover."""

    def declare_locks(self, level: int) -> None:
        # Externally mirrored instances can move to any node, which is only
        # chosen in check_prereq: lock them all (Ganeti does the same when the
        # target is not given).
        inst = self.cfg.get_instance(self.instance_uuid)
        if (
            inst is not None
            and inst.disk_template not in C.DTS_INT_MIRROR
            and level in (LEVEL_NODE, LEVEL_NODE_RES)
        ):
            self.needed_locks[level] = ALL_SET
            self.recalculate_locks.pop(level, None)
            return
        super().declare_locks(level)

    async def _check_target(self, inst: objects.Instance, what: str) -> None:
        self.source = inst.primary_node
        self.target = _choose_target(self, inst, getattr(self.op, "target_node", None))
        common.check_node_usable(self, self.target)
        if inst.admin_state == C.ADMINST_UP:
            bep = fill_beparams(self.cfg.cluster, inst.beparams)
            await common.check_node_free_memory(
                self,
                self.target,
                f"{what} instance {inst.name}",
                int(bep[C.BE_MAXMEM]),
                inst.hypervisor,
            )
            await common.check_bridges(
                self, common.bridged_links(self.cfg.cluster, inst.nics), self.target
            )

    async def _degraded_disk(self, inst: objects.Instance, node: str) -> str | None:
        """The first disk not healthy on `node`, or None (Ganeti's CheckDiskConsistency);
        a node that cannot tell counts as its first disk being degraded."""
        target = self.ctx.node_target(node)
        res = await self.rpc.call(
            "blockdev_getmirrorstatus", target, inst.disks, common.device_context(self.cfg, node)
        )
        if res.failed:
            return inst.disks[0].iv_name if inst.disks else None
        for disk, st in zip(inst.disks, res.payload or [], strict=False):
            if st.is_degraded or st.ldisk_status != "ok":
                return disk.iv_name
        return None

    async def _set_primary(self, inst: objects.Instance, node: str) -> objects.Instance:
        fresh = self.instance.copy()
        fresh.primary_node = node
        await self.cfg.update_instance(fresh)
        return self.instance

    async def failover(
        self, inst: objects.Instance, *, ignore_consistency: bool, shutdown_timeout: float
    ) -> None:
        source, target = self.source, self.target
        sname, tname = self.cfg.node_name(source), self.cfg.node_name(target)
        src_target = self.ctx.node_target(source)
        # Ask the source once: a dead node would otherwise cost a connect
        # timeout for every step below.
        src_alive = await common.node_alive(self, source)
        if not src_alive and not src_target.offline:
            if not ignore_consistency:
                raise OpExecError(
                    f"Node {sname} is unreachable; use --ignore-consistency to fail over"
                    " anyway (make sure the node is really down)"
                )
            self.log_warning(f"Node {sname} is unreachable, skipping the steps on it")
        if inst.disk_template in C.DTS_INT_MIRROR and inst.admin_state == C.ADMINST_UP:
            self.feedback("* checking disk consistency between source and target")
            degraded = await self._degraded_disk(inst, target)
            if degraded is not None:
                if not ignore_consistency:
                    raise OpExecError(
                        f"Disk {degraded} is degraded on target node, aborting failover"
                    )
                self.log_warning("Disks are degraded on the target node, ignoring")
        self.feedback("* shutting down instance on source node")
        if src_target.offline or not src_alive:
            self.log_warning(f"Node {sname} is offline, not shutting down the instance there")
        else:
            res = await self.rpc.call(
                "instance_shutdown", src_target, inst.name, inst.hypervisor, shutdown_timeout
            )
            if res.failed:
                if ignore_consistency:
                    self.log_warning(
                        f"Could not shutdown instance {inst.name} on node {sname},"
                        f" proceeding anyway; please make sure node {sname} is down;"
                        f" error details: {res.fail_msg}"
                    )
                else:
                    raise OpExecError(
                        f"Could not shutdown instance {inst.name} on node {sname}: {res.fail_msg}"
                    )
        self.feedback("* deactivating the instance's disks on source node")
        if not src_target.offline and src_alive:
            for disk in inst.disks:
                res = await self.rpc.call(
                    "blockdev_shutdown",
                    src_target,
                    disk,
                    common.device_context(self.cfg, source, disk),
                )
                if res.failed and not ignore_consistency:
                    raise OpExecError("Can't shut down the instance's disks")
        inst = await self._set_primary(inst, target)
        if inst.admin_state == C.ADMINST_UP:
            self.feedback(f"* activating the instance's disks on target node {tname}")
            try:
                await common.assemble_disks(
                    self,
                    inst,
                    ignore_secondaries=True,
                    skip_nodes=frozenset() if src_alive else frozenset({source}),
                )
            except OpExecError as exc:
                await common.shutdown_disks(self, inst, ignore_primary=True)
                raise OpExecError(f"Can't activate the instance's disks: {exc}") from exc
            self.feedback(f"* starting the instance on the target node {tname}")
            spec = common.start_spec(self.cfg, inst, await self._paths(inst))
            res = await self.rpc.call(
                "instance_start", self.ctx.node_target(target), spec, inst.hypervisor
            )
            if res.failed:
                await common.shutdown_disks(self, inst, ignore_primary=True)
                raise OpExecError(
                    f"Could not start instance {inst.name} on node {tname}: {res.fail_msg}"
                )
            await self.cfg.set_disks_active(inst.uuid, True)

    async def _paths(self, inst: objects.Instance) -> list[dict[str, Any]]:
        target = self.ctx.node_target(inst.primary_node)
        out = []
        for idx, disk in enumerate(inst.disks):
            res = await self.rpc.call(
                "blockdev_assemble",
                target,
                disk,
                common.device_context(self.cfg, inst.primary_node, disk),
                True,
                idx,
            )
            res.raise_on_fail(f"Cannot find block device {disk.iv_name}")
            out.append(dict(res.payload or {}))
        return out

    async def migrate(self, inst: objects.Instance, *, live: bool) -> None:
        source, target = self.source, self.target
        sname, tname = self.cfg.node_name(source), self.cfg.node_name(target)
        src, dst = self.ctx.node_target(source), self.ctx.node_target(target)
        drbd = inst.disk_template in C.DTS_INT_MIRROR
        both = [src, dst]

        async def on_both(call: str, *args: Any) -> None:
            for node_t, node in ((src, source), (dst, target)):
                res = await self.rpc.call(
                    call, node_t, inst.disks, common.device_context(self.cfg, node), *args
                )
                res.raise_on_fail(f"Cannot {call.replace('_', ' ')} on node {node_t.name}")

        if drbd:
            self.feedback("* checking disk consistency between source and target")
            degraded = await self._degraded_disk(inst, target)
            if degraded is not None:
                raise OpExecError(
                    f"Disk {degraded} is degraded or not fully synchronized on target node"
                    f" {tname}, aborting migration"
                )
        try:
            if drbd:
                self.feedback("* changing into standalone mode")
                await on_both("drbd_disconnect_net")
                self.feedback("* changing disks into dual-master mode")
                await on_both("drbd_attach_net", True)
                self.feedback("* wait until resync is done")
                res = await self.rpc.call(
                    "blockdev_open", dst, inst.disks, common.device_context(self.cfg, target), False
                )
                res.raise_on_fail(f"Cannot open disks on node {tname}")
            disk_infos = []
            for idx, disk in enumerate(inst.disks):
                res = await self.rpc.call(
                    "blockdev_assemble",
                    dst,
                    disk,
                    common.device_context(self.cfg, target, disk),
                    True,
                    idx,
                )
                res.raise_on_fail(f"Cannot assemble disk {disk.iv_name} on node {tname}")
                disk_infos.append(dict(res.payload or {}))
            info = await self.rpc.call("migration_info", src, inst, inst.hypervisor)
            info.raise_on_fail(f"Failed to gather migration information from node {sname}")
            self.feedback(f"* preparing {tname} to accept the instance")
            spec = common.start_spec(self.cfg, inst, disk_infos)
            acc = await self.rpc.call(
                "accept_instance", dst, spec, info.payload, dst.ip, inst.hypervisor
            )
            if acc.failed:
                raise OpExecError(f"Could not pre-migrate instance {inst.name}: {acc.fail_msg}")
        except BaseException:
            # leave the disks single-primary on the source, as before
            await self._abort_dual(inst, src, dst, drbd)
            raise
        self.feedback(f"* migrating instance to {tname}")
        res = await self.rpc.call(
            "instance_migrate", src, inst.name, inst.hypervisor, dst.ip, acc.payload, live
        )
        ok = not res.failed
        error = res.fail_msg
        if ok:
            self.feedback("* starting memory transfer")
            while True:
                st = await self.rpc.call(
                    "instance_get_migration_status", src, inst.name, inst.hypervisor
                )
                if st.failed:
                    ok, error = False, st.fail_msg
                    break
                status = st.payload.status
                if status == "completed":
                    break
                if status in ("failed", "cancelled"):
                    ok, error = False, st.payload.info or status
                    break
                await self.ctx.sleep(0.2)
        if not ok:
            await self.rpc.call(
                "instance_finalize_migration_dst", dst, inst.name, inst.hypervisor, False
            )
            await self.rpc.call(
                "instance_finalize_migration_src", src, inst.name, inst.hypervisor, False, live
            )
            await self._abort_dual(inst, src, dst, drbd)
            raise OpExecError(f"Could not migrate instance {inst.name}: {error}")
        self.feedback("* memory transfer complete")
        res = await self.rpc.call(
            "instance_finalize_migration_src", src, inst.name, inst.hypervisor, True, live
        )
        if res.failed:
            self.log_warning(f"Failed to finalize migration on source node {sname}: {res.fail_msg}")
        res = await self.rpc.call(
            "instance_finalize_migration_dst", dst, inst.name, inst.hypervisor, True
        )
        inst = await self._set_primary(inst, target)
        if res.failed:
            raise OpExecError(f"Failed to finalize migration on the target node: {res.fail_msg}")
        if drbd:
            self.feedback(f"* switching node {sname} to secondary mode")
            res = await self.rpc.call(
                "blockdev_close", src, inst.disks, common.device_context(self.cfg, source)
            )
            if res.failed:
                self.log_warning(f"Cannot switch {sname} to secondary: {res.fail_msg}")
            self.feedback("* changing into standalone mode")
            for node_t, node in ((src, source), (dst, target)):
                await self.rpc.call(
                    "drbd_disconnect_net", node_t, inst.disks, common.device_context(self.cfg, node)
                )
            self.feedback("* changing disks into single-master mode")
            for node_t, node in ((src, source), (dst, target)):
                r = await self.rpc.call(
                    "drbd_attach_net",
                    node_t,
                    inst.disks,
                    common.device_context(self.cfg, node),
                    False,
                )
                if r.failed:
                    self.log_warning(f"Cannot reconnect disks on {node_t.name}: {r.fail_msg}")
            self.feedback("* wait until resync is done")
            await common.wait_for_sync(self, inst, oneshot=True)
        del both
        self.feedback("* done")

    async def _abort_dual(self, inst: objects.Instance, src: Any, dst: Any, drbd: bool) -> None:
        if not drbd:
            return
        await self.rpc.call(
            "blockdev_close", dst, inst.disks, common.device_context(self.cfg, self.target)
        )
        for node_t, node in ((src, self.source), (dst, self.target)):
            await self.rpc.call(
                "drbd_disconnect_net", node_t, inst.disks, common.device_context(self.cfg, node)
            )
            await self.rpc.call(
                "drbd_attach_net", node_t, inst.disks, common.device_context(self.cfg, node), False
            )


@lu_for(opcodes.OpInstanceMigrate)
class LUInstanceMigrate(_MoveLU):
    HPATH = "instance-migrate"
    op: opcodes.OpInstanceMigrate

    async def check_prereq(self) -> None:
        inst = self.instance
        _check_movable(inst, "migration")
        if self.op.cleanup:
            self.source = inst.primary_node
            self.target = _choose_target(self, inst, self.op.target_node)
            return
        common.check_node_online(self, inst.primary_node)
        self.running = await common.instance_running(self, inst)
        self.do_failover = False
        if not self.running:
            if not self.op.allow_failover:
                raise OpPrereqError(
                    f"Instance {inst.name} is not running, cannot migrate;"
                    " use failover or --allow-failover",
                    ECODE_STATE,
                )
            self.do_failover = True
        await self._check_target(inst, "migrating")

    async def exec(self) -> Any:
        inst = self.instance
        sname, tname = self.cfg.node_name(self.source), self.cfg.node_name(self.target)
        if self.op.cleanup:
            return await self._cleanup(inst)
        if self.do_failover:
            self.feedback(f"Failover instance {inst.name}")
            await self.failover(inst, ignore_consistency=False, shutdown_timeout=120.0)
            return None
        live = self.op.mode != C.HT_MIGRATION_NONLIVE if self.op.live is None else self.op.live
        self.feedback(f"Migrating instance {inst.name}")
        del sname, tname
        await self.migrate(inst, live=live)
        return None

    async def _cleanup(self, inst: objects.Instance) -> Any:
        """Find where the instance really runs and make the config agree."""
        self.feedback(
            "* checking where the instance actually runs (if this hangs, the"
            " hypervisor might be in a bad state)"
        )
        running_on = []
        for node in (self.source, self.target):
            r = await self.rpc.call("instance_list", self.ctx.node_target(node), [inst.hypervisor])
            if not r.failed and inst.name in (r.payload or []):
                running_on.append(node)
        if len(running_on) > 1:
            raise OpExecError(
                "Instance seems to be running on two nodes, manual intervention required"
            )
        if running_on and running_on[0] == self.target:
            self.feedback("* instance running on secondary node, updating config")
            inst = await self._set_primary(inst, self.target)
        elif not running_on:
            self.log_warning("Instance not running on any node, not changing the config")
        else:
            self.feedback("* instance confirmed to be running on its primary node")
        if inst.disk_template in C.DTS_INT_MIRROR:
            other = [n for n in inst.all_nodes if n != inst.primary_node]
            for node in other:
                await self.rpc.call(
                    "blockdev_close",
                    self.ctx.node_target(node),
                    inst.disks,
                    common.device_context(self.cfg, node),
                )
            for node in inst.all_nodes:
                nt = self.ctx.node_target(node)
                await self.rpc.call(
                    "drbd_disconnect_net", nt, inst.disks, common.device_context(self.cfg, node)
                )
                await self.rpc.call(
                    "drbd_attach_net", nt, inst.disks, common.device_context(self.cfg, node), False
                )
        self.feedback("* done")
        return None


@lu_for(opcodes.OpInstanceFailover)
class LUInstanceFailover(_MoveLU):
    HPATH = "instance-failover"
    op: opcodes.OpInstanceFailover

    async def check_prereq(self) -> None:
        inst = self.instance
        _check_movable(inst, "failover")
        await self._check_target(inst, "failing over")

    async def exec(self) -> Any:
        inst = self.instance
        self.feedback(f"Failover instance {inst.name}")
        await self.failover(
            inst,
            ignore_consistency=self.op.ignore_consistency,
            shutdown_timeout=float(self.op.shutdown_timeout),
        )
        return None
