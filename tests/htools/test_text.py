"""Text backend parser: Ganeti's format and quirks, clear errors on bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.htools.text import parse_text, serialize
from corral.htools.types import HtoolsError
from tests.htools.conftest import CORPUS, needs_corpus

GOOD = (
    "default|fake-uuid|preferred||\n\n"
    "node1|65523|1023|65523|3405248|3405248|24|M|fake-uuid|1||N|0|1|1.0\n"
    "node2|65523|1023|65523|3405248|3405248|24|N|fake-uuid|1||N|0|1|1.0\n\n"
    "forthcoming-inst1|128|2176|1|ADMIN_down|Y|node1|node2|drbd||1|-|Y\n\n\n"
    "|128,1,1024,1,1,1|128,1,512,1,1,1;1024,8,1048576,16,8,12|drbd,plain,diskless|4.0|32.0\n"
    "default|128,1,1024,1,1,1|128,1,512,1,1,1;1024,8,1048576,16,8,12|drbd,plain,diskless|4.0|32.0\n"
)


def test_parses_ganeti_example() -> None:
    c = parse_text(GOOD)
    assert c.names == ["node1", "node2"]
    assert c.master == [True, False]
    inst = c.instances[0]
    assert inst.forthcoming and inst.snode == 1 and inst.status == "ADMIN_down"
    assert c.groups[0].ipolicy.minmax[0][1].memory == 1024
    # forthcoming instances only show in the *_forth fields
    assert int(c.nodes["npri"][0]) == 0
    assert int(c.nodes["fdsk_f"][0]) == 3405248 - 2176


def test_short_lines_get_defaults() -> None:
    data = (
        "g|u|preferred|\n\nn1|1000|100|900|5000|5000|2|N|u\n\ni1|100|10|1|running|Y|n1||plain|\n\n"
    )
    c = parse_text(data)
    assert int(c.nodes["tsp"][0]) == 1 and int(c.nodes["ucpu"][0]) == 1 + 1
    assert c.instances[0].spindle_use == 1


@pytest.mark.parametrize(
    "data, msg",
    [
        ("g|u|preferred||\n\n", "sections instead of 4"),
        ("g|u|preferred||\n\nn1|1|2\n\n\n", "Invalid/incomplete node data"),
        ("g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|zz\n\n\n", "Unknown group"),
        ("g|u|preferred||\n\nn1|-5|100|900|5000|5000|2|N|u\n\n\n", "negative"),
        ("g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|u\n\ni|1|1|1|running|Y|n9||plain|\n\n",
         "Unknown node 'n9'"),
        ("g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|u\n\ni|-1|1|1|running|Y|n1||plain|\n\n",
         "negative"),
        ("g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|u\n\ni|1|1|1|running|Y|n1|n1|drbd|\n\n",
         "same primary and secondary"),
        ("g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|u|1||X\n\n\n", "exclusive_storage"),
        ("g|u|bogus||\n\n\n\n", "alloc policy"),
        ("g|u|preferred||\n\n\n\n\n|1,2|1,2;3,4|drbd|4.0|32.0\n", "ipolicy spec"),
    ],
)  # fmt: skip
def test_bad_input_gives_clear_error(data: str, msg: str) -> None:
    with pytest.raises(HtoolsError, match=msg):
        parse_text(data)


@needs_corpus
def test_serialize_roundtrip_keeps_score() -> None:
    c = parse_text((CORPUS / "office-40.data").read_text())
    c2 = parse_text(serialize(c))
    assert f"{c2.score():.8f}" == f"{c.score():.8f}"
    assert len(c2.instances) == len(c.instances)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="abn1209|,.-?YMN\n", max_size=300))
def test_fuzz_parser_never_crashes(data: str) -> None:
    with contextlib.suppress(HtoolsError):
        parse_text(data)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=-3, max_value=10**6), min_size=6, max_size=6),
    st.sampled_from(["Y", "N", "M", "?"]),
)
def test_fuzz_node_fields(vals: list[int], role: str) -> None:
    line = "n1|" + "|".join(str(v) for v in vals) + f"|{role}|u"
    data = f"g|u|preferred||\n\n{line}\n\n\n"
    try:
        c = parse_text(data)
    except HtoolsError:
        assert any(v < 0 for v in vals)
        return
    assert c.n_nodes == 1
