"""Iallocator request execution (what hail does); `run_request` is the in-process API.

``run_request(request) -> {"success": bool, "info": str, "result": ...}`` takes a
parsed iallocator v2 document (the whole input, with ``request`` inside) and
never raises for bad input: malformed requests and impossible placements give
``success: false`` with the reason in ``info``, like Ganeti's hail.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import numpy as np

from corral.htools import allocate, score
from corral.htools.cluster import Cluster
from corral.htools.ialloc import Request, _get, _num, instance_from_dict, parse_request
from corral.htools.moves import Move, apply_move, move_result
from corral.htools.types import FailMode, HtoolsError, Instance


@dataclasses.dataclass
class Options:
    capacity_check: bool = True
    ignore_soft_errors: bool = False
    static_kvm_node_memory: int = 4096
    restrict_to: list[str] | None = None


def run_request(request: dict[str, Any], options: Options | None = None) -> dict[str, Any]:
    """Answer one iallocator v2 request: ``{"success", "info", "result"}``."""
    opts = options or Options()
    loaded = load_request(request, opts)
    if isinstance(loaded, dict):
        return loaded
    return run_on_cluster(*loaded, opts)


def load_request(
    request: dict[str, Any], opts: Options
) -> tuple[Cluster, Request] | dict[str, Any]:
    """The request's cluster and request, or the failure answer when it cannot be read."""
    try:
        return parse_request(request, opts.static_kvm_node_memory)
    except HtoolsError as err:
        return {"success": False, "info": f"Request failed: {err}", "result": []}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        return {"success": False, "info": f"Request failed: invalid request: {err}", "result": []}


def run_on_cluster(c: Cluster, rq: Request, opts: Options) -> dict[str, Any]:
    """Answer a request against an already loaded cluster (e.g. hail -t FILE).

    ``c`` is left as the answer leaves the cluster (the new instance placed,
    the instances moved), which ``hail -p`` / ``-S`` show as the final state.
    """
    try:
        handler = _HANDLERS[rq.kind]
        ok, info, result = handler(c, rq.data, opts)
    except HtoolsError as err:
        return {"success": False, "info": f"Request failed: {err}", "result": []}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
        return {"success": False, "info": f"Request failed: invalid request: {err}", "result": []}
    prefix = "Request successful: " if ok else "Request failed: "
    return {"success": ok, "info": prefix + info, "result": result}


def _restrict(c: Cluster, rq: dict[str, Any], opts: Options) -> set[int] | None:
    names: list[str] | None = None
    if rq.get("restrict-to-nodes"):
        names = list(rq["restrict-to-nodes"])
    if opts.restrict_to:
        names = [n for n in (names or opts.restrict_to) if n in opts.restrict_to]
    if names is None:
        return None
    return {c.node_index[n] for n in names if n in c.node_index}


def _new_instance(rq: dict[str, Any], what: str) -> tuple[Instance, int]:
    name = _get(rq, "name", what, str)
    inst = instance_from_dict(name, rq, what)
    req_nodes = _num(rq, "required_nodes", what)
    need = 2 if inst.has_secondary else 1
    if req_nodes != need:
        raise HtoolsError(
            f"Required nodes mismatch: disk template {inst.disk_template} needs {need}"
            f" node(s), request asks for {req_nodes}"
        )
    return inst, req_nodes


def _describe(c: Cluster, sols: list[allocate.GroupSolution]) -> list[str]:
    return [
        f"Group {c.groups[s.group].name} ({c.groups[s.group].alloc_policy}): {s.describe(c)}"
        for s in sols
    ]


def _allocate_one(
    c: Cluster, rq: dict[str, Any], opts: Options, what: str = "request"
) -> tuple[allocate.GroupSolution | None, list[allocate.GroupSolution], Instance]:
    inst, req_nodes = _new_instance(rq, what)
    if inst.name in c.inst_index:
        raise HtoolsError(f"Instance '{inst.name}' already exists")
    group = None
    gname = rq.get("group_name")
    if gname:
        group = c.find_group(gname)
    best, sols = allocate.alloc_multi_group(
        c, inst, req_nodes, group, opts.capacity_check, opts.ignore_soft_errors,
        _restrict(c, rq, opts),
    )  # fmt: skip
    return best, sols, inst


