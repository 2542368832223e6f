"""Typed hypervisor parameters: conversion, filling and checking against a table.

A hypervisor declares its parameters as ``dict[str, Param]`` (see
`corral.hypervisor.base.Param`). This module holds the generic machinery every
driver shares, with Ganeti's semantics and messages:

* `convert_value` / `convert_params` turn CLI strings into typed values the way
  Ganeti's ``ForceDictType`` does: ``"true"``/``"false"`` (any case) for
  booleans, ``int()`` for integers, strings kept as given. An empty string is a
  real value, not "use the default": ``-H kernel_path=`` means *no kernel*, and
  for a boolean it means False. (Resetting to the default is spelled
  ``default`` or ``None``; see `update_params`.)
* `check_syntax` is Ganeti's ``CheckParameterSyntax``: unknown names, required
  values, per-parameter syntax checks. It runs on the master, touches nothing.
* `check_on_node` is Ganeti's ``ValidateParameters``: the node-local checks
  (files and directories that must exist).

Every failure raises `HypervisorError` with a one-line message in Ganeti's
wording.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from corral.errors import HypervisorError
from corral.hypervisor.base import Param

# Ganeti's VALUE_DEFAULT: "reset this parameter to the inherited value"
VALUE_DEFAULT = "default"


def is_empty(value: Any) -> bool:
    """Ganeti's notion of an unset value (``not value``): '', 0, False, None."""
    return not value


def convert_value(name: str, param: Param, value: Any) -> Any:
    """Convert one value (often a CLI string) to the parameter's kind."""
    kind = param.kind
    if kind == "bool":
        if isinstance(value, str):
            low = value.strip().lower()
            if low == "true":
                return True
            if low in ("false", ""):
                return False
            raise HypervisorError(f"'{name}' (value {value}) is not a valid boolean")
        return bool(value)
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise HypervisorError(f"'{name}' (value {value}) is not a valid integer") from None
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise HypervisorError(f"'{name}' (value {value}) is not a valid number") from None
    # str, path, enum, list: strings (a false boolean becomes "", as in Ganeti)
    if value is None or value is False:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise HypervisorError(f"'{name}' (value {value}) is not a valid string")


def convert_params(table: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """Typed copy of `params`; raises for names not in `table`."""
    result: dict[str, Any] = {}
    for name, value in params.items():
        param = table.get(name)
        if param is None:
            raise HypervisorError(f"Unknown parameter '{name}'")
        result[name] = convert_value(name, param, value)
    return result


def defaults(table: Mapping[str, Param]) -> dict[str, Any]:
    return {name: p.default for name, p in table.items()}


def fill(table: Mapping[str, Param], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid by each layer in turn (cluster, OS, instance...), converted."""
    result = defaults(table)
    for layer in layers:
        result.update(convert_params(table, layer))
    return result


def update_params(
    table: Mapping[str, Param], old: Mapping[str, Any], updates: Mapping[str, Any]
) -> dict[str, Any]:
    """Ganeti's ``GetUpdatedParams`` for one level of overrides.

    A value of ``default`` (or None) removes the key, so the level above
    applies again; any other value is converted and stored.
    """
    result = dict(old)
    for name, value in updates.items():
        if name not in table:
            raise HypervisorError(f"Unknown parameter '{name}'")
        if value is None or (isinstance(value, str) and value == VALUE_DEFAULT):
            result.pop(name, None)
        else:
            result[name] = convert_value(name, table[name], value)
    return result


def check_syntax(
    table: Mapping[str, Param],
    hvparams: Mapping[str, Any],
    skip: Collection[str] = (),
) -> dict[str, Any]:
    """Check names, required values and per-parameter syntax; return the typed dict.

    Missing names take the table's default (the master checks filled dicts, so
    this only matters for callers checking a partial dict).
    """
    for name in hvparams:
        if name not in table:
            raise HypervisorError(f"Parameter '{name}' is not supported")
    typed = fill(table, hvparams)
    for name, param in table.items():
        if name in skip:
            continue
        value = typed[name]
        if is_empty(value):
            if param.required:
                raise HypervisorError(
                    f"Parameter '{name}' is required but is currently not defined"
                )
            continue
        error = _syntax_error(param, value)
        if error is not None:
            raise HypervisorError(
                f"Parameter '{name}' fails syntax check: {error} (current value: '{value}')"
            )
    return typed


def _syntax_error(param: Param, value: Any) -> str | None:
    if param.choices and value not in param.choices:
        return "The value must be one of: " + ", ".join(sorted(param.choices))
    if param.check is not None:
        return param.check(value)
    return None


def check_on_node(
    table: Mapping[str, Param], hvparams: Mapping[str, Any], skip: Collection[str] = ()
) -> None:
    """Run the node-local checks (``Parameter 'x' fails validation: ...``)."""
    typed = fill(table, hvparams)
    for name, param in table.items():
        if name in skip or param.node_check is None:
            continue
        value = typed[name]
        if is_empty(value):
            continue
        error = param.node_check(value)
        if error is not None:
            raise HypervisorError(
                f"Parameter '{name}' fails validation: {error} (current value: '{value}')"
            )
