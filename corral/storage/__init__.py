"""Storage drivers: the registry keyed by Ganeti ``dev_type``, plus node storage info.

Public API (what the node backend calls)::

    get_device_class(dev_type, backend=None) -> type[BlockDevice]
    build_device(disk, ctx, paths) -> BlockDevice        # children built recursively
    detect_backends(ctx=None) -> {"plain": "lvm"|"filelv", "drbd": "kernel"|"filedrbd"}
    node_storage_info(paths, kind, name=None) -> NodeStorageInfo
    list_volumes(paths, ctx=None) -> [{"name", "vg", "size", "dev"}]
    rename_file_storage_dir(paths, old_dir, new_dir)
    drbd_children_sizes(size) -> (data MiB, meta MiB)

Backends are chosen per node, with no config change: ``drbd`` uses kernel
DRBD where ``/proc/drbd`` exists, else the TEST backend "filedrbd"; ``plain``
uses LVM where the ``lvm`` tool and device-mapper exist, else the TEST backend
"filelv" (file volumes under ``paths.volumes_dir``). The children of a filedrbd
disk are always file volumes, those of a kernel DRBD disk always LVs.
``ctx.params["drbd_backend"]``/``["lv_backend"]`` force a choice.

Driver modules are imported lazily, so starting the filedrbd agent
(``python -m corral.storage.drbd_filesync_agent``) stays light.
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

from corral import constants as C
from corral import errors, objects
from corral.paths import Paths
from corral.storage.base import (
    BlockDevice,
    DeviceContext,
    NodeStorageInfo,
    StorageParam,
    SyncStatus,
)
from corral.storage.drbd import drbd_children_sizes

__all__ = [
    "BlockDevice",
    "DeviceContext",
    "NodeStorageInfo",
    "StorageParam",
    "SyncStatus",
    "build_device",
    "detect_backends",
    "drbd_children_sizes",
    "get_device_class",
    "list_volumes",
    "node_storage_info",
    "rename_file_storage_dir",
]

PROC_DRBD = "/proc/drbd"
DM_CONTROL = "/dev/mapper/control"

# dev_type -> backend -> "module:Class"
_DRIVERS: dict[str, dict[str, str]] = {
    C.DT_DISKLESS: {"diskless": "diskless:Diskless"},
    C.LD_FILE: {"file": "filestorage:FileStorage"},
    C.LD_SHARED_FILE: {"sharedfile": "filestorage:SharedFileStorage"},
    C.LD_LV: {"lvm": "lvm:LogicalVolume", "filelv": "lvm:FileVolume"},
    C.LD_DRBD8: {"kernel": "drbd_kernel:KernelDRBD", "filedrbd": "drbd_filesync:FileDRBD"},
}
# Which volume backend serves the children of each DRBD backend
_DRBD_CHILD_BACKEND = {"kernel": "lvm", "filedrbd": "filelv"}

DEV_TYPES = tuple(_DRIVERS)


def _load(spec: str) -> type[BlockDevice]:
    module, cls = spec.split(":")
    mod = importlib.import_module(f"corral.storage.{module}")
    result = getattr(mod, cls)
    assert isinstance(result, type) and issubclass(result, BlockDevice)
    return result


def detect_backends(ctx: DeviceContext | None = None) -> dict[str, str]:
    """The backends this node uses for ``plain`` and ``drbd`` (overridable by ctx)."""
    params = ctx.params if ctx is not None else {}
    drbd = params.get("drbd_backend") or ("kernel" if os.path.exists(PROC_DRBD) else "filedrbd")
    lvm_ok = shutil.which("lvm") is not None and os.path.exists(DM_CONTROL)
    lv = params.get("lv_backend") or ("lvm" if lvm_ok else "filelv")
    return {C.LD_LV: str(lv), C.LD_DRBD8: str(drbd)}


def get_device_class(dev_type: str, backend: str | None = None) -> type[BlockDevice]:
    """The driver class for `dev_type` (this node's backend unless `backend` is given)."""
    backends = _DRIVERS.get(dev_type)
    if backends is None:
        raise errors.BlockDeviceError(f"Unknown device type '{dev_type}'")
    if backend is None:
        backend = detect_backends().get(dev_type, next(iter(backends)))
    spec = backends.get(backend)
    if spec is None:
        raise errors.BlockDeviceError(f"Unknown backend '{backend}' for device type '{dev_type}'")
    return _load(spec)


def build_device(
    disk: objects.Disk,
    ctx: DeviceContext,
    paths: Paths,
    _backend: str | None = None,
) -> BlockDevice:
    """Build the device for `disk` on this node, its children first (recursively)."""
    backends = detect_backends(ctx)
    backend = _backend or backends.get(disk.dev_type)
    child_backend = _DRBD_CHILD_BACKEND.get(backend or "") if disk.dev_type == C.LD_DRBD8 else None
    children = [build_device(child, ctx, paths, child_backend) for child in disk.children]
    cls = get_device_class(disk.dev_type, backend)
    return cls(disk, ctx, paths, children)


def node_storage_info(
    paths: Paths,
    kind: str,
    name: str | None = None,
    ctx: DeviceContext | None = None,
) -> NodeStorageInfo:
    """Space of one storage unit of this node (MiB).

    `kind` is "file"/"sharedfile" (statvfs of the directory), "lvm-vg" (`name`
    = VG; real `vgs` or the emulated file VG, per the node's backend) or
    "diskless" (zero).
    """
    if kind in (C.DT_FILE, C.DT_SHARED_FILE):
        from corral.storage.filestorage import file_storage_info

        return file_storage_info(paths, kind)
    if kind in ("lvm-vg", C.DT_PLAIN):
        from corral.storage import lvm

        vg = name or C.DEFAULT_VG
        if detect_backends(ctx)[C.LD_LV] == "lvm":
            return lvm.lvm_storage_info(vg)
        return lvm.filelv_storage_info(paths, vg)
    if kind == C.DT_DISKLESS:
        return NodeStorageInfo(type=kind, name="", storage_size=0, storage_free=0)
    raise errors.BlockDeviceError(f"Unknown storage type '{kind}'")


def list_volumes(paths: Paths, ctx: DeviceContext | None = None) -> list[dict[str, Any]]:
    """All volumes of this node: [{"name", "vg", "size", "dev"}] (orphan checks)."""
    from corral.storage import lvm

    if detect_backends(ctx)[C.LD_LV] == "lvm":
        return lvm.lvm_list_volumes()
    return lvm.filelv_list_volumes(paths)


def rename_file_storage_dir(paths: Paths, old_dir: str, new_dir: str) -> None:
    """Move an instance's file storage directory (instance rename)."""
    from corral.storage.filestorage import rename_file_storage_dir as _rename

    _rename(paths, old_dir, new_dir)
