"""Tag LUs: get, add and remove the tags of the cluster, a node, a node group,
an instance or a network (Ganeti's OpTagsGet/OpTagsSet/OpTagsDel).

Ganeti's rules, with its messages (scripts match on them):

* a tag is 1..128 characters of ``[\\w.+*/:@-]`` -> `TagError` "Tag too long
  (>128 characters)", "Tags cannot be empty", "Tag contains invalid
  characters";
* an object carries at most 4096 tags -> OpExecError "Error while setting tag:
  Too many tags";
* removing a tag the object does not have -> OpPrereqError "Tag(s) 'x', 'y'
  not found" (ECODE_NOENT), and nothing is removed.

The object is locked at its own level (instance, node group, node, network);
cluster tags take no extra lock (as in Ganeti). Tags are kept sorted and
unique in the config, so ``list-tags`` output is stable.
"""

from __future__ import annotations

import re
from typing import Any, Final

from corral import constants as C
from corral import objects, opcodes
from corral.cmdlib.base import (
    LEVEL_INSTANCE,
    LEVEL_NETWORK,
    LEVEL_NODE,
    LEVEL_NODEGROUP,
    NoHooksLU,
)
from corral.cmdlib.registry import lu_for
from corral.errors import ECODE_INVAL, ECODE_NOENT, OpExecError, OpPrereqError, TagError

TAG_NETWORK: Final = "network"
TAG_KINDS: Final = (C.TAG_CLUSTER, C.TAG_NODE, C.TAG_NODEGROUP, C.TAG_INSTANCE, TAG_NETWORK)
VALID_TAG_RE: Final = re.compile(r"^[\w.+*/:@-]+$")


def validate_tag(tag: Any) -> None:
    """Raise `TagError` unless `tag` is a valid tag (Ganeti's ValidateTag)."""
    if not isinstance(tag, str):
        raise TagError("Invalid tag type (not a string)")
    if len(tag) > C.MAX_TAG_LEN:
        raise TagError(f"Tag too long (>{C.MAX_TAG_LEN} characters)")
    if not tag:
        raise TagError("Tags cannot be empty")
    if not VALID_TAG_RE.match(tag):
        raise TagError("Tag contains invalid characters")


class _TagsLU(NoHooksLU):
    """Resolves ``op.kind``/``op.name`` to one taggable object and locks it."""

    REQ_BGL = False
    LOCK_OBJECT = True
    op: opcodes.OpTagsGet | opcodes.OpTagsSet | opcodes.OpTagsDel

    def expand_names(self) -> None:
        kind = self.op.kind
        if kind not in TAG_KINDS:
            raise OpPrereqError(f"Wrong tag type requested ({kind})", ECODE_INVAL)
        self.target_uuid: str | None = None
        if kind == C.TAG_CLUSTER:
            return
        name = self.op.name
        if not name:
            raise OpPrereqError(f"Missing object name for tag kind '{kind}'", ECODE_INVAL)
        level: int
        if kind == C.TAG_INSTANCE:
            self.target_uuid = self.cfg.expand_instance_name(name)[0]
            level = LEVEL_INSTANCE
        elif kind == C.TAG_NODE:
            self.target_uuid = self.cfg.expand_node_name(name)[0]
            level = LEVEL_NODE
        elif kind == C.TAG_NODEGROUP:
            self.target_uuid = self.cfg.lookup_group(name)
            level = LEVEL_NODEGROUP
        else:
            self.target_uuid = self.cfg.lookup_network(name)
            level = LEVEL_NETWORK
        if self.LOCK_OBJECT:
            self.needed_locks[level] = [self.target_uuid]

    def target(self) -> objects.TaggableObject:
        """The (live) object whose tags this opcode reads or changes."""
        kind, uuid = self.op.kind, self.target_uuid
        obj: objects.TaggableObject | None
        if kind == C.TAG_CLUSTER:
            obj = self.cfg.cluster
        elif kind == C.TAG_INSTANCE:
            obj = self.cfg.get_instance(str(uuid))
        elif kind == C.TAG_NODE:
            obj = self.cfg.get_node(str(uuid))
        elif kind == C.TAG_NODEGROUP:
            obj = self.cfg.get_group(str(uuid))
        else:
            obj = self.cfg.get_network(str(uuid))
        if obj is None:
            raise OpPrereqError(f"{kind.capitalize()} '{self.op.name}' not known", ECODE_NOENT)
        return obj

    async def check_prereq(self) -> None:
        self.target()


@lu_for(opcodes.OpTagsGet)
class LUTagsGet(_TagsLU):
    """Return the object's tags (sorted)."""

    op: opcodes.OpTagsGet

    def expand_names(self) -> None:
        self.LOCK_OBJECT = self.op.use_locking
        super().expand_names()
        self.share_locks = {
            level: True for level in (LEVEL_INSTANCE, LEVEL_NODEGROUP, LEVEL_NODE, LEVEL_NETWORK)
        }

    async def exec(self) -> Any:
        return sorted(self.target().tags)


@lu_for(opcodes.OpTagsSet)
class LUTagsSet(_TagsLU):
    """Add tags; adding a tag the object already has is a no-op."""

    op: opcodes.OpTagsSet

    async def check_prereq(self) -> None:
        self.target()
        for tag in self.op.tags:
            validate_tag(tag)

    async def exec(self) -> Any:
        obj = self.target()
        tags = set(obj.tags)
        for tag in self.op.tags:
            if tag in tags:
                continue
            if len(tags) >= C.MAX_TAGS_PER_OBJ:
                raise OpExecError("Error while setting tag: Too many tags")
            tags.add(tag)
        new = sorted(tags)
        if new != obj.tags:
            obj.tags = new
            await self.cfg.update(obj)
        return None


@lu_for(opcodes.OpTagsDel)
class LUTagsDel(_TagsLU):
    """Remove tags; all of them must exist, else nothing is removed."""

    op: opcodes.OpTagsDel

    async def check_prereq(self) -> None:
        obj = self.target()
        for tag in self.op.tags:
            validate_tag(tag)
        missing = sorted(set(self.op.tags) - set(obj.tags))
        if missing:
            names = ", ".join(f"'{tag}'" for tag in missing)
            raise OpPrereqError(f"Tag(s) {names} not found", ECODE_NOENT)

    async def exec(self) -> Any:
        obj = self.target()
        remove = set(self.op.tags)
        new = sorted(tag for tag in obj.tags if tag not in remove)
        if new != obj.tags:
            obj.tags = new
            await self.cfg.update(obj)
        return None
