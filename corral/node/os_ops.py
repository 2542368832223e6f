"""OS definitions on this node, through the OS API driver (`corral.osapi`).

(Named os_ops, not os, so it never shadows the standard library module.)

The search path is ``paths.os_search_path`` followed by corral's bundled
definitions. Install and rename logs are kept under ``paths.os_log_dir`` with
Ganeti's names (``add-<os>-<instance>-<timestamp>.log``). The master sends the
instance with filled parameters (hvparams, beparams, nicparams, osparams);
``osparams_private`` are merged in here, as the scripts see them all as OSP_*.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from corral import objects
from corral.node.context import NodeContext


def search_path(ctx: NodeContext) -> list[str]:
    from corral import osapi

    result = list(ctx.paths.os_search_path)
    bundled = osapi.bundled_os_dir()
    if bundled not in result:
        result.append(bundled)
    return result


def _record(osdef: Any) -> dict[str, Any]:
    """The wire form of one OS definition: name, path, status, diagnose, variants,
    parameters, api_versions, trusted."""
    rec = msgspec.to_builtins(osdef)
    assert isinstance(rec, dict)
    return rec


def os_diagnose(ctx: NodeContext) -> list[dict[str, Any]]:
    """Every OS definition found in the search path (valid or not)."""
    from corral import osapi

    return [_record(d) for d in osapi.discover(search_path(ctx))]


def os_get(ctx: NodeContext, name: str) -> dict[str, Any]:
    """The valid OS `name` (variant ignored); OSError_ if missing or invalid."""
    from corral import osapi

    base, _ = osapi.split_name(name)
    return _record(osapi.get_os(search_path(ctx), base))


def os_validate(ctx: NodeContext, name: str, osparams: dict[str, Any]) -> None:
    """OS exists, variant fits, parameters declared and accepted by ``verify``."""
    from corral import osapi

    osapi.os_verify_parameters(search_path(ctx), name, osparams, required=True)


def _env(
    ctx: NodeContext,
    instance: objects.Instance,
    disks_paths: list[str],
    networks: dict[str, objects.Network],
    debug: int,
    extra: dict[str, str],
) -> tuple[Any, dict[str, str]]:
    from corral import osapi

    osdef, variant = osapi.find_os(search_path(ctx), instance.os)
    disks = [
        osapi.DiskEnv.from_disk(disk, disks_paths[i] if i < len(disks_paths) else None)
        for i, disk in enumerate(instance.disks)
    ]
    nics = [
        osapi.NicEnv.from_nic(nic, None, networks.get(nic.network) if nic.network else None)
        for nic in instance.nics
    ]
    osparams = dict(instance.osparams)
    osparams.update(instance.osparams_private)
    env = osapi.build_env(
        osdef,
        variant,
        instance,
        disks,
        nics,
        instance.hypervisor,
        osparams,
        debug,
        extra,
        image_config_dir=os.path.join(ctx.paths.ganeti_etc_dir, "instance-image"),
    )
    return osdef, env


def _run(
    ctx: NodeContext,
    script: str,
    instance: objects.Instance,
    disks_paths: list[str],
    networks: dict[str, objects.Network],
    debug: int,
    extra: dict[str, str],
) -> None:
    from corral import osapi

    osdef, env = _env(ctx, instance, disks_paths, networks, debug, extra)
    log_path = osapi.log_file_name(
        ctx.paths.os_log_dir, osapi.LOG_KIND[script], instance.os, instance.name
    )
    osapi.run_script(osdef, script, env, log_path)


def instance_os_add(
    ctx: NodeContext,
    instance: objects.Instance,
    disks_paths: list[str],
    reinstall: bool,
    debug: int,
    networks: dict[str, objects.Network],
) -> None:
    """Run the OS ``create`` script on the instance's assembled disks."""
    extra = {"INSTANCE_REINSTALL": "1"} if reinstall else {}
    _run(ctx, "create", instance, disks_paths, networks, debug, extra)


def instance_run_rename(
    ctx: NodeContext,
    instance: objects.Instance,
    old_name: str,
    disks_paths: list[str],
    debug: int,
) -> None:
    """Run the OS ``rename`` script (`instance` already carries the new name)."""
    _run(ctx, "rename", instance, disks_paths, {}, debug, {"OLD_INSTANCE_NAME": old_name})
