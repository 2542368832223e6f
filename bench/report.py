"""Render bench/results/cluster.md from the raw results of `bench.cluster_bench`.

The Ganeti 3.0.2 figures are copied from the reference files named beside
each one (../shared/reference/ganeti/cli-outputs/, one node, fake hypervisor,
``-o noop+default``). Ratios compare with Ganeti's *best* figure of the
range (the comparison least favourable to corral). Hand-written findings in
``bench/results/cluster_notes.md`` are appended verbatim when present.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTES = Path(__file__).with_name("results") / "cluster_notes.md"
REF = "cli-outputs/"


@dataclass(frozen=True)
class Ref:
    """A Ganeti figure: text shown, best value (for the ratio), source file(s)."""

    text: str
    best: float | None
    source: str


GANETI: dict[str, Ref] = {
    "cli_add_file": Ref(
        "median 1.245-2.410 s",
        1.245,
        "per_op_timing_summary.txt (batch_seq20_file*.txt)",
    ),
    "cli_add_diskless": Ref(
        "median 1.267-1.857 s",
        1.267,
        "per_op_timing_summary.txt (batch_seq20_diskless*.txt)",
    ),
    "cli_start": Ref(
        "median 1.093-1.480 s", 1.093, "per_op_timing_summary.txt (lifecycle_timing_*.txt)"
    ),
    "cli_stop": Ref(
        "median 0.864-1.197 s", 0.864, "per_op_timing_summary.txt (lifecycle_timing_*.txt)"
    ),
    "cli_remove_file": Ref(
        "median 0.861-1.402 s", 0.861, "per_op_timing_summary.txt (batch_remove_seq20_file*)"
    ),
    "cli_remove_diskless": Ref(
        "median 1.304 s", 1.304, "per_op_timing_summary.txt (batch_remove_seq20_diskless.txt)"
    ),
    "job_add": Ref(
        "recv->end median 4.595 s, min 0.746 s",
        0.746,
        "job_durations_by_opcode.txt (INSTANCE_CREATE, 251 jobs)",
    ),
    "job_start": Ref(
        "recv->end median 0.940 s, min 0.670 s",
        0.670,
        "job_durations_by_opcode.txt (INSTANCE_STARTUP)",
    ),
    "job_stop": Ref(
        "recv->end median 0.702 s, min 0.490 s",
        0.490,
        "job_durations_by_opcode.txt (INSTANCE_SHUTDOWN)",
    ),
    "job_remove": Ref(
        "recv->end median 4.248 s, min 0.471 s",
        0.471,
        "job_durations_by_opcode.txt (INSTANCE_REMOVE)",
    ),
    "tput_add_file": Ref(
        "0.70 jobs/s (SubmitManyJobs); 0.61-0.95 (CLI --submit)",
        0.95,
        "luxi_submit_many_20_file.txt, job_timestamp_stats.txt (batch_submit20_file*)",
    ),
    "tput_add_diskless": Ref(
        "1.10 jobs/s (SubmitManyJobs); 0.65-0.79 (CLI --submit)",
        1.10,
        "luxi_submit_many_20_diskless.txt, job_timestamp_stats.txt (batch_submit20_diskless*)",
    ),
    "tput_remove_file": Ref(
        "1.19 jobs/s (SubmitManyJobs); 0.86-1.74 (CLI --submit)",
        1.74,
        "job_timestamp_stats.txt (luxi_submit_many_20_file_remove, batch_remove_submit20_file*)",
    ),
    "tput_remove_diskless": Ref(
        "1.63 jobs/s (SubmitManyJobs); 1.02 (CLI --submit)",
        1.63,
        "job_timestamp_stats.txt (luxi_submit_many_20_diskless_remove, batch_remove_submit20)",
    ),
    "tput_big": Ref(
        "not measured (20-job batches already hit out-of-node-memory)",
        None,
        "batch_submit20_diskless_FAILED_out-of-node-memory.txt",
    ),
    "mem_idle_pair": Ref(
        "131.7 MiB (noded 57.7 + luxid 42.5 + wconfd 31.6)",
        131.7,
        "daemon_memory_20_instances_idle.txt (sample 1; masterd's roles = luxid + wconfd)",
    ),
    "mem_idle_all": Ref(
        "196.2-214.7 MiB (6-7 daemons)",
        196.2,
        "daemon_memory_20_instances_fresh_restart.txt, daemon_memory_20_instances_idle.txt",
    ),
    "mem_load": Ref(
        "~215 MiB + ~57 MB per running job (one forked process per job)",
        None,
        "issue point 12; one process per job: ganeti/NOTES.md (job execution)",
    ),
}

TARGETS = {
    "cli_add_file": ("< 150 ms", 0.150, "max"),
    "cli_add_diskless": ("< 150 ms", 0.150, "max"),
    "job_add_file": ("< 50 ms", 0.050, "max"),
    "job_add_diskless": ("< 50 ms", 0.050, "max"),
    "tput_add": (">= 100 jobs/s", 100.0, "min"),
    "mem_idle_pair": ("< 80 MiB", 80.0, "max"),
}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def mib(kib: float) -> float:
    return kib / 1024.0


def _verdict(key: str, value: float | None) -> str:
    if key not in TARGETS:
        return "-"
    text, limit, kind = TARGETS[key]
    if value is None:
        return f"{text} (not measured)"
    met = value < limit if kind == "max" else value >= limit
    return f"{text}: **{'met' if met else 'MISSED'}**"


def _ratio_time(ref: Ref, value: float | None) -> str:
    if ref.best is None or not value:
        return "-"
    return f"{ref.best / value:.1f}x faster"


def _ratio_rate(ref: Ref, value: float | None) -> str:
    if ref.best is None or not value:
        return "-"
    return f"{value / ref.best:.0f}x more"


def _ratio_mem(ref: Ref, value: float | None) -> str:
    if ref.best is None or not value:
        return "-"
    return f"{ref.best / value:.1f}x less"


class _Table:
    def __init__(self) -> None:
        self.rows: list[str] = [
            "| metric | corral | Ganeti 3.0.2 | Ganeti source (" + REF + ") | target | ratio |",
            "|---|---|---|---|---|---|",
        ]

    def add(self, metric: str, corral: str, ref: Ref, target: str, ratio: str) -> None:
        cells = (metric, corral, ref.text, ref.source, target, ratio)
        self.rows.append("| " + " | ".join(cells) + " |")


def _stat(summary: dict[str, float] | None) -> str:
    if not summary:
        return "n/a"
    return f"median {ms(summary['median'])} (p90 {ms(summary['p90'])})"


def _main_table(res: dict[str, Any]) -> list[str]:
    cli, jobs, tput, mem = res["cli"], res["jobs"], res["throughput"], res["memory"]
    table = _Table()
    for template in ("file", "diskless"):
        s = cli.get(f"add_{template}")
        key = f"cli_add_{template}"
        table.add(
            f"`gnt-instance add -t {template}`, whole CLI",
            _stat(s),
            GANETI[key],
            _verdict(key, s and s["median"]),
            _ratio_time(GANETI[key], s and s["median"]),
        )
    for op in ("start", "stop"):
        s = cli.get(op)
        table.add(
            f"`gnt-instance {op}`, whole CLI",
            _stat(s),
            GANETI[f"cli_{op}"],
            "-",
            _ratio_time(GANETI[f"cli_{op}"], s and s["median"]),
        )
    for template in ("file", "diskless"):
        s = cli.get(f"remove_{template}")
        key = f"cli_remove_{template}"
        note = "" if cli.get(f"remove_{template}_all_ok", True) else " (exit 1, see failures)"
        table.add(
            f"`gnt-instance remove -f` ({template}), whole CLI",
            _stat(s) + note,
            GANETI[key],
            "-",
            _ratio_time(GANETI[key], s and s["median"]),
        )
    for template in ("file", "diskless"):
        j = jobs.get(f"add_{template}")
        client = j and j["client"]
        table.add(
            f"add job ({template}), submit to success",
            _stat(client) + (f"; recv->end {_stat(j['received_end'])}" if j else ""),
            GANETI["job_add"],
            _verdict(f"job_add_{template}", client and client["median"]),
            _ratio_time(GANETI["job_add"], client and client["median"]),
        )
    crowded = res.get("crowded")
    if crowded:
        n = crowded["instances"]
        s_cli, s_job = crowded["cli_add_file"], crowded["job_add_file"]
        table.add(
            f"`gnt-instance add -t file`, whole CLI, {n} instances running",
            _stat(s_cli),
            GANETI["cli_add_file"],
            _verdict("cli_add_file", s_cli["median"]),
            _ratio_time(GANETI["cli_add_file"], s_cli["median"]),
        )
        table.add(
            f"add job (file), submit to success, {n} instances running",
            _stat(s_job),
            GANETI["job_add"],
            _verdict("job_add_file", s_job["median"]),
            _ratio_time(GANETI["job_add"], s_job["median"]),
        )
    for op, ref in (("start", "job_start"), ("stop", "job_stop")):
        j = jobs.get(op)
        client = j and j["client"]
        table.add(
            f"{op} job, submit to success",
            _stat(client),
            GANETI[ref],
            "-",
            _ratio_time(GANETI[ref], client and client["median"]),
        )
    for key, entry in sorted(tput.items(), key=lambda kv: _tput_order(kv[0])):
        size, template = key.split("_")[0], key.split("_")[1]
        nostart = key.endswith("_nostart")
        add = entry["add"]
        rate = add.get("jobs_per_s")
        ref = GANETI[f"tput_add_{template}"] if size == "20" and not nostart else GANETI["tput_big"]
        label = f"{size} concurrent adds ({template}{', --no-start' if nostart else ''})"
        table.add(
            label,
            f"{rate:.1f} jobs/s ({add['success']}/{add['jobs']} ok)" if rate else "n/a",
            ref,
            _verdict("tput_add", rate),
            _ratio_rate(ref, rate),
        )
        rem = entry["remove"]
        rrate = rem.get("jobs_per_s")
        rref = GANETI[f"tput_remove_{template}"] if size == "20" else GANETI["tput_big"]
        table.add(
            f"{size} concurrent removes ({template})",
            f"{rrate:.1f} jobs/s ({rem['success']}/{rem['jobs']} ok)"
            if rrate
            else f"{rem.get('finished_jobs_per_s', 0):.1f} jobs/s but 0/{rem['jobs']} "
            "ended in success (see failures)",
            rref,
            "-",
            _ratio_rate(rref, rrate),
        )
    idle = mem.get("idle_after_init")
    if idle:
        pair = mib(idle["rss_kib"].get("masterd", 0) + idle["rss_kib"].get("noded", 0))
        table.add(
            "masterd + noded RSS, idle after init",
            f"{pair:.1f} MiB (masterd {mib(idle['rss_kib'].get('masterd', 0)):.1f} + "
            f"noded {mib(idle['rss_kib'].get('noded', 0)):.1f})",
            GANETI["mem_idle_pair"],
            _verdict("mem_idle_pair", pair),
            _ratio_mem(GANETI["mem_idle_pair"], pair),
        )
        table.add(
            "all corral daemons RSS, idle after init",
            f"{pair:.1f} MiB (2 daemons)",
            GANETI["mem_idle_all"],
            "-",
            _ratio_mem(GANETI["mem_idle_all"], pair),
        )
    labels = {
        "idle_with_cli_instances": "idle with {n} instances",
        "idle_with_load_instances": "idle with {n} instances",
        "after_all": "idle after the whole run ({n} instances left)",
    }
    for key, label in labels.items():
        snap = mem.get(key)
        if not snap:
            continue
        pair = mib(snap["rss_kib"].get("masterd", 0) + snap["rss_kib"].get("noded", 0))
        table.add(
            "masterd + noded RSS, " + label.format(n=snap["instances"]),
            f"{pair:.1f} MiB",
            GANETI["mem_idle_pair"],
            _verdict("mem_idle_pair", pair),
            _ratio_mem(GANETI["mem_idle_pair"], pair),
        )
    big = max(tput, key=_tput_order, default=None)
    if big:
        for key in [k for k in tput if k.split("_")[0] == big.split("_")[0]]:
            entry = tput[key]
            peak = mib(entry["memory_peak_daemons_kib"])
            conc = entry["add"].get("max_concurrency", 0)
            table.add(
                f"masterd + noded peak RSS, {key.replace('_', ' ')} adds",
                f"{peak:.1f} MiB, no process per job ({conc} jobs ran at once)",
                GANETI["mem_load"],
                "-",
                f"Ganeti at {conc} jobs: ~{215 + 57 * conc / 1.048576:.0f} MiB",
            )
    return table.rows


def _tput_order(key: str) -> tuple[int, int, str]:
    parts = key.split("_")
    return (int(parts[0]), 1 if key.endswith("_nostart") else 0, parts[1])


def _detail_tables(res: dict[str, Any]) -> list[str]:
    out = ["## Details", "", "### Whole CLI commands (host wall time of `Testkit.exec`)", ""]
    out += ["| command | n | median | p90 | mean | min | max |", "|---|---|---|---|---|---|---|"]
    labels = {
        "exec_true": "`true` (testkit exec overhead)",
        "python_start": "`python -c pass` (interpreter start in the node)",
        "instance_list": "`gnt-instance list` (CLI start + one query)",
        "add_file": "`gnt-instance add -t file -s 1G` (started)",
        "add_diskless": "`gnt-instance add -t diskless` (started)",
        "stop": "`gnt-instance stop`",
        "start": "`gnt-instance start`",
        "remove_file": "`gnt-instance remove -f` (file)",
        "remove_diskless": "`gnt-instance remove -f` (diskless)",
    }
    for key, label in labels.items():
        s = res["cli"].get(key)
        if s:
            out.append(
                f"| {label} | {s['n']} | {ms(s['median'])} | {ms(s['p90'])} | {ms(s['mean'])} "
                f"| {ms(s['min'])} | {ms(s['max'])} |"
            )
    out += ["", "### Jobs one at a time (local API from inside the node)", ""]
    out += [
        "| job | ok/n | submit to success median (p90) | received->end median (p90) "
        "| queue wait median |",
        "|---|---|---|---|---|",
    ]
    for key, j in res["jobs"].items():
        out.append(
            f"| {key} | {j['success']}/{j['n']} | {ms(j['client']['median'])} "
            f"({ms(j['client']['p90'])}) | {ms(j['received_end']['median'])} "
            f"({ms(j['received_end']['p90'])}) | {ms(j['queue_wait']['median'])} |"
        )
    out += ["", "### Batches submitted with one SubmitManyJobs call", ""]
    out += [
        "| batch | ok/n | first received -> last end | jobs/s | max running (with locks) "
        "| job latency median (p90) | queue wait median | run median (lock wait, locked) "
        "| submit call "
        "| CPU/job masterd, noded | machine busy (load before) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(res["throughput"], key=_tput_order):
        entry = res["throughput"][key]
        for phase in ("add", "remove"):
            b = entry[phase]
            if not b.get("success"):
                out.append(f"| {key} {phase} | 0/{b['jobs']} |" + " - |" * 9)
                continue
            submit = ms(entry["add_submit_call"]) if phase == "add" else "-"
            locks = (
                f" ({ms(b['lock_wait']['median'])}, {ms(b['exec']['median'])})"
                if "exec" in b
                else ""
            )
            conc = f" ({b['max_exec_concurrency']})" if "max_exec_concurrency" in b else ""
            cpu = entry.get("cpu_ms_per_job", {})
            cpu_text = (
                f"{cpu.get('masterd', 0):.0f} ms, {cpu.get('noded', 0):.0f} ms "
                f"({cpu.get('noded_children', 0):.0f} in children)"
                if phase == "add" and cpu
                else "-"
            )
            busy = (
                f"{100 * entry['machine_busy']:.0f}% of {res.get('cpus', '?')} CPUs "
                f"({entry['loadavg_before']:.1f})"
                if phase == "add" and "machine_busy" in entry
                else "-"
            )
            out.append(
                f"| {key} {phase} | {b['success']}/{b['jobs']} | {b['span']:.2f} s "
                f"| {b['jobs_per_s']:.1f} | {b['max_concurrency']}{conc} "
                f"| {ms(b['latency']['median'])} ({ms(b['latency']['p90'])}) "
                f"| {ms(b['queue_wait']['median'])} | {ms(b['run']['median'])}{locks} "
                f"| {submit} "
                f"| {cpu_text} | {busy} |"
            )
    out += ["", "### Memory (RSS from the host's /proc; MiB)", ""]
    out += [
        "| when | masterd | noded | masterd+noded | masterd PSS | noded PSS "
        "| fake VMs (count, total) | other processes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, m in res["memory"].items():
        rss, count, pss = m["rss_kib"], m["count"], m["daemon_pss_kib"]
        out.append(
            f"| {key.replace('_', ' ')} ({m['instances']} instances) "
            f"| {mib(rss.get('masterd', 0)):.1f} | {mib(rss.get('noded', 0)):.1f} "
            f"| {mib(rss.get('masterd', 0) + rss.get('noded', 0)):.1f} "
            f"| {mib(pss.get('masterd', 0)):.1f} | {mib(pss.get('noded', 0)):.1f} "
            f"| {count.get('fakevm', 0)}, {mib(rss.get('fakevm', 0)):.1f} "
            f"| {count.get('other', 0)}, {mib(rss.get('other', 0)):.1f} |"
        )
    for key in sorted(res["throughput"], key=_tput_order):
        entry = res["throughput"][key]
        peak = entry["memory_peak_kib"]
        out.append(
            f"| peak during {key.replace('_', ' ')} adds ({entry['memory_samples']} samples) "
            f"| {mib(peak.get('masterd', 0)):.1f} | {mib(peak.get('noded', 0)):.1f} "
            f"| {mib(entry['memory_peak_daemons_kib']):.1f} | - | - "
            f"| {entry['memory_peak_count'].get('fakevm', 0)}, "
            f"{mib(peak.get('fakevm', 0)):.1f} "
            f"| {entry['memory_peak_count'].get('other', 0)}, {mib(peak.get('other', 0)):.1f} |"
        )
    if res.get("loadavg"):
        out += ["", "Load average (1 min) before/after each phase: "]
        out[-1] += ", ".join(f"{step} {a:.1f}/{b:.1f}" for step, (a, b) in res["loadavg"].items())
    if res["failures"]:
        out += ["", "### Failures seen during the run", ""]
        for f in res["failures"]:
            out.append(f"* {f['step']} (x{f['count']}): {f['detail']}")
    return out


METHOD = """\
## Method

