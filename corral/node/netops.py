"""Taps of instance NICs: the backend's side of the network driver.

The backend creates one tap per NIC before the hypervisor starts (or accepts) a
VM, plugs it into the NIC's bridge, and deletes the taps when the VM is gone
from this node. Which taps belong to which instance is recorded in
``<run_dir>/taps/<instance>.json`` (index -> tap name), so a restarted noded
still cleans up after VMs it started before.
"""

from __future__ import annotations

import contextlib
import os

import msgspec

from corral import constants as C
from corral import errors
from corral.hypervisor.base import NicInfo
from corral.node.context import NodeContext
from corral.node.security import atomic_write


def _record_path(ctx: NodeContext, instance: str) -> str:
    return os.path.join(ctx.paths.run_dir, "taps", f"{instance}.json")


def recorded_taps(ctx: NodeContext, instance: str) -> dict[int, str]:
    try:
        with open(_record_path(ctx, instance), "rb") as fh:
            return msgspec.json.decode(fh.read(), type=dict[int, str])
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return {}


def _save(ctx: NodeContext, instance: str, taps: dict[int, str]) -> None:
    path = _record_path(ctx, instance)
    if not taps:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    atomic_write(path, msgspec.json.encode(taps), 0o644)


def tap_name(instance: str, index: int, taken: set[str] | None = None) -> str:
    """Stable tap name for NIC `index`; a later ``seq`` if that name is in `taken`."""
    from corral import network

    seq = 0
    while True:
        name = str(network.tap_name_for(instance, index, seq))
        if not taken or name not in taken:
            return name
        seq += 1


def _plug(tap: str, nic: NicInfo) -> None:
    from corral import network

    network.create_tap(tap)
    try:
        if nic.mode in (C.NIC_MODE_BRIDGED, C.NIC_MODE_OVS) and nic.link:
            _attach(tap, nic)
    except BaseException:
        _unplug(tap)
        raise


def _attach(tap: str, nic: NicInfo) -> None:
    """Plug `tap` into the NIC's bridge (VLAN tagging is not supported here yet)."""
    from corral import network

    network.attach_to_bridge(tap, nic.link)


def _unplug(tap: str) -> None:
    from corral import network

    with contextlib.suppress(errors.NetworkError):
        network.delete_tap(tap)


def setup_nics(ctx: NodeContext, instance: str, nics: list[NicInfo]) -> list[NicInfo]:
    """Create and plug a tap for each NIC; return the NICs with their tap set.

    On failure every tap made here is removed again and NetworkError raised.
    """
    made: dict[int, str] = {}
    result: list[NicInfo] = []
    try:
        for idx, nic in enumerate(nics):
            tap = nic.tap or tap_name(instance, idx)
            _plug(tap, nic)
            made[idx] = tap
            result.append(msgspec.structs.replace(nic, tap=tap))
    except Exception as err:
        for tap in made.values():
            _unplug(tap)
        if isinstance(err, errors.GenericError):
            raise
        raise errors.NetworkError(f"Cannot create the taps of {instance}: {err}") from err
    with ctx.lock:
        taps = recorded_taps(ctx, instance)
        taps.update(made)
        _save(ctx, instance, taps)
    return result


def teardown_nics(ctx: NodeContext, instance: str, extra: list[str] | None = None) -> None:
    """Delete every tap recorded for `instance` (and `extra` names); absent is fine."""
    with ctx.lock:
        taps = set(recorded_taps(ctx, instance).values()) | set(extra or [])
        _save(ctx, instance, {})
    for tap in sorted(taps):
        _unplug(tap)


def add_nic(ctx: NodeContext, instance: str, nic: NicInfo, index: int) -> NicInfo:
    """Hotplug: one new tap at `index` (a fresh name if the slot's tap still exists)."""
    tap = nic.tap or tap_name(instance, index, set(recorded_taps(ctx, instance).values()))
    try:
        _plug(tap, nic)
    except errors.GenericError:
        raise
    except Exception as err:
        _unplug(tap)
        raise errors.NetworkError(f"Cannot create tap {tap}: {err}") from err
    with ctx.lock:
        taps = recorded_taps(ctx, instance)
        taps[index] = tap
        _save(ctx, instance, taps)
    return msgspec.structs.replace(nic, tap=tap)


def remove_nic(ctx: NodeContext, instance: str, nic: NicInfo, index: int) -> None:
    with ctx.lock:
        taps = recorded_taps(ctx, instance)
        tap = taps.pop(index, None) or nic.tap
        _save(ctx, instance, taps)
    if tap:
        _unplug(tap)


def move_nic(ctx: NodeContext, instance: str, nic: NicInfo, index: int) -> NicInfo:
    """NIC modify: re-plug the existing tap into the NIC's (new) bridge."""
    from corral import network

    tap = recorded_taps(ctx, instance).get(index) or nic.tap or tap_name(instance, index)
    try:
        network.detach(tap)
        if nic.mode in (C.NIC_MODE_BRIDGED, C.NIC_MODE_OVS) and nic.link:
            _attach(tap, nic)
    except errors.GenericError:
        raise
    except Exception as err:
        raise errors.NetworkError(f"Cannot move tap {tap} to {nic.link}: {err}") from err
    return msgspec.structs.replace(nic, tap=tap)
