"""Kernel DRBD 8.4: command generation, /proc/drbd parsing, device life cycle (no module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, objects
from corral.paths import Paths
from corral.storage import build_device, drbd_cmdgen
from corral.storage.base import DeviceContext
from corral.storage.drbd import DRBD_PARAMETERS, drbd_children_sizes, drbd_peers, format_eta
from corral.storage.drbd_kernel import KernelDRBD
from corral.storage.drbd_proc import parse_proc_drbd, parse_version
from corral.storage.runner import RecordingRunner

PROC_SYNCING = """\
version: 8.4.11 (api:1/proto:86-101)
srcversion: 9C5C2C5AC8F4E4D3F0B2A8E
 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
    ns:742400 nr:0 dw:0 dr:743424 al:8 bm:0 lo:0 pe:2 ua:0 ap:0 ep:1 wo:f oos:3451904
\t[==>.................] sync'ed: 17.6% (3368/4096)M
\tfinish: 0:04:46 speed: 12,032 (12,032) K/sec
 1: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate C r-----
    ns:0 nr:1048576 dw:1048576 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0
 2: cs:Unconfigured
 3: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C r-----
    ns:0 nr:0 dw:512 dr:2048 al:1 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:512
 4: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----
    ns:0 nr:2097152 dw:2097152 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:2097152
\t[=========>..........] sync'ed: 50.0% (2048/4096)M
\tfinish: 1:02:03 speed: 563 (600) want: 61,440 K/sec
 5: cs:StandAlone ro:Secondary/Unknown ds:Diskless/DUnknown   r-----
    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0
 6: cs:PausedSyncT ro:Secondary/Primary ds:Inconsistent/UpToDate C r--u-
    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:4194304
