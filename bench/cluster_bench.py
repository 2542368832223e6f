"""Cluster benchmark on the fake hypervisor, compared with Ganeti 3.0.2.

    .venv/bin/python -m bench.cluster_bench [--dir D] [--quick] [--reps N] [--profile]

Brings up a 1-node testkit (Ganeti's reference figures are single-node) in a
fresh directory under /tmp, initialises a cluster (fake hypervisor; file,
diskless and drbd templates), installs a ``noop`` OS (API 20, scripts that
do nothing but print their environment, like the dummy OS of Ganeti's runs) and
measures, as Ganeti's figures in ../shared/reference/ganeti/cli-outputs/ were
measured:

1. whole CLI commands (a full ``gnt-instance`` process on the node, started
   with `Testkit.exec`; nothing subtracted, the cost of exec'ing ``true`` the
   same way is reported beside): ``add -t file -s 1G`` and ``add -t diskless``
   with ``-o noop+default -B minmem=256M,maxmem=512M --no-name-check
   --no-ip-check -n node1`` (Ganeti's exact command, instance started),
   ``stop``, ``start``, ``remove -f``;
2. job latency, submit to success, of the same opcodes submitted with the local
   API from inside the node, plus the job's own received->end;
3. throughput of N OpInstanceCreate jobs submitted in one ``SubmitManyJobs``
   call: jobs/s = N / (last end - first received), as job_timestamp_stats.txt;
4. RSS of corral-masterd and corral-noded, idle and peak under load (host-side
   /proc sampling every 50 ms), and of the fake VM processes.

Results: bench/results/cluster.md (table against Ganeti and the targets) and
bench/results/cluster.json (every raw sample). The testkit is always taken
down and its directory removed (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import memory, report
from bench.stats import batch_figures, summarize
from corral.testkit.cluster import Testkit
from corral.testkit.errors import TestkitError

NODE = "node1"
PNODE = "node1.project.edu"
AGENT = str(Path(__file__).with_name("node_agent.py"))
RESULTS_DIR = Path(__file__).with_name("results")

INIT_ARGV = [
    "gnt-cluster",
    "init",
    "--master-netdev=br-man",
    "--enabled-hypervisors=fake",
    "--enabled-disk-templates=file,diskless,drbd",
    "-N",
    "link=br-public",
    "--vg-name",
    "ganeti",
    "cluster.project.edu",
]

#: the dummy OS: Ganeti's runs used ``noop+default`` whose create script only
#: logs its environment (os_create_script_env_inst1.txt); this one does the same
NOOP_OS_SCRIPT = r"""
set -e
d=/srv/ganeti/os/noop
mkdir -p $d
echo 20 > $d/ganeti_api_version
echo default > $d/variants.list
: > $d/parameters.list
for s in create import export rename verify; do
  printf '#!/bin/sh\necho "noop OS: %s called"\nenv | sort\nexit 0\n' "$s" > $d/$s
  chmod 755 $d/$s
done
"""


def add_argv(name: str, template: str) -> list[str]:
    """Ganeti's reference command (gnt-instance_add_inst1_file.txt / inst2_diskless)."""
    disk = ["-s", "1G"] if template != "diskless" else []
    tail = ["-B", "minmem=256M,maxmem=512M", "--no-name-check", "--no-ip-check", "-n", PNODE]
    return ["gnt-instance", "add", "-t", template, "-o", "noop+default", *disk, *tail, name]


def _summary(values: list[float]) -> dict[str, float]:
    return summarize(values).as_dict()


