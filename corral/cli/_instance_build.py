"""Command line -> opcode for ``gnt-instance add`` and ``gnt-instance modify``.

Pure functions of the parsed options (no master needed), so every command
line of the paper is unit-tested down to the opcode it submits. The rules
are Ganeti's ``GenericInstanceCreate`` and ``SetInstanceParams``:

* disks: ``-s SIZE`` is one disk; ``--disk N:size=4G[,mode=ro,...]`` any
  number; sizes become MiB, each disk gets ``mode: rw`` unless given;
  diskless instances take no disk options;
* NICs: one NIC with cluster defaults unless ``--net``/``--no-nics``;
* ``-n pnode[:snode]``; a mirrored template (drbd) given ``-n`` needs both;
* modify's ``--net``/``--disk`` take ``N:modify,...``, ``N:add,...``,
  ``N:remove`` and the legacy ``add:...``/``remove`` (= the last item).
"""

from __future__ import annotations

import argparse
from typing import Any

from corral import constants as C
from corral import errors
from corral import opcodes as op
from corral.cli._util import convert_beparams, split_node_option
from corral.utils.keyval import IdentKeyVal, split_ident_key_val, split_key_val
from corral.utils.units import parse_unit

DDM_ADD = "add"
DDM_REMOVE = "remove"
DDM_MODIFY = "modify"
_DDM_KEYS = (DDM_ADD, DDM_REMOVE, DDM_MODIFY)


def _index(ident: str, what: str) -> int:
    try:
        return int(ident)
    except ValueError as err:
        raise errors.OpPrereqError(
            f"Invalid {what} index passed: {err}", errors.ECODE_INVAL
        ) from err


def parse_nics(groups: list[IdentKeyVal]) -> list[dict[str, Any]]:
    """``--net N:key=val`` options -> the opcode's list of NIC dicts."""
    count = max(_index(ident, "NIC") for ident, _ in groups) + 1
    nics: list[dict[str, Any]] = [{} for _ in range(count)]
    for ident, params in groups:
        idx = _index(ident, "NIC")
        if not isinstance(params, dict):
            raise errors.OpPrereqError(
                f"Invalid nic/{idx} value: expected dict, got {params}", errors.ECODE_INVAL
            )
        nics[idx] = {key: ("" if val is None else val) for key, val in params.items()}
    return nics


def _parse_disk_size(params: dict[str, Any], idx: int) -> None:
    try:
        params["size"] = parse_unit(str(params["size"]))
    except errors.UnitParseError as err:
        raise errors.OpPrereqError(
            f"Invalid disk size for disk {idx}: {err}", errors.ECODE_INVAL
        ) from err


