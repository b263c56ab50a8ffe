"""How a comparison of models becomes a verdict: paired differences over training seeds, a stated test, and
sanity gates that decide whether a model's samples can be judged at all.

A claim such as "Glow has lower test bits/dim than RealNVP" is about the training recipe, not about one trained
network, so its unit of replication is the training seed. Two models trained with the same seed share their data
order, dequantisation noise and initialisation stream, so their difference is *paired* by seed and the seed-to-seed
noise common to both cancels. The test is a Student-t interval of the paired differences (two-sided, 95%):

- ``confirmed``: the interval excludes 0 on the side the claim predicts;
- ``contradicted``: it excludes 0 on the other side;
- ``inconclusive``: it contains 0;
- ``not testable at this scale``: fewer than ``MIN_SEEDS`` seeds, or a sanity gate failed (the reason is named).

A test set's standard error measures how well one trained network is evaluated, not how much another training run
would differ (two seeds of one Fashion-MNIST Glow can differ by 0.2 bits/dim while each is evaluated to +-0.008), so
it never decides alone.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_TESTABLE = "not testable at this scale"
VERDICTS = (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)
DIRECTIONS = ("lower", "higher")
MIN_SEEDS = 3                 # a t-interval from 2 seeds has 1 degree of freedom: 12.7 standard errors wide
CONFIDENCE = 0.95
PAIRED_T = "paired t-interval over training seeds (95%, two-sided)"


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value, e.g. 4.303 for 95% at 2 degrees of freedom."""
    from scipy.special import stdtrit                      # scipy.stats imports slowly
    if not 0 < confidence < 1 or dof < 1:
        raise ValueError(f"confidence={confidence} must be in (0, 1) and dof={dof} >= 1")
    return float(stdtrit(dof, 0.5 + confidence / 2))


@dataclass(frozen=True)
class Interval:
    """Mean of the paired differences ``a - b`` with its ``confidence`` t-interval over ``n`` seeds."""

    difference: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    """t-interval of the mean of ``a[i] - b[i]`` (one pair per training seed). Raises on unequal lengths or
    non-finite values: a diverged run must be reported, not averaged."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-d arrays of equal length, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"paired values must be finite, got {a.tolist()} and {b.tolist()}")
    d = a - b
    n = len(d)
    if n == 0:
        raise ValueError("paired values are empty")
    mean = float(d.mean())
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n, confidence)
    half = t_quantile(confidence, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def verdict_of(interval: Interval, claimed: str, min_seeds: int = MIN_SEEDS) -> str:
    """``claimed`` is the direction the claim predicts for ``a - b``: ``"lower"`` (a below b) or ``"higher"``."""
    if claimed not in DIRECTIONS:
        raise ValueError(f"claimed={claimed!r} is not a direction; use one of {DIRECTIONS}")
    if interval.n < min_seeds:
        return NOT_TESTABLE
    if not interval.excludes_zero():
        return INCONCLUSIVE
    below = interval.high < 0
    return CONFIRMED if below == (claimed == "lower") else CONTRADICTED


@dataclass(frozen=True)
class Decision:
    """One claim's decision, in the columns of the claims table."""

    verdict: str
    difference: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_seeds: int = 0
    test: str = ""
    gate: str = ""            # the failed sanity gate and its value, where one failed
    reason: str = ""          # why "not testable at this scale", in words

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is not one of {VERDICTS}")
        if self.verdict == NOT_TESTABLE and not (self.reason or self.gate):
            raise ValueError("a 'not testable at this scale' decision must say why (reason or gate)")

    def as_dict(self) -> dict:
        return asdict(self)


def decide_paired(a, b, claimed: str, failed_gates=(), min_seeds: int = MIN_SEEDS) -> Decision:
    """Decide "a is ``claimed`` than b" from per-seed values paired by seed. A failed gate overrides the test."""
    failed = "; ".join(failed_gates)
    if failed:
        return Decision(NOT_TESTABLE, gate=failed, reason="a sanity gate failed (the gate column names it)")
    iv = paired_interval(a, b)
    verdict = verdict_of(iv, claimed, min_seeds)
    reason = f"{iv.n} seed(s); the test needs at least {min_seeds}" if verdict == NOT_TESTABLE else ""
    return Decision(verdict, iv.difference, iv.low, iv.high, iv.n, PAIRED_T, reason=reason)


# ------------------------------------------------------------------------------------------------ sanity gates
# A model whose samples do not resemble the data says nothing about the paper's claims on samples. Each gate
# compares the model's T = 1 samples with real images under the same measure; the thresholds are loose on purpose:
# they separate "draws faint blobs" (classifier confidence 0.31-0.39 against 0.95 on real digits, pixel mean 0.01
# against 0.13) from a working generator, not good samples from better ones.
GATE_CONFIDENCE_RATIO = 0.7   # samples' mean top-class probability at least 70% of real images'
GATE_NONFINITE_SHARE = 0.01   # at most 1% of draws overflow to inf/NaN
GATE_PIXEL_MEAN_RATIO = 0.5   # the samples' mean pixel within a factor 2 of the data's, either way


@dataclass(frozen=True)
class Gate:
    name: str
    value: float
    reference: float
    threshold: str
    passed: bool

    def describe(self) -> str:
        return f"{self.name} = {self.value:.3g} (real {self.reference:.3g}; needs {self.threshold})"


def sanity_gates(sample_confidence: float, real_confidence: float, nonfinite_share: float,
                 sample_pixel_mean: float, real_pixel_mean: float) -> list[Gate]:
    """The three gates of a sample-judging study. Pixel means are in [0, 1] (uint8 / 255)."""
    for name, v in dict(sample_confidence=sample_confidence, real_confidence=real_confidence,
                        nonfinite_share=nonfinite_share, sample_pixel_mean=sample_pixel_mean,
                        real_pixel_mean=real_pixel_mean).items():
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and 0 <= v <= 1):
            raise ValueError(f"{name}={v!r} must be a finite number in [0, 1]")
    ratio = sample_pixel_mean / real_pixel_mean if real_pixel_mean > 0 else math.inf
    return [
        Gate("classifier confidence on T=1 samples", sample_confidence, real_confidence,
             f">= {GATE_CONFIDENCE_RATIO:.0%} of real", sample_confidence >= GATE_CONFIDENCE_RATIO * real_confidence),
        Gate("share of non-finite draws", nonfinite_share, 0.0, f"<= {GATE_NONFINITE_SHARE:.0%}",
             nonfinite_share <= GATE_NONFINITE_SHARE),
        Gate("pixel mean of T=1 samples", sample_pixel_mean, real_pixel_mean,
             f"within x{1 / GATE_PIXEL_MEAN_RATIO:.0f} of real",
             GATE_PIXEL_MEAN_RATIO <= ratio <= 1 / GATE_PIXEL_MEAN_RATIO),
    ]


def failed_gates(gates: list[Gate]) -> list[str]:
    return [g.describe() for g in gates if not g.passed]