class BenchError(Exception):
    """A step failed; the message says which and why (one line)."""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class ClusterBench:
    def __init__(self, kit: Testkit, reps: int, sizes: list[int], profile: bool) -> None:
        self.kit = kit
        self.reps = reps
        self.sizes = sizes
        self.profile = profile
        self.results: dict[str, Any] = {
            "reps": reps,
            "sizes": sizes,
            "cli": {},
            "jobs": {},
            "throughput": {},
            "memory": {},
            "failures": [],
            "loadavg": {},
            "cpus": os.cpu_count(),
        }

    # -- running things on the node -------------------------------------------------
    def run(self, argv: list[str], step: str, timeout: float = 120.0) -> float:
        """Run `argv` on the node; its wall time. Raises BenchError on failure."""
        wall, proc = self._timed(argv, timeout)
        if proc.returncode != 0:
            detail = _last_line(proc.stderr) or _last_line(proc.stdout)
            raise BenchError(f"{step}: '{' '.join(argv)}' exited {proc.returncode}: {detail}")
        return wall

    def _timed(
        self, argv: list[str], timeout: float
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.perf_counter()
        try:
            proc = self.kit.exec(NODE, argv, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise BenchError(f"'{' '.join(argv)}' timed out after {timeout:.0f} s") from err
        return time.perf_counter() - started, proc

    def run_tolerant(self, argv: list[str], step: str) -> tuple[float, bool]:
        """Like `run` but a failure is recorded (once per step) instead of raised."""
        wall, proc = self._timed(argv, 120.0)
        if proc.returncode != 0:
            detail = _last_line(proc.stderr) or _last_line(proc.stdout)
            self._note_failure(step, f"exit {proc.returncode}: {detail}")
        return wall, proc.returncode == 0

    def _note_failure(self, step: str, detail: str) -> None:
        failures: list[dict[str, Any]] = self.results["failures"]
        for entry in failures:
            if entry["step"] == step:
                entry["count"] += 1
                return
        failures.append({"step": step, "detail": detail, "count": 1})

    def agent(self, mode: str, kind: str, names: list[str], *extra: str) -> dict[str, Any]:
        argv = ["python", AGENT, mode, "--kind", kind, "--names", ",".join(names), "--pnode", PNODE]
        argv += list(extra)
        timeout = 60.0 + 2.0 * len(names)
        _, proc = self._timed(argv, timeout)
        if proc.returncode != 0:
            raise BenchError(f"job agent {mode} {kind}: {_last_line(proc.stderr)}")
        try:
            result: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError as err:
            raise BenchError(f"job agent {mode} {kind}: unreadable output: {err}") from err
        bad = [j for j in result["jobs"] if j["status"] != "success"]
        if result.get("rejected"):
            self._note_failure(f"{mode} {kind} submit", str(result["rejected"][0]))
        if bad:
            self._note_failure(
                f"{mode} {kind} ({len(names)} jobs)",
                f"{len(bad)} job(s) {bad[0]['status']}: {bad[0].get('error', '')}",
            )
        return result

    # -- phases ---------------------------------------------------------------------
    def setup(self) -> None:
        self.results["cli"]["init"] = self.run(INIT_ARGV, "cluster init", timeout=180)
        self.run(["sh", "-c", NOOP_OS_SCRIPT], "install the noop OS")
        self.run(["gnt-os", "list"], "OS list")
        time.sleep(2.0)  # let the daemons settle after init before the idle sample
        self.results["memory"]["idle_after_init"] = self._snapshot(instances=0)

    def _snapshot(self, instances: int) -> dict[str, Any]:
        snap = memory.snapshot(self.kit, NODE)
        return {
            "instances": instances,
            "rss_kib": snap.rss,
            "count": snap.count,
            "daemon_pss_kib": snap.daemon_pss,
            "daemon_hwm_kib": snap.daemon_hwm,
        }

    def baseline(self) -> None:
        """What any command pays: exec through the testkit, Python start, one query."""
        cli = self.results["cli"]
        cli["exec_true"] = _summary([self.run(["true"], "exec true") for _ in range(self.reps)])
        cli["python_start"] = _summary(
            [self.run(["python", "-c", "pass"], "python start") for _ in range(self.reps)]
        )
        cli["instance_list"] = _summary(
            [self.run(["gnt-instance", "list"], "gnt-instance list") for _ in range(self.reps)]
        )

    def cli_lifecycle(self) -> None:
        cli = self.results["cli"]
        # warm-up (not counted): the first add imports modules lazily in the daemons
        self.run(add_argv("warm1", "file"), "warm-up add")
        self.run_tolerant(["gnt-instance", "remove", "-f", "warm1"], "cli remove")
        for template in ("file", "diskless"):
            names = [f"c{template[0]}{i:02d}" for i in range(1, self.reps + 1)]
            walls = [self.run(add_argv(n, template), f"cli add -t {template}") for n in names]
            cli[f"add_{template}"] = _summary(walls)
        stops: list[float] = []
        starts: list[float] = []
        for i in range(self.reps):
            name = "cf01" if i % 2 == 0 else "cd01"
            stops.append(self.run(["gnt-instance", "stop", name], "cli stop"))
            starts.append(self.run(["gnt-instance", "start", name], "cli start"))
        cli["stop"] = _summary(stops)
        cli["start"] = _summary(starts)
        self.results["memory"]["idle_with_cli_instances"] = self._snapshot(2 * self.reps)
        for template in ("file", "diskless"):
            names = [f"c{template[0]}{i:02d}" for i in range(1, self.reps + 1)]
            walls = []
            ok_all = True
            for name in names:
                wall, ok = self.run_tolerant(["gnt-instance", "remove", "-f", name], "cli remove")
                walls.append(wall)
                ok_all &= ok
            cli[f"remove_{template}"] = _summary(walls)
            cli[f"remove_{template}_all_ok"] = ok_all

    def job_latency(self) -> None:
        jobs = self.results["jobs"]

        def figures(result: dict[str, Any]) -> dict[str, Any]:
            ok = [j for j in result["jobs"] if j["status"] == "success"]
            rows = ok or result["jobs"]
            return {
                "success": len(ok),
                "n": len(result["jobs"]),
                "client": _summary([j["client_wall"] for j in rows]),
                "received_end": _summary([j["end"] - j["received"] for j in rows]),
                "queue_wait": _summary([j["start"] - j["received"] for j in rows]),
            }

        for template in ("file", "diskless"):
            names = [f"j{template[0]}{i:02d}" for i in range(1, self.reps + 1)]
            jobs[f"add_{template}"] = figures(
                self.agent("seq", "add", names, "--template", template)
            )
        names = [f"jf{i:02d}" for i in range(1, self.reps + 1)]
        jobs["stop"] = figures(self.agent("seq", "shutdown", names))
        jobs["start"] = figures(self.agent("seq", "startup", names))
        for template in ("file", "diskless"):
            names = [f"j{template[0]}{i:02d}" for i in range(1, self.reps + 1)]
            jobs[f"remove_{template}"] = figures(self.agent("seq", "remove", names))

    def throughput(self) -> None:
        tput = self.results["throughput"]
        for size in self.sizes:
            variants = [("file", False), ("diskless", False)]
            if size == max(self.sizes):
                variants.append(("diskless", True))
            for template, no_start in variants:
                key = f"{size}_{template}" + ("_nostart" if no_start else "")
                prefix = f"t{size}{template[0]}{'n' if no_start else ''}"
                names = [f"{prefix}x{i:03d}" for i in range(1, size + 1)]
                extra = ["--template", template] + (["--no-start"] if no_start else [])
                load_before = memory.loadavg()
                cpu0, busy0 = memory.cpu_seconds(self.kit, NODE), memory.machine_busy()
                with memory.Sampler(self.kit, NODE) as sampler, self._profiling(key, size):
                    created = self.agent("many", "add", names, *extra)
                cpu1, busy1 = memory.cpu_seconds(self.kit, NODE), memory.machine_busy()
                entry = {
                    "add": batch_figures(created["jobs"]),
                    "add_submit_call": created["submit_call"],
                    "add_client_wall": created["client_wall"],
                    "memory_peak_kib": dict(sampler.peak),
                    "memory_peak_count": dict(sampler.peak_count),
                    "memory_peak_daemons_kib": sampler.peak_daemons,
                    "memory_samples": sampler.samples,
                    "cpu_ms_per_job": {
                        role: 1000 * (cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) / size
                        for role in ("masterd", "noded", "noded_children")
                    },
                    "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
                    "loadavg_before": load_before,
                }
                if size == max(self.sizes) and template == "file":
                    self.results["memory"]["idle_with_load_instances"] = self._snapshot(size)
                    self.crowded(size)
                removed = self.agent("many", "remove", names)
                entry["remove"] = batch_figures(removed["jobs"])
                entry["remove_client_wall"] = removed["client_wall"]
                entry["remove_statuses"] = sorted({j["status"] for j in removed["jobs"]})
                tput[key] = entry
        self.results["memory"]["after_all"] = self._snapshot(instances=0)

    def crowded(self, existing: int) -> None:
        """Single add (CLI and job) with `existing` running instances: per-job O(N) costs."""
        count = min(5, self.reps)
        cli_names = [f"crowdc{i}" for i in range(count)]
        job_names = [f"crowdj{i}" for i in range(count)]
        walls = [self.run(add_argv(n, "file"), "cli add (crowded)") for n in cli_names]
        jobs = self.agent("seq", "add", job_names, "--template", "file")["jobs"]
        self.results["crowded"] = {
            "instances": existing,
            "cli_add_file": _summary(walls),
            "job_add_file": _summary([j["client_wall"] for j in jobs]),
        }
        self.agent("many", "remove", cli_names + job_names)

    def _profiling(self, key: str, size: int) -> Any:
        if self.profile and key == f"{max(self.sizes)}_file":
            return _PySpy(self.kit, key)
        return _Null()


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _PySpy:
    """``py-spy record --gil`` of masterd and noded for the duration of the block.

    ``--gil`` keeps only samples of the thread holding the GIL, i.e. Python code
    actually running: py-spy cannot tell idle threads inside the node's PID
    namespace, so without it every blocked select() would count. Output: raw
    collapsed stacks in bench/results/profiles/<daemon>-<key>.txt.
    """

    def __init__(self, kit: Testkit, key: str) -> None:
        self.kit = kit
        self.key = key
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> None:
        pyspy = Path(sys.executable).with_name("py-spy")
        outdir = RESULTS_DIR / "profiles"
        outdir.mkdir(parents=True, exist_ok=True)
        for pid, role in memory.daemon_pids(self.kit, NODE).items():
            out = outdir / f"{role}-{self.key}.txt"
            argv = [str(pyspy), "record", "--pid", str(pid), "--gil", "--rate", "250"]
            argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
            self.procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(1.0)  # py-spy attaches

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def compile_bytecode() -> bool:
    """Byte-compile corral's modules, as installing the package does; True if done.

    pip (and Debian packaging) write ``__pycache__/*.pyc`` at install time. A
    source checkout used with ``PYTHONDONTWRITEBYTECODE=1`` (this machine's
    shells set it, and the testkit passes the environment on to the nodes)
    never gets them, so every ``gnt-*`` process would recompile each corral
    module it imports: about 40-50 ms of a ~60 ms import. Python checks the
    source's mtime, so stale files are never used.
    """
    root = Path(__file__).resolve().parent.parent / "corral"
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root)], capture_output=True, check=False
    )
    return done.returncode == 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__)
    parser.add_argument("--dir", help="testkit directory (default: a new one under /tmp)")
    parser.add_argument("--quick", action="store_true", help="5 repetitions, batches of 20 and 50")
    parser.add_argument("--reps", type=int, help="repetitions of each CLI command and job")
    parser.add_argument("--sizes", help="comma-separated batch sizes (default 20,200)")
    parser.add_argument("--profile", action="store_true", help="py-spy record masterd")
    parser.add_argument("--keep", action="store_true", help="leave the testkit up")
    parser.add_argument(
        "--output", default=str(RESULTS_DIR / "cluster.md"), help="markdown results file"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reps = args.reps or (5 if args.quick else 20)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or ([20, 50] if args.quick else [20, 200])
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="corral-bench-"))
    made_dir = not args.dir
    kit = Testkit(directory)
    bench = ClusterBench(kit, reps, sizes, args.profile)
    step = "testkit up"
    started = time.monotonic()
    bench.results["bytecode"] = compile_bytecode()
    try:
        # enough memory and (sparse) disk for the biggest batch of 512M/1G instances
        kit.up(nodes=1, memory=max(65536, 600 * max(sizes) + 4096), disk_size="1T")
        for step, phase in (
            ("setup", bench.setup),
            ("baseline", bench.baseline),
            ("CLI commands", bench.cli_lifecycle),
            ("job latency", bench.job_latency),
            ("throughput", bench.throughput),
        ):
            print(f"cluster_bench: {step}...", flush=True)
            load_before = memory.loadavg()
            phase()
            bench.results["loadavg"][step] = [load_before, memory.loadavg()]
    except (BenchError, TestkitError) as err:
        print(f"cluster_bench: {step} failed: {err}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            kit.down()
            if made_dir:
                shutil.rmtree(directory, ignore_errors=True)
    bench.results["duration_s"] = time.monotonic() - started
    bench.results["quick"] = args.quick
    RESULTS_DIR.mkdir(exist_ok=True)
    out = Path(args.output)
    raw = out.with_suffix(".json")
    raw.write_text(json.dumps(bench.results, indent=1) + "\n")
    out.write_text(report.render(bench.results, raw.name))
    print(report.console_summary(bench.results))
    print(f"cluster_bench: wrote {out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
