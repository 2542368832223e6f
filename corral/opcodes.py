"""Every opcode, typed, with Ganeti's OP_IDs and parameter names.

An opcode is a msgspec Struct tagged by its ``OP_ID`` so a job (a list of
opcodes) serialises as Ganeti's JSON (``{"OP_ID": "OP_INSTANCE_CREATE", ...}``)
and decodes back into the right class (`decode_op`). The CLI, RAPI and web UI
all build these; the executor maps each class to its logical unit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from corral import constants as C

ParamDict = dict[str, Any]


class OpCode(msgspec.Struct, kw_only=True, tag_field="OP_ID"):
    """Base class. `OP_DSC_FIELD` names the field shown in job summaries."""

    OP_DSC_FIELD: ClassVar[str | None] = None

    dry_run: bool = False
    debug_level: int = 0
    priority: int = C.OP_PRIO_DEFAULT
    depends: list[list[Any]] | None = None
    comment: str | None = None
    reason: list[list[Any]] = msgspec.field(default_factory=list)

    @classmethod
    def op_id(cls) -> str:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str)
        return tag

    def summary(self) -> str:
        """Ganeti's job summary: OP_ID without the ``OP_`` prefix, plus the key field."""
        text = self.op_id()[3:]
        if self.OP_DSC_FIELD:
            value = getattr(self, self.OP_DSC_FIELD, None)
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            if value is not None:
                text += f"({value})"
        return text

    def to_dict(self) -> dict[str, Any]:
        result = msgspec.to_builtins(self)
        assert isinstance(result, dict)
        return result


# --- cluster ---------------------------------------------------------------


class OpClusterPostInit(OpCode, kw_only=True, tag="OP_CLUSTER_POST_INIT"):
    pass


class OpClusterDestroy(OpCode, kw_only=True, tag="OP_CLUSTER_DESTROY"):
    pass


class OpClusterQuery(OpCode, kw_only=True, tag="OP_CLUSTER_QUERY"):
    pass


class OpClusterVerify(OpCode, kw_only=True, tag="OP_CLUSTER_VERIFY"):
    debug_simulate_errors: bool = False
    error_codes: bool = False
    skip_checks: list[str] = msgspec.field(default_factory=list)
    ignore_errors: list[str] = msgspec.field(default_factory=list)
    verbose: bool = False
    group_name: str | None = None


class OpClusterVerifyConfig(OpCode, kw_only=True, tag="OP_CLUSTER_VERIFY_CONFIG"):
    debug_simulate_errors: bool = False
    error_codes: bool = False
    ignore_errors: list[str] = msgspec.field(default_factory=list)
    verbose: bool = False


class OpClusterVerifyGroup(OpCode, kw_only=True, tag="OP_CLUSTER_VERIFY_GROUP"):
    OP_DSC_FIELD = "group_name"
    group_name: str
    debug_simulate_errors: bool = False
    error_codes: bool = False
    skip_checks: list[str] = msgspec.field(default_factory=list)
    ignore_errors: list[str] = msgspec.field(default_factory=list)
    verbose: bool = False


class OpClusterSetParams(OpCode, kw_only=True, tag="OP_CLUSTER_SET_PARAMS"):
    hvparams: dict[str, ParamDict] | None = None
    beparams: ParamDict | None = None
    nicparams: ParamDict | None = None
    ndparams: ParamDict | None = None
    diskparams: dict[str, ParamDict] | None = None
    osparams: dict[str, ParamDict] | None = None
    ipolicy: ParamDict | None = None
    enabled_hypervisors: list[str] | None = None
    enabled_disk_templates: list[str] | None = None
    candidate_pool_size: int | None = None
    max_running_jobs: int | None = None
    max_tracked_jobs: int | None = None
    vg_name: str | None = None
    master_netdev: str | None = None
    mac_prefix: str | None = None
    default_iallocator: str | None = None
    default_iallocator_params: ParamDict | None = None
    file_storage_dir: str | None = None
    shared_file_storage_dir: str | None = None
    auto_failover: bool | None = None
    hidden_os: list[list[str]] | None = None
    blacklisted_os: list[list[str]] | None = None


