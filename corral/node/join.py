"""Joining and leaving a cluster, and the revocation list (node side).

Join protocol (two-way authenticated without SSH; see docs/helpers/RPC.md):

token mode
    1. master -> `node_join_challenge(nonce_m)`; the node answers a fresh
       ``nonce_n`` and ``proof_n = HMAC(token, "node", nonce_m, nonce_n, fp)``
       where ``fp`` is the fingerprint of the certificate the node serves. The
       master checks it against the fingerprint it saw in the TLS handshake: the
       node knows the token and nobody sits in between.
    2. master -> `node_join(..., auth={"nonce": nonce_n, "proof": proof_m})` with
       ``proof_m = HMAC(token, "master", nonce_n, nonce_m, fp)``; the node checks
       it against the nonce it issued (single use, 5 minutes).
pinned mode
    The admin confirmed the node's fingerprint, so the master knows the node. A
    node that holds no join token accepts the first master that joins it (as a
    fresh host accepts the first SSH login with its root password); a node that
    holds a token always requires the proof.

A node that already joined only accepts `node_join` from a caller with a
verified cluster certificate (the server enforces that; e.g. re-adding a node).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from typing import Any

from corral import errors
from corral.node import cluster
from corral.node.context import NodeContext
from corral.node.security import (
    atomic_write,
    join_proof,
    proofs_equal,
    read_join_token,
    write_revoked,
)

NONCE_LIFETIME = 300.0


def _is_joined(ctx: NodeContext) -> bool:
    p = ctx.paths
    return all(os.path.exists(f) for f in (p.ca_cert, p.node_cert, p.node_key))


def node_join_challenge(ctx: NodeContext, nonce: str) -> dict[str, Any]:
    """Step 1 of the token handshake (see module docstring)."""
    if not nonce or len(nonce) < 16:
        raise errors.ParameterError("Join challenge nonce too short")
    token = read_join_token(ctx.paths)
    if token is None:
        return {"nonce": None, "proof": None}
    mine = secrets.token_hex(16)
    now = time.monotonic()
    with ctx.lock:
        for key, (_, expiry) in list(ctx.join_nonces.items()):
            if expiry < now:
                del ctx.join_nonces[key]
        ctx.join_nonces[mine] = (nonce, now + NONCE_LIFETIME)
    return {"nonce": mine, "proof": join_proof(token, "node", nonce, mine, ctx.serving_fingerprint)}


def _check_auth(ctx: NodeContext, auth: dict[str, Any] | None) -> None:
    token = read_join_token(ctx.paths)
    if token is None:
        return  # pinned mode: the master authenticated us by fingerprint
    if not auth or not auth.get("nonce") or not auth.get("proof"):
        raise errors.CertificateError("This node requires the cluster join token")
    with ctx.lock:
        entry = ctx.join_nonces.pop(str(auth["nonce"]), None)
    if entry is None or entry[1] < time.monotonic():
        raise errors.CertificateError("Join challenge unknown or expired")
    master_nonce = entry[0]
    expected = join_proof(
        token, "master", str(auth["nonce"]), master_nonce, ctx.serving_fingerprint
    )
    if not proofs_equal(expected, str(auth["proof"])):
        raise errors.CertificateError("Join refused: wrong join token")


def node_join(
    ctx: NodeContext,
    ca_pem: str,
    cert_pem: str,
    key_pem: str,
    cluster_name: str,
    master_name: str,
    ssconf: dict[str, str] | None,
    auth: dict[str, Any] | None,
    ca_key_pem: str | None,
) -> None:
    """Install the cluster's CA, this node's cert/key and the first ssconf values.

    The server switches to mutual TLS right after answering.
    """
    if not _is_joined(ctx):
        _check_auth(ctx, auth)
    for label, text in (("CA", ca_pem), ("certificate", cert_pem)):
        if "BEGIN CERTIFICATE" not in text:
            raise errors.CertificateError(f"Invalid {label} sent by the master")
    if "PRIVATE KEY" not in key_pem:
        raise errors.CertificateError("Invalid private key sent by the master")
    p = ctx.paths
    os.makedirs(p.etc_dir, exist_ok=True)
    atomic_write(p.ca_cert, ca_pem.encode(), 0o644)
    atomic_write(p.node_key, key_pem.encode(), 0o600)
    atomic_write(p.node_cert, cert_pem.encode(), 0o644)
    if ca_key_pem:
        atomic_write(p.ca_key, ca_key_pem.encode(), 0o600)
    values = dict(ssconf or {})
    values.setdefault("cluster_name", cluster_name)
    values.setdefault("master_node", master_name)
    cluster.write_ssconf_files(ctx, values)
    ctx.tls_changed = True


def node_leave(ctx: NodeContext) -> None:
    """Forget the cluster: certificates, config and queue copies, ssconf files."""
    p = ctx.paths
    for path in (p.node_cert, p.node_key, p.ca_cert, p.ca_key, p.crl_file, p.config_file):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    cluster.jobqueue_purge(ctx)
    cluster.remove_ssconf_files(ctx)
    ctx.tls_changed = True


def node_set_revoked(ctx: NodeContext, serials: list[int]) -> None:
    """Replace the list of revoked client certificate serials."""
    write_revoked(ctx.paths, serials)
