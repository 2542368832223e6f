"""Helpers shared by gnt-cluster/node/instance/os/group.

This module is the one name space the command modules use (``U.xxx``): it
re-exports the command-table pieces of `corral.cli._opts` and the job
plumbing of `corral.cli._jobs`, and holds the parameter helpers (ipolicy,
backend parameters), query helpers (name filters, `query_rows`,
`nice_sort`), ``list``/``list-fields`` rendering and the tag commands.

Command functions have the signature ``fn(opts, client) -> exit code``;
``opts`` is the argparse namespace (positional arguments under the names of
their `Arg`), ``client`` the local API client (or a fake in tests).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from corral import constants as C
from corral import errors
from corral.cli._jobs import (
    JobExecutor,
    JobSubmitted,
    ask_user,
    format_error_text,
    format_log_line,
    poll_job,
    run_main,
    submit_or_wait,
    wait_for_result_jobs,
    warn,
    write,
)
from corral.cli._opts import (
    DRY_RUN_OPT,
    EARLY_RELEASE_OPT,
    FIELDS_OPT,
    FORCE_FILTER_OPT,
    FORCE_OPT,
    IALLOCATOR_OPT,
    IGNORE_IPOLICY_OPT,
    IPOLICY_OPTS,
    LIST_OPTS,
    MIGRATION_MODE_OPT,
    NODE_PARAMS_OPT,
    NODEGROUP_OPT,
    NOHDR_OPT,
    NONLIVE_OPT,
    PRINT_JOBID_OPT,
    PRIORITY_OPT,
    SEP_OPT,
    SUBMIT_OPT,
    SUBMIT_OPTS,
    TAG_SRC_OPT,
    USEUNITS_OPT,
    VERBOSE_OPT,
    Arg,
    ClientLike,
    Command,
    CommandFn,
    Opt,
    UsageError,
    arg_type,
    bool_type,
    common_table,
    distribute_args,
    identkeyval_type,
    keyval_type,
    list_type,
    maybe_float_type,
    multilist_type,
    op_common,
    opt,
    parse_command,
    unit_type,
)
from corral.cli.common import (
    format_generic_info,
    generic_list,
    generic_list_fields,
    name_filter,
    parse_fields,
)
from corral.utils.keyval import KeyValDict, parse_bool
from corral.utils.units import parse_unit

#: re-exported for the command modules (``U.<name>``)
__all__ = [
    "DRY_RUN_OPT",
    "EARLY_RELEASE_OPT",
    "FIELDS_OPT",
    "FORCE_FILTER_OPT",
    "FORCE_OPT",
    "IALLOCATOR_OPT",
    "IGNORE_IPOLICY_OPT",
    "IPOLICY_OPTS",
    "LIST_OPTS",
    "MIGRATION_MODE_OPT",
    "NODEGROUP_OPT",
    "NODE_PARAMS_OPT",
    "NOHDR_OPT",
    "NONLIVE_OPT",
    "PRINT_JOBID_OPT",
    "PRIORITY_OPT",
    "SEP_OPT",
    "SUBMIT_OPT",
    "SUBMIT_OPTS",
    "TAG_SRC_OPT",
    "USEUNITS_OPT",
    "VERBOSE_OPT",
    "Arg",
    "ClientLike",
    "Command",
    "CommandFn",
    "JobExecutor",
    "JobSubmitted",
    "Opt",
    "UsageError",
    "arg_type",
    "ask_user",
    "bool_type",
    "common_table",
    "distribute_args",
    "format_error_text",
    "format_generic_info",
    "format_log_line",
    "generic_list",
    "generic_list_fields",
    "identkeyval_type",
    "keyval_type",
    "list_type",
    "maybe_float_type",
    "multilist_type",
    "name_filter",
    "op_common",
    "opt",
    "parse_command",
    "parse_fields",
    "poll_job",
    "run_main",
    "submit_or_wait",
    "unit_type",
    "wait_for_result_jobs",
    "warn",
    "write",
]


# --- parameter helpers -----------------------------------------------------------------


def ipolicy_from_opts(opts: argparse.Namespace, *, with_std: bool = False) -> dict[str, Any]:
    """Ganeti's ``CreateIPolicyFromOpts`` for the ``--ipolicy-*`` options.

    Only what the user gave is returned; sizes in the specs become MiB.
    """
    policy: dict[str, Any] = {}
    bounds = getattr(opts, "ipolicy_bounds_specs", None)
    if bounds is not None:
        minmax: list[dict[str, dict[str, int]]] = []
        for pair in bounds:
            out: dict[str, dict[str, int]] = {}
            for key, spec in pair.items():
                if key not in ("min", "max"):
                    raise errors.OpPrereqError(
                        f"Invalid key in bounds instance specifications: {key}",
                        errors.ECODE_INVAL,
                    )
                out[key] = _parse_ispec(spec, key)
            minmax.append(out)
        policy["minmax"] = minmax
    std = getattr(opts, "ipolicy_std_specs", None) if with_std else None
    if std is not None:
        policy["std"] = _parse_ispec(std, "std")
    templates = getattr(opts, "ipolicy_disk_templates", None)
    if templates is not None:
        policy["disk-templates"] = list(templates)
    for name, key in (
        ("ipolicy_vcpu_ratio", "vcpu-ratio"),
        ("ipolicy_spindle_ratio", "spindle-ratio"),
    ):
        value = getattr(opts, name, None)
        if value is not None:
            policy[key] = value
    return policy


def _parse_ispec(spec: KeyValDict, keyname: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for key, value in spec.items():
        try:
            if key in ("disk-size", "memory-size"):
                result[key] = parse_unit(str(value))
            else:
                result[key] = int(str(value))
        except (errors.UnitParseError, ValueError) as err:
            raise errors.OpPrereqError(
                f"Invalid parameter {key} ({value}) in {keyname} instance specs: {err}",
                errors.ECODE_INVAL,
            ) from err
    return result


def convert_beparams(params: dict[str, Any]) -> dict[str, Any]:
    """Type backend parameters as Ganeti's ForceDictType does (sizes to MiB).

    ``default`` and None (``-key``) pass through (reset to the default).
    """
    result: dict[str, Any] = {}
    for key, value in params.items():
        kind = C.BES_PARAMETER_TYPES.get(key)
        if value is None or not isinstance(value, str) or value.lower() == "default":
            result[key] = value
        elif kind == "size":
            try:
                result[key] = parse_unit(value)
            except errors.UnitParseError as err:
                raise errors.OpPrereqError(
                    f"Invalid value '{value}' for parameter '{key}': {err}", errors.ECODE_INVAL
                ) from err
        elif kind == "int":
            try:
                result[key] = int(value)
            except ValueError as err:
                raise errors.OpPrereqError(
                    f"Invalid value '{value}' for parameter '{key}': not an integer",
                    errors.ECODE_INVAL,
                ) from err
        elif kind == "bool":
            try:
                result[key] = parse_bool(value)
            except errors.ParameterError as err:
                raise errors.OpPrereqError(str(err), errors.ECODE_INVAL) from err
        else:
            result[key] = value  # unknown: let the master reject it with its message
    return result


def split_node_option(value: str | None) -> tuple[str | None, str | None]:
    """``-n pnode[:snode]`` (Ganeti's SplitNodeOption)."""
    if not value:
        return None, None
    if ":" in value:
        pnode, snode = value.split(":", 1)
        return pnode, snode
    return value, None


# --- queries ---------------------------------------------------------------------------


def query_rows(
    client: Any, what: str, fields: list[str], names: Sequence[str] = (), check: bool = True
) -> list[list[Any]]:
    """Run a query and return plain values (abnormal statuses become None).

    With ``check`` raises OpPrereqError like Ganeti when a requested name is
    unknown (``Instance 'x' not known``).
    """
    response = client.query(what, fields, name_filter(names))
    rows = [[cell[1] if cell[0] == 0 else None for cell in row] for row in response["data"]]
    if check and names and "name" in fields:
        idx = fields.index("name")
        found = {row[idx] for row in rows}
        for name in names:
            if name not in found and not any(str(f).startswith(name + ".") for f in found):
                label = {"instance": "Instance", "node": "Node", "group": "Group"}.get(
                    what, what.capitalize()
                )
                raise errors.OpPrereqError(f"{label} '{name}' not known", errors.ECODE_NOENT)
    return rows


def nice_sort(names: Sequence[str]) -> list[str]:
    """Ganeti's NiceSort: digit runs compare as numbers (node2 < node10)."""
    import re

    def key(name: str) -> list[tuple[int, int | str]]:
        return [
            (0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", name)
            if part
        ]

    return sorted(names, key=key)


# --- list helpers ---------------------------------------------------------------------


def comma_list(value: Any) -> str:
    return ",".join(str(item) for item in value) if isinstance(value, list | tuple) else str(value)


# --- tags ------------------------------------------------------------------------------


def _tags_from(opts: argparse.Namespace, tags: list[str]) -> list[str]:
    source = getattr(opts, "tags_source", None)
    result = list(tags)
    if source:
        if source == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(source, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        result.extend(line.strip() for line in lines if line.strip())
    return result


def list_tags(client: Any, kind: str, name: str | None) -> int:
    """Print the tags of an object, sorted (Ganeti's ListTags via QueryTags)."""
    for tag in sorted(client.query_tags(kind, name)):
        write(str(tag))
    return 0


def add_tags(
    opts: argparse.Namespace, client: Any, kind: str, name: str | None, tags: list[str]
) -> int:
    from corral import opcodes

    all_tags = _tags_from(opts, tags)
    if not all_tags:
        raise errors.OpPrereqError("No tags to be added", errors.ECODE_INVAL)
    submit_or_wait(opts, client, [opcodes.OpTagsSet(kind=kind, name=name, tags=all_tags)])
    return 0


def remove_tags(
    opts: argparse.Namespace, client: Any, kind: str, name: str | None, tags: list[str]
) -> int:
    from corral import opcodes

    all_tags = _tags_from(opts, tags)
    if not all_tags:
        raise errors.OpPrereqError("No tags to be removed", errors.ECODE_INVAL)
    submit_or_wait(opts, client, [opcodes.OpTagsDel(kind=kind, name=name, tags=all_tags)])
    return 0


TAG_OPTS = [TAG_SRC_OPT, PRIORITY_OPT, *SUBMIT_OPTS]
