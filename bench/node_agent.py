"""Job-level measurements, run *inside* a testkit node by `bench.cluster_bench`.

Started as ``python /path/to/bench/node_agent.py COMMAND ...`` through
``Testkit.exec``; talks to the local masterd with `corral.api.client.Client`
(the same client the CLI uses) and prints one JSON document on stdout. Job
timestamps come from the jobs themselves (``received_ts``/``start_ts``/
``end_ts``, as in Ganeti's ``gnt-job list``, plus ``opexec``: locks acquired);
client walls use this process's clock, from just before the submit call to the
moment the final status is seen.

Commands:

* ``seq  --kind add|startup|shutdown|remove --names a,b,c [opts]``: one job at a
  time, waiting for each (job latency, submit to success);
* ``many --kind ... --names ...``: every job in one ``SubmitManyJobs`` call,
  then wait for all (throughput).

Exit code 0 even when jobs fail: failures are reported per job (``status``),
the caller decides.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from corral import constants as C
from corral import opcodes
from corral.api.client import Client

FIELDS = ["id", "status", "received_ts", "start_ts", "end_ts", "opexec", "opresult"]


def _ts(value: Any) -> float | None:
    if not value:
        return None
    return float(value[0]) + float(value[1]) / 1e6


def build_op(kind: str, name: str, args: argparse.Namespace) -> opcodes.OpCode:
    """The opcode a ``gnt-instance add/start/stop/remove`` of `name` submits."""
    if kind == "add":
        disks = [{"size": args.disk_size, "mode": "rw"}] if args.template != "diskless" else []
        return opcodes.OpInstanceCreate(
            instance_name=name,
            disk_template=args.template,
            disks=disks,
            nics=[{}],
            os_type=args.os,
            beparams={"minmem": 256, "maxmem": 512},
            pnode=args.pnode,
            start=not args.no_start,
            ip_check=False,
            name_check=False,
        )
    if kind == "startup":
        return opcodes.OpInstanceStartup(instance_name=name)
    if kind == "shutdown":
        return opcodes.OpInstanceShutdown(instance_name=name)
    if kind == "remove":
        return opcodes.OpInstanceRemove(instance_name=name)
    raise SystemExit(f"unknown job kind {kind!r}")


def wait_job(client: Client, job_id: int) -> str:
    """Long-poll the job (like the CLI does) until it is finalized; its status."""
    prev_info: Any = None
    prev_serial = -1
    while True:
        change = client.wait_for_job_change(job_id, ["status"], prev_info, prev_serial, 30.0)
        if isinstance(change, str):
            continue
        info, entries = change
        for entry in entries or []:
            prev_serial = max(prev_serial, int(entry[0]))
        status = str(info[0])
        if status in C.JOBS_FINALIZED:
            return status
        prev_info = info


def job_rows(client: Client, job_ids: list[int]) -> list[dict[str, Any]]:
    rows = []
    for row in client.query_jobs(job_ids, FIELDS):
        jid, status, received, start, end, opexec, opresult = row
        entry: dict[str, Any] = {
            "id": jid,
            "status": status,
            "received": _ts(received),
            "start": _ts(start),
            # first opcode's exec timestamp: its locks are held from here on
            "exec": _ts(opexec[0]) if opexec else None,
            "end": _ts(end),
        }
        if status != C.JOB_STATUS_SUCCESS:
            entry["error"] = json.dumps(opresult)[:300]
        rows.append(entry)
    return rows


def run_seq(client: Client, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    jobs = []
    for name in names:
        op = build_op(args.kind, name, args)
        t0 = time.time()
        job_id = client.submit_job([op])
        t_submitted = time.time()
        wait_job(client, job_id)
        t1 = time.time()
        row = job_rows(client, [job_id])[0]
        row.update(name=name, client_wall=t1 - t0, submit_call=t_submitted - t0)
        jobs.append(row)
    return {"kind": args.kind, "mode": "seq", "jobs": jobs}


def run_many(client: Client, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    ops = [[build_op(args.kind, name, args)] for name in names]
    t0 = time.time()
    results = client.submit_many_jobs(ops)
    t_submitted = time.time()
    job_ids = []
    rejected = []
    for (ok, value), name in zip(results, names, strict=True):
        if ok:
            job_ids.append(int(value))
        else:
            rejected.append({"name": name, "error": str(value)[:300]})
    for job_id in job_ids:
        wait_job(client, job_id)
    t1 = time.time()
    return {
        "kind": args.kind,
        "mode": "many",
        "client_t0": t0,
        "submit_call": t_submitted - t0,
        "client_wall": t1 - t0,
        "rejected": rejected,
        "jobs": job_rows(client, job_ids) if job_ids else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_agent")
    parser.add_argument("mode", choices=["seq", "many"])
    parser.add_argument("--kind", required=True, choices=["add", "startup", "shutdown", "remove"])
    parser.add_argument("--names", required=True, help="comma-separated instance names")
    parser.add_argument("--template", default="file")
    parser.add_argument("--os", default="noop+default")
    parser.add_argument("--disk-size", type=int, default=1024, help="MiB")
    parser.add_argument("--pnode", default=None)
    parser.add_argument("--no-start", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n]
    with Client(timeout=120.0) as client:
        if args.mode == "seq":
            result = run_seq(client, args, names)
        else:
            result = run_many(client, args, names)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
