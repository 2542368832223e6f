"""Cluster data sources for the htools front-ends.

A loader turns some description of a cluster into a finalized `Cluster`.
Here is the text backend (``-t FILE``); reading the live corral cluster
through the local API (``-L``) or RAPI v2 (``-m CLUSTER``) is plugged in by
the CLI layer, which registers a `Loader` factory for those sources in
`LIVE_LOADERS` (`corral.cli.htools_live.register`: ``LiveLoader`` and
``corral.cli.htools_rapi.RapiLoader``); htools itself stays pure computation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from corral.htools.cluster import Cluster
from corral.htools.types import HtoolsError


class Loader(Protocol):
    """Anything that can produce a cluster model."""

    def load(self) -> Cluster: ...


class TextLoader:
    """Ganeti's htools text format from a file path."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> Cluster:
        from corral.htools.text import parse_text

        try:
            with open(self.path, encoding="utf-8") as fh:
                data = fh.read()
        except OSError as err:
            raise HtoolsError(f"Cannot read file {self.path}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise HtoolsError(f"File {self.path} is not valid UTF-8 text") from None
        return parse_text(data)


class UnsupportedLoader:
    """Placeholder for -L / -m until the live backends exist."""

    def __init__(self, what: str) -> None:
        self.what = what

    def load(self) -> Cluster:
        raise HtoolsError(f"{self.what} is not yet supported by corral's htools; use -t FILE")


LIVE_LOADERS: dict[str, Callable[[str], Loader]] = {}
"""Live data sources, registered by the layer that owns the transport.

Keys: ``"luxi"`` (``-L [SOCKET]``) and ``"rapi"`` (``-m CLUSTER``). Each value
is called with the option's argument (for a bare ``-L`` the string
``"default"``, meaning the master socket) and returns a `Loader`; a source
without a registered factory answers "not yet supported".
"""


def select_loader(text: str | None, luxi: str | None, rapi: str | None) -> Loader:
    """The loader for hbal/hspace's data options (-t, -L, -m)."""
    if luxi is not None:
        factory = LIVE_LOADERS.get("luxi")
        return factory(luxi) if factory is not None else UnsupportedLoader("-L (local API)")
    if rapi is not None:
        factory = LIVE_LOADERS.get("rapi")
        return factory(rapi) if factory is not None else UnsupportedLoader("-m (RAPI)")
    if text is None:
        raise HtoolsError("No cluster data source given; use -t FILE")
    return TextLoader(text)


def common_suffix(names: list[str]) -> str:
    """Longest common ``.domain`` suffix of all names (Ganeti's ``longestDomain``)."""
    if not names:
        return ""
    first = names[0]
    best = ""
    for i, ch in enumerate(first):
        if ch == ".":
            suf = first[i:]
            if all(n.endswith(suf) for n in names[1:]):
                return suf
    return best
