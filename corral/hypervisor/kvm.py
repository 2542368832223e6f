"""The ``kvm`` hypervisor: parameter table and syntax checks only (for now).

The QEMU driver itself (command line, QMP, migration, VNC) is a separate piece
of work. Until it lands, ``kvm`` is registered so the master can store and
check kvm hvparams exactly as Ganeti does (``gnt-cluster init -H kvm:...``,
``gnt-instance modify -H ...``), and `validate_parameters` runs the node-local
file checks; every method that would touch a VM raises
``HypervisorError("kvm hypervisor driver not implemented yet")``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from corral import objects
from corral.errors import HypervisorError
from corral.hypervisor import kvm_params, params
from corral.hypervisor.base import (
    ConsoleInfo,
    Hypervisor,
    InstanceRuntime,
    InstanceStartSpec,
    NodeHvInfo,
    Param,
)

NOT_IMPLEMENTED = "kvm hypervisor driver not implemented yet"


def _missing() -> NoReturn:
    raise HypervisorError(NOT_IMPLEMENTED)


class KvmHypervisor(Hypervisor):
    """Placeholder kvm driver: full PARAMETERS, no VM operations."""

    NAME: ClassVar[str] = "kvm"
    PARAMETERS: ClassVar[dict[str, Param]] = kvm_params.PARAMETERS
    CAN_MIGRATE: ClassVar[bool] = True
    CAN_HOTPLUG: ClassVar[bool] = True

    @classmethod
    def check_parameter_syntax(cls, hvparams: dict[str, Any]) -> None:
        typed = params.check_syntax(cls.PARAMETERS, hvparams)
        kvm_params.check_relations(typed)

    def validate_parameters(self, hvparams: dict[str, Any]) -> None:
        params.check_on_node(self.PARAMETERS, hvparams)

    def start_instance(self, spec: InstanceStartSpec) -> InstanceRuntime:
        _missing()

    def stop_instance(self, name: str, force: bool = False, timeout: float = 120) -> None:
        _missing()

    def reboot_instance(self, name: str) -> None:
        _missing()

    def list_instances(self) -> list[str]:
        _missing()

    def get_instance_info(self, name: str) -> InstanceRuntime | None:
        _missing()

    def get_node_info(self) -> NodeHvInfo:
        _missing()

    def get_console(
        self, instance: objects.Instance, hvparams: dict[str, Any], node_name: str
    ) -> ConsoleInfo:
        _missing()

    def hotplug_supported(self, name: str) -> None:
        _missing()
