"""``file`` and ``sharedfile`` disks: one sparse file per disk (Ganeti's FileStorage).

logical_id is ``["loop", path]`` with path
``<file_storage_dir>/<instance name>/<disk uuid>.file.disk<N>`` (the master
computes it; ``sharedfile`` lives under the shared file storage directory, which
every node of the group mounts). A path outside the allowed directory is
refused, as Ganeti's file-storage path check does, so a bad config can never
make noded write elsewhere.

The file is the device: `assemble` only checks it exists and returns its path.
`remove` also removes the instance directory once it is empty; an instance
rename moves the directory (`rename_file_storage_dir`).
"""

from __future__ import annotations

import os
from typing import Any

from corral import constants as C
from corral import errors
from corral.paths import Paths
from corral.storage import fsutil
from corral.storage.base import BlockDevice, NodeStorageInfo, SyncStatus


class FileStorage(BlockDevice):
    DEV_TYPE = C.LD_FILE
    BACKEND = "file"
    # Paths attribute holding the root directory, and the ctx.params override key
    _DIR_ATTR = "file_storage_dir"

    def _allowed_dirs(self) -> list[str]:
        dirs = [getattr(self.paths, self._DIR_ATTR)]
        extra = self.ctx.params.get(self._DIR_ATTR)
        if isinstance(extra, str) and extra:
            dirs.append(extra)
        return dirs

    @property
    def path(self) -> str:
        """The disk's file, validated against the allowed storage directory."""
        lid = self.disk.logical_id
        if len(lid) != 2 or not isinstance(lid[1], str):
            raise errors.BlockDeviceError(f"Invalid logical id for a file disk: {lid!r}")
        path = os.path.normpath(lid[1])
        if not any(fsutil.is_under(path, d) for d in self._allowed_dirs()):
            raise errors.BlockDeviceError(
                f"File storage path '{path}' is not under the allowed directory"
                f" '{self._allowed_dirs()[0]}'"
            )
        return path

    def create(self) -> None:
        path = self.path
        directory = os.path.dirname(path)
        made_dir = not os.path.isdir(directory)
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
        except OSError as err:
            raise errors.BlockDeviceError(
                f"Can't create directory {directory}: {err.strerror}"
            ) from err
        try:
            fsutil.create_sparse(path, self.disk.size)
        except errors.BlockDeviceError:
            if made_dir:
                fsutil.rmdir_if_empty(directory)
            raise

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def assemble(self) -> str:
        path = self.path
        if not os.path.isfile(path):
            raise errors.BlockDeviceError(f"File device {path} does not exist")
        return path

    def shutdown(self) -> None:
        """Nothing to deactivate for a plain file."""

    def remove(self) -> None:
        path = self.path
        fsutil.remove_file(path)
        fsutil.rmdir_if_empty(os.path.dirname(path))

    def dev_path(self) -> str:
        return self.path

    def userspace_uri(self) -> str | None:
        return None

    def rename(self, new_logical_id: list[Any]) -> None:
        """Move the file to the path of `new_logical_id` (same rules as create)."""
        old = self.path
        new_disk = self.disk.copy()
        new_disk.logical_id = list(new_logical_id)
        target = type(self)(new_disk, self.ctx, self.paths).path
        if old == target:
            return
        if not os.path.isfile(old):
            raise errors.BlockDeviceError(f"Can't rename {old}: file does not exist")
        if os.path.lexists(target):
            raise errors.BlockDeviceError(f"Can't rename {old}: {target} already exists")
        os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
        try:
            os.rename(old, target)
        except OSError as err:
            raise errors.BlockDeviceError(f"Can't rename {old}: {err.strerror}") from err
        fsutil.rmdir_if_empty(os.path.dirname(old))
        self.disk.logical_id = list(new_logical_id)

    def grow(self, amount: int, dryrun: bool = False) -> None:
        new_size = fsutil.grow_file(self.path, amount, dryrun)
        if not dryrun:
            self.disk.size = new_size

    def get_sync_status(self) -> SyncStatus:
        path = self.path
        ok = os.path.isfile(path)
        return SyncStatus(dev_path=path, is_degraded=not ok, ldisk_status="ok" if ok else "faulty")


class SharedFileStorage(FileStorage):
    """Same as `file`, under the shared file storage directory (every node sees it)."""

    DEV_TYPE = C.LD_SHARED_FILE
    BACKEND = "sharedfile"
    _DIR_ATTR = "shared_file_storage_dir"


def rename_file_storage_dir(paths: Paths, old_dir: str, new_dir: str) -> None:
    """Move an instance's file storage directory (instance rename).

    Both must be inside the file or shared file storage directory; a missing old
    directory is an error unless the new one already exists (retry after success).
    """
    roots = (paths.file_storage_dir, paths.shared_file_storage_dir)
    for d in (old_dir, new_dir):
        if not any(fsutil.is_under(d, r) for r in roots):
            raise errors.BlockDeviceError(f"Directory '{d}' is not a file storage directory")
    if not os.path.isdir(old_dir):
        if os.path.isdir(new_dir):
            return
        raise errors.BlockDeviceError(f"Cannot rename '{old_dir}': directory does not exist")
    if os.path.lexists(new_dir):
        raise errors.BlockDeviceError(f"Cannot rename '{old_dir}' to '{new_dir}': target exists")
    os.makedirs(os.path.dirname(new_dir), exist_ok=True)
    try:
        os.rename(old_dir, new_dir)
    except OSError as err:
        raise errors.BlockDeviceError(f"Cannot rename '{old_dir}': {err.strerror}") from err


def file_storage_info(paths: Paths, kind: str = C.DT_FILE) -> NodeStorageInfo:
    """Space of the (shared) file storage directory's file system, in MiB."""
    if kind == C.DT_FILE:
        name = paths.file_storage_dir
    elif kind == C.DT_SHARED_FILE:
        name = paths.shared_file_storage_dir
    else:
        raise errors.BlockDeviceError(f"Unknown file storage kind '{kind}'")
    total, free = fsutil.fs_space_mib(name)
    return NodeStorageInfo(type=kind, name=name, storage_size=total, storage_free=free)
