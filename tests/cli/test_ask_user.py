"""Confirmation prompts read the controlling terminal (as Ganeti's AskUser);
without one the answer is "no"."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SNIPPET = "from corral.cli.common import ask_user; print('RESULT', ask_user('Continue?'))"


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script(1) missing")
@pytest.mark.parametrize(("typed", "expected"), [("y\n", "True"), ("no\n", "False")])
def test_answer_on_a_real_terminal(typed: str, expected: str) -> None:
    cmd = f'{sys.executable} -c "{SNIPPET}"'
    proc = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        input=typed,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Continue?" in proc.stdout
    assert f"RESULT {expected}" in proc.stdout


def test_no_terminal_means_no() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        start_new_session=True,  # no controlling terminal
    )
    assert "RESULT False" in proc.stdout
