"""Node backend functions called directly (no RPC)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import errors, network, objects
from corral.hypervisor.base import InstanceStartSpec, NicInfo
from corral.node import cluster, files, instances, netops, node_info
from corral.node.context import NodeContext
from corral.paths import Paths


@pytest.fixture
def ctx(tmp_path: Path) -> NodeContext:
    return NodeContext(Paths.under(tmp_path), node_name="node1.project.edu")


@pytest.fixture
def net() -> Iterator[network.FakeNetwork]:
    drv = network.FakeNetwork()
    drv.create_bridge("br-public")
    network.use_driver(drv)
    yield drv
    network.use_driver(None)


def test_ssconf_write_and_reject(ctx: NodeContext) -> None:
    cluster.write_ssconf_files(ctx, {"master_node": "node1", "node_list": "a\nb"})
    assert cluster.read_ssconf(ctx) == {"master_node": "node1", "node_list": "a\nb"}
    assert os.stat(f"{ctx.paths.ssconf_dir}/ssconf_master_node").st_mode & 0o777 == 0o444
    with pytest.raises(errors.ParameterError, match="Invalid ssconf key"):
        cluster.write_ssconf_files(ctx, {"../evil": "x"})
    cluster.remove_ssconf_files(ctx)
    assert cluster.read_ssconf(ctx) == {}


def test_hooks_env_and_order(ctx: NodeContext) -> None:
    d = Path(ctx.paths.hooks_dir, "cluster-verify-pre.d")
    d.mkdir(parents=True)
    (d / "b").write_text("#!/bin/sh\necho $GANETI_HOOKS_PHASE $GANETI_X $GANETI_CLUSTER\n")
    (d / "a").write_text("#!/bin/sh\nexit 0\n")
    (d / "c").write_text("not executable")
    for name in ("a", "b"):
        (d / name).chmod(0o755)
    res = cluster.run_hooks(ctx, "cluster-verify", "pre", {"X": "1", "GANETI_CLUSTER": "c"})
    assert res == [("a", 2, ""), ("b", 2, "pre 1 c\n"), ("c", 0, "")]
    with pytest.raises(errors.ParameterError):
        cluster.run_hooks(ctx, "../x", "pre", {})


def test_upload_file_owner_and_path_checks(ctx: NodeContext, tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    files.upload_file(ctx, target, "aGk=", 0o600, 65534, 65534, None, 1000.0)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid, st.st_mtime, st.st_mode & 0o777) == (65534, 65534, 1000, 0o600)
    with pytest.raises(errors.ParameterError):
        files.upload_file(ctx, "/tmp/../etc/passwd", "aGk=", 0o600, -1, -1, None, None)
    with pytest.raises(errors.ParameterError, match="Invalid base64"):
        files.upload_file(ctx, target, "***", 0o600, -1, -1, None, None)


def test_stale_streams_are_dropped(ctx: NodeContext, tmp_path: Path) -> None:
    token = files.file_stream_begin(ctx, str(tmp_path / "big"), 10, 0o644, None, None)
    tmp = ctx.streams[token].tmp_path
    ctx.streams[token].started -= files.STREAM_IDLE_LIMIT + 1
    files.file_stream_begin(ctx, str(tmp_path / "other"), 1, 0o644, None, None)
    assert token not in ctx.streams and not os.path.exists(tmp)


def test_node_info_without_hypervisor(ctx: NodeContext) -> None:
    Path(ctx.paths.etc_dir).mkdir(parents=True)
    Path(ctx.paths.node_hardware_file).write_text('{"memory_total": 4096, "cpu_total": 4}')
    info = node_info.node_info(ctx, None, [])
    assert info["memory_total"] == 4096 and info["cpu_total"] == 4
    assert [s.type for s in info["storage"]] == ["file", "sharedfile"]


def _spec(name: str, maxmem: int = 128) -> InstanceStartSpec:
    inst = objects.Instance(name=name, primary_node="n1", hypervisor="fake")
    be = {"maxmem": maxmem, "minmem": maxmem, "vcpus": 1}
    return InstanceStartSpec(
        instance=inst,
        hvparams={},
        beparams=be,
        disks=[],
        nics=[NicInfo(mac="aa:00:00:00:00:01", link="br-public")],
    )


def test_failed_start_removes_taps(ctx: NodeContext, net: network.FakeNetwork) -> None:
    with pytest.raises(errors.HypervisorError, match="Not enough memory"):
        instances.instance_start(ctx, _spec("big.example", 10**9), "fake")
    assert net.list_taps() == []
    assert netops.recorded_taps(ctx, "big.example") == {}


def test_tap_setup_rolls_back_on_missing_bridge(ctx: NodeContext, net: network.FakeNetwork) -> None:
    nics = [NicInfo(mac="m1", link="br-public"), NicInfo(mac="m2", link="br-missing")]
    with pytest.raises(errors.NetworkError):
        netops.setup_nics(ctx, "vm.example", nics)
    assert net.list_taps() == []


def test_taps_cleaned_by_a_new_context(ctx: NodeContext, net: network.FakeNetwork) -> None:
    """A restarted noded (new context, same run dir) still removes the VM's taps."""
    made = netops.setup_nics(ctx, "vm.example", [NicInfo(mac="m1", link="br-public")])
    assert made[0].tap and net.master_of(made[0].tap) == "br-public"
    fresh = NodeContext(ctx.paths, node_name="node1")
    netops.teardown_nics(fresh, "vm.example")
    assert net.list_taps() == []


