"""Small fakes for the drivers the backend uses (storage) and a test OS definition."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corral import errors, objects
from corral.paths import Paths
from corral.storage.base import BlockDevice, DeviceContext, SyncStatus

# uuid -> state, shared by every FakeDevice of the test process
DEVICES: dict[str, dict[str, Any]] = {}


class FakeDevice(BlockDevice):
    """A disk that is a sparse file under paths.volumes_dir; state kept in DEVICES."""

    DEV_TYPE = "fake"

    def _path(self) -> str:
        return os.path.join(self.paths.volumes_dir, self.disk.uuid)

    def create(self) -> None:
        if self.disk.uuid in DEVICES:
            raise errors.BlockDeviceError(f"Disk {self.disk.uuid} already exists")
        os.makedirs(self.paths.volumes_dir, exist_ok=True)
        with open(self._path(), "wb") as fh:
            fh.truncate(self.disk.size * 1024 * 1024)
        DEVICES[self.disk.uuid] = {"assembled": False, "open": False, "net": True, "size": 0}
        DEVICES[self.disk.uuid]["size"] = self.disk.size

    def exists(self) -> bool:
        return self.disk.uuid in DEVICES

    def assemble(self) -> str:
        self._state()["assembled"] = True
        return self._path()

    def _state(self) -> dict[str, Any]:
        try:
            return DEVICES[self.disk.uuid]
        except KeyError as err:
            raise errors.BlockDeviceError(f"Disk {self.disk.uuid} does not exist") from err

    def shutdown(self) -> None:
        self._state()["assembled"] = False

    def remove(self) -> None:
        DEVICES.pop(self.disk.uuid, None)
        if os.path.exists(self._path()):
            os.unlink(self._path())

    def dev_path(self) -> str:
        return self._path()

    def open(self, force: bool = False) -> None:
        self._state()["open"] = True

    def close(self) -> None:
        self._state()["open"] = False

    def rename(self, new_logical_id: list[Any]) -> None:
        self._state()["logical_id"] = new_logical_id

    def grow(self, amount: int, dryrun: bool = False) -> None:
        if not dryrun:
            self._state()["size"] += amount

    def get_sync_status(self) -> SyncStatus:
        return SyncStatus(
            dev_path=self._path(), sync_percent=None if self._state()["net"] else 50.0
        )

    def disconnect_net(self) -> None:
        self._state()["net"] = False

    def attach_net(self, multimaster: bool) -> None:
        self._state()["net"] = True


def build_device(disk: objects.Disk, ctx: DeviceContext, paths: Paths) -> BlockDevice:
    return FakeDevice(disk, ctx, paths)


def write_test_os(os_root: str, name: str = "testos") -> str:
    """An API 20 OS definition whose scripts log their environment."""
    d = Path(os_root) / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "ganeti_api_version").write_text("20\n15\n")
    (d / "variants.list").write_text("default\nother\n")
    (d / "parameters.list").write_text("color the color\n")
    script = (
        "#!/bin/sh\n"
        'echo "script=$(basename $0) name=$INSTANCE_NAME variant=$OS_VARIANT '
        'disk0=$DISK_0_PATH nic0=$NIC_0_MAC old=$OLD_INSTANCE_NAME color=$OSP_COLOR"\n'
        '[ "$OSP_COLOR" = "bad" ] && exit 3\n'
        "exit 0\n"
    )
    for s in ("create", "import", "export", "rename", "verify"):
        (d / s).write_text(script)
        (d / s).chmod(0o755)
    return str(d)
