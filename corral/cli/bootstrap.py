"""The daemon-less half of gnt-cluster: init, copyfile, master-failover, destroy.

These run on the node where the admin types them, like Ganeti's bootstrap
code: `init_cluster` creates the CA and the first configuration and starts
the master daemon; `copy_file` streams a file to the other nodes over node
RPC; `master_failover` makes this master candidate the master with its
replicated copy of the configuration and job queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid as uuidlib
from typing import Any

from corral import constants as C
from corral import errors, objects
from corral.cli._init_params import InitParams
from corral.paths import DEFAULT_PATHS, Paths


def _paths() -> Paths:
    return DEFAULT_PATHS


def _out(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def _resolve(name: str) -> tuple[str, str]:
    try:
        fqdn, _aliases, ips = socket.gethostbyname_ex(name)
    except OSError as exc:
        raise errors.OpPrereqError(f"Cannot resolve {name}: {exc}", errors.ECODE_RESOLVER) from exc
    return fqdn, ips[0]


def _reachable(ip: str, port: int = C.NODED_PORT, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _daemon_cmd(name: str) -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(exe, os.X_OK):
        return [exe]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", f"corral.daemons.{name.split('-')[1]}"]


def _vg_exists(vg: str) -> bool:
    if shutil.which("vgs") is None:
        return False
    res = subprocess.run(["vgs", "--noheadings", vg], capture_output=True, check=False)
    return res.returncode == 0


def _choose_templates(params: InitParams) -> list[str]:
    """Enable what can work here; explain what was left out (Ganeti's defaults)."""
    templates = list(params.enabled_disk_templates)
    explicit = templates != list(C.DEFAULT_ENABLED_DISK_TEMPLATES)
    for tmpl in templates:
        if tmpl not in C.DISK_TEMPLATES:
            raise errors.OpPrereqError(f"Invalid disk template '{tmpl}'", errors.ECODE_INVAL)
    if C.DT_PLAIN in templates:
        vg = params.vg_name or C.DEFAULT_VG
        if not _vg_exists(vg):
            if explicit:
                raise errors.OpPrereqError(
                    f"Disk template 'plain' needs volume group '{vg}', which does not exist"
                    " on this node",
                    errors.ECODE_ENVIRON,
                )
            templates.remove(C.DT_PLAIN)
            _out(
                f"Disk template 'plain' was not enabled: volume group '{vg}' does not exist"
                " on this node (no LVM); drbd uses corral's file-backed volumes here."
            )
    if not templates:
        raise errors.OpPrereqError("No disk template can be enabled", errors.ECODE_INVAL)
    return templates


def _fill_hvparams(params: InitParams) -> dict[str, dict[str, Any]]:
    from corral.hypervisor import get_hypervisor_class

    result: dict[str, dict[str, Any]] = {}
    for hv in C.HYPER_TYPES:
        cls = get_hypervisor_class(hv)
        filled = objects.fill_dict(cls.defaults(), params.hvparams.get(hv, {}))
        unknown = sorted(set(filled) - set(cls.PARAMETERS))
        if unknown:
            raise errors.OpPrereqError(
                f"Unknown hypervisor parameter(s) for {hv}: {', '.join(unknown)}",
                errors.ECODE_INVAL,
            )
        if hv in params.enabled_hypervisors:
            try:
                cls.check_parameter_syntax(filled)
            except errors.HypervisorError as exc:
                raise errors.OpPrereqError(
                    f"Hypervisor parameter validation failed: {exc}", errors.ECODE_INVAL
                ) from exc
        result[hv] = filled
    return result


def init_cluster(params: InitParams, paths: Paths | None = None) -> None:
    """Create a one-node cluster on this node and start corral-masterd."""
    from corral.config.file_store import atomic_write, save_config_file
    from corral.rpc import tls

    paths = paths or _paths()
    if os.path.exists(paths.config_file):
        raise errors.OpPrereqError("Cluster is already initialised", errors.ECODE_STATE)
    if not tls.is_joined(paths) and _read_pid(paths.noded_pidfile) is None:
        raise errors.OpPrereqError(
            "corral-noded is not running on this node; start it first", errors.ECODE_ENVIRON
        )
    if tls.is_joined(paths):
        raise errors.OpPrereqError("This node is already part of a cluster", errors.ECODE_STATE)
    for hv in params.enabled_hypervisors:
        if hv not in C.HYPER_TYPES:
            raise errors.OpPrereqError(f"Unknown hypervisor '{hv}'", errors.ECODE_INVAL)
    node_name, node_ip = _resolve(socket.gethostname())
    cluster_name, master_ip = _resolve(params.cluster_name)
    if master_ip == node_ip:
        raise errors.OpPrereqError(
            "The cluster name resolves to this node's own address; it needs its own"
            " (floating) IP address",
            errors.ECODE_INVAL,
        )
    if _reachable(master_ip):
        raise errors.OpPrereqError(
            f"Cluster IP already active; cannot initialise a second cluster at {master_ip}",
            errors.ECODE_NOTUNIQUE,
        )
    if not os.path.exists(f"/sys/class/net/{params.master_netdev}"):
        raise errors.OpPrereqError(
            f"Master network device '{params.master_netdev}' does not exist on this node",
            errors.ECODE_ENVIRON,
        )
    templates = _choose_templates(params)
    hvparams = _fill_hvparams(params)
    now = time.time()
    cluster_uuid, group_uuid, node_uuid = (str(uuidlib.uuid4()) for _ in range(3))
    ca_pem, ca_key = tls.create_ca(cluster_name)
    cert, key, serial = tls.issue_node_cert((ca_pem, ca_key), node_name, [node_ip])
    from corral.cmdlib.node import tls_der
    from corral.node.security import fingerprint

    ipolicy = params.ipolicy or objects.default_ipolicy()
    cluster = objects.Cluster(
        cluster_name=cluster_name,
        uuid=cluster_uuid,
        master_node=node_uuid,
        master_ip=master_ip,
        master_netdev=params.master_netdev,
        master_netmask=params.master_netmask or 32,
        use_external_mip_script=params.use_external_mip_script,
        enabled_hypervisors=list(params.enabled_hypervisors),
        hvparams=hvparams,
        beparams={"default": dict(params.beparams)},
        nicparams={"default": dict(params.nicparams)},
        ndparams=dict(params.ndparams),
        diskparams={k: dict(v) for k, v in params.diskparams.items()},
        ipolicy=ipolicy,
        candidate_pool_size=params.candidate_pool_size,
        max_running_jobs=params.max_running_jobs,
        max_tracked_jobs=params.max_tracked_jobs,
        mac_prefix=params.mac_prefix,
        volume_group_name=params.vg_name or (C.DEFAULT_VG if C.DT_DRBD8 in templates else None),
        drbd_usermode_helper=params.drbd_helper,
        file_storage_dir=params.file_storage_dir,
        shared_file_storage_dir=params.shared_file_storage_dir,
        enabled_disk_templates=templates,
        default_iallocator=params.default_iallocator,
        default_iallocator_params=dict(params.default_iallocator_params),
        maintain_node_health=params.maintain_node_health,
        prealloc_wipe_disks=params.prealloc_wipe_disks,
        auto_failover=params.auto_failover,
        ctime=now,
        mtime=now,
    )
    group = objects.NodeGroup(name=C.DEFAULT_GROUP_NAME, uuid=group_uuid, ctime=now, mtime=now)
    node = objects.Node(
        name=node_name,
        uuid=node_uuid,
        primary_ip=node_ip,
        secondary_ip=params.secondary_ip or node_ip,
        group=group_uuid,
        master_candidate=True,
        cert_fingerprint=fingerprint(tls_der(cert)),
        cert_serial=serial,
        ctime=now,
        mtime=now,
    )
    data = objects.ConfigData(
        cluster=cluster,
        nodes={node_uuid: node},
        nodegroups={group_uuid: group},
        ctime=now,
        mtime=now,
    )
    for directory in (
        paths.data_dir,
        os.path.dirname(paths.master_socket),
        paths.log_dir,
        params.file_storage_dir,
    ):
        os.makedirs(directory, exist_ok=True)
    tls.install_node_material(paths, ca_pem, cert, key, ca_key)
    save_config_file(paths.config_file, data)
    atomic_write(os.path.join(paths.data_dir, "ssconf_cluster_name"), cluster_name.encode(), 0o644)
    atomic_write(os.path.join(paths.data_dir, "ssconf_master_node"), node_name.encode(), 0o644)
    _reload_noded(paths)
    _start_masterd(paths)


def _reload_noded(paths: Paths) -> None:
    """Tell the local noded to switch to the cluster's TLS material and wait for it."""
    pid = _read_pid(paths.noded_pidfile)
    if pid is None:
        raise errors.OpExecError("corral-noded is not running on this node")
    os.kill(pid, signal.SIGHUP)
    from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner

    async def probe() -> bool:
        runner = RpcRunner(ClientTLS.from_paths(paths))
        try:
            for _ in range(50):
                res = await runner.call("version", NodeTarget("localhost", "127.0.0.1"))
                if not res.failed and (res.payload or {}).get("joined"):
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            await runner.close()

    if not asyncio.run(probe()):
        raise errors.OpExecError("corral-noded did not switch to the cluster certificate")


def _start_masterd(paths: Paths, timeout: float = 30.0) -> None:
    res = subprocess.run(
        _daemon_cmd("corral-masterd"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise errors.OpExecError(
            f"Could not start corral-masterd: {(res.stderr or res.stdout).strip()}"
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(paths.master_socket):
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(paths.master_socket)
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise errors.OpExecError("corral-masterd did not start (see /var/log/corral/masterd.log)")


def _stop_masterd(paths: Paths, timeout: float = 30.0) -> None:
    pid = _read_pid(paths.masterd_pidfile)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _read_pid(paths.masterd_pidfile) == pid:
        time.sleep(0.05)


def _load_local_config(paths: Paths) -> objects.ConfigData:
    from corral.config.file_store import load_config_file

    if not os.path.exists(paths.config_file):
        raise errors.OpPrereqError(
            "Cannot find the cluster configuration on this node; is it part of a cluster?",
            errors.ECODE_ENVIRON,
        )
    return load_config_file(paths.config_file)


def get_master() -> str:
    data = _load_local_config(_paths())
    node = data.nodes.get(data.cluster.master_node)
    return node.name if node else data.cluster.master_node


def _human(size: int) -> str:
    from corral.utils.units import format_unit

    return format_unit(size // (1024 * 1024), "h") if size >= 1024 * 1024 else f"{size}B"


def copy_file(path: str, nodes: list[str]) -> list[tuple[str, str]]:
    """Stream `path` to the named nodes (default: every other online node).

    Prints one line per node; returns ``(node, error)`` for each failure.
    """
    from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner, stream_file

    paths = _paths()
    data = _load_local_config(paths)
    me = socket.gethostname()
    by_name = {n.name: n for n in data.nodes.values()}
    if nodes:
        unknown = [n for n in nodes if n not in by_name]
        if unknown:
            raise errors.OpPrereqError(f"Node '{unknown[0]}' not known", errors.ECODE_NOENT)
        chosen = [by_name[n] for n in nodes]
    else:
        chosen = [n for n in data.nodes.values() if n.name != me and not n.offline]
    chosen.sort(key=lambda n: n.name)
    size = os.path.getsize(path)
    failures: list[tuple[str, str]] = []

    async def run() -> None:
        runner = RpcRunner(ClientTLS.from_paths(paths))
        try:

            async def one(node: objects.Node) -> tuple[str, str | None]:
                start = time.monotonic()
                res = await stream_file(runner, NodeTarget(node.name, node.primary_ip), path)
                if res.failed:
                    return node.name, res.fail_msg
                if res.payload is not True:
                    return node.name, "checksum mismatch"
                return node.name, f"ok ({time.monotonic() - start:.1f}s)"

            for name, outcome in await asyncio.gather(*(one(n) for n in chosen)):
                if outcome is not None and outcome.startswith("ok"):
                    _out(f"{name}: copied {path} ({_human(size)}, sha256 verified) {outcome[3:]}")
                else:
                    failures.append((name, outcome or "unknown error"))
        finally:
            await runner.close()

    asyncio.run(run())
    return failures


def master_failover(no_voting: bool = False) -> tuple[int, list[str]]:
    """Make this node the master (it must be a master candidate)."""
    from corral.config.file_store import save_config_file
    from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner

    paths = _paths()
    data = _load_local_config(paths)
    me = socket.gethostname()
    mine = next((n for n in data.nodes.values() if n.name == me), None)
    if mine is None:
        return C.EXIT_FAILURE, [f"This node ({me}) is not part of the cluster"]
    old = data.nodes.get(data.cluster.master_node)
    if old is not None and old.uuid == mine.uuid:
        return C.EXIT_FAILURE, [
            "This commands must be run on the node where you want the new master to be."
            f" {me} is already the master"
        ]
    if not mine.master_candidate:
        return C.EXIT_FAILURE, [f"This node ({me}) is not a master candidate"]
    if not no_voting:
        refusal = _vote(paths, data, mine)
        if refusal:
            return C.EXIT_FAILURE, [refusal]
    messages: list[str] = []

    async def demote_old() -> None:
        if old is None:
            return
        runner = RpcRunner(ClientTLS.from_paths(paths))
        target = NodeTarget(old.name, old.primary_ip)
        try:
            res = await runner.call("stop_masterd", target)
            if res.failed:
                messages.append(
                    f"Could not stop the master daemon on {old.name} ({res.fail_msg});"
                    " make sure it is down"
                )
            res = await runner.call(
                "master_ip_deactivate",
                target,
                data.cluster.master_ip,
                data.cluster.master_netmask,
                data.cluster.master_netdev,
            )
            if res.failed:
                messages.append(f"Could not deactivate the master IP on {old.name}: {res.fail_msg}")
        finally:
            await runner.close()

    asyncio.run(demote_old())
    data.cluster.master_node = mine.uuid
    data.cluster.serial_no += 1
    data.serial_no += 1
    data.mtime = time.time()
    save_config_file(paths.config_file, data)
    _start_masterd(paths)
    from corral import opcodes
    from corral.api.client import Client

    client = Client(paths.master_socket)
    for op in (opcodes.OpClusterActivateMasterIp(), opcodes.OpClusterRedistConf()):
        try:
            job = client.submit_job([op])
            _wait(client, job)
        except errors.GenericError as exc:
            messages.append(f"Warning: {op.summary()} failed: {exc}")
    return C.EXIT_SUCCESS, messages


def _vote(paths: Paths, data: objects.ConfigData, mine: objects.Node) -> str | None:
    """Ask the other nodes about their config copies (Ganeti's voting).

    Refuses (returns why) when a node holds a newer configuration than this
    one, or when fewer than half of the nodes answer: this node may be the one
    cut off, and taking over could make two masters. ``--no-voting`` skips it.
    """
    from corral.rpc.client import ClientTLS, NodeTarget, RpcRunner

    others = [n for n in data.nodes.values() if n.uuid != mine.uuid and not n.offline]

    async def ask() -> dict[str, Any]:
        runner = RpcRunner(ClientTLS.from_paths(paths))
        try:
            results = await runner.call_multi(
                "config_info", [NodeTarget(n.name, n.primary_ip) for n in others]
            )
        finally:
            await runner.close()
        return {name: res.payload for name, res in results.items() if not res.failed}

    answers = asyncio.run(ask()) if others else {}
    for name, info in sorted(answers.items()):
        serial = (info or {}).get("serial")
        if isinstance(serial, int) and serial > data.serial_no:
            return (
                f"Node {name} has a newer configuration (serial {serial}, this node has"
                f" {data.serial_no}); run master-failover there, or use --no-voting"
            )
    total = len(others) + 1
    if (len(answers) + 1) * 2 <= total:
        return (
            f"Only {len(answers) + 1} of {total} nodes answered; cannot be sure this node"
            " is not the one cut off. If the other nodes are really down, use --no-voting"
        )
    return None


def _wait(client: Any, job_id: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = client.query_jobs([job_id], ["status"])
        if rows and rows[0] and rows[0][0] in C.JOBS_FINALIZED:
            return
        time.sleep(0.1)


def finalize_cluster_destroy(master_uuid: Any = None) -> None:
    """Stop masterd and remove the cluster state from this node."""
    paths = _paths()
    _stop_masterd(paths)
    for path in (
        paths.config_file,
        paths.queue_db,
        paths.ca_key,
        paths.ca_cert,
        paths.node_cert,
        paths.node_key,
        paths.crl_file,
    ):
        for candidate in (path, path + "-wal", path + "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(candidate)
    pid = _read_pid(paths.noded_pidfile)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
