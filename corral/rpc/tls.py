"""Cluster TLS material: the CA, node certificates and the ssl contexts of node RPC.

Trust model (replaces Ganeti's shared server.pem + SSH):

* `gnt-cluster init` creates a cluster CA (`create_ca`); its key stays on the
  master (and master candidates). Every node gets its own certificate signed by
  the CA (`issue_node_cert`), used both as the noded server certificate and as
  the client certificate when that node is master.
* noded requires mutual TLS once joined: the peer certificate must chain to the
  CA (checked by OpenSSL during the handshake) and its serial must not be in the
  revocation list ``paths.crl_file`` (checked per request by the server, so a
  revocation takes effect without a restart).
* Clients connect by IP, so host names are not checked; the chain to the
  private cluster CA is what authenticates a node.
* An unjoined noded serves a self-signed certificate kept under ``etc_dir`` so
  its fingerprint stays the same across restarts (the admin confirms it once).

Fingerprints are SHA-256 of the DER certificate, upper-case hex with colons, as
``openssl x509 -fingerprint -sha256`` prints them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from corral import errors
from corral.node.security import (
    atomic_write,
    fingerprint,
    read_revoked,
    selfsigned_cert_path,
    selfsigned_key_path,
    write_revoked,
)
from corral.paths import Paths

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.types import (
        CertificateIssuerPrivateKeyTypes,
    )

__all__ = [
    "atomic_write",
    "cert_serial",
    "client_context",
    "create_ca",
    "create_self_signed",
    "ensure_self_signed",
    "fingerprint",
    "insecure_client_context",
    "install_node_material",
    "is_joined",
    "issue_node_cert",
    "read_revoked",
    "server_context",
    "unjoined_server_context",
    "write_revoked",
    "write_self_signed",
]

_CA_DAYS = 3650 * 2
_CERT_DAYS = 3650


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec as ec_

    return ec_.generate_private_key(ec_.SECP256R1())


def _key_pem(key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _serial() -> int:
    """Positive 63-bit serial: fits JSON/msgspec integers and objects.Node.cert_serial."""
    return secrets.randbits(63) | 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def create_ca(cluster_name: str) -> tuple[str, str]:
    """Create the cluster CA; returns ``(ca_cert_pem, ca_key_pem)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "corral"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"corral CA {cluster_name}"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def _leaf(
    subject_cn: str,
    ips: Iterable[str],
    issuer: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None,
) -> tuple[str, str, int]:
    """Build a leaf certificate (server + client use); self-signed if no issuer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    alt: list[x509.GeneralName] = [x509.DNSName(subject_cn)]
    for ip in ips:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            alt.append(x509.DNSName(ip))
    sign_key: CertificateIssuerPrivateKeyTypes = key
    issuer_name = subject
    if issuer is not None:
        issuer_name, sign_key = issuer[0].subject, issuer[1]
    serial = _serial()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    cert = builder.sign(sign_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key), serial


def issue_node_cert(
    ca: tuple[str, str], node_name: str, ips: Iterable[str] = ()
) -> tuple[str, str, int]:
    """Sign a certificate for `node_name` with the CA ``(ca_cert_pem, ca_key_pem)``.

    Returns ``(cert_pem, key_pem, serial)``. The certificate is valid for both
    server and client authentication (a node serves RPC and, as master, calls).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        ca_cert = x509.load_pem_x509_certificate(ca[0].encode())
        ca_key = serialization.load_pem_private_key(ca[1].encode(), password=None)
    except (ValueError, TypeError) as err:
        raise errors.CertificateError(f"Cannot load the cluster CA: {err}") from err
    from cryptography.hazmat.primitives.asymmetric import ec as ec_
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(ca_key, ec_.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise errors.CertificateError("Unsupported cluster CA key type")
    return _leaf(node_name, ips, (ca_cert, ca_key))


def create_self_signed(node_name: str) -> tuple[str, str]:
    """Self-signed certificate for an unjoined noded; ``(cert_pem, key_pem)``."""
    cert, key, _ = _leaf(node_name, (), None)
    return cert, key


def cert_serial(cert_pem: str) -> int:
    """Serial number of a PEM certificate."""
    from cryptography import x509

    return int(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number)


def is_joined(paths: Paths) -> bool:
    """A node is joined when it holds a CA and its own certificate + key."""
    return all(os.path.exists(p) for p in (paths.ca_cert, paths.node_cert, paths.node_key))


def ensure_self_signed(paths: Paths, node_name: str) -> tuple[str, str]:
    """Paths of the unjoined self-signed cert/key, created on first use.

    Created in a child process unless `cryptography` is already loaded, so a
    long-running noded does not keep that library (~10 MiB) in memory.
    """
    cert_path, key_path = selfsigned_cert_path(paths), selfsigned_key_path(paths)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    if "cryptography" in sys.modules:
        write_self_signed(cert_path, key_path, node_name)
        return cert_path, key_path
    code = (
        "import sys; from corral.rpc.tls import write_self_signed; write_self_signed(*sys.argv[1:])"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code, cert_path, key_path, node_name],
            check=True,
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise errors.CertificateError(f"Cannot create a self-signed certificate: {err}") from err
    return cert_path, key_path


def write_self_signed(cert_path: str, key_path: str, node_name: str) -> None:
    cert, key = create_self_signed(node_name)
    atomic_write(key_path, key.encode(), 0o600)
    atomic_write(cert_path, cert.encode(), 0o644)


def install_node_material(
    paths: Paths, ca_pem: str, cert_pem: str, key_pem: str, ca_key_pem: str | None = None
) -> None:
    """Write the CA, this node's cert/key (and the CA key on candidates) atomically.

    Used by `node_join` on a joining node and by `gnt-cluster init` on the
    first node (which then SIGHUPs its noded).
    """
    os.makedirs(paths.etc_dir, exist_ok=True)
    atomic_write(paths.ca_cert, ca_pem.encode(), 0o644)
    atomic_write(paths.node_key, key_pem.encode(), 0o600)
    atomic_write(paths.node_cert, cert_pem.encode(), 0o644)
    if ca_key_pem is not None:
        atomic_write(paths.ca_key, ca_key_pem.encode(), 0o600)


# -- ssl contexts ------------------------------------------------------------------------


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise errors.CertificateError(f"Cannot load certificate {cert}: {err}") from err


def server_context(paths: Paths) -> ssl.SSLContext:
    """Joined noded: serve the node cert, verify client certs against the CA.

    CERT_OPTIONAL, not REQUIRED: a client without a certificate can still ask
    `version` (and a joined node's fingerprint can be read); every other call is
    refused by the server when no verified peer certificate is present. A
    client that presents a certificate not signed by the CA fails the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, paths.node_cert, paths.node_key)
    try:
        ctx.load_verify_locations(cafile=paths.ca_cert)
    except (OSError, ssl.SSLError) as err:
        raise errors.CertificateError(f"Cannot load the cluster CA: {err}") from err
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def unjoined_server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """Unjoined noded: self-signed cert, no client verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cert_path, key_path)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    ca_cert: str, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """Master side: trust only the cluster CA, present the node cert as client cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # nodes are reached by IP; the private CA authenticates
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=ca_cert)
    except (OSError, ssl.SSLError) as err:
        raise errors.CertificateError(f"Cannot load the cluster CA: {err}") from err
    if client_cert is not None:
        _load_chain(ctx, client_cert, client_key or client_cert)
    return ctx


def insecure_client_context() -> ssl.SSLContext:
    """No verification at all: only for reading an unjoined node's fingerprint,
    which the caller then pins or proves with the join token."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
