"""Wire format of the local API (LUXI-shaped), shared by server and client.

A message is one JSON document followed by the byte ``0x03``. Requests are
``{"method": str, "args": list, "version": PROTOCOL_VERSION}``, replies
``{"success": bool, "result": ...}`` where a failed call carries
``errors.encode_exception(err)`` as result. This module must stay free of
asyncio so the CLI client imports quickly.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

EOM: Final = b"\x03"
PROTOCOL_VERSION: Final = 1
#: biggest message accepted (a SubmitManyJobs of many big opcodes fits easily)
MAX_MESSAGE: Final = 64 * 1024 * 1024

# Method names (Ganeti's LUXI request names)
REQ_SUBMIT_JOB: Final = "SubmitJob"
REQ_SUBMIT_MANY_JOBS: Final = "SubmitManyJobs"
REQ_WAIT_FOR_JOB_CHANGE: Final = "WaitForJobChange"
REQ_CANCEL_JOB: Final = "CancelJob"
REQ_ARCHIVE_JOB: Final = "ArchiveJob"
REQ_AUTO_ARCHIVE_JOBS: Final = "AutoArchiveJobs"
REQ_CHANGE_JOB_PRIORITY: Final = "ChangeJobPriority"
REQ_QUERY: Final = "Query"
REQ_QUERY_FIELDS: Final = "QueryFields"
REQ_QUERY_JOBS: Final = "QueryJobs"
REQ_QUERY_CLUSTER_INFO: Final = "QueryClusterInfo"
REQ_QUERY_CONFIG_VALUES: Final = "QueryConfigValues"
REQ_QUERY_TAGS: Final = "QueryTags"
REQ_SET_DRAIN_FLAG: Final = "SetDrainFlag"
REQ_SET_WATCHER_PAUSE: Final = "SetWatcherPause"

_encoder = msgspec.json.Encoder()


def encode_request(method: str, args: list[Any]) -> bytes:
    return _encoder.encode({"method": method, "args": args, "version": PROTOCOL_VERSION}) + EOM


def encode_reply(success: bool, result: Any) -> bytes:
    return _encoder.encode({"success": success, "result": result}) + EOM


def decode(payload: bytes) -> Any:
    """Decode one message (without its terminator)."""
    return msgspec.json.decode(payload)
