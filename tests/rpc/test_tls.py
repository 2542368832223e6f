"""Mutual TLS of node RPC: who may call a joined noded."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from corral import errors
from corral.node.context import NodeContext
from corral.node.security import fingerprint, write_revoked
from corral.rpc import tls
from corral.rpc.client import NodeTarget, RpcRunner

from .helpers import client_for, joined_node, serving

NODE = NodeTarget("node1", "127.0.0.1")


def test_fingerprint_format_and_serial() -> None:
    ca = tls.create_ca("c")
    cert, key, serial = tls.issue_node_cert(ca, "node1.project.edu", ["10.0.0.1"])
    fp = fingerprint(cert)
    assert len(fp) == 95 and fp.count(":") == 31 and fp == fp.upper()
    assert tls.cert_serial(cert) == serial
    assert 0 < serial < 2**63
    assert fingerprint(ssl.PEM_cert_to_DER_cert(cert)) == fp
    assert "PRIVATE KEY" in key


def test_issue_with_bad_ca_raises() -> None:
    with pytest.raises(errors.CertificateError):
        tls.issue_node_cert(("nope", "nope"), "n", [])


def test_node_cert_accepted(tmp_path: Path) -> None:
    server_node = joined_node(tmp_path, "node1")
    master = joined_node(tmp_path, "node2")

    async def body() -> None:
        async with serving(NodeContext(server_node.paths, node_name="node1")) as srv:
            runner = client_for(master)
            runner.port = srv.port
            async with runner:
                res = await runner.call("node_volumes", NODE)
                assert res.fail_msg is None, res.fail_msg
                assert res.payload == []

    asyncio.run(body())


def test_foreign_cert_rejected(tmp_path: Path) -> None:
    server_node = joined_node(tmp_path, "node1")
    foreign = joined_node(tmp_path, "evil", ca=tls.create_ca("other"))

    async def body() -> None:
        async with serving(NodeContext(server_node.paths, node_name="node1")) as srv:
            # client trusts the real CA but presents a certificate from another CA
            ctx = tls.client_context(
                server_node.paths.ca_cert, foreign.paths.node_cert, foreign.paths.node_key
            )
            async with RpcRunner(ctx, port=srv.port) as runner:
                res = await runner.call("node_volumes", NODE)
                assert res.failed
            # and a client trusting only the foreign CA refuses our server
            async with client_for(foreign) as runner:
                runner.port = srv.port
                res = await runner.call("version", NODE)
                assert res.failed and res.unreachable

    asyncio.run(body())


def test_no_client_cert_only_version(tmp_path: Path) -> None:
    server_node = joined_node(tmp_path, "node1")

    async def body() -> None:
        async with serving(NodeContext(server_node.paths, node_name="node1")) as srv:
            ctx = tls.client_context(server_node.paths.ca_cert)
            async with RpcRunner(ctx, port=srv.port) as runner:
                res = await runner.call("version", NODE)
                assert res.fail_msg is None and res.payload["joined"] is True
                res = await runner.call("node_volumes", NODE)
                assert res.fail_msg == "Client certificate required"
                assert isinstance(res.error, errors.CertificateError)

    asyncio.run(body())


def test_revoked_serial_rejected(tmp_path: Path) -> None:
    server_node = joined_node(tmp_path, "node1")
    master = joined_node(tmp_path, "node2")
    other = joined_node(tmp_path, "node3")

    async def body() -> None:
        async with serving(NodeContext(server_node.paths, node_name="node1")) as srv:
            async with client_for(master) as runner:
                runner.port = srv.port
                assert not (await runner.call("node_volumes", NODE)).failed
                write_revoked(server_node.paths, [master.serial, 12345])
                res = await runner.call("node_volumes", NODE)
                assert res.fail_msg == "Client certificate has been revoked"
            async with client_for(other) as runner:
                runner.port = srv.port
                assert not (await runner.call("node_volumes", NODE)).failed
                # revocation through the RPC call itself
                assert not (await runner.call("node_set_revoked", NODE, [other.serial])).failed
                assert (await runner.call("node_volumes", NODE)).failed
                assert tls.read_revoked(server_node.paths) == {other.serial}

    asyncio.run(body())
