"""Process set-up and options shared by the htools front-ends (hbal, hspace, corral-hail).

OpenBLAS starts one spinning thread per core when numpy is imported; the
htools arrays are small or memory-bound (measured: the same or faster with one
thread even at 4000 nodes, and ~0.1 s less CPU per run at 40 nodes), and on a
busy master those threads only compete with the daemons. So the tools default
to one BLAS thread; an ``OPENBLAS_NUM_THREADS`` set by the user wins.
Must run before numpy is imported: the front-ends call it first thing.
"""

from __future__ import annotations

import argparse
import os


def prepare() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """-t / -L / -m: where hbal and hspace read the cluster from."""
    p.add_argument(
        "-t",
        "--text-data",
        metavar="FILE",
        help="read the cluster from a file in htools' text format",
    )
    p.add_argument(
        "-L",
        "--luxi",
        nargs="?",
        const="default",
        default=None,
        metavar="SOCKET",
        help="read the live cluster through the local API (default socket: the master's)",
    )
    p.add_argument(
        "-m",
        "--master",
        metavar="CLUSTER",
        help="read a cluster over RAPI v2 (host, host:port or URL)",
    )


def add_common_options(p: argparse.ArgumentParser, prog: str) -> None:
    """-v / -q / -V, as every htools program has them."""
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (repeat for more)"
    )
    p.add_argument("-q", "--quiet", action="count", default=0, help="less output (repeat for less)")
    p.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"{prog} (corral) 0.1.0",
        help="print the version and exit",
    )


def add_print_nodes(p: argparse.ArgumentParser, when: str) -> None:
    """``-p/--print-nodes [FIELDS]`` (Ganeti's node tables on stderr, ``when``: which)."""
    p.add_argument(
        "-p",
        "--print-nodes",
        nargs="?",
        const="",
        default=None,
        metavar="FIELDS",
        help=f"print the node table (on stderr) {when} (FIELDS: a comma-separated"
        " list, +list to extend the default)",
    )
