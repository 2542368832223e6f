"""Shared part of replace-disks (`instance_replace_disks`): the state that
check_prereq settles and the checks and node calls every mode uses."""

from __future__ import annotations

from typing import Any

from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.instance_ops import InstanceLU
from corral.errors import OpExecError

STEPS_TOTAL = 6


class ReplaceDisksBase(InstanceLU):
    """Set by check_prereq: the disks to replace (`disk_idx`), the node whose
    storage is rebuilt (`target_node`), the node holding the good copy
    (`other_node`), the new secondary for -n/-I (`new_node`)."""

    op: opcodes.OpInstanceReplaceDisks
    disk_idx: list[int]
    target_node: str | None
    other_node: str | None
    new_node: str | None
    early_release: bool

    def _step(self, num: int, text: str) -> None:
        self.feedback(f"STEP {num}/{STEPS_TOTAL} {text}")

    def _name(self, node: str) -> str:
        return self.cfg.node_name(node)

    async def _call(self, name: str, node: str, disk: Any, *args: Any) -> Any:
        """One blockdev call with the node's device context (disk: one disk or a list)."""
        first = disk[0] if isinstance(disk, list) and disk else disk
        dctx = common.device_context(
            self.cfg, node, first if isinstance(first, objects.Disk) else None
        )
        return await self.rpc.call(name, self.ctx.node_target(node), disk, dctx, *args)

    async def _check_existence(self, inst: objects.Instance, nodes: list[str]) -> None:
        for idx in self.disk_idx:
            for node in nodes:
                self.log_info(f"Checking disk/{idx} on {self._name(node)}")
                res = await self._call("blockdev_find", node, inst.disks[idx])
                if node == self.target_node and self.new_node is None:
                    continue  # the storage being replaced may well be gone
                if res.failed or res.payload is None:
                    msg = res.fail_msg or "disk not found"
                    raise OpExecError(f"Can't find disk/{idx} on node {self._name(node)}: {msg}")

    async def _check_volume_groups(self, nodes: list[str]) -> None:
        self.log_info("Checking volume groups")
        vg = self.cfg.cluster.volume_group_name
        for node in nodes:
            res = await self.rpc.call("node_info", self.ctx.node_target(node), vg, [])
            if res.failed:
                raise OpExecError(f"Error checking node {self._name(node)}: {res.fail_msg}")
            if vg and not any(
                u.get("type") == "lvm-vg" and u.get("name") == vg
                for u in (res.payload or {}).get("storage") or []
            ):
                raise OpExecError(f"Volume group '{vg}' not found on node {self._name(node)}")

    async def _check_consistency(self, inst: objects.Instance, node: str) -> None:
        """The node holding the copy we rebuild from must have good local data."""
        for idx in self.disk_idx:
            self.log_info(f"Checking disk/{idx} consistency on node {self._name(node)}")
            res = await self._call("blockdev_find", node, inst.disks[idx])
            if res.failed:
                self.log_warning(f"Can't find disk on node {self._name(node)}: {res.fail_msg}")
            ok = not res.failed and res.payload is not None and res.payload.ldisk_status == "ok"
            if not ok:
                raise OpExecError(
                    f"Node {self._name(node)} has degraded storage, unsafe to replace disks"
                    f" for instance {inst.name}"
                )

    async def _wait_sync(
        self, inst: objects.Instance, source: str, disks: list[objects.Disk]
    ) -> None:
        """Follow the resync as seen from `source`, then require every disk healthy."""
        view = inst.copy()
        view.primary_node = source
        view.disks = [d.copy() for d in disks]
        await common.wait_for_sync(self, view)
        res = await self._call("blockdev_getmirrorstatus", source, view.disks)
        if res.failed:
            raise OpExecError(f"Can't find DRBD devices: {res.fail_msg}")
        for disk, status in zip(view.disks, res.payload or [], strict=False):
            if status.is_degraded:
                raise OpExecError(f"DRBD device {disk.iv_name} is degraded!")

    async def _remove_lvs(self, node: str, pairs: list[tuple[str, list[objects.Disk]]]) -> None:
        for iv_name, lvs in pairs:
            self.log_info(f"Remove logical volumes for {iv_name}")
            for lv in lvs:
                res = await self._call("blockdev_remove", node, lv)
                if res.failed:
                    self.log_warning(f"Can't remove old LV: {res.fail_msg}")

    async def _shutdown(self, inst: objects.Instance) -> None:
        """Deactivate the disks, primary first so it flushes to the connected peer."""
        for disk in inst.disks:
            nodes = sorted(disk.drbd_nodes(), key=lambda n: n != inst.primary_node)
            for node in nodes:
                if self.ctx.node_target(node).offline:
                    continue
                res = await self._call("blockdev_shutdown", node, disk)
                if res.failed:
                    self.log_warning(
                        f"Could not shutdown block device {disk.iv_name} on node"
                        f" {self._name(node)}: {res.fail_msg}"
                    )
        await self.cfg.set_disks_active(inst.uuid, False)
