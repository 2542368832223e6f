"""The global N+1 check's greedy re-creation scan (`redundancy._Recreate`).

(`_redundant_fast` against the step-by-step simulation is in test_search.py.)
"""

from __future__ import annotations

import numpy as np

from corral.htools import redundancy


def test_recreate_scan_equals_argmax() -> None:
    """The sorted scan picks what argmax over the arrays picks (ties included)."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        e = int(rng.integers(2, 90))
        efree = rng.choice([0, 500, 1000, 1000, 4000, 8000], e).astype(np.int64)
        edsk = rng.choice([0, 100, 5000, 5000], e).astype(np.int64)
        pick = redundancy._Recreate(efree, edsk)
        me = int(rng.integers(0, e))
        cur_f = {int(j): int(efree[j]) - int(rng.integers(0, 3000)) for j in rng.integers(0, e, 4)}
        cur_d = {int(j): int(edsk[j]) - int(rng.integers(0, 3000)) for j in rng.integers(0, e, 3)}
        mem, dsk = int(rng.choice([0, 400, 999])), int(rng.choice([0, 50, 4000]))
        got = pick._best(mem, dsk, me, cur_f, cur_d)
        assert got == pick._best_arrays(mem, dsk, me, cur_f, cur_d)
