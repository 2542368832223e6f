"""The BlockDevice conformance suite, run against every storage driver.

A *harness* knows how to build one disk of its driver on one or two "nodes"
(two `Paths` roots; DRBD nodes talk over 127.0.0.1 and 127.0.0.2 on a free
port). `ConformanceSuite` holds the tests; tests/storage/test_conformance.py
binds it to each harness. Drivers the machine cannot run (LVM without
device-mapper, kernel DRBD without the module) skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from corral import constants as C
from corral import errors, objects
from corral.paths import Paths
from corral.storage import BlockDevice, DeviceContext, build_device
from corral.storage.drbd_filesync import FileDRBD

HUGE = 1 << 40  # MiB: more than any test machine's free space


def free_port() -> int:
    """A TCP port free on both 127.0.0.1 and 127.0.0.2."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.2", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class Harness:
    """Builds devices of one driver; `nodes` devices per disk (1, or 2 for DRBD)."""

    name: ClassVar[str] = ""
    mirrored: ClassVar[bool] = False

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.counter = 0
        self.built: list[BlockDevice] = []

    @classmethod
    def skip_reason(cls) -> str | None:
        return None

    def next_uuid(self) -> str:
        self.counter += 1
        return f"{self.name}-{os.getpid()}-{self.counter}"

    def make(self, size: int = 8, uuid: str | None = None) -> list[BlockDevice]:
        raise NotImplementedError

    def cleanup(self) -> None:
        for dev in self.built:
            with contextlib.suppress(errors.BlockDeviceError):
                dev.shutdown()


class FileHarness(Harness):
    name = "file"
    dev_type = C.LD_FILE

    def make(self, size: int = 8, uuid: str | None = None) -> list[BlockDevice]:
        paths = Paths.under(self.tmp / "node1")
        root = (
            paths.file_storage_dir if self.dev_type == C.LD_FILE else paths.shared_file_storage_dir
        )
        uuid = uuid or self.next_uuid()
        disk = objects.Disk(
            uuid=uuid,
            dev_type=self.dev_type,
            size=size,
            logical_id=["loop", f"{root}/inst1.example.com/{uuid}.file.disk0"],
        )
        dev = build_device(disk, DeviceContext(node_uuid="n1"), paths)
        self.built.append(dev)
        return [dev]


class SharedFileHarness(FileHarness):
    name = "sharedfile"
    dev_type = C.LD_SHARED_FILE


class FileLvHarness(Harness):
    """``plain`` on the file-volume TEST backend (the LVM fake)."""

    name = "filelv"

    def make(self, size: int = 8, uuid: str | None = None) -> list[BlockDevice]:
        paths = Paths.under(self.tmp / "node1")
        uuid = uuid or self.next_uuid()
        disk = objects.Disk(
            uuid=uuid, dev_type=C.LD_LV, size=size, logical_id=["xenvg", f"{uuid}.disk0"]
        )
        ctx = DeviceContext(node_uuid="n1", params={"lv_backend": "filelv"})
        dev = build_device(disk, ctx, paths)
        self.built.append(dev)
        return [dev]


class LvmHarness(FileLvHarness):
    """Real LVM: needs the tools, device-mapper and a volume group to test in."""

    name = "lvm"

    @classmethod
    def skip_reason(cls) -> str | None:
        if shutil.which("lvm") is None:
            return "lvm tools are not installed"
        if not os.path.exists("/dev/mapper/control"):
            return "no device-mapper on this machine (/dev/mapper/control missing)"
        if not os.environ.get("CORRAL_TEST_VG"):
            return "set CORRAL_TEST_VG to a scratch volume group to test real LVM"
        return None

    def make(self, size: int = 8, uuid: str | None = None) -> list[BlockDevice]:
        uuid = uuid or self.next_uuid()
        vg = os.environ["CORRAL_TEST_VG"]
        disk = objects.Disk(uuid=uuid, dev_type=C.LD_LV, size=size, logical_id=[vg, uuid])
        ctx = DeviceContext(node_uuid="n1", params={"lv_backend": "lvm"})
        dev = build_device(disk, ctx, Paths.under(self.tmp / "node1"))
        self.built.append(dev)
        return [dev]


