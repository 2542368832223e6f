"""``corral-testkit``: start, drive and stop a site of fake nodes on this machine.

    corral-testkit up     --dir D [--nodes 3] [--memory 2048] [--disk-size 140G] [--cpus 2]
    corral-testkit exec   --dir D NODE -- CMD...   (stdio and exit code passed through)
    corral-testkit crash  --dir D NODE             (pull the plug)
    corral-testkit boot   --dir D NODE
    corral-testkit status --dir D
    corral-testkit down   --dir D

Errors print one line to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from corral.testkit import cluster as C
from corral.testkit import node as N
from corral.testkit.errors import TestkitError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral-testkit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--dir", required=True, help="directory holding the site's files")
        return cmd

    up = command("up", "start the nodes")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--memory", type=int, default=C.DEFAULT_MEMORY, help="MiB per node")
    up.add_argument("--disk-size", default=C.DEFAULT_DISK, help="per node, e.g. 140G")
    up.add_argument("--cpus", type=int, default=C.DEFAULT_CPUS)
    up.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for noded")
    run = command("exec", "run a command on a node")
    run.add_argument("node")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD...")
    for name, text in (
        ("crash", "kill a node at once and cut its links"),
        ("boot", "start a crashed node again"),
    ):
        command(name, text).add_argument("node")
    command("status", "show the nodes and whether each is up")
    command("down", "stop everything and clean up")
    return parser


def _run(args: argparse.Namespace) -> int:
    kit = C.Testkit(args.dir)
    if args.command == "up":
        kit.up(
            nodes=args.nodes,
            memory=args.memory,
            disk_size=args.disk_size,
            cpus=args.cpus,
            noded_timeout=args.timeout,
        )
        for entry in kit.status():
            print(f"{entry.name}\t{entry.ip}\tup")
    elif args.command == "exec":
        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise TestkitError("No command given (usage: exec --dir D NODE -- CMD...)")
        host_argv = kit.exec_argv(args.node, argv)
        sys.stdout.flush()
        os.execvpe(host_argv[0], host_argv, N.node_env())
    elif args.command == "crash":
        kit.crash(args.node)
    elif args.command == "boot":
        kit.boot(args.node, noded_timeout=20.0)
    elif args.command == "status":
        entries = kit.status()
        if not entries:
            print(f"No testkit in {kit.layout.root}")
            return 1
        print("Node\tIP\tStatus\tPid")
        for entry in entries:
            state = "up" if entry.up else "down"
            print(f"{entry.name}\t{entry.ip}\t{state}\t{entry.pid if entry.up else '-'}")
    elif args.command == "down":
        kit.down()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except TestkitError as err:
        print(f"corral-testkit: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("corral-testkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
