"""hbal front-end: Ganeti's output lines, multi-group abort, unsupported sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.cli import htools_hbal

TWO_GROUPS = (
    "a|ua|preferred||\nb|ub|preferred||\n\n"
    "n1|4096|512|3584|100000|100000|4|M|ua|1||N|0|1|1.0\n"
    "n2|4096|512|3584|100000|100000|4|N|ub|1||N|0|1|1.0\n\n\n\n"
)
UNBALANCED = (
    "g|u|preferred||\n\n"
    "n1|4096|512|2560|100000|96000|4|M|u|1||N|0|1|1.0\n"
    "n2|4096|512|3328|100000|96000|4|N|u|1||N|0|1|1.0\n"
    "n3|4096|512|3584|100000|100000|4|N|u|1||N|0|1|1.0\n\n"
    "i1|512|2000|1|running|Y|n1|n2|drbd|\n"
    "i2|512|2000|1|running|Y|n1|n2|drbd|\n"
    "i3|256|0|1|running|Y|n2||diskless|\n\n\n"
)


def test_balances_and_prints_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.data"
    f.write_text(UNBALANCED)
    assert htools_hbal.main(["-t", str(f), "-C"]) == 0
    out = capsys.readouterr().out
    assert "Loaded 3 nodes, 3 instances" in out
    assert "Initial score: " in out
    assert "Cluster score improved from " in out
    assert "Commands to run to reach the above solution:" in out
    assert "gnt-instance" in out


def test_multi_group_needs_G(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.data"
    f.write_text(TWO_GROUPS)
    assert htools_hbal.main(["-t", str(f)]) == 1
    assert "Found multiple node groups" in capsys.readouterr().err
    assert htools_hbal.main(["-t", str(f), "-G", "b"]) == 0
    assert "Selected node group: b" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("opt", "error"),
    [
        (["-L/nonexistent/socket"], "Error: failed to load data, aborting: Cannot communicate"),
        (["-m", "127.0.0.1:1"], "aborting: Cannot fetch 'https://127.0.0.1:1/2/groups?bulk=1'"),
    ],
)
def test_live_sources_without_a_server(
    opt: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert htools_hbal.main(opt) == 1
    assert error in capsys.readouterr().err


def test_bad_file_is_error_not_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "c.data"
    f.write_text("garbage\n")
    assert htools_hbal.main(["-t", str(f)]) == 1
    assert capsys.readouterr().err.startswith("Error: Invalid format of the input file")