def parse_create_disks(opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Disk dicts for OpInstanceCreate from ``-s`` / ``--disk``."""
    disk_opts: list[IdentKeyVal] = list(opts.disks or [])
    if opts.disk_template == C.DT_DISKLESS:
        if disk_opts or opts.sd_size is not None:
            raise errors.OpPrereqError(
                "Diskless instance but disk information passed", errors.ECODE_INVAL
            )
        return []
    if not disk_opts and opts.sd_size is None:
        raise errors.OpPrereqError("No disk information specified", errors.ECODE_INVAL)
    if disk_opts and opts.sd_size is not None:
        raise errors.OpPrereqError(
            "Please use either the '--disk' or '-s' option", errors.ECODE_INVAL
        )
    if opts.sd_size is not None:
        return [{"size": opts.sd_size, "mode": C.DISK_RDWR}]
    count = max(_index(ident, "disk") for ident, _ in disk_opts) + 1
    disks: list[dict[str, Any]] = [{} for _ in range(count)]
    for ident, params in disk_opts:
        idx = _index(ident, "disk")
        if not isinstance(params, dict):
            raise errors.OpPrereqError(
                f"Invalid disk/{idx} value: expected dict, got {params}", errors.ECODE_INVAL
            )
        ddict: dict[str, Any] = dict(params)
        if "size" in ddict:
            if "adopt" in ddict:
                raise errors.OpPrereqError(
                    f"Only one of 'size' and 'adopt' allowed (disk {idx})", errors.ECODE_INVAL
                )
            _parse_disk_size(ddict, idx)
        elif "adopt" in ddict:
            ddict["size"] = 0
        else:
            raise errors.OpPrereqError(
                f"Missing size or adoption source for disk {idx}", errors.ECODE_INVAL
            )
        if "spindles" in ddict:
            ddict["spindles"] = int(str(ddict["spindles"]))
        ddict.setdefault("mode", C.DISK_RDWR)
        disks[idx] = ddict
    return disks


def parse_create_hypervisor(value: str) -> tuple[str | None, dict[str, Any]]:
    """``-H kvm:a=1`` -> ("kvm", {"a": "1"}); ``-H a=1,b=2`` -> (None, {...}).

    Ganeti requires the ``hypervisor:`` prefix; corral also accepts bare
    parameters for the cluster's default hypervisor (the text before the
    first colon holding ``=`` or ``,`` tells them apart).
    """
    head = value.split(":", 1)[0]
    if "=" in head or "," in head:
        return None, dict(split_key_val(value, "-H"))
    ident, params = split_ident_key_val(value, "-H")
    if not isinstance(params, dict):
        raise errors.OpPrereqError(
            f"Cannot remove hypervisor parameter groups at creation: {value}", errors.ECODE_INVAL
        )
    return ident, dict(params)


def build_create_op(opts: argparse.Namespace) -> op.OpInstanceCreate:
    """OpInstanceCreate for ``gnt-instance add`` options (``opts.name`` = instance)."""
    pnode, snode = split_node_option(opts.node)
    if opts.node and opts.iallocator:
        raise errors.OpPrereqError(
            "Specify either an iallocator (-I), or a node (-n) but not both",
            errors.ECODE_INVAL,
        )
    if pnode and opts.disk_template in C.DTS_INT_MIRROR and not snode:
        raise errors.OpPrereqError(
            "The networked disk templates need a mirror node", errors.ECODE_INVAL
        )
    hypervisor, hvparams = opts.hypervisor if opts.hypervisor else (None, {})
    if opts.nics:
        nics = parse_nics(opts.nics)
    elif opts.no_nics:
        nics = []
    else:
        nics = [{}]
    tags = [tag for tag in opts.tags.split(",") if tag] if opts.tags else []
    start = opts.start and not opts.no_install
    return op.OpInstanceCreate(
        instance_name=opts.name,
        mode="create",
        disk_template=opts.disk_template,
        disks=parse_create_disks(opts),
        nics=nics,
        os_type=opts.os,
        osparams=dict(opts.osparams or {}),
        beparams=convert_beparams(dict(opts.beparams or {})),
        hvparams=hvparams,
        hypervisor=hypervisor,
        iallocator=opts.iallocator,
        pnode=pnode,
        snode=snode,
        start=start,
        ip_check=opts.ip_check,
        name_check=opts.name_check,
        wait_for_sync=opts.wait_for_sync,
        no_install=True if opts.no_install else None,
        file_storage_dir=opts.file_storage_dir,
        file_driver=opts.file_driver,
        tags=tags,
        force_variant=opts.force_variant,
    )


# --- modify ----------------------------------------------------------------------------


def _mod_ident(ident: str) -> int | str:
    """Indices become ints (``"-1"`` too); names and UUIDs stay strings."""
    try:
        return int(ident)
    except ValueError:
        return ident


def convert_modifications(mods: list[IdentKeyVal]) -> list[list[Any]]:
    """``--net``/``--disk`` values -> ``[[action, identifier, params], ...]``."""
    result: list[list[Any]] = []
    for ident, raw in mods:
        params: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        identifier: int | str
        if ident == DDM_ADD:
            action, identifier = DDM_ADD, -1
        elif ident == DDM_REMOVE:
            action, identifier = DDM_REMOVE, -1
        else:
            flags = {key: params.pop(key) for key in _DDM_KEYS if key in params}
            if DDM_MODIFY in flags and len(flags) > 1:
                raise errors.OpPrereqError(
                    "Cannot modify and add/remove at the same time", errors.ECODE_INVAL
                )
            if DDM_ADD in flags and DDM_REMOVE in flags:
                raise errors.OpPrereqError(
                    "Cannot add and remove at the same time", errors.ECODE_INVAL
                )
            if DDM_ADD in flags:
                action = DDM_ADD
            elif DDM_REMOVE in flags:
                action = DDM_REMOVE
            else:
                action = DDM_MODIFY
            identifier = _mod_ident(ident)
        if action == DDM_REMOVE and params:
            raise errors.OpPrereqError("Not accepting parameters on removal", errors.ECODE_INVAL)
        result.append([action, identifier, params])
    return result


def parse_disk_modifications(mods: list[IdentKeyVal]) -> list[list[Any]]:
    """Like `convert_modifications`, with sizes in MiB; ``add`` needs ``size``."""
    result = convert_modifications(mods)
    for action, ident, params in result:
        if "spindles" in params:
            params["spindles"] = int(str(params["spindles"]))
        if "size" in params:
            _parse_disk_size(params, ident if isinstance(ident, int) else 0)
        elif action == DDM_ADD:
            raise errors.OpPrereqError("Missing required parameter 'size'", errors.ECODE_INVAL)
        if action == DDM_ADD:
            params.setdefault("mode", C.DISK_RDWR)
    return result


def _defaults(params: dict[str, Any]) -> dict[str, Any]:
    """``key=default`` (any case) means "back to the cluster default"."""
    return {
        key: ("default" if isinstance(val, str) and val.lower() == "default" else val)
        for key, val in params.items()
    }


def has_modifications(opts: argparse.Namespace) -> bool:
    return bool(
        opts.nics
        or opts.disks
        or opts.disk_template
        or opts.hvparams
        or opts.beparams
        or opts.os
        or opts.osparams
        or opts.offline_inst
        or opts.online_inst
        or opts.new_primary_node
    )


def build_modify_op(opts: argparse.Namespace) -> op.OpInstanceSetParams:
    """OpInstanceSetParams for ``gnt-instance modify`` options."""
    if opts.disk_template in C.DTS_INT_MIRROR and not opts.node:
        raise errors.OpPrereqError(
            "Changing the disk template to a mirrored one requires specifying a secondary node",
            errors.ECODE_INVAL,
        )
    offline: bool | None = None
    if opts.offline_inst:
        offline = True
    elif opts.online_inst:
        offline = False
    return op.OpInstanceSetParams(
        instance_name=opts.name,
        force=opts.force,
        nics=convert_modifications(list(opts.nics or [])),
        disks=parse_disk_modifications(list(opts.disks or [])),
        beparams=convert_beparams(_defaults(dict(opts.beparams or {}))),
        hvparams=_defaults(dict(opts.hvparams or {})),
        osparams=dict(opts.osparams or {}),
        os_name=opts.os,
        offline=offline,
        hotplug=opts.hotplug,
        hotplug_if_possible=opts.hotplug_if_possible,
        disk_template=opts.disk_template,
        remote_node=opts.node,
        pnode=opts.new_primary_node,
        wait_for_sync=opts.wait_for_sync,
    )


def modifies_nics_in_place(mods: list[list[Any]]) -> bool:
    """True when a NIC is modified (hot-modify = remove + add, asks first)."""
    return any(action == DDM_MODIFY for action, _, _ in mods)
