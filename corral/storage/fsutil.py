"""File-system helpers shared by the file-backed drivers (no driver logic here).

Sizes are MiB (Ganeti's unit) unless a name says bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator

from corral import errors

MIB = 1024 * 1024

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc: ctypes.CDLL | None = None


def existing_ancestor(path: str) -> str:
    """The nearest existing directory at or above `path` (statvfs needs one)."""
    cur = os.path.abspath(path)
    while not os.path.exists(cur):
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    return cur


def fs_space_mib(path: str) -> tuple[int, int]:
    """(total, free) MiB of the file system holding `path` (or its nearest ancestor)."""
    st = os.statvfs(existing_ancestor(path))
    return (st.f_blocks * st.f_frsize) // MIB, (st.f_bavail * st.f_frsize) // MIB


def is_under(path: str, directory: str) -> bool:
    """Whether normalised `path` lies strictly inside `directory` (no `..` escapes)."""
    p = os.path.normpath(os.path.abspath(path))
    d = os.path.normpath(os.path.abspath(directory))
    return p.startswith(d.rstrip("/") + "/")


def create_sparse(path: str, size_mib: int, free_check_dir: str | None = None) -> None:
    """Create `path` as a sparse file of `size_mib`, exclusively.

    Raises BlockDeviceError if the file exists or the file system has less than
    `size_mib` free (checked before anything is written, so nothing is left over).
    """
    if os.path.lexists(path):
        raise errors.BlockDeviceError(f"File already existing: {path}")
    _, free = fs_space_mib(free_check_dir or os.path.dirname(path))
    if free < size_mib:
        raise errors.BlockDeviceError(
            f"Not enough free space to create {path}: required {size_mib} MiB, available {free} MiB"
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise errors.BlockDeviceError(f"File already existing: {path}") from err
    except OSError as err:
        raise errors.BlockDeviceError(f"Error in file creation: {err.strerror}") from err
    try:
        os.ftruncate(fd, size_mib * MIB)
    except OSError as err:
        os.close(fd)
        os.unlink(path)
        raise errors.BlockDeviceError(f"Error in file creation: {err.strerror}") from err
    os.close(fd)


def grow_file(path: str, amount_mib: int, dryrun: bool, free_check_dir: str | None = None) -> int:
    """Extend `path` by `amount_mib` (sparse); return the new size in MiB."""
    try:
        cur = os.stat(path).st_size
    except FileNotFoundError as err:
        raise errors.BlockDeviceError(f"Can't grow {path}: file does not exist") from err
    if amount_mib < 0:
        raise errors.BlockDeviceError(f"Can't shrink {path}")
    _, free = fs_space_mib(free_check_dir or os.path.dirname(path))
    if free < amount_mib:
        raise errors.BlockDeviceError(
            f"Not enough free space to grow {path}: required {amount_mib} MiB, available {free} MiB"
        )
    new_size = cur + amount_mib * MIB
    if not dryrun:
        try:
            os.truncate(path, new_size)
        except OSError as err:
            raise errors.BlockDeviceError(f"Can't grow {path}: {err.strerror}") from err
    return new_size // MIB


def remove_file(path: str) -> None:
    """Unlink `path`; a missing file is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise errors.BlockDeviceError(f"Can't remove file {path}: {err.strerror}") from err


def rmdir_if_empty(directory: str) -> None:
    try:
        os.rmdir(directory)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise errors.BlockDeviceError(
                f"Can't remove directory {directory}: {err.strerror}"
            ) from err


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, end) byte ranges holding data, via SEEK_DATA/SEEK_HOLE.

    Falls back to one extent covering the file where the file system does not
    support hole seeking.
    """
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # no more data after pos
                return
            if err.errno == errno.EINVAL:
                yield pos, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        pos = end


def allocated_bytes(path: str) -> int:
    return os.stat(path).st_blocks * 512


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate a byte range (reads as zeros); writes zeros where unsupported."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ret = _libc.fallocate(
        ctypes.c_int(fd),
        ctypes.c_int(_FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE),
        ctypes.c_longlong(offset),
        ctypes.c_longlong(length),
    )
    if ret != 0:
        zero = bytes(min(length, MIB))
        done = 0
        while done < length:
            n = min(len(zero), length - done)
            os.pwrite(fd, zero[:n], offset + done)
            done += n
