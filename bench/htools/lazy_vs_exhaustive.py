#!/usr/bin/env python3
"""Evidence for hbal's lazy search: the same steps as the exhaustive one, and how fast.

usage: lazy_vs_exhaustive.py FILE [FILE...] [--length N]

Runs `corral.htools.balance.balance` on each htools text file twice in this
process, ``search="exhaustive"`` (every pair scored at every step, Ganeti's
method) and ``search="lazy"`` (the default above 50 000 pairs), and prints per
file: both final scores and move counts, whether the two step lists (instance,
move, target, score) are identical, and the CPU seconds of each run.
``--length`` stops both after N moves (the 4000-node files: ~30 s per
exhaustive step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from corral.htools.balance import BalanceOptions, balance
from corral.htools.text import parse_text


def run(path: Path, search: str, length: int) -> tuple[float, list[tuple[object, ...]], float]:
    c = parse_text(path.read_text())
    t = time.process_time()
    _, fin, steps = balance(c, 0, BalanceOptions(search=search, max_length=length))
    cpu = time.process_time() - t
    return fin, [(s.inst, int(s.move), s.target, s.score) for s in steps], cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--length", type=int, default=-1)
    args = ap.parse_args()
    for f in args.files:
        ef, es, et = run(f, "exhaustive", args.length)
        lf, ls, lt = run(f, "lazy", args.length)
        same = "identical" if es == ls else f"DIFFER at move {_first_diff(es, ls)}"
        print(f"{f.name}: exhaustive {ef:.8f} ({len(es)} moves, {et:.1f} s CPU); "
              f"lazy {lf:.8f} ({len(ls)} moves, {lt:.1f} s CPU); steps {same}",
              flush=True)  # fmt: skip
    return 0


def _first_diff(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i + 1
    return min(len(a), len(b)) + 1


if __name__ == "__main__":
    sys.exit(main())
