"""``gnt-os``: the OS definitions (API v20) installed on the nodes.

Reads the ``os`` query resource (Ganeti's fields: ``name, valid, hidden,
blacklisted, variants, api_versions, parameters, node_status, trusted``).
``node_status`` is ``{node: [[path, valid, message, variants, parameters,
api_versions, trusted], ...]}``: the first entry is the definition in use,
later ones are shadowed by it (printed as ``[hidden]``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from corral import opcodes as op
from corral.cli import _util as U
from corral.cli._util import Arg, Command, opt

OS_API_V15 = 15
OS_API_V20 = 20


def os_names(name: str, variants: list[str] | None) -> list[str]:
    """``image`` + [default, cd] -> [image+default, image+cd] (Ganeti's CalculateOSNames)."""
    if variants:
        return [f"{name}+{variant}" for variant in variants]
    return [name]


def format_os_list(rows: list[list[Any]], header: bool) -> list[str]:
    """``gnt-os list``: valid, visible OSes; the header is padded (GenerateTable)."""
    names: list[str] = []
    for name, variants, valid, hidden, blacklisted in rows:
        if valid and not hidden and not blacklisted:
            names.extend(os_names(str(name), variants))
    lines = []
    if header:
        width = max([len("Name"), *(len(n) for n in names)])
        lines.append("Name".ljust(width))
    return lines + names


def list_os(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "os", ["name", "variants", "valid", "hidden", "blacklisted"])
    for line in format_os_list(rows, not opts.no_headers):
        U.write(line)
    return 0


_INFO_FIELDS = [
    "name",
    "valid",
    "variants",
    "parameters",
    "api_versions",
    "blacklisted",
    "hidden",
    "trusted",
]


def format_os_info(rows: list[list[Any]], selected: list[str]) -> list[str]:
    """``gnt-os info [names]`` lines."""
    wanted = list(selected)
    lines: list[str] = []
    for name, valid, variants, parameters, api_versions, blk, hid, trusted in rows:
        if selected:
            if name not in wanted:
                continue
            wanted.remove(name)
        lines.append(f"{name}:")
        lines.append(f"  - valid: {valid}")
        lines.append(f"  - hidden: {hid}")
        lines.append(f"  - blacklisted: {blk}")
        if valid:
            lines.append("  - API versions:")
            lines.extend(f"    - {version}" for version in sorted(api_versions or []))
            lines.append("  - variants:")
            lines.extend(f"    - {variant}" for variant in variants or [])
            lines.append("  - parameters:")
            lines.extend(f"    - {pname}: {pdesc}" for pname, pdesc in parameters or [])
        if trusted is not None:
            lines.append(f"  - trusted: {trusted}")
        lines.append("")
    for name in wanted:
        lines.extend([f"{name}: ", ""])
    return lines


def show_os_info(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(client, "os", _INFO_FIELDS)
    for line in format_os_info(rows, opts.names):
        U.write(line)
    return 0


def _status(valid: bool, message: str) -> str:
    return "valid" if valid else f"invalid - {message}"


def _node_status_text(entry: list[Any]) -> str:
    path, valid, message, variants, params, api, trusted = (list(entry) + [None] * 7)[:7]
    text = f"{_status(bool(valid), str(message))} (path: {path})"
    max_api = max(api) if api else 0
    text += (
        f" [API versions: {', '.join(str(v) for v in api)}]"
        if api
        else " [no API versions declared]"
    )
    if max_api >= OS_API_V15:
        text += f" [variants: {', '.join(variants)}]" if variants else " [no variants]"
    if max_api >= OS_API_V20:
        text += (
            f" [parameters: {', '.join(p[0] for p in params)}]" if params else " [no parameters]"
        )
    if trusted is not None:
        text += " [trusted]" if trusted else " [untrusted]"
    return text


def format_os_diagnose(rows: list[list[Any]]) -> tuple[list[str], bool]:
    """``gnt-os diagnose`` lines and whether any OS is bad somewhere."""
    lines: list[str] = []
    has_bad = False
    for name, _valid, variants, node_data, hidden, blacklisted in rows:
        good: dict[str, str] = {}
        bad: dict[str, str] = {}
        shadowed: dict[str, list[str]] = {}
        for node, entries in (node_data or {}).items():
            shadowed[node] = []
            if entries:
                text = _node_status_text(entries[0])
                (good if entries[0][1] else bad)[node] = text
                for extra in entries[1:]:
                    shadowed[node].append(
                        f"    [hidden] path: {extra[0]}, status:"
                        f" {_status(bool(extra[1]), str(extra[2]))}"
                    )
            else:
                bad[node] = "OS not found"
        if good and not bad:
            status = "valid"
        elif bad and not good:
            status, has_bad = "invalid", True
        else:
            status, has_bad = "partial valid", True
        head = f"OS: {name} [global status: {status}]"
        if hidden:
            head += " [hidden]"
        if blacklisted:
            head += " [blacklisted]"
        lines.append(head)
        if variants:
            lines.append(f"  Variants: [{', '.join(variants)}]")
        for mapping in (good, bad):
            for node in U.nice_sort(list(mapping)):
                lines.append(f"  Node: {node}, status: {mapping[node]}")
                lines.extend(shadowed[node])
        lines.append("")
    return lines, has_bad


def diagnose_os(opts: argparse.Namespace, client: Any) -> int:
    rows = U.query_rows(
        client, "os", ["name", "valid", "variants", "node_status", "hidden", "blacklisted"]
    )
    lines, has_bad = format_os_diagnose(rows)
    for line in lines:
        U.write(line)
    return int(has_bad)


def modify_os(opts: argparse.Namespace, client: Any) -> int:
    name = opts.name
    osparams = {name: dict(opts.osparams)} if opts.osparams else None
    hidden = None if opts.hidden is None else [["add" if opts.hidden else "remove", name]]
    blacklisted = (
        None if opts.blacklisted is None else [["add" if opts.blacklisted else "remove", name]]
    )
    if not (osparams or hidden or blacklisted):
        U.warn("At least one of OS parameters or hypervisor parameters must be passed")
        return 1
    U.submit_or_wait(
        opts,
        client,
        [op.OpClusterSetParams(osparams=osparams, hidden_os=hidden, blacklisted_os=blacklisted)],
    )
    return 0


commands: dict[str, Command] = {
    "list": Command(
        list_os,
        [],
        [U.NOHDR_OPT, U.PRIORITY_OPT],
        "",
        "Lists all valid operating systems on the cluster",
    ),
    "diagnose": Command(diagnose_os, [], [U.PRIORITY_OPT], "", "Diagnose all operating systems"),
    "info": Command(
        show_os_info,
        [Arg("names", nargs="*", metavar="<os>")],
        [U.PRIORITY_OPT],
        "",
        "Show detailed information about operating systems",
        aliases=("show",),
    ),
    "modify": Command(
        modify_os,
        [Arg("name", metavar="<os>")],
        [
            opt(
                "-O",
                "--os-parameters",
                dest="osparams",
                type=U.keyval_type,
                default={},
                help="OS parameters",
            ),
            opt(
                "--hidden",
                type=U.bool_type,
                default=None,
                metavar="yes|no",
                help="Sets the hidden flag on the OS",
            ),
            opt(
                "--blacklisted",
                type=U.bool_type,
                default=None,
                metavar="yes|no",
                help="Sets the blacklisted flag on the OS",
            ),
            U.DRY_RUN_OPT,
            U.PRIORITY_OPT,
            *U.SUBMIT_OPTS,
        ],
        "",
        "Modify the OS parameters",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Console script ``gnt-os``."""
    return U.run_main("gnt-os", commands, argv)


if __name__ == "__main__":
    sys.exit(main())
