"""Node RPC client (asyncio, aiohttp), used by masterd.

`RpcRunner.call(name, node, *args)` POSTs ``https://<ip>:<port>/<name>`` with the
JSON list of arguments and returns an `RpcResult`; it never raises for node
failures: a dead node, a timeout, a TLS failure or an error raised by the
backend all become ``fail_msg``. Callers decide with `RpcResult.raise_on_fail`.
Connecting is limited to 5 s (`constants.RPC_CONNECT_TIMEOUT`), the whole call
to the timeout of the call in `corral.rpc.defs`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from corral import constants as C
from corral import errors
from corral.paths import Paths
from corral.rpc import defs

if TYPE_CHECKING:
    import aiohttp

STREAM_CHUNK = 4 * 1024 * 1024


class NodeTarget(msgspec.Struct, frozen=True):
    """Where to send a call: the node's name (for results) and its primary IP."""

    name: str
    ip: str
    offline: bool = False


@dataclass
class RpcResult:
    """Outcome of one call on one node. ``fail_msg`` is None on success."""

    node: str
    payload: Any = None
    fail_msg: str | None = None
    offline: bool = False
    unreachable: bool = False
    error: errors.GenericError | None = None

    @property
    def failed(self) -> bool:
        return self.fail_msg is not None

    def raise_on_fail(self, prefix: str | None = None) -> None:
        """Raise the node's error (or NodeUnreachable / RPCError) if the call failed.

        With a `prefix` the message becomes ``"<prefix>: <fail_msg>"`` and the
        error is an OpExecError (Ganeti's ``result.Raise(msg)``); without, the
        original error class decoded from the node is re-raised.
        """
        if self.fail_msg is None:
            return
        if prefix:
            msg = f"{prefix}: {self.fail_msg}"
            if self.unreachable or self.offline:
                raise errors.NodeUnreachable(msg)
            raise errors.OpExecError(msg)
        if self.unreachable or self.offline:
            raise errors.NodeUnreachable(self.fail_msg)
        if self.error is not None:
            raise self.error
        raise errors.RPCError(self.fail_msg)


@dataclass
class ClientTLS:
    """TLS material of the calling side: the ssl context to connect with."""

    context: ssl.SSLContext

    @classmethod
    def from_paths(cls, paths: Paths) -> ClientTLS:
        """Cluster CA + this node's cert as client cert (the master's usual case)."""
        from corral.rpc import tls

        return cls(tls.client_context(paths.ca_cert, paths.node_cert, paths.node_key))

    @classmethod
    def from_files(cls, ca_cert: str, cert: str | None = None, key: str | None = None) -> ClientTLS:
        from corral.rpc import tls

        return cls(tls.client_context(ca_cert, cert, key))


