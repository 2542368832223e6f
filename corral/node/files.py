"""File transfer onto this node: small uploads and chunked streams.

Both write a temp file in the destination directory and rename it into place,
so readers never see a half-written file and a failed transfer leaves nothing.
Mode, atime and mtime are applied before the rename. Streams keep their open
temp file in the `NodeContext` between calls; an abandoned stream is dropped
after `STREAM_IDLE_LIMIT` seconds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import tempfile
import time

from corral import errors
from corral.node.context import FileStream, NodeContext
from corral.node.security import atomic_write

STREAM_IDLE_LIMIT = 3600.0


def _check_path(path: str) -> str:
    if not os.path.isabs(path) or os.path.normpath(path) != path.rstrip("/") or ".." in path:
        raise errors.ParameterError(f"Invalid file path '{path}': must be absolute and normal")
    return path


def _decode(data_b64: str) -> bytes:
    try:
        return base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise errors.ParameterError(f"Invalid base64 data: {err}") from err


def upload_file(
    ctx: NodeContext,
    path: str,
    data_b64: str,
    mode: int,
    uid: int,
    gid: int,
    atime: float | None,
    mtime: float | None,
) -> None:
    """Write a small file atomically with the given mode/owner/times."""
    _check_path(path)
    data = _decode(data_b64)
    try:
        atomic_write(path, data, mode & 0o7777)
        if uid != -1 or gid != -1:
            os.chown(path, uid, gid)
        if mtime is not None:
            os.utime(path, (atime if atime is not None else mtime, mtime))
    except OSError as err:
        raise errors.OpExecError(f"Cannot write file {path}: {err}") from err


def _drop_stale(ctx: NodeContext) -> None:
    now = time.monotonic()
    for token, stream in list(ctx.streams.items()):
        if now - stream.started > STREAM_IDLE_LIMIT:
            _discard(ctx, token)


def _discard(ctx: NodeContext, token: str) -> None:
    stream = ctx.streams.pop(token, None)
    if stream is None:
        return
    with contextlib.suppress(OSError):
        os.close(stream.fd)
    with contextlib.suppress(OSError):
        os.unlink(stream.tmp_path)


def file_stream_begin(
    ctx: NodeContext, path: str, size: int, mode: int, mtime: float | None, atime: float | None
) -> str:
    """Open a temp file next to `path` (sized `size`, sparse) and return a token."""
    _check_path(path)
    if size < 0:
        raise errors.ParameterError(f"Invalid file size {size}")
    with ctx.lock:
        _drop_stale(ctx)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
        os.ftruncate(fd, size)
    except OSError as err:
        raise errors.OpExecError(f"Cannot create file {path}: {err}") from err
    token = secrets.token_hex(16)
    with ctx.lock:
        ctx.streams[token] = FileStream(
            path=path,
            tmp_path=tmp,
            size=size,
            mode=mode & 0o7777,
            mtime=mtime if mtime is not None else time.time(),
            atime=atime if atime is not None else (mtime if mtime is not None else time.time()),
            fd=fd,
        )
    return token


def _stream(ctx: NodeContext, token: str) -> FileStream:
    with ctx.lock:
        stream = ctx.streams.get(token)
    if stream is None:
        raise errors.OpExecError("Unknown or expired file transfer")
    return stream


def file_stream_chunk(ctx: NodeContext, token: str, offset: int, data_b64: str) -> None:
    """Write one chunk at `offset` (chunks may skip holes of sparse files)."""
    stream = _stream(ctx, token)
    data = _decode(data_b64)
    if offset < 0 or offset + len(data) > stream.size:
        raise errors.ParameterError(
            f"Chunk at {offset} (+{len(data)}) is outside the file size {stream.size}"
        )
    try:
        written = os.pwrite(stream.fd, data, offset)
    except OSError as err:
        _discard(ctx, token)
        raise errors.OpExecError(f"Cannot write file {stream.path}: {err}") from err
    stream.received += written


def file_stream_end(ctx: NodeContext, token: str, sha256: str) -> bool:
    """Verify the checksum, apply mode and times, rename into place."""
    stream = _stream(ctx, token)
    digest = hashlib.sha256()
    try:
        os.fsync(stream.fd)
        with open(stream.tmp_path, "rb") as fh:
            while block := fh.read(1024 * 1024):
                digest.update(block)
    except OSError as err:
        _discard(ctx, token)
        raise errors.OpExecError(f"Cannot read back {stream.path}: {err}") from err
    if digest.hexdigest() != sha256.lower():
        _discard(ctx, token)
        raise errors.OpExecError(f"Checksum mismatch for {stream.path}, file not written")
    try:
        os.fchmod(stream.fd, stream.mode)
        os.close(stream.fd)
        os.utime(stream.tmp_path, (stream.atime, stream.mtime))
        os.replace(stream.tmp_path, stream.path)
    except OSError as err:
        _discard(ctx, token)
        raise errors.OpExecError(f"Cannot install {stream.path}: {err}") from err
    with ctx.lock:
        ctx.streams.pop(token, None)
    return True


def file_stream_abort(ctx: NodeContext, token: str) -> None:
    with ctx.lock:
        _discard(ctx, token)
