"""The conformance suite against the ``fake`` hypervisor, plus fake-only checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corral.errors import HypervisorError
from corral.hypervisor import fakelaunch, fakevm, fakevm_launcher
from corral.hypervisor.base import Hypervisor
from corral.hypervisor.fake import FakeHypervisor, vm_processes
from corral.paths import Paths
from tests.hypervisor import conformance
from tests.hypervisor.conformance import HypervisorConformance, free_port


class TestFakeConformance(HypervisorConformance):
    @pytest.fixture
    def hv_name(self) -> str:
        return "fake"

    def cleanup_node(self, hv: Hypervisor) -> None:
        fakelaunch.stop_launcher(hv.paths.instance_run_dir)

    def test_runtime_files_in_run_dir(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        pid = hv.start_instance(self.spec(hv)).pid
        run_dir = hv.paths.instance_run_dir
        with open(os.path.join(run_dir, "vm1.example.com.pid")) as handle:
            assert int(handle.read()) == pid
        with open(os.path.join(run_dir, "vm1.example.com.json")) as handle:
            runtime = json.load(handle)
        assert runtime["name"] == "vm1.example.com"
        assert runtime["pid"] == pid
        hv.reboot_instance("vm1.example.com")
        with open(os.path.join(run_dir, "vm1.example.com.json")) as handle:
            assert json.load(handle)["boot_count"] == 2
        hv.stop_instance("vm1.example.com")
        assert not os.path.exists(os.path.join(run_dir, "vm1.example.com.pid"))

    def test_start_is_cheap(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        hv.start_instance(self.spec(hv, name="warmup.example.com", memory=16))
        started = time.monotonic()
        for i in range(5):
            hv.start_instance(self.spec(hv, name=f"vm{i}.example.com", memory=16))
        per_start = (time.monotonic() - started) / 5
        assert per_start < 0.25  # target well under 0.1 s; loose for a busy 2-core box
        assert len(hv.list_instances()) == 6

    def test_node_checks(self, make_hv: Callable[..., Hypervisor], tmp_path: Path) -> None:
        hv = make_hv()
        # nothing boots, no QEMU runs: Ganeti's default kernel and kvm_path are not needed
        hv.validate_parameters({**hv.defaults(), "kvm_path": "/nonexistent/kvm"})
        iso = tmp_path / "debian.iso"
        with pytest.raises(HypervisorError, match="cdrom_image_path' fails validation"):
            hv.validate_parameters({**hv.defaults(), "cdrom_image_path": str(iso)})
        iso.write_bytes(b"")
        hv.validate_parameters({**hv.defaults(), "cdrom_image_path": str(iso)})

    def test_vm_processes_scans_proc(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv("node1")
        other = make_hv("node2")
        pid = hv.start_instance(self.spec(hv)).pid
        other.start_instance(self.spec(other, name="vm2.example.com"))
        assert vm_processes(hv.paths.instance_run_dir) == {"vm1.example.com": pid}
        assert vm_processes("/nonexistent") == {}

    def test_console_paints_framebuffer(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        port = free_port()
        hv.start_instance(self.spec(hv, port=port, vnc_bind_address="127.0.0.1"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            reader = sock.makefile("rb")
            assert reader.read(12) == b"RFB 003.008\n"
            sock.sendall(b"RFB 003.003\n")  # oldest version: server picks security
            assert struct.unpack(">I", reader.read(4))[0] == 1
            sock.sendall(b"\x01")
            width, height = struct.unpack(">HH", reader.read(4))
            reader.read(16)
            (length,) = struct.unpack(">I", reader.read(4))
            assert reader.read(length) == b"vm1.example.com"
            # 16 bpp pixel format, RRE accepted, then a full update request
            pixel_format = struct.pack(">BBBBHHHBBB3x", 16, 16, 1, 1, 31, 63, 31, 11, 5, 0)
            sock.sendall(b"\x00\x00\x00\x00" + pixel_format)
            sock.sendall(b"\x02\x00" + struct.pack(">Hi", 1, 2))
            sock.sendall(b"\x03\x00" + struct.pack(">HHHH", 0, 0, width, height))
            assert reader.read(4) == b"\x00\x00\x00\x01"
            x, y, w, h, encoding = struct.unpack(">HHHHi", reader.read(12))
            assert (x, y, w, h, encoding) == (0, 0, width, height, 2)
            assert struct.unpack(">I", reader.read(4))[0] == 0  # no subrectangles
            assert len(reader.read(2)) == 2  # one 16-bit background pixel


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -5, 2.5, "", 'é\n"x\\', [1, [2, {}]], {"a": {"b": [None, "c"]}}],
)
def test_vm_json_codec_roundtrips(value: object) -> None:
    text = fakevm.dumps(value)
    assert json.loads(text) == value
    assert fakevm.loads(text) == value


def test_vm_json_rejects_garbage() -> None:
    for text in ("{bad", "[1] x", ""):
        with pytest.raises(ValueError):
            fakevm.loads(text)


def test_vm_exits_when_its_run_dir_is_wiped(tmp_path: Path) -> None:
    """Orphan rule: a VM whose pidfile vanished stops by itself (checked periodically)."""
    hv = FakeHypervisor(Paths.under(tmp_path))
    hv.orphan_check = 0.1
    pid = hv.start_instance(HypervisorConformance.spec(hv)).pid
    assert pid is not None
    shutil.rmtree(hv.paths.run_dir)
    assert conformance.wait_for(lambda: not _process_alive(pid))


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return bool(handle.read())  # a zombie has an empty command line
    except OSError:
        return False


def test_vm_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    """What a noded restart looks like: the starter exits, the VM stays, a new driver finds it."""
    script = (
        "import sys\n"
        "from corral import objects\n"
        "from corral.hypervisor.fake import FakeHypervisor\n"
        "from corral.hypervisor.base import InstanceStartSpec\n"
        "from corral.paths import Paths\n"
        "hv = FakeHypervisor(Paths.under(sys.argv[1]))\n"
        "inst = objects.Instance(name='vm1.example.com', primary_node='n1')\n"
        "spec = InstanceStartSpec(instance=inst, hvparams=hv.defaults(),\n"
        "    beparams={'maxmem': 64, 'minmem': 64, 'vcpus': 1}, disks=[], nics=[])\n"
        "print(hv.start_instance(spec).pid)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(proc.stdout.strip())
    hv = FakeHypervisor(Paths.under(tmp_path))
    run_dir = hv.paths.instance_run_dir
    launcher = fakelaunch.launcher_pid(run_dir)
    try:
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None and info.pid == pid
        # the launcher the first driver started serves the new one too
        assert launcher is not None
        hv.start_instance(HypervisorConformance.spec(hv, name="vm2.example.com"))
        assert fakelaunch.launcher_pid(run_dir) == launcher
    finally:
        for name in hv.list_instances():
            hv.stop_instance(name, force=True)
        fakelaunch.stop_launcher(run_dir)
    assert not _process_alive(pid)


# -- the launcher (zygote) ----------------------------------------------------------------
def _fake(tmp_path: Path, **attrs: object) -> FakeHypervisor:
    hv = FakeHypervisor(Paths.under(tmp_path))
    for key, value in attrs.items():
        setattr(hv, key, value)
    return hv


def _args(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().rstrip(b"\0").split(b"\0")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


@pytest.fixture
def fake_node(tmp_path: Path) -> Iterator[Callable[..., FakeHypervisor]]:
    """Drivers on `tmp_path`; afterwards their VMs and launcher are stopped."""
    made: list[FakeHypervisor] = []

    def make(**attrs: object) -> FakeHypervisor:
        made.append(_fake(tmp_path, **attrs))
        return made[-1]

    yield make
    for hv in made:
        for name in hv.list_instances():
            hv.stop_instance(name, force=True)
        fakelaunch.stop_launcher(hv.paths.instance_run_dir)


def test_launcher_forks_vms_that_look_spawned(fake_node: Callable[..., FakeHypervisor]) -> None:
    launched = fake_node()
    spawned = fake_node(use_launcher=False)
    pid = launched.start_instance(HypervisorConformance.spec(launched)).pid
    other = spawned.start_instance(HypervisorConformance.spec(spawned, name="vm2.example.com")).pid
    assert pid is not None and other is not None
    run_dir = launched.paths.instance_run_dir
    launcher = fakelaunch.launcher_pid(run_dir)
    assert launcher is not None and fakevm_launcher.MARKER.encode() in _args(launcher)
    # same command line as a spawned VM, the name aside; found by the /proc scan
    assert [a.replace(b"vm2", b"vm1") for a in _args(other)] == _args(pid)
    assert vm_processes(run_dir) == {"vm1.example.com": pid, "vm2.example.com": other}
    # not the launcher's child, in a session of its own
    assert int(_stat(pid)[1]) != launcher and int(_stat(pid)[3]) == pid
    assert launched.get_node_info().memory_free < spawned.get_node_info().memory_total


def test_vm_survives_its_launcher_which_restarts_on_demand(
    fake_node: Callable[..., FakeHypervisor],
) -> None:
    hv = fake_node()
    port = free_port()
    pid = hv.start_instance(HypervisorConformance.spec(hv, port=port)).pid
    run_dir = hv.paths.instance_run_dir
    launcher = fakelaunch.launcher_pid(run_dir)
    assert pid is not None and launcher is not None
    os.kill(launcher, signal.SIGKILL)
    assert conformance.wait_for(lambda: not _process_alive(launcher))
    hv.reboot_instance("vm1.example.com")  # the VM still answers on its control socket
    assert hv.get_instance_info("vm1.example.com") is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert sock.recv(12) == b"RFB 003.008\n"
    second = hv.start_instance(HypervisorConformance.spec(hv, name="vm2.example.com")).pid
    relaunched = fakelaunch.launcher_pid(run_dir)
    assert relaunched is not None and relaunched != launcher
    assert second is not None and fakevm.MARKER.encode() in _args(second)
    assert sorted(hv.list_instances()) == ["vm1.example.com", "vm2.example.com"]


def test_launcher_exits_when_idle_or_its_run_dir_is_wiped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fakelaunch, "IDLE_EXIT", 0.3)
    hv = _fake(tmp_path / "a", orphan_check=0.1)
    hv.start_instance(HypervisorConformance.spec(hv))
    launcher = fakelaunch.launcher_pid(hv.paths.instance_run_dir)
    assert launcher is not None
    assert conformance.wait_for(lambda: not _process_alive(launcher))
    assert not os.path.exists(os.path.join(hv.paths.instance_run_dir, fakevm_launcher.PIDFILE))
    hv.stop_instance("vm1.example.com")
    wiped = _fake(tmp_path / "b", orphan_check=0.1)
    pid = wiped.start_instance(HypervisorConformance.spec(wiped)).pid
    launcher = fakelaunch.launcher_pid(wiped.paths.instance_run_dir)
    assert pid is not None and launcher is not None
    shutil.rmtree(wiped.paths.run_dir)
    assert conformance.wait_for(lambda: not _process_alive(launcher) and not _process_alive(pid))


def test_spawns_when_the_launcher_cannot_start(
    fake_node: Callable[..., FakeHypervisor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fakevm_launcher, "BOOTSTRAP", "import sys; sys.exit(3)")
    hv = fake_node()
    pid = hv.start_instance(HypervisorConformance.spec(hv)).pid
    assert pid is not None and fakelaunch.launcher_pid(hv.paths.instance_run_dir) is None
    assert vm_processes(hv.paths.instance_run_dir) == {"vm1.example.com": pid}
    # the failure is remembered: the next start does not try again
    monkeypatch.setattr(fakelaunch, "run_helper", _no_launcher_start(fakelaunch.run_helper))
    assert hv.start_instance(HypervisorConformance.spec(hv, name="vm2.example.com")).pid


def _no_launcher_start(
    real: Callable[..., tuple[bytes, bytes]],
) -> Callable[..., tuple[bytes, bytes]]:
    def run(cmd: list[str], data: bytes, timeout: float) -> tuple[bytes, bytes]:
        assert fakevm_launcher.MARKER not in cmd, "launcher start retried"
        return real(cmd, data, timeout)

    return run


def test_spawn_errors_keep_their_wording_through_the_launcher(
    fake_node: Callable[..., FakeHypervisor],
) -> None:
    hv = fake_node()
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        spec = HypervisorConformance.spec(hv, port=port, vnc_bind_address="127.0.0.1")
        with pytest.raises(HypervisorError, match=f"cannot listen on console port {port}"):
            hv.start_instance(spec)
    assert fakelaunch.launcher_pid(hv.paths.instance_run_dir) is not None


def test_cmdline_bytes_fits_or_refuses() -> None:
    assert fakevm.cmdline_bytes(["a", "bc"], 8) == b"a\0bc\0\0\0\0"
    assert fakevm.cmdline_bytes(["a" * 8], 8) is None
