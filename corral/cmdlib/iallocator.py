"""Ganeti iallocator protocol v2, master side.

Builds the request document from the configuration plus live node data, runs
the allocator and checks its answer. ``hail`` (the cluster default) is corral's
own allocator run in-process (`corral.htools.iallocator.run_request`); any other
name is an external iallocator executable (a path, or a name looked up in
Ganeti's iallocator directories), called the Ganeti way: one argument, the
path of a JSON input file; exit 0 and JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from typing import Any

from corral import constants as C
from corral import objects
from corral.config.reader import filled_ndparams
from corral.errors import ECODE_INVAL, ECODE_NORES, OpPrereqError

IALLOCATOR_SEARCH_PATH = (
    "/usr/lib/ganeti/iallocators",
    "/usr/local/lib/ganeti/iallocators",
    "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators",
)


def _instance_entry(cfg: objects.ConfigData, inst: objects.Instance) -> dict[str, Any]:
    be = objects.fill_dict(cfg.cluster.beparams.get("default", {}), inst.beparams)
    names = [cfg.nodes[n].name for n in inst.all_nodes if n in cfg.nodes]
    return {
        "tags": list(inst.tags),
        "admin_state": inst.admin_state,
        "admin_state_source": inst.admin_state_source,
        "vcpus": int(be.get(C.BE_VCPUS, 1)),
        "memory": int(be.get(C.BE_MAXMEM, 128)),
        "spindle_use": int(be.get(C.BE_SPINDLE_USE, 1)),
        "os": inst.os,
        "nodes": names,
        "nics": [
            {
                "mac": nic.mac,
                "ip": nic.ip,
                "mode": nic.nicparams.get(C.NIC_MODE),
                "link": nic.nicparams.get(C.NIC_LINK),
                "network": nic.network,
            }
            for nic in inst.nics
        ],
        "disks": [{"size": d.size, "mode": d.mode, "spindles": d.spindles} for d in inst.disks],
        "disk_template": inst.disk_template,
        "disk_space_total": sum(
            d.size + (C.DRBD_META_SIZE if d.dev_type == C.LD_DRBD8 else 0) for d in inst.disks
        ),
        "hypervisor": inst.hypervisor,
    }


def _node_entry(
    cfg: objects.ConfigData, node: objects.Node, live: dict[str, Any] | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tags": list(node.tags),
        "primary_ip": node.primary_ip,
        "secondary_ip": node.secondary_ip or node.primary_ip,
        "offline": node.offline,
        "drained": node.drained,
        "master_candidate": node.master_candidate,
        "master_capable": node.master_capable,
        "vm_capable": node.vm_capable,
        "group": node.group,
        "ndparams": filled_ndparams(cfg, node),
    }
    if node.offline or live is None:
        # Ganeti marks nodes without data offline for the allocator
        entry["offline"] = True
        return entry
    i_pri_memory = 0
    i_pri_up_memory = 0
    for inst in cfg.instances.values():
        if inst.primary_node != node.uuid:
            continue
        be = objects.fill_dict(cfg.cluster.beparams.get("default", {}), inst.beparams)
        mem = int(be.get(C.BE_MAXMEM, 128))
        i_pri_memory += mem
        if inst.admin_state == C.ADMINST_UP:
            i_pri_up_memory += mem
    entry.update(
        {
            "total_memory": int(live.get("memory_total", 0)),
            "reserved_memory": int(live.get("memory_dom0", 0)),
            "free_memory": int(live.get("memory_free", 0)),
            "total_disk": int(live.get("storage_size", 0)),
            "free_disk": int(live.get("storage_free", 0)),
            "total_spindles": int(live.get("spindles_total", 1)),
            "free_spindles": int(live.get("spindles_free", 1)),
            "total_cpus": int(live.get("cpu_total", 1)),
            "reserved_cpus": int(live.get("cpu_dom0", 1)),
            "i_pri_memory": i_pri_memory,
            "i_pri_up_memory": i_pri_up_memory,
        }
    )
    return entry


# Keys of an instance policy in protocol v2 (Ganeti 3.0's hail rejects others,
# e.g. 3.1's "memory-ratio").
_IPOLICY_KEYS = ("minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio")


def _ipolicy(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy.items() if k in _IPOLICY_KEYS}


def build_request(
    cfg: objects.ConfigData,
    node_live: dict[str, dict[str, Any] | None],
    request: dict[str, Any],
) -> dict[str, Any]:
    """The full iallocator input document. `node_live` is keyed by node UUID and
    holds flattened node_info (memory_*, storage_size/free, cpu_total)."""
    cluster = cfg.cluster
    return {
        "version": C.IALLOCATOR_VERSION,
        "cluster_name": cluster.cluster_name,
        "cluster_tags": list(cluster.tags),
        "enabled_hypervisors": list(cluster.enabled_hypervisors),
        "ipolicy": _ipolicy(cluster.ipolicy),
        "nodegroups": {
            g.uuid: {
                "name": g.name,
                "alloc_policy": g.alloc_policy,
                "networks": list(g.networks),
                "ipolicy": _ipolicy(objects.fill_dict(cluster.ipolicy, g.ipolicy)),
                "tags": list(g.tags),
            }
            for g in cfg.nodegroups.values()
        },
        "nodes": {n.name: _node_entry(cfg, n, node_live.get(n.uuid)) for n in cfg.nodes.values()},
        "instances": {i.name: _instance_entry(cfg, i) for i in cfg.instances.values()},
        "request": request,
    }


def allocate_request(
    *,
    name: str,
    disk_template: str,
    disks: list[dict[str, Any]],
    nics: list[dict[str, Any]],
    memory: int,
    vcpus: int,
    spindle_use: int,
    os_name: str,
    tags: list[str],
    hypervisor: str,
) -> dict[str, Any]:
    required = 2 if disk_template in C.DTS_INT_MIRROR else 1
    space = sum(
        int(d["size"]) + (C.DRBD_META_SIZE if disk_template == C.DT_DRBD8 else 0) for d in disks
    )
    return {
        "type": "allocate",
        "name": name,
        "disk_template": disk_template,
        "tags": tags,
        "os": os_name,
        "vcpus": vcpus,
        "memory": memory,
        "spindle_use": spindle_use,
        "disks": disks,
        "disk_space_total": space,
        "nics": nics,
        "required_nodes": required,
        "hypervisor": hypervisor,
    }


def _find_external(name: str) -> str | None:
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    for base in IALLOCATOR_SEARCH_PATH:
        path = os.path.join(base, name)
        if os.access(path, os.X_OK):
            return path
    return None


async def run_allocator(name: str, document: dict[str, Any]) -> dict[str, Any]:
    """Run iallocator `name` on `document`; return the parsed answer.

    Raises OpPrereqError when the allocator is unknown, fails or answers garbage.
    """
    if name in (C.DEFAULT_IALLOCATOR, "corral-hail"):
        from corral.htools import iallocator as hail  # lazy: numpy is heavy

        answer = await asyncio.to_thread(hail.run_request, document)
        return _check_answer(name, answer)
    path = _find_external(name)
    if path is None:
        raise OpPrereqError(f"Can't find allocator '{name}'", ECODE_INVAL)
    fd, tmp = tempfile.mkstemp(prefix="corral-ialloc-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh)
        proc = await asyncio.create_subprocess_exec(
            path,
            tmp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise OpPrereqError(
                f"Instance allocator call failed: {name} did not answer within 300 s",
                ECODE_NORES,
            ) from None
    finally:
        os.unlink(tmp)
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise OpPrereqError(
            f"Instance allocator call failed: {detail[-1] if detail else proc.returncode}",
            ECODE_NORES,
        )
    try:
        answer = json.loads(out)
    except ValueError as exc:
        raise OpPrereqError(f"Can't parse iallocator results: {exc}", ECODE_NORES) from exc
    return _check_answer(name, answer)


def _check_answer(name: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or not {"success", "info", "result"} <= set(answer):
        raise OpPrereqError(
            f"Can't parse iallocator results: missing keys in answer of {name}", ECODE_NORES
        )
    return answer


def allocated_nodes(name: str, answer: dict[str, Any], required: int) -> list[str]:
    """Node names from an allocate/relocate answer, checked like Ganeti does."""
    if not answer["success"]:
        raise OpPrereqError(
            f"Can't compute nodes using iallocator '{name}': {answer['info']}", ECODE_NORES
        )
    result = answer["result"]
    if not isinstance(result, list) or len(result) != required:
        raise OpPrereqError(
            f"iallocator '{name}' returned invalid number of nodes"
            f" ({len(result) if isinstance(result, list) else result}), required {required}",
            ECODE_NORES,
        )
    return [str(n) for n in result]
