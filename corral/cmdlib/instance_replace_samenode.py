"""replace-disks -p/-s/-a: new volumes on the same node, resynced from its peer.

Ganeti detaches the DRBD device from its volumes (removechildren), renames
old and new volumes and attaches the new ones (addchildren) while the device
runs. corral's node RPC has no add/removechildren, so the device on the
target node is shut down instead, the old volumes are renamed to
``<name>_replaced-<time>``, the new ones take the old names and the device is
re-created on them; the other node, holding the good copy, is made the DRBD
primary (the resync source) until the resync is done. The old volumes are
removed after the resync (before it with ``--early-release``).
"""

from __future__ import annotations

import time
from typing import Any

from corral import constants as C
from corral import objects
from corral.cmdlib import common
from corral.cmdlib.instance_replace_base import ReplaceDisksBase
from corral.errors import OpExecError

REPLACED_SUFFIX = "_replaced-"


def _renamed(lv: objects.Disk, stamp: int) -> list[Any]:
    return [lv.logical_id[0], f"{lv.logical_id[1]}{REPLACED_SUFFIX}{stamp}"]


class SameNodeMixin(ReplaceDisksBase):
    async def _exec_same_node(self, inst: objects.Instance) -> None:
        assert self.target_node is not None and self.other_node is not None
        target, other = self.target_node, self.other_node
        was_active = inst.disks_active
        disks = [inst.disks[idx] for idx in self.disk_idx]

        self._step(1, "Check device existence")
        await self._check_existence(inst, [other, target])
        await self._check_volume_groups([target, other])
        try:
            # The other node holds the good copy: bring its devices up (as
            # secondary for now; it becomes the resync source below).
            for idx, disk in zip(self.disk_idx, disks, strict=True):
                res = await self._call("blockdev_assemble", other, disk, False, idx)
                res.raise_on_fail(f"Can't assemble {disk.iv_name} on node {self._name(other)}")
            self._step(2, "Check peer consistency")
            await self._check_consistency(inst, other)
            self._step(3, "Allocate new storage")
            new_lvs = await self._create_new_lvs(inst, target)
            self._step(4, "Changing drbd configuration")
            old_lvs = await self._switch_volumes(inst, target, other, disks, new_lvs)
        except BaseException:
            await self._restore_roles(inst, other, disks, was_active)
            raise

        if self.early_release:
            self._step(5, "Removing old storage")
            await self._remove_lvs(target, old_lvs)
        self._step(6 if self.early_release else 5, "Sync devices")
        try:
            await self._wait_sync(inst, other, disks)
        finally:
            await self._restore_roles(inst, other, disks, was_active)
        if not self.early_release:
            self._step(6, "Removing old storage")
            await self._remove_lvs(target, old_lvs)

    async def _switch_volumes(
        self,
        inst: objects.Instance,
        target: str,
        other: str,
        disks: list[objects.Disk],
        new_lvs: dict[int, list[objects.Disk]],
    ) -> list[tuple[str, list[objects.Disk]]]:
        """Step 4: the new volumes under the devices of `target`, `other` the resync
        source. Returns the old volumes (renamed); on failure all is as before."""
        old_lvs: list[tuple[str, list[objects.Disk]]] = []
        stamp = int(time.time())
        try:
            for idx in self.disk_idx:
                old = await self._swap_volumes(inst, idx, new_lvs, stamp)
                old_lvs.append((inst.disks[idx].iv_name, old))
            # the other side becomes the DRBD primary: the resync source
            res = await self._call("blockdev_open", other, disks, False)
            res.raise_on_fail(f"Can't make the disks primary on node {self._name(other)}")
        except BaseException:
            await self._undo_swaps(inst, target, old_lvs, stamp)
            await self._remove_lvs_quiet(target, new_lvs, skip=len(old_lvs))
            raise
        return old_lvs

    async def _restore_roles(
        self, inst: objects.Instance, other: str, disks: list[objects.Disk], was_active: bool
    ) -> None:
        """After (or instead of) the resync: the primary is the writer again and the
        disks are active exactly when they were before."""
        if other != inst.primary_node:
            # -p: the secondary was the resync source; it flushes and steps down
            res = await self._call("blockdev_close", other, disks)
            if res.failed:
                self.log_warning(
                    f"Can't switch node {self._name(other)} back to secondary: {res.fail_msg}"
                )
        fresh = self.instance
        if was_active:
            try:
                await common.assemble_disks(self, fresh, ignore_secondaries=True)
            except OpExecError as err:
                self.log_warning(f"Can't reactivate the instance's disks: {err}")
        else:
            await self._shutdown(fresh)

    async def _create_new_lvs(
        self, inst: objects.Instance, node: str
    ) -> dict[int, list[objects.Disk]]:
        """Fresh data+meta volumes with unique names on `node` (removed again on failure)."""
        made: dict[int, list[objects.Disk]] = {}
        job = self.ctx.job_id
        try:
            for idx in self.disk_idx:
                disk = inst.disks[idx]
                self.log_info(f"Adding storage on {self._name(node)} for disk/{idx}")
                names = self.cfg.generate_lv_names([f".disk{idx}_data", f".disk{idx}_meta"], job)
                made[idx] = []
                for child, name in zip(disk.children, names, strict=True):
                    lv = objects.Disk(
                        uuid=self.cfg.generate_unique_id(job),
                        dev_type=C.LD_LV,
                        size=child.size,
                        logical_id=[child.logical_id[0], name],
                        params=dict(child.params),
                        nodes=list(child.nodes),
                    )
                    res = await self._call(
                        "blockdev_create", node, lv, False, f"originstname+{inst.name}"
                    )
                    if res.failed:
                        raise OpExecError(f"Can't create block device: {res.fail_msg}")
                    made[idx].append(lv)
        except BaseException:
            await self._remove_lvs_quiet(node, made)
            raise
        return made

    async def _remove_lvs_quiet(
        self, node: str, lvs: dict[int, list[objects.Disk]], skip: int = 0
    ) -> None:
        """Rollback helper: remove new volumes (those of the first `skip` disks are
        already back under their own names and were removed by `_undo_swaps`)."""
        for pos, idx in enumerate(sorted(lvs)):
            if pos < skip:
                continue
            for lv in lvs[idx]:
                res = await self._call("blockdev_remove", node, lv)
                if res.failed:
                    self.log_warning(
                        f"Can't rollback device {lv.logical_id[1]}: {res.fail_msg};"
                        " cleanup manually the unused logical volumes"
                    )

    async def _swap_volumes(
        self, inst: objects.Instance, idx: int, new_lvs: dict[int, list[objects.Disk]], stamp: int
    ) -> list[objects.Disk]:
        """Put the new volumes under the DRBD device of disk `idx` on the target node.

        Returns the old volumes under their ``_replaced-`` names. On failure the
        old volumes are back in place (the new ones are the caller's to remove).
        """
        assert self.target_node is not None
        node, name = self.target_node, self._name(self.target_node)
        disk = inst.disks[idx]
        self.log_info(f"Detaching {disk.iv_name} drbd from local storage")
        res = await self._call("blockdev_shutdown", node, disk)
        res.raise_on_fail(
            f"Can't detach drbd from local storage on node {name} for device {disk.iv_name}"
        )
        present = []
        for child in disk.children:
            found = await self._call("blockdev_find", node, child)
            if not found.failed and found.payload is not None:
                present.append(child)
        self.log_info("Renaming the old LVs on the target node")
        res = await self.rpc.call(
            "blockdev_rename",
            self.ctx.node_target(node),
            [(lv, _renamed(lv, stamp)) for lv in present],
            common.device_context(self.cfg, node, disk.children[0]),
        )
        res.raise_on_fail(f"Can't rename old LVs on node {name}")
        old = []
        for lv in present:
            moved = lv.copy()
            moved.logical_id = _renamed(lv, stamp)
            old.append(moved)
        self.log_info("Renaming the new LVs on the target node")
        res = await self.rpc.call(
            "blockdev_rename",
            self.ctx.node_target(node),
            [
                (new, list(cur.logical_id))
                for cur, new in zip(disk.children, new_lvs[idx], strict=True)
            ],
            common.device_context(self.cfg, node, disk.children[0]),
        )
        if res.failed:
            await self._rename_back(node, disk, old, stamp)
            raise OpExecError(f"Can't rename new LVs on node {name}: {res.fail_msg}")
        for cur, new in zip(disk.children, new_lvs[idx], strict=True):
            new.logical_id = list(cur.logical_id)
        self.log_info(f"Adding new mirror component on {name}")
        res = await self._call("blockdev_create", node, disk, False, f"originstname+{inst.name}")
        if res.failed:
            # the new volumes carry the old names now: drop them, restore the old
            for new in new_lvs[idx]:
                gone = await self._call("blockdev_remove", node, new)
                if gone.failed:
                    self.log_warning(f"Can't rollback device {disk.iv_name}: {gone.fail_msg}")
            await self._rename_back(node, disk, old, stamp)
            new_lvs[idx] = []
            raise OpExecError(f"Can't add local storage to drbd: {res.fail_msg}")
        return old

    async def _rename_back(
        self, node: str, disk: objects.Disk, old: list[objects.Disk], stamp: int
    ) -> None:
        pairs = []
        for moved in old:
            orig = next(c for c in disk.children if _renamed(c, stamp) == moved.logical_id)
            pairs.append((moved, list(orig.logical_id)))
        if not pairs:
            return
        res = await self.rpc.call(
            "blockdev_rename",
            self.ctx.node_target(node),
            pairs,
            common.device_context(self.cfg, node, disk.children[0]),
        )
        if res.failed:
            self.log_warning(
                f"Can't restore the old LVs of {disk.iv_name} on node {self._name(node)}:"
                f" {res.fail_msg}"
            )

    async def _undo_swaps(
        self,
        inst: objects.Instance,
        node: str,
        done: list[tuple[str, list[objects.Disk]]],
        stamp: int,
    ) -> None:
        """Put the old volumes back under the devices already switched, reassemble them."""
        for (_iv, old), idx in zip(done, self.disk_idx, strict=False):
            disk = inst.disks[idx]
            res = await self._call("blockdev_shutdown", node, disk)
            for child in disk.children:  # the new volumes, under the old names
                await self._call("blockdev_remove", node, child)
            await self._rename_back(node, disk, old, stamp)
            res = await self._call("blockdev_assemble", node, disk, False, idx)
            if res.failed:
                self.log_warning(
                    f"Can't reactivate {disk.iv_name} on node {self._name(node)}: {res.fail_msg}"
                )
