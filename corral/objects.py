"""Configuration objects, with Ganeti's field names.

They are plain msgspec Structs: they serialise to the JSON of ``config.data``
(`to_dict` / `from_dict`), cross the node RPC and local API unchanged, and carry
no behaviour beyond small derived views. Nodes, groups and instances are keyed
by UUID in `ConfigData`; objects refer to each other by UUID, never by name,
so renames touch one object.

Sizes are MiB everywhere, as in Ganeti.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from corral import constants as C

T = TypeVar("T", bound=msgspec.Struct)

ParamDict = dict[str, Any]


class ConfigObject(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base of all config objects."""

    def to_dict(self) -> dict[str, Any]:
        result = msgspec.to_builtins(self)
        assert isinstance(result, dict)
        return result

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        return msgspec.convert(data, cls, strict=False)

    def copy(self: T) -> T:
        return msgspec.convert(msgspec.to_builtins(self), type(self))


class TaggableObject(ConfigObject, kw_only=True):
    tags: list[str] = msgspec.field(default_factory=list)
    serial_no: int = 1
    ctime: float = 0.0
    mtime: float = 0.0
    uuid: str = ""


class Disk(ConfigObject, kw_only=True):
    """A virtual disk; `logical_id` depends on `dev_type` as in Ganeti.

    * ``plain``: ``[vg_name, lv_name]``
    * ``file``/``sharedfile``: ``[driver, path]`` (driver ``loop``)
    * ``drbd``: ``[node_a_uuid, node_b_uuid, port, minor_a, minor_b, secret]``
      with two children: data (size of the disk) and meta (128 MiB) volumes.
    """

    uuid: str = ""
    name: str | None = None
    dev_type: str = C.LD_FILE
    size: int = 0
    mode: str = C.DISK_RDWR
    logical_id: list[Any] = msgspec.field(default_factory=list)
    children: list[Disk] = msgspec.field(default_factory=list)
    iv_name: str = ""
    params: ParamDict = msgspec.field(default_factory=dict)
    nodes: list[str] = msgspec.field(default_factory=list)
    spindles: int | None = None
    serial_no: int = 1
    ctime: float = 0.0
    mtime: float = 0.0

    def drbd_nodes(self) -> tuple[str, str]:
        if self.dev_type != C.LD_DRBD8:
            raise ValueError("not a drbd disk")
        return str(self.logical_id[0]), str(self.logical_id[1])


class NIC(ConfigObject, kw_only=True):
    uuid: str = ""
    name: str | None = None
    mac: str = ""
    ip: str | None = None
    network: str | None = None
    nicparams: ParamDict = msgspec.field(default_factory=dict)


class Instance(TaggableObject, kw_only=True):
    name: str
    primary_node: str
    os: str = ""
    hypervisor: str = C.HT_FAKE
    hvparams: ParamDict = msgspec.field(default_factory=dict)
    beparams: ParamDict = msgspec.field(default_factory=dict)
    osparams: ParamDict = msgspec.field(default_factory=dict)
    osparams_private: ParamDict = msgspec.field(default_factory=dict)
    admin_state: str = C.ADMINST_DOWN
    admin_state_source: str = C.ADMINST_SOURCE_ADMIN
    nics: list[NIC] = msgspec.field(default_factory=list)
    disks: list[Disk] = msgspec.field(default_factory=list)
    disk_template: str = C.DT_DISKLESS
    disks_active: bool = False
    network_port: int | None = None
    # corral extension: owning tenant (None = the provider itself)
    tenant: str | None = None

    @property
    def secondary_nodes(self) -> list[str]:
        """Secondary node UUIDs, derived from the disks (Ganeti's way)."""
        seen: list[str] = []
        for disk in self.disks:
            if disk.dev_type == C.LD_DRBD8:
                for node in disk.drbd_nodes():
                    if node != self.primary_node and node not in seen:
                        seen.append(node)
        return seen

    @property
    def all_nodes(self) -> list[str]:
        return [self.primary_node, *self.secondary_nodes]


class Node(TaggableObject, kw_only=True):
    name: str
    primary_ip: str = ""
    secondary_ip: str = ""
    group: str = ""
    master_candidate: bool = True
    offline: bool = False
    drained: bool = False
    master_capable: bool = True
    vm_capable: bool = True
    ndparams: ParamDict = msgspec.field(default_factory=dict)
    powered: bool = True
    # SHA-256 fingerprint of the node's TLS certificate (hex, colon separated)
    cert_fingerprint: str = ""
    cert_serial: int = 0


