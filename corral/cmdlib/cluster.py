"""Cluster-wide LUs: post-init, query (``gnt-cluster info`` / RAPI ``/2/info``),
master IP, redist-conf, destroy and modify (`LUClusterSetParams`). Verify is in
`corral.cmdlib.cluster_verify`, tags in `corral.cmdlib.tags`.

Public helpers other layers may call:

* `cluster_query_info(cfg, paths)` -> the QueryClusterInfo dict (Ganeti's keys,
  the shape of reference/ganeti/rapi/client_info.json);
* `ssconf_values(cfg)` -> ``{key: text}`` of Ganeti's ssconf keys corral can
  fill (what every node keeps in ``<data_dir>/ssconf_<key>``);
* `write_ssconf(ctx, node_uuids=None)` -> push them to nodes (failures are
  returned, never raised: an unreachable node must not fail a job).
"""

from __future__ import annotations

import asyncio
import platform
import re
from typing import TYPE_CHECKING, Any, Final

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib import common
from corral.cmdlib.base import (
    ALL_SET,
    HTYPE_CLUSTER,
    LEVEL_INSTANCE,
    LEVEL_NODE,
    LEVEL_NODEGROUP,
    LogicalUnit,
    MasterContext,
    NoHooksLU,
)
from corral.cmdlib.params import check_beparams, check_hvparams, fill_beparams
from corral.cmdlib.registry import lu_for
from corral.config.store import ConfigStore
from corral.errors import ECODE_INVAL, ECODE_STATE, OpPrereqError
from corral.hypervisor import get_hypervisor_class, hypervisor_names
from corral.hypervisor.params import convert_params
from corral.paths import Paths

if TYPE_CHECKING:
    from corral.rpc.client import RpcResult

# Ganeti's DISK_DT_DEFAULTS (3.0), the per-template disk parameters shown by
# ``gnt-cluster info`` and accepted by ``gnt-cluster modify -D``.
DISK_DT_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "blockdev": {},
    C.DT_DISKLESS: {},
    C.DT_DRBD8: {
        "c-delay-target": 1,
        "c-fill-target": 0,
        "c-max-rate": 61440,
        "c-min-rate": 4096,
        "c-plan-ahead": 20,
        "data-stripes": 1,
        "disk-barriers": "n",
        "disk-custom": "",
        "dynamic-resync": False,
        "meta-barriers": False,
        "meta-stripes": 1,
        "metavg": C.DEFAULT_VG,
        "net-custom": "",
        "protocol": "C",
        "resync-rate": 61440,
    },
    "ext": {"access": "kernelspace"},
    C.DT_FILE: {},
    "gluster": {"access": "kernelspace", "host": "127.0.0.1", "port": 24007, "volume": "gv0"},
    C.DT_PLAIN: {"stripes": 1},
    "rbd": {"access": "kernelspace", "pool": "rbd"},
    C.DT_SHARED_FILE: {},
}
COMPRESSION_TOOLS: Final = ("gzip", "gzip-fast", "gzip-slow")
GLUSTER_STORAGE_DIR: Final = "/var/run/ganeti/gluster"


# -- query ------------------------------------------------------------------------


def _architecture() -> list[str]:
    bits = "64bits" if platform.architecture()[0] == "64bit" else "32bits"
    return [bits, platform.machine()]


def filled_hvparams(cluster: objects.Cluster) -> dict[str, dict[str, Any]]:
    """Every known hypervisor's defaults overlaid with the cluster's values."""
    result: dict[str, dict[str, Any]] = {}
    for name in sorted(set(hypervisor_names()) | set(cluster.hvparams)):
        try:
            defaults = get_hypervisor_class(name).defaults()
        except Exception:  # unknown hypervisor left in an old config
            defaults = {}
        result[name] = objects.fill_dict(defaults, cluster.hvparams.get(name, {}))
    return result


def filled_diskparams(cluster: objects.Cluster) -> dict[str, dict[str, Any]]:
    result = {dt: dict(values) for dt, values in DISK_DT_DEFAULTS.items()}
    for dt, values in cluster.diskparams.items():
        result[dt] = objects.fill_dict(result.get(dt, {}), values)
    return result


def filled_nicparams(cluster: objects.Cluster) -> dict[str, Any]:
    base = {C.NIC_MODE: C.NIC_MODE_BRIDGED, C.NIC_LINK: C.DEFAULT_BRIDGE, C.NIC_VLAN: ""}
    return objects.fill_dict(base, cluster.nicparams.get("default", {}))


