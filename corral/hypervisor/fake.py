"""The ``fake`` hypervisor: every VM is a tiny real process plus runtime files.

Unlike Ganeti's fake hypervisor (a file per instance), each VM here is a small
daemonized process (`corral.hypervisor.fakevm`), so the situations the cluster
code must handle happen for real. VMs are forked by a per-node launcher
process (`corral.hypervisor.fakevm_launcher`, started on demand by
`corral.hypervisor.fakelaunch`), which costs a fork instead of a fresh
interpreter; when it is unavailable the driver spawns the VM directly. Either
way the VM has the same command line, which is how it is recognised:

* noded restarts: VMs are not noded's children; a new driver object on the
  same run directory rediscovers them from ``<run dir>/<name>.json`` + ``.pid``;
* node crashes: when the processes are gone the instances are simply not
  running (stale files are ignored, and cleaned up on the next start/stop);
* migration follows Ganeti's protocol over real TCP: `accept_instance` starts
  an *incoming* process on the target listening on a free port,
  `migrate_instance` tells the source process to send its runtime state
  there, `get_migration_status` reports active/completed/failed, and the two
  ``finalize`` calls stop the old process or discard the incoming one;
* console: a VM with ``instance.network_port`` listens on that TCP port (bound
  to ``vnc_bind_address``, ``0.0.0.0`` when empty) and speaks RFB, so
  ``gnt-instance console`` and VNC probes reach something real;
* hotplug is supported (a deliberate difference from Ganeti's fake): NIC and
  disk add/remove/modify update the VM's runtime state. Moving a tap between
  bridges is the network driver's job, done by the node backend.

The VM accepts the whole kvm parameter table, so Ganeti-style ``-H`` lines
work unchanged; on the node it checks what a user hands the VM (ISO and
floppy images, password files...) but not ``kvm_path``, ``kernel_path`` or
``initrd_path`` (no QEMU runs, nothing boots).

Node memory comes from ``paths.node_hardware_file`` (JSON ``memory_total``,
``memory_dom0``, ``cpu_total``; the testkit writes it) or ``/proc/meminfo``;
``memory_free = total - dom0 - memory of the fake VMs alive on this node``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec

from corral import objects
from corral.errors import HypervisorError
from corral.hypervisor import fakelaunch, fakevm, kvm_params, params
from corral.hypervisor.base import (
    BlockDeviceInfo,
    ConsoleInfo,
    Hypervisor,
    InstanceRuntime,
    InstanceStartSpec,
    MigrationStatus,
    NicInfo,
    NodeHvInfo,
    Param,
)
from corral.paths import Paths

VNC_BASE_PORT = 5900
START_TIMEOUT = 15.0
CONTROL_TIMEOUT = 10.0
# Node-local checks skipped by the fake: the QEMU binary and the direct-boot
# kernel/initrd (Ganeti's default kernel_path rarely exists, and nothing boots
# here). Media a user hands to the VM (ISO, floppy images...) are still checked.
_SKIPPED_NODE_CHECKS = frozenset({"kvm_path", "kernel_path", "initrd_path"})


class FakeHypervisor(Hypervisor):
    """Hypervisor ``fake``: VMs are cheap processes; see the module docstring."""

    NAME: ClassVar[str] = "fake"
    PARAMETERS: ClassVar[dict[str, Param]] = kvm_params.PARAMETERS
    CAN_MIGRATE: ClassVar[bool] = True
    CAN_HOTPLUG: ClassVar[bool] = True
    # Seconds between a VM's checks that it still owns its pidfile (see fakevm)
    orphan_check: float = fakevm.ORPHAN_CHECK
    # Fork VMs from the node's launcher (zygote); False: always spawn an interpreter
    use_launcher: bool = True

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths)
        # runtime file path -> ((mtime_ns, size, inode), parsed content)
        self._runtime_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        # name -> (pidfile (mtime_ns, size, inode), pid, pidfd of that verified VM process)
        self._live: dict[str, tuple[tuple[int, int, int], int, int]] = {}
        self._live_lock = threading.Lock()
        self._launcher: fakelaunch.VmLauncher | None = None

    def __del__(self) -> None:
        for _key, _pid, pidfd in getattr(self, "_live", {}).values():
            with contextlib.suppress(OSError):
                os.close(pidfd)

    # -- master side -----------------------------------------------------------------
    @classmethod
    def check_parameter_syntax(cls, hvparams: dict[str, Any]) -> None:
        typed = params.check_syntax(cls.PARAMETERS, hvparams)
        kvm_params.check_relations(typed)

    # -- files -----------------------------------------------------------------------
    @property
    def run_dir(self) -> str:
        return self.paths.instance_run_dir

    def _runtime_path(self, name: str) -> str:
        return f"{self.run_dir}/{name}.json"

    def _pid_path(self, name: str) -> str:
        return f"{self.run_dir}/{name}.pid"

    def _log_path(self, name: str) -> str:
        return f"{self.run_dir}/{name}.log"

    def _control_key(self, name: str) -> str:
        """Abstract socket name: unique per (run dir, instance), short."""
        node = f"{os.path.realpath(self.run_dir)}\0{self._node_token()}"
        digest = hashlib.sha256(f"{node}\0{name}".encode()).hexdigest()
        return f"corral-fakevm-{digest[:32]}"

    def _ensure_run_dir(self) -> None:
        os.makedirs(self.run_dir, mode=0o750, exist_ok=True)

    @contextlib.contextmanager
    def _node_lock(self) -> Iterator[None]:
        """Serialize starts on this node (memory check + spawn), across processes."""
        self._ensure_run_dir()
        fd = os.open(os.path.join(self.run_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_runtime(self, name: str) -> dict[str, Any] | None:
        """The VM's runtime file (parsed once per version: cached by mtime and size)."""
        path = self._runtime_path(name)
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._runtime_cache.get(path)
            if cached is not None and cached[0] == key:
                return dict(cached[1])
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        self._runtime_cache[path] = (key, data)
        return dict(data)

    def _read_pid(self, name: str) -> int | None:
        try:
            with open(self._pid_path(name)) as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def _pid_is_vm(self, pid: int, name: str) -> bool:
        """True if `pid` is the live VM process of `name` in *this* run dir.

        Checks the command line, so a recycled pid or a zombie (empty cmdline)
        never counts, and two nodes sharing one host never see each other's VMs.
        """
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            return False
        try:
            pos = args.index(fakevm.MARKER.encode())
        except ValueError:
            return False
        tail = args[pos + 1 : pos + 4]
        token = self._node_token()
        return token is not None and tail == [name.encode(), self.run_dir.encode(), token.encode()]

    def _node_token(self) -> str | None:
        """Identity of this node's run dir (device:inode), None if it does not exist.

        Nodes of the testkit share one pid namespace and the same run dir *path*
        (each has its own directory bind-mounted there); the inode tells them apart.
        """
        try:
            st = os.stat(self.run_dir)
        except FileNotFoundError:
            return None
        return f"{st.st_dev}:{st.st_ino}"

    def _alive_pid(self, name: str) -> int | None:
        """The pid of `name`'s live VM process, or None.

        Scans of every VM (`get_node_info`, on each start) made this hot, so
        a VM is recognised by its command line (`_pid_is_vm`) only once per
        pidfile version: the driver then keeps a pidfd of the process, which
        cannot be recycled and turns readable when the process exits (a
        zombie counts as gone, as with the command-line check). Later calls
        cost one stat of the pidfile and one poll of the pidfd.
        """
        try:
            st = os.stat(self._pid_path(name))
        except OSError:
            self._forget(name)
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._live_lock:
            cached = self._live.get(name)
            if cached is not None and cached[0] == key:
                if not _exited(cached[2]):
                    return cached[1]
                return None
        pid = self._read_pid(name)
        if pid is None:
            self._forget(name)
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1  # gone already, or no pidfds (EMFILE...): check every time
        if not self._pid_is_vm(pid, name) or (pidfd >= 0 and _exited(pidfd)):
            if pidfd >= 0:
                os.close(pidfd)
            self._forget(name)
            return None
        if pidfd >= 0:
            with self._live_lock:
                old = self._live.pop(name, None)
                self._live[name] = (key, pid, pidfd)
            if old is not None:
                os.close(old[2])
        return pid

    def _forget(self, name: str) -> None:
        """Drop the cached liveness of `name` (its pidfile is gone or changed)."""
        with self._live_lock:
            old = self._live.pop(name, None)
        if old is not None:
            os.close(old[2])

    def _cleanup(self, name: str) -> None:
        self._forget(name)
        for path in (self._runtime_path(name), self._pid_path(name)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _names_on_disk(self) -> list[str]:
        try:
            entries = os.listdir(self.run_dir)
        except FileNotFoundError:
            return []
        return sorted(e[: -len(".pid")] for e in entries if e.endswith(".pid"))

    # -- the VM process ----------------------------------------------------------------
    def _spawn(self, name: str, runtime: dict[str, Any]) -> tuple[int, int]:
        """Start the VM process; returns (pid, migration port). Raises HypervisorError."""
        self._ensure_run_dir()
        config = {
            "runtime": runtime,
            "log": self._log_path(name),
            "orphan_check": self.orphan_check,
        }
        token = self._node_token() or ""
        cmd = [
            sys.executable,
            "-S",
            "-E",
            "-s",
            "-c",
            fakevm.BOOTSTRAP,
            os.path.dirname(os.path.abspath(fakevm.__file__)),
            fakevm.MARKER,
            name,
            self.run_dir,
            token,
        ]
        out = self._launch(name, cmd, config, token)
        if out is None:  # no launcher: a fresh interpreter, ~10 ms of CPU more
            try:
                stdout, stderr = fakelaunch.run_helper(
                    cmd, json.dumps(config).encode(), START_TIMEOUT
                )
            except (OSError, subprocess.TimeoutExpired) as err:
                raise HypervisorError(f"Failed to start instance {name}: {err}") from err
            out = stdout.decode(errors="replace").strip()
            if not out.startswith(("OK ", "ERR ")):
                out = "ERR " + (out or stderr.decode(errors="replace")[-300:])
        if not out.startswith("OK "):
            detail = out[4:] if out.startswith("ERR ") else out
            raise HypervisorError(f"Failed to start instance {name}: {detail.strip()}")
        _, pid, port = out.split()
        return int(pid), int(port)

    def _launch(self, name: str, cmd: list[str], config: dict[str, Any], token: str) -> str | None:
        """Fork the VM from the node's launcher: its report line, None if unavailable."""
        if not self.use_launcher or not token:
            return None
        if self._launcher is None or self._launcher.orphan_check != self.orphan_check:
            self._launcher = fakelaunch.VmLauncher(self.run_dir, self.orphan_check)
        return self._launcher.start_vm(name, cmd, config, token, START_TIMEOUT)

    def _control(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the VM process; raise HypervisorError on failure."""
        if self._alive_pid(name) is None:
            raise HypervisorError(f"Instance {name} is not running")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONTROL_TIMEOUT)
        try:
            sock.connect("\0" + self._control_key(name))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as err:
            raise HypervisorError(f"Cannot talk to instance {name}: {err}") from err
        finally:
            sock.close()
        try:
            reply = json.loads(data)
        except ValueError as err:
            raise HypervisorError(f"Bad answer from instance {name}: {data[:200]!r}") from err
        if not reply.get("ok"):
            raise HypervisorError(str(reply.get("error", "unknown error")))
        return dict(reply)

    def _initial_runtime(self, spec: InstanceStartSpec, memory: int) -> dict[str, Any]:
        inst = spec.instance
        bind = str(spec.hvparams.get("vnc_bind_address") or "")
        if not kvm_params.is_ip_address(bind):
            bind = "0.0.0.0"  # interface names and paths: listen everywhere
        return {
            "version": 1,
            "name": inst.name,
            "uuid": inst.uuid,
            "state": "paused" if spec.startup_paused else "running",
            "memory": memory,
            "vcpus": int(spec.beparams.get("vcpus", 1)),
            "hvparams": dict(spec.hvparams),
            "beparams": dict(spec.beparams),
            "nics": [msgspec.to_builtins(n) for n in spec.nics],
            "disks": [msgspec.to_builtins(d) for d in spec.disks],
            "console_port": inst.network_port,
            "console_host": bind,
            "console_bound": False,
            "boot_count": 1,
            "started_at": time.time(),
            "incoming": False,
            "migration": None,
            "control": self._control_key(inst.name),
        }

    def _startup_memory(self, spec: InstanceStartSpec, free: int) -> int:
        """Ganeti's rule: maxmem if it fits, never below minmem."""
        be = spec.beparams
        maxmem = int(be.get("maxmem", be.get("memory", 128)))
        minmem = int(be.get("minmem", maxmem))
        return max(minmem, min(maxmem, free))

    def _reserve(self, spec: InstanceStartSpec, verb: str) -> int:
        """Checks before a VM process is created on this node (under the node lock)."""
        name = spec.instance.name
        if self._alive_pid(name) is not None:
            raise HypervisorError(f"Failed to {verb} instance {name}: already running")
        self._cleanup(name)
        free = self.get_node_info().memory_free
        memory = self._startup_memory(spec, free)
        if memory > free:
            raise HypervisorError(
                f"Not enough memory to {verb} instance {name}:"
                f" needed {memory} MiB, available {free} MiB"
            )
        return memory

    # -- node side -----------------------------------------------------------------------
    def validate_parameters(self, hvparams: dict[str, Any]) -> None:
        params.check_on_node(self.PARAMETERS, hvparams, skip=_SKIPPED_NODE_CHECKS)

    def start_instance(self, spec: InstanceStartSpec) -> InstanceRuntime:
        name = spec.instance.name
        with self._node_lock():
            memory = self._reserve(spec, "start")
            self._spawn(name, self._initial_runtime(spec, memory))
        info = self.get_instance_info(name)
        if info is None:
            raise HypervisorError(f"Failed to start instance {name}: the VM process vanished")
        return info

    def stop_instance(self, name: str, force: bool = False, timeout: float = 120) -> None:
        """Stop the VM; stopping a VM that is not running only cleans stale files."""
        pid = self._alive_pid(name)
        if pid is not None:
            if not force:
                self._signal(pid, signal.SIGTERM)
                self._wait_gone(pid, name, timeout)
            if self._pid_is_vm(pid, name):
                self._signal(pid, signal.SIGKILL)
                if not self._wait_gone(pid, name, 10.0):
                    raise HypervisorError(f"Failed to stop instance {name}: process {pid} lingers")
        self._cleanup(name)

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except OSError as err:
            if err.errno != errno.ESRCH:
                raise HypervisorError(f"Cannot signal process {pid}: {err}") from err

    def _wait_gone(self, pid: int, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while self._pid_is_vm(pid, name):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True

    def reboot_instance(self, name: str) -> None:
        if self._alive_pid(name) is None:
            raise HypervisorError(f"Failed to reboot instance {name}: not running")
        self._control(name, {"cmd": "reboot"})

    def list_instances(self) -> list[str]:
        return [n for n in self._names_on_disk() if self._alive_pid(n) is not None]

    def get_instance_info(self, name: str) -> InstanceRuntime | None:
        pid = self._alive_pid(name)
        if pid is None:
            return None
        rt = self._read_runtime(name)
        if rt is None:
            return None
        return InstanceRuntime(
            name=name,
            state=str(rt.get("state", "running")),
            memory=int(rt.get("memory", 0)),
            vcpus=int(rt.get("vcpus", 1)),
            pid=pid,
            console_port=rt.get("console_port"),
            time=_cpu_seconds(pid),
            nics=msgspec.convert(rt.get("nics", []), list[NicInfo]),
            disks=msgspec.convert(rt.get("disks", []), list[BlockDeviceInfo]),
        )

    def get_node_info(self) -> NodeHvInfo:
        total, dom0, cpus = _node_hardware(self.paths.node_hardware_file)
        used = 0
        for name in self._names_on_disk():
            if self._alive_pid(name) is None:
                continue
            rt = self._read_runtime(name)
            if rt is not None:
                used += int(rt.get("memory", 0))
        return NodeHvInfo(
            memory_total=total,
            memory_free=max(0, total - dom0 - used),
            memory_dom0=dom0,
            cpu_total=cpus,
        )

    def get_console(
        self, instance: objects.Instance, hvparams: dict[str, Any], node_name: str
    ) -> ConsoleInfo:
        port = instance.network_port
        if port is None:
            return ConsoleInfo(
                kind="message",
                instance=instance.name,
                message=f"Instance {instance.name} has no console port",
            )
        return ConsoleInfo(
            kind="vnc",
            instance=instance.name,
            host=node_name,
            port=port,
            display=port - VNC_BASE_PORT,
        )

    # -- migration ------------------------------------------------------------------------
    def migration_info(self, instance: objects.Instance) -> dict[str, Any]:
        rt = self._read_runtime(instance.name)
        if rt is None or self._alive_pid(instance.name) is None:
            raise HypervisorError(f"Instance {instance.name} is not running")
        return {"hypervisor": self.NAME, "memory": rt.get("memory", 0)}

    def accept_instance(
        self, spec: InstanceStartSpec, info: dict[str, Any], target_ip: str
    ) -> dict[str, Any]:
        name = spec.instance.name
        with self._node_lock():
            memory = self._reserve(spec, "accept")
            runtime = self._initial_runtime(spec, memory)
            runtime.update(state="migrating", incoming=True, incoming_host=target_ip)
            _, port = self._spawn(name, runtime)
        return {"host": target_ip, "port": port}

    def migrate_instance(
        self, name: str, target_ip: str, accept_data: dict[str, Any], live: bool
    ) -> None:
        try:
            port = int(accept_data["port"])
        except (KeyError, TypeError, ValueError) as err:
            raise HypervisorError(f"Bad migration data from the target: {accept_data}") from err
        self._control(name, {"cmd": "migrate", "host": target_ip, "port": port, "live": live})

    def get_migration_status(self, name: str) -> MigrationStatus:
        rt = self._read_runtime(name)
        if self._alive_pid(name) is None or rt is None:
            return MigrationStatus(status="failed", info=f"Instance {name} is not running")
        mig = rt.get("migration")
        if not isinstance(mig, dict):
            raise HypervisorError(f"No migration in progress for instance {name}")
        return MigrationStatus(
            status=str(mig.get("status", "failed")),
            transferred_ram=int(mig.get("transferred_ram", 0)),
            total_ram=int(mig.get("total_ram", 0)),
            info=str(mig.get("info", "")),
        )

    def finalize_migration_dst(self, name: str, success: bool) -> None:
        if not success:
            self.stop_instance(name, force=True)
            return
        info = self.get_instance_info(name)
        if info is None or info.state != "running":
            state = "not running" if info is None else info.state
            raise HypervisorError(f"Failed to finalize migration of {name} on target: {state}")

    def finalize_migration_src(self, name: str, success: bool, live: bool) -> None:
        if success:
            self.stop_instance(name, force=True)
            return
        info = self.get_instance_info(name)
        if info is not None and info.state == "paused":
            self._control(name, {"cmd": "cont"})

    # -- hotplug ----------------------------------------------------------------------------
    def hotplug_supported(self, name: str) -> None:
        if self._alive_pid(name) is None:
            raise HypervisorError(f"Hotplug is not possible: instance {name} is not running")

    def _hotplug(self, name: str, action: str, dev_type: str, device: Any, index: int) -> None:
        request = {
            "cmd": "hotplug",
            "action": action,
            "dev_type": dev_type,
            "device": msgspec.to_builtins(device),
            "index": index,
        }
        self._control(name, request)

    def hot_add_nic(self, name: str, nic: NicInfo, index: int) -> None:
        self._hotplug(name, "add", "nic", nic, index)

    def hot_del_nic(self, name: str, nic: NicInfo, index: int) -> None:
        self._hotplug(name, "remove", "nic", nic, index)

    def hot_mod_nic(self, name: str, nic: NicInfo, index: int) -> None:
        self._hotplug(name, "modify", "nic", nic, index)

    def hot_add_disk(self, name: str, disk: BlockDeviceInfo, index: int) -> None:
        self._hotplug(name, "add", "disk", disk, index)

    def hot_del_disk(self, name: str, disk: BlockDeviceInfo, index: int) -> None:
        self._hotplug(name, "remove", "disk", disk, index)

    def balloon_instance_memory(self, name: str, memory: int) -> None:
        self._control(name, {"cmd": "balloon", "memory": int(memory)})


def vm_processes(run_dir: str) -> dict[str, int]:
    """Live fake VMs of the node whose instance run dir is `run_dir`: name -> pid.

    Scans /proc, so it also finds VMs whose pidfile was lost; the testkit uses
    it to pull a node's plug (kill its VMs as a power cut would).
    """
    try:
        st = os.stat(run_dir)
    except FileNotFoundError:
        return {}
    wanted = [run_dir.encode(), f"{st.st_dev}:{st.st_ino}".encode()]
    marker = fakevm.MARKER.encode()
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
            pos = args.index(marker)
        except (OSError, ValueError):
            continue
        if args[pos + 2 : pos + 4] == wanted and len(args) > pos + 1:
            found[args[pos + 1].decode(errors="replace")] = int(entry)
    return found


def _exited(pidfd: int) -> bool:
    """True if the process behind `pidfd` has terminated (the pidfd is readable)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` (0.0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0.0
    return ticks / os.sysconf("SC_CLK_TCK")


def _node_hardware(path: str) -> tuple[int, int, int]:
    """(memory_total, memory_dom0, cpu_total) in MiB/count."""
    try:
        with open(path) as handle:
            hw = json.load(handle)
        return (
            int(hw["memory_total"]),
            int(hw.get("memory_dom0", 0)),
            int(hw.get("cpu_total", os.cpu_count() or 1)),
        )
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HypervisorError(f"Cannot read node hardware file {path}: {err}") from err
    meminfo: dict[str, int] = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                meminfo[key] = int(rest.split()[0])  # kB
    total = meminfo.get("MemTotal", 0) // 1024
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0)) // 1024
    return total, max(0, total - available), os.cpu_count() or 1
