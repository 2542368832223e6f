"""Names, addresses and file locations of one testkit site (a directory D).

Everything the testkit creates is derived from D and a node's number, so every
command (``up``, ``exec``, ``crash``, ``down`` ...) run later, possibly by
another process, finds the same things again:

* node ``nodeN`` is ``nodeN.project.edu``, IP ``192.168.20.(221+N)`` on br-man
  (node1 = .222, node2 = .223 as in the paper); ``cluster.project.edu`` is the
  floating master IP .220, which nobody holds until ``gnt-cluster init``;
* ``D/nodeN/<absolute path>`` holds the node's private copy of a state path
  (``D/node1/etc/corral``, ``D/node1/var/log/corral/noded.log`` ...);
* the switch namespace name carries a short hash of D so two sites never collide.

Only the standard library is imported: the node init process imports this too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DOMAIN: Final = "project.edu"
MAN_PREFIX: Final = "192.168.20"
MAN_PREFIXLEN: Final = 24
CLUSTER_IP: Final = f"{MAN_PREFIX}.220"
CLUSTER_NAME: Final = f"cluster.{DOMAIN}"
NODED_PORT: Final = 1811
MAX_NODES: Final = 32

#: node-private directories bind-mounted over the real paths inside the node
NODE_STATE_DIRS: Final = (
    "/etc/corral",
    "/etc/ganeti",
    "/var/lib/corral",
    "/var/log/corral",
    "/iso",
)
#: where the node's sparse disk is mounted (file storage, volumes, OS definitions)
SRV_MOUNT: Final = "/srv/ganeti"
SRV_SUBDIRS: Final = ("file-storage", "shared-file-storage", "volumes", "os")
SHARED_MOUNT: Final = "/srv/ganeti/shared-file-storage"
#: top-level host directories a node sees through a copy-on-write overlay, so
#: whatever the product writes there stays in the node (the host's never change)
OVERLAY_TOPS: Final = ("etc", "var", "srv", "root")
#: networks: (bridge name, node-side link name, switch-side link suffix)
NETWORKS: Final = (("br-man", "eth0", "man"), ("br-public", "eth1", "pub"))

_NODE_RE: Final = re.compile(r"^node([1-9][0-9]*)(?:\." + re.escape(DOMAIN) + r")?$")


def node_name(index: int) -> str:
    return f"node{index}"


def node_index(name: str) -> int | None:
    """The N of ``nodeN`` or ``nodeN.project.edu``; None for anything else."""
    match = _NODE_RE.match(name)
    return int(match.group(1)) if match else None


def node_ip(index: int) -> str:
    return f"{MAN_PREFIX}.{221 + index}"


def node_fqdn(index: int) -> str:
    return f"{node_name(index)}.{DOMAIN}"


def hosts_text(count: int) -> str:
    """The hosts file every node sees as /etc/hosts."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{CLUSTER_IP}\t{CLUSTER_NAME} cluster",
    ]
    lines += [f"{node_ip(i)}\t{node_fqdn(i)} {node_name(i)}" for i in range(1, count + 1)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Layout:
    """File locations of the site rooted at `root` (an absolute path)."""

    root: Path

    @classmethod
    def of(cls, directory: str | Path) -> Layout:
        return cls(Path(directory).resolve())

    @property
    def kit_id(self) -> str:
        return hashlib.sha1(str(self.root).encode()).hexdigest()[:8]

    @property
    def switch_netns(self) -> str:
        """Named network namespace holding the switch bridges."""
        return f"corral-tk-{self.kit_id}"

    @property
    def state_file(self) -> Path:
        return self.root / "testkit.json"

    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts"

    @property
    def shared_dir(self) -> Path:
        """Backs /srv/ganeti/shared-file-storage on every node."""
        return self.root / "shared"

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def node_path(self, name: str, path: str) -> Path:
        """Host location of the node's private copy of absolute `path`."""
        return self.node_dir(name) / path.lstrip("/")

    def disk_image(self, name: str) -> Path:
        return self.node_dir(name) / "disk.img"

    def init_log(self, name: str) -> Path:
        return self.node_dir(name) / "init.log"

    def init_spec(self, name: str) -> Path:
        return self.node_dir(name) / "init-spec.json"

    def new_root(self, name: str) -> Path:
        """Mount point of the node's root tmpfs (empty when seen from the host)."""
        return self.node_dir(name) / ".root"

    def overlay_dir(self, name: str, top: str) -> Path:
        """Holds ``upper`` and ``work`` of the node's overlay over ``/top``."""
        return self.node_dir(name) / ".overlay" / top

    def noded_log(self, name: str) -> Path:
        return self.node_path(name, "/var/log/corral/noded.log")
