"""``gnt-cluster verify``: LUClusterVerify, LUClusterVerifyConfig, LUClusterVerifyGroup.

As in Ganeti, OpClusterVerify only submits follow-up jobs: one
OpClusterVerifyConfig job (global checks: config consistency, certificates,
hypervisor parameters, dangling nodes) and one OpClusterVerifyGroup job per
node group (node_verify RPC on every node of the group in parallel, disks,
config copies, node and instance status, orphan volumes, N+1 memory, notes,
post hooks). Each returns True when no ERROR was reported.

Problems are job log lines in Ganeti's format, so scripts parsing ``gnt-cluster
verify`` keep working::

      - ERROR: node node1.example.com: while contacting node: ...
      - ERROR:ENODERPC:node:node1.example.com:while contacting node: ...   (--error-codes)

``ignore_errors`` demotes the listed codes to WARNING; warnings never fail the
verification. ``debug_simulate_errors`` reports every check as failed. A node
that does not answer costs at most the RPC connect timeout: its checks are
skipped with an ENODERPC error, nothing waits for it.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import (
    ALL_SET,
    HTYPE_CLUSTER,
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LEVEL_NODEGROUP,
    NoHooksLU,
    result_with_jobs,
)
from corral.cmdlib.common import device_context
from corral.cmdlib.params import fill_beparams, fill_hvparams, fill_nicparams
from corral.cmdlib.registry import lu_for
from corral.errors import GenericError
from corral.hypervisor import get_hypervisor_class
from corral.rpc.client import RpcResult
from corral.rpc.defs import PROTOCOL_VERSION
from corral.storage.base import SyncStatus

ErrorCode = tuple[str, str]
# Ganeti's CV_* codes: (item type, code)
CV_ECLUSTERCFG: Final = ("cluster", "ECLUSTERCFG")
CV_ECLUSTERCERT: Final = ("cluster", "ECLUSTERCERT")
CV_ECLUSTERFILECHECK: Final = ("cluster", "ECLUSTERFILECHECK")
CV_ECLUSTERDANGLINGNODES: Final = ("cluster", "ECLUSTERDANGLINGNODES")
CV_ECLUSTERDANGLINGINST: Final = ("cluster", "ECLUSTERDANGLINGINST")
CV_EINSTANCEBADNODE: Final = ("instance", "EINSTANCEBADNODE")
CV_EINSTANCEDOWN: Final = ("instance", "EINSTANCEDOWN")
CV_EINSTANCELAYOUT: Final = ("instance", "EINSTANCELAYOUT")
CV_EINSTANCEMISSINGDISK: Final = ("instance", "EINSTANCEMISSINGDISK")
CV_EINSTANCEFAULTYDISK: Final = ("instance", "EINSTANCEFAULTYDISK")
CV_EINSTANCEWRONGNODE: Final = ("instance", "EINSTANCEWRONGNODE")
CV_EINSTANCESPLITGROUPS: Final = ("instance", "EINSTANCESPLITGROUPS")
CV_ENODEFILECHECK: Final = ("node", "ENODEFILECHECK")
CV_ENODEHOOKS: Final = ("node", "ENODEHOOKS")
CV_ENODEHV: Final = ("node", "ENODEHV")
CV_ENODELVM: Final = ("node", "ENODELVM")
CV_ENODEN1: Final = ("node", "ENODEN1")
CV_ENODENET: Final = ("node", "ENODENET")
CV_ENODEORPHANINSTANCE: Final = ("node", "ENODEORPHANINSTANCE")
CV_ENODEORPHANLV: Final = ("node", "ENODEORPHANLV")
CV_ENODERPC: Final = ("node", "ENODERPC")
CV_ENODEVERSION: Final = ("node", "ENODEVERSION")
CV_ENODETIME: Final = ("node", "ENODETIME")

ETYPE_ERROR: Final = "ERROR"
ETYPE_WARNING: Final = "WARNING"
NODE_MAX_CLOCK_SKEW: Final = 150.0
VERIFY_NPLUSONE_MEM: Final = "nplusone_mem"
CERT_EXPIRATION_WARN_DAYS: Final = 30
CERT_EXPIRATION_ERROR_DAYS: Final = 7
HOOKS_PATH: Final = "cluster-verify"
HKR_FAIL: Final = 1


class _VerifyLU(NoHooksLU):
    """Error reporting shared by the verify LUs (Ganeti's _VerifyErrors)."""

    REQ_BGL = False
    op: opcodes.OpClusterVerifyConfig | opcodes.OpClusterVerifyGroup
    bad: bool = False

    def error(self, code: ErrorCode, item: str | None, msg: str, *, warning: bool = False) -> None:
        """Report one problem; an ERROR (not ignored) makes the result False."""
        itype, etxt = code
        ltype = ETYPE_WARNING if warning or etxt in self.op.ignore_errors else ETYPE_ERROR
        if self.op.error_codes:
            line = f"{ltype}:{etxt}:{itype}:{item}:{msg}"
        else:
            line = f"{ltype}: {itype}{' ' + item if item else ''}: {msg}"
        self.feedback(f"  - {line}")
        if ltype == ETYPE_ERROR:
            self.bad = True

    def error_if(
        self, cond: Any, code: ErrorCode, item: str | None, msg: str, *, warning: bool = False
    ) -> None:
        if cond or self.op.debug_simulate_errors:
            self.error(code, item, msg, warning=warning)


# -- LUClusterVerify --------------------------------------------------------------------


@lu_for(opcodes.OpClusterVerify)
class LUClusterVerify(NoHooksLU):
    """Submit the config job and one job per node group; return their ids."""

    REQ_BGL = False
    op: opcodes.OpClusterVerify

    async def check_prereq(self) -> None:
        if self.op.group_name is not None:
            self.cfg.lookup_group(self.op.group_name)

    async def exec(self) -> Any:
        op = self.op
        common: dict[str, Any] = {
            "debug_simulate_errors": op.debug_simulate_errors,
            "error_codes": op.error_codes,
            "ignore_errors": list(op.ignore_errors),
            "verbose": op.verbose,
        }
        jobs: list[list[opcodes.OpCode]] = []
        if op.group_name is not None:
            groups = [self.cfg.nodegroups[self.cfg.lookup_group(op.group_name)].name]
        else:
            groups = [g.name for g in self.cfg.all_groups()]
            jobs.append([opcodes.OpClusterVerifyConfig(**common)])
        for group in groups:
            # relative dependency on the config job, as Ganeti submits it
            depends = [[-len(jobs), []]] if op.group_name is None else None
            jobs.append(
                [
                    opcodes.OpClusterVerifyGroup(
                        group_name=group,
                        skip_checks=list(op.skip_checks),
                        depends=depends,
                        **common,
                    )
                ]
            )
        return result_with_jobs(await self.ctx.submit_jobs(jobs))


# -- LUClusterVerifyConfig ----------------------------------------------------------------


def _format_time(when: datetime.datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _certificate_validity(path: str, cert: Any, now: datetime.datetime) -> tuple[str, str] | None:
    """Ganeti's VerifyX509Certificate: expired / not yet valid / expiring soon."""
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    prefix = f"While verifying {path}: "
    if now > not_after:
        return ETYPE_ERROR, (
            f"{prefix}Certificate is expired (valid from {_format_time(not_before)}"
            f" to {_format_time(not_after)})"
        )
    if now < not_before:
        return ETYPE_WARNING, (
            f"{prefix}Certificate not yet valid (valid from {_format_time(not_before)})"
        )
    days = int((not_after - now).total_seconds() // 86400)
    if days <= CERT_EXPIRATION_ERROR_DAYS:
        return ETYPE_ERROR, f"{prefix}Certificate expires in about {days} days"
    if days <= CERT_EXPIRATION_WARN_DAYS:
        return ETYPE_WARNING, f"{prefix}Certificate expires in about {days} days"
    return None


def check_certificates(
    ca_path: str, node_path: str, now: datetime.datetime | None = None
) -> list[tuple[str, str]]:
    """(ERROR|WARNING, message) for the cluster CA and this node's certificate:
    readable, parseable, within validity, node certificate signed by the CA."""
    from cryptography import x509

    moment = now or datetime.datetime.now(datetime.UTC)
    problems: list[tuple[str, str]] = []
    loaded: dict[str, Any] = {}
    for path in (ca_path, node_path):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            problems.append((ETYPE_ERROR, f"Can't read certificate file {path}: {err}"))
            continue
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as err:
            problems.append((ETYPE_ERROR, f"Failed to load X509 certificate {path}: {err}"))
            continue
        loaded[path] = cert
        validity = _certificate_validity(path, cert, moment)
        if validity is not None:
            problems.append(validity)
    if ca_path in loaded and node_path in loaded:
        try:
            loaded[node_path].verify_directly_issued_by(loaded[ca_path])
        except Exception:
            problems.append(
                (
                    ETYPE_ERROR,
                    f"Certificate {node_path} is not signed by the cluster CA {ca_path}",
                )
            )
    return problems


def hypervisor_parameter_sets(
    cluster: objects.Cluster, instances: Iterable[objects.Instance]
) -> list[tuple[str, str, dict[str, Any] | None, str | None]]:
    """(source, hypervisor, filled params or None, error) of the cluster, each
    OS override and each instance with its own hypervisor parameters."""
    out: list[tuple[str, str, dict[str, Any] | None, str | None]] = []

    def add(source: str, hv: str, os_name: str, own: dict[str, Any]) -> None:
        try:
            out.append((source, hv, fill_hvparams(cluster, hv, os_name, own), None))
        except GenericError as err:
            out.append((source, hv, None, str(err)))

    for hv in cluster.enabled_hypervisors:
        add("cluster", hv, "", {})
    for os_name, per_hv in sorted(cluster.os_hvp.items()):
        for hv, params in sorted(per_hv.items()):
            if params:
                add(f"os {os_name}", hv, os_name, {})
    for inst in instances:
        if inst.hvparams:
            add(f"instance {inst.name}", inst.hypervisor, inst.os, inst.hvparams)
    return out


@lu_for(opcodes.OpClusterVerifyConfig)
class LUClusterVerifyConfig(_VerifyLU):
    """Global checks; needs every lock shared (nothing may change meanwhile)."""

    op: opcodes.OpClusterVerifyConfig

    def expand_names(self) -> None:
        for level in (LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE):
            self.needed_locks[level] = ALL_SET
            self.share_locks[level] = True

    async def exec(self) -> Any:
        self.bad = False
        cfg = self.cfg
        self.feedback("* Verifying cluster config")
        for msg in cfg.verify():
            self.error(CV_ECLUSTERCFG, None, msg)
        if self.op.debug_simulate_errors:
            self.error(CV_ECLUSTERCFG, None, "simulated configuration error")

        self.feedback("* Verifying cluster certificate files")
        paths = self.ctx.paths
        for ltype, msg in await asyncio.to_thread(
            check_certificates, paths.ca_cert, paths.node_cert
        ):
            self.error(CV_ECLUSTERCERT, None, msg, warning=ltype == ETYPE_WARNING)

        self.feedback("* Verifying hypervisor parameters")
        for source, hv, params, err in hypervisor_parameter_sets(cfg.cluster, cfg.all_instances()):
            if err is None and params is not None:
                try:
                    get_hypervisor_class(hv).check_parameter_syntax(params)
                except GenericError as exc:
                    err = str(exc)
            self.error_if(
                err,
                CV_ECLUSTERCFG,
                None,
                f"hypervisor {hv} parameters syntax check (source {source}): {err}",
            )

        self.feedback("* Verifying all nodes belong to an existing group")
        dangling = [n for n in cfg.all_nodes() if n.group not in cfg.nodegroups]
        dangling_uuids = {n.uuid for n in dangling}
        pretty = []
        for node in dangling:
            names = [i.name for i in cfg.all_instances() if i.primary_node == node.uuid]
            pretty.append(f"{node.name} ({', '.join(names)})")
        self.error_if(
            dangling,
            CV_ECLUSTERDANGLINGNODES,
            None,
            "the following nodes (and their instances) belong to a non existing group: "
            + ", ".join(pretty),
        )
        no_node = [
            i.name
            for i in cfg.all_instances()
            if i.primary_node not in cfg.nodes and i.primary_node not in dangling_uuids
        ]
        self.error_if(
            no_node,
            CV_ECLUSTERDANGLINGINST,
            None,
            "the following instances have a non-existing primary-node: " + ", ".join(no_node),
        )
        return not self.bad


# -- LUClusterVerifyGroup -----------------------------------------------------------------


@dataclass
class NodeImage:
    """What the config says about a node and what the node reported."""

    uuid: str
    name: str
    offline: bool = False
    vm_capable: bool = True
    ghost: bool = False
    rpc_fail: bool = False
    hyp_fail: bool = False
    lvm_fail: bool = True
    mem_ok: bool = False
    volumes: set[str] = field(default_factory=set)
    instances: list[str] = field(default_factory=list)  # running (UUIDs)
    pinst: list[str] = field(default_factory=list)
    sinst: list[str] = field(default_factory=list)
    sbp: dict[str, list[str]] = field(default_factory=dict)  # primary -> instances
    mfree: int = 0
    mtotal: int = 0
    mdom0: int = 0


def _disk_nodes(inst: objects.Instance, disk: objects.Disk) -> list[str]:
    if disk.dev_type == C.LD_DRBD8 and len(disk.logical_id) >= 2:
        return list(disk.drbd_nodes())
    return [inst.primary_node]


def instance_lvs_by_node(inst: objects.Instance) -> dict[str, set[str]]:
    """``{node uuid: {"vg/lv", ...}}`` of the logical volumes an instance uses."""
    result: dict[str, set[str]] = {}

    def walk(disk: objects.Disk, nodes: list[str]) -> None:
        if disk.dev_type == C.LD_LV and len(disk.logical_id) == 2:
            for node in nodes:
                result.setdefault(node, set()).add(f"{disk.logical_id[0]}/{disk.logical_id[1]}")
        for child in disk.children:
            walk(child, nodes)

    for disk in inst.disks:
        walk(disk, _disk_nodes(inst, disk))
    return result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return _sha256(fh.read())
    except OSError:
        return None


def _check_error(value: Any) -> str | None:
    """A node_verify slot that crashed on the node is ``{"error": msg}``."""
    if isinstance(value, dict) and set(value) == {"error"}:
        return str(value["error"])
    return None


@lu_for(opcodes.OpClusterVerifyGroup)
class LUClusterVerifyGroup(_VerifyLU):
    """Verify one node group: its nodes, their instances, disks and config copies."""

    op: opcodes.OpClusterVerifyGroup

    # -- locking and prerequisites --------------------------------------------------------
    def expand_names(self) -> None:
        self.group_uuid = self.cfg.lookup_group(self.op.group_name)
        insts = [i.uuid for i in self.cfg.all_instances() if self._in_group(i.primary_node)]
        self.needed_locks[LEVEL_INSTANCE] = insts
        self.needed_locks[LEVEL_NODEGROUP] = [self.group_uuid]
        self.needed_locks[LEVEL_NODE] = []
        for level in (LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE):
            self.share_locks[level] = True

    def _in_group(self, node_uuid: str) -> bool:
        node = self.cfg.get_node(node_uuid)
        return node is not None and node.group == self.group_uuid

    def declare_locks(self, level: int) -> None:
        if level != LEVEL_NODE:
            return
        nodes = set(self.cfg.group_nodes(self.group_uuid))
        for inst_uuid in self.owned_locks(LEVEL_INSTANCE):
            inst = self.cfg.get_instance(inst_uuid)
            if inst is not None:
                nodes.update(inst.secondary_nodes)
        self.needed_locks[LEVEL_NODE] = sorted(nodes)

    async def check_prereq(self) -> None:
        cfg = self.cfg
        group = cfg.get_group(self.group_uuid)
        assert group is not None
        self.group = group
        self.my_nodes = [n for n in cfg.all_nodes() if n.group == self.group_uuid]
        self.my_insts = [i for i in cfg.all_instances() if self._in_group(i.primary_node)]

    # -- main -----------------------------------------------------------------------------
    async def exec(self) -> Any:
        self.bad = False
        cfg = self.cfg
        cluster = cfg.cluster
        self.feedback(f"* Verifying group '{self.group.name}'")
        if not self.my_nodes:
            self.feedback("* Empty node group, skipping verification")
            return True
        hypervisors = list(cluster.enabled_hypervisors) or [C.HT_FAKE]
        lvm = bool(cluster.volume_group_name) and bool(
            set(cluster.enabled_disk_templates) & C.DTS_LVM
        )
        self.bridges = self._expected_bridges()
        files = [self.ctx.paths.ca_cert, self.ctx.paths.config_file]
        online = [n for n in self.my_nodes if not n.offline]
        checks: dict[str, Any] = {
            "version": None,
            "hypervisor": hypervisors,
            "filelist": files,
            "nodelist": {n.name: n.primary_ip for n in online},
            "instancelist": hypervisors,
            "hvinfo": hypervisors[0],
            "time": None,
        }
        if self.bridges:
            checks["bridges"] = sorted(self.bridges)
        if lvm:
            checks["volumes"] = None
        images = self._build_images()

        self.feedback(f"* Gathering data ({len(self.my_nodes)} nodes)")
        self.feedback(f"* Gathering information about nodes ({len(self.my_nodes)} nodes)")
        await cfg.flush()
        config_before = _sha256(cfg.to_json())
        start = time.time()
        targets = self.ctx.node_targets([n.uuid for n in online])
        by_name = await self.rpc.call_multi("node_verify", targets, checks)
        end = time.time()
        config_sums = (config_before, _sha256(cfg.to_json()))
        nvinfo = {n.uuid: by_name.get(n.name) for n in online}

        self.feedback(f"* Gathering disk information ({len(self.my_nodes)} nodes)")
        # nodes that did not answer node_verify are not asked again (each try
        # would cost another connect timeout); their failure is reported once
        unreachable = {
            uuid: str(res.fail_msg)
            for uuid, res in nvinfo.items()
            if res is not None and res.failed and res.unreachable
        }
        instdisk = await self._collect_disk_info(images, set(unreachable))

        self.feedback("* Verifying configuration file consistency")
        self._verify_files(nvinfo, config_sums)

        self.feedback("* Verifying node status")
        n_offline, n_drained = self._verify_nodes(nvinfo, images, start, end, lvm)

        self.feedback("* Verifying instance status")
        non_redundant, non_balanced, i_offline = self._verify_instances(images, instdisk)

        self.feedback("* Verifying orphan volumes")
        if lvm:
            self._verify_orphan_volumes(images)

        if VERIFY_NPLUSONE_MEM not in self.op.skip_checks:
            self.feedback("* Verifying N+1 Memory redundancy")
            self._verify_nplusone(images)

        self.feedback("* Other Notes")
        notes = (
            (non_redundant, "non-redundant instance(s)"),
            (non_balanced, "non-auto-balanced instance(s)"),
            (i_offline, "offline instance(s)"),
            (n_offline, "offline node(s)"),
            (n_drained, "drained node(s)"),
        )
        for count, what in notes:
            if count:
                self.feedback(f"  - NOTICE: {count} {what} found.")

        self.feedback("* Hooks Results")
        await self._run_hooks(online, unreachable)
        return not self.bad

    # -- preparation ----------------------------------------------------------------------
    def _expected_bridges(self) -> set[str]:
        cluster = self.cfg.cluster
        bridges: set[str] = set()
        default = fill_nicparams(cluster, {})
        if default[C.NIC_MODE] == C.NIC_MODE_BRIDGED:
            bridges.add(str(default[C.NIC_LINK]))
        for inst in self.my_insts:
            for nic in inst.nics:
                try:
                    filled = fill_nicparams(cluster, nic.nicparams)
                except GenericError:
                    continue
                if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED and filled[C.NIC_LINK]:
                    bridges.add(str(filled[C.NIC_LINK]))
        return bridges

    def _build_images(self) -> dict[str, NodeImage]:
        cfg = self.cfg
        images = {
            n.uuid: NodeImage(uuid=n.uuid, name=n.name, offline=n.offline, vm_capable=n.vm_capable)
            for n in self.my_nodes
        }
        for inst in self.my_insts:
            for node_uuid in inst.all_nodes:
                if node_uuid not in images:
                    node = cfg.get_node(node_uuid)
                    images[node_uuid] = NodeImage(
                        uuid=node_uuid,
                        name=node.name if node else node_uuid,
                        offline=bool(node and node.offline),
                        vm_capable=node.vm_capable if node else True,
                        ghost=node is None,
                    )
            images[inst.primary_node].pinst.append(inst.uuid)
            for snode in inst.secondary_nodes:
                img = images[snode]
                img.sinst.append(inst.uuid)
                img.sbp.setdefault(inst.primary_node, []).append(inst.uuid)
        return images

    async def _collect_disk_info(
        self, images: dict[str, NodeImage], skip: set[str]
    ) -> dict[str, dict[str, list[tuple[bool, Any]]]]:
        """Mirror status of every active disk on each of its nodes, all in parallel
        (nodes in `skip` are not asked)."""
        cfg = self.cfg
        jobs: list[tuple[str, str, list[objects.Disk]]] = []
        for inst in self.my_insts:
            if not inst.disks_active:
                continue
            per_node: dict[str, list[objects.Disk]] = {}
            for disk in inst.disks:
                for node in _disk_nodes(inst, disk):
                    per_node.setdefault(node, []).append(disk)
            for node, disks in per_node.items():
                img = images.get(node)
                if img is None or img.offline or img.ghost or node in skip:
                    continue
                jobs.append((inst.uuid, node, disks))

        async def one(node: str, disks: list[objects.Disk]) -> RpcResult:
            return await self.rpc.call(
                "blockdev_getmirrorstatus",
                self.ctx.node_target(node),
                disks,
                device_context(cfg, node),
            )

        results = await asyncio.gather(*(one(node, disks) for _, node, disks in jobs))
        instdisk: dict[str, dict[str, list[tuple[bool, Any]]]] = {}
        node_errors: dict[str, str] = {}
        for (inst_uuid, node, disks), res in zip(jobs, results, strict=True):
            if res.failed:
                if res.unreachable or res.offline:
                    node_errors[node] = str(res.fail_msg)
                status: list[tuple[bool, Any]] = [(False, res.fail_msg)] * len(disks)
            else:
                payload = list(res.payload or [])
                status = [
                    (True, st) if isinstance(st, SyncStatus) else (False, "invalid result")
                    for st in payload
                ]
                status += [(False, "no status returned")] * (len(disks) - len(status))
            instdisk.setdefault(inst_uuid, {})[node] = status
        for node, msg in sorted(node_errors.items(), key=lambda kv: images[kv[0]].name):
            self.error(CV_ENODERPC, images[node].name, f"while getting disk information: {msg}")
        return instdisk

    # -- configuration files --------------------------------------------------------------
    def _verify_files(
        self, nvinfo: dict[str, RpcResult | None], config_sums: tuple[str, str]
    ) -> None:
        """CA certificate identical on all nodes; config copy of every master
        candidate equal to the master's config (before or after the RPC, so a
        write that raced with the check is not reported)."""
        cfg = self.cfg
        paths = self.ctx.paths
        master = cfg.cluster.master_node
        master_name = cfg.node_name(master)
        ca_sum = _read_sha256(paths.ca_cert)
        # path -> {checksum: {node names}}; checksum None = missing
        seen: dict[str, dict[str | None, set[str]]] = {paths.ca_cert: {}, paths.config_file: {}}
        if ca_sum is not None:
            seen[paths.ca_cert].setdefault(ca_sum, set()).add(master_name)
        config_master = config_sums[1]
        for node in self.my_nodes:
            res = nvinfo.get(node.uuid)
            if node.offline or res is None or res.failed or not isinstance(res.payload, dict):
                continue
            sums = res.payload.get("filelist")
            if not isinstance(sums, dict) or _check_error(sums) is not None:
                self.error(CV_ENODEFILECHECK, node.name, "Node did not return file checksum data")
                continue
            if node.uuid != master:
                seen[paths.ca_cert].setdefault(sums.get(paths.ca_cert), set()).add(node.name)
            if node.master_candidate and node.uuid != master:
                value = sums.get(paths.config_file)
                if value in config_sums:
                    value = config_master
                seen[paths.config_file].setdefault(value, set()).add(node.name)
        if seen[paths.config_file]:
            seen[paths.config_file].setdefault(config_master, set()).add(master_name)
        for path, variants in seen.items():
            missing = sorted(variants.pop(None, set()))
            self.error_if(
                missing,
                CV_ECLUSTERFILECHECK,
                None,
                f"File {path} is missing from node(s) {', '.join(missing)}",
            )
            sums = sorted(checksum for checksum in variants if checksum is not None)
            if len(sums) > 1 or self.op.debug_simulate_errors:
                desc = "; ".join(
                    f"variant {idx} on {', '.join(sorted(variants[checksum]))}"
                    for idx, checksum in enumerate(sums, start=1)
                )
                self.error(
                    CV_ECLUSTERFILECHECK,
                    None,
                    f"File {path} found with {len(sums)} different checksums ({desc})",
                )

    # -- nodes ------------------------------------------------------------------------------
    def _verify_nodes(
        self,
        nvinfo: dict[str, RpcResult | None],
        images: dict[str, NodeImage],
        start: float,
        end: float,
        lvm: bool,
    ) -> tuple[int, int]:
        cfg = self.cfg
        master = cfg.cluster.master_node
        n_offline = n_drained = 0
        for node in self.my_nodes:
            img = images[node.uuid]
            if node.offline:
                if self.op.verbose:
                    self.feedback(f"* Skipping offline node {node.name}")
                n_offline += 1
                continue
            if node.uuid == master:
                ntype = "master"
            elif node.master_candidate:
                ntype = "master candidate"
            elif node.drained:
                ntype = "drained"
                n_drained += 1
            else:
                ntype = "regular"
            if self.op.verbose:
                self.feedback(f"* Verifying node {node.name} ({ntype})")
            res = nvinfo.get(node.uuid)
            msg = "no answer" if res is None else res.fail_msg
            self.error_if(msg, CV_ENODERPC, node.name, f"while contacting node: {msg}")
            if msg or res is None:
                img.rpc_fail = True
                continue
            result = res.payload
            if not self._verify_node_basics(node, result):
                img.rpc_fail = True
                continue
            assert isinstance(result, dict)
            self._verify_node_time(node, result.get("time"), start, end)
            failures = result.get("nodelist")
            if isinstance(failures, dict) and _check_error(failures) is None:
                for other in sorted(failures):
                    self.error(
                        CV_ENODENET,
                        node.name,
                        f"tcp communication with node '{other}': {failures[other]}",
                    )
            else:
                self.error(
                    CV_ENODENET, node.name, "node hasn't returned node tcp connectivity data"
                )
            if img.vm_capable:
                self._update_node_runtime(node, result, img, lvm)
        return n_offline, n_drained

    def _verify_node_basics(self, node: objects.Node, result: Any) -> bool:
        if not isinstance(result, dict) or not result:
            self.error(CV_ENODERPC, node.name, "unable to verify node: no data returned")
            return False
        version = result.get("version")
        if not (isinstance(version, list | tuple) and len(version) == 2):
            self.error(CV_ENODERPC, node.name, "connection to node returned invalid data")
            return False
        if version[0] != PROTOCOL_VERSION:
            self.error(
                CV_ENODEVERSION,
                node.name,
                f"incompatible protocol versions: master {PROTOCOL_VERSION}, node {version[0]}",
            )
            return False
        self.error_if(
            version[1] != C.RELEASE_VERSION,
            CV_ENODEVERSION,
            node.name,
            f"software version mismatch: master {C.RELEASE_VERSION}, node {version[1]}",
            warning=True,
        )
        hv_result = result.get("hypervisor")
        if node.vm_capable and isinstance(hv_result, dict) and _check_error(hv_result) is None:
            for hv_name, hv_err in sorted(hv_result.items()):
                self.error_if(
                    hv_err is not None,
                    CV_ENODEHV,
                    node.name,
                    f"hypervisor {hv_name} verify failure: '{hv_err}'",
                )
        return True

    def _verify_node_time(self, node: objects.Node, ntime: Any, start: float, end: float) -> None:
        if not isinstance(ntime, int | float) or isinstance(ntime, bool):
            self.error(CV_ENODETIME, node.name, "Node returned invalid time")
            return
        diff: str | None = None
        if ntime < start - NODE_MAX_CLOCK_SKEW:
            diff = f"{abs(start - ntime):.1f}s"
        elif ntime > end + NODE_MAX_CLOCK_SKEW:
            diff = f"{abs(ntime - end):.1f}s"
        self.error_if(
            diff is not None,
            CV_ENODETIME,
            node.name,
            f"Node time diverges by at least {diff} from master node time",
        )

    def _update_node_runtime(
        self, node: objects.Node, result: dict[str, Any], img: NodeImage, lvm: bool
    ) -> None:
        cfg = self.cfg
        # volumes
        if lvm:
            vols = result.get("volumes")
            if isinstance(vols, list):
                img.volumes = {
                    f"{v.get('vg')}/{v.get('name')}" for v in vols if isinstance(v, dict)
                }
                img.lvm_fail = False
            else:
                err = _check_error(vols) or "rpc call to node failed (lvlist)"
                self.error(CV_ENODELVM, node.name, f"LVM problem on node: {err}")
        # running instances
        idata = result.get("instancelist")
        if isinstance(idata, list):
            running = []
            for name in idata:
                inst = cfg.get_instance_by_name(str(name))
                running.append(inst.uuid if inst is not None else str(name))
            img.instances = running
        else:
            img.hyp_fail = True
            self.error(
                CV_ENODEHV,
                node.name,
                f"rpc call to node failed (instancelist): {_check_error(idata) or idata}",
            )
        # memory
        hv_info = result.get("hvinfo")
        try:
            assert isinstance(hv_info, dict)
            img.mfree = int(hv_info["memory_free"])
            img.mtotal = int(hv_info["memory_total"])
            img.mdom0 = int(hv_info.get("memory_dom0", 0))
            img.mem_ok = True
        except (AssertionError, KeyError, TypeError, ValueError):
            self.error(CV_ENODEHV, node.name, "rpc call to node failed (hvinfo)")
        # bridges
        if self.bridges:
            missing = result.get("bridges")
            if not isinstance(missing, list):
                self.error(CV_ENODENET, node.name, "did not return valid bridge information")
            else:
                self.error_if(
                    missing,
                    CV_ENODENET,
                    node.name,
                    f"missing bridges: {', '.join(sorted(map(str, missing)))}",
                )
        # instances that run here but should not
        for inst_uuid in sorted(set(img.instances) - set(img.pinst)):
            inst = cfg.get_instance(inst_uuid)
            if inst is not None:
                self.error(
                    CV_EINSTANCEWRONGNODE, inst.name, f"instance should not run on node {node.name}"
                )
            else:
                self.error(
                    CV_ENODEORPHANINSTANCE,
                    node.name,
                    f"node is running unknown instance {inst_uuid}",
                )

    # -- instances --------------------------------------------------------------------------
    def _verify_instances(
        self,
        images: dict[str, NodeImage],
        instdisk: dict[str, dict[str, list[tuple[bool, Any]]]],
    ) -> tuple[int, int, int]:
        cfg = self.cfg
        non_redundant = non_balanced = offline = 0
        for inst in self.my_insts:
            if self.op.verbose:
                self.feedback(f"* Verifying instance {inst.name}")
            self._verify_instance(inst, images, instdisk.get(inst.uuid, {}))
            if inst.disk_template not in C.DTS_MIRRORED:
                non_redundant += 1
            try:
                if not fill_beparams(cfg.cluster, inst.beparams)[C.BE_AUTO_BALANCE]:
                    non_balanced += 1
            except GenericError:
                pass
            if inst.admin_state == C.ADMINST_OFFLINE:
                offline += 1
        return non_redundant, non_balanced, offline

    def _verify_instance(
        self,
        inst: objects.Instance,
        images: dict[str, NodeImage],
        diskstatus: dict[str, list[tuple[bool, Any]]],
    ) -> None:
        cfg = self.cfg
        pimg = images[inst.primary_node]
        pname = pimg.name
        for node_uuid, volumes in sorted(instance_lvs_by_node(inst).items()):
            img = images.get(node_uuid)
            if img is None or img.offline or img.rpc_fail or img.lvm_fail:
                continue
            for volume in sorted(volumes - img.volumes):
                self.error(
                    CV_EINSTANCEMISSINGDISK,
                    inst.name,
                    f"volume {volume} missing on node {img.name}",
                )
        if inst.admin_state == C.ADMINST_UP:
            self.error_if(
                inst.uuid not in pimg.instances and not pimg.offline,
                CV_EINSTANCEDOWN,
                inst.name,
                f"instance not running on its primary node {pname}",
            )
            self.error_if(
                pimg.offline,
                CV_EINSTANCEBADNODE,
                inst.name,
                f"instance is marked as running and lives on offline node {pname}",
            )
        elif inst.uuid in pimg.instances:
            self.error(
                CV_EINSTANCEDOWN,
                inst.name,
                f"instance is running on its primary node {pname} but is marked down",
                warning=True,
            )
        for node_uuid, statuses in sorted(diskstatus.items()):
            nimg = images[node_uuid]
            bad_node = nimg.ghost or nimg.offline or nimg.rpc_fail
            for idx, (ok, status) in enumerate(statuses):
                self.error_if(
                    inst.disks_active and not ok and not bad_node,
                    CV_EINSTANCEFAULTYDISK,
                    inst.name,
                    f"couldn't retrieve status for disk/{idx} on {nimg.name}: {status}",
                )
                if inst.disks_active and ok and status.is_degraded:
                    lds = status.ldisk_status
                    self.error(
                        CV_EINSTANCEFAULTYDISK,
                        inst.name,
                        f"disk/{idx} on {nimg.name} is degraded; local disk state is '{lds}'",
                        warning=lds in ("ok", "syncing"),
                    )
        self.error_if(
            pimg.rpc_fail and not pimg.offline,
            CV_ENODERPC,
            pname,
            f"instance {inst.name}, connection to primary node failed",
        )
        secondaries = inst.secondary_nodes
        self.error_if(
            len(secondaries) > 1,
            CV_EINSTANCELAYOUT,
            inst.name,
            "instance has multiple secondary nodes: "
            + ", ".join(cfg.node_name(n) for n in secondaries),
            warning=True,
        )
        groups: dict[str, list[str]] = {}
        for node_uuid in inst.all_nodes:
            node = cfg.get_node(node_uuid)
            groups.setdefault(node.group if node else "", []).append(images[node_uuid].name)
        if len(groups) > 1:
            pretty = ", ".join(
                f"{', '.join(names)} (group {cfg.nodegroups[g].name if g in cfg.nodegroups else g})"
                for g, names in groups.items()
            )
            self.error(
                CV_EINSTANCESPLITGROUPS,
                inst.name,
                f"instance has primary and secondary nodes in different groups: {pretty}",
                warning=True,
            )
        offline_sec = []
        for snode in secondaries:
            simg = images[snode]
            self.error_if(
                simg.rpc_fail and not simg.offline,
                CV_ENODERPC,
                simg.name,
                f"instance {inst.name}, connection to secondary node failed",
            )
            if simg.offline:
                offline_sec.append(simg.name)
        self.error_if(
            offline_sec,
            CV_EINSTANCEBADNODE,
            inst.name,
            f"instance has offline secondary node(s) {', '.join(offline_sec)}",
        )
        for node_uuid in inst.all_nodes:
            img = images[node_uuid]
            self.error_if(
                img.ghost,
                CV_EINSTANCEBADNODE,
                inst.name,
                f"instance lives on ghost node {img.name}",
            )
            self.error_if(
                not img.vm_capable,
                CV_EINSTANCEBADNODE,
                inst.name,
                f"instance lives on non-vm_capable node {img.name}",
            )

    # -- volumes and memory -----------------------------------------------------------------
    def _verify_orphan_volumes(self, images: dict[str, NodeImage]) -> None:
        cfg = self.cfg
        vg = cfg.cluster.volume_group_name
        should: dict[str, set[str]] = {}
        for inst in cfg.all_instances():
            for node_uuid, volumes in instance_lvs_by_node(inst).items():
                should.setdefault(node_uuid, set()).update(volumes)
        reserved = []
        for pattern in cfg.cluster.reserved_lvs:
            try:
                reserved.append(re.compile(pattern))
            except re.error:
                continue
        for node in self.my_nodes:
            img = images[node.uuid]
            if img.offline or img.rpc_fail or img.lvm_fail:
                continue
            for volume in sorted(img.volumes):
                if volume.split("/")[0] != vg:
                    continue
                if volume in should.get(node.uuid, set()):
                    continue
                if any(r.fullmatch(volume) for r in reserved):
                    continue
                self.error(CV_ENODEORPHANLV, node.name, f"volume {volume} is unknown", warning=True)

    def _verify_nplusone(self, images: dict[str, NodeImage]) -> None:
        """Every secondary must hold the auto-balanced instances of any one failed primary."""
        cfg = self.cfg
        cluster = cfg.cluster
        policy = objects.fill_dict(objects.default_ipolicy(), cluster.ipolicy)
        policy = objects.fill_dict(policy, self.group.ipolicy)
        ratio = float(policy.get("memory-ratio", 1.0))
        for node in self.my_nodes:
            img = images[node.uuid]
            if img.offline or img.rpc_fail or not img.mem_ok:
                continue
            for prinode, inst_uuids in sorted(img.sbp.items()):
                needed = 0
                for inst_uuid in inst_uuids:
                    inst = cfg.get_instance(inst_uuid)
                    if inst is None:
                        continue
                    bep = fill_beparams(cluster, inst.beparams)
                    if bep[C.BE_AUTO_BALANCE]:
                        needed += int(bep[C.BE_MINMEM])
                threshold = (img.mtotal - img.mdom0) * (ratio - 1)
                self.error_if(
                    img.mfree - needed < threshold,
                    CV_ENODEN1,
                    node.name,
                    "not enough memory to accomodate instance failovers should node"
                    f" {cfg.node_name(prinode)} fail ({needed}MiB needed,"
                    f" {img.mfree}MiB available)",
                )

    # -- hooks ------------------------------------------------------------------------------
    async def _run_hooks(self, online: list[objects.Node], unreachable: dict[str, str]) -> None:
        """Run the cluster-verify post hooks on the group's nodes; failures are ERRORs.

        Nodes that were unreachable for node_verify are reported, not retried."""
        cfg = self.cfg
        if not online:
            return
        master = cfg.get_node(cfg.cluster.master_node)
        env: dict[str, str] = {
            "GANETI_HOOKS_VERSION": "2",
            "GANETI_OP_CODE": self.op.op_id(),
            "GANETI_OBJECT_TYPE": HTYPE_CLUSTER,
            "GANETI_HOOKS_PHASE": "post",
            "GANETI_HOOKS_PATH": HOOKS_PATH,
            "GANETI_CLUSTER": cfg.cluster.cluster_name,
            "GANETI_MASTER": master.name if master else "",
            "GANETI_DATA_DIR": self.ctx.paths.data_dir,
            "GANETI_CLUSTER_TAGS": " ".join(sorted(cfg.cluster.tags)),
        }
        for node in self.my_nodes:
            env[f"GANETI_NODE_TAGS_{node.name}"] = " ".join(sorted(node.tags))
        targets = self.ctx.node_targets([n.uuid for n in online if n.uuid not in unreachable])
        results = await self.rpc.call_multi("run_hooks", targets, HOOKS_PATH, "post", env)
        for uuid, msg in unreachable.items():
            name = cfg.node_name(uuid)
            results[name] = RpcResult(node=name, fail_msg=msg, unreachable=True)
        for name in sorted(results):
            res = results[name]
            if res.offline:
                continue
            if res.failed:
                self.error(
                    CV_ENODEHOOKS, name, f"Communication failure in hooks execution: {res.fail_msg}"
                )
                continue
            for script, status, output in res.payload or []:
                if status != HKR_FAIL:
                    continue
                self.error(CV_ENODEHOOKS, name, f"Script {script} failed, output:")
                self.feedback(re.sub("^", "      ", str(output), flags=re.M))
