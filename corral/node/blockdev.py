"""Block devices on this node, through the storage registry.

`corral.storage.build_device(disk, ctx, paths)` turns a config `objects.Disk`
into a driver object (children included); composite devices (DRBD) create and
remove their children themselves, so these functions act on the top disk only.
"""

from __future__ import annotations

import contextlib
from typing import Any

from corral import constants as C
from corral import errors, objects
from corral.node.context import NodeContext
from corral.storage.base import BlockDevice, DeviceContext, SyncStatus


def _device(ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext) -> BlockDevice:
    from corral import storage

    return storage.build_device(disk, dctx, ctx.paths)


def _name(disk: objects.Disk) -> str:
    return disk.iv_name or disk.name or disk.uuid


def blockdev_create(
    ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext, on_primary: bool, info: str
) -> None:
    """Allocate the disk's storage (children first, by the driver).

    As Ganeti's BlockdevCreate: a DRBD device is assembled on both nodes right
    away, and the primary opens it with force, which makes its (new, empty)
    data the up-to-date copy that the initial resync sends to the secondary.
    """
    dev = _device(ctx, disk, dctx)
    dev.create()
    if on_primary or disk.dev_type == C.LD_DRBD8:
        dev.assemble()
        if on_primary:
            dev.open(force=True)


def blockdev_remove(ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext) -> None:
    """Delete the disk's data; a missing disk is not an error."""
    dev = _device(ctx, disk, dctx)
    with contextlib.suppress(errors.BlockDeviceError):
        dev.shutdown()
    dev.remove()


def blockdev_assemble(
    ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext, as_primary: bool, idx: int
) -> dict[str, Any]:
    """Activate the disk; on the primary also take the writer role."""
    dev = _device(ctx, disk, dctx)
    path = dev.assemble()
    if as_primary:
        dev.open()
    uri_fn = getattr(dev, "userspace_uri", None)
    uri = uri_fn() if uri_fn is not None else None
    return {"path": path, "uri": uri, "index": idx}


def blockdev_shutdown(ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext) -> None:
    dev = _device(ctx, disk, dctx)
    # A device may still be active although its volumes are gone (a failed
    # disk): shut it down anyway; only a missing device with nothing active
    # is fine to ignore.
    try:
        dev.shutdown()
    except errors.BlockDeviceError:
        if dev.exists():
            raise


def blockdev_getmirrorstatus(
    ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext
) -> list[SyncStatus]:
    result = []
    for disk in disks:
        dev = _device(ctx, disk, dctx)
        if not dev.exists():
            raise errors.BlockDeviceError(f"Can't find device {_name(disk)}")
        result.append(dev.combined_sync_status())
    return result


def blockdev_find(ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext) -> SyncStatus | None:
    dev = _device(ctx, disk, dctx)
    if not dev.exists():
        return None
    return dev.combined_sync_status()


def blockdev_open(
    ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext, exclusive: bool
) -> None:
    for disk in disks:
        _device(ctx, disk, dctx).open()


def blockdev_close(ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext) -> None:
    for disk in disks:
        _device(ctx, disk, dctx).close()


def blockdev_grow(
    ctx: NodeContext, disk: objects.Disk, dctx: DeviceContext, amount: int, dryrun: bool
) -> None:
    try:
        _device(ctx, disk, dctx).grow(amount, dryrun)
    except NotImplementedError as err:
        raise errors.BlockDeviceError(f"Disks of type {disk.dev_type} cannot grow") from err


def drbd_disconnect_net(ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext) -> None:
    for disk in disks:
        _device(ctx, disk, dctx).disconnect_net()


def drbd_attach_net(
    ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext, multimaster: bool
) -> None:
    for disk in disks:
        _device(ctx, disk, dctx).attach_net(multimaster)


def drbd_wait_sync(
    ctx: NodeContext, disks: list[objects.Disk], dctx: DeviceContext
) -> dict[str, Any]:
    """One poll of the resync: done when no disk is syncing; percent = the slowest."""
    percents: list[float] = []
    degraded = False
    for status in blockdev_getmirrorstatus(ctx, disks, dctx):
        if status.sync_percent is not None:
            percents.append(status.sync_percent)
        degraded = degraded or status.is_degraded
    return {
        "done": not percents,
        "percent": min(percents) if percents else None,
        "degraded": degraded,
    }


def blockdev_rename(
    ctx: NodeContext, devlist: list[tuple[objects.Disk, list[Any]]], dctx: DeviceContext
) -> None:
    """Give each disk its new logical_id (instance rename, replace-disks)."""
    for disk, new_id in devlist:
        try:
            _device(ctx, disk, dctx).rename(new_id)
        except NotImplementedError as err:
            raise errors.BlockDeviceError(
                f"Disks of type {disk.dev_type} cannot be renamed"
            ) from err


def file_storage_dir_rename(ctx: NodeContext, old_dir: str, new_dir: str) -> None:
    """Move an instance's file storage directory (instance rename)."""
    from corral import storage

    storage.rename_file_storage_dir(ctx.paths, old_dir, new_dir)
