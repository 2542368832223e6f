"""Stateful fake nodes for the instance LU tests (no tests here).

`InstanceRpc` extends the cluster tests' `FakeRpc`: each node keeps the
disks created on it (uuid -> size), its running VMs (name -> memory), its
memory and disk totals, the OSes it has and the ones whose create script
fails. Free memory and free disk are computed from that state, so a test can
check both the answers of an LU and what it left on the nodes, including
after a failure (rollbacks run as the executor runs them: see `run_op`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral import constants as C
from corral import errors, objects, opcodes
from corral.cmdlib import registry
from corral.cmdlib.base import LUContext
from corral.hypervisor.base import InstanceRuntime, InstanceStartSpec, MigrationStatus
from corral.storage.base import SyncStatus
from tests.cmdlib.test_cluster_fakes import (
    DOMAIN,
    Env,
    FakeRpc,
    MemStore,
    make_config,
    make_env,
    prepare_lu,
)

JOB = 7


@dataclass
class FakeNode:
    memory_total: int = 2048
    memory_dom0: int = 128
    storage_size: int = 8192
    disks: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    oses: set[str] = field(default_factory=lambda: {"image", "failos"})
    variants: dict[str, list[str]] = field(default_factory=lambda: {"image": ["default", "cd"]})
    failing_os: set[str] = field(default_factory=lambda: {"failos"})
    bridges: set[str] = field(default_factory=lambda: {"br-man", "br-public"})

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_dom0 - sum(self.running.values())

    @property
    def storage_free(self) -> int:
        return self.storage_size - sum(self.disks.values())


class InstanceRpc(FakeRpc):
    """FakeRpc whose nodes hold disks and VMs (see module docstring)."""

    def __init__(self, cfg: Any, paths: Any) -> None:
        super().__init__(cfg, paths)
        self.fake: dict[str, FakeNode] = {}
        self.migration_result = "completed"
        self._moving: dict[str, int] = {}  # VM memory between finalize src and dst

    def node(self, name: str) -> FakeNode:
        if "." not in name:
            name = f"{name}.{DOMAIN}"
        return self.fake.setdefault(name, FakeNode())

    # -- resources ------------------------------------------------------------
    def _h_node_info(self, node: str, vg: str | None, hvs: list[str]) -> dict[str, Any]:
        st = self.node(node)
        return {
            "name": node,
            "memory_total": st.memory_total,
            "memory_free": st.memory_free,
            "memory_dom0": st.memory_dom0,
            "cpu_total": 4,
            "cpu_nodes": 1,
            "cpu_sockets": 1,
            "cpu_dom0": 1,
            "bootid": f"boot-{node}",
            "storage": [
                {
                    "type": "lvm-vg",
                    "name": vg,
                    "storage_size": st.storage_size,
                    "storage_free": st.storage_free,
                }
            ],
        }

    def _h_bridges_exist(self, node: str, links: list[str]) -> list[str]:
        return [b for b in links if b not in self.node(node).bridges]

    # -- OS -------------------------------------------------------------------
    def _h_os_validate(self, node: str, os_name: str, params: dict[str, Any]) -> bool:
        base, _, variant = os_name.partition("+")
        st = self.node(node)
        if base not in st.oses:
            raise errors.OpExecError(f"Directory for OS {base} not found in search path")
        if variant and variant not in st.variants.get(base, [variant]):
            raise errors.OpExecError("Unsupported OS variant")
        return True

    def _h_instance_os_add(
        self, node: str, inst: objects.Instance, paths: list[str], reinstall: bool, debug: int
    ) -> None:
        if inst.os.split("+")[0] in self.node(node).failing_os:
            raise errors.OpExecError(
                "OS create script failed (exited with exit code 1), last lines in the log file:"
            )

    # -- disks ----------------------------------------------------------------
    def _h_blockdev_create(
        self, node: str, disk: objects.Disk, ctx: Any, primary: bool, info: str
    ) -> None:
        st = self.node(node)
        if disk.uuid in st.disks:
            raise errors.BlockDeviceError(f"Disk {disk.uuid} already exists")
        if disk.size > st.storage_free:
            raise errors.BlockDeviceError("Not enough free space")
        st.disks[disk.uuid] = disk.size

    def _h_blockdev_remove(self, node: str, disk: objects.Disk, ctx: Any) -> None:
        self.node(node).disks.pop(disk.uuid, None)

    def _h_blockdev_assemble(
        self, node: str, disk: objects.Disk, ctx: Any, primary: bool, idx: int
    ) -> dict[str, Any]:
        if disk.uuid not in self.node(node).disks:
            raise errors.BlockDeviceError(f"Disk {disk.iv_name} does not exist")
        return {"path": f"/dev/fake/{disk.uuid}", "uri": None}

    def _h_blockdev_shutdown(self, node: str, disk: objects.Disk, ctx: Any) -> None:
        return None

    def _h_blockdev_find(self, node: str, disk: objects.Disk, ctx: Any) -> SyncStatus | None:
        if disk.uuid not in self.node(node).disks:
            return None
        return SyncStatus(dev_path=f"/dev/fake/{disk.uuid}")

    def _noop(self, node: str, *args: Any) -> None:
        return None

    _h_blockdev_open = _h_blockdev_close = _noop
    _h_drbd_disconnect_net = _h_drbd_attach_net = _noop

    # -- VMs ------------------------------------------------------------------
    def _h_instance_start(self, node: str, spec: InstanceStartSpec, hv: str) -> None:
        st = self.node(node)
        name = spec.instance.name
        if name in st.running:
            raise errors.HypervisorError(f"Instance {name} is already running")
        st.running[name] = int(spec.beparams[C.BE_MAXMEM])

    def _h_instance_shutdown(self, node: str, name: str, hv: str, timeout: float) -> None:
        self.node(node).running.pop(name, None)

    def _h_instance_reboot(self, node: str, *args: Any) -> None:
        return None

    def _runtime(self, node: str, name: str) -> InstanceRuntime:
        return InstanceRuntime(
            name=name, state="running", memory=self.node(node).running[name], vcpus=1
        )

    def _h_instance_info(self, node: str, name: str, hv: str) -> InstanceRuntime | None:
        return self._runtime(node, name) if name in self.node(node).running else None

    def _h_all_instances_info(self, node: str, hvs: list[str]) -> dict[str, InstanceRuntime]:
        return {name: self._runtime(node, name) for name in self.node(node).running}

    def _h_instance_list(self, node: str, hvs: list[str]) -> list[str]:
        return list(self.node(node).running)

    # -- migration ------------------------------------------------------------
    def _h_migration_info(self, node: str, inst: objects.Instance, hv: str) -> str:
        return "migration-info"

    def _h_accept_instance(self, node: str, spec: Any, info: Any, ip: str, hv: str) -> str:
        return "token"

    def _h_instance_migrate(self, node: str, *args: Any) -> None:
        return None

    def _h_instance_get_migration_status(self, node: str, name: str, hv: str) -> MigrationStatus:
        return MigrationStatus(status=self.migration_result, info="memory copy failed")

    def _h_instance_finalize_migration_dst(
        self, node: str, name: str, hv: str, success: bool
    ) -> None:
        if success:
            self.node(node).running[name] = self._moving.pop(name, 128)

    def _h_instance_finalize_migration_src(
        self, node: str, name: str, hv: str, success: bool, live: bool
    ) -> None:
        if success:
            self._moving[name] = self.node(node).running.pop(name)


def instance_env(tmp_path: Path, *, instances: bool = False) -> tuple[Env, InstanceRpc]:
    """A 3-node cluster (fake hypervisor, drbd/file/diskless enabled) and its nodes."""
    data = make_config(3, instances=instances)
    data.cluster.enabled_disk_templates = [C.DT_DRBD8, C.DT_FILE, C.DT_DISKLESS]
    data.cluster.volume_group_name = "ganeti"
    env = make_env(tmp_path, data)
    rpc = InstanceRpc(env.cfg, env.paths)
    env.rpc = rpc
    for node in env.cfg.all_nodes():
        rpc.node(node.name)
    return env, rpc


async def run_op_async(env: Env, op: opcodes.OpCode) -> Any:
    """The executor's life cycle for one opcode, rollbacks and reservations included."""
    registry.load_all()
    owned: dict[int, list[str]] = {}
    ctx = LUContext(
        cfg=env.cfg,
        rpc=env.rpc,  # type: ignore[arg-type]
        paths=env.paths,
        job_id=JOB,
        feedback_fn=env.feedback.append,
        owned_locks_fn=lambda level: owned.get(level, []),
    )
    try:
        lu = prepare_lu(env, op, ctx, owned)
        await lu.check_prereq()
        try:
            return await lu.exec()
        except BaseException:
            await ctx.run_rollbacks()
            raise
    finally:
        env.cfg.release_reservations(JOB)


def run_op(env: Env, op: opcodes.OpCode) -> Any:
    return asyncio.run(run_op_async(env, op))


def config_json(cfg: MemStore) -> bytes:
    return cfg.to_json()


def create_op(name: str = "vm1", **kw: Any) -> opcodes.OpInstanceCreate:
    """``gnt-instance add`` with the CLI's usual answers: no name/IP check."""
    args: dict[str, Any] = {
        "instance_name": name,
        "mode": "create",
        "disk_template": C.DT_FILE,
        "disks": [{"size": 1024}],
        "os_type": "image+default",
        "beparams": {C.BE_MINMEM: 128, C.BE_MAXMEM: 256},
        "name_check": False,
        "ip_check": False,
        "pnode": f"node1.{DOMAIN}",
        "nics": [{}],
    }
    args.update(kw)
    if args["disk_template"] == C.DT_DISKLESS and "disks" not in kw:
        args["disks"] = []
    return opcodes.OpInstanceCreate(**args)
