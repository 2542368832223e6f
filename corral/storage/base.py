"""The storage (block device) driver contract.

One `BlockDevice` subclass per Ganeti ``dev_type`` (``plain``, ``drbd``, ``file``,
``sharedfile``...), registered by name (`corral.storage.get_device_class`). An
instance is built from a config `objects.Disk` on one node; for composite
devices (DRBD) the node backend builds the children first and passes them in.
Methods mirror Ganeti's BlockDev (Create/Attach/Assemble/Shutdown/Remove/...).

Drivers run inside noded, never import another driver package, the config store
or cmdlib, and raise `corral.errors.BlockDeviceError` on failure. A failed
`create` leaves nothing behind.

Parameters a driver reads are declared in its ``PARAMETERS`` table (Ganeti's
diskparam names, e.g. drbd ``resync-rate``); `BlockDevice.param` looks them up
in ``disk.params`` (the master annotates disks with their filled diskparams, as
Ganeti's AnnotateDiskParams does), then ``ctx.params`` (node-level knobs), then
the declared default.

Composite devices are complete on their own: `create` creates the children that
do not exist yet and `remove` removes them, so the node backend may, but need
not, recurse itself (every step tolerates an already-done child).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import msgspec

from corral import objects
from corral.paths import Paths


class SyncStatus(msgspec.Struct, kw_only=True):
    """Ganeti's BlockDevStatus: resync progress and health of one device."""

    dev_path: str | None
    major: int | None = None
    minor: int | None = None
    sync_percent: float | None = None  # None = not resyncing
    estimated_time: int | None = None  # seconds
    is_degraded: bool = False
    ldisk_status: str = "ok"  # "ok", "faulty", "unknown"


class NodeStorageInfo(msgspec.Struct, kw_only=True):
    """Space of one storage unit on a node (MiB)."""

    type: str  # "lvm-vg", "file", "sharedfile", "diskless"
    name: str  # vg name or directory
    storage_size: int
    storage_free: int


class StorageParam(msgspec.Struct, frozen=True, kw_only=True):
    """One declared device parameter: kind is int|bool|str."""

    kind: str
    default: Any
    doc: str = ""


class DeviceContext(msgspec.Struct, kw_only=True):
    """Node-local facts a device needs: who we are and how to reach the peer.

    `node_ips` maps node UUID -> secondary (replication) IP; a DRBD device needs
    the entries of both of its nodes. `params` holds node-level knobs, read after
    ``disk.params``: ``drbd_backend`` ("kernel"|"filedrbd") and ``lv_backend``
    ("lvm"|"filelv") force a backend instead of probing the node;
    ``file_storage_dir``/``shared_file_storage_dir`` add an allowed directory
    (the cluster's setting when it differs from the node's paths); any diskparam
    (e.g. ``resync-rate``) as a node-wide fallback.
    """

    node_uuid: str
    node_ips: dict[str, str] = msgspec.field(default_factory=dict)
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class BlockDevice(abc.ABC):
    DEV_TYPE: ClassVar[str]
    # Which implementation serves the dev_type on this node ("file", "lvm",
    # "filelv", "kernel", "filedrbd", ...); shown by describe().
    BACKEND: ClassVar[str] = ""
    PARAMETERS: ClassVar[dict[str, StorageParam]] = {}

    def __init__(
        self,
        disk: objects.Disk,
        ctx: DeviceContext,
        paths: Paths,
        children: list[BlockDevice] | None = None,
    ) -> None:
        self.disk = disk
        self.ctx = ctx
        self.paths = paths
        self.children = children or []

    def param(self, name: str) -> Any:
        """Value of a declared parameter: disk.params, then ctx.params, then default."""
        if name in self.disk.params:
            return self.disk.params[name]
        if name in self.ctx.params:
            return self.ctx.params[name]
        return self.PARAMETERS[name].default

    @abc.abstractmethod
    def create(self) -> None:
        """Allocate the device's storage (size = disk.size). Idempotent-safe:
        raise BlockDeviceError if it already exists."""

    @abc.abstractmethod
    def exists(self) -> bool: ...

    @abc.abstractmethod
    def assemble(self) -> str:
        """Make the device usable on this node; return its path."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Deactivate (keep the data)."""

    @abc.abstractmethod
    def remove(self) -> None:
        """Delete the data; missing device is not an error."""

    @abc.abstractmethod
    def dev_path(self) -> str: ...

    def open(self, force: bool = False) -> None:
        """Make this node the writer (DRBD primary). No-op by default."""

    def close(self) -> None:
        """Give up the writer role (DRBD secondary). No-op by default."""

    def rename(self, new_logical_id: list[Any]) -> None:
        raise NotImplementedError

    def grow(self, amount: int, dryrun: bool = False) -> None:
        raise NotImplementedError

    def userspace_uri(self) -> str | None:
        """Ganeti's GetUserspaceAccessUri: a URI QEMU can open, if any."""
        return None

    def set_sync_params(self, params: dict[str, Any]) -> None:
        """Apply changed resync parameters to an assembled device. No-op by default."""

    def get_sync_status(self) -> SyncStatus:
        return SyncStatus(dev_path=self.dev_path())

    def combined_sync_status(self) -> SyncStatus:
        """Status of this device merged with its children's (worst wins)."""
        status = self.get_sync_status()
        for child in self.children:
            cst = child.combined_sync_status()
            status.is_degraded = status.is_degraded or cst.is_degraded
            if cst.ldisk_status != "ok":
                status.ldisk_status = cst.ldisk_status
            if cst.sync_percent is not None and (
                status.sync_percent is None or cst.sync_percent < status.sync_percent
            ):
                status.sync_percent = cst.sync_percent
            if cst.estimated_time is not None and (
                status.estimated_time is None or cst.estimated_time > status.estimated_time
            ):
                status.estimated_time = cst.estimated_time
        return status

    def disconnect_net(self) -> None:
        """DRBD: drop the replication link (used by failover/migration). No-op by default."""

    def attach_net(self, multimaster: bool) -> None:
        """DRBD: (re)connect to the peer. No-op by default."""

    def describe(self) -> dict[str, Any]:
        """Facts shown by `gnt-instance info` (path, major/minor, ...)."""
        st = self.get_sync_status()
        return {
            "path": st.dev_path,
            "major": st.major,
            "minor": st.minor,
            "backend": self.BACKEND or self.DEV_TYPE,
        }
