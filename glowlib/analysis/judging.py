"""What every study that judges samples shares: real reference sets drawn at random and class-balanced, the
real-vs-real baseline beside each sample measure, the sanity gates run on a model before any verdict, and the
decisions over replicates that are not training seeds.

A reference set is never a prefix of a split: it is a seeded, class-balanced random draw
(:func:`reference_set`, from ``data.stratified_order``), and the real-vs-real baseline compares two *disjoint* such
draws of the same size as the samples (:func:`real_halves`), so a sample measure and its baseline have the same
bias from the number of images.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..config import check_range
from ..data import stratified_order
from .claims import Outcome
from .images import check_images, reduce_bits
from .quality import PR_NEIGHBOURS, precision_recall
from .sampling import samples
from .stats import (CONFIRMED, CONTRADICTED, GATE_CLASS_SHARE, INCONCLUSIVE, NOT_TESTABLE, PAIRED_T, Decision, Gate,
                    decide_paired, sanity_gates)

REAL_VS_REAL = "real vs real"      # the source of a baseline row: real images against a disjoint real reference
GATE_COLUMNS = ("model", "gate", "value", "reference", "threshold", "passed", "n")
SAMPLING_SEEDS_T = "paired t-interval over sampling seeds (95%, two-sided)"


# ---------------------------------------------------------------------------------------------------- references
def _check_labels(images: Tensor, labels: Tensor, n: int, most: int) -> None:
    check_images(images)
    if not isinstance(labels, Tensor) or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be a 1-d tensor of {len(images)} labels, one per image")
    check_range("n", n, 1, most)


def reference_indices(labels: Tensor, n: int, seed: int) -> Tensor:
    """Indices of a seeded random draw of ``n`` images with every class as equally represented as ``n`` allows
    (the first ``n`` of ``data.stratified_order``): ``n = k * n_classes`` gives exactly ``k`` of each class."""
    check_range("n", n, 1, len(labels))
    return stratified_order(labels, seed)[:n]


def reference_set(images: Tensor, labels: Tensor, n: int, seed: int) -> Tensor:
    """``n`` real images, a seeded random class-balanced draw from ``images`` (see :func:`reference_indices`)."""
    _check_labels(images, labels, n, len(images))
    return images[reference_indices(labels, n, seed)]


def real_half_indices(labels: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of two disjoint seeded random class-balanced draws of ``n`` each (see :func:`real_halves`)."""
    check_range("n", n, 1, len(labels) // 2)
    first = reference_indices(labels, n, seed)
    rest = torch.ones(len(labels), dtype=torch.bool)
    rest[first] = False
    rest = rest.nonzero().flatten()
    return first, rest[reference_indices(labels[rest], n, seed + 1)]


def real_halves(images: Tensor, labels: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Two disjoint seeded random class-balanced draws of ``n`` real images each: (reference, held). Samples are
    measured against ``reference``; ``held`` measured against it is the real-vs-real baseline."""
    _check_labels(images, labels, n, len(images) // 2)
    first, second = real_half_indices(labels, n, seed)
    return images[first], images[second]


# ---------------------------------------------------------------------------------------------------- gates
# The gates' draws are never the draws a study then judges: they come from their own seed stream, GATE_SEED_BASE +
# seed, far above any seed a study judges with (those count up from the profile's seed by the number of sampling
# or training seeds), so a model cannot pass its gates on the very draws whose measures decide a claim.
GATE_SEED_BASE = 1_000_000_000
GATE_BOOTSTRAP = 200          # resamples of the draws for the standard error of class coverage
# The fewest draws a model's gates read, whatever the number of real images a study holds: class coverage is a share
# threshold on each class's frequency among the draws (:func:`classes_found`), so more draws only shrink its noise.
# At 150 draws (the 8x8 digits' half test split) a class drawn 4% of the time misses its 2.5% threshold about one
# time in six; at 1,000 draws about one time in 600. Recall alone compares as many draws as real images.
GATE_DRAWS = 1_000


def gate_seed(seed: int) -> int:
    """The sampler's seed of the gate draws of a study run with ``seed`` (never one the study judges)."""
    check_range("seed", seed, 0, GATE_SEED_BASE - 1)
    return GATE_SEED_BASE + seed


def nearest_temperature(temperatures, target: float, below_one: bool = False) -> float:
    """The temperature of ``temperatures`` nearest ``target`` (below 1 only, if ``below_one``): the one a claim
    reads beside T = 1, at which its model's gates must hold too; 1 where there is none."""
    pool = [float(t) for t in temperatures if not below_one or float(t) < 1]
    return min(pool, key=lambda t: (abs(t - target), t)) if pool else 1.0


def _confidence(classifier, images_uint8: Tensor) -> float:
    return classifier.predict_proba(images_uint8).max(1).values.double().mean().item()


def _pixel_mean(images_uint8: Tensor) -> float:
    return images_uint8.double().mean().item() / 255


def classes_found(predicted: Tensor, n_classes: int) -> float:
    """The share of classes found among draws classified as ``predicted`` (labels, (n,)): a class is found when at
    least ``stats.GATE_CLASS_SHARE`` of its balanced share n / n_classes of the draws are classified as it."""
    need = max(1, math.ceil(GATE_CLASS_SHARE * len(predicted) / n_classes))
    return (torch.bincount(predicted, minlength=n_classes) >= need).double().mean().item()


def coverage_se(predicted: Tensor, n_classes: int, seed: int = 0) -> float:
    """Bootstrap standard error of :func:`classes_found` at the number of draws (GATE_BOOTSTRAP resamples)."""
    g = torch.Generator().manual_seed(seed)
    values = [classes_found(predicted[torch.randint(len(predicted), (len(predicted),), generator=g)], n_classes)
              for _ in range(GATE_BOOTSTRAP)]
    return float(np.std(values, ddof=1))


def gate_measures(classifier, images_uint8: Tensor, reference_uint8: Tensor, m: int) -> dict:
    """The statistics the gates read from images (samples, or real images for the real side): confidence, pixel
    mean, class coverage and their standard errors (coverage's by bootstrap) over all of ``images_uint8``; recall
    against ``reference_uint8`` over the first ``m`` of them."""
    probs = classifier.predict_proba(images_uint8)
    top = probs.max(1).values.double()
    per_image = images_uint8.double().flatten(1).mean(1) / 255
    n = len(images_uint8)
    first = images_uint8[:m]
    predicted = probs.argmax(1)
    recall = precision_recall(classifier.features(reference_uint8), classifier.features(first))["recall"]
    return {"confidence": top.mean().item(), "confidence_se": (top.std().item() / math.sqrt(n)) if n > 1 else 0.0,
            "pixel_mean": per_image.mean().item(),
            "pixel_mean_se": (per_image.std().item() / math.sqrt(n)) if n > 1 else 0.0,
            "recall": recall, "coverage": classes_found(predicted, classifier.n_classes),
            "coverage_se": coverage_se(predicted, classifier.n_classes)}


def check_gates(name: str, model, classifier, real_uint8: Tensor, n: int, seed: int,
                y: Tensor | None = None, temperatures=(1.0,), held: Tensor | None = None) -> tuple[list[dict], Tensor]:
    """The sanity gates (``stats.sanity_gates``) of ``model`` at each of ``temperatures`` (every temperature a
    claim reads; T = 1 always among them): ``max(n, GATE_DRAWS)`` draws at each T from the gate seed stream
    (:func:`gate_seed`, never the draws a study judges; labels ``y`` for a class-conditional model, repeated in
    turn to the number of draws) against the real images ``real_uint8`` shown at the model's bit depth, under the
    measuring classifier.

    Recall compares the first ``min(n, len(held))`` draws with ``held``, real images disjoint from ``real_uint8``
    (the real-vs-real baseline at the same count, ``real_halves``); class coverage, confidence and pixel mean read
    every draw (:data:`GATE_DRAWS`), against the real side's at its own count (coverage finds every class among as
    many real images as recall compares). Without ``held``, ``real_uint8`` is split at random into two halves, one
    the reference and one the real side. Returns (one row per gate and T, with :data:`GATE_COLUMNS` and
    ``temperature, noise, within_noise, draw_seed``, the first ``n`` draws at the first T)."""
    temperatures = sorted({float(t) for t in temperatures} | {1.0}, key=lambda t: (t != 1.0, t))
    real = reduce_bits(real_uint8, model.config.n_bits)
    if held is None:
        order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
        half = len(real) // 2
        reference, held_real = real[order[:half]], real[order[half:2 * half]]
    else:
        check_images(held, "held")
        reference, held_real = real, reduce_bits(held, model.config.n_bits)
    m = min(n, len(held_real))
    if m <= PR_NEIGHBOURS or len(reference) <= PR_NEIGHBOURS:
        raise ValueError(f"the recall gate needs more than {PR_NEIGHBOURS} draws and real images, got n={n} and "
                         f"{len(held_real)} real images beside the {len(reference)} of the reference")
    real_side = {**gate_measures(classifier, held_real, reference, m),        # recall at m draws, coverage at all
                 "confidence": _confidence(classifier, real), "pixel_mean": _pixel_mean(real)}
    rows, first = [], None
    draw_seed, draws = gate_seed(seed), max(n, GATE_DRAWS)
    if y is not None:
        y = y.repeat((draws + len(y) - 1) // len(y))[:draws]
    for t in temperatures:
        counts = {}
        x = samples(model, draws, t, draw_seed, y=y, counts=counts)
        first = x[:n] if first is None else first
        s = gate_measures(classifier, x, reference, m)
        gates = sanity_gates(s["confidence"], real_side["confidence"], counts["nonfinite_first_draw"] / draws,
                             s["pixel_mean"], real_side["pixel_mean"], recall=s["recall"],
                             real_recall=real_side["recall"], coverage=s["coverage"],
                             real_coverage=real_side["coverage"], n=draws, n_real=len(reference),
                             confidence_se=s["confidence_se"], pixel_mean_se=s["pixel_mean_se"],
                             coverage_se=s["coverage_se"], temperature=t)
        rows += [{"model": name, "gate": g.name, "value": g.value, "reference": g.reference,
                  "threshold": g.threshold, "passed": bool(g.passed), "n": draws, "temperature": t, "noise": g.noise,
                  "within_noise": bool(g.within_noise), "draw_seed": draw_seed} for g in gates]
    return rows, first


def failed_gates_of(gates: pd.DataFrame, models=None) -> list[str]:
    """The failed gates of a gates table (as written by the studies, or read back from its CSV), each as
    "model: gate = value (real ...; needs ...)"; only ``models`` if given."""
    missing = set(GATE_COLUMNS) - set(gates.columns)
    if missing:
        raise ValueError(f"a gates table needs the columns {GATE_COLUMNS}; {sorted(missing)} are missing")
    rows = gates if models is None else gates[gates.model.isin(list(models))]
    if models is not None and set(models) - set(rows.model):
        raise ValueError(f"no gates for models {sorted(set(models) - set(rows.model))}; every model a verdict uses "
                         f"must be gated")
    def flag(v):
        return bool(v) if isinstance(v, (bool, np.bool_)) else str(v).strip() == "True"

    passed = rows.passed.map(flag)
    noise = rows.noise.astype(float).fillna(0.0) if "noise" in rows else pd.Series(0.0, index=rows.index)
    within = rows.within_noise.map(flag) if "within_noise" in rows else pd.Series(False, index=rows.index)
    return [f"{r.model}: " + Gate(r.gate, r.value, r.reference, r.threshold, False, nz, w).describe()
            for r, ok, nz, w in zip(rows.itertuples(), passed, noise, within) if not ok]


# ---------------------------------------------------------------------------------------------------- decisions
def decide_over_sampling_seeds(a, b, claimed: str, failed=()) -> Decision:
    """``stats.decide_paired`` where the replicates are seeds of the sampler (of one trained model), not training
    seeds: a claim about the sampler, whose noise is the draws; the test is named accordingly."""
    d = decide_paired(a, b, claimed, failed)
    return dataclasses.replace(d, test=SAMPLING_SEEDS_T) if d.test == PAIRED_T else d


def decide_non_inferior(a, b, margin: float, failed=(), test: str = PAIRED_T) -> Decision:
    """"a is not lower than b by more than ``margin``", paired by replicate: ``stats.decide_paired`` of a against
    b − margin, "higher", reported as the interval of a − b. Confirmed when the whole interval lies above −margin,
    contradicted when it lies below, inconclusive when it straddles it."""
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin={margin!r} must be a finite number >= 0")
    d = decide_paired(a, np.asarray(b, dtype=float) - margin, "higher", failed)
    if d.verdict == NOT_TESTABLE and d.gate:
        return d
    return dataclasses.replace(d, difference=d.difference - margin, ci_low=d.ci_low - margin,
                               ci_high=d.ci_high - margin,
                               test=f"{test}; non-inferiority margin {margin:g}: confirmed when the interval of "
                                    f"the difference lies above -{margin:g}, contradicted when below")


_PRIORITY = (NOT_TESTABLE, CONTRADICTED, INCONCLUSIVE, CONFIRMED)


def deciding(decisions: list[Decision]) -> int:
    """Index of the decision that decides a claim needing all of ``decisions`` to hold: the first not testable,
    else the first contradicted, else the first inconclusive, else the first (all confirmed)."""
    if not decisions:
        raise ValueError("no decisions to combine")
    return min(range(len(decisions)), key=lambda i: (_PRIORITY.index(decisions[i].verdict), i))


DECISION_COLUMNS = ("verdict", "difference", "ci_low", "ci_high", "n", "test", "gate", "reason")


def decision_columns(d: Decision) -> dict:
    """A decision as the columns of a study's decision table (:data:`DECISION_COLUMNS`, ``n`` its replicates),
    which :func:`decision_of` reads back."""
    return {"verdict": d.verdict, "difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "n": d.n_seeds, "test": d.test, "gate": d.gate, "reason": d.reason}


def decision_of(row) -> Decision:
    """A row of a study's decision table (a named tuple or a Series, as read back from its CSV: empty strings come
    back as NaN) as the ``stats.Decision`` it holds, from its ``verdict, difference, ci_low, ci_high, n, test,
    gate, reason``."""
    def text(v):
        return v if isinstance(v, str) else ""
    return Decision(row.verdict, float(row.difference), float(row.ci_low), float(row.ci_high), int(row.n),
                    text(row.test), text(row.gate), text(row.reason))


def paired_values(table: pd.DataFrame, by: str, a, b, pair: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``value`` column of the rows with ``by == a`` and ``by == b``, aligned on the ``pair`` column (the
    seed), keeping the pairs both have."""
    left = table[table[by] == a].set_index(pair)[value]
    right = table[table[by] == b].set_index(pair)[value]
    common = sorted(set(left.index) & set(right.index))
    return left.loc[common].to_numpy(float), right.loc[common].to_numpy(float)


def _name(label: str, value) -> str:
    return f"{label} {value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def table_outcome(table: pd.DataFrame, label: str, columns=(), deciding_rows=None, extra=None) -> Outcome:
    """A claim decided by the rows of a study's decision table (as :func:`decision_columns` writes them), which
    must all hold: the decision of the row :func:`deciding` picks among ``deciding_rows`` (index labels of
    ``table``; default every row), and ``decided_by`` that row's ``label`` value. The numbers: every row's
    difference, interval and ``columns``, each named "<label value> <column>", and those of ``extra``."""
    rows = table if deciding_rows is None else table.loc[list(deciding_rows)]
    decisions = [decision_of(r) for r in rows.itertuples()]
    i = deciding(decisions)
    numbers = {_name(label, getattr(r, label)) + " " + c: getattr(r, c)
               for r in table.itertuples() for c in ("difference", "ci_low", "ci_high", *columns)}
    numbers.update(extra or {})
    return Outcome(decisions[i], numbers, _name(label, rows[label].iloc[i]))

