"""gnt-cluster/node/instance/group against a real corral-masterd (nodes faked)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any

from corral.cli import gnt_cluster, gnt_group, gnt_instance, gnt_node
from corral.cli._util import run_main

PROGS = {
    "gnt-cluster": gnt_cluster,
    "gnt-node": gnt_node,
    "gnt-instance": gnt_instance,
    "gnt-group": gnt_group,
}


def test_commands_against_a_real_master(tmp_path: Any) -> None:
    from corral.api.client import Client
    from tests.api.test_api import master

    script = [
        ("gnt-instance", ["list", "-o", "name,pnode,snodes,status"]),
        ("gnt-node", ["info", "node2.example.com"]),
        ("gnt-group", ["list"]),
        ("gnt-cluster", ["version"]),
        ("gnt-instance", ["add-tags", "inst1.example.com", "db"]),
        ("gnt-instance", ["list-tags", "inst1.example.com"]),
        ("gnt-instance", ["modify", "-B", "maxmem=256M", "inst1.example.com"]),
        ("gnt-instance", ["info", "--static", "inst1.example.com"]),
        ("gnt-instance", ["remove", "-f", "nosuch.example.com"]),
    ]

    async def scenario() -> list[tuple[int, str, str]]:
        async with master(tmp_path) as (_m, paths, _rpc):
            client = Client(paths.master_socket)
            results = []
            for prog, argv in script:
                out, err = io.StringIO(), io.StringIO()

                def call(
                    prog: str = prog,
                    argv: list[str] = argv,
                    out: io.StringIO = out,
                    err: io.StringIO = err,
                ) -> int:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                        return run_main(prog, PROGS[prog].commands, argv, client)

                code = await asyncio.wait_for(asyncio.to_thread(call), 30)
                results.append((code, out.getvalue(), err.getvalue()))
            client.close()
            return results

    results = asyncio.run(scenario())
    assert [code for code, _, _ in results] == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    listing, node_info, groups, version, _, tags, modify, info, remove = results
    assert listing[1].splitlines() == [
        "Instance          Primary_node      Secondary_Nodes Status",
        "inst1.example.com node1.example.com                 ADMIN_down",
    ]
    assert node_info[1].splitlines()[:3] == [
        "- Node name: node2.example.com",
        "  primary ip: 192.0.2.2",
        "  secondary ip: 198.51.100.2",
    ]
    assert groups[1].splitlines()[1].startswith("default     3         1 preferred   cpu_speed=1,")
    assert version[1].splitlines()[0] == "Software version: 0.1.0"
    assert tags[1].splitlines() == ["db", "web"]
    assert modify[1].splitlines()[:2] == [
        "Modified instance inst1.example.com",
        " - be/maxmem -> 256",
    ]
    lines = info[1].splitlines()
    assert lines[0] == "- Instance name: inst1.example.com"
    assert "  State: configured to be down" in lines
    assert "    maxmem: 256" in lines
    assert remove[2].splitlines()[-1] == "Instance 'nosuch.example.com' not known"
