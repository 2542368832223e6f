"""parse_unit / format_unit against Ganeti's rounding rules."""

from __future__ import annotations

import pytest

from corral.errors import ProgrammerError, UnitParseError
from corral.utils.units import format_unit, parse_unit


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("4G", 4096),
        ("4g", 4096),
        ("4GiB", 4096),
        ("512M", 512),
        ("512", 512),
        (512, 512),
        ("1T", 1048576),
        ("0.5G", 512),
        ("1.1", 4),  # rounded up to a whole MiB, then to a multiple of 4
        ("5", 8),
        ("128 M", 128),
        ("1.5t", 1572864),
    ],
)
def test_parse_unit(text: str | int, mib: int) -> None:
    assert parse_unit(text) == mib


@pytest.mark.parametrize("text", ["", "abc", "4 G B", "-4G", "G4"])
def test_parse_unit_invalid_format(text: str) -> None:
    with pytest.raises(UnitParseError, match="Invalid format"):
        parse_unit(text)


def test_parse_unit_unknown_unit() -> None:
    with pytest.raises(UnitParseError, match="Unknown unit: kb"):
        parse_unit("4kb")


@pytest.mark.parametrize(
    ("value", "units", "text"),
    [
        (192, "h", "192M"),
        (1023, "h", "1023M"),
        (1024, "h", "1.0G"),
        (24064, "h", "23.5G"),  # gnt-node list MTotal
        (258048, "h", "252.0G"),
        (141177, "h", "137.9G"),  # the paper's 137.9G volume group
        (1048576, "h", "1.0T"),
        (4096, "m", "4096"),
        (4096, "g", "4.0"),
        (1048576, "t", "1.0"),
    ],
)
def test_format_unit(value: int, units: str, text: str) -> None:
    assert format_unit(value, units) == text


def test_format_unit_rejects_unknown_units() -> None:
    with pytest.raises(ProgrammerError):
        format_unit(1, "x")


def test_round_trip_of_formatted_gigabytes() -> None:
    assert parse_unit(format_unit(4096)) == 4096
