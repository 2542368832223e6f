"""Names and defaults shared by every layer.

Values follow Ganeti 3.0 wherever Ganeti has one (ports, statuses, template and
parameter names), so scripts written for Ganeti read corral's output unchanged.
"""

from __future__ import annotations

from typing import Final

RELEASE_VERSION: Final = "0.1.0"
GANETI_COMPAT_VERSION: Final = "3.0.2"
CONFIG_VERSION: Final = 3000000
OS_API_VERSION: Final = 20
OS_API_VERSIONS: Final = (5, 10, 15, 20)
IALLOCATOR_VERSION: Final = 2

# Ports
NODED_PORT: Final = 1811
RAPI_PORT: Final = 5080
FIRST_DRBD_PORT: Final = 11000
LAST_DRBD_PORT: Final = 14999
VNC_BASE_PORT: Final = 5900

# Timeouts (seconds)
RPC_CONNECT_TIMEOUT: Final = 5.0

# Hypervisors
HT_FAKE: Final = "fake"
HT_KVM: Final = "kvm"
HYPER_TYPES: Final = (HT_FAKE, HT_KVM)

# Disk templates
DT_DISKLESS: Final = "diskless"
DT_FILE: Final = "file"
DT_SHARED_FILE: Final = "sharedfile"
DT_PLAIN: Final = "plain"
DT_DRBD8: Final = "drbd"
DISK_TEMPLATES: Final = (DT_DISKLESS, DT_FILE, DT_SHARED_FILE, DT_PLAIN, DT_DRBD8)
# Ganeti's order of preference when init enables defaults
DEFAULT_ENABLED_DISK_TEMPLATES: Final = (DT_DRBD8, DT_PLAIN)
DTS_INT_MIRROR: Final = frozenset({DT_DRBD8})
DTS_EXT_MIRROR: Final = frozenset({DT_DISKLESS, DT_SHARED_FILE})
DTS_MIRRORED: Final = DTS_INT_MIRROR | DTS_EXT_MIRROR
DTS_FILEBASED: Final = frozenset({DT_FILE, DT_SHARED_FILE})
DTS_LVM: Final = frozenset({DT_PLAIN, DT_DRBD8})

# Disk (logical device) types, Ganeti's `dev_type`
LD_LV: Final = "plain"
LD_DRBD8: Final = "drbd"
LD_FILE: Final = "file"
LD_SHARED_FILE: Final = "sharedfile"
DRBD_META_SIZE: Final = 128  # MiB
DRBD_SECRET_LEN: Final = 40  # hex chars, like Ganeti's sha1 secret
DISK_RDWR: Final = "rw"
DISK_RDONLY: Final = "ro"

# NIC modes and parameters
NIC_MODE_BRIDGED: Final = "bridged"
NIC_MODE_ROUTED: Final = "routed"
NIC_MODE_OVS: Final = "openvswitch"
NIC_MODES: Final = (NIC_MODE_BRIDGED, NIC_MODE_ROUTED, NIC_MODE_OVS)
NIC_MODE: Final = "mode"
NIC_LINK: Final = "link"
NIC_VLAN: Final = "vlan"

# Backend parameters
BE_MAXMEM: Final = "maxmem"
BE_MINMEM: Final = "minmem"
BE_MEMORY: Final = "memory"
BE_VCPUS: Final = "vcpus"
BE_AUTO_BALANCE: Final = "auto_balance"
BE_ALWAYS_FAILOVER: Final = "always_failover"
BE_SPINDLE_USE: Final = "spindle_use"
BEC_DEFAULTS: Final[dict[str, object]] = {
    BE_ALWAYS_FAILOVER: False,
    BE_AUTO_BALANCE: True,
    BE_MAXMEM: 128,
    BE_MINMEM: 128,
    BE_SPINDLE_USE: 1,
    BE_VCPUS: 1,
}
BES_PARAMETER_TYPES: Final[dict[str, str]] = {
    BE_ALWAYS_FAILOVER: "bool",
    BE_AUTO_BALANCE: "bool",
    BE_MAXMEM: "size",
    BE_MINMEM: "size",
    BE_MEMORY: "size",
    BE_SPINDLE_USE: "int",
    BE_VCPUS: "int",
}

# --- out-of-band management (Ganeti's OOB protocol: `oob_program COMMAND NODE`) ---
OOB_POWER_ON: Final = "power-on"
OOB_POWER_OFF: Final = "power-off"
OOB_POWER_CYCLE: Final = "power-cycle"
OOB_POWER_STATUS: Final = "power-status"
OOB_HEALTH: Final = "health"
OOB_COMMANDS: Final = frozenset(
    {OOB_POWER_ON, OOB_POWER_OFF, OOB_POWER_CYCLE, OOB_POWER_STATUS, OOB_HEALTH}
)
OOB_POWER_STATUS_POWERED: Final = "powered"
OOB_STATUSES: Final = frozenset({"OK", "WARNING", "CRITICAL", "UNKNOWN"})
OOB_TIMEOUT: Final = 60
OOB_POWER_DELAY: Final = 2.0
# result status of one entry of a query/OOB result (Ganeti's RS_*)
RS_NORMAL: Final = 0
RS_UNKNOWN: Final = 1
RS_NODATA: Final = 2
RS_UNAVAIL: Final = 3
RS_OFFLINE: Final = 4

NDC_DEFAULTS: Final[dict[str, object]] = {
    "cpu_speed": 1.0,
    "exclusive_storage": False,
    "oob_program": "",
    "ovs": False,
    "ovs_link": "",
    "ovs_name": "switch1",
    "spindle_count": 1,
    "ssh_port": 22,
}

