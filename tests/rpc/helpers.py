"""Shared helpers for RPC tests: TLS material, an in-process noded, a client."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from corral.node.context import NodeContext
from corral.paths import Paths
from corral.rpc import tls
from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner
from corral.rpc.server import NodeServer


@functools.cache
def cluster_ca() -> tuple[str, str]:
    return tls.create_ca("cluster.project.edu")


@dataclass
class NodeFiles:
    paths: Paths
    name: str
    cert: str
    key: str
    serial: int


def joined_node(root: Path, name: str, ca: tuple[str, str] | None = None) -> NodeFiles:
    """A node directory tree holding the CA and a node cert signed by it."""
    ca = ca or cluster_ca()
    paths = Paths.under(root / name)
    cert, key, serial = tls.issue_node_cert(ca, name, ["127.0.0.1"])
    tls.install_node_material(paths, ca[0], cert, key)
    return NodeFiles(paths, name, cert, key, serial)


def client_for(node: NodeFiles) -> RpcRunner:
    """A runner presenting `node`'s certificate (as the master would)."""
    return RpcRunner(ClientTLS.from_paths(node.paths), port=0)


@contextlib.asynccontextmanager
async def serving(ctx: NodeContext) -> AsyncIterator[NodeServer]:
    server = NodeServer(ctx, host="127.0.0.1", port=0, max_workers=8)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def target(server: NodeServer, name: str = "node1") -> NodeTarget:
    return NodeTarget(name, "127.0.0.1")


def runner_for_server(runner: RpcRunner, server: NodeServer) -> RpcRunner:
    runner.port = server.port
    return runner


@contextlib.asynccontextmanager
async def connected(node: NodeFiles) -> AsyncIterator[tuple[NodeServer, RpcRunner]]:
    """A noded for `node` and a runner (with `node`'s cert) pointed at it."""
    async with serving(NodeContext(node.paths, node_name=node.name)) as srv:
        runner = client_for(node)
        runner.port = srv.port
        async with runner:
            yield srv, runner