def test_start_and_stop_masterd(ctx: NodeContext, monkeypatch: pytest.MonkeyPatch) -> None:
    pidfile = ctx.paths.masterd_pidfile
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    script = f"import os,time\nopen({pidfile!r},'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    launcher = (
        "import subprocess,sys,time\n"
        f"subprocess.Popen([sys.executable,'-c',{script!r}],start_new_session=True,"
        "stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\n"
        f"import os\nwhile not os.path.exists({pidfile!r}): time.sleep(0.02)\n"
    )
    monkeypatch.setattr(cluster, "_masterd_command", lambda: [sys.executable, "-c", launcher])
    cluster.start_masterd(ctx)
    time.sleep(0.2)
    pid = int(Path(pidfile).read_text())
    os.kill(pid, 0)
    cluster.stop_masterd(ctx)
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)


@pytest.mark.needs_root
def test_master_ip_in_namespace(tmp_path: Path) -> None:
    ns = f"crlmip{os.getpid() % 100000}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        code = (
            "from corral.node import cluster\n"
            "from corral.node.context import NodeContext\n"
            "from corral.paths import Paths\n"
            f"ctx = NodeContext(Paths.under({str(tmp_path)!r}), node_name='n')\n"
            "cluster.master_ip_activate(ctx, '192.0.2.10', 32, 'lo')\n"
            "cluster.master_ip_activate(ctx, '192.0.2.10', 32, 'lo')\n"
            "import subprocess\n"
            "print(subprocess.run(['ip','-o','addr','show','lo'],capture_output=True,text=True).stdout)\n"
            "cluster.master_ip_deactivate(ctx, '192.0.2.10', 32, 'lo')\n"
            "cluster.master_ip_deactivate(ctx, '192.0.2.10', 32, 'lo')\n"
            "show = ['ip', '-o', 'addr', 'show', 'lo']\n"
            "print('after', subprocess.run(show, capture_output=True, text=True).stdout)\n"
            "try:\n"
            "    cluster.master_ip_activate(ctx, '192.0.2.10', 32, 'nosuchdev')\n"
            "except Exception as e:\n"
            "    print('ERR', type(e).__name__)\n"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        before, after = out.stdout.split("after", 1)
        assert "192.0.2.10/32" in before
        assert "192.0.2.10" not in after
        assert "ERR OpExecError" in after
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
