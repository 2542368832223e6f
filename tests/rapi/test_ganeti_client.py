"""Debian's python3-ganeti-rapi client (Ganeti 3.0.2, pycurl) reads corral's RAPI unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.rapi.cluster import rapi_master, reference

CLIENT = "/usr/lib/python3/dist-packages/ganeti/rapi/client.py"
SYSTEM_PYTHON = "/usr/bin/python3"

# Runs under the system python (the client is a Debian package, not in the venv).
SCRIPT = """
import json, sys
from ganeti.rapi import client as rc
host, port = sys.argv[1], int(sys.argv[2])
c = rc.GanetiRapiClient(host, port=port)
out = {
    "version": c.GetVersion(), "features": c.GetFeatures(), "info": c.GetInfo(),
    "os": c.GetOperatingSystems(), "tags": c.GetClusterTags(),
    "instances": c.GetInstances(), "instances_bulk": c.GetInstances(bulk=True),
    "instance": c.GetInstance("web"), "nodes": c.GetNodes(),
    "nodes_bulk": c.GetNodes(bulk=True), "node": c.GetNode("node1.example.com"),
    "role": c.GetNodeRole("node1.example.com"), "groups": c.GetGroups(),
    "groups_bulk": c.GetGroups(bulk=True), "group": c.GetGroup("default"),
}
for name, call in [("missing", lambda: c.GetInstance("nosuch")),
                   ("create", lambda: c.CreateInstance("create", "web2", "diskless", [], [],
                                                       os="image+default", pnode="node1")),
                   ("shutdown", lambda: c.ShutdownInstance("web")),
                   ("add_tags", lambda: c.AddClusterTags(["x"])),
                   ("jobs", lambda: c.GetJobs())]:
    try:
        call()
        out[name] = None
    except rc.GanetiApiError as err:
        out[name] = [err.code, str(err)]
print(json.dumps(out))
"""

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CLIENT) and os.access(SYSTEM_PYTHON, os.X_OK)),
    reason="python3-ganeti-rapi (Debian) not installed",
)


def _run_client(tmp_path: Path) -> dict[str, Any]:
    async def scenario() -> str:
        async with rapi_master(tmp_path) as (_m, url):
            host, port = url.removeprefix("https://").split(":")
            proc = await asyncio.create_subprocess_exec(
                SYSTEM_PYTHON, "-c", SCRIPT, host, port,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            return out.decode()

    result: dict[str, Any] = json.loads(asyncio.run(scenario()))
    return result


def test_debian_client_reads_everything(tmp_path: Path) -> None:
    got = _run_client(tmp_path)
    assert got["version"] == reference("client_version.json")
    assert got["features"] == []
    assert set(got["info"]) == set(reference("client_info.json"))
    assert got["os"] == ["debootstrap", "image+cd", "image+default"]
    assert got["tags"] == ["ctag"]
    assert got["instances"] == ["db.example.com", "web.example.com"]
    assert all(isinstance(n, str) for n in reference("client_instances.json"))
    want_inst = set(reference("client_instances_bulk.json")[0])
    assert [set(i) for i in got["instances_bulk"]] == [want_inst, want_inst]
    assert set(got["instance"]) == set(reference("client_instance_inst1.json"))
    assert got["instance"]["name"] == "web.example.com"
    assert got["nodes"] == [f"node{i}.example.com" for i in (1, 2, 3)]
    assert set(got["nodes_bulk"][0]) == set(reference("client_nodes_bulk.json")[0])
    assert set(got["node"]) == set(reference("client_node_node1.json"))
    assert got["role"] == "master"
    assert got["groups"] == ["default"]
    assert set(got["groups_bulk"][0]) == set(reference("curl_groups_bulk.json")[0])
    assert got["group"]["node_cnt"] == 3
    assert got["missing"][0] == 404
    # no feature advertised: the client itself refuses new-style creation requests
    assert got["create"] == [None, "Server does not support new-style (version 1) instance"
                             " creation requests"]  # fmt: skip
    for name, method, path in [
        ("shutdown", "PUT", "/2/instances/web/shutdown"),
        ("add_tags", "PUT", "/2/tags"),
        ("jobs", "GET", "/2/jobs"),
    ]:
        assert got[name][0] == 501
        assert f"Method {method} is unsupported for path {path}" in got[name][1]
