"""Wire protocol and file helpers of the filedrbd TEST backend (stdlib only).

One TCP connection per device, opened by the primary to the secondary's
``(replication IP, DRBD port)``. Frames are ``!BI`` (type, length) + payload;
control payloads are JSON, DATA is ``!Q`` offset + bytes.

Authentication mirrors DRBD's cram-hmac with the disk's shared secret, both
ways, so neither side talks to a peer that does not know the secret::

    C -> S  HELLO {"v", "nonce": nc}
    S -> C  AUTH  {"nonce": ns, "mac": HMAC(secret, "S" + nc + ns)}
    C -> S  AUTH  {"mac": HMAC(secret, "C" + ns + nc)}
    C <-> S STATE {"role", "disk", "size", ...}

Sync is chunked (1 MiB): the target sends MAP (hash of every chunk holding
non-zero data), the source walks its whole file (holes found with
SEEK_DATA/SEEK_HOLE) and sends DATA for chunks that differ, PUNCH for chunks
that are holes/zeros on the source but data on the target, PROGRESS, then
DONE; the target answers ACK once everything is on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
from typing import Any

CHUNK = 1024 * 1024
PROTO_VERSION = 1

HELLO, AUTH, STATE, MAP, DATA, PUNCH, PROGRESS, DONE, ACK, PING, PONG, HANDOVER, BYE = range(1, 14)
_HEADER = struct.Struct("!BI")
_OFFSET = struct.Struct("!Q")
MAX_FRAME = CHUNK + 1024 + 64 * 1024 * 1024  # a MAP of a huge disk stays below this


class ProtocolError(Exception):
    """The peer broke the protocol, failed authentication or went away."""


def send_frame(sock: socket.socket, ftype: int, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(ftype, len(payload)) + payload)


def send_json(sock: socket.socket, ftype: int, obj: Any) -> None:
    send_frame(sock, ftype, json.dumps(obj, separators=(",", ":")).encode())


def send_data(sock: socket.socket, offset: int, data: bytes) -> None:
    header = _HEADER.pack(DATA, _OFFSET.size + len(data)) + _OFFSET.pack(offset)
    sock.sendall(header)
    sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(min(n - len(buf), 4 * CHUNK))
        if not part:
            raise ProtocolError("connection closed by peer")
        buf += part
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    ftype, length = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame too large ({length} bytes)")
    return ftype, _recv_exact(sock, length) if length else b""


def recv_json(sock: socket.socket, expect: int) -> Any:
    ftype, payload = recv_frame(sock)
    if ftype != expect:
        raise ProtocolError(f"unexpected frame {ftype} (wanted {expect})")
    try:
        return json.loads(payload)
    except ValueError as err:
        raise ProtocolError("malformed message") from err


def split_data(payload: bytes) -> tuple[int, bytes]:
    (offset,) = _OFFSET.unpack_from(payload)
    return offset, payload[_OFFSET.size :]


def _mac(secret: str, tag: bytes, a: str, b: str) -> str:
    return hmac.new(
        secret.encode(), tag + bytes.fromhex(a) + bytes.fromhex(b), "sha256"
    ).hexdigest()


def auth_client(sock: socket.socket, secret: str) -> None:
    """Connector side of the mutual challenge; raises ProtocolError on mismatch."""
    nc = secrets.token_hex(16)
    send_json(sock, HELLO, {"v": PROTO_VERSION, "nonce": nc})
    srv = recv_json(sock, AUTH)
    ns = str(srv.get("nonce", ""))
    try:
        expected = _mac(secret, b"S", nc, ns)
    except ValueError as err:
        raise ProtocolError("malformed nonce") from err
    if not hmac.compare_digest(expected, str(srv.get("mac", ""))):
        raise ProtocolError("peer authentication failed (shared secret mismatch)")
    send_json(sock, AUTH, {"mac": _mac(secret, b"C", ns, nc)})


def auth_server(sock: socket.socket, secret: str) -> None:
    """Listener side of the mutual challenge; raises ProtocolError on mismatch."""
    hello = recv_json(sock, HELLO)
    if hello.get("v") != PROTO_VERSION:
        raise ProtocolError(f"unsupported protocol version {hello.get('v')!r}")
    nc = str(hello.get("nonce", ""))
    ns = secrets.token_hex(16)
    try:
        send_json(sock, AUTH, {"nonce": ns, "mac": _mac(secret, b"S", nc, ns)})
    except ValueError as err:
        raise ProtocolError("malformed nonce") from err
    reply = recv_json(sock, AUTH)
    if not hmac.compare_digest(_mac(secret, b"C", ns, nc), str(reply.get("mac", ""))):
        raise ProtocolError("peer authentication failed (shared secret mismatch)")


# -- chunk maps ---------------------------------------------------------------------


def chunk_hash(data: bytes) -> str | None:
    """Hash of a chunk, or None if it is all zeros (treated as a hole)."""
    if not data.strip(b"\0"):
        return None
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def data_chunks(fd: int, size: int) -> list[int]:
    """Indexes of chunks overlapping data extents (SEEK_DATA/SEEK_HOLE)."""
    result: list[int] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break  # ENXIO: no data after pos
        if start >= size:
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        first, last = start // CHUNK, (end - 1) // CHUNK
        for idx in range(first, last + 1):
            if not result or result[-1] < idx:
                result.append(idx)
        pos = end
    return result


def read_chunk(fd: int, idx: int, size: int) -> bytes:
    off = idx * CHUNK
    return os.pread(fd, min(CHUNK, size - off), off)


def chunk_map(fd: int, size: int) -> dict[int, str]:
    """{chunk index: hash} for every chunk holding non-zero data."""
    result: dict[int, str] = {}
    for idx in data_chunks(fd, size):
        h = chunk_hash(read_chunk(fd, idx, size))
        if h is not None:
            result[idx] = h
    return result
