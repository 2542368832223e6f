"""``plain`` disks: LVM logical volumes, and their file-backed stand-in.

logical_id is ``[vg_name, lv_name]`` (the master names volumes like Ganeti:
``<uuid>.disk0`` for plain disks, ``<uuid>.disk0_data``/``_meta`` under DRBD).

Two backends serve the ``plain`` dev_type, chosen per node by the registry:

* `LogicalVolume` ("lvm"): real LVM through generated commands (lvcreate,
  lvremove, lvs, vgs ...) run by a `CommandRunner`, so tests check the commands.
* `FileVolume` ("filelv", TEST backend): where the node has no LVM/device-mapper,
  a "volume" is a sparse file ``<volumes_dir>/<vg>/<lv_name>``. The volume group
  is emulated as the directory; its free space is the file system's free space
  minus what existing volumes could still grow into, so allocation behaves like
  thick LVs and the allocator does not overcommit.
"""

from __future__ import annotations

import os
import re
from typing import Any

from corral import constants as C
from corral import errors
from corral.paths import Paths
from corral.storage import fsutil
from corral.storage.base import (
    BlockDevice,
    DeviceContext,
    NodeStorageInfo,
    StorageParam,
    SyncStatus,
)
from corral.storage.runner import CommandRunner, SubprocessRunner

_VALID_NAME = re.compile(r"^[a-zA-Z0-9+_.-]+$")
_RESERVED = (".", "..")
_RESERVED_PARTS = ("_mlog", "_mimage", "_pmspare", "_rimage", "_rmeta", "_vorigin")


def check_lvm_name(name: str, what: str = "logical volume") -> None:
    """Reject names LVM would refuse (Ganeti's _ValidateName rules)."""
    if (
        not name
        or not _VALID_NAME.match(name)
        or name in _RESERVED
        or name.startswith("-")
        or "snapshot" in name
        or "pvmove" in name
        or any(part in name for part in _RESERVED_PARTS)
    ):
        raise errors.BlockDeviceError(f"Invalid {what} name '{name}'")


def _vg_lv(disk_logical_id: list[Any]) -> tuple[str, str]:
    if len(disk_logical_id) != 2:
        raise errors.BlockDeviceError(f"Invalid logical id for a volume: {disk_logical_id!r}")
    vg, lv = str(disk_logical_id[0]), str(disk_logical_id[1])
    check_lvm_name(vg, "volume group")
    check_lvm_name(lv)
    return vg, lv


# -- command generation (pure) ------------------------------------------------

VGS_FIELDS = "vg_name,vg_size,vg_free"
LVS_FIELDS = "lv_attr,lv_kernel_major,lv_kernel_minor,lv_size"


def cmd_vgs(vg: str | None = None) -> list[str]:
    cmd = ["vgs", "--noheadings", "--nosuffix", "--units=m", "--separator=|", "-o", VGS_FIELDS]
    return [*cmd, vg] if vg else cmd


def cmd_lvs(vg: str, lv: str) -> list[str]:
    return [
        "lvs", "--noheadings", "--nosuffix", "--units=m", "--separator=|",
        "-o", LVS_FIELDS, f"{vg}/{lv}",
    ]  # fmt: skip


def cmd_lvs_all() -> list[str]:
    return [
        "lvs", "--noheadings", "--nosuffix", "--units=m", "--separator=|",
        "-o", "vg_name,lv_name,lv_size,lv_attr",
    ]  # fmt: skip


def cmd_lvcreate(vg: str, lv: str, size: int, stripes: int = 1) -> list[str]:
    cmd = ["lvcreate", f"-L{size}m", "-n", lv]
    if stripes > 1:
        cmd.append(f"-i{stripes}")
    return [*cmd, vg]


def cmd_lvremove(vg: str, lv: str) -> list[str]:
    return ["lvremove", "-f", f"{vg}/{lv}"]


def cmd_lvchange_activate(vg: str, lv: str) -> list[str]:
    return ["lvchange", "-ay", f"{vg}/{lv}"]


def cmd_lvrename(vg: str, old: str, new: str) -> list[str]:
    return ["lvrename", vg, old, new]


def cmd_lvextend(vg: str, lv: str, amount: int, dryrun: bool) -> list[str]:
    cmd = ["lvextend", "-L", f"+{amount}m"]
    if dryrun:
        cmd.append("--test")
    return [*cmd, f"/dev/{vg}/{lv}"]


def parse_vgs(output: str) -> dict[str, tuple[int, int]]:
    """vgs output -> {vg: (size MiB, free MiB)}."""
    result: dict[str, tuple[int, int]] = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3:
            continue
        try:
            result[parts[0]] = (int(float(parts[1])), int(float(parts[2])))
        except ValueError:
            continue
    return result


