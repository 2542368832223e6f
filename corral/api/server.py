"""The local API server of masterd: asyncio unix socket, LUXI-shaped methods.

Every connection may send many requests, one at a time (see
`corral.api.protocol`). Each method is a coroutine of `ApiHandlers`; a
long-poll (WaitForJobChange) only blocks its own connection. Errors are
answered as ``{"success": false, "result": encode_exception(err)}``; anything
that is not a corral error is logged with its traceback and answered as an
OpExecError, so clients never see a Python traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from corral import errors, opcodes
from corral.api import protocol as P
from corral.api.cluster_info import cluster_info, config_values, object_tags
from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_base import QueryResource
from corral.jobs.executor import Executor
from corral.jobs.queue import JobQueue

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]


def _decode_ops(raw: Any) -> list[opcodes.OpCode]:
    if not isinstance(raw, list):
        raise errors.OpPrereqError("A job must be a list of opcodes", errors.ECODE_INVAL)
    ops: list[opcodes.OpCode] = []
    for item in raw:
        if not isinstance(item, dict):
            raise errors.OpPrereqError(f"Invalid opcode: {item!r}", errors.ECODE_INVAL)
        ops.append(opcodes.decode_op(item))
    return ops


class ApiHandlers:
    """One coroutine per API method; owns nothing, uses the master's parts."""

    def __init__(
        self,
        *,
        ctx: MasterContext,
        queue: JobQueue,
        executor: Executor,
        queries: dict[str, QueryResource],
    ) -> None:
        self.ctx = ctx
        self.queue = queue
        self.executor = executor
        self.queries = queries
        self.methods: dict[str, Handler] = {
            P.REQ_SUBMIT_JOB: self.submit_job,
            P.REQ_SUBMIT_MANY_JOBS: self.submit_many_jobs,
            P.REQ_WAIT_FOR_JOB_CHANGE: self.wait_for_job_change,
            P.REQ_CANCEL_JOB: self.cancel_job,
            P.REQ_ARCHIVE_JOB: self.archive_job,
            P.REQ_AUTO_ARCHIVE_JOBS: self.auto_archive_jobs,
            P.REQ_CHANGE_JOB_PRIORITY: self.change_job_priority,
            P.REQ_QUERY: self.query,
            P.REQ_QUERY_FIELDS: self.query_fields,
            P.REQ_QUERY_JOBS: self.query_jobs,
            P.REQ_QUERY_CLUSTER_INFO: self.query_cluster_info,
            P.REQ_QUERY_CONFIG_VALUES: self.query_config_values,
            P.REQ_QUERY_TAGS: self.query_tags,
            P.REQ_SET_DRAIN_FLAG: self.set_drain_flag,
            P.REQ_SET_WATCHER_PAUSE: self.set_watcher_pause,
        }
        # computed once: inspect.signature per request showed in masterd's profile
        self._signatures: dict[str, tuple[Handler, inspect.Signature]] = {}

    async def dispatch(self, method: str, args: list[Any]) -> Any:
        handler = self.methods.get(method)
        if handler is None:
            raise errors.LocalApiError(f"Unknown method '{method}'")
        try:
            cached = self._signatures.get(method)
            if cached is None or cached[0] is not handler:
                cached = self._signatures[method] = (handler, inspect.signature(handler))
            cached[1].bind(*args)
        except TypeError as err:
            raise errors.LocalApiError(f"Invalid arguments for {method}: {err}") from err
        return await handler(*args)

    # -- jobs ------------------------------------------------------------------
    async def submit_job(self, ops: Any) -> int:
        return await self.executor.submit(_decode_ops(ops))

    async def submit_many_jobs(self, jobs: Any) -> list[tuple[bool, Any]]:
        if not isinstance(jobs, list):
            raise errors.OpPrereqError("Expected a list of jobs", errors.ECODE_INVAL)
        decoded: list[list[opcodes.OpCode]] = [_decode_ops(ops) for ops in jobs]
        return await self.executor.submit_many(decoded)

    async def wait_for_job_change(
        self,
        job_id: int,
        fields: list[str],
        prev_job_info: list[Any] | None,
        prev_log_serial: int | None,
        timeout: float,
    ) -> Any:
        return await self.queue.wait_for_change(
            int(job_id), list(fields), prev_job_info, prev_log_serial, float(timeout)
        )

    async def cancel_job(self, job_id: int) -> tuple[bool, str]:
        return self.executor.cancel(int(job_id))

    async def archive_job(self, job_id: int) -> bool:
        return self.queue.archive(int(job_id))

    async def auto_archive_jobs(self, age: float, timeout: float = 0) -> tuple[int, int]:
        return self.queue.auto_archive(float(age), time.time()), 0

    async def change_job_priority(self, job_id: int, priority: int) -> tuple[bool, str]:
        return False, "Changing the priority of jobs is not supported"

    async def query_jobs(self, job_ids: list[int] | None, fields: list[str]) -> list[Any]:
        if job_ids is None:
            return [job.info(list(fields)) for job in self.queue.jobs(archived=False)]
        out: list[Any] = []
        for jid in job_ids:
            job = self.queue.get(int(jid))
            out.append(None if job is None else job.info(list(fields)))
        return out

    async def set_drain_flag(self, drain: bool) -> None:
        self.queue.set_drain_flag(bool(drain))

    async def set_watcher_pause(self, until: float | None) -> None:
        self.queue.set_watcher_pause(None if until is None else float(until))

    # -- queries -------------------------------------------------------------------
    def _resource(self, what: str) -> QueryResource:
        resource = self.queries.get(what)
        if resource is None:
            raise errors.OpPrereqError(f"Resource type '{what}' unknown", errors.ECODE_INVAL)
        return resource

    async def query(self, what: str, fields: list[str], qfilter: Any = None) -> Any:
        return await self._resource(what).query(self.ctx, list(fields), qfilter)

    async def query_fields(self, what: str, fields: list[str] | None = None) -> Any:
        return self._resource(what).query_fields(list(fields) if fields else None)

    async def query_cluster_info(self) -> dict[str, Any]:
        return cluster_info(self.ctx.cfg, self.ctx.paths)

    async def query_config_values(self, names: list[str]) -> list[Any]:
        return config_values(
            self.ctx.cfg,
            list(names),
            drained=self.queue.is_drained(),
            watcher_pause=self.queue.watcher_pause(),
        )

    async def query_tags(self, kind: str, name: str | None = None) -> list[str]:
        return object_tags(self.ctx.cfg, kind, name)


