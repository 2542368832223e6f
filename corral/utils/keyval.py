"""Ganeti's ``key=value`` option syntax, parsed exactly as ``gnt-*`` does.

The grammar (``man ganeti``, "Options with key=value arguments"):

* ``-B minmem=256M,maxmem=512M`` -> ``{"minmem": "256M", "maxmem": "512M"}``;
  a key without ``=`` is a flag: ``acpi`` -> True, ``no_acpi`` -> False and
  ``-acpi`` -> None ("reset to the default"); an empty value stays ``""``
  (``kernel_path=`` clears a path);
* ``\\,`` puts a literal comma into a value (``\\\\`` a literal backslash);
* ``-H kvm:kernel_path=,vnc_bind_address=0.0.0.0`` and ``--net 0:link=br0``
  carry an identifier before the first colon ("identkeyval"); ``no_kvm`` /
  ``-kvm`` alone remove a whole group (False / None);
* ``--ipolicy-bounds-specs min:a=1/max:a=2//min:...`` is a list of
  ``ident:key=val`` groups ("multilistidentkeyval").

Values are returned as the strings typed; converting them (sizes, booleans,
integers) is the job of whoever knows the parameter's type. Errors are
`ParameterError` with Ganeti's messages.
"""

from __future__ import annotations

from corral.errors import ParameterError

NO_PREFIX = "no_"
UN_PREFIX = "-"

KeyValDict = dict[str, str | bool | None]
IdentKeyVal = tuple[str, KeyValDict | bool | None]


def unescape_and_split(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep``; a backslash makes the next character literal.

    ``"a\\,b,c"`` -> ``["a,b", "c"]``; ``""`` -> ``[""]`` (as Ganeti).
    """
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, None)
            current.append("\\" if nxt is None else nxt)
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def split_key_val(data: str, opt: str = "", parse_prefixes: bool = True) -> KeyValDict:
    """Parse ``key=val[,key=val...]`` into a dict (insertion order kept).

    With ``parse_prefixes`` a bare ``key`` is True, ``no_key`` False and
    ``-key`` None; without, a bare key is an error.
    """
    result: KeyValDict = {}
    if not data:
        return result
    for elem in unescape_and_split(data, ","):
        key: str
        val: str | bool | None
        if "=" in elem:
            key, val = elem.split("=", 1)
        elif parse_prefixes:
            if elem.startswith(NO_PREFIX):
                key, val = elem[len(NO_PREFIX) :], False
            elif elem.startswith(UN_PREFIX):
                key, val = elem[len(UN_PREFIX) :], None
            else:
                key, val = elem, True
        else:
            raise ParameterError(f"Missing value for key '{elem}' in option {opt}")
        if key in result:
            raise ParameterError(f"Duplicate key '{key}' in option {opt}")
        result[key] = val
    return result


def split_ident_key_val(value: str, opt: str = "", parse_prefixes: bool = True) -> IdentKeyVal:
    """Parse ``ident:key=val,...`` into ``(ident, {key: val})``.

    ``no_ident`` gives ``(ident, False)`` and ``-ident`` ``(ident, None)``
    (remove the group); ``-1`` stays an identifier (a negative index).
    """
    ident, _, rest = value.partition(":")
    if parse_prefixes and ident.startswith(NO_PREFIX):
        if rest:
            raise ParameterError(f"Cannot pass options when removing parameter groups: {value}")
        return ident[len(NO_PREFIX) :], False
    if (
        parse_prefixes
        and ident.startswith(UN_PREFIX)
        and (len(ident) <= len(UN_PREFIX) or not ident[len(UN_PREFIX)].isdigit())
    ):
        if rest:
            raise ParameterError(f"Cannot pass options when removing parameter groups: {value}")
        return ident[len(UN_PREFIX) :], None
    return ident, split_key_val(rest, opt, parse_prefixes)


def split_multilist_ident_key_val(value: str, opt: str = "") -> list[dict[str, KeyValDict]]:
    """Parse ``min:k=v,.../max:k=v,...//min:...`` (ipolicy bounds specs)."""
    result: list[dict[str, KeyValDict]] = []
    for line in value.split("//"):
        groups: dict[str, KeyValDict] = {}
        for elem in line.split("/"):
            if not elem:
                raise ParameterError(f"Empty section in option '{opt}'")
            ident, params = split_ident_key_val(elem, opt, parse_prefixes=False)
            if ident in groups:
                raise ParameterError(f"Duplicated parameter '{ident}' in parsing {opt}: {elem}")
            assert isinstance(params, dict)
            groups[ident] = params
        result.append(groups)
    return result


def parse_bool(value: str) -> bool:
    """Parse a ``yes|no`` option value (``true``/``false`` accepted too)."""
    lowered = value.lower()
    if lowered in ("no", "false"):
        return False
    if lowered in ("yes", "true"):
        return True
    raise ParameterError(f"Invalid boolean value '{lowered}'")


def format_key_val(data: dict[str, object]) -> str:
    """Inverse of `split_key_val` for display (commas and backslashes escaped)."""
    parts = []
    for key, val in data.items():
        text = str(val).replace("\\", "\\\\").replace(",", "\\,")
        parts.append(f"{key}={text}")
    return ",".join(parts)
