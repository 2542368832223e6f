"""hbal/hspace -L (live cluster through the local API) and hbal -X (moves as jobs).

The fake local API is fed from a Ganeti text-format cluster, translated the
way corral's master answers queries, so the live loader can be checked
against the text loader on the very same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cli import htools_hbal, htools_hspace
from corral.cli.htools_jobs import PlannedMove, job_sets, move_opcodes
from corral.cli.htools_live import LiveLoader
from corral.htools.moves import Move
from corral.htools.text import parse_text
from corral.htools.types import DISK_TEMPLATES, HtoolsError
from tests.cli.conftest import FakeClient

CORPUS = Path("/work/shared/reference/htools/corpus")

MIXED = (
    "default|uuid-a|preferred|gtag|\n"
    "other|uuid-b|last_resort||\n\n"
    "n1.example.com|4096|512|1536|100000|91872|4|M|uuid-a|1|rack:1|N|0|1|1.0\n"
    "n2.example.com|4096|512|3072|100000|95936|4|N|uuid-a|2||N|0|1|1.0\n"
    "n3.example.com|8192|512|7680|200000|200000|8|N|uuid-a|1||N|0|2|1.0\n"
    "n4.example.com|0|0|0|0|0|0|Y|uuid-a|1||N|0|0|1.0\n"
    "n5.example.com|4096|512|3584|100000|100000|4|N|uuid-b|1||N|0|1|1.0\n\n"
    "i1.example.com|1024|4128|2|running|Y|n1.example.com|n2.example.com|drbd|web|1|-|N\n"
    "i2.example.com|1024|4128|1|ADMIN_down|Y|n1.example.com|n2.example.com|drbd||1|-|N\n"
    "i3.example.com|512|0|1|running|N|n1.example.com||diskless||1|-|N\n"
    "i4.example.com|512|4000|1|running|Y|n1.example.com||plain||2|-|N\n"
    "i5.example.com|512|1024|1|ADMIN_offline|Y|n5.example.com||plain||1|-|N\n\n"
    "ctag1\n\n"
    "|128,1,1024,1,1,1|128,1,1024,1,1,1;8192,4,204800,4,4,8|drbd,plain,diskless|6.0|24.0\n"
    "default|128,1,1024,1,1,1|128,1,1024,1,1,1;8192,4,204800,4,4,8|drbd,plain,diskless|6.0|24.0\n"
)

# four drbd instances on n1:n2 of an empty three-node group
LOPSIDED = (
    "g|u|preferred||\n\n"
    "n1|4096|512|2560|100000|83488|4|M|u|1||N|0|1|1.0\n"
    "n2|4096|512|3584|100000|83488|4|N|u|1||N|0|1|1.0\n"
    "n3|4096|512|3584|100000|100000|4|N|u|1||N|0|1|1.0\n\n"
    "a1|256|4128|1|running|Y|n1|n2|drbd|\n"
    "a2|256|4128|1|running|Y|n1|n2|drbd|\n"
    "a3|256|4128|1|ADMIN_down|Y|n1|n2|drbd|\n"
    "a4|256|4128|1|running|Y|n1|n2|drbd|\n\n\n"
)


class Status:
    """A non-normal query result cell (Ganeti's RS_* other than 0)."""

    def __init__(self, code: int) -> None:
        self.code = code


class FakeApi(FakeClient):
    """The fake local API client, with per-cell statuses and a context manager."""

    def query(self, what: str, fields: list[str], qfilter: Any) -> dict[str, Any]:
        self.queries.append((what, fields, qfilter))
        data = []
        for item in self.query_data.get(what, []):
            row: list[tuple[int, Any]] = []
            for f in fields:
                value = item.get(f, Status(1))
                row.append((value.code, None) if isinstance(value, Status) else (0, value))
            data.append(row)
        return {"fields": [{"name": f} for f in fields], "data": data}

    def __enter__(self) -> FakeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _spec(text: str) -> dict[str, int]:
    keys = ("memory-size", "cpu-count", "disk-size", "disk-count", "nic-count", "spindle-use")
    return dict(zip(keys, (int(x) for x in text.split(",")), strict=True))


def _policy(fields: list[str]) -> dict[str, Any]:
    _, std, minmax, dts, vr, sr = fields
    specs = minmax.split(";")
    return {
        "std": _spec(std),
        "minmax": [
            {"min": _spec(specs[i]), "max": _spec(specs[i + 1])} for i in range(0, len(specs), 2)
        ],
        "disk-templates": dts.split(",") if dts else [],
        "vcpu-ratio": float(vr),
        "spindle-ratio": float(sr),
    }


def api_from_text(text: str) -> FakeApi:
    """What corral's master would answer for the cluster a text file describes."""
    sections: list[list[str]] = [[]]
    for line in text.rstrip("\n").split("\n"):
        if line:
            sections[-1].append(line)
        else:
            sections.append([])
    while len(sections) < 5:
        sections.append([])
    api = FakeApi()
    policies = {ln.split("|")[0]: _policy(ln.split("|")) for ln in sections[4]}
    default = {
        "std": _spec("128,1,1024,1,1,1"),
        "minmax": [{"min": _spec("128,1,1024,1,1,1"), "max": _spec("32768,8,1048576,16,8,12")}],
        "disk-templates": list(DISK_TEMPLATES),
        "vcpu-ratio": 4.0,
        "spindle-ratio": 32.0,
    }
    master = ""
    api.query_data["group"] = [
        {
            "name": f[0],
            "uuid": f[1],
            "alloc_policy": f[2],
            "tags": f[3].split(",") if f[3] else [],
            "ipolicy": policies.get(f[0], default),
        }
        for f in (ln.split("|") for ln in sections[0])
    ]
    nodes = []
    for ln in sections[1]:
        f = ln.split("|")
        name, tm, nm, fm, td, fd, tc, role, gu, sp, tags, ex, fsp, ncpu, speed = f
        master = name if role == "M" else master
        off = role == "Y"

        def live(v: Any, off: bool = off) -> Any:
            return Status(4) if off else v

        nodes.append(
            {
                "name": name,
                "mtotal": live(int(tm)),
                "mnode": live(int(nm)),
                "mfree": live(int(fm)),
                "dtotal": live(int(td)),
                "dfree": live(int(fd)),
                "ctotal": live(int(tc)),
                "cnos": live(int(ncpu)),
                "offline": off,
                "drained": False,
                "vm_capable": True,
                # the text format keeps spindles and tags of offline (Y) nodes
                "ndp/spindle_count": int(sp),
                "group.uuid": gu,
                "tags": tags.split(",") if tags else [],
                "ndp/exclusive_storage": ex == "Y",
                "sptotal": live(0),
                "spfree": live(int(fsp)),
                "ndp/cpu_speed": float(speed),
            }
        )
    api.query_data["node"] = nodes
    insts = []
    for ln in sections[2]:
        f = ln.split("|") + ["1", "-", "N"][len(ln.split("|")) - 10 :]
        name, mem, dsk, vcpus, status, ab, pn, sn, dt, tags, su, sp, forth = f
        insts.append(
            {
                "name": name,
                "disk_usage": int(dsk),
                "be/memory": int(mem),
                "be/vcpus": int(vcpus),
                "status": status,
                "pnode": pn,
                "snodes": [sn] if sn else [],
                "tags": tags.split(",") if tags else [],
                "oper_ram": int(mem) if status == "running" else Status(3),
                "be/auto_balance": ab == "Y",
                "disk_template": dt,
                "be/spindle_use": int(su),
                "disk.sizes": [int(dsk)],
                "disk.spindles": [None if sp == "-" else int(sp)],
                "forthcoming": forth == "Y",
            }
        )
    api.query_data["instance"] = insts
    api.cluster_info = {
        "master": master,
        "tags": list(sections[3]),
        "ipolicy": policies.get("", default),
    }
    return api


def _same_model(text: str) -> tuple[Any, Any]:
    want = parse_text(text)
    got = LiveLoader(client=api_from_text(text)).load()
    assert got.names == want.names
    assert list(got.group) == list(want.group)
    assert got.master == want.master
    assert got.node_tags == want.node_tags
    assert got.cluster_tags == want.cluster_tags
    assert got.ipolicy == want.ipolicy
    assert [g.ipolicy for g in got.groups] == [g.ipolicy for g in want.groups]
    assert [(g.name, g.uuid, g.alloc_policy, g.tags) for g in got.groups] == [
        (g.name, g.uuid, g.alloc_policy, g.tags) for g in want.groups
    ]
    for key in want.nodes:
        np.testing.assert_array_equal(got.nodes[key], want.nodes[key], err_msg=key)
    for a, b in zip(got.instances, want.instances, strict=True):
        assert (a.name, a.mem, a.dsk, a.vcpus, a.status, a.auto_balance) == (
            b.name, b.mem, b.dsk, b.vcpus, b.status, b.auto_balance,
        )  # fmt: skip
        assert (a.pnode, a.snode, a.disk_template, a.tags, a.spindle_use, a.disks) == (
            b.pnode, b.snode, b.disk_template, b.tags, b.spindle_use, b.disks,
        )  # fmt: skip
        assert a.movable == b.movable
    assert f"{got.score():.8f}" == f"{want.score():.8f}"
    return got, want


def test_live_model_equals_text_model() -> None:
    got, _ = _same_model(MIXED)
    assert got.nodes["offline"].tolist() == [False, False, False, True, False]
    assert got.score() > 0


@pytest.mark.skipif(not (CORPUS / "office-40.data").exists(), reason="htools corpus missing")
def test_live_model_equals_text_model_on_corpus() -> None:
    _same_model((CORPUS / "office-40.data").read_text())


def test_non_live_nodes_are_offline_without_resources() -> None:
    api = api_from_text(MIXED)
    n2 = api.query_data["node"][1]
    n2["drained"] = True  # drained: offline for htools, its resources still read
    n3 = api.query_data["node"][2]
    n3["vm_capable"] = False
    for key in ("mtotal", "mnode", "mfree", "dtotal", "dfree", "ctotal", "cnos"):
        n3[key] = Status(2)  # never read for a non-vm-capable node
    c = LiveLoader(client=api).load()
    assert c.nodes["offline"].tolist() == [False, True, True, True, False]
    assert c.nodes["tmem"][1] == 4096 and c.nodes["tmem"][2] == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda api: api.query_data["node"][1].update(mtotal=Status(2)),
            "Node 'n2.example.com', error while reading attribute 'mtotal': No data for a field",
        ),
        (
            lambda api: api.query_data["instance"][0].update(pnode="nowhere"),
            "Unknown node 'nowhere' for instance i1.example.com",
        ),
        (
            lambda api: api.query_data["instance"][0].update(status="bogus"),
            "invalid instance status 'bogus'",
        ),
        (
            lambda api: api.query_data["node"][0].update(**{"group.uuid": "nope"}),
            "Unknown group 'nope' for node n1.example.com",
        ),
        (
            lambda api: api.query_data["instance"][1].update(disk_usage=-5),
            "error while reading attribute 'disk_usage': negative value -5",
        ),
    ],
)
def test_bad_live_data_is_a_clear_error(mutate: Any, message: str) -> None:
    api = api_from_text(MIXED)
    mutate(api)
    with pytest.raises(HtoolsError) as err:
        LiveLoader(client=api).load()
    assert str(err.value).startswith("failed to load data, aborting: ")
    assert message in str(err.value)


