"""gnt-job and the shared CLI helpers, against Ganeti 3.0.2 outputs."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cli import common as cli
from corral.cli import gnt_job
from corral.jobs.query import JOB_QUERY_FIELDS

# --- a fake client over canned jobs ---------------------------------------------------------


def _job(job_id: int, status: str, summary: list[str], **kw: Any) -> dict[str, Any]:
    job = {
        "id": job_id,
        "status": status,
        "summary": summary,
        "priority": 0,
        "archived": False,
        "received_ts": None,
        "start_ts": None,
        "end_ts": None,
        "ops": [],
        "opresult": [],
        "opstatus": [],
        "oplog": [],
        "opstart": [],
        "opexec": [],
        "opend": [],
        "oppriority": [],
    }
    job.update(kw)
    return job


class JobClient:
    """Answers job queries like masterd does (filters evaluated by query_base)."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.canceled: list[int] = []
        self.changes: list[Any] = []
        self.queries: list[Any] = []

    def query(self, what: str, fields: list[str], qfilter: Any) -> dict[str, Any]:
        from corral.cmdlib.query_base import evaluate_filter

        assert what == "job"
        self.queries.append(qfilter)
        table = {f.name: f for f in JOB_QUERY_FIELDS}
        defs = [
            table[n].definition()
            if n in table
            else {"name": n, "title": n, "kind": "unknown", "doc": ""}
            for n in fields
        ]
        data = []
        for job in self.jobs:
            if qfilter is not None and not evaluate_filter(qfilter, job):
                continue
            data.append([[0, job[n]] if n in table else [1, None] for n in fields])
        return {"fields": defs, "data": data}

    def query_fields(self, what: str, fields: list[str] | None) -> dict[str, Any]:
        defs = sorted((f.definition() for f in JOB_QUERY_FIELDS), key=lambda d: d["name"])
        return {"fields": defs}

    def cancel_job(self, job_id: int) -> tuple[bool, str]:
        self.canceled.append(job_id)
        if job_id == 5:
            return False, f"Job {job_id} is no longer waiting in the queue"
        return True, f"Job {job_id} canceled"

    def wait_for_job_change(
        self, job_id: int, fields: list[str], prev: Any, serial: Any, timeout: float
    ) -> Any:
        return self.changes.pop(0)

    def query_jobs(self, ids: list[int], fields: list[str]) -> list[Any]:
        job = next(j for j in self.jobs if j["id"] == ids[0])
        return [[job[f] for f in fields]]

    def archive_job(self, job_id: int) -> bool:
        return job_id != 9

    def auto_archive_jobs(self, age: float) -> tuple[int, int]:
        self.age = age
        return 3, 0


def run_cli(capsys: pytest.CaptureFixture[str], client: Any, *argv: str) -> tuple[int, str, str]:
    code = gnt_job.main(list(argv), client=client)
    out, err = capsys.readouterr()
    return code, out, err


# --- list ---------------------------------------------------------------------------------


LIST_JOBS = [
    _job(1, "success", ["CLUSTER_POST_INIT"]),
    _job(5, "success", ["CLUSTER_VERIFY_GROUP(b82e397a-dbc3-4186-b0e8-aaff75502174)"]),
    _job(
        66,
        "error",
        ["INSTANCE_CREATE(bd04)"],
        received_ts=[1795587431, 400234],
        start_ts=[1795587431, 637539],
        end_ts=[1795587431, 936465],
    ),
    _job(
        70,
        "error",
        ["INSTANCE_CREATE(bd08)"],
        received_ts=[1795587434, 515481],
        start_ts=[1795587434, 730208],
        end_ts=[1795587435, 28318],
    ),
    _job(
        332,
        "error",
        ["INSTANCE_REMOVE(doesnotexist)"],
        received_ts=[1795587883, 87717],
        start_ts=[1795587883, 289467],
        end_ts=[1795587883, 305399],
    ),
    _job(333, "success", ["TEST_DELAY"], archived=True),
]


