"""Ganeti key=value option syntax."""

from __future__ import annotations

import pytest

from corral.errors import ParameterError
from corral.utils.keyval import (
    format_key_val,
    parse_bool,
    split_ident_key_val,
    split_key_val,
    split_multilist_ident_key_val,
    unescape_and_split,
)


def test_backend_params_from_the_paper() -> None:
    assert split_key_val("minmem=256M,maxmem=512M") == {"minmem": "256M", "maxmem": "512M"}


def test_flags_prefixes_and_empty_values() -> None:
    assert split_key_val("acpi,no_vnc_tls,-kernel_args,kernel_path=") == {
        "acpi": True,
        "vnc_tls": False,
        "kernel_args": None,
        "kernel_path": "",
    }


def test_values_may_contain_equals_and_escaped_commas() -> None:
    assert split_key_val(r"kernel_args=ro console=ttyS0\,115200,x=a=b") == {
        "kernel_args": "ro console=ttyS0,115200",
        "x": "a=b",
    }


def test_escaped_backslash() -> None:
    assert unescape_and_split(r"a\\,b") == ["a\\", "b"]
    assert unescape_and_split("") == [""]


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(ParameterError, match="Duplicate key 'a' in option -B"):
        split_key_val("a=1,a=2", "-B")


def test_missing_value_without_prefix_parsing() -> None:
    with pytest.raises(ParameterError, match="Missing value for key 'a'"):
        split_key_val("a", "--x", parse_prefixes=False)


def test_hypervisor_group_from_the_paper() -> None:
    assert split_ident_key_val("kvm:kernel_path=,initrd_path=,vnc_bind_address=0.0.0.0") == (
        "kvm",
        {"kernel_path": "", "initrd_path": "", "vnc_bind_address": "0.0.0.0"},
    )


def test_nic_modifications() -> None:
    assert split_ident_key_val("0:modify,link=br-man") == ("0", {"modify": True, "link": "br-man"})
    assert split_ident_key_val("add:link=gnt-br0") == ("add", {"link": "gnt-br0"})
    assert split_ident_key_val("0:link=br-public") == ("0", {"link": "br-public"})
    assert split_ident_key_val("1:remove") == ("1", {"remove": True})
    assert split_ident_key_val("remove") == ("remove", {})


def test_group_removal_and_negative_indices() -> None:
    assert split_ident_key_val("no_kvm") == ("kvm", False)
    assert split_ident_key_val("-kvm") == ("kvm", None)
    assert split_ident_key_val("-1:add,size=1G") == ("-1", {"add": True, "size": "1G"})
    with pytest.raises(ParameterError, match="Cannot pass options"):
        split_ident_key_val("no_kvm:acpi=1")


def test_multilist_bounds_specs() -> None:
    result = split_multilist_ident_key_val(
        "min:cpu-count=1/max:cpu-count=4//min:cpu-count=2/max:cpu-count=8"
    )
    assert result == [
        {"min": {"cpu-count": "1"}, "max": {"cpu-count": "4"}},
        {"min": {"cpu-count": "2"}, "max": {"cpu-count": "8"}},
    ]
    with pytest.raises(ParameterError, match="Empty section"):
        split_multilist_ident_key_val("min:a=1//", "--ipolicy-bounds-specs")


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("YES", True), ("true", True), ("no", False), ("False", False)],
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_rejects_other_words() -> None:
    with pytest.raises(ParameterError, match="Invalid boolean value 'maybe'"):
        parse_bool("maybe")


def test_format_key_val_round_trips() -> None:
    data = {"kernel_args": "a,b", "path": "/x"}
    assert split_key_val(format_key_val(data)) == data
