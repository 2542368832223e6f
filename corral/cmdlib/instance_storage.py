"""Disk object generation for each disk template (master side, pure).

Mirrors Ganeti's GenerateDiskTemplate: the LU reserves ports, minors, names and
secrets through the config store and hands them in, this module only builds
the `objects.Disk` trees. DRBD disks get Ganeti's shape: logical_id
``[node_a, node_b, port, minor_a, minor_b, secret]`` and two children, data (the
disk's size) and meta (128 MiB), stored as ``<vg>/<uuid>.diskN_data|_meta``.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from corral import constants as C
from corral import objects
from corral.errors import ECODE_INVAL, OpPrereqError


class DiskSpec:
    """One requested disk: size in MiB, access mode, optional name."""

    __slots__ = ("mode", "name", "size")

    def __init__(self, size: int, mode: str = C.DISK_RDWR, name: str | None = None) -> None:
        self.size = size
        self.mode = mode
        self.name = name

    @classmethod
    def parse(cls, data: dict[str, Any], index: int) -> DiskSpec:
        """Validate one entry of OpInstanceCreate.disks."""
        try:
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OpPrereqError(
                f"Missing or invalid disk size for disk {index}", ECODE_INVAL
            ) from exc
        if size <= 0:
            raise OpPrereqError(f"Invalid disk size {size} for disk {index}", ECODE_INVAL)
        mode = str(data.get("mode", C.DISK_RDWR))
        if mode not in (C.DISK_RDWR, C.DISK_RDONLY):
            raise OpPrereqError(f"Invalid disk access mode '{mode}'", ECODE_INVAL)
        name = data.get("name")
        return cls(size, mode, None if name is None else str(name))


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def required_disk_space(template: str, specs: list[DiskSpec]) -> int:
    """Disk space (MiB) the template needs on each node holding the disks."""
    if template == C.DT_DISKLESS:
        return 0
    if template == C.DT_DRBD8:
        return sum(s.size + C.DRBD_META_SIZE for s in specs)
    if template == C.DT_SHARED_FILE:
        return 0  # shared storage is not accounted per node, as in Ganeti
    return sum(s.size for s in specs)


def generate_disks(
    template: str,
    instance_name: str,
    instance_uuid: str,
    specs: list[DiskSpec],
    primary: str,
    secondary: str | None,
    *,
    file_storage_dir: str,
    shared_file_storage_dir: str,
    vg_name: str | None,
    allocate_drbd: Callable[[], tuple[int, int, int, str]] | None = None,
    base_index: int = 0,
) -> list[objects.Disk]:
    """Build the disks of a new instance.

    `allocate_drbd()` returns ``(port, minor_primary, minor_secondary, secret)``
    for each DRBD disk; it is a callable so reservations happen per disk.
    """
    disks: list[objects.Disk] = []
    for offset, spec in enumerate(specs):
        idx = base_index + offset
        duuid = new_uuid()
        iv_name = f"disk/{idx}"
        if template == C.DT_DISKLESS:
            raise OpPrereqError("Diskless instances cannot have disks", ECODE_INVAL)
        if template in (C.DT_FILE, C.DT_SHARED_FILE):
            base = file_storage_dir if template == C.DT_FILE else shared_file_storage_dir
            path = f"{base}/{instance_name}/{duuid}.{template}.disk{idx}"
            disks.append(
                objects.Disk(
                    uuid=duuid,
                    name=spec.name,
                    dev_type=template,
                    size=spec.size,
                    mode=spec.mode,
                    logical_id=["loop", path],
                    iv_name=iv_name,
                    nodes=[primary],
                )
            )
        elif template == C.DT_PLAIN:
            vg = vg_name or C.DEFAULT_VG
            disks.append(
                objects.Disk(
                    uuid=duuid,
                    name=spec.name,
                    dev_type=C.LD_LV,
                    size=spec.size,
                    mode=spec.mode,
                    logical_id=[vg, f"{instance_uuid}.disk{idx}"],
                    iv_name=iv_name,
                    nodes=[primary],
                )
            )
        elif template == C.DT_DRBD8:
            if secondary is None or allocate_drbd is None:
                raise OpPrereqError("The 'drbd' disk template needs a secondary node", ECODE_INVAL)
            vg = vg_name or C.DEFAULT_VG
            port, minor_p, minor_s, secret = allocate_drbd()
            prefix = f"{instance_uuid}.disk{idx}"
            data = objects.Disk(
                uuid=new_uuid(),
                dev_type=C.LD_LV,
                size=spec.size,
                logical_id=[vg, f"{prefix}_data"],
                nodes=[primary, secondary],
            )
            meta = objects.Disk(
                uuid=new_uuid(),
                dev_type=C.LD_LV,
                size=C.DRBD_META_SIZE,
                logical_id=[vg, f"{prefix}_meta"],
                nodes=[primary, secondary],
            )
            disks.append(
                objects.Disk(
                    uuid=duuid,
                    name=spec.name,
                    dev_type=C.LD_DRBD8,
                    size=spec.size,
                    mode=spec.mode,
                    logical_id=[primary, secondary, port, minor_p, minor_s, secret],
                    children=[data, meta],
                    iv_name=iv_name,
                    nodes=[primary, secondary],
                )
            )
        else:
            raise OpPrereqError(f"Unknown disk template '{template}'", ECODE_INVAL)
    return disks
