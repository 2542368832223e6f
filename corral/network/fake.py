"""An in-memory (optionally file-backed) model of bridges and taps.

Behaves like `LinuxNetwork` (same conformance suite) without touching the
host. With a `state_file`, the model lives in a JSON file guarded by flock, so
several processes (a test and a noded it started) share one view.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from corral.errors import NetworkError
from corral.network.base import IFNAMSIZ, NetworkDriver

# links: name -> {"kind": "bridge"|"tun"|"other", "master": str|None}
State = dict[str, dict[str, Any]]


class FakeNetwork(NetworkDriver):
    NAME = "fake"

    def __init__(self, state_file: str | None = None, interfaces: tuple[str, ...] = ("lo",)):
        self.state_file = state_file
        self._memory: State = {name: {"kind": "other", "master": None} for name in interfaces}
        if state_file and not os.path.exists(state_file):
            with self._state() as state:
                state.update(self._memory)

    @contextlib.contextmanager
    def _state(self) -> Iterator[State]:
        """The model, locked and saved back for file-backed instances."""
        if not self.state_file:
            yield self._memory
            return
        fd = os.open(self.state_file + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with open(self.state_file) as handle:
                    state: State = json.load(handle)
            except FileNotFoundError:
                state = {}
            yield state
            tmp = self.state_file + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(state, handle)
            os.replace(tmp, self.state_file)
        finally:
            os.close(fd)

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or len(name) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
            raise NetworkError(f"Invalid interface name '{name}'")

    def add_interface(self, name: str) -> None:
        """Add a plain (non-bridge, non-tap) interface, e.g. eth0."""
        self._check_name(name)
        with self._state() as state:
            state.setdefault(name, {"kind": "other", "master": None})

    def bridge_exists(self, name: str) -> bool:
        with self._state() as state:
            return state.get(name, {}).get("kind") == "bridge"

    def link_exists(self, name: str) -> bool:
        with self._state() as state:
            return name in state

    def master_of(self, name: str) -> str | None:
        with self._state() as state:
            master = state.get(name, {}).get("master")
            return str(master) if master else None

    def list_taps(self) -> list[str]:
        with self._state() as state:
            return sorted(n for n, link in state.items() if link["kind"] == "tun")

    def create_bridge(self, name: str) -> None:
        self._check_name(name)
        with self._state() as state:
            link = state.get(name)
            if link is not None and link["kind"] != "bridge":
                raise NetworkError(f"Interface {name} exists and is not a bridge")
            state.setdefault(name, {"kind": "bridge", "master": None})

    def delete_bridge(self, name: str) -> None:
        with self._state() as state:
            link = state.get(name)
            if link is None:
                return
            if link["kind"] != "bridge":
                raise NetworkError(f"Interface {name} is not a bridge")
            del state[name]
            for other in state.values():
                if other.get("master") == name:
                    other["master"] = None

    def create_tap(self, name: str) -> None:
        self._check_name(name)
        with self._state() as state:
            link = state.get(name)
            if link is not None and link["kind"] != "tun":
                raise NetworkError(f"Interface {name} exists and is not a tap")
            state.setdefault(name, {"kind": "tun", "master": None})

    def delete_tap(self, name: str) -> None:
        with self._state() as state:
            link = state.get(name)
            if link is None:
                return
            if link["kind"] != "tun":
                raise NetworkError(f"Interface {name} is not a tap")
            del state[name]

    def attach_to_bridge(self, tap: str, bridge: str) -> None:
        with self._state() as state:
            if state.get(bridge, {}).get("kind") != "bridge":
                raise NetworkError(f"Bridge {bridge} does not exist")
            link = state.get(tap)
            if link is None:
                raise NetworkError(f"Interface {tap} does not exist")
            link["master"] = bridge

    def detach(self, tap: str) -> None:
        with self._state() as state:
            link = state.get(tap)
            if link is None:
                raise NetworkError(f"Interface {tap} does not exist")
            link["master"] = None
