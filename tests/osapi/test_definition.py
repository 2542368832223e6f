"""Discovery and validation of OS definitions (Ganeti's _TryOSFromDisk rules)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from corral import errors
from corral.osapi import OsDefinition, discover, find_os, get_os, load_os, split_name
from tests.osapi.conftest import MakeOs, write_os

NOOP_API5_10 = (5, 10)


def _by_name(defs: list[OsDefinition]) -> dict[str, OsDefinition]:
    return {d.name: d for d in defs}


def test_valid_api20_os_with_variants_and_parameters(make_os: MakeOs, os_root: Path) -> None:
    make_os(
        "noop",
        (20,),
        variants=["default", "# comment", "", "  minimal  "],
        parameters="filesystem The filesystem type to use\ndhcp\n\n",
    )
    (found,) = discover([str(os_root)])
    assert found.status, found.diagnose
    assert found.name == "noop"
    assert found.path == str(os_root / "noop")
    assert found.api_versions == [20]
    assert found.variants == ["default", "minimal"]
    assert found.parameters == [("filesystem", "The filesystem type to use"), ("dhcp", "")]
    assert found.trusted
    assert found.diagnose == ""


def test_debian_noop_style_api5_10_without_variants_is_valid(make_os: MakeOs) -> None:
    # Debian's ganeti-os-noop: API 5/10, no verify, no parameters.list, no variants
    d = make_os("noop", NOOP_API5_10, parameters=None, scripts={"verify": None})
    os_def = load_os("noop", str(d))
    assert os_def.status, os_def.diagnose
    assert os_def.variants == []
    assert os_def.api_version == 10
    found, variant = find_os([str(d.parent)], "noop")
    assert found.name == "noop" and variant is None


def test_variants_list_ignored_below_api15(make_os: MakeOs) -> None:
    d = make_os("old", (10,), variants=["default"], parameters=None, scripts={"verify": None})
    assert load_os("old", str(d)).variants == []


@pytest.mark.parametrize("missing", ["import", "export", "rename", "verify"])
def test_api20_requires_every_script(make_os: MakeOs, missing: str) -> None:
    d = make_os("bad", (20,), scripts={missing: None})
    os_def = load_os("bad", str(d))
    assert not os_def.status
    assert os_def.diagnose == f"File '{missing}' under path '{d}' is missing (ENOENT)"
    assert os_def.variants == [] and os_def.parameters == [] and os_def.api_versions == []


def test_api20_requires_parameters_list(make_os: MakeOs) -> None:
    d = make_os("bad", (20, 15), parameters=None)
    os_def = load_os("bad", str(d))
    assert os_def.diagnose == f"File 'parameters.list' under path '{d}' is missing (ENOENT)"


def test_api15_needs_neither_verify_nor_parameters(make_os: MakeOs) -> None:
    d = make_os("mid", (15,), parameters=None, scripts={"verify": None}, variants=["a"])
    os_def = load_os("mid", str(d))
    assert os_def.status and os_def.variants == ["a"]


def test_missing_create_script(make_os: MakeOs) -> None:
    d = make_os("bad", (20,), scripts={"create": None})
    assert load_os("bad", str(d)).diagnose == (
        f"A create script (trusted or untrusted) under path '{d}' must exist"
    )


def test_create_untrusted_only_is_valid_but_untrusted(make_os: MakeOs) -> None:
    d = make_os("helper", (20,), scripts={"create": None, "create_untrusted": "#!/bin/sh\n"})
    os_def = load_os("helper", str(d))
    assert os_def.status and not os_def.trusted


def test_script_not_executable(make_os: MakeOs) -> None:
    d = make_os("bad", (20,))
    os.chmod(d / "rename", 0o644)
    assert load_os("bad", str(d)).diagnose == (f"File 'rename' under path '{d}' is not executable")


def test_script_not_regular_file(make_os: MakeOs) -> None:
    d = make_os("bad", (20,), scripts={"export": None})
    (d / "export").mkdir()
    assert load_os("bad", str(d)).diagnose == (
        f"File 'export' under path '{d}' is not a regular file"
    )


def test_missing_api_version_file(make_os: MakeOs) -> None:
    d = make_os("bad")
    (d / "ganeti_api_version").unlink()
    assert load_os("bad", str(d)).diagnose == (
        f"Required file 'ganeti_api_version' not found under path {d}: ENOENT"
    )


def test_bad_api_version_file(make_os: MakeOs) -> None:
    d = make_os("bad", ("twenty",))
    diag = load_os("bad", str(d)).diagnose
    assert diag.startswith("API version(s) can't be converted to integer: ")
    assert "twenty" in diag


def test_unsupported_api_version(make_os: MakeOs) -> None:
    d = make_os("future", (30, 25))
    assert load_os("future", str(d)).diagnose == (
        f"API version mismatch for path '{d}': found [30, 25], want [5, 10, 15, 20]."
    )


def test_highest_common_version_is_used(make_os: MakeOs) -> None:
    d = make_os("multi", (25, 20, 15))
    os_def = load_os("multi", str(d))
    assert os_def.status and os_def.api_version == 20


def test_dangling_variants_symlink_means_no_variants(make_os: MakeOs, tmp_path: Path) -> None:
    # Debian-style link into /etc before the admin wrote the file (Ganeti: ENOENT
    # on an optional file = absent)
    d = make_os("image", (20,))
    target = tmp_path / "etc" / "variants.list"
    (d / "variants.list").symlink_to(target)
    assert load_os("image", str(d)).variants == []
    target.parent.mkdir()
    target.write_text("default\ncd\n")
    assert load_os("image", str(d)).variants == ["default", "cd"]


def test_empty_variants_list_means_no_variants(make_os: MakeOs) -> None:
    d = make_os("noop", (20,), variants=[])
    assert load_os("noop", str(d)).variants == []


def test_stray_file_in_search_dir_is_an_invalid_os(os_root: Path) -> None:
    (os_root / "README").write_text("not an OS\n")
    (os_root / ".hidden").mkdir()
    (found,) = discover([str(os_root)])
    assert found.name == "README" and not found.status
    assert found.diagnose == "Directory for OS README not found in search path"


def test_first_directory_wins(tmp_path: Path) -> None:
    first, second, bundled = tmp_path / "srv", tmp_path / "usr", tmp_path / "bundled"
    write_os(first, "noop", (20,), variants=["default"])
    write_os(second, "noop", (20,), variants=["other"])
    write_os(second, "debootstrap", (20, 15, 10, 5), variants=["default"])
    write_os(bundled, "image", (20,))
    write_os(bundled, "noop", (20,), variants=["bundled"])
    search = [str(first), str(tmp_path / "missing"), str(second)]
    defs = _by_name(discover(search, [str(bundled)]))
    assert sorted(defs) == ["debootstrap", "image", "noop"]
    assert defs["noop"].path == str(first / "noop")
    assert defs["noop"].variants == ["default"]
    assert defs["image"].path == str(bundled / "image")
    everything = discover(search, [str(bundled)], include_shadowed=True)
    assert [d.path for d in everything if d.name == "noop"] == [
        str(first / "noop"),
        str(second / "noop"),
        str(bundled / "noop"),
    ]
    found, variant = find_os([*search, str(bundled)], "noop+default")
    assert found.path == str(first / "noop") and variant == "default"


def test_invalid_first_copy_still_shadows_in_discovery(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_os(first, "noop", (20,), scripts={"verify": None})
    write_os(second, "noop", (20,))
    (found,) = discover([str(first), str(second)])
    assert not found.status and found.path == str(first / "noop")


def test_os_definition_round_trips_through_msgspec(make_os: MakeOs) -> None:
    d = make_os("noop", (20,), variants=["default"], parameters="a b c\n")
    os_def = load_os("noop", str(d))
    again = msgspec.json.decode(msgspec.json.encode(os_def), type=OsDefinition)
    assert again == os_def
    assert again.parameters == [("a", "b c")]


# -- find_os / variant rules -------------------------------------------------


def test_split_name() -> None:
    assert split_name("image+cd") == ("image", "cd")
    assert split_name("noop") == ("noop", None)
    assert split_name("a+b+c") == ("a", "b+c")


def test_find_os_not_found(os_root: Path) -> None:
    with pytest.raises(errors.OSError_) as exc:
        find_os([str(os_root)], "nosuchos")
    assert str(exc.value) == "Directory for OS nosuchos not found in search path"


@pytest.mark.parametrize("name", ["../etc", "a/b", ".", ""])
def test_find_os_rejects_paths(os_root: Path, name: str) -> None:
    with pytest.raises(errors.OSError_, match=r"not found in search path"):
        get_os([str(os_root)], name)


def test_find_os_invalid_os_reports_diagnose(make_os: MakeOs, os_root: Path) -> None:
    d = make_os("bad", (20,), scripts={"verify": None})
    with pytest.raises(errors.OSError_) as exc:
        find_os([str(os_root)], "bad+default")
    assert str(exc.value) == f"File 'verify' under path '{d}' is missing (ENOENT)"


def test_variant_rules(make_os: MakeOs, os_root: Path) -> None:
    make_os("image", (20,), variants=["default", "cd"])
    make_os("noop", (10,), parameters=None, scripts={"verify": None})
    path = [str(os_root)]
    assert find_os(path, "image+cd")[1] == "cd"
    with pytest.raises(errors.OSError_, match=r"^OS name must include a variant$"):
        find_os(path, "image")
    with pytest.raises(errors.OSError_, match=r"^Unsupported OS variant$"):
        find_os(path, "image+floppy")
    with pytest.raises(errors.OSError_) as exc:
        find_os(path, "noop+default")
    assert str(exc.value) == "OS 'noop' doesn't support variants ('default' passed)"
    # --force-variant: anything goes, a missing variant becomes the first one
    assert find_os(path, "image", force_variant=True)[1] == "default"
    assert find_os(path, "image+floppy", force_variant=True)[1] == "floppy"
    assert find_os(path, "noop", force_variant=True)[1] is None
