"""``gnt-group``: node groups (allocation units with their own policy)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corral import constants as C
from corral import opcodes as op
from corral.cli import _util as U
from corral.cli._generic_info import (
    InfoList,
    format_generic_info,
    format_params_dict_info,
    format_policy_info,
    format_value,
)
from corral.cli._util import Arg, Command, opt

#: default fields of ``gnt-group list``
LIST_DEF_FIELDS = ["name", "node_cnt", "pinst_cnt", "alloc_policy", "ndparams"]

_ALLOC_POLICIES = [C.ALLOC_POLICY_PREFERRED, C.ALLOC_POLICY_LAST_RESORT, C.ALLOC_POLICY_UNALLOCABLE]


def format_dict(data: Any) -> str:
    """``k=v, k=v`` (Ganeti's _FmtDict for the NDParams column); ``(empty)``."""
    if not data:
        return "(empty)"
    return ", ".join(f"{key}={format_value(value)}" for key, value in data.items())


def list_groups(opts: argparse.Namespace, client: Any) -> int:
    fields = U.parse_fields(opts.output, LIST_DEF_FIELDS)
    override = {
        "node_list": (U.comma_list, False),
        "pinst_list": (U.comma_list, False),
        "ndparams": (format_dict, False),
    }
    return U.generic_list(client, "group", fields, opts.names, opts, format_override=override)


def list_group_fields(opts: argparse.Namespace, client: Any) -> int:
    return U.generic_list_fields(client, "group", opts.fields, opts)


def _diskparams(opts: argparse.Namespace) -> dict[str, Any] | None:
    groups = opts.diskparams or []
    return {ident: params for ident, params in groups} if groups else None


def add_group(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpGroupAdd(
                group_name=opts.name,
                ndparams=opts.ndparams,
                alloc_policy=opts.alloc_policy,
                diskparams=_diskparams(opts),
                ipolicy=U.ipolicy_from_opts(opts) or None,
            )
        ],
    )
    return 0


def assign_nodes(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(
        opts,
        client,
        [op.OpGroupAssignNodes(group_name=opts.name, nodes=list(opts.nodes), force=opts.force)],
    )
    return 0


def modify_group(opts: argparse.Namespace, client: Any) -> int:
    ipolicy = U.ipolicy_from_opts(opts)
    if not (opts.ndparams or opts.alloc_policy or opts.diskparams or ipolicy):
        U.warn("Please give at least one of the parameters.")
        return 1
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpGroupSetParams(
                group_name=opts.name,
                ndparams=opts.ndparams,
                alloc_policy=opts.alloc_policy,
                diskparams=_diskparams(opts),
                ipolicy=ipolicy or None,
            )
        ],
    )
    if result:
        U.write(f"Modified node group {opts.name}")
        for param, data in result:
            U.write(f" - {param:<5} -> {data}")
    return 0


def remove_group(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(opts, client, [op.OpGroupRemove(group_name=opts.name)])
    return 0


_INFO_FIELDS = [
    "name",
    "ndparams",
    "custom_ndparams",
    "diskparams",
    "custom_diskparams",
    "ipolicy",
    "custom_ipolicy",
]


def format_group_info(row: list[Any]) -> InfoList:
    name, ndparams, custom_nd, diskparams, custom_disk, ipolicy, custom_ipolicy = row
    return [
        ("Node group", name),
        ("Node parameters", format_params_dict_info(custom_nd or {}, ndparams or {})),
        ("Disk parameters", format_params_dict_info(custom_disk or {}, diskparams or {})),
        ("Instance policy", format_policy_info(custom_ipolicy or {}, ipolicy or {}, False)),
    ]


def show_group_info(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "group", _INFO_FIELDS, opts.names)
    U.write(format_generic_info([format_group_info(row) for row in rows]))
    return 0


def list_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.list_tags(client, C.TAG_NODEGROUP, opts.name)


def add_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.add_tags(opts, client, C.TAG_NODEGROUP, opts.name, opts.tags)


def remove_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.remove_tags(opts, client, C.TAG_NODEGROUP, opts.name, opts.tags)


_GROUP = Arg("name", metavar="<group>")
_GROUPS = Arg("names", nargs="*", metavar="<group>")
_TAGS = Arg("tags", nargs="*", metavar="tag")
_PARAM_OPTS = [
    opt(
        "--alloc-policy",
        default=None,
        metavar="POLICY",
        choices=_ALLOC_POLICIES,
        help="Allocation policy for the node group",
    ),
    U.NODE_PARAMS_OPT,
    opt(
        "-D",
        "--disk-parameters",
        dest="diskparams",
        action="append",
        default=[],
        type=U.identkeyval_type,
        help="Disk template parameters, in the format template:option=value,option=value,...",
    ),
    *U.IPOLICY_OPTS,
]

commands: dict[str, Command] = {
    "add": Command(
        add_group,
        [_GROUP],
        [U.DRY_RUN_OPT, *_PARAM_OPTS, U.PRIORITY_OPT, *U.SUBMIT_OPTS],
        "<group-name>",
        "Add a new node group to the cluster",
    ),
    "assign-nodes": Command(
        assign_nodes,
        [_GROUP, Arg("nodes", nargs="+", metavar="<node>")],
        [U.DRY_RUN_OPT, U.FORCE_OPT, U.PRIORITY_OPT, *U.SUBMIT_OPTS],
        "<group-name> <node-name>...",
        "Assign nodes to a group",
    ),
    "list": Command(
        list_groups,
        [_GROUPS],
        [U.NOHDR_OPT, U.SEP_OPT, U.FIELDS_OPT, U.VERBOSE_OPT, U.FORCE_FILTER_OPT],
        "[<group-name>...]",
        "Lists the node groups in the cluster. The available fields can be shown"
        ' using the "list-fields" command (see the man page for details). The'
        " default list is (in order): " + ", ".join(LIST_DEF_FIELDS) + ".",
    ),
    "list-fields": Command(
        list_group_fields,
        [Arg("fields", nargs="*")],
        [U.NOHDR_OPT, U.SEP_OPT],
        "[fields...]",
        "Lists all available fields for node groups",
    ),
    "modify": Command(
        modify_group,
        [_GROUP],
        [U.DRY_RUN_OPT, *U.SUBMIT_OPTS, *_PARAM_OPTS, U.PRIORITY_OPT],
        "<group>",
        "Alters the parameters of a node group",
    ),
    "remove": Command(
        remove_group,
        [_GROUP],
        [U.DRY_RUN_OPT, U.PRIORITY_OPT, *U.SUBMIT_OPTS],
        "[--dry-run] <group>",
        "Remove an (empty) node group from the cluster",
    ),
    "info": Command(
        show_group_info, [_GROUPS], [], "[<group>...]", "Show group information", aliases=("show",)
    ),
    "list-tags": Command(list_tags, [_GROUP], [], "<group>", "List the tags of the given group"),
    "add-tags": Command(
        add_tags, [_GROUP, _TAGS], U.TAG_OPTS, "<group> <tag>...", "Add tags to the given group"
    ),
    "remove-tags": Command(
        remove_tags,
        [_GROUP, _TAGS],
        U.TAG_OPTS,
        "<group> <tag>...",
        "Remove tags from the given group",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``gnt-group``."""
    return U.run_main("gnt-group", commands, argv)


if __name__ == "__main__":
    sys.exit(main())
