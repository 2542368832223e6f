"""Queries without jobs (Ganeti's query2): field tables, result statuses, filters.

A resource (``"instance"``, ``"node"``, ``"group"``, ``"os"``, ``"job"``,
``"cluster"``) is a `QueryResource` registered with
`corral.cmdlib.registry.register_query`. masterd answers the local API calls
``Query(what, fields, qfilter)`` and ``QueryFields(what, fields)`` with
`QueryResource.query` and `QueryResource.query_fields`:

* ``{"fields": [{"name", "title", "kind", "doc"}, ...],
  "data": [[[status, value], ...], ...]}`` with one row per object and one
  ``[status, value]`` per requested field. Status is Ganeti's RS_*: 0 normal,
  1 unknown field, 2 no data (RPC failed; CLI shows ``?``), 3 unavailable
  (``-``), 4 node offline (``*``); value is None unless the status is 0.
* Unknown fields are not an error: they come back with kind ``"unknown"`` and
  status 1 in every row (the CLI prints ``??`` and exits 14).

Most resources are tables: subclass `TableQueryResource`, list its `Field`\\ s
(name, title, kind, doc, getter), implement `items(ctx, names)` (objects to
report, in output order; unknown names raise OpPrereqError(ECODE_NOENT)) and,
when some fields need node data, `live_data(ctx, items)` (one parallel RPC
round, only called when a requested field has ``live=True``). A getter is
``getter(item, live) -> value``; it returns one of the markers `NODATA`,
`UNAVAIL`, `OFFLINE` instead of a value when there is none.

Filters are Ganeti's query-language lists (``["|", ["=", "name", "a"], ...]``,
operators ``| & ! ? = == != < <= > >= =~ =[]``), evaluated on the fetched
values by `evaluate_filter`. A filter that only names objects (``name = x``
alternatives) is instead passed to `items` as a name list: the resource
resolves the names Ganeti's way (``inst1`` -> ``inst1.example.com``, unknown
-> OpPrereqError) and fetches nothing else.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from corral.cmdlib.base import MasterContext
from corral.errors import ECODE_INVAL, OpPrereqError

# Field kinds (Ganeti's QFT_*)
QFT_UNKNOWN: Final = "unknown"
QFT_TEXT: Final = "text"
QFT_BOOL: Final = "bool"
QFT_NUMBER: Final = "number"
QFT_FLOAT: Final = "float"
QFT_UNIT: Final = "unit"
QFT_TIMESTAMP: Final = "timestamp"
QFT_OTHER: Final = "other"

# Result statuses (Ganeti's RS_*)
RS_NORMAL: Final = 0
RS_UNKNOWN: Final = 1
RS_NODATA: Final = 2
RS_UNAVAIL: Final = 3
RS_OFFLINE: Final = 4


class _Status:
    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code

    def __repr__(self) -> str:
        return f"<query status {self.code}>"


NODATA: Final = _Status(RS_NODATA)
UNAVAIL: Final = _Status(RS_UNAVAIL)
OFFLINE: Final = _Status(RS_OFFLINE)

Cell = tuple[int, Any]
Row = list[Cell]
Getter = Callable[[Any, Any], Any]


class Field(msgspec.Struct, frozen=True, kw_only=True):
    """One queryable field; `getter(item, live)` returns the value or a marker."""

    name: str
    title: str
    kind: str
    doc: str
    getter: Getter
    live: bool = False

    def definition(self) -> dict[str, str]:
        return {"name": self.name, "title": self.title, "kind": self.kind, "doc": self.doc}


def unknown_field_definition(name: str) -> dict[str, str]:
    return {"name": name, "title": name, "kind": QFT_UNKNOWN, "doc": f"Unknown field '{name}'"}


def cell(value: Any) -> Cell:
    """Turn a getter result into a ``(status, value)`` pair."""
    if isinstance(value, _Status):
        return (value.code, None)
    return (RS_NORMAL, value)


class QueryResource(abc.ABC):
    """One kind of queryable object."""

    NAME: ClassVar[str]
    #: field used when a filter or the CLI names objects
    NAME_FIELD: ClassVar[str] = "name"
    DEFAULT_FIELDS: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def fields(self) -> Sequence[Field]:
        """Every field, in any order."""

    @abc.abstractmethod
    async def collect(
        self, ctx: MasterContext, names: list[str] | None, fields: list[str]
    ) -> list[Row]:
        """Rows for the named objects (None: all), one cell per field in `fields`."""

    # -- generic parts -----------------------------------------------------
    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields()}

    def query_fields(self, names: list[str] | None = None) -> dict[str, Any]:
        """``{"fields": [definitions]}``: all fields sorted by name, or the named ones."""
        table = self.field_map()
        if not names:
            return {"fields": [table[n].definition() for n in sorted(table)]}
        return {
            "fields": [
                table[n].definition() if n in table else unknown_field_definition(n) for n in names
            ]
        }

    async def query(
        self, ctx: MasterContext, fields: list[str], qfilter: Any = None
    ) -> dict[str, Any]:
        """Ganeti's Query reply for `fields`, rows restricted by `qfilter`."""
        table = self.field_map()
        definitions = [
            table[n].definition() if n in table else unknown_field_definition(n) for n in fields
        ]
        if qfilter is None:
            return {"fields": definitions, "data": await self.collect(ctx, None, list(fields))}
        check_filter(qfilter)
        names = requested_names(qfilter, self.NAME_FIELD)
        if names is not None:
            # a pure name selection: `items` resolved the names (short names
            # included), so the filter itself must not be re-applied
            return {"fields": definitions, "data": await self.collect(ctx, names, list(fields))}
        extra = [n for n in sorted(filter_fields(qfilter)) if n not in fields]
        for name in extra:
            if name not in table:
                raise OpPrereqError(f"Unknown field '{name}' in filter", ECODE_INVAL)
        wanted = list(fields) + extra
        rows = await self.collect(ctx, names, wanted)
        data: list[Row] = []
        for row in rows:
            values = {
                name: (value if status == RS_NORMAL else None)
                for name, (status, value) in zip(wanted, row, strict=True)
            }
            if evaluate_filter(qfilter, values):
                data.append(row[: len(fields)])
        return {"fields": definitions, "data": data}


