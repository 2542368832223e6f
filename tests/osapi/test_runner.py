"""Running OS scripts: logs, failures, timeouts, import/export streams, verify."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corral import errors
from corral.osapi import load_os, os_verify_parameters, run_script
from tests.osapi.conftest import MakeOs

FAILING_CREATE = """#!/bin/sh
i=1
while [ $i -le 30 ]; do echo "line $i"; i=$((i + 1)); done
echo "mkfs: cannot open $DISK_0_PATH" >&2
exit 3
"""

VERIFY_DHCP = """#!/bin/sh
[ "$1" = parameters ] || { echo "usage: verify parameters" >&2; exit 1; }
case "$OSP_DHCP" in
  ""|yes|no) ;;
  *) echo "Invalid value '$OSP_DHCP' for the dhcp parameter" >&2; exit 1 ;;
esac
echo "variant=$OS_VARIANT api=$OS_API_VERSION" > "$OSP_OUT"
exit 0
"""


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": "/sbin:/bin:/usr/sbin:/usr/bin", "INSTANCE_NAME": "inst1", **extra}


def test_create_runs_in_os_dir_with_only_the_given_env(make_os: MakeOs, tmp_path: Path) -> None:
    d = make_os(
        "noop",
        scripts={"create": '#!/bin/sh\npwd\necho "home=${HOME:-unset} n=$INSTANCE_NAME"\n'},
    )
    log = tmp_path / "log" / "os" / "deep" / "add-noop-inst1.log"
    run_script(load_os("noop", str(d)), "create", _env(), str(log), timeout=30)
    assert log.read_text().splitlines() == [str(d), "home=unset n=inst1"]
    assert oct(log.parent.stat().st_mode & 0o777) == oct(0o750)


def test_failure_reports_ganetis_message_with_log_tail(make_os: MakeOs, tmp_path: Path) -> None:
    d = make_os("noop", scripts={"create": FAILING_CREATE})
    log = tmp_path / "add.log"
    with pytest.raises(errors.OSError_) as exc:
        run_script(load_os("noop", str(d)), "create", _env(DISK_0_PATH="/dev/x"), str(log))
    msg = str(exc.value)
    head, _, tail = msg.partition("\n")
    assert head == "OS create script failed (exited with exit code 3), last lines in the log file:"
    lines = tail.splitlines()
    assert len(lines) == 20
    assert lines[0] == "line 12" and lines[-1] == "mkfs: cannot open /dev/x"
    assert log.exists(), "the log is kept for the admin"


def test_timeout_kills_the_whole_process_group(make_os: MakeOs, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\necho started\nwait\n"
    d = make_os("slow", scripts={"rename": script})
    start = time.monotonic()
    with pytest.raises(errors.OSError_) as exc:
        run_script(load_os("slow", str(d)), "rename", _env(), str(tmp_path / "r.log"), 0.5)
    assert time.monotonic() - start < 10
    assert str(exc.value).startswith(
        "OS rename script failed (terminated after timeout of 0.50 seconds)"
    )
    assert "started" in str(exc.value)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the script's child survived the timeout")


def test_killed_by_signal(make_os: MakeOs, tmp_path: Path) -> None:
    d = make_os("sig", scripts={"create": "#!/bin/sh\nkill -9 $$\n"})
    with pytest.raises(errors.OSError_, match=r"\(terminated by signal 9\)"):
        run_script(load_os("sig", str(d)), "create", _env(), str(tmp_path / "c.log"))


def test_export_streams_stdout_and_import_reads_stdin(make_os: MakeOs, tmp_path: Path) -> None:
    d = make_os(
        "dd",
        scripts={
            "export": '#!/bin/sh\necho "exporting $EXPORT_INDEX" >&2\ncat "$EXPORT_DISK_PATH"\n',
            "import": '#!/bin/sh\ncat > "$IMPORT_DISK_PATH"\necho imported\n',
        },
    )
    os_def = load_os("dd", str(d))
    src, dump, dst = tmp_path / "src", tmp_path / "dump", tmp_path / "dst"
    src.write_bytes(os.urandom(4096))
    with open(dump, "wb") as out:
        run_script(
            os_def,
            "export",
            _env(EXPORT_INDEX="0", EXPORT_DISK_PATH=str(src)),
            str(tmp_path / "export.log"),
            stdout=out,
        )
    assert dump.read_bytes() == src.read_bytes()
    assert (tmp_path / "export.log").read_text() == "exporting 0\n"
    with open(dump, "rb") as inp:
        run_script(
            os_def,
            "import",
            _env(IMPORT_INDEX="0", IMPORT_DISK_PATH=str(dst)),
            str(tmp_path / "import.log"),
            stdin=inp,
        )
    assert dst.read_bytes() == src.read_bytes()
    assert (tmp_path / "import.log").read_text() == "imported\n"


def test_refuses_invalid_untrusted_and_unknown(make_os: MakeOs, tmp_path: Path) -> None:
    bad = make_os("bad", scripts={"verify": None})
    with pytest.raises(errors.OSError_, match=r"'verify' under path .* is missing"):
        run_script(load_os("bad", str(bad)), "create", _env(), str(tmp_path / "l"))
    helper = make_os("helper", scripts={"create": None, "create_untrusted": "#!/bin/sh\n"})
    with pytest.raises(errors.OSError_, match=r"untrusted create script"):
        run_script(load_os("helper", str(helper)), "create", _env(), str(tmp_path / "l"))
    with pytest.raises(errors.OSError_, match=r"Unknown OS script 'install'"):
        run_script(load_os("helper", str(helper)), "install", _env(), str(tmp_path / "l"))
    old = make_os("old", (10,), parameters=None, scripts={"verify": None})
    with pytest.raises(errors.OSError_, match=r"no verify script"):
        run_script(load_os("old", str(old)), "verify", _env(), str(tmp_path / "l"))


# -- verify parameters ----------------------------------------------------------


def test_verify_parameters_ok_and_env(make_os: MakeOs, os_root: Path, tmp_path: Path) -> None:
    make_os(
        "noop",
        variants=["default", "minimal"],
        parameters="dhcp Whether to use dhcp\nout test output file\n",
        scripts={"verify": VERIFY_DHCP},
    )
    out = tmp_path / "out"
    ok = os_verify_parameters(
        [str(os_root)], "noop+minimal", {"dhcp": "yes", "out": str(out)}, timeout=30
    )
    assert ok
    assert out.read_text() == "variant=minimal api=20\n"


def test_verify_parameters_failures(make_os: MakeOs, os_root: Path) -> None:
    make_os("noop", variants=["default"], parameters="dhcp x\n", scripts={"verify": VERIFY_DHCP})
    path = [str(os_root)]
    with pytest.raises(errors.OSError_) as exc:
        os_verify_parameters(path, "noop+default", {"dhcp": "maybe"})
    assert str(exc.value) == (
        "OS validation script failed (exited with exit code 1),"
        " output: Invalid value 'maybe' for the dhcp parameter"
    )
    with pytest.raises(errors.OSError_) as exc:
        os_verify_parameters(path, "noop+default", {"dhcp": "no", "zz": "1", "aa": "2"})
    assert str(exc.value) == "The following parameters are not supported by the OS noop: aa, zz"
    with pytest.raises(errors.OSError_, match=r"^OS name must include a variant$"):
        os_verify_parameters(path, "noop", {})
    with pytest.raises(errors.OSError_) as exc:
        os_verify_parameters(path, "nosuchos", {})
    assert str(exc.value) == "Directory for OS nosuchos not found in search path"
    assert os_verify_parameters(path, "nosuchos", {}, required=False) is False


def test_verify_skipped_below_api20(make_os: MakeOs, os_root: Path) -> None:
    make_os("noop", (5, 10), parameters=None, scripts={"verify": None})
    assert os_verify_parameters([str(os_root)], "noop", {"anything": "goes"})
