"""gnt-instance command lines (the paper's and Ganeti's) -> opcodes."""

from __future__ import annotations

import argparse

import pytest

from corral import errors
from corral import opcodes as op
from corral.cli import _instance_cmds, gnt_instance
from corral.cli._instance_build import build_create_op, build_modify_op
from corral.cli._util import UsageError, parse_command


def parse(line: str) -> argparse.Namespace:
    _cmd, opts = parse_command("gnt-instance", gnt_instance.commands, line.split())
    return opts


def test_paper_add_drbd_instance() -> None:
    opts = parse(
        "add -t drbd -o image+cd -s 4G -B minmem=256M,maxmem=512M --no-start"
        " --no-name-check --no-ip-check testvm.project.edu"
    )
    create = build_create_op(opts)
    assert create == op.OpInstanceCreate(
        instance_name="testvm.project.edu",
        disk_template="drbd",
        os_type="image+cd",
        disks=[{"size": 4096, "mode": "rw"}],
        nics=[{}],
        beparams={"minmem": 256, "maxmem": 512},
        start=False,
        name_check=False,
        ip_check=False,
    )
    # neither -n nor -I: the master uses the cluster's default allocator
    assert create.iallocator is None and create.pnode is None


def test_ganeti_reference_add_with_node() -> None:
    opts = parse(
        "add -t file -o noop+default -s 1G -B minmem=256M,maxmem=512M --no-name-check"
        " --no-ip-check -n node1.example.test inst1"
    )
    create = build_create_op(opts)
    assert create.pnode == "node1.example.test" and create.snode is None
    assert create.disks == [{"size": 1024, "mode": "rw"}]
    assert create.start is True


def test_add_with_disks_nics_and_hypervisor() -> None:
    opts = parse(
        "add -t drbd -o debootstrap -n node1:node2 --disk 0:size=4G --disk 1:size=512M,mode=ro"
        " --net 0:link=br-public,mode=bridged --net 1:link=br-man,ip=192.168.20.232"
        " -H kvm:boot_order=cdrom,cdrom_image_path=/iso/x.iso --tags a,b --submit vm2"
    )
    create = build_create_op(opts)
    assert create.pnode == "node1" and create.snode == "node2"
    assert create.disks == [{"size": 4096, "mode": "rw"}, {"size": 512, "mode": "ro"}]
    assert create.nics == [
        {"link": "br-public", "mode": "bridged"},
        {"link": "br-man", "ip": "192.168.20.232"},
    ]
    assert create.hypervisor == "kvm"
    assert create.hvparams == {"boot_order": "cdrom", "cdrom_image_path": "/iso/x.iso"}
    assert create.tags == ["a", "b"]
    assert opts.submit_only


def test_add_hvparams_without_hypervisor_prefix() -> None:
    create = build_create_op(parse("add -t diskless -o noop -H boot_order=cdrom vm"))
    assert create.hypervisor is None and create.hvparams == {"boot_order": "cdrom"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("add -t drbd -o x -s 1G -n node1 vm", "The networked disk templates need a mirror node"),
        ("add -t diskless -o x -s 1G vm", "Diskless instance but disk information passed"),
        ("add -t plain -o x vm", "No disk information specified"),
        ("add -t plain -o x -s 1G --disk 0:size=1G vm", "Please use either the '--disk' or '-s'"),
        ("add -t plain -o x --disk 0:mode=rw vm", "Missing size or adoption source for disk 0"),
        ("add -t plain -o x -s 1G -n a -I hail vm", "Specify either an iallocator"),
    ],
)
def test_add_rejects_inconsistent_options(line: str, message: str) -> None:
    with pytest.raises(errors.OpPrereqError, match=message):
        build_create_op(parse(line))


def test_add_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse("add -t plain -o x -s 4X4 vm")
    assert info.value.code == 1
    assert "Invalid format" in capsys.readouterr().err


def test_no_install_disables_start() -> None:
    create = build_create_op(parse("add -t diskless -o noop --no-install vm"))
    assert create.no_install is True and create.start is False


def test_paper_start_with_temporary_cdrom() -> None:
    opts = parse(
        "start -H boot_order=cdrom,cdrom_image_path=/iso/debian-7.9.0-amd64-netinst.iso"
        " testvm.project.edu"
    )
    startup = _instance_cmds._startup_op("testvm.project.edu", opts)
    assert startup == op.OpInstanceStartup(
        instance_name="testvm.project.edu",
        hvparams={"boot_order": "cdrom", "cdrom_image_path": "/iso/debian-7.9.0-amd64-netinst.iso"},
    )


def test_paper_modify_network_with_hotplug() -> None:
    modify = build_modify_op(
        parse("modify --net 0:modify,link=br-man --hotplug testvm.project.edu")
    )
    assert modify == op.OpInstanceSetParams(
        instance_name="testvm.project.edu",
        nics=[["modify", 0, {"link": "br-man"}]],
        hotplug=True,
    )


def test_modify_hotplug_defaults_on_and_can_be_disabled() -> None:
    assert build_modify_op(parse("modify --net 0:link=br0 vm")).hotplug is True
    assert build_modify_op(parse("modify --no-hotplug --net 0:link=br0 vm")).hotplug is False


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        ("add:link=gnt-br0", ["add", -1, {"link": "gnt-br0"}]),
        ("remove", ["remove", -1, {}]),
        ("1:add,link=br0", ["add", 1, {"link": "br0"}]),
        ("1:remove", ["remove", 1, {}]),
        ("0:link=br-public", ["modify", 0, {"link": "br-public"}]),
        ("eth-a:modify,mode=routed", ["modify", "eth-a", {"mode": "routed"}]),
    ],
)
def test_modify_nic_actions(net: str, expected: list[object]) -> None:
    assert build_modify_op(parse(f"modify --net {net} vm")).nics == [expected]


def test_modify_disks_and_params() -> None:
    modify = build_modify_op(
        parse(
            "modify --disk 0:size=4G --disk add:size=1G -B maxmem=384M,vcpus=2 -H acpi=default vm"
        )
    )
    assert modify.disks == [
        ["modify", 0, {"size": 4096}],
        ["add", -1, {"size": 1024, "mode": "rw"}],
    ]
    assert modify.beparams == {"maxmem": 384, "vcpus": 2}
    assert modify.hvparams == {"acpi": "default"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("modify --net 0:add,remove vm", "Cannot add and remove at the same time"),
        ("modify --net 0:modify,add vm", "Cannot modify and add/remove at the same time"),
        ("modify --net 0:remove,link=x vm", "Not accepting parameters on removal"),
        ("modify --disk add:mode=rw vm", "Missing required parameter 'size'"),
        ("modify -t drbd vm", "requires specifying a secondary node"),
    ],
)
def test_modify_rejects(line: str, message: str) -> None:
    with pytest.raises(errors.OpPrereqError, match=message):
        build_modify_op(parse(line))


def test_aliases_and_reboot_type() -> None:
    opts = parse("reboot --type=full inst1")
    assert _instance_cmds._reboot_op("inst1", opts).reboot_type == "full"
    assert parse("stop --timeout 5 inst1").timeout == 5
    assert parse("show inst1").names == ["inst1"]
    with pytest.raises(UsageError):
        parse("reboot --type=warm inst1")


def test_unknown_option_and_command_are_usage_errors() -> None:
    with pytest.raises(UsageError) as info:
        parse("list --bogus")
    assert info.value.code == 1
    with pytest.raises(UsageError) as info2:
        parse("frobnicate x")
    assert info2.value.code == 1
