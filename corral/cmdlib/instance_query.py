"""LUInstanceQueryData (`gnt-instance info`) and LUInstanceConsole.

The result of QueryData has Ganeti's shape (see RAPI's instance info job):
per instance ``config_state``, ``run_state``, filled and custom parameters,
``nics`` as ``[name, uuid, ip, mac, mode, link, vlan, network, netinfo]`` and
disks with ``pstatus``/``sstatus`` = ``[path, major, minor, sync_percent,
estimated_time, is_degraded, ldisk_status]`` gathered from the nodes.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.base import LEVEL_INSTANCE, NoHooksLU
from corral.cmdlib.instance_ops import InstanceLU
from corral.cmdlib.params import fill_beparams, fill_hvparams, fill_nicparams
from corral.cmdlib.registry import lu_for
from corral.errors import OpExecError
from corral.storage.base import SyncStatus

_LDS = {"ok": 1, "unknown": 2, "faulty": 3}


def _status_list(st: SyncStatus | None) -> list[Any] | None:
    if st is None:
        return None
    return [
        st.dev_path,
        st.major,
        st.minor,
        st.sync_percent,
        st.estimated_time,
        st.is_degraded,
        _LDS.get(st.ldisk_status, 2),
    ]


@lu_for(opcodes.OpInstanceQueryData)
class LUInstanceQueryData(NoHooksLU):
    REQ_BGL = False
    op: opcodes.OpInstanceQueryData

    def expand_names(self) -> None:
        cfg = self.cfg
        if self.op.instances:
            self.wanted = [cfg.expand_instance_name(n)[0] for n in self.op.instances]
        else:
            self.wanted = [i.uuid for i in cfg.all_instances()]
        if self.op.use_locking:
            self.needed_locks[LEVEL_INSTANCE] = sorted(self.wanted)
            self.share_locks[LEVEL_INSTANCE] = True

    async def _find(self, node: str, disk: objects.Disk) -> list[Any] | None:
        target = self.ctx.node_target(node)
        if target.offline:
            return None
        res = await self.rpc.call(
            "blockdev_find", target, disk, common.device_context(self.cfg, node, disk)
        )
        if res.failed:
            return None
        return _status_list(res.payload)

    async def _disk(
        self, inst: objects.Instance, disk: objects.Disk, pnode: str, snode: str | None
    ) -> dict[str, Any]:
        static = self.op.static
        drbd_info = None
        if disk.dev_type == C.LD_DRBD8:
            a, b, port, minor_a, minor_b, secret = disk.logical_id[:6]
            if a == inst.primary_node:
                pmin, smin, other = minor_a, minor_b, b
            else:
                pmin, smin, other = minor_b, minor_a, a
            drbd_info = {
                "primary_node": self.cfg.node_name(inst.primary_node),
                "primary_minor": pmin,
                "secondary_node": self.cfg.node_name(other),
                "secondary_minor": smin,
                "port": port,
                "secret": secret,
            }
        pstatus = None if static else await self._find(pnode, disk)
        sstatus = None if static or snode is None else await self._find(snode, disk)
        return {
            "iv_name": disk.iv_name,
            "dev_type": disk.dev_type,
            "logical_id": disk.logical_id,
            "drbd_info": drbd_info,
            "pstatus": pstatus,
            "sstatus": sstatus,
            "children": [await self._disk(inst, child, pnode, snode) for child in disk.children],
            "mode": disk.mode,
            "size": disk.size,
            "spindles": disk.spindles,
            "name": disk.name,
            "uuid": disk.uuid,
        }

    async def _one(self, inst: objects.Instance) -> dict[str, Any]:
        cfg = self.cfg
        cluster = cfg.cluster
        run_state = None
        if not self.op.static:
            running = await common.instance_running(self, inst)
            run_state = None if running is None else ("up" if running else "down")
        pnode = cfg.get_node(inst.primary_node)
        group = cfg.get_group(pnode.group) if pnode else None
        snodes = inst.secondary_nodes
        sgroups = []
        for n in snodes:
            snode_obj = cfg.get_node(n)
            sgroups.append(cfg.get_group(snode_obj.group) if snode_obj else None)
        nics = []
        for nic in inst.nics:
            filled = fill_nicparams(cluster, nic.nicparams)
            nics.append(
                [
                    nic.name,
                    nic.uuid,
                    nic.ip,
                    nic.mac,
                    filled[C.NIC_MODE],
                    filled[C.NIC_LINK],
                    filled.get(C.NIC_VLAN, ""),
                    nic.network,
                    None,
                ]
            )
        snode = snodes[0] if snodes else None
        disks = [await self._disk(inst, d, inst.primary_node, snode) for d in inst.disks]
        return {
            "name": inst.name,
            "config_state": inst.admin_state,
            "run_state": run_state,
            "pnode": cfg.node_name(inst.primary_node),
            "pnode_group_uuid": group.uuid if group else None,
            "pnode_group_name": group.name if group else None,
            "snodes": [cfg.node_name(n) for n in snodes],
            "snodes_group_uuids": [g.uuid if g else None for g in sgroups],
            "snodes_group_names": [g.name if g else None for g in sgroups],
            "os": inst.os,
            "network_port": inst.network_port,
            "nics": nics,
            "disk_template": inst.disk_template,
            "disks": disks,
            "hypervisor": inst.hypervisor,
            "hv_instance": dict(inst.hvparams),
            "hv_actual": fill_hvparams(cluster, inst.hypervisor, inst.os, inst.hvparams),
            "be_instance": dict(inst.beparams),
            "be_actual": fill_beparams(cluster, inst.beparams),
            "os_instance": dict(inst.osparams),
            "os_actual": objects.fill_dict(
                cluster.osparams.get(inst.os.split("+")[0], {}), inst.osparams
            ),
            "serial_no": inst.serial_no,
            "mtime": inst.mtime,
            "ctime": inst.ctime,
            "uuid": inst.uuid,
            "tenant": inst.tenant,
        }

    async def exec(self) -> Any:
        result = {}
        for uuid in self.wanted:
            inst = self.cfg.get_instance(uuid)
            if inst is not None:
                result[inst.name] = await self._one(inst)
        return result


@lu_for(opcodes.OpInstanceConsole)
class LUInstanceConsole(InstanceLU):
    op: opcodes.OpInstanceConsole

    async def check_prereq(self) -> None:
        common.check_node_online(self, self.instance.primary_node)

    async def exec(self) -> Any:
        inst = self.instance
        running = await common.instance_running(self, inst)
        node = self.cfg.node_name(inst.primary_node)
        if not running:
            if inst.admin_state == C.ADMINST_UP:
                raise OpExecError(f"Instance {inst.name} is marked to be up but is not running")
            raise OpExecError(f"Instance {inst.name} is down")
        hvp = fill_hvparams(self.cfg.cluster, inst.hypervisor, inst.os, inst.hvparams)
        res = await self.rpc.call(
            "instance_console_info",
            self.ctx.node_target(inst.primary_node),
            inst,
            hvp,
            inst.hypervisor,
            node,
        )
        res.raise_on_fail("Could not get console information")
        info = res.payload
        return {f: getattr(info, f) for f in info.__struct_fields__}
