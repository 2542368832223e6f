"""Minimal HTTP/1.1 framing for the node RPC server, on asyncio streams.

Why not aiohttp's server: importing aiohttp costs ~25 MiB of RSS, and noded
runs on every node next to the VMs; the RPC protocol only needs
``POST /<name>`` with a JSON body and a JSON answer. The master's client is
aiohttp (it needs connection pooling and timeouts), which speaks plain HTTP/1.1
to this server.

Supported: request line + headers (bounded), bodies by Content-Length or
chunked transfer encoding (bounded), keep-alive, ``Connection: close``,
``Expect: 100-continue``. Everything else is answered 400/405/411/413 and the
connection closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_LINE = 8192
MAX_HEADERS = 100

REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class HttpError(Exception):
    """A request we refuse at the HTTP level (the connection is closed after)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as err:
        raise HttpError(400, "Line too long") from err
    if len(line) > MAX_LINE:
        raise HttpError(400, "Line too long")
    return line.rstrip(b"\r\n")


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
) -> Request | None:
    """Read one request; None on a clean EOF before a request starts."""
    try:
        first = await _line(reader)
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise HttpError(400, "Truncated request line") from err
    parts = first.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "Malformed request line")
    req = Request(parts[0].upper(), parts[1], parts[2])
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HttpError(400, "Malformed header")
        req.headers[name.strip().lower()] = value.strip()
    else:
        raise HttpError(400, "Too many headers")
    if req.headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in req.headers.get("transfer-encoding", "").lower():
        req.body = await _read_chunked(reader, max_body)
    elif "content-length" in req.headers:
        try:
            length = int(req.headers["content-length"])
        except ValueError as err:
            raise HttpError(400, "Bad Content-Length") from err
        if length < 0:
            raise HttpError(400, "Bad Content-Length")
        if length > max_body:
            raise HttpError(413, "Request body too large")
        req.body = await reader.readexactly(length)
    elif req.method == "POST":
        raise HttpError(411, "Content-Length required")
    return req


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = (await _line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as err:
            raise HttpError(400, "Bad chunk size") from err
        if size == 0:
            while await _line(reader):  # trailers
                pass
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise HttpError(413, "Request body too large")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk


def response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body
