"""Node resource arithmetic: adding/removing an instance as primary or secondary.

Every function works on a *view*: a dict of equally long numpy arrays, one entry
per node field (see `FIELDS`), so the same code scores one node (arrays of
length 1) or every node of a 4000-node cluster at once. Functions never mutate
their input view; they return a new view plus, for the ``add_*`` functions, an
array of `FailMode` codes (0 = accepted).

The arithmetic and the order of the checks follow Ganeti 3.0's ``Node.hs``
(``addPriEx``, ``addSecExEx``, ``removePri``, ``removeSec``), quirks included:

* free memory is *unallocated* memory: ``trunc(t_mem) - n_mem - i_mem -
  max(0, x_mem)``; a node fails N+1 when that is ``<=`` its reserved memory
  ``r_mem`` (the largest sum of memory of instances, with one primary node,
  that have this node as secondary);
* ``add_sec`` always subtracts the instance's disk, ``remove_sec`` gives it
  back only for local-storage templates (Ganeti's asymmetry);
* a node that already fails N+1 may receive more instances (the check is "no
  *new* N+1 failure");
* strict (non-forced) additions also check the ``*_forth`` fields, i.e. the
  resources including forthcoming instances.

Peer memory (``peers[p]`` = memory the node reserves for primary node ``p``) is
not part of the view; callers pass the relevant values as arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools.types import FailMode, Instance

NDArray = np.ndarray[Any, Any]
View = dict[str, NDArray]

FLOAT_FIELDS = (
    "tmem",
    "tdsk",
    "tcpu",
    "speed",
    "isp",
    "isp_f",
    "hisp",
    "lc",
    "lm",
    "ld",
    "ln",
    "vratio",
)
INT_FIELDS = (
    "tmem_i",
    "nmem",
    "imem",
    "xmem",
    "fmem",
    "fmem_f",
    "fdsk",
    "fdsk_f",
    "ucpu",
    "ucpu_f",
    "tsp",
    "fsp",
    "fsp_f",
    "rmem",
    "npri",
    "nsec",
    "conflicts",
    "locscore",
    "lodsk",
)
BOOL_FIELDS = ("failn1", "offline", "excl")
FIELDS = FLOAT_FIELDS + INT_FIELDS + BOOL_FIELDS


def unallocated(v: View) -> NDArray:
    """Ganeti's ``unallocatedMem``: recorded free memory minus positive missing memory."""
    return v["tmem_i"] - v["nmem"] - v["imem"] - np.maximum(0, v["xmem"])


def _set_fail(fail: NDArray, cond: NDArray | bool, code: FailMode) -> None:
    """Record ``code`` where ``cond`` holds and no earlier check failed."""
    if cond is False:
        return
    m = (fail == 0) & cond
    fail[m] = int(code)


def _spindle_use(v: View, key: str, inst: Instance, add: bool) -> NDArray:
    cur = v[key]
    if not inst.uses_local_storage:
        return np.where(v["excl"], 0.0, cur)
    delta = inst.spindle_use * 1.0 if add else inst.spindle_use * -1.0
    return np.where(v["excl"], 0.0, cur + delta)


def _free_spindles(v: View, key: str, inst: Instance, add: bool) -> NDArray:
    total = inst.total_spindles
    cur = v[key]
    if total is None:
        new = np.full_like(cur, -1) if add else cur
    else:
        new = cur - total if add else cur + total
    return np.where(v["excl"], new, 0)


