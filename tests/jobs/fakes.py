"""Shared fakes for the master-side tests: an RPC runner and a sample config."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from corral import constants as C
from corral import objects
from corral.rpc.client import NodeTarget, RpcResult

Responder = Callable[..., Any]


class FakeRpc:
    """Records calls; answers from `responders[name](node_name, *args)`.

    A responder may return a payload, raise an exception (-> fail_msg), or
    return an `RpcResult` as is. Nodes listed in `unreachable` fail like a
    dead node. Calls without a responder succeed with payload None.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.responders: dict[str, Responder] = {}
        self.unreachable: set[str] = set()
        self.delay = 0.0

    async def call(self, name: str, node: NodeTarget, *args: Any, **_kw: Any) -> RpcResult:
        self.calls.append((name, node.name, args))
        if self.delay:
            await asyncio.sleep(self.delay)
        if node.offline:
            return RpcResult(node=node.name, fail_msg="Node is marked offline", offline=True)
        if node.name in self.unreachable:
            return RpcResult(
                node=node.name, fail_msg="Node is unreachable: refused", unreachable=True
            )
        responder = self.responders.get(name)
        if responder is None:
            return RpcResult(node=node.name, payload=None)
        try:
            value = responder(node.name, *args)
        except Exception as err:
            return RpcResult(node=node.name, fail_msg=str(err))
        if isinstance(value, RpcResult):
            return value
        return RpcResult(node=node.name, payload=value)

    async def call_multi(
        self, name: str, nodes: list[NodeTarget], *args: Any, **kw: Any
    ) -> dict[str, RpcResult]:
        results = await asyncio.gather(*(self.call(name, n, *args, **kw) for n in nodes))
        return {r.node: r for r in results}

    async def close(self) -> None:
        return None

    def calls_of(self, name: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [(node, args) for call, node, args in self.calls if call == name]


def sample_config(nodes: int = 3) -> objects.ConfigData:
    """A cluster of `nodes` nodes (node1 master), one group, no instances."""
    group = objects.NodeGroup(name="default", uuid="g-default")
    node_objs = {}
    for idx in range(1, nodes + 1):
        uuid = f"n{idx}"
        node_objs[uuid] = objects.Node(
            name=f"node{idx}.example.com",
            uuid=uuid,
            primary_ip=f"192.0.2.{idx}",
            secondary_ip=f"198.51.100.{idx}",
            group="g-default",
            master_candidate=True,
        )
    cluster = objects.Cluster(
        cluster_name="cluster.example.com",
        uuid="c-1",
        master_node="n1",
        enabled_hypervisors=[C.HT_FAKE],
        enabled_disk_templates=[C.DT_DISKLESS, C.DT_FILE, C.DT_DRBD8, C.DT_PLAIN],
        candidate_pool_size=10,
    )
    return objects.ConfigData(cluster=cluster, nodes=node_objs, nodegroups={"g-default": group})


def make_instance(
    name: str, uuid: str, pnode: str = "n1", snode: str | None = None, **kw: Any
) -> objects.Instance:
    disks: list[objects.Disk] = []
    if snode is not None:
        disks.append(
            objects.Disk(
                uuid=f"{uuid}-d0",
                dev_type=C.LD_DRBD8,
                size=1024,
                logical_id=[pnode, snode, 11000 + len(uuid), 0, 0, "s" * 40],
                children=[
                    objects.Disk(
                        uuid=f"{uuid}-d0a",
                        dev_type=C.LD_LV,
                        size=1024,
                        logical_id=["xenvg", f"{uuid}.disk0_data"],
                    ),
                    objects.Disk(
                        uuid=f"{uuid}-d0b",
                        dev_type=C.LD_LV,
                        size=128,
                        logical_id=["xenvg", f"{uuid}.disk0_meta"],
                    ),
                ],
                iv_name="disk/0",
            )
        )
    return objects.Instance(
        name=name,
        uuid=uuid,
        primary_node=pnode,
        disk_template=C.DT_DRBD8 if snode else C.DT_DISKLESS,
        disks=disks,
        **kw,
    )
