"""Parser of ``/proc/drbd`` (DRBD 8.3/8.4), as Ganeti's DRBD8Info/DRBD8Status.

A minor's block is its state line plus indented continuation lines::

     0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
        ns:1048576 nr:0 dw:0 dr:1049600 al:0 bm:64 lo:0 pe:1 ua:0 ap:0 ep:1 wo:f oos:3145728
            [====>...............] sync'ed: 25.1% (3072/4096)M
            finish: 0:00:53 speed: 58,988 (58,988) K/sec

The parse is pure (text in, structs out) so it is tested with recorded samples.
"""

from __future__ import annotations

import re

import msgspec

_VERSION_RE = re.compile(r"^version:\s*(\d+)\.(\d+)\.(\d+)")
_MINOR_RE = re.compile(r"^\s*(\d+):\s*cs:(\S+)(.*)$")
_ROLE_RE = re.compile(r"\b(?:ro|st):(\w+)/(\w+)")
_DISK_RE = re.compile(r"\bds:(\w+)/(\w+)")
_SYNC_RE = re.compile(r"sync'ed:\s*([0-9.]+)%")
_FINISH_RE = re.compile(r"finish:\s*(\d+):(\d+):(\d+)")
_OOS_RE = re.compile(r"\boos:(\d+)")

CS_UNCONFIGURED = "Unconfigured"
CS_STANDALONE = "StandAlone"
CS_WFCONNECTION = "WFConnection"
CS_CONNECTED = "Connected"
CS_SYNC = frozenset({"SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT"})
DS_UPTODATE = "UpToDate"
DS_DISKLESS = "Diskless"
RO_PRIMARY = "Primary"


class DrbdMinorStatus(msgspec.Struct, kw_only=True):
    """State of one minor (Ganeti's DRBD8Status)."""

    minor: int
    cstatus: str
    lrole: str | None = None
    rrole: str | None = None
    ldisk: str | None = None
    rdisk: str | None = None
    sync_percent: float | None = None
    est_time: int | None = None  # seconds
    oos_kib: int | None = None

    @property
    def is_in_use(self) -> bool:
        return self.cstatus != CS_UNCONFIGURED

    @property
    def is_standalone(self) -> bool:
        return self.cstatus == CS_STANDALONE

    @property
    def is_wfconn(self) -> bool:
        return self.cstatus == CS_WFCONNECTION

    @property
    def is_connected(self) -> bool:
        return self.cstatus == CS_CONNECTED

    @property
    def is_in_resync(self) -> bool:
        return self.cstatus in CS_SYNC

    @property
    def is_primary(self) -> bool:
        return self.lrole == RO_PRIMARY

    @property
    def peer_is_primary(self) -> bool:
        return self.rrole == RO_PRIMARY

    @property
    def is_disk_uptodate(self) -> bool:
        return self.ldisk == DS_UPTODATE

    @property
    def is_peer_disk_uptodate(self) -> bool:
        return self.rdisk == DS_UPTODATE

    @property
    def is_diskless(self) -> bool:
        return self.ldisk == DS_DISKLESS


def parse_version(text: str) -> tuple[int, int, int] | None:
    for line in text.splitlines():
        m = _VERSION_RE.match(line)
        if m:
            return int(m.group(1)), int(m.group(2)), int(m.group(3))
    return None


def parse_proc_drbd(text: str) -> dict[int, DrbdMinorStatus]:
    """All minors listed in `text`, keyed by minor number."""
    blocks: dict[int, list[str]] = {}
    current: int | None = None
    for line in text.splitlines():
        m = _MINOR_RE.match(line)
        if m:
            current = int(m.group(1))
            blocks[current] = [line]
        elif current is not None and line[:1].isspace() and line.strip():
            blocks[current].append(line)
        else:
            current = None
    return {minor: _parse_block(minor, lines) for minor, lines in blocks.items()}


def _parse_block(minor: int, lines: list[str]) -> DrbdMinorStatus:
    head = _MINOR_RE.match(lines[0])
    assert head is not None
    joined = " ".join(lines)
    status = DrbdMinorStatus(minor=minor, cstatus=head.group(2))
    role = _ROLE_RE.search(joined)
    if role:
        status.lrole, status.rrole = role.group(1), role.group(2)
    disk = _DISK_RE.search(joined)
    if disk:
        status.ldisk, status.rdisk = disk.group(1), disk.group(2)
    sync = _SYNC_RE.search(joined)
    if sync:
        status.sync_percent = float(sync.group(1))
    elif status.is_in_resync:
        status.sync_percent = 0.0  # paused or just starting: no percentage line yet
    finish = _FINISH_RE.search(joined)
    if finish:
        h, m, s = (int(x) for x in finish.groups())
        status.est_time = h * 3600 + m * 60 + s
    oos = _OOS_RE.search(joined)
    if oos:
        status.oos_kib = int(oos.group(1))
    return status
