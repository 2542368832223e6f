"""hbal/hspace -m CLUSTER: the RAPI loader against real Ganeti answers and corral's RAPI."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral.cli import htools_hbal, htools_hspace
from corral.cli.htools_live import LiveLoader
from corral.cli.htools_rapi import RapiLoader, base_url
from corral.htools.cluster import Cluster
from corral.htools.types import HtoolsError
from corral.rpc import tls
from tests.rapi.cluster import REFERENCE, rapi_master

# what Ganeti's htools fetch -> the real Ganeti 3.0.2 answer
GANETI_ANSWERS = {
    "/2/groups?bulk=1": "curl_groups_bulk.json",
    "/2/nodes?bulk=1": "curl_nodes_bulk.json",
    "/2/instances?bulk=1": "curl_instances_bulk.json",
    "/2/info": "curl_info.json",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: dict[str, bytes] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.answers.get(self.path)
        if body is None:
            body = b'{"code": 404, "message": "Not Found", "explain": "Nothing matches"}'
            self.send_response(404)
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("cert")
    cert, key = tls.create_self_signed("rapi.example.com")
    (directory / "cert.pem").write_text(cert)
    (directory / "key.pem").write_text(key)
    return str(directory / "cert.pem"), str(directory / "key.pem")


@pytest.fixture
def fake_rapi(server_cert: tuple[str, str]) -> Iterator[tuple[str, type[_Handler]]]:
    """An HTTPS server (self-signed) answering canned bodies; yields (host:port, handler)."""

    class Handler(_Handler):
        answers = {p: (REFERENCE / f).read_bytes() for p, f in GANETI_ANSWERS.items()}
        seen: list[str] = []

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*server_cert)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", Handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _check_ganeti_model(c: Cluster) -> None:
    """The model of reference/ganeti/rapi: one node, 20 file/diskless instances."""
    assert c.names == ["node1.example.test"]
    assert c.master == [True]
    assert [g.name for g in c.groups] == ["default"]
    assert c.groups[0].uuid == "b82e397a-dbc3-4186-b0e8-aaff75502174"
    assert c.nodes["tmem"].tolist() == [24105.0]
    assert c.nodes["nmem"].tolist() == [231]
    assert c.nodes["fmem"].tolist() == [13400]
    assert c.nodes["tdsk"].tolist() == [258019.0]
    assert c.nodes["fdsk"].tolist() == [79989]
    assert c.nodes["tcpu"].tolist() == [2.0]
    assert c.nodes["offline"].tolist() == [False]
    assert len(c.instances) == 20
    inst1 = next(i for i in c.instances if i.name == "inst1")
    assert (inst1.mem, inst1.dsk, inst1.vcpus, inst1.status) == (512, 1024, 1, "running")
    assert (inst1.disk_template, inst1.snode, inst1.disks) == ("file", -1, [(1024, None)])
    assert c.score() >= 0


def test_loads_real_ganeti_answers(fake_rapi: tuple[str, type[_Handler]]) -> None:
    hostport, handler = fake_rapi
    _check_ganeti_model(RapiLoader(hostport).load())
    # the resources and order of Ganeti's htools RAPI backend
    assert handler.seen == list(GANETI_ANSWERS)


def test_loads_a_file_directory_like_ganeti(tmp_path: Path) -> None:
    for path, name in GANETI_ANSWERS.items():
        target = path.split("/")[2].split("?")[0] + ".json"
        shutil.copy(REFERENCE / name, tmp_path / target)
    _check_ganeti_model(RapiLoader(f"file://{tmp_path}").load())


def test_hbal_and_hspace_m_print_the_loaded_cluster(
    fake_rapi: tuple[str, type[_Handler]], capsys: pytest.CaptureFixture[str]
) -> None:
    hostport, _ = fake_rapi
    assert htools_hbal.main(["-m", f"https://{hostport}", "-C"]) == 0
    out = capsys.readouterr().out
    assert "Loaded 1 nodes, 20 instances\n" in out
    assert "Initial score: " in out
    assert htools_hspace.main(["-m", hostport, "--machine-readable"]) == 0
    out = capsys.readouterr().out
    assert "HTS_INI_INST_CNT=20\n" in out and "HTS_OK=1\n" in out


def _same(a: Cluster, b: Cluster) -> None:
    assert a.names == b.names
    assert a.master == b.master
    assert a.cluster_tags == b.cluster_tags
    assert a.ipolicy == b.ipolicy
    assert [(g.name, g.uuid, g.alloc_policy, g.tags, g.ipolicy) for g in a.groups] == [
        (g.name, g.uuid, g.alloc_policy, g.tags, g.ipolicy) for g in b.groups
    ]
    for key in b.nodes:
        np.testing.assert_array_equal(a.nodes[key], b.nodes[key], err_msg=key)
    assert [vars(i) for i in a.instances] == [vars(i) for i in b.instances]
    assert f"{a.score():.8f}" == f"{b.score():.8f}"


def test_corral_rapi_gives_the_model_of_the_local_api(tmp_path: Path) -> None:
    async def scenario() -> tuple[Cluster, Cluster]:
        async with rapi_master(tmp_path) as (m, url):
            over_rapi = await asyncio.to_thread(RapiLoader(url).load)
            local = await asyncio.to_thread(LiveLoader(m.paths.master_socket).load)
            return over_rapi, local

    over_rapi, local = asyncio.run(scenario())
    _same(over_rapi, local)
    assert over_rapi.names == [f"node{i}.example.com" for i in (1, 2, 3)]
    assert [i.name for i in over_rapi.instances] == ["db.example.com", "web.example.com"]
    web = over_rapi.instances[1]
    assert (web.mem, web.vcpus, web.disk_template, web.snode) == (512, 2, "drbd", 1)
    assert over_rapi.cluster_tags == ["ctag"]


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("cluster.example.com", "https://cluster.example.com:5080"),
        ("10.0.0.1:8080", "https://10.0.0.1:8080"),
        ("http://10.0.0.1:5080/", "http://10.0.0.1:5080"),
        ("fe80::1", "https://[fe80::1]:5080"),
        ("[fe80::1]:99", "https://[fe80::1]:99"),
    ],
)
def test_cluster_argument_forms(given: str, url: str) -> None:
    assert base_url(given) == url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda a: a.update({"/2/nodes?bulk=1": b"[{"}),
            "Invalid JSON from 'https://HOST/2/nodes?bulk=1': ",
        ),
        (
            lambda a: a.update({"/2/instances?bulk=1": b'{"a": 1}'}),
            "Parsing instance data: expected a JSON array, got dict",
        ),
        (
            lambda a: a.update({"/2/nodes?bulk=1": b'[{"name": "n1", "offline": false}]'}),
            "Node 'n1', error while reading attribute 'drained': Unknown field",
        ),
        (
            lambda a: a.pop("/2/info"),
            "Cannot fetch 'https://HOST/2/info': HTTP error 404 Not Found",
        ),
    ],
)
def test_bad_answers_are_one_line_errors(
    fake_rapi: tuple[str, type[_Handler]], mutate: Any, message: str
) -> None:
    hostport, handler = fake_rapi
    mutate(handler.answers)
    with pytest.raises(HtoolsError) as err:
        RapiLoader(hostport).load()
    text = str(err.value)
    assert text.startswith("failed to load data, aborting: ")
    assert message.replace("HOST", hostport) in text
    assert "\n" not in text


@pytest.mark.parametrize("main", [htools_hbal.main, htools_hspace.main])
def test_unreachable_rapi_exits_1_with_one_line(
    main: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    assert main(["-m", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"Error: failed to load data, aborting: Cannot fetch "
        f"'https://127.0.0.1:{port}/2/groups?bulk=1': Connection refused\n"
    )


def test_a_server_that_is_not_http_is_a_one_line_error() -> None:
    """E.g. ``-m host:22``: an SSH banner instead of an HTTP status line."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def banner() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                conn.recv(1024)

        thread = threading.Thread(target=banner, daemon=True)
        thread.start()
        with pytest.raises(HtoolsError) as err:
            RapiLoader(f"http://127.0.0.1:{port}", timeout=5).load()
        thread.join(5)
    assert f"Cannot fetch 'http://127.0.0.1:{port}/2/groups?bulk=1'" in str(err.value)
