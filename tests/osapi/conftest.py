"""Fixtures for the OS definition driver: OS directories built on the fly."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

OK_SCRIPT = "#!/bin/sh\nexit 0\n"

MakeOs = Callable[..., Path]


def write_os(
    top: Path,
    name: str,
    api: Sequence[int | str] = (20,),
    *,
    variants: Sequence[str] | None = None,
    parameters: str | None = "",
    scripts: dict[str, str | None] | None = None,
) -> Path:
    """An OS definition directory `top/name`.

    Every script of the API is an `exit 0` script unless `scripts` overrides
    it (None = leave the file out). `parameters=None` leaves parameters.list out.
    """
    os_dir = top / name
    os_dir.mkdir(parents=True, exist_ok=True)
    (os_dir / "ganeti_api_version").write_text("".join(f"{v}\n" for v in api))
    bodies: dict[str, str | None] = dict.fromkeys(
        ("create", "import", "export", "rename", "verify"), OK_SCRIPT
    )
    bodies.update(scripts or {})
    for script, body in bodies.items():
        if body is None:
            continue
        path = os_dir / script
        path.write_text(body)
        os.chmod(path, 0o755)
    if parameters is not None:
        (os_dir / "parameters.list").write_text(parameters)
    if variants is not None:
        (os_dir / "variants.list").write_text("".join(f"{v}\n" for v in variants))
    return os_dir


@pytest.fixture
def os_root(tmp_path: Path) -> Path:
    root = tmp_path / "os"
    root.mkdir()
    return root


@pytest.fixture
def make_os(os_root: Path) -> MakeOs:
    def make(name: str, *args: object, **kwargs: object) -> Path:
        return write_os(os_root, name, *args, **kwargs)  # type: ignore[arg-type]

    return make
