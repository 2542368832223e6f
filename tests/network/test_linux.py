"""Network conformance against the real driver, each check in a new netns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.network.conformance import CHECKS

ROOT = Path(__file__).resolve().parents[2]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0 and os.path.exists("/dev/net/tun")


pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(not _can_unshare(), reason="needs root, unshare -n and /dev/net/tun"),
]


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_linux_conformance(check: str) -> None:
    cmd = ["unshare", "-n", sys.executable, "-m", "tests.network.conformance", "linux", check]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{check}: ok" in proc.stdout
