"""Node RPC server: dispatches ``POST /<call>`` to the node backend.

Dispatch is driven by `corral.rpc.defs.CALLS`: the JSON list of arguments is
converted to the declared types and passed to the backend function
``function(ctx, *args)``, which runs in a thread pool so slow work (QEMU start,
OS scripts, disk syncs) never blocks the event loop. Replies are
``[true, payload]`` or ``[false, errors.encode_exception(err)]`` (HTTP 200 for
answers of the backend, 400/403/404 for refused requests).

HTTP is served by the small `corral.rpc.http` layer on asyncio streams, not by
aiohttp, to keep noded's memory low (see that module).

Authentication:

* joined node: TLS with the node certificate; a client presenting a certificate
  must chain to the cluster CA (handshake) and its serial must not be revoked
  (checked here, per request, from ``paths.crl_file``). Without a client
  certificate only the calls flagged ``anonymous`` (`version`) are served.
* unjoined node: self-signed certificate, only ``unjoined`` calls are served.

TLS is started on each accepted connection with the context current at that
moment, so after a call flagged ``reload_tls`` changed the material
(`node_join`, `node_leave`), or on SIGHUP, `reload_tls` just swaps the context:
the listening socket never closes. Connections opened before keep their TLS
session (and are judged by the new mode).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from corral import constants as C
from corral import errors
from corral.node import security
from corral.node.context import NodeContext
from corral.rpc import defs
from corral.rpc.http import HttpError, Request, read_request, response

log = logging.getLogger("corral.noded")

MAX_BODY = 64 * 1024 * 1024
IDLE_TIMEOUT = 120.0  # keep-alive connections without a request are closed
HANDSHAKE_TIMEOUT = 10.0


class _TlsLaterProtocol(asyncio.StreamReaderProtocol):
    """Stream protocol that does not read before TLS is started on the connection.

    The client's ClientHello must stay in the kernel until `start_tls` installs
    the SSL layer; if the plain stream read it first, the handshake would hang.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()
        super().connection_made(transport)


class _RevokedCache:
    """Revocation list re-read only when the file changes (checked per request)."""

    def __init__(self, ctx: NodeContext) -> None:
        self._ctx = ctx
        self._stamp: tuple[int, int] | None = None
        self._serials: set[int] = set()

    def serials(self) -> set[int]:
        try:
            st = os.stat(self._ctx.paths.crl_file)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._serials = security.read_revoked(self._ctx.paths) if stamp != (0, 0) else set()
            self._stamp = stamp
        return self._serials


