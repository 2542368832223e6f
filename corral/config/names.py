"""Name matching as Ganeti's ``utils.MatchNameComponent`` does it.

Users may type a short name (``inst1``) for a fully qualified one
(``inst1.example.com``). A key matches a name when it is equal to it or equal to
its leading dot-separated components. An exact match always wins; otherwise the
match must be unique, first case-sensitively, then case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable


def _component_match(key: str, name: str) -> bool:
    return name == key or name.startswith(key + ".")


def match_name_component(key: str, names: Iterable[str]) -> str | None:
    """Return the one name `key` designates, or None when none or several match."""
    candidates = list(names)
    if key in candidates:
        return key
    found = [n for n in candidates if _component_match(key, n)]
    if len(found) == 1:
        return found[0]
    if found:
        return None
    lkey = key.lower()
    exact = [n for n in candidates if n.lower() == lkey]
    if len(exact) == 1:
        return exact[0]
    found = [n for n in candidates if _component_match(lkey, n.lower())]
    if len(found) == 1:
        return found[0]
    return None