* `python -m bench.cluster_bench` (raw samples: [{raw}]({raw})); {quick}{reps} repetitions
  of every single command/job, batches of {sizes}; run took {duration:.0f} s.
* One testkit node (like Ganeti's single-node figures), cluster initialised with
  `--enabled-hypervisors=fake --enabled-disk-templates=file,diskless,drbd`.
* Same OS and command as Ganeti's runs: a `noop` OS (API 20) created by the bench under
  `/srv/ganeti/os/noop` whose scripts only print their environment (Ganeti's dummy OS did
  the same, os_create_script_env_inst1.txt), and Ganeti's exact command line
  `gnt-instance add -t file|diskless -o noop+default [-s 1G] -B minmem=256M,maxmem=512M
  --no-name-check --no-ip-check -n node1 NAME` (the instance is started, as in Ganeti's
  runs). One uncounted warm-up add first.
* Whole CLI = host wall time of `Testkit.exec` (nsenter into the node + the `gnt-*`
  process + its job); nothing is subtracted: the `true` row shows the exec overhead.
  corral's modules are byte-compiled first ({bytecode}), as installing the package does.
* Job latency = a client inside the node submits one job with the local API and long-polls
  `WaitForJobChange` like the CLI (submit to success), plus the job's own received->end.
* Throughput = N `OpInstanceCreate` jobs in one `SubmitManyJobs` call; jobs/s = successful
  jobs / (last end_ts - first received_ts), Ganeti's formula (job_timestamp_stats.txt).
* Memory = VmRSS (and Pss) of corral-masterd and corral-noded from the host's /proc, idle
  and sampled every 50 ms during each batch. Fake VMs are processes here (~3 MiB each);
  Ganeti's fake hypervisor has none, so they are listed apart.
* Ratios use Ganeti's best figure of each range. Ganeti's machine ran other tenants (its
  loadavg 1.5-5 is noted in the files); this one is a shared 2-core VM too.
"""


def render(res: dict[str, Any], raw_name: str) -> str:
    lines = [
        "# corral cluster benchmark vs Ganeti 3.0.2",
        "",
        f"Generated by `bench/cluster_bench.py` on {time.strftime('%Y-%m-%d %H:%M')}"
        + (" (**--quick run**)" if res.get("quick") else "")
        + ". Fake hypervisor, one node.",
        "",
    ]
    lines += _main_table(res)
    lines.append("")
    lines += METHOD.format(
        raw=raw_name,
        quick="quick run, " if res.get("quick") else "",
        reps=res["reps"],
        sizes=" and ".join(str(s) for s in res["sizes"]),
        duration=res.get("duration_s", 0.0),
        bytecode={True: "`compileall`", False: "`compileall` failed", None: "not done"}[
            res.get("bytecode")
        ],
    ).splitlines()
    lines.append("")
    lines += _detail_tables(res)
    if NOTES.exists():
        lines += ["", NOTES.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def console_summary(res: dict[str, Any]) -> str:
    cli, jobs, mem = res["cli"], res["jobs"], res["memory"]
    out = []
    for key in ("exec_true", "add_file", "add_diskless", "start", "stop"):
        if key in cli:
            out.append(f"cli {key:14s} {_stat(cli[key])}")
    for key, j in jobs.items():
        out.append(f"job {key:14s} {_stat(j['client'])}")
    for key in sorted(res["throughput"], key=_tput_order):
        rate = res["throughput"][key]["add"].get("jobs_per_s")
        out.append(f"tput {key:13s} {rate:.1f} jobs/s" if rate else f"tput {key}: failed")
    idle = mem.get("idle_after_init")
    if idle:
        pair = mib(idle["rss_kib"].get("masterd", 0) + idle["rss_kib"].get("noded", 0))
        out.append(f"idle masterd+noded RSS {pair:.1f} MiB")
    return "\n".join(out)


def main() -> int:
    """``python -m bench.report``: re-render cluster.md from cluster.json (e.g. after
    editing cluster_notes.md) without running the benchmark again."""
    results_dir = NOTES.parent
    raw = results_dir / "cluster.json"
    res = json.loads(raw.read_text())
    (results_dir / "cluster.md").write_text(render(res, raw.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
