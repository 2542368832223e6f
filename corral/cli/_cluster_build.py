"""Command line -> `InitParams` / OpClusterSetParams for gnt-cluster init/modify.

Pure functions of the parsed options, following Ganeti's ``InitCluster``
and ``SetClusterParams`` (``lib/client/gnt_cluster.py``): defaults of init
are Ganeti's (LVM templates enabled -> volume group ``xenvg``; no NIC mode
-> master netdev ``xen-br0``; drbd enabled -> helper ``/bin/true``), and
every parameter dictionary is filled and typed before bootstrap sees it.
"""

from __future__ import annotations

import argparse
from typing import Any

from corral import constants as C
from corral import errors, objects
from corral import opcodes as op
from corral.cli._init_params import InitParams
from corral.cli._util import convert_beparams, ipolicy_from_opts
from corral.utils.keyval import IdentKeyVal

DEFAULT_DRBD_HELPER = "/bin/true"
DEFAULT_OVS = "switch1"
NICC_DEFAULTS: dict[str, Any] = {
    C.NIC_MODE: C.NIC_MODE_BRIDGED,
    C.NIC_LINK: C.DEFAULT_BRIDGE,
    C.NIC_VLAN: "",
}


def _csv(value: str | None) -> list[str] | None:
    return [item for item in value.split(",") if item] if value else None


def _lvm_enabled(templates: list[str]) -> bool:
    return any(t in C.DTS_LVM for t in templates)


def _param_groups(groups: list[IdentKeyVal], what: str) -> dict[str, dict[str, Any]]:
    """``-H kvm:a=1 -H fake:b=2`` -> ``{"kvm": {"a": "1"}, "fake": {"b": "2"}}``."""
    result: dict[str, dict[str, Any]] = {}
    for ident, params in groups:
        if not isinstance(params, dict):
            raise errors.OpPrereqError(
                f"Cannot remove the {what} parameters of '{ident}' here", errors.ECODE_INVAL
            )
        result.setdefault(ident, {}).update(params)
    return result


