"""Round trips of the shared vocabulary: config objects, opcodes, errors."""

from __future__ import annotations

import msgspec
import pytest

from corral import constants as C
from corral import errors, objects, opcodes


def _sample_config() -> objects.ConfigData:
    drbd = objects.Disk(
        uuid="d1",
        dev_type=C.LD_DRBD8,
        size=4096,
        logical_id=["n1", "n2", 11004, 1, 1, "s" * 40],
        children=[
            objects.Disk(uuid="c1", dev_type=C.LD_LV, size=4096, logical_id=["ganeti", "x"]),
            objects.Disk(uuid="c2", dev_type=C.LD_LV, size=128, logical_id=["ganeti", "y"]),
        ],
        iv_name="disk/0",
    )
    inst = objects.Instance(
        name="testvm.project.edu",
        uuid="i1",
        primary_node="n1",
        disks=[drbd],
        nics=[objects.NIC(mac="aa:00:00:00:00:01", nicparams={"link": "br-public"})],
        disk_template=C.DT_DRBD8,
    )
    return objects.ConfigData(
        cluster=objects.Cluster(cluster_name="cluster.project.edu", uuid="c"),
        nodes={
            "n1": objects.Node(name="node1.project.edu", uuid="n1"),
            "n2": objects.Node(name="node2.project.edu", uuid="n2"),
        },
        nodegroups={"g": objects.NodeGroup(name="default", uuid="g")},
        instances={"i1": inst},
    )


def test_config_round_trip() -> None:
    cfg = _sample_config()
    data = msgspec.json.encode(cfg.to_dict())
    back = objects.ConfigData.from_dict(msgspec.json.decode(data))
    assert back == cfg
    assert back.instances["i1"].secondary_nodes == ["n2"]
    assert back.instances["i1"].all_nodes == ["n1", "n2"]


@pytest.mark.parametrize("cls", opcodes.ALL_OPCODES, ids=lambda c: c.op_id())
def test_every_opcode_round_trips(cls: type[opcodes.OpCode]) -> None:
    required = {
        f.name: ("x" if f.type is str else []) for f in msgspec.structs.fields(cls) if f.required
    }
    op = cls(**required)
    assert op.op_id().startswith("OP_")
    back = opcodes.decode_op(op.to_dict())
    assert back == op


def test_unknown_opcode() -> None:
    with pytest.raises(errors.OpCodeUnknown):
        opcodes.decode_op({"OP_ID": "OP_NOPE"})


def test_bad_opcode_field_is_prereq_error() -> None:
    with pytest.raises(errors.OpPrereqError):
        opcodes.decode_op({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": 3})


def test_error_encoding_round_trip() -> None:
    err = errors.OpPrereqError("Instance 'x' not known", errors.ECODE_NOENT)
    back = errors.decode_exception(errors.encode_exception(err))
    assert isinstance(back, errors.OpPrereqError)
    assert back.ecode == errors.ECODE_NOENT and str(back) == "Instance 'x' not known"
    other = errors.decode_exception(errors.encode_exception(ValueError("boom")))
    assert isinstance(other, errors.OpExecError)
