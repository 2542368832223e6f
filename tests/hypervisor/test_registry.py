from __future__ import annotations

import pytest

from corral.errors import HypervisorError
from corral.hypervisor import get_hypervisor, get_hypervisor_class, hypervisor_names
from corral.hypervisor.fake import FakeHypervisor
from corral.hypervisor.kvm import KvmHypervisor
from corral.paths import Paths


def test_names() -> None:
    assert hypervisor_names() == ["fake", "kvm"]
    assert get_hypervisor_class("fake") is FakeHypervisor
    assert get_hypervisor_class("kvm") is KvmHypervisor


def test_unknown() -> None:
    with pytest.raises(HypervisorError, match="Unknown hypervisor 'xen-pvm'"):
        get_hypervisor_class("xen-pvm")


def test_instance_bound_to_paths(tmp_path: object) -> None:
    paths = Paths.under(str(tmp_path))
    hv = get_hypervisor("fake", paths)
    assert isinstance(hv, FakeHypervisor)
    assert hv.paths is paths


def test_fake_accepts_kvm_table() -> None:
    assert FakeHypervisor.PARAMETERS is KvmHypervisor.PARAMETERS
