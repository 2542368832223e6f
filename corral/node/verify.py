"""`node_verify`: the node's half of `gnt-cluster verify`.

The master asks for a set of checks (a dict: check name -> its argument) and
gets back only those, each answered independently: one failing check becomes
an error string in its slot instead of failing the whole call.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec

from corral import constants as C
from corral.node import node_info as ni
from corral.node.context import PROTOCOL_VERSION, NodeContext


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1024 * 1024):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _hypervisors(ctx: NodeContext, names: list[str]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name in names:
        try:
            hv = ctx.hypervisor(name)
            hv.get_node_info()
            result[name] = None
        except Exception as err:
            result[name] = str(err) or type(err).__name__
    return result


def _nodelist(ctx: NodeContext, nodes: dict[str, str]) -> dict[str, str]:
    """Reachability of other nodes' noded port from here: name -> error (failures only)."""
    failures: dict[str, str] = {}
    for name, ip in nodes.items():
        if name == ctx.node_name:
            continue
        try:
            with socket.create_connection((ip, C.NODED_PORT), timeout=C.RPC_CONNECT_TIMEOUT):
                pass
        except OSError as err:
            failures[name] = f"TCP connection to {ip}:{C.NODED_PORT} failed: {err}"
    return failures


def _hvinfo(ctx: NodeContext, name: str) -> dict[str, Any]:
    info = msgspec.to_builtins(ctx.hypervisor(name).get_node_info())
    assert isinstance(info, dict)
    return info


def _os(ctx: NodeContext, _arg: Any) -> list[dict[str, Any]]:
    from corral.node import os_ops

    return os_ops.os_diagnose(ctx)


def _instancelist(ctx: NodeContext, names: list[str]) -> list[str]:
    from corral.node import instances

    return instances.instance_list(ctx, names)


_CHECKS: dict[str, Callable[[NodeContext, Any], Any]] = {
    "version": lambda ctx, _: [PROTOCOL_VERSION, C.RELEASE_VERSION],
    "hypervisor": lambda ctx, arg: _hypervisors(ctx, list(arg or [])),
    "filelist": lambda ctx, arg: {path: _sha256(path) for path in arg or []},
    "nodelist": lambda ctx, arg: _nodelist(ctx, dict(arg or {})),
    "bridges": lambda ctx, arg: ni.bridges_exist(ctx, list(arg or [])),
    "instancelist": _instancelist,
    "hvinfo": _hvinfo,
    "storage": lambda ctx, arg: msgspec.to_builtins(ni.storage_info(ctx, arg)),
    "volumes": lambda ctx, _: ni.node_volumes(ctx),
    "time": lambda ctx, _: time.time(),
    "os": _os,
    "node_name": lambda ctx, _: ctx.node_name,
}


def node_verify(ctx: NodeContext, checks: dict[str, Any]) -> dict[str, Any]:
    """Run the requested checks; an unknown check or a crash becomes ``{"error": msg}``."""
    result: dict[str, Any] = {}
    for name, arg in checks.items():
        fn = _CHECKS.get(name)
        if fn is None:
            result[name] = {"error": f"Unknown verify check '{name}'"}
            continue
        try:
            result[name] = fn(ctx, arg)
        except Exception as err:
            result[name] = {"error": str(err) or type(err).__name__}
    return result
