"""Which logical unit runs which opcode, and which query resource answers what.

LU modules register themselves with a class decorator::

    @lu_for(opcodes.OpInstanceStartup)
    class LUInstanceStartup(LogicalUnit): ...

and query resources (`corral.cmdlib.query_base.QueryResource` instances) with
`register_query`. `load_all()` imports every module of the ``corral.cmdlib``
package once, so masterd only needs to call it at start; nothing has to list
the modules by hand. `lu_class(op)` raises `OpCodeUnknown` for an opcode that
no LU serves.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from corral import opcodes
from corral.errors import OpCodeUnknown, ProgrammerError

if TYPE_CHECKING:
    from corral.cmdlib.base import LogicalUnit
    from corral.cmdlib.query_base import QueryResource

log = logging.getLogger(__name__)

LU_REGISTRY: dict[type[opcodes.OpCode], type[LogicalUnit]] = {}
QUERY_REGISTRY: dict[str, QueryResource] = {}

_LU = TypeVar("_LU", bound="type[LogicalUnit]")

# Modules of corral.cmdlib that hold no LUs and need not be imported at start
_SKIP_MODULES = frozenset({"base", "registry", "query_base"})
_loaded = False


def lu_for(op_class: type[opcodes.OpCode]) -> Callable[[_LU], _LU]:
    """Class decorator: the decorated LU serves `op_class`."""

    def register(lu_class: _LU) -> _LU:
        existing = LU_REGISTRY.get(op_class)
        if existing is not None and existing is not lu_class:
            raise ProgrammerError(f"{op_class.__name__} already served by {existing.__name__}")
        LU_REGISTRY[op_class] = lu_class
        return lu_class

    return register


def register_query(resource: QueryResource) -> QueryResource:
    """Register a query resource under its NAME (``"instance"``, ``"node"``, ...)."""
    QUERY_REGISTRY[resource.NAME] = resource
    return resource


def load_all() -> None:
    """Import every LU/query module of corral.cmdlib (idempotent)."""
    global _loaded
    if _loaded:
        return
    import corral.cmdlib as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _SKIP_MODULES or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package.__name__}.{info.name}")
        except Exception:  # one broken module must not take the master down
            log.exception("Cannot load cmdlib module %s", info.name)
    _loaded = True


def lu_class(op: opcodes.OpCode) -> type[LogicalUnit]:
    cls = LU_REGISTRY.get(type(op))
    if cls is None:
        raise OpCodeUnknown(f"Unknown opcode {op.op_id()}")
    return cls
