"""Cluster-wide answers of the local API: QueryClusterInfo, config values, tags,
and the "cluster" query resource."""

from __future__ import annotations

import functools
import platform
from typing import Any, ClassVar

from corral import constants as C
from corral import objects
from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_base import (
    QFT_NUMBER,
    QFT_OTHER,
    QFT_TEXT,
    QFT_TIMESTAMP,
    Field,
    TableQueryResource,
)
from corral.config.store import ConfigStore
from corral.errors import ECODE_INVAL, OpPrereqError
from corral.paths import Paths


@functools.cache
def _architecture() -> list[str]:
    """Computed once: platform.architecture() runs `file` on the interpreter,
    which must not happen on masterd's event loop at every (RAPI) request."""
    bits = "64bits" if platform.architecture()[0] == "64bit" else "32bits"
    return [bits, platform.machine()]


def cluster_info(cfg: ConfigStore, paths: Paths) -> dict[str, Any]:
    """Ganeti's QueryClusterInfo result (what ``gnt-cluster info`` prints)."""
    cluster = cfg.cluster
    master = cfg.get_node(cluster.master_node)
    hypervisors = list(cluster.enabled_hypervisors)
    return {
        "software_version": C.RELEASE_VERSION,
        "ganeti_compat_version": C.GANETI_COMPAT_VERSION,
        "protocol_version": C.CONFIG_VERSION,
        "config_version": C.CONFIG_VERSION,
        "os_api_version": max(C.OS_API_VERSIONS),
        "export_version": 0,
        "vcs_version": C.RELEASE_VERSION,
        "architecture": list(_architecture()),
        "name": cluster.cluster_name,
        "master": master.name if master else cluster.master_node,
        "default_hypervisor": hypervisors[0] if hypervisors else None,
        "enabled_hypervisors": hypervisors,
        "hvparams": {hv: cluster.hvparams.get(hv, {}) for hv in hypervisors},
        "os_hvp": cluster.os_hvp,
        "beparams": cluster.beparams,
        "osparams": cluster.osparams,
        "ipolicy": cluster.ipolicy,
        "nicparams": cluster.nicparams,
        "ndparams": cluster.ndparams,
        "diskparams": cluster.diskparams,
        "candidate_pool_size": cluster.candidate_pool_size,
        "max_running_jobs": cluster.max_running_jobs,
        "max_tracked_jobs": cluster.max_tracked_jobs,
        "master_netdev": cluster.master_netdev,
        "master_netmask": cluster.master_netmask,
        "use_external_mip_script": cluster.use_external_mip_script,
        "volume_group_name": cluster.volume_group_name,
        "reserved_lvs": cluster.reserved_lvs,
        "drbd_usermode_helper": cluster.drbd_usermode_helper,
        "file_storage_dir": cluster.file_storage_dir,
        "shared_file_storage_dir": cluster.shared_file_storage_dir,
        "maintain_node_health": cluster.maintain_node_health,
        "ctime": cluster.ctime,
        "mtime": cluster.mtime,
        "uuid": cluster.uuid,
        "tags": list(cluster.tags),
        "uid_pool": cluster.uid_pool,
        "default_iallocator": cluster.default_iallocator,
        "default_iallocator_params": cluster.default_iallocator_params,
        "primary_ip_version": 6 if cluster.primary_ip_family == 10 else 4,
        "prealloc_wipe_disks": cluster.prealloc_wipe_disks,
        "hidden_os": cluster.hidden_os,
        "blacklisted_os": cluster.blacklisted_os,
        "enabled_disk_templates": cluster.enabled_disk_templates,
        "mac_prefix": cluster.mac_prefix,
        "master_ip": cluster.master_ip,
        "os_search_path": list(paths.os_search_path),
        "auto_failover": cluster.auto_failover,
        "enabled_user_shutdown": False,
    }


def config_values(
    cfg: ConfigStore, names: list[str], *, drained: bool, watcher_pause: float | None
) -> list[Any]:
    """Ganeti's QueryConfigValues."""
    cluster = cfg.cluster
    master = cfg.get_node(cluster.master_node)
    known: dict[str, Any] = {
        "cluster_name": cluster.cluster_name,
        "master_node": master.name if master else cluster.master_node,
        "drain_flag": drained,
        "watcher_pause": watcher_pause,
        "default_hypervisor": (
            cluster.enabled_hypervisors[0] if cluster.enabled_hypervisors else None
        ),
        "enabled_hypervisors": list(cluster.enabled_hypervisors),
        "modify_etc_hosts": False,
        "cluster_uuid": cluster.uuid,
    }
    out: list[Any] = []
    for name in names:
        if name not in known:
            raise OpPrereqError(f"Requested unknown config value '{name}'", ECODE_INVAL)
        out.append(known[name])
    return out


def object_tags(cfg: ConfigStore, kind: str, name: str | None) -> list[str]:
    """Ganeti's QueryTags: tags of the cluster or of one named object."""
    obj: objects.TaggableObject
    if kind == C.TAG_CLUSTER:
        obj = cfg.cluster
    elif kind == C.TAG_INSTANCE:
        obj = cfg.instances[cfg.expand_instance_name(str(name))[0]]
    elif kind == C.TAG_NODE:
        obj = cfg.nodes[cfg.expand_node_name(str(name))[0]]
    elif kind == C.TAG_NODEGROUP:
        obj = cfg.nodegroups[cfg.lookup_group(str(name))]
    elif kind == "network":
        obj = cfg.networks[cfg.lookup_network(str(name))]
    else:
        raise OpPrereqError(f"Invalid tag kind '{kind}'", ECODE_INVAL)
    return sorted(obj.tags)


def _cf(name: str, title: str, kind: str, doc: str, key: str | None = None) -> Field:
    attr = key or name
    return Field(
        name=name,
        title=title,
        kind=kind,
        doc=doc,
        getter=lambda info, _live: info.get(attr),
    )


class ClusterQueryResource(TableQueryResource):
    """The cluster as a one-row query resource (Ganeti's QR_CLUSTER)."""

    NAME = "cluster"
    DEFAULT_FIELDS = ("name",)
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _cf("name", "Name", QFT_TEXT, "Cluster name"),
        _cf("uuid", "UUID", QFT_TEXT, "Cluster UUID"),
        _cf("master_node", "Master", QFT_TEXT, "Master node name", "master"),
        _cf("master_ip", "MasterIP", QFT_TEXT, "Master IP address"),
        _cf("master_netdev", "MasterNetdev", QFT_TEXT, "Master network device"),
        _cf("mac_prefix", "MacPrefix", QFT_TEXT, "MAC address prefix"),
        _cf("candidate_pool_size", "CandidatePoolSize", QFT_NUMBER, "Master candidate pool size"),
        _cf("max_running_jobs", "MaxRunningJobs", QFT_NUMBER, "Maximal number of running jobs"),
        _cf("enabled_hypervisors", "Hypervisors", QFT_OTHER, "Enabled hypervisors"),
        _cf("enabled_disk_templates", "DiskTemplates", QFT_OTHER, "Enabled disk templates"),
        _cf("tags", "Tags", QFT_OTHER, "Tags"),
        _cf("ctime", "CTime", QFT_TIMESTAMP, "Creation timestamp"),
        _cf("mtime", "MTime", QFT_TIMESTAMP, "Modification timestamp"),
        _cf("software_version", "Version", QFT_TEXT, "Software version"),
    )

    def items(self, ctx: MasterContext, names: list[str] | None) -> list[Any]:
        return [cluster_info(ctx.cfg, ctx.paths)]
