"""`NodeContext`: what every backend function receives.

It holds the node's `Paths`, its name, the fingerprint of the certificate noded
currently serves (needed by the join handshake), cached driver objects and the
small amount of in-memory state some calls need between requests (join nonces,
open file streams). Everything that must survive a noded restart lives in files
instead (VM runtime files, ssconf, certificates).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corral.paths import Paths

if TYPE_CHECKING:
    from corral.hypervisor.base import Hypervisor

# Node RPC protocol version (bumped on incompatible changes of the call table)
PROTOCOL_VERSION = 1


@dataclass
class FileStream:
    """One file being received by `file_stream_*` (temp file, then rename)."""

    path: str
    tmp_path: str
    size: int
    mode: int
    mtime: float
    atime: float
    fd: int
    received: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class NodeContext:
    paths: Paths
    node_name: str = field(default_factory=socket.gethostname)
    # Fingerprint of the certificate noded serves right now (set by the server)
    serving_fingerprint: str = ""
    # join nonce issued by node_join_challenge -> (master nonce, expiry)
    join_nonces: dict[str, tuple[str, float]] = field(default_factory=dict)
    streams: dict[str, FileStream] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _hypervisors: dict[str, Hypervisor] = field(default_factory=dict)
    # Set by backend calls that change the TLS material (join/leave); the server
    # reloads its contexts after answering.
    tls_changed: bool = False
    # True while the server serves the cluster certificate (mutual TLS); set by
    # the server. Unjoined connections must authenticate a join themselves.
    server_joined: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def hypervisor(self, name: str) -> Hypervisor:
        """The driver object for hypervisor `name` (created once, then cached)."""
        with self.lock:
            hv = self._hypervisors.get(name)
            if hv is None:
                from corral import errors
                from corral.hypervisor import get_hypervisor

                try:
                    hv = get_hypervisor(name, self.paths)
                except KeyError as err:
                    raise errors.HypervisorError(f"Unknown hypervisor '{name}'") from err
                self._hypervisors[name] = hv
            return hv
