"""RAPI v2 read-only slice: a real master in-process, its RAPI over HTTPS on 127.0.0.1.

Shapes are checked against the real Ganeti 3.0.2 answers in
reference/ganeti/rapi (same keys, same order, same JSON types).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from corral.config import save_config_file
from corral.daemons.masterd import Master
from corral.paths import Paths
from corral.rapi import resources as R
from corral.rapi.server import match
from tests.rapi.cluster import (
    fake_nodes,
    fetch,
    install_certificate,
    populated_config,
    rapi_master,
    reference,
)


def _get_all(tmp_path: Path, requests: list[tuple[str, str]]) -> list[tuple[int, str, Any]]:
    """Answers of (method, path) requests against one populated master."""

    async def scenario() -> list[tuple[int, str, Any]]:
        async with rapi_master(tmp_path) as (_m, url):
            return [await asyncio.to_thread(fetch, url + p, m) for m, p in requests]

    return asyncio.run(scenario())


def _type(value: Any) -> str:
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else (type(value).__name__)
    )


def _same_shape(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for key, value in want.items():
        if value is not None and got[key] is not None:
            assert _type(got[key]) == _type(value), key


READS = [
    ("GET", "/version"),
    ("GET", "/2/info"),
    ("GET", "/2/features"),
    ("GET", "/2/nodes"),
    ("GET", "/2/nodes?bulk=1"),
    ("GET", "/2/nodes/node2"),
    ("GET", "/2/nodes/node1.example.com/role"),
    ("GET", "/2/instances"),
    ("GET", "/2/instances?bulk=1"),
    ("GET", "/2/instances/web"),
    ("GET", "/2/groups"),
    ("GET", "/2/groups?bulk=1"),
    ("GET", "/2/groups/default"),
    ("GET", "/2/tags"),
    ("GET", "/2/os"),
    ("GET", "/2/instances?bulk=0"),
]


def test_reads_have_ganetis_shapes(tmp_path: Path) -> None:
    answers = _get_all(tmp_path, READS)
    assert all(status == 200 for status, _, _ in answers), answers
    assert all(ctype == "application/json" for _, ctype, _ in answers)
    body = {path: b for (_, path), (_, _, b) in zip(READS, answers, strict=True)}

    assert body["/version"] == reference("curl_version.json") == 2
    _same_shape(body["/2/info"], reference("curl_info.json"))
    assert body["/2/info"]["master"] == "node1.example.com"
    assert body["/2/info"]["tags"] == ["ctag"]
    assert body["/2/features"] == []

    assert body["/2/nodes"] == [
        {"id": f"node{i}.example.com", "uri": f"/2/nodes/node{i}.example.com"} for i in (1, 2, 3)
    ]
    assert set(reference("curl_nodes.json")[0]) == {"id", "uri"}
    nodes = body["/2/nodes?bulk=1"]
    assert [n["name"] for n in nodes] == [f"node{i}.example.com" for i in (1, 2, 3)]
    for node in nodes:
        _same_shape(node, reference("curl_nodes_bulk.json")[0])
    assert (nodes[0]["role"], nodes[1]["role"]) == ("M", "C")
    assert nodes[2]["mtotal"] == 8192 and nodes[0]["pinst_list"] == ["web.example.com"]
    assert nodes[1]["sinst_list"] == ["web.example.com"]
    one = body["/2/nodes/node2"]
    _same_shape(one, reference("curl_node_node1.json"))
    assert one["secondary_ip"] == one["sip"] == "198.51.100.2"
    assert body["/2/nodes/node1.example.com/role"] == reference("curl_node_role.json")

    ids = ["db.example.com", "web.example.com"]
    assert body["/2/instances"] == [{"id": i, "uri": f"/2/instances/{i}"} for i in ids]
    assert body["/2/instances?bulk=0"] == body["/2/instances"]
    insts = body["/2/instances?bulk=1"]
    assert [i["name"] for i in insts] == ids
    for inst in insts:
        _same_shape(inst, reference("curl_instances_bulk.json")[0])
        assert set(inst["beparams"]) >= set(reference("curl_instance_inst1.json")["beparams"])
    web = body["/2/instances/web"]
    _same_shape(web, reference("curl_instance_inst1.json"))
    assert web == insts[1]
    assert (web["status"], web["oper_ram"], web["snodes"]) == (
        "running",
        512,
        ["node2.example.com"],
    )
    assert insts[0]["oper_ram"] is None  # stopped: no live memory, JSON null as in Ganeti
    assert web["beparams"]["memory"] == web["beparams"]["maxmem"] == 512

    assert body["/2/groups"] == [{"name": "default", "uri": "/2/groups/default"}]
    groups = body["/2/groups?bulk=1"]
    _same_shape(groups[0], reference("curl_groups_bulk.json")[0])
    assert groups[0]["node_cnt"] == 3 and groups[0]["uuid"] == "g-default"
    assert body["/2/groups/default"] == groups[0]

    assert body["/2/tags"] == ["ctag"]
    assert body["/2/os"] == [
        "debootstrap",
        "image+cd",
        "image+default",
    ]  # the broken OS is not listed


def test_errors_have_ganetis_bodies(tmp_path: Path) -> None:
    requests = [
        ("GET", "/2/instances/nosuch"),
        ("GET", "/2/nodes/nosuch"),
        ("GET", "/2/groups/nosuch"),
        ("GET", "/2/nowhere"),
        ("GET", "/3/instances"),
        ("GET", "/2/nodes?bulk=yes"),
        ("POST", "/2/instances"),
        ("DELETE", "/2/instances/web"),
        ("PUT", "/2/nodes/node1.example.com/role"),
        ("PUT", "/2/instances/web/startup"),
        ("GET", "/2/jobs/7"),
        ("POST", "/2/groups/default/assign-nodes"),
        ("GET", "/2/query/instance"),
        ("GET", "/2/query/node/fields"),
    ]
    answers = _get_all(tmp_path, requests)
    missing = reference("curl_instance_missing.json")
    for status, _ctype, body in answers[:5]:
        assert (status, body) == (404, missing)
    assert answers[5][0] == 400
    assert answers[5][2]["explain"] == "Invalid value for the 'bulk' parameter"
    for (method, path), (status, ctype, body) in zip(requests[6:], answers[6:], strict=True):
        assert status == 501 and ctype == "application/json"
        assert body == {
            "code": 501,
            "message": "Not Implemented",
            "explain": f"Method {method} is unsupported for path {path}",
        }


def test_routes_cover_the_read_resources() -> None:
    assert match("/2/instances/a/b/c") is None
    assert match("/2/instances/a/disk/0/grow") == (None, [])
    found = match("/2/nodes/node1/role")
    assert found is not None and found[1] == ["node1"]
    assert list(reference("curl_nodes_bulk.json")[0]) == R.NODE_FIELDS
    assert list(reference("curl_instances_bulk.json")[0]) == R.INSTANCE_FIELDS
    assert list(reference("curl_groups_bulk.json")[0]) == R.GROUP_FIELDS
    assert list(reference("curl_info.json")) == R.INFO_KEYS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _master(tmp_path: Path, port: int) -> Master:
    paths = Paths.under(tmp_path)
    save_config_file(paths.config_file, populated_config())
    install_certificate(paths)
    return Master(
        paths,
        rpc=fake_nodes(),  # type: ignore[arg-type]
        node_name="node1.example.com",
        watcher_interval=None,
        rapi_port=port,
    )


def test_masterd_serves_rapi_and_stops_it(tmp_path: Path) -> None:
    port = _free_port()

    async def scenario() -> None:
        m = _master(tmp_path, port)
        await m.start()
        try:
            assert m.rapi is not None
            status, _, body = await asyncio.to_thread(fetch, f"https://127.0.0.1:{port}/2/tags")
            assert (status, body) == (200, ["ctag"])
        finally:
            await m.stop(timeout=1)
        assert m.rapi is None
        with socket.socket() as s:  # the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))

    asyncio.run(scenario())


def test_masterd_runs_on_when_the_rapi_port_is_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        with socket.socket() as busy:
            busy.bind(("0.0.0.0", 0))
            busy.listen()
            m = _master(tmp_path, busy.getsockname()[1])
            await m.start()
            try:
                assert m.rapi is None
                assert m.server is not None  # the local API still serves
            finally:
                await m.stop(timeout=1)

    asyncio.run(scenario())
    assert "RAPI not started, cannot listen on port" in caplog.text
