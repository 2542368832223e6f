"""Temporary reservations of unique resources, owned by jobs.

Two jobs creating instances at the same time must not pick the same MAC, port,
DRBD minor or volume name before either has written its instance into the
config. Like Ganeti's ``TemporaryReservationManager``, every value handed out is
recorded under the id of the job that asked for it ("execution context"); a
value counts as taken while it is reserved *or* used in the config. When the
job ends (success or failure) the executor calls `release(job_id)`: the values
that made it into the config stay taken through the config, the others become
free again, so a failed job leaves nothing reserved.
"""

from __future__ import annotations

import random
import secrets
import uuid as uuidlib
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from corral import constants as C
from corral import objects
from corral.config.util import iter_disks
from corral.errors import ECODE_NOTUNIQUE, ConfigurationError, OpPrereqError

T = TypeVar("T", bound=Hashable)


class ReservationSet(Generic[T]):
    """Values of one kind (MACs, LV names, ...) reserved per job id."""

    def __init__(self) -> None:
        self._by_job: dict[int, set[T]] = {}

    def reserved(self) -> set[T]:
        """Every value currently reserved by any job."""
        out: set[T] = set()
        for values in self._by_job.values():
            out |= values
        return out

    def is_reserved(self, value: T) -> bool:
        return any(value in values for values in self._by_job.values())

    def reserve(self, job_id: int, value: T) -> None:
        self._by_job.setdefault(job_id, set()).add(value)

    def release(self, job_id: int) -> set[T]:
        """Drop the reservations of `job_id`; return what it held."""
        return self._by_job.pop(job_id, set())

    def held_by(self, job_id: int) -> set[T]:
        return set(self._by_job.get(job_id, set()))


