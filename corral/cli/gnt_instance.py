"""``gnt-instance``: create, start, stop, migrate, fail over, inspect instances.

Options, messages, confirmations and exit codes follow Ganeti 3.0's
``gnt-instance`` (``man gnt-instance``); the opcode building for ``add`` and
``modify`` lives in `corral.cli._instance_build`, the ``info`` printer in
`corral.cli._instance_info`.

Differences from Ganeti, on purpose:

* ``modify`` hotplugs by default (Ganeti >= 3.1); ``--hotplug`` (the paper's
  2.x spelling) is accepted, ``--no-hotplug`` turns it off. The hot-modify
  confirmation is asked only when the instance is running (hotplug does
  nothing to a stopped instance);
* ``add -H a=b`` without a ``hypervisor:`` prefix applies to the default
  hypervisor.
"""

from __future__ import annotations

from corral.cli import _util as U
from corral.cli._instance_cmds import (
    LIST_DEF_FIELDS,
    activate_disks,
    add_instance,
    add_tags,
    console_instance,
    deactivate_disks,
    failover_instance,
    list_instance_fields,
    list_instances,
    list_tags,
    migrate_instance,
    modify_instance,
    reboot_instance,
    reinstall_instance,
    remove_instance,
    remove_tags,
    rename_instance,
    replace_disks,
    show_instance_info,
    start_instance,
    stop_instance,
)
from corral.cli._instance_opts import (
    ADD_OPTS,
    BACKEND_OPT,
    CLEANUP_OPT,
    DISK_OPT,
    DISK_TEMPLATE_OPT,
    DST_NODE_OPT,
    FORCE_VARIANT_OPT,
    HVOPTS_OPT,
    IGNORE_CONSIST_OPT,
    MULTI_OPTS,
    NAME_CHECK_OPTS,
    NET_OPT,
    NWSYNC_OPT,
    OS_OPT,
    OSPARAMS_OPT,
    SHUTDOWN_TIMEOUT_OPT,
)
from corral.cli._util import Arg, Command, opt

# --- command table ---------------------------------------------------------------------

_INSTANCE = Arg("name", metavar="<instance>")
_INSTANCES = Arg("names", nargs="*", metavar="<instance>")
_FORCE = U.FORCE_OPT
_NO_REMEMBER = opt(
    "--no-remember",
    action="store_true",
    default=False,
    help="Perform but do not record the change in the configuration",
)
_IGNORE_OFFLINE = opt(
    "--ignore-offline",
    action="store_true",
    default=False,
    help="Ignore offline nodes and do as much as possible",
)