def test_unreachable_master_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HtoolsError, match=r"^failed to load data, aborting: Cannot communicate"):
        LiveLoader(str(tmp_path / "no-socket")).load()


# -- the front-ends ---------------------------------------------------------------------------


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make every local API client of the front-ends the given fake."""

    def use(api: FakeApi) -> FakeApi:
        monkeypatch.setattr("corral.api.client.Client", lambda *a, **k: api)
        return api

    return use


def _text_run(tmp_path: Path, main: Any, text: str, *args: str) -> str:
    f = tmp_path / "c.data"
    f.write_text(text)
    assert main(["-t", str(f), *args]) == 0
    return str(f)


def test_hbal_L_prints_the_same_solution_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live: Any
) -> None:
    _text_run(tmp_path, htools_hbal.main, LOPSIDED, "-C")
    want = capsys.readouterr().out
    api = live(api_from_text(LOPSIDED))
    assert htools_hbal.main(["-L", "-C"]) == 0
    got = capsys.readouterr().out
    assert got == want
    assert "Initial score: " in got and "Cluster score improved from " in got
    assert [q[0] for q in api.queries] == ["node", "instance", "group"]
    assert api.jobs == []  # -C alone submits nothing


def test_hspace_L_machine_readable_matches_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live: Any
) -> None:
    _text_run(tmp_path, htools_hspace.main, MIXED, "--machine-readable")
    want = capsys.readouterr().out
    live(api_from_text(MIXED))
    assert htools_hspace.main(["-L", "--machine-readable"]) == 0
    got = capsys.readouterr().out
    assert got == want
    assert "HTS_INI_INST_CNT=5\n" in got and "HTS_OK=1\n" in got


def _solution(out: str) -> list[str]:
    """The instance names of hbal's numbered move lines, in order."""
    return [ln.split()[1] for ln in out.splitlines() if ln[:6].strip().rstrip(".").isdigit()]


