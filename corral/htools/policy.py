"""Instance policy checks (Ganeti ``Instance.instMatchesPolicy``)."""

from __future__ import annotations

from corral.htools.types import FailMode, Instance, IPolicy, ISpec


def _matches_spec(inst: Instance, lo: ISpec, hi: ISpec) -> FailMode:
    if not lo.memory <= inst.mem <= hi.memory:
        return FailMode.FailMem
    if not lo.cpu <= inst.vcpus <= hi.cpu:
        return FailMode.FailCPU
    sizes = [d for d, _ in inst.disks] or [inst.dsk]
    if any(not lo.disk <= d <= hi.disk for d in sizes):
        return FailMode.FailDisk
    if not lo.disk_count <= len(sizes) <= hi.disk_count:
        return FailMode.FailDiskCount
    if not lo.nic_count <= inst.nics <= hi.nic_count:
        return FailMode.FailInternal
    if not lo.spindle_use <= inst.spindle_use <= hi.spindle_use:
        return FailMode.FailSpindles
    return FailMode.OK


def inst_matches_policy(inst: Instance, pol: IPolicy) -> FailMode:
    """OK when the instance fits one of the policy's min/max ranges and templates."""
    if inst.disk_template not in pol.disk_templates:
        return FailMode.FailDisk
    first = FailMode.OK
    for lo, hi in pol.minmax:
        r = _matches_spec(inst, lo, hi)
        if r == FailMode.OK:
            return r
        if first == FailMode.OK:
            first = r
    return first if pol.minmax else FailMode.OK
