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
    The admin confirmed the node's fingerprint, so the master knows the node.
    The node must know the master too: without a join token it only accepts a
    cluster whose CA fingerprint the node's admin listed in
    ``/etc/corral/trusted-ca`` (one SHA-256 fingerprint per line; the CA
    fingerprint is shown by `gnt-cluster info`), and only with a node
    certificate signed by that CA for the key it is given. A node with neither
    a token nor a trusted CA refuses every join: anyone able to reach a fresh
    node must not be able to make it theirs.

Whether the caller must authenticate is decided by the connection, not by the
files: while the server serves its unjoined (self-signed) certificate every
`node_join` must prove itself, even if certificate files already exist. A
server serving the cluster certificate only lets callers with a verified
cluster certificate this far (e.g. re-adding a node).
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
    fingerprint,
    join_proof,
    normalize_fingerprint,
    proofs_equal,
    read_join_token,
    write_revoked,
)

NONCE_LIFETIME = 300.0
MAX_PENDING_CHALLENGES = 64


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
        if len(ctx.join_nonces) >= MAX_PENDING_CHALLENGES:
            # anonymous callers must not grow this without bound
            raise errors.CertificateError("Too many pending join challenges, retry later")
        ctx.join_nonces[mine] = (nonce, now + NONCE_LIFETIME)
    return {"nonce": mine, "proof": join_proof(token, "node", nonce, mine, ctx.serving_fingerprint)}


def _trusted_cas(ctx: NodeContext) -> set[str]:
    try:
        with open(os.path.join(ctx.paths.etc_dir, "trusted-ca")) as fh:
            return {normalize_fingerprint(line) for line in fh if line.strip()}
    except (OSError, ValueError):
        return set()


def _check_trusted_ca(ctx: NodeContext, ca_pem: str, cert_pem: str, key_pem: str) -> None:
    """Pinned mode: the CA must be one the node's admin trusts, and the node's
    certificate must come from it and match the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    trusted = _trusted_cas(ctx)
    if not trusted:
        raise errors.CertificateError(
            "Join refused: this node has no join token (/etc/corral/join.token) and"
            " trusts no cluster CA (/etc/corral/trusted-ca)"
        )
    try:
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as err:
        raise errors.CertificateError(f"Join refused: invalid certificates: {err}") from err
    except Exception as err:  # InvalidSignature and friends
        raise errors.CertificateError(
            "Join refused: the node certificate is not signed by the cluster CA"
        ) from err
    if fingerprint(ca.public_bytes(serialization.Encoding.DER)) not in trusted:
        raise errors.CertificateError("Join refused: this node does not trust that cluster CA")
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        raise errors.CertificateError("Join refused: the key does not match the certificate")


def _check_auth(
    ctx: NodeContext, auth: dict[str, Any] | None, ca_pem: str, cert_pem: str, key_pem: str
) -> None:
    token = read_join_token(ctx.paths)
    if token is None:
        _check_trusted_ca(ctx, ca_pem, cert_pem, key_pem)
        return
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
    if not ctx.server_joined:
        _check_auth(ctx, auth, ca_pem, cert_pem, key_pem)
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
