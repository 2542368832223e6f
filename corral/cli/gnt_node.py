"""``gnt-node``: add, remove, inspect, drain, migrate and evacuate nodes (see
`corral.cli._node_add` for how ``add`` authenticates the joining node)."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from corral import constants as C
from corral import errors
from corral import opcodes as op
from corral.cli import _util as U
from corral.cli._generic_info import InfoList, format_generic_info, format_params_dict_info
from corral.cli._node_add import add_node
from corral.cli._node_power import HEALTH_OPTS, POWER_OPTS, node_health, power_node
from corral.cli._util import Arg, Command, opt

#: default fields of ``gnt-node list`` (Ganeti's _LIST_DEF_FIELDS)
LIST_DEF_FIELDS = ["name", "dtotal", "dfree", "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt"]

_INFO_FIELDS = [
    "name",
    "pip",
    "sip",
    "pinst_list",
    "sinst_list",
    "master_candidate",
    "drained",
    "offline",
    "master_capable",
    "vm_capable",
    "powered",
    "ndparams",
    "custom_ndparams",
]

_YESNO = "yes|no"


# --- other commands ----------------------------------------------------------------


def remove_node(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(opts, client, [op.OpNodeRemove(node_name=opts.name)])
    return 0


def list_nodes(opts: argparse.Namespace, client: Any) -> int:
    fields = U.parse_fields(opts.output, LIST_DEF_FIELDS)
    override = {name: (U.comma_list, False) for name in ("pinst_list", "sinst_list", "tags")}
    return U.generic_list(client, "node", fields, opts.names, opts, format_override=override)


def list_node_fields(opts: argparse.Namespace, client: Any) -> int:
    return U.generic_list_fields(client, "node", opts.fields, opts)


def format_node_info(row: list[Any]) -> InfoList:
    """One node for PrintGenericInfo (fields in the order of ``_INFO_FIELDS``)."""
    (
        name,
        pip,
        sip,
        pinst,
        sinst,
        is_mc,
        drained,
        offline,
        master_capable,
        vm_capable,
        powered,
        ndparams,
        custom_ndparams,
    ) = row
    info: InfoList = [
        ("Node name", name),
        ("primary ip", pip),
        ("secondary ip", sip),
        ("master candidate", is_mc),
        ("drained", drained),
        ("offline", offline),
    ]
    # Ganeti knows the power state only through an out-of-band program
    if powered is not None and (ndparams or {}).get("oob_program"):
        info.append(("powered", powered))
    info.extend([("master_capable", master_capable), ("vm_capable", vm_capable)])
    if vm_capable:
        info.append(("primary for instances", U.nice_sort(list(pinst or []))))
        info.append(("secondary for instances", U.nice_sort(list(sinst or []))))
    info.append(("node parameters", format_params_dict_info(custom_ndparams or {}, ndparams or {})))
    return info


def show_node_info(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "node", _INFO_FIELDS, opts.names)
    U.write(format_generic_info([format_node_info(row) for row in rows]))
    return 0


def modify_node(opts: argparse.Namespace, client: Any) -> int:
    changes = [
        opts.master_candidate,
        opts.drained,
        opts.offline,
        opts.master_capable,
        opts.vm_capable,
        opts.secondary_ip,
        opts.ndparams,
        opts.node_powered,
    ]
    if all(change is None for change in changes):
        U.warn("Please give at least one of the parameters.")
        return 1
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpNodeSetParams(
                node_name=opts.name,
                master_candidate=opts.master_candidate,
                offline=opts.offline,
                drained=opts.drained,
                master_capable=opts.master_capable,
                vm_capable=opts.vm_capable,
                secondary_ip=opts.secondary_ip,
                force=opts.force,
                ndparams=opts.ndparams,
                auto_promote=opts.auto_promote,
                powered=opts.node_powered,
            )
        ],
    )
    if result:
        U.write(f"Modified node {opts.name}")
        for param, data in result:
            U.write(f" - {param:<5} -> {data}")
    return 0


def migrate_node(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "node", ["name", "pinst_list"], [opts.name])
    node, pinst = rows[0]
    if not pinst:
        U.write(f"No primary instances on node {node}, exiting.")
        return 0
    names = U.nice_sort(list(pinst))
    if not opts.force and not U.ask_user(f"Migrate instance(s) {', '.join(names)}?"):
        return C.EXIT_CONFIRMATION
    if not opts.live and opts.migration_mode is not None:
        raise errors.OpPrereqError(
            "Only one of the --non-live and --migration-mode options can be passed",
            errors.ECODE_INVAL,
        )
    mode = C.HT_MIGRATION_NONLIVE if not opts.live else opts.migration_mode
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpNodeMigrate(
                node_name=opts.name,
                mode=mode,
                iallocator=opts.iallocator,
                target_node=opts.dst_node,
                allow_runtime_changes=opts.allow_runtime_chgs,
                ignore_ipolicy=opts.ignore_ipolicy,
            )
        ],
    )
    bad = sum(1 for ok, _ in U.wait_for_result_jobs(client, result) if not ok)
    if bad:
        U.write(f"There were {bad} errors during the node migration.")
        return C.EXIT_FAILURE
    U.write("All instances migrated successfully.")
    return C.EXIT_SUCCESS


def evacuate_node(opts: argparse.Namespace, client: Any) -> int:
    if opts.dst_node is not None:
        U.warn(
            "New secondary node given (disabling iallocator), hence evacuating secondary"
            " instances only."
        )
        opts.secondary_only, opts.primary_only = True, False
    if opts.secondary_only and opts.primary_only:
        raise errors.OpPrereqError(
            "Only one of the --primary-only and --secondary-only options can be passed",
            errors.ECODE_INVAL,
        )
    if opts.primary_only:
        mode = C.NODE_EVAC_PRI
    elif opts.secondary_only:
        mode = C.NODE_EVAC_SEC
    else:
        mode = C.NODE_EVAC_ALL
    fields = ([] if opts.secondary_only else ["pinst_list"]) + (
        [] if opts.primary_only else ["sinst_list"]
    )
    rows = U.query_rows(client, "node", fields, opts.names, check=False)
    instances = set(itertools.chain.from_iterable(cell or [] for row in rows for cell in row))
    if not instances:
        U.warn(f"No instances to evacuate on node(s) {', '.join(opts.names)}, exiting.")
        return C.EXIT_SUCCESS
    if not opts.force and not U.ask_user(
        f"Relocate instance(s) {', '.join(U.nice_sort(sorted(instances)))} from node(s)"
        f" {', '.join(opts.names)}?"
    ):
        return C.EXIT_CONFIRMATION
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpNodeEvacuate(
                node_name=opts.names[0],
                mode=mode,
                remote_node=opts.dst_node,
                iallocator=opts.iallocator,
                early_release=opts.early_release,
            )
        ],
    )
    bad = sum(1 for ok, _ in U.wait_for_result_jobs(client, result) if not ok)
    if bad:
        U.write(f"There were {bad} errors during the evacuation.")
        return C.EXIT_FAILURE
    U.write("All instances evacuated successfully.")
    return C.EXIT_SUCCESS


def failover_node(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "node", ["name", "pinst_list"], [opts.name])
    node, pinst = rows[0]
    if not pinst:
        U.warn(f"No primary instances on node {node}, exiting.")
        return 0
    names = U.nice_sort(list(pinst))
    if not opts.force and not U.ask_user(
        "Fail over instance(s) " + ",".join(f"'{name}'" for name in names) + "?"
    ):
        return 2
    jex = U.JobExecutor(client, opts)
    for name in names:
        jex.queue_job(
            name,
            op.OpInstanceFailover(
                instance_name=name,
                ignore_consistency=opts.ignore_consistency,
                iallocator=opts.iallocator,
            ),
        )
    results = jex.get_results()
    bad = sum(1 for ok, _ in results if not ok)
    if bad:
        U.write(
            f"There were errors during the failover:\n{bad} error(s) out of"
            f" {len(results)} instance(s)."
        )
    else:
        U.write(f"All {len(results)} instance(s) failed over successfully.")
    return 0


def list_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.list_tags(client, C.TAG_NODE, opts.name)


def add_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.add_tags(opts, client, C.TAG_NODE, opts.name, opts.tags)


def remove_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.remove_tags(opts, client, C.TAG_NODE, opts.name, opts.tags)


# --- command table -------------------------------------------------------------------

_NODE = Arg("name", metavar="<node_name>")
_NODES = Arg("names", nargs="*", metavar="<node>")
_TAGS = Arg("tags", nargs="*", metavar="tag")
_SECONDARY_IP = opt(
    "-s",
    "--secondary-ip",
    default=None,
    metavar="ADDRESS",
    help="Specify the secondary ip for the node",
)
_CAPABLE = [
    opt(
        "--master-capable",
        type=U.bool_type,
        default=None,
        metavar=_YESNO,
        help="Set the master_capable flag on the node",
    ),
    opt(
        "--vm-capable",
        type=U.bool_type,
        default=None,
        metavar=_YESNO,
        help="Set the vm_capable flag on the node",
    ),
]
_DST_NODE = opt(
    "-n",
    "--target-node",
    dest="dst_node",
    default=None,
    metavar="NODE",
    help="Specifies the new node for the instance",
)

commands: dict[str, Command] = {
    "add": Command(
        add_node,
        [_NODE],
        [
            _SECONDARY_IP,
            opt(
                "--readd",
                action="store_true",
                default=False,
                help="Readd old node after replacing it",
            ),
            opt(
                "--node-fingerprint",
                default=None,
                metavar="FP",
                help="SHA-256 fingerprint of the node daemon certificate (skips the prompt)",
            ),
            opt(
                "--join-token",
                default=None,
                metavar="TOKEN",
                help="Pre-shared join token the node was started with (skips the prompt)",
            ),
            opt(
                "--no-ssh-key-check",
                dest="ssh_key_check",
                action="store_false",
                default=True,
                help="Accepted for compatibility; corral does not use SSH",
            ),
            opt(
                "--no-node-setup",
                dest="node_setup",
                action="store_false",
                default=True,
                help="Accepted for compatibility; corral does not use SSH",
            ),
            U.NODEGROUP_OPT,
            *_CAPABLE,
            U.NODE_PARAMS_OPT,
            U.PRIORITY_OPT,
        ],
        "[-s ip] [--readd] [--node-fingerprint FP | --join-token TOKEN] <node_name>",
        "Add a node to the cluster",
    ),
    "remove": Command(
        remove_node,
        [_NODE],
        [U.DRY_RUN_OPT, U.PRIORITY_OPT],
        "<node_name>",
        "Removes a node from the cluster",
    ),
    "list": Command(
        list_nodes,
        [_NODES],
        U.LIST_OPTS,
        "[nodes...]",
        "Lists the nodes in the cluster. The available fields can be shown using"
        ' the "list-fields" command (see the man page for details). The default'
        " field list is (in order): " + ", ".join(LIST_DEF_FIELDS) + ".",
    ),
    "list-fields": Command(
        list_node_fields,
        [Arg("fields", nargs="*")],
        [U.NOHDR_OPT, U.SEP_OPT],
        "[fields...]",
        "Lists all available fields for nodes",
    ),
    "info": Command(
        show_node_info,
        [_NODES],
        [],
        "[<node_name>...]",
        "Show information about the node(s)",
        aliases=("show",),
    ),
    "modify": Command(
        modify_node,
        [_NODE],
        [
            U.FORCE_OPT,
            *U.SUBMIT_OPTS,
            opt(
                "-C",
                "--master-candidate",
                type=U.bool_type,
                default=None,
                metavar=_YESNO,
                help="Set the master_candidate flag on the node",
            ),
            opt(
                "-D",
                "--drained",
                type=U.bool_type,
                default=None,
                metavar=_YESNO,
                help="Set the drained flag on the node (excluded from allocation operations)",
            ),
            opt(
                "-O",
                "--offline",
                type=U.bool_type,
                default=None,
                metavar=_YESNO,
                help="Set the offline flag on the node (cluster does not communicate with"
                " offline nodes)",
            ),
            *_CAPABLE,
            _SECONDARY_IP,
            opt(
                "--auto-promote",
                action="store_true",
                default=False,
                help="Lock all nodes and auto-promote as needed to MC status",
            ),
            opt(
                "--node-powered",
                type=U.bool_type,
                default=None,
                metavar=_YESNO,
                help="Specify if the SoR for node is powered",
            ),
            U.NODE_PARAMS_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
        ],
        "<node_name>",
        "Alters the parameters of a node",
    ),
    "migrate": Command(
        migrate_node,
        [_NODE],
        [
            U.FORCE_OPT,
            U.NONLIVE_OPT,
            U.MIGRATION_MODE_OPT,
            _DST_NODE,
            U.IALLOCATOR_OPT,
            U.IGNORE_IPOLICY_OPT,
            opt(
                "--no-runtime-changes",
                dest="allow_runtime_chgs",
                action="store_false",
                default=True,
                help="Don't allow runtime changes",
            ),
            *U.SUBMIT_OPTS,
            U.PRIORITY_OPT,
        ],
        "[-f] <node>",
        "Migrate all the primary instance on a node away from it (only for instances of type drbd)",
    ),
    "evacuate": Command(
        evacuate_node,
        [Arg("names", nargs="+", metavar="<node>")],
        [
            U.FORCE_OPT,
            U.IALLOCATOR_OPT,
            opt(
                "-n",
                "--new-secondary",
                dest="dst_node",
                default=None,
                metavar="NODE",
                help="Specifies the new secondary node",
            ),
            U.EARLY_RELEASE_OPT,
            opt(
                "-p",
                "--primary-only",
                action="store_true",
                default=False,
                help="Evacuate primary instances only",
            ),
            opt(
                "-s",
                "--secondary-only",
                action="store_true",
                default=False,
                help="Evacuate secondary instances only (applies only to internally mirrored"
                " disk templates, e.g. drbd)",
            ),
            *U.SUBMIT_OPTS,
            U.PRIORITY_OPT,
        ],
        "[-f] {-I <iallocator> | -n <dst>} [-p | -s] [options...] <node>",
        "Relocate the primary and/or secondary instances from a node",
    ),
    "failover": Command(
        failover_node,
        [_NODE],
        [
            U.FORCE_OPT,
            opt(
                "--ignore-consistency",
                action="store_true",
                default=False,
                help="Ignore the consistency of the disks on the secondary. The source node must"
                " be marked offline first for this to succeed.",
            ),
            U.IALLOCATOR_OPT,
            U.PRIORITY_OPT,
        ],
        "[-f] <node>",
        "Stops the primary instances on a node and start them on their"
        " secondary node (only for instances with drbd disk template)",
    ),
    "power": Command(
        power_node,
        # one list: argparse cannot take options between two positionals
        [Arg("power_args", nargs="+", metavar="on|off|cycle|status [nodes...]")],
        POWER_OPTS,
        "on|off|cycle|status [nodes...]",
        "Change power state of node by calling out-of-band helper.",
    ),
    "health": Command(
        node_health,
        [_NODES],
        HEALTH_OPTS,
        "[<node_name>...]",
        "Show health of a node using OOB",
    ),
    "list-tags": Command(list_tags, [_NODE], [], "<node_name>", "List the tags of the given node"),
    "add-tags": Command(
        add_tags, [_NODE, _TAGS], U.TAG_OPTS, "<node_name> tag...", "Add tags to the given node"
    ),
    "remove-tags": Command(
        remove_tags,
        [_NODE, _TAGS],
        U.TAG_OPTS,
        "<node_name> tag...",
        "Remove tags from the given node",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``gnt-node``."""
    return U.run_main("gnt-node", commands, argv)


if __name__ == "__main__":
    sys.exit(main())
