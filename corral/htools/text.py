"""Ganeti's htools text backend (``-t FILE``): parser and writer.

Format (Ganeti ``Backend/Text.hs``): ``|``-separated lines, list fields
comma-separated, sections separated by exactly one empty line, in order
groups, nodes, instances, cluster tags and (optional) instance policies; at
least four sections are required and further sections are ignored. Quirks
kept from Ganeti:

* a ``?`` in any size field yields an offline node with all sizes zero and
  no tags; role ``Y`` (offline/drained) marks the node offline but keeps its
  sizes and tags (Ganeti 3.0 ``loadNode``: location tags of an offline node
  still count in its instances' location scores); ``M`` marks the master;
* nodes and instances refer to groups by uuid, ipolicy lines by group name
  (empty owner = cluster policy); a group without a policy line gets
  Ganeti's default policy;
* the instance ``dsk`` is the space taken on *each* of its nodes; a node's
  ``f_dsk`` is already net of it;
* ipolicy specs have six numbers (memory, cpus, disk size, disk count, nic
  count, spindle use).
"""

from __future__ import annotations

from corral.htools.cluster import Cluster
from corral.htools.types import (
    ALLOC_POLICIES,
    DISK_TEMPLATES,
    INSTANCE_STATUSES,
    Group,
    HtoolsError,
    Instance,
    IPolicy,
    ISpec,
)


