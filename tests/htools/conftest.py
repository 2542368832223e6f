"""Shared fixtures: tiny generated clusters and paths to Ganeti's real htools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REF = Path("/work/shared/reference/htools")
CORPUS = REF / "corpus"
GEN = REF / "gen_cluster.py"
GANETI_BIN = Path("/usr/lib/ganeti/3.0/usr/bin")
GANETI_HBAL = GANETI_BIN / "hbal"
GANETI_HSPACE = GANETI_BIN / "hspace"
GANETI_HAIL = Path("/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail")

needs_ganeti = pytest.mark.skipif(
    not (GANETI_HBAL.exists() and GANETI_HAIL.exists()),
    reason="Ganeti's htools (Debian ganeti-htools-3.0) are not installed",
)
needs_corpus = pytest.mark.skipif(
    not (CORPUS / "dc-40.data").exists(), reason="htools reference corpus not available"
)


def gen_cluster(tmp: Path, profile: str, nodes: int, seed: int) -> Path:
    if not GEN.exists():
        pytest.skip("gen_cluster.py not available")
    out = tmp / f"{profile}-{nodes}-{seed}.data"
    subprocess.run(
        [sys.executable, str(GEN), "gen", "--profile", profile, "--nodes", str(nodes),
         "--seed", str(seed), "-o", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def gen_request(tmp: Path, data: Path, *extra: str) -> Path:
    out = tmp / (data.stem + "-" + "-".join(x.strip("-") for x in extra[:2]) + ".json")
    subprocess.run(
        [sys.executable, str(GEN), "ialloc", str(data), *extra, "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def tmpdir_path(tmp_path: Path) -> Path:
    return tmp_path


def run_tool(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def corral_bin(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)
