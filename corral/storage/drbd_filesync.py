"""``drbd`` TEST backend "filedrbd": real replication of file volumes, no kernel module.

Used automatically on nodes without ``/proc/drbd`` (this machine, the testkit).
The disk objects are Ganeti's DRBD8 ones unchanged; the children are
file-backed volumes (`lvm.FileVolume`, ``<volumes_dir>/<vg>/<uuid>.disk0_data``
and ``_meta``) on both nodes. Replication is done by one agent process per
assembled device (`drbd_filesync_agent`), recorded by a locked pid file in
``<run_dir>/filedrbd/`` so a restarted noded finds it again; a node crash kills
it like a kernel device disappears on reboot.

Mapping of the DRBD life cycle:

* `create`: create missing children, write the meta header (Inconsistent) --
  ``drbdmeta create-md``.
* `assemble`: start the agent (Secondary, network on) -- ``attach`` + ``connect``.
* `open(force)`: Primary; refused if the peer is primary and connected (unless
  dual-primary was allowed by `attach_net(True)`, or force), or if the local
  data is not UpToDate (unless force, which declares it UpToDate, as
  ``primary --force`` does at creation). `close`: Secondary, after flushing
  pending changes to the peer.
* `disconnect_net` / `attach_net(multimaster)`: StandAlone / reconnect.
* `shutdown`: flush and stop the agent -- ``drbdsetup down``.
* `get_sync_status`: from the agent's status file: sync percent and estimate
  while resyncing, degraded unless connected with both disks UpToDate.

`dev_path()` is the data volume's path (there is no kernel device here).
Parameters: ``resync-rate`` (KiB/s, Ganeti's diskparam) paces the resync;
``filedrbd-hole-speedup`` (default 16) makes holes that many times cheaper
than data, so a fresh sparse disk syncs quickly while progress is still
reported over the whole size (1 = pace holes like data, as kernel DRBD's full
initial sync).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from typing import Any

from corral import constants as C
from corral import errors
from corral.paths import Paths
from corral.storage import drbd_filesync_state as fstate
from corral.storage.base import BlockDevice, DeviceContext, StorageParam, SyncStatus
from corral.storage.drbd import (
    DRBD_PARAMETERS,
    DrbdPeers,
    check_children,
    create_missing_children,
    drbd_peers,
)

DRBD_MAJOR = 147
FILEDRBD_PARAMETERS: dict[str, StorageParam] = {
    **DRBD_PARAMETERS,
    "filedrbd-hole-speedup": StorageParam(
        kind="int", default=16, doc="filedrbd: holes resync this many times faster than data"
    ),
    "filedrbd-timeout": StorageParam(
        kind="int", default=5, doc="filedrbd: seconds without an answer before the peer is lost"
    ),
}
_COMMAND_TIMEOUT = 30.0
_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    """Collect exited agents we started (no zombies in noded)."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


