"""corral-hail front-end: output shape and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.cli import htools_hail

REQ = {
    "enabled_hypervisors": ["xen-pvm"], "cluster_tags": [],
    "nodegroups": {"u": {"name": "g", "alloc_policy": "preferred"}},
    "nodes": {
        f"n{i}": {"offline": False, "drained": False, "group": "u",
                  "ndparams": {"exclusive_storage": False, "spindle_count": 1},
                  "total_memory": 4096, "reserved_memory": 512, "free_memory": 3584,
                  "total_disk": 100000, "free_disk": 100000, "total_cpus": 4,
                  "reserved_cpus": 1, "free_spindles": 0}
        for i in range(3)
    },
    "instances": {},
    "request": {"type": "allocate", "name": "x", "memory": 128, "vcpus": 1,
                "disk_template": "plain", "disks": [{"size": 1024, "mode": "rw"}],
                "disk_space_total": 1024, "required_nodes": 1, "tags": [], "spindle_use": 1},
}  # fmt: skip


def test_allocate_prints_compact_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "req.json"
    f.write_text(json.dumps(REQ))
    assert htools_hail.main([str(f)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{"success":true,"info":"Request successful: Selected group: g')
    assert json.loads(out)["result"][0] in REQ["nodes"]


def test_restrict_allocation_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "req.json"
    f.write_text(json.dumps(REQ))
    assert htools_hail.main(["--restrict-allocation-to=n2", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == ["n2"]


def test_failure_answer_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = json.loads(json.dumps(REQ))
    req["request"]["memory"] = 10**6
    f = tmp_path / "req.json"
    f.write_text(json.dumps(req))
    assert htools_hail.main([str(f)]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert ans["success"] is False and "FailMem" in ans["info"]


def test_unreadable_or_bad_json_exit_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert htools_hail.main([str(tmp_path / "missing.json")]) == 1
    f = tmp_path / "bad.json"
    f.write_text("{nope")
    assert htools_hail.main([str(f)]) == 1
    assert "invalid JSON" in capsys.readouterr().err