def _ca_fingerprint(paths: Paths) -> str | None:
    from corral.node.security import fingerprint

    try:
        with open(paths.ca_cert) as fh:
            return fingerprint(fh.read())
    except (OSError, ValueError):
        return None


def cluster_query_info(cfg: ConfigStore, paths: Paths) -> dict[str, Any]:
    """Ganeti's QueryClusterInfo: what ``gnt-cluster info`` and RAPI /2/info show.

    Parameters are *filled* (defaults + cluster values), as Ganeti shows them;
    keys for features corral does not have carry Ganeti's "unset" value.
    """
    cluster = cfg.cluster
    master = cfg.get_node(cluster.master_node)
    hypervisors = list(cluster.enabled_hypervisors)
    beparams = objects.fill_dict(dict(C.BEC_DEFAULTS), cluster.beparams.get("default", {}))
    return {
        "software_version": C.RELEASE_VERSION,
        "ganeti_compat_version": C.GANETI_COMPAT_VERSION,
        "protocol_version": C.CONFIG_VERSION,
        "config_version": C.CONFIG_VERSION,
        "os_api_version": max(C.OS_API_VERSIONS),
        "export_version": 0,
        "vcs_version": f"(corral) version {C.RELEASE_VERSION}",
        "architecture": _architecture(),
        "name": cluster.cluster_name,
        "master": master.name if master else cluster.master_node,
        "master_ip": cluster.master_ip,
        "default_hypervisor": hypervisors[0] if hypervisors else None,
        "enabled_hypervisors": hypervisors,
        "hvparams": filled_hvparams(cluster),
        "os_hvp": {os: dict(hvs) for os, hvs in cluster.os_hvp.items()},
        "beparams": {"default": beparams},
        "osparams": {os: dict(p) for os, p in cluster.osparams.items()},
        "ipolicy": objects.fill_dict(objects.default_ipolicy(), cluster.ipolicy),
        "nicparams": {"default": filled_nicparams(cluster)},
        "ndparams": objects.fill_dict(dict(C.NDC_DEFAULTS), cluster.ndparams),
        "diskparams": filled_diskparams(cluster),
        "candidate_pool_size": cluster.candidate_pool_size,
        "max_running_jobs": cluster.max_running_jobs,
        "max_tracked_jobs": cluster.max_tracked_jobs,
        "mac_prefix": cluster.mac_prefix,
        "master_netdev": cluster.master_netdev,
        "master_netmask": cluster.master_netmask,
        "use_external_mip_script": cluster.use_external_mip_script,
        "volume_group_name": cluster.volume_group_name,
        "vg_name": cluster.volume_group_name,
        "reserved_lvs": list(cluster.reserved_lvs),
        "drbd_usermode_helper": cluster.drbd_usermode_helper,
        "drbd_helper": cluster.drbd_usermode_helper,
        "file_storage_dir": cluster.file_storage_dir,
        "shared_file_storage_dir": cluster.shared_file_storage_dir,
        "gluster_storage_dir": GLUSTER_STORAGE_DIR,
        "maintain_node_health": cluster.maintain_node_health,
        "ctime": cluster.ctime,
        "mtime": cluster.mtime,
        "uuid": cluster.uuid,
        "tags": sorted(cluster.tags),
        "uid_pool": list(cluster.uid_pool),
        "default_iallocator": cluster.default_iallocator,
        "default_iallocator_params": dict(cluster.default_iallocator_params),
        "primary_ip_version": 6 if cluster.primary_ip_family == 10 else 4,
        "prealloc_wipe_disks": cluster.prealloc_wipe_disks,
        "hidden_os": list(cluster.hidden_os),
        "blacklisted_os": list(cluster.blacklisted_os),
        "enabled_disk_templates": list(cluster.enabled_disk_templates),
        "install_image": "",
        "instance_communication_network": "",
        "zeroing_image": "",
        "compression_tools": list(COMPRESSION_TOOLS),
        "enabled_user_shutdown": False,
        "modify_ssh_setup": False,
        "ssh_key_type": "rsa",
        "ssh_key_bits": 2048,
        "enabled_data_collectors": {},
        "data_collector_interval": {},
        "os_search_path": list(paths.os_search_path),
        "auto_failover": cluster.auto_failover,
        # corral: what a node's admin lists in /etc/corral/trusted-ca to let
        # this cluster join the node without a join token
        "ca_fingerprint": _ca_fingerprint(paths),
    }


