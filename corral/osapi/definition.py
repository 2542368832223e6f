"""OS definitions on disk: discovery, validation and name/variant resolution.

An OS definition is a directory under one of the OS search path directories
(Ganeti's ``/srv/ganeti/os``, ``/usr/local/lib/ganeti/os``, ``/usr/lib/ganeti/os``,
``/usr/share/ganeti/os``, plus corral's bundled directory which the node backend
appends). The rules are Ganeti's (``lib/backend.py: _TryOSFromDisk``), so OS
packages from the Ganeti ecosystem install unchanged:

* ``ganeti_api_version`` (regular file, one integer per line) is required; at least
  one declared version must be in `constants.OS_API_VERSIONS`.
* executables ``import``, ``export`` and ``rename`` are required for every version;
  ``create`` is required unless the OS ships ``create_untrusted`` instead (Ganeti
  2.16+: such an OS is valid but *untrusted*, its create script must run inside a
  helper VM, which corral does not do -- `run_script` refuses it).
* when the highest declared version is >= 20, ``verify`` (executable) and
  ``parameters.list`` (``name description`` per line) are required too.
* ``variants.list`` is never required and is only read when the highest declared
  version is >= 15. A missing file -- including a dangling symlink, such as the
  Debian-style link to ``/etc/ganeti/<os>/variants.list`` before the admin wrote
  it -- means "no variants": the OS is listed and used by its bare name. Empty
  lines and ``#`` comments are ignored.
* the first search directory holding a name wins; later ones are shadowed.

Scripts must have the owner-executable bit, exactly as in Ganeti. corral's
bundled definitions keep their mode bits in the installed package (setuptools
stores them in the wheel and pip restores them), see `bundled_os_dir`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

import msgspec

from corral import constants as C
from corral import errors

OS_API_FILE = "ganeti_api_version"
OS_VARIANTS_FILE = "variants.list"
OS_PARAMETERS_FILE = "parameters.list"
SCRIPT_CREATE = "create"
SCRIPT_CREATE_UNTRUSTED = "create_untrusted"
SCRIPT_IMPORT = "import"
SCRIPT_EXPORT = "export"
SCRIPT_RENAME = "rename"
SCRIPT_VERIFY = "verify"
#: Scripts `run_script` accepts (``create_untrusted`` is never run by corral)
OS_SCRIPTS = (SCRIPT_CREATE, SCRIPT_IMPORT, SCRIPT_EXPORT, SCRIPT_RENAME, SCRIPT_VERIFY)
OS_API_V15 = 15
OS_API_V20 = 20
#: ``verify`` argument that checks the OS parameters (the only check of API 20)
OS_VALIDATE_PARAMETERS = "parameters"

#: Where the Debian package of ganeti-instance-image keeps its configuration;
#: the bundled ``image`` OS's ``variants.list`` links to ``variants.list`` in it.
IMAGE_CONFIG_SUBDIR = "instance-image"
DEFAULT_GANETI_ETC_DIR = "/etc/ganeti"


class OsDefinition(msgspec.Struct, kw_only=True):
    """One OS definition as found on one node (Ganeti's ``objects.OS``).

    `status` is the validity; `diagnose` is empty for a valid OS and Ganeti's
    one-line reason otherwise (variants, parameters and api_versions are then
    empty). `trusted` is False only for an OS that ships ``create_untrusted``.
    """

    name: str
    path: str
    status: bool
    diagnose: str = ""
    api_versions: list[int] = msgspec.field(default_factory=list)
    variants: list[str] = msgspec.field(default_factory=list)
    parameters: list[tuple[str, str]] = msgspec.field(default_factory=list)
    trusted: bool = True

    @property
    def api_version(self) -> int:
        """Highest API version both sides support (what OS_API_VERSION says)."""
        common = set(C.OS_API_VERSIONS).intersection(self.api_versions)
        if not common:
            raise errors.OSError_(f"OS {self.name} has no supported API version")
        return max(common)

    def script_path(self, script: str) -> str:
        return os.path.join(self.path, script)


def split_name(name: str) -> tuple[str, str | None]:
    """``"image+cd"`` -> ``("image", "cd")``; ``"noop"`` -> ``("noop", None)``."""
    base, sep, variant = name.partition("+")
    return base, (variant if sep else None)


def _errno_str(err: OSError) -> str:
    """Ganeti's ErrnoOrStr: the symbolic errno name when there is one."""
    if err.errno is not None and err.errno in errno.errorcode:
        return errno.errorcode[err.errno]
    return str(err)


def _invalid(name: str, path: str, msg: str) -> OsDefinition:
    return OsDefinition(name=name, path=path, status=False, diagnose=msg)


def _read_api_versions(os_dir: str) -> list[int] | str:
    """The declared API versions, or Ganeti's error message."""
    api_file = os.path.join(os_dir, OS_API_FILE)
    try:
        st = os.stat(api_file)
    except OSError as err:
        return f"Required file '{OS_API_FILE}' not found under path {os_dir}: {_errno_str(err)}"
    if not stat.S_ISREG(st.st_mode):
        return f"File '{OS_API_FILE}' in {os_dir} is not a regular file"
    try:
        lines = Path(api_file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        return f"Error while reading the API version file at {api_file}: {_errno_str(err)}"
    versions: list[int] = []
    for line in lines:
        # Ganeti chokes on blank lines; tolerating them changes no valid OS
        if not line.strip():
            continue
        try:
            versions.append(int(line.strip()))
        except ValueError as err:
            return f"API version(s) can't be converted to integer: {err}"
    if not versions:
        return f"No API version declared in {api_file}"
    return versions


def load_os(name: str, os_dir: str) -> OsDefinition:
    """Validate the OS definition directory `os_dir` (named `name`).

    Never raises for a bad definition: the result carries status and diagnose.
    """
    if not os.path.isdir(os_dir):
        return _invalid(name, os_dir, f"Directory for OS {name} not found in search path")
    versions = _read_api_versions(os_dir)
    if isinstance(versions, str):
        return _invalid(name, os_dir, versions)
    if not set(C.OS_API_VERSIONS).intersection(versions):
        return _invalid(
            name,
            os_dir,
            f"API version mismatch for path '{os_dir}': found {versions},"
            f" want {list(C.OS_API_VERSIONS)}.",
        )
    top = max(versions)
    # (file, required, is_script) in a fixed order so the diagnose is stable
    files: list[tuple[str, bool, bool]] = [
        (SCRIPT_CREATE, False, True),
        (SCRIPT_CREATE_UNTRUSTED, False, True),
        (SCRIPT_IMPORT, True, True),
        (SCRIPT_EXPORT, True, True),
        (SCRIPT_RENAME, True, True),
    ]
    if top >= OS_API_V20:
        files.append((SCRIPT_VERIFY, True, True))
        files.append((OS_PARAMETERS_FILE, True, False))
    if top >= OS_API_V15:
        files.append((OS_VARIANTS_FILE, False, False))
    present: set[str] = set()
    for fname, required, is_script in files:
        fpath = os.path.join(os_dir, fname)
        try:
            st = os.stat(fpath)
        except OSError as err:
            if err.errno == errno.ENOENT and not required:
                continue
            return _invalid(
                name,
                os_dir,
                f"File '{fname}' under path '{os_dir}' is missing ({_errno_str(err)})",
            )
        if not stat.S_ISREG(st.st_mode):
            return _invalid(
                name, os_dir, f"File '{fname}' under path '{os_dir}' is not a regular file"
            )
        if is_script and not st.st_mode & stat.S_IXUSR:
            return _invalid(name, os_dir, f"File '{fname}' under path '{os_dir}' is not executable")
        present.add(fname)
    if SCRIPT_CREATE not in present and SCRIPT_CREATE_UNTRUSTED not in present:
        return _invalid(
            name,
            os_dir,
            f"A create script (trusted or untrusted) under path '{os_dir}' must exist",
        )

    variants: list[str] = []
    if OS_VARIANTS_FILE in present:
        vfile = os.path.join(os_dir, OS_VARIANTS_FILE)
        try:
            text = Path(vfile).read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            return _invalid(
                name,
                os_dir,
                f"Error while reading the OS variants file at {vfile}: {_errno_str(err)}",
            )
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                variants.append(line)

    parameters: list[tuple[str, str]] = []
    if OS_PARAMETERS_FILE in present:
        pfile = os.path.join(os_dir, OS_PARAMETERS_FILE)
        try:
            text = Path(pfile).read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            return _invalid(
                name,
                os_dir,
                f"Error while reading the OS parameters file at {pfile}: {_errno_str(err)}",
            )
        for line in text.splitlines():
            parts = line.split(None, 1)
            if parts:
                parameters.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))

    return OsDefinition(
        name=name,
        path=os_dir,
        status=True,
        api_versions=versions,
        variants=variants,
        parameters=parameters,
        trusted=SCRIPT_CREATE in present,
    )


