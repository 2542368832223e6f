"""Building the trees that Ganeti's ``PrintGenericInfo`` prints (info commands).

``gnt-instance info``, ``gnt-node info``, ``gnt-cluster info`` and
``gnt-group info`` print YAML-like trees (rendered by common.py's
``format_generic_info``). The data is built from:

* ``dict``: printed sorted by key;
* ``list`` of ``(key, value)`` tuples: an *ordered* mapping;
* other ``list``/``tuple``: ``- item`` entries;
* anything else: ``str(value)`` (so booleans print ``True``, None ``None``).

A key whose value is a container ends its line with ``": "`` and the
children follow on the next lines, indented by two spaces per level; an
empty container prints nothing after ``": "``. This trailing space is
Ganeti's and kept on purpose so outputs compare byte for byte.
"""

from __future__ import annotations

import time
from typing import Any

from corral.cli import common

#: an ordered mapping as Ganeti's printers build it
InfoList = list[tuple[str, Any]]


def format_generic_info(data: Any) -> str:
    """Render ``data`` as Ganeti's PrintGenericInfo (common.py), one string."""
    return "\n".join(common.format_generic_info(data))


def format_params_dict_info(own: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Show each effective parameter, marking inherited ones ``default (x)``.

    ``own`` holds what the object sets itself, ``actual`` the effective values
    (defaults filled in); nested dicts recurse.
    """
    result: dict[str, Any] = {}
    for key, value in actual.items():
        if isinstance(value, dict) and value:
            result[key] = format_params_dict_info(own.get(key) or {}, value)
        elif key in own:
            result[key] = format_value(own[key])
        else:
            result[key] = f"default ({format_value(value)})"
    return result


def format_value(value: Any) -> str:
    """``str()`` as Ganeti prints it; integral floats print as integers.

    Ganeti's configuration comes from Haskell where ``4.0`` is serialised as
    ``4``; corral keeps floats, so print them the way Ganeti users see them.
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_grouped_params(params: dict[str, Any]) -> dict[str, Any]:
    """Stringify a ``{group: {param: value}}`` tree (cluster info)."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            result[key] = format_grouped_params(value)
        else:
            result[key] = format_value(value)
    return result


def comma_join(items: Any) -> str:
    """Ganeti's ``utils.CommaJoin``."""
    return ", ".join(str(item) for item in items)


def format_time(value: float | None) -> str:
    """Ganeti's ``utils.FormatTime`` (local time, ``?`` for no value)."""
    if value is None or not isinstance(value, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


_ISPECS_MINMAX_KEYS = ("max", "min")
_IPOLICY_RATIOS = ("vcpu-ratio", "spindle-ratio", "memory-ratio")


def format_policy_info(
    custom: dict[str, Any], effective: dict[str, Any] | None, is_cluster: bool
) -> InfoList:
    """Ganeti's ``FormatPolicyInfo``: bounds, std (cluster only), templates, ratios.

    ``memory-ratio`` (Ganeti 3.1) is printed only when the policy has it.
    """
    eff = custom if is_cluster or effective is None else effective
    bounds: list[InfoList] = []
    own_minmax = custom.get("minmax")
    for idx, minmax in enumerate(own_minmax or eff.get("minmax", [])):
        own = minmax if own_minmax else {}
        bounds.append(
            [
                (f"{key}/{idx}", format_params_dict_info(own.get(key, {}), minmax.get(key, {})))
                for key in _ISPECS_MINMAX_KEYS
            ]
        )
    result: InfoList = [("bounds specs", bounds)]
    if is_cluster:
        std = custom.get("std", {})
        result.append(("std", format_params_dict_info(std, std)))
    templates = custom.get("disk-templates")
    if templates is not None:
        result.append(("allowed disk templates", comma_join(templates)))
    else:
        dflt = comma_join(eff.get("disk-templates", []))
        result.append(("allowed disk templates", f"default ({dflt})"))
    for key in _IPOLICY_RATIOS:
        if key in custom:
            result.append((key, format_value(custom[key])))
        elif key in eff:
            result.append((key, f"default ({format_value(eff[key])})"))
    return result
