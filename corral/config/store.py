"""The configuration store: the master's only way to read and change config.data.

`ConfigStore` holds one `objects.ConfigData` in memory and is used from the
master's event loop only (it is not thread-safe; nothing else writes the config).

Reading
    Lookups return the *live* objects (``get_instance``, ``nodes``, ...). Treat
    them as read-only; to change one, change it (or a ``.copy()`` of it) and pass
    it to the matching ``update_*`` coroutine. Updating a copy whose
    ``serial_no`` no longer matches the stored object raises ConfigurationError
    (someone else changed it since it was read), as Ganeti's ``ConfigWriter.Update``.
    ``expand_instance_name``/``expand_node_name`` resolve user input with
    Ganeti's unique-prefix rule (``inst1`` -> ``inst1.example.com``) and raise
    ``OpPrereqError("Instance 'x' not known", ECODE_NOENT)``.

Changing
    Every ``add_*``/``update_*``/``remove_*`` coroutine applies the change in
    memory (no await between check and change, so concurrent jobs cannot
    interleave), bumps ``serial_no`` and ``mtime`` of the object and of the
    whole config, then writes the file before returning (backend ``_persist``:
    temp file + fsync + rename, run in a worker thread so the event loop never
    blocks). After the write the new config is pushed in the background to
    every online master candidate through the `ConfigDistributor`; a candidate
    that cannot be reached is logged as a warning and recorded in
    `stale_candidates` (reported by `verify`), it never blocks or fails a job.

Reserving
    Unique values (MACs, TCP/UDP ports, DRBD minors, LV names, DRBD secrets,
    unique ids) are handed out per job id (see `corral.config.reservations`);
    the executor calls `release_reservations(job_id)` when the job ends.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from corral import objects
from corral.config.reader import ConfigReader
from corral.config.reservations import ReservationMixin
from corral.config.util import iter_disks
from corral.config.verify import verify_config
from corral.errors import (
    ECODE_EXISTS,
    ECODE_INVAL,
    ECODE_NOTUNIQUE,
    ConfigurationError,
    OpPrereqError,
)

log = logging.getLogger(__name__)

ChangeListener = Callable[[objects.ConfigData], None]


class ConfigDistributor(Protocol):
    """Pushes a written config to master candidates (implemented over node RPC).

    Returns, per node UUID, None on success or the error message. Must not
    raise for an unreachable node; must respect the RPC timeouts.
    """

    async def upload_config(
        self, nodes: list[objects.Node], config_json: str, serial: int
    ) -> dict[str, str | None]: ...


def _now() -> float:
    return time.time()


class ConfigStore(ConfigReader, ReservationMixin, abc.ABC):
    """Backend-independent config logic; subclasses only persist bytes."""

    def __init__(
        self,
        data: objects.ConfigData,
        *,
        distributor: ConfigDistributor | None = None,
    ) -> None:
        self._data = data
        self._distributor = distributor
        self._write_lock = asyncio.Lock()
        self._written_serial = data.serial_no
        self._push_task: asyncio.Task[None] | None = None
        self._push_pending = False
        self._stale: dict[str, str] = {}
        self._listeners: list[ChangeListener] = []
        # reservations
        self._init_reservations()

    # ------------------------------------------------------------------
    # persistence (backend)
    # ------------------------------------------------------------------
    @abc.abstractmethod
    def _persist(self, payload: bytes) -> None:
        """Durably store `payload` (blocking; runs in a worker thread)."""

    def set_distributor(self, distributor: ConfigDistributor | None) -> None:
        """Set how configs are pushed to master candidates (masterd wires RPC in)."""
        self._distributor = distributor

    def add_listener(self, callback: ChangeListener) -> None:
        """Call `callback(config)` after every successful write (e.g. ssconf upkeep)."""
        self._listeners.append(callback)

    def to_json(self) -> bytes:
        """The config as config.data JSON."""
        return msgspec.json.encode(self._data)

    # ------------------------------------------------------------------
    # mutations
    # ------------------------------------------------------------------
    def _touch_new(self, obj: objects.TaggableObject, now: float) -> None:
        if not obj.uuid:
            obj.uuid = self._new_uuid()
        obj.serial_no = 1
        obj.ctime = obj.ctime or now
        obj.mtime = now

    def _bump(self, obj: objects.TaggableObject | None, now: float) -> None:
        if obj is not None:
            obj.serial_no += 1
            obj.mtime = now
        self._data.serial_no += 1
        self._data.mtime = now

    @staticmethod
    def _replace(
        table: dict[str, Any], obj: objects.TaggableObject, kind: str
    ) -> objects.TaggableObject:
        stored = table.get(obj.uuid)
        if stored is None:
            raise ConfigurationError(f"Unknown {kind} '{obj.uuid}'")
        if stored is not obj:
            if stored.serial_no != obj.serial_no:
                raise ConfigurationError(
                    f"Configuration updated since {kind} '{obj.uuid}' has been read"
                )
            table[obj.uuid] = obj
        return obj

    async def add_instance(self, inst: objects.Instance) -> None:
        """Add a new instance (unique name, known nodes, unused MACs)."""
        if self.get_instance_by_name(inst.name) is not None or inst.uuid in self.instances:
            raise OpPrereqError(f"Instance '{inst.name}' is already in the cluster", ECODE_EXISTS)
        for node_uuid in inst.all_nodes:
            if node_uuid not in self._data.nodes:
                raise ConfigurationError(f"Instance '{inst.name}' uses unknown node {node_uuid}")
        used = self._used_macs()
        for nic in inst.nics:
            if nic.mac in used:
                raise OpPrereqError(
                    f"MAC address {nic.mac} already in use in cluster", ECODE_NOTUNIQUE
                )
        now = _now()
        self._touch_new(inst, now)
        for nic in inst.nics:
            nic.uuid = nic.uuid or self._new_uuid()
        for disk in iter_disks(inst.disks):
            disk.uuid = disk.uuid or self._new_uuid()
            disk.ctime = disk.ctime or now
            disk.mtime = now
        self._data.instances[inst.uuid] = inst
        self._bump(None, now)
        await self._save()

    async def update_instance(self, inst: objects.Instance) -> None:
        """Write a changed instance; ports it no longer uses go back to the port pool.

        Only a copy (`inst` is not the stored object) shows which ports were
        dropped, e.g. the old DRBD port after ``replace-disks -n``; the pool
        lets the next allocation reuse them instead of growing the range.
        """
        stored = self._data.instances.get(inst.uuid)
        dropped = set(self._instance_ports(stored)) if stored is not None else set()
        self._replace(self._data.instances, inst, "instance")
        self._return_ports(dropped - set(self._instance_ports(inst)))
        for nic in inst.nics:
            nic.uuid = nic.uuid or self._new_uuid()
        for disk in iter_disks(inst.disks):
            disk.uuid = disk.uuid or self._new_uuid()
        self._bump(inst, _now())
        await self._save()

    async def set_instance_admin_state(
        self, uuid: str, state: str, source: str | None = None
    ) -> None:
        """Mark an instance up/down/offline (Ganeti's MarkInstanceUp/Down/Offline)."""
        inst = self._require_instance(uuid)
        if inst.admin_state == state and (source is None or inst.admin_state_source == source):
            return
        inst.admin_state = state
        if source is not None:
            inst.admin_state_source = source
        self._bump(inst, _now())
        await self._save()

    async def set_disks_active(self, uuid: str, active: bool) -> None:
        inst = self._require_instance(uuid)
        if inst.disks_active == active:
            return
        inst.disks_active = active
        self._bump(inst, _now())
        await self._save()

    async def rename_instance(self, uuid: str, new_name: str) -> None:
        inst = self._require_instance(uuid)
        other = self.get_instance_by_name(new_name)
        if other is not None and other.uuid != uuid:
            raise OpPrereqError(f"Instance '{new_name}' is already in the cluster", ECODE_EXISTS)
        inst.name = new_name
        self._bump(inst, _now())
        await self._save()

    async def remove_instance(self, uuid: str) -> None:
        """Remove an instance; its console and DRBD ports return to the port pool."""
        inst = self._require_instance(uuid)
        del self._data.instances[uuid]
        pool = self._data.cluster.tcpudp_port_pool
        for port in self._instance_ports(inst):
            if port not in pool:
                pool.append(port)
        self._bump(self._data.cluster, _now())
        await self._save()

    async def add_node(self, node: objects.Node) -> None:
        if self.get_node_by_name(node.name) is not None or node.uuid in self._data.nodes:
            raise OpPrereqError(f"Node '{node.name}' is already in the cluster", ECODE_EXISTS)
        if node.group and node.group not in self._data.nodegroups:
            raise ConfigurationError(f"Node '{node.name}' uses unknown group {node.group}")
        now = _now()
        self._touch_new(node, now)
        self._data.nodes[node.uuid] = node
        self._bump(None, now)
        await self._save()

    async def update_node(self, node: objects.Node) -> None:
        self._replace(self._data.nodes, node, "node")
        if node.group and node.group not in self._data.nodegroups:
            raise ConfigurationError(f"Node '{node.name}' uses unknown group {node.group}")
        self._bump(node, _now())
        await self._save()

    async def remove_node(self, uuid: str) -> None:
        if uuid not in self._data.nodes:
            raise ConfigurationError(f"Unknown node '{uuid}'")
        del self._data.nodes[uuid]
        self._stale.pop(uuid, None)
        self._bump(None, _now())
        await self._save()

    async def add_group(self, group: objects.NodeGroup) -> None:
        if self.get_group_by_name(group.name) is not None or group.uuid in self.nodegroups:
            raise OpPrereqError(
                f"Desired group name '{group.name}' already exists as a node group"
                f" (UUID: {self.lookup_group(group.name)})",
                ECODE_EXISTS,
            )
        now = _now()
        self._touch_new(group, now)
        self._data.nodegroups[group.uuid] = group
        self._bump(None, now)
        await self._save()

    async def update_group(self, group: objects.NodeGroup) -> None:
        self._replace(self._data.nodegroups, group, "node group")
        self._bump(group, _now())
        await self._save()

    async def remove_group(self, uuid: str) -> None:
        if uuid not in self._data.nodegroups:
            raise ConfigurationError(f"Unknown node group '{uuid}'")
        if self.group_nodes(uuid):
            raise OpPrereqError("Group is not empty", ECODE_INVAL)
        del self._data.nodegroups[uuid]
        self._bump(None, _now())
        await self._save()

    async def add_network(self, net: objects.Network) -> None:
        if self.get_network_by_name(net.name) is not None or net.uuid in self.networks:
            raise OpPrereqError(f"Network '{net.name}' already exists", ECODE_EXISTS)
        now = _now()
        self._touch_new(net, now)
        self._data.networks[net.uuid] = net
        self._bump(None, now)
        await self._save()

    async def update_network(self, net: objects.Network) -> None:
        self._replace(self._data.networks, net, "network")
        self._bump(net, _now())
        await self._save()

    async def remove_network(self, uuid: str) -> None:
        if uuid not in self._data.networks:
            raise ConfigurationError(f"Unknown network '{uuid}'")
        del self._data.networks[uuid]
        self._bump(None, _now())
        await self._save()

    async def update_cluster(self, cluster: objects.Cluster) -> None:
        stored = self._data.cluster
        if stored is not cluster:
            if stored.serial_no != cluster.serial_no:
                raise ConfigurationError("Configuration updated since cluster has been read")
            self._data.cluster = cluster
        self._bump(cluster, _now())
        await self._save()

    async def update(self, obj: objects.TaggableObject) -> None:
        """Dispatch to the right ``update_*`` by type (Ganeti's ConfigWriter.Update)."""
        if isinstance(obj, objects.Instance):
            await self.update_instance(obj)
        elif isinstance(obj, objects.Node):
            await self.update_node(obj)
        elif isinstance(obj, objects.NodeGroup):
            await self.update_group(obj)
        elif isinstance(obj, objects.Network):
            await self.update_network(obj)
        elif isinstance(obj, objects.Cluster):
            await self.update_cluster(obj)
        else:
            raise ConfigurationError(f"Cannot update object of type {type(obj).__name__}")

    async def save(self) -> None:
        """Write the config now (after changes made by reservations alone)."""
        self._bump(None, _now())
        await self._save()

    def _require_instance(self, uuid: str) -> objects.Instance:
        inst = self._data.instances.get(uuid)
        if inst is None:
            raise ConfigurationError(f"Unknown instance '{uuid}'")
        return inst

    # ------------------------------------------------------------------
    # writing and replication
    # ------------------------------------------------------------------
    async def _save(self) -> None:
        """Write the current config unless a newer write already covered it."""
        target = self._data.serial_no
        async with self._write_lock:
            if self._written_serial >= target:
                return
            serial = self._data.serial_no
            payload = self.to_json()
            try:
                await asyncio.to_thread(self._persist, payload)
            except OSError as err:
                raise ConfigurationError(f"Cannot write the configuration: {err}") from err
            self._written_serial = serial
        for listener in self._listeners:
            try:
                listener(self._data)
            except Exception:
                log.exception("config change listener failed")
        self._schedule_push()

    def _replication_targets(self) -> list[objects.Node]:
        master = self._data.cluster.master_node
        return [
            n for n in self.all_nodes() if n.master_candidate and not n.offline and n.uuid != master
        ]

    def _schedule_push(self) -> None:
        if self._distributor is None:
            return
        if self._push_task is not None and not self._push_task.done():
            self._push_pending = True
            return
        self._push_pending = False
        self._push_task = asyncio.get_running_loop().create_task(self._push_loop())

    async def _push_loop(self) -> None:
        while True:
            await self._push_once()
            if not self._push_pending:
                return
            self._push_pending = False

    async def _push_once(self) -> None:
        distributor = self._distributor
        targets = self._replication_targets()
        if distributor is None or not targets:
            return
        serial = self._data.serial_no
        payload = self.to_json().decode()
        try:
            results = await distributor.upload_config(targets, payload, serial)
        except Exception as err:  # never let replication hurt a job
            results = {n.uuid: f"{type(err).__name__}: {err}" for n in targets}
        for node in targets:
            error = results.get(node.uuid, "no answer")
            if error is None:
                self._stale.pop(node.uuid, None)
            else:
                log.warning(
                    "Could not update the configuration on master candidate %s: %s",
                    node.name,
                    error,
                )
                self._stale[node.uuid] = error

    async def flush(self) -> None:
        """Wait until background replication pushes are done (tests, shutdown)."""
        while self._push_task is not None and not self._push_task.done():
            await asyncio.shield(self._push_task)

    async def redistribute(self) -> None:
        """Push the config to every candidate now and wait (gnt-cluster redist-conf)."""
        await self.flush()
        self._schedule_push()
        await self.flush()

    def stale_candidates(self) -> dict[str, str]:
        """Master candidates (UUID -> last error) whose config copy is out of date."""
        return dict(self._stale)

    # ------------------------------------------------------------------
    # verification
    # ------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Consistency errors of the config, one message each (gnt-cluster verify)."""
        errors = verify_config(self._data)
        for node_uuid, reason in sorted(self._stale.items()):
            errors.append(
                f"node {self.node_name(node_uuid)}: configuration copy is out of date"
                f" (last push failed: {reason})"
            )
        return errors
