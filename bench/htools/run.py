#!/usr/bin/env python3
"""htools benchmark: corral's hail/hbal/hspace (and Ganeti's where they finish) on the corpus.

usage: run.py [--scales 40,400] [--ganeti] [--cap SECONDS] [--tools hail,hbal,hspace]
              [--hbal-length N] [--out FILE]

Example used for the 4000-node rows of bench/results/htools.md:
``run.py --scales 4000 --tools hail,hbal --hbal-length 50``.

Every run goes through ``/usr/bin/time -f`` (wall seconds, peak RSS) under
``timeout``; 4000-node files are regenerated with the reference gen_cluster.py.
Ganeti's tools are only run with ``--ganeti`` (they take minutes at 40 nodes and
break at 400; REPORT.md has their figures).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REF = Path("/work/shared/reference/htools")
GANETI = {
    "hbal": "/usr/lib/ganeti/3.0/usr/bin/hbal",
    "hspace": "/usr/lib/ganeti/3.0/usr/bin/hspace",
    "hail": "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail",
}
VENV = Path(sys.executable).parent


def timed(cmd: list[str], cap: float) -> tuple[float, int, str, bool]:
    with tempfile.NamedTemporaryFile("r") as tf:
        argv = ["/usr/bin/time", "-f", "%e %M", "-o", tf.name, "timeout", str(cap), *cmd]
        p = subprocess.run(argv, capture_output=True, text=True)
        fields = Path(tf.name).read_text().split()
    wall, rss = (fields[-2], fields[-1]) if len(fields) >= 2 else ("0", "0")
    return float(wall), int(rss) // 1024, p.stdout, p.returncode == 124


def data_file(name: str, tmp: Path) -> Path:
    f = REF / "corpus" / f"{name}.data"
    if f.exists():
        return f
    prof, n = name.split("-")
    out = tmp / f"{name}.data"
    profile = "datacenter" if prof == "dc" else "office"
    subprocess.run([sys.executable, str(REF / "gen_cluster.py"), "gen", "--profile", profile,
                    "--nodes", n, "--seed", "1", "-o", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="40")
    ap.add_argument("--ganeti", action="store_true")
    ap.add_argument("--cap", type=float, default=600)
    ap.add_argument("--hbal-length", type=int, default=-1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tools", default="hail,hbal,hspace",
                    help="comma-separated subset (hspace at 4000 nodes takes hours)")  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="htools-bench-"))
    rows = []
    for scale in args.scales.split(","):
        for prof in ("dc", "office"):
            name = f"{prof}-{scale}"
            data = data_file(name, tmp)
            mem, vcpu, disk, kvm = ("4096", "2", "51200", "4096") if prof == "dc" else (
                "128", "1", "4096", "512")  # fmt: skip
            req = tmp / f"{name}.json"
            subprocess.run([sys.executable, str(REF / "gen_cluster.py"), "ialloc", str(data),
                            "--type", "allocate", "--name", "new1.example.com", "--mem", mem,
                            "--vcpus", vcpu, "--disk", disk, "--template", "drbd", "-o",
                            str(req)], check=True, capture_output=True)  # fmt: skip
            spec = f"{disk},{mem},{vcpu}"
            hb = ["-t", str(data)] + (
                ["-l", str(args.hbal_length)] if args.hbal_length >= 0 else []
            )
            tools = {
                "hail": [f"--static-kvm-node-memory={kvm}", str(req)],
                "hbal": hb,
                "hspace": ["-t", str(data), "--machine-readable", "--disk-template=drbd",
                           f"--standard-alloc={spec}"],
            }  # fmt: skip
            for tool, targs in tools.items():
                if tool not in args.tools.split(","):
                    continue
                impls = [("corral", str(VENV / ("corral-hail" if tool == "hail" else tool)))]
                if args.ganeti:
                    impls.append(("ganeti", GANETI[tool]))
                for impl, exe in impls:
                    wall, rss, out, killed = timed([exe, *targs], args.cap)
                    rows.append((name, tool, impl, wall, rss, killed, summarize(tool, out)))
                    print(rows[-1], flush=True)
    md = [
        "| cluster | tool | impl | wall (s) | peak RSS (MiB) | result |",
        "|---|---|---|---|---|---|",
    ]
    for name, tool, impl, wall, rss, killed, res in rows:
        md.append(f"| {name} | {tool} | {impl} | {wall:.2f}{' (killed)' if killed else ''} "
                  f"| {rss} | {res} |")  # fmt: skip
    text = "\n".join(md) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


def summarize(tool: str, out: str) -> str:
    if tool == "hbal":
        m = re.search(r"Cluster score improved from ([0-9.]+) to ([0-9.]+)", out)
        n = re.search(r"Solution length=(\d+)", out)
        return (
            f"{m.group(1)} -> {m.group(2)}, {n.group(1) if n else '?'} moves" if m else "no result"
        )
    if tool == "hspace":
        kv = dict(re.findall(r"^HTS_([A-Z_]+)=(.*)$", out, re.M))
        return (f"std +{kv.get('ALLOC_INSTANCES')} ({kv.get('ALLOC_FAIL_REASON')}), "
                f"FIN {kv.get('FIN_INST_CNT')}, TRL {kv.get('TRL_INST_CNT')}")  # fmt: skip
    m = re.search(r'"result":(\[[^\]]*\])', out)
    s = re.search(r"score: ([0-9.]+)", out)
    return f"{m.group(1) if m else '?'} score {s.group(1) if s else '?'}"


if __name__ == "__main__":
    sys.exit(main())
