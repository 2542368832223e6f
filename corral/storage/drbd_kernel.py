"""``drbd`` on kernel DRBD 8.4: drbdsetup/drbdmeta commands and /proc/drbd status.

Life cycle as Ganeti's DRBD8Dev: `create` makes the missing children and
initialises the metadata (``drbdmeta create-md``) on a free minor; `assemble`
attaches the children, applies the resync parameters and connects to the peer
(protocol C, shared secret); `open`/`close` switch primary/secondary;
`shutdown` is ``drbdsetup down``. Everything goes through a `CommandRunner`
and the status is parsed from ``/proc/drbd`` (path injectable for tests).
"""

from __future__ import annotations

import os
from typing import Any

from corral import constants as C
from corral import errors
from corral.paths import Paths
from corral.storage import drbd_cmdgen as cmdgen
from corral.storage.base import BlockDevice, DeviceContext, SyncStatus
from corral.storage.drbd import (
    DRBD_PARAMETERS,
    HMAC_ALG,
    DrbdPeers,
    check_children,
    create_missing_children,
    drbd_peers,
)
from corral.storage.drbd_proc import DrbdMinorStatus, parse_proc_drbd
from corral.storage.runner import CommandRunner, SubprocessRunner

PROC_DRBD = "/proc/drbd"
DRBD_MAJOR = 147


class KernelDRBD(BlockDevice):
    DEV_TYPE = C.LD_DRBD8
    BACKEND = "kernel"
    PARAMETERS = DRBD_PARAMETERS

    def __init__(
        self,
        disk: Any,
        ctx: DeviceContext,
        paths: Paths,
        children: list[BlockDevice] | None = None,
        runner: CommandRunner | None = None,
        proc_path: str = PROC_DRBD,
    ) -> None:
        super().__init__(disk, ctx, paths, children)
        self.runner = runner or SubprocessRunner()
        self.proc_path = proc_path

    # -- helpers ------------------------------------------------------------------
    @property
    def peers(self) -> DrbdPeers:
        return drbd_peers(self.disk.logical_id, self.ctx)

    @property
    def minor(self) -> int:
        return self.peers.own_minor

    def _params(self) -> dict[str, Any]:
        return {name: self.param(name) for name in self.PARAMETERS}

    def _status(self) -> DrbdMinorStatus | None:
        try:
            with open(self.proc_path, encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError as err:
            raise errors.BlockDeviceError(f"Can't read DRBD status: {err.strerror}") from err
        st = parse_proc_drbd(text).get(self.minor)
        return st if st is not None and st.is_in_use else None

    def _run(self, argv: list[str], what: str) -> None:
        self.runner.check(argv, what)

    # -- BlockDevice ----------------------------------------------------------------
    def create(self) -> None:
        data, meta = check_children(self.children)
        if self._status() is not None:
            raise errors.BlockDeviceError(
                f"DRBD minor {self.minor} already in use at Create() time"
            )
        made = create_missing_children(self.children)
        try:
            meta_path = meta.assemble()
            data.assemble()
            self._run(
                cmdgen.init_meta(self.minor, meta_path),
                f"Can't initialize meta device {meta_path}",
            )
        except errors.BlockDeviceError:
            for child in made:
                child.remove()
            raise

    def exists(self) -> bool:
        data, meta = check_children(self.children)
        return data.exists() and meta.exists()

    def assemble(self) -> str:
        data, meta = check_children(self.children)
        if self._status() is not None:
            return self.dev_path()
        p = self.peers
        params = self._params()
        data_path = data.assemble()
        meta_path = meta.assemble()
        try:
            for argv in cmdgen.local_init(self.minor, data_path, meta_path, self.disk.size, params):
                self._run(argv, f"Can't attach local disk to minor {self.minor}")
            self._run(
                cmdgen.sync_params(self.minor, params), "Can't set the synchronization parameters"
            )
            self._run(
                cmdgen.net_init(
                    self.minor, p.own_ip, p.port, p.peer_ip, p.port,
                    str(params["protocol"]), False, HMAC_ALG, p.secret, params,
                ),
                f"Can't setup network for minor {self.minor}",
            )  # fmt: skip
        except errors.BlockDeviceError:
            self.runner.run(cmdgen.down(self.minor))
            raise
        return self.dev_path()

    def shutdown(self) -> None:
        if self._status() is None:
            return
        self._run(cmdgen.down(self.minor), f"Can't shutdown drbd device {self.minor}")

    def remove(self) -> None:
        self.shutdown()
        for child in self.children:
            child.remove()

    def dev_path(self) -> str:
        return cmdgen.dev_path(self.minor)

    def open(self, force: bool = False) -> None:
        if self._status() is None:
            raise errors.BlockDeviceError(f"DRBD minor {self.minor} is not assembled")
        self._run(cmdgen.primary(self.minor, force), "Can't make drbd device primary")

    def close(self) -> None:
        if self._status() is None:
            raise errors.BlockDeviceError(f"DRBD minor {self.minor} is not assembled")
        self._run(cmdgen.secondary(self.minor), "Can't switch drbd device to secondary")

    def disconnect_net(self) -> None:
        p = self.peers
        st = self._status()
        if st is None or st.is_standalone:
            return
        self._run(
            cmdgen.disconnect(self.minor, p.own_ip, p.port, p.peer_ip, p.port),
            "Can't shutdown network",
        )

    def attach_net(self, multimaster: bool) -> None:
        p = self.peers
        params = self._params()
        st = self._status()
        if st is None:
            raise errors.BlockDeviceError(f"DRBD minor {self.minor} is not assembled")
        if not st.is_standalone:
            self.disconnect_net()
        self._run(
            cmdgen.net_init(
                self.minor, p.own_ip, p.port, p.peer_ip, p.port,
                str(params["protocol"]), multimaster, HMAC_ALG, p.secret, params,
            ),
            f"Can't setup network for minor {self.minor}",
        )  # fmt: skip

    def set_sync_params(self, params: dict[str, Any]) -> None:
        merged = self._params()
        merged.update(params)
        self._run(
            cmdgen.sync_params(self.minor, merged), "Can't set the synchronization parameters"
        )

    def rename(self, new_logical_id: list[Any]) -> None:
        """Only the config changes (new secondary, port); refused while assembled."""
        if self._status() is not None:
            raise errors.BlockDeviceError("Can't rename a DRBD device while it is assembled")
        self.disk.logical_id = list(new_logical_id)

    def grow(self, amount: int, dryrun: bool = False) -> None:
        data, _ = check_children(self.children)
        data.grow(amount, dryrun)
        if dryrun:
            return
        self.disk.size += amount
        if self._status() is not None:
            self._run(cmdgen.resize(self.minor, self.disk.size), "Can't resize drbd device")

    def get_sync_status(self) -> SyncStatus:
        st = self._status() if os.path.exists(self.proc_path) else None
        if st is None:
            return SyncStatus(dev_path=None, is_degraded=True, ldisk_status="unknown")
        if st.is_disk_uptodate:
            ldisk = "ok"
        elif st.is_diskless:
            ldisk = "faulty"
        else:
            ldisk = "unknown"
        connected = st.is_connected or st.is_in_resync
        return SyncStatus(
            dev_path=self.dev_path(),
            major=DRBD_MAJOR,
            minor=self.minor,
            sync_percent=st.sync_percent if st.is_in_resync else None,
            estimated_time=st.est_time if st.is_in_resync else None,
            is_degraded=not connected or not st.is_peer_disk_uptodate or not st.is_disk_uptodate,
            ldisk_status=ldisk,
        )
