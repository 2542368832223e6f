"""corral-hail front-end: output shape, exit codes, -p tables and -S state files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.cli import htools_hail
from tests.htools.conftest import GANETI_HAIL, gen_cluster, gen_request

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


def test_print_and_save_show_the_state_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from corral.htools.text import parse_text

    f = tmp_path / "req.json"
    f.write_text(json.dumps(REQ))
    save = tmp_path / "state"
    assert htools_hail.main(["-pname,pcnt", "-S", str(save), str(f)]) == 0
    cap = capsys.readouterr()
    node = json.loads(cap.out)["result"][0]
    err = cap.err.split("\n")
    assert err[1] == "Initial cluster status:" and err[2].split() == ["Name", "pcnt"]
    assert (
        f"The cluster state before iallocator run has been written to file '{save}.pre-ialloc'"
        in err
    )
    final = err[err.index("Final cluster status:") + 1 :]
    assert [ln.split() for ln in final[1:4]] == [
        [n, "1" if n == node else "0"] for n in ("n0", "n1", "n2")
    ]
    pre = parse_text((tmp_path / "state.pre-ialloc").read_text())
    post = parse_text((tmp_path / "state.post-ialloc").read_text())
    assert not pre.instances
    (x,) = post.instances
    assert x.name == "x" and post.names[x.pnode] == node


def test_save_to_an_unwritable_place_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "req.json"
    f.write_text(json.dumps(REQ))
    assert htools_hail.main(["-S", str(tmp_path / "no" / "such" / "dir"), str(f)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot write") and "Traceback" not in err


@pytest.mark.skipif(not GANETI_HAIL.exists(), reason="Ganeti's hail is not installed")
def test_print_and_save_like_ganetis(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = gen_cluster(tmp_path, "office", 8, 3)
    req = gen_request(tmp_path, data, "--mem", "128", "--disk", "1024", "--hypervisor", "xen-pvm")
    runs = {}
    for tool, argv in (("ganeti", [str(GANETI_HAIL)]),
                       ("corral", [sys.executable, "-m", "corral.cli.htools_hail"])):  # fmt: skip
        save = tmp_path / tool
        p = subprocess.run([*argv, "-p", "-S", str(save), str(req)], capture_output=True,
                           text=True, timeout=120, check=True)  # fmt: skip
        runs[tool] = (p.stdout, p.stderr.replace(str(save), "SAVE"),
                      (tmp_path / f"{tool}.pre-ialloc").read_text())  # fmt: skip
    assert json.loads(runs["corral"][0])["success"] is True
    assert runs["corral"] == runs["ganeti"]
