"""hbal: cluster balancer with Ganeti's options, output and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corral.cli._htools_start import add_common_options, add_data_options, add_print_nodes, prepare


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hbal",
        description="Balance a cluster: find the moves (failover, migrate, replace-disks)"
        " that lower the cluster score the most, one at a time; print them, write them"
        " as gnt-instance commands (-C) or run them as jobs (-X).",
    )
    add_data_options(p)
    p.add_argument(
        "-C",
        "--print-commands",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="print the gnt-instance commands that perform the moves (to FILE if given)",
    )
    p.add_argument(
        "-X",
        "--exec",
        action="store_true",
        dest="execute",
        help="execute the moves as jobs through the local API (needs -L)",
    )
    add_print_nodes(p, "before and after balancing")
    add_common_options(p, "hbal")
    p.add_argument(
        "-l",
        "--max-length",
        type=int,
        default=-1,
        metavar="N",
        help="stop after N moves (default: until no move improves the score)",
    )
    p.add_argument(
        "-g",
        "--min-gain",
        type=float,
        default=0.01,
        metavar="GAIN",
        help="stop when a move gains less than this (default 0.01), once the"
        " score is below --min-gain-limit",
    )
    p.add_argument(
        "--min-gain-limit",
        type=float,
        default=0.1,
        metavar="SCORE",
        help="score below which --min-gain applies (default 0.1)",
    )
    p.add_argument(
        "-e",
        "--min-score",
        type=float,
        default=1e-9,
        metavar="SCORE",
        help="stop once the cluster score is this low (default 1e-9)",
    )
    p.add_argument(
        "--no-disk-moves",
        action="store_true",
        help="only failovers and migrations: no move that copies disks",
    )
    p.add_argument(
        "--no-instance-moves",
        action="store_true",
        help="only secondary changes: no move of an instance's primary node",
    )
    p.add_argument(
        "-E",
        "--evac-mode",
        action="store_true",
        help="only move instances off offline and drained nodes",
    )
    p.add_argument(
        "-G",
        "--group",
        metavar="GROUP",
        help="balance this node group (name or UUID; needed when the cluster has several)",
    )
    p.add_argument(
        "--ignore-soft-errors",
        action="store_true",
        help="allow moves that break the instance policy's soft limits",
    )
    # corral extension (benchmarks and tests; not in Ganeti's hbal): which move
    # search takes the (identical) steps
    p.add_argument(
        "--search",
        choices=("auto", "exhaustive", "lazy", "legacy"),
        default="auto",
        help=argparse.SUPPRESS,
    )
    return p


def _alias(name: str, suffix: str) -> str:
    from corral.cli.htools_nodes import strip

    return strip(name, suffix)


def main(argv: list[str] | None = None) -> int:
    prepare()
    args = build_parser().parse_args(argv)
    from corral.htools.types import HtoolsError

    try:
        return _run(args)
    except HtoolsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


def _run(args: Any) -> int:
    from corral.cli import htools_live
    from corral.cli.htools_jobs import PlannedMove, job_sets
    from corral.htools.balance import BalanceOptions, balance
    from corral.htools.loader import common_suffix, select_loader
    from corral.htools.moves import move_code
    from corral.htools.types import HtoolsError

    htools_live.register()
    c = select_loader(args.text_data, args.luxi, args.master).load()
    verbose = 1 + args.verbose - args.quiet
    out = sys.stdout
    if c.warnings:
        print("Warning: cluster has inconsistent data:", file=sys.stderr)
        for w in c.warnings:
            print(f"  - {w}", file=sys.stderr)
    suffix = common_suffix(c.names + [i.name for i in c.instances])
    if verbose > 1 and suffix:
        out.write(f"Note: Stripping common suffix of '{suffix}' from names\n")
    if args.group is not None:
        gidx = c.find_group(args.group)
    else:
        used = sorted({int(g) for g in c.group})
        if len(used) > 1:
            names = ", ".join(c.groups[g].name for g in used)
            raise HtoolsError(f"Found multiple node groups: [{names}], please select one with -G")
        gidx = used[0] if used else 0
    nodes = c.group_nodes(gidx)
    ginst = [i for i in c.instances if int(c.group[i.pnode]) == gidx]
    if verbose > 0:
        out.write(f"Loaded {c.n_nodes} nodes, {len(c.instances)} instances\n")
        out.write(f"Group size {len(nodes)} nodes, {len(ginst)} instances\n")
        out.write(f"Selected node group: {c.groups[gidx].name}\n")
        out.write("Initial check done: 0 bad nodes, 0 bad instances.\n")
    opts = BalanceOptions(
        max_length=args.max_length, min_gain=args.min_gain, min_gain_limit=args.min_gain_limit,
        disk_moves=not args.no_disk_moves, instance_moves=not args.no_instance_moves,
        evac_mode=args.evac_mode, search=args.search,
    )  # fmt: skip
    ini = c.score(nodes)
    if verbose > 2:
        from corral.htools import score as sc

        _, vals = c.score_details(nodes)
        out.write(f"Initial coefficients: overall {ini:.8f}\n")
        out.write("   Field                          Value Weight\n")
        for n, w, v in zip(sc.NAMES, sc.WEIGHTS, vals, strict=True):
            out.write(f"   {n:<24} {v:>12.8f} x{w:.2f}\n")
    else:
        out.write(f"Initial score: {ini:.8f}\n")
    from corral.cli.htools_nodes import printer

    show = printer(args.print_nodes, c.names + [i.name for i in c.instances])
    show("Initial cluster status", c, nodes.tolist())
    out.write("Trying to minimize the CV...\n")
    nmlen = max((len(_alias(n, suffix)) for n in c.names), default=0)
    imlen = max((len(_alias(i.name, suffix)) for i in c.instances), default=0)
    pmlen = 2 * nmlen + 1
    planned: list[PlannedMove] = []

    def on_step(st: Any, pos: int) -> None:
        inst = c.instances[st.inst]

        def nm(n: int) -> str:
            return _alias(c.names[n], suffix)

        ostr = nm(st.old[0]) + (":" + nm(st.old[1]) if st.old[1] >= 0 else "")
        nstr = nm(st.new[0]) + (":" + nm(st.new[1]) if st.new[1] >= 0 else "")
        tname = nm(st.target) if st.target >= 0 else ""
        code, _ = move_code(st.move, tname)
        iname = _alias(inst.name, suffix)
        out.write(
            f"  {pos:3d}. {iname:<{imlen}} {ostr:<{pmlen}} => {nstr:<{pmlen}} "
            f"{st.score:12.8f} a={code}\n"
        )
        out.flush()
        touched = sorted({x for x in (*st.old, *st.new) if x >= 0})
        planned.append(
            PlannedMove(
                instance=inst.name,
                move=st.move,
                target=c.names[st.target] if st.target >= 0 else "",
                nodes=touched,
                alias=iname,
                target_alias=tname,
                forthcoming=inst.forthcoming,
                running=inst.status in ("running", "ERROR_up"),
            )
        )

    _, fin, steps = balance(c, gidx, opts, on_step)
    if not steps:
        out.write("No solution found\n")
    else:
        out.write(f"Cluster score improved from {ini:.8f} to {fin:.8f}\n")
    out.write(f"Solution length={len(steps)}\n")
    sets = job_sets(planned)
    if args.print_commands is not None:
        _print_commands(sets, args.print_commands)
    if args.execute and planned:
        _execute(args, sets)
    out.flush()
    show("Final cluster status", c, nodes.tolist())
    return 0


def _execute(args: Any, sets: Any) -> None:
    """-X: Ganeti refuses it without -L ("possible only on LUXI")."""
    from corral.cli.htools_jobs import execute_job_sets
    from corral.cli.htools_live import DEFAULT_SOCKET
    from corral.htools.types import HtoolsError

    if args.luxi is None:
        raise HtoolsError("hbal: Execution of commands possible only on LUXI")
    from corral.api.client import Client

    sys.stdout.flush()
    socket = None if args.luxi == DEFAULT_SOCKET else args.luxi
    with Client(socket) as client:
        try:
            execute_job_sets(sets, client)
        except HtoolsError as err:
            raise HtoolsError(f"hbal: {err}") from None


def _print_commands(sets: Any, dest: str) -> None:
    from corral.cli.htools_jobs import format_commands

    body = format_commands(sets)
    if dest == "-":
        sys.stdout.write("\nCommands to run to reach the above solution:\n" + body)
    else:
        with open(dest, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\n\nset -e\n\n" + body)


if __name__ == "__main__":
    sys.exit(main())
