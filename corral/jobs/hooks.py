"""Running an LU's hooks on its hook nodes (Ganeti's HooksMaster).

The environment is the LU's `build_hooks_env()` with every key prefixed
``GANETI_`` plus Ganeti's common variables (``GANETI_HOOKS_VERSION``,
``GANETI_OP_CODE``, ``GANETI_OBJECT_TYPE``, ``GANETI_HOOKS_PHASE``,
``GANETI_HOOKS_PATH``, ``GANETI_CLUSTER``, ``GANETI_MASTER``,
``GANETI_DATA_DIR``). Nodes run ``<hooks_dir>/<HPATH>-<phase>.d/*`` via the
``run_hooks`` RPC. In the pre phase a failed script aborts the opcode
(`HooksAbort`); post-phase failures and unreachable nodes are warnings only.
"""

from __future__ import annotations

from typing import Any, Final

from corral.cmdlib.base import HOOKS_PHASE_PRE, LogicalUnit
from corral.errors import HooksAbort

HOOKS_VERSION: Final = 2
HKR_FAIL: Final = 1


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def build_env(lu: LogicalUnit, phase: str) -> dict[str, str]:
    cfg = lu.cfg
    master = cfg.get_node(cfg.cluster.master_node)
    env: dict[str, str] = {
        "GANETI_HOOKS_VERSION": str(HOOKS_VERSION),
        "GANETI_OP_CODE": lu.op.op_id(),
        "GANETI_OBJECT_TYPE": lu.HTYPE or "",
        "GANETI_HOOKS_PHASE": phase,
        "GANETI_HOOKS_PATH": lu.HPATH or "",
        "GANETI_CLUSTER": cfg.cluster.cluster_name,
        "GANETI_MASTER": master.name if master else "",
        "GANETI_DATA_DIR": lu.ctx.paths.data_dir,
    }
    for key, value in lu.build_hooks_env().items():
        name = key if key.startswith("GANETI_") else f"GANETI_{key}"
        env[name] = _env_value(value)
    return env


async def run_hooks(lu: LogicalUnit, phase: str) -> None:
    """Run the `phase` hooks of `lu` (no-op without HPATH or hook nodes)."""
    if lu.HPATH is None:
        return
    pre_nodes, post_nodes = lu.build_hooks_nodes()
    node_uuids = pre_nodes if phase == HOOKS_PHASE_PRE else post_nodes
    targets = [t for t in lu.ctx.node_targets(sorted(set(node_uuids))) if not t.offline]
    if not targets:
        return
    env = build_env(lu, phase)
    results = await lu.rpc.call_multi("run_hooks", targets, lu.HPATH, phase, env)
    failures: list[str] = []
    for node in sorted(results):
        res = results[node]
        if res.fail_msg is not None:
            lu.log_warning(f"Communication failure to node {node}: {res.fail_msg}")
            continue
        for script, status, output in res.payload or []:
            if status == HKR_FAIL:
                text = " ".join(str(output).split())
                failures.append(f"node {node}, script {script}" + (f": {text}" if text else ""))
    if not failures:
        return
    if phase == HOOKS_PHASE_PRE:
        raise HooksAbort("Hook script(s) failed: " + "; ".join(failures))
    for failure in failures:
        lu.log_warning(f"Post hook failed on {failure}")
