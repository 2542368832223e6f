"""The hypervisor driver contract.

One `Hypervisor` subclass per hypervisor kind, registered by name
(`corral.hypervisor.get_hypervisor`). Drivers run on the node (inside noded);
the master only uses the class-level parameter table and syntax checks.
A driver never imports another driver, the config store or cmdlib: it receives
everything it needs (filled parameters, block device paths, tap names) from the
node backend.

Runtime state of each VM lives in files under ``paths.instance_run_dir`` so a
restarted noded rediscovers running VMs, and a crashed node's VMs are simply
gone.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from corral import objects
from corral.paths import Paths


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """One declared parameter: kind is str|bool|int|float|path|enum|list.

    Semantics follow Ganeti's five-tuple checks: an empty value ('', 0, False)
    skips every check unless `required`, in which case it is an error.
    """

    kind: str
    default: Any
    doc: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    # Extra syntax check: return an error message or None
    check: Callable[[Any], str | None] | None = None
    # Node-side check (files must exist ...): return an error message or None
    node_check: Callable[[Any], str | None] | None = None


class BlockDeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A disk as handed to the hypervisor: an openable path (or URI)."""

    path: str
    uri: str | None = None
    mode: str = "rw"
    uuid: str = ""
    name: str | None = None
    size: int = 0


class NicInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A NIC as handed to the hypervisor: tap already created by the backend."""

    mac: str
    uuid: str = ""
    name: str | None = None
    tap: str | None = None
    mode: str = "bridged"
    link: str = ""
    vlan: str = ""
    ip: str | None = None


class InstanceStartSpec(msgspec.Struct, kw_only=True):
    """Everything needed to start one VM (hvparams/beparams already filled)."""

    instance: objects.Instance
    hvparams: dict[str, Any]
    beparams: dict[str, Any]
    disks: list[BlockDeviceInfo]
    nics: list[NicInfo]
    startup_paused: bool = False


class InstanceRuntime(msgspec.Struct, kw_only=True):
    """What the hypervisor reports about one running VM."""

    name: str
    state: str  # "running", "paused", "shutdown" (stopped by the guest), "migrating"
    memory: int  # MiB
    vcpus: int
    pid: int | None = None
    console_port: int | None = None
    time: float = 0.0  # seconds of CPU used
    nics: list[NicInfo] = msgspec.field(default_factory=list)
    disks: list[BlockDeviceInfo] = msgspec.field(default_factory=list)


class NodeHvInfo(msgspec.Struct, kw_only=True):
    """Node resources as the hypervisor sees them (MiB, counts)."""

    memory_total: int
    memory_free: int
    memory_dom0: int
    memory_hv: int = 0
    cpu_total: int = 1
    cpu_nodes: int = 1
    cpu_sockets: int = 1
    cpu_dom0: int = 1


class ConsoleInfo(msgspec.Struct, kw_only=True):
    """How to reach a VM's console (Ganeti's InstanceConsole)."""

    kind: str  # "vnc", "serial", "message"
    instance: str
    host: str | None = None
    port: int | None = None
    display: int | None = None
    command: list[str] | None = None
    message: str | None = None


class MigrationStatus(msgspec.Struct, kw_only=True):
    status: str  # "active", "completed", "failed", "cancelled"
    transferred_ram: int = 0
    total_ram: int = 0
    info: str = ""


class Hypervisor(abc.ABC):
    """Contract every hypervisor driver fulfils (names follow Ganeti's BaseHypervisor)."""

    NAME: ClassVar[str]
    PARAMETERS: ClassVar[dict[str, Param]]
    CAN_MIGRATE: ClassVar[bool] = False
    CAN_HOTPLUG: ClassVar[bool] = False

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- master side (class-level, no node state) ------------------------------
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {name: p.default for name, p in cls.PARAMETERS.items()}

    @classmethod
    @abc.abstractmethod
    def check_parameter_syntax(cls, hvparams: dict[str, Any]) -> None:
        """Raise HypervisorError for unknown names or bad values (filled dict)."""

    # -- node side ---------------------------------------------------------------
    @abc.abstractmethod
    def validate_parameters(self, hvparams: dict[str, Any]) -> None:
        """Node-local checks (paths exist ...); raise HypervisorError."""

    @abc.abstractmethod
    def start_instance(self, spec: InstanceStartSpec) -> InstanceRuntime:
        """Start the VM; raise HypervisorError (and leave nothing running) on failure."""

    @abc.abstractmethod
    def stop_instance(self, name: str, force: bool = False, timeout: float = 120) -> None:
        """Stop the VM (clean shutdown, killed after `timeout` or at once if `force`)."""

    @abc.abstractmethod
    def reboot_instance(self, name: str) -> None: ...

    @abc.abstractmethod
    def list_instances(self) -> list[str]: ...

    @abc.abstractmethod
    def get_instance_info(self, name: str) -> InstanceRuntime | None: ...

    def get_all_instances_info(self) -> list[InstanceRuntime]:
        result = []
        for name in self.list_instances():
            info = self.get_instance_info(name)
            if info is not None:
                result.append(info)
        return result

    @abc.abstractmethod
    def get_node_info(self) -> NodeHvInfo: ...

    @abc.abstractmethod
    def get_console(
        self, instance: objects.Instance, hvparams: dict[str, Any], node_name: str
    ) -> ConsoleInfo: ...

    # -- migration (Ganeti's protocol: info on source, accept on target,
    #    migrate from source, finalize on both) -----------------------------------
    def migration_info(self, instance: objects.Instance) -> dict[str, Any]:
        raise NotImplementedError

    def accept_instance(
        self, spec: InstanceStartSpec, info: dict[str, Any], target_ip: str
    ) -> dict[str, Any]:
        """Prepare the target to receive; returns data the source needs (port ...)."""
        raise NotImplementedError

    def migrate_instance(
        self, name: str, target_ip: str, accept_data: dict[str, Any], live: bool
    ) -> None:
        """Start sending the VM to the target (returns once started)."""
        raise NotImplementedError

    def get_migration_status(self, name: str) -> MigrationStatus:
        raise NotImplementedError

    def finalize_migration_dst(self, name: str, success: bool) -> None:
        raise NotImplementedError

    def finalize_migration_src(self, name: str, success: bool, live: bool) -> None:
        raise NotImplementedError

    # -- hotplug ---------------------------------------------------------------------
    def hotplug_supported(self, name: str) -> None:
        """Raise HypervisorError explaining why hotplug is impossible."""
        from corral.errors import HypervisorError

        if not self.CAN_HOTPLUG:
            raise HypervisorError("Hotplug is not supported by this hypervisor")

    def hot_add_nic(self, name: str, nic: NicInfo, index: int) -> None:
        raise NotImplementedError

    def hot_del_nic(self, name: str, nic: NicInfo, index: int) -> None:
        raise NotImplementedError

    def hot_mod_nic(self, name: str, nic: NicInfo, index: int) -> None:
        raise NotImplementedError

    def hot_add_disk(self, name: str, disk: BlockDeviceInfo, index: int) -> None:
        raise NotImplementedError

    def hot_del_disk(self, name: str, disk: BlockDeviceInfo, index: int) -> None:
        raise NotImplementedError

    def balloon_instance_memory(self, name: str, memory: int) -> None:
        raise NotImplementedError