def test_hbal_X_submits_job_sets_in_order(capsys: pytest.CaptureFixture[str], live: Any) -> None:
    api = live(api_from_text(LOPSIDED))
    assert htools_hbal.main(["-L", "-X"]) == 0
    out = capsys.readouterr().out
    moved = _solution(out)
    assert len(moved) >= 2
    # one job per move, submitted in the order of the solution
    assert len(api.jobs) == len(moved)
    first_ops = [job[0] for job in api.jobs]
    assert [op.instance_name for op in first_ops] == moved
    for job in api.jobs:
        for op in job:
            assert isinstance(op, opcodes.OpInstanceMigrate | opcodes.OpInstanceReplaceDisks)
            if isinstance(op, opcodes.OpInstanceMigrate):
                assert op.allow_failover and not op.allow_runtime_changes
                assert op.ignore_hvversions and op.target_node is None
            else:
                assert op.mode == C.REPLACE_DISK_CHG and op.remote_node in ("n1", "n2", "n3")
    # every set printed, with its job ids, before the next one
    sets = [ln for ln in out.splitlines() if ln.startswith("Executing jobset for instances ")]
    got_ids = [ln for ln in out.splitlines() if ln.startswith("Got job IDs ")]
    assert len(sets) == len(got_ids) >= 1
    listed = [n for ln in sets for n in ln.split("instances ", 1)[1].split(", ")]
    assert listed == moved
    ids = [int(x) for ln in got_ids for x in ln.split("IDs ", 1)[1].split(", ")]
    assert ids == list(range(100, 100 + len(moved)))