def test_list_default_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, JobClient(LIST_JOBS), "list")
    assert code == 0
    assert out.splitlines() == [
        " ID Status  Summary",
        "  1 success CLUSTER_POST_INIT",
        "  5 success CLUSTER_VERIFY_GROUP(b82e397a-dbc3-4186-b0e8-aaff75502174)",
        " 66 error   INSTANCE_CREATE(bd04)",
        " 70 error   INSTANCE_CREATE(bd08)",
        "332 error   INSTANCE_REMOVE(doesnotexist)",
    ]


def test_list_with_fields_and_status_filter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        JobClient(LIST_JOBS),
        "list",
        "-o",
        "id,status,priority,received_ts,start_ts,end_ts,summary",
        "--error",
    )
    assert code == 0
    assert out.splitlines() == [
        " ID Status Priority Received             Start                End"
        "                  Summary",
        " 66 error         0 [1795587431, 400234] [1795587431, 637539] [1795587431, 936465]"
        " INSTANCE_CREATE(bd04)",
        " 70 error         0 [1795587434, 515481] [1795587434, 730208] [1795587435, 28318] "
        " INSTANCE_CREATE(bd08)",
        "332 error         0 [1795587883, 87717]  [1795587883, 289467] [1795587883, 305399]"
        " INSTANCE_REMOVE(doesnotexist)",
    ]


def test_list_options(capsys: pytest.CaptureFixture[str]) -> None:
    client = JobClient(LIST_JOBS)
    code, out, _ = run_cli(capsys, client, "list", "--no-headers", "--separator=|", "1", "5")
    assert out.splitlines() == [
        "1|success|CLUSTER_POST_INIT",
        "5|success|CLUSTER_VERIFY_GROUP(b82e397a-dbc3-4186-b0e8-aaff75502174)",
    ]
    code, out, _ = run_cli(capsys, client, "list", "--archived", "-o", "+priority", "333")
    assert out.splitlines() == [
        " ID Status  Summary    Priority Archived",
        "333 success TEST_DELAY        0 Y",
    ]
    code, out, err = run_cli(capsys, client, "list", "-o", "id,bogus", "1")
    assert code == C.EXIT_UNKNOWN_FIELD
    assert out.splitlines() == ["ID bogus", " 1 ??"]
    assert "Warning: Queried for unknown fields bogus" in err
    code, out, err = run_cli(capsys, client, "list", "x")
    assert code == 1
    assert "Invalid job ID passed" in err


def test_list_fields_matches_ganeti(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, JobClient([]), "list-fields")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Name        Type    Title         Description"
    assert lines[1] == "archived    Boolean Archived      Whether job is archived"
    assert lines[3] == "id          Number  ID            Job ID"
    assert lines[-1] == "summary     Custom  Summary       List of per-opcode summaries"
    assert len(lines) == 17


# --- info ---------------------------------------------------------------------------------

REMOVE_OP = {
    "OP_ID": "OP_INSTANCE_REMOVE",
    "comment": None,
    "debug_level": 0,
    "depends": None,
    "dry_run": False,
    "ignore_failures": False,
    "instance_name": "tmprm",
    "priority": 0,
    "reason": [
        ["gnt:client:gnt-instance", "remove", 1795587882162027776],
        ["gnt:opcode:instance_remove", "job=331;index=0", 1795587882163689000],
    ],
    "shutdown_timeout": 120,
    "nics": [{}],
    "beparams": {"minmem": 256, "maxmem": 512},
    "disks": [],
}