class OpClusterRedistConf(OpCode, kw_only=True, tag="OP_CLUSTER_REDIST_CONF"):
    pass


class OpClusterActivateMasterIp(OpCode, kw_only=True, tag="OP_CLUSTER_ACTIVATE_MASTER_IP"):
    pass


class OpClusterDeactivateMasterIp(OpCode, kw_only=True, tag="OP_CLUSTER_DEACTIVATE_MASTER_IP"):
    pass


# --- tags ------------------------------------------------------------------


class OpTagsGet(OpCode, kw_only=True, tag="OP_TAGS_GET"):
    kind: str
    name: str | None = None
    use_locking: bool = False


class OpTagsSet(OpCode, kw_only=True, tag="OP_TAGS_SET"):
    kind: str
    tags: list[str]
    name: str | None = None


class OpTagsDel(OpCode, kw_only=True, tag="OP_TAGS_DEL"):
    kind: str
    tags: list[str]
    name: str | None = None


# --- node ------------------------------------------------------------------


class OpNodeAdd(OpCode, kw_only=True, tag="OP_NODE_ADD"):
    OP_DSC_FIELD = "node_name"
    node_name: str
    primary_ip: str | None = None
    secondary_ip: str | None = None
    readd: bool = False
    group: str | None = None
    master_capable: bool | None = None
    vm_capable: bool | None = None
    ndparams: ParamDict | None = None
    # corral: how the master authenticates the joining node's noded
    node_fingerprint: str | None = None
    join_token: str | None = None


class OpNodeRemove(OpCode, kw_only=True, tag="OP_NODE_REMOVE"):
    OP_DSC_FIELD = "node_name"
    node_name: str


class OpNodeSetParams(OpCode, kw_only=True, tag="OP_NODE_SET_PARAMS"):
    OP_DSC_FIELD = "node_name"
    node_name: str
    force: bool = False
    master_candidate: bool | None = None
    offline: bool | None = None
    drained: bool | None = None
    auto_promote: bool = False
    master_capable: bool | None = None
    vm_capable: bool | None = None
    secondary_ip: str | None = None
    ndparams: ParamDict | None = None
    powered: bool | None = None


class OpNodeMigrate(OpCode, kw_only=True, tag="OP_NODE_MIGRATE"):
    OP_DSC_FIELD = "node_name"
    node_name: str
    mode: str | None = None
    live: bool | None = None
    target_node: str | None = None
    allow_runtime_changes: bool = True
    ignore_ipolicy: bool = False
    iallocator: str | None = None


class OpOobCommand(OpCode, kw_only=True, tag="OP_OOB_COMMAND"):
    """Run the nodes' out-of-band program (`gnt-node power|health`)."""

    OP_DSC_FIELD = "node_names"
    node_names: list[str] = msgspec.field(default_factory=list)
    node_uuids: list[str] | None = None
    command: str
    timeout: int = 60
    ignore_status: bool = False
    force_master: bool = False
    power_delay: float = 2.0


class OpNodeEvacuate(OpCode, kw_only=True, tag="OP_NODE_EVACUATE"):
    OP_DSC_FIELD = "node_name"
    node_name: str
    early_release: bool = False
    remote_node: str | None = None
    iallocator: str | None = None
    mode: str = C.NODE_EVAC_ALL


class OpNodeQueryStorage(OpCode, kw_only=True, tag="OP_NODE_QUERY_STORAGE"):
    nodes: list[str] = msgspec.field(default_factory=list)
    storage_type: str | None = None
    output_fields: list[str] = msgspec.field(default_factory=list)


# --- group -----------------------------------------------------------------


