"""drbdsetup/drbdmeta command lines for DRBD 8.4 (pure; Ganeti's DRBD84CmdGenerator).

Each function returns argv lists; `drbd_kernel.KernelDRBD` runs them through a
`CommandRunner`. DRBD 8.4 names one resource per minor (``resource<minor>``),
as Ganeti does, since corral never shares a resource between volumes.
"""

from __future__ import annotations

import shlex
from typing import Any

from corral import errors

_BARRIER_OPTIONS = {
    "b": "--disk-barrier=no",
    "f": "--disk-flushes=no",
    "d": "--disk-drain=no",
}
_META_FLUSH_OPTION = "--md-flushes=no"


def dev_path(minor: int) -> str:
    return f"/dev/drbd{minor}"


def resource(minor: int) -> str:
    return f"resource{minor}"


def barrier_args(disabled: str, disable_meta_flush: bool) -> list[str]:
    """Options for the disabled barriers spec: "n" (none) or letters of b, f, d."""
    spec = disabled.strip() or "n"
    args: list[str] = []
    if disable_meta_flush:
        args.append(_META_FLUSH_OPTION)
    if spec == "n":
        return args
    if any(c not in _BARRIER_OPTIONS for c in spec):
        raise errors.BlockDeviceError(f"{spec} is not a valid option set for DRBD barriers")
    # Stable order: flushes, drain, barriers (Ganeti's)
    for letter in ("f", "d", "b"):
        if letter in spec:
            args.append(_BARRIER_OPTIONS[letter])
    return args


def show(minor: int) -> list[str]:
    return ["drbdsetup", "show", str(minor)]


def init_meta(minor: int, meta_dev: str) -> list[str]:
    return ["drbdmeta", "--force", dev_path(minor), "v08", meta_dev, "flex-external", "create-md"]


def local_init(
    minor: int, data_dev: str, meta_dev: str, size_mb: int | None, params: dict[str, Any]
) -> list[list[str]]:
    """new-resource, new-minor, apply-al, attach (with size and barrier options)."""
    attach = [
        "drbdsetup", "attach", str(minor), data_dev, meta_dev, "flexible",
        "--on-io-error=detach",
    ]  # fmt: skip
    if size_mb:
        attach += ["--size", f"{size_mb}m"]
    attach += barrier_args(
        str(params.get("disk-barriers", "n")), bool(params.get("meta-barriers", False))
    )
    custom = str(params.get("disk-custom", "") or "")
    if custom:
        attach += shlex.split(custom)
    return [
        ["drbdsetup", "new-resource", resource(minor)],
        ["drbdsetup", "new-minor", resource(minor), str(minor), "0"],
        ["drbdmeta", dev_path(minor), "v08", meta_dev, "flex-external", "apply-al"],
        attach,
    ]


def net_init(
    minor: int,
    lhost: str,
    lport: int,
    rhost: str,
    rport: int,
    protocol: str,
    dual_pri: bool,
    hmac: str,
    secret: str,
    params: dict[str, Any],
    family: str = "ipv4",
) -> list[str]:
    args = [
        "drbdsetup", "connect", resource(minor),
        f"{family}:{lhost}:{lport}", f"{family}:{rhost}:{rport}",
        "--protocol", protocol,
        "--after-sb-0pri", "discard-zero-changes",
        "--after-sb-1pri", "consensus",
    ]  # fmt: skip
    if dual_pri:
        args.append("--allow-two-primaries")
    if hmac and secret:
        args += ["--cram-hmac-alg", hmac, "--shared-secret", secret]
    custom = str(params.get("net-custom", "") or "")
    if custom:
        args += shlex.split(custom)
    return args


def sync_params(minor: int, params: dict[str, Any]) -> list[str]:
    args = ["drbdsetup", "disk-options", str(minor)]
    if params.get("dynamic-resync"):
        if int(params.get("c-plan-ahead", 0)) == 0:
            raise errors.BlockDeviceError(
                "A value of 0 for c-plan-ahead disables the dynamic sync speed controller;"
                " set the dynamic-resync disk parameter to False instead"
            )
        for name in ("c-plan-ahead", "c-fill-target", "c-delay-target", "c-max-rate", "c-min-rate"):
            args += [f"--{name}", str(params[name])]
    else:
        args += ["--resync-rate", str(int(params["resync-rate"]))]
    return args


def pause_sync(minor: int) -> list[str]:
    return ["drbdsetup", "pause-sync", str(minor)]


def resume_sync(minor: int) -> list[str]:
    return ["drbdsetup", "resume-sync", str(minor)]


def primary(minor: int, force: bool) -> list[str]:
    cmd = ["drbdsetup", "primary", str(minor)]
    return [*cmd, "--force"] if force else cmd


def secondary(minor: int) -> list[str]:
    return ["drbdsetup", "secondary", str(minor)]


def detach(minor: int) -> list[str]:
    return ["drbdsetup", "detach", str(minor)]


def disconnect(
    minor: int, lhost: str, lport: int, rhost: str, rport: int, family: str = "ipv4"
) -> list[str]:
    return ["drbdsetup", "disconnect", f"{family}:{lhost}:{lport}", f"{family}:{rhost}:{rport}"]


def down(minor: int) -> list[str]:
    return ["drbdsetup", "down", resource(minor)]


def resize(minor: int, size_mb: int) -> list[str]:
    return ["drbdsetup", "resize", str(minor), "--size", f"{size_mb}m"]
