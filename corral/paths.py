"""File-system locations, gathered in one object handed to the code that needs them.

Production uses the Ganeti-like defaults; tests build a `Paths` rooted in a
temporary directory (`Paths.under(tmp)`), and the testkit bind-mounts per-node
directories over the real locations so the product runs with its real paths.
"""

from __future__ import annotations

from pathlib import Path

import msgspec


class Paths(msgspec.Struct, frozen=True, kw_only=True):
    """Where corral keeps its state on one node."""

    etc_dir: str = "/etc/corral"
    ganeti_etc_dir: str = "/etc/ganeti"
    data_dir: str = "/var/lib/corral"
    run_dir: str = "/var/run/corral"
    log_dir: str = "/var/log/corral"
    os_search_path: tuple[str, ...] = (
        "/srv/ganeti/os",
        "/usr/local/lib/ganeti/os",
        "/usr/lib/ganeti/os",
        "/usr/share/ganeti/os",
    )
    file_storage_dir: str = "/srv/ganeti/file-storage"
    shared_file_storage_dir: str = "/srv/ganeti/shared-file-storage"
    # Where the file-backed test replication backend keeps its "logical volumes"
    volumes_dir: str = "/srv/ganeti/volumes"
    hooks_dir: str = "/etc/ganeti/hooks"

    @classmethod
    def under(cls, root: str | Path) -> Paths:
        """All paths below `root` (for unit tests)."""
        r = Path(root)

        def p(sub: str) -> str:
            return str(r / sub.lstrip("/"))

        return cls(
            etc_dir=p("/etc/corral"),
            ganeti_etc_dir=p("/etc/ganeti"),
            data_dir=p("/var/lib/corral"),
            run_dir=p("/var/run/corral"),
            log_dir=p("/var/log/corral"),
            os_search_path=(p("/srv/ganeti/os"), p("/usr/share/ganeti/os")),
            file_storage_dir=p("/srv/ganeti/file-storage"),
            shared_file_storage_dir=p("/srv/ganeti/shared-file-storage"),
            volumes_dir=p("/srv/ganeti/volumes"),
            hooks_dir=p("/etc/ganeti/hooks"),
        )

    # -- derived locations -------------------------------------------------
    @property
    def config_file(self) -> str:
        return f"{self.data_dir}/config.data"

    @property
    def queue_db(self) -> str:
        return f"{self.data_dir}/queue.sqlite"

    @property
    def ssconf_dir(self) -> str:
        return self.data_dir

    @property
    def master_socket(self) -> str:
        """The local API socket. Unix socket paths are limited to 107 bytes, so a
        run dir nested deeply (test roots) gets a short stand-in under /tmp,
        derived from the run dir so every process finds the same one."""
        path = f"{self.run_dir}/socket/corral-master"
        if len(path.encode()) <= 100:
            return path
        import hashlib

        digest = hashlib.sha256(self.run_dir.encode()).hexdigest()[:16]
        return f"/tmp/corral-master-{digest}.sock"

    @property
    def ca_cert(self) -> str:
        return f"{self.etc_dir}/ca.pem"

    @property
    def ca_key(self) -> str:
        """CA private key: only on the master and master candidates."""
        return f"{self.etc_dir}/ca.key"

    @property
    def node_cert(self) -> str:
        return f"{self.etc_dir}/node.pem"

    @property
    def node_key(self) -> str:
        return f"{self.etc_dir}/node.key"

    @property
    def crl_file(self) -> str:
        return f"{self.etc_dir}/revoked.json"

    @property
    def join_token_file(self) -> str:
        """Pre-shared join token (seeded by the testkit or by the admin)."""
        return f"{self.etc_dir}/join.token"

    @property
    def node_hardware_file(self) -> str:
        """Optional declared hardware of this node (testkit: memory, cpus)."""
        return f"{self.etc_dir}/node-hardware.json"

    @property
    def noded_pidfile(self) -> str:
        return f"{self.run_dir}/corral-noded.pid"

    @property
    def masterd_pidfile(self) -> str:
        return f"{self.run_dir}/corral-masterd.pid"

    @property
    def instance_run_dir(self) -> str:
        """Per-VM runtime files (pidfile, QMP socket, runtime JSON)."""
        return f"{self.run_dir}/instances"

    @property
    def os_log_dir(self) -> str:
        return f"{self.log_dir}/os"


DEFAULT_PATHS = Paths()
