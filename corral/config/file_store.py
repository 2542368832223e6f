"""File backend of the config store: ``paths.config_file`` (config.data JSON).

Writes are atomic and durable: the JSON goes to a temporary file in the same
directory, is fsync'ed, renamed over config.data, and the directory is
fsync'ed, so a crash leaves either the old or the new config, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import msgspec

from corral import constants as C
from corral import objects
from corral.config.store import ConfigDistributor, ConfigStore
from corral.errors import ConfigurationError, ConfigVersionMismatch


def atomic_write(path: str, payload: bytes, mode: int = 0o600) -> None:
    """Write `payload` to `path` via temp file + fsync + rename (+ dir fsync)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def decode_config(payload: bytes | str) -> objects.ConfigData:
    """Parse config.data JSON (raises ConfigurationError / ConfigVersionMismatch)."""
    try:
        raw = msgspec.json.decode(payload)
    except msgspec.DecodeError as err:
        raise ConfigurationError(f"Cannot parse the configuration: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigurationError("Cannot parse the configuration: not a JSON object")
    version = raw.get("version")
    if version != C.CONFIG_VERSION:
        raise ConfigVersionMismatch(
            f"Cluster configuration version mismatch, got {version} instead of {C.CONFIG_VERSION}"
        )
    try:
        return msgspec.convert(raw, objects.ConfigData, strict=False)
    except msgspec.ValidationError as err:
        raise ConfigurationError(f"Invalid configuration: {err}") from err


def load_config_file(path: str) -> objects.ConfigData:
    """Read config.data (ConfigurationError if missing or invalid)."""
    try:
        with open(path, "rb") as handle:
            payload = handle.read()
    except FileNotFoundError as err:
        raise ConfigurationError(f"Cannot read the configuration file {path}: not found") from err
    except OSError as err:
        raise ConfigurationError(f"Cannot read the configuration file {path}: {err}") from err
    return decode_config(payload)


def save_config_file(path: str, data: objects.ConfigData) -> None:
    """Write config.data atomically (used by ``gnt-cluster init`` before masterd runs)."""
    atomic_write(path, msgspec.json.encode(data))


class FileConfigStore(ConfigStore):
    """ConfigStore persisted to one JSON file."""

    def __init__(
        self,
        path: str,
        data: objects.ConfigData,
        *,
        distributor: ConfigDistributor | None = None,
    ) -> None:
        super().__init__(data, distributor=distributor)
        self.path = path

    @classmethod
    def load(cls, path: str, *, distributor: ConfigDistributor | None = None) -> FileConfigStore:
        return cls(path, load_config_file(path), distributor=distributor)

    @classmethod
    def create(
        cls, path: str, data: objects.ConfigData, *, distributor: ConfigDistributor | None = None
    ) -> FileConfigStore:
        """Write a new config file and return its store."""
        save_config_file(path, data)
        return cls(path, data, distributor=distributor)

    def _persist(self, payload: bytes) -> None:
        atomic_write(self.path, payload)
