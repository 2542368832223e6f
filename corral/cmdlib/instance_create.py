"""LUInstanceCreate: `gnt-instance add`.

Order of work, each step undone if a later one fails (so a failed create
leaves no disk, no config entry and no reservation behind):

1. prerequisites: name free, template enabled, parameters valid, nodes chosen
   (by the iallocator unless ``-n`` is given), nodes usable, OS present on the
   primary, enough memory (when starting) and disk on the nodes, bridges exist;
2. disks created on every node (secondary first);
3. instance added to the configuration;
4. mirrored disks synced (progress lines as Ganeti prints them);
5. OS create script run on the primary (unless ``--no-install``);
6. instance started (unless ``--no-start``).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common, iallocator
from corral.cmdlib.base import (
    ALL_SET,
    HTYPE_INSTANCE,
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LEVEL_NODE_RES,
    LogicalUnit,
)
from corral.cmdlib.instance_storage import DiskSpec, generate_disks, required_disk_space
from corral.cmdlib.params import (
    check_beparams,
    check_hvparams,
    fill_beparams,
    fill_hvparams,
    fill_nicparams,
)
from corral.cmdlib.registry import lu_for
from corral.errors import (
    ECODE_EXISTS,
    ECODE_INVAL,
    ECODE_NOTUNIQUE,
    ECODE_RESOLVER,
    ECODE_STATE,
    OpExecError,
    OpPrereqError,
)
from corral.utils.units import format_unit


def _resolve(name: str) -> tuple[str, str]:
    """(fqdn, ip) of a host name; raise OpPrereqError like Ganeti's resolver."""
    try:
        fqdn, _aliases, ips = socket.gethostbyname_ex(name)
    except OSError as exc:
        raise OpPrereqError(f"Host name {name} could not be resolved", ECODE_RESOLVER) from exc
    return fqdn, ips[0]


