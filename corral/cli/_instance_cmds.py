"""The functions behind ``gnt-instance`` sub-commands (``fn(opts, client)``).

Prompts, messages and exit codes are Ganeti 3.0's (``lib/client/
gnt_instance.py``); see `corral.cli.gnt_instance` for the command table and
the deliberate differences.
"""

from __future__ import annotations

import argparse
from typing import Any

from corral import constants as C
from corral import errors
from corral import opcodes as op
from corral.cli import _util as U
from corral.cli._generic_info import format_generic_info
from corral.cli._instance_build import (
    build_create_op,
    build_modify_op,
    has_modifications,
    modifies_nics_in_place,
)
from corral.cli._instance_info import format_instance_info

#: default fields of ``gnt-instance list`` (Ganeti's _LIST_DEF_FIELDS)
LIST_DEF_FIELDS = ["name", "hypervisor", "os", "pnode", "status", "oper_ram"]

_LIST_OVERRIDE_FIELDS = (
    "tags",
    "disk.sizes",
    "nic.macs",
    "nic.ips",
    "nic.modes",
    "nic.links",
    "nic.bridges",
    "nic.networks",
    "snodes",
    "snodes.group",
    "snodes.group.uuid",
)

# --- commands ------------------------------------------------------------------------


def add_instance(opts: argparse.Namespace, client: Any) -> int:
    if not opts.disk_template:
        raise errors.OpPrereqError("Missing disk template (-t)", errors.ECODE_INVAL)
    U.submit_or_wait(opts, client, [build_create_op(opts)])
    return 0


def _confirmed(opts: argparse.Namespace, client: Any, question: str) -> bool:
    """``-f`` or a "yes" at the prompt; an unknown instance fails before the
    question ("Instance 'x' not known"), as in Ganeti."""
    if opts.force:
        return True
    U.query_rows(client, "instance", ["name"], [opts.name])
    return U.ask_user(question)


def remove_instance(opts: argparse.Namespace, client: Any) -> int:
    question = (
        f"This will remove the volumes of the instance {opts.name} (including mirrors),"
        " thus removing all the data of the instance. Continue?"
    )
    if not _confirmed(opts, client, question):
        return 1
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceRemove(
                instance_name=opts.name,
                ignore_failures=opts.ignore_failures,
                shutdown_timeout=opts.shutdown_timeout,
            )
        ],
    )
    return 0


def _expand_names(opts: argparse.Namespace, client: Any) -> list[str]:
    if getattr(opts, "multi_all", False):
        if opts.names:
            raise errors.OpPrereqError("Cluster filter mode takes no arguments", errors.ECODE_INVAL)
        return [row[0] for row in U.query_rows(client, "instance", ["name"])]
    if not opts.names:
        raise errors.OpPrereqError("No instance names passed", errors.ECODE_INVAL)
    return [str(row[0]) for row in U.query_rows(client, "instance", ["name"], opts.names)]


def _many_ops(operation: str, build: Any) -> Any:
    """Ganeti's GenericManyOps: one job per selected instance."""

    def run(opts: argparse.Namespace, client: Any) -> int:
        names = _expand_names(opts, client)
        if not names:
            if opts.multi_all:
                U.write(f"Cluster is empty, no instances to {operation}")
                return 0
            raise errors.OpPrereqError(
                "Selection filter does not match any instances", errors.ECODE_INVAL
            )
        multi = opts.multi_all or len(names) > 1
        if multi and not opts.force_multi:
            affected = "\n".join(f"  {name}" for name in names)
            question = (
                f"The {operation} will operate on {len(names)} instances.\n"
                f"Do you want to continue?\nAffected instances:\n{affected}"
            )
            if not U.ask_user(question):
                return 1
        jex = U.JobExecutor(client, opts, verbose=multi)
        for name in names:
            jex.queue_job(name, build(name, opts))
        results = jex.wait_or_show(not opts.submit_only)
        return 0 if all(ok for ok, _ in results) else 1

    return run


