"""hbal/hspace ``-m CLUSTER``: a cluster read through RAPI v2, as an htools `Cluster`.

Ganeti's RAPI backend (``HTools/Backend/Rapi.hs``) fetches, in this order,

    GET /2/groups?bulk=1   GET /2/nodes?bulk=1   GET /2/instances?bulk=1   GET /2/info

and so does `RapiLoader`, from corral's RAPI (`corral.rapi`) or a real
Ganeti's. Cluster tags, instance policy and master come from ``/2/info`` (as
in Ganeti, ``/2/tags`` is not needed). The JSON records are turned into the
rows the ``-L`` path reads from the local API (`corral.cli.htools_live`) and
built by the same `build_cluster`, so both sources give the same model:

* node: ``ndparams`` provides ``spindle_count``, ``exclusive_storage`` and
  ``cpu_speed`` (1 when absent, Ganeti 3.0's backend does not read it); a
  missing ``vm_capable`` means True, as in Ganeti;
* instance: memory is ``oper_ram`` when it is a number, else
  ``beparams.memory`` or ``beparams.maxmem``; ``vcpus``, ``auto_balance``,
  ``spindle_use`` come from ``beparams``; ``forthcoming`` is false when absent;
* a ``null`` value is "no data" (Ganeti's old-style queries answer null for
  what a node did not report), a missing key is an "Unknown field".

``CLUSTER`` is ``host`` (``https://host:5080``), ``host:port``
(``https://host:port``), a full ``http(s)://...`` URL, or, as in Ganeti,
``file://DIR`` with ``groups.json``, ``nodes.json``, ``instances.json`` and
``info.json`` in DIR.

Like Ganeti's htools (curl with ``SSLVerifyPeer False``), the server
certificate is *not* verified: the tool only reads, and a cluster's RAPI
certificate is usually self-signed or signed by the cluster's private CA.
Proxy variables are ignored (the master is reached directly). Every request
has a `TIMEOUT` (Ganeti: 15 s to connect, 60 s per query; urllib has one
timeout per blocking operation, so `TIMEOUT` bounds both). Every failure is
one line, ``failed to load data, aborting: ...`` (`HtoolsError`, exit 1).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any, Final

from corral import constants as C
from corral.cli.htools_live import (
    GROUP_FIELDS,
    INSTANCE_FIELDS,
    NODE_FIELDS,
    RS_NORMAL,
    LiveData,
    build_cluster,
)
from corral.htools.cluster import Cluster
from corral.htools.types import HtoolsError

TIMEOUT: Final = 60.0
FILE_PREFIX: Final = "file://"
RS_UNKNOWN: Final = 1
RS_NODATA: Final = 2

# (resource path, file name for file://, what Ganeti calls it in errors)
_GROUPS = ("/2/groups?bulk=1", "groups.json", "group data")
_NODES = ("/2/nodes?bulk=1", "nodes.json", "node data")
_INSTANCES = ("/2/instances?bulk=1", "instances.json", "instance data")
_INFO = ("/2/info", "info.json", "cluster info")


def base_url(cluster: str) -> str:
    """The RAPI base URL for ``-m CLUSTER`` (no trailing slash)."""
    cluster = cluster.strip()
    if not cluster:
        raise HtoolsError("Empty cluster name given to -m")
    if "://" in cluster:
        return cluster.rstrip("/")
    if cluster.startswith("["):  # [v6addr] or [v6addr]:port
        return f"https://{cluster}" if "]:" in cluster else f"https://{cluster}:{C.RAPI_PORT}"
    if cluster.count(":") > 1:  # a bare IPv6 address
        return f"https://[{cluster}]:{C.RAPI_PORT}"
    if ":" in cluster:
        return f"https://{cluster}"
    return f"https://{cluster}:{C.RAPI_PORT}"


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch_json(url: str, timeout: float = TIMEOUT) -> Any:
    """GET `url` and decode its JSON body (`HtoolsError` on any failure)."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=_insecure_context()),
    )
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as err:
        raise HtoolsError(f"Cannot fetch '{url}': HTTP error {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        reason = err.reason.strerror if isinstance(err.reason, OSError) else err.reason
        raise HtoolsError(f"Cannot fetch '{url}': {reason or err.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as err:
        # timeouts, TLS errors, resets, bad URLs, something that is not HTTP
        raise HtoolsError(f"Cannot fetch '{url}': {err or type(err).__name__}") from None
    return _decode(body, url)


def _decode(body: bytes | str, where: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise HtoolsError(f"Invalid JSON from '{where}': {err}") from None


def _read_file(directory: str, name: str) -> Any:
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as fh:
            return _decode(fh.read(), path)
    except OSError as err:
        raise HtoolsError(f"Cannot read file {path}: {err.strerror}") from None


def _records(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise HtoolsError(f"Parsing {what}: expected a JSON array, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, dict):
            raise HtoolsError(f"Parsing {what}: expected a JSON object, got {item!r}")
    return value


# -- RAPI records -> local API query rows ----------------------------------------------------


def _cell(record: dict[str, Any], key: str) -> list[Any]:
    if key not in record:
        return [RS_UNKNOWN, None]
    value = record[key]
    return [RS_NODATA, None] if value is None else [RS_NORMAL, value]


def _sub(record: dict[str, Any], params: str, key: str) -> dict[str, Any]:
    """`key` of the ``params`` dict of `record` as a one-key record (missing if absent)."""
    sub = record.get(params)
    return {key: sub[key]} if isinstance(sub, dict) and key in sub else {}


def node_row(record: dict[str, Any]) -> list[list[Any]]:
    """A ``/2/nodes?bulk=1`` record as a row of `NODE_FIELDS`."""
    row: list[list[Any]] = []
    for field in NODE_FIELDS:
        if field.startswith("ndp/"):
            key = field[4:]
            found = _sub(record, "ndparams", key)
            if not found and key == "cpu_speed":
                found = {key: 1.0}
            row.append(_cell(found, key))
        elif field == "vm_capable" and field not in record:
            row.append([RS_NORMAL, True])
        else:
            row.append(_cell(record, field))
    return row


def instance_row(record: dict[str, Any]) -> list[list[Any]]:
    """A ``/2/instances?bulk=1`` record as a row of `INSTANCE_FIELDS`."""
    row: list[list[Any]] = []
    for field in INSTANCE_FIELDS:
        if field == "be/memory":
            memory = _sub(record, "beparams", "memory") or _sub(record, "beparams", "maxmem")
            row.append(_cell({"m": next(iter(memory.values()))} if memory else {}, "m"))
        elif field.startswith("be/"):
            row.append(_cell(_sub(record, "beparams", field[3:]), field[3:]))
        else:
            row.append(_cell(record, field))
    return row


def group_row(record: dict[str, Any]) -> list[list[Any]]:
    """A ``/2/groups?bulk=1`` record as a row of `GROUP_FIELDS`."""
    return [_cell(record, field) for field in GROUP_FIELDS]


def live_data(groups: Any, nodes: Any, instances: Any, info: Any) -> LiveData:
    """The four decoded RAPI answers as the rows `build_cluster` reads."""
    if not isinstance(info, dict):
        raise HtoolsError("Parsing cluster info: expected a JSON object")
    return LiveData(
        [group_row(r) for r in _records(groups, _GROUPS[2])],
        [node_row(r) for r in _records(nodes, _NODES[2])],
        [instance_row(r) for r in _records(instances, _INSTANCES[2])],
        info,
    )


class RapiLoader:
    """``-m CLUSTER``: read the cluster through RAPI v2 (see module docstring)."""

    def __init__(self, cluster: str, timeout: float = TIMEOUT) -> None:
        self.cluster = cluster
        self.timeout = timeout

    def read(self) -> LiveData:
        """The raw answers: over HTTPS, or from a ``file://`` directory."""
        parts = (_GROUPS, _NODES, _INSTANCES, _INFO)
        if self.cluster.startswith(FILE_PREFIX):
            directory = self.cluster[len(FILE_PREFIX) :]
            return live_data(*(_read_file(directory, p[1]) for p in parts))
        url = base_url(self.cluster)
        return live_data(*(fetch_json(url + p[0], self.timeout) for p in parts))

    def load(self) -> Cluster:
        try:
            return build_cluster(self.read())
        except HtoolsError as err:
            raise HtoolsError(f"failed to load data, aborting: {err}") from None
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            # a record of the right shape with values of the wrong kind
            raise HtoolsError(f"failed to load data, aborting: invalid data: {err}") from None


__all__ = [
    "TIMEOUT",
    "RapiLoader",
    "base_url",
    "fetch_json",
    "group_row",
    "instance_row",
    "live_data",
    "node_row",
]