class ReservationMixin:
    """The reservation half of `ConfigStore` (kept apart to keep files short).

    Every generator checks the config *and* the reservations of running jobs,
    and reserves what it returns under `job_id`.
    """

    _data: objects.ConfigData

    def _init_reservations(self) -> None:
        self._macs: ReservationSet[str] = ReservationSet()
        self._ports: ReservationSet[int] = ReservationSet()
        self._minors: ReservationSet[tuple[str, int]] = ReservationSet()
        self._ids: ReservationSet[str] = ReservationSet()  # uuids, LV names, secrets

    def _all_uuids(self) -> set[str]:
        d = self._data
        out: set[str] = {d.cluster.uuid}
        out.update(d.nodes, d.nodegroups, d.instances, d.networks)
        for inst in d.instances.values():
            out.update(nic.uuid for nic in inst.nics)
            out.update(disk.uuid for disk in iter_disks(inst.disks))
        return out

    def _new_uuid(self) -> str:
        taken = self._all_uuids()
        while True:
            value = str(uuidlib.uuid4())
            if value not in taken and not self._ids.is_reserved(value):
                return value

    def generate_unique_id(self, job_id: int) -> str:
        """A UUID unused in the config and by other jobs, reserved for `job_id`."""
        value = self._new_uuid()
        self._ids.reserve(job_id, value)
        return value

    def _used_macs(self) -> set[str]:
        return {nic.mac for inst in self._data.instances.values() for nic in inst.nics if nic.mac}

    def generate_mac(self, job_id: int, network_uuid: str | None = None) -> str:
        """A fresh MAC with the cluster's (or the network's) prefix, reserved for the job."""
        prefix = self._data.cluster.mac_prefix
        if network_uuid is not None:
            net = self._data.networks.get(network_uuid)
            if net is not None and net.mac_prefix:
                prefix = net.mac_prefix
        used = self._used_macs() | self._macs.reserved()
        rng = random.SystemRandom()
        for _ in range(64):
            mac = f"{prefix}:{rng.randrange(256):02x}:{rng.randrange(256):02x}:" + (
                f"{rng.randrange(256):02x}"
            )
            if mac not in used:
                self._macs.reserve(job_id, mac)
                return mac
        raise ConfigurationError("Can't generate unique MAC")

    def reserve_mac(self, mac: str, job_id: int) -> None:
        """Reserve a user-given MAC; OpPrereqError(ECODE_NOTUNIQUE) if taken."""
        mac = mac.lower()
        if mac in self._used_macs() or self._macs.is_reserved(mac):
            raise OpPrereqError(f"MAC address {mac} already in use in cluster", ECODE_NOTUNIQUE)
        self._macs.reserve(job_id, mac)

    @staticmethod
    def _instance_ports(inst: objects.Instance) -> list[int]:
        ports: list[int] = []
        if inst.network_port is not None:
            ports.append(inst.network_port)
        for disk in iter_disks(inst.disks):
            if disk.dev_type == C.LD_DRBD8 and len(disk.logical_id) > 2:
                ports.append(int(disk.logical_id[2]))
        return ports

    def _used_ports(self) -> set[int]:
        used: set[int] = set()
        for inst in self._data.instances.values():
            used.update(self._instance_ports(inst))
        return used

    def allocate_port(self, job_id: int) -> int:
        """A TCP/UDP port for a console or DRBD link (pool first, then highest+1).

        The pool/highest_used_port change is written with the next config write;
        if the job fails, `release_reservations` puts the port back in the pool.
        """
        cluster = self._data.cluster
        taken = self._used_ports() | self._ports.reserved()
        for port in sorted(cluster.tcpudp_port_pool):
            if port not in taken:
                cluster.tcpudp_port_pool.remove(port)
                self._ports.reserve(job_id, port)
                return port
        port = max(cluster.highest_used_port, C.FIRST_DRBD_PORT - 1) + 1
        while port in taken:
            port += 1
        if port > C.LAST_DRBD_PORT:
            raise ConfigurationError(
                f"The highest used port is greater than {C.LAST_DRBD_PORT}. Aborting."
            )
        cluster.highest_used_port = port
        self._ports.reserve(job_id, port)
        return port

    def _drbd_minor_map(self) -> dict[str, set[int]]:
        used: dict[str, set[int]] = {uuid: set() for uuid in self._data.nodes}
        for inst in self._data.instances.values():
            for disk in iter_disks(inst.disks):
                if disk.dev_type == C.LD_DRBD8 and len(disk.logical_id) >= 5:
                    lid = disk.logical_id
                    used.setdefault(str(lid[0]), set()).add(int(lid[3]))
                    used.setdefault(str(lid[1]), set()).add(int(lid[4]))
        for node_uuid, minor in self._minors.reserved():
            used.setdefault(node_uuid, set()).add(minor)
        return used

    def drbd_minor_map(self) -> dict[str, list[int]]:
        """Used DRBD minors per node UUID (config plus reservations), sorted."""
        return {node: sorted(minors) for node, minors in self._drbd_minor_map().items()}

    def allocate_drbd_minors(self, node_uuids: list[str], job_id: int) -> list[int]:
        """The lowest free minor on each listed node (a node listed twice gets two)."""
        used = self._drbd_minor_map()
        result: list[int] = []
        for node_uuid in node_uuids:
            minors = used.setdefault(node_uuid, set())
            minor = 0
            while minor in minors:
                minor += 1
            minors.add(minor)
            self._minors.reserve(job_id, (node_uuid, minor))
            result.append(minor)
        return result

    def _used_lv_names(self) -> set[str]:
        names: set[str] = set()
        for inst in self._data.instances.values():
            for disk in iter_disks(inst.disks):
                if disk.dev_type == C.LD_LV and len(disk.logical_id) == 2:
                    names.add(str(disk.logical_id[1]))
        return names

    def generate_lv_names(self, exts: list[str], job_id: int) -> list[str]:
        """Ganeti's _GenerateUniqueNames: ``<fresh uuid><ext>`` for each extension."""
        return [f"{self.generate_unique_id(job_id)}{ext}" for ext in exts]

    def reserve_lv(self, lv_name: str, job_id: int) -> None:
        """Reserve an explicit LV name; OpPrereqError(ECODE_NOTUNIQUE) if taken."""
        if lv_name in self._used_lv_names() or self._ids.is_reserved(lv_name):
            raise OpPrereqError(f"Logical volume name {lv_name} already in use", ECODE_NOTUNIQUE)
        self._ids.reserve(job_id, lv_name)

    def generate_drbd_secret(self, job_id: int) -> str:
        """A fresh shared secret for a DRBD link (40 hex chars)."""
        while True:
            value = secrets.token_hex(C.DRBD_SECRET_LEN // 2)
            if not self._ids.is_reserved(value):
                self._ids.reserve(job_id, value)
                return value

    def release_reservations(self, job_id: int) -> None:
        """Forget what `job_id` reserved; unused ports go back to the port pool."""
        self._macs.release(job_id)
        self._minors.release(job_id)
        self._ids.release(job_id)
        self._return_ports(self._ports.release(job_id))

    def _return_ports(self, ports: Iterable[int]) -> None:
        """Put `ports` back in the cluster's port pool, those no instance uses."""
        ports = set(ports)
        if not ports:
            return
        used = self._used_ports()
        pool = self._data.cluster.tcpudp_port_pool
        pool.extend(sorted(p for p in ports if p not in used and p not in pool))
