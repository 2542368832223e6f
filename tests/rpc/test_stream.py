"""Big file copies (gnt-cluster copyfile) through file_stream_* calls."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from corral.rpc.client import NodeTarget, RpcResult, stream_file

from .helpers import connected, joined_node

NODE = NodeTarget("node1", "127.0.0.1")
SIZE = 50 * 1024 * 1024


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sparse_50mb_file_keeps_mode_times_checksum(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")
    src = tmp_path / "image.raw"
    with open(src, "wb") as fh:
        fh.truncate(SIZE)
        for offset in (0, 7 * 1024 * 1024 + 3, SIZE - 100):
            fh.seek(offset)
            fh.write(os.urandom(100))
    os.chmod(src, 0o604)
    os.utime(src, (1_234_567_890.5, 1_300_000_000.25))
    dest = Path(node.paths.data_dir) / "copies" / "image.raw"

    async def body() -> RpcResult:
        async with connected(node) as (_, runner):
            return await stream_file(runner, NODE, str(src), str(dest))

    res = asyncio.run(body())
    assert res.fail_msg is None and res.payload is True
    st = os.stat(dest)
    assert st.st_size == SIZE
    assert st.st_mode & 0o7777 == 0o604
    assert st.st_mtime == 1_300_000_000.25
    assert st.st_atime == 1_234_567_890.5
    assert _sha(dest) == _sha(src)
    # holes were not sent, so they stay holes on the node
    assert st.st_blocks * 512 < 16 * 1024 * 1024
    assert [p.name for p in dest.parent.iterdir()] == ["image.raw"]


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")
    dest = f"{node.paths.data_dir}/bad"

    async def body() -> RpcResult:
        async with connected(node) as (_, runner):
            begin = await runner.call("file_stream_begin", NODE, dest, 4, 0o644)
            token = begin.payload
            await runner.call("file_stream_chunk", NODE, token, 0, "YWJjZA==")
            bad = await runner.call("file_stream_chunk", NODE, token, 2, "YWJjZA==")
            assert bad.failed and "outside the file size" in (bad.fail_msg or "")
            return await runner.call("file_stream_end", NODE, token, "0" * 64)

    res = asyncio.run(body())
    assert res.fail_msg == f"Checksum mismatch for {dest}, file not written"
    assert os.listdir(node.paths.data_dir) == []


def test_unknown_stream_and_relative_path(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")

    async def body() -> tuple[RpcResult, RpcResult]:
        async with connected(node) as (_, runner):
            a = await runner.call("file_stream_chunk", NODE, "nope", 0, "")
            b = await runner.call("file_stream_begin", NODE, "rel/path", 1)
            return a, b

    a, b = asyncio.run(body())
    assert a.fail_msg == "Unknown or expired file transfer"
    assert b.fail_msg is not None and b.fail_msg.startswith("Invalid file path 'rel/path'")