def test_hbal_X_stops_at_the_first_failed_job_set(
    capsys: pytest.CaptureFixture[str], live: Any
) -> None:
    api = live(api_from_text(LOPSIDED))
    api.job_results[100] = (
        "error",
        ["error"],
        [errors.encode_exception(errors.OpExecError("Could not migrate"))],
        [],
    )
    assert htools_hbal.main(["-L", "-X"]) == 1
    cap = capsys.readouterr()
    assert cap.out.count("Executing jobset for instances ") == 1
    first_set = cap.out.split("Executing jobset for instances ", 1)[1].split("\n")[0]
    assert len(api.jobs) == len(first_set.split(", "))  # later sets never submitted
    assert "Job 100 (error): Could not migrate" in cap.err
    assert "Error: hbal: Not all jobs completed successfully: [(100,JOB_STATUS_ERROR)]" in cap.err
    assert cap.err.rstrip().endswith("Aborting.")


def test_hbal_X_needs_the_local_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.data"
    f.write_text(LOPSIDED)
    assert htools_hbal.main(["-t", str(f), "-X"]) == 1
    cap = capsys.readouterr()
    assert "Cluster score improved from " in cap.out  # the solution is computed first
    assert "Error: hbal: Execution of commands possible only on LUXI" in cap.err


# -- job sets and opcodes ---------------------------------------------------------------------


def _pm(name: str, move: Move, target: str, nodes: list[int]) -> PlannedMove:
    return PlannedMove(instance=name, move=move, target=target, nodes=nodes)


def test_job_sets_merge_moves_on_disjoint_nodes() -> None:
    a = _pm("a", Move.FAILOVER, "", [0, 1])
    b = _pm("b", Move.FAILOVER, "", [2, 3])
    c = _pm("c", Move.REPLACE_SECONDARY, "n5", [1, 4, 5])
    d = _pm("d", Move.FAILOVER, "", [6, 7])
    assert job_sets([a, b, c, d]) == [[a, b], [c, d]]
    assert job_sets([]) == []


@pytest.mark.parametrize(
    ("move", "kinds"),
    [
        (Move.FAILOVER, ["mig"]),
        (Move.REPLACE_SECONDARY, ["rep"]),
        (Move.REPLACE_PRIMARY, ["mig", "rep", "mig"]),
        (Move.REPLACE_AND_FAILOVER, ["rep", "mig"]),
        (Move.FAILOVER_AND_REPLACE, ["mig", "rep"]),
        (Move.FAILOVER_TO_ANY, ["any"]),
    ],
)
def test_move_opcodes_follow_ganeti(move: Move, kinds: list[str]) -> None:
    ops = move_opcodes(_pm("inst1", move, "node9", [0, 1, 2]))
    got = []
    for op in ops:
        assert op.instance_name == "inst1"
        if isinstance(op, opcodes.OpInstanceReplaceDisks):
            assert (op.mode, op.remote_node, op.disks) == (C.REPLACE_DISK_CHG, "node9", [])
            got.append("rep")
        else:
            assert isinstance(op, opcodes.OpInstanceMigrate) and op.allow_failover
            got.append("any" if op.target_node == "node9" else "mig")
    assert got == kinds


def test_forthcoming_instances_fail_over() -> None:
    pm = PlannedMove("f1", Move.FAILOVER, "", [0, 1], forthcoming=True)
    (op,) = move_opcodes(pm)
    assert isinstance(op, opcodes.OpInstanceFailover) and op.instance_name == "f1"


def test_print_commands_fail_over_stopped_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _text_run(tmp_path, htools_hbal.main, LOPSIDED, "-C")
    out = capsys.readouterr().out
    assert "    gnt-instance failover -f a3\n" in out  # ADMIN_down: Ganeti says failover
    assert "    gnt-instance migrate -f a1\n" in out
    assert "gnt-instance migrate -f a3" not in out