class LvInfo:
    """One parsed `lvs` line for a single volume."""

    def __init__(self, attr: str, major: int | None, minor: int | None, size: int) -> None:
        self.attr, self.major, self.minor, self.size = attr, major, minor, size

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"

    @property
    def degraded(self) -> bool:
        """Virtual (mirror lost a PV) or partial (a PV is missing)."""
        return self.attr[:1] == "v" or (len(self.attr) > 8 and self.attr[8] == "p")


def parse_lvs(output: str) -> LvInfo | None:
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue

        def num(v: str) -> int | None:
            try:
                n = int(float(v))
            except ValueError:
                return None
            return n if n >= 0 else None

        return LvInfo(parts[0], num(parts[1]), num(parts[2]), num(parts[3]) or 0)
    return None


# -- real LVM --------------------------------------------------------------------


class LogicalVolume(BlockDevice):
    DEV_TYPE = C.LD_LV
    BACKEND = "lvm"
    PARAMETERS = {
        "stripes": StorageParam(kind="int", default=1, doc="LVM stripes of the volume"),
    }

    def __init__(
        self,
        disk: Any,
        ctx: DeviceContext,
        paths: Paths,
        children: list[BlockDevice] | None = None,
        runner: CommandRunner | None = None,
    ) -> None:
        super().__init__(disk, ctx, paths, children)
        self.runner = runner or SubprocessRunner()
        self.vg, self.lv = _vg_lv(disk.logical_id)

    def _info(self) -> LvInfo | None:
        res = self.runner.run(cmd_lvs(self.vg, self.lv))
        if res.failed:
            return None
        return parse_lvs(res.stdout)

    def _vg_free(self) -> int:
        res = self.runner.run(cmd_vgs(self.vg))
        vgs = parse_vgs(res.stdout) if not res.failed else {}
        if self.vg not in vgs:
            raise errors.BlockDeviceError(f"Volume group '{self.vg}' not found")
        return vgs[self.vg][1]

    def create(self) -> None:
        if self._info() is not None:
            raise errors.BlockDeviceError(f"Logical volume {self.vg}/{self.lv} already exists")
        free = self._vg_free()
        if free < self.disk.size:
            raise errors.BlockDeviceError(
                f"Not enough free space: required {self.disk.size}, available {free}"
            )
        stripes = int(self.param("stripes"))
        res = self.runner.run(cmd_lvcreate(self.vg, self.lv, self.disk.size, stripes))
        if res.failed:
            raise errors.BlockDeviceError(f"LV create failed ({res.fail_reason})")

    def exists(self) -> bool:
        return self._info() is not None

    def assemble(self) -> str:
        self.runner.check(
            cmd_lvchange_activate(self.vg, self.lv),
            f"Can't activate logical volume {self.vg}/{self.lv}",
        )
        return self.dev_path()

    def shutdown(self) -> None:
        """LVs stay active, as in Ganeti (deactivation would race other users)."""

    def remove(self) -> None:
        if self._info() is None:
            return
        self.runner.check(cmd_lvremove(self.vg, self.lv), f"Can't lvremove {self.vg}/{self.lv}")

    def dev_path(self) -> str:
        return f"/dev/{self.vg}/{self.lv}"

    def rename(self, new_logical_id: list[Any]) -> None:
        vg, lv = _vg_lv(new_logical_id)
        if vg != self.vg:
            raise errors.BlockDeviceError(
                f"Can't move a logical volume across volume groups ({self.vg} -> {vg})"
            )
        if lv == self.lv:
            return
        self.runner.check(
            cmd_lvrename(self.vg, self.lv, lv), f"Failed to rename the logical volume {self.lv}"
        )
        self.lv = lv
        self.disk.logical_id = [vg, lv]

    def grow(self, amount: int, dryrun: bool = False) -> None:
        self.runner.check(
            cmd_lvextend(self.vg, self.lv, amount, dryrun), f"Can't grow LV {self.vg}/{self.lv}"
        )
        if not dryrun:
            self.disk.size += amount

    def get_sync_status(self) -> SyncStatus:
        info = self._info()
        if info is None:
            return SyncStatus(dev_path=self.dev_path(), is_degraded=True, ldisk_status="unknown")
        return SyncStatus(
            dev_path=self.dev_path(),
            major=info.major,
            minor=info.minor,
            is_degraded=info.degraded,
            ldisk_status="faulty" if info.degraded else "ok",
        )


def lvm_storage_info(vg: str, runner: CommandRunner | None = None) -> NodeStorageInfo:
    run = runner or SubprocessRunner()
    res = run.run(cmd_vgs(vg))
    vgs = parse_vgs(res.stdout) if not res.failed else {}
    if vg not in vgs:
        raise errors.BlockDeviceError(f"Volume group '{vg}' not found")
    size, free = vgs[vg]
    return NodeStorageInfo(type="lvm-vg", name=vg, storage_size=size, storage_free=free)