@lu_for(opcodes.OpClusterQuery)
class LUClusterQuery(NoHooksLU):
    """Return `cluster_query_info`; reads the config only, takes no locks."""

    REQ_BGL = False

    async def exec(self) -> Any:
        return cluster_query_info(self.cfg, self.ctx.paths)


# -- ssconf -----------------------------------------------------------------------


def _lines(values: list[str]) -> str:
    return "\n".join(values)


def ssconf_values(cfg: ConfigStore) -> dict[str, str]:
    """Ganeti's ssconf keys corral can fill, formatted as Ganeti writes them."""
    cluster = cfg.cluster
    nodes = cfg.all_nodes()
    master = cfg.get_node(cluster.master_node)
    candidates = [n for n in nodes if n.master_candidate]
    values: dict[str, str] = {
        "cluster_name": cluster.cluster_name,
        "cluster_tags": _lines(sorted(cluster.tags)),
        "master_node": master.name if master else "",
        "master_ip": cluster.master_ip,
        "master_netdev": cluster.master_netdev,
        "master_netmask": str(cluster.master_netmask),
        "node_list": _lines([n.name for n in nodes]),
        "node_primary_ips": _lines([f"{n.name} {n.primary_ip}" for n in nodes]),
        "node_secondary_ips": _lines([f"{n.name} {n.secondary_ip or n.primary_ip}" for n in nodes]),
        "node_vm_capable": _lines([f"{n.name}={n.vm_capable}" for n in nodes]),
        "online_nodes": _lines([n.name for n in nodes if not n.offline]),
        "offline_nodes": _lines([n.name for n in nodes if n.offline]),
        "master_candidates": _lines([n.name for n in candidates]),
        "master_candidates_ips": _lines([n.primary_ip for n in candidates]),
        "instance_list": _lines([i.name for i in cfg.all_instances()]),
        "nodegroups": _lines([f"{g.uuid} {g.name}" for g in cfg.all_groups()]),
        "networks": _lines(
            [f"{n.uuid} {n.name}" for n in sorted(cfg.networks.values(), key=lambda n: n.name)]
        ),
        "release_version": C.RELEASE_VERSION,
        "hypervisor_list": _lines(list(cluster.enabled_hypervisors)),
        "enabled_disk_templates": _lines(list(cluster.enabled_disk_templates)),
        "file_storage_dir": cluster.file_storage_dir,
        "shared_file_storage_dir": cluster.shared_file_storage_dir,
        "gluster_storage_dir": GLUSTER_STORAGE_DIR,
        "primary_ip_family": str(cluster.primary_ip_family),
        "maintain_node_health": str(cluster.maintain_node_health),
        "uid_pool": "",
        "enabled_user_shutdown": "False",
    }
    for hv, params in filled_hvparams(cluster).items():
        if hv in cluster.enabled_hypervisors:
            values[f"hvparams_{hv}"] = _lines([f"{k}={v}" for k, v in sorted(params.items())])
    return values


async def write_ssconf(ctx: MasterContext, node_uuids: list[str] | None = None) -> dict[str, str]:
    """Write the ssconf files on the given (default: all online) nodes, in parallel.

    Returns ``{node name: error}`` for the nodes that failed.
    """
    uuids = node_uuids if node_uuids is not None else [n.uuid for n in ctx.cfg.all_nodes()]
    targets = [t for t in ctx.node_targets(uuids) if not t.offline]
    if not targets:
        return {}
    values = ssconf_values(ctx.cfg)
    results = await ctx.rpc.call_multi("write_ssconf_files", targets, values)
    return {name: str(res.fail_msg) for name, res in results.items() if res.failed}


# -- master IP --------------------------------------------------------------------


async def _master_ip_call(ctx: MasterContext, call: str) -> RpcResult:
    cluster = ctx.cfg.cluster
    target = ctx.node_target(cluster.master_node)
    return await ctx.rpc.call(
        call, target, cluster.master_ip, int(cluster.master_netmask), cluster.master_netdev
    )


def _master_ip_configured(cluster: objects.Cluster) -> bool:
    return bool(cluster.master_ip and cluster.master_netdev)


class _ClusterLU(LogicalUnit):
    HTYPE = HTYPE_CLUSTER

    def build_hooks_env(self) -> dict[str, Any]:
        return {"OP_TARGET": self.cfg.cluster.cluster_name}

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        return [], [self.cfg.cluster.master_node]