def _startup_op(name: str, opts: argparse.Namespace) -> op.OpInstanceStartup:
    return op.OpInstanceStartup(
        instance_name=name,
        force=opts.force,
        ignore_offline_nodes=opts.ignore_offline,
        no_remember=opts.no_remember,
        startup_paused=opts.startup_paused,
        hvparams=dict(opts.hvparams or {}),
        beparams=U.convert_beparams(dict(opts.beparams or {})),
    )


def _shutdown_op(name: str, opts: argparse.Namespace) -> op.OpInstanceShutdown:
    return op.OpInstanceShutdown(
        instance_name=name,
        force=opts.force,
        timeout=opts.timeout,
        ignore_offline_nodes=opts.ignore_offline,
        no_remember=opts.no_remember,
    )


def _reboot_op(name: str, opts: argparse.Namespace) -> op.OpInstanceReboot:
    return op.OpInstanceReboot(
        instance_name=name,
        reboot_type=opts.reboot_type,
        ignore_secondaries=opts.ignore_secondaries,
        shutdown_timeout=opts.shutdown_timeout,
    )


start_instance = _many_ops("startup", _startup_op)
stop_instance = _many_ops("shutdown", _shutdown_op)
reboot_instance = _many_ops("reboot", _reboot_op)


def show_instance_info(opts: argparse.Namespace, client: Any) -> int:
    if not opts.names and not opts.show_all:
        U.warn(
            "No instance selected. Please pass in --all if you want to query all"
            " instances.\nNote that this can take a long time on a big cluster."
        )
        return 1
    if opts.names and opts.show_all:
        U.warn("Cannot use --all if you specify instance names.")
        return 1
    query = op.OpInstanceQueryData(
        instances=list(opts.names), static=opts.static, use_locking=not opts.static
    )
    result = U.submit_or_wait(argparse.Namespace(), client, [query])
    if not result:
        U.write("No instances.")
        return 1
    U.write(format_generic_info([format_instance_info(inst) for inst in result.values()]))
    return 0


def list_instances(opts: argparse.Namespace, client: Any) -> int:
    fields = U.parse_fields(opts.output, LIST_DEF_FIELDS)
    override = {name: (U.comma_list, False) for name in _LIST_OVERRIDE_FIELDS}
    return U.generic_list(client, "instance", fields, opts.names, opts, format_override=override)


def list_instance_fields(opts: argparse.Namespace, client: Any) -> int:
    return U.generic_list_fields(client, "instance", opts.fields, opts)


def _is_running(client: Any, name: str) -> bool:
    try:
        rows = U.query_rows(client, "instance", ["name", "oper_state"], [name])
    except errors.GenericError:
        return True  # cannot tell: ask, to be safe
    return bool(rows and rows[0][1])


def modify_instance(opts: argparse.Namespace, client: Any) -> int:
    if not has_modifications(opts):
        U.warn("Please give at least one of the parameters.")
        return 1
    modify_op = build_modify_op(opts)
    if (
        modifies_nics_in_place(modify_op.nics)
        and opts.hotplug
        and not opts.force
        and _is_running(client, opts.name)
    ):
        question = (
            "You are about to hot-modify a NIC. This will be done by removing the"
            " existing NIC and then adding a new one. Network connection might be"
            " lost. Continue?"
        )
        if not U.ask_user(question):
            return 1
    result = U.submit_or_wait(opts, client, [modify_op])
    if result:
        U.write(f"Modified instance {opts.name}")
        for param, data in result:
            U.write(f" - {param:<5} -> {data}")
        U.write(
            "Please don't forget that most parameters take effect only at the next"
            " (re)start of the instance initiated by ganeti; restarting from within the"
            " instance will not be enough."
        )
    return 0


