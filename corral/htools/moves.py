"""Instance moves (Ganeti ``Cluster/Moves.hs``) applied to a `Cluster`.

A move changes the nodes of one instance; each is a fixed sequence of
remove/add operations whose resource checks decide whether it is possible. As
in Ganeti 3.0, the instance takes the location score of its new node pair
before it is added to its new primary (the node's ``location_score`` counts it).
`apply_move` is atomic: on failure the cluster is left unchanged.

=========================  ==========  =====================================
move                       hbal code   result (primary, secondary)
=========================  ==========  =====================================
Failover                   ``f``       (s, p)
ReplacePrimary t           ``f r:t f`` (t, s)
ReplaceSecondary t         ``r:t``     (p, t)
ReplaceAndFailover t       ``r:t f``   (t, p)
FailoverAndReplace t       ``f r:t``   (s, t)
FailoverToAny t            ``fa:t``    (t, -)  (shared storage)
=========================  ==========  =====================================
"""

from __future__ import annotations

from enum import IntEnum

from corral.htools.cluster import Cluster
from corral.htools.types import FailMode, Instance


class Move(IntEnum):
    FAILOVER = 0
    REPLACE_PRIMARY = 1
    REPLACE_SECONDARY = 2
    REPLACE_AND_FAILOVER = 3
    FAILOVER_AND_REPLACE = 4
    FAILOVER_TO_ANY = 5


def _do(c: Cluster, inst: Instance, move: Move, t: int, force: bool) -> FailMode:
    p, s = inst.pnode, inst.snode
    off = c.nodes["offline"]
    if move == Move.FAILOVER:
        fp = bool(off[p]) or force
        c.remove_pri(p, inst)
        c.remove_sec(s, inst)
        r = c.add_pri(s, inst, strict=not fp)
        if r:
            return r
        r = c.add_sec(p, inst, s, strict=True)
        if r:
            return r
        c.set_nodes(inst, s, p)
    elif move == Move.FAILOVER_TO_ANY:
        fp = bool(off[p]) or force
        c.remove_pri(p, inst)
        r = c.add_pri(t, inst, strict=not fp)
        if r:
            return r
        c.set_nodes(inst, t, -1)
    elif move == Move.REPLACE_PRIMARY:
        fp = bool(off[p]) or force
        c.remove_pri(p, inst)
        c.remove_sec(s, inst)
        c.set_location_score(inst, t, s)
        r = c.add_pri(s, inst, strict=not fp)
        if r:
            return r
        c.remove_pri(s, inst)
        r = c.add_pri(t, inst, strict=not fp)
        if r:
            return r
        r = c.add_sec(s, inst, t, strict=not fp)
        if r:
            return r
        c.set_nodes(inst, t, s)
    elif move == Move.REPLACE_SECONDARY:
        fs = bool(off[s]) or force
        c.remove_pri(p, inst)
        c.remove_sec(s, inst)
        r = c.add_sec(t, inst, p, strict=not fs)
        if r:
            return r
        c.set_location_score(inst, p, t)
        # forced re-add of the primary; Ganeti 3.0 fails the move when even that is
        # refused (e.g. a zero-sized offline primary), so do we
        r = c.add_pri(p, inst, strict=False)
        if r:
            return r
        c.set_nodes(inst, p, t)
    elif move == Move.REPLACE_AND_FAILOVER:
        fs = bool(off[s]) or force
        c.remove_pri(p, inst)
        c.remove_sec(s, inst)
        c.set_location_score(inst, t, p)
        r = c.add_pri(t, inst, strict=not force)
        if r:
            return r
        r = c.add_sec(p, inst, t, strict=not fs)
        if r:
            return r
        c.set_nodes(inst, t, p)
    elif move == Move.FAILOVER_AND_REPLACE:
        fp = bool(off[p]) or force
        c.remove_pri(p, inst)
        c.remove_sec(s, inst)
        c.set_location_score(inst, s, t)
        r = c.add_pri(s, inst, strict=not fp)
        if r:
            return r
        r = c.add_sec(t, inst, s, strict=not fp)
        if r:
            return r
        c.set_nodes(inst, s, t)
    return FailMode.OK


def apply_move(
    c: Cluster, inst: Instance, move: Move, target: int = -1, force: bool = False
) -> FailMode:
    """Apply one move; returns `FailMode.OK` or the reason (cluster then unchanged)."""
    c.checkpoint()
    r = _do(c, inst, move, target, force)
    if r:
        c.rollback()
    else:
        c.commit()
    return r


def move_result(inst: Instance, move: Move, t: int) -> tuple[int, int]:
    p, s = inst.pnode, inst.snode
    return {
        Move.FAILOVER: (s, p),
        Move.REPLACE_PRIMARY: (t, s),
        Move.REPLACE_SECONDARY: (p, t),
        Move.REPLACE_AND_FAILOVER: (t, p),
        Move.FAILOVER_AND_REPLACE: (s, t),
        Move.FAILOVER_TO_ANY: (t, -1),
    }[move]


def move_code(move: Move, tname: str) -> tuple[str, list[tuple[str, str]]]:
    """hbal's short move description and its command list ((kind, node))."""
    if move == Move.FAILOVER:
        return "f", [("mig", "")]
    if move == Move.FAILOVER_TO_ANY:
        return f"fa:{tname}", [("mig_any", tname)]
    if move == Move.REPLACE_PRIMARY:
        return f"f r:{tname} f", [("mig", ""), ("rep", tname), ("mig", "")]
    if move == Move.REPLACE_SECONDARY:
        return f"r:{tname}", [("rep", tname)]
    if move == Move.REPLACE_AND_FAILOVER:
        return f"r:{tname} f", [("rep", tname), ("mig", "")]
    return f"f r:{tname}", [("mig", ""), ("rep", tname)]
