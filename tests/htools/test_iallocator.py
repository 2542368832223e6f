"""run_request: answers, validity of placements, bad requests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.htools.ialloc import parse_request
from corral.htools.iallocator import Options, run_request
from tests.htools.conftest import gen_cluster, gen_request


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gen_cluster(tmp_path_factory.mktemp("o"), "office", 6, 3)


def _req(tmp: Path, data: Path, *extra: str) -> dict[str, Any]:
    return json.loads(gen_request(tmp, data, *extra).read_text())  # type: ignore[no-any-return]


def _check_valid(req: dict[str, Any], nodes: list[str], opts: Options) -> None:
    """The chosen nodes respect N+1, memory, disk and the vCPU ratio."""
    c, rq = parse_request(req, opts.static_kvm_node_memory)
    r = rq.data
    from corral.htools.allocate import place_new
    from corral.htools.ialloc import instance_from_dict
    from corral.htools.types import FailMode

    inst = instance_from_dict(r["name"], r, "req")
    idx = [c.node_index[n] for n in nodes]
    assert len(set(idx)) == len(idx)
    assert c.add_pri(idx[0], inst, strict=True) == FailMode.OK
    if len(idx) > 1:
        assert c.add_sec(idx[1], inst, idx[0], strict=True) == FailMode.OK
    del place_new


def test_allocate_drbd_and_plain(tmp_path: Path, office: Path) -> None:
    opts = Options(static_kvm_node_memory=512)
    for tmpl, n in (("drbd", 2), ("plain", 1)):
        req = _req(tmp_path, office, "--type", "allocate", "--mem", "128", "--vcpus", "1",
                   "--disk", "1024", "--template", tmpl)  # fmt: skip
        ans = run_request(req, opts)
        assert ans["success"], ans["info"]
        assert len(ans["result"]) == n
        assert ans["info"].startswith("Request successful: Selected group: default")
        _check_valid(req, ans["result"], opts)


def test_allocate_impossible_is_wellformed_failure(tmp_path: Path, office: Path) -> None:
    req = _req(tmp_path, office, "--type", "allocate", "--mem", "60000", "--template", "drbd")
    ans = run_request(req, Options(static_kvm_node_memory=512))
    assert ans == {
        "success": False,
        "info": "Request failed: Group default (preferred): No valid allocation solutions,"
        " failure reasons: FailMem: 30",
        "result": [],
    }


def test_kvm_static_memory_pitfall(tmp_path: Path, office: Path) -> None:
    req = _req(tmp_path, office, "--type", "allocate", "--mem", "128", "--template", "drbd")
    assert not run_request(req)["success"]  # default 4096 MiB > 2 GiB nodes, as in Ganeti
    assert run_request(req, Options(static_kvm_node_memory=512))["success"]


def test_relocate_and_evacuate(tmp_path: Path, office: Path) -> None:
    base = json.loads(gen_request(tmp_path, office, "--type", "allocate").read_text())
    drbd = next(n for n, i in base["instances"].items() if i["disk_template"] == "drbd")
    req = _req(tmp_path, office, "--type", "relocate", "--instance", drbd)
    ans = run_request(req, Options(static_kvm_node_memory=512))
    if ans["success"]:
        assert len(ans["result"]) == 1
        assert ans["result"][0] not in base["instances"][drbd]["nodes"]
    node = base["instances"][drbd]["nodes"][1]
    req = _req(tmp_path, office, "--type", "node-evacuate", "--node", node, "--evac-mode", "all")
    ans = run_request(req, Options(static_kvm_node_memory=512))
    assert ans["success"]
    moved, failed, jobs = ans["result"]
    assert len(moved) + len(failed) == len(req["request"]["instances"])
    for name, _grp, nodes in moved:
        assert node not in nodes, name
    assert len(jobs) == len(moved)


def test_multi_allocate(tmp_path: Path, office: Path) -> None:
    req = _req(tmp_path, office, "--type", "multi-allocate", "--count", "3", "--mem", "64",
               "--disk", "1024")  # fmt: skip
    ans = run_request(req, Options(static_kvm_node_memory=512))
    assert ans["success"]
    ok, failed = ans["result"]
    assert len(ok) + len(failed) == 3


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda r: r.pop("nodes"), "key 'nodes' not found"),
        (lambda r: r["request"].update(type="bogus"), "Invalid request type"),
        (lambda r: r["request"].update(memory=-5), "negative"),
        (lambda r: next(iter(r["instances"].values())).update(nodes=["ghost"]), "Unknown node"),
        (lambda r: r["request"].pop("vcpus"), "vcpus"),
        (lambda r: r["request"].update(required_nodes=1), "Required nodes mismatch"),
    ],
)
def test_bad_requests(tmp_path: Path, office: Path, mutate: Any, msg: str) -> None:
    req = _req(tmp_path, office, "--type", "allocate", "--template", "drbd")
    mutate(req)
    ans = run_request(req)
    assert ans["success"] is False and msg in ans["info"], ans["info"]
    assert ans["result"] == []


def test_not_a_dict() -> None:
    assert run_request([])["success"] is False  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch,
                                                                            max_size=3),
                    max_leaves=10))  # fmt: skip
def test_fuzz_garbage_requests(doc: Any) -> None:
    ans = run_request(doc)
    assert set(ans) == {"success", "info", "result"}


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["memory", "vcpus", "disk_space_total", "required_nodes"]),
    st.one_of(st.integers(-10, 10**7), st.text(max_size=4), st.none(), st.floats()),
)
def test_fuzz_request_fields(key: str, val: Any) -> None:
    doc = copy.deepcopy(_FUZZ_BASE)
    doc["request"][key] = val
    ans = run_request(doc, Options(static_kvm_node_memory=512))
    assert isinstance(ans["success"], bool) and isinstance(ans["info"], str)


_FUZZ_BASE: dict[str, Any] = {
    "enabled_hypervisors": ["kvm"], "cluster_tags": [],
    "nodegroups": {"u": {"name": "g", "alloc_policy": "preferred", "ipolicy": None}},
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
                "disk_template": "drbd", "disks": [{"size": 1024, "mode": "rw"}],
                "disk_space_total": 1152, "required_nodes": 2, "tags": [], "spindle_use": 1},
}  # fmt: skip


def test_fuzz_base_allocates() -> None:
    ans = run_request(copy.deepcopy(_FUZZ_BASE), Options(static_kvm_node_memory=512))
    assert ans["success"], ans["info"]
