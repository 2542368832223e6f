"""Tag LUs: Ganeti's tag rules, every object kind, locking."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import constants as C
from corral import errors, opcodes
from corral.cmdlib.base import LEVEL_INSTANCE, LEVEL_NODE, LEVEL_NODEGROUP
from corral.cmdlib.tags import validate_tag
from tests.cmdlib.test_cluster_fakes import DOMAIN, GROUP, Env, make_env, node_uuid, run_lu


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.mark.parametrize("tag", ["a", "web", "env:prod", "x.y+z*/@-_1", "a" * 128])
def test_valid_tags(tag: str) -> None:
    validate_tag(tag)


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("a" * 129, "Tag too long (>128 characters)"),
        ("", "Tags cannot be empty"),
        ("has space", "Tag contains invalid characters"),
        ("semi;colon", "Tag contains invalid characters"),
        (5, "Invalid tag type (not a string)"),
    ],
)
def test_invalid_tags(tag: object, message: str) -> None:
    with pytest.raises(errors.TagError) as exc:
        validate_tag(tag)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("kind", "name", "level", "uuid"),
    [
        (C.TAG_CLUSTER, None, None, None),
        (C.TAG_NODE, "node2", LEVEL_NODE, node_uuid(2)),
        (C.TAG_INSTANCE, "inst1", LEVEL_INSTANCE, "uuid-inst1"),
        (C.TAG_NODEGROUP, "default", LEVEL_NODEGROUP, GROUP),
    ],
)
def test_set_get_del_each_kind(
    env: Env, kind: str, name: str | None, level: int | None, uuid: str | None
) -> None:
    run_lu(env, opcodes.OpTagsSet(kind=kind, name=name, tags=["b", "a", "b"]))
    if level is not None:
        assert env.locks[level] == [uuid] and not env.shared[level]
    assert run_lu(env, opcodes.OpTagsGet(kind=kind, name=name)) == ["a", "b"]
    run_lu(env, opcodes.OpTagsDel(kind=kind, name=name, tags=["a"]))
    assert run_lu(env, opcodes.OpTagsGet(kind=kind, name=name, use_locking=True)) == ["b"]
    if level is not None:
        assert env.shared[level]


def test_set_is_written_to_config(env: Env) -> None:
    serial = env.cfg.serial_no
    run_lu(env, opcodes.OpTagsSet(kind=C.TAG_NODE, name=f"node1.{DOMAIN}", tags=["rack:1"]))
    assert env.cfg.nodes[node_uuid(1)].tags == ["rack:1"]
    assert env.cfg.serial_no == serial + 1
    assert b"rack:1" in env.cfg.written


def test_set_invalid_tag_changes_nothing(env: Env) -> None:
    with pytest.raises(errors.TagError, match="Tag contains invalid characters"):
        run_lu(env, opcodes.OpTagsSet(kind=C.TAG_CLUSTER, tags=["ok", "not ok"]))
    assert env.cfg.cluster.tags == []


def test_del_missing_tags(env: Env) -> None:
    run_lu(env, opcodes.OpTagsSet(kind=C.TAG_CLUSTER, tags=["keep"]))
    with pytest.raises(errors.OpPrereqError) as exc:
        run_lu(env, opcodes.OpTagsDel(kind=C.TAG_CLUSTER, tags=["keep", "zz", "aa"]))
    assert str(exc.value) == "Tag(s) 'aa', 'zz' not found"
    assert exc.value.args[1] == errors.ECODE_NOENT
    assert env.cfg.cluster.tags == ["keep"]


def test_too_many_tags(env: Env) -> None:
    env.cfg.cluster.tags = [f"t{i}" for i in range(C.MAX_TAGS_PER_OBJ)]
    run_lu(env, opcodes.OpTagsSet(kind=C.TAG_CLUSTER, tags=["t1"]))  # already there: fine
    with pytest.raises(errors.OpExecError, match="Error while setting tag: Too many tags"):
        run_lu(env, opcodes.OpTagsSet(kind=C.TAG_CLUSTER, tags=["new"]))


def test_bad_kind_and_unknown_object(env: Env) -> None:
    with pytest.raises(errors.OpPrereqError, match=r"Wrong tag type requested \(disk\)"):
        run_lu(env, opcodes.OpTagsGet(kind="disk", name="x"))
    with pytest.raises(errors.OpPrereqError, match="Instance 'nope' not known"):
        run_lu(env, opcodes.OpTagsGet(kind=C.TAG_INSTANCE, name="nope"))
    with pytest.raises(errors.OpPrereqError, match="Missing object name"):
        run_lu(env, opcodes.OpTagsSet(kind=C.TAG_NODE, tags=["a"]))
