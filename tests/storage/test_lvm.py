"""LVM driver: generated commands and output parsing (no LVM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, objects
from corral.paths import Paths
from corral.storage import lvm
from corral.storage.base import DeviceContext
from corral.storage.runner import RecordingRunner

VGS = "  xenvg|40960.00|1024.00\n"
LVS = "  -wi-ao----|253|4|512.00\n"


def _lv(
    tmp_path: Path, runner: RecordingRunner, size: int = 512, **params: object
) -> lvm.LogicalVolume:
    disk = objects.Disk(
        uuid="u1",
        dev_type=C.LD_LV,
        size=size,
        logical_id=["xenvg", "u1.disk0"],
        params=dict(params),
    )
    return lvm.LogicalVolume(
        disk, DeviceContext(node_uuid="n1"), Paths.under(tmp_path), runner=runner
    )


def test_create_checks_free_space_then_lvcreate(tmp_path: Path) -> None:
    runner = RecordingRunner(
        {("lvs",): (5, "", "Failed to find logical volume"), ("vgs",): (0, VGS)}
    )
    _lv(tmp_path, runner).create()
    assert runner.calls[-1] == ["lvcreate", "-L512m", "-n", "u1.disk0", "xenvg"]
    assert runner.calls[-2] == [
        "vgs", "--noheadings", "--nosuffix", "--units=m", "--separator=|",
        "-o", "vg_name,vg_size,vg_free", "xenvg",
    ]  # fmt: skip


def test_create_with_stripes(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (5, ""), ("vgs",): (0, VGS)})
    _lv(tmp_path, runner, stripes=2).create()
    assert runner.calls[-1] == ["lvcreate", "-L512m", "-n", "u1.disk0", "-i2", "xenvg"]


def test_create_not_enough_space(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (5, ""), ("vgs",): (0, VGS)})
    with pytest.raises(errors.BlockDeviceError, match="Not enough free space: required 2048"):
        _lv(tmp_path, runner, size=2048).create()
    assert not any(c[0] == "lvcreate" for c in runner.calls)


def test_create_existing_fails(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (0, LVS), ("vgs",): (0, VGS)})
    with pytest.raises(errors.BlockDeviceError, match="already exists"):
        _lv(tmp_path, runner).create()


def test_missing_vg(tmp_path: Path) -> None:
    runner = RecordingRunner(
        {("lvs",): (5, ""), ("vgs",): (5, "", 'Volume group "xenvg" not found')}
    )
    with pytest.raises(errors.BlockDeviceError, match="Volume group 'xenvg' not found"):
        _lv(tmp_path, runner).create()


def test_lvcreate_failure_is_reported(tmp_path: Path) -> None:
    runner = RecordingRunner(
        {
            ("lvs",): (5, ""),
            ("vgs",): (0, VGS),
            ("lvcreate",): (5, "", "  device-mapper: reload failed"),
        }
    )
    with pytest.raises(
        errors.BlockDeviceError, match=r"LV create failed.*exit code 5.*reload failed"
    ):
        _lv(tmp_path, runner).create()


def test_remove_assemble_rename_grow(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (0, LVS)})
    dev = _lv(tmp_path, runner)
    assert dev.assemble() == "/dev/xenvg/u1.disk0"
    assert runner.calls[-1] == ["lvchange", "-ay", "xenvg/u1.disk0"]
    dev.grow(256, dryrun=True)
    assert runner.calls[-1] == ["lvextend", "-L", "+256m", "--test", "/dev/xenvg/u1.disk0"]
    assert dev.disk.size == 512
    dev.grow(256)
    assert runner.calls[-1] == ["lvextend", "-L", "+256m", "/dev/xenvg/u1.disk0"]
    assert dev.disk.size == 768
    dev.rename(["xenvg", "u2.disk0"])
    assert runner.calls[-1] == ["lvrename", "xenvg", "u1.disk0", "u2.disk0"]
    assert dev.dev_path() == "/dev/xenvg/u2.disk0"
    with pytest.raises(errors.BlockDeviceError, match="across volume groups"):
        dev.rename(["othervg", "u2.disk0"])
    dev.remove()
    assert runner.calls[-1] == ["lvremove", "-f", "xenvg/u2.disk0"]


def test_remove_missing_runs_nothing(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (5, "")})
    _lv(tmp_path, runner).remove()
    assert [c[0] for c in runner.calls] == ["lvs"]


def test_sync_status_from_lvs(tmp_path: Path) -> None:
    runner = RecordingRunner({("lvs",): (0, LVS)})
    st = _lv(tmp_path, runner).get_sync_status()
    assert (st.major, st.minor, st.is_degraded, st.ldisk_status) == (253, 4, False, "ok")
    runner.responses[("lvs",)] = (0, "  -wi-ao--p-|253|4|512.00\n")
    st = _lv(tmp_path, runner).get_sync_status()
    assert st.is_degraded and st.ldisk_status == "faulty"


@pytest.mark.parametrize("name", ["", "-x", "a b", "..", "my_snapshot", "x_mlog", "a/b"])
def test_invalid_names(tmp_path: Path, name: str) -> None:
    disk = objects.Disk(dev_type=C.LD_LV, size=1, logical_id=["xenvg", name])
    with pytest.raises(errors.BlockDeviceError, match="Invalid"):
        lvm.LogicalVolume(
            disk, DeviceContext(node_uuid="n"), Paths.under(tmp_path), runner=RecordingRunner()
        )


def test_storage_info_and_listing() -> None:
    runner = RecordingRunner(
        {("vgs",): (0, VGS), ("lvs",): (0, "  xenvg|a.disk0|1024.00|-wi-a-----\n")}
    )
    info = lvm.lvm_storage_info("xenvg", runner)
    assert (info.type, info.name, info.storage_size, info.storage_free) == (
        "lvm-vg",
        "xenvg",
        40960,
        1024,
    )
    assert lvm.lvm_list_volumes(runner) == [
        {"name": "a.disk0", "vg": "xenvg", "size": 1024, "dev": "/dev/xenvg/a.disk0"}
    ]
    with pytest.raises(errors.BlockDeviceError, match="not found"):
        lvm.lvm_storage_info("othervg", runner)


def test_filelv_vg_free_accounts_for_sparse_volumes(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    before = lvm.filelv_storage_info(paths, "xenvg")
    disk = objects.Disk(dev_type=C.LD_LV, size=512, logical_id=["xenvg", "v.disk0"])
    lvm.FileVolume(disk, DeviceContext(node_uuid="n"), paths).create()
    after = lvm.filelv_storage_info(paths, "xenvg")
    # a thick LV's worth of space is reserved even though the file is sparse
    assert before.storage_free - after.storage_free in range(511, 514)
    assert lvm.filelv_list_volumes(paths) == [
        {"name": "v.disk0", "vg": "xenvg", "size": 512, "dev": f"{paths.volumes_dir}/xenvg/v.disk0"}
    ]
