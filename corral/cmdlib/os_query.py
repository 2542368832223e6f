"""OS definitions across nodes: the "os" query resource and LUOsDiagnose.

Each node reports the OS definitions it finds (``os_diagnose``); an OS is
valid for the cluster when it is valid on every reachable vm-capable node,
like Ganeti's ``gnt-os list`` (which lists ``name+variant`` for OSes with
variants and the bare name for those without).
"""

from __future__ import annotations

from typing import Any

from corral import opcodes
from corral.cmdlib.base import LEVEL_NODE, MasterContext, NoHooksLU
from corral.cmdlib.query_base import (
    QFT_BOOL,
    QFT_OTHER,
    QFT_TEXT,
    Field,
    QueryResource,
    Row,
    cell,
)
from corral.cmdlib.registry import lu_for, register_query


async def diagnose(ctx: MasterContext) -> dict[str, dict[str, Any]]:
    """OS name -> {"name", "valid", "variants", "api_versions", "parameters",
    "node_status": {node: [(path, status, diagnose, variants, params, api, trusted)]}}."""
    cfg = ctx.cfg
    nodes = [n for n in cfg.all_nodes() if not n.offline and n.vm_capable]
    results = await ctx.rpc.call_multi("os_diagnose", [ctx.node_target(n.uuid) for n in nodes])
    oses: dict[str, dict[str, Any]] = {}
    answered = []
    for node in nodes:
        res = results.get(node.name)
        if res is None or res.failed:
            continue
        answered.append(node.name)
        for rec in res.payload or []:
            name = str(rec.get("name"))
            entry = oses.setdefault(
                name,
                {
                    "name": name,
                    "node_status": {},
                    "variants": None,
                    "api_versions": None,
                    "parameters": None,
                    "trusted": True,
                },
            )
            entry["node_status"].setdefault(node.name, []).append(
                (
                    rec.get("path"),
                    bool(rec.get("status")),
                    rec.get("diagnose", ""),
                    list(rec.get("variants") or []),
                    list(rec.get("parameters") or []),
                    list(rec.get("api_versions") or []),
                    bool(rec.get("trusted", True)),
                )
            )
    for entry in oses.values():
        status = entry["node_status"]
        valid = all(node in status and status[node][0][1] for node in answered) and bool(answered)
        entry["valid"] = valid
        firsts = [status[n][0] for n in answered if n in status]
        if firsts:
            variant_sets = [set(f[3]) for f in firsts if f[1]]
            if variant_sets:
                common = set.intersection(*variant_sets)
                # sorted, as Ganeti reports them (the paper lists image+cd first)
                entry["variants"] = sorted(common)
            else:
                entry["variants"] = []
            entry["api_versions"] = firsts[0][5]
            entry["parameters"] = firsts[0][4]
        entry["hidden"] = entry["name"] in cfg.cluster.hidden_os
        entry["blacklisted"] = entry["name"] in cfg.cluster.blacklisted_os
    return oses


def _f(name: str, title: str, kind: str, doc: str) -> Field:
    def getter(item: dict[str, Any], _live: Any) -> Any:
        return item.get(name)

    return Field(name=name, title=title, kind=kind, doc=doc, getter=getter)


class OsQuery(QueryResource):
    NAME = "os"
    DEFAULT_FIELDS = ("name",)
    FIELDS = [
        _f("name", "Name", QFT_TEXT, "Operating system name"),
        _f("valid", "Valid", QFT_BOOL, "Whether operating system definition is valid"),
        _f("hidden", "Hidden", QFT_BOOL, "Whether operating system is hidden"),
        _f("blacklisted", "Blacklisted", QFT_BOOL, "Whether operating system is blacklisted"),
        _f("variants", "Variants", QFT_OTHER, "Operating system variants"),
        _f("api_versions", "ApiVersions", QFT_OTHER, "Operating system API versions"),
        _f("parameters", "Parameters", QFT_OTHER, "Operating system parameters"),
        _f("node_status", "NodeStatus", QFT_OTHER, "Status from node"),
        _f("trusted", "Trusted", QFT_BOOL, "Whether the OS is trusted"),
    ]

    def fields(self) -> list[Field]:
        return self.FIELDS

    async def collect(
        self, ctx: MasterContext, names: list[str] | None, fields: list[str]
    ) -> list[Row]:
        oses = await diagnose(ctx)
        table = self.field_map()
        rows: list[Row] = []
        for name in sorted(oses):
            if names and name not in names:
                continue
            entry = oses[name]
            row: Row = []
            for field in fields:
                fdef = table.get(field)
                row.append((1, None) if fdef is None else cell(fdef.getter(entry, None)))
            rows.append(row)
        return rows


register_query(OsQuery())


@lu_for(opcodes.OpOsDiagnose)
class LUOsDiagnose(NoHooksLU):
    REQ_BGL = False
    op: opcodes.OpOsDiagnose

    def expand_names(self) -> None:
        self.share_locks[LEVEL_NODE] = True

    async def exec(self) -> Any:
        oses = await diagnose(self.ctx)
        fields = self.op.output_fields or ["name", "valid", "variants"]
        return [
            [oses[name].get(f) for f in fields]
            for name in sorted(oses)
            if not self.op.names or name in self.op.names
        ]