def migrate_instance(opts: argparse.Namespace, client: Any) -> int:
    if opts.iallocator and opts.dst_node:
        raise errors.OpPrereqError(
            "Specify either an iallocator (-I), or a target node (-n) but not both",
            errors.ECODE_INVAL,
        )
    if opts.cleanup:
        question = (
            f"Instance {opts.name} will be recovered from a failed migration."
            " Note that the migration procedure (including cleanup)"
        )
    else:
        question = f"Instance {opts.name} will be migrated. Note that migration"
    question += (
        " might impact the instance if anything goes wrong (e.g. due to bugs in"
        " the hypervisor). Continue?"
    )
    if not _confirmed(opts, client, question):
        return 1
    if not opts.live and opts.migration_mode is not None:
        raise errors.OpPrereqError(
            "Only one of the --non-live and --migration-mode options can be passed",
            errors.ECODE_INVAL,
        )
    mode = C.HT_MIGRATION_NONLIVE if not opts.live else opts.migration_mode
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceMigrate(
                instance_name=opts.name,
                mode=mode,
                cleanup=opts.cleanup,
                iallocator=opts.iallocator,
                target_node=opts.dst_node,
                allow_failover=opts.allow_failover,
                allow_runtime_changes=opts.allow_runtime_chgs,
                ignore_ipolicy=opts.ignore_ipolicy,
            )
        ],
    )
    return 0


def failover_instance(opts: argparse.Namespace, client: Any) -> int:
    if opts.iallocator and opts.dst_node:
        raise errors.OpPrereqError(
            "Specify either an iallocator (-I), or a target node (-n) but not both",
            errors.ECODE_INVAL,
        )
    question = (
        f"Failover will happen to image {opts.name}. This requires a shutdown of"
        " the instance. Continue?"
    )
    if not _confirmed(opts, client, question):
        return 1
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceFailover(
                instance_name=opts.name,
                ignore_consistency=opts.ignore_consistency,
                shutdown_timeout=opts.shutdown_timeout,
                iallocator=opts.iallocator,
                target_node=opts.dst_node,
                ignore_ipolicy=opts.ignore_ipolicy,
                cleanup=opts.cleanup,
            )
        ],
    )
    return 0


def console_instance(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "instance", ["name", "console", "oper_state"], [opts.name])
    console, running = (rows[0][1], rows[0][2]) if rows else (None, False)
    if not console:
        if running:
            raise errors.OpExecError(f"Console information for instance {opts.name} is unavailable")
        raise errors.OpExecError(f"Instance {opts.name} is not running, can't get console")
    kind = console.get("kind")
    inst = console.get("instance", opts.name)
    if kind == "msg":
        U.write(str(console.get("message")))
    elif kind == "vnc":
        host, port = console.get("host"), console.get("port")
        U.write(
            f"Instance {inst} has VNC listening on {host}:{port} (display"
            f" {console.get('display')}), URL <vnc://{host}:{port}/>"
        )
    elif kind == "spice":
        U.write(
            f"Instance {inst} has SPICE listening on {console.get('host')}:{console.get('port')}"
        )
    elif kind == "ssh":
        command = console.get("command")
        text = command if isinstance(command, str) else " ".join(command or [])
        ssh_cmd = f"ssh -oBatchMode=yes -t {console.get('user')}@{console.get('host')} {text}"
        if opts.show_command:
            U.write(ssh_cmd)
        else:
            import subprocess

            return subprocess.call(["sh", "-c", ssh_cmd])
    else:
        raise errors.GenericError(f"Unknown console type '{kind}'")
    return 0


def rename_instance(opts: argparse.Namespace, client: Any) -> int:
    if not opts.name_check and not U.ask_user(
        "As you disabled the check of the DNS entry, please verify that"
        f" '{opts.new_name}' is a FQDN. Continue?"
    ):
        return 1
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceRename(
                instance_name=opts.name,
                new_name=opts.new_name,
                ip_check=opts.ip_check,
                name_check=opts.name_check,
            )
        ],
    )
    if result:
        U.write(f"Instance '{opts.name}' renamed to '{result}'")
    return 0


