"""The read-only RAPI v2 resources, answered from the master's query machinery.

Every answer is built from what the local API answers (the query resources
of `corral.cmdlib` and `corral.api.cluster_info.cluster_info`), called
in-process on masterd's event loop: no field is computed twice. What this
module adds is Ganeti's RAPI presentation (``lib/rapi/rlib2.py`` of Ganeti
3.0.2, checked against the real responses in ``reference/ganeti/rapi``):

* the field lists and their order (`NODE_FIELDS`, `INSTANCE_FIELDS`,
  `GROUP_FIELDS`, `INFO_KEYS`);
* a query cell that is not "normal" (no data, offline, unavailable) becomes
  JSON ``null``, as Ganeti's old-style queries answer it;
* lists without ``bulk`` are ``[{"id": name, "uri": "/2/nodes/name"}]``
  (groups use ``"name"`` instead of ``"id"``);
* a named object that does not exist is `RapiError` 404 with Ganeti's body;
* instance ``beparams`` also carry ``memory`` (= ``maxmem``), the pre-2.6 name
  Ganeti 3.0.2 still reports there for old clients.

`RapiError` carries the HTTP code and the ``explain`` text; the server turns it
into Ganeti's error body. Nothing here writes: write methods are answered
by the server (see `corral.rapi.server`).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from corral import errors
from corral.api.cluster_info import cluster_info
from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_base import RS_NORMAL, QueryResource

RAPI_VERSION: Final = 2

_COMMON: Final = ["ctime", "mtime", "uuid", "serial_no", "tags"]

NODE_FIELDS: Final = [
    "name", "offline", "master_candidate", "drained", "dtotal", "dfree", "sptotal", "spfree",
    "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt", "ctotal", "cnos", "cnodes",
    "csockets", "pip", "sip", "role", "pinst_list", "sinst_list", "master_capable",
    "vm_capable", "ndparams", "group.uuid", *_COMMON,
]  # fmt: skip
"""Fields of ``/2/nodes?bulk=1`` and ``/2/nodes/NAME`` (which adds ``secondary_ip``)."""

INSTANCE_FIELDS: Final = [
    "name", "admin_state", "os", "pnode", "snodes", "disk_template", "nic.ips", "nic.macs",
    "nic.modes", "nic.uuids", "nic.names", "nic.links", "nic.networks", "nic.networks.names",
    "nic.bridges", "network_port", "disk.sizes", "disk.spindles", "disk_usage", "disk.uuids",
    "disk.names", "beparams", "hvparams", "oper_state", "oper_ram", "oper_vcpus", "status",
    "custom_hvparams", "custom_beparams", "custom_nicparams", *_COMMON,
]  # fmt: skip

GROUP_FIELDS: Final = [
    "alloc_policy", "name", "node_cnt", "node_list", "ipolicy", "custom_ipolicy", "diskparams",
    "custom_diskparams", "ndparams", "custom_ndparams", *_COMMON,
]  # fmt: skip

INFO_KEYS: Final = [
    "software_version", "protocol_version", "config_version", "os_api_version",
    "export_version", "vcs_version", "architecture", "name", "master", "default_hypervisor",
    "enabled_hypervisors", "hvparams", "os_hvp", "beparams", "osparams", "ipolicy",
    "nicparams", "ndparams", "diskparams", "candidate_pool_size", "max_running_jobs",
    "max_tracked_jobs", "mac_prefix", "master_netdev", "master_netmask",
    "use_external_mip_script", "volume_group_name", "drbd_usermode_helper",
    "file_storage_dir", "shared_file_storage_dir", "gluster_storage_dir",
    "maintain_node_health", "ctime", "mtime", "uuid", "tags", "uid_pool",
    "default_iallocator", "default_iallocator_params", "reserved_lvs", "primary_ip_version",
    "prealloc_wipe_disks", "hidden_os", "blacklisted_os", "enabled_disk_templates",
    "install_image", "instance_communication_network", "zeroing_image", "compression_tools",
    "enabled_user_shutdown", "enabled_data_collectors", "data_collector_interval",
    "modify_ssh_setup", "ssh_key_type", "ssh_key_bits", "vg_name", "drbd_helper",
]  # fmt: skip
"""Keys of ``/2/info`` (Ganeti's QueryClusterInfo), in Ganeti's order."""

# /2/info keys corral's cluster info lacks, for features corral does not have
# (no gluster, install/zeroing images, data collectors or SSH management);
# vg_name and drbd_helper are null in Ganeti 3.0.2 too (old aliases).
_INFO_ABSENT: Final[dict[str, Any]] = {
    "gluster_storage_dir": "",
    "install_image": "",
    "instance_communication_network": "",
    "zeroing_image": "",
    "compression_tools": ["gzip", "gzip-fast", "gzip-slow"],
    "enabled_data_collectors": {},
    "data_collector_interval": {},
    "modify_ssh_setup": False,
    "ssh_key_type": None,
    "ssh_key_bits": None,
    "vg_name": None,
    "drbd_helper": None,
}

FEATURES: Final[list[str]] = []
"""Ganeti's optional RAPI features name request-body formats of write
resources (``instance-create-reqv1``, ...); corral's RAPI has no write
resources yet, so it advertises none."""

# Ganeti's node role letters -> the words of /2/nodes/NAME/role.
_ROLE_WORDS: Final = {
    "M": "master",
    "C": "master-candidate",
    "R": "regular",
    "D": "drained",
    "O": "offline",
}


class RapiError(Exception):
    """An HTTP error answer: `code` and Ganeti's ``explain`` text."""

    def __init__(self, code: int, explain: str | None = None) -> None:
        status = HTTPStatus(code)
        super().__init__(explain or status.description)
        self.code = code
        self.message = status.phrase
        self.explain = explain or status.description

    def body(self) -> dict[str, Any]:
        """Ganeti's error body: ``{"code", "message", "explain"}``."""
        return {"code": self.code, "message": self.message, "explain": self.explain}


def not_found() -> RapiError:
    return RapiError(HTTPStatus.NOT_FOUND)


def _uri_list(names: list[str], template: str, key: str) -> list[dict[str, str]]:
    return [{key: name, "uri": template % name} for name in names]


# Fields a corral query table lacks, computed from the config object instead.
_Extra = Callable[[MasterContext, str], Any]


def _group_custom_diskparams(ctx: MasterContext, name: str) -> Any:
    return dict(ctx.cfg.nodegroups[ctx.cfg.lookup_group(name)].diskparams)


_EXTRAS: Final[dict[tuple[str, str], _Extra]] = {
    ("group", "custom_diskparams"): _group_custom_diskparams,
}


def _with_memory(record: dict[str, Any]) -> dict[str, Any]:
    be = record.get("beparams")
    if isinstance(be, dict) and "memory" not in be and "maxmem" in be:
        record["beparams"] = {**be, "memory": be["maxmem"]}
    return record


class RapiResources:
    """The GET answers of RAPI v2, from the master's query resources.

    `queries` is the same table masterd's local API serves (``"node"``,
    ``"instance"``, ``"group"``, ``"os"``, ...). Every method returns plain
    JSON data or raises `RapiError`.
    """

    def __init__(self, ctx: MasterContext, queries: dict[str, QueryResource]) -> None:
        self.ctx = ctx
        self.queries = queries

    # -- plumbing ------------------------------------------------------------
    async def _rows(
        self, what: str, fields: list[str], qfilter: Any = None
    ) -> list[dict[str, Any]]:
        resource = self.queries.get(what)
        if resource is None:
            raise RapiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"No '{what}' query resource")
        try:
            answer = await resource.query(self.ctx, list(fields), qfilter)
        except errors.OpPrereqError as err:
            if err.ecode == errors.ECODE_NOENT:
                raise not_found() from None
            raise RapiError(HTTPStatus.BAD_REQUEST, str(err).splitlines()[0]) from None
        out: list[dict[str, Any]] = []
        for row in answer["data"]:
            record: dict[str, Any] = {}
            for name, (status, value) in zip(fields, row, strict=True):
                record[name] = value if status == RS_NORMAL else None
            for name in fields:
                extra = _EXTRAS.get((what, name))
                if extra is not None and record[name] is None and "name" in record:
                    record[name] = extra(self.ctx, str(record["name"]))
            out.append(record)
        return out

    async def _one(self, what: str, fields: list[str], name: str) -> dict[str, Any]:
        rows = await self._rows(what, fields, ["=", "name", name])
        if len(rows) != 1:
            raise not_found()
        return rows[0]

    async def _list(
        self, what: str, fields: list[str], bulk: bool, template: str, key: str
    ) -> list[Any]:
        if bulk:
            return await self._rows(what, fields)
        names = [str(r["name"]) for r in await self._rows(what, ["name"])]
        return _uri_list(names, template, key)

    # -- resources -----------------------------------------------------------
    async def root(self) -> None:
        """``/`` and ``/2``: null, kept by Ganeti for legacy clients."""
        return None

    async def version(self) -> int:
        return RAPI_VERSION

    async def features(self) -> list[str]:
        return list(FEATURES)

    async def info(self) -> dict[str, Any]:
        """``/2/info``: the local API's cluster info under Ganeti's keys only."""
        known = cluster_info(self.ctx.cfg, self.ctx.paths)
        return {key: known[key] if key in known else _INFO_ABSENT[key] for key in INFO_KEYS}

    async def tags(self) -> list[str]:
        """``/2/tags``: the cluster's tags."""
        return sorted(self.ctx.cfg.cluster.tags)

    async def os(self) -> list[str]:
        """``/2/os``: valid, visible OS names with their variants (``name+variant``)."""
        visible = ["&", ["?", "valid"], ["!", ["?", "hidden"]], ["!", ["?", "blacklisted"]]]
        out: list[str] = []
        for row in await self._rows("os", ["name", "variants"], visible):
            name = str(row["name"])
            variants = row["variants"] or []
            if variants:
                out.extend(f"{name}+{v}" for v in variants)
            else:
                out.append(name)
        return out

    async def nodes(self, bulk: bool) -> list[Any]:
        return await self._list("node", NODE_FIELDS, bulk, "/2/nodes/%s", "id")

    async def node(self, name: str) -> dict[str, Any]:
        record = await self._one("node", NODE_FIELDS, name)
        record["secondary_ip"] = record["sip"]
        return record

    async def node_role(self, name: str) -> str:
        role = (await self._one("node", ["name", "role"], name))["role"]
        return _ROLE_WORDS.get(str(role), "regular")

    async def instances(self, bulk: bool) -> list[Any]:
        rows = await self._list("instance", INSTANCE_FIELDS, bulk, "/2/instances/%s", "id")
        return [_with_memory(r) for r in rows] if bulk else rows

    async def instance(self, name: str) -> dict[str, Any]:
        return _with_memory(await self._one("instance", INSTANCE_FIELDS, name))

    async def groups(self, bulk: bool) -> list[Any]:
        return await self._list("group", GROUP_FIELDS, bulk, "/2/groups/%s", "name")

    async def group(self, name: str) -> dict[str, Any]:
        return await self._one("group", GROUP_FIELDS, name)


__all__ = [
    "FEATURES",
    "GROUP_FIELDS",
    "INFO_KEYS",
    "INSTANCE_FIELDS",
    "NODE_FIELDS",
    "RAPI_VERSION",
    "RapiError",
    "RapiResources",
    "not_found",
]