def _search_dirs(search_path: Sequence[str], extra: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for d in (*search_path, *extra):
        if d not in seen:
            seen.append(d)
    return seen


def discover(
    search_path: Sequence[str],
    extra: Sequence[str] = (),
    *,
    include_shadowed: bool = False,
) -> list[OsDefinition]:
    """Every OS found in `search_path` then `extra`, valid or not (Ganeti's DiagnoseOS).

    Each visible entry (name not starting with ``.``) of each existing search
    directory is one potential OS; a non-directory entry is an invalid OS, as in
    Ganeti. Names are reported once, from the first directory holding them,
    unless `include_shadowed` (then every entry, in search order, first one
    winning -- what ``gnt-os diagnose`` prints as ``[hidden]``).
    """
    result: list[OsDefinition] = []
    seen: set[str] = set()
    for top in _search_dirs(search_path, extra):
        if not os.path.isdir(top):
            continue
        try:
            names = sorted(n for n in os.listdir(top) if not n.startswith("."))
        except OSError:
            continue
        for name in names:
            if name in seen and not include_shadowed:
                continue
            seen.add(name)
            result.append(load_os(name, os.path.join(top, name)))
    return result


def _locate(search_path: Sequence[str], name: str) -> str | None:
    """First ``<dir>/<name>`` that is a directory (Ganeti's FindFile)."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        return None
    for top in search_path:
        candidate = os.path.join(top, name)
        if os.path.isdir(candidate):
            return candidate
    return None


def check_variant(os_def: OsDefinition, variant: str | None) -> None:
    """Ganeti's _CheckOSVariant: raise OSError_ if `variant` does not fit the OS."""
    if not os_def.variants:
        if variant:
            raise errors.OSError_(
                f"OS '{os_def.name}' doesn't support variants ('{variant}' passed)"
            )
        return
    if not variant:
        raise errors.OSError_("OS name must include a variant")
    if variant not in os_def.variants:
        raise errors.OSError_("Unsupported OS variant")


def get_os(search_path: Sequence[str], name: str) -> OsDefinition:
    """The valid OS definition `name` (bare name), first found in `search_path`.

    Raises `errors.OSError_` with ``Directory for OS X not found in search
    path`` or the diagnose of the invalid definition.
    """
    os_dir = _locate(search_path, name)
    if os_dir is None:
        raise errors.OSError_(f"Directory for OS {name} not found in search path")
    os_def = load_os(name, os_dir)
    if not os_def.status:
        raise errors.OSError_(os_def.diagnose)
    return os_def


def find_os(
    search_path: Sequence[str],
    name_with_variant: str,
    *,
    force_variant: bool = False,
) -> tuple[OsDefinition, str | None]:
    """Resolve ``name[+variant]`` to a valid OS definition and its variant.

    Raises `errors.OSError_` with Ganeti's messages: ``Directory for OS X not
    found in search path``, the validation diagnose of an invalid OS, ``OS 'X'
    doesn't support variants ('v' passed)``, ``OS name must include a variant``,
    ``Unsupported OS variant``. With `force_variant` the variant checks are
    skipped (``--force-variant``); a missing variant then defaults to the OS's
    first variant, as Ganeti's OS environment does. The returned variant is None
    exactly when the OS has no variants (or API < 15) and none was forced.
    """
    name, variant = split_name(name_with_variant)
    os_def = get_os(search_path, name)
    if not force_variant:
        check_variant(os_def, variant)
    if not variant and os_def.variants and os_def.api_version >= OS_API_V15:
        variant = os_def.variants[0]
    return os_def, (variant or None)


# -- bundled definitions ----------------------------------------------------


#: Bundled OS -> its variants.list location relative to the Ganeti etc dir.
#: Kept here because wheels drop symlinks (the source tree has the real link).
_BUNDLED_VARIANT_LINKS = {"image": f"{IMAGE_CONFIG_SUBDIR}/{OS_VARIANTS_FILE}"}


def bundled_os_dir() -> str:
    """corral's own OS definitions directory (inside the installed package).

    Holds ``image`` (a ganeti-instance-image work-alike) whose ``variants.list``
    is a symlink to ``/etc/ganeti/instance-image/variants.list``, as in the
    Debian package. Wheels cannot carry symlinks, so when the link is missing
    (installed from a wheel) this recreates it if the package directory is
    writable. Nodes whose Ganeti configuration directory is not ``/etc/ganeti``
    (unit-test roots) should use `install_bundled_os` instead.
    """
    top = Path(__file__).resolve().parent / "bundled"
    for name, target in _BUNDLED_VARIANT_LINKS.items():
        link = top / name / OS_VARIANTS_FILE
        if (top / name).is_dir() and not link.is_symlink() and not link.exists():
            with contextlib.suppress(OSError):
                link.symlink_to(os.path.join(DEFAULT_GANETI_ETC_DIR, target))
    return str(top)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def install_bundled_os(dest_dir: str, ganeti_etc_dir: str = DEFAULT_GANETI_ETC_DIR) -> str:
    """Copy the bundled OS definitions into `dest_dir`, wired to `ganeti_etc_dir`.

    The copy is what a distribution package would install: scripts executable,
    and ``image/variants.list`` a symlink to
    ``<ganeti_etc_dir>/instance-image/variants.list`` (the admin's file, which
    ``gnt-cluster copyfile`` distributes). Each definition is built in a hidden
    temporary directory and renamed into place. Idempotent; returns `dest_dir`,
    to be appended to the OS search path.
    """
    src = Path(bundled_os_dir())
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for os_src in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        final = dest / os_src.name
        tmp = dest / f".{os_src.name}.new"
        _remove(tmp)
        tmp.mkdir()
        for item in sorted(os_src.iterdir()):
            if item.name == OS_VARIANTS_FILE or item.name.startswith(".") or item.is_dir():
                continue
            target = tmp / item.name
            shutil.copyfile(item, target)
            mode = 0o755 if os.access(item, os.X_OK) or item.name in OS_SCRIPTS else 0o644
            os.chmod(target, mode)
        link = _BUNDLED_VARIANT_LINKS.get(os_src.name)
        if link is not None:
            os.symlink(os.path.join(ganeti_etc_dir, link), tmp / OS_VARIANTS_FILE)
        elif (os_src / OS_VARIANTS_FILE).is_file():
            shutil.copyfile(os_src / OS_VARIANTS_FILE, tmp / OS_VARIANTS_FILE)
        _remove(final)
        os.rename(tmp, final)
    return str(dest)