commands: dict[str, Command] = {
    "add": Command(
        add_instance,
        [Arg("name", metavar="<name>")],
        ADD_OPTS,
        "[...] -t disk-type -n node[:secondary-node] -o os-type <name>",
        "Creates and adds a new instance to the cluster",
    ),
    "remove": Command(
        remove_instance,
        [_INSTANCE],
        [
            _FORCE,
            SHUTDOWN_TIMEOUT_OPT,
            opt(
                "--ignore-failures",
                action="store_true",
                default=False,
                help="Remove the instance from the cluster configuration even if there are"
                " failures during the removal process",
            ),
            *U.SUBMIT_OPTS,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
        ],
        "[-f] <instance>",
        "Shuts down the instance and removes it",
    ),
    "startup": Command(
        start_instance,
        [_INSTANCES],
        [
            _FORCE,
            *MULTI_OPTS,
            *U.SUBMIT_OPTS,
            HVOPTS_OPT,
            BACKEND_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            _IGNORE_OFFLINE,
            _NO_REMEMBER,
            opt(
                "--paused",
                dest="startup_paused",
                action="store_true",
                default=False,
                help="Pause instance at startup",
            ),
        ],
        "<instance>",
        "Starts an instance",
        aliases=("start",),
    ),
    "shutdown": Command(
        stop_instance,
        [_INSTANCES],
        [
            _FORCE,
            *MULTI_OPTS,
            opt("--timeout", type=int, default=120, help="Maximum time (in minutes) to wait"),
            *U.SUBMIT_OPTS,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            _IGNORE_OFFLINE,
            _NO_REMEMBER,
        ],
        "<instance>",
        "Stops an instance",
        aliases=("stop",),
    ),
    "reboot": Command(
        reboot_instance,
        [_INSTANCES],
        [
            *MULTI_OPTS,
            opt(
                "-t",
                "--type",
                dest="reboot_type",
                default="hard",
                metavar="<REBOOT>",
                choices=["soft", "hard", "full"],
                help="Type of reboot: soft/hard/full",
            ),
            opt(
                "--ignore-secondaries",
                action="store_true",
                default=False,
                help="Ignore errors from secondaries",
            ),
            *U.SUBMIT_OPTS,
            SHUTDOWN_TIMEOUT_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
        ],
        "<instance>",
        "Reboots an instance",
    ),
    "info": Command(
        show_instance_info,
        [_INSTANCES],
        [
            opt(
                "-s",
                "--static",
                action="store_true",
                default=False,
                help="Only show configuration data, not runtime data",
            ),
            opt(
                "--all",
                dest="show_all",
                action="store_true",
                default=False,
                help="Show info on all instances on the cluster. This can take a long time to"
                " run, use wisely",
            ),
            U.PRIORITY_OPT,
        ],
        "[-s] {--all | <instance>...}",
        "Show information on the specified instance(s)",
        aliases=("show",),
    ),
    "list": Command(
        list_instances,
        [_INSTANCES],
        U.LIST_OPTS,
        "[<instance>...]",
        "Lists the instances and their status. The available fields can be shown"
        ' using the "list-fields" command (see the man page for details). The'
        " default field list is (in order): " + ", ".join(LIST_DEF_FIELDS) + ".",
    ),
    "list-fields": Command(
        list_instance_fields,
        [Arg("fields", nargs="*")],
        [U.NOHDR_OPT, U.SEP_OPT],
        "[fields...]",
        "Lists all available fields for instances",
    ),
    "modify": Command(
        modify_instance,
        [_INSTANCE],
        [
            BACKEND_OPT,
            DISK_OPT,
            _FORCE,
            HVOPTS_OPT,
            NET_OPT,
            *U.SUBMIT_OPTS,
            DISK_TEMPLATE_OPT,
            opt("-n", "--node", dest="node", default=None, metavar="<node>", help="Target node"),
            OS_OPT,
            OSPARAMS_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            NWSYNC_OPT,
            opt(
                "--offline",
                dest="offline_inst",
                action="store_true",
                default=False,
                help="Disable down instance",
            ),
            opt(
                "--online",
                dest="online_inst",
                action="store_true",
                default=False,
                help="Enable offline instance",
            ),
            opt(
                "--new-primary",
                dest="new_primary_node",
                default=None,
                metavar="<node>",
                help="Specifies the new primary node",
            ),
            opt(
                "--hotplug",
                dest="hotplug",
                action="store_true",
                default=True,
                help="Hotplug supported devices (NICs and Disks) [default]",
            ),
            opt(
                "--no-hotplug",
                dest="hotplug",
                action="store_false",
                help="Do not hotplug devices; changes take effect at the next restart",
            ),
            opt(
                "--hotplug-if-possible",
                action="store_true",
                default=False,
                help="Hotplug devices in case hotplug is supported",
            ),
        ],
        "<instance>",
        "Alters the parameters of an instance",
    ),
    "migrate": Command(
        migrate_instance,
        [_INSTANCE],
        [
            _FORCE,
            U.NONLIVE_OPT,
            U.MIGRATION_MODE_OPT,
            CLEANUP_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            DST_NODE_OPT,
            U.IALLOCATOR_OPT,
            opt(
                "--allow-failover",
                action="store_true",
                default=False,
                help="If migration is not possible fallback to failover",
            ),
            U.IGNORE_IPOLICY_OPT,
            opt(
                "--no-runtime-changes",
                dest="allow_runtime_chgs",
                action="store_false",
                default=True,
                help="Don't allow runtime changes",
            ),
            *U.SUBMIT_OPTS,
        ],
        "[-f] <instance>",
        "Migrate instance to its secondary node (only for mirrored instances)",
    ),
    "failover": Command(
        failover_instance,
        [_INSTANCE],
        [
            _FORCE,
            IGNORE_CONSIST_OPT,
            *U.SUBMIT_OPTS,
            SHUTDOWN_TIMEOUT_OPT,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            DST_NODE_OPT,
            U.IALLOCATOR_OPT,
            U.IGNORE_IPOLICY_OPT,
            CLEANUP_OPT,
        ],
        "[-f] <instance>",
        "Stops the instance, changes its primary node and (if it was"
        " originally running) starts it on the new node (the secondary for mirrored instances"
        " or any node for shared storage).",
    ),
    "console": Command(
        console_instance,
        [_INSTANCE],
        [
            opt(
                "--show-cmd",
                dest="show_command",
                action="store_true",
                default=False,
                help="Show command instead of executing it",
            ),
            U.PRIORITY_OPT,
        ],
        "[--show-cmd] <instance>",
        "Opens a console on the specified instance",
    ),
    "rename": Command(
        rename_instance,
        [_INSTANCE, Arg("new_name", metavar="<new_name>")],
        [*NAME_CHECK_OPTS, *U.SUBMIT_OPTS, U.DRY_RUN_OPT, U.PRIORITY_OPT],
        "<instance> <new_name>",
        "Rename the instance",
    ),
    "activate-disks": Command(
        activate_disks,
        [_INSTANCE],
        [
            *U.SUBMIT_OPTS,
            opt(
                "--ignore-size",
                action="store_true",
                default=False,
                help="Ignore current recorded size (useful for forcing activation when the"
                " recorded size is wrong)",
            ),
            U.PRIORITY_OPT,
            opt(
                "--wait-for-sync",
                dest="wait_for_sync",
                action="store_true",
                default=False,
                help="Wait for disks to sync",
            ),
        ],
        "<instance>",
        "Activate an instance's disks",
    ),
    "deactivate-disks": Command(
        deactivate_disks,
        [_INSTANCE],
        [_FORCE, *U.SUBMIT_OPTS, U.DRY_RUN_OPT, U.PRIORITY_OPT],
        "[-f] <instance>",
        "Deactivate an instance's disks",
    ),
    "replace-disks": Command(
        replace_disks,
        [_INSTANCE],
        [
            opt(
                "-a",
                "--auto",
                action="store_true",
                default=False,
                help="Automatically replace faulty disks (applies only to internally mirrored"
                " disk templates, e.g. drbd)",
            ),
            opt(
                "--disks",
                dest="disk_indices",
                default=None,
                help="Comma-separated list of disks indices to act on (e.g. 0,2) (optional,"
                " defaults to all disks)",
            ),
            U.IALLOCATOR_OPT,
            U.EARLY_RELEASE_OPT,
            opt(
                "-n",
                "--new-secondary",
                dest="dst_node",
                default=None,
                metavar="NODE",
                help="Specifies the new secondary node",
            ),
            opt(
                "-p",
                "--on-primary",
                action="store_true",
                default=False,
                help="Replace the disk(s) on the primary node (applies only to internally"
                " mirrored disk templates, e.g. drbd)",
            ),
            opt(
                "-s",
                "--on-secondary",
                action="store_true",
                default=False,
                help="Replace the disk(s) on the secondary node (applies only to internally"
                " mirrored disk templates, e.g. drbd)",
            ),
            *U.SUBMIT_OPTS,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            U.IGNORE_IPOLICY_OPT,
        ],
        "[-s|-p|-a|-n NODE|-I NAME] <instance>",
        "Replaces disks for the instance",
    ),
    "reinstall": Command(
        reinstall_instance,
        [Arg("names", nargs="+", metavar="<instance>")],
        [
            _FORCE,
            OS_OPT,
            FORCE_VARIANT_OPT,
            MULTI_OPTS[1],
            *U.SUBMIT_OPTS,
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            OSPARAMS_OPT,
        ],
        "[-f] <instance>",
        "Reinstall a stopped instance",
    ),
    "list-tags": Command(
        list_tags, [_INSTANCE], [], "<instance_name>", "List the tags of the given instance"
    ),
    "add-tags": Command(
        add_tags,
        [_INSTANCE, Arg("tags", nargs="*", metavar="tag")],
        U.TAG_OPTS,
        "<instance_name> tag...",
        "Add tags to the given instance",
    ),
    "remove-tags": Command(
        remove_tags,
        [_INSTANCE, Arg("tags", nargs="*", metavar="tag")],
        U.TAG_OPTS,
        "<instance_name> tag...",
        "Remove tags from given instance",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``gnt-instance``."""
    return U.run_main("gnt-instance", commands, argv)


if __name__ == "__main__":
    raise SystemExit(main())
