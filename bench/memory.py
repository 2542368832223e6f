"""Memory of a testkit node's processes, read from the host's /proc.

The node's processes are ordinary host processes in their own PID namespace,
so the host reads ``/proc/<host pid>/status`` (VmRSS, VmHWM) and
``smaps_rollup`` (Pss) directly, with no command run in the node: sampling
every 50 ms then costs no process start and does not disturb what it measures.

Processes are classified by their command line: ``masterd``, ``noded``,
``fakevm`` (one per running fake VM), ``init`` (the testkit's PID 1, not part of
the product) and ``other`` (OS scripts, CLI commands, helpers run by noded).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.testkit.cluster import Testkit

KIB = 1024


def classify(pid: int) -> str | None:
    """Role of host process `pid` from its argv; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    text = " ".join(argv)
    if "corral-masterd" in text:
        return "masterd"
    if "corral-noded" in text:
        return "noded"
    if "corral-fakevm" in text:
        return "fakevm"
    if "corral.testkit.nodeinit" in text:
        return "init"
    return "other"


def _start_time(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def daemon_pids(kit: Testkit, node: str) -> dict[int, str]:
    """Host pid -> role of the node's masterd and noded (the oldest of each).

    A daemon's forked child keeps the daemon's command line until it execs, so
    the command line alone would count a fork (a full copy of the daemon's RSS)
    as a second daemon; the oldest process of each role is the daemon.
    """
    best: dict[str, tuple[int, int]] = {}
    for pid in kit.node_pids(node):
        role = classify(pid)
        if role not in ("masterd", "noded"):
            continue
        started = _start_time(pid)
        if started is not None and (role not in best or started < best[role][0]):
            best[role] = (started, pid)
    return {pid: role for role, (_, pid) in best.items()}


def role_of(pid: int, daemons: dict[int, str]) -> str | None:
    """`classify`, except that only the real daemons count as masterd/noded."""
    if pid in daemons:
        return daemons[pid]
    role = classify(pid)
    return "other" if role in ("masterd", "noded") else role


def status_kib(pid: int, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Selected ``/proc/<pid>/status`` lines in KiB (empty when the process is gone)."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in keys:
                    found[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return found


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Snapshot:
    """Memory per role at one instant (KiB); `count` processes per role."""

    rss: dict[str, int] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    daemon_pss: dict[str, int] = field(default_factory=dict)
    daemon_hwm: dict[str, int] = field(default_factory=dict)


def snapshot(kit: Testkit, node: str, with_pss: bool = True) -> Snapshot:
    snap = Snapshot()
    daemons = daemon_pids(kit, node)
    for pid in kit.node_pids(node):
        role = role_of(pid, daemons)
        if role is None:
            continue
        values = status_kib(pid)
        if "VmRSS" not in values:
            continue
        snap.rss[role] = snap.rss.get(role, 0) + values["VmRSS"]
        snap.count[role] = snap.count.get(role, 0) + 1
        if role in ("masterd", "noded"):
            snap.daemon_hwm[role] = values.get("VmHWM", 0)
            if with_pss:
                pss = pss_kib(pid)
                if pss is not None:
                    snap.daemon_pss[role] = pss
    return snap


class Sampler:
    """Samples the node every `interval` s in a thread; keeps the peak per role.

    Peaks are per role over time (``masterd`` peak, ``noded`` peak, ...) plus
    the peak of masterd+noded together and of every non-init process together.
    """

    def __init__(self, kit: Testkit, node: str, interval: float = 0.05) -> None:
        self.kit = kit
        self.node = node
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.peak_count: dict[str, int] = {}
        self.peak_daemons = 0
        self.peak_all = 0
        self.samples = 0
        self._roles: dict[int, str] = {}
        self._daemons: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._daemons = daemon_pids(self.kit, self.node)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _sample(self) -> None:
        rss: dict[str, int] = {}
        count: dict[str, int] = {}
        try:
            pids = self.kit.node_pids(self.node)
        except Exception:  # the node went away: nothing to sample
            return
        for pid in pids:
            role = self._roles.get(pid)
            if role is None:
                role = role_of(pid, self._daemons)
                if role is None:
                    continue
                if role != "other":  # a fork may still exec into something else
                    self._roles[pid] = role
            value = status_kib(pid, ("VmRSS",)).get("VmRSS")
            if value is None:
                continue
            rss[role] = rss.get(role, 0) + value
            count[role] = count.get(role, 0) + 1
        self.samples += 1
        for role, value in rss.items():
            self.peak[role] = max(self.peak.get(role, 0), value)
        for role, value in count.items():
            self.peak_count[role] = max(self.peak_count.get(role, 0), value)
        self.peak_daemons = max(self.peak_daemons, rss.get("masterd", 0) + rss.get("noded", 0))
        self.peak_all = max(self.peak_all, sum(v for r, v in rss.items() if r != "init"))


def cpu_seconds(kit: Testkit, node: str) -> dict[str, float]:
    """CPU time used so far per role (utime+stime plus waited-for children), seconds.

    ``masterd_children``/``noded_children`` repeat the children's part alone.

    Children count once they are reaped: noded's OS scripts and the short-lived
    parent of each fake VM (the VM itself is a grandchild, counted as ``fakevm``).
    """
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    daemons = daemon_pids(kit, node)
    for pid in kit.node_pids(node):
        role = role_of(pid, daemons)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if role is None:
            continue
        own = (int(fields[11]) + int(fields[12])) / ticks_per_s
        children = (int(fields[13]) + int(fields[14])) / ticks_per_s
        used[role] = used.get(role, 0.0) + own + children
        if role in ("masterd", "noded"):
            used[role + "_children"] = used.get(role + "_children", 0.0) + children
    return used


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat (for a share)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
