"""LUs for testing the job machinery (Ganeti's gnt-debug delay)."""

from __future__ import annotations

from typing import Any

from corral import opcodes
from corral.cmdlib.base import LEVEL_NODE, NoHooksLU
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, OpPrereqError


@lu_for(opcodes.OpTestDelay)
class LUTestDelay(NoHooksLU):
    """Sleep `duration` seconds on the master, `repeat` times (cancel-aware).

    With ``no_locks=False`` the nodes in `on_nodes` are locked exclusively, which
    makes it a handy tool to hold locks in tests. Sleeping on the nodes
    themselves is not supported (there is no node RPC for it); the nodes are
    only locked.
    """

    REQ_BGL = False

    def check_arguments(self) -> None:
        op = self.op
        assert isinstance(op, opcodes.OpTestDelay)
        if op.duration < 0:
            raise OpPrereqError("Negative delay", ECODE_INVAL)
        if op.repeat < 0:
            raise OpPrereqError("Negative repeat count", ECODE_INVAL)

    def expand_names(self) -> None:
        op = self.op
        assert isinstance(op, opcodes.OpTestDelay)
        if op.on_nodes:
            self.node_uuids = [self.cfg.expand_node_name(n)[0] for n in op.on_nodes]
            if not op.no_locks:
                self.needed_locks[LEVEL_NODE] = sorted(self.node_uuids)

    async def exec(self) -> Any:
        op = self.op
        assert isinstance(op, opcodes.OpTestDelay)
        rounds = max(1, op.repeat)
        for index in range(rounds):
            if op.repeat:
                self.log_info(f"Test delay iteration {index}/{op.repeat - 1}")
            await self.ctx.sleep(op.duration)
        return None
