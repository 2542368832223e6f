"""``gnt-cluster info`` and ``gnt-cluster version``: QueryClusterInfo -> text.

The input is the ``QueryClusterInfo`` dict with Ganeti's keys (the shape of
RAPI ``/2/info``, see reference/ganeti/rapi/client_info.json): ``name, uuid,
ctime, mtime, master, architecture [bits, machine], tags,
default_hypervisor, enabled_hypervisors, hvparams {hv: {...}}, os_hvp,
osparams, hidden_os, blacklisted_os, candidate_pool_size,
max_running_jobs, max_tracked_jobs, mac_prefix, master_netdev,
master_netmask, use_external_mip_script, volume_group_name, reserved_lvs,
drbd_usermode_helper, file_storage_dir, shared_file_storage_dir,
gluster_storage_dir, maintain_node_health, uid_pool, default_iallocator,
default_iallocator_params, primary_ip_version, prealloc_wipe_disks,
enabled_disk_templates, install_image, instance_communication_network,
zeroing_image, compression_tools, enabled_user_shutdown, modify_ssh_setup,
ssh_key_type, ssh_key_bits, ndparams, beparams {"default": {...}},
nicparams {"default": {...}}, diskparams {template: {...}}, ipolicy,
enabled_data_collectors, data_collector_interval`` (microseconds), and
for ``version``: ``software_version, protocol_version, config_version,
os_api_version, export_version, vcs_version``.

Keys corral does not have are printed with Ganeti's value for "not set";
``auto_failover`` (corral's extension) is printed when present.
"""

from __future__ import annotations

from typing import Any

from corral.cli._generic_info import (
    InfoList,
    comma_join,
    format_grouped_params,
    format_policy_info,
    format_time,
)
from corral.paths import DEFAULT_PATHS

ES_SEARCH_PATH = (
    "/srv/ganeti/extstorage",
    "/usr/local/lib/ganeti/extstorage",
    "/usr/lib/ganeti/extstorage",
    "/usr/share/ganeti/extstorage",
)


def _uid_pool(pool: list[Any]) -> str:
    parts = []
    for entry in pool or []:
        if isinstance(entry, list | tuple) and len(entry) == 2:
            low, high = entry
            parts.append(str(low) if low == high else f"{low}-{high}")
        else:
            parts.append(str(entry))
    return ", ".join(parts)


def _data_collectors(info: dict[str, Any]) -> dict[str, Any]:
    enabled = info.get("enabled_data_collectors") or {}
    interval = info.get("data_collector_interval") or {}
    return {
        name: {"active": active, "interval": f"{interval.get(name, 0) / 1e6:.3f}s"}
        for name, active in enabled.items()
    }


def format_cluster_info(info: dict[str, Any]) -> InfoList:
    """The PrintGenericInfo tree of ``gnt-cluster info``."""
    get = info.get
    tags = comma_join(sorted(get("tags") or [])) or "(none)"
    reserved = comma_join(get("reserved_lvs") or []) or "(none)"
    enabled_hv = list(get("enabled_hypervisors") or [])
    hvparams = {hv: val for hv, val in (get("hvparams") or {}).items() if hv in enabled_hv}
    arch = get("architecture") or ["?", "?"]
    params: InfoList = [
        ("candidate pool size", get("candidate_pool_size")),
        ("maximal number of jobs running simultaneously", get("max_running_jobs")),
        ("maximal number of jobs simultaneously tracked by the scheduler", get("max_tracked_jobs")),
        ("mac prefix", get("mac_prefix")),
        ("master netdev", get("master_netdev")),
        ("master netmask", get("master_netmask")),
        ("use external master IP address setup script", get("use_external_mip_script", False)),
        ("lvm volume group", get("volume_group_name")),
        ("lvm reserved volumes", reserved),
        ("drbd usermode helper", get("drbd_usermode_helper")),
        ("file storage path", get("file_storage_dir")),
        ("shared file storage path", get("shared_file_storage_dir")),
        ("gluster storage path", get("gluster_storage_dir", "/var/run/ganeti/gluster")),
        ("maintenance of node health", get("maintain_node_health", False)),
        ("uid pool", _uid_pool(get("uid_pool") or [])),
        ("default instance allocator", get("default_iallocator")),
        ("default instance allocator parameters", get("default_iallocator_params") or {}),
        ("primary ip version", get("primary_ip_version", 4)),
        ("preallocation wipe disks", get("prealloc_wipe_disks", False)),
        ("OS search path", comma_join(DEFAULT_PATHS.os_search_path)),
        ("ExtStorage Providers search path", comma_join(ES_SEARCH_PATH)),
        ("enabled disk templates", comma_join(get("enabled_disk_templates") or [])),
        ("install image", get("install_image", "")),
        ("instance communication network", get("instance_communication_network", "")),
        ("zeroing image", get("zeroing_image", "")),
        ("compression tools", list(get("compression_tools") or [])),
        ("enabled user shutdown", get("enabled_user_shutdown", False)),
        ("modify ssh setup", get("modify_ssh_setup", False)),
        ("ssh_key_type", get("ssh_key_type", "rsa")),
        ("ssh_key_bits", get("ssh_key_bits", 2048)),
    ]
    if "auto_failover" in info:
        params.append(("automatic failover of instances", info["auto_failover"]))
    return [
        ("Cluster name", get("name")),
        ("Cluster UUID", get("uuid")),
        *(
            [("Cluster CA fingerprint", info["ca_fingerprint"])]
            if info.get("ca_fingerprint")
            else []
        ),
        ("Creation time", format_time(get("ctime"))),
        ("Modification time", format_time(get("mtime"))),
        ("Master node", get("master")),
        ("Architecture (this node)", f"{arch[0]} ({arch[1]})"),
        ("Tags", tags),
        ("Default hypervisor", get("default_hypervisor")),
        ("Enabled hypervisors", comma_join(enabled_hv)),
        ("Hypervisor parameters", format_grouped_params(hvparams)),
        ("OS-specific hypervisor parameters", format_grouped_params(get("os_hvp") or {})),
        ("OS parameters", format_grouped_params(get("osparams") or {})),
        ("Hidden OSes", comma_join(get("hidden_os") or [])),
        ("Blacklisted OSes", comma_join(get("blacklisted_os") or [])),
        ("Cluster parameters", params),
        ("Default node parameters", format_grouped_params(get("ndparams") or {})),
        ("Default instance parameters", format_grouped_params(get("beparams") or {})),
        ("Default nic parameters", format_grouped_params(get("nicparams") or {})),
        ("Default disk parameters", format_grouped_params(get("diskparams") or {})),
        (
            "Instance policy - limits for instances",
            format_policy_info(get("ipolicy") or {}, None, True),
        ),
        ("Data collectors", _data_collectors(info)),
    ]


def format_version(info: dict[str, Any]) -> list[str]:
    """``gnt-cluster version`` lines."""
    return [
        f"Software version: {info.get('software_version')}",
        f"Internode protocol: {info.get('protocol_version')}",
        f"Configuration format: {info.get('config_version')}",
        f"OS api version: {info.get('os_api_version')}",
        f"Export interface: {info.get('export_version')}",
        f"VCS version: {info.get('vcs_version')}",
    ]
