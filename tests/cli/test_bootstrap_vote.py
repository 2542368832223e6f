"""master-failover's voting: refuse when another node has a newer config or
when too few nodes answer (this node might be the one cut off)."""

from __future__ import annotations

from typing import Any

import pytest

from corral import objects
from corral.cli import bootstrap
from corral.paths import Paths
from corral.rpc import client as rpc_client
from corral.rpc.client import RpcResult


def _config(nodes: int) -> objects.ConfigData:
    data = objects.ConfigData(cluster=objects.Cluster(cluster_name="c", master_node="n1"))
    for idx in range(1, nodes + 1):
        data.nodes[f"n{idx}"] = objects.Node(
            name=f"node{idx}", uuid=f"n{idx}", primary_ip=f"192.0.2.{idx}"
        )
    data.serial_no = 10
    return data


def _patch(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Any]) -> None:
    class Runner:
        def __init__(self, *_a: Any, **_k: Any) -> None:
            pass

        async def call_multi(self, name: str, nodes: list[Any]) -> dict[str, RpcResult]:
            assert name == "config_info"
            out = {}
            for node in nodes:
                if node.name in answers:
                    out[node.name] = RpcResult(node=node.name, payload=answers[node.name])
                else:
                    out[node.name] = RpcResult(node=node.name, fail_msg="down", unreachable=True)
            return out

        async def close(self) -> None:
            pass

    monkeypatch.setattr(rpc_client, "RpcRunner", Runner)
    monkeypatch.setattr(rpc_client.ClientTLS, "from_paths", staticmethod(lambda _p: None))


def test_vote_accepts_when_majority_agrees(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    data = _config(3)
    _patch(monkeypatch, {"node3": {"serial": 10, "master": "node1"}})  # node1 is dead
    assert bootstrap._vote(Paths.under(tmp_path), data, data.nodes["n2"]) is None


def test_vote_refuses_a_stale_candidate(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    data = _config(3)
    _patch(monkeypatch, {"node1": {"serial": 12, "master": "node1"}, "node3": {"serial": 10}})
    refusal = bootstrap._vote(Paths.under(tmp_path), data, data.nodes["n2"])
    assert refusal is not None and "node1 has a newer configuration (serial 12" in refusal


def test_vote_refuses_without_majority(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    data = _config(2)
    _patch(monkeypatch, {})  # the only other node does not answer
    refusal = bootstrap._vote(Paths.under(tmp_path), data, data.nodes["n2"])
    assert refusal is not None and "--no-voting" in refusal