@lu_for(opcodes.OpClusterPostInit)
class LUClusterPostInit(_ClusterLU):
    """First job of a new cluster: master IP up, ssconf on every node."""

    HPATH = "cluster-init"

    async def exec(self) -> Any:
        cluster = self.cfg.cluster
        if _master_ip_configured(cluster):
            res = await _master_ip_call(self.ctx, "master_ip_activate")
            if res.failed:
                self.log_warning(f"Could not activate master IP: {res.fail_msg}")
        for node, msg in sorted((await write_ssconf(self.ctx)).items()):
            self.log_warning(f"Could not update the ssconf files on node {node}: {msg}")
        return True


@lu_for(opcodes.OpClusterActivateMasterIp)
class LUClusterActivateMasterIp(NoHooksLU):
    async def check_prereq(self) -> None:
        if not _master_ip_configured(self.cfg.cluster):
            raise OpPrereqError("The cluster has no master IP configured", ECODE_INVAL)

    async def exec(self) -> Any:
        res = await _master_ip_call(self.ctx, "master_ip_activate")
        res.raise_on_fail("Could not activate the master IP")
        return None


@lu_for(opcodes.OpClusterDeactivateMasterIp)
class LUClusterDeactivateMasterIp(NoHooksLU):
    async def check_prereq(self) -> None:
        if not _master_ip_configured(self.cfg.cluster):
            raise OpPrereqError("The cluster has no master IP configured", ECODE_INVAL)

    async def exec(self) -> Any:
        res = await _master_ip_call(self.ctx, "master_ip_deactivate")
        res.raise_on_fail("Could not deactivate the master IP")
        return None


@lu_for(opcodes.OpClusterRedistConf)
class LUClusterRedistConf(NoHooksLU):
    """Push the config to every master candidate and ssconf to every node, now."""

    async def exec(self) -> Any:
        await self.cfg.redistribute()
        for uuid, msg in sorted(self.cfg.stale_candidates().items()):
            self.log_warning(
                f"Could not update the configuration on master candidate"
                f" {self.cfg.node_name(uuid)}: {msg}"
            )
        for node, msg in sorted((await write_ssconf(self.ctx)).items()):
            self.log_warning(f"Could not update the ssconf files on node {node}: {msg}")
        return None


@lu_for(opcodes.OpClusterDestroy)
class LUClusterDestroy(_ClusterLU):
    """Refuse while other nodes or instances exist; take the master IP down.

    Returns the master node's UUID (Ganeti's result, which ``gnt-cluster
    destroy`` hands to the local cleanup that stops the daemons).
    """

    HPATH = "cluster-destroy"

    async def check_prereq(self) -> None:
        master = self.cfg.cluster.master_node
        nodes = list(self.cfg.nodes)
        if len(nodes) != 1 or nodes[0] != master:
            raise OpPrereqError(
                f"There are still {len(nodes) - 1} node(s) in this cluster.", ECODE_INVAL
            )
        if self.cfg.instances:
            raise OpPrereqError(
                f"There are still {len(self.cfg.instances)} instance(s) in this cluster.",
                ECODE_INVAL,
            )

    async def exec(self) -> Any:
        cluster = self.cfg.cluster
        if _master_ip_configured(cluster):
            res = await _master_ip_call(self.ctx, "master_ip_deactivate")
            if res.failed:
                self.log_warning(f"Error disabling the master IP address: {res.fail_msg}")
        return cluster.master_node


# -- modify -----------------------------------------------------------------------

_MAC_PREFIX_RE: Final = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$")
_IPOLICY_KEYS: Final = frozenset(
    {"minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio", "memory-ratio"}
)
_DDM_ADD: Final = "add"
_DDM_REMOVE: Final = "remove"


def _convert_like(default: Any, value: Any, name: str, what: str) -> Any:
    """Convert `value` to the type of `default` (Ganeti's ForceDictType)."""
    bad = OpPrereqError(f"Invalid value '{value}' for {what} parameter '{name}'", ECODE_INVAL)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off", ""):
            return False
        raise bad
    if isinstance(default, int | float):
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            raise bad from None
    if value is None:
        return ""
    return str(value)


