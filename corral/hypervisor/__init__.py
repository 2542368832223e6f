"""Hypervisor drivers, registered by name (``fake``, ``kvm``).

`get_hypervisor_class` serves the master (parameter tables, syntax checks);
`get_hypervisor` builds the node-side driver object bound to a node's paths.
Driver modules are imported lazily so the master never pays for node code.
"""

from __future__ import annotations

import importlib

from corral.errors import HypervisorError
from corral.hypervisor.base import Hypervisor
from corral.paths import Paths

# name -> "module:Class" (relative to this package)
_REGISTRY: dict[str, str] = {
    "fake": "fake:FakeHypervisor",
    "kvm": "kvm:KvmHypervisor",
}


def hypervisor_names() -> list[str]:
    return sorted(_REGISTRY)


def get_hypervisor_class(name: str) -> type[Hypervisor]:
    """The driver class for `name`; HypervisorError "Unknown hypervisor 'x'"."""
    target = _REGISTRY.get(name)
    if target is None:
        raise HypervisorError(f"Unknown hypervisor '{name}'")
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls = getattr(module, class_name)
    assert isinstance(cls, type) and issubclass(cls, Hypervisor)
    return cls


def get_hypervisor(name: str, paths: Paths) -> Hypervisor:
    """A node-side driver object for `name` working in `paths` (run dir etc.)."""
    return get_hypervisor_class(name)(paths)


__all__ = ["Hypervisor", "get_hypervisor", "get_hypervisor_class", "hypervisor_names"]
