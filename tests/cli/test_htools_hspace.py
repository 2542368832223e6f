"""hspace front-end: machine-readable HTS_* keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from corral.cli import htools_hspace

DATA = (
    "g|u|preferred||\n\n"
    "n1|4096|512|3584|100000|100000|4|M|u|1||N|0|1|1.0\n"
    "n2|4096|512|3584|100000|100000|4|N|u|1||N|0|1|1.0\n\n\n\n"
    "|1024,1,10240,1,1,1|128,1,1024,1,1,1;2048,4,20480,16,8,12|drbd,plain|4.0|32.0\n"
)


def test_machine_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.data"
    f.write_text(DATA)
    assert htools_hspace.main(["-t", str(f), "--machine-readable"]) == 0
    kv = dict(re.findall(r"^HTS_([A-Z_]+)=(.*)$", capsys.readouterr().out, re.M))
    assert kv["OK"] == "1" and kv["SPEC_DISK_TEMPLATE"] == "drbd"
    # 3072 MiB usable per node, 1024 per instance, N+1 keeps one node's worth free
    assert int(kv["ALLOC_INSTANCES"]) > 0
    assert kv["ALLOC_FAIL_REASON"].startswith("FAIL")
    assert int(kv["FIN_INST_CNT"]) == int(kv["ALLOC_INSTANCES"])


def test_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.data"
    f.write_text(DATA)
    assert htools_hspace.main(["-t", str(f), "--standard-alloc=1,x"]) == 1
    assert "Invalid instance specification" in capsys.readouterr().err


def test_full_scan_option_gives_same_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hidden --full-scan (every pair scored) prints the same HTS_* lines."""
    from corral.htools import pairs

    corpus = Path("/work/shared/reference/htools/corpus/office-40.data")
    f = corpus if corpus.exists() else tmp_path / "c.data"
    if not corpus.exists():
        f.write_text(DATA)
    argv = ["-t", str(f), "--machine-readable", "--disk-template=drbd",
            "--standard-alloc=4096,128,1"]  # fmt: skip
    assert htools_hspace.main(argv) == 0
    fast = capsys.readouterr().out
    assert htools_hspace.main([*argv, "--full-scan"]) == 0
    assert capsys.readouterr().out == fast
    assert pairs.FULL_SCAN[0] is False  # restored
    assert "HTS_ALLOC_INSTANCES=" in fast