# Instance admin states
ADMINST_UP: Final = "up"
ADMINST_DOWN: Final = "down"
ADMINST_OFFLINE: Final = "offline"
ADMINST_SOURCE_ADMIN: Final = "admin"
ADMINST_SOURCE_USER: Final = "user"

# Instance runtime status strings (gnt-instance list "Status")
INSTST_RUNNING: Final = "running"
INSTST_ADMINDOWN: Final = "ADMIN_down"
INSTST_ADMINOFFLINE: Final = "ADMIN_offline"
INSTST_ERRORUP: Final = "ERROR_up"
INSTST_ERRORDOWN: Final = "ERROR_down"
INSTST_WRONGNODE: Final = "ERROR_wrongnode"
INSTST_NODEOFFLINE: Final = "ERROR_nodeoffline"
INSTST_NODEDOWN: Final = "ERROR_nodedown"
INSTST_USERDOWN: Final = "USER_down"

# Job and opcode statuses
JOB_STATUS_QUEUED: Final = "queued"
JOB_STATUS_WAITING: Final = "waiting"
JOB_STATUS_CANCELING: Final = "canceling"
JOB_STATUS_RUNNING: Final = "running"
JOB_STATUS_CANCELED: Final = "canceled"
JOB_STATUS_SUCCESS: Final = "success"
JOB_STATUS_ERROR: Final = "error"
JOBS_FINALIZED: Final = frozenset({JOB_STATUS_CANCELED, JOB_STATUS_SUCCESS, JOB_STATUS_ERROR})
JOB_STATUS_ALL: Final = (
    JOB_STATUS_QUEUED,
    JOB_STATUS_WAITING,
    JOB_STATUS_CANCELING,
    JOB_STATUS_RUNNING,
    JOB_STATUS_CANCELED,
    JOB_STATUS_SUCCESS,
    JOB_STATUS_ERROR,
)
OP_PRIO_DEFAULT: Final = 0

# Job log message types (Ganeti's ELOG_*)
ELOG_MESSAGE: Final = "message"
ELOG_REMOTE_IMPORT: Final = "remote-import"
ELOG_JQUEUE_TEST: Final = "jqueue-test"

# Migration
HT_MIGRATION_LIVE: Final = "live"
HT_MIGRATION_NONLIVE: Final = "non-live"

# Node evacuation modes
NODE_EVAC_PRI: Final = "primary-only"
NODE_EVAC_SEC: Final = "secondary-only"
NODE_EVAC_ALL: Final = "all"

# Replace-disks modes
REPLACE_DISK_PRI: Final = "replace_on_primary"
REPLACE_DISK_SEC: Final = "replace_on_secondary"
REPLACE_DISK_CHG: Final = "replace_new_secondary"
REPLACE_DISK_AUTO: Final = "replace_auto"

# Allocation policy of node groups
ALLOC_POLICY_PREFERRED: Final = "preferred"
ALLOC_POLICY_LAST_RESORT: Final = "last_resort"
ALLOC_POLICY_UNALLOCABLE: Final = "unallocable"

DEFAULT_GROUP_NAME: Final = "default"
DEFAULT_IALLOCATOR: Final = "hail"
DEFAULT_MAC_PREFIX: Final = "aa:00:00"
DEFAULT_CANDIDATE_POOL_SIZE: Final = 10
DEFAULT_MAX_RUNNING_JOBS: Final = 20
DEFAULT_MAX_TRACKED_JOBS: Final = 25
DEFAULT_BRIDGE: Final = "xen-br0"
DEFAULT_FILE_STORAGE_DIR: Final = "/srv/ganeti/file-storage"
DEFAULT_SHARED_FILE_STORAGE_DIR: Final = "/srv/ganeti/shared-file-storage"
DEFAULT_VG: Final = "xenvg"

# Tag kinds
TAG_CLUSTER: Final = "cluster"
TAG_NODEGROUP: Final = "nodegroup"
TAG_NODE: Final = "node"
TAG_INSTANCE: Final = "instance"
MAX_TAG_LEN: Final = 128
MAX_TAGS_PER_OBJ: Final = 4096

# CLI exit codes (Ganeti's EXIT_*)
EXIT_SUCCESS: Final = 0
EXIT_FAILURE: Final = 1
EXIT_NOTCLUSTER: Final = 5
EXIT_NOTMASTER: Final = 11
EXIT_NODESETUP: Final = 12
EXIT_CONFIRMATION: Final = 13
EXIT_UNKNOWN_FIELD: Final = 14

# Instance policy defaults (Ganeti 3.0)
ISPECS_MIN: Final[dict[str, int]] = {
    "cpu-count": 1,
    "disk-count": 1,
    "disk-size": 1024,
    "memory-size": 128,
    "nic-count": 1,
    "spindle-use": 1,
}
ISPECS_MAX: Final[dict[str, int]] = {
    "cpu-count": 8,
    "disk-count": 16,
    "disk-size": 1048576,
    "memory-size": 32768,
    "nic-count": 8,
    "spindle-use": 12,
}
ISPECS_STD: Final[dict[str, int]] = {
    "cpu-count": 1,
    "disk-count": 1,
    "disk-size": 1024,
    "memory-size": 128,
    "nic-count": 1,
    "spindle-use": 1,
}
IPOLICY_VCPU_RATIO: Final = 4.0
IPOLICY_SPINDLE_RATIO: Final = 32.0
