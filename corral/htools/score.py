"""The cluster score, exactly as Ganeti 3.0's htools computes it.

The score is a weighted sum of 20 metrics over the nodes of the cluster (or of
the node list handed in, e.g. one group). Lower is better; hbal minimises it,
hail and hspace rank placements by it.

Per-node values (all nodes are *online* unless stated):

====  ==========================  ======  ==========  ================================
 #    name                        weight  aggregate   per-node value
====  ==========================  ======  ==========  ================================
 0    free_mem_cv                 0.5     stddev      unallocated memory / t_mem
 1    free_disk_cv                0.5     stddev      f_dsk / t_dsk (spindles with
                                                      exclusive storage; 1 if no disk)
 2    n1_cnt                      1       sum         #pri + #sec if the node fails N+1
 3    reserved_mem_cv             1       stddev      r_mem / t_mem
 4    offline_all_cnt             4       sum         #pri + #sec, **offline** nodes only
 5    offline_pri_cnt             16      sum         #pri, offline nodes only
 6    vcpu_ratio_cv               0.5     stddev      used vCPUs (incl. the node OS's)
                                                      / t_cpu / cpu_speed
 7-10 cpu/mem/disk/net_load_cv    1 each  stddev      summed instance utilisation; the
                                                      default utilisation is 1 per
                                                      dimension, so these are the
                                                      number of primaries (disk: pri +
                                                      sec) per node
 11   pri_tags_score              2       sum         primaries sharing an exclusion
                                                      tag: sum over tags of (count-1)
 12   spindles_cv                 0.5     stddev      spindles used / (spindle_ratio
                                                      x node spindles)
 13-16 *_forth variants of 0,1,6,12  0.5  stddev      same, counting forthcoming
                                                      instances (free memory here is
                                                      the node-reported f_mem minus
                                                      memory of stopped primaries)
 17   location_score              1       sum         per primary: common location
                                                      tags of its two nodes +
                                                      unsatisfied desired locations
 18   location_exclusion_score    1       map         over (location tag, exclusion
                                                      tag) pairs: sum of (count-1)
 19   reserved_mem_rtotal         0.25    sum         r_mem / t_mem
====  ==========================  ======  ==========  ================================

Traps: the standard deviation is the *population* one (divide by n) over the
online nodes only; the offline metrics (4, 5) look only at offline nodes; the
load metrics are unbounded counts and dominate realistic scores; metric 19 is a
plain sum and grows with the cluster size. Ganeti prints scores with ``%.8f``.

For search we keep per-metric running sums (Σx, Σx² over online nodes) in
`Stats`; replacing the values of a few nodes updates a score in O(metrics),
and `score_many` does it for whole arrays of candidates at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corral.htools.nodeops import View, pdsk, pdsk_forth, unallocated

NDArray = np.ndarray[Any, Any]

NAMES = (
    "free_mem_cv",
    "free_disk_cv",
    "n1_cnt",
    "reserved_mem_cv",
    "offline_all_cnt",
    "offline_pri_cnt",
    "vcpu_ratio_cv",
    "cpu_load_cv",
    "mem_load_cv",
    "disk_load_cv",
    "net_load_cv",
    "pri_tags_score",
    "spindles_cv",
    "free_mem_cv_forth",
    "free_disk_cv_forth",
    "vcpu_ratio_cv_forth",
    "spindles_cv_forth",
    "location_score",
    "location_exclusion_score",
    "reserved_mem_rtotal",
)
WEIGHTS = np.array([0.5, 0.5, 1, 1, 4, 16, 0.5, 1, 1, 1, 1, 2, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 0.25])
NMETRICS = len(NAMES)
STDDEV = np.array([i in (0, 1, 3, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16) for i in range(NMETRICS)])
MAP_METRIC = 18
STD_IDX = np.flatnonzero(STDDEV)
SUM_IDX = np.array([i for i in range(NMETRICS) if not STDDEV[i] and i != MAP_METRIC])


def node_metrics(v: View) -> NDArray:
    """Per-node metric values, shape (20, k); offline nodes only fill rows 4 and 5."""
    k = len(v["tmem"])
    m = np.zeros((NMETRICS, k))
    off = v["offline"]
    on = ~off
    tmem = np.where(v["tmem"] == 0, 1.0, v["tmem"])
    tcpu = np.where(v["tcpu"] == 0, 1.0, v["tcpu"])
    with np.errstate(divide="ignore", invalid="ignore"):
        m[0] = unallocated(v) / tmem
        m[1] = pdsk(v)
        m[2] = np.where(v["failn1"], v["npri"] + v["nsec"], 0)
        m[3] = v["rmem"] / tmem
        m[6] = v["ucpu"] / tcpu / v["speed"]
        m[7] = v["lc"]
        m[8] = v["lm"]
        m[9] = v["ld"]
        m[10] = v["ln"]
        m[11] = v["conflicts"]
        m[12] = v["isp"] / v["hisp"]
        m[13] = v["fmem_f"] / tmem
        m[14] = pdsk_forth(v)
        m[15] = v["ucpu_f"] / tcpu / v["speed"]
        m[16] = v["isp_f"] / v["hisp"]
        m[17] = v["locscore"]
        m[19] = m[3]
    m[:, off] = 0.0
    m[4] = np.where(off, v["npri"] + v["nsec"], 0)
    m[5] = np.where(off, v["npri"], 0)
    m[:, on] = np.nan_to_num(m[:, on], nan=0.0, posinf=0.0, neginf=0.0)
    return m


def exact_score(metrics: NDArray, online: NDArray, map_value: float) -> tuple[float, NDArray]:
    """Score and per-metric values computed the careful (two-pass) way.

    Means first, then the mean squared deviation from them, with numpy's pairwise
    sums (error ~1e-16 relative: the printed 8 decimals are unaffected); not the
    running sums `Stats` keeps, whose cancellation grows over many updates.
    """
    vals = np.zeros(NMETRICS)
    n = int(online.sum())
    if n:
        xs = metrics[STD_IDX][:, online]
        mean = xs.sum(axis=1) / n
        dev = xs - mean[:, None]
        vals[STD_IDX] = np.sqrt((dev * dev).sum(axis=1) / n)
    vals[SUM_IDX] = metrics[SUM_IDX].sum(axis=1)
    vals[MAP_METRIC] = map_value
    return float(np.dot(WEIGHTS, vals)), vals


class Stats:
    """Running sums of the metrics over the online nodes of a node set."""

    def __init__(self, metrics: NDArray, online: NDArray, map_value: float) -> None:
        self.n = int(online.sum())
        self.s1 = metrics.sum(axis=1)
        self.s2 = (metrics * metrics).sum(axis=1)
        self.map_value = map_value

    def score(self) -> float:
        return float(score_many(self, np.zeros((NMETRICS, 1)), np.zeros((NMETRICS, 1)))[0])


def score_many(st: Stats, d1: NDArray, d2: NDArray, dmap: NDArray | float = 0.0) -> NDArray:
    """Scores after adding ``d1`` to Σx and ``d2`` to Σx² (shape (20, ...))."""
    n = max(st.n, 1)
    s1 = st.s1.reshape((NMETRICS,) + (1,) * (d1.ndim - 1)) + d1
    s2 = st.s2.reshape((NMETRICS,) + (1,) * (d1.ndim - 1)) + d2
    mean = s1[STD_IDX] / n
    var = np.maximum(s2[STD_IDX] / n - mean * mean, 0.0)
    total = np.tensordot(WEIGHTS[STD_IDX], np.sqrt(var), axes=1)
    total = total + np.tensordot(WEIGHTS[SUM_IDX], s1[SUM_IDX], axes=1)
    return total + WEIGHTS[MAP_METRIC] * (st.map_value + dmap)  # type: ignore[no-any-return]


def deltas(old: NDArray, new: NDArray) -> tuple[NDArray, NDArray]:
    """Changes of Σx and Σx² when node values ``old`` become ``new`` (same shape)."""
    return new - old, new * new - old * old
