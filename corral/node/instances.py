"""Instance life cycle on this node, through the hypervisor registry.

Disks are assembled beforehand by `blockdev_assemble` (the master passes their
paths in the start spec); NIC taps are made here (`corral.node.netops`) right
before the hypervisor starts or accepts a VM and removed once the VM left this
node (shutdown, failed start, migration source after success, migration target
after failure).
"""

from __future__ import annotations

from typing import Any

import msgspec

from corral import errors, objects
from corral.hypervisor.base import (
    BlockDeviceInfo,
    ConsoleInfo,
    InstanceRuntime,
    InstanceStartSpec,
    MigrationStatus,
    NicInfo,
)
from corral.node import netops
from corral.node.context import NodeContext


def _with_taps(ctx: NodeContext, spec: InstanceStartSpec) -> InstanceStartSpec:
    nics = netops.setup_nics(ctx, spec.instance.name, spec.nics)
    return msgspec.structs.replace(spec, nics=nics)


def instance_start(ctx: NodeContext, spec: InstanceStartSpec, hv_name: str) -> InstanceRuntime:
    """Create the taps, start the VM; on failure remove the taps again."""
    hv = ctx.hypervisor(hv_name)
    name = spec.instance.name
    if hv.get_instance_info(name) is not None:
        raise errors.HypervisorError(f"Instance {name} is already running")
    full = _with_taps(ctx, spec)
    try:
        return hv.start_instance(full)
    except BaseException:
        netops.teardown_nics(ctx, name)
        raise


def _taps_of(runtime: InstanceRuntime | None) -> list[str]:
    if runtime is None:
        return []
    return [nic.tap for nic in runtime.nics if nic.tap]


def instance_shutdown(
    ctx: NodeContext, name: str, hv_name: str, timeout: float, force: bool
) -> None:
    """Stop the VM (not running is fine) and delete its taps."""
    hv = ctx.hypervisor(hv_name)
    runtime = hv.get_instance_info(name)
    if runtime is not None:
        hv.stop_instance(name, force=force, timeout=timeout)
    netops.teardown_nics(ctx, name, _taps_of(runtime))


def instance_reboot(
    ctx: NodeContext,
    name: str,
    hv_name: str,
    reboot_type: str,
    spec: InstanceStartSpec | None,
    timeout: float,
) -> None:
    """soft/hard: the hypervisor reboots the VM; full: shutdown then start with `spec`."""
    hv = ctx.hypervisor(hv_name)
    if reboot_type in ("soft", "hard"):
        if hv.get_instance_info(name) is None:
            raise errors.HypervisorError(f"Cannot reboot instance {name}: it is not running")
        hv.reboot_instance(name)
        return
    if reboot_type != "full":
        raise errors.ParameterError(f"Invalid reboot type '{reboot_type}'")
    if spec is None:
        raise errors.ParameterError("A full reboot needs the instance start spec")
    instance_shutdown(ctx, name, hv_name, timeout, False)
    instance_start(ctx, spec, hv_name)


def instance_info(ctx: NodeContext, name: str, hv_name: str) -> InstanceRuntime | None:
    return ctx.hypervisor(hv_name).get_instance_info(name)


def all_instances_info(ctx: NodeContext, hv_names: list[str]) -> dict[str, InstanceRuntime]:
    result: dict[str, InstanceRuntime] = {}
    for hv_name in hv_names:
        for runtime in ctx.hypervisor(hv_name).get_all_instances_info():
            result[runtime.name] = runtime
    return result


def instance_list(ctx: NodeContext, hv_names: list[str]) -> list[str]:
    names: set[str] = set()
    for hv_name in hv_names:
        names.update(ctx.hypervisor(hv_name).list_instances())
    return sorted(names)


def instance_console_info(
    ctx: NodeContext,
    instance: objects.Instance,
    hvparams: dict[str, Any],
    hv_name: str,
    node_name: str,
) -> ConsoleInfo:
    return ctx.hypervisor(hv_name).get_console(instance, hvparams, node_name)


# -- migration ------------------------------------------------------------------------------
def _no_migration(hv_name: str) -> errors.HypervisorError:
    return errors.HypervisorError(f"Hypervisor {hv_name} does not support migration")


def migration_info(ctx: NodeContext, instance: objects.Instance, hv_name: str) -> dict[str, Any]:
    try:
        return ctx.hypervisor(hv_name).migration_info(instance)
    except NotImplementedError as err:
        raise _no_migration(hv_name) from err


