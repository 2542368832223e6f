"""The bundled ``image`` OS: the paper's sections 2.11-2.12 (variants default and cd)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, objects
from corral.osapi import (
    DiskEnv,
    NicEnv,
    OsDefinition,
    build_env,
    bundled_os_dir,
    discover,
    find_os,
    install_bundled_os,
    os_verify_parameters,
    run_script,
)

MIB = 1024 * 1024
SCRIPTS = ("create", "import", "export", "rename", "verify")


class Node:
    """One node's relevant files under a temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ganeti_etc = root / "etc" / "ganeti"
        self.image_etc = self.ganeti_etc / "instance-image"
        self.os_dir = Path(install_bundled_os(str(root / "os"), str(self.ganeti_etc)))
        self.search_path = [str(self.os_dir)]
        self.disk = root / "disks" / "inst1.disk0"
        self.disk.parent.mkdir()
        with open(self.disk, "wb") as fh:
            fh.truncate(4 * MIB)

    def configure_paper_variants(self) -> None:
        """What the admin does in section 2.12 (then gnt-cluster copyfile)."""
        (self.image_etc / "variants").mkdir(parents=True, exist_ok=True)
        (self.image_etc / "variants" / "cd.conf").write_text('CDINSTALL="yes"\nNOMOUNT="yes"\n')
        (self.image_etc / "variants.list").write_text("default\ncd\n")

    def write_conf(self, variant: str, text: str) -> None:
        (self.image_etc / "variants").mkdir(parents=True, exist_ok=True)
        (self.image_etc / "variants" / f"{variant}.conf").write_text(text)

    def env(
        self, os_def: OsDefinition, variant: str | None, osparams: dict[str, str] | None = None
    ) -> dict[str, str]:
        disk = objects.Disk(
            uuid="d0",
            dev_type=C.LD_FILE,
            size=4,
            logical_id=["loop", str(self.disk)],
        )
        inst = objects.Instance(
            name="testvm.project.edu",
            uuid="i1",
            primary_node="n1",
            os=f"image+{variant}" if variant else "image",
            disks=[disk],
            nics=[objects.NIC(uuid="nic0", mac="aa:00:00:00:00:01")],
        )
        return build_env(
            os_def,
            variant,
            inst,
            [DiskEnv.from_disk(disk, str(self.disk))],
            [NicEnv.from_nic(inst.nics[0], {"mode": "bridged", "link": "br-public"})],
            C.HT_KVM,
            osparams or {},
            0,
            {"IMAGE_DEFAULTS": str(self.root / "default" / "ganeti-instance-image")},
            image_config_dir=str(self.image_etc),
        )

    def create(self, name: str, osparams: dict[str, str] | None = None) -> str:
        os_def, variant = find_os(self.search_path, name)
        log = self.root / "log" / f"add-{name}.log"
        run_script(os_def, "create", self.env(os_def, variant, osparams), str(log), timeout=60)
        return log.read_text()


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_source_tree_definition_is_packaged_correctly() -> None:
    src = Path(bundled_os_dir()) / "image"
    for script in SCRIPTS:
        assert os.stat(src / script).st_mode & stat.S_IXUSR, f"{script} lost its exec bit"
    link = src / "variants.list"
    assert link.is_symlink()
    assert os.readlink(link) == "/etc/ganeti/instance-image/variants.list"
    (image,) = [d for d in discover([], [bundled_os_dir()]) if d.name == "image"]
    assert image.status, image.diagnose
    assert image.api_versions == [20]
    assert [p for p, _ in image.parameters] == ["image_name", "image_type", "cdinstall"]


def test_without_etc_config_image_has_no_variants(node: Node) -> None:
    (image,) = discover(node.search_path)
    assert image.status and image.variants == []
    with pytest.raises(errors.OSError_, match=r"doesn't support variants \('cd' passed\)"):
        find_os(node.search_path, "image+cd")
    # usable by its bare name: writes the marker
    node.create("image")
    data = node.disk.read_bytes()
    assert data[1024:] == bytes(len(data) - 1024)
    assert data[512:].startswith(b"CORRAL-IMAGE-OS 1\ninstance=testvm.project.edu\n")
    assert b"variant=default\n" in data[512:1024]


def test_paper_variants_appear_after_configuration(node: Node) -> None:
    node.configure_paper_variants()
    (image,) = discover(node.search_path)
    assert image.variants == ["default", "cd"]
    assert sorted(f"{image.name}+{v}" for v in image.variants) == ["image+cd", "image+default"]
    with pytest.raises(errors.OSError_, match=r"^OS name must include a variant$"):
        find_os(node.search_path, "image")


