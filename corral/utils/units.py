"""Sizes as Ganeti writes and reads them.

Every size inside corral is an integer number of MiB. Users type sizes with a
unit (``4G``, ``512M``, ``1.5t``; a bare number means MiB) and read them back
scaled (``137.9G``). These two functions are the only place that converts, so
the CLI, RAPI and htools round exactly like Ganeti's ``utils.ParseUnit`` and
``utils.FormatUnit``:

* parsing rounds *up* to a whole MiB and then up to a multiple of 4 MiB
  (LVM's default extent granularity), so ``parse_unit("1.1")`` is 4;
* formatting with ``h`` prints ``M`` below 1 GiB, ``G`` with one decimal below
  1 TiB, else ``T``; ``m``/``g``/``t`` force a unit and print no suffix.
"""

from __future__ import annotations

import re
from typing import Final

from corral.errors import ProgrammerError, UnitParseError

_UNIT_RE: Final = re.compile(r"^([.\d]+)\s*([a-zA-Z]+)?$")

#: multiplier (to MiB) of every unit spelling Ganeti accepts, lower-cased
_MULTIPLIERS: Final[dict[str, int]] = {
    "m": 1,
    "mb": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "tib": 1024 * 1024,
}

#: unit letters accepted by `format_unit` (and by ``--units``)
UNIT_CHOICES: Final = ("h", "m", "g", "t")


def parse_unit(text: str | int | float) -> int:
    """Return the size in MiB for ``text`` (``"4G"`` -> 4096).

    Raises `UnitParseError` with Ganeti's message (``Invalid format`` or
    ``Unknown unit: X``) when the text is not a size.
    """
    match = _UNIT_RE.match(str(text).strip())
    if not match:
        raise UnitParseError("Invalid format")
    number, unit = match.groups()
    try:
        value = float(number)
    except ValueError as err:  # e.g. "1.2.3"
        raise UnitParseError("Invalid format") from err
    multiplier = _MULTIPLIERS.get((unit or "m").lower())
    if multiplier is None:
        raise UnitParseError(f"Unknown unit: {unit}")
    value *= multiplier
    whole = int(value)
    if whole < value:
        whole += 1
    if whole % 4:
        whole += 4 - whole % 4
    return whole


def format_unit(value: int | float, units: str = "h") -> str:
    """Format ``value`` MiB; ``units`` is one of `UNIT_CHOICES`."""
    if units not in UNIT_CHOICES:
        raise ProgrammerError(f"Invalid unit specified '{units}'")
    human = units == "h"
    if units == "m" or (human and value < 1024):
        return f"{round(value):d}{'M' if human else ''}"
    if units == "g" or (human and value < 1024 * 1024):
        return f"{round(float(value) / 1024, 1):0.1f}{'G' if human else ''}"
    return f"{round(float(value) / 1024 / 1024, 1):0.1f}{'T' if human else ''}"