def activate_disks(opts: argparse.Namespace, client: Any) -> int:
    result = U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceActivateDisks(
                instance_name=opts.name,
                ignore_size=opts.ignore_size,
                wait_for_sync=opts.wait_for_sync,
            )
        ],
    )
    if result:
        for host, iname, nname in result:
            U.write(f"{host}:{iname}:{nname}")
    return 0


def deactivate_disks(opts: argparse.Namespace, client: Any) -> int:
    U.submit_or_wait(
        opts, client, [op.OpInstanceDeactivateDisks(instance_name=opts.name, force=opts.force)]
    )
    return 0


def replace_disks(opts: argparse.Namespace, client: Any) -> int:
    disks: list[int] = []
    if opts.disk_indices:
        try:
            disks = [int(idx) for idx in opts.disk_indices.split(",")]
        except ValueError as err:
            raise errors.OpPrereqError(
                f"Invalid disk index passed: {err}", errors.ECODE_INVAL
            ) from err
    chosen = [
        opts.on_primary,
        opts.on_secondary,
        opts.auto,
        opts.dst_node is not None,
        opts.iallocator is not None,
    ].count(True)
    if chosen != 1:
        raise errors.OpPrereqError(
            "One and only one of the -p, -s, -a, -n and -I options must be passed",
            errors.ECODE_INVAL,
        )
    if opts.on_primary:
        mode = C.REPLACE_DISK_PRI
    elif opts.on_secondary:
        mode = C.REPLACE_DISK_SEC
    elif opts.auto:
        mode = C.REPLACE_DISK_AUTO
        if disks:
            raise errors.OpPrereqError(
                "Cannot specify disks when using automatic mode", errors.ECODE_INVAL
            )
    else:
        mode = C.REPLACE_DISK_CHG
    U.submit_or_wait(
        opts,
        client,
        [
            op.OpInstanceReplaceDisks(
                instance_name=opts.name,
                disks=disks,
                remote_node=opts.dst_node,
                mode=mode,
                iallocator=opts.iallocator,
                early_release=opts.early_release,
                ignore_ipolicy=opts.ignore_ipolicy,
            )
        ],
    )
    return 0


def reinstall_instance(opts: argparse.Namespace, client: Any) -> int:
    names = [str(row[0]) for row in U.query_rows(client, "instance", ["name"], opts.names)]
    os_msg = f"change the OS to '{opts.os}'" if opts.os else "keep the same OS"
    if len(names) > 1:
        if not opts.force_multi:
            affected = "\n".join(f"  {name}" for name in names)
            if not U.ask_user(
                f"The reinstall will operate on {len(names)} instances.\nNote: this will"
                f" remove *all* data for the below instances! It will {os_msg}.\n"
                f"Do you want to continue?\nAffected instances:\n{affected}"
            ):
                return 1
    elif not (opts.force or opts.force_multi) and not U.ask_user(
        f"This will reinstall the instance '{names[0]}' (and {os_msg}) which removes all"
        " data. Continue?"
    ):
        return 1
    jex = U.JobExecutor(client, opts, verbose=len(names) > 1)
    for name in names:
        jex.queue_job(
            name,
            op.OpInstanceReinstall(
                instance_name=name,
                os_type=opts.os,
                force_variant=opts.force_variant,
                osparams=dict(opts.osparams) if opts.osparams else None,
            ),
        )
    results = jex.wait_or_show(not opts.submit_only)
    return 0 if all(ok for ok, _ in results) else 1


def list_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.list_tags(client, C.TAG_INSTANCE, opts.name)


def add_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.add_tags(opts, client, C.TAG_INSTANCE, opts.name, opts.tags)


def remove_tags(opts: argparse.Namespace, client: Any) -> int:
    return U.remove_tags(opts, client, C.TAG_INSTANCE, opts.name, opts.tags)