def _do_allocate(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    best, sols, inst = _allocate_one(c, rq, opts)
    desc = _describe(c, sols)
    if best is None or best.best is None:
        return False, ", ".join(desc) or "no node groups available", []
    info = ", ".join([f"Selected group: {c.groups[best.group].name}", *desc])
    nodes = [c.names[n] for n in best.best.nodes]
    with contextlib.suppress(AssertionError):  # the final state for hail -p / -S only
        allocate.place_new(c, inst, best.best.nodes)
    return True, info, nodes


def _do_multi(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    reqs = _get(rq, "instances", "request", list)
    done: list[Any] = []
    failed: list[str] = []
    for i, r in enumerate(reqs):
        best, _, inst = _allocate_one(c, r, opts, what=f"instance request {i}")
        if best is None or best.best is None:
            failed.append(inst.name)
            continue
        allocate.place_new(c, inst, best.best.nodes)
        done.append([inst.name, [c.names[n] for n in best.best.nodes]])
    info = f"{len(failed)} instances failed to allocate and {len(done)} were allocated successfully"
    return True, info, [done, failed]


def _find_instance(c: Cluster, name: str) -> Instance:
    if name not in c.inst_index:
        raise HtoolsError(f"Unknown instance '{name}'")
    return c.instances[c.inst_index[name]]


def best_target(
    c: Cluster, inst: Instance, move: Move, cand: list[int], gidx: int
) -> tuple[int, float] | None:
    """Best target node for a move of ``inst`` (exact score after each candidate)."""
    best: tuple[int, float] | None = None
    nodes = c.group_nodes(gidx)
    for t in cand:
        c.checkpoint()
        r = apply_move(c, inst, move, t)
        if r == FailMode.OK:
            sc = c.score(nodes)
            if best is None or sc < best[1]:
                best = (t, sc)
        c.rollback()
    return best


def _do_relocate(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    inst = _find_instance(c, _get(rq, "name", "request", str))
    req_nodes = _num(rq, "required_nodes", "request")
    rfrom = [c.lookup_node(n, inst.name) for n in _get(rq, "relocate_from", "request", list)]
    if not inst.has_secondary:
        return False, f"Can't relocate instance with disk template {inst.disk_template}", []
    if req_nodes != 1:
        return False, f"Required nodes mismatch: relocation needs 1 node, asks {req_nodes}", []
    if inst.snode not in rfrom:
        return False, "Relocation of the primary node is not supported, only the secondary", []
    gidx = int(c.group[inst.pnode])
    restrict = _restrict(c, rq, opts)
    cand = [
        int(n)
        for n in c.online_in_group(gidx)
        if int(n) not in (inst.pnode, inst.snode)
        and int(n) not in rfrom
        and (restrict is None or int(n) in restrict)
    ]
    res = best_target(c, inst, Move.REPLACE_SECONDARY, cand, gidx)
    if res is None:
        return False, "No valid solution found for relocating the instance", []
    apply_move(c, inst, Move.REPLACE_SECONDARY, res[0])
    return True, "success", [c.names[res[0]]]


def _opcodes_for(c: Cluster, inst: Instance, steps: list[tuple[str, int]]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for kind, node in steps:
        if kind == "rep":
            ops.append(
                {
                    "OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": inst.name,
                    "early_release": False, "ignore_ipolicy": False,
                    "mode": "replace_new_secondary", "disks": [],
                    "remote_node": c.names[node],
                }
            )  # fmt: skip
        elif kind == "mig":
            ops.append(
                {
                    "OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": inst.name,
                    "allow_runtime_changes": False, "ignore_ipolicy": False, "cleanup": False,
                    "allow_failover": True, "ignore_hvversions": True,
                }
            )  # fmt: skip
        else:
            ops.append(
                {
                    "OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": inst.name,
                    "shutdown_timeout": 120, "ignore_consistency": False,
                    "target_node": c.names[node], "ignore_ipolicy": False,
                    "cleanup": False, "ignore_hvversions": True,
                }
            )  # fmt: skip
    return ops


def _evacuate_one(
    c: Cluster, inst: Instance, mode: str, avoid: set[int], gidx: int
) -> tuple[list[tuple[str, int]] | None, str]:
    """Move one instance off ``avoid`` nodes inside group ``gidx``; returns steps."""
    cand = [int(n) for n in c.online_in_group(gidx) if int(n) not in avoid]
    if inst.disk_template == "drbd":
        steps: list[tuple[str, int]] = []
        if mode in ("secondary-only", "all") and (inst.snode in avoid or mode == "all"):
            pass
        if mode == "primary-only":
            if inst.snode in avoid:
                return None, "secondary node is being evacuated too"
            if apply_move(c, inst, Move.FAILOVER) != FailMode.OK:
                return None, "failover to the secondary failed"
            return [("mig", inst.pnode)], ""
        if mode == "secondary-only":
            t = best_target(
                c, inst, Move.REPLACE_SECONDARY, [x for x in cand if x != inst.pnode], gidx
            )
            if t is None:
                return None, "no node can become the new secondary"
            apply_move(c, inst, Move.REPLACE_SECONDARY, t[0])
            return [("rep", t[0])], ""
        # all: new secondary, failover, new secondary
        t1 = best_target(
            c, inst, Move.REPLACE_SECONDARY, [x for x in cand if x != inst.pnode], gidx
        )
        if t1 is None:
            return None, "no node can become the new secondary"
        apply_move(c, inst, Move.REPLACE_SECONDARY, t1[0])
        steps.append(("rep", t1[0]))
        if apply_move(c, inst, Move.FAILOVER) != FailMode.OK:
            return None, "failover to the new node failed"
        steps.append(("mig", inst.pnode))
        t2 = best_target(
            c, inst, Move.REPLACE_SECONDARY, [x for x in cand if x != inst.pnode], gidx
        )
        if t2 is None:
            return None, "no node can become the new secondary"
        apply_move(c, inst, Move.REPLACE_SECONDARY, t2[0])
        steps.append(("rep", t2[0]))
        return steps, ""
    if inst.movable and inst.snode < 0 and mode != "secondary-only":
        t = best_target(c, inst, Move.FAILOVER_TO_ANY, [x for x in cand if x != inst.pnode], gidx)
        if t is None:
            return None, "no node can host the instance"
        apply_move(c, inst, Move.FAILOVER_TO_ANY, t[0])
        return [("fail_to", t[0])], ""
    return None, f"instance with disk template {inst.disk_template} cannot be moved"


def _do_evacuate(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    names = _get(rq, "instances", "request", list)
    mode = _get(rq, "evac_mode", "request", str)
    if mode not in ("primary-only", "secondary-only", "all"):
        raise HtoolsError(f"Invalid evacuation mode '{mode}'")
    insts = [_find_instance(c, n) for n in names]
    # The nodes being evacuated: common nodes of the instances, per mode.
    avoid: set[int] = set()
    if insts:
        sets = [{i.pnode, i.snode} - {-1} for i in insts]
        common = set.intersection(*sets)
        avoid = common if common else set()
    return _evac_common(c, insts, mode, avoid, None)


def _evac_common(
    c: Cluster, insts: list[Instance], mode: str, avoid: set[int], targets: list[int] | None
) -> tuple[bool, str, Any]:
    moved: list[Any] = []
    failed: list[Any] = []
    jobs: list[Any] = []
    for inst in insts:
        gidx = c.instance_group(inst)
        groups = targets if targets is not None else ([gidx] if gidx is not None else [])
        done = False
        reason = "instance spans node groups"
        for g in groups:
            c.checkpoint()
            steps, reason = _evacuate_one(
                c,
                inst,
                mode,
                avoid | ({inst.pnode, inst.snode} - {-1} if targets is not None else set()),
                g,
            )
            if steps is None:
                c.rollback()
                continue
            c.commit()
            nodes = [c.names[inst.pnode]] + ([c.names[inst.snode]] if inst.snode >= 0 else [])
            moved.append([inst.name, c.groups[g].name, nodes])
            jobs.append(_opcodes_for(c, inst, steps))
            done = True
            break
        if not done:
            failed.append([inst.name, reason])
    info = f"{len(failed)} instances failed to move and {len(moved)} were moved successfully"
    return True, info, [moved, failed, jobs]


def _do_change_group(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    insts = [_find_instance(c, n) for n in _get(rq, "instances", "request", list)]
    tg = _get(rq, "target_groups", "request", list)
    targets = (
        [c.find_group(g) for g in tg]
        if tg
        else [i for i, g in enumerate(c.groups) if g.alloc_policy != "unallocable"]
    )
    moved: list[Any] = []
    failed: list[Any] = []
    jobs: list[Any] = []
    for inst in insts:
        cur = c.instance_group(inst)
        ok = False
        for g in targets:
            if g == cur:
                continue
            nreq = 2 if inst.has_secondary else 1
            c.checkpoint()
            old = (inst.pnode, inst.snode)
            c.remove_pri(inst.pnode, inst)
            if inst.snode >= 0:
                c.remove_sec(inst.snode, inst)
            probe = dataclasses.replace(inst, name=inst.name + "\0probe", idx=-1)
            sol = allocate.alloc_in_group(c, probe, g, nreq, capacity_check=False)
            if sol.best is None:
                c.rollback()
                inst.pnode, inst.snode = old
                continue
            nodes = sol.best.nodes
            c.add_pri(nodes[0], inst, strict=False)
            if nreq == 2:
                c.add_sec(nodes[1], inst, nodes[0], strict=False)
            c.set_nodes(inst, nodes[0], nodes[1] if nreq == 2 else -1)
            c.commit()
            moved.append([inst.name, c.groups[g].name, [c.names[n] for n in nodes]])
            steps = (
                [("rep", nodes[1]), ("mig", nodes[1]), ("rep", nodes[0])]
                if nreq == 2
                else [("fail_to", nodes[0])]
            )
            jobs.append(_opcodes_for(c, inst, steps))
            ok = True
            break
        if not ok:
            failed.append([inst.name, "no target group can host the instance"])
    info = f"{len(failed)} instances failed to move and {len(moved)} were moved successfully"
    return True, info, [moved, failed, jobs]


def _do_alloc_secondary(c: Cluster, rq: dict[str, Any], opts: Options) -> tuple[bool, str, Any]:
    inst = _find_instance(c, _get(rq, "name", "request", str))
    if inst.snode >= 0:
        return False, "Instance already has a secondary node", []
    gidx = int(c.group[inst.pnode])
    st = c.stats(c.group_nodes(gidx))
    cand = np.array([n for n in c.online_in_group(gidx) if int(n) != inst.pnode], dtype=np.int64)
    if len(cand) == 0:
        return False, "No node available for the secondary", []
    probe = dataclasses.replace(inst, disk_template="drbd")
    m0 = score.node_metrics(c.view(cand))
    ms, fs = allocate._sec_metrics(c, cand, probe, c.peer_of(cand, inst.pnode), True)
    d1, d2 = score.deltas(m0, ms)
    sc = score.score_many(st, d1, d2)
    sc[fs != 0] = np.inf
    if not np.isfinite(sc).any():
        return False, "No valid secondary node found", []
    return True, "success", c.names[int(cand[int(np.argmin(sc))])]


_HANDLERS = {
    "allocate": _do_allocate,
    "multi-allocate": _do_multi,
    "relocate": _do_relocate,
    "node-evacuate": _do_evacuate,
    "change-group": _do_change_group,
    "allocate-secondary": _do_alloc_secondary,
}

__all__ = ["Options", "move_result", "run_request"]
