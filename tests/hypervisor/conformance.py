"""Conformance suite every hypervisor driver must pass.

Subclass `HypervisorConformance` and provide the ``hv_name`` fixture; each test
builds drivers on per-node directories under ``tmp_path`` (``node_paths``), so
two "nodes" on one host can migrate to each other. Node memory is declared in
each node's hardware file, so results do not depend on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral import objects
from corral.errors import HypervisorError
from corral.hypervisor import get_hypervisor, get_hypervisor_class
from corral.hypervisor.base import (
    BlockDeviceInfo,
    Hypervisor,
    InstanceStartSpec,
    NicInfo,
)
from corral.paths import Paths

NODE_MEMORY = 4096
NODE_DOM0 = 512


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def rfb_handshake(port: int, host: str = "127.0.0.1") -> tuple[bytes, int, int, bytes]:
    """Talk RFB 3.8 up to ServerInit: (banner, width, height, desktop name)."""
    with socket.create_connection((host, port), timeout=5) as sock:
        banner = _recv_exact(sock, 12)
        sock.sendall(b"RFB 003.008\n")
        count = _recv_exact(sock, 1)[0]
        types = _recv_exact(sock, count)
        assert 1 in types  # security type None
        sock.sendall(b"\x01")
        assert struct.unpack(">I", _recv_exact(sock, 4))[0] == 0
        sock.sendall(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", _recv_exact(sock, 4))
        _recv_exact(sock, 16)  # pixel format
        (length,) = struct.unpack(">I", _recv_exact(sock, 4))
        return banner, width, height, _recv_exact(sock, length)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class HypervisorConformance:
    """The shared tests; subclasses define the ``hv_name`` fixture."""

    @pytest.fixture
    def hv_name(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def node_paths(self, tmp_path: Path) -> Callable[[str], Paths]:
        def make(node: str) -> Paths:
            paths = Paths.under(tmp_path / node)
            os.makedirs(paths.etc_dir, exist_ok=True)
            hw = {"memory_total": NODE_MEMORY, "memory_dom0": NODE_DOM0, "cpu_total": 4}
            Path(paths.node_hardware_file).write_text(json.dumps(hw))
            return paths

        return make

    @pytest.fixture
    def drivers(self, hv_name: str) -> Iterator[list[Hypervisor]]:
        """Every driver a test made; their VMs are killed afterwards."""
        made: list[Hypervisor] = []
        yield made
        for hv in made:
            for name in hv.list_instances():
                with contextlib.suppress(HypervisorError):
                    hv.stop_instance(name, force=True)
            self.cleanup_node(hv)

    def cleanup_node(self, hv: Hypervisor) -> None:
        """Stop what a driver leaves on a node besides VMs (the fake's launcher)."""

    @pytest.fixture
    def make_hv(
        self, hv_name: str, node_paths: Callable[[str], Paths], drivers: list[Hypervisor]
    ) -> Callable[[str], Hypervisor]:
        def make(node: str = "node1") -> Hypervisor:
            hv = get_hypervisor(hv_name, node_paths(node))
            drivers.append(hv)
            return hv

        return make

    @staticmethod
    def spec(
        hv: Hypervisor,
        name: str = "vm1.example.com",
        memory: int = 128,
        port: int | None = None,
        nics: list[NicInfo] | None = None,
        **hvparams: Any,
    ) -> InstanceStartSpec:
        inst = objects.Instance(
            name=name, primary_node="node1", uuid=f"uuid-{name}", network_port=port
        )
        filled = hv.defaults()
        filled.update(hvparams)
        return InstanceStartSpec(
            instance=inst,
            hvparams=filled,
            beparams={"maxmem": memory, "minmem": memory, "vcpus": 2},
            disks=[BlockDeviceInfo(path="/dev/null", uuid="disk-0")],
            nics=nics if nics is not None else [NicInfo(mac="aa:00:00:00:00:01", uuid="nic-0")],
        )

    # -- life cycle ------------------------------------------------------------------
    def test_start_list_info_stop(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        assert hv.list_instances() == []
        runtime = hv.start_instance(self.spec(hv))
        assert runtime.name == "vm1.example.com"
        assert runtime.state == "running"
        assert runtime.memory == 128
        assert runtime.vcpus == 2
        assert [n.mac for n in runtime.nics] == ["aa:00:00:00:00:01"]
        assert hv.list_instances() == ["vm1.example.com"]
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None and info.pid == runtime.pid
        assert [i.name for i in hv.get_all_instances_info()] == ["vm1.example.com"]
        hv.stop_instance("vm1.example.com", timeout=10)
        assert hv.list_instances() == []
        assert hv.get_instance_info("vm1.example.com") is None

    def test_stop_not_running_is_harmless(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        hv.stop_instance("ghost.example.com")
        assert hv.list_instances() == []

    def test_double_start_fails(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        hv.start_instance(self.spec(hv))
        with pytest.raises(HypervisorError, match="already running"):
            hv.start_instance(self.spec(hv))
        assert hv.list_instances() == ["vm1.example.com"]

    def test_startup_paused(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        spec = self.spec(hv)
        spec.startup_paused = True
        assert hv.start_instance(spec).state == "paused"

    def test_reboot(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        pid = hv.start_instance(self.spec(hv)).pid
        hv.reboot_instance("vm1.example.com")
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None and info.state == "running" and info.pid == pid
        with pytest.raises(HypervisorError, match="not running"):
            hv.reboot_instance("ghost.example.com")

    # -- memory ----------------------------------------------------------------------
    def test_node_memory_accounts_running_vms(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        before = hv.get_node_info()
        assert before.memory_total == NODE_MEMORY
        assert before.memory_dom0 == NODE_DOM0
        assert before.memory_free == NODE_MEMORY - NODE_DOM0
        hv.start_instance(self.spec(hv, memory=1024))
        assert hv.get_node_info().memory_free == NODE_MEMORY - NODE_DOM0 - 1024

    def test_not_enough_memory(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        hv.start_instance(self.spec(hv, name="big.example.com", memory=3000))
        with pytest.raises(HypervisorError, match="Not enough memory"):
            hv.start_instance(self.spec(hv, name="more.example.com", memory=1000))
        assert hv.list_instances() == ["big.example.com"]

    # -- noded restarts and node crashes --------------------------------------------------
    def test_new_driver_object_rediscovers_vms(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        pid = hv.start_instance(self.spec(hv)).pid
        assert pid is not None
        # the VM is not our child: it would survive noded exiting
        with open(f"/proc/{pid}/stat") as handle:
            ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        assert ppid != os.getpid()
        restarted = make_hv()  # same run dir, fresh object: what a new noded sees
        assert restarted.list_instances() == ["vm1.example.com"]
        info = restarted.get_instance_info("vm1.example.com")
        assert info is not None and info.pid == pid
        restarted.stop_instance("vm1.example.com")
        assert hv.list_instances() == []

    def test_killed_vm_is_not_running(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        pid = hv.start_instance(self.spec(hv, memory=256)).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: hv.list_instances() == [])
        assert hv.get_instance_info("vm1.example.com") is None
        assert hv.get_node_info().memory_free == NODE_MEMORY - NODE_DOM0
        # the stale files do not block a new start
        assert hv.start_instance(self.spec(hv)).state == "running"

    def test_other_node_vms_are_invisible(self, make_hv: Callable[..., Hypervisor]) -> None:
        node1, node2 = make_hv("node1"), make_hv("node2")
        node1.start_instance(self.spec(node1))
        assert node2.list_instances() == []
        node2.start_instance(self.spec(node2))  # same name on another node: fine
        assert node1.list_instances() == node2.list_instances() == ["vm1.example.com"]

    # -- console ---------------------------------------------------------------------
    def test_console_speaks_rfb(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        port = free_port()
        spec = self.spec(hv, port=port, vnc_bind_address="127.0.0.1")
        assert hv.start_instance(spec).console_port == port
        banner, width, height, name = rfb_handshake(port)
        assert banner == b"RFB 003.008\n"
        assert width > 0 and height > 0
        assert name == b"vm1.example.com"
        console = hv.get_console(spec.instance, spec.hvparams, "node1.example.com")
        assert console.kind == "vnc"
        assert console.host == "node1.example.com"
        assert console.port == port
        assert console.display == port - 5900

    def test_console_port_in_use_fails_cleanly(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            spec = self.spec(hv, port=port, vnc_bind_address="127.0.0.1")
            with pytest.raises(HypervisorError, match="console port"):
                hv.start_instance(spec)
        assert hv.list_instances() == []

    def test_no_console_port(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        spec = self.spec(hv)
        console = hv.get_console(spec.instance, spec.hvparams, "node1")
        assert console.kind == "message"

    # -- hotplug ---------------------------------------------------------------------
    def test_hotplug_nics_and_disks(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        hv.start_instance(self.spec(hv))
        hv.hotplug_supported("vm1.example.com")
        new = NicInfo(mac="aa:00:00:00:00:02", uuid="nic-1", link="br-public", tap="t1")
        hv.hot_add_nic("vm1.example.com", new, 1)
        moved = NicInfo(mac="aa:00:00:00:00:02", uuid="nic-1", link="br-man", tap="t1")
        hv.hot_mod_nic("vm1.example.com", moved, 1)
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None
        assert [(n.uuid, n.link) for n in info.nics] == [("nic-0", ""), ("nic-1", "br-man")]
        with pytest.raises(HypervisorError, match="already"):
            hv.hot_add_nic("vm1.example.com", new, 2)
        hv.hot_del_nic("vm1.example.com", NicInfo(mac="", uuid="nic-0"), 0)
        hv.hot_add_disk("vm1.example.com", BlockDeviceInfo(path="/dev/zero", uuid="disk-1"), 1)
        hv.hot_del_disk("vm1.example.com", BlockDeviceInfo(path="", uuid="disk-0"), 0)
        info = hv.get_instance_info("vm1.example.com")
        assert info is not None
        assert [n.uuid for n in info.nics] == ["nic-1"]
        assert [d.uuid for d in info.disks] == ["disk-1"]
        with pytest.raises(HypervisorError, match="Cannot find"):
            hv.hot_del_nic("vm1.example.com", NicInfo(mac="", uuid="nope"), 0)

    def test_hotplug_needs_running_vm(self, make_hv: Callable[..., Hypervisor]) -> None:
        hv = make_hv()
        with pytest.raises(HypervisorError):
            hv.hotplug_supported("ghost.example.com")

    # -- migration -------------------------------------------------------------------
    def _migrate(
        self, src: Hypervisor, dst: Hypervisor, spec: InstanceStartSpec, live: bool
    ) -> str:
        info = src.migration_info(spec.instance)
        accept = dst.accept_instance(spec, info, "127.0.0.1")
        assert dst.list_instances() == [spec.instance.name]  # the incoming VM
        src.migrate_instance(spec.instance.name, "127.0.0.1", accept, live)
        result: list[str] = []

        def done() -> bool:
            status = src.get_migration_status(spec.instance.name).status
            result[:] = [status]
            return status != "active"

        assert wait_for(done, 10)
        return result[0]

    @pytest.mark.parametrize("live", [True, False])
    def test_migration(self, make_hv: Callable[..., Hypervisor], live: bool) -> None:
        src, dst = make_hv("node1"), make_hv("node2")
        port = free_port()
        spec = self.spec(src, port=port, vnc_bind_address="127.0.0.1")
        src.start_instance(spec)
        extra = NicInfo(mac="aa:00:00:00:00:09", uuid="nic-9", link="br-public")
        src.hot_add_nic(spec.instance.name, extra, 1)  # state the target must inherit
        assert self._migrate(src, dst, spec, live) == "completed"
        dst.finalize_migration_dst(spec.instance.name, True)
        src.finalize_migration_src(spec.instance.name, True, live)
        assert src.list_instances() == []
        info = dst.get_instance_info(spec.instance.name)
        assert info is not None and info.state == "running"
        assert [n.uuid for n in info.nics] == ["nic-0", "nic-9"]
        assert dst.get_node_info().memory_free == NODE_MEMORY - NODE_DOM0 - 128
        # the console follows the VM (bound once the source released the port)
        assert wait_for(lambda: _answers(port))
        assert rfb_handshake(port)[3] == b"vm1.example.com"

    def test_migration_aborted_on_target(self, make_hv: Callable[..., Hypervisor]) -> None:
        src, dst = make_hv("node1"), make_hv("node2")
        spec = self.spec(src)
        src.start_instance(spec)
        dst.accept_instance(spec, src.migration_info(spec.instance), "127.0.0.1")
        dst.finalize_migration_dst(spec.instance.name, False)
        assert dst.list_instances() == []
        src.finalize_migration_src(spec.instance.name, False, True)
        info = src.get_instance_info(spec.instance.name)
        assert info is not None and info.state == "running"

    def test_migration_to_nowhere_fails(self, make_hv: Callable[..., Hypervisor]) -> None:
        src = make_hv("node1")
        spec = self.spec(src)
        src.start_instance(spec)
        src.migrate_instance(spec.instance.name, "127.0.0.1", {"port": free_port()}, False)
        assert wait_for(lambda: src.get_migration_status(spec.instance.name).status != "active", 15)
        status = src.get_migration_status(spec.instance.name)
        assert status.status == "failed"
        assert status.info
        src.finalize_migration_src(spec.instance.name, False, False)
        info = src.get_instance_info(spec.instance.name)
        assert info is not None and info.state == "running"

    def test_accept_needs_memory(self, make_hv: Callable[..., Hypervisor]) -> None:
        dst = make_hv("node2")
        spec = self.spec(dst, memory=NODE_MEMORY)
        with pytest.raises(HypervisorError, match="Not enough memory"):
            dst.accept_instance(spec, {}, "127.0.0.1")
        assert dst.list_instances() == []

    # -- parameters ------------------------------------------------------------------
    def test_parameter_syntax(self, hv_name: str) -> None:
        cls = get_hypervisor_class(hv_name)
        cls.check_parameter_syntax(cls.defaults())
        with pytest.raises(HypervisorError, match="not supported"):
            cls.check_parameter_syntax({**cls.defaults(), "no_such_param": 1})
        with pytest.raises(HypervisorError, match="boot_order"):
            cls.check_parameter_syntax({**cls.defaults(), "boot_order": "foo"})


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(12) == b"RFB 003.008\n"
    except OSError:
        return False