EXPECTED_INFO = """\
- Job ID: 331
  Status: success
  Received:         2026-11-25 06:24:42.163689
  Processing start: 2026-11-25 06:24:42.388384 (delta 0.224695s)
  Processing end:   2026-11-25 06:24:42.810548 (delta 0.422164s)
  Total processing time: 0.646859 seconds
  Opcodes:~
    - Opcode: OP_INSTANCE_REMOVE
      Status: success
      Processing start: 2026-11-25 06:24:42.388384
      Execution start:  2026-11-25 06:24:42.406111
      Processing end:   2026-11-25 06:24:42.810537
      Input fields:~
        OP_ID: OP_INSTANCE_REMOVE
        beparams:~
          maxmem: 512
          minmem: 256
        comment: None
        debug_level: 0
        depends: None
        disks:~
        dry_run: False
        ignore_failures: False
        instance_name: tmprm
        nics:~
          -~
        priority: 0
        reason:~
          - - gnt:client:gnt-instance
            - remove
            - 1795587882162027776
          - - gnt:opcode:instance_remove
            - job=331;index=0
            - 1795587882163689000
        shutdown_timeout: 120
      Result:~
        - node1.example.test
      Execution log:~
        - Time: 2026-11-25 06:15:04.431450
          Content: [1, message, * disk 0, size 1.0G]
        - Time: 2026-11-25 06:15:04.648476
          Content: [2, message,  - INFO: Waiting for instance inst1 to sync disks]
- Job ID 999 not found
- Job ID: 332
  Status: queued
  Received:         2026-11-25 06:24:42.163689
  Processing start: unknown (None)
  Processing end:   unknown (None)
  Total processing time: N/A
  Opcodes:~
    - Opcode: OP_INSTANCE_REMOVE
      Status: queued
      Processing start: N/A
      Execution start:  N/A
      Processing end:   N/A
      Input fields:~
        OP_ID: OP_INSTANCE_REMOVE
      Result: None
      Execution log:~
""".replace("~", " ")  # "~" marks Ganeti's trailing spaces


def test_info_matches_ganeti_layout(capsys: pytest.CaptureFixture[str]) -> None:
    done = _job(
        331,
        "success",
        ["INSTANCE_REMOVE(tmprm)"],
        ops=[REMOVE_OP],
        opresult=[["node1.example.test"]],
        opstatus=["success"],
        oplog=[
            [
                [1, [1795587304, 431450], "message", "* disk 0, size 1.0G"],
                [
                    2,
                    [1795587304, 648476],
                    "message",
                    " - INFO: Waiting for instance inst1 to sync disks",
                ],
            ]
        ],
        opstart=[[1795587882, 388384]],
        opexec=[[1795587882, 406111]],
        opend=[[1795587882, 810537]],
        received_ts=[1795587882, 163689],
        start_ts=[1795587882, 388384],
        end_ts=[1795587882, 810548],
    )
    queued = _job(
        332,
        "queued",
        ["INSTANCE_REMOVE(x)"],
        ops=[{"OP_ID": "OP_INSTANCE_REMOVE"}],
        opresult=[None],
        opstatus=["queued"],
        oplog=[[]],
        opstart=[None],
        opexec=[None],
        opend=[None],
        received_ts=[1795587882, 163689],
    )
    code, out, _ = run_cli(capsys, JobClient([done, queued]), "info", "331", "999", "332")
    assert code == 0
    assert out == EXPECTED_INFO


def test_generic_info_shapes() -> None:
    data = [[("a", 1), ("bb", {"x": [], "y": [[1, 2], {}]}), ("t", (1, "m", "x"))]]
    assert cli.format_generic_info(data) == [
        "- a: 1",
        "  bb: ",
        "    x: ",
        "    y: ",
        "      - - 1",
        "        - 2",
        "      - ",
        "  t: [1, m, x]",
    ]


# --- watch / wait / cancel / archive ---------------------------------------------------------


def test_watch_prints_header_and_log(capsys: pytest.CaptureFixture[str]) -> None:
    client = JobClient([_job(747, "success", [], opstatus=["success"], opresult=[None])])
    client.changes = [
        (["running"], [[1, [1795588797, 500000], "message", "* rebooting"]]),
        "nochange",
        (["success"], []),
    ]
    code, out, _ = run_cli(capsys, client, "watch", "747")
    assert code == 0
    assert out.splitlines() == [
        "Output from job 747 follows",
        "---------------------------",
        "Wed Nov 25 06:39:57 2026 * rebooting",
    ]


def test_wait_is_silent_and_reports_failure(capsys: pytest.CaptureFixture[str]) -> None:
    failed = _job(
        8,
        "error",
        [],
        opstatus=["error"],
        opresult=[["OpPrereqError", ["Instance 'x' not known", "unknown_entity"]]],
    )
    client = JobClient([failed])
    client.changes = [(["running"], [[1, [0, 0], "message", "noise"]]), (["error"], [])]
    code, out, err = run_cli(capsys, client, "wait", "8")
    assert code == 1
    assert out == ""
    assert err == (
        "Job 8 failed: Failure: prerequisites not met for this operation:\n"
        "error type: unknown_entity, error details:\nInstance 'x' not known\n"
    )


