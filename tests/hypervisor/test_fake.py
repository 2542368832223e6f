"""The conformance suite against the ``fake`` hypervisor, plus fake-only checks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.errors import HypervisorError
from corral.hypervisor import fakevm
from corral.hypervisor.base import Hypervisor
from corral.hypervisor.fake import FakeHypervisor, vm_processes
from corral.paths import Paths
from tests.hypervisor import conformance
from tests.hypervisor.conformance import HypervisorConformance, free_port


class TestFakeConformance(HypervisorConformance):
    @pytest.fixture
    def hv_name(self) -> str:
        return "fake"

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
    try:
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None and info.pid == pid
    finally:
        hv.stop_instance("vm1.example.com", force=True)
    assert not _process_alive(pid)
