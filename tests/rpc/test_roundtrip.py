"""Every call of the RPC table goes through client + server + backend once.

Two in-process noded servers (node1, node2) with temp Paths, the real fake
hypervisor (VMs are small processes), the in-memory network driver, a fake
storage driver and a test OS definition. The test fails if a call of the table
is not exercised, so adding a call means adding it here.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from corral import network, objects
from corral.hypervisor.base import (
    BlockDeviceInfo,
    ConsoleInfo,
    InstanceRuntime,
    InstanceStartSpec,
    MigrationStatus,
    NicInfo,
)
from corral.node import cluster as node_cluster
from corral.node.context import NodeContext
from corral.rpc import defs
from corral.rpc.client import NodeTarget, RpcRunner, stream_file
from corral.storage.base import DeviceContext, SyncStatus

from . import fakes
from .helpers import client_for, joined_node, serving


@pytest.fixture
def fake_drivers(monkeypatch: pytest.MonkeyPatch) -> network.FakeNetwork:
    import corral.storage

    net = network.FakeNetwork()
    net.create_bridge("br-test")
    net.create_bridge("br-other")
    network.use_driver(net)
    monkeypatch.setattr(corral.storage, "build_device", fakes.build_device, raising=False)
    fakes.DEVICES.clear()
    ip_calls: list[list[str]] = []

    def fake_ip(args: list[str]) -> Any:
        ip_calls.append(args)
        import subprocess

        return subprocess.CompletedProcess(["ip", *args], 0, "", "")

    monkeypatch.setattr(node_cluster, "_ip", fake_ip)
    net.ip_calls = ip_calls  # type: ignore[attr-defined]
    yield net
    network.use_driver(None)


class Caller:
    def __init__(self, runner: RpcRunner) -> None:
        self.runner = runner
        self.called: set[str] = set()

    async def __call__(self, name: str, node: NodeTarget, *args: Any) -> Any:
        self.called.add(name)
        res = await self.runner.call(name, node, *args)
        assert res.fail_msg is None, f"{name}: {res.fail_msg}"
        return res.payload

    async def fails(self, name: str, node: NodeTarget, *args: Any) -> str:
        self.called.add(name)
        res = await self.runner.call(name, node, *args)
        assert res.fail_msg is not None, f"{name} should fail"
        return res.fail_msg


def _instance(
    name: str, nics: int = 1, disks: list[objects.Disk] | None = None
) -> objects.Instance:
    return objects.Instance(
        name=name,
        uuid=f"uuid-{name}",
        primary_node="node1-uuid",
        os="testos+default",
        hypervisor="fake",
        beparams={"maxmem": 128, "minmem": 128, "vcpus": 1},
        osparams={"color": "blue"},
        nics=[
            objects.NIC(
                mac=f"aa:00:00:00:00:0{i}",
                uuid=f"nic{i}",
                nicparams={"mode": "bridged", "link": "br-test"},
            )
            for i in range(nics)
        ],
        disks=disks or [],
    )


def _spec(inst: objects.Instance, disk_paths: list[str]) -> InstanceStartSpec:
    return InstanceStartSpec(
        instance=inst,
        hvparams={},
        beparams=inst.beparams,
        disks=[BlockDeviceInfo(path=p) for p in disk_paths],
        nics=[
            NicInfo(mac=n.mac, uuid=n.uuid, mode="bridged", link=n.nicparams["link"])
            for n in inst.nics
        ],
    )


def test_every_call_roundtrips(tmp_path: Path, fake_drivers: network.FakeNetwork) -> None:
    n1 = joined_node(tmp_path, "node1")
    n2 = joined_node(tmp_path, "node2")
    fakes.write_test_os(n1.paths.os_search_path[0])
    fakes.write_test_os(n2.paths.os_search_path[0])
    hook_dir = Path(n1.paths.hooks_dir) / "instance-start-post.d"
    hook_dir.mkdir(parents=True)
    (hook_dir / "10-ok").write_text("#!/bin/sh\necho hello $GANETI_INSTANCE_NAME\n")
    (hook_dir / "10-ok").chmod(0o755)
    (hook_dir / "20-bad").write_text("#!/bin/sh\necho oops; exit 1\n")
    (hook_dir / "20-bad").chmod(0o755)
    (hook_dir / "not.valid").write_text("#!/bin/sh\n")
    sample = tmp_path / "sample.bin"
    sample.write_bytes(os.urandom(10000))
    os.utime(sample, (1_000_000, 2_000_000))

    async def body() -> set[str]:
        async with (
            serving(NodeContext(n1.paths, node_name="node1")) as s1,
            serving(NodeContext(n2.paths, node_name="node2")) as s2,
            client_for(n1) as r1,
            client_for(n1) as r2,
        ):
            r1.port, r2.port = s1.port, s2.port
            c1, c2 = Caller(r1), Caller(r2)
            node1, node2 = NodeTarget("node1", "127.0.0.1"), NodeTarget("node2", "127.0.0.1")
            await _node_calls(c1, node1, n1.paths, sample)
            await _join_calls(c2, node2, s2)
            await _storage_calls(c1, node1)
            await _file_dir_calls(c1, node1, n1.paths)
            await _instance_calls(c1, node1, n1.paths, fake_drivers)
            await _migration_calls(c1, c2, node1, node2)
            await _os_calls(c1, node1, n1.paths)
            return c1.called | c2.called

    called = asyncio.run(body())
    assert called == set(defs.CALLS), set(defs.CALLS) - called


async def _node_calls(c: Caller, node: NodeTarget, paths: Any, sample: Path) -> None:
    ver = await c("version", node)
    assert ver["protocol"] == defs.PROTOCOL_VERSION and ver["joined"] is True
    assert await c("node_join_challenge", node, "n" * 32) == {"nonce": None, "proof": None}
    await c("node_set_revoked", node, [42])
    info = await c("node_info", node, "xenvg", ["fake"])
    assert info["memory_total"] > 0 and info["name"] == "node1" and info["bootid"]
    assert [s["type"] for s in info["storage"]] == ["lvm-vg", "file", "sharedfile"]
    verify = await c(
        "node_verify",
        node,
        {
            "version": None,
            "hypervisor": ["fake", "nohv"],
            "filelist": [paths.ca_cert, "/nonexistent"],
            "bridges": ["br-test", "br-nope"],
            "time": None,
            "node_name": None,
            "bogus": 1,
        },
    )
    assert verify["version"] == [defs.PROTOCOL_VERSION, ver["release"]]
    assert verify["hypervisor"]["fake"] is None and verify["hypervisor"]["nohv"]
    assert len(verify["filelist"][paths.ca_cert]) == 64
    assert verify["filelist"]["/nonexistent"] is None
    assert verify["bridges"] == ["br-nope"]
    assert abs(verify["time"] - time.time()) < 5
    assert verify["node_name"] == "node1"
    assert "error" in verify["bogus"]
    assert await c("bridges_exist", node, ["br-test", "br-gone"]) == ["br-gone"]
    assert await c("node_volumes", node) == []
    board = sample.with_name("board")
    board.write_text('#!/bin/sh\necho "{\\"powered\\": true, \\"asked\\": \\"$1 $2\\"}"\n')
    board.chmod(0o755)
    assert await c("run_oob", node, str(board), "power-status", "node3", 10) == {
        "powered": True,
        "asked": "power-status node3",
    }
    assert "is not executable" in await c.fails("run_oob", node, "/nonexistent", "health", "n")
    dest = f"{paths.data_dir}/uploaded"
    await c(
        "upload_file",
        node,
        dest,
        base64.b64encode(b"hello").decode(),
        0o640,
        -1,
        -1,
        1_000_000.0,
        1_500_000.0,
    )
    assert Path(dest).read_bytes() == b"hello"
    assert os.stat(dest).st_mode & 0o777 == 0o640 and os.stat(dest).st_mtime == 1_500_000
    res = await stream_file(c.runner, node, str(sample), f"{paths.data_dir}/streamed")
    c.called |= {"file_stream_begin", "file_stream_chunk", "file_stream_end"}
    assert res.payload is True
    assert Path(f"{paths.data_dir}/streamed").read_bytes() == sample.read_bytes()
    token = await c("file_stream_begin", node, f"{paths.data_dir}/aborted", 10)
    await c("file_stream_abort", node, token)
    assert not [n for n in os.listdir(paths.data_dir) if "aborted" in n]
    await c("write_ssconf_files", node, {"cluster_name": "c.example", "master_node": "node1"})
    assert Path(paths.ssconf_dir, "ssconf_master_node").read_text() == "node1\n"
    cfg = msgspec.json.encode({"serial_no": 7, "cluster": {}}).decode()
    await c("upload_config", node, cfg, 7)
    assert Path(paths.config_file).read_text() == cfg
    assert "serial mismatch" in await c.fails("upload_config", node, cfg, 8)
    assert await c("config_info", node) == {"serial": 7, "master": None}
    await c("jobqueue_update", node, 12, '{"id": 12}')
    assert Path(paths.data_dir, "queue", "job-12.json").read_text() == '{"id": 12}'
    await c("jobqueue_purge", node)
    assert not Path(paths.data_dir, "queue").exists()
    await c("master_ip_activate", node, "192.0.2.10", 32, "br-man")
    await c("master_ip_deactivate", node, "192.0.2.10", 32, "br-man")
    os.makedirs(os.path.dirname(paths.masterd_pidfile), exist_ok=True)
    Path(paths.masterd_pidfile).write_text(f"{os.getpid()}\n")
    await c("start_masterd", node)  # already running: nothing to do
    os.unlink(paths.masterd_pidfile)
    await c("stop_masterd", node)  # not running: nothing to do
    hooks = await c("run_hooks", node, "instance-start", "post", {"INSTANCE_NAME": "vm1"})
    assert hooks == [
        ("10-ok", 2, "hello vm1\n"),
        ("20-bad", 1, "oops\n"),
        ("not.valid", 0, ""),
    ]
    assert await c("run_hooks", node, "instance-stop", "pre", {}) == []


async def _join_calls(c: Caller, node: NodeTarget, server: Any) -> None:
    from corral.rpc import tls

    from .helpers import cluster_ca

    ca = cluster_ca()
    cert, key, _ = tls.issue_node_cert(ca, "node2", ["127.0.0.1"])
    # re-join over mutual TLS (a re-added node): no token proof needed
    await c("node_join", node, ca[0], cert, key, "cluster.project.edu", "node1", {}, None)
    await asyncio.sleep(0.4)
    assert (await c("version", node))["fingerprint"] == tls.fingerprint(cert)
    await c("node_leave", node)
    await asyncio.sleep(0.4)
    assert not server.joined
    # reinstall the material locally and reload, like gnt-cluster init + SIGHUP
    tls.install_node_material(server.ctx.paths, ca[0], cert, key)
    await server.reload_tls()
    assert server.joined


async def _storage_calls(c: Caller, node: NodeTarget) -> None:
    disk = objects.Disk(uuid="d1", dev_type="plain", size=8, iv_name="disk/0")
    ctx = DeviceContext(node_uuid="node1-uuid")
    await c("blockdev_create", node, disk, ctx, True, "instance vm1")
    assembled = await c("blockdev_assemble", node, disk, ctx, True, 0)
    assert assembled["path"].endswith("/d1") and fakes.DEVICES["d1"]["open"]
    found = await c("blockdev_find", node, disk, ctx)
    assert isinstance(found, SyncStatus) and found.dev_path == assembled["path"]
    assert await c("blockdev_find", node, objects.Disk(uuid="zz"), ctx) is None
    status = await c("blockdev_getmirrorstatus", node, [disk], ctx)
    assert [s.sync_percent for s in status] == [None]
    await c("blockdev_close", node, [disk], ctx)
    assert not fakes.DEVICES["d1"]["open"]
    await c("blockdev_open", node, [disk], ctx, False)
    await c("blockdev_grow", node, disk, ctx, 4, False)
    assert fakes.DEVICES["d1"]["size"] == 12
    await c("drbd_disconnect_net", node, [disk], ctx)
    assert await c("drbd_wait_sync", node, [disk], ctx) == {
        "done": False,
        "percent": 50.0,
        "degraded": False,
    }
    await c("drbd_attach_net", node, [disk], ctx, False)
    assert (await c("drbd_wait_sync", node, [disk], ctx))["done"] is True
    await c("blockdev_rename", node, [(disk, ["xenvg", "renamed"])], ctx)
    assert fakes.DEVICES["d1"]["logical_id"] == ["xenvg", "renamed"]
    await c("blockdev_shutdown", node, disk, ctx)
    await c("blockdev_remove", node, disk, ctx)
    assert "d1" not in fakes.DEVICES


async def _file_dir_calls(c: Caller, node: NodeTarget, paths: Any) -> None:
    old = Path(paths.file_storage_dir, "vm-old")
    old.mkdir(parents=True)
    (old / "disk0").write_text("x")
    await c("file_storage_dir_rename", node, str(old), f"{paths.file_storage_dir}/vm-new")
    assert Path(paths.file_storage_dir, "vm-new", "disk0").read_text() == "x"
    msg = await c.fails("file_storage_dir_rename", node, "/etc", "/tmp/x")
    assert msg == "Directory '/etc' is not a file storage directory"


async def _instance_calls(
    c: Caller, node: NodeTarget, paths: Any, net: network.FakeNetwork
) -> None:
    inst = _instance("vm1.project.edu")
    runtime = await c("instance_start", node, _spec(inst, []), "fake")
    assert isinstance(runtime, InstanceRuntime) and runtime.state == "running"
    tap = runtime.nics[0].tap
    assert tap and net.master_of(tap) == "br-test"
    try:
        assert "already running" in await c.fails("instance_start", node, _spec(inst, []), "fake")
        assert (await c("instance_info", node, inst.name, "fake")).name == inst.name
        assert inst.name in await c("all_instances_info", node, ["fake"])
        assert await c("instance_list", node, ["fake"]) == [inst.name]
        console = await c("instance_console_info", node, inst, {}, "fake", "node1")
        assert isinstance(console, ConsoleInfo)
        await c("hotplug_supported", node, inst.name, "fake")
        new_nic = NicInfo(mac="aa:00:00:00:00:09", mode="bridged", link="br-other")
        await c("hotplug_device", node, inst.name, "fake", "add", "nic", new_nic, 1)
        taps = net.list_taps()
        assert len(taps) == 2
        moved = NicInfo(mac="aa:00:00:00:00:09", mode="bridged", link="br-test")
        await c("hotplug_device", node, inst.name, "fake", "modify", "nic", moved, 1)
        assert all(net.master_of(t) == "br-test" for t in net.list_taps())
        await c("hotplug_device", node, inst.name, "fake", "remove", "nic", moved, 1)
        assert net.list_taps() == [tap]
        await c("instance_balloon_memory", node, inst.name, "fake", 128)
        await c("instance_reboot", node, inst.name, "fake", "soft")
    finally:
        await c("instance_shutdown", node, inst.name, "fake", 10.0, False)
    assert await c("instance_info", node, inst.name, "fake") is None
    assert net.list_taps() == []


async def _migration_calls(c1: Caller, c2: Caller, n1: NodeTarget, n2: NodeTarget) -> None:
    inst = _instance("vm2.project.edu", nics=0)
    await c1("instance_start", n1, _spec(inst, []), "fake")
    try:
        info = await c1("migration_info", n1, inst, "fake")
        accept = await c2("accept_instance", n2, _spec(inst, []), info, "127.0.0.1", "fake")
        await c1("instance_migrate", n1, inst.name, "fake", "127.0.0.1", accept, True)
        for _ in range(100):
            status = await c1("instance_get_migration_status", n1, inst.name, "fake")
            assert isinstance(status, MigrationStatus)
            if status.status != "active":
                break
            await asyncio.sleep(0.05)
        assert status.status == "completed", status
        await c2("instance_finalize_migration_dst", n2, inst.name, "fake", True)
        await c1("instance_finalize_migration_src", n1, inst.name, "fake", True, True)
        assert await c1("instance_list", n1, ["fake"]) == []
        assert await c2("instance_list", n2, ["fake"]) == [inst.name]
        await c2("instance_reboot", n2, inst.name, "fake", "full", _spec(inst, []), 5.0)
        assert await c2("instance_list", n2, ["fake"]) == [inst.name]
    finally:
        await c1("instance_shutdown", n1, inst.name, "fake", 5.0, True)
        await c2("instance_shutdown", n2, inst.name, "fake", 5.0, True)


async def _os_calls(c: Caller, node: NodeTarget, paths: Any) -> None:
    records = await c("os_diagnose", node)
    mine = [r for r in records if r["name"] == "testos"]
    assert mine and mine[0]["status"] is True and mine[0]["variants"] == ["default", "other"]
    assert (await c("os_get", node, "testos+other"))["parameters"] == [["color", "the color"]]
    assert "not found in search path" in await c.fails("os_get", node, "nope")
    await c("os_validate", node, "testos+default", {"color": "red"})
    assert "not supported" in await c.fails("os_validate", node, "testos+default", {"x": 1})
    inst = _instance("vm3.project.edu", disks=[objects.Disk(uuid="d9", size=4)])
    await c("instance_os_add", node, inst, ["/dev/fake0"], False, 0)
    logs = os.listdir(paths.os_log_dir)
    assert len(logs) == 1 and logs[0].startswith("add-testos+default-vm3.project.edu-")
    text = Path(paths.os_log_dir, logs[0]).read_text()
    assert "script=create name=vm3.project.edu variant=default disk0=/dev/fake0" in text
    assert "nic0=aa:00:00:00:00:00" in text and "color=blue" in text
    await c("instance_run_rename", node, inst, "old.project.edu", ["/dev/fake0"])
    assert any(n.startswith("rename-") for n in os.listdir(paths.os_log_dir))
    bad = msgspec.structs.replace(inst, osparams={"color": "bad"})
    msg = await c.fails("instance_os_add", node, bad, ["/dev/fake0"])
    assert msg.startswith("OS create script failed (exited with exit code 3)")
