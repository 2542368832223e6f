"""`Testkit`: the Python API over a site of N fake nodes on this machine.

Tests, benchmarks and the demo use it directly::

    kit = Testkit("/tmp/site")
    kit.up(nodes=3, disk_size="2G")
    kit.exec("node1", ["gnt-cluster", "init", "cluster.project.edu"], check=True)
    kit.crash("node2"); kit.boot("node2")
    kit.down()

Every method reads and writes D/testkit.json, so several processes (the CLI,
a test) can drive the same site one after the other. Every failure is a
`TestkitError` with a one-line message; ``up`` that fails cleans what it made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from corral.errors import UnitParseError
from corral.testkit import layout as L
from corral.testkit import netns
from corral.testkit import node as N
from corral.testkit import state as S
from corral.testkit.errors import TestkitError
from corral.utils.units import parse_unit

DEFAULT_MEMORY = 2048
DEFAULT_DISK = "140G"
DEFAULT_CPUS = 2
DOM0_MEMORY = 128


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ip: str
    up: bool
    pid: int | None


class Testkit:
    """The site whose files live in `directory` (created by `up` if missing)."""

    __test__ = False  # keeps pytest from collecting it

    def __init__(self, directory: str | Path) -> None:
        self.layout = L.Layout.of(directory)

    def __enter__(self) -> Testkit:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a ``with Testkit(d) as kit:`` block takes the site down."""
        self.down()

    # -- queries -------------------------------------------------------------
    def _state(self) -> S.KitState:
        kit_state = S.load(self.layout.state_file)
        if kit_state is None:
            raise TestkitError(f"No testkit in {self.layout.root} (run 'corral-testkit up')")
        return kit_state

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self._state().nodes]

    def node_ip(self, node: str) -> str:
        return self._state().node(node).ip

    def node_dir(self, node: str) -> Path:
        """Host directory holding the node's private files (D/nodeN)."""
        return self.layout.node_dir(self._state().node(node).name)

    def is_up(self, node: str) -> bool:
        return S.is_alive(self._state().node(node))

    def node_pid(self, node: str) -> int:
        """Host pid of the node's init (PID 1 inside the node)."""
        entry = self._state().node(node)
        if not S.is_alive(entry) or entry.pid is None:
            raise TestkitError(f"Node {entry.name} is down")
        return entry.pid

    def node_pids(self, node: str) -> list[int]:
        """Host pids of every process of the node (its init included)."""
        target = Path(f"/proc/{self.node_pid(node)}/ns/pid").stat().st_ino
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "ns/pid").stat().st_ino == target:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return sorted(pids)

    def status(self) -> list[NodeStatus]:
        kit_state = S.load(self.layout.state_file)
        if kit_state is None:
            return []
        return [NodeStatus(n.name, n.ip, S.is_alive(n), n.pid) for n in kit_state.nodes]

    # -- lifecycle -----------------------------------------------------------
    def up(
        self,
        nodes: int = 3,
        memory: int = DEFAULT_MEMORY,
        disk_size: str | int = DEFAULT_DISK,
        cpus: int = DEFAULT_CPUS,
        noded_timeout: float = 20.0,
    ) -> None:
        """Start `nodes` nodes, wire them and start noded on each.

        `disk_size` is a Ganeti size (``"140G"``, a bare number is MiB),
        `memory` MiB. Refuses when the site is already up; cleans a stale one.
        """
        disk_mib = self._check_up_args(nodes, memory, disk_size, cpus)
        root = self.layout.root
        old = S.load(self.layout.state_file)
        if old is not None:
            if any(S.is_alive(n) for n in old.nodes):
                raise TestkitError(
                    f"The testkit in {root} is already up; run 'corral-testkit down --dir {root}'"
                )
            self.down()
        elif root.exists() and any(root.iterdir()):
            raise TestkitError(f"{root} is not empty and holds no testkit")
        root.mkdir(parents=True, exist_ok=True)
        kit_state = S.KitState(
            kit_id=self.layout.kit_id,
            switch_netns=self.layout.switch_netns,
            memory=memory,
            cpus=cpus,
            disk_mib=disk_mib,
            noded=N.noded_argv(),
            nodes=[
                S.NodeState(name=L.node_name(i), index=i, ip=L.node_ip(i))
                for i in range(1, nodes + 1)
            ],
        )
        S.save(self.layout.state_file, kit_state)
        try:
            self._make_site(kit_state)
            for entry in kit_state.nodes:
                self._start_node(kit_state, entry, kit_state.noded)
            self._wait_noded(kit_state.nodes, noded_timeout)
        except BaseException:
            self.down()
            raise

    def _check_up_args(self, nodes: int, memory: int, disk_size: str | int, cpus: int) -> int:
        if not 1 <= nodes <= L.MAX_NODES:
            raise TestkitError(f"Number of nodes must be between 1 and {L.MAX_NODES}")
        if memory <= DOM0_MEMORY or cpus < 1:
            raise TestkitError(f"Memory must exceed {DOM0_MEMORY} MiB and cpus be at least 1")
        try:
            disk_mib = parse_unit(disk_size)
        except UnitParseError as err:
            raise TestkitError(f"Invalid disk size {disk_size!r}: {err}") from err
        if disk_mib < 64:
            raise TestkitError("Disk size must be at least 64M")
        for top in L.OVERLAY_TOPS:
            if self.layout.root.is_relative_to("/" + top):
                raise TestkitError(f"The testkit directory cannot be under /{top}")
        return disk_mib

    def _make_site(self, kit_state: S.KitState) -> None:
        self.layout.hosts_file.write_text(L.hosts_text(len(kit_state.nodes)))
        self.layout.shared_dir.mkdir(exist_ok=True)
        netns.create_switch(kit_state.switch_netns)
        token = secrets.token_hex(20)
        hardware = {
            "memory_total": kit_state.memory,
            "cpu_total": kit_state.cpus,
            "memory_dom0": DOM0_MEMORY,
        }
        for entry in kit_state.nodes:
            N.prepare_dirs(self.layout, entry.name, token, hardware)
            N.create_disk(self.layout, entry.name, kit_state.disk_mib)

    def _start_node(self, kit_state: S.KitState, entry: S.NodeState, noded: list[str]) -> None:
        """Start one node's init (recorded at once), wire it and launch its noded."""
        N.wait_disk_released(self.layout.disk_image(entry.name))
        entry.pid, entry.start_time = N.start_init(self.layout, entry.name)
        S.save(self.layout.state_file, kit_state)
        netns.wire_node(kit_state.switch_netns, kit_state.kit_id, entry.index, entry.pid)
        N.start_noded(self.layout, entry.name, entry.pid, noded)

    def _wait_noded(self, entries: list[S.NodeState], timeout: float) -> None:
        """Wait until every node's noded accepts TCP on its IP, port 1811."""
        pending = list(entries)
        deadline = time.monotonic() + timeout
        while pending:
            for entry in list(pending):
                if not S.is_alive(entry) or entry.pid is None:
                    log = self.layout.init_log(entry.name)
                    raise TestkitError(f"Node {entry.name} died while starting; see {log}")
                if netns.tcp_connects(entry.pid, entry.ip, L.NODED_PORT, 0.5):
                    pending.remove(entry)
            if pending and time.monotonic() > deadline:
                entry = pending[0]
                raise TestkitError(
                    f"corral-noded on {entry.name} does not accept connections on "
                    f"{entry.ip}:{L.NODED_PORT} after {timeout:.0f} s; "
                    f"see {self.layout.noded_log(entry.name)}"
                )
            if pending:
                time.sleep(0.1)

    def crash(self, node: str) -> None:
        """Pull the plug: kill every process of the node at once and cut its links."""
        kit_state = self._state()
        entry = kit_state.node(node)
        if not S.is_alive(entry):
            raise TestkitError(f"Node {entry.name} is already down")
        self._stop_node(kit_state, entry)

    def _stop_node(self, kit_state: S.KitState, entry: S.NodeState) -> None:
        if entry.pid is not None:
            N.kill_init(entry.pid, entry.start_time)
        netns.unwire_node(kit_state.switch_netns, entry.index)
        entry.pid = entry.start_time = None
        S.save(self.layout.state_file, kit_state)
        N.wait_disk_released(self.layout.disk_image(entry.name))

    def boot(self, node: str, noded_timeout: float = 20.0) -> None:
        """Power a crashed node on again: same disk and state dirs, fresh /var/run."""
        kit_state = self._state()
        entry = kit_state.node(node)
        if S.is_alive(entry):
            raise TestkitError(f"Node {entry.name} is already up")
        if not netns.switch_exists(kit_state.switch_netns):
            raise TestkitError(
                f"The testkit in {self.layout.root} is down; run 'corral-testkit up'"
            )
        try:
            self._start_node(kit_state, entry, kit_state.noded or N.noded_argv())
            self._wait_noded([entry], noded_timeout)
        except BaseException:
            self._stop_node(kit_state, entry)
            raise

    def down(self) -> None:
        """Stop every node, remove the switch, detach loop devices. Idempotent."""
        kit_state = S.load(self.layout.state_file)
        images: list[Path] = []
        if kit_state is not None:
            for entry in kit_state.nodes:
                if entry.pid is not None:
                    N.kill_init(entry.pid, entry.start_time)
                    entry.pid = entry.start_time = None
            S.save(self.layout.state_file, kit_state)
            images = [self.layout.disk_image(n.name) for n in kit_state.nodes]
        for pid in N.stray_inits(self.layout):
            N.kill_init(pid, None)
        netns.delete_switch(self.layout.switch_netns)
        if self.layout.root.is_dir():
            images += [p for p in self.layout.root.glob("node*/disk.img") if p not in images]
        for image in images:
            N.wait_disk_released(image, timeout=5.0)

    # -- running commands ------------------------------------------------------
    def exec(
        self,
        node: str,
        argv: list[str],
        input: str | None = None,
        check: bool = False,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on the node (cwd /root, venv bin first on PATH); capture its output.

        On `timeout` the command's whole process group (inside the node too)
        is killed and `subprocess.TimeoutExpired` raised; `check` raises
        `subprocess.CalledProcessError` on a non-zero exit, like subprocess.run.
        """
        if not argv:
            raise TestkitError("No command given")
        command = N.nsenter_argv(self.node_pid(node), list(argv))
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=N.node_env(),
            start_new_session=True,  # own process group, to kill it all on timeout
        ) as proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise
        result = subprocess.CompletedProcess(command, proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def exec_argv(self, node: str, argv: list[str]) -> list[str]:
        """The host argv that runs `argv` on the node (for callers wiring their own stdio)."""
        return N.nsenter_argv(self.node_pid(node), list(argv))
