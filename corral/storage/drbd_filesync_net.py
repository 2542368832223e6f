"""The filedrbd agent's network side: listening, connecting and the sync sessions.

Runs in the agent's network thread (see `drbd_filesync_agent` for the model).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from typing import Any

from corral.storage import drbd_filesync_proto as proto
from corral.storage.drbd_filesync_state import (
    CS_CONNECTED,
    CS_STANDALONE,
    CS_SYNCSOURCE,
    CS_SYNCTARGET,
    CS_WFCONNECTION,
    DS_INCONSISTENT,
    DS_UNKNOWN,
    DS_UPTODATE,
    ROLE_PRIMARY,
    ROLE_SECONDARY,
    ROLE_UNKNOWN,
    AgentState,
    log,
)
from corral.storage.fsutil import punch_hole


class NetAgent(AgentState):
    """Network thread of the agent: one session at a time, source or target."""

    # -- network thread ---------------------------------------------------------------
    def net_loop(self) -> None:
        listener: socket.socket | None = None
        bound: tuple[str, int] | None = None
        while not self.exiting:
            self.net_changed.clear()
            if self.stopping:  # no new session while shutting down
                self.net_changed.wait(0.1)
                continue
            with self.lock:
                enabled = bool(self.c("net"))
                addr = (str(self.c("own_ip")), int(self.c("port")))
                primary = self.role == ROLE_PRIMARY
                self.drop_session = False
            if not enabled:
                if listener is not None:
                    listener.close()
                    listener, bound = None, None
                with self.lock:
                    self.cstate, self.peer_role, self.peer_disk = (
                        CS_STANDALONE,
                        ROLE_UNKNOWN,
                        DS_UNKNOWN,
                    )
                self.net_changed.wait(0.5)
                continue
            if listener is None or bound != addr:
                if listener is not None:
                    listener.close()
                try:
                    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    listener.bind(addr)
                    listener.listen(4)
                    listener.settimeout(0.2)
                    bound = addr
                    self.net_error = None
                except OSError as err:
                    listener, bound = None, None
                    self.net_error = f"cannot listen on {addr[0]}:{addr[1]}: {err.strerror}"
                    log.warning("%s", self.net_error)
                    with self.lock:
                        self.cstate = CS_STANDALONE
                    self.net_changed.wait(1.0)
                    continue
            with self.lock:
                if self.session is None:
                    self.cstate, self.peer_role, self.peer_disk = (
                        CS_WFCONNECTION,
                        ROLE_UNKNOWN,
                        DS_UNKNOWN,
                    )
            if primary:
                self._try_connect()
            else:
                self._try_accept(listener)

    def _end_session(self, sock: socket.socket | None, why: str, failed: bool = False) -> None:
        if sock is not None:
            sock.close()
        with self.lock:
            if failed:
                self.net_error = why
            if self.session is not None:
                log.info("session ended: %s", why)
                self.sessions_ended += 1
            elif failed:
                log.warning("connection with the peer failed: %s", why)
            self.session = None
            self.sync = None
            self.cstate = CS_WFCONNECTION if self.c("net") else CS_STANDALONE
            self.peer_role, self.peer_disk = ROLE_UNKNOWN, DS_UNKNOWN
        self.wake.set()

    def _try_connect(self) -> None:
        peer = (str(self.c("peer_ip")), int(self.c("port")))
        try:
            sock = socket.create_connection(
                peer, timeout=1.0, source_address=(str(self.c("own_ip")), 0)
            )
        except OSError:
            self.net_changed.wait(0.5 + random.random())
            return
        try:
            sock.settimeout(float(self.c("timeout") or 5))
            proto.auth_client(sock, str(self.c("secret")))
            self.source_session(sock)
        except (OSError, proto.ProtocolError) as err:
            self._end_session(sock, str(err), failed=True)
            self.net_changed.wait(0.5 + random.random())
        else:
            self._end_session(sock, "closed")

    def _try_accept(self, listener: socket.socket | None) -> None:
        assert listener is not None
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            return
        except OSError:
            return
        try:
            sock.settimeout(float(self.c("timeout") or 5))
            proto.auth_server(sock, str(self.c("secret")))
            self.target_session(sock)
        except (OSError, proto.ProtocolError) as err:
            self._end_session(sock, str(err), failed=True)
        else:
            self._end_session(sock, "closed")

    def _exchange_state(self, sock: socket.socket, connector: bool) -> dict[str, Any]:
        with self.lock:
            mine = {"role": self.role, "disk": self.disk, "size": self._size()}
        if connector:
            proto.send_json(sock, proto.STATE, mine)
            peer: dict[str, Any] = proto.recv_json(sock, proto.STATE)
        else:
            peer = proto.recv_json(sock, proto.STATE)
            proto.send_json(sock, proto.STATE, mine)
        if peer.get("role") == ROLE_PRIMARY and mine["role"] == ROLE_PRIMARY:
            raise proto.ProtocolError("split-brain detected: both nodes are primary")
        return peer

    def _size(self) -> int:
        return os.stat(self.c("data_path")).st_size

    # -- source ------------------------------------------------------------------------
    def source_session(self, sock: socket.socket) -> None:
        peer = self._exchange_state(sock, connector=True)
        raw_map = proto.recv_json(sock, proto.MAP)
        peer_map = {int(k): str(v) for k, v in raw_map.items()}
        full = peer.get("disk") != DS_UPTODATE
        with self.lock:
            self.session = "source"
            self.peer_role = str(peer.get("role", ROLE_UNKNOWN))
            self.peer_disk = str(peer.get("disk", DS_UNKNOWN))
        log.info("connected to peer as sync source (peer disk %s)", self.peer_disk)
        fd = os.open(self.c("data_path"), os.O_RDONLY)
        try:
            # Stamp before each pass: a write during the pass triggers another one.
            stamp = self._stamp()
            sent = self._pass(sock, fd, peer_map, resync=True, paced=full)
            last_ping = time.monotonic()
            while True:
                with self.lock:
                    drop = self.drop_session or self.exiting
                    stopping = self.stopping
                handover = self.handover.is_set()
                if handover or stopping:
                    sent = self._pass(sock, fd, sent, resync=False, paced=False)
                    proto.send_frame(sock, proto.HANDOVER if handover else proto.BYE)
                    if handover:
                        with self.lock:
                            self.role = ROLE_SECONDARY
                        self.handover.clear()
                        self.handover_done.set()
                    return
                if drop:
                    proto.send_frame(sock, proto.BYE)
                    return
                current = self._stamp()
                if current != stamp or stamp[0] == -1:
                    stamp = current
                    sent = self._pass(sock, fd, sent, resync=False, paced=False)
                    last_ping = time.monotonic()
                elif time.monotonic() - last_ping >= float(self.c("ping_interval") or 1):
                    proto.send_frame(sock, proto.PING)
                    self._expect(sock, proto.PONG)
                    last_ping = time.monotonic()
                self.net_changed.wait(float(self.c("poll_interval") or 0.5))
                self.net_changed.clear()
        finally:
            os.close(fd)

    def _stamp(self) -> tuple[int, int]:
        """(mtime, size) of the data file; a very recent mtime compares unequal.

        File timestamps tick coarsely (one jiffy), so a write right after this
        stat could keep the same mtime; a stamp younger than 100 ms is marked
        unsettled (-1) and forces one more pass.
        """
        st = os.stat(self.c("data_path"))
        if time.time_ns() - st.st_mtime_ns < 100_000_000:
            return -1, st.st_size
        return st.st_mtime_ns, st.st_size

    def _expect(self, sock: socket.socket, ftype: int) -> bytes:
        while True:
            got, payload = proto.recv_frame(sock)
            if got == ftype:
                return payload
            if got == proto.BYE:
                raise proto.ProtocolError("peer disconnected")
            raise proto.ProtocolError(f"unexpected frame {got} (wanted {ftype})")

    def _pass(
        self, sock: socket.socket, fd: int, peer_map: dict[int, str], resync: bool, paced: bool
    ) -> dict[int, str]:
        """Send what differs from `peer_map`; return the peer's new map (= ours)."""
        size = os.fstat(fd).st_size
        nchunks = (size + proto.CHUNK - 1) // proto.CHUNK
        data_idx = set(proto.data_chunks(fd, size))
        proto.send_json(
            sock,
            proto.PROGRESS,
            {"kind": "resync" if resync else "update", "done": 0, "total": size},
        )
        start = time.monotonic()
        if resync:
            with self.lock:
                self.cstate = CS_SYNCSOURCE
                self.sync = {"done": 0, "total": size, "start": start}
                if paced:
                    self.peer_disk = DS_INCONSISTENT
        hole_speedup = max(1.0, float(self.c("hole_speedup") or 1))
        budget = 0.0  # bytes charged against resync-rate
        new_map: dict[int, str] = {}
        last_report = start
        for idx in range(nchunks):
            off = idx * proto.CHUNK
            length = min(proto.CHUNK, size - off)
            h: str | None = None
            data = b""
            if idx in data_idx:
                data = proto.read_chunk(fd, idx, size)
                h = proto.chunk_hash(data)
            if h is not None:
                new_map[idx] = h
                if peer_map.get(idx) != h:
                    proto.send_data(sock, off, data)
                    budget += length
                elif paced:
                    budget += length / hole_speedup
            else:
                if idx in peer_map:
                    proto.send_json(sock, proto.PUNCH, {"offset": off, "length": length})
                if paced:
                    budget += length / hole_speedup
            rate = self.rate_bytes()
            if resync and rate > 0 and not (self.handover.is_set() or self.stopping):
                ahead = budget / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(min(ahead, 1.0))
            now = time.monotonic()
            if now - last_report >= 0.2 or idx == nchunks - 1:
                last_report = now
                if resync:
                    with self.lock:
                        if self.sync is not None:
                            self.sync["done"] = off + length
                    self.wake.set()
                kind = "resync" if resync else "update"
                proto.send_json(
                    sock, proto.PROGRESS, {"kind": kind, "done": off + length, "total": size}
                )
                with self.lock:
                    if self.drop_session or self.exiting:
                        raise proto.ProtocolError("resync interrupted")
        proto.send_frame(sock, proto.DONE)
        self._expect(sock, proto.ACK)
        with self.lock:
            self.cstate = CS_CONNECTED
            self.sync = None
            self.peer_disk = DS_UPTODATE
        self.wake.set()
        if resync:
            log.info("resync done (%d bytes in %.1fs)", size, time.monotonic() - start)
        return new_map

    # -- target ------------------------------------------------------------------------
    def target_session(self, sock: socket.socket) -> None:
        peer = self._exchange_state(sock, connector=False)
        peer_size = int(peer.get("size", 0))
        fd = os.open(self.c("data_path"), os.O_RDWR)
        try:
            if os.fstat(fd).st_size < peer_size:
                os.ftruncate(fd, peer_size)
            size = os.fstat(fd).st_size
            # What we know each chunk holds. In dual-primary mode (live migration)
            # a chunk whose content no longer matches was written here since, by
            # the VM that now runs here: it is newer than a late update from the
            # source, so local writes win.
            known = proto.chunk_map(fd, size)
            proto.send_json(sock, proto.MAP, {str(k): v for k, v in known.items()})
            with self.lock:
                self.session = "target"
                self.peer_role = str(peer.get("role", ROLE_UNKNOWN))
                self.peer_disk = str(peer.get("disk", DS_UNKNOWN))
            log.info("connected to peer as sync target")
            kind = "update"
            modified = False
            while True:
                with self.lock:
                    if self.drop_session or self.exiting or self.stopping:
                        return
                ftype, payload = proto.recv_frame(sock)
                if ftype in (proto.DATA, proto.PUNCH):
                    if ftype == proto.DATA:
                        off, data = proto.split_data(payload)
                        length = len(data)
                    else:
                        msg = json.loads(payload)
                        off, length, data = int(msg["offset"]), int(msg["length"]), b""
                    idx = off // proto.CHUNK
                    if self.role == ROLE_PRIMARY and self._locally_changed(fd, idx, known):
                        log.info("chunk %d was written locally since; keeping it", idx)
                        continue
                    if kind == "resync" and not modified:
                        with self.lock:
                            self.set_disk(DS_INCONSISTENT)
                    modified = True
                    if data:
                        os.pwrite(fd, data, off)
                        h = proto.chunk_hash(data)
                    else:
                        punch_hole(fd, off, length)
                        h = None
                    if h is None:
                        known.pop(idx, None)
                    else:
                        known[idx] = h
                elif ftype == proto.PROGRESS:
                    msg = json.loads(payload)
                    if msg.get("kind") == "resync":
                        with self.lock:
                            if kind != "resync" or self.sync is None:
                                self.sync = {
                                    "done": 0,
                                    "total": msg["total"],
                                    "start": time.monotonic(),
                                }
                                self.cstate = CS_SYNCTARGET
                            self.sync["done"] = int(msg["done"])
                            self.sync["total"] = int(msg["total"])
                        self.wake.set()
                    kind = str(msg.get("kind", "update"))
                elif ftype == proto.DONE:
                    os.fsync(fd)
                    with self.lock:
                        self.set_disk(DS_UPTODATE)
                        self.cstate = CS_CONNECTED
                        self.sync = None
                    proto.send_frame(sock, proto.ACK)
                    kind, modified = "update", False
                    self.wake.set()
                elif ftype == proto.PING:
                    proto.send_frame(sock, proto.PONG)
                elif ftype == proto.HANDOVER:
                    with self.lock:
                        self.peer_role = ROLE_SECONDARY
                    return
                elif ftype == proto.BYE:
                    return
                else:
                    raise proto.ProtocolError(f"unexpected frame {ftype}")
        finally:
            os.close(fd)

    @staticmethod
    def _locally_changed(fd: int, idx: int, known: dict[int, str]) -> bool:
        size = os.fstat(fd).st_size
        if idx * proto.CHUNK >= size:
            return False
        return proto.chunk_hash(proto.read_chunk(fd, idx, size)) != known.get(idx)
