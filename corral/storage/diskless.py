"""``diskless``: the template without disks.

A diskless instance has no Disk objects, so this device is never built by the
node backend in practice; it exists so that every template name resolves in the
registry and capability tables, and does nothing.
"""

from __future__ import annotations

from corral import constants as C
from corral import errors
from corral.storage.base import BlockDevice


class Diskless(BlockDevice):
    DEV_TYPE = C.DT_DISKLESS
    BACKEND = "diskless"

    def create(self) -> None:
        """Nothing to allocate."""

    def exists(self) -> bool:
        return True

    def assemble(self) -> str:
        raise errors.BlockDeviceError("Diskless devices cannot be assembled")

    def shutdown(self) -> None:
        """Nothing to deactivate."""

    def remove(self) -> None:
        """Nothing to delete."""

    def dev_path(self) -> str:
        return ""