def _update_typed(
    old: dict[str, Any], updates: dict[str, Any], defaults: dict[str, Any], what: str
) -> dict[str, Any]:
    """Overlay `updates` on `old`; names must be known, ``default``/None resets."""
    new = dict(old)
    for name, value in updates.items():
        if name not in defaults:
            raise OpPrereqError(f"Unknown {what} parameter '{name}'", ECODE_INVAL)
        if value is None or value == "default":
            new.pop(name, None)
        else:
            new[name] = _convert_like(defaults[name], value, name, what)
    return new


def _check_ispec(spec: dict[str, Any], where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in spec.items():
        if key not in C.ISPECS_MIN:
            raise OpPrereqError(f"Invalid key in {where} instance specs: {key}", ECODE_INVAL)
        try:
            out[key] = int(value)
        except (TypeError, ValueError):
            raise OpPrereqError(
                f"Invalid value '{value}' for {key} in {where} instance specs", ECODE_INVAL
            ) from None
    return out


def update_ipolicy(old: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Ganeti's GetUpdatedIPolicy + CheckParameterSyntax for the cluster policy.

    ``minmax`` replaces the bounds (partial specs are completed from the current
    first bounds pair), ``std`` is merged; every std value must lie within the
    bounds of some pair.
    """
    unknown = sorted(set(changes) - _IPOLICY_KEYS)
    if unknown:
        raise OpPrereqError(f"Invalid keys in ipolicy: {', '.join(unknown)}", ECODE_INVAL)
    new = objects.fill_dict(objects.default_ipolicy(), old)
    current = (new.get("minmax") or [{"min": C.ISPECS_MIN, "max": C.ISPECS_MAX}])[0]
    if "minmax" in changes:
        pairs = []
        for pair in changes["minmax"] or []:
            lo = {**current["min"], **_check_ispec(pair.get("min", {}), "min")}
            hi = {**current["max"], **_check_ispec(pair.get("max", {}), "max")}
            for key in C.ISPECS_MIN:
                if lo[key] > hi[key]:
                    raise OpPrereqError(
                        f"Invalid specification of min/max values for {key}: {lo[key]}/{hi[key]}",
                        ECODE_INVAL,
                    )
            pairs.append({"min": lo, "max": hi})
        if not pairs:
            raise OpPrereqError("Empty minmax specifications in ipolicy", ECODE_INVAL)
        new["minmax"] = pairs
    if "std" in changes:
        new["std"] = {**new.get("std", C.ISPECS_STD), **_check_ispec(changes["std"], "std")}
    if "disk-templates" in changes:
        templates = list(changes["disk-templates"] or [])
        bad = [t for t in templates if t not in C.DISK_TEMPLATES]
        if bad:
            raise OpPrereqError(
                f"Invalid disk template(s) in ipolicy: {', '.join(bad)}", ECODE_INVAL
            )
        new["disk-templates"] = templates
    for key in ("vcpu-ratio", "spindle-ratio", "memory-ratio"):
        if key in changes:
            try:
                value = float(changes[key])
            except (TypeError, ValueError):
                value = -1.0
            if value <= 0:
                raise OpPrereqError(
                    f"Invalid value '{changes[key]}' for ipolicy {key}", ECODE_INVAL
                )
            new[key] = value
    std = new.get("std", {})
    for key, value in std.items():
        if not any(p["min"][key] <= value <= p["max"][key] for p in new["minmax"]):
            lo = new["minmax"][0]["min"][key]
            hi = new["minmax"][0]["max"][key]
            raise OpPrereqError(
                f"Invalid specification of min/max/std values for {key}: {lo}/{hi}/{value}",
                ECODE_INVAL,
            )
    return new


@lu_for(opcodes.OpClusterSetParams)
class LUClusterSetParams(_ClusterLU):
    """``gnt-cluster modify``: validate everything in check_prereq, apply in exec.

    Nothing is changed unless every given parameter is valid. Only the master
    netdev change talks to a node in exec (master IP moved to the new device).
    """

    HPATH = "cluster-modify"
    REQ_BGL = False
    op: opcodes.OpClusterSetParams

    def expand_names(self) -> None:
        for level in (LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE):
            self.needed_locks[level] = ALL_SET
            self.share_locks[level] = True

    def build_hooks_env(self) -> dict[str, Any]:
        return {"OP_TARGET": self.cfg.cluster.cluster_name, "NEW_VG_NAME": self.op.vg_name}

    def build_hooks_nodes(self) -> tuple[list[str], list[str]]:
        master = self.cfg.cluster.master_node
        return [master], [master]

    def _extra(self, name: str) -> Any:
        """Fields newer opcodes may carry (the CLI sets them when they exist)."""
        return getattr(self.op, name, None)

    def check_arguments(self) -> None:
        op = self.op
        if op.mac_prefix is not None:
            prefix = op.mac_prefix.lower()
            if not _MAC_PREFIX_RE.match(prefix):
                raise OpPrereqError(f"Invalid MAC address prefix: {op.mac_prefix}", ECODE_INVAL)
            op.mac_prefix = prefix
        for name in ("candidate_pool_size", "max_running_jobs", "max_tracked_jobs"):
            value = getattr(op, name)
            if value is not None and value < 1:
                raise OpPrereqError(
                    f"Parameter '{name}' must be a positive integer, got {value}", ECODE_INVAL
                )
        if op.enabled_hypervisors is not None:
            if not op.enabled_hypervisors:
                raise OpPrereqError(
                    "Enabled hypervisors list must contain at least one member", ECODE_INVAL
                )
            for hv in op.enabled_hypervisors:
                if hv not in hypervisor_names():
                    raise OpPrereqError(f"Unknown hypervisor '{hv}'", ECODE_INVAL)
        if op.enabled_disk_templates is not None:
            if not op.enabled_disk_templates:
                raise OpPrereqError(
                    "Enabled disk templates list must contain at least one member", ECODE_INVAL
                )
            for dt in op.enabled_disk_templates:
                if dt not in C.DISK_TEMPLATES:
                    raise OpPrereqError(f"Invalid disk template '{dt}'", ECODE_INVAL)
        netmask = self._extra("master_netmask")
        if netmask is not None and not 0 < int(netmask) <= 32:
            raise OpPrereqError(f"Invalid netmask '{netmask}'", ECODE_INVAL)
        for name in ("hidden_os", "blacklisted_os"):
            for mod in getattr(op, name) or []:
                if len(mod) != 2 or mod[0] not in (_DDM_ADD, _DDM_REMOVE):
                    raise OpPrereqError(f"Invalid {name} modification {mod}", ECODE_INVAL)

    async def check_prereq(self) -> None:
        op = self.op
        cluster = self.cfg.cluster
        self.new: dict[str, Any] = {}
        # disk templates and volume group
        templates = list(op.enabled_disk_templates or cluster.enabled_disk_templates)
        if op.enabled_disk_templates:
            removed = set(cluster.enabled_disk_templates) - set(templates)
            for inst in self.cfg.all_instances():
                if inst.disk_template in removed:
                    raise OpPrereqError(
                        f"Cannot disable disk template '{inst.disk_template}', because"
                        f" instance '{inst.name}' is using it.",
                        ECODE_STATE,
                    )
            self.new["enabled_disk_templates"] = templates
        lvm_enabled = bool(set(templates) & C.DTS_LVM)
        if op.vg_name == "" and lvm_enabled:
            raise OpPrereqError(
                "Cannot unset volume group if lvm-based disk templates are or get enabled.",
                ECODE_INVAL,
            )
        lvm_gets_enabled = bool(set(op.enabled_disk_templates or []) & C.DTS_LVM)
        if op.vg_name is None and cluster.volume_group_name is None and lvm_gets_enabled:
            raise OpPrereqError(
                "Please specify a volume group when enabling lvm-based disk-templates.",
                ECODE_INVAL,
            )
        # hypervisors
        hv_list = list(op.enabled_hypervisors or cluster.enabled_hypervisors)
        new_hvp = {hv: dict(p) for hv, p in cluster.hvparams.items()}
        to_check = set(op.enabled_hypervisors or [])
        for hv, updates in (op.hvparams or {}).items():
            try:
                hv_cls = get_hypervisor_class(hv)
            except Exception as err:
                raise OpPrereqError(str(err), ECODE_INVAL) from err
            merged = dict(new_hvp.get(hv, {}))
            for name, value in updates.items():
                if value is None or value == "default":
                    merged.pop(name, None)
                else:
                    merged[name] = value
            if set(merged) - set(hv_cls.PARAMETERS):
                unknown = ", ".join(sorted(set(merged) - set(hv_cls.PARAMETERS)))
                raise OpPrereqError(
                    f"Hypervisor parameter validation failed: unknown parameter(s) {unknown}",
                    ECODE_INVAL,
                )
            try:
                new_hvp[hv] = convert_params(hv_cls.PARAMETERS, merged)
            except Exception as err:
                raise OpPrereqError(
                    f"Hypervisor parameter validation failed: {err}", ECODE_INVAL
                ) from err
            to_check.add(hv)
        for hv in sorted(to_check):
            filled = objects.fill_dict(get_hypervisor_class(hv).defaults(), new_hvp.get(hv, {}))
            check_hvparams(hv, filled)
        if op.hvparams:
            self.new["hvparams"] = new_hvp
        if op.enabled_hypervisors is not None:
            self.new["enabled_hypervisors"] = hv_list
        # backend, node, disk, nic parameters
        if op.beparams:
            bep = dict(cluster.beparams.get("default", {}))
            bep.update(check_beparams(dict(op.beparams)))
            probe = cluster.copy()
            probe.beparams = {**cluster.beparams, "default": bep}
            fill_beparams(probe, {})
            self.new["beparams"] = {**cluster.beparams, "default": bep}
        if op.ndparams:
            self.new["ndparams"] = _update_typed(
                cluster.ndparams, dict(op.ndparams), dict(C.NDC_DEFAULTS), "node"
            )
        if op.diskparams:
            new_dp = {dt: dict(p) for dt, p in cluster.diskparams.items()}
            for dt, updates in op.diskparams.items():
                if dt not in DISK_DT_DEFAULTS:
                    raise OpPrereqError(
                        f"While verify diskparams options: Invalid disk template '{dt}'",
                        ECODE_INVAL,
                    )
                new_dp[dt] = _update_typed(
                    new_dp.get(dt, {}), dict(updates), DISK_DT_DEFAULTS[dt], f"{dt} disk"
                )
            self.new["diskparams"] = new_dp
        if op.nicparams:
            await self._check_nicparams(dict(op.nicparams))
        if op.ipolicy:
            self.new["ipolicy"] = update_ipolicy(cluster.ipolicy, dict(op.ipolicy))
        policy_templates = set(
            (self.new.get("ipolicy") or cluster.ipolicy).get("disk-templates", [])
        )
        not_enabled = sorted(policy_templates - set(templates))
        if not_enabled and (op.ipolicy or op.enabled_disk_templates):
            self.log_warning(
                "The following disk templates are allowed by the ipolicy, but not enabled"
                f" on the cluster: {', '.join(not_enabled)}"
            )
        if op.osparams:
            new_osp = {os: dict(p) for os, p in cluster.osparams.items()}
            for os_name, updates in op.osparams.items():
                merged = dict(new_osp.get(os_name, {}))
                for name, value in updates.items():
                    if value is None or value == "default":
                        merged.pop(name, None)
                    else:
                        merged[name] = str(value)
                if merged:
                    new_osp[os_name] = merged
                else:
                    new_osp.pop(os_name, None)
            self.new["osparams"] = new_osp
        builtin = ("", C.DEFAULT_IALLOCATOR, "corral-hail")
        if op.default_iallocator is not None and op.default_iallocator not in builtin:
            from corral.cmdlib.iallocator import _find_external

            if _find_external(op.default_iallocator) is None:
                raise OpPrereqError(
                    f"Invalid default iallocator script '{op.default_iallocator}' specified",
                    ECODE_INVAL,
                )

    async def _check_nicparams(self, updates: dict[str, Any]) -> None:
        cluster = self.cfg.cluster
        nicp = dict(cluster.nicparams.get("default", {}))
        for name, value in updates.items():
            if name not in (C.NIC_MODE, C.NIC_LINK, C.NIC_VLAN):
                raise OpPrereqError(f"Unknown NIC parameter '{name}'", ECODE_INVAL)
            nicp[name] = "" if value is None else str(value)
        filled = objects.fill_dict(filled_nicparams(objects.Cluster(cluster_name="")), nicp)
        if filled[C.NIC_MODE] not in C.NIC_MODES:
            raise OpPrereqError(f"Invalid NIC mode '{filled[C.NIC_MODE]}'", ECODE_INVAL)
        if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED and not filled[C.NIC_LINK]:
            raise OpPrereqError("Missing bridged NIC link", ECODE_INVAL)
        nic_errors = []
        for inst in self.cfg.all_instances():
            for idx, nic in enumerate(inst.nics):
                mode = nic.nicparams.get(C.NIC_MODE) or filled[C.NIC_MODE]
                if mode == C.NIC_MODE_ROUTED and not nic.ip:
                    nic_errors.append(
                        f"Instance {inst.name}, nic/{idx}: routed NIC with no ip address"
                    )
        if nic_errors:
            raise OpPrereqError(
                "Cannot apply the change, errors:\n" + "\n".join(nic_errors), ECODE_INVAL
            )
        if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED:
            nodes = [n.uuid for n in self.cfg.all_nodes() if n.vm_capable and not n.offline]
            await asyncio.gather(
                *(common.check_bridges(self, [str(filled[C.NIC_LINK])], n) for n in nodes)
            )
        self.new["nicparams"] = {**cluster.nicparams, "default": nicp}

    def _apply_os_list(self, current: list[str], mods: list[list[str]], desc: str) -> list[str]:
        result = list(current)
        for action, os_name in mods:
            if action == _DDM_ADD:
                if os_name in result:
                    self.feedback(f"OS {os_name} already in {desc} OS list, ignoring")
                else:
                    result.append(os_name)
            elif os_name in result:
                result.remove(os_name)
            else:
                self.feedback(f"OS {os_name} not found in {desc} OS list, ignoring")
        return result

    async def exec(self) -> Any:
        op = self.op
        # Work on a copy: a failure below (e.g. moving the master IP) must not
        # leave half-applied changes in the live config for the next write.
        cluster = self.cfg.cluster.copy()
        for key, value in self.new.items():
            setattr(cluster, key, value)
        if op.vg_name is not None:
            new_vg = op.vg_name or None
            if new_vg == cluster.volume_group_name:
                self.feedback("Cluster LVM configuration already in desired state, not changing")
            cluster.volume_group_name = new_vg
        if op.file_storage_dir is not None:
            if op.file_storage_dir == cluster.file_storage_dir:
                self.feedback(
                    f"Global file storage dir already set to value '{cluster.file_storage_dir}'"
                )
            cluster.file_storage_dir = op.file_storage_dir
        if op.shared_file_storage_dir is not None:
            if op.shared_file_storage_dir == cluster.shared_file_storage_dir:
                self.feedback(
                    "Global shared file storage dir already set to value"
                    f" '{cluster.shared_file_storage_dir}'"
                )
            cluster.shared_file_storage_dir = op.shared_file_storage_dir
        simple = (
            "candidate_pool_size",
            "max_running_jobs",
            "max_tracked_jobs",
            "mac_prefix",
            "default_iallocator",
            "default_iallocator_params",
            "auto_failover",
        )
        for name in simple:
            value = getattr(op, name)
            if value is not None:
                setattr(cluster, name, value)
        for name in (
            "maintain_node_health",
            "prealloc_wipe_disks",
            "use_external_mip_script",
            "reserved_lvs",
        ):
            value = self._extra(name)
            if value is not None:
                setattr(cluster, name, value)
        helper = self._extra("drbd_helper")
        if helper is not None:
            cluster.drbd_usermode_helper = helper or None
        if op.hidden_os:
            cluster.hidden_os = self._apply_os_list(cluster.hidden_os, op.hidden_os, "hidden")
        if op.blacklisted_os:
            cluster.blacklisted_os = self._apply_os_list(
                cluster.blacklisted_os, op.blacklisted_os, "blacklisted"
            )
        netdev_changed = bool(op.master_netdev) and op.master_netdev != cluster.master_netdev
        if netdev_changed and _master_ip_configured(cluster):
            self.feedback(
                f"Shutting down master ip on the current netdev ({cluster.master_netdev})"
            )
            res = await _master_ip_call(self.ctx, "master_ip_deactivate")
            res.raise_on_fail("Could not disable the master ip")
        if netdev_changed:
            self.feedback(
                f"Changing master_netdev from {cluster.master_netdev} to {op.master_netdev}"
            )
            cluster.master_netdev = str(op.master_netdev)
        netmask = self._extra("master_netmask")
        if netmask is not None and int(netmask) != cluster.master_netmask:
            self.feedback(f"Changing master IP netmask to {netmask}")
            cluster.master_netmask = int(netmask)
        await self.cfg.update_cluster(cluster)
        if netdev_changed and _master_ip_configured(cluster):
            self.feedback(
                f"Starting the master ip on the new master netdev ({cluster.master_netdev})"
            )
            res = await _master_ip_call(self.ctx, "master_ip_activate")
            if res.failed:
                self.log_warning(
                    "Could not re-enable the master ip on the master, please restart manually:"
                    f" {res.fail_msg}"
                )
        failures = await write_ssconf(self.ctx)
        for node, msg in sorted(failures.items()):
            self.log_warning(f"Could not update the ssconf files on node {node}: {msg}")
        return None
