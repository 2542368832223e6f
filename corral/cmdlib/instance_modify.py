"""LUInstanceSetParams: `gnt-instance modify` (NICs, backend, hypervisor, OS params).

NIC changes of a running instance are hot-plugged when asked (``--hotplug``,
the default since Ganeti 3.1) and the hypervisor can; ``--hotplug-if-possible``
falls back to a change that applies at the next restart. The result is the
list of ``(parameter, new value)`` pairs the CLI prints as Ganeti does.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.instance_ops import InstanceLU
from corral.cmdlib.params import (
    check_beparams,
    check_hvparams,
    fill_beparams,
    fill_hvparams,
    fill_nicparams,
)
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_STATE, OpExecError, OpPrereqError
from corral.hypervisor.base import NicInfo

_NIC_KEYS = (C.NIC_MODE, C.NIC_LINK, C.NIC_VLAN)


def _nic_index(nics: list[objects.NIC], ident: Any) -> int:
    if isinstance(ident, int) or (isinstance(ident, str) and ident.lstrip("-").isdigit()):
        idx = int(ident)
        if idx == -1:
            idx = len(nics) - 1
        if not 0 <= idx < len(nics):
            raise OpPrereqError(
                f"Invalid NIC index {ident}, valid values are 0 to {len(nics) - 1}", ECODE_INVAL
            )
        return idx
    for idx, nic in enumerate(nics):
        if nic.name == ident or nic.uuid == ident:
            return idx
    raise OpPrereqError(f"NIC with identifier '{ident}' not found", ECODE_INVAL)


@lu_for(opcodes.OpInstanceSetParams)
class LUInstanceSetParams(InstanceLU):
    HPATH = "instance-modify"
    op: opcodes.OpInstanceSetParams

    def check_arguments(self) -> None:
        op = self.op
        if not (
            op.nics
            or op.disks
            or op.beparams
            or op.hvparams
            or op.osparams
            or op.os_name
            or op.offline is not None
            or op.disk_template
        ):
            raise OpPrereqError("No changes submitted", ECODE_INVAL)
        if op.disks or op.disk_template:
            raise OpPrereqError("Changing disks with modify is not supported yet", ECODE_INVAL)
        for mod in op.nics:
            if len(mod) != 3 or mod[0] not in ("add", "remove", "modify"):
                raise OpPrereqError(f"Invalid NIC modification {mod!r}", ECODE_INVAL)
        self.be_new = check_beparams(dict(op.beparams))

    async def check_prereq(self) -> None:
        op = self.op
        inst = self.instance
        cluster = self.cfg.cluster
        self.new = inst.copy()
        self.changes: list[tuple[str, Any]] = []
        self.hotplug_actions: list[tuple[str, int, objects.NIC]] = []
        if self.be_new:
            merged = {**inst.beparams, **self.be_new}
            merged = {k: v for k, v in merged.items() if v is not None}
            fill_beparams(cluster, merged)
            self.new.beparams = merged
            for key in sorted(self.be_new):
                self.changes.append((f"be/{key}", self.be_new[key]))
        if op.hvparams:
            merged_hv = {**inst.hvparams, **op.hvparams}
            merged_hv = {k: v for k, v in merged_hv.items() if v is not None}
            check_hvparams(
                inst.hypervisor, fill_hvparams(cluster, inst.hypervisor, inst.os, merged_hv)
            )
            self.new.hvparams = merged_hv
            for key in sorted(op.hvparams):
                self.changes.append((f"hv/{key}", op.hvparams[key]))
        if op.osparams:
            self.new.osparams = {**inst.osparams, **op.osparams}
            for key in sorted(op.osparams):
                self.changes.append((f"os/{key}", op.osparams[key]))
        if op.os_name:
            self.new.os = op.os_name
            self.changes.append(("os", op.os_name))
        links: list[str] = []
        for action, ident, params in op.nics:
            params = dict(params or {})
            if action == "add":
                nicp = {k: params[k] for k in _NIC_KEYS if params.get(k) is not None}
                filled = fill_nicparams(cluster, nicp)
                mac = params.get("mac") or "auto"
                if mac in ("auto", "generate"):
                    mac = self.cfg.generate_mac(self.ctx.job_id)
                else:
                    self.cfg.reserve_mac(str(mac), self.ctx.job_id)
                nic = objects.NIC(
                    mac=str(mac), ip=params.get("ip"), name=params.get("name"), nicparams=nicp
                )
                self.new.nics.append(nic)
                idx = len(self.new.nics) - 1
                self.changes.append(
                    (
                        f"nic.{idx}",
                        f"add:mac={nic.mac},ip={nic.ip},mode={filled[C.NIC_MODE]},"
                        f"link={filled[C.NIC_LINK]},network={nic.network}",
                    )
                )
                self.hotplug_actions.append(("add", idx, nic))
                if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED:
                    links.append(str(filled[C.NIC_LINK]))
            elif action == "remove":
                idx = _nic_index(self.new.nics, ident)
                nic = self.new.nics.pop(idx)
                self.changes.append((f"nic.{idx}", "remove"))
                self.hotplug_actions.append(("remove", idx, nic))
            else:
                idx = _nic_index(self.new.nics, ident)
                nic = self.new.nics[idx]
                unknown = set(params) - set(_NIC_KEYS) - {"ip", "mac", "name"}
                if unknown:
                    raise OpPrereqError(
                        f"Invalid NIC parameter(s): {', '.join(sorted(unknown))}", ECODE_INVAL
                    )
                for key in _NIC_KEYS:
                    if key in params:
                        nic.nicparams[key] = params[key]
                if "ip" in params:
                    nic.ip = params["ip"] or None
                if "name" in params:
                    nic.name = params["name"]
                filled = fill_nicparams(cluster, nic.nicparams)
                for key in (C.NIC_LINK, C.NIC_MODE, C.NIC_VLAN):
                    self.changes.append((f"nic.{key}/{idx}", filled[key]))
                self.hotplug_actions.append(("modify", idx, nic))
                if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED:
                    links.append(str(filled[C.NIC_LINK]))
        if op.offline is not None:
            running = await common.instance_running(self, inst)
            if op.offline and running:
                raise OpPrereqError(
                    f"Instance {inst.name} is running, can't mark it offline", ECODE_STATE
                )
            self.new.admin_state = C.ADMINST_OFFLINE if op.offline else C.ADMINST_DOWN
            self.changes.append(("admin_state", self.new.admin_state))
        if links:
            await common.check_bridges(self, links, inst.primary_node)
        self.do_hotplug = False
        if self.hotplug_actions and (op.hotplug or op.hotplug_if_possible):
            running = await common.instance_running(self, inst)
            if running:
                res = await self.rpc.call(
                    "hotplug_supported",
                    self.ctx.node_target(inst.primary_node),
                    inst.name,
                    inst.hypervisor,
                )
                if res.failed:
                    if op.hotplug_if_possible:
                        self.log_warning(f"Hotplug is not supported: {res.fail_msg}")
                        self.log_info("Modification will take place without hotplugging.")
                    else:
                        raise OpPrereqError(f"Hotplug is not possible: {res.fail_msg}", ECODE_STATE)
                else:
                    self.do_hotplug = True

    async def exec(self) -> Any:
        inst = self.instance
        old = inst.copy()
        self.new.serial_no = inst.serial_no
        await self.cfg.update_instance(self.new)

        async def restore() -> None:
            current = self.instance
            old.serial_no = current.serial_no
            await self.cfg.update_instance(old)

        self.ctx.on_rollback(restore)
        if self.do_hotplug:
            await self._hotplug(old)
        return [[k, v] for k, v in self.changes]

    async def _hotplug(self, old: objects.Instance) -> None:
        """Apply the NIC changes to the running VM, in order, or none of them.

        A failed action undoes the ones already applied (in reverse: an added
        NIC is removed, a removed one added back, a modified one modified back
        to its old parameters) before the error is raised; the rollback then
        restores the configuration, so VM and config keep agreeing.
        """
        updated = self.instance
        target = self.ctx.node_target(updated.primary_node)
        cluster = self.cfg.cluster
        new_infos = dict(
            zip((n.uuid for n in updated.nics), common.nic_infos(cluster, updated), strict=True)
        )
        old_infos = dict(
            zip((n.uuid for n in old.nics), common.nic_infos(cluster, old), strict=True)
        )

        async def plug(action: str, idx: int, info: NicInfo) -> str | None:
            res = await self.rpc.call(
                "hotplug_device",
                target,
                updated.name,
                updated.hypervisor,
                action,
                "nic",
                {f: getattr(info, f) for f in info.__struct_fields__},
                idx,
            )
            return res.fail_msg if res.failed else None

        def info_of(infos: dict[str, NicInfo], nic: objects.NIC) -> NicInfo:
            return infos.get(nic.uuid) or NicInfo(mac=nic.mac, uuid=nic.uuid, name=nic.name)

        done: list[tuple[str, int, objects.NIC]] = []
        for action, idx, nic in self.hotplug_actions:
            infos = old_infos if action == "remove" else new_infos
            error = await plug(action, idx, info_of(infos, nic))
            if error is not None:
                for d_action, d_idx, d_nic in reversed(done):
                    inverse = {"add": "remove", "remove": "add"}.get(d_action, d_action)
                    infos = new_infos if d_action == "add" else old_infos
                    undo_error = await plug(inverse, d_idx, info_of(infos, d_nic))
                    if undo_error is not None:
                        self.log_warning(
                            f"Could not undo the hotplug of nic/{d_idx} ({d_action}):"
                            f" {undo_error}; reboot the instance to apply its configuration"
                        )
                raise OpExecError(f"Hotplug of nic/{idx} failed: {error}")
            done.append((action, idx, nic))
            self.changes.append((f"nic/{idx}", f"hotplug:{action}"))
            self.log_info(f"Hotplug of nic/{idx} ({action}) done")
