"""``gnt-cluster``: create, inspect, verify and change the cluster as a whole.

``init``, ``copyfile``, ``getmaster``, ``master-failover`` and the last
step of ``destroy`` run locally on the node (no master daemon needed, or the
master daemon is what they change), through `corral.cli.bootstrap`:

* ``bootstrap.init_cluster(params: InitParams) -> None``: create the
  cluster on this node and leave corral-masterd running (the CLI then submits
  OpClusterPostInit, as Ganeti does);
* ``bootstrap.copy_file(path: str, nodes: list[str]) -> list[tuple[str, str]]``:
  copy a local file to the given nodes (all other online nodes when empty);
  returns (node, error) for each failed copy;
* ``bootstrap.master_failover(no_voting: bool) -> tuple[int, list[str]]``:
  make this node the master; exit code and messages for stderr;
* ``bootstrap.finalize_cluster_destroy(master_uuid: str) -> None``: stop the
  daemons and remove the cluster state after OpClusterDestroy succeeded;
* ``bootstrap.get_master() -> str`` (optional): master name from local
  state, used by ``getmaster`` without the master daemon.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from corral import constants as C
from corral import errors
from corral import opcodes as op
from corral.cli import _util as U
from corral.cli._cluster_build import build_init_params, build_set_params_op, has_modifications
from corral.cli._cluster_info import format_cluster_info, format_version
from corral.cli._cluster_queue import queue_ops, watcher_ops
from corral.cli._generic_info import format_generic_info
from corral.cli._util import Arg, Command, opt


def bootstrap() -> Any:
    """``corral.cli.bootstrap`` (the local, daemon-less half of gnt-cluster)."""
    return importlib.import_module("corral.cli.bootstrap")


# --- options -----------------------------------------------------------------------

_YESNO = "yes|no"
HVLIST_OPT = opt(
    "-H",
    "--hypervisor-parameters",
    dest="hvparams",
    action="append",
    default=[],
    type=U.identkeyval_type,
    help="Hypervisor and hypervisor options, in the format"
    " hypervisor:option=value,option=value,...",
)
BACKEND_OPT = opt(
    "-B",
    "--backend-parameters",
    dest="beparams",
    type=U.keyval_type,
    default={},
    help="Backend parameters",
)
NIC_PARAMS_OPT = opt(
    "-N",
    "--nic-parameters",
    dest="nicparams",
    type=U.keyval_type,
    default={},
    help="NIC parameters",
)
DISK_PARAMS_OPT = opt(
    "-D",
    "--disk-parameters",
    dest="diskparams",
    action="append",
    default=[],
    type=U.identkeyval_type,
    help="Disk template parameters, in the format template:option=value,option=value,...",
)
VG_NAME_OPT = opt(
    "--vg-name",
    default=None,
    metavar="VG",
    help="Enables LVM and specifies the volume group name (cluster-wide) for"
    f" disk allocation [{C.DEFAULT_VG}]",
)
ENABLED_HV_OPT = opt(
    "--enabled-hypervisors", default=None, help="Comma-separated list of hypervisors"
)
ENABLED_DT_OPT = opt(
    "--enabled-disk-templates", default=None, help="Comma-separated list of disk templates"
)
MASTER_NETDEV_OPT = opt(
    "--master-netdev",
    default=None,
    metavar="NETDEV",
    help="Specify the node interface (cluster-wide) on which the master IP"
    f" address will be added (cluster init default: {C.DEFAULT_BRIDGE})",
)
MASTER_NETMASK_OPT = opt(
    "--master-netmask", default=None, metavar="NETMASK", help="Specify the netmask of the master IP"
)
MAC_PREFIX_OPT = opt(
    "-m",
    "--mac-prefix",
    default=None,
    metavar="PREFIX",
    help="Specify the mac prefix for the instance IP addresses, in the format XX:XX:XX",
)
FILEDIR_OPT = opt(
    "--file-storage-dir",
    default=None,
    metavar="DIR",
    help="Specify the default directory (cluster-wide) for storing the file-based"
    f" disks [{C.DEFAULT_FILE_STORAGE_DIR}]",
)
SHARED_FILEDIR_OPT = opt(
    "--shared-file-storage-dir",
    default=None,
    metavar="SHAREDDIR",
    help="Specify the default directory (cluster-wide) for storing the"
    f" shared file-based disks [{C.DEFAULT_SHARED_FILE_STORAGE_DIR}]",
)
DEFAULT_IALLOCATOR_OPT = opt(
    "-I",
    "--default-iallocator",
    default=None,
    metavar="<NAME>",
    help="Set the default instance allocator plugin",
)
DEFAULT_IALLOCATOR_PARAMS_OPT = opt(
    "--default-iallocator-params",
    type=U.keyval_type,
    default=None,
    help="iallocator template parameters, in the format template:option=value, option=value,...",
)
DRBD_HELPER_OPT = opt(
    "--drbd-usermode-helper",
    dest="drbd_helper",
    default=None,
    help="Specifies usermode helper for DRBD",
)
AUTO_FAILOVER_OPT = opt(
    "--auto-failover",
    type=U.bool_type,
    default=None,
    metavar=_YESNO,
    help="Fail instances over automatically (fenced) when their primary"
    " node dies (corral extension, default no)",
)
YESNO_FLAGS = [
    opt(
        "--maintain-node-health",
        type=U.bool_type,
        default=None,
        metavar=_YESNO,
        help="Configure the cluster to automatically maintain node health, by shutting down"
        " unknown instances, shutting down unknown DRBD devices, etc.",
    ),
    opt(
        "--prealloc-wipe-disks",
        type=U.bool_type,
        default=None,
        metavar=_YESNO,
        help="Wipe disks prior to instance creation",
    ),
    opt(
        "--use-external-mip-script",
        type=U.bool_type,
        default=None,
        metavar=_YESNO,
        help="Specify whether to run a user-provided script for the master IP address turnup"
        " and turndown operations",
    ),
]
STD_SPECS_OPT = opt(
    "--ipolicy-std-specs",
    dest="ipolicy_std_specs",
    type=U.keyval_type,
    default=None,
    help="Complete standard instance specs",
)
COMMON_PARAM_OPTS = [
    VG_NAME_OPT,
    ENABLED_HV_OPT,
    ENABLED_DT_OPT,
    HVLIST_OPT,
    BACKEND_OPT,
    NIC_PARAMS_OPT,
    DISK_PARAMS_OPT,
    U.NODE_PARAMS_OPT,
    MASTER_NETDEV_OPT,
    MASTER_NETMASK_OPT,
    MAC_PREFIX_OPT,
    FILEDIR_OPT,
    SHARED_FILEDIR_OPT,
    DEFAULT_IALLOCATOR_OPT,
    DEFAULT_IALLOCATOR_PARAMS_OPT,
    DRBD_HELPER_OPT,
    AUTO_FAILOVER_OPT,
    *YESNO_FLAGS,
    *U.IPOLICY_OPTS,
    STD_SPECS_OPT,
    opt("-C", "--candidate-pool-size", type=int, default=None, help="Set the candidate pool size"),
]
INIT_OPTS = [
    *COMMON_PARAM_OPTS,
    opt(
        "-s",
        "--secondary-ip",
        default=None,
        metavar="ADDRESS",
        help="Specify the secondary ip for this node",
    ),
    opt(
        "--primary-ip-version",
        type=int,
        default=4,
        choices=[4, 6],
        metavar="4|6",
        help="Cluster-wide IP version for primary IP",
    ),
    opt(
        "--no-etc-hosts",
        dest="modify_etc_hosts",
        action="store_false",
        default=True,
        help="Don't modify /etc/hosts",
    ),
]
MODIFY_OPTS = [
    *COMMON_PARAM_OPTS,
    opt(
        "--max-running-jobs",
        type=int,
        default=None,
        help="Set the maximal number of jobs to run simultaneously",
    ),
    opt(
        "--max-tracked-jobs",
        type=int,
        default=None,
        help="Set the maximal number of jobs to be tracked simultaneously for scheduling",
    ),
    U.FORCE_OPT,
    *U.SUBMIT_OPTS,
    U.DRY_RUN_OPT,
    U.PRIORITY_OPT,
]

# --- commands ----------------------------------------------------------------------


def init_cluster(opts: argparse.Namespace, client: Any) -> int:
    try:
        params, notes = build_init_params(opts)
    except errors.OpPrereqError as err:
        U.warn(str(err))
        return 1
    for note in notes:
        U.write(note)
    bootstrap().init_cluster(params)
    U.submit_or_wait(argparse.Namespace(), client, [op.OpClusterPostInit()])
    return 0


def modify_cluster(opts: argparse.Namespace, client: Any) -> int:
    if not has_modifications(opts):
        U.warn("Please give at least one of the parameters.")
        return 1
    set_op, notes = build_set_params_op(opts)
    for note in notes:
        U.write(note)
    U.submit_or_wait(opts, client, [set_op])
    return 0


def show_cluster_info(opts: argparse.Namespace, client: Any) -> int:
    U.write(format_generic_info(format_cluster_info(client.query_cluster_info())))
    return 0


def show_version(opts: argparse.Namespace, client: Any) -> int:
    for line in format_version(client.query_cluster_info()):
        U.write(line)
    return 0


def show_master(opts: argparse.Namespace, client: Any) -> int:
    getter = getattr(bootstrap(), "get_master", None)
    master = getter() if getter is not None else client.query_config_values(["master_node"])[0]
    U.write(str(master))
    return 0


def verify_cluster(opts: argparse.Namespace, client: Any) -> int:
    skip = ["nplusone_mem"] if opts.skip_nplusone_mem else []
    verify = op.OpClusterVerify(
        verbose=opts.verbose,
        error_codes=opts.error_codes,
        debug_simulate_errors=opts.simulate_errors,
        skip_checks=skip,
        ignore_errors=list(opts.ignore_errors),
        group_name=opts.nodegroup,
    )
    result = U.submit_or_wait(argparse.Namespace(priority=opts.priority), client, [verify])
    results = U.wait_for_result_jobs(client, result)
    bad_jobs = sum(1 for ok, _ in results if not ok)
    bad_results = sum(1 for ok, res in results if ok and not (res and res[0]))
    if bad_jobs:
        U.write(f"{bad_jobs} job(s) failed while verifying the cluster.")
    return C.EXIT_FAILURE if bad_jobs or bad_results else C.EXIT_SUCCESS


def copy_file(opts: argparse.Namespace, client: Any) -> int:
    path = os.path.abspath(opts.filename)
    if not os.path.exists(path):
        raise errors.OpPrereqError(f"No such filename '{path}'", errors.ECODE_INVAL)
    failures = bootstrap().copy_file(path, list(opts.nodes))
    for node, message in failures or []:
        U.warn(f"Copy of file {path} to node {node} failed: {message}")
    return C.EXIT_FAILURE if failures else C.EXIT_SUCCESS


def master_failover(opts: argparse.Namespace, client: Any) -> int:
    if opts.no_voting and not opts.yes_do_it:
        question = (
            "This will perform the failover even if most other nodes are down, or if"
            " this node is outdated. This is dangerous as it can lead to a"
            " non-consistent cluster. Check the gnt-cluster(8) man page before"
            " proceeding. Continue?"
        )
        if not U.ask_user(question):
            return 1
    rvalue, messages = bootstrap().master_failover(no_voting=opts.no_voting)
    for message in messages:
        U.warn(message)
    return int(rvalue)


def destroy_cluster(opts: argparse.Namespace, client: Any) -> int:
    if not opts.yes_do_it:
        U.warn(
            "Destroying a cluster is irreversible. If you really want destroy this"
            " cluster, supply the --yes-do-it option."
        )
        return 1
    master_uuid = U.submit_or_wait(argparse.Namespace(), client, [op.OpClusterDestroy()])
    bootstrap().finalize_cluster_destroy(master_uuid)
    return 0


def redist_conf(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(opts, client, [op.OpClusterRedistConf()])
    return 0


def activate_master_ip(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(opts, client, [op.OpClusterActivateMasterIp()])
    return 0


def deactivate_master_ip(opts: argparse.Namespace, client: Any) -> int:
    if not opts.confirm and not U.ask_user(
        "This will disable the master IP. All the open connections to the master IP will be"
        " closed. To reach the master you will need to use its node IP. Continue?"
    ):
        return 1
    U.submit_or_wait(opts, client, [op.OpClusterDeactivateMasterIp()])
    return 0


def list_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.list_tags(client, C.TAG_CLUSTER, None)


def add_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.add_tags(opts, client, C.TAG_CLUSTER, None, opts.tags)


def remove_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.remove_tags(opts, client, C.TAG_CLUSTER, None, opts.tags)


_YES_DO_IT = opt(
    "--yes-do-it",
    "--ya-rly",
    dest="yes_do_it",
    action="store_true",
    default=False,
    help="Destroy cluster",
)
_TAGS = Arg("tags", nargs="*", metavar="tag")

commands: dict[str, Command] = {
    "init": Command(
        init_cluster,
        [Arg("name", metavar="<cluster_name>")],
        INIT_OPTS,
        "[opts...] <cluster_name>",
        "Initialises a new cluster configuration",
    ),
    "destroy": Command(destroy_cluster, [], [_YES_DO_IT], "", "Destroy cluster"),
    "redist-conf": Command(
        redist_conf,
        [],
        [
            opt(
                "--yes-do-it",
                dest="yes_do_it",
                action="store_true",
                default=False,
                help="Unconditionally distribute the configuration, even if the queue is drained",
            ),
            *U.SUBMIT_OPTS,
            U.PRIORITY_OPT,
        ],
        "[--submit]",
        "Forces a push of the configuration file and ssconf files to the nodes in the cluster",
    ),
    "verify": Command(
        verify_cluster,
        [],
        [
            U.VERBOSE_OPT,
            opt(
                "--debug-simulate-errors",
                dest="simulate_errors",
                action="store_true",
                default=False,
                help="Debugging option that makes the operation treat most runtime"
                " checks as failed",
            ),
            opt(
                "--error-codes",
                action="store_true",
                default=False,
                help="Enable parseable error messages",
            ),
            opt(
                "--no-nplus1-mem",
                dest="skip_nplusone_mem",
                action="store_true",
                default=False,
                help="Skip N+1 memory redundancy tests",
            ),
            opt(
                "-I",
                "--ignore-errors",
                dest="ignore_errors",
                action="append",
                default=[],
                help="Error code to be ignored",
            ),
            U.NODEGROUP_OPT,
            U.PRIORITY_OPT,
        ],
        "",
        "Forces verification of cluster configuration",
    ),
    "getmaster": Command(show_master, [], [], "", "Displays the current master"),
    "version": Command(show_version, [], [], "", "Shows the cluster version"),
    "master-failover": Command(
        master_failover,
        [],
        [
            opt(
                "--no-voting",
                action="store_true",
                default=False,
                help="Skip node agreement check (dangerous)",
            ),
            opt(
                "--yes-do-it",
                dest="yes_do_it",
                action="store_true",
                default=False,
                help="Override interactive check for --no-voting",
            ),
        ],
        "",
        "Makes the current node the master",
    ),
    "info": Command(
        show_cluster_info,
        [],
        [],
        "",
        "Show cluster configuration",
        aliases=("show",),
    ),
    "copyfile": Command(
        copy_file,
        [Arg("filename", metavar="<file>")],
        [
            opt(
                "-n",
                "--node",
                dest="nodes",
                action="append",
                default=[],
                metavar="<node>",
                help="Use only this node (can be used multiple times, if not given defaults to all"
                " nodes)",
            )
        ],
        "[-n node...] <filename>",
        "Copies a file to all (or only some) nodes",
    ),
    "modify": Command(
        modify_cluster, [], MODIFY_OPTS, "[opts...]", "Alters the parameters of the cluster"
    ),
    "activate-master-ip": Command(activate_master_ip, [], [], "", "Activates the master IP"),
    "deactivate-master-ip": Command(
        deactivate_master_ip,
        [],
        [
            opt(
                "--yes",
                dest="confirm",
                action="store_true",
                default=False,
                help="Do not require confirmation",
            )
        ],
        "",
        "Deactivates the master IP",
    ),
    "queue": Command(
        queue_ops,
        [U.Arg("queue_command", metavar="drain|undrain|info")],
        [],
        "drain|undrain|info",
        "Change queue properties",
    ),
    "watcher": Command(
        watcher_ops,
        [U.Arg("watcher_args", nargs="+", metavar="{pause <timespec>|continue|info}")],
        [],
        "{pause <timespec>|continue|info}",
        "Change watcher properties",
    ),
    "list-tags": Command(list_tags, [], [], "", "List the tags of the cluster"),
    "add-tags": Command(add_tags, [_TAGS], U.TAG_OPTS, "tag...", "Add tags to the cluster"),
    "remove-tags": Command(
        remove_tags, [_TAGS], U.TAG_OPTS, "tag...", "Remove tags from the cluster"
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``gnt-cluster``."""
    return U.run_main("gnt-cluster", commands, argv)


if __name__ == "__main__":
    raise SystemExit(main())
