"""In-process nodes for LU tests: the real node backend behind a wire-like RPC runner.

`LocalRpc` runs each call of the RPC table on the backend function of the
named node (its own `Paths` tree, its own `NodeContext`), with arguments and
results passed through JSON and converted to the declared types exactly as
client and server do. Storage is real: file volumes and the filedrbd TEST
backend, replicating between nodes over 127.0.0.N (one loopback address per
node), so DRBD resyncs really happen. ``fail[(call, node_name)]`` injects a
failure. No tests here.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from corral import constants as C
from corral import errors, objects
from corral.node.context import NodeContext
from corral.paths import Paths
from corral.rpc import defs
from corral.rpc.client import NodeTarget, RpcResult

from .test_cluster_fakes import DOMAIN, GROUP, MemStore, node_uuid


def free_ports(ips: list[str], count: int = 16) -> int:
    """First of `count` consecutive ports (in corral's DRBD range) free on every IP."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(C.FIRST_DRBD_PORT, C.LAST_DRBD_PORT - count)
        ok = True
        for port in range(base, base + count):
            for ip in ips:
                with socket.socket() as probe:
                    try:
                        probe.bind((ip, port))
                    except OSError:
                        ok = False
        if ok:
            return base
    raise RuntimeError("no free port range")


class LocalRpc:
    def __init__(self, nodes: dict[str, Paths]) -> None:
        self.ctxs = {name: NodeContext(paths, node_name=name) for name, paths in nodes.items()}
        self.fail: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str]] = []
        self.hooks: dict[str, Callable[[str, tuple[Any, ...]], None]] = {}

    async def call(
        self, name: str, node: NodeTarget, *args: Any, timeout: float | None = None
    ) -> RpcResult:
        self.calls.append((name, node.name))
        if node.offline:
            return RpcResult(node=node.name, offline=True, fail_msg="Node is marked offline")
        if (name, node.name) in self.fail:
            err = errors.OpExecError(self.fail[(name, node.name)])
            return RpcResult(node=node.name, fail_msg=str(err), error=err)
        spec = defs.CALLS[name]
        raw = msgspec.json.decode(msgspec.json.encode(list(args)))
        conv: list[Any] = []
        for i, arg in enumerate(spec.args):
            if i < len(raw):
                conv.append(msgspec.convert(raw[i], arg.type, strict=False))
            else:
                conv.append(arg.default)
        module, func = spec.backend.split(":")
        fn = getattr(importlib.import_module(module), func)
        if name in self.hooks:
            self.hooks[name](node.name, tuple(conv))
        try:
            result = await asyncio.to_thread(functools.partial(fn, self.ctxs[node.name], *conv))
        except errors.GenericError as err:
            return RpcResult(node=node.name, fail_msg=str(err), error=err)
        payload = msgspec.json.decode(msgspec.json.encode(result))
        if spec.result is not None:
            payload = msgspec.convert(payload, spec.result, strict=False)
        return RpcResult(node=node.name, payload=payload)

    async def call_multi(
        self, name: str, nodes: list[NodeTarget], *args: Any, timeout: float | None = None
    ) -> dict[str, RpcResult]:
        results = await asyncio.gather(*(self.call(name, n, *args) for n in nodes))
        return {n.name: r for n, r in zip(nodes, results, strict=True)}

    def count(self, name: str, node: str | None = None) -> int:
        return sum(1 for c, n in self.calls if c == name and (node is None or n == node))


def local_config(n_nodes: int = 3) -> objects.ConfigData:
    """A cluster of `n_nodes` whose replication IPs are 127.0.0.N, fake HV, filedrbd."""
    nodes = {
        node_uuid(i): objects.Node(
            uuid=node_uuid(i),
            name=f"node{i}.{DOMAIN}",
            primary_ip=f"127.0.0.{i}",
            secondary_ip=f"127.0.0.{i}",
            group=GROUP,
        )
        for i in range(1, n_nodes + 1)
    }
    cluster = objects.Cluster(
        uuid="uuid-cluster",
        cluster_name=f"cluster.{DOMAIN}",
        master_node=node_uuid(1),
        master_ip="127.0.0.254",
        master_netdev="lo",
        master_netmask=8,
        enabled_hypervisors=[C.HT_FAKE],
        nicparams={"default": {C.NIC_MODE: C.NIC_MODE_BRIDGED, C.NIC_LINK: "br-none"}},
        enabled_disk_templates=[C.DT_DRBD8, C.DT_PLAIN, C.DT_FILE],
        volume_group_name="xenvg",
        diskparams={
            C.LD_DRBD8: {
                "resync-rate": 1 << 20,
                "filedrbd-timeout": 3,
                "drbd_backend": "filedrbd",
            },
            C.LD_LV: {"lv_backend": "filelv"},
        },
        highest_used_port=0,
        ctime=1700000000.0,
        mtime=1700000000.0,
    )
    return objects.ConfigData(
        cluster=cluster,
        nodes=nodes,
        nodegroups={GROUP: objects.NodeGroup(uuid=GROUP, name="default")},
        instances={},
    )


class LocalCluster:
    """Config store + in-process nodes under `root`."""

    def __init__(self, root: Path, n_nodes: int = 3) -> None:
        data = local_config(n_nodes)
        ips = [n.secondary_ip or "" for n in data.nodes.values()]
        data.cluster.highest_used_port = free_ports(ips) - 1
        self.cfg = MemStore(data)
        self.paths = {n.name: Paths.under(root / n.name.split(".")[0]) for n in data.nodes.values()}
        self.main_paths = Paths.under(root / "master")
        self.rpc = LocalRpc(self.paths)

    def node(self, idx: int) -> str:
        return node_uuid(idx)

    def data_file(self, inst_name: str, node_name: str, idx: int = 0) -> Path:
        """The data volume file of disk `idx` of an instance on a node."""
        inst = self.cfg.get_instance_by_name(inst_name)
        assert inst is not None
        lv = inst.disks[idx].children[0].logical_id
        return Path(self.paths[node_name].volumes_dir) / str(lv[0]) / str(lv[1])

    def sha(self, path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
