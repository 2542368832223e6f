"""Running external storage commands (lvm, drbdsetup, drbdmeta).

Drivers that work by command generation (LVM, kernel DRBD) never call
`subprocess` directly: they hand argv lists to a `CommandRunner`. Production
uses `SubprocessRunner`; unit tests use `RecordingRunner`, which records every
argv and answers from canned outputs, so the generated commands are checked
exactly without the tools or the kernel module being present.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence

import msgspec

from corral import errors


class CommandResult(msgspec.Struct, kw_only=True):
    """Outcome of one command: argv, exit code and both outputs."""

    argv: list[str]
    exit_code: int
    stdout: str = ""
    stderr: str = ""

    @property
    def failed(self) -> bool:
        return self.exit_code != 0

    @property
    def fail_reason(self) -> str:
        """One line explaining the failure, Ganeti style ("exited with exit code N")."""
        out = (self.stderr or self.stdout).strip().splitlines()
        tail = out[-1].strip() if out else ""
        return f"exited with exit code {self.exit_code}" + (f": {tail}" if tail else "")


class CommandRunner:
    """Runs argv lists; subclass to change how (tests, remote...)."""

    def run(self, argv: Sequence[str], timeout: float = 120.0) -> CommandResult:
        raise NotImplementedError

    def available(self, program: str) -> bool:
        """Whether `program` can be run here."""
        raise NotImplementedError

    def check(self, argv: Sequence[str], what: str, timeout: float = 120.0) -> CommandResult:
        """Run and raise BlockDeviceError("<what>: <reason>") on a non-zero exit."""
        result = self.run(argv, timeout=timeout)
        if result.failed:
            raise errors.BlockDeviceError(f"{what}: {result.fail_reason}")
        return result


class SubprocessRunner(CommandRunner):
    """Runs commands for real, with a timeout and LC_ALL=C output."""

    def run(self, argv: Sequence[str], timeout: float = 120.0) -> CommandResult:
        args = [str(a) for a in argv]
        try:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                check=False,
            )
        except FileNotFoundError:
            return CommandResult(argv=args, exit_code=127, stderr=f"{args[0]}: command not found")
        except subprocess.TimeoutExpired:
            return CommandResult(
                argv=args, exit_code=124, stderr=f"{args[0]}: timed out after {timeout:g}s"
            )
        return CommandResult(
            argv=args, exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr
        )

    def available(self, program: str) -> bool:
        return shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin") is not None


Responder = Callable[[list[str]], CommandResult | None]


class RecordingRunner(CommandRunner):
    """Test double: records argv lists and answers from rules.

    `responses` maps an argv prefix (tuple) to (exit_code, stdout[, stderr]);
    the longest matching prefix wins; unmatched commands succeed with no output.
    `responder`, when set, is asked first and may return a full result.
    """

    def __init__(
        self,
        responses: dict[tuple[str, ...], tuple[int, str] | tuple[int, str, str]] | None = None,
        programs: Sequence[str] = ("lvm", "lvs", "vgs", "lvcreate", "drbdsetup", "drbdmeta"),
        responder: Responder | None = None,
    ) -> None:
        self.responses = dict(responses or {})
        self.programs = set(programs)
        self.responder = responder
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout: float = 120.0) -> CommandResult:
        args = [str(a) for a in argv]
        self.calls.append(args)
        if self.responder is not None:
            answer = self.responder(args)
            if answer is not None:
                return answer
        best: tuple[int, str] | tuple[int, str, str] | None = None
        best_len = -1
        for prefix, resp in self.responses.items():
            if tuple(args[: len(prefix)]) == prefix and len(prefix) > best_len:
                best, best_len = resp, len(prefix)
        if best is None:
            return CommandResult(argv=args, exit_code=0)
        stderr = best[2] if len(best) == 3 else ""
        return CommandResult(argv=args, exit_code=best[0], stdout=best[1], stderr=stderr)

    def available(self, program: str) -> bool:
        return program in self.programs
