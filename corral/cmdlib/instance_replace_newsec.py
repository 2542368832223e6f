"""replace-disks -n/-I: moving the DRBD mirror to a new secondary node.

Ganeti's _ExecDrbd8Secondary, step by step: the devices are created (new
minors, new port) on the new node; the old secondary's devices are shut
down, the primary leaves the network and connects to the new node; the
configuration follows once it is connected; after the resync the old
secondary's volumes are removed. Every step before the configuration change
is undone on failure, so a failed move leaves the instance on its old mirror.
"""

from __future__ import annotations

import time

from corral import objects
from corral.cmdlib import common
from corral.cmdlib.instance_replace_base import ReplaceDisksBase
from corral.errors import OpExecError

# How long the primary may take to reach the new secondary (filedrbd retries
# its connection every 0.5-1.5 s; kernel DRBD within its connect-int).
CONNECT_TIMEOUT = 30.0


class NewSecondaryMixin(ReplaceDisksBase):
    async def _exec_new_secondary(self, inst: objects.Instance) -> None:
        assert self.new_node is not None and self.target_node is not None
        pnode, new, old = inst.primary_node, self.new_node, self.target_node
        newname = self._name(new)
        old_offline = self.ctx.node_target(old).offline
        was_active = inst.disks_active

        self._step(1, "Check device existence")
        if not was_active:
            await common.assemble_disks(self, inst, ignore_secondaries=True)
            await self.cfg.set_disks_active(inst.uuid, True)
        try:
            await self._check_existence(inst, [pnode])
            await self._check_volume_groups([pnode, new])
            self._step(2, "Check peer consistency")
            await self._check_consistency(inst, pnode)
            new_disks = await self._allocate_on_new_node(inst, pnode, new)
        except BaseException:
            if not was_active:
                await self._shutdown(self.instance)
            raise

        self._step(4, "Changing drbd configuration")
        try:
            await self._switch_secondary(inst, pnode, new, old, old_offline, new_disks)
        except BaseException:
            for idx, disk in enumerate(new_disks):
                res = await self._call("blockdev_remove", new, disk)
                if res.failed:
                    self.log_warning(
                        f"Failed to remove newly-created disk/{idx} on node {newname}:"
                        f" {res.fail_msg}"
                    )
            if not was_active:
                await self._shutdown(self.instance)
            raise

        fresh = self.instance
        old_storage = [(d.iv_name, [d]) for d in inst.disks]
        if self.early_release:
            self._step(5, "Removing old storage")
            await self._remove_old_secondary(old, old_offline, old_storage)
        self._step(6 if self.early_release else 5, "Sync devices")
        try:
            await self._wait_sync(fresh, pnode, fresh.disks)
        finally:
            if not was_active:
                await self._shutdown(self.instance)
        if not self.early_release:
            self._step(6, "Removing old storage")
            await self._remove_old_secondary(old, old_offline, old_storage)

    async def _allocate_on_new_node(
        self, inst: objects.Instance, pnode: str, new: str
    ) -> list[objects.Disk]:
        """Step 3: the instance's DRBD devices, with new minors and ports, on `new`."""
        self._step(3, "Allocate new storage")
        job = self.ctx.job_id
        minors = self.cfg.allocate_drbd_minors([new for _ in inst.disks], job)
        new_disks: list[objects.Disk] = []
        try:
            for idx, (disk, minor) in enumerate(zip(inst.disks, minors, strict=True)):
                self.log_info(f"Adding new local storage on {self._name(new)} for disk/{idx}")
                a, _b, _port, minor_a, minor_b, secret = disk.logical_id
                p_minor = minor_a if a == pnode else minor_b
                port = self.cfg.allocate_port(job)
                fresh = disk.copy()
                fresh.logical_id = [pnode, new, port, p_minor, minor, secret]
                fresh.nodes = [pnode, new]
                for child in fresh.children:
                    child.nodes = [pnode, new]
                res = await self._call(
                    "blockdev_create", new, fresh, False, f"originstname+{inst.name}"
                )
                if res.failed:
                    raise OpExecError(
                        f"Can't create block device {disk.iv_name} on node {self._name(new)}"
                        f" for instance {inst.name}: {res.fail_msg}"
                    )
                new_disks.append(fresh)
        except BaseException:
            for made in new_disks:
                await self._call("blockdev_remove", new, made)
            raise
        return new_disks

    async def _switch_secondary(
        self,
        inst: objects.Instance,
        pnode: str,
        new: str,
        old: str,
        old_offline: bool,
        new_disks: list[objects.Disk],
    ) -> None:
        """Step 4: primary leaves the old secondary and connects to the new one;
        the config follows once connected. Undone completely on failure."""
        for idx, disk in enumerate(new_disks):
            self.log_info(f"activating a new drbd on {self._name(new)} for disk/{idx}")
            res = await self._call("blockdev_assemble", new, disk, False, idx)
            res.raise_on_fail(f"Can't activate disk/{idx} on node {self._name(new)}")
        old_was_up: list[int] = []
        for idx, disk in enumerate(inst.disks):
            self.log_info(f"Shutting down drbd for disk/{idx} on old node")
            if old_offline:
                continue
            res = await self._call("blockdev_shutdown", old, disk)
            if res.failed:
                self.log_warning(
                    f"Failed to shutdown drbd for disk/{idx} on old node: {res.fail_msg}"
                )
            else:
                old_was_up.append(idx)
        self.log_info("Detaching primary drbds from the network (=> standalone)")
        res = await self._call("drbd_disconnect_net", pnode, list(inst.disks))
        if res.failed:
            await self._reattach_old(inst, pnode, old, old_was_up)
            raise OpExecError(
                f"Can't detach the disks from the network on old node: {res.fail_msg}"
            )
        self.log_info("Attaching primary drbds to new secondary (standalone => connected)")
        try:
            for node in (pnode, new):
                res = await self._call("drbd_attach_net", node, new_disks, False)
                res.raise_on_fail(f"Can't attach drbd disks on node {self._name(node)}")
            await self._wait_connected(pnode, new_disks)
        except BaseException:
            await self._call("drbd_disconnect_net", pnode, new_disks)
            await self._reattach_old(inst, pnode, old, old_was_up)
            raise
        self.log_info("Updating instance configuration")
        updated = self.instance.copy()
        for disk, fresh in zip(updated.disks, new_disks, strict=True):
            disk.logical_id = list(fresh.logical_id)
            disk.nodes = list(fresh.nodes)
            for child, fchild in zip(disk.children, fresh.children, strict=True):
                child.nodes = list(fchild.nodes)
        await self.cfg.update_instance(updated)

    async def _reattach_old(
        self, inst: objects.Instance, pnode: str, old: str, old_was_up: list[int]
    ) -> None:
        """Rollback of step 4: the old secondary's devices up again, primary reconnected."""
        for idx in old_was_up:
            res = await self._call("blockdev_assemble", old, inst.disks[idx], False, idx)
            if res.failed:
                self.log_warning(f"Can't reactivate disk/{idx} on node {self._name(old)}")
        res = await self._call("drbd_attach_net", pnode, list(inst.disks), False)
        if res.failed:
            self.log_warning(
                f"Can't reconnect the disks of node {self._name(pnode)} to the old secondary:"
                f" {res.fail_msg}"
            )

    async def _wait_connected(self, pnode: str, disks: list[objects.Disk]) -> None:
        """Until every device of the primary is syncing or in sync with its new peer."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            res = await self._call("blockdev_getmirrorstatus", pnode, disks)
            if not res.failed and all(
                st.sync_percent is not None or not st.is_degraded for st in res.payload or []
            ):
                return
            if time.monotonic() >= deadline:
                detail = res.fail_msg or "not connected"
                raise OpExecError(
                    f"Can't connect the disks of node {self._name(pnode)} to the new"
                    f" secondary: {detail}"
                )
            await self.ctx.sleep(0.5)

    async def _remove_old_secondary(
        self, old: str, offline: bool, storage: list[tuple[str, list[objects.Disk]]]
    ) -> None:
        if offline:
            self.log_warning(
                f"Node {self._name(old)} is offline; remove the old volumes of the instance"
                " there once it is back"
            )
            return
        await self._remove_lvs(old, storage)
