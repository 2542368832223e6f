"""`make demo`: bring up a 3-node testkit cluster and run the paper's scenario."""

from __future__ import annotations

import argparse
import contextlib
import sys

from corral.testkit.cluster import Testkit
from corral.testkit.scenario import StepResult, run_scenario


def _echo(res: StepResult) -> None:
    step = res.step
    if step.quiet:
        print(f"\n# ({step.title}: done by hand in the paper)", flush=True)
        return
    print(f"\n### {step.title}", flush=True)
    print(f"root@{step.node}:~# {' '.join(step.argv)}", flush=True)
    if step.answer:
        print(f"(answering {step.answer.strip()!r} at the prompt)", flush=True)
    text = res.stdout + res.stderr
    if text:
        print(text.rstrip("\n"), flush=True)
    if res.returncode not in step.allowed_codes:
        print(f"!!! exit code {res.returncode}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="/tmp/corral-demo")
    args = parser.parse_args(argv)
    kit = Testkit(args.dir)
    with contextlib.suppress(Exception):  # nothing left to clean up is fine
        kit.down()
    print(f"Starting a 3-node cluster in {args.dir} (namespaces node1..node3)...", flush=True)
    kit.up(nodes=3)
    results = run_scenario(kit, _echo)
    ok = all(r.returncode in r.step.allowed_codes for r in results)
    print("\n" + ("The scenario ran to the end." if ok else "The scenario FAILED (see above)."))
    master = results[-1].step.node if results else "node1"
    crashed = next((r.extra["crashed"] for r in results if "crashed" in r.extra), "node2")
    print(
        "\nKeep exploring the cluster (the master is " + master + "):\n"
        f"  .venv/bin/corral-testkit exec --dir {args.dir} {master} -- gnt-instance list\n"
        f"  .venv/bin/corral-testkit exec --dir {args.dir} {master} -- gnt-node list\n"
        f"  .venv/bin/corral-testkit exec --dir {args.dir} {master} -- hbal -L -p   # balance"
        " plan\n"
        f"  .venv/bin/corral-testkit exec --dir {args.dir} {master} -- hspace -L   # room left\n"
        f"  .venv/bin/corral-testkit exec --dir {args.dir} {master} -- curl -sk"
        " https://localhost:5080/2/instances?bulk=1   # RAPI\n"
        f"  .venv/bin/corral-testkit boot --dir {args.dir} {crashed}   # power the dead node"
        " back on;\n    the watcher then reconnects the instance's mirror within a minute\n"
        f"Stop everything with:\n  make demo-down   (or .venv/bin/corral-testkit down --dir"
        f" {args.dir})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