def _error_message(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text


class RpcRunner:
    """Calls nodes. One aiohttp session (created lazily on the running loop)."""

    def __init__(
        self,
        tls: ClientTLS | ssl.SSLContext | Any,
        port: int = C.NODED_PORT,
        connect_timeout: float = C.RPC_CONNECT_TIMEOUT,
    ) -> None:
        """`tls`: the ClientTLS (or ssl context) to verify nodes and present our
        certificate; an ``aiohttp.Fingerprint`` pins one server (join)."""
        self._ssl: Any = tls.context if isinstance(tls, ClientTLS) else tls
        self.port = port
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            self._session = None  # bound to an earlier event loop (tests): start afresh
        if self._session is None or self._session.closed:
            self._loop = loop
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else False,
                limit=0,
                limit_per_host=16,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if (
            self._session is not None
            and not self._session.closed
            and self._loop is asyncio.get_running_loop()
        ):
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> RpcRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _url(self, node: NodeTarget, name: str) -> str:
        host = f"[{node.ip}]" if ":" in node.ip else node.ip
        return f"https://{host}:{self.port}/{name}"

    async def call(
        self, name: str, node: NodeTarget, *args: Any, timeout: float | None = None
    ) -> RpcResult:
        """Run call `name` on `node` with positional `args` (see `corral.rpc.defs`)."""
        spec = defs.CALLS.get(name)
        if spec is None:
            raise errors.ProgrammerError(f"Unknown RPC call '{name}'")
        required = sum(1 for a in spec.args if a.required)
        if not required <= len(args) <= len(spec.args):
            raise errors.ProgrammerError(
                f"RPC call {name} takes {required}..{len(spec.args)} arguments, got {len(args)}"
            )
        if node.offline:
            return RpcResult(node=node.name, fail_msg="Node is marked offline", offline=True)
        try:
            body = msgspec.json.encode(list(args))
        except (TypeError, msgspec.EncodeError) as err:
            raise errors.ProgrammerError(f"Cannot encode arguments of {name}: {err}") from err
        tmo = timeout if timeout is not None else spec.timeout_for(args)
        return await self._post(name, spec, node, body, tmo)

    async def _post(
        self, name: str, spec: defs.RpcCall, node: NodeTarget, body: bytes, tmo: float
    ) -> RpcResult:
        import aiohttp

        session = self._get_session()
        client_timeout = aiohttp.ClientTimeout(
            # `connect` would also count the wait for a free pooled connection,
            # which under load is not a sign of a dead node: bound the socket
            # connect only
            total=tmo,
            connect=None,
            sock_connect=self.connect_timeout,
        )
        try:
            async with session.post(
                self._url(node, name),
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=client_timeout,
            ) as resp:
                raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            return RpcResult(
                node=node.name,
                fail_msg=f"Node is unreachable: {_error_message(err)}",
                unreachable=True,
            )
        except TimeoutError:
            return RpcResult(
                node=node.name,
                fail_msg=f"Timeout after {tmo:.0f}s waiting for the answer to {name}",
                unreachable=True,
            )
        except aiohttp.ClientError as err:
            return RpcResult(
                node=node.name,
                fail_msg=f"Error while talking to the node: {_error_message(err)}",
                unreachable=True,
            )
        except ssl.SSLError as err:
            return RpcResult(
                node=node.name, fail_msg=f"TLS error: {_error_message(err)}", unreachable=True
            )
        return self._decode(node, spec, resp.status, raw)

    @staticmethod
    def _decode(node: NodeTarget, spec: defs.RpcCall, status: int, raw: bytes) -> RpcResult:
        try:
            reply = msgspec.json.decode(raw)
            ok, payload = reply
        except (msgspec.DecodeError, TypeError, ValueError):
            return RpcResult(
                node=node.name, fail_msg=f"Invalid reply from node (HTTP {status}): {raw[:200]!r}"
            )
        if not ok:
            err = errors.decode_exception(payload)
            return RpcResult(node=node.name, fail_msg=str(err) or type(err).__name__, error=err)
        try:
            value = msgspec.convert(payload, spec.result, strict=False) if spec.result else None
        except msgspec.ValidationError as err:
            return RpcResult(node=node.name, fail_msg=f"Invalid payload for {spec.name}: {err}")
        return RpcResult(node=node.name, payload=value)

    async def call_multi(
        self, name: str, nodes: list[NodeTarget], *args: Any, timeout: float | None = None
    ) -> dict[str, RpcResult]:
        """Run the same call on several nodes in parallel; results keyed by node name."""
        results = await asyncio.gather(
            *(self.call(name, node, *args, timeout=timeout) for node in nodes)
        )
        return {res.node: res for res in results}


async def stream_file(
    runner: RpcRunner,
    node: NodeTarget,
    local_path: str,
    remote_path: str | None = None,
    chunk_size: int = STREAM_CHUNK,
) -> RpcResult:
    """Copy a (possibly big) local file to `node` keeping mode, atime and mtime.

    Chunks of `chunk_size` bytes are sent in order; the node writes a temp file,
    checks the SHA-256 at the end and renames it into place. All-zero chunks of a
    sparse file are skipped (the node leaves holes). Returns the result of the
    last step (payload True when verified).
    """
    st = os.stat(local_path)
    target = remote_path or local_path
    res = await runner.call(
        "file_stream_begin",
        node,
        target,
        st.st_size,
        st.st_mode & 0o7777,
        st.st_mtime,
        st.st_atime,
    )
    if res.failed:
        return res
    token = res.payload
    digest = hashlib.sha256()
    zero = bytes(chunk_size)
    try:
        with open(local_path, "rb") as fh:
            offset = 0
            while True:
                data = await asyncio.to_thread(fh.read, chunk_size)
                if not data:
                    break
                digest.update(data)
                if data != zero[: len(data)]:
                    res = await runner.call(
                        "file_stream_chunk", node, token, offset, base64.b64encode(data).decode()
                    )
                    if res.failed:
                        await runner.call("file_stream_abort", node, token)
                        return res
                offset += len(data)
    except OSError as err:
        await runner.call("file_stream_abort", node, token)
        return RpcResult(node=node.name, fail_msg=f"Cannot read {local_path}: {err}")
    return await runner.call("file_stream_end", node, token, digest.hexdigest())


async def upload_file(
    runner: RpcRunner, nodes: list[NodeTarget], local_path: str, remote_path: str | None = None
) -> dict[str, RpcResult]:
    """Send a small file (ssconf, config, certificates) to many nodes at once."""
    st = os.stat(local_path)
    with open(local_path, "rb") as fh:
        data = base64.b64encode(fh.read()).decode()
    return await runner.call_multi(
        "upload_file",
        nodes,
        remote_path or local_path,
        data,
        st.st_mode & 0o7777,
        -1,
        -1,
        st.st_atime,
        st.st_mtime,
    )
