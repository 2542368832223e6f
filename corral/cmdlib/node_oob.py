"""LUOobCommand: out-of-band management of nodes (`gnt-node power|health`).

Ganeti's contract, kept: the master runs each node's ``oob_program``
(inherited cluster < group < node) as ``PROGRAM COMMAND NODE``; powering off
or cycling the master is refused, and powering off a node not marked offline
is refused unless ``ignore_status`` (the CLI marks it offline first). A failed
program does not fail the opcode: that node's entry says ``RS_NODATA`` (no
program: ``RS_UNAVAIL``) and the others go on. The result is one entry per
node, sorted by name: ``[[RS_NORMAL, name], [status, payload]]``.

``power-off`` success also records ``powered = False`` on the node, which is
what the watcher's automatic failover reads as "fenced".
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from corral import constants as C
from corral import opcodes
from corral.cmdlib.base import ALL_SET, LEVEL_NODE, LogicalUnit
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_STATE, OpExecError, OpPrereqError

log = logging.getLogger(__name__)

_SKIP_MASTER = (C.OOB_POWER_OFF, C.OOB_POWER_CYCLE)
_NO_PAYLOAD = (C.OOB_POWER_ON, C.OOB_POWER_OFF, C.OOB_POWER_CYCLE)


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def check_payload(command: str, payload: Any) -> None:
    """Ganeti's payload rules per command; OpExecError with every violation."""
    errs: list[str] = []
    if command == C.OOB_HEALTH:
        if not isinstance(payload, list):
            errs.append(f"command 'health' is expected to return a list but got {type(payload)}")
        else:
            for entry in payload:
                if not (isinstance(entry, list) and len(entry) == 2):
                    errs.append(f"health item {entry!r} is not an [item, status] pair")
                elif not isinstance(entry[1], str) or entry[1] not in C.OOB_STATUSES:
                    errs.append(f"health item '{entry[0]}' has invalid status '{entry[1]}'")
    elif command == C.OOB_POWER_STATUS:
        if not isinstance(payload, dict) or C.OOB_POWER_STATUS_POWERED not in payload:
            errs.append(f"power-status is expected to return a dict but got {type(payload)}")
    elif command in _NO_PAYLOAD and payload is not None:
        errs.append(f"{command} is expected to not return payload but got '{payload}'")
    if errs:
        raise OpExecError("Check of out-of-band payload failed due to " + ", ".join(errs))


@lu_for(opcodes.OpOobCommand)
class LUOobCommand(LogicalUnit):
    REQ_BGL = False
    op: opcodes.OpOobCommand

    def check_arguments(self) -> None:
        if self.op.command not in C.OOB_COMMANDS:
            raise OpPrereqError(
                f"Invalid out-of-band command '{self.op.command}', expected one of"
                f" {', '.join(sorted(C.OOB_COMMANDS))}",
                ECODE_INVAL,
            )
        if self.op.power_delay < 0:
            raise OpPrereqError("The power delay can't be negative", ECODE_INVAL)
        if self.op.timeout <= 0:
            raise OpPrereqError("The out-of-band timeout must be positive", ECODE_INVAL)

    def expand_names(self) -> None:
        if self.op.node_names:
            self.node_uuids = [self.cfg.expand_node_name(n)[0] for n in self.op.node_names]
            self.needed_locks[LEVEL_NODE] = list(self.node_uuids)
        else:
            self.node_uuids = []
            self.needed_locks[LEVEL_NODE] = ALL_SET
        self.share_locks[LEVEL_NODE] = self.op.command not in _NO_PAYLOAD

    async def check_prereq(self) -> None:
        cfg = self.cfg
        master = cfg.cluster.master_node
        master_name = cfg.node_name(master)
        if self.node_uuids:
            if self.op.command in _SKIP_MASTER and master in self.node_uuids:
                program = cfg.filled_ndparams(cfg.nodes[master]).get("oob_program")
                extra = (
                    f"run '{program} {self.op.command} {master_name}' if you want to operate"
                    " on the master regardless"
                    if program
                    else "it does not support out-of-band operations"
                )
                raise OpPrereqError(
                    f"Operating on the master node {master_name} is not allowed for"
                    f" {self.op.command}; {extra}",
                    ECODE_INVAL,
                )
        else:
            self.node_uuids = [
                u for u in cfg.nodes if not (self.op.command in _SKIP_MASTER and u == master)
            ]
        self.nodes = sorted((cfg.nodes[u] for u in self.node_uuids), key=lambda n: _natural(n.name))
        if self.op.command == C.OOB_POWER_OFF and not self.op.ignore_status:
            for node in self.nodes:
                if not node.offline:
                    raise OpPrereqError(
                        f"Cannot power off node {node.name} because it is not marked offline",
                        ECODE_STATE,
                    )

    async def exec(self) -> Any:
        cfg = self.cfg
        master_target = self.ctx.node_target(cfg.cluster.master_node)
        result: list[list[list[Any]]] = []
        for idx, node in enumerate(self.nodes):
            entry: list[list[Any]] = [[C.RS_NORMAL, node.name]]
            result.append(entry)
            program = str(cfg.filled_ndparams(node).get("oob_program") or "")
            if not program:
                entry.append([C.RS_UNAVAIL, None])
                continue
            log.info(
                "Executing out-of-band command '%s' using '%s' on %s",
                self.op.command,
                program,
                node.name,
            )
            res = await self.rpc.call(
                "run_oob", master_target, program, self.op.command, node.name, self.op.timeout
            )
            if res.failed:
                self.log_warning(f"Out-of-band RPC failed on node '{node.name}': {res.fail_msg}")
                entry.append([C.RS_NODATA, None])
                continue
            try:
                check_payload(self.op.command, res.payload)
            except OpExecError as err:
                self.log_warning(f"Payload returned by node '{node.name}' is not valid: {err}")
                entry.append([C.RS_NODATA, None])
                continue
            await self._record(node.uuid, res.payload)
            entry.append([C.RS_NORMAL, res.payload])
            if self.op.command == C.OOB_POWER_ON and idx < len(self.nodes) - 1:
                await asyncio.sleep(self.op.power_delay)
        return result

    async def _record(self, node_uuid: str, payload: Any) -> None:
        """What the command says about the node's power, in its config entry."""
        node = self.cfg.nodes[node_uuid]
        if self.op.command == C.OOB_HEALTH:
            for item, status in payload:
                if status in ("WARNING", "CRITICAL"):
                    self.log_warning(f"Item '{item}' on node '{node.name}' has status '{status}'")
            return
        if self.op.command == C.OOB_POWER_STATUS:
            powered = bool(payload[C.OOB_POWER_STATUS_POWERED])
            if powered != node.powered:
                self.log_warning(
                    f"Recorded power state ({node.powered}) of node '{node.name}' does not"
                    f" match actual power state ({powered})"
                )
            return
        powered = self.op.command != C.OOB_POWER_OFF
        if node.powered != powered:
            new = node.copy()
            new.powered = powered
            await self.cfg.update_node(new)
