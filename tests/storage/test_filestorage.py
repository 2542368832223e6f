"""file/sharedfile specifics, the registry and node storage info."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, objects
from corral.paths import Paths
from corral.storage import (
    DeviceContext,
    build_device,
    detect_backends,
    get_device_class,
    list_volumes,
    node_storage_info,
    rename_file_storage_dir,
)
from corral.storage.diskless import Diskless
from corral.storage.filestorage import FileStorage, SharedFileStorage
from corral.storage.lvm import FileVolume, LogicalVolume

CTX = DeviceContext(node_uuid="n1")


def _file_disk(paths: Paths, inst: str = "inst1", idx: int = 0, size: int = 4) -> objects.Disk:
    return objects.Disk(
        uuid=f"u{idx}",
        dev_type=C.LD_FILE,
        size=size,
        logical_id=["loop", f"{paths.file_storage_dir}/{inst}/u{idx}.file.disk{idx}"],
    )


def test_file_is_sparse_and_dir_removed_when_empty(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    d0, d1 = (build_device(_file_disk(paths, idx=i, size=1024), CTX, paths) for i in (0, 1))
    d0.create()
    d1.create()
    st = os.stat(d0.dev_path())
    assert st.st_size == 1024 * 1024 * 1024 and st.st_blocks * 512 < 1024 * 1024
    inst_dir = os.path.dirname(d0.dev_path())
    d0.remove()
    assert os.path.isdir(inst_dir)  # still holds disk 1
    d1.remove()
    assert not os.path.exists(inst_dir)


def test_path_outside_storage_dir_is_refused(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    for bad in (str(tmp_path / "elsewhere/x.disk0"), f"{paths.file_storage_dir}/../../etc/passwd"):
        disk = objects.Disk(dev_type=C.LD_FILE, size=1, logical_id=["loop", bad])
        with pytest.raises(errors.BlockDeviceError, match="not under the allowed directory"):
            build_device(disk, CTX, paths).create()
    # a sharedfile path is not a file path
    disk = objects.Disk(
        dev_type=C.LD_FILE, size=1, logical_id=["loop", f"{paths.shared_file_storage_dir}/i/x"]
    )
    with pytest.raises(errors.BlockDeviceError):
        build_device(disk, CTX, paths).create()
    # ... unless the cluster setting allows that directory
    ctx = DeviceContext(node_uuid="n1", params={"file_storage_dir": paths.shared_file_storage_dir})
    build_device(disk, ctx, paths).create()


def test_rename_disk_and_instance_dir(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    dev = build_device(_file_disk(paths), CTX, paths)
    dev.create()
    with open(dev.dev_path(), "r+b") as f:
        f.write(b"data")
    new_path = f"{paths.file_storage_dir}/inst1/u0.file.disk1"
    dev.rename(["loop", new_path])
    assert dev.dev_path() == new_path and Path(new_path).read_bytes()[:4] == b"data"
    rename_file_storage_dir(
        paths, f"{paths.file_storage_dir}/inst1", f"{paths.file_storage_dir}/inst2"
    )
    assert os.path.isfile(f"{paths.file_storage_dir}/inst2/u0.file.disk1")
    # retry after success is fine; a bogus move is not
    rename_file_storage_dir(
        paths, f"{paths.file_storage_dir}/inst1", f"{paths.file_storage_dir}/inst2"
    )
    with pytest.raises(errors.BlockDeviceError, match="does not exist"):
        rename_file_storage_dir(
            paths, f"{paths.file_storage_dir}/nope", f"{paths.file_storage_dir}/x"
        )
    with pytest.raises(errors.BlockDeviceError, match="not a file storage directory"):
        rename_file_storage_dir(paths, f"{paths.file_storage_dir}/inst2", str(tmp_path / "x"))


def test_node_storage_info(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    st = os.statvfs(tmp_path)
    info = node_storage_info(paths, C.DT_FILE)
    assert info.type == "file" and info.name == paths.file_storage_dir
    assert info.storage_size == st.f_blocks * st.f_frsize // (1024 * 1024)
    assert abs(info.storage_free - st.f_bavail * st.f_frsize // (1024 * 1024)) < 64
    assert node_storage_info(paths, C.DT_SHARED_FILE).name == paths.shared_file_storage_dir
    ctx = DeviceContext(node_uuid="n1", params={"lv_backend": "filelv"})
    vg = node_storage_info(paths, "lvm-vg", "xenvg", ctx)
    assert vg.type == "lvm-vg" and vg.name == "xenvg" and vg.storage_free > 0
    assert node_storage_info(paths, C.DT_DISKLESS).storage_size == 0
    with pytest.raises(errors.BlockDeviceError, match="Unknown storage type"):
        node_storage_info(paths, "rbd")
    assert list_volumes(paths, ctx) == []


def test_registry() -> None:
    assert get_device_class(C.LD_FILE) is FileStorage
    assert get_device_class(C.LD_SHARED_FILE) is SharedFileStorage
    assert get_device_class(C.DT_DISKLESS) is Diskless
    assert get_device_class(C.LD_LV, "lvm") is LogicalVolume
    assert get_device_class(C.LD_LV, "filelv") is FileVolume
    assert get_device_class(C.LD_DRBD8, "kernel").BACKEND == "kernel"
    assert get_device_class(C.LD_DRBD8, "filedrbd").BACKEND == "filedrbd"
    with pytest.raises(errors.BlockDeviceError, match="Unknown device type 'rbd'"):
        get_device_class("rbd")
    with pytest.raises(errors.BlockDeviceError, match="Unknown backend"):
        get_device_class(C.LD_LV, "zfs")


def test_detect_backends_on_this_machine() -> None:
    found = detect_backends()
    expected_drbd = "kernel" if os.path.exists("/proc/drbd") else "filedrbd"
    assert found[C.LD_DRBD8] == expected_drbd
    forced = detect_backends(DeviceContext(node_uuid="n", params={"drbd_backend": "kernel"}))
    assert forced[C.LD_DRBD8] == "kernel"


def test_drbd_children_follow_the_drbd_backend(tmp_path: Path) -> None:
    disk = objects.Disk(
        dev_type=C.LD_DRBD8,
        size=8,
        logical_id=["n1", "n2", 11000, 0, 0, "s"],
        children=[
            objects.Disk(dev_type=C.LD_LV, size=8, logical_id=["xenvg", "a"]),
            objects.Disk(dev_type=C.LD_LV, size=128, logical_id=["xenvg", "b"]),
        ],
    )
    for drbd_backend, child_cls in (("filedrbd", FileVolume), ("kernel", LogicalVolume)):
        ctx = DeviceContext(node_uuid="n1", params={"drbd_backend": drbd_backend})
        dev = build_device(disk, ctx, Paths.under(tmp_path))
        assert drbd_backend == dev.BACKEND
        assert [type(c) for c in dev.children] == [child_cls, child_cls]


def test_diskless_does_nothing(tmp_path: Path) -> None:
    dev = build_device(objects.Disk(dev_type=C.DT_DISKLESS), CTX, Paths.under(tmp_path))
    dev.create()
    dev.remove()
    assert dev.exists() and dev.dev_path() == ""
    with pytest.raises(errors.BlockDeviceError):
        dev.assemble()
