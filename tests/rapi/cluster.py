"""A populated in-process master (temp paths, fake nodes) with its RAPI served.

Three nodes in one group, a drbd instance node1:node2 that runs, a stopped
plain-free diskless instance on node3, tags on the cluster and an instance;
the fake nodes answer node_info, all_instances_info and os_diagnose the way
noded does. `rapi_master` yields the master and the base URL of a RAPI
listener over that master's query resources (TLS with a node certificate,
port chosen by the kernel).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from corral import constants as C
from corral import objects
from corral.config import save_config_file
from corral.daemons.masterd import Master
from corral.hypervisor.base import InstanceRuntime
from corral.paths import Paths
from corral.rapi.resources import RapiResources
from corral.rapi.server import RapiServer, server_ssl_context
from corral.rpc import tls
from tests.jobs.fakes import FakeRpc, make_instance, sample_config

REFERENCE = Path("/work/shared/reference/ganeti/rapi")

MEMORY = {"node1.example.com": 4096, "node2.example.com": 4096, "node3.example.com": 8192}


def reference(name: str) -> Any:
    return json.loads((REFERENCE / name).read_text())


def populated_config() -> objects.ConfigData:
    data = sample_config()
    data.cluster.tags = ["ctag"]
    web = make_instance(
        "web.example.com",
        "i1",
        pnode="n1",
        snode="n2",
        tags=["web"],
        admin_state=C.ADMINST_UP,
        os="image+default",
        beparams={C.BE_MAXMEM: 512, C.BE_MINMEM: 256, C.BE_VCPUS: 2},
        nics=[objects.NIC(uuid="nic-1", mac="aa:00:00:00:00:01", nicparams={"link": "br0"})],
    )
    db = make_instance(
        "db.example.com", "i2", pnode="n3", os="image+default", beparams={C.BE_MAXMEM: 1024}
    )
    data.instances = {"i1": web, "i2": db}
    return data


def fake_nodes() -> FakeRpc:
    rpc = FakeRpc()

    def node_info(node: str, vg: Any, hvs: Any) -> dict[str, Any]:
        return {
            "name": node,
            "memory_total": MEMORY[node],
            "memory_free": MEMORY[node] - 640,
            "memory_dom0": 128,
            "cpu_total": 4,
            "cpu_nodes": 1,
            "cpu_sockets": 1,
            "cpu_dom0": 1,
            "bootid": f"boot-{node}",
            "storage": [
                {"type": "lvm-vg", "name": vg, "storage_size": 102400, "storage_free": 90000},
                {"type": "file", "name": "/srv", "storage_size": 51200, "storage_free": 40000},
            ],
        }

    def all_instances(node: str, hvs: Any) -> dict[str, InstanceRuntime]:
        if node != "node1.example.com":
            return {}
        return {
            "web.example.com": InstanceRuntime(
                name="web.example.com", state="running", memory=512, vcpus=2
            )
        }

    def os_diagnose(node: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "image",
                "path": "/srv/ganeti/os/image",
                "status": True,
                "diagnose": "",
                "variants": ["default", "cd"],
                "parameters": [],
                "api_versions": [20],
            },
            {
                "name": "debootstrap",
                "path": "/srv/ganeti/os/debootstrap",
                "status": True,
                "diagnose": "",
                "variants": [],
                "parameters": [],
                "api_versions": [20],
            },
            {
                "name": "broken",
                "path": "/srv/ganeti/os/broken",
                "status": False,
                "diagnose": "missing create script",
                "variants": [],
                "parameters": [],
                "api_versions": [],
            },
        ]

    rpc.responders["node_info"] = node_info
    rpc.responders["all_instances_info"] = all_instances
    rpc.responders["os_diagnose"] = os_diagnose
    return rpc


def install_certificate(paths: Paths) -> None:
    ca = tls.create_ca("cluster.example.com")
    cert, key, _serial = tls.issue_node_cert(ca, "node1.example.com")
    tls.install_node_material(paths, ca[0], cert, key, ca[1])


@asynccontextmanager
async def rapi_master(tmp_path: Path) -> AsyncIterator[tuple[Master, str]]:
    """(master, "https://127.0.0.1:PORT") for a populated master."""
    paths = Paths.under(tmp_path)
    save_config_file(paths.config_file, populated_config())
    install_certificate(paths)
    m = Master(paths, rpc=fake_nodes(), node_name="node1.example.com", watcher_interval=None)  # type: ignore[arg-type]
    await m.start()
    assert m.handlers is not None
    server = RapiServer(
        RapiResources(m.handlers.ctx, m.handlers.queries),
        port=0,
        address="127.0.0.1",
        ssl_context=server_ssl_context(paths),
    )
    await server.start()
    try:
        yield m, f"https://127.0.0.1:{server.bound_port}"
    finally:
        await server.stop()
        await m.stop(timeout=1)


def fetch(url: str, method: str = "GET") -> tuple[int, str, Any]:
    """(status, content type, decoded JSON body) of one request, certificate unchecked."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
            return resp.status, resp.headers.get_content_type(), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), json.loads(err.read())
