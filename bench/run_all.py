"""``make bench``: every benchmark, one after the other; results in bench/results/.

    .venv/bin/python -m bench.run_all [--quick]

Runs the cluster benchmark (`bench.cluster_bench`) and then the htools one
(``bench/htools/run.py``, when present). Exit code: the first failure's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench import cluster_bench

HTOOLS = Path(__file__).with_name("htools") / "run.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all")
    parser.add_argument("--quick", action="store_true", help="shorter cluster benchmark")
    args = parser.parse_args(argv)
    status = cluster_bench.main(["--quick"] if args.quick else [])
    if HTOOLS.exists():
        print("run_all: htools benchmark...", flush=True)
        htools = subprocess.run([sys.executable, str(HTOOLS)], check=False).returncode
        status = status or htools
    return status


if __name__ == "__main__":
    sys.exit(main())
