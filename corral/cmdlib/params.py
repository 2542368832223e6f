"""Filling and checking instance parameters (backend, hypervisor, NIC).

Ganeti's rule: effective = cluster default <- OS-specific (hv) <- instance's
own. The instance stores only what the user set (so changing a cluster default
changes every instance that did not override it); `gnt-instance info` shows the
rest as ``default (value)``.
"""

from __future__ import annotations

from typing import Any

from corral import constants as C
from corral import objects
from corral.errors import ECODE_INVAL, HypervisorError, OpPrereqError, UnitParseError
from corral.hypervisor import get_hypervisor_class
from corral.utils.units import parse_unit


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise OpPrereqError(
        f"Invalid value '{value}' for parameter '{name}': not a boolean", ECODE_INVAL
    )


def check_beparams(params: dict[str, Any], *, allow_memory: bool = True) -> dict[str, Any]:
    """Type-check and normalise backend parameters (sizes to MiB).

    ``memory`` is Ganeti's legacy alias: it sets both minmem and maxmem.
    """
    result: dict[str, Any] = {}
    for name, value in params.items():
        kind = C.BES_PARAMETER_TYPES.get(name)
        if kind is None:
            raise OpPrereqError(f"Unknown backend parameter '{name}'", ECODE_INVAL)
        if value is None:
            result[name] = None
            continue
        if kind == "size":
            try:
                result[name] = parse_unit(value) if isinstance(value, str) else int(value)
            except (UnitParseError, ValueError, TypeError) as exc:
                raise OpPrereqError(
                    f"Invalid value '{value}' for parameter '{name}': {exc}", ECODE_INVAL
                ) from exc
        elif kind == "int":
            try:
                result[name] = int(value)
            except (ValueError, TypeError) as exc:
                raise OpPrereqError(
                    f"Invalid value '{value}' for parameter '{name}': not an integer", ECODE_INVAL
                ) from exc
        else:
            result[name] = _to_bool(name, value)
    if C.BE_MEMORY in result:
        if not allow_memory:
            raise OpPrereqError("Parameter 'memory' is not allowed here", ECODE_INVAL)
        mem = result.pop(C.BE_MEMORY)
        result.setdefault(C.BE_MAXMEM, mem)
        result.setdefault(C.BE_MINMEM, mem)
    for key in (C.BE_MAXMEM, C.BE_MINMEM, C.BE_VCPUS):
        val = result.get(key)
        if isinstance(val, int) and val <= 0:
            raise OpPrereqError(f"Parameter '{key}' must be positive, got {val}", ECODE_INVAL)
    return result


def fill_beparams(cluster: objects.Cluster, custom: dict[str, Any]) -> dict[str, Any]:
    filled = objects.fill_dict(dict(C.BEC_DEFAULTS), cluster.beparams.get("default", {}))
    filled = objects.fill_dict(filled, {k: v for k, v in custom.items() if v is not None})
    if int(filled[C.BE_MINMEM]) > int(filled[C.BE_MAXMEM]):
        raise OpPrereqError(
            f"Minimum memory ({filled[C.BE_MINMEM]}) is bigger than maximum memory"
            f" ({filled[C.BE_MAXMEM]})",
            ECODE_INVAL,
        )
    return filled


def fill_hvparams(
    cluster: objects.Cluster, hv_name: str, os_name: str, custom: dict[str, Any]
) -> dict[str, Any]:
    hv_cls = get_hypervisor_class(hv_name)
    filled = objects.fill_dict(hv_cls.defaults(), cluster.hvparams.get(hv_name, {}))
    os_base = os_name.split("+", 1)[0]
    for key in (os_base, os_name):
        filled = objects.fill_dict(filled, cluster.os_hvp.get(key, {}).get(hv_name, {}))
    return objects.fill_dict(filled, custom)


def check_hvparams(hv_name: str, filled: dict[str, Any]) -> None:
    """Syntax check on the master; HypervisorError becomes a prerequisite error."""
    try:
        hv_cls = get_hypervisor_class(hv_name)
        unknown = sorted(set(filled) - set(hv_cls.PARAMETERS))
        if unknown:
            raise HypervisorError(f"Unknown hypervisor parameter(s): {', '.join(unknown)}")
        hv_cls.check_parameter_syntax(filled)
    except HypervisorError as exc:
        raise OpPrereqError(f"Hypervisor parameter validation failed: {exc}", ECODE_INVAL) from exc


def fill_nicparams(cluster: objects.Cluster, custom: dict[str, Any]) -> dict[str, Any]:
    base = {C.NIC_MODE: C.NIC_MODE_BRIDGED, C.NIC_LINK: C.DEFAULT_BRIDGE, C.NIC_VLAN: ""}
    filled = objects.fill_dict(base, cluster.nicparams.get("default", {}))
    filled = objects.fill_dict(filled, {k: v for k, v in custom.items() if v is not None})
    if filled[C.NIC_MODE] not in C.NIC_MODES:
        raise OpPrereqError(f"Invalid NIC mode '{filled[C.NIC_MODE]}'", ECODE_INVAL)
    if filled[C.NIC_MODE] == C.NIC_MODE_BRIDGED and not filled[C.NIC_LINK]:
        raise OpPrereqError("Bridged NIC needs a link (bridge)", ECODE_INVAL)
    return filled
