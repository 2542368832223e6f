"""Automatic failover on a real testkit cluster: a node dies, the watcher fences
it through its out-of-band program (a "management board" served by this test
process, as a BMC is a separate box) and fails its DRBD instance over; then
``gnt-node power on`` boots it again and the mirror is repaired."""

from __future__ import annotations

import contextlib
import json
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.testkit.cluster import Testkit
from tests.e2e.conftest import init_argv, ok

pytestmark = [pytest.mark.e2e, pytest.mark.needs_root]

N1, N2, N3 = "node1.project.edu", "node2.project.edu", "node3.project.edu"

# The OOB program the master runs: forwards "COMMAND NODE" to the board's socket.
OOB_SCRIPT = """#!{python}
import socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect({socket!r})
sock.sendall((sys.argv[1] + " " + sys.argv[2] + "\\n").encode())
status, _, text = sock.makefile().readline().rstrip("\\n").partition(" ")
(sys.stdout if status == "OK" else sys.stderr).write(text + "\\n" if text else "")
sys.exit(0 if status == "OK" else 1)
"""


class Board(socketserver.ThreadingUnixStreamServer):
    """Power control of the testkit's nodes, with a log of what it was asked."""

    daemon_threads = True

    def __init__(self, path: str, kit: Testkit) -> None:
        self.kit = kit
        self.asked: list[str] = []
        self.powered_off: set[str] = set()
        super().__init__(path, _BoardHandler)

    def command(self, command: str, node: str) -> str:
        self.asked.append(f"{command} {node}")
        short = node.split(".")[0]
        if command == "power-off":
            if short not in self.powered_off:
                self.powered_off.add(short)
                # already dead: powering off a dead box succeeds
                with contextlib.suppress(Exception):
                    self.kit.crash(short)
            return "OK"
        if command == "power-on":
            if short in self.powered_off:
                self.kit.boot(short)
                self.powered_off.discard(short)
            return "OK"
        if command == "power-status":
            return "OK " + json.dumps({"powered": short not in self.powered_off})
        if command == "health":
            return "OK " + json.dumps([["psu", "OK"]])
        return f"ERR unknown command {command}"


class _BoardHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode().split()
        assert isinstance(self.server, Board)
        reply = self.server.command(*line) if len(line) == 2 else "ERR bad request"
        self.wfile.write((reply + "\n").encode())


def _ok(kit: Testkit, *argv: str, node: str = "node1") -> str:
    return ok(kit, *argv, node=node, timeout=300)


def _wait(what: str, check: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def board(kit: Testkit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    where = tmp_path_factory.mktemp("bmc")
    server = Board(str(where / "board.sock"), kit)
    script = where / "bmc"
    script.write_text(OOB_SCRIPT.format(python=sys.executable, socket=str(where / "board.sock")))
    script.chmod(0o755)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _oob_path(board: Board) -> str:
    return str(Path(board.server_address).with_name("bmc"))  # type: ignore[arg-type]


def _row(kit: Testkit, name: str) -> list[str]:
    out = _ok(kit, "gnt-instance", "list", "--no-headers", "-o", "pnode,snodes,status", name)
    return out.split()


def test_a_dead_node_is_fenced_and_its_instance_fails_over(kit: Testkit, board: Board) -> None:
    init = init_argv("--auto-failover=yes", "--node-parameters", f"oob_program={_oob_path(board)}")
    _ok(kit, "env", "CORRAL_WATCHER_INTERVAL=2", "CORRAL_AUTO_FAILOVER_AFTER=6", *init)
    for node in (N2, N3):
        _ok(kit, "gnt-node", "add", node)
    _ok(
        kit,
        "gnt-instance",
        "add",
        "-t",
        "drbd",
        "-o",
        "image",
        "-s",
        "256M",
        "-B",
        "maxmem=128M",
        "-n",
        f"{N2}:{N3}",
        "--no-name-check",
        "--no-ip-check",
        "db1",
    )
    assert _row(kit, "db1") == [N2, N3, "running"]
    # the board answers for the nodes through gnt-node power
    assert _ok(kit, "gnt-node", "power", "status", "--no-headers", N2).split() == [N2, "powered"]

    # a maintenance pause is kept by the master (and would stop what follows)
    assert _ok(kit, "gnt-cluster", "watcher", "pause", "1h").startswith("The watcher is paused")
    assert _ok(kit, "gnt-cluster", "watcher", "info").startswith("The watcher is paused until")
    assert _ok(kit, "gnt-cluster", "watcher", "continue") == "The watcher is no longer paused.\n"
    assert _ok(kit, "gnt-cluster", "watcher", "info") == "The watcher is not paused.\n"

    kit.crash("node2")
    _wait("the failover", lambda: _row(kit, "db1") == [N3, N2, "running"])
    # fenced first, through the board; the node is offline and recorded unpowered
    assert f"power-off {N2}" in board.asked
    assert not [a for a in board.asked if a.startswith("power-off") and N2 not in a]
    flags = _ok(kit, "gnt-node", "list", "--no-headers", "-o", "name,offline,powered", N2)
    assert flags.split() == [N2, "Y", "N"]
    ops = _ok(kit, "gnt-job", "list", "--no-headers", "-o", "summary,status")
    assert f"OOB_COMMAND({N2}) success" in " ".join(ops.split())
    assert "INSTANCE_FAILOVER(db1) success" in " ".join(ops.split())

    # repair: power the node on through the board, bring it online, the mirror resyncs
    out = _ok(kit, "gnt-node", "power", "on", N2)
    assert out.split() == ["Node", "Status", N2, "invoked"]
    _ok(kit, "gnt-node", "modify", "-O", "no", N2)

    def mirror_ok() -> bool:
        proc = kit.exec("node1", ["gnt-instance", "info", "db1"], check=False, timeout=60)
        return proc.returncode == 0 and "degraded" not in proc.stdout.lower()

    _wait("the mirror to be repaired", mirror_ok, timeout=180)
    assert _row(kit, "db1") == [N3, N2, "running"]