def test_cd_variant_leaves_the_disk_untouched(node: Node) -> None:
    node.configure_paper_variants()
    node.disk.write_bytes(b"\xab" * (4 * MIB))
    log = node.create("image+cd")
    assert node.disk.read_bytes() == b"\xab" * (4 * MIB)
    assert "CD install" in log


def test_cd_variant_still_needs_the_disk(node: Node) -> None:
    node.configure_paper_variants()
    node.disk.unlink()
    with pytest.raises(errors.OSError_) as exc:
        node.create("image+cd")
    assert "OS create script failed (exited with exit code 1)" in str(exc.value)
    assert f"disk 0 of testvm.project.edu not found at {node.disk}" in str(exc.value)


def test_default_variant_writes_the_documented_marker(node: Node) -> None:
    node.configure_paper_variants()
    node.create("image+default")
    data = node.disk.read_bytes()
    assert len(data) == 4 * MIB
    mbr = data[:512]
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[446:510] == bytes(64), "empty partition table"
    assert mbr[:26] == bytes.fromhex("fa31c08ed8be1a7cfcac08c07409b40ebb0700cd10ebf2f4ebfd")
    assert mbr[26:].startswith(b"No operating system installed on this disk (corral image OS).")
    sector1 = data[512:1024].rstrip(b"\0").decode()
    assert sector1.splitlines() == [
        "CORRAL-IMAGE-OS 1",
        "instance=testvm.project.edu",
        "os=image+default",
        "variant=default",
    ]
    assert data[1024:] == bytes(4 * MIB - 1024)


def test_missing_config_of_a_listed_variant_is_reported(node: Node) -> None:
    node.configure_paper_variants()
    (node.image_etc / "variants.list").write_text("default\ncd\nwin\n")
    with pytest.raises(errors.OSError_) as exc:
        node.create("image+win")
    assert "variants/win.conf not found" in str(exc.value)


def test_raw_image_named_by_variant_config_or_osparam(node: Node, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    arch = os.uname().machine
    debian, alpine = os.urandom(MIB + 123), os.urandom(2 * MIB)
    (images / f"debian-12-{arch}.raw").write_bytes(debian)
    (images / f"alpine-{arch}.raw").write_bytes(alpine)
    node.write_conf("debian", f'IMAGE_TYPE="raw"\nIMAGE_DIR="{images}"\nIMAGE_NAME="debian-12"\n')
    (node.image_etc / "variants.list").write_text("default\ndebian\n")
    node.create("image+debian")
    data = node.disk.read_bytes()
    assert data[: len(debian)] == debian and data[len(debian) :] == bytes(4 * MIB - len(debian))
    # the OS parameter overrides the variant's image
    node.create("image+debian", {"image_name": "alpine"})
    assert node.disk.read_bytes()[: len(alpine)] == alpine
    assert len(node.disk.read_bytes()) == 4 * MIB


def test_missing_and_oversized_images_fail(node: Node, tmp_path: Path) -> None:
    big = tmp_path / "big.raw"
    with open(big, "wb") as fh:
        fh.truncate(5 * MIB)
    node.write_conf("default", f'IMAGE_TYPE="raw"\nIMAGE_FILE="{big}"\n')
    with pytest.raises(errors.OSError_, match=r"is larger than disk 0"):
        node.create("image")
    node.write_conf("default", f'IMAGE_TYPE="raw"\nIMAGE_FILE="{tmp_path}/nope.raw"\n')
    with pytest.raises(errors.OSError_, match=r"Can't find image file: .*/nope.raw"):
        node.create("image")
    node.write_conf("default", 'IMAGE_TYPE="dump"\nIMAGE_NAME="x"\n')
    with pytest.raises(errors.OSError_, match=r"Can't find image file: .*-root.dump"):
        node.create("image")


def test_qemu_image_goes_through_qemu_img(node: Node, tmp_path: Path) -> None:
    fake = tmp_path / "fake-qemu-img"
    calls = tmp_path / "calls"
    fake.write_text(f'#!/bin/sh\necho "$@" > {calls}\nprintf QCOW 1<> "$6"\n')
    fake.chmod(0o755)
    image = tmp_path / "vm.qcow2"
    image.write_bytes(b"QFI\xfb")
    node.write_conf("default", f'IMAGE_FILE="{image}"\nQEMU_IMG="{fake}"\n')
    node.create("image")
    assert calls.read_text().split() == ["convert", "-n", "-O", "raw", str(image), str(node.disk)]
    assert node.disk.read_bytes()[:4] == b"QCOW"


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="debugfs (e2fsprogs) missing")
def test_tarball_image_becomes_an_ext4_filesystem(node: Node, tmp_path: Path) -> None:
    tarball = tmp_path / "img.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"testvm\n"
        info = tarfile.TarInfo("etc/hostname")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    node.write_conf("default", f'IMAGE_TYPE="tarball"\nIMAGE_FILE="{tarball}"\n')
    node.create("image")
    out = subprocess.run(
        ["debugfs", "-R", "cat /etc/hostname", str(node.disk)],
        capture_output=True,
        check=True,
    )
    assert out.stdout == b"testvm\n"