def _port_open(ip: str, port: int = C.NODED_PORT, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


@lu_for(opcodes.OpInstanceCreate)
class LUInstanceCreate(LogicalUnit):
    HPATH = "instance-add"
    HTYPE = HTYPE_INSTANCE
    REQ_BGL = False

    op: opcodes.OpInstanceCreate

    def check_arguments(self) -> None:
        op = self.op
        if op.mode != "create":
            raise OpPrereqError(f"Unsupported instance creation mode '{op.mode}'", ECODE_INVAL)
        if op.disk_template not in C.DISK_TEMPLATES:
            raise OpPrereqError(f"Invalid disk template '{op.disk_template}'", ECODE_INVAL)
        if op.iallocator and op.pnode:
            raise OpPrereqError(
                "One and only one of iallocator and primary node must be given", ECODE_INVAL
            )
        if op.ip_check and not op.name_check:
            raise OpPrereqError("Cannot do IP address check without a name check", ECODE_INVAL)
        if op.disk_template == C.DT_DISKLESS and op.disks:
            raise OpPrereqError("Diskless instances cannot have disks", ECODE_INVAL)
        if op.disk_template != C.DT_DISKLESS and not op.disks:
            raise OpPrereqError("No disks given for a non-diskless instance", ECODE_INVAL)
        self.disk_specs = [DiskSpec.parse(d, i) for i, d in enumerate(op.disks)]
        if op.disk_template in C.DTS_INT_MIRROR and op.pnode and not op.snode:
            raise OpPrereqError("The networked disk templates need a mirror node", ECODE_INVAL)
        if op.disk_template not in C.DTS_INT_MIRROR and op.snode:
            self.op.snode = None  # Ganeti ignores it with a warning
        if not op.os_type and not op.no_install:
            raise OpPrereqError("No guest OS or OS variant specified", ECODE_INVAL)
        self.beparams = check_beparams(dict(op.beparams))

    def expand_names(self) -> None:
        op = self.op
        self.instance_name = op.instance_name
        self.pnode_uuid: str | None = None
        self.snode_uuid: str | None = None
        self.check_ip: str | None = None
        # the name check (DNS) runs in check_prereq, off the event loop
        if self.cfg.get_instance_by_name(self.instance_name) is not None:
            raise OpPrereqError(
                f"Instance '{self.instance_name}' is already in the cluster", ECODE_EXISTS
            )
        # Instances are locked by UUID; a new instance has none yet, so lock its name.
        self.needed_locks[LEVEL_INSTANCE] = [f"name:{self.instance_name}"]
        if op.pnode:
            self.pnode_uuid, _ = self.cfg.expand_node_name(op.pnode)
            nodes = [self.pnode_uuid]
            if op.snode:
                self.snode_uuid, _ = self.cfg.expand_node_name(op.snode)
                nodes.append(self.snode_uuid)
            self.needed_locks[LEVEL_NODE] = sorted(nodes)
            self.needed_locks[LEVEL_NODE_RES] = sorted(nodes)
        else:
            self.needed_locks[LEVEL_NODE] = ALL_SET
            self.needed_locks[LEVEL_NODE_RES] = ALL_SET
        # Creations share the node locks, so many instances can be created on a
        # node at once (operations that change a node as a whole -- migrate,
        # failover, node modify -- still take them exclusively). Concurrent
        # creations may both pass the free-memory/disk check; the node itself
        # refuses what does not fit (the hypervisor on start, the storage on
        # disk creation) and the loser rolls back cleanly.
        self.share_locks[LEVEL_NODE] = True
        self.share_locks[LEVEL_NODE_RES] = True

    async def check_prereq(self) -> None:
        op = self.op
        cfg = self.cfg
        cluster = cfg.cluster
        if op.name_check:
            self.instance_name, self.check_ip = await asyncio.to_thread(_resolve, op.instance_name)
        if cfg.get_instance_by_name(self.instance_name) is not None:
            raise OpPrereqError(
                f"Instance '{self.instance_name}' is already in the cluster", ECODE_EXISTS
            )
        if op.disk_template not in cluster.enabled_disk_templates:
            raise OpPrereqError(
                f"Disk template '{op.disk_template}' is not enabled in cluster."
                f" Enabled disk templates are: {','.join(cluster.enabled_disk_templates)}"
                # no error code: Ganeti 3.0 prints this one without "error type"
            )
        self.hv_name = op.hypervisor or cluster.enabled_hypervisors[0]
        if self.hv_name not in cluster.enabled_hypervisors:
            raise OpPrereqError(
                f"Selected hypervisor ({self.hv_name}) not enabled in the cluster"
                f" ({','.join(cluster.enabled_hypervisors)})",
                ECODE_STATE,
            )
        self.filled_be = fill_beparams(cluster, self.beparams)
        self.filled_hv = fill_hvparams(cluster, self.hv_name, op.os_type or "", dict(op.hvparams))
        check_hvparams(self.hv_name, self.filled_hv)
        # NICs
        self.nics: list[objects.NIC] = []
        for idx, spec in enumerate(op.nics or [{}]):
            params = {
                k: spec[k] for k in (C.NIC_MODE, C.NIC_LINK, C.NIC_VLAN) if spec.get(k) is not None
            }
            fill_nicparams(cluster, params)
            mac = spec.get("mac") or "auto"
            if mac not in ("auto", "generate"):
                cfg.reserve_mac(str(mac), self.ctx.job_id)
            else:
                mac = cfg.generate_mac(self.ctx.job_id)
            self.nics.append(
                objects.NIC(
                    mac=str(mac).lower(),
                    ip=spec.get("ip") or None,
                    name=spec.get("name"),
                    nicparams=params,
                )
            )
            del idx
        if self.check_ip and op.ip_check and await asyncio.to_thread(_port_open, self.check_ip):
            raise OpPrereqError(
                f"IP {self.check_ip} of instance {self.instance_name} already in use",
                ECODE_NOTUNIQUE,
            )
        # Node selection
        if not op.pnode:
            await self._run_allocator()
        assert self.pnode_uuid is not None
        common.check_node_usable(self, self.pnode_uuid)
        if op.disk_template in C.DTS_INT_MIRROR:
            if self.snode_uuid is None:
                raise OpPrereqError("The networked disk templates need a mirror node", ECODE_INVAL)
            if self.snode_uuid == self.pnode_uuid:
                raise OpPrereqError("The secondary node cannot be the primary node", ECODE_INVAL)
            common.check_node_usable(self, self.snode_uuid)
        nodes = [self.pnode_uuid] + ([self.snode_uuid] if self.snode_uuid else [])
        # The node checks are independent: ask the nodes at once, then report
        # the first failure in Ganeti's order (OS, disk, memory, bridges).
        links = common.bridged_links(cluster, self.nics)
        checks = []
        if op.os_type and not op.no_install:
            checks.append(self._check_os(self.pnode_uuid))
        checks.append(self._check_resources(nodes))
        checks.append(common.check_bridges(self, links, self.pnode_uuid))
        if self.snode_uuid and op.disk_template in C.DTS_INT_MIRROR:
            checks.append(common.check_bridges(self, links, self.snode_uuid))
        for outcome in await asyncio.gather(*checks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def _check_os(self, node_uuid: str) -> None:
        target = self.ctx.node_target(node_uuid)
        res = await self.rpc.call("os_validate", target, self.op.os_type, dict(self.op.osparams))
        if res.failed:
            raise OpExecError(
                f"OS Parameters validation failed on node {target.name}: {res.fail_msg}"
            )

    async def _check_resources(self, nodes: list[str]) -> None:
        """Disk on every node, memory on the primary when starting: one node_info."""
        assert self.pnode_uuid is not None
        space = required_disk_space(self.op.disk_template, self.disk_specs)
        if space <= 0 and not self.op.start:
            return
        failures: dict[str, str] = {}
        infos = await common.gather_node_info(self.ctx, nodes, self.hv_name, failures)
        common.verify_free_disk(self, infos, failures, nodes, space)
        if self.op.start:
            common.verify_free_memory(
                self,
                infos,
                failures,
                self.pnode_uuid,
                f"starting instance {self.instance_name}",
                int(self.filled_be[C.BE_MAXMEM]),
            )

    async def _run_allocator(self) -> None:
        op = self.op
        cfg = self.cfg
        name = op.iallocator or cfg.cluster.default_iallocator
        if not name:
            raise OpPrereqError(
                "No iallocator or primary node given and no cluster-wide default"
                " iallocator found; please specify either an iallocator or a node,"
                " or set a cluster-wide default iallocator",
                ECODE_INVAL,
            )
        live = await common.gather_node_info(
            self.ctx, [n.uuid for n in cfg.all_nodes()], self.hv_name
        )
        request = iallocator.allocate_request(
            name=self.instance_name,
            disk_template=op.disk_template,
            disks=[{"size": s.size, "mode": s.mode, "spindles": None} for s in self.disk_specs],
            nics=[
                {
                    "mac": n.mac,
                    "ip": n.ip,
                    "mode": n.nicparams.get(C.NIC_MODE),
                    "link": n.nicparams.get(C.NIC_LINK),
                }
                for n in self.nics
            ],
            memory=int(self.filled_be[C.BE_MAXMEM]),
            vcpus=int(self.filled_be[C.BE_VCPUS]),
            spindle_use=int(self.filled_be[C.BE_SPINDLE_USE]),
            os_name=op.os_type or "",
            tags=list(op.tags),
            hypervisor=self.hv_name,
        )
        document = iallocator.build_request(cfg.data, live, request)
        answer = await iallocator.run_allocator(name, document)
        chosen = iallocator.allocated_nodes(name, answer, int(request["required_nodes"]))
        self.log_info(
            f"Selected nodes for instance {self.instance_name} via allocator {name}:"
            f" {', '.join(chosen)}"
        )
        self.pnode_uuid, _ = cfg.expand_node_name(chosen[0])
        self.snode_uuid = cfg.expand_node_name(chosen[1])[0] if len(chosen) > 1 else None

    def build_hooks_env(self) -> dict[str, Any]:
        return {
            "INSTANCE_NAME": self.instance_name,
            "INSTANCE_PRIMARY": self.cfg.node_name(self.pnode_uuid or ""),
            "INSTANCE_DISK_TEMPLATE": self.op.disk_template,
            "INSTANCE_OS_TYPE": self.op.os_type or "",
        }

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        nodes = [self.cfg.cluster.master_node]
        if self.pnode_uuid:
            nodes.append(self.pnode_uuid)
        if self.snode_uuid:
            nodes.append(self.snode_uuid)
        return nodes, nodes

    async def exec(self) -> Any:
        op = self.op
        cfg = self.cfg
        job = self.ctx.job_id
        assert self.pnode_uuid is not None
        inst_uuid = cfg.generate_unique_id(job)
        network_port = cfg.allocate_port(job) if self.hv_name in (C.HT_KVM, C.HT_FAKE) else None
        pnode, snode = self.pnode_uuid, self.snode_uuid

        def alloc_drbd() -> tuple[int, int, int, str]:
            assert snode is not None
            port = cfg.allocate_port(job)
            minor_p, minor_s = cfg.allocate_drbd_minors([pnode, snode], job)
            return port, minor_p, minor_s, cfg.generate_drbd_secret(job)

        disks = generate_disks(
            op.disk_template,
            self.instance_name,
            inst_uuid,
            self.disk_specs,
            pnode,
            snode,
            file_storage_dir=op.file_storage_dir or cfg.cluster.file_storage_dir,
            shared_file_storage_dir=cfg.cluster.shared_file_storage_dir,
            vg_name=cfg.cluster.volume_group_name,
            allocate_drbd=alloc_drbd if op.disk_template == C.DT_DRBD8 else None,
        )
        for disk in disks:
            disk.uuid = disk.uuid or cfg.generate_unique_id(job)
        inst = objects.Instance(
            name=self.instance_name,
            uuid=inst_uuid,
            primary_node=pnode,
            os=op.os_type or "",
            hypervisor=self.hv_name,
            hvparams=dict(op.hvparams),
            beparams=dict(self.beparams),
            osparams=dict(op.osparams),
            osparams_private=dict(op.osparams_private),
            admin_state=C.ADMINST_DOWN,
            nics=self.nics,
            disks=disks,
            disk_template=op.disk_template,
            network_port=network_port,
            tags=list(op.tags),
            tenant=op.tenant,
        )
        for idx, disk in enumerate(disks):
            self.feedback(f"* disk {idx}, size {format_unit(disk.size, 'h')}")
        if disks:
            self.feedback("* creating instance disks...")
            await common.create_disks(self, inst)
        self.feedback(f"adding instance {inst.name} to cluster config")
        await cfg.add_instance(inst)

        async def forget() -> None:
            if cfg.get_instance(inst.uuid) is not None:
                await cfg.remove_instance(inst.uuid)

        self.ctx.on_rollback(forget)
        if disks:
            self.feedback("adding disks to cluster config")
        stored = cfg.get_instance(inst.uuid)
        assert stored is not None
        disk_infos: list[dict[str, Any]] = []
        if disks:
            disk_infos = await common.assemble_disks(self, stored)
            await cfg.set_disks_active(stored.uuid, True)
            if op.disk_template not in C.DTS_INT_MIRROR:
                # nothing to resync: Ganeti still reports it, without asking the node
                self.log_info(f"Waiting for instance {stored.name} to sync disks")
                self.log_info(f"Instance {stored.name}'s disks are in sync")
            elif op.wait_for_sync:
                in_sync = await common.wait_for_sync(self, stored)
                if not in_sync and op.disk_template in C.DTS_INT_MIRROR:
                    raise OpExecError("There are some degraded disks for this instance")
        if op.os_type and not op.no_install:
            self.feedback("* running the instance OS create scripts...")
            target = self.ctx.node_target(pnode)
            res = await self.rpc.call(
                "instance_os_add",
                target,
                stored,
                [str(d.get("path") or "") for d in disk_infos],
                False,
                op.debug_level,
            )
            if res.failed:
                raise OpExecError(
                    f"Could not add os for instance {inst.name} on node {target.name}:"
                    f" {res.fail_msg}"
                )
        if op.start:
            self.feedback("* starting instance...")
            await common.start_instance(
                self, stored, check_memory=False, disk_infos=disk_infos or None
            )
            await cfg.set_instance_admin_state(stored.uuid, C.ADMINST_UP, C.ADMINST_SOURCE_ADMIN)
        elif disks:
            await common.shutdown_disks(self, stored)
            await cfg.set_disks_active(stored.uuid, False)
        return [cfg.node_name(n) for n in stored.all_nodes]
