"""Typed conversion of CLI strings, filling and updating (Ganeti's semantics)."""

from __future__ import annotations

import pytest

from corral.errors import HypervisorError
from corral.hypervisor import params
from corral.hypervisor.kvm_params import PARAMETERS


@pytest.mark.parametrize(
    ("name", "raw", "typed"),
    [
        ("acpi", "True", True),
        ("acpi", "false", False),
        ("acpi", "", False),
        ("acpi", 0, False),
        ("serial_speed", "115200", 115200),
        ("kernel_path", "", ""),
        ("kernel_path", False, ""),
        ("kernel_args", "ro quiet", "ro quiet"),
        ("migration_port", 8102, 8102),
    ],
)
def test_convert(name: str, raw: object, typed: object) -> None:
    value = params.convert_value(name, PARAMETERS[name], raw)
    assert value == typed
    assert type(value) is type(typed)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("acpi", "maybe", "'acpi' (value maybe) is not a valid boolean"),
        ("serial_speed", "fast", "'serial_speed' (value fast) is not a valid integer"),
        ("serial_speed", "", "is not a valid integer"),
    ],
)
def test_convert_errors(name: str, raw: object, message: str) -> None:
    with pytest.raises(HypervisorError) as err:
        params.convert_value(name, PARAMETERS[name], raw)
    assert message in str(err.value)


def test_unknown_name() -> None:
    with pytest.raises(HypervisorError, match="Unknown parameter 'bogus'"):
        params.convert_params(PARAMETERS, {"bogus": "1"})


def test_fill_layers_in_order() -> None:
    filled = params.fill(
        PARAMETERS, {"kernel_path": "", "acpi": "False"}, {"acpi": "true", "serial_speed": "9600"}
    )
    assert filled["kernel_path"] == ""
    assert filled["acpi"] is True
    assert filled["serial_speed"] == 9600
    assert filled["boot_order"] == "disk"
    assert set(filled) == set(PARAMETERS)


def test_update_default_removes_override() -> None:
    old = {"kernel_path": "", "acpi": False}
    new = params.update_params(PARAMETERS, old, {"acpi": "default", "serial_speed": "9600"})
    assert new == {"kernel_path": "", "serial_speed": 9600}
    assert old == {"kernel_path": "", "acpi": False}
    assert params.update_params(PARAMETERS, new, {"kernel_path": None}) == {"serial_speed": 9600}
