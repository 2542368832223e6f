"""In-process harness for the cluster LU tests: an in-memory config store, a
fake node RPC runner with per-node state, and `run_lu` (the executor's life
cycle without the queue: check_arguments, expand_names, declare_locks,
check_prereq, exec). No tests here; the test_cluster*/test_tags modules use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral import constants as C
from corral import errors, objects, opcodes
from corral.cmdlib import registry
from corral.cmdlib.base import ALL_SET, LEVELS, LUContext
from corral.config.store import ConfigStore
from corral.paths import Paths
from corral.rpc.client import NodeTarget, RpcResult
from corral.rpc.defs import PROTOCOL_VERSION
from corral.storage.base import SyncStatus

DOMAIN = "example.com"
GROUP = "uuid-group-default"


class MemStore(ConfigStore):
    """ConfigStore that keeps the written JSON in memory."""

    def __init__(self, data: objects.ConfigData) -> None:
        super().__init__(data)
        self.written: bytes = b""

    def _persist(self, payload: bytes) -> None:
        self.written = payload


@dataclass
class NodeState:
    """What a fake node reports."""

    running: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # "vg/name"
    memory_total: int = 4096
    memory_free: int = 2048
    clock_offset: float = 0.0
    missing_bridges: list[str] = field(default_factory=list)
    config_sum: str | None = None  # None: the master's current config
    degraded: bool = False
    ldisk: str = "ok"
    hooks: list[list[Any]] = field(default_factory=list)
    ssconf: dict[str, str] = field(default_factory=dict)


class FakeRpc:
    """Answers node RPC calls from `NodeState`s; `dead` nodes fail at once."""

    def __init__(self, cfg: ConfigStore, paths: Paths) -> None:
        self.cfg = cfg
        self.paths = paths
        self.nodes: dict[str, NodeState] = {}
        self.dead: set[str] = set()
        self.fail: dict[str, str] = {}  # call name -> error message
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.handlers: dict[str, Callable[..., Any]] = {}

    def state(self, node: str) -> NodeState:
        return self.nodes.setdefault(node, NodeState())

    async def call(
        self, name: str, node: NodeTarget, *args: Any, timeout: float | None = None
    ) -> RpcResult:
        self.calls.append((name, node.name, args))
        await asyncio.sleep(0)
        if node.offline:
            return RpcResult(node=node.name, offline=True, fail_msg="Node is marked offline")
        if node.name in self.dead:
            return RpcResult(
                node=node.name,
                fail_msg=f"Node is unreachable: Cannot connect to host {node.ip}:1811",
                unreachable=True,
            )
        if name in self.fail:
            err = errors.OpExecError(self.fail[name])
            return RpcResult(node=node.name, fail_msg=str(err), error=err)
        handler = self.handlers.get(name) or getattr(self, f"_h_{name}", None)
        try:
            payload = handler(node.name, *args) if handler is not None else None
        except errors.GenericError as err:
            return RpcResult(node=node.name, fail_msg=str(err), error=err)
        return RpcResult(node=node.name, payload=payload)

    async def call_multi(
        self, name: str, nodes: list[NodeTarget], *args: Any, timeout: float | None = None
    ) -> dict[str, RpcResult]:
        results = await asyncio.gather(*(self.call(name, n, *args) for n in nodes))
        return {n.name: r for n, r in zip(nodes, results, strict=True)}

    def calls_of(self, name: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [(node, args) for call, node, args in self.calls if call == name]

    # -- handlers ---------------------------------------------------------------
    def _sha_of(self, path: str) -> str | None:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None

    def _h_node_verify(self, node: str, checks: dict[str, Any]) -> dict[str, Any]:
        st = self.state(node)
        out: dict[str, Any] = {}
        for key, arg in checks.items():
            if key == "version":
                out[key] = [PROTOCOL_VERSION, C.RELEASE_VERSION]
            elif key == "hypervisor":
                out[key] = {hv: None for hv in arg}
            elif key == "filelist":
                sums: dict[str, str | None] = {}
                for path in arg:
                    if path == self.paths.config_file:
                        sums[path] = st.config_sum or hashlib.sha256(self.cfg.to_json()).hexdigest()
                    else:
                        sums[path] = self._sha_of(path)
                out[key] = sums
            elif key == "nodelist":
                out[key] = {n: "TCP connection refused" for n in arg if n in self.dead}
            elif key == "bridges":
                out[key] = [b for b in arg if b in st.missing_bridges]
            elif key == "instancelist":
                out[key] = list(st.running)
            elif key == "hvinfo":
                out[key] = {
                    "memory_total": st.memory_total,
                    "memory_free": st.memory_free,
                    "memory_dom0": 512,
                }
            elif key == "volumes":
                out[key] = [
                    {"vg": v.split("/")[0], "name": v.split("/")[1], "size": 128, "dev": ""}
                    for v in st.volumes
                ]
            elif key == "time":
                out[key] = time.time() + st.clock_offset
            else:
                out[key] = {"error": f"Unknown verify check '{key}'"}
        return out

    def _h_blockdev_getmirrorstatus(self, node: str, disks: list[Any], ctx: Any) -> Any:
        st = self.state(node)
        return [
            SyncStatus(dev_path=f"/dev/fake{i}", is_degraded=st.degraded, ldisk_status=st.ldisk)
            for i, _ in enumerate(disks)
        ]

    def _h_run_hooks(self, node: str, hpath: str, phase: str, env: dict[str, str]) -> Any:
        return self.state(node).hooks

    def _h_write_ssconf_files(self, node: str, values: dict[str, str]) -> None:
        self.state(node).ssconf.update(values)

    def _h_bridges_exist(self, node: str, links: list[str]) -> list[str]:
        return [b for b in links if b in self.state(node).missing_bridges]


def node_uuid(idx: int) -> str:
    return f"uuid-node{idx}"


def drbd_disk(primary: str, secondary: str, minor: int, size: int = 1024) -> objects.Disk:
    base = f"disk-{primary}-{minor}"
    return objects.Disk(
        uuid=f"uuid-{base}",
        dev_type=C.LD_DRBD8,
        size=size,
        iv_name="disk/0",
        logical_id=[primary, secondary, 11000 + minor, minor, minor, "s" * 40],
        children=[
            objects.Disk(
                uuid=f"uuid-{base}-data",
                dev_type=C.LD_LV,
                size=size,
                logical_id=["xenvg", f"{base}.disk0_data"],
            ),
            objects.Disk(
                uuid=f"uuid-{base}-meta",
                dev_type=C.LD_LV,
                size=128,
                logical_id=["xenvg", f"{base}.disk0_meta"],
            ),
        ],
    )


def make_config(n_nodes: int = 3, *, instances: bool = True) -> objects.ConfigData:
    """A healthy cluster: node1 master; inst1 (drbd node1->node2), inst2 (file on node3)."""
    nodes = {
        node_uuid(i): objects.Node(
            uuid=node_uuid(i),
            name=f"node{i}.{DOMAIN}",
            primary_ip=f"192.0.2.{i}",
            secondary_ip=f"198.51.100.{i}",
            group=GROUP,
        )
        for i in range(1, n_nodes + 1)
    }
    cluster = objects.Cluster(
        uuid="uuid-cluster",
        cluster_name=f"cluster.{DOMAIN}",
        master_node=node_uuid(1),
        master_ip="192.0.2.254",
        master_netdev="br-man",
        master_netmask=24,
        enabled_hypervisors=[C.HT_FAKE],
        nicparams={"default": {C.NIC_MODE: C.NIC_MODE_BRIDGED, C.NIC_LINK: "br-man"}},
        enabled_disk_templates=[C.DT_DRBD8, C.DT_PLAIN, C.DT_FILE, C.DT_DISKLESS],
        volume_group_name="xenvg",
        highest_used_port=11000,
        ctime=1700000000.0,
        mtime=1700000000.0,
    )
    insts: dict[str, objects.Instance] = {}
    if instances and n_nodes >= 3:
        inst1 = objects.Instance(
            uuid="uuid-inst1",
            name=f"inst1.{DOMAIN}",
            primary_node=node_uuid(1),
            os="debootstrap+default",
            beparams={C.BE_MAXMEM: 512, C.BE_MINMEM: 512},
            admin_state=C.ADMINST_UP,
            disk_template=C.DT_DRBD8,
            disks=[drbd_disk(node_uuid(1), node_uuid(2), 0)],
            disks_active=True,
            nics=[objects.NIC(uuid="uuid-nic1", mac="aa:00:00:00:00:01")],
        )
        inst2 = objects.Instance(
            uuid="uuid-inst2",
            name=f"inst2.{DOMAIN}",
            primary_node=node_uuid(3),
            admin_state=C.ADMINST_UP,
            disk_template=C.DT_FILE,
            disks=[
                objects.Disk(
                    uuid="uuid-inst2-disk0",
                    dev_type=C.LD_FILE,
                    size=1024,
                    iv_name="disk/0",
                    logical_id=["loop", "/srv/ganeti/file-storage/inst2/disk0"],
                )
            ],
            disks_active=True,
        )
        insts = {inst1.uuid: inst1, inst2.uuid: inst2}
    return objects.ConfigData(
        cluster=cluster,
        nodes=nodes,
        nodegroups={GROUP: objects.NodeGroup(uuid=GROUP, name="default")},
        instances=insts,
    )


@dataclass
class Env:
    cfg: MemStore
    rpc: FakeRpc
    paths: Paths
    feedback: list[str] = field(default_factory=list)
    submitted: list[list[opcodes.OpCode]] = field(default_factory=list)
    next_job: int = 23
    locks: dict[int, list[str] | str] = field(default_factory=dict)
    shared: dict[int, bool] = field(default_factory=dict)


def make_env(tmp_path: Path, data: objects.ConfigData | None = None) -> Env:
    paths = Paths.under(tmp_path)
    cfg = MemStore(data or make_config())
    rpc = FakeRpc(cfg, paths)
    env = Env(cfg=cfg, rpc=rpc, paths=paths)
    # a healthy runtime: instances run on their primaries, LVs exist
    for inst in cfg.all_instances():
        rpc.state(cfg.node_name(inst.primary_node)).running.append(inst.name)
        for disk in inst.disks:
            for child in disk.children:
                for node in disk.logical_id[:2]:
                    rpc.state(cfg.node_name(node)).volumes.append("/".join(child.logical_id))
    return env


def _all_names(cfg: ConfigStore, level: int) -> list[str]:
    table: dict[int, Any] = {1: cfg.instances, 2: cfg.nodegroups, 3: cfg.nodes, 4: cfg.nodes}
    return sorted(table.get(level, {}))


async def run_lu_async(env: Env, op: opcodes.OpCode) -> Any:
    registry.load_all()
    owned: dict[int, list[str]] = {}

    async def submit(jobs: list[list[opcodes.OpCode]]) -> list[int]:
        ids = []
        for job in jobs:
            env.submitted.append(job)
            ids.append(env.next_job)
            env.next_job += 1
        return ids

    ctx = LUContext(
        cfg=env.cfg,
        rpc=env.rpc,  # type: ignore[arg-type]
        paths=env.paths,
        job_id=1,
        feedback_fn=env.feedback.append,
        submit_fn=submit,
        owned_locks_fn=lambda level: owned.get(level, []),
    )
    lu = prepare_lu(env, op, ctx, owned)
    await lu.check_prereq()
    return await lu.exec()


def prepare_lu(env: Any, op: opcodes.OpCode, ctx: LUContext, owned: dict[int, list[str]]) -> Any:
    """The LU for `op`, its arguments checked, names expanded and every lock it
    declares taken (recorded in `owned`, ``env.locks`` and ``env.shared``)."""
    lu = registry.lu_class(op)(op, ctx)
    lu.check_arguments()
    lu.expand_names()
    for level in LEVELS:
        if level not in lu.needed_locks:
            continue
        lu.declare_locks(level)
        names = lu.needed_locks[level]
        owned[level] = _all_names(env.cfg, level) if names is ALL_SET else sorted(names)  # type: ignore[arg-type]
        env.locks[level] = "ALL" if names is ALL_SET else sorted(names)  # type: ignore[arg-type]
        env.shared[level] = bool(lu.share_locks.get(level, False))
    return lu


def run_lu(env: Env, op: opcodes.OpCode) -> Any:
    return asyncio.run(run_lu_async(env, op))


def problems(env: Env) -> list[str]:
    """The ERROR/WARNING lines of the job log."""
    return [line for line in env.feedback if line.startswith("  - ")]