"""

IPS = {"nA": "192.168.1.1", "nB": "192.168.1.2"}
PARAMS = {name: p.default for name, p in DRBD_PARAMETERS.items()}


def test_parse_proc_drbd() -> None:
    assert parse_version(PROC_SYNCING) == (8, 4, 11)
    minors = parse_proc_drbd(PROC_SYNCING)
    assert sorted(minors) == [0, 1, 2, 3, 4, 5, 6]
    m0 = minors[0]
    assert m0.is_in_resync and m0.is_primary and m0.is_disk_uptodate
    assert not m0.is_peer_disk_uptodate
    assert m0.sync_percent == 17.6
    assert m0.est_time == 4 * 60 + 46
    assert m0.oos_kib == 3451904
    assert minors[1].is_connected and minors[1].peer_is_primary and minors[1].sync_percent is None
    assert not minors[2].is_in_use
    assert minors[3].is_wfconn and minors[3].rdisk == "DUnknown"
    assert minors[4].sync_percent == 50.0 and minors[4].est_time == 3723
    assert minors[5].is_standalone and minors[5].is_diskless
    assert minors[6].is_in_resync and minors[6].sync_percent == 0.0 and minors[6].est_time is None


def test_parse_83_style_state_field() -> None:
    text = " 0: cs:Connected st:Primary/Secondary ds:UpToDate/UpToDate C r---\n"
    m = parse_proc_drbd(text)[0]
    assert m.is_primary and m.is_connected


def test_cmdgen_commands() -> None:
    assert drbd_cmdgen.init_meta(3, "/dev/xenvg/m") == [
        "drbdmeta", "--force", "/dev/drbd3", "v08", "/dev/xenvg/m", "flex-external", "create-md",
    ]  # fmt: skip
    cmds = drbd_cmdgen.local_init(
        3,
        "/dev/xenvg/d",
        "/dev/xenvg/m",
        4096,
        {**PARAMS, "disk-barriers": "bf", "meta-barriers": True},
    )
    assert cmds[0] == ["drbdsetup", "new-resource", "resource3"]
    assert cmds[1] == ["drbdsetup", "new-minor", "resource3", "3", "0"]
    assert cmds[2] == ["drbdmeta", "/dev/drbd3", "v08", "/dev/xenvg/m", "flex-external", "apply-al"]
    assert cmds[3] == [
        "drbdsetup", "attach", "3", "/dev/xenvg/d", "/dev/xenvg/m", "flexible",
        "--on-io-error=detach", "--size", "4096m",
        "--md-flushes=no", "--disk-flushes=no", "--disk-barrier=no",
    ]  # fmt: skip
    net = drbd_cmdgen.net_init(
        3,
        "10.0.0.1",
        11000,
        "10.0.0.2",
        11000,
        "C",
        True,
        "md5",
        "sec",
        {**PARAMS, "net-custom": "--ping-int 5"},
    )
    assert net == [
        "drbdsetup", "connect", "resource3", "ipv4:10.0.0.1:11000", "ipv4:10.0.0.2:11000",
        "--protocol", "C", "--after-sb-0pri", "discard-zero-changes",
        "--after-sb-1pri", "consensus", "--allow-two-primaries",
        "--cram-hmac-alg", "md5", "--shared-secret", "sec", "--ping-int", "5",
    ]  # fmt: skip
    assert drbd_cmdgen.sync_params(3, PARAMS) == [
        "drbdsetup",
        "disk-options",
        "3",
        "--resync-rate",
        "61440",
    ]
    dyn = drbd_cmdgen.sync_params(3, {**PARAMS, "dynamic-resync": True})
    assert dyn[3:5] == ["--c-plan-ahead", "20"] and "--c-min-rate" in dyn
    assert drbd_cmdgen.primary(3, True) == ["drbdsetup", "primary", "3", "--force"]
    assert drbd_cmdgen.secondary(3) == ["drbdsetup", "secondary", "3"]
    assert drbd_cmdgen.disconnect(3, "a", 1, "b", 1) == [
        "drbdsetup",
        "disconnect",
        "ipv4:a:1",
        "ipv4:b:1",
    ]
    assert drbd_cmdgen.down(3) == ["drbdsetup", "down", "resource3"]
    assert drbd_cmdgen.resize(3, 5120) == ["drbdsetup", "resize", "3", "--size", "5120m"]


def test_cmdgen_rejects_bad_params() -> None:
    with pytest.raises(errors.BlockDeviceError, match="barriers"):
        drbd_cmdgen.barrier_args("bx", False)
    with pytest.raises(errors.BlockDeviceError, match="c-plan-ahead"):
        drbd_cmdgen.sync_params(0, {**PARAMS, "dynamic-resync": True, "c-plan-ahead": 0})


def test_peers_and_helpers() -> None:
    lid = ["nA", "nB", 11005, 1, 7, "s"]
    p = drbd_peers(lid, DeviceContext(node_uuid="nB", node_ips=IPS))
    assert (p.own_minor, p.peer_minor, p.own_ip, p.peer_ip, p.port) == (
        7,
        1,
        IPS["nB"],
        IPS["nA"],
        11005,
    )
    with pytest.raises(errors.BlockDeviceError, match="not part"):
        drbd_peers(lid, DeviceContext(node_uuid="nC", node_ips=IPS))
    with pytest.raises(errors.BlockDeviceError, match="replication IP"):
        drbd_peers(lid, DeviceContext(node_uuid="nA", node_ips={"nA": "1.1.1.1"}))
    assert drbd_children_sizes(4096) == (4096, 128)
    assert format_eta(286) == "0:04:46"


def _kernel_dev(tmp_path: Path, proc: str, runner: RecordingRunner, minor: int = 4) -> KernelDRBD:
    proc_file = tmp_path / "proc_drbd"
    proc_file.write_text(proc)
    disk = objects.Disk(
        uuid="d1", dev_type=C.LD_DRBD8, size=4096,
        logical_id=["nA", "nB", 11004, minor, 9, "secret"],
        children=[
            objects.Disk(dev_type=C.LD_LV, size=4096, logical_id=["xenvg", "d1.disk0_data"]),
            objects.Disk(dev_type=C.LD_LV, size=128, logical_id=["xenvg", "d1.disk0_meta"]),
        ],
    )  # fmt: skip
    ctx = DeviceContext(
        node_uuid="nA", node_ips=IPS, params={"drbd_backend": "kernel", "lv_backend": "lvm"}
    )
    dev = build_device(disk, ctx, Paths.under(tmp_path))
    assert isinstance(dev, KernelDRBD)
    dev.runner = runner
    dev.proc_path = str(proc_file)
    for child in dev.children:
        child.runner = runner  # type: ignore[attr-defined]
    return dev


def test_kernel_status_from_proc(tmp_path: Path) -> None:
    dev = _kernel_dev(tmp_path, PROC_SYNCING, RecordingRunner(), minor=4)
    st = dev.get_sync_status()
    assert (st.dev_path, st.minor, st.sync_percent, st.estimated_time) == (
        "/dev/drbd4",
        4,
        50.0,
        3723,
    )
    assert st.is_degraded and st.ldisk_status == "unknown"
    ok = _kernel_dev(tmp_path, PROC_SYNCING, RecordingRunner(), minor=1).get_sync_status()
    assert not ok.is_degraded and ok.ldisk_status == "ok" and ok.sync_percent is None
    gone = _kernel_dev(tmp_path, PROC_SYNCING, RecordingRunner(), minor=2).get_sync_status()
    assert gone.dev_path is None and gone.is_degraded


def test_kernel_assemble_commands(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (0, "  -wi-ao----|253|1|4096.00\n")})
    dev = _kernel_dev(tmp_path, "version: 8.4.11 (api:1/proto:86-101)\n", runner, minor=4)
    assert dev.assemble() == "/dev/drbd4"
    drbd = [c for c in runner.calls if c[0] in ("drbdsetup", "drbdmeta")]
    assert [c[1] for c in drbd] == [
        "new-resource",
        "new-minor",
        "/dev/drbd4",
        "attach",
        "disk-options",
        "connect",
    ]
    assert drbd[3][3:5] == ["/dev/xenvg/d1.disk0_data", "/dev/xenvg/d1.disk0_meta"]
    assert drbd[-1][3:5] == ["ipv4:192.168.1.1:11004", "ipv4:192.168.1.2:11004"]
    assert "--shared-secret" in drbd[-1] and "--allow-two-primaries" not in drbd[-1]


def test_kernel_assemble_failure_brings_minor_down(tmp_path: Path) -> None:
    runner = RecordingRunner(
        {("drbdsetup", "connect"): (10, "", "Failure: (102) Local address(port) already in use.")}
    )
    dev = _kernel_dev(tmp_path, "", runner)
    with pytest.raises(
        errors.BlockDeviceError, match=r"Can't setup network for minor 4.*already in use"
    ):
        dev.assemble()
    assert runner.calls[-1] == ["drbdsetup", "down", "resource4"]


def test_kernel_roles_and_net(tmp_path: Path) -> None:
    runner = RecordingRunner()
    dev = _kernel_dev(tmp_path, PROC_SYNCING, runner, minor=3)  # WFConnection, primary
    dev.open(force=True)
    assert runner.calls[-1] == ["drbdsetup", "primary", "3", "--force"]
    dev.close()
    assert runner.calls[-1] == ["drbdsetup", "secondary", "3"]
    dev.disconnect_net()
    assert runner.calls[-1][:2] == ["drbdsetup", "disconnect"]
    dev.attach_net(True)
    assert (
        runner.calls[-1][:2] == ["drbdsetup", "connect"]
        and "--allow-two-primaries" in runner.calls[-1]
    )
    dev.shutdown()
    assert runner.calls[-1] == ["drbdsetup", "down", "resource3"]
    with pytest.raises(errors.BlockDeviceError, match="while it is assembled"):
        dev.rename(["nA", "nC", 11009, 3, 1, "x"])


def test_kernel_create_refuses_used_minor(tmp_path: Path) -> None:
    dev = _kernel_dev(tmp_path, PROC_SYNCING, RecordingRunner(), minor=0)
    with pytest.raises(errors.BlockDeviceError, match="minor 0 already in use"):
        dev.create()


def test_kernel_create_makes_children_and_meta(tmp_path: Path) -> None:
    runner = RecordingRunner({("vgs",): (0, "  xenvg|40960.00|20480.00\n"), ("lvs",): (5, "")})
    dev = _kernel_dev(tmp_path, "", runner, minor=8)
    dev.create()
    creates = [c for c in runner.calls if c[0] == "lvcreate"]
    assert creates == [
        ["lvcreate", "-L4096m", "-n", "d1.disk0_data", "xenvg"],
        ["lvcreate", "-L128m", "-n", "d1.disk0_meta", "xenvg"],
    ]
    assert runner.calls[-1][:2] == ["drbdmeta", "--force"] and runner.calls[-1][-1] == "create-md"