def test_export_import_round_trip_with_size_hint(node: Node, tmp_path: Path) -> None:
    os_def, _ = find_os(node.search_path, "image")
    content = os.urandom(4 * MIB)
    node.disk.write_bytes(content)
    read_fd, write_fd = os.pipe()
    env = node.env(os_def, None)
    env.update(EXPORT_INDEX="0", EXPORT_DISK_PATH=str(node.disk), EXP_SIZE_FD=str(write_fd))
    dump = tmp_path / "dump"
    try:
        with open(dump, "wb") as out:
            run_script(
                os_def, "export", env, str(tmp_path / "exp.log"), stdout=out, pass_fds=[write_fd]
            )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd) as hint:
        assert hint.read() == f"{4 * MIB}\n"
    assert dump.read_bytes() == content
    target = tmp_path / "target"
    with open(target, "wb") as fh:
        fh.truncate(4 * MIB)
    env = node.env(os_def, None)
    env.update(IMPORT_INDEX="0", IMPORT_DISK_PATH=str(target))
    with open(dump, "rb") as inp:
        run_script(os_def, "import", env, str(tmp_path / "imp.log"), stdin=inp)
    assert target.read_bytes() == content


def test_rename_does_nothing_but_succeeds(node: Node, tmp_path: Path) -> None:
    os_def, _ = find_os(node.search_path, "image")
    env = node.env(os_def, None)
    env["OLD_INSTANCE_NAME"] = "old.project.edu"
    run_script(os_def, "rename", env, str(tmp_path / "rename.log"))
    assert "old.project.edu -> testvm.project.edu" in (tmp_path / "rename.log").read_text()


def test_verify_parameters(node: Node) -> None:
    node.configure_paper_variants()
    path = node.search_path
    ok = {"image_name": "debian-12.2_amd64", "image_type": "qcow2", "cdinstall": "no"}
    assert os_verify_parameters(path, "image+default", ok)
    for params, complaint in (
        ({"image_name": "../../etc/shadow"}, "for image_name"),
        ({"image_name": ".hidden"}, "for image_name"),
        ({"image_type": "floppy"}, "for image_type"),
        ({"cdinstall": "maybe"}, "for cdinstall"),
    ):
        with pytest.raises(errors.OSError_, match=complaint):
            os_verify_parameters(path, "image+cd", params)
    with pytest.raises(errors.OSError_, match=r"not supported by the OS image: root_size"):
        os_verify_parameters(path, "image+cd", {"root_size": "8"})


def test_install_is_idempotent_and_relinks(tmp_path: Path) -> None:
    dest = tmp_path / "os"
    install_bundled_os(str(dest), str(tmp_path / "a"))
    install_bundled_os(str(dest), str(tmp_path / "b"))
    link = dest / "image" / "variants.list"
    assert os.readlink(link) == str(tmp_path / "b" / "instance-image" / "variants.list")
    assert sorted(p.name for p in dest.iterdir()) == ["image"]
    for script in SCRIPTS:
        assert os.access(dest / "image" / script, os.X_OK)


def test_bundled_dir_restores_the_link_a_wheel_drops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.osapi import definition

    pkg = tmp_path / "site-packages" / "corral" / "osapi"
    shutil.copytree(Path(bundled_os_dir()), pkg / "bundled", symlinks=True)
    (pkg / "bundled" / "image" / "variants.list").unlink()
    monkeypatch.setattr(definition, "__file__", str(pkg / "definition.py"))
    assert bundled_os_dir() == str(pkg / "bundled")
    link = pkg / "bundled" / "image" / "variants.list"
    assert os.readlink(link) == "/etc/ganeti/instance-image/variants.list"


def test_diskless_instance_is_refused(node: Node, tmp_path: Path) -> None:
    os_def, _ = find_os(node.search_path, "image")
    env = node.env(os_def, None)
    env = {k: v for k, v in env.items() if not k.startswith("DISK_")}
    env["DISK_COUNT"] = "0"
    with pytest.raises(errors.OSError_, match=r"has no disks \(DISK_COUNT=0\)"):
        run_script(os_def, "create", env, str(tmp_path / "c.log"))
