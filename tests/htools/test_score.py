"""The cluster score equals Ganeti 3.0's on the same clusters (8 printed decimals)."""

from __future__ import annotations

import numpy as np
import pytest

from corral.htools import score
from corral.htools.text import parse_text
from tests.htools.conftest import CORPUS, needs_corpus

# Initial scores printed by Ganeti 3.0.2's hbal (REPORT.md §5/§7).
GANETI_SCORES = {
    "dc-40": "37.21108118",
    "office-40": "13.14437758",
    "dc-400": "42.51355891",
    "office-400": "22.34335713",
}


@needs_corpus
@pytest.mark.parametrize("name", sorted(GANETI_SCORES))
def test_initial_score_matches_ganeti(name: str) -> None:
    c = parse_text((CORPUS / f"{name}.data").read_text())
    assert f"{c.score():.8f}" == GANETI_SCORES[name]


@needs_corpus
def test_metric_table_matches_ganeti_dc40() -> None:
    c = parse_text((CORPUS / "dc-40.data").read_text())
    _, vals = c.score_details()
    expected = {
        "free_mem_cv": 0.29568263, "free_disk_cv": 0.31367574, "reserved_mem_cv": 0.11093629,
        "vcpu_ratio_cv": 0.74891957, "cpu_load_cv": 7.50333259, "disk_load_cv": 12.19321020,
        "spindles_cv": 0.05121654, "free_mem_cv_forth": 0.30735136,
        "reserved_mem_rtotal": 3.92643229,
    }  # fmt: skip
    for name, val in expected.items():
        assert round(vals[score.NAMES.index(name)], 8) == pytest.approx(val, abs=1e-8)


@needs_corpus
def test_incremental_stats_agree_with_exact_score() -> None:
    c = parse_text((CORPUS / "office-40.data").read_text())
    st = c.stats()
    assert st.score() == pytest.approx(c.score(), abs=1e-9)


def test_offline_nodes_only_count_in_offline_metrics() -> None:
    data = (
        "g|u1|preferred||\n\n"
        "n1|4096|512|3584|100000|100000|4|M|u1|1||N|0|1|1.0\n"
        "n2|4096|512|3584|100000|100000|4|N|u1|1||N|0|1|1.0\n"
        "n3|8192|512|3584|100000|10000|8|Y|u1|1||N|0|1|1.0\n"
        "n4|?|512|3584|100000|100000|4|N|u1|1||N|0|1|1.0\n\n"
        "\n\n"
    )
    c = parse_text(data)
    _, vals = c.score_details()
    # two identical online nodes: every stddev is 0, nothing offline is used
    assert np.allclose(vals, 0.0)
    assert c.nodes["offline"].tolist() == [False, False, True, True]
    # Ganeti 3.0 (Text.hs loadNode): role Y keeps the sizes, a "?" zeroes them
    assert c.nodes["tmem"].tolist() == [4096, 4096, 8192, 0]


# Ganeti 3.0.2 `hbal -t F -l 0 -v -v -v`: overall 29.55625000, location_score 1
# (i1: online n1 + offline n2 share rack r0, counted on n1; i2: the same pair with
# the offline node as primary, counted on n2, which the online-only sum skips).
LOC_OFFLINE = (
    "g|u1|preferred||\n\n"
    "n1|4096|512|2048|100000|90000|4|M|u1|1|rack:r0|N|0|1|1.0\n"
    "n2|4096|512|3072|100000|90000|4|Y|u1|1|rack:r0|N|0|1|1.0\n"
    "n3|4096|512|3584|100000|95000|4|N|u1|1|rack:r1|N|0|1|1.0\n"
    "n4|?|512|3584|100000|95000|4|N|u1|1|rack:r1|N|0|1|1.0\n\n"
    "i1|1024|5000|1|running|Y|n1|n2|drbd||1\n"
    "i2|512|5000|1|running|Y|n2|n1|drbd||1\n"
    "i3|512|5000|1|running|Y|n1|n3|drbd||1\n\n"
    "htools:nlocation:rack\n\n"
)


def test_offline_node_location_tags_count_for_online_primaries() -> None:
    c = parse_text(LOC_OFFLINE)
    total, vals = c.score_details()
    assert f"{total:.8f}" == "29.55625000"
    assert vals[score.NAMES.index("location_score")] == 1.0
    assert c.loc_tags[1] == frozenset({"rack:r0"})  # offline, tags kept
    assert c.loc_tags[3] == frozenset()  # "?" node: Ganeti drops its tags
    assert [i.location_score for i in c.instances] == [1, 1, 0]
    assert c.nodes["locscore"].tolist() == [1, 1, 0, 0]
