"""Helpers shared by the logical units: node data, disks, start/stop, checks.

Everything here talks to nodes only through ``lu.rpc`` (table-driven node RPC)
and to the configuration only through ``lu.cfg``. Messages follow Ganeti's
wording so users and scripts see familiar errors.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from corral import constants as C
from corral import objects
from corral.errors import (
    ECODE_ENVIRON,
    ECODE_NORES,
    ECODE_STATE,
    OpExecError,
    OpPrereqError,
)
from corral.hypervisor.base import BlockDeviceInfo, InstanceStartSpec, NicInfo
from corral.storage.base import DeviceContext

if TYPE_CHECKING:
    from corral.cmdlib.base import LogicalUnit, MasterContext


# -- nodes ------------------------------------------------------------------------


def check_node_online(lu: LogicalUnit, node_uuid: str, msg: str | None = None) -> None:
    node = lu.cfg.get_node(node_uuid)
    if node is None:
        raise OpPrereqError(f"Node '{node_uuid}' not known", "unknown_entity")
    if node.offline:
        raise OpPrereqError(
            f"{msg or 'Can not use offline node'}: {node.name}".replace(
                "Can not use offline node: ", "Can't use offline node "
            ),
            ECODE_STATE,
        )


def check_node_usable(lu: LogicalUnit, node_uuid: str) -> None:
    """Online, not drained, vm capable (Ganeti's CheckNodeOnline/NotDrained/VmCapable)."""
    node = lu.cfg.get_node(node_uuid)
    assert node is not None
    if node.offline:
        raise OpPrereqError(f"Can't use offline node {node.name}", ECODE_STATE)
    if node.drained:
        raise OpPrereqError(f"Can't use drained node {node.name}", ECODE_STATE)
    if not node.vm_capable:
        raise OpPrereqError(f"Can't use non-vm_capable node {node.name}", ECODE_STATE)


def flatten_node_info(payload: dict[str, Any], vg_name: str | None) -> dict[str, Any]:
    """node_info payload -> flat dict with storage_size/storage_free of the unit
    that holds instance disks (the VG when one is configured, else file storage)."""
    flat = dict(payload)
    storage = payload.get("storage") or []
    chosen: dict[str, Any] | None = None
    for unit in storage:
        if vg_name and unit.get("type") == "lvm-vg":
            chosen = unit
            break
    if chosen is None:
        for unit in storage:
            if unit.get("type") == C.DT_FILE:
                chosen = unit
                break
    if chosen is None and storage:
        chosen = storage[0]
    flat["storage_size"] = int(chosen["storage_size"]) if chosen else 0
    flat["storage_free"] = int(chosen["storage_free"]) if chosen else 0
    return flat


async def gather_node_info(
    ctx: MasterContext,
    node_uuids: list[str],
    hv_name: str | None = None,
    failures: dict[str, str] | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Live resources of the given nodes (None for offline/unreachable ones).

    When `failures` is given it receives, per node that gave no data, why.
    """
    cfg = ctx.cfg
    hv = hv_name or (cfg.cluster.enabled_hypervisors or [C.HT_FAKE])[0]
    vg = cfg.cluster.volume_group_name
    targets = [ctx.node_target(u) for u in node_uuids]
    online = [t for t in targets if not t.offline]
    results = await ctx.rpc.call_multi("node_info", online, vg, [hv]) if online else {}
    out: dict[str, dict[str, Any] | None] = {}
    for uuid, target in zip(node_uuids, targets, strict=True):
        res = results.get(target.name)
        if res is None or res.failed or not isinstance(res.payload, dict):
            out[uuid] = None
            if failures is not None:
                why = "Node is marked offline" if target.offline else "no answer"
                if res is not None:
                    why = res.fail_msg or f"invalid answer {res.payload!r}"
                failures[uuid] = why
        else:
            out[uuid] = flatten_node_info(res.payload, vg)
    return out


NodeInfos = dict[str, dict[str, Any] | None]


def verify_free_memory(
    lu: LogicalUnit,
    infos: NodeInfos,
    failures: dict[str, str],
    node_uuid: str,
    reason: str,
    requested: int,
) -> None:
    """Ganeti's CheckNodeFreeMemory on already gathered node data."""
    info = infos.get(node_uuid)
    name = lu.cfg.node_name(node_uuid)
    if info is None:
        raise OpPrereqError(
            f"Can't get data from node {name}: {failures.get(node_uuid)}", ECODE_ENVIRON
        )
    free = int(info.get("memory_free", 0))
    if requested > free:
        raise OpPrereqError(
            f"Not enough memory on node {name} for {reason}:"
            f" needed {requested} MiB, available {free} MiB",
            ECODE_NORES,
        )


def verify_free_disk(
    lu: LogicalUnit,
    infos: NodeInfos,
    failures: dict[str, str],
    node_uuids: list[str],
    requested: int,
) -> None:
    """Ganeti's CheckNodesFreeDiskPerVG (the unit holding instance disks) on
    already gathered node data."""
    if requested <= 0:
        return
    vg = lu.cfg.cluster.volume_group_name or "file storage"
    for uuid in node_uuids:
        info = infos.get(uuid)
        name = lu.cfg.node_name(uuid)
        if info is None:
            raise OpPrereqError(
                f"Cannot get current information from node {name}: {failures.get(uuid)}",
                ECODE_ENVIRON,
            )
        free = int(info.get("storage_free", 0))
        if requested > free:
            raise OpPrereqError(
                f"Not enough disk space on target node {name} vg {vg}:"
                f" required {requested} MiB, available {free} MiB",
                ECODE_NORES,
            )


async def check_node_free_memory(
    lu: LogicalUnit, node_uuid: str, reason: str, requested: int, hv_name: str
) -> None:
    """Ganeti's CheckNodeFreeMemory (asks the node)."""
    failures: dict[str, str] = {}
    infos = await gather_node_info(lu.ctx, [node_uuid], hv_name, failures)
    verify_free_memory(lu, infos, failures, node_uuid, reason, requested)


async def check_node_free_disk(
    lu: LogicalUnit, node_uuids: list[str], requested: int, hv_name: str
) -> None:
    """Ganeti's CheckNodesFreeDiskPerVG (asks the nodes)."""
    if requested <= 0:
        return
    failures: dict[str, str] = {}
    infos = await gather_node_info(lu.ctx, node_uuids, hv_name, failures)
    verify_free_disk(lu, infos, failures, node_uuids, requested)


async def check_bridges(lu: LogicalUnit, links: list[str], node_uuid: str) -> None:
    """All bridged links must exist on the node (Ganeti's CheckNicsBridgesExist)."""
    wanted = sorted({link for link in links if link})
    if not wanted:
        return
    target = lu.ctx.node_target(node_uuid)
    res = await lu.rpc.call("bridges_exist", target, wanted)
    if res.failed:
        raise OpPrereqError(
            f"Error checking bridges on node '{target.name}': {res.fail_msg}", ECODE_ENVIRON
        )
    missing = list(res.payload or [])
    if missing:
        raise OpPrereqError(
            f"Error checking bridges on node '{target.name}': Missing bridges {', '.join(missing)}",
            ECODE_ENVIRON,
        )


def bridged_links(cluster: objects.Cluster, nics: list[objects.NIC]) -> list[str]:
    from corral.cmdlib.params import fill_nicparams

    links = []
    for nic in nics:
        filled = fill_nicparams(cluster, nic.nicparams)
        if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED:
            links.append(str(filled[C.NIC_LINK]))
    return links


# -- disks ------------------------------------------------------------------------


def device_context(cfg: Any, node_uuid: str, disk: objects.Disk | None = None) -> DeviceContext:
    """What a storage driver on `node_uuid` needs: replication IPs of every node
    that can hold a disk, plus the cluster's disk parameters for the template."""
    ips = {n.uuid: (n.secondary_ip or n.primary_ip) for n in cfg.nodes.values()}
    cluster: objects.Cluster = cfg.cluster
    params: dict[str, Any] = {
        "file_storage_dir": cluster.file_storage_dir,
        "shared_file_storage_dir": cluster.shared_file_storage_dir,
    }
    if disk is not None:
        params.update(cluster.diskparams.get(disk.dev_type, {}))
    return DeviceContext(node_uuid=node_uuid, node_ips=ips, params=params)


def _disk_nodes(inst: objects.Instance, disk: objects.Disk) -> list[str]:
    if disk.dev_type == C.LD_DRBD8:
        a, b = disk.drbd_nodes()
        return [a, b]
    return [inst.primary_node]


async def create_disks(lu: LogicalUnit, inst: objects.Instance) -> None:
    """Create every disk on every node that holds it; on failure remove what was
    made. Registers a rollback so a later failure of the LU removes them too."""
    created: list[tuple[objects.Disk, str]] = []

    async def undo() -> None:
        for disk, node in reversed(created):
            res = await lu.rpc.call(
                "blockdev_remove",
                lu.ctx.node_target(node),
                disk,
                device_context(lu.cfg, node, disk),
            )
            if res.failed:
                lu.log_warning(
                    f"Could not remove disk {disk.iv_name} on node"
                    f" {lu.cfg.node_name(node)}: {res.fail_msg}"
                )

    try:
        for disk in inst.disks:
            # secondary first, as Ganeti, so the primary only ever sees a peer
            nodes = sorted(_disk_nodes(inst, disk), key=lambda n: n == inst.primary_node)
            for node in nodes:
                res = await lu.rpc.call(
                    "blockdev_create",
                    lu.ctx.node_target(node),
                    disk,
                    device_context(lu.cfg, node, disk),
                    node == inst.primary_node,
                    f"originstname+{inst.name}",
                )
                if res.failed:
                    raise OpExecError(
                        f"Can't create block device {disk.iv_name} on node"
                        f" {lu.cfg.node_name(node)} for instance {inst.name}: {res.fail_msg}"
                    )
                created.append((disk, node))
    except BaseException:
        await undo()
        raise
    lu.ctx.on_rollback(undo)


async def remove_disks(
    lu: LogicalUnit, inst: objects.Instance, ignore_failures: bool = False
) -> bool:
    """Remove all disks of an instance everywhere; returns False if any failed."""
    ok = True
    for disk in inst.disks:
        for node in _disk_nodes(inst, disk):
            target = lu.ctx.node_target(node)
            if target.offline:
                lu.log_warning(f"Not removing disk {disk.iv_name} on offline node {target.name}")
                continue
            res = await lu.rpc.call(
                "blockdev_remove", target, disk, device_context(lu.cfg, node, disk)
            )
            if res.failed:
                ok = False
                lu.log_warning(
                    f"Could not remove disk {disk.iv_name} on node {target.name}: {res.fail_msg}"
                )
    if not ok and not ignore_failures:
        raise OpExecError("Can't remove instance's disks")
    return ok


async def assemble_disks(
    lu: LogicalUnit,
    inst: objects.Instance,
    *,
    ignore_secondaries: bool = False,
    primary: str | None = None,
    skip_nodes: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Activate the disks (secondaries first, then the primary as writer).

    Returns, per disk, ``{"path", "uri"}`` on the primary node.
    """
    pnode = primary or inst.primary_node
    results: list[dict[str, Any]] = []
    for idx, disk in enumerate(inst.disks):
        for node in _disk_nodes(inst, disk):
            if node == pnode:
                continue
            target = lu.ctx.node_target(node)
            if target.offline or node in skip_nodes:
                if ignore_secondaries:
                    continue
                raise OpExecError(
                    f"Cannot activate disk {disk.iv_name}: node {target.name} is offline"
                )
            res = await lu.rpc.call(
                "blockdev_assemble", target, disk, device_context(lu.cfg, node, disk), False, idx
            )
            if res.failed:
                msg = (
                    f"Could not prepare block device {disk.iv_name} on node {target.name}"
                    f" (is_primary=False, pass=1): {res.fail_msg}"
                )
                if not ignore_secondaries:
                    raise OpExecError(msg)
                lu.log_warning(msg)
        target = lu.ctx.node_target(pnode)
        res = await lu.rpc.call(
            "blockdev_assemble", target, disk, device_context(lu.cfg, pnode, disk), True, idx
        )
        if res.failed:
            raise OpExecError(
                f"Could not prepare block device {disk.iv_name} on node {target.name}"
                f" (is_primary=True, pass=2): {res.fail_msg}"
            )
        results.append(dict(res.payload or {}))
    return results


async def shutdown_disks(
    lu: LogicalUnit, inst: objects.Instance, *, ignore_primary: bool = False
) -> bool:
    """Deactivate the disks on all their nodes; offline nodes are skipped."""
    ok = True
    for disk in inst.disks:
        for node in _disk_nodes(inst, disk):
            target = lu.ctx.node_target(node)
            if target.offline:
                continue
            res = await lu.rpc.call(
                "blockdev_shutdown", target, disk, device_context(lu.cfg, node, disk)
            )
            if res.failed:
                lu.log_warning(
                    f"Could not shutdown block device {disk.iv_name} on node {target.name}:"
                    f" {res.fail_msg}"
                )
                if not (ignore_primary and node == inst.primary_node):
                    ok = False
    return ok


def format_seconds(secs: float) -> str:
    """Ganeti's FormatSeconds: 4m 16s, 1h 2m 3s, 0s."""
    secs = round(secs)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            parts.append(f"{secs // size}{unit}")
            secs %= size
    parts.append(f"{secs}s")
    return " ".join(parts)


async def wait_for_sync(
    lu: LogicalUnit, inst: objects.Instance, *, oneshot: bool = False, interval: float = 1.0
) -> bool:
    """Follow the resync of mirrored disks, logging Ganeti's progress lines.

    Returns True when in sync (False = degraded at the end).
    """
    if not inst.disks:
        return True
    if not oneshot:
        lu.log_info(f"Waiting for instance {inst.name} to sync disks")
    target = lu.ctx.node_target(inst.primary_node)
    ctx = device_context(lu.cfg, inst.primary_node)
    last_log = 0.0
    degr_retries = 10
    while True:
        lu.ctx.check_canceled()
        res = await lu.rpc.call("blockdev_getmirrorstatus", target, inst.disks, ctx)
        if res.failed:
            raise OpExecError(f"Can't get any data from node {target.name}: {res.fail_msg}")
        done = True
        degraded = False
        max_time = 0
        now = time.monotonic()
        lines = []
        for disk, status in zip(inst.disks, res.payload or [], strict=False):
            pct = status.sync_percent
            if pct is not None:
                done = False
                est = status.estimated_time
                rem = (
                    f"{format_seconds(est)} remaining (estimated)"
                    if est is not None
                    else "no time estimate"
                )
                lines.append(f"- device {disk.iv_name}: {pct:5.2f}% done, {rem}")
                max_time = max(max_time, est or 0)
            degraded = degraded or status.is_degraded
        if lines and (now - last_log >= 5.0 or last_log == 0.0):
            for line in lines:
                lu.log_info(line)
            last_log = now
        if done and degraded and degr_retries > 0 and not oneshot:
            degr_retries -= 1
            await lu.ctx.sleep(interval)
            continue
        if done or oneshot:
            break
        await lu.ctx.sleep(min(max(interval, max_time / 20), 5.0))
    if not oneshot:
        if degraded:
            lu.log_warning(f"Instance {inst.name}'s disks are degraded")
        else:
            lu.log_info(f"Instance {inst.name}'s disks are in sync")
    return not degraded


# -- starting and stopping ----------------------------------------------------------


def nic_infos(cluster: objects.Cluster, inst: objects.Instance) -> list[NicInfo]:
    from corral.cmdlib.params import fill_nicparams

    out = []
    for nic in inst.nics:
        p = fill_nicparams(cluster, nic.nicparams)
        out.append(
            NicInfo(
                mac=nic.mac,
                uuid=nic.uuid,
                name=nic.name,
                mode=str(p[C.NIC_MODE]),
                link=str(p[C.NIC_LINK]),
                vlan=str(p.get(C.NIC_VLAN) or ""),
                ip=nic.ip,
            )
        )
    return out


def start_spec(
    cfg: Any,
    inst: objects.Instance,
    disk_infos: list[dict[str, Any]],
    hv_override: dict[str, Any] | None = None,
    be_override: dict[str, Any] | None = None,
) -> InstanceStartSpec:
    from corral.cmdlib.params import fill_beparams, fill_hvparams

    cluster: objects.Cluster = cfg.cluster
    hvp = fill_hvparams(cluster, inst.hypervisor, inst.os, inst.hvparams)
    hvp.update(hv_override or {})
    bep = fill_beparams(cluster, inst.beparams)
    bep.update(be_override or {})
    disks = [
        BlockDeviceInfo(
            path=str(info.get("path") or ""),
            uri=info.get("uri"),
            mode=d.mode,
            uuid=d.uuid,
            name=d.name,
            size=d.size,
        )
        for d, info in zip(inst.disks, disk_infos, strict=False)
    ]
    return InstanceStartSpec(
        instance=inst, hvparams=hvp, beparams=bep, disks=disks, nics=nic_infos(cluster, inst)
    )


async def start_instance(
    lu: LogicalUnit,
    inst: objects.Instance,
    *,
    hv_override: dict[str, Any] | None = None,
    be_override: dict[str, Any] | None = None,
    check_memory: bool = True,
    disk_infos: list[dict[str, Any]] | None = None,
) -> None:
    """Assemble disks and start the VM on its primary node (rollback: disks down).

    `disk_infos` (paths from an assembly just done by the caller) saves a
    second assembly round.
    """
    from corral.cmdlib.params import fill_beparams

    if check_memory:
        bep = fill_beparams(lu.cfg.cluster, inst.beparams)
        bep.update(be_override or {})
        await check_node_free_memory(
            lu,
            inst.primary_node,
            f"starting instance {inst.name}",
            int(bep[C.BE_MAXMEM]),
            inst.hypervisor,
        )
    if disk_infos is None:
        disk_infos = await assemble_disks(lu, inst)
    spec = start_spec(lu.cfg, inst, disk_infos, hv_override, be_override)
    target = lu.ctx.node_target(inst.primary_node)
    res = await lu.rpc.call("instance_start", target, spec, inst.hypervisor)
    if res.failed:
        await shutdown_disks(lu, inst)
        raise OpExecError(f"Could not start instance: {res.fail_msg}")


async def stop_instance(
    lu: LogicalUnit, inst: objects.Instance, timeout: float, *, ignore_failure: bool = False
) -> None:
    target = lu.ctx.node_target(inst.primary_node)
    res = await lu.rpc.call("instance_shutdown", target, inst.name, inst.hypervisor, float(timeout))
    if res.failed:
        msg = f"Could not shutdown instance {inst.name}: {res.fail_msg}"
        if not ignore_failure:
            raise OpExecError(msg)
        lu.log_warning(msg)


async def instance_running(lu: LogicalUnit, inst: objects.Instance) -> bool | None:
    """True/False from the primary node, None if the node cannot be asked."""
    target = lu.ctx.node_target(inst.primary_node)
    if target.offline:
        return None
    res = await lu.rpc.call("instance_info", target, inst.name, inst.hypervisor)
    if res.failed:
        return None
    return res.payload is not None


async def node_alive(lu: LogicalUnit, node_uuid: str) -> bool:
    """One quick call: False for an offline node or one that does not answer."""
    target = lu.ctx.node_target(node_uuid)
    if target.offline:
        return False
    res = await lu.rpc.call("version", target)
    return not res.failed


async def gather_in_parallel(*coros: Any) -> list[Any]:
    return list(await asyncio.gather(*coros))


def instance_hook_env(cfg: Any, inst: objects.Instance) -> dict[str, Any]:
    """A subset of Ganeti's BuildInstanceHookEnv (keys without GANETI_)."""
    env: dict[str, Any] = {
        "INSTANCE_NAME": inst.name,
        "INSTANCE_PRIMARY": cfg.node_name(inst.primary_node),
        "INSTANCE_SECONDARIES": " ".join(cfg.node_name(n) for n in inst.secondary_nodes),
        "INSTANCE_OS_TYPE": inst.os,
        "INSTANCE_STATUS": inst.admin_state,
        "INSTANCE_DISK_TEMPLATE": inst.disk_template,
        "INSTANCE_HYPERVISOR": inst.hypervisor,
        "INSTANCE_NIC_COUNT": len(inst.nics),
        "INSTANCE_DISK_COUNT": len(inst.disks),
    }
    for idx, nic in enumerate(inst.nics):
        env[f"INSTANCE_NIC{idx}_MAC"] = nic.mac
        env[f"INSTANCE_NIC{idx}_IP"] = nic.ip or ""
        env[f"INSTANCE_NIC{idx}_MODE"] = nic.nicparams.get(C.NIC_MODE, "")
        env[f"INSTANCE_NIC{idx}_LINK"] = nic.nicparams.get(C.NIC_LINK, "")
    for idx, disk in enumerate(inst.disks):
        env[f"INSTANCE_DISK{idx}_SIZE"] = disk.size
        env[f"INSTANCE_DISK{idx}_MODE"] = disk.mode
    return env
