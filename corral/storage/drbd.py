"""What both DRBD backends share: the disk layout, parameters and peer addressing.

A ``drbd`` disk (Ganeti's DRBD8) has logical_id
``[node_a_uuid, node_b_uuid, port, minor_a, minor_b, secret]`` and two children:
the data volume (the disk's size) and the meta volume (128 MiB), both ``plain``.
The same port is used on both nodes, each bound to its own replication
(secondary) IP; the minor is per node.

Two backends serve the ``drbd`` dev_type, chosen per node by the registry
without any config change: `drbd_kernel.KernelDRBD` where ``/proc/drbd`` exists,
`drbd_filesync.FileDRBD` (TEST backend, "filedrbd") where it does not.
"""

from __future__ import annotations

from typing import Any

import msgspec

from corral import constants as C
from corral import errors
from corral.storage.base import BlockDevice, DeviceContext, StorageParam

# Ganeti's drbd diskparams (names and defaults of Ganeti 3.0)
DRBD_DEFAULT_RESYNC_RATE = 61440  # KiB/s (Ganeti's CLASSIC_DRBD_SYNC_SPEED)

DRBD_PARAMETERS: dict[str, StorageParam] = {
    "resync-rate": StorageParam(
        kind="int", default=DRBD_DEFAULT_RESYNC_RATE, doc="Resync speed limit (KiB/s)"
    ),
    "dynamic-resync": StorageParam(kind="bool", default=False, doc="Dynamic resync controller"),
    "c-plan-ahead": StorageParam(kind="int", default=20, doc="Planning time (1/10 s)"),
    "c-fill-target": StorageParam(kind="int", default=0, doc="Fill target (sectors)"),
    "c-delay-target": StorageParam(kind="int", default=1, doc="Delay target (1/10 s)"),
    "c-max-rate": StorageParam(kind="int", default=61440, doc="Max resync rate (KiB/s)"),
    "c-min-rate": StorageParam(kind="int", default=4096, doc="Min resync rate (KiB/s)"),
    "disk-barriers": StorageParam(
        kind="str", default="n", doc="Disabled barriers: 'n' or letters of b,f,d"
    ),
    "meta-barriers": StorageParam(kind="bool", default=False, doc="Disable meta flushes"),
    "disk-custom": StorageParam(kind="str", default="", doc="Extra drbdsetup attach options"),
    "net-custom": StorageParam(kind="str", default="", doc="Extra drbdsetup connect options"),
    "protocol": StorageParam(kind="str", default="C", doc="Replication protocol"),
    "data-stripes": StorageParam(kind="int", default=1, doc="Stripes of the data LV"),
    "meta-stripes": StorageParam(kind="int", default=1, doc="Stripes of the meta LV"),
}

HMAC_ALG = "md5"  # Ganeti's DRBD_HMAC_ALG


def drbd_children_sizes(size: int) -> tuple[int, int]:
    """(data, meta) volume sizes in MiB for a DRBD disk of `size` MiB."""
    return size, C.DRBD_META_SIZE


class DrbdPeers(msgspec.Struct, frozen=True, kw_only=True):
    """The logical_id of a DRBD disk seen from one of its nodes."""

    own_node: str
    peer_node: str
    port: int
    own_minor: int
    peer_minor: int
    secret: str
    own_ip: str
    peer_ip: str

    @property
    def own_is_a(self) -> bool:
        """Whether we are node A (logical_id[0]); used to break ties."""
        return self.own_node < self.peer_node


def drbd_peers(logical_id: list[Any], ctx: DeviceContext) -> DrbdPeers:
    """Resolve own/peer node, minor and replication IPs for the local node."""
    if len(logical_id) != 6:
        raise errors.BlockDeviceError(f"Invalid logical id for a DRBD disk: {logical_id!r}")
    node_a, node_b, port, minor_a, minor_b, secret = logical_id
    if ctx.node_uuid == node_a:
        own, peer, own_minor, peer_minor = node_a, node_b, minor_a, minor_b
    elif ctx.node_uuid == node_b:
        own, peer, own_minor, peer_minor = node_b, node_a, minor_b, minor_a
    else:
        raise errors.BlockDeviceError(
            f"Node {ctx.node_uuid} is not part of this DRBD disk ({node_a}, {node_b})"
        )
    for node in (own, peer):
        if node not in ctx.node_ips:
            raise errors.BlockDeviceError(f"No replication IP known for node {node}")
    return DrbdPeers(
        own_node=str(own),
        peer_node=str(peer),
        port=int(port),
        own_minor=int(own_minor),
        peer_minor=int(peer_minor),
        secret=str(secret),
        own_ip=ctx.node_ips[own],
        peer_ip=ctx.node_ips[peer],
    )


def format_eta(seconds: int | None) -> str:
    """DRBD's "finish: h:mm:ss" rendering of an estimate."""
    if seconds is None:
        return "?"
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def create_missing_children(children: list[BlockDevice]) -> list[BlockDevice]:
    """Create the children that do not exist yet; return those created.

    On failure the ones created here are removed again (no half-made state).
    """
    made: list[BlockDevice] = []
    try:
        for child in children:
            if not child.exists():
                child.create()
                made.append(child)
    except errors.BlockDeviceError:
        for child in made:
            child.remove()
        raise
    return made


def check_children(children: list[BlockDevice]) -> tuple[BlockDevice, BlockDevice]:
    if len(children) != 2:
        raise errors.BlockDeviceError(
            f"DRBD disk needs two children (data, meta), got {len(children)}"
        )
    return children[0], children[1]
