from __future__ import annotations

import pytest

from corral.network import tap_name_for


def test_stable_short_and_distinct() -> None:
    name = tap_name_for("testvm.project.edu", 0, 0)
    assert name == tap_name_for("testvm.project.edu", 0, 0)
    assert len(name) <= 15
    names = {
        tap_name_for(inst, idx, seq)
        for inst in ("a.example.com", "b.example.com")
        for idx in range(3)
        for seq in range(3)
    }
    assert len(names) == 18


def test_long_numbers_still_fit() -> None:
    name = tap_name_for("vm", 123, 456789)
    assert len(name) <= 15
    assert name != tap_name_for("vm", 123, 456788)


def test_negative_rejected() -> None:
    with pytest.raises(ValueError):
        tap_name_for("vm", -1, 0)
