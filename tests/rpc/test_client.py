"""Client behaviour: failures become RpcResults quickly, never hangs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from corral import errors
from corral.node.context import NodeContext
from corral.rpc import defs
from corral.rpc.client import NodeTarget, RpcResult, RpcRunner

from .helpers import client_for, joined_node, serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_non_listening_port_fails_fast(tmp_path: Path) -> None:
    master = joined_node(tmp_path, "master")

    async def body() -> RpcResult:
        async with client_for(master) as runner:
            runner.port = _free_port()
            return await runner.call("version", NodeTarget("dead", "127.0.0.1"))

    start = time.monotonic()
    res = asyncio.run(body())
    assert time.monotonic() - start < 3
    assert res.failed and res.unreachable and res.node == "dead"
    assert res.fail_msg is not None and res.fail_msg.startswith("Node is unreachable")
    with pytest.raises(errors.NodeUnreachable):
        res.raise_on_fail()
    with pytest.raises(errors.NodeUnreachable, match=r"^Cannot get version: Node is unre"):
        res.raise_on_fail("Cannot get version")


@pytest.mark.needs_root
def test_link_down_namespace_fails_within_connect_timeout(tmp_path: Path) -> None:
    """An address behind a dead link (packets vanish) fails in ~5 s, not later."""
    ns = f"crltst{int(time.time() * 1000) % 100000}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        # a veth pair with a static neighbour entry: the SYNs leave and vanish
        for cmd in (
            ["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"],
            ["ip", "addr", "add", "10.254.0.1/24", "dev", "va"],
            ["ip", "link", "set", "va", "up"],
            ["ip", "link", "set", "vb", "up"],
            ["ip", "neigh", "add", "10.254.0.9", "lladdr", "02:00:00:00:00:09", "dev", "va"],
        ):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)
        code = (
            "import asyncio,time,sys\n"
            "from corral.rpc.client import RpcRunner, NodeTarget\n"
            "from corral.rpc.tls import insecure_client_context\n"
            "async def m():\n"
            "    async with RpcRunner(insecure_client_context()) as r:\n"
            "        return await r.call('version', NodeTarget('n', '10.254.0.9'))\n"
            "t=time.monotonic(); res=asyncio.run(m()); d=time.monotonic()-t\n"
            "print(d, res.unreachable, res.fail_msg)\n"
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, *_python(), "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        elapsed, unreachable, *_ = proc.stdout.split()
        assert unreachable == "True"
        assert 4.0 <= float(elapsed) < 7.0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _python() -> list[str]:
    import sys

    return [sys.executable]


def test_offline_node_not_contacted() -> None:
    async def body() -> RpcResult:
        async with RpcRunner(None, port=1) as runner:
            return await runner.call("version", NodeTarget("n", "192.0.2.1", offline=True))

    res = asyncio.run(body())
    assert res.offline and res.failed and res.fail_msg == "Node is marked offline"


def test_wrong_arity_is_a_programmer_error() -> None:
    async def body() -> None:
        async with RpcRunner(None) as runner:
            with pytest.raises(errors.ProgrammerError):
                await runner.call("instance_info", NodeTarget("n", "127.0.0.1"), "x")
            with pytest.raises(errors.ProgrammerError):
                await runner.call("no_such_call", NodeTarget("n", "127.0.0.1"))

    asyncio.run(body())


def test_unknown_call_and_bad_args_on_server(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")

    async def body() -> None:
        async with serving(NodeContext(node.paths, node_name="node1")) as srv:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                url = f"https://127.0.0.1:{srv.port}"
                from corral.rpc.tls import client_context

                ssl_ctx = client_context(
                    node.paths.ca_cert, node.paths.node_cert, node.paths.node_key
                )
                async with session.post(f"{url}/nope", data=b"[]", ssl=ssl_ctx) as resp:
                    assert resp.status == 404
                    ok, err = msgspec.json.decode(await resp.read())
                    assert ok is False and err[0] == "RPCError"
                async with session.post(f"{url}/instance_info", data=b"[1]", ssl=ssl_ctx) as resp:
                    assert resp.status == 400
                    ok, err = msgspec.json.decode(await resp.read())
                    assert err[0] == "ParameterError" and "name" in err[1][0]
                async with session.post(f"{url}/node_volumes", data=b"{", ssl=ssl_ctx) as resp:
                    assert resp.status == 400

    asyncio.run(body())


def test_call_multi_mixes_live_and_dead(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")

    async def body() -> dict[str, RpcResult]:
        async with (
            serving(NodeContext(node.paths, node_name="node1")) as srv,
            client_for(node) as runner,
        ):
            runner.port = srv.port
            return await runner.call_multi(
                "version",
                [
                    NodeTarget("node1", "127.0.0.1"),
                    NodeTarget("node2", "127.0.0.2"),  # nothing listens there
                    NodeTarget("node3", "127.0.0.3", offline=True),
                ],
            )

    res = asyncio.run(body())
    assert set(res) == {"node1", "node2", "node3"}
    assert res["node1"].payload["protocol"] == defs.PROTOCOL_VERSION
    assert res["node1"].payload["name"] == "node1"
    assert res["node2"].unreachable
    assert res["node3"].offline


def test_backend_error_is_decoded(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")

    async def body() -> RpcResult:
        async with (
            serving(NodeContext(node.paths, node_name="node1")) as srv,
            client_for(node) as runner,
        ):
            runner.port = srv.port
            return await runner.call(
                "run_hooks", NodeTarget("node1", "127.0.0.1"), "x", "middle", {}
            )

    res = asyncio.run(body())
    assert res.failed and not res.unreachable
    assert isinstance(res.error, errors.ParameterError)
    assert res.fail_msg == "Unknown hooks phase 'middle'"
    with pytest.raises(errors.ParameterError):
        res.raise_on_fail()
    with pytest.raises(errors.OpExecError, match=r"^Hooks: Unknown hooks phase"):
        res.raise_on_fail("Hooks")


def test_timeout_of_call_table() -> None:
    spec = defs.CALLS["instance_shutdown"]
    assert spec.timeout_for(("i", "kvm", 300.0, False)) == defs.TMO_NORMAL + 300.0
    assert defs.CALLS["version"].timeout == defs.TMO_FAST
    assert defs.CALLS["instance_os_add"].timeout == defs.TMO_LONG


def test_runner_survives_a_new_event_loop(tmp_path: Path) -> None:
    node = joined_node(tmp_path, "node1")
    runner = client_for(node)

    async def once() -> RpcResult:
        async with serving(NodeContext(node.paths, node_name="node1")) as srv:
            runner.port = srv.port
            return await runner.call("version", NodeTarget("node1", "127.0.0.1"))

    assert not asyncio.run(once()).failed
    assert not asyncio.run(once()).failed  # same runner, second loop


def test_http_layer_edge_cases(tmp_path: Path) -> None:
    """Raw requests: GET refused, chunked body accepted, garbage closes the connection."""
    import ssl

    node = joined_node(tmp_path, "node1")

    def raw(port: int, data: bytes) -> bytes:
        ctx = ssl.create_default_context(cafile=node.paths.ca_cert)
        ctx.check_hostname = False
        ctx.load_cert_chain(node.paths.node_cert, node.paths.node_key)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            ctx.wrap_socket(sock) as tls_sock,
        ):
            tls_sock.sendall(data)
            chunks = []
            while chunk := tls_sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    async def body() -> list[bytes]:
        async with serving(NodeContext(node.paths, node_name="node1")) as srv:
            return [
                await asyncio.to_thread(raw, srv.port, req)
                for req in (
                    b"GET /version HTTP/1.1\r\nConnection: close\r\n\r\n",
                    b"POST /version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                    b"Connection: close\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
                    b"POST /version HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
                    b"Connection: close\r\n\r\n[]",
                    b"NONSENSE\r\n\r\n",
                    b"POST /version HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
                )
            ]

    get, chunked, expect, garbage, huge = asyncio.run(body())
    assert get.startswith(b"HTTP/1.1 405 ")
    assert chunked.startswith(b"HTTP/1.1 200 ") and b'[true,{"protocol":1' in chunked
    assert expect.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert huge.startswith(b"HTTP/1.1 413 ")
