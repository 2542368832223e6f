"""The benchmark's arithmetic and report rendering (no cluster needed)."""

from __future__ import annotations

import json
from typing import Any

from bench import report
from bench.stats import batch_figures, max_concurrency, percentile, summarize


def _job(received: float, start: float, end: float, status: str = "success") -> dict[str, Any]:
    return {"received": received, "start": start, "end": end, "status": status}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.9) == 18.0
    assert summarize(values).median == 10.5


def test_batch_figures_use_ganetis_formula() -> None:
    jobs = [_job(0.0, 0.0, 1.0), _job(0.0, 0.5, 2.0), _job(0.0, 2.0, 4.0, status="error")]
    figures = batch_figures(jobs)
    assert figures["success"] == 2
    assert figures["span"] == 2.0  # first received -> last *successful* end
    assert figures["jobs_per_s"] == 1.0
    assert figures["finished_jobs_per_s"] == 0.75
    assert figures["max_concurrency"] == 2


def test_max_concurrency_counts_overlaps_only() -> None:
    assert max_concurrency([_job(0, 0, 1), _job(0, 1, 2), _job(0, 2, 3)]) == 1


def _results() -> dict[str, Any]:
    s = summarize([0.1, 0.12, 0.2]).as_dict()
    jobs = [_job(0.0, 0.0, 0.05), _job(0.0, 0.01, 0.06)]
    batch = batch_figures(jobs)
    entry = {
        "add": batch,
        "remove": batch,
        "add_submit_call": 0.001,
        "add_client_wall": 0.1,
        "remove_client_wall": 0.1,
        "memory_peak_kib": {"masterd": 40960, "noded": 30720},
        "memory_peak_count": {"fakevm": 2},
        "memory_peak_daemons_kib": 71680,
        "memory_samples": 3,
        "cpu_ms_per_job": {"masterd": 5.0, "noded": 9.0, "noded_children": 4.0},
        "machine_busy": 0.5,
        "loadavg_before": 1.0,
    }
    job_fig = {"success": 3, "n": 3, "client": s, "received_end": s, "queue_wait": s}
    snap = {
        "instances": 0,
        "rss_kib": {"masterd": 40960, "noded": 30720},
        "count": {"masterd": 1, "noded": 1},
        "daemon_pss_kib": {},
        "daemon_hwm_kib": {},
    }
    return {
        "reps": 3,
        "sizes": [2],
        "cli": {"add_file": s, "add_diskless": s, "start": s, "stop": s, "exec_true": s},
        "jobs": {"add_file": job_fig, "start": job_fig},
        "throughput": {"2_file": entry},
        "memory": {"idle_after_init": snap},
        "failures": [{"step": "x", "detail": "boom", "count": 1}],
        "loadavg": {"setup": [1.0, 1.5]},
        "cpus": 2,
    }


def test_report_renders_table_with_ganeti_sources() -> None:
    res = json.loads(json.dumps(_results()))  # what cluster.json round-trips to
    text = report.render(res, "cluster.json")
    assert "| `gnt-instance add -t file`, whole CLI | median 120 ms (p90 200 ms)" in text
    assert "per_op_timing_summary.txt" in text
    assert "masterd + noded RSS, idle after init | 70.0 MiB" in text
    assert "< 80 MiB: **met**" in text
    assert "< 150 ms: **met**" in text
    assert "* x (x1): boom" in text
