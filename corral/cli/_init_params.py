"""What ``gnt-cluster init`` hands to the bootstrap code.

``gnt-cluster init`` runs on the future master without a master daemon, so it
is not a job: the CLI parses and type-checks the options into `InitParams`
and calls ``corral.cli.bootstrap.init_cluster(params)``, which writes the
first configuration, creates the certificates and starts the daemons.

Every field has Ganeti's name and meaning (``lib/bootstrap.py`` InitCluster).
Parameter dictionaries are already *filled*: cluster defaults overlaid with
what the user typed, values converted to their types (sizes in MiB), so
bootstrap can store them unchanged. Hypervisor parameters are kept as typed
by the user per hypervisor (``{"kvm": {"kernel_path": ""}}``); bootstrap
fills them from the hypervisor driver's ``PARAMETERS`` table, which the CLI
layer does not load.
"""

from __future__ import annotations

from typing import Any

import msgspec

from corral import constants as C

ParamDict = dict[str, Any]


class InitParams(msgspec.Struct, kw_only=True, frozen=True):
    """Options of ``gnt-cluster init`` after parsing and validation."""

    #: the cluster's name (resolvable; its address becomes the master IP)
    cluster_name: str
    #: node-to-node replication address of the master (``-s``), None = primary
    secondary_ip: str | None = None
    #: interface that carries the master IP (``--master-netdev``)
    master_netdev: str = C.DEFAULT_BRIDGE
    #: prefix length of the master IP (``--master-netmask``), None = default
    master_netmask: int | None = None
    #: LVM volume group (``--vg-name``); None when no LVM template is enabled
    vg_name: str | None = None
    mac_prefix: str = C.DEFAULT_MAC_PREFIX
    file_storage_dir: str = C.DEFAULT_FILE_STORAGE_DIR
    shared_file_storage_dir: str = C.DEFAULT_SHARED_FILE_STORAGE_DIR
    enabled_hypervisors: list[str] = msgspec.field(default_factory=lambda: [C.HT_KVM])
    enabled_disk_templates: list[str] = msgspec.field(
        default_factory=lambda: list(C.DEFAULT_ENABLED_DISK_TEMPLATES)
    )
    #: user-given hypervisor parameters per hypervisor (not filled, see above)
    hvparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    #: filled backend parameters of the "default" group (sizes in MiB)
    beparams: ParamDict = msgspec.field(default_factory=lambda: dict(C.BEC_DEFAULTS))
    #: filled NIC parameters (``mode``, ``link``, ``vlan``)
    nicparams: ParamDict = msgspec.field(default_factory=dict)
    #: filled node parameters
    ndparams: ParamDict = msgspec.field(default_factory=lambda: dict(C.NDC_DEFAULTS))
    #: user-given disk parameters per disk template
    diskparams: dict[str, ParamDict] = msgspec.field(default_factory=dict)
    #: full instance policy (Ganeti's ipolicy dict)
    ipolicy: ParamDict = msgspec.field(default_factory=dict)
    candidate_pool_size: int = C.DEFAULT_CANDIDATE_POOL_SIZE
    max_running_jobs: int = C.DEFAULT_MAX_RUNNING_JOBS
    max_tracked_jobs: int = C.DEFAULT_MAX_TRACKED_JOBS
    default_iallocator: str = C.DEFAULT_IALLOCATOR
    default_iallocator_params: ParamDict = msgspec.field(default_factory=dict)
    drbd_helper: str | None = None
    maintain_node_health: bool = False
    prealloc_wipe_disks: bool = False
    use_external_mip_script: bool = False
    primary_ip_version: int = 4
    modify_etc_hosts: bool = True
    #: corral extension: automatic failover of instances off dead nodes
    auto_failover: bool = False