class FileDrbdHarness(Harness):
    """``drbd`` on the filedrbd TEST backend: two nodes, real replication over TCP."""

    name = "filedrbd"
    mirrored = True
    node_ips: ClassVar[dict[str, str]] = {"nA": "127.0.0.1", "nB": "127.0.0.2"}
    params: ClassVar[dict[str, Any]] = {"resync-rate": 1 << 20, "filedrbd-timeout": 3}
    backend = "filedrbd"

    def disk(self, size: int, uuid: str, port: int) -> objects.Disk:
        return objects.Disk(
            uuid=uuid,
            dev_type=C.LD_DRBD8,
            size=size,
            logical_id=["nA", "nB", port, 0, 0, "f" * 40],
            params=dict(self.params),
            children=[
                objects.Disk(
                    dev_type=C.LD_LV, size=size, logical_id=["xenvg", f"{uuid}.disk0_data"]
                ),
                objects.Disk(
                    dev_type=C.LD_LV,
                    size=C.DRBD_META_SIZE,
                    logical_id=["xenvg", f"{uuid}.disk0_meta"],
                ),
            ],
        )

    def make(self, size: int = 8, uuid: str | None = None) -> list[BlockDevice]:
        uuid = uuid or self.next_uuid()
        port = free_port()
        devs: list[BlockDevice] = []
        for node, root in (("nA", "node1"), ("nB", "node2")):
            ctx = DeviceContext(
                node_uuid=node, node_ips=dict(self.node_ips), params={"drbd_backend": self.backend}
            )
            devs.append(
                build_device(self.disk(size, uuid, port), ctx, Paths.under(self.tmp / root))
            )
        self.built.extend(devs)
        return devs


class KernelDrbdHarness(FileDrbdHarness):
    name = "kernel-drbd"
    backend = "kernel"

    @classmethod
    def skip_reason(cls) -> str | None:
        if not os.path.exists("/proc/drbd"):
            return "no DRBD kernel module on this machine (/proc/drbd missing)"
        return "kernel DRBD needs two real nodes with LVM; run it on a DRBD cluster"


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def write_pattern(path: str) -> bytes:
    """Write a few recognisable blocks at scattered offsets; return the file content."""
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(b"MBR!" * 128)
        f.seek(3 * 1024 * 1024 + 17)
        f.write(os.urandom(300_000))
        f.seek(6 * 1024 * 1024)
        f.write(b"tail" * 1000)
    with open(path, "rb") as f:
        return f.read()