def _int(what: str, owner: str, s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise HtoolsError(f"Can't parse {what} '{s}' of {owner}") from None
    if abs(v) > 2**52:
        raise HtoolsError(f"Value {what} '{s}' of {owner} is too large")
    return v


def _float(what: str, owner: str, s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise HtoolsError(f"Can't parse {what} '{s}' of {owner}") from None
    if v != v or abs(v) > 2**52:
        raise HtoolsError(f"Can't parse {what} '{s}' of {owner}")
    return v


def _split_list(s: str) -> list[str]:
    return [x for x in s.split(",")] if s else []


def _bool_yn(what: str, owner: str, s: str) -> bool:
    if s == "Y":
        return True
    if s == "N":
        return False
    raise HtoolsError(f"Invalid {what} value for {owner}: '{s}'")


def parse_ispec(owner: str, s: str) -> ISpec:
    parts = s.split(",")
    if len(parts) != 6:
        raise HtoolsError(f"Invalid ipolicy spec '{s}' for {owner}")
    vals = [_int("ipolicy spec", owner, p) for p in parts]
    if any(x < 0 for x in vals):
        raise HtoolsError(f"Invalid negative ipolicy spec '{s}' for {owner}")
    return ISpec(*vals)


def parse_ipolicy_fields(fields: list[str]) -> tuple[str, IPolicy]:
    if len(fields) != 6:
        raise HtoolsError(f"Invalid ipolicy line: '{'|'.join(fields)}'")
    owner, std_s, mm_s, dts_s, vr_s, sr_s = fields
    name = owner or "cluster"
    std = parse_ispec(name, std_s)
    specs = [parse_ispec(name, x) for x in mm_s.split(";")]
    if len(specs) % 2:
        raise HtoolsError(f"Invalid minmax specs for {name}: '{mm_s}'")
    minmax = tuple((specs[i], specs[i + 1]) for i in range(0, len(specs), 2))
    dts = tuple(_split_list(dts_s))
    for dt in dts:
        if dt not in DISK_TEMPLATES:
            raise HtoolsError(f"Invalid disk template '{dt}' in ipolicy of {name}")
    pol = IPolicy(
        minmax, std, dts, _float("vcpu ratio", name, vr_s), _float("spindle ratio", name, sr_s)
    )
    return owner, pol


def parse_text(data: str) -> Cluster:
    """Parse a text-backend file into a finalized `Cluster` (raises `HtoolsError`)."""
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sections: list[list[str]] = [[]]
    for ln in lines:
        if ln == "":
            sections.append([])
        else:
            sections[-1].append(ln)
    if len(sections) < 4:
        raise HtoolsError(
            f"Invalid format of the input file: {len(sections)} sections instead of 4 or more"
        )
    c = Cluster()
    for ln in sections[0]:
        f = ln.split("|")
        if len(f) not in (4, 5):
            raise HtoolsError(f"Invalid/incomplete group data: '{ln}'")
        name, uuid, apol, tags = f[:4]
        if apol not in ALLOC_POLICIES:
            raise HtoolsError(f"Invalid alloc policy '{apol}' for group {name}")
        nets = _split_list(f[4]) if len(f) == 5 else []
        c.add_group(Group(name, uuid, apol, _split_list(tags), nets))
    for ln in sections[1]:
        _load_node(c, ln)
    pending: list[tuple[Instance, str, str]] = []
    for ln in sections[2]:
        pending.append(_load_inst(c, ln))
    c.cluster_tags = list(sections[3])
    if len(sections) > 4:
        for ln in sections[4]:
            owner, pol = parse_ipolicy_fields(ln.split("|"))
            if owner == "":
                c.ipolicy = pol
            else:
                gi = next((i for i, g in enumerate(c.groups) if g.name == owner), None)
                if gi is None:
                    raise HtoolsError(f"Unknown group '{owner}' in ipolicy section")
                c.groups[gi].ipolicy = pol
    c.finalize()
    return c


def _load_node(c: Cluster, ln: str) -> None:
    f = ln.split("|")
    if not 9 <= len(f) <= 15:
        raise HtoolsError(f"Invalid/incomplete node data: '{ln}'")
    defaults = ["1", "", "N", "0", "1", "1.0"]
    f = f + defaults[len(f) - 9 :]
    name, tm, nm, fm, td, fd, tc, role, gu, sp, tags, ex, fsp, ncpu, speed = f
    gdx = c.group_index(gu, name)
    if "?" in (tm, nm, fm, td, fd, tc):
        c.add_node(
            name=name,
            tmem=0.0,
            nmem=0,
            fmem=0,
            tdsk=0.0,
            fdsk=0,
            tcpu=0.0,
            offline=True,
            master=False,
            group=gdx,
            spindles=0,
            tags=[],
            excl=False,
            fsp=0,
            ncpu=0,
            speed=1.0,
        )
        return
    owner = f"node '{name}'"
    vals = dict(
        tmem=_float("total memory", owner, tm),
        nmem=_int("node memory", owner, nm),
        fmem=_int("free memory", owner, fm),
        tdsk=_float("total disk", owner, td),
        fdsk=_int("free disk", owner, fd),
        tcpu=_float("total cpus", owner, tc),
    )
    if any(x < 0 for x in vals.values()):
        raise HtoolsError(f"Invalid negative value in node data: '{ln}'")
    excl = _bool_yn("exclusive_storage", f"node '{name}'", ex)
    spv = _int("spindles", owner, sp)
    ncpuv = _int("reserved cpus", owner, ncpu)
    if spv < 0 or ncpuv < 0:
        raise HtoolsError(f"Invalid negative value in node data: '{ln}'")
    c.add_node(
        name=name, offline=(role == "Y"), master=(role == "M"), group=gdx, spindles=spv,
        tags=_split_list(tags), excl=excl, fsp=_int("free spindles", owner, fsp),
        ncpu=ncpuv, speed=_float("cpu speed", owner, speed), **vals,
    )  # fmt: skip


def _load_inst(c: Cluster, ln: str) -> tuple[Instance, str, str]:
    f = ln.split("|")
    if not 10 <= len(f) <= 13:
        raise HtoolsError(f"Invalid/incomplete instance data: '{ln}'")
    f = f + ["1", "-", "N"][len(f) - 10 :]
    name, mem, dsk, vcpus, status, ab, pn, sn, dt, tags, su, sp, forth = f
    owner = f"instance '{name}'"
    memv, dskv, vcv = (
        _int("memory", owner, mem),
        _int("disk", owner, dsk),
        _int("vcpus", owner, vcpus),
    )
    if memv < 0 or dskv < 0 or vcv < 0:
        raise HtoolsError(f"Invalid negative size in instance data: '{ln}'")
    if status not in INSTANCE_STATUSES:
        raise HtoolsError(f"Invalid instance status '{status}' for instance {name}")
    auto = _bool_yn("auto_balance", f"instance '{name}'", ab)
    if dt not in DISK_TEMPLATES:
        raise HtoolsError(f"Invalid disk template '{dt}' for instance {name}")
    pdx = c.lookup_node(pn, name)
    sdx = -1 if sn == "" else c.lookup_node(sn, name)
    if sdx == pdx:
        raise HtoolsError(f"Instance {name} has same primary and secondary node - {pn}")
    suv = _int("spindle use", owner, su)
    spv = None if sp == "-" else _int("spindles", owner, sp)
    inst = Instance(
        name=name, mem=memv, dsk=dskv, vcpus=vcv, status=status, auto_balance=auto,
        pnode=pdx, snode=sdx, disk_template=dt, tags=_split_list(tags), spindle_use=suv,
        disks=[(dskv, spv)], forthcoming=_bool_yn("forthcoming", f"instance '{name}'", forth),
    )  # fmt: skip
    inst.movable = dt in ("drbd", "sharedfile", "gluster", "blockdev", "rbd", "ext")
    c.add_instance(inst)
    return inst, pn, sn


def _ispec_line(owner: str, pol: IPolicy) -> str:
    mm = ";".join(f"{a.as_text()};{b.as_text()}" for a, b in pol.minmax)
    return "|".join(
        [owner, pol.std.as_text(), mm, ",".join(pol.disk_templates), repr(pol.vcpu_ratio),
         repr(pol.spindle_ratio)]
    )  # fmt: skip


def serialize(c: Cluster) -> str:
    """Write a cluster back in the text format (Ganeti's ``-S`` output shape)."""
    out = []
    for g in c.groups:
        out.append(f"{g.name}|{g.uuid}|{g.alloc_policy}|{','.join(g.tags)}|{','.join(g.networks)}")
    out.append("")
    v = c.nodes
    for i, name in enumerate(c.names):
        role = "Y" if v["offline"][i] else ("M" if c.master[i] else "N")
        out.append(
            "|".join(
                [
                    name, f"{v['tmem'][i]:.0f}", str(v["nmem"][i]), str(v["fmem"][i]),
                    f"{v['tdsk'][i]:.0f}", str(v["fdsk"][i]), f"{v['tcpu'][i]:.0f}", role,
                    c.groups[int(c.group[i])].uuid, str(v["tsp"][i]), ",".join(c.node_tags[i]),
                    "Y" if v["excl"][i] else "N", str(v["fsp"][i]),
                    str(int(v["ucpu"][i]) - sum(c.instances[x].vcpus for x in c.plist[i]
                                                 if c.instances[x].not_offline)),
                    repr(float(v["speed"][i])),
                ]
            )
        )  # fmt: skip
    out.append("")
    for inst in c.instances:
        sn = c.names[inst.snode] if inst.snode >= 0 else ""
        sp = inst.total_spindles
        out.append(
            "|".join(
                [
                    inst.name, str(inst.mem), str(inst.dsk), str(inst.vcpus), inst.status,
                    "Y" if inst.auto_balance else "N", c.names[inst.pnode], sn,
                    inst.disk_template, ",".join(inst.tags), str(inst.spindle_use),
                    "-" if sp is None else str(sp), "Y" if inst.forthcoming else "N",
                ]
            )
        )  # fmt: skip
    out.append("")
    out.extend(c.cluster_tags)
    out.append("")
    out.append(_ispec_line("", c.ipolicy))
    for g in c.groups:
        if True:
            out.append(_ispec_line(g.name, g.ipolicy))
    return "\n".join(out) + "\n"
