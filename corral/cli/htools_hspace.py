"""hspace: capacity planning with Ganeti's options and (machine-readable) output."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corral.cli._htools_start import add_common_options, add_data_options, add_print_nodes, prepare


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hspace",
        description="Capacity planning: how many more instances of a given size fit in the"
        " cluster (--standard-alloc), and how many if each is shrunk until it fits"
        " (--tiered-alloc), keeping every node N+1 redundant.",
    )
    add_data_options(p)
    p.add_argument(
        "--standard-alloc",
        metavar="DISK,RAM,CPU",
        help="place instances of this size (MiB, MiB, VCPUs) until none fits",
    )
    p.add_argument(
        "--tiered-alloc",
        metavar="DISK,RAM,CPU",
        help="start from this size and shrink the resource that ran out, step"
        " by step, until nothing fits",
    )
    p.add_argument(
        "--disk-template",
        metavar="TEMPLATE",
        help="disk template of the new instances (default: the policy's first)",
    )
    p.add_argument(
        "--machine-readable",
        nargs="?",
        const="yes",
        default=None,
        metavar="yes|no",
        help="print HTS_* KEY=VALUE lines instead of prose",
    )
    p.add_argument(
        "-l",
        "--max-length",
        type=int,
        default=-1,
        metavar="N",
        help="stop after placing N instances",
    )
    add_print_nodes(p, "initially and after each allocation")
    add_common_options(p, "hspace")
    # benchmarking/verification: score every pair of every placement (slow, same result)
    p.add_argument("--full-scan", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    prepare()
    args = build_parser().parse_args(argv)
    from corral.htools.types import HtoolsError

    try:
        return _run(args)
    except HtoolsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1


def _spec(text: str, base: Any) -> Any:
    import dataclasses

    from corral.htools.types import HtoolsError

    parts = text.split(",")
    if len(parts) not in (3, 4) or not all(p.strip().isdigit() for p in parts):
        raise HtoolsError(f"Invalid instance specification '{text}' (expected disk,ram,cpu)")
    vals = [int(p) for p in parts]
    # Ganeti's parseISpecString: spindles are optional and default to 1 (they only
    # matter with exclusive storage), not to the policy's value
    spindles = vals[3] if len(vals) == 4 else 1
    return dataclasses.replace(
        base, disk=vals[0], memory=vals[1], cpu=vals[2], spindle_use=spindles
    )


def _run(args: Any) -> int:
    from corral.cli import htools_live
    from corral.htools import pairs

    htools_live.register()
    old_full = pairs.FULL_SCAN[0]
    pairs.FULL_SCAN[0] = bool(args.full_scan)
    try:
        return _report(args)
    finally:
        pairs.FULL_SCAN[0] = old_full


def _report(args: Any) -> int:
    from corral.htools.capacity import standard_alloc, tiered_alloc
    from corral.htools.loader import select_loader
    from corral.htools.types import DISK_TEMPLATES, HtoolsError

    c = select_loader(args.text_data, args.luxi, args.master).load()
    pol = c.ipolicy
    template = args.disk_template or (pol.disk_templates[0] if pol.disk_templates else "drbd")
    if template not in DISK_TEMPLATES:
        raise HtoolsError(f"Unknown disk template '{template}'")
    std = _spec(args.standard_alloc, pol.std) if args.standard_alloc else pol.std
    maxspec = pol.minmax[0][1] if pol.minmax else pol.std
    minspec = pol.minmax[0][0] if pol.minmax else pol.std
    tspec = _spec(args.tiered_alloc, maxspec) if args.tiered_alloc else maxspec
    rqn = 2 if template == "drbd" else 1
    v = c.nodes
    kv: list[tuple[str, Any]] = []
    online = ~v["offline"]
    kv += [
        ("CLUSTER_MEM", int(v["tmem"][online].sum())),
        ("CLUSTER_DSK", int(v["tdsk"][online].sum())),
        ("CLUSTER_CPU", int(v["tcpu"][online].sum())),
        ("CLUSTER_NODES", int(online.sum())),
    ]
    from corral.cli.htools_nodes import printer

    show = printer(args.print_nodes, c.names + [i.name for i in c.instances])
    show("Initial cluster status", c)
    ini_score = c.score()
    ini_cnt = len(c.instances)
    kv += [("INI_SCORE", f"{ini_score:.8f}"), ("INI_INST_CNT", ini_cnt)]
    kv += [
        ("TSPEC_INI_MEM", tspec.memory), ("TSPEC_INI_DSK", tspec.disk),
        ("TSPEC_INI_CPU", tspec.cpu), ("TSPEC_INI_SPN", tspec.spindle_use),
        ("TSPEC_INI_RQN", rqn), ("TSPEC_INI_DISK_TEMPLATE", template),
    ]  # fmt: skip
    limit = args.max_length
    trl = tiered_alloc(c, tspec, minspec, template, limit)
    show("Tiered allocation status", trl.cluster)
    kv += [("TRL_SCORE", f"{trl.cluster.score():.8f}"), ("TRL_INST_CNT", ini_cnt + len(trl.placed))]
    groups: dict[tuple[int, int, int, int], int] = {}
    for i in trl.placed:
        key = (i.mem, i.dsk, i.vcpus, i.spindle_use)
        groups[key] = groups.get(key, 0) + 1
    tstr = " ".join(f"{m},{d},{cpu},{s}={n}" for (m, d, cpu, s), n in groups.items())
    kv.append(("TSPEC", f"'{tstr}'"))
    kv += [
        ("SPEC_MEM", std.memory), ("SPEC_DSK", std.disk), ("SPEC_CPU", std.cpu),
        ("SPEC_SPN", std.spindle_use), ("SPEC_RQN", rqn), ("SPEC_DISK_TEMPLATE", template),
    ]  # fmt: skip
    run = standard_alloc(c, std, template, limit)
    show("Standard allocation status", run.cluster)
    kv += [
        ("FIN_SCORE", f"{run.cluster.score():.8f}"),
        ("FIN_INST_CNT", ini_cnt + len(run.placed)),
        ("ALLOC_INSTANCES", len(run.placed)),
        ("ALLOC_FAIL_REASON", run.fail_reason.name.upper() if run.fail_reason else "FAILINTERNAL"),
    ]
    from corral.htools.types import FAIL_NAMES, FailMode

    for m in range(1, len(FAIL_NAMES)):
        kv.append((f"ALLOC_{FAIL_NAMES[m].upper()}_CNT", run.fail_counts.get(FailMode(m), 0)))
    kv.append(("OK", 1))
    out = sys.stdout
    if args.machine_readable is not None and args.machine_readable != "no":
        for k, val in kv:
            out.write(f"HTS_{k}={val}\n")
        return 0
    out.write(f"The cluster has {int(online.sum())} nodes and the following resources:\n")
    out.write(
        f"  MEM {int(v['tmem'][online].sum())}, DSK {int(v['tdsk'][online].sum())}, "
        f"CPU {int(v['tcpu'][online].sum())}.\n"
    )
    out.write(f"There are {ini_cnt} initial instances on the cluster.\n")
    out.write("Tiered (initial size) instance spec is:\n")
    out.write(f"  MEM {tspec.memory}, DSK {tspec.disk}, CPU {tspec.cpu}, using disk template"
              f" '{template}'.\nTiered allocation results:\n")  # fmt: skip
    for (m, d, cpu, _), n in groups.items():
        out.write(f"  - {n:3d} instances of spec MEM {m}, DSK {d}, CPU {cpu}\n")
    out.write(f"  - most likely failure reason: {trl.fail_reason.name}\n")
    out.write(f"  - initial cluster score: {ini_score:.8f}\n")
    out.write(f"  -   final cluster score: {trl.cluster.score():.8f}\n")
    out.write("Standard (fixed-size) instance spec is:\n")
    out.write(f"  MEM {std.memory}, DSK {std.disk}, CPU {std.cpu}, using disk template"
              f" '{template}'.\nNormal (fixed-size) allocation results:\n")  # fmt: skip
    out.write(f"  - {len(run.placed):3d} instances allocated\n")
    out.write(f"  - most likely failure reason: {run.fail_reason.name}\n")
    out.write(f"  - initial cluster score: {ini_score:.8f}\n")
    out.write(f"  -   final cluster score: {run.cluster.score():.8f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