class OpGroupAdd(OpCode, kw_only=True, tag="OP_GROUP_ADD"):
    OP_DSC_FIELD = "group_name"
    group_name: str
    alloc_policy: str | None = None
    ndparams: ParamDict | None = None
    diskparams: dict[str, ParamDict] | None = None
    ipolicy: ParamDict | None = None


class OpGroupAssignNodes(OpCode, kw_only=True, tag="OP_GROUP_ASSIGN_NODES"):
    OP_DSC_FIELD = "group_name"
    group_name: str
    nodes: list[str]
    force: bool = False


class OpGroupRemove(OpCode, kw_only=True, tag="OP_GROUP_REMOVE"):
    OP_DSC_FIELD = "group_name"
    group_name: str


class OpGroupSetParams(OpCode, kw_only=True, tag="OP_GROUP_SET_PARAMS"):
    OP_DSC_FIELD = "group_name"
    group_name: str
    alloc_policy: str | None = None
    ndparams: ParamDict | None = None
    diskparams: dict[str, ParamDict] | None = None
    ipolicy: ParamDict | None = None


# --- instance --------------------------------------------------------------


class OpInstanceCreate(OpCode, kw_only=True, tag="OP_INSTANCE_CREATE"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    mode: str = "create"
    disk_template: str
    disks: list[ParamDict] = msgspec.field(default_factory=list)
    nics: list[ParamDict] = msgspec.field(default_factory=list)
    os_type: str | None = None
    osparams: ParamDict = msgspec.field(default_factory=dict)
    osparams_private: ParamDict = msgspec.field(default_factory=dict)
    beparams: ParamDict = msgspec.field(default_factory=dict)
    hvparams: ParamDict = msgspec.field(default_factory=dict)
    hypervisor: str | None = None
    iallocator: str | None = None
    pnode: str | None = None
    snode: str | None = None
    start: bool = True
    ip_check: bool = True
    name_check: bool = True
    wait_for_sync: bool = True
    no_install: bool | None = None
    file_storage_dir: str | None = None
    file_driver: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    src_node: str | None = None
    src_path: str | None = None
    force_variant: bool = False
    identify_defaults: bool = False
    # corral extension: owning tenant
    tenant: str | None = None


class OpInstanceRemove(OpCode, kw_only=True, tag="OP_INSTANCE_REMOVE"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    ignore_failures: bool = False
    shutdown_timeout: int = 120


class OpInstanceStartup(OpCode, kw_only=True, tag="OP_INSTANCE_STARTUP"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    force: bool = False
    ignore_offline_nodes: bool = False
    hvparams: ParamDict = msgspec.field(default_factory=dict)
    beparams: ParamDict = msgspec.field(default_factory=dict)
    no_remember: bool = False
    startup_paused: bool = False


class OpInstanceShutdown(OpCode, kw_only=True, tag="OP_INSTANCE_SHUTDOWN"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    force: bool = False
    ignore_offline_nodes: bool = False
    timeout: int = 120
    no_remember: bool = False


class OpInstanceReboot(OpCode, kw_only=True, tag="OP_INSTANCE_REBOOT"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    reboot_type: str = "hard"
    ignore_secondaries: bool = False
    shutdown_timeout: int = 120


class OpInstanceReinstall(OpCode, kw_only=True, tag="OP_INSTANCE_REINSTALL"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    os_type: str | None = None
    force_variant: bool = False
    osparams: ParamDict | None = None


class OpInstanceRename(OpCode, kw_only=True, tag="OP_INSTANCE_RENAME"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    new_name: str
    ip_check: bool = False
    name_check: bool = True


class OpInstanceSetParams(OpCode, kw_only=True, tag="OP_INSTANCE_SET_PARAMS"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    force: bool = False
    # Ganeti's modification lists: [[action, index_or_name, params], ...]
    nics: list[list[Any]] = msgspec.field(default_factory=list)
    disks: list[list[Any]] = msgspec.field(default_factory=list)
    beparams: ParamDict = msgspec.field(default_factory=dict)
    hvparams: ParamDict = msgspec.field(default_factory=dict)
    osparams: ParamDict = msgspec.field(default_factory=dict)
    os_name: str | None = None
    offline: bool | None = None
    hotplug: bool = True
    hotplug_if_possible: bool = False
    disk_template: str | None = None
    remote_node: str | None = None
    pnode: str | None = None
    wait_for_sync: bool = True


class OpInstanceMigrate(OpCode, kw_only=True, tag="OP_INSTANCE_MIGRATE"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    mode: str | None = None
    live: bool | None = None
    cleanup: bool = False
    target_node: str | None = None
    iallocator: str | None = None
    allow_failover: bool = False
    allow_runtime_changes: bool = True
    ignore_ipolicy: bool = False
    ignore_hvversions: bool = False


class OpInstanceFailover(OpCode, kw_only=True, tag="OP_INSTANCE_FAILOVER"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    ignore_consistency: bool = False
    shutdown_timeout: int = 120
    target_node: str | None = None
    iallocator: str | None = None
    ignore_ipolicy: bool = False
    cleanup: bool = False


class OpInstanceActivateDisks(OpCode, kw_only=True, tag="OP_INSTANCE_ACTIVATE_DISKS"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    ignore_size: bool = False
    wait_for_sync: bool = False


class OpInstanceDeactivateDisks(OpCode, kw_only=True, tag="OP_INSTANCE_DEACTIVATE_DISKS"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    force: bool = False


class OpInstanceReplaceDisks(OpCode, kw_only=True, tag="OP_INSTANCE_REPLACE_DISKS"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str
    mode: str = C.REPLACE_DISK_AUTO
    disks: list[int] = msgspec.field(default_factory=list)
    remote_node: str | None = None
    iallocator: str | None = None
    early_release: bool = False
    ignore_ipolicy: bool = False


class OpInstanceQueryData(OpCode, kw_only=True, tag="OP_INSTANCE_QUERY_DATA"):
    instances: list[str] = msgspec.field(default_factory=list)
    static: bool = False
    use_locking: bool = False


class OpInstanceConsole(OpCode, kw_only=True, tag="OP_INSTANCE_CONSOLE"):
    OP_DSC_FIELD = "instance_name"
    instance_name: str


# --- OS, misc --------------------------------------------------------------


class OpOsDiagnose(OpCode, kw_only=True, tag="OP_OS_DIAGNOSE"):
    output_fields: list[str] = msgspec.field(default_factory=list)
    names: list[str] = msgspec.field(default_factory=list)


class OpTestDelay(OpCode, kw_only=True, tag="OP_TEST_DELAY"):
    duration: float = 0.0
    on_master: bool = True
    on_nodes: list[str] = msgspec.field(default_factory=list)
    repeat: int = 0
    no_locks: bool = True


def _all_opcodes() -> list[type[OpCode]]:
    found: list[type[OpCode]] = []
    todo: list[type[OpCode]] = list(OpCode.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


ALL_OPCODES: tuple[type[OpCode], ...] = tuple(_all_opcodes())
OP_MAPPING: dict[str, type[OpCode]] = {cls.op_id(): cls for cls in ALL_OPCODES}

_decoder: msgspec.json.Decoder[Any] | None = None


def decode_op(data: dict[str, Any]) -> OpCode:
    """Build the opcode object for a Ganeti-style dict (raises OpCodeUnknown)."""
    from corral.errors import ECODE_INVAL, OpCodeUnknown, OpPrereqError

    op_id = data.get("OP_ID")
    cls = OP_MAPPING.get(str(op_id))
    if cls is None:
        raise OpCodeUnknown(f"Unknown opcode {op_id!r}")
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as err:
        raise OpPrereqError(f"Invalid parameters for {op_id}: {err}", ECODE_INVAL) from err
