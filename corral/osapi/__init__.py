"""OS definition driver: Ganeti's OS API (versions 5/10/15/20) on one node.

* `definition`: find and validate OS definitions in the search path
  (`discover`, `find_os`, `get_os`, `check_variant`), corral's bundled ones
  (`bundled_os_dir`, `install_bundled_os`).
* `env`: the script environment (`build_env`, `core_env`, `DiskEnv`, `NicEnv`).
* `runner`: running scripts with logs (`run_script`, `log_file_name`) and
  ``verify parameters`` (`os_verify_parameters`).

The bundled ``image`` OS (``bundled/image/``) behaves like ganeti-instance-image
with variants configured in ``/etc/ganeti/instance-image``; see its README.
"""

from corral.osapi.definition import (
    OS_SCRIPTS,
    OsDefinition,
    bundled_os_dir,
    check_variant,
    discover,
    find_os,
    get_os,
    install_bundled_os,
    load_os,
    split_name,
)
from corral.osapi.env import DiskEnv, NicEnv, build_env, core_env, network_env
from corral.osapi.runner import (
    LOG_KIND,
    check_os_parameters,
    log_file_name,
    log_tail,
    os_verify_parameters,
    run_script,
)

__all__ = [
    "LOG_KIND",
    "OS_SCRIPTS",
    "DiskEnv",
    "NicEnv",
    "OsDefinition",
    "build_env",
    "bundled_os_dir",
    "check_os_parameters",
    "check_variant",
    "core_env",
    "discover",
    "find_os",
    "get_os",
    "install_bundled_os",
    "load_os",
    "log_file_name",
    "log_tail",
    "network_env",
    "os_verify_parameters",
    "run_script",
    "split_name",
]