def _typed_ndparams(params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in params.items():
        default = C.NDC_DEFAULTS.get(key)
        if isinstance(value, str) and isinstance(default, bool):
            result[key] = value.lower() in ("true", "yes", "1")
        elif isinstance(value, str) and isinstance(default, int):
            try:
                result[key] = int(value)
            except ValueError as err:
                raise errors.OpPrereqError(
                    f"Invalid value '{value}' for node parameter '{key}'", errors.ECODE_INVAL
                ) from err
        elif isinstance(value, str) and isinstance(default, float):
            result[key] = float(value)
        else:
            result[key] = value
    return result


def init_vg_name(opts: argparse.Namespace, templates: list[str]) -> tuple[str | None, str | None]:
    """(vg_name, note to print) as Ganeti's ``_InitVgName``."""
    if opts.vg_name is not None:
        if opts.vg_name:
            if not _lvm_enabled(templates):
                return opts.vg_name, (
                    "You specified a volume group with --vg-name, but you did not enable any"
                    " disk template that uses lvm."
                )
            return opts.vg_name, None
        if _lvm_enabled(templates):
            raise errors.OpPrereqError("LVM disk templates are enabled, but vg name not set.")
        return None, None
    return (C.DEFAULT_VG if _lvm_enabled(templates) else None), None


def build_init_params(opts: argparse.Namespace) -> tuple[InitParams, list[str]]:
    """`InitParams` for ``gnt-cluster init`` and the notes to print first."""
    notes: list[str] = []
    templates = _csv(opts.enabled_disk_templates) or list(C.DEFAULT_ENABLED_DISK_TEMPLATES)
    unknown = [t for t in templates if t not in C.DISK_TEMPLATES]
    if unknown:
        raise errors.OpPrereqError(
            f"Cannot enable unknown disk template(s): {', '.join(unknown)}", errors.ECODE_INVAL
        )
    vg_name, note = init_vg_name(opts, templates)
    if note:
        notes.append(note)
    drbd_helper = opts.drbd_helper
    if C.DT_DRBD8 in templates:
        if drbd_helper is None:
            drbd_helper = DEFAULT_DRBD_HELPER
        elif drbd_helper == "":
            raise errors.OpPrereqError(
                "Unsetting the drbd usermode helper while enabling DRBD is not allowed."
            )
    elif drbd_helper is not None:
        notes.append(
            "Note: You specified a DRBD usermode helper, while DRBD storage is not enabled."
        )
    nicparams = dict(opts.nicparams or {})
    master_netdev = opts.master_netdev
    if master_netdev is None:
        mode = nicparams.get(C.NIC_MODE)
        if mode == C.NIC_MODE_OVS:
            master_netdev = DEFAULT_OVS
            nicparams[C.NIC_LINK] = DEFAULT_OVS
        else:
            master_netdev = C.DEFAULT_BRIDGE
    hypervisors = _csv(opts.enabled_hypervisors) or [C.HT_KVM]
    unknown_hv = [hv for hv in hypervisors if hv not in C.HYPER_TYPES]
    if unknown_hv:
        raise errors.OpPrereqError(
            f"Unknown hypervisor(s): {', '.join(unknown_hv)}", errors.ECODE_INVAL
        )
    beparams = objects.fill_dict(dict(C.BEC_DEFAULTS), convert_beparams(opts.beparams or {}))
    ndparams = objects.fill_dict(dict(C.NDC_DEFAULTS), _typed_ndparams(opts.ndparams or {}))
    ipolicy = objects.default_ipolicy()
    ipolicy.update(ipolicy_from_opts(opts, with_std=True))
    if getattr(opts, "ipolicy_disk_templates", None) is None:
        # as Ganeti's init: the policy allows the enabled templates, in their order
        ipolicy["disk-templates"] = list(templates)
    netmask: int | None = None
    if opts.master_netmask is not None:
        try:
            netmask = int(opts.master_netmask)
        except ValueError as err:
            raise errors.OpPrereqError(
                f"Invalid master netmask value: {err}", errors.ECODE_INVAL
            ) from err
    params = InitParams(
        cluster_name=opts.name,
        secondary_ip=opts.secondary_ip,
        master_netdev=master_netdev,
        master_netmask=netmask,
        vg_name=vg_name,
        mac_prefix=opts.mac_prefix or C.DEFAULT_MAC_PREFIX,
        file_storage_dir=opts.file_storage_dir or C.DEFAULT_FILE_STORAGE_DIR,
        shared_file_storage_dir=opts.shared_file_storage_dir or C.DEFAULT_SHARED_FILE_STORAGE_DIR,
        enabled_hypervisors=hypervisors,
        enabled_disk_templates=templates,
        hvparams=_param_groups(opts.hvparams or [], "hypervisor"),
        beparams=beparams,
        nicparams=objects.fill_dict(dict(NICC_DEFAULTS), nicparams),
        ndparams=ndparams,
        diskparams=_param_groups(opts.diskparams or [], "disk"),
        ipolicy=ipolicy,
        candidate_pool_size=(
            C.DEFAULT_CANDIDATE_POOL_SIZE
            if opts.candidate_pool_size is None
            else opts.candidate_pool_size
        ),
        default_iallocator=opts.default_iallocator or C.DEFAULT_IALLOCATOR,
        default_iallocator_params=dict(opts.default_iallocator_params or {}),
        drbd_helper=drbd_helper,
        maintain_node_health=bool(opts.maintain_node_health),
        prealloc_wipe_disks=bool(opts.prealloc_wipe_disks),
        use_external_mip_script=bool(opts.use_external_mip_script),
        primary_ip_version=opts.primary_ip_version,
        modify_etc_hosts=opts.modify_etc_hosts,
        auto_failover=bool(opts.auto_failover),
    )
    return params, notes


_MODIFY_FIELDS = (
    "vg_name",
    "drbd_helper",
    "enabled_hypervisors",
    "hvparams",
    "beparams",
    "nicparams",
    "ndparams",
    "diskparams",
    "candidate_pool_size",
    "max_running_jobs",
    "max_tracked_jobs",
    "default_iallocator",
    "default_iallocator_params",
    "mac_prefix",
    "master_netdev",
    "master_netmask",
    "enabled_disk_templates",
    "file_storage_dir",
    "shared_file_storage_dir",
    "ipolicy_bounds_specs",
    "ipolicy_std_specs",
    "ipolicy_disk_templates",
    "ipolicy_vcpu_ratio",
    "ipolicy_spindle_ratio",
    "auto_failover",
    "maintain_node_health",
    "prealloc_wipe_disks",
    "use_external_mip_script",
)


def has_modifications(opts: argparse.Namespace) -> bool:
    return any(getattr(opts, name, None) not in (None, [], {}) for name in _MODIFY_FIELDS)


def build_set_params_op(opts: argparse.Namespace) -> tuple[op.OpClusterSetParams, list[str]]:
    """OpClusterSetParams for ``gnt-cluster modify`` and notes to print."""
    notes: list[str] = []
    templates = _csv(opts.enabled_disk_templates)
    if templates and opts.vg_name and not _lvm_enabled(templates):
        notes.append(
            "You specified a volume group with --vg-name, but you did not enable any of the"
            " following lvm-based disk templates: " + ", ".join(sorted(C.DTS_LVM))
        )
    if templates and opts.drbd_helper and C.DT_DRBD8 not in templates:
        notes.append(
            "You specified a DRBD usermode helper with  --drbd-usermode-helper while DRBD is"
            " not enabled."
        )
    ipolicy = ipolicy_from_opts(opts, with_std=True)
    netmask: int | None = None
    if opts.master_netmask is not None:
        try:
            netmask = int(opts.master_netmask)
        except ValueError as err:
            raise errors.OpPrereqError(
                "The --master-netmask option expects an int parameter.", errors.ECODE_INVAL
            ) from err
    hvparams = _param_groups(opts.hvparams or [], "hypervisor")
    diskparams = _param_groups(opts.diskparams or [], "disk")
    set_op = op.OpClusterSetParams(
        vg_name=opts.vg_name,
        enabled_hypervisors=_csv(opts.enabled_hypervisors),
        hvparams=hvparams or None,
        beparams=convert_beparams(opts.beparams) if opts.beparams else None,
        nicparams=dict(opts.nicparams) if opts.nicparams else None,
        ndparams=_typed_ndparams(opts.ndparams) if opts.ndparams else None,
        diskparams=diskparams or None,
        ipolicy=ipolicy or None,
        enabled_disk_templates=templates,
        candidate_pool_size=opts.candidate_pool_size,
        max_running_jobs=opts.max_running_jobs,
        max_tracked_jobs=opts.max_tracked_jobs,
        master_netdev=opts.master_netdev,
        mac_prefix=opts.mac_prefix,
        default_iallocator=opts.default_iallocator,
        default_iallocator_params=opts.default_iallocator_params,
        file_storage_dir=opts.file_storage_dir,
        shared_file_storage_dir=opts.shared_file_storage_dir,
        auto_failover=opts.auto_failover,
    )
    extra = {
        "master_netmask": netmask,
        "drbd_helper": opts.drbd_helper,
        "maintain_node_health": opts.maintain_node_health,
        "prealloc_wipe_disks": opts.prealloc_wipe_disks,
        "use_external_mip_script": opts.use_external_mip_script,
    }
    unsupported = [
        name for name, value in extra.items() if value is not None and not hasattr(set_op, name)
    ]
    if unsupported:
        raise errors.OpPrereqError(
            "Changing " + ", ".join(unsupported) + " is not supported by corral",
            errors.ECODE_INVAL,
        )
    for name, value in extra.items():
        if value is not None:
            setattr(set_op, name, value)
    return set_op, notes
