"""Master side of the node join protocol (see `corral.node.join` for the node side).

* `fetch_fingerprint(host)`: synchronous, for the CLI prompt
  ("The authenticity of host ... can't be established ... fingerprint is ...").
* `join_node(host, material, token=..., fingerprint=...)`: reads the node's
  certificate fingerprint, checks it against the pinned one and/or runs the
  token challenge/response, then sends `node_join`. Every later request of the
  join pins the fingerprint seen first, so the node cannot be swapped midway.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
from typing import Any

import msgspec

from corral import constants as C
from corral import errors
from corral.node.security import fingerprint as cert_fingerprint
from corral.node.security import join_proof, normalize_fingerprint, proofs_equal
from corral.rpc.client import NodeTarget, RpcRunner
from corral.rpc.tls import insecure_client_context


class JoinMaterial(msgspec.Struct, kw_only=True):
    """What the master installs on a joining node (arguments of `node_join`)."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    cluster_name: str
    master_name: str
    ssconf: dict[str, str] = msgspec.field(default_factory=dict)
    ca_key_pem: str | None = None  # only for master candidates


def fetch_fingerprint(host: str, port: int = C.NODED_PORT, timeout: float = 5.0) -> str:
    """SHA-256 fingerprint of the certificate served at host:port (no trust implied)."""
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            insecure_client_context().wrap_socket(sock) as tls_sock,
        ):
            der = tls_sock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as err:
        raise errors.NodeUnreachable(f"Cannot connect to {host}:{port}: {err}") from err
    if not der:
        raise errors.CertificateError(f"Node {host} presented no certificate")
    return cert_fingerprint(der)


async def async_fetch_fingerprint(host: str, port: int = C.NODED_PORT, timeout: float = 5.0) -> str:
    """Like `fetch_fingerprint`, without blocking the event loop."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=insecure_client_context()), timeout
        )
    except (OSError, ssl.SSLError, TimeoutError) as err:
        raise errors.NodeUnreachable(f"Cannot connect to {host}:{port}: {err}") from err
    try:
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise errors.CertificateError(f"Node {host} presented no certificate")
    return cert_fingerprint(der)


def pinned_runner(fp: str, port: int = C.NODED_PORT) -> RpcRunner:
    """A runner that only talks to the server whose certificate has fingerprint `fp`."""
    import aiohttp

    digest = bytes.fromhex(normalize_fingerprint(fp).replace(":", ""))
    return RpcRunner(aiohttp.Fingerprint(digest), port=port)


async def token_auth(
    runner: RpcRunner, node: NodeTarget, token: str, seen_fp: str
) -> dict[str, Any]:
    """Run the challenge: check the node's proof, return our proof for `node_join`."""
    my_nonce = secrets.token_hex(16)
    res = await runner.call("node_join_challenge", node, my_nonce)
    res.raise_on_fail()
    payload = res.payload or {}
    node_nonce, node_proof = payload.get("nonce"), payload.get("proof")
    if not node_nonce or not node_proof:
        raise errors.CertificateError(
            f"Node {node.name} has no join token; join it by its fingerprint instead"
        )
    expected = join_proof(token, "node", my_nonce, str(node_nonce), seen_fp)
    if not proofs_equal(expected, str(node_proof)):
        raise errors.CertificateError(
            f"Join refused: node {node.name} does not know the cluster join token"
        )
    return {
        "nonce": node_nonce,
        "proof": join_proof(token, "master", str(node_nonce), my_nonce, seen_fp),
    }


async def join_node(
    host: str,
    material: JoinMaterial,
    *,
    token: str | None = None,
    fingerprint: str | None = None,
    port: int = C.NODED_PORT,
    node_name: str | None = None,
) -> str:
    """Join the node at `host`; returns the fingerprint of its (pre-join) certificate.

    At least one of `token` (shared join token) and `fingerprint` (confirmed by
    the admin) is required. Raises CertificateError when authentication fails,
    NodeUnreachable when the node cannot be reached, RPCError/... when the node
    refuses.
    """
    if not token and not fingerprint:
        raise errors.CertificateError(
            "Joining a node needs its certificate fingerprint or the cluster join token"
        )
    seen = await async_fetch_fingerprint(host, port)
    if fingerprint and normalize_fingerprint(fingerprint) != seen:
        raise errors.CertificateError(
            f"Certificate fingerprint of {host} is {seen}, not the expected "
            f"{normalize_fingerprint(fingerprint)}"
        )
    node = NodeTarget(node_name or host, host)
    async with pinned_runner(seen, port) as runner:
        auth = await token_auth(runner, node, token, seen) if token else None
        res = await runner.call(
            "node_join",
            node,
            material.ca_pem,
            material.cert_pem,
            material.key_pem,
            material.cluster_name,
            material.master_name,
            material.ssconf,
            auth,
            material.ca_key_pem,
        )
        res.raise_on_fail()
    return seen
