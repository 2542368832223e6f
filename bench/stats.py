"""Small statistics over timing samples (seconds) and job timestamp sets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p90: float
    mean: float
    minimum: float
    maximum: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "median": self.median,
            "p90": self.p90,
            "mean": self.mean,
            "min": self.minimum,
            "max": self.maximum,
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 20 samples is the 18th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no samples")
    return Summary(
        n=len(values),
        median=statistics.median(values),
        p90=percentile(values, 0.9),
        mean=statistics.fmean(values),
        minimum=min(values),
        maximum=max(values),
    )


def max_concurrency(jobs: Sequence[dict[str, Any]]) -> int:
    """Most jobs running (start..end) at the same instant."""
    events: list[tuple[float, int]] = []
    for job in jobs:
        if job.get("start") is not None and job.get("end") is not None:
            events.append((job["start"], 1))
            events.append((job["end"], -1))
    events.sort(key=lambda e: (e[0], e[1]))
    running = best = 0
    for _, delta in events:
        running += delta
        best = max(best, running)
    return best


def batch_figures(jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ganeti's job_timestamp_stats figures for one batch of jobs.

    jobs/s = jobs / (last end - first received), over successful jobs only
    (a failed job is not a created instance); queue wait = start - received,
    run = end - start.
    """
    ok = [j for j in jobs if j.get("status") == "success"]
    result: dict[str, Any] = {"jobs": len(jobs), "success": len(ok)}
    ended = [j for j in jobs if j.get("end") is not None and j.get("received") is not None]
    if ended:  # every finished job, failed ones too (to time a batch that failed late)
        span_all = max(j["end"] for j in ended) - min(j["received"] for j in ended)
        result["finished_jobs_per_s"] = len(ended) / span_all if span_all > 0 else math.inf
    if not ok:
        return result
    first = min(j["received"] for j in ok)
    last = max(j["end"] for j in ok)
    span = last - first
    result.update(
        span=span,
        jobs_per_s=len(ok) / span if span > 0 else math.inf,
        run=summarize([j["end"] - j["start"] for j in ok]).as_dict(),
        queue_wait=summarize([j["start"] - j["received"] for j in ok]).as_dict(),
        latency=summarize([j["end"] - j["received"] for j in ok]).as_dict(),
        max_concurrency=max_concurrency(ok),
    )
    locked = [j for j in ok if j.get("exec") is not None]
    if locked:  # time waiting for locks, and with them held (the LU itself)
        result.update(
            lock_wait=summarize([j["exec"] - j["start"] for j in locked]).as_dict(),
            exec=summarize([j["end"] - j["exec"] for j in locked]).as_dict(),
            max_exec_concurrency=max_concurrency(
                [{"start": j["exec"], "end": j["end"]} for j in locked]
            ),
        )
    return result