class NodeGroup(TaggableObject, kw_only=True):
    name: str
    alloc_policy: str = C.ALLOC_POLICY_PREFERRED
    ndparams: ParamDict = msgspec.field(default_factory=dict)
    diskparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    ipolicy: ParamDict = msgspec.field(default_factory=dict)
    networks: dict[str, ParamDict] = msgspec.field(default_factory=dict)


class Network(TaggableObject, kw_only=True):
    name: str
    network: str = ""
    gateway: str | None = None
    network6: str | None = None
    gateway6: str | None = None
    mac_prefix: str | None = None


def default_ipolicy() -> ParamDict:
    return {
        "minmax": [{"min": dict(C.ISPECS_MIN), "max": dict(C.ISPECS_MAX)}],
        "std": dict(C.ISPECS_STD),
        "disk-templates": list(C.DISK_TEMPLATES),
        "vcpu-ratio": C.IPOLICY_VCPU_RATIO,
        "spindle-ratio": C.IPOLICY_SPINDLE_RATIO,
    }


class Cluster(TaggableObject, kw_only=True):
    cluster_name: str
    master_node: str = ""
    master_ip: str = ""
    master_netdev: str = ""
    master_netmask: int = 32
    use_external_mip_script: bool = False
    enabled_hypervisors: list[str] = msgspec.field(default_factory=lambda: [C.HT_KVM])
    hvparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    os_hvp: dict[str, dict[str, ParamDict]] = msgspec.field(default_factory=dict)
    beparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    nicparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    ndparams: ParamDict = msgspec.field(default_factory=dict)
    diskparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    osparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    ipolicy: ParamDict = msgspec.field(default_factory=default_ipolicy)
    candidate_pool_size: int = C.DEFAULT_CANDIDATE_POOL_SIZE
    max_running_jobs: int = C.DEFAULT_MAX_RUNNING_JOBS
    max_tracked_jobs: int = C.DEFAULT_MAX_TRACKED_JOBS
    mac_prefix: str = C.DEFAULT_MAC_PREFIX
    volume_group_name: str | None = None
    reserved_lvs: list[str] = msgspec.field(default_factory=list)
    drbd_usermode_helper: str | None = None
    file_storage_dir: str = C.DEFAULT_FILE_STORAGE_DIR
    shared_file_storage_dir: str = C.DEFAULT_SHARED_FILE_STORAGE_DIR
    enabled_disk_templates: list[str] = msgspec.field(default_factory=list)
    default_iallocator: str = C.DEFAULT_IALLOCATOR
    default_iallocator_params: ParamDict = msgspec.field(default_factory=dict)
    maintain_node_health: bool = False
    uid_pool: list[Any] = msgspec.field(default_factory=list)
    primary_ip_family: int = 2
    prealloc_wipe_disks: bool = False
    hidden_os: list[str] = msgspec.field(default_factory=list)
    blacklisted_os: list[str] = msgspec.field(default_factory=list)
    # Ports handed out to instances (console) and DRBD; Ganeti's pool
    tcpudp_port_pool: list[int] = msgspec.field(default_factory=list)
    highest_used_port: int = C.FIRST_DRBD_PORT - 1
    # corral extension: automatic failover off dead nodes (opt-in)
    auto_failover: bool = False
    # corral: serial numbers of revoked node certificates (gnt-node remove)
    revoked_certs: list[int] = msgspec.field(default_factory=list)


class ConfigData(ConfigObject, kw_only=True):
    """The whole cluster configuration (``config.data``)."""

    version: int = C.CONFIG_VERSION
    cluster: Cluster
    nodes: dict[str, Node] = msgspec.field(default_factory=dict)
    nodegroups: dict[str, NodeGroup] = msgspec.field(default_factory=dict)
    instances: dict[str, Instance] = msgspec.field(default_factory=dict)
    networks: dict[str, Network] = msgspec.field(default_factory=dict)
    serial_no: int = 1
    ctime: float = 0.0
    mtime: float = 0.0


def fill_dict(defaults: ParamDict, custom: ParamDict) -> ParamDict:
    """Ganeti's FillDict: `custom` overrides `defaults`, neither is modified."""
    result = dict(defaults)
    result.update(custom)
    return result
