"""hbal -p: the node tables, compared with Ganeti's real hbal line by line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from corral.cli.htools_nodes import DEFAULT_FIELDS, parse_fields
from tests.htools.conftest import CORPUS, GANETI_HBAL, gen_cluster, needs_corpus

HBAL = [sys.executable, "-m", "corral.cli.htools_hbal"]


def test_field_lists() -> None:
    assert parse_fields("") == DEFAULT_FIELDS
    assert parse_fields("name,fmem") == ["name", "fmem"]
    assert parse_fields("+fqdn,idx") == [*DEFAULT_FIELDS, "fqdn", "idx"]


def _stderr(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    return proc.stderr


@pytest.mark.skipif(not GANETI_HBAL.exists(), reason="Ganeti's hbal is not installed")
@pytest.mark.parametrize(
    "spec", ["", "name,fmem,amem,pcnt,scnt", "+fqdn,idx,plist,slist,ptags,nosuch"]
)
def test_tables_equal_ganetis(tmp_path: Path, spec: str) -> None:
    # a small generated cluster and a corpus one; 3 moves so the final table differs
    files = [gen_cluster(tmp_path, "office", 8, 3)]
    if (CORPUS / "office-40.data").exists():
        files.append(CORPUS / "office-40.data")
    for data in files:
        args = ["-t", str(data), "-l", "3", f"--print-nodes={spec}"]
        ours = _stderr([*HBAL, *args])
        assert "Initial cluster status:" in ours and "Final cluster status:" in ours
        assert ours == _stderr([str(GANETI_HBAL), *args]), data


@needs_corpus
def test_no_table_without_p() -> None:
    args = ["-t", str(CORPUS / "office-40.data"), "-l", "1"]
    assert "cluster status" not in _stderr([*HBAL, *args])