class NodeServer:
    """The noded RPC endpoint (one per process)."""

    def __init__(
        self,
        ctx: NodeContext,
        host: str = "0.0.0.0",
        port: int = C.NODED_PORT,
        max_workers: int = 32,
    ) -> None:
        self.ctx = ctx
        self.host = host
        self.port = port
        self.joined = False
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
        self._revoked = _RevokedCache(ctx)
        self._server: asyncio.Server | None = None
        self._context: ssl.SSLContext | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._functions: dict[str, Callable[..., Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()

    # -- TLS -------------------------------------------------------------------------------
    def build_ssl_context(self) -> ssl.SSLContext:
        """Context for the current material; updates `joined` and the fingerprint."""
        from corral.rpc import tls

        paths = self.ctx.paths
        if tls.is_joined(paths):
            context = tls.server_context(paths)
            self.joined = True
            self.ctx.serving_fingerprint = security.file_fingerprint(paths.node_cert)
            self.ctx.server_joined = True
        else:
            cert, key = tls.ensure_self_signed(paths, self.ctx.node_name)
            context = tls.unjoined_server_context(cert, key)
            self.joined = False
            self.ctx.serving_fingerprint = security.file_fingerprint(cert)
            self.ctx.server_joined = False
        return context

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (plain TCP; TLS is started per connection with the current context,
        so a reload never closes the listening socket)."""
        self._context = self.build_ssl_context()
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            reader = asyncio.StreamReader(limit=256 * 1024, loop=loop)
            return _TlsLaterProtocol(reader, self._connection, loop=loop)

        self._server = await loop.create_server(factory, self.host, self.port, reuse_address=True)
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "listening on %s:%d (%s)", self.host, self.port, "joined" if self.joined else "unjoined"
        )

    async def reload_tls(self) -> None:
        """Re-read the certificates; new connections use them."""
        async with self._reload_lock:
            self._context = self.build_ssl_context()
            log.info("TLS material reloaded (%s)", "joined" if self.joined else "unjoined")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- connections ----------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            assert self._context is not None
            await asyncio.wait_for(writer.start_tls(self._context), HANDSHAKE_TIMEOUT)
            while True:
                try:
                    req = await asyncio.wait_for(
                        read_request(reader, writer, MAX_BODY), IDLE_TIMEOUT
                    )
                except HttpError as err:
                    body = msgspec.json.encode(
                        [False, errors.encode_exception(errors.RPCError(str(err)))]
                    )
                    writer.write(response(err.status, body, keep_alive=False))
                    await writer.drain()
                    break
                if req is None:
                    break
                status, body = await self._handle(req, writer)
                writer.write(response(status, body, req.keep_alive))
                await writer.drain()
                if not req.keep_alive:
                    break
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            TimeoutError,
            ssl.SSLError,
            OSError,
        ):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    # -- dispatch -------------------------------------------------------------------------
    def _function(self, spec: defs.RpcCall) -> Callable[..., Any]:
        fn = self._functions.get(spec.name)
        if fn is None:
            module_name, func_name = spec.backend.split(":")
            fn = getattr(importlib.import_module(module_name), func_name)
            self._functions[spec.name] = fn
        return fn

    @staticmethod
    def _reply(ok: bool, payload: Any, status: int = 200) -> tuple[int, bytes]:
        return status, msgspec.json.encode([ok, payload])

    def _fail(self, err: BaseException, status: int) -> tuple[int, bytes]:
        return self._reply(False, errors.encode_exception(err), status)

    def _check_peer(
        self, writer: asyncio.StreamWriter, spec: defs.RpcCall
    ) -> tuple[int, bytes] | None:
        """None if the caller may run `spec`, else the refusal to send."""
        if not self.joined:
            if spec.unjoined:
                return None
            return self._fail(
                errors.RPCError(f"Node {self.ctx.node_name} is not part of a cluster"), 403
            )
        peer = writer.get_extra_info("peercert")
        if not peer:
            if spec.anonymous:
                return None
            return self._fail(errors.CertificateError("Client certificate required"), 403)
        try:
            serial = int(peer.get("serialNumber", "0"), 16)
        except (TypeError, ValueError):
            serial = 0
        if serial in self._revoked.serials():
            return self._fail(errors.CertificateError("Client certificate has been revoked"), 403)
        return None

    def _convert_args(self, spec: defs.RpcCall, raw: Any) -> list[Any]:
        if not isinstance(raw, list):
            raise errors.ParameterError(f"Arguments of {spec.name} must be a list")
        if len(raw) > len(spec.args):
            raise errors.ParameterError(
                f"Too many arguments for {spec.name}: {len(raw)} > {len(spec.args)}"
            )
        args: list[Any] = []
        for i, arg in enumerate(spec.args):
            if i < len(raw):
                try:
                    args.append(msgspec.convert(raw[i], arg.type, strict=False))
                except msgspec.ValidationError as err:
                    raise errors.ParameterError(
                        f"Invalid argument '{arg.name}' of {spec.name}: {err}"
                    ) from err
            elif arg.required:
                raise errors.ParameterError(f"Missing argument '{arg.name}' of {spec.name}")
            else:
                default = arg.default
                args.append(default.copy() if isinstance(default, list | dict) else default)
        return args

    async def _handle(self, req: Request, writer: asyncio.StreamWriter) -> tuple[int, bytes]:
        if req.method != "POST":
            return self._fail(errors.RPCError(f"Method {req.method} not allowed"), 405)
        name = req.path.lstrip("/")
        spec = defs.CALLS.get(name)
        if spec is None:
            return self._fail(errors.RPCError(f"Unknown RPC call '{name}'"), 404)
        refusal = self._check_peer(writer, spec)
        if refusal is not None:
            return refusal
        try:
            args = self._convert_args(spec, msgspec.json.decode(req.body) if req.body else [])
        except msgspec.DecodeError as err:
            return self._fail(errors.ParameterError(f"Invalid JSON body: {err}"), 400)
        except errors.GenericError as err:
            return self._fail(err, 400)
        started = time.monotonic()
        try:
            fn = self._function(spec)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self.executor, functools.partial(fn, self.ctx, *args)
            )
        except errors.GenericError as err:
            log.info("%s failed: %s", name, err)
            return self._reply(False, errors.encode_exception(err))
        except Exception as err:
            log.exception("%s crashed", name)
            return self._reply(False, errors.encode_exception(err))
        log.debug("%s done in %.3fs", name, time.monotonic() - started)
        if spec.reload_tls and self.ctx.tls_changed:
            self.ctx.tls_changed = False
            self._schedule_reload()
        try:
            return self._reply(True, result)
        except (TypeError, msgspec.EncodeError) as err:
            return self._fail(errors.ProgrammerError(f"Cannot encode result of {name}: {err}"), 500)

    def _schedule_reload(self) -> None:
        async def later() -> None:
            await asyncio.sleep(0.2)  # let the answer reach the caller first
            try:
                await self.reload_tls()
            except errors.GenericError as err:
                log.error("TLS reload failed: %s", err)

        task = asyncio.get_running_loop().create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
