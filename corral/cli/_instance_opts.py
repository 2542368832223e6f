"""Option definitions of ``gnt-instance`` (Ganeti's ``cli_opts`` names and help)."""

from __future__ import annotations

from corral import constants as C
from corral.cli import _util as U
from corral.cli._instance_build import parse_create_hypervisor
from corral.cli._util import opt

# --- options -------------------------------------------------------------------------

BACKEND_OPT = opt(
    "-B",
    "--backend-parameters",
    dest="beparams",
    type=U.keyval_type,
    default={},
    help="Backend parameters",
)
HVOPTS_OPT = opt(
    "-H",
    "--hypervisor-parameters",
    dest="hvparams",
    type=U.keyval_type,
    default={},
    help="Hypervisor parameters",
)
OSPARAMS_OPT = opt(
    "-O", "--os-parameters", dest="osparams", type=U.keyval_type, default={}, help="OS parameters"
)
OS_OPT = opt("-o", "--os-type", dest="os", default=None, metavar="<os>", help="What OS to run")
FORCE_VARIANT_OPT = opt(
    "--force-variant", action="store_true", default=False, help="Force an unknown variant"
)
NET_OPT = opt(
    "--net",
    dest="nics",
    action="append",
    type=U.identkeyval_type,
    default=[],
    help="NIC parameters",
)
DISK_OPT = opt(
    "--disk",
    dest="disks",
    action="append",
    type=U.identkeyval_type,
    default=[],
    help="Disk parameters",
)
DISK_TEMPLATE_OPT = opt(
    "-t",
    "--disk-template",
    dest="disk_template",
    default=None,
    metavar="TEMPL",
    choices=list(C.DISK_TEMPLATES),
    help="Custom disk setup (" + ", ".join(C.DISK_TEMPLATES) + ")",
)
NWSYNC_OPT = opt(
    "--no-wait-for-sync",
    dest="wait_for_sync",
    action="store_false",
    default=True,
    help="Don't wait for sync (DANGEROUS!)",
)
SHUTDOWN_TIMEOUT_OPT = opt(
    "--shutdown-timeout",
    dest="shutdown_timeout",
    type=int,
    default=120,
    help="Maximum time (in minutes) to wait for instance shutdown",
)
DST_NODE_OPT = opt(
    "-n",
    "--target-node",
    dest="dst_node",
    default=None,
    metavar="NODE",
    help="Specifies the new node for the instance",
)
CLEANUP_OPT = opt(
    "--cleanup",
    action="store_true",
    default=False,
    help="Instead of performing the migration/failover, try to recover from a"
    " failed cleanup. This is safe to run even if the instance is healthy, but it"
    " will create extra replication traffic and disrupt briefly the replication"
    " (like during the migration/failover",
)
IGNORE_CONSIST_OPT = opt(
    "--ignore-consistency",
    action="store_true",
    default=False,
    help="Ignore the consistency of the disks on the secondary. The"
    " source node must be marked offline first for this to succeed.",
)
NAME_CHECK_OPTS = [
    opt(
        "--no-name-check",
        dest="name_check",
        action="store_false",
        default=True,
        help="Don't check that the instance's name is resolvable",
    ),
    opt(
        "--name-check",
        dest="name_check",
        action="store_true",
        default=True,
        help="Check that the instance's name is resolvable",
    ),
    opt(
        "--no-ip-check",
        dest="ip_check",
        action="store_false",
        default=True,
        help="Don't check that the instance's IP is alive",
    ),
    opt(
        "--ip-check",
        dest="ip_check",
        action="store_true",
        default=True,
        help="Check that the instance's IP is alive (ping)",
    ),
]
MULTI_OPTS = [
    opt(
        "--all",
        dest="multi_all",
        action="store_true",
        default=False,
        help="Select all instances in the cluster",
    ),
    opt(
        "--force-multiple",
        dest="force_multi",
        action="store_true",
        default=False,
        help="Do not ask for confirmation when more than one instance is affected",
    ),
]

ADD_OPTS = [
    BACKEND_OPT,
    DISK_OPT,
    DISK_TEMPLATE_OPT,
    opt(
        "--file-storage-dir",
        default=None,
        metavar="<DIR>",
        help="Relative path under default cluster-wide file storage dir to store file-based disks",
    ),
    opt(
        "--file-driver",
        default=None,
        metavar="<DRIVER>",
        choices=["loop", "blktap"],
        help="Driver to use for image files",
    ),
    opt(
        "-H",
        "--hypervisor-parameters",
        dest="hypervisor",
        default=None,
        type=U.arg_type(parse_create_hypervisor, "identkeyval"),
        help="Hypervisor and hypervisor options, in the format"
        " hypervisor:option=value,option=value,...",
    ),
    U.IALLOCATOR_OPT,
    NET_OPT,
    opt(
        "-n",
        "--node",
        dest="node",
        default=None,
        metavar="<pnode>[:<snode>]",
        help="Target node and optional secondary node",
    ),
    *NAME_CHECK_OPTS,
    opt(
        "--no-nics",
        action="store_true",
        default=False,
        help="Do not create any network cards for the instance",
    ),
    NWSYNC_OPT,
    OSPARAMS_OPT,
    opt(
        "-s",
        "--os-size",
        dest="sd_size",
        type=U.unit_type,
        default=None,
        metavar="<size>",
        help="Enforces a single-disk configuration using the given disk size, in MiB unless"
        " a suffix is used",
    ),
    *U.SUBMIT_OPTS,
    opt("--tags", default=None, help="Comma-separated list of instance tags"),
    U.DRY_RUN_OPT,
    U.PRIORITY_OPT,
    opt(
        "--no-start",
        dest="start",
        action="store_false",
        default=True,
        help="Don't start the instance after creation",
    ),
    OS_OPT,
    FORCE_VARIANT_OPT,
    opt(
        "--no-install",
        action="store_true",
        default=False,
        help="Do not install the OS (will enable no-start)",
    ),
]
