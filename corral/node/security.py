"""Small security helpers shared by the node backend and the RPC layer.

They live here (the lower layer) so both the backend (join, revocation) and
`corral.rpc.tls` can use them: stdlib only, no `cryptography` import, which keeps
noded light.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import ssl
import tempfile

import msgspec

from corral.paths import Paths

JOIN_PROTOCOL_TAG = b"corral-join-v1"


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temp file + rename (never a half file)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fingerprint(cert: str | bytes) -> str:
    """SHA-256 fingerprint of a certificate (PEM text or DER bytes), ``AB:CD:...``."""
    if isinstance(cert, str):
        der = ssl.PEM_cert_to_DER_cert(cert)
    elif cert.lstrip().startswith(b"-----BEGIN"):
        der = ssl.PEM_cert_to_DER_cert(cert.decode())
    else:
        der = cert
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(fp: str) -> str:
    """Accept ``ab:cd..``, ``ABCD..`` or ``SHA256:AB:..`` and return ``AB:CD:..``."""
    text = fp.strip().upper()
    if text.startswith("SHA256:") or text.startswith("SHA256="):
        text = text[7:]
    hexchars = text.replace(":", "")
    return ":".join(hexchars[i : i + 2] for i in range(0, len(hexchars), 2))


def file_fingerprint(path: str) -> str:
    with open(path) as fh:
        return fingerprint(fh.read())


def selfsigned_cert_path(paths: Paths) -> str:
    """Unjoined noded's self-signed certificate (kept so the fingerprint is stable)."""
    return f"{paths.etc_dir}/noded-selfsigned.pem"


def selfsigned_key_path(paths: Paths) -> str:
    return f"{paths.etc_dir}/noded-selfsigned.key"


class _Revoked(msgspec.Struct):
    serials: list[int] = msgspec.field(default_factory=list)


def read_revoked(paths: Paths) -> set[int]:
    """Serials listed in ``paths.crl_file`` (missing or unreadable file: none)."""
    try:
        with open(paths.crl_file, "rb") as fh:
            return set(msgspec.json.decode(fh.read(), type=_Revoked).serials)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return set()


def write_revoked(paths: Paths, serials: list[int]) -> None:
    atomic_write(paths.crl_file, msgspec.json.encode(_Revoked(sorted(set(serials)))), 0o644)


def read_join_token(paths: Paths) -> str | None:
    """The pre-shared join token of this node, if one was seeded."""
    try:
        with open(paths.join_token_file) as fh:
            token = fh.read().strip()
    except OSError:
        return None
    return token or None


def join_proof(token: str, role: str, nonce_a: str, nonce_b: str, cert_fp: str) -> str:
    """HMAC-SHA256 proving knowledge of `token`, bound to both nonces and the
    node's TLS certificate fingerprint (so a man in the middle, who must present
    another certificate, cannot relay it). `role` is "node" or "master" so a
    proof cannot be reflected back to its sender."""
    msg = b"|".join(
        [
            JOIN_PROTOCOL_TAG,
            role.encode(),
            nonce_a.encode(),
            nonce_b.encode(),
            normalize_fingerprint(cert_fp).encode(),
        ]
    )
    return hmac.new(token.strip().encode(), msg, hashlib.sha256).hexdigest()


def proofs_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
