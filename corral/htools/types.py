"""Value types of the htools model: instance specs, policies, groups, instances.

These mirror Ganeti 3.0's htools types (``Ganeti/HTools/Types.hs``,
``Instance.hs``, ``Group.hs``) closely enough that a cluster read from a Ganeti
text file or iallocator request behaves exactly as in Ganeti's tools. Nodes are
not here: their mutable state lives in arrays (see `corral.htools.cluster`) so
that candidate placements can be scored for many nodes at once.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum

from corral.errors import GenericError


class HtoolsError(GenericError):
    """Bad input or an impossible request in the htools layer (one-line message)."""


class FailMode(IntEnum):
    """Why a placement was refused; order and names are Ganeti's (``FailMode``)."""

    OK = 0
    FailMem = 1
    FailDisk = 2
    FailCPU = 3
    FailN1 = 4
    FailTags = 5
    FailMig = 6
    FailDiskCount = 7
    FailSpindles = 8
    FailInternal = 9


FAIL_NAMES = [m.name for m in FailMode]

# Instance run states (Ganeti `InstanceStatus`).
INSTANCE_STATUSES = (
    "running",
    "ADMIN_down",
    "ADMIN_offline",
    "ERROR_up",
    "ERROR_down",
    "ERROR_nodedown",
    "ERROR_nodeoffline",
    "ERROR_wrongnode",
    "USER_down",
)
# States in which the instance's memory counts on its primary (`usesMemory`).
MEMORY_STATES = frozenset(
    {"running", "ERROR_up", "ERROR_nodedown", "ERROR_nodeoffline", "ERROR_wrongnode"}
)
DISK_TEMPLATES = (
    "diskless",
    "file",
    "sharedfile",
    "plain",
    "blockdev",
    "drbd",
    "rbd",
    "ext",
    "gluster",
)
LOCAL_STORAGE_TEMPLATES = frozenset({"plain", "drbd"})
INTERNAL_MIRROR = frozenset({"drbd"})
EXTERNAL_MIRROR = frozenset({"sharedfile", "gluster", "blockdev", "rbd", "ext"})
MOVABLE_TEMPLATES = INTERNAL_MIRROR | EXTERNAL_MIRROR
ALLOC_POLICIES = ("preferred", "last_resort", "unallocable")


@dataclasses.dataclass(frozen=True)
class ISpec:
    """One instance spec: the six numbers of an ipolicy min/max/std entry."""

    memory: int
    cpu: int
    disk: int
    disk_count: int
    nic_count: int
    spindle_use: int

    def as_text(self) -> str:
        return ",".join(str(v) for v in dataclasses.astuple(self))

    def as_json(self) -> dict[str, int]:
        return {
            "memory-size": self.memory,
            "cpu-count": self.cpu,
            "disk-size": self.disk,
            "disk-count": self.disk_count,
            "nic-count": self.nic_count,
            "spindle-use": self.spindle_use,
        }


@dataclasses.dataclass(frozen=True)
class IPolicy:
    """Instance policy: allowed min/max ranges, the standard spec, templates, ratios."""

    minmax: tuple[tuple[ISpec, ISpec], ...]
    std: ISpec
    disk_templates: tuple[str, ...]
    vcpu_ratio: float
    spindle_ratio: float


DEFAULT_MIN = ISpec(128, 1, 1024, 1, 1, 1)
DEFAULT_MAX = ISpec(32768, 8, 1024 * 1024, 16, 8, 12)
DEFAULT_IPOLICY = IPolicy(
    minmax=((DEFAULT_MIN, DEFAULT_MAX),),
    std=DEFAULT_MIN,
    disk_templates=DISK_TEMPLATES,
    vcpu_ratio=4.0,
    spindle_ratio=32.0,
)


@dataclasses.dataclass
class Group:
    """A node group; nodes and instances refer to it by index."""

    name: str
    uuid: str
    alloc_policy: str = "preferred"
    tags: list[str] = dataclasses.field(default_factory=list)
    networks: list[str] = dataclasses.field(default_factory=list)
    ipolicy: IPolicy = DEFAULT_IPOLICY


@dataclasses.dataclass
class Instance:
    """An instance as htools sees it (sizes in MiB; ``dsk`` = space on each node)."""

    name: str
    mem: int
    dsk: int
    vcpus: int
    status: str = "running"
    auto_balance: bool = True
    pnode: int = -1
    snode: int = -1
    disk_template: str = "drbd"
    tags: list[str] = dataclasses.field(default_factory=list)
    spindle_use: int = 1
    disks: list[tuple[int, int | None]] = dataclasses.field(default_factory=list)
    forthcoming: bool = False
    nics: int = 1
    excl_tags: list[str] = dataclasses.field(default_factory=list)
    movable: bool = True
    util: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    location_score: int = 0
    desired_locations: frozenset[str] = frozenset()
    idx: int = -1

    # -- predicates of Ganeti's Instance.hs -------------------------------------
    @property
    def uses_memory(self) -> bool:
        return self.status in MEMORY_STATES

    @property
    def not_offline(self) -> bool:
        return self.status != "ADMIN_offline"

    @property
    def uses_sec_mem(self) -> bool:
        return self.not_offline and self.auto_balance

    @property
    def uses_local_storage(self) -> bool:
        return self.disk_template in LOCAL_STORAGE_TEMPLATES

    @property
    def has_secondary(self) -> bool:
        return self.disk_template in INTERNAL_MIRROR

    @property
    def total_spindles(self) -> int | None:
        total = 0
        for _, sp in self.disks:
            if sp is None:
                return None
            total += sp
        return total


def template_movable(template: str) -> bool:
    return template in MOVABLE_TEMPLATES
