"""Configuration store (see `corral.config.store` for the contract)."""

from corral.config.file_store import (
    FileConfigStore,
    atomic_write,
    decode_config,
    load_config_file,
    save_config_file,
)
from corral.config.store import ConfigDistributor, ConfigStore
from corral.config.util import iter_disks

__all__ = [
    "ConfigDistributor",
    "ConfigStore",
    "FileConfigStore",
    "atomic_write",
    "decode_config",
    "iter_disks",
    "load_config_file",
    "save_config_file",
]