def content(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ConformanceSuite:
    """Tests every driver must pass; subclasses set `harness_cls`."""

    harness_cls: ClassVar[type[Harness]]

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[Harness]:
        reason = self.harness_cls.skip_reason()
        if reason:
            pytest.skip(reason)
        h = self.harness_cls(tmp_path)
        yield h
        h.cleanup()

    # -- life cycle -------------------------------------------------------------------
    def _create_all(self, devs: list[BlockDevice]) -> None:
        for dev in reversed(devs):  # secondary first, as Ganeti does
            dev.create()

    def test_create_exists_assemble_remove(self, harness: Harness) -> None:
        devs = harness.make()
        assert not any(d.exists() for d in devs)
        self._create_all(devs)
        assert all(d.exists() for d in devs)
        for dev in devs:
            path = dev.assemble()
            assert path == dev.dev_path()
            assert os.path.exists(path)
            assert dev.describe()["path"] == path
        for dev in devs:
            dev.shutdown()
            assert dev.exists()  # shutdown keeps the data
        for dev in devs:
            dev.remove()
            assert not dev.exists()
            assert not os.path.exists(dev.dev_path())

    def test_size_is_disk_size(self, harness: Harness) -> None:
        devs = harness.make(size=12)
        self._create_all(devs)
        for dev in devs:
            assert os.stat(dev.assemble()).st_size == 12 * 1024 * 1024

    def test_double_create_fails(self, harness: Harness) -> None:
        devs = harness.make()
        self._create_all(devs)
        for dev in devs:
            with pytest.raises(errors.BlockDeviceError):
                dev.create()
            assert dev.exists()

    def test_remove_missing_is_ok(self, harness: Harness) -> None:
        for dev in harness.make():
            dev.remove()
            dev.remove()

    def test_shutdown_when_not_assembled_is_ok(self, harness: Harness) -> None:
        devs = harness.make()
        self._create_all(devs)
        for dev in devs:
            dev.shutdown()

    def test_out_of_space(self, harness: Harness) -> None:
        devs = harness.make(size=HUGE)
        for dev in devs:
            with pytest.raises(errors.BlockDeviceError, match=r"(?i)free space"):
                dev.create()
            assert not dev.exists()  # nothing left behind

    def test_assemble_missing_fails(self, harness: Harness) -> None:
        for dev in harness.make():
            with pytest.raises(errors.BlockDeviceError):
                dev.assemble()

    def test_grow(self, harness: Harness) -> None:
        if harness.mirrored:
            pytest.skip("mirrored devices grow through their children")
        (dev,) = harness.make(size=8)
        dev.create()
        dev.grow(4, dryrun=True)
        assert os.stat(dev.dev_path()).st_size == 8 * 1024 * 1024
        dev.grow(4)
        assert os.stat(dev.dev_path()).st_size == 12 * 1024 * 1024
        with pytest.raises(errors.BlockDeviceError, match=r"(?i)free space|required"):
            dev.grow(HUGE)


class MirroredConformanceSuite(ConformanceSuite):
    """Extra tests for network-mirrored devices (DRBD backends)."""

    def _synced_pair(self, harness: Harness, size: int = 8) -> tuple[BlockDevice, BlockDevice]:
        primary, secondary = harness.make(size=size)
        self._create_all([primary, secondary])
        secondary.assemble()
        primary.assemble()
        return primary, secondary

    def test_sync_reaches_100_and_data_matches(self, harness: Harness) -> None:
        primary, secondary = self._synced_pair(harness)
        expected = write_pattern(primary.dev_path())
        assert secondary.get_sync_status().is_degraded
        primary.open(force=True)
        seen: list[float] = []

        def synced() -> bool:
            st = primary.get_sync_status()
            if st.sync_percent is not None:
                seen.append(st.sync_percent)
            return not st.is_degraded and not secondary.get_sync_status().is_degraded

        wait_for(synced, what="resync")
        assert all(0.0 <= p <= 100.0 for p in seen)
        assert content(secondary.dev_path()) == expected
        assert primary.get_sync_status().sync_percent is None
        # later writes on the primary reach the secondary
        with open(primary.dev_path(), "r+b") as f:
            f.seek(5 * 1024 * 1024)
            f.write(b"written after the sync")
        wait_for(
            lambda: content(secondary.dev_path()) == content(primary.dev_path()),
            what="replication of a later write",
        )

    def test_progress_is_reported(self, harness: Harness) -> None:
        primary, secondary = self._synced_pair(harness, size=48)
        # Holes paced like data (kernel DRBD's full sync): 48 MiB at 24 MiB/s = 2 s
        primary.set_sync_params({"resync-rate": 24 * 1024, "filedrbd-hole-speedup": 1})
        percents: list[float] = []
        etas: list[int] = []
        primary.open(force=True)

        def done() -> bool:
            st = secondary.get_sync_status()
            if st.sync_percent is not None:
                percents.append(st.sync_percent)
                if st.estimated_time is not None:
                    etas.append(st.estimated_time)
            return not st.is_degraded

        wait_for(done, what="throttled resync")
        assert len(set(percents)) >= 2, percents
        assert percents == sorted(percents)
        assert etas

    def test_degraded_while_disconnected(self, harness: Harness) -> None:
        primary, secondary = self._synced_pair(harness)
        primary.open(force=True)
        wait_for(lambda: not primary.get_sync_status().is_degraded, what="sync")
        primary.disconnect_net()
        assert primary.get_sync_status().is_degraded
        wait_for(lambda: secondary.get_sync_status().is_degraded, what="secondary degraded")
        with open(primary.dev_path(), "r+b") as f:
            f.write(b"while disconnected")
        primary.attach_net(False)
        wait_for(
            lambda: (
                not primary.get_sync_status().is_degraded
                and not secondary.get_sync_status().is_degraded
            ),
            what="reconnect",
        )
        wait_for(
            lambda: content(secondary.dev_path()) == content(primary.dev_path()), what="resync"
        )

    def test_secondary_cannot_open_while_peer_primary(self, harness: Harness) -> None:
        primary, secondary = self._synced_pair(harness)
        primary.open(force=True)
        wait_for(lambda: not secondary.get_sync_status().is_degraded, what="sync")
        with pytest.raises(errors.BlockDeviceError, match="primary"):
            secondary.open()

    def test_failover_after_primary_died(self, harness: Harness) -> None:
        primary, secondary = self._synced_pair(harness)
        expected = write_pattern(primary.dev_path())
        primary.open(force=True)
        wait_for(lambda: not secondary.get_sync_status().is_degraded, what="sync")
        assert isinstance(primary, FileDRBD)
        pid = primary.agent_pid()
        assert pid
        os.kill(pid, 9)  # the node "crashes"
        wait_for(lambda: primary.agent_pid() is None, what="agent death")
        wait_for(lambda: secondary.get_sync_status().is_degraded, what="peer loss noticed")
        secondary.open(force=True)
        assert secondary.describe()["role"] == "Primary"
        assert content(secondary.dev_path()) == expected
        # the old primary comes back as secondary and is resynced from the new one
        with open(secondary.dev_path(), "r+b") as f:
            f.write(b"written on the new primary")
        primary.assemble()
        wait_for(
            lambda: (
                not secondary.get_sync_status().is_degraded
                and not primary.get_sync_status().is_degraded
            ),
            what="resync to the old primary",
        )
        assert content(primary.dev_path()) == content(secondary.dev_path())