def test_cancel(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [_job(4, "queued", ["TEST_DELAY"]), _job(5, "running", ["TEST_DELAY"])]
    client = JobClient(jobs)
    code, out, _ = run_cli(capsys, client, "cancel", "4")
    assert (code, out) == (0, "Job 4 canceled\n")
    code, out, _ = run_cli(capsys, client, "cancel", "4", "5")
    assert code == 1
    assert out.splitlines() == ["Job 4 canceled", "Job 5 is no longer waiting in the queue"]
    code, _, err = run_cli(capsys, client, "cancel")
    assert code == 1 and "Either a status filter or job ID(s)" in err
    # by status: confirmation needed; no terminal means "no"
    monkeypatch.setattr(cli, "ask_user", lambda q: False)
    code, out, _ = run_cli(capsys, client, "cancel", "--queued")
    assert code == C.EXIT_CONFIRMATION
    assert out.splitlines() == ["ID Status Summary", " 4 queued TEST_DELAY"]
    client.canceled.clear()
    code, out, _ = run_cli(capsys, client, "cancel", "--queued", "-f")
    assert (code, client.canceled) == (0, [4])
    code, _, err = run_cli(capsys, client, "cancel", "--error", "-f")
    assert code == 1 and "No jobs with the requested status have been found" in err


def test_archive_and_autoarchive(capsys: pytest.CaptureFixture[str]) -> None:
    client = JobClient([])
    code, _, err = run_cli(capsys, client, "archive", "3", "9")
    assert code == 1 and err == "Failed to archive job with ID '9'\n"
    code, out, _ = run_cli(capsys, client, "autoarchive", "2h")
    assert (code, out, client.age) == (0, "Archived 3 jobs, 0 unchecked left\n", 7200)
    run_cli(capsys, client, "autoarchive", "all")
    assert client.age == -1


# --- generic_main and helpers ------------------------------------------------------------------


def test_main_usage_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys,
        JobClient([]),
    )
    assert code == 1 and "usage: gnt-job {command}" in err
    code, out, _ = run_cli(capsys, JobClient([]), "--help")
    assert code == 0 and "Show detailed information about jobs" in out
    code, out, _ = run_cli(capsys, JobClient([]), "info", "--help")
    assert code == 0 and "gnt-job info <job-id> ..." in out
    code, _, err = run_cli(capsys, JobClient([]), "frobnicate")
    assert code == 1 and "invalid choice" in err
    code, _, err = run_cli(capsys, JobClient([]), "watch")
    assert code == 1 and "required" in err

    class Broken:
        def query(self, *args: Any) -> Any:
            raise errors.NoMasterError("x")

    code, _, err = run_cli(capsys, Broken(), "list")
    assert (code, err) == (
        1,
        "Cannot communicate with the master daemon.\n"
        "Is it running and listening for connections?\n",
    )

    class Interrupted:
        def query(self, *args: Any) -> Any:
            raise KeyboardInterrupt

    code, _, err = run_cli(capsys, Interrupted(), "list")
    assert code == 1 and err.startswith("Aborted.")


def test_format_error_wording() -> None:
    assert cli.format_error(
        errors.OpPrereqError("Instance 'x' is already in the cluster", errors.ECODE_EXISTS)
    ) == (
        1,
        "Failure: prerequisites not met for this operation:\n"
        "error type: already_exists, error details:\n"
        "Instance 'x' is already in the cluster",
    )
    assert cli.format_error(errors.OpPrereqError("no code"))[1].endswith("operation:\nno code")
    assert cli.format_error(errors.OpExecError("boom")) == (
        1,
        "Failure: command execution error:\nboom",
    )
    assert cli.format_error(cli.JobSubmitted(5)) == (0, "JobID: 5")
    assert cli.format_error(ValueError("x")) == (1, "Unhandled exception: x")


def test_parse_fields_and_table() -> None:
    assert cli.parse_fields(None, ["a", "b"]) == ["a", "b"]
    assert cli.parse_fields("+c,d", ["a"]) == ["a", "c", "d"]
    assert cli.parse_fields("c", ["a"]) == ["c"]
    assert cli.format_table([["1", "xx", "5"]], ["A", "Bee", "N"], [True, False, True]) == [
        "A Bee N",
        "1 xx  5",
    ]


