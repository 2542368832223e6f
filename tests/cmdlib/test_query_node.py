"""The node query resource: static and live fields, down nodes, filters."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_node import NodeQuery
from corral.errors import OpPrereqError
from tests.cmdlib.instance_fakes import create_op, instance_env, run_op
from tests.cmdlib.test_cluster_fakes import DOMAIN

FIELDS = ["name", "mtotal", "mfree", "dtotal", "dfree", "pinst_cnt", "pinst_list", "offline"]


def _query(tmp_path: Path, fields: list[str], qfilter: Any = None, dead: str = "") -> Any:
    env, rpc = instance_env(tmp_path)
    run_op(env, create_op("vm1"))
    if dead:
        rpc.dead.add(dead)
    ctx = MasterContext(cfg=env.cfg, rpc=rpc, paths=env.paths)  # type: ignore[arg-type]
    return asyncio.run(NodeQuery().query(ctx, fields, qfilter))


def test_live_and_static_fields(tmp_path: Path) -> None:
    result = _query(tmp_path, FIELDS)
    assert [f["name"] for f in result["fields"]] == FIELDS
    rows = [[value for _status, value in row] for row in result["data"]]
    assert rows[0] == [
        f"node1.{DOMAIN}",
        2048,
        2048 - 128 - 256,
        8192,
        8192 - 1024,
        1,
        ["vm1"],
        False,
    ]
    assert rows[1][4] == 8192 and rows[1][5] == 0


def test_down_node_gives_no_live_data(tmp_path: Path) -> None:
    result = _query(tmp_path, FIELDS, dead=f"node3.{DOMAIN}")
    row = result["data"][2]
    assert row[0] == (0, f"node3.{DOMAIN}")
    assert all(status != 0 and value is None for status, value in row[1:5])
    assert row[5] == (0, 0)


def test_filter_and_unknown_field(tmp_path: Path) -> None:
    result = _query(tmp_path, ["name", "nosuch"], ["=", "name", f"node2.{DOMAIN}"])
    assert result["data"] == [[(0, f"node2.{DOMAIN}"), (1, None)]]
    assert result["fields"][1]["kind"] == "unknown"
    try:
        _query(tmp_path / "x", ["name"], ["=", "bogusfield", 1])
    except OpPrereqError as err:
        assert "Unknown field 'bogusfield'" in str(err)
    else:
        raise AssertionError("an unknown filter field must be refused")
