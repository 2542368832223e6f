"""corral's htools against Ganeti 3.0.2's real hbal, hspace and hail on tiny clusters.

corral must be valid and at least as good: final hbal score <= Ganeti's, hspace
capacity >= Ganeti's, hail placements with an equal or better score. Big runs
live in bench/htools/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from corral.htools import nodeops
from corral.htools.balance import BalanceOptions, balance
from corral.htools.iallocator import Options, run_request
from corral.htools.text import parse_text
from tests.htools.conftest import (
    GANETI_HAIL,
    GANETI_HBAL,
    GANETI_HSPACE,
    corral_bin,
    gen_cluster,
    gen_request,
    needs_ganeti,
    run_tool,
)

CASES = [("office", 6, 3), ("office", 9, 5), ("datacenter", 6, 2), ("datacenter", 8, 4)]


def _valid(path: Path, c: object) -> None:
    from corral.htools.cluster import Cluster

    assert isinstance(c, Cluster)
    v = c.nodes
    on = ~v["offline"]
    assert (nodeops.unallocated(v)[on] > 0).all(), "memory over-committed"
    assert (v["fdsk"][on] >= 0).all(), "disk over-committed"
    assert (v["ucpu"][on] / v["tcpu"][on] <= v["vratio"][on] + 1e-9).all(), "vcpu ratio"
    assert not v["failn1"][on].any(), f"N+1 failure after balancing {path}"


@needs_ganeti
@pytest.mark.parametrize("profile, nodes, seed", CASES)
def test_hbal_not_worse_than_ganeti(tmp_path: Path, profile: str, nodes: int, seed: int) -> None:
    data = gen_cluster(tmp_path, profile, nodes, seed)
    g = run_tool([str(GANETI_HBAL), "-t", str(data)])
    assert g.returncode == 0, g.stderr
    gini = re.search(r"Initial score: ([0-9.]+)", g.stdout)
    gfin = re.search(r"Cluster score improved from [0-9.]+ to ([0-9.]+)", g.stdout)
    assert gini
    c = parse_text(data.read_text())
    assert f"{c.score():.8f}" == gini.group(1)
    _ini, fin, _ = balance(c, 0, BalanceOptions())
    gscore = float(gfin.group(1)) if gfin else float(gini.group(1))
    assert round(fin, 8) <= gscore + 1e-8
    _valid(data, c)


@needs_ganeti
@pytest.mark.parametrize("profile, nodes, seed", CASES[:2])
def test_hspace_capacity_not_below_ganeti(
    tmp_path: Path, profile: str, nodes: int, seed: int
) -> None:
    data = gen_cluster(tmp_path, profile, nodes, seed)
    ok, gk = _hspace_both(data, "--standard-alloc", profile)
    assert ok["INI_SCORE"] == gk["INI_SCORE"]
    assert int(ok["FIN_INST_CNT"]) >= int(gk["FIN_INST_CNT"])
    assert int(ok["TRL_INST_CNT"]) >= int(gk["TRL_INST_CNT"])


# datacenter-8-seed5 needs the capacity-checked big step (`capacity._suffices_shrinking`):
# without it corral ended one tiered instance short of Ganeti (136 vs 137)
_TIERED = [("office", 8, seed) for seed in (2, 3, 5)] + [
    ("datacenter", 8, seed) for seed in (1, 4, 5)
]


@needs_ganeti
@pytest.mark.parametrize("profile, nodes, seed", _TIERED)
def test_hspace_tiered_not_below_ganeti(
    tmp_path: Path, profile: str, nodes: int, seed: int
) -> None:
    """Tiered allocation from an explicit ``disk,ram,cpu`` spec (spindles default to
    1, as Ganeti's parser does) places at least as many instances as Ganeti."""
    data = gen_cluster(tmp_path, profile, nodes, seed)
    ok, gk = _hspace_both(data, "--tiered-alloc", profile)
    assert ok["TSPEC_INI_SPN"] == gk["TSPEC_INI_SPN"]
    assert int(ok["TRL_INST_CNT"]) >= int(gk["TRL_INST_CNT"])


def _hspace_both(data: Path, option: str, profile: str) -> tuple[dict[str, str], dict[str, str]]:
    """corral's and Ganeti's ``HTS_*`` values for one drbd allocation ``option``."""
    spec = "4096,128,1" if profile == "office" else "51200,4096,2"
    args = ["-t", str(data), "--machine-readable", "--disk-template=drbd", f"{option}={spec}"]
    g = run_tool([str(GANETI_HSPACE), *args])
    ours = run_tool([corral_bin("hspace"), *args])
    assert g.returncode == 0 and ours.returncode == 0, ours.stderr
    key = r"^HTS_([A-Z_]+)=(.*)$"
    return dict(re.findall(key, ours.stdout, re.M)), dict(re.findall(key, g.stdout, re.M))


def _info_score(info: str) -> float:
    m = re.search(r"score: ([0-9.]+)", info)
    assert m, info
    return float(m.group(1))


@needs_ganeti
@pytest.mark.parametrize("profile, nodes, seed", CASES)
@pytest.mark.parametrize("template", ["drbd", "plain"])
def test_hail_not_worse_than_ganeti(
    tmp_path: Path, profile: str, nodes: int, seed: int, template: str
) -> None:
    data = gen_cluster(tmp_path, profile, nodes, seed)
    mem, disk, kvm = ("128", "1024", "512") if profile == "office" else ("4096", "51200", "4096")
    req = gen_request(tmp_path, data, "--type", "allocate", "--mem", mem, "--disk", disk,
                      "--template", template)  # fmt: skip
    g = run_tool([str(GANETI_HAIL), f"--static-kvm-node-memory={kvm}", str(req)])
    assert g.returncode == 0, g.stderr
    gans = json.loads(g.stdout)
    ours = run_request(json.loads(req.read_text()), Options(static_kvm_node_memory=int(kvm)))
    if gans["success"]:
        assert ours["success"], ours["info"]
        assert _info_score(ours["info"]) <= _info_score(gans["info"]) + 1e-8
    if ours["success"]:
        assert len(ours["result"]) == len(gans["result"]) or not gans["success"]
    # the CLI gives the same answer as the API
    cli = run_tool([corral_bin("corral-hail"), f"--static-kvm-node-memory={kvm}", str(req)])
    assert cli.returncode == 0 and json.loads(cli.stdout) == ours


def test_validity_helper_rejects_overcommit() -> None:
    data = "g|u|preferred||\n\nn1|1000|100|900|5000|5000|2|N|u\n\n\n\n"
    c = parse_text(data)
    c.nodes["imem"][0] = 2000
    with pytest.raises(AssertionError):
        _valid(Path("x"), c)
    assert np.isfinite(c.score())