def accept_instance(
    ctx: NodeContext,
    spec: InstanceStartSpec,
    info: dict[str, Any],
    target_ip: str,
    hv_name: str,
) -> dict[str, Any]:
    """Target side: taps, then the hypervisor waits for the incoming VM."""
    hv = ctx.hypervisor(hv_name)
    full = _with_taps(ctx, spec)
    try:
        return hv.accept_instance(full, info, target_ip)
    except NotImplementedError as err:
        netops.teardown_nics(ctx, spec.instance.name)
        raise _no_migration(hv_name) from err
    except BaseException:
        netops.teardown_nics(ctx, spec.instance.name)
        raise


def instance_migrate(
    ctx: NodeContext,
    name: str,
    hv_name: str,
    target_ip: str,
    accept_data: dict[str, Any],
    live: bool,
) -> None:
    try:
        ctx.hypervisor(hv_name).migrate_instance(name, target_ip, accept_data, live)
    except NotImplementedError as err:
        raise _no_migration(hv_name) from err


def instance_get_migration_status(ctx: NodeContext, name: str, hv_name: str) -> MigrationStatus:
    try:
        return ctx.hypervisor(hv_name).get_migration_status(name)
    except NotImplementedError as err:
        raise _no_migration(hv_name) from err


def instance_finalize_migration_dst(
    ctx: NodeContext, name: str, hv_name: str, success: bool
) -> None:
    """Target side: keep the VM (success) or kill it and drop its taps (failure)."""
    try:
        ctx.hypervisor(hv_name).finalize_migration_dst(name, success)
    except NotImplementedError as err:
        raise _no_migration(hv_name) from err
    finally:
        if not success:
            netops.teardown_nics(ctx, name)


def instance_finalize_migration_src(
    ctx: NodeContext, name: str, hv_name: str, success: bool, live: bool
) -> None:
    """Source side: after a successful migration the VM is gone; drop its taps."""
    try:
        ctx.hypervisor(hv_name).finalize_migration_src(name, success, live)
    except NotImplementedError as err:
        raise _no_migration(hv_name) from err
    if success:
        netops.teardown_nics(ctx, name)


# -- hotplug -------------------------------------------------------------------------------
def hotplug_supported(ctx: NodeContext, name: str, hv_name: str) -> None:
    ctx.hypervisor(hv_name).hotplug_supported(name)


def hotplug_device(
    ctx: NodeContext,
    name: str,
    hv_name: str,
    action: str,
    dev_type: str,
    device: dict[str, Any],
    index: int,
) -> None:
    """Add/remove/modify a NIC or disk of a running VM."""
    hv = ctx.hypervisor(hv_name)
    hv.hotplug_supported(name)
    try:
        if dev_type == "nic":
            nic = msgspec.convert(device, NicInfo, strict=False)
            if action == "add":
                plugged = netops.add_nic(ctx, name, nic, index)
                try:
                    hv.hot_add_nic(name, plugged, index)
                except BaseException:
                    netops.remove_nic(ctx, name, plugged, index)
                    raise
            elif action == "remove":
                hv.hot_del_nic(name, nic, index)
                netops.remove_nic(ctx, name, nic, index)
            elif action == "modify":
                moved = netops.move_nic(ctx, name, nic, index)
                hv.hot_mod_nic(name, moved, index)
            else:
                raise errors.ParameterError(f"Invalid hotplug action '{action}'")
        elif dev_type == "disk":
            disk = msgspec.convert(device, BlockDeviceInfo, strict=False)
            if action == "add":
                hv.hot_add_disk(name, disk, index)
            elif action == "remove":
                hv.hot_del_disk(name, disk, index)
            else:
                raise errors.HypervisorError(
                    f"Hotplug action '{action}' is not supported for disks"
                )
        else:
            raise errors.ParameterError(f"Invalid hotplug device type '{dev_type}'")
    except msgspec.ValidationError as err:
        raise errors.ParameterError(f"Invalid {dev_type} description: {err}") from err
    except NotImplementedError as err:
        raise errors.HypervisorError(
            f"Hypervisor {hv_name} cannot {action} a {dev_type} while running"
        ) from err


def instance_balloon_memory(ctx: NodeContext, name: str, hv_name: str, memory: int) -> None:
    try:
        ctx.hypervisor(hv_name).balloon_instance_memory(name, memory)
    except NotImplementedError as err:
        raise errors.HypervisorError(f"Hypervisor {hv_name} cannot balloon memory") from err
