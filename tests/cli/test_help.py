"""Every gnt-* command of this package answers --help; bad usage exits like Ganeti."""

from __future__ import annotations

import pytest

from corral.cli import gnt_cluster, gnt_group, gnt_instance, gnt_node, gnt_os
from corral.cli._opts import Command

MAINS = {
    "gnt-cluster": gnt_cluster.main,
    "gnt-node": gnt_node.main,
    "gnt-instance": gnt_instance.main,
    "gnt-os": gnt_os.main,
    "gnt-group": gnt_group.main,
}
MODULES = {
    "gnt-cluster": gnt_cluster.commands,
    "gnt-node": gnt_node.commands,
    "gnt-instance": gnt_instance.commands,
    "gnt-os": gnt_os.commands,
    "gnt-group": gnt_group.commands,
}


@pytest.mark.parametrize("prog", sorted(MODULES))
def test_every_command_has_help(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    commands: dict[str, Command] = MODULES[prog]
    main = {
        "gnt-cluster": gnt_cluster.main,
        "gnt-node": gnt_node.main,
        "gnt-instance": gnt_instance.main,
        "gnt-os": gnt_os.main,
        "gnt-group": gnt_group.main,
    }[prog]
    for name, cmd in commands.items():
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {prog} {name}")
        assert cmd.help.split()[0] in out


@pytest.mark.parametrize("prog", sorted(MODULES))
def test_usage_errors_exit_1(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = MAINS[prog]
    assert main([]) == 1
    assert f"usage: {prog} {{command}}" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "Remove tags" in capsys.readouterr().out or prog == "gnt-os"
    assert main(["nosuchcommand"]) == 1
    assert main(["list-tags" if prog != "gnt-os" else "list", "--bogus-option"]) == 1


@pytest.mark.parametrize("prog", ["gnt-instance", "gnt-node", "gnt-group"])
def test_wrong_argument_count(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert MAINS[prog](["list-tags"]) == 1
    assert capsys.readouterr().err == "Error: Command list-tags expects 1 argument(s)\n"
    assert MAINS[prog](["list-tags", "a", "b"]) == 1
