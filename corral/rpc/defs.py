"""The node RPC table: every call master -> noded, declared once as data.

Both sides are driven by `CALLS`:

* the client (`corral.rpc.client.RpcRunner`) encodes positional arguments,
  applies the call's timeout and converts the payload to the declared result
  type;
* the server (`corral.rpc.server`) converts the JSON arguments back to the
  declared types and calls the backend function named by ``backend``
  (``"module:function"`` under `corral.node`, imported lazily so the client side
  never loads the backend) as ``function(ctx, *args)``.

Argument and result types are anything `msgspec.convert` understands: config
objects, the hypervisor/storage structs, plain JSON types. Trailing arguments
with a default may be omitted by the caller.

Timeout classes (seconds of the whole call; connecting is always limited to
`constants.RPC_CONNECT_TIMEOUT`): FAST for queries, NORMAL for quick actions,
SLOW for work that can take minutes (disk creation, OS scripts' short
actions, migration steps), LONG for OS installs. A call may also add an
argument's value to its timeout (``timeout_arg``), e.g. `instance_shutdown`
waits `timeout` seconds for the guest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral import objects
from corral.hypervisor.base import (
    ConsoleInfo,
    InstanceRuntime,
    InstanceStartSpec,
    MigrationStatus,
)
from corral.node.context import PROTOCOL_VERSION
from corral.storage.base import DeviceContext, SyncStatus

__all__ = ["CALLS", "PROTOCOL_VERSION", "Arg", "RpcCall", "get_call"]

TMO_FAST = 10.0
TMO_NORMAL = 60.0
TMO_SLOW = 900.0
TMO_LONG = 4 * 3600.0

_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Arg:
    name: str
    type: Any
    default: Any = _NO_DEFAULT
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass(frozen=True)
class RpcCall:
    """One node RPC call.

    `unjoined`: also served by a noded that has not joined a cluster.
    `anonymous`: served by a joined noded to clients without a certificate
    (only `version`). `reload_tls`: the server reloads its TLS material after
    answering (join/leave).
    """

    name: str
    args: tuple[Arg, ...]
    result: Any
    timeout: float
    backend: str
    doc: str = ""
    unjoined: bool = False
    anonymous: bool = False
    reload_tls: bool = False
    timeout_arg: str | None = None

    def timeout_for(self, args: tuple[Any, ...]) -> float:
        """Timeout of one invocation (adds the `timeout_arg` value if present)."""
        if self.timeout_arg is None:
            return self.timeout
        for arg, value in zip(self.args, args, strict=False):
            if arg.name == self.timeout_arg and isinstance(value, int | float):
                return self.timeout + float(value)
        return self.timeout


CALLS: dict[str, RpcCall] = {}

Disks = list[objects.Disk]
JSONDict = dict[str, Any]


def _call(
    name: str,
    args: list[tuple[str, Any] | tuple[str, Any, Any]],
    result: Any,
    timeout: float,
    backend: str,
    doc: str = "",
    **flags: Any,
) -> None:
    if name in CALLS:
        raise ValueError(f"duplicate RPC call {name}")
    parsed = tuple(Arg(a[0], a[1], a[2]) if len(a) == 3 else Arg(a[0], a[1]) for a in args)
    CALLS[name] = RpcCall(name, parsed, result, timeout, f"corral.node.{backend}", doc, **flags)


# -- node / cluster -----------------------------------------------------------------------
_call(
    "version",
    [],
    JSONDict,
    TMO_FAST,
    "node_info:version",
    "{'protocol': int, 'release': str, 'joined': bool, 'name': str, 'fingerprint': str}",
    unjoined=True,
    anonymous=True,
)
_call(
    "node_join_challenge",
    [("nonce", str)],
    JSONDict,
    TMO_FAST,
    "join:node_join_challenge",
    "token mode, step 1: {'nonce': node nonce, 'proof': HMAC(node role)} or "
    "{'nonce': None} when the node has no token",
    unjoined=True,
)
_call(
    "node_join",
    [
        ("ca_pem", str),
        ("cert_pem", str),
        ("key_pem", str),
        ("cluster_name", str),
        ("master_name", str),
        ("ssconf", dict[str, str], None),
        ("auth", JSONDict | None, None),
        ("ca_key_pem", str | None, None),
    ],
    None,
    TMO_NORMAL,
    "join:node_join",
    "install the cluster TLS material",
    unjoined=True,
    reload_tls=True,
)
_call(
    "node_leave",
    [],
    None,
    TMO_NORMAL,
    "join:node_leave",
    "forget the cluster (certs, config and queue copies, ssconf)",
    reload_tls=True,
)
_call("node_set_revoked", [("serials", list[int])], None, TMO_FAST, "join:node_set_revoked")
_call(
    "node_info",
    [("vg_name", str | None, None), ("hv_names", list[str], [])],
    JSONDict,
    TMO_FAST,
    "node_info:node_info",
)
_call("node_verify", [("checks", JSONDict)], JSONDict, TMO_NORMAL, "verify:node_verify")
_call(
    "bridges_exist",
    [("links", list[str])],
    list[str],
    TMO_FAST,
    "node_info:bridges_exist",
    "the missing ones",
)
_call("node_volumes", [], list[JSONDict], TMO_FAST, "node_info:node_volumes")
_call(
    "run_oob",
    [("program", str), ("command", str), ("node", str), ("timeout", int, 60)],
    Any,
    TMO_FAST,
    "oob:run_oob",
    "the program's JSON output, None without output (Ganeti's OOB protocol)",
    timeout_arg="timeout",
)
_call(
    "upload_file",
    [
        ("path", str),
        ("data_b64", str),
        ("mode", int, 0o644),
        ("uid", int, -1),
        ("gid", int, -1),
        ("atime", float | None, None),
        ("mtime", float | None, None),
    ],
    None,
    TMO_NORMAL,
    "files:upload_file",
)
_call(
    "file_stream_begin",
    [
        ("path", str),
        ("size", int),
        ("mode", int, 0o644),
        ("mtime", float | None, None),
        ("atime", float | None, None),
    ],
    str,
    TMO_NORMAL,
    "files:file_stream_begin",
    "returns a stream token",
)
_call(
    "file_stream_chunk",
    [("token", str), ("offset", int), ("data_b64", str)],
    None,
    TMO_NORMAL,
    "files:file_stream_chunk",
)
_call(
    "file_stream_end",
    [("token", str), ("sha256", str)],
    bool,
    TMO_SLOW,
    "files:file_stream_end",
    "checks the sha256, renames into place",
)
_call("file_stream_abort", [("token", str)], None, TMO_FAST, "files:file_stream_abort")
_call(
    "write_ssconf_files", [("values", dict[str, str])], None, TMO_FAST, "cluster:write_ssconf_files"
)
_call(
    "upload_config",
    [("config_json", str), ("serial", int)],
    None,
    TMO_NORMAL,
    "cluster:upload_config",
)
_call(
    "config_info",
    [],
    JSONDict,
    TMO_FAST,
    "cluster:config_info",
    "{'serial': int|None, 'master': str|None} of the node's config copy (failover voting)",
)
_call(
    "jobqueue_update",
    [("job_id", int), ("content_json", str)],
    None,
    TMO_NORMAL,
    "cluster:jobqueue_update",
)
_call("jobqueue_purge", [], None, TMO_NORMAL, "cluster:jobqueue_purge")
_call(
    "master_ip_activate",
    [("ip", str), ("netmask", int), ("netdev", str)],
    None,
    TMO_FAST,
    "cluster:master_ip_activate",
)
_call(
    "master_ip_deactivate",
    [("ip", str), ("netmask", int), ("netdev", str)],
    None,
    TMO_FAST,
    "cluster:master_ip_deactivate",
)
_call("start_masterd", [], None, TMO_NORMAL, "cluster:start_masterd")
_call("stop_masterd", [], None, TMO_NORMAL, "cluster:stop_masterd")
_call(
    "run_hooks",
    [("hpath", str), ("phase", str), ("env", dict[str, str])],
    list[tuple[str, int, str]],
    TMO_SLOW,
    "cluster:run_hooks",
    "[(script, status 0=skip 1=fail 2=success, output)]",
)

# -- hypervisor ---------------------------------------------------------------------------
_call(
    "instance_start",
    [("spec", InstanceStartSpec), ("hv_name", str)],
    InstanceRuntime,
    TMO_SLOW,
    "instances:instance_start",
)
_call(
    "instance_shutdown",
    [("name", str), ("hv_name", str), ("timeout", float, 120.0), ("force", bool, False)],
    None,
    TMO_NORMAL,
    "instances:instance_shutdown",
    timeout_arg="timeout",
)
_call(
    "instance_reboot",
    [
        ("name", str),
        ("hv_name", str),
        ("reboot_type", str),
        ("spec", InstanceStartSpec | None, None),
        ("timeout", float, 120.0),
    ],
    None,
    TMO_SLOW,
    "instances:instance_reboot",
    "soft|hard|full",
    timeout_arg="timeout",
)
_call(
    "instance_info",
    [("name", str), ("hv_name", str)],
    InstanceRuntime | None,
    TMO_FAST,
    "instances:instance_info",
)
_call(
    "all_instances_info",
    [("hv_names", list[str])],
    dict[str, InstanceRuntime],
    TMO_FAST,
    "instances:all_instances_info",
)
_call("instance_list", [("hv_names", list[str])], list[str], TMO_FAST, "instances:instance_list")
_call(
    "instance_console_info",
    [("instance", objects.Instance), ("hvparams", JSONDict), ("hv_name", str), ("node_name", str)],
    ConsoleInfo,
    TMO_FAST,
    "instances:instance_console_info",
)
_call(
    "migration_info",
    [("instance", objects.Instance), ("hv_name", str)],
    JSONDict,
    TMO_NORMAL,
    "instances:migration_info",
)
_call(
    "accept_instance",
    [("spec", InstanceStartSpec), ("info", JSONDict), ("target_ip", str), ("hv_name", str)],
    JSONDict,
    TMO_SLOW,
    "instances:accept_instance",
)
_call(
    "instance_migrate",
    [
        ("name", str),
        ("hv_name", str),
        ("target_ip", str),
        ("accept_data", JSONDict),
        ("live", bool, True),
    ],
    None,
    TMO_SLOW,
    "instances:instance_migrate",
)
_call(
    "instance_get_migration_status",
    [("name", str), ("hv_name", str)],
    MigrationStatus,
    TMO_FAST,
    "instances:instance_get_migration_status",
)
_call(
    "instance_finalize_migration_dst",
    [("name", str), ("hv_name", str), ("success", bool)],
    None,
    TMO_SLOW,
    "instances:instance_finalize_migration_dst",
)
_call(
    "instance_finalize_migration_src",
    [("name", str), ("hv_name", str), ("success", bool), ("live", bool, True)],
    None,
    TMO_SLOW,
    "instances:instance_finalize_migration_src",
)
_call(
    "hotplug_supported",
    [("name", str), ("hv_name", str)],
    None,
    TMO_FAST,
    "instances:hotplug_supported",
)
_call(
    "hotplug_device",
    [
        ("name", str),
        ("hv_name", str),
        ("action", str),
        ("dev_type", str),
        ("device", JSONDict),
        ("index", int),
    ],
    None,
    TMO_NORMAL,
    "instances:hotplug_device",
    "action add|remove|modify, dev_type nic|disk, device = NicInfo|BlockDeviceInfo fields",
)
_call(
    "instance_balloon_memory",
    [("name", str), ("hv_name", str), ("memory", int)],
    None,
    TMO_NORMAL,
    "instances:instance_balloon_memory",
)

# -- storage ------------------------------------------------------------------------------
_call(
    "blockdev_create",
    [("disk", objects.Disk), ("ctx", DeviceContext), ("on_primary", bool, True), ("info", str, "")],
    None,
    TMO_SLOW,
    "blockdev:blockdev_create",
)
_call(
    "blockdev_remove",
    [("disk", objects.Disk), ("ctx", DeviceContext)],
    None,
    TMO_SLOW,
    "blockdev:blockdev_remove",
)
_call(
    "blockdev_assemble",
    [("disk", objects.Disk), ("ctx", DeviceContext), ("as_primary", bool, True), ("idx", int, 0)],
    JSONDict,
    TMO_SLOW,
    "blockdev:blockdev_assemble",
    "{'path': str, 'uri': str|None}",
)
_call(
    "blockdev_shutdown",
    [("disk", objects.Disk), ("ctx", DeviceContext)],
    None,
    TMO_NORMAL,
    "blockdev:blockdev_shutdown",
)
_call(
    "blockdev_getmirrorstatus",
    [("disks", Disks), ("ctx", DeviceContext)],
    list[SyncStatus],
    TMO_FAST,
    "blockdev:blockdev_getmirrorstatus",
)
_call(
    "blockdev_find",
    [("disk", objects.Disk), ("ctx", DeviceContext)],
    SyncStatus | None,
    TMO_FAST,
    "blockdev:blockdev_find",
)
_call(
    "blockdev_open",
    [("disks", Disks), ("ctx", DeviceContext), ("exclusive", bool, True)],
    None,
    TMO_NORMAL,
    "blockdev:blockdev_open",
)
_call(
    "blockdev_close",
    [("disks", Disks), ("ctx", DeviceContext)],
    None,
    TMO_NORMAL,
    "blockdev:blockdev_close",
)
_call(
    "blockdev_grow",
    [("disk", objects.Disk), ("ctx", DeviceContext), ("amount", int), ("dryrun", bool, False)],
    None,
    TMO_SLOW,
    "blockdev:blockdev_grow",
)
_call(
    "drbd_disconnect_net",
    [("disks", Disks), ("ctx", DeviceContext)],
    None,
    TMO_NORMAL,
    "blockdev:drbd_disconnect_net",
)
_call(
    "drbd_attach_net",
    [("disks", Disks), ("ctx", DeviceContext), ("multimaster", bool, False)],
    None,
    TMO_NORMAL,
    "blockdev:drbd_attach_net",
)
_call(
    "drbd_wait_sync",
    [("disks", Disks), ("ctx", DeviceContext)],
    JSONDict,
    TMO_FAST,
    "blockdev:drbd_wait_sync",
    "{'done': bool, 'percent': float|None}",
)

_call(
    "blockdev_rename",
    [("devlist", list[tuple[objects.Disk, list[Any]]]), ("ctx", DeviceContext)],
    None,
    TMO_NORMAL,
    "blockdev:blockdev_rename",
    "[(disk, new_logical_id)]",
)
_call(
    "file_storage_dir_rename",
    [("old_dir", str), ("new_dir", str)],
    None,
    TMO_NORMAL,
    "blockdev:file_storage_dir_rename",
)

# -- OS definitions -----------------------------------------------------------------------
_call("os_diagnose", [], list[JSONDict], TMO_NORMAL, "os_ops:os_diagnose")
_call("os_get", [("name", str)], JSONDict, TMO_FAST, "os_ops:os_get")
_call(
    "os_validate",
    [("name", str), ("osparams", JSONDict, {})],
    None,
    TMO_NORMAL,
    "os_ops:os_validate",
)
_call(
    "instance_os_add",
    [
        ("instance", objects.Instance),
        ("disks_paths", list[str]),
        ("reinstall", bool, False),
        ("debug", int, 0),
        ("networks", dict[str, objects.Network], {}),
    ],
    None,
    TMO_LONG,
    "os_ops:instance_os_add",
)
_call(
    "instance_run_rename",
    [
        ("instance", objects.Instance),
        ("old_name", str),
        ("disks_paths", list[str]),
        ("debug", int, 0),
    ],
    None,
    TMO_SLOW,
    "os_ops:instance_run_rename",
)


def get_call(name: str) -> RpcCall | None:
    return CALLS.get(name)
