"""Node facts: version, resources, bridges, volumes.

Memory and CPU come from the hypervisor driver when one is named (it knows what
the VMs use, and the fake driver honours the testkit's declared hardware);
otherwise from /proc and ``paths.node_hardware_file``. Storage space is a
statvfs of the storage directories (the nearest existing parent, so a node that
has not created them yet still reports its disk).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from corral import constants as C
from corral import errors
from corral.node.context import PROTOCOL_VERSION, NodeContext
from corral.storage.base import NodeStorageInfo


def version(ctx: NodeContext) -> dict[str, Any]:
    """Protocol and release of this noded, and whether it serves as a cluster member.

    ``joined`` reflects the certificate the server presents right now, not the
    files: after a join the server switches a moment after answering, and a
    caller waiting for the switch must not be told too early.
    """
    joined = ctx.server_joined
    return {
        "protocol": PROTOCOL_VERSION,
        "release": C.RELEASE_VERSION,
        "joined": joined,
        "name": ctx.node_name,
        "fingerprint": ctx.serving_fingerprint,
    }


def _read_hardware(ctx: NodeContext) -> dict[str, Any]:
    try:
        with open(ctx.paths.node_hardware_file, "rb") as fh:
            data = msgspec.json.decode(fh.read())
    except (OSError, msgspec.DecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in MiB."""
    result: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    result[key] = int(parts[0]) // 1024
    except OSError:
        pass
    return result


def _bootid() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def host_resources(ctx: NodeContext) -> dict[str, int]:
    """Memory/CPU of the node without a hypervisor driver (MiB, counts)."""
    hw = _read_hardware(ctx)
    mem = _meminfo()
    total = int(hw.get("memory", hw.get("memory_total", mem.get("MemTotal", 0))))
    free = int(hw.get("memory_free", min(total, mem.get("MemAvailable", mem.get("MemFree", 0)))))
    cpus = int(hw.get("cpus", hw.get("cpu_total", os.cpu_count() or 1)))
    return {
        "memory_total": total,
        "memory_free": free,
        "memory_dom0": int(hw.get("memory_dom0", max(0, total - free) if not hw else 0)),
        "cpu_total": cpus,
        "cpu_nodes": int(hw.get("cpu_nodes", 1)),
        "cpu_sockets": int(hw.get("cpu_sockets", 1)),
    }


def _statvfs_mib(path: str) -> tuple[int, int]:
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return 0, 0
    return st.f_blocks * st.f_frsize // (1024 * 1024), st.f_bavail * st.f_frsize // (1024 * 1024)


def storage_info(ctx: NodeContext, vg_name: str | None) -> list[NodeStorageInfo]:
    """Space of the node's storage units: the VG when asked, then the file dirs."""
    from corral import storage

    kinds: list[tuple[str, str | None]] = []
    if vg_name:
        kinds.append(("lvm-vg", vg_name))
    kinds += [(C.DT_FILE, None), (C.DT_SHARED_FILE, None)]
    result: list[NodeStorageInfo] = []
    for kind, name in kinds:
        try:
            result.append(storage.node_storage_info(ctx.paths, kind, name))
        except errors.GenericError:
            directory = {
                C.DT_FILE: ctx.paths.file_storage_dir,
                C.DT_SHARED_FILE: ctx.paths.shared_file_storage_dir,
            }.get(kind, ctx.paths.volumes_dir)
            size, free = _statvfs_mib(directory)
            result.append(
                NodeStorageInfo(
                    type=kind, name=name or directory, storage_size=size, storage_free=free
                )
            )
    return result


def node_info(ctx: NodeContext, vg_name: str | None, hv_names: list[str]) -> dict[str, Any]:
    """Resources of this node (Ganeti's node_info, flattened)."""
    res: dict[str, Any] = dict(host_resources(ctx))
    if hv_names:
        hv = ctx.hypervisor(hv_names[0])
        info = hv.get_node_info()
        res.update(
            memory_total=info.memory_total,
            memory_free=info.memory_free,
            memory_dom0=info.memory_dom0,
            memory_hv=info.memory_hv,
            cpu_total=info.cpu_total,
            cpu_nodes=info.cpu_nodes,
            cpu_sockets=info.cpu_sockets,
            cpu_dom0=info.cpu_dom0,
        )
    res["name"] = ctx.node_name
    res["storage"] = storage_info(ctx, vg_name)
    res["bootid"] = _bootid()
    return res


def bridges_exist(ctx: NodeContext, links: list[str]) -> list[str]:
    """Names in `links` that are not bridges on this node."""
    from corral import network

    return list(network.missing_bridges(links))


def node_volumes(ctx: NodeContext) -> list[dict[str, Any]]:
    """Logical volumes on this node ({name, vg, size MiB, dev}) for the orphan check."""
    from corral import storage

    return list(storage.list_volumes(ctx.paths))
