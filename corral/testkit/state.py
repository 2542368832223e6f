"""D/testkit.json: what a site is made of and which node init holds each node.

Written before anything is started (so a failed ``up`` can always be cleaned
by ``down``) and after every change. A node is up when its recorded init pid
is alive *and* has the recorded start time, so a recycled pid is never taken
for a node.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from corral.testkit.errors import TestkitError


class NodeState(msgspec.Struct, kw_only=True):
    name: str
    index: int
    ip: str
    pid: int | None = None
    #: start time of `pid` (clock ticks since boot, /proc/PID/stat field 22)
    start_time: int | None = None


class KitState(msgspec.Struct, kw_only=True):
    version: int = 1
    kit_id: str
    switch_netns: str
    memory: int
    cpus: int
    disk_mib: int
    #: command line of noded on every node (decided at ``up``, reused by ``boot``)
    noded: list[str] = msgspec.field(default_factory=list)
    nodes: list[NodeState] = msgspec.field(default_factory=list)

    def node(self, name: str) -> NodeState:
        for node in self.nodes:
            if name in (node.name, f"{node.name}.project.edu"):
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise TestkitError(f"Unknown node {name!r} (nodes: {known})")


def load(path: Path) -> KitState | None:
    """The recorded state, or None when D holds no testkit."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(data, type=KitState)
    except msgspec.DecodeError as err:
        raise TestkitError(f"Cannot read {path}: {err}") from err


def save(path: Path, state: KitState) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state)) + b"\n")
    os.replace(tmp, path)


def process_start_time(pid: int) -> int | None:
    """Start time of a live (non-zombie) process, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[19])


def is_alive(node: NodeState) -> bool:
    if node.pid is None:
        return False
    return process_start_time(node.pid) == node.start_time