def test_unit_cells_and_special_statuses() -> None:
    response = {
        "fields": [
            {"name": "n", "title": "Node", "kind": "text"},
            {"name": "m", "title": "MFree", "kind": "unit"},
            {"name": "o", "title": "Up", "kind": "bool"},
        ],
        "data": [
            [[0, "node1"], [0, 141210], [0, True]],
            [[0, "node2"], [4, None], [2, None]],
            [[0, "node3"], [3, None], [0, False]],
        ],
    }
    code, lines = cli.format_query_result(response)
    assert (code, lines) == (
        0,
        ["Node   MFree Up", "node1 137.9G Y", "node2      * ?", "node3      - N"],
    )
    _, lines = cli.format_query_result(response, verbose=True, units="m", header=False)
    assert lines == ["node1    141210 Y", "node2 (offline) (nodata)", "node3 (unavail) N"]


def test_submit_or_wait(capsys: pytest.CaptureFixture[str]) -> None:
    class Submit:
        def __init__(self) -> None:
            self.ops: list[Any] = []
            self.changes: list[Any] = [
                (["running"], [[3, [1795587304, 0], "message", "* starting"]]),
                (["success"], []),
            ]

        def submit_job(self, ops: list[Any]) -> int:
            self.ops = ops
            return 12

        def wait_for_job_change(self, *args: Any) -> Any:
            return self.changes.pop(0)

        def query_jobs(self, ids: list[int], fields: list[str]) -> list[Any]:
            return [["success", ["success"], [{"jobs": [[True, 13]]}]]]

    import argparse

    client = Submit()
    ops = [opcodes.OpTestDelay()]
    with pytest.raises(cli.JobSubmitted) as info:
        cli.submit_or_wait(ops, argparse.Namespace(submit_only=True, dry_run=True), client)
    assert info.value.job_id == 12 and client.ops[0].dry_run
    results = cli.submit_or_wait(ops, argparse.Namespace(), client)
    assert results == [{"jobs": [[True, 13]]}]
    assert capsys.readouterr().out == "Wed Nov 25 06:15:04 2026 * starting\n"


def test_ask_user_without_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def no_tty(*args: Any, **kw: Any) -> Any:
        raise OSError("no tty")

    monkeypatch.setattr(builtins, "open", no_tty)
    assert cli.ask_user("Really?") is False


# --- against a real master ---------------------------------------------------------------------


def test_gnt_job_against_a_real_master(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from corral.api.client import Client
    from tests.api.test_api import master

    async def scenario() -> list[tuple[int, str, str]]:
        async with master(tmp_path) as (m, paths, _rpc):
            client = Client(paths.master_socket)
            jid = await asyncio.to_thread(
                client.submit_job, [opcodes.OpTestDelay(repeat=1, duration=0)]
            )
            assert m.executor is not None
            await m.executor.wait_idle()
            outputs = []
            for argv in (["list"], ["watch", str(jid)], ["info", str(jid)]):
                buf_out, buf_err = io.StringIO(), io.StringIO()

                def call(
                    argv: list[str] = argv, out: io.StringIO = buf_out, err: io.StringIO = buf_err
                ) -> int:
                    import contextlib

                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                        return gnt_job.main(argv, client=client)

                code = await asyncio.to_thread(call)
                outputs.append((code, buf_out.getvalue(), buf_err.getvalue()))
            client.close()
            return outputs

    (c1, list_out, _), (c2, watch_out, _), (c3, info_out, _) = asyncio.run(scenario())
    assert (c1, c2, c3) == (0, 0, 0)
    assert list_out.splitlines() == ["ID Status  Summary", " 1 success TEST_DELAY"]
    assert watch_out.splitlines()[2].endswith(" - INFO: Test delay iteration 0/0")
    assert "    - Opcode: OP_TEST_DELAY" in info_out.splitlines()
    assert "        OP_ID: OP_TEST_DELAY" in info_out.splitlines()


def test_one_argument_too_many_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # options may come between arguments, but a fixed-count command keeps its count
    code, _out, err = run_cli(capsys, None, "watch", "5", "6")
    assert code == 1
    assert "unrecognized arguments: 6" in err
