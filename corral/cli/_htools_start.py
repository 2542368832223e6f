"""Process set-up shared by the htools front-ends (hbal, hspace, corral-hail).

OpenBLAS starts one spinning thread per core when numpy is imported; the
htools arrays are small or memory-bound (measured: the same or faster with one
thread even at 4000 nodes, and ~0.1 s less CPU per run at 40 nodes), and on a
busy master those threads only compete with the daemons. So the tools default
to one BLAS thread; an ``OPENBLAS_NUM_THREADS`` set by the user wins.
Must run before numpy is imported: the front-ends call it first thing.
"""

from __future__ import annotations

import os


def prepare() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
