"""Synchronous local API client used by the CLI (and RAPI through a thread).

Lean on purpose: a plain unix socket and msgspec, no asyncio or aiohttp, so a
``gnt-*`` command starts fast. One connection per `Client`, opened lazily and
reopened once if the master closed it. Failed calls raise the error the master
sent (decoded with `errors.decode_exception`); no master listening raises
`errors.NoMasterError`.
"""

from __future__ import annotations

import socket
from typing import Any

import msgspec

from corral import errors
from corral.api import protocol as P
from corral.paths import DEFAULT_PATHS

NO_MASTER_MSG = (
    "Cannot communicate with the master daemon.\nIs it running and listening for connections?"
)


class Client:
    def __init__(self, socket_path: str | None = None, timeout: float = 60.0) -> None:
        self.socket_path = socket_path or DEFAULT_PATHS.master_socket
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    # -- transport ---------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as err:
            sock.close()
            raise errors.NoMasterError(NO_MASTER_MSG) from err
        self._sock = sock
        self._buffer = b""
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _roundtrip(self, request: bytes) -> Any:
        sock = self._connect()
        try:
            sock.sendall(request)
        except TimeoutError as err:
            self.close()
            raise errors.LocalApiError(
                f"Timeout after {self.timeout:.0f}s sending to the master daemon"
            ) from err
        while P.EOM not in self._buffer:
            try:
                chunk = sock.recv(65536)
            except TimeoutError as err:
                self.close()
                raise errors.LocalApiError(
                    f"Timeout after {self.timeout:.0f}s waiting for the master daemon"
                ) from err
            if not chunk:
                raise ConnectionResetError("connection closed by the master daemon")
            self._buffer += chunk
            if len(self._buffer) > P.MAX_MESSAGE:
                self.close()
                raise errors.LocalApiError("Reply from the master daemon is too big")
        message, _, self._buffer = self._buffer.partition(P.EOM)
        return P.decode(message)

    def call(self, method: str, *args: Any) -> Any:
        """Call `method` with `args`; return its result or raise its error."""
        request = P.encode_request(method, list(args))
        reused = self._sock is not None
        try:
            reply = self._roundtrip(request)
        except (ConnectionResetError, BrokenPipeError) as err:
            self.close()
            if not reused:
                raise errors.NoMasterError(NO_MASTER_MSG) from err
            # a kept connection may predate a master restart: reconnect once
            try:
                reply = self._roundtrip(request)
            except (ConnectionResetError, BrokenPipeError) as err2:
                self.close()
                raise errors.NoMasterError(NO_MASTER_MSG) from err2
        except msgspec.DecodeError as err:
            self.close()
            raise errors.LocalApiError(f"Invalid reply from the master daemon: {err}") from err
        if not isinstance(reply, dict) or "success" not in reply:
            raise errors.LocalApiError("Invalid reply from the master daemon")
        if not reply["success"]:
            raise errors.decode_exception(reply.get("result"))
        return reply.get("result")

    # -- jobs ------------------------------------------------------------------------
    def submit_job(self, ops: list[Any]) -> int:
        return int(self.call(P.REQ_SUBMIT_JOB, ops))

    def submit_many_jobs(self, jobs: list[list[Any]]) -> list[tuple[bool, Any]]:
        return [(bool(ok), value) for ok, value in self.call(P.REQ_SUBMIT_MANY_JOBS, jobs)]

    def wait_for_job_change(
        self,
        job_id: int,
        fields: list[str],
        prev_job_info: list[Any] | None,
        prev_log_serial: int | None,
        timeout: float = 30.0,
    ) -> str | tuple[list[Any], list[list[Any]]]:
        """``"nochange"`` or (job info, new log entries); JobLost if the job is gone."""
        result = self.call(
            P.REQ_WAIT_FOR_JOB_CHANGE, job_id, fields, prev_job_info, prev_log_serial, timeout
        )
        if result is None:
            raise errors.JobLost(f"Job with id {job_id} lost")
        if isinstance(result, str):
            return result
        info, entries = result
        return info, entries

    def query_jobs(self, job_ids: list[int] | None, fields: list[str]) -> list[Any]:
        return list(self.call(P.REQ_QUERY_JOBS, job_ids, fields))

    def cancel_job(self, job_id: int) -> tuple[bool, str]:
        ok, msg = self.call(P.REQ_CANCEL_JOB, job_id)
        return bool(ok), str(msg)

    def archive_job(self, job_id: int) -> bool:
        return bool(self.call(P.REQ_ARCHIVE_JOB, job_id))

    def auto_archive_jobs(self, age: float, timeout: float = 30.0) -> tuple[int, int]:
        count, left = self.call(P.REQ_AUTO_ARCHIVE_JOBS, age, timeout)
        return int(count), int(left)

    def set_drain_flag(self, drain: bool) -> None:
        self.call(P.REQ_SET_DRAIN_FLAG, drain)

    def set_watcher_pause(self, until: float | None) -> None:
        self.call(P.REQ_SET_WATCHER_PAUSE, until)

    # -- queries ---------------------------------------------------------------------
    def query(self, what: str, fields: list[str], qfilter: Any = None) -> dict[str, Any]:
        """``{"fields": [defs], "data": [[[status, value], ...], ...]}``."""
        return dict(self.call(P.REQ_QUERY, what, fields, qfilter))

    def query_fields(self, what: str, fields: list[str] | None = None) -> dict[str, Any]:
        return dict(self.call(P.REQ_QUERY_FIELDS, what, fields))

    def query_cluster_info(self) -> dict[str, Any]:
        return dict(self.call(P.REQ_QUERY_CLUSTER_INFO))

    def query_config_values(self, names: list[str]) -> list[Any]:
        return list(self.call(P.REQ_QUERY_CONFIG_VALUES, names))

    def query_tags(self, kind: str, name: str | None) -> list[str]:
        return [str(t) for t in self.call(P.REQ_QUERY_TAGS, kind, name)]
