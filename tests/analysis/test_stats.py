"""Paired seed tests and sanity gates (glowlib.analysis.stats): known answers and every verdict reachable."""
import math

import numpy as np
import pytest

from glowlib.analysis.stats import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, Decision, decide_paired,
                                    failed_gates, paired_interval, sanity_gates, t_quantile, verdict_of)


def test_t_quantiles_match_tables():
    # two-sided 95% critical values from any Student-t table
    assert t_quantile(0.95, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.95, 2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(0.95, 10) == pytest.approx(2.228, abs=1e-3)


def test_paired_interval_by_hand():
    a, b = [3.0, 3.2, 3.1], [3.5, 3.6, 3.7]           # differences -0.5, -0.4, -0.6: mean -0.5, sd 0.1
    iv = paired_interval(a, b)
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert iv.difference == pytest.approx(-0.5)
    assert (iv.low, iv.high) == pytest.approx((-0.5 - half, -0.5 + half), abs=1e-4)
    assert iv.n == 3


def test_pairing_cancels_the_shared_seed_effect():
    # a seed effect common to both models is large; the per-seed difference is small but consistent
    seed_effect = np.array([0.0, 0.3, -0.25, 0.2])
    a, b = 3.4 + seed_effect, 3.5 + seed_effect + np.array([0.01, -0.01, 0.0, 0.005])
    assert paired_interval(a, b).high < 0                  # paired: decided
    unpaired_half = t_quantile(0.95, 6) * math.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 4)
    assert unpaired_half > 0.1                             # unpaired, the seed effect would swamp the 0.1 gap


@pytest.mark.parametrize("a, b, claimed, expected", [
    ([1.0, 1.1, 0.9], [2.0, 2.1, 2.05], "lower", CONFIRMED),
    ([1.0, 1.1, 0.9], [2.0, 2.1, 2.05], "higher", CONTRADICTED),
    ([1.0, 2.0, 0.5], [1.5, 1.0, 1.2], "lower", INCONCLUSIVE),
    ([1.0, 1.1], [2.0, 2.1], "lower", NOT_TESTABLE),
])
def test_every_verdict(a, b, claimed, expected):
    assert verdict_of(paired_interval(a, b), claimed) == expected
    d = decide_paired(a, b, claimed)
    assert d.verdict == expected and d.n_seeds == len(a)
    if expected == NOT_TESTABLE:
        assert "seed" in d.reason


def test_a_failed_gate_overrides_the_test():
    d = decide_paired([1.0, 1.1, 0.9], [2.0, 2.1, 2.05], "lower", failed_gates=["pixel mean 0.01 (real 0.13)"])
    assert d.verdict == NOT_TESTABLE and "pixel mean" in d.gate and math.isnan(d.difference)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="equal length"):
        paired_interval([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        paired_interval([1, float("nan"), 3], [1, 2, 3])
    with pytest.raises(ValueError, match="direction"):
        verdict_of(paired_interval([1, 2, 3], [1, 2, 4]), "smaller")
    with pytest.raises(ValueError, match="say why"):
        Decision(NOT_TESTABLE)
    with pytest.raises(ValueError, match="verdict"):
        Decision("not confirmed")


def test_gates_separate_blobs_from_a_working_generator():
    # faint blobs: low confidence, near-black images
    blobs = sanity_gates(sample_confidence=0.35, real_confidence=0.95, nonfinite_share=0.0,
                         sample_pixel_mean=0.02, real_pixel_mean=0.13)
    assert [g.passed for g in blobs] == [False, True, False]
    assert len(failed_gates(blobs)) == 2 and "0.35" in failed_gates(blobs)[0]
    working = sanity_gates(0.85, 0.95, 0.002, 0.12, 0.13)
    assert all(g.passed for g in working) and not failed_gates(working)
    overflowing = sanity_gates(0.85, 0.95, 0.2, 0.12, 0.13)
    assert [g.passed for g in overflowing] == [True, False, True]
    with pytest.raises(ValueError, match="sample_pixel_mean"):
        sanity_gates(0.85, 0.95, 0.0, 30.0, 0.13)