def _pdsk(v: View, fsp: NDArray, fdsk: NDArray) -> NDArray:
    tdsk = v["tdsk"]
    tsp = v["tsp"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pd = np.where(tdsk == 0, 1.0, fdsk / np.where(tdsk == 0, 1.0, tdsk))
        ps = np.where(tsp == 0, 1.0, fsp / np.where(tsp == 0, 1.0, tsp))
    return np.where(v["excl"], ps, pd)


def pdsk(v: View) -> NDArray:
    return _pdsk(v, v["fsp"], v["fdsk"])


def pdsk_forth(v: View) -> NDArray:
    return _pdsk(v, v["fsp_f"], v["fdsk_f"])


def _forth_pri_violation(v: View, new: View, inst: Instance) -> NDArray:
    fail = np.zeros(len(v["tmem"]), dtype=np.int8)
    uses_disk = inst.uses_local_storage
    _set_fail(fail, new["fmem_f"] <= 0, FailMode.FailMem)
    if uses_disk:
        _set_fail(fail, new["fdsk_f"] <= 0, FailMode.FailDisk)
        _set_fail(fail, new["fdsk_f"] < v["lodsk"], FailMode.FailDisk)
        _set_fail(fail, v["excl"] & (new["fsp_f"] < 0), FailMode.FailSpindles)
        _set_fail(fail, new["isp_f"] > v["hisp"], FailMode.FailDisk)
    vr = v["vratio"]
    _set_fail(fail, (vr >= 0) & (vr < new["ucpu_f"] / v["tcpu"]), FailMode.FailCPU)
    return fail


def add_pri(
    v: View, inst: Any, strict: bool, tag_reject: NDArray | None = None
) -> tuple[View, NDArray]:
    """Place ``inst`` as primary on every node of the view (``Node.addPriEx``)."""
    new = dict(v)
    uses_disk = inst.uses_local_storage
    new["fmem_f"] = v["fmem_f"] - inst.mem
    if uses_disk:
        new["fdsk_f"] = v["fdsk_f"] - inst.dsk
    new["fsp_f"] = _free_spindles(v, "fsp_f", inst, True)
    new["isp_f"] = _spindle_use(v, "isp_f", inst, True)
    # flags may be per-instance bool arrays (batched search), hence arithmetic
    vcpus = inst.vcpus * inst.not_offline
    new["ucpu_f"] = v["ucpu_f"] + vcpus
    n = len(v["tmem"])
    if inst.forthcoming:
        fail = _forth_pri_violation(v, new, inst) if strict else np.zeros(n, dtype=np.int8)
        return new, fail
    new["imem"] = v["imem"] + inst.mem * inst.uses_memory
    free = unallocated(new)
    new["failn1"] = free <= v["rmem"]
    if uses_disk:
        new["fdsk"] = v["fdsk"] - inst.dsk
    new["fsp"] = _free_spindles(v, "fsp", inst, True)
    new["isp"] = _spindle_use(v, "isp", inst, True)
    new["ucpu"] = v["ucpu"] + vcpus
    new["lc"] = v["lc"] + inst.util[0]
    new["lm"] = v["lm"] + inst.util[1]
    new["ld"] = v["ld"] + inst.util[2]
    new["ln"] = v["ln"] + inst.util[3]
    new["npri"] = v["npri"] + 1
    fail = np.zeros(n, dtype=np.int8)
    _set_fail(fail, free <= 0, FailMode.FailMem)
    if uses_disk:
        _set_fail(fail, new["fdsk"] <= 0, FailMode.FailDisk)
        if strict:
            _set_fail(fail, new["fdsk"] < v["lodsk"], FailMode.FailDisk)
        _set_fail(fail, v["excl"] & (new["fsp"] < 0), FailMode.FailSpindles)
        if strict:
            _set_fail(fail, new["isp"] > v["hisp"], FailMode.FailDisk)
    if strict:
        _set_fail(fail, new["failn1"] & ~v["failn1"], FailMode.FailMem)
        vr = v["vratio"]
        _set_fail(fail, (vr >= 0) & (vr < new["ucpu"] / v["tcpu"]), FailMode.FailCPU)
        if tag_reject is not None:
            _set_fail(fail, tag_reject, FailMode.FailTags)
        fv = _forth_pri_violation(v, new, inst)
        fail = np.where(fail == 0, fv, fail).astype(np.int8)
    return new, fail


def add_sec(
    v: View, inst: Any, peer_p: NDArray, strict: bool, ignore_disks: bool = False
) -> tuple[View, NDArray]:
    """Place ``inst`` as secondary (``Node.addSecExEx``); ``peer_p`` = peers[pnode]."""
    new = dict(v)
    n = len(v["tmem"])
    secmem = inst.mem * inst.uses_sec_mem
    new["fdsk_f"] = v["fdsk_f"] - inst.dsk
    new["fsp_f"] = _free_spindles(v, "fsp_f", inst, True)
    new["isp_f"] = _spindle_use(v, "isp_f", inst, True)

    def forth_violation() -> NDArray:
        f = np.zeros(n, dtype=np.int8)
        if not inst.has_secondary:
            f[:] = int(FailMode.FailDisk)
            return f
        _set_fail(f, new["fdsk_f"] <= 0, FailMode.FailDisk)
        _set_fail(f, new["fdsk_f"] < v["lodsk"], FailMode.FailDisk)
        _set_fail(f, v["excl"] & (new["fsp_f"] < 0), FailMode.FailSpindles)
        _set_fail(f, new["isp_f"] > v["hisp"], FailMode.FailDisk)
        _set_fail(f, secmem >= v["fmem_f"], FailMode.FailMem)
        return f

    if inst.forthcoming:
        fail = forth_violation() if strict else np.zeros(n, dtype=np.int8)
        return new, fail
    old_mem = unallocated(v)
    new["fdsk"] = v["fdsk"] - inst.dsk
    new["fsp"] = _free_spindles(v, "fsp", inst, True)
    new["isp"] = _spindle_use(v, "isp", inst, True)
    new_peem = peer_p + secmem
    new["rmem"] = np.maximum(v["rmem"], new_peem)
    new["failn1"] = old_mem <= new["rmem"]
    new["ld"] = v["ld"] + inst.util[2]
    new["nsec"] = v["nsec"] + 1
    fail = np.zeros(n, dtype=np.int8)
    if not inst.has_secondary:
        fail[:] = int(FailMode.FailDisk)
    if not ignore_disks:
        _set_fail(fail, new["fdsk"] <= 0, FailMode.FailDisk)
    if strict:
        _set_fail(fail, new["fdsk"] < v["lodsk"], FailMode.FailDisk)
    _set_fail(fail, v["excl"] & (new["fsp"] < 0), FailMode.FailSpindles)
    if strict:
        _set_fail(fail, new["isp"] > v["hisp"], FailMode.FailDisk)
        _set_fail(fail, secmem >= old_mem, FailMode.FailMem)
        _set_fail(fail, new["failn1"] & ~v["failn1"], FailMode.FailMem)
        fv = forth_violation()
        fail = np.where(fail == 0, fv, fail).astype(np.int8)
    return new, fail


def remove_pri(v: View, inst: Any) -> View:
    """Take ``inst`` off its primary (``Node.removePri``)."""
    new = dict(v)
    uses_disk = inst.uses_local_storage
    new["fmem_f"] = v["fmem_f"] + inst.mem
    if uses_disk:
        new["fdsk_f"] = v["fdsk_f"] + inst.dsk
    new["fsp_f"] = _free_spindles(v, "fsp_f", inst, False)
    new["isp_f"] = _spindle_use(v, "isp_f", inst, False)
    vcpus = inst.vcpus * inst.not_offline
    new["ucpu_f"] = v["ucpu_f"] - vcpus
    if inst.forthcoming:
        return new
    new["imem"] = v["imem"] - inst.mem * inst.uses_memory
    new["failn1"] = unallocated(new) <= v["rmem"]
    if uses_disk:
        new["fdsk"] = v["fdsk"] + inst.dsk
    new["fsp"] = _free_spindles(v, "fsp", inst, False)
    new["isp"] = _spindle_use(v, "isp", inst, False)
    new["ucpu"] = v["ucpu"] - vcpus
    new["lc"] = v["lc"] - inst.util[0]
    new["lm"] = v["lm"] - inst.util[1]
    new["ld"] = v["ld"] - inst.util[2]
    new["ln"] = v["ln"] - inst.util[3]
    new["npri"] = v["npri"] - 1
    return new


def remove_sec(v: View, inst: Any, old_peem: NDArray, max_other: NDArray) -> View:
    """Take ``inst`` off its secondary (``Node.removeSec``).

    ``old_peem`` = peers[pnode] before removal, ``max_other`` = the largest peer
    entry of the node other than pnode's (0 if none).
    """
    new = dict(v)
    uses_disk = inst.uses_local_storage
    if uses_disk:
        new["fdsk_f"] = v["fdsk_f"] + inst.dsk
    new["fsp_f"] = _free_spindles(v, "fsp_f", inst, False)
    new["isp_f"] = _spindle_use(v, "isp_f", inst, False)
    if inst.forthcoming:
        return new
    if uses_disk:
        new["fdsk"] = v["fdsk"] + inst.dsk
    new["fsp"] = _free_spindles(v, "fsp", inst, False)
    new["isp"] = _spindle_use(v, "isp", inst, False)
    secmem = inst.mem * inst.uses_sec_mem
    new_peem = old_peem - secmem
    rm = np.maximum(max_other, np.where(new_peem > 0, new_peem, 0))
    new["rmem"] = np.where(old_peem < v["rmem"], v["rmem"], rm)
    new["failn1"] = unallocated(v) <= new["rmem"]
    new["ld"] = v["ld"] - inst.util[2]
    new["nsec"] = v["nsec"] - 1
    return new