class FileDRBD(BlockDevice):
    DEV_TYPE = C.LD_DRBD8
    BACKEND = "filedrbd"
    PARAMETERS = FILEDRBD_PARAMETERS

    def __init__(
        self,
        disk: Any,
        ctx: DeviceContext,
        paths: Paths,
        children: list[BlockDevice] | None = None,
    ) -> None:
        super().__init__(disk, ctx, paths, children)

    # -- helpers ------------------------------------------------------------------
    @property
    def peers(self) -> DrbdPeers:
        return drbd_peers(self.disk.logical_id, self.ctx)

    @property
    def files(self) -> dict[str, str]:
        return fstate.file_names(self.paths.run_dir, self.peers.own_minor)

    def _data_meta(self) -> tuple[BlockDevice, BlockDevice]:
        return check_children(self.children)

    def agent_pid(self) -> int | None:
        """Pid of this device's running agent, None when not assembled."""
        _reap()
        return fstate.agent_running(self.files["pid"])

    def _want(self, cmd: dict[str, Any] | None, gen: int) -> dict[str, Any]:
        p = self.peers
        data, meta = self._data_meta()
        rate = int(self.param("resync-rate"))
        return {
            "gen": gen,
            "cmd": cmd,
            "run_dir": self.paths.run_dir,
            "minor": p.own_minor,
            "disk_uuid": self.disk.uuid,
            "own_ip": p.own_ip,
            "peer_ip": p.peer_ip,
            "port": p.port,
            "secret": p.secret,
            "data_path": data.dev_path(),
            "meta_path": meta.dev_path(),
            "resync_rate": rate,
            "hole_speedup": int(self.param("filedrbd-hole-speedup")),
            "timeout": int(self.param("filedrbd-timeout")),
            "net": True,
            "multimaster": False,
        }

    def _command(self, cmd: dict[str, Any] | None, **changes: Any) -> dict[str, Any]:
        """Rewrite the want file (bump gen), signal the agent, wait for the result."""
        files = self.files
        pid = self.agent_pid()
        if pid is None:
            raise errors.BlockDeviceError(f"DRBD minor {self.peers.own_minor} is not assembled")
        with open(files["lock"], "a") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            current = fstate.read_json(files["want"]) or {}
            gen = int(current.get("gen", 0)) + 1
            want = {**current, **self._want(cmd, gen)}
            want["net"] = current.get("net", True)
            want["multimaster"] = current.get("multimaster", False)
            want.update(changes)
            want["gen"], want["cmd"] = gen, cmd
            fstate.write_json_atomic(files["want"], want)
        self._signal(pid)
        deadline = time.monotonic() + _COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            st = fstate.read_json(files["status"])
            if isinstance(st, dict) and int(st.get("gen", 0)) >= gen:
                if st.get("error"):
                    raise errors.BlockDeviceError(str(st["error"]))
                return st
            if self.agent_pid() is None:
                raise errors.BlockDeviceError(
                    f"DRBD minor {self.peers.own_minor}: replication agent exited"
                )
            time.sleep(0.05)
        raise errors.BlockDeviceError(
            f"DRBD minor {self.peers.own_minor}: replication agent did not answer"
        )

    @staticmethod
    def _signal(pid: int) -> None:
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)

    def _status(self) -> dict[str, Any] | None:
        if self.agent_pid() is None:
            return None
        st = fstate.read_json(self.files["status"])
        return st if isinstance(st, dict) else None

    # -- BlockDevice ----------------------------------------------------------------
    def create(self) -> None:
        _, meta = self._data_meta()
        if self.agent_pid() is not None:
            raise errors.BlockDeviceError(
                f"DRBD minor {self.peers.own_minor} already in use at Create() time"
            )
        if meta.exists() and fstate.read_meta(meta.dev_path()):
            raise errors.BlockDeviceError(
                f"DRBD device {self.disk.uuid} already exists (metadata initialised)"
            )
        made = create_missing_children(self.children)
        try:
            fstate.write_meta(meta.assemble(), disk=fstate.DS_INCONSISTENT, uuid=self.disk.uuid)
        except (OSError, ValueError, errors.BlockDeviceError) as err:
            for child in made:
                child.remove()
            raise errors.BlockDeviceError(f"Can't initialize meta device: {err}") from err

    def exists(self) -> bool:
        data, meta = self._data_meta()
        return data.exists() and meta.exists()

    def assemble(self) -> str:
        data, meta = self._data_meta()
        data_path = data.assemble()
        meta.assemble()
        if self.agent_pid() is not None:
            return data_path
        files = self.files
        os.makedirs(os.path.dirname(files["want"]), exist_ok=True)
        old = fstate.read_json(files["want"]) or {}
        want = self._want(None, int(old.get("gen", 0)) + 1)
        fstate.write_json_atomic(files["want"], want)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(files["status"])
        with open(files["log"], "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "corral.storage.drbd_filesync_agent", files["want"]],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                start_new_session=True,
                close_fds=True,
            )
        _children[proc.pid] = proc
        deadline = time.monotonic() + _COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            st = fstate.read_json(files["status"])
            if isinstance(st, dict) and st.get("pid") == proc.pid:
                return data_path
            if proc.poll() is not None:
                if self.agent_pid() is not None:  # lost a race with another assemble
                    return data_path
                raise errors.BlockDeviceError(
                    f"Can't assemble DRBD minor {self.peers.own_minor}: agent exited"
                    f" with code {proc.returncode} (see {files['log']})"
                )
            time.sleep(0.02)
        raise errors.BlockDeviceError(
            f"Can't assemble DRBD minor {self.peers.own_minor}: agent did not start"
        )

    def shutdown(self) -> None:
        pid = self.agent_pid()
        if pid is None:
            return
        with contextlib.suppress(errors.BlockDeviceError):
            self._command({"op": "stop"})
        deadline = time.monotonic() + _COMMAND_TIMEOUT
        while self.agent_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = self.agent_pid()
        if pid is not None and pid > 0:
            os.kill(pid, signal.SIGKILL)
            while self.agent_pid() is not None and time.monotonic() < deadline + 5:
                time.sleep(0.05)
        for key in ("want", "status"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.files[key])

    def remove(self) -> None:
        self.shutdown()
        for child in self.children:
            child.remove()
        for key in ("pid", "lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.files[key])

    def dev_path(self) -> str:
        data, _ = self._data_meta()
        return data.dev_path()

    def open(self, force: bool = False) -> None:
        self._command({"op": "primary", "force": force})

    def close(self) -> None:
        self._command({"op": "secondary"})

    def disconnect_net(self) -> None:
        if self.agent_pid() is None:
            return
        self._command(None, net=False, multimaster=False)

    def attach_net(self, multimaster: bool) -> None:
        self._command(None, net=True, multimaster=multimaster)

    def set_sync_params(self, params: dict[str, Any]) -> None:
        changes: dict[str, Any] = {}
        if "resync-rate" in params:
            changes["resync_rate"] = int(params["resync-rate"])
        if "filedrbd-hole-speedup" in params:
            changes["hole_speedup"] = int(params["filedrbd-hole-speedup"])
        self.disk.params.update(params)
        if changes and self.agent_pid() is not None:
            self._command(None, **changes)

    def rename(self, new_logical_id: list[Any]) -> None:
        """Only the config changes (new secondary, port); refused while assembled."""
        if self.agent_pid() is not None:
            raise errors.BlockDeviceError("Can't rename a DRBD device while it is assembled")
        self.disk.logical_id = list(new_logical_id)

    def grow(self, amount: int, dryrun: bool = False) -> None:
        data, _ = self._data_meta()
        data.grow(amount, dryrun)
        if not dryrun:
            self.disk.size += amount

    def get_sync_status(self) -> SyncStatus:
        st = self._status()
        if st is None:
            return SyncStatus(dev_path=None, is_degraded=True, ldisk_status="unknown")
        cstate = st.get("cstate")
        disk = st.get("disk")
        connected = cstate in (fstate.CS_CONNECTED, fstate.CS_SYNCSOURCE, fstate.CS_SYNCTARGET)
        return SyncStatus(
            dev_path=self.dev_path(),
            major=DRBD_MAJOR,
            minor=self.peers.own_minor,
            sync_percent=st.get("sync_percent"),
            estimated_time=st.get("estimated_time"),
            is_degraded=not connected
            or disk != fstate.DS_UPTODATE
            or st.get("peer_disk") != fstate.DS_UPTODATE,
            ldisk_status="ok" if disk == fstate.DS_UPTODATE else "unknown",
        )

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        st = self._status() or {}
        p = self.peers
        info.update(
            {
                "path": self.dev_path(),
                "role": st.get("role"),
                "peer_role": st.get("peer_role"),
                "cstate": st.get("cstate", "Unconfigured"),
                "disk": st.get("disk"),
                "peer_disk": st.get("peer_disk"),
                "net_error": st.get("net_error"),
                "local": f"{p.own_ip}:{p.port}",
                "peer": f"{p.peer_ip}:{p.port}",
            }
        )
        return info
