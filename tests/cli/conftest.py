"""Shared fixtures for the gnt-* CLI tests: reference outputs, UTC time, a fake client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


def reference_lines(name: str) -> list[str]:
    """A Ganeti 3.0.2 output without the '# $ command' / '# exit status' lines."""
    lines = (DATA / name).read_text().splitlines()
    return [line for line in lines if not line.startswith("# ")]


def load_json(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Ganeti's outputs were captured in UTC; format times the same way."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class FakeClient:
    """Records submitted jobs and answers queries from canned data.

    ``job_results`` maps job ids to (status, opstatus, opresult, log lines);
    jobs get ids 100, 101, ...; unknown jobs succeed with a None result.
    """

    def __init__(self) -> None:
        self.jobs: list[list[Any]] = []
        self.next_id = 100
        self.job_results: dict[int, tuple[str, list[str], list[Any], list[str]]] = {}
        self.queries: list[tuple[str, list[str], Any]] = []
        self.query_data: dict[str, list[dict[str, Any]]] = {}
        self.cluster_info: dict[str, Any] = {}
        self.config_values: dict[str, Any] = {}
        self.tags: dict[tuple[str, str | None], list[str]] = {}
        #: per resource: field name -> (title, kind)
        self.field_defs: dict[str, dict[str, tuple[str, str]]] = {}

    # jobs
    def submit_job(self, ops: list[Any]) -> int:
        self.jobs.append(list(ops))
        job_id = self.next_id
        self.next_id += 1
        return job_id

    def submit_many_jobs(self, jobs: list[list[Any]]) -> list[tuple[bool, int]]:
        return [(True, self.submit_job(ops)) for ops in jobs]

    def wait_for_job_change(
        self,
        job_id: int,
        fields: list[str],
        prev_info: Any,
        prev_serial: int | None,
        timeout: float,
    ) -> Any:
        status, _opstatus, _opresult, log = self.job_results.get(
            job_id, ("success", ["success"], [None], [])
        )
        entries = [
            [idx + 1, [1795587304 + idx, 0], "message", text]
            for idx, text in enumerate(log)
            if idx + 1 > (prev_serial or 0)
        ]
        return ([status], entries)

    def query_jobs(self, job_ids: list[int], fields: list[str]) -> list[list[Any]]:
        rows = []
        for job_id in job_ids:
            status, opstatus, opresult, _log = self.job_results.get(
                job_id, ("success", ["success"], [None], [])
            )
            rows.append([status, opstatus, opresult])
        return rows

    # queries
    def query(self, what: str, fields: list[str], qfilter: Any) -> dict[str, Any]:
        self.queries.append((what, fields, qfilter))
        names = None
        if qfilter:
            names = {cond[2] for cond in qfilter[1:]}
        data = []
        for item in self.query_data.get(what, []):
            if names is not None and item.get("name") not in names:
                continue
            row = []
            for f in fields:
                if f in self.field_defs.get(what, {}) or f in item:
                    row.append((0, item[f]) if f in item else (2, None))
                else:
                    row.append((1, None))
            data.append(row)
        return {"fields": [self._fdef(what, f) for f in fields], "data": data}

    def _fdef(self, what: str, name: str) -> dict[str, str]:
        title, kind = self.field_defs.get(what, {}).get(name, (name, "other"))
        if what in self.field_defs and name not in self.field_defs[what]:
            kind = "unknown"
        return {"name": name, "title": title, "kind": kind, "doc": f"The {name} field"}

    def query_fields(self, what: str, fields: list[str] | None) -> dict[str, Any]:
        names = fields or sorted(self.field_defs.get(what, {}))
        return {"fields": [self._fdef(what, f) for f in names]}

    def query_cluster_info(self) -> dict[str, Any]:
        return self.cluster_info

    def query_config_values(self, names: list[str]) -> list[Any]:
        return [self.config_values.get(name) for name in names]

    def set_drain_flag(self, drain: bool) -> None:
        self.config_values["drain_flag"] = drain

    def set_watcher_pause(self, until: float | None) -> None:
        self.config_values["watcher_pause"] = until

    def query_tags(self, kind: str, name: str | None) -> list[str]:
        return self.tags.get((kind, name), [])

    # helpers for assertions
    @property
    def ops(self) -> list[Any]:
        return [op for job in self.jobs for op in job]


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()
