"""Benchmarks of corral (``make bench``); results go to ``bench/results/``.

``bench.cluster_bench`` measures the cluster stack on the fake hypervisor and
compares it with Ganeti 3.0.2 (see bench/results/cluster.md);
``bench/htools/`` holds the htools benchmarks.
"""
