"""corral-hail: iallocator plugin with hail's command line.

``corral-hail [options] FILE`` reads an iallocator v2 request (``-`` = stdin)
and prints one JSON answer ``{"success", "info", "result"}`` on stdout; the
exit code is 0 whenever an answer was printed (also for ``success: false``),
1 when the input cannot be read or is not JSON, 2 on bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from corral.cli._htools_start import add_common_options, add_print_nodes, prepare


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hail",
        description="Iallocator: answer an iallocator v2 request (allocate, relocate,"
        " multi-allocate, node-evacuate, change-group) with the nodes that keep the"
        " cluster score lowest; usable by corral (the default) and by Ganeti.",
    )
    p.add_argument("file", help="iallocator request file, - for stdin")
    p.add_argument(
        "--no-capacity-checks",
        action="store_true",
        help="skip the check that the cluster stays N+1 redundant after the placement",
    )
    p.add_argument(
        "--ignore-soft-errors",
        action="store_true",
        help="allow placements that break the instance policy's soft limits",
    )
    p.add_argument(
        "-t",
        "--text-data",
        metavar="FILE",
        help="take the cluster from this htools text file instead of the request",
    )
    p.add_argument(
        "--restrict-allocation-to",
        metavar="NODES",
        default=None,
        help="only consider these nodes (comma-separated names)",
    )
    p.add_argument(
        "--static-kvm-node-memory",
        type=int,
        default=4096,
        metavar="MIB",
        help="memory reserved for the node itself when the first enabled"
        " hypervisor is kvm (default 4096, as Ganeti)",
    )
    add_common_options(p, "hail")
    add_print_nodes(p, "before and after the request")
    p.add_argument(
        "-S",
        "--save",
        metavar="FILE",
        help="save the cluster state (htools text format) before and after the"
        " request to FILE.pre-ialloc and FILE.post-ialloc",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    prepare()
    args = build_parser().parse_args(argv)
    try:
        if args.file == "-":
            raw = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as fh:
                raw = fh.read()
    except OSError as err:
        print(f"Error: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 1
    try:
        request = json.loads(raw)
    except ValueError as err:
        print(f"Error: invalid JSON in {args.file}: {err}", file=sys.stderr)
        return 1
    from corral.htools.iallocator import Options, load_request, run_on_cluster

    cluster = None
    if args.text_data:
        from corral.htools.ialloc import REQUEST_TYPES
        from corral.htools.text import parse_text
        from corral.htools.types import HtoolsError

        try:
            with open(args.text_data, encoding="utf-8") as fh:
                cluster = parse_text(fh.read())
        except (OSError, HtoolsError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 1
        rq: dict[str, Any] = {}
        if isinstance(request, dict) and isinstance(request.get("request"), dict):
            rq = request["request"]
        if not rq or rq.get("type") not in REQUEST_TYPES:
            print("Error: the request file has no valid 'request' section", file=sys.stderr)
            return 1
    from corral.htools.ialloc import Request

    restrict = None
    if args.restrict_allocation_to is not None:
        restrict = [x for x in args.restrict_allocation_to.split(",") if x]
    opts = Options(
        capacity_check=not args.no_capacity_checks,
        ignore_soft_errors=args.ignore_soft_errors,
        static_kvm_node_memory=args.static_kvm_node_memory,
        restrict_to=restrict,
    )
    if cluster is not None:
        loaded: Any = (cluster, Request(str(rq["type"]), rq))
    else:
        loaded = load_request(request, opts)
    if isinstance(loaded, dict):  # unreadable request: the failure answer
        answer = loaded
    else:
        c, req = loaded
        try:
            from corral.cli.htools_nodes import printer

            show = printer(args.print_nodes, c.names + [i.name for i in c.instances])
            _show(args, show, "before", c)
            answer = run_on_cluster(c, req, opts)
            _show(args, show, "after", c)
        except OSError as err:
            print(f"Error: cannot write {err.filename}: {err.strerror}", file=sys.stderr)
            return 1
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    return 0


def _show(args: Any, show: Any, when: str, c: Any) -> None:
    """Ganeti's hail -p table (``show``) and -S file for the state ``when``."""
    show("Initial cluster status" if when == "before" else "Final cluster status", c)
    if args.save:
        from corral.htools.text import serialize

        path = f"{args.save}.{'pre' if when == 'before' else 'post'}-ialloc"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(serialize(c))
        print(f"The cluster state {when} iallocator run has been written to file '{path}'",
              file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
