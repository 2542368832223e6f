"""The node table of ``hbal -p [FIELDS]`` (Ganeti's ``printNodes``), on stderr.

Ganeti prints "Initial cluster status:" before balancing and "Final cluster
status:" after it, each preceded by an empty line, for the selected group's
nodes in index order. Fields are Ganeti's names (``-p`` alone: the default
list; ``-p a,b``: exactly those; ``-p +a,b``: the default plus those), each
formatted as Ganeti does (memory in MiB, disk in GiB, ratios to 4 places);
numeric columns are right-aligned, the others left-aligned, every column as
wide as its widest cell, the line led by one space.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import numpy as np

from corral.htools.cluster import Cluster
from corral.htools.nodeops import NDArray, pdsk, unallocated

DEFAULT_FIELDS = [
    "status", "name", "tmem", "nmem", "imem", "xmem", "fmem", "umem", "rmem", "tdsk", "fdsk",
    "tcpu", "ucpu", "pcnt", "scnt", "pfmem", "pfdsk", "rcpu", "cload", "mload", "dload", "nload",
]  # fmt: skip
UNKNOWN = "<unknown field>"


def parse_fields(spec: str) -> list[str]:
    """``""`` -> the default fields; ``+a,b`` -> default plus a, b; ``a,b`` -> a, b."""
    if not spec:
        return list(DEFAULT_FIELDS)
    if spec.startswith("+"):
        return DEFAULT_FIELDS + [f for f in spec[1:].split(",") if f]
    return [f for f in spec.split(",") if f]


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _ids(indexes: list[int]) -> str:
    """An instance index list as Ganeti shows it (newest first, Haskell's show)."""
    return "[" + ",".join(str(i) for i in reversed(indexes)) + "]"


def _status(c: Cluster, n: int) -> str:
    v = c.nodes
    if v["offline"][n]:
        return "-"
    return "*" if v["failn1"][n] else " "


_Cell = Callable[[Cluster, int, Callable[[str], str], dict[str, NDArray]], str]

# field -> (header, numeric, cell); a cell gets the cluster, the node, the alias
# function and per-node arrays computed once per table (`_derived`)
_FIELDS: dict[str, tuple[str, bool, _Cell]] = {
    "idx": ("Index", True, lambda c, n, a, x: f"{n:4d}"),
    "name": ("Name", False, lambda c, n, a, x: a(c.names[n])),
    "fqdn": ("Name", False, lambda c, n, a, x: c.names[n]),
    "status": ("F", False, lambda c, n, a, x: _status(c, n)),
    "tmem": ("t_mem", True, lambda c, n, a, x: f"{c.nodes['tmem'][n]:5.0f}"),
    "nmem": ("n_mem", True, lambda c, n, a, x: f"{int(c.nodes['nmem'][n]):5d}"),
    "xmem": ("x_mem", True, lambda c, n, a, x: f"{int(c.nodes['xmem'][n]):5d}"),
    "fmem": ("f_mem", True, lambda c, n, a, x: f"{int(c.nodes['fmem'][n]):5d}"),
    "umem": ("u_mem", True, lambda c, n, a, x: f"{int(x['umem'][n]):5d}"),
    "imem": ("i_mem", True, lambda c, n, a, x: f"{int(c.nodes['imem'][n]):5d}"),
    "rmem": ("r_mem", True, lambda c, n, a, x: f"{int(c.nodes['rmem'][n]):5d}"),
    "amem": ("a_mem", True, lambda c, n, a, x: f"{int(x['umem'][n] - c.nodes['rmem'][n]):5d}"),
    "tdsk": ("t_dsk", True, lambda c, n, a, x: f"{c.nodes['tdsk'][n] / 1024:5.0f}"),
    "fdsk": ("f_dsk", True, lambda c, n, a, x: f"{int(c.nodes['fdsk'][n]) // 1024:5d}"),
    "tcpu": ("pcpu", True, lambda c, n, a, x: f"{c.nodes['tcpu'][n]:4.0f}"),
    "ucpu": ("vcpu", True, lambda c, n, a, x: f"{int(c.nodes['ucpu'][n]):4d}"),
    "pcnt": ("pcnt", True, lambda c, n, a, x: f"{len(c.plist[n]):3d}"),
    "scnt": ("scnt", True, lambda c, n, a, x: f"{len(c.slist[n]):3d}"),
    "plist": ("primaries", True, lambda c, n, a, x: _ids(c.plist[n])),
    "slist": ("secondaries", True, lambda c, n, a, x: _ids(c.slist[n])),
    "pfmem": ("p_fmem", True, lambda c, n, a, x: f"{x['pfmem'][n]:6.4f}"),
    "pfdsk": ("p_fdsk", True, lambda c, n, a, x: f"{x['pfdsk'][n]:6.4f}"),
    "rcpu": (
        "r_cpu",
        True,
        lambda c, n, a, x: f"{_ratio(float(c.nodes['ucpu'][n]), float(c.nodes['tcpu'][n])):5.2f}",
    ),
    "cload": ("lCpu", True, lambda c, n, a, x: f"{c.nodes['lc'][n]:5.3f}"),
    "mload": ("lMem", True, lambda c, n, a, x: f"{c.nodes['lm'][n]:5.3f}"),
    "dload": ("lDsk", True, lambda c, n, a, x: f"{c.nodes['ld'][n]:5.3f}"),
    "nload": ("lNet", True, lambda c, n, a, x: f"{c.nodes['ln'][n]:5.3f}"),
    "ptags": (
        "PrimaryTags",
        False,
        lambda c, n, a, x: ",".join(f"{k}={v}" for k, v in sorted(c.ptags[n].items())),
    ),
}


def _derived(c: Cluster) -> dict[str, NDArray]:
    """Per-node values as the score sees them (free memory is Ganeti's
    unallocated memory, also after moves; disk as ``pDsk``)."""
    v = c.nodes
    umem = unallocated(v)
    tmem = np.where(v["tmem"] == 0, 1.0, v["tmem"])
    return {"umem": umem, "pfmem": umem / tmem, "pfdsk": np.nan_to_num(pdsk(v))}


def strip(name: str, suffix: str) -> str:
    """``name`` without the names' common domain suffix, as Ganeti's htools print it."""
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


def node_table(
    c: Cluster, nodes: Sequence[int], fields: Sequence[str], alias: Callable[[str], str]
) -> list[str]:
    """The table's lines (header first), Ganeti's layout."""
    known = [_FIELDS.get(f) for f in fields]
    header = [k[0] if k else UNKNOWN for k in known]
    numeric = [bool(k and k[1]) for k in known]
    x = _derived(c)
    rows = [[k[2](c, int(n), alias, x) if k else UNKNOWN for k in known] for n in nodes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(fields))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append(" " + " ".join(cells))
    return lines


def print_nodes(
    out: TextIO,
    title: str,
    c: Cluster,
    nodes: Sequence[int],
    spec: str,
    alias: Callable[[str], str],
) -> None:
    """``\\n<title>:\\n<table>`` as Ganeti's maybePrintNodes (e.g. "Initial cluster status")."""
    lines = node_table(c, nodes, parse_fields(spec), alias)
    out.write(f"\n{title}:\n" + "\n".join(lines) + "\n\n")


def printer(spec: str | None, names: list[str]) -> Callable[..., None]:
    """``show(title, cluster, nodes=None)``: the ``-p`` table on stderr, or nothing.

    ``spec`` is the ``-p`` argument (None: option not given); names lose the
    common suffix of ``names`` (the loaded nodes and instances), as Ganeti's
    htools compute it once at load. ``nodes`` defaults to every node.
    """
    from corral.htools.loader import common_suffix

    suffix = common_suffix(names) if spec is not None else ""

    def show(title: str, c: Cluster, nodes: Sequence[int] | None = None) -> None:
        if spec is None:
            return
        shown = list(range(c.n_nodes)) if nodes is None else nodes
        print_nodes(sys.stderr, title, c, shown, spec, lambda n: strip(n, suffix))

    return show