def lvm_list_volumes(runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """All LVs of the node: [{"name", "vg", "size", "dev"}] (orphan checks)."""
    run = runner or SubprocessRunner()
    res = run.run(cmd_lvs_all())
    if res.failed:
        raise errors.BlockDeviceError(f"Failed to list logical volumes: {res.fail_reason}")
    volumes: list[dict[str, Any]] = []
    for line in res.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        volumes.append(
            {
                "name": parts[1],
                "vg": parts[0],
                "size": int(float(parts[2])),
                "dev": f"/dev/{parts[0]}/{parts[1]}",
            }
        )
    return volumes


# -- file-backed test volumes -------------------------------------------------------


def filelv_vg_dir(paths: Paths, vg: str) -> str:
    return os.path.join(paths.volumes_dir, vg)


def filelv_storage_info(paths: Paths, vg: str) -> NodeStorageInfo:
    """Emulated VG: fs size; free = fs free minus what sparse volumes may still fill."""
    vg_dir = filelv_vg_dir(paths, vg)
    total, free = fsutil.fs_space_mib(vg_dir)
    reserved = 0
    if os.path.isdir(vg_dir):
        for entry in os.scandir(vg_dir):
            if entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                reserved += max(0, st.st_size - st.st_blocks * 512)
    return NodeStorageInfo(
        type="lvm-vg",
        name=vg,
        storage_size=total,
        storage_free=max(0, free - reserved // fsutil.MIB),
    )


def filelv_list_volumes(paths: Paths) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = []
    if not os.path.isdir(paths.volumes_dir):
        return volumes
    for vg_entry in sorted(os.scandir(paths.volumes_dir), key=lambda e: e.name):
        if not vg_entry.is_dir():
            continue
        for lv in sorted(os.scandir(vg_entry.path), key=lambda e: e.name):
            if lv.is_file():
                volumes.append(
                    {
                        "name": lv.name,
                        "vg": vg_entry.name,
                        "size": lv.stat().st_size // fsutil.MIB,
                        "dev": lv.path,
                    }
                )
    return volumes


class FileVolume(BlockDevice):
    """TEST backend of ``plain``: a sparse file standing in for an LV."""

    DEV_TYPE = C.LD_LV
    BACKEND = "filelv"
    PARAMETERS = LogicalVolume.PARAMETERS

    def __init__(
        self,
        disk: Any,
        ctx: DeviceContext,
        paths: Paths,
        children: list[BlockDevice] | None = None,
    ) -> None:
        super().__init__(disk, ctx, paths, children)
        self.vg, self.lv = _vg_lv(disk.logical_id)

    def create(self) -> None:
        path = self.dev_path()
        if os.path.lexists(path):
            raise errors.BlockDeviceError(f"Logical volume {self.vg}/{self.lv} already exists")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        free = filelv_storage_info(self.paths, self.vg).storage_free
        if free < self.disk.size:
            raise errors.BlockDeviceError(
                f"Not enough free space: required {self.disk.size}, available {free}"
            )
        fsutil.create_sparse(path, self.disk.size)

    def exists(self) -> bool:
        return os.path.isfile(self.dev_path())

    def assemble(self) -> str:
        if not self.exists():
            raise errors.BlockDeviceError(
                f"Can't activate logical volume {self.vg}/{self.lv}: volume not found"
            )
        return self.dev_path()

    def shutdown(self) -> None:
        """Nothing to deactivate."""

    def remove(self) -> None:
        fsutil.remove_file(self.dev_path())

    def dev_path(self) -> str:
        return os.path.join(filelv_vg_dir(self.paths, self.vg), self.lv)

    def rename(self, new_logical_id: list[Any]) -> None:
        vg, lv = _vg_lv(new_logical_id)
        if vg != self.vg:
            raise errors.BlockDeviceError(
                f"Can't move a logical volume across volume groups ({self.vg} -> {vg})"
            )
        old = self.dev_path()
        new = os.path.join(filelv_vg_dir(self.paths, vg), lv)
        if old == new:
            return
        if os.path.lexists(new):
            raise errors.BlockDeviceError(f"Failed to rename the logical volume: {lv} exists")
        try:
            os.rename(old, new)
        except OSError as err:
            raise errors.BlockDeviceError(
                f"Failed to rename the logical volume: {err.strerror}"
            ) from err
        self.lv = lv
        self.disk.logical_id = [vg, lv]

    def grow(self, amount: int, dryrun: bool = False) -> None:
        free = filelv_storage_info(self.paths, self.vg).storage_free
        if free < amount:
            raise errors.BlockDeviceError(
                f"Can't grow LV {self.vg}/{self.lv}: required {amount}, available {free}"
            )
        new_size = fsutil.grow_file(self.dev_path(), amount, dryrun)
        if not dryrun:
            self.disk.size = new_size

    def get_sync_status(self) -> SyncStatus:
        ok = self.exists()
        return SyncStatus(
            dev_path=self.dev_path(),
            is_degraded=not ok,
            ldisk_status="ok" if ok else "unknown",
        )
