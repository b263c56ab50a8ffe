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

A claim whose study a profile leaves out for its cost has no verdict: its row reads :data:`NOT_RUN`, with what
running it would cost (``glowlib.left_out``), so that "not testable" is kept for what the data here cannot decide.

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
NOT_RUN = "not run at this profile"
STATES = VERDICTS + (NOT_RUN,)      # what a row of the claims table may read: a verdict, or no study run
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
# compares the model's samples at a temperature with real images under the same measure; the thresholds are loose on
# purpose: they separate a generator that draws blobs, noise or a few classes from a working one, not good samples
# from better ones. Confidence and pixel mean alone pass blobs of the data's ink (the classifier is confident about a
# smudge that looks like an 8), so two gates look at what is drawn: recall (the share of real images near some
# sample, in the measuring classifier's features) and class coverage (how many classes the classifier finds among
# the draws).
#
# Every gate must pass by more than its sampling noise: by more than GATE_NOISE_SES standard errors of the
# statistic at the number of draws; a gate that clears its threshold by less fails "within noise".
GATE_CONFIDENCE_RATIO = 0.7   # samples' mean top-class probability at least 70% of real images'
GATE_NONFINITE_SHARE = 0.01   # at most 1% of draws overflow to inf/NaN
GATE_PIXEL_MEAN_RATIO = 0.5   # the samples' mean pixel within a factor 2 of the data's, either way
# Recall at least half the real-vs-real recall at the same draw count. Real against real: 0.90-0.95 (mnist5k and
# Fashion-MNIST test images, 300-500 a side; two disjoint draws differ by +-0.02); the stand-ins that draw no data
# (``analysis.stand_ins``: mean-ink blobs, class means with noise, smoothed noise) have recall 0-0.09, a generator
# of two classes 0.2-0.7 depending on the classes' spread (class coverage catches it).
GATE_RECALL_RATIO = 0.5
# Classes found (each by at least a quarter of its share of the draws) at least 80% of those found among as many
# real images, which find every class (10 of 10 at 300-500 draws, no spread): at most one class in ten missing.
# Two classes: 0.2-0.4; blobs and smoothed noise: 0.3-0.7; class means with noise find 0.8-1.0 (recall: 0).
GATE_COVERAGE_RATIO = 0.8
GATE_CLASS_SHARE = 0.25       # a class is found when at least this share of n / n_classes draws are classified as it
GATE_NOISE_SES = 2.0          # a gate passes only by more than this many standard errors of its statistic


@dataclass(frozen=True)
class Gate:
    name: str
    value: float
    reference: float
    threshold: str
    passed: bool
    noise: float = 0.0        # standard error of ``value`` at the number of draws (0: not estimated)
    within_noise: bool = False  # failed only because it clears the threshold by less than GATE_NOISE_SES x noise

    def describe(self) -> str:
        noise = f" +- {self.noise:.2g}" if self.noise > 0 else ""
        tail = f", passed by less than {GATE_NOISE_SES:g} standard errors: within noise" if self.within_noise else ""
        return f"{self.name} = {self.value:.3g}{noise} (real {self.reference:.3g}; needs {self.threshold}{tail})"


def _gate(name: str, value: float, reference: float, threshold: str, margin: float, noise: float) -> Gate:
    """A gate that clears its threshold by ``margin`` (negative: misses it), in the units of ``noise``'s."""
    noise = float(noise) if math.isfinite(noise) and noise > 0 else 0.0
    passed = margin > GATE_NOISE_SES * noise if noise > 0 else margin >= 0
    return Gate(name, float(value), float(reference), threshold, bool(passed),
                noise, bool(margin >= 0 and not passed))


def binomial_se(share: float, n: int | None) -> float:
    """Standard error of a share measured on n independent draws (0 where n is unknown)."""
    return math.sqrt(max(share * (1 - share), 0.0) / n) if n else 0.0


def sanity_gates(sample_confidence: float, real_confidence: float, nonfinite_share: float,
                 sample_pixel_mean: float, real_pixel_mean: float, *, recall: float | None = None,
                 real_recall: float | None = None, coverage: float | None = None,
                 real_coverage: float | None = None, n: int | None = None, n_real: int | None = None,
                 confidence_se: float = 0.0, pixel_mean_se: float = 0.0, coverage_se: float = 0.0,
                 temperature: float = 1.0) -> list[Gate]:
    """The gates of a sample-judging study at one temperature. Pixel means are in [0, 1] (uint8 / 255).

    Always: confidence, non-finite share, pixel mean; with ``recall``/``real_recall``: the recall floor; with
    ``coverage``/``real_coverage``: class coverage. ``n`` (draws) and ``n_real`` (real images recall counts over)
    give the binomial standard errors of the shares; ``confidence_se``, ``pixel_mean_se`` and ``coverage_se``
    those of the other statistics. A gate passes by more than GATE_NOISE_SES of its standard errors."""
    values = dict(sample_confidence=sample_confidence, real_confidence=real_confidence,
                  nonfinite_share=nonfinite_share, sample_pixel_mean=sample_pixel_mean,
                  real_pixel_mean=real_pixel_mean, recall=recall, real_recall=real_recall, coverage=coverage,
                  real_coverage=real_coverage)
    for name, v in values.items():
        if v is None and name in ("recall", "real_recall", "coverage", "real_coverage"):
            continue
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and 0 <= v <= 1):
            raise ValueError(f"{name}={v!r} must be a finite number in [0, 1]")
    for name, v in dict(confidence_se=confidence_se, pixel_mean_se=pixel_mean_se, coverage_se=coverage_se).items():
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}={v!r} must be a finite number >= 0")
    if (recall is None) != (real_recall is None) or (coverage is None) != (real_coverage is None):
        raise ValueError("recall needs real_recall and coverage needs real_coverage (the real images' value)")
    t = f"T={temperature:g}"
    ratio = sample_pixel_mean / real_pixel_mean if real_pixel_mean > 0 else math.inf
    ratio_se = pixel_mean_se / real_pixel_mean if real_pixel_mean > 0 else 0.0
    low, high = GATE_PIXEL_MEAN_RATIO, 1 / GATE_PIXEL_MEAN_RATIO
    gates = [
        _gate(f"classifier confidence on {t} samples", sample_confidence, real_confidence,
              f">= {GATE_CONFIDENCE_RATIO:.0%} of real", sample_confidence - GATE_CONFIDENCE_RATIO * real_confidence,
              confidence_se),
        _gate("share of non-finite draws" + ("" if temperature == 1 else f" at {t}"), nonfinite_share, 0.0, f"<= {GATE_NONFINITE_SHARE:.0%}",
              GATE_NONFINITE_SHARE - nonfinite_share, binomial_se(nonfinite_share, n)),
        _gate(f"pixel mean of {t} samples", sample_pixel_mean, real_pixel_mean, f"within x{high:.0f} of real",
              min(ratio - low, high - ratio) * real_pixel_mean, ratio_se * real_pixel_mean),
    ]
    if recall is not None:
        gates.append(_gate(f"recall of {t} samples", recall, real_recall, f">= {GATE_RECALL_RATIO:.0%} of real",
                           recall - GATE_RECALL_RATIO * real_recall, binomial_se(recall, n_real)))
    if coverage is not None:
        gates.append(_gate(f"classes found among {t} samples", coverage, real_coverage,
                           f">= {GATE_COVERAGE_RATIO:.0%} of real", coverage - GATE_COVERAGE_RATIO * real_coverage,
                           coverage_se))
    return gates


def failed_gates(gates: list[Gate]) -> list[str]:
    return [g.describe() for g in gates if not g.passed]