class ApiServer:
    """Serves `ApiHandlers` on a unix socket (mode 0660, directory 0750)."""

    def __init__(self, handlers: ApiHandlers, socket_path: str) -> None:
        self.handlers = handlers
        self.socket_path = socket_path
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        directory = os.path.dirname(self.socket_path)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._server = await asyncio.start_unix_server(
            self._serve, path=self.socket_path, limit=P.MAX_MESSAGE
        )
        os.chmod(self.socket_path, 0o660)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    message = await reader.readuntil(P.EOM)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    log.warning("local API: message too big, closing the connection")
                    return
                reply = await self._answer(message[: -len(P.EOM)])
                writer.write(reply)
                await writer.drain()
        except asyncio.CancelledError:
            pass
        except ConnectionError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, payload: bytes) -> bytes:
        try:
            request = P.decode(payload)
            method = request["method"]
            args = request.get("args") or []
            if not isinstance(method, str) or not isinstance(args, list):
                raise errors.LocalApiError("Invalid request")
        except (msgspec.DecodeError, KeyError, TypeError) as err:
            return P.encode_reply(
                False, errors.encode_exception(errors.LocalApiError(f"Invalid request: {err}"))
            )
        try:
            result = await self.handlers.dispatch(method, args)
            return P.encode_reply(True, msgspec.to_builtins(result))
        except errors.GenericError as err:
            return P.encode_reply(False, errors.encode_exception(err))
        except Exception as err:
            log.exception("local API: %s failed", method)
            return P.encode_reply(False, errors.encode_exception(err))


__all__ = ["ApiHandlers", "ApiServer"]