_T = TypeVar("_T")


def known_objects(
    names: list[str],
    expand: Callable[[str], tuple[str, str]],
    get: Callable[[str], _T | None],
) -> list[_T]:
    """The objects `names` resolve to (Ganeti's unique-prefix rule), in order.

    Unknown names give no row, as in Ganeti's query2: the client reports them.
    """
    out: list[_T] = []
    for name in names:
        try:
            uuid, _full = expand(name)
        except OpPrereqError:
            continue
        obj = get(uuid)
        if obj is not None:
            out.append(obj)
    return out


class TableQueryResource(QueryResource):
    """A resource whose rows come from `items` and per-field getters."""

    FIELDS: ClassVar[Sequence[Field]] = ()

    def fields(self) -> Sequence[Field]:
        return self.FIELDS

    @abc.abstractmethod
    def items(self, ctx: MasterContext, names: list[str] | None) -> list[Any]:
        """The objects to report (names None = all), in output order."""

    async def live_data(self, ctx: MasterContext, items: list[Any]) -> Any:
        """Gather node data for `items` (one parallel RPC round); default none."""
        return None

    async def collect(
        self, ctx: MasterContext, names: list[str] | None, fields: list[str]
    ) -> list[Row]:
        table = self.field_map()
        items = self.items(ctx, names)
        live: Any = None
        if any(table[n].live for n in fields if n in table):
            live = await self.live_data(ctx, items)
        rows: list[Row] = []
        for item in items:
            row: Row = []
            for name in fields:
                fdef = table.get(name)
                row.append((RS_UNKNOWN, None) if fdef is None else cell(fdef.getter(item, live)))
            rows.append(row)
        return rows


# --- filters ------------------------------------------------------------------

_BINARY = {"=", "==", "!=", "<", "<=", ">", ">=", "=~", "=[]"}
_LOGIC = {"|", "&"}


def check_filter(qfilter: Any) -> None:
    """Raise OpPrereqError(ECODE_INVAL) for a malformed filter."""
    if not isinstance(qfilter, list) or not qfilter:
        raise OpPrereqError(f"Invalid filter: {qfilter!r}", ECODE_INVAL)
    op = qfilter[0]
    if op in _LOGIC:
        for sub in qfilter[1:]:
            check_filter(sub)
    elif op == "!":
        if len(qfilter) != 2:
            raise OpPrereqError("Invalid filter: '!' takes one operand", ECODE_INVAL)
        check_filter(qfilter[1])
    elif op == "?":
        if len(qfilter) != 2 or not isinstance(qfilter[1], str):
            raise OpPrereqError("Invalid filter: '?' takes a field name", ECODE_INVAL)
    elif op in _BINARY:
        if len(qfilter) != 3 or not isinstance(qfilter[1], str):
            raise OpPrereqError(f"Invalid filter: {qfilter!r}", ECODE_INVAL)
        if op == "=~":
            try:
                re.compile(str(qfilter[2]))
            except re.error as err:
                raise OpPrereqError(f"Invalid regular expression: {err}", ECODE_INVAL) from err
    else:
        raise OpPrereqError(f"Unknown filter operator '{op}'", ECODE_INVAL)


def filter_fields(qfilter: Any) -> set[str]:
    """Names of the fields a (valid) filter refers to."""
    op = qfilter[0]
    if op in _LOGIC:
        out: set[str] = set()
        for sub in qfilter[1:]:
            out |= filter_fields(sub)
        return out
    if op == "!":
        return filter_fields(qfilter[1])
    return {str(qfilter[1])}


def requested_names(qfilter: Any, name_field: str) -> list[str] | None:
    """The names a filter selects when it is only ``name = x`` alternatives, else None."""
    if not isinstance(qfilter, list) or not qfilter:
        return None
    if qfilter[0] in ("=", "==") and len(qfilter) == 3 and qfilter[1] == name_field:
        return [str(qfilter[2])]
    if qfilter[0] == "|":
        names: list[str] = []
        for sub in qfilter[1:]:
            got = requested_names(sub, name_field)
            if got is None:
                return None
            names.extend(n for n in got if n not in names)
        return names
    return None


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("=", "=="):
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "=~":
        return isinstance(left, str) and re.search(str(right), left) is not None
    if op == "=[]":
        return isinstance(left, list | tuple | dict | str) and right in left
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def evaluate_filter(qfilter: Any, values: dict[str, Any]) -> bool:
    """Whether a row (field name -> value, None when unavailable) passes."""
    op = qfilter[0]
    if op == "|":
        return any(evaluate_filter(sub, values) for sub in qfilter[1:])
    if op == "&":
        return all(evaluate_filter(sub, values) for sub in qfilter[1:])
    if op == "!":
        return not evaluate_filter(qfilter[1], values)
    if op == "?":
        return bool(values.get(qfilter[1]))
    left = values.get(qfilter[1])
    if left is None:
        return op == "!=" and qfilter[2] is not None
    return _compare(op, left, qfilter[2])
