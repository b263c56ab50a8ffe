"""Class-conditional Glow (the official code's ``--ycond`` and ``--weight_y``): the study model (``base.study_config``)
with a class-conditional prior, for several weights of the classification loss; samples of each requested class,
judged by the measuring classifier, and the model's own classifier head on real test images. The logic of
``notebooks/class_conditional.py``."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis import REAL_VS_REAL, check_gates, failed_gates_of, image_grid, sample_quality
from ..analysis import samples
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.judging import decision_columns, nearest_temperature, paired_values, real_half_indices, table_outcome
from ..analysis.stats import NOT_TESTABLE, Decision, decide_paired
from ..config import RunConfig, check_choice
from ..profiles import PROFILES, profile_config
from ..profiles import profile as profile_of
from ..data import to_float
from ..training import prepare_splits
from .base import (N_CLASSES, SEED, Experiment, auto_or, cached_model, device, int_in, list_of, n_parameters,
                   number_in, sampler_temperatures)
from .base import classifier_provenance, study_dataset, plot_named_grids  # noqa: F401  (for the notebook)
from .base import check_values, measuring_classifier

NOTEBOOK = "class_conditional"
Y_WEIGHTS = (0.0, 0.01, 1.0)                 # 0: likelihood only; 0.01: official conditional runs; 1: strong
OFFICIAL_Y_WEIGHT = 0.01
# the test of a weight against chance: the per-seed accuracies' t-interval around the chance rate, which is known
ONE_SAMPLE_T = "one-sample t-interval over training seeds against chance ({chance}) (95%, two-sided)"
N_SEEDS = 3                                  # training seeds of each model: the replicates of the comparisons
PAPER_T = 0.7
PARAMETERS = {**SEED, "y_weights": auto_or(list_of(number_in(0.0))), "temperatures": sampler_temperatures,
              "n_per_class": int_in(2), "n_show": int_in(1, 32), "n_seeds": int_in(1)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def conditional_dataset(profile: str) -> str:
    """The study's dataset: the profile's ``study_datasets`` entry for it, else ``base.study_dataset``."""
    check_choice("profile", profile, PROFILES)
    return profile_of(profile).study_datasets.get(NOTEBOOK, study_dataset(profile))


def conditional_config(profile: str, y_weight: float, seed: int = 0) -> RunConfig:
    """The study model (``base.study_config``: additive coupling, the "study" tier of steps) of
    :func:`conditional_dataset`, with a class-conditional prior (official ``--ycond``) and classification-loss
    weight ``y_weight`` (official ``--weight_y``)."""
    run = profile_config(profile, conditional_dataset(profile), "glow", seed, ["model.coupling='additive'"],
                         tier="study")
    return run.override([f"model.n_classes={N_CLASSES[run.data.dataset]}", f"train.y_weight={float(y_weight)!r}"])


def y_weights_of(profile: str, value="auto") -> list[float]:
    """The weights the notebook trains: ``value``, or for "auto" the profile's (``Profile.y_weights``, else
    :data:`Y_WEIGHTS`)."""
    return list(profile_of(profile).y_weights or Y_WEIGHTS) if value == "auto" else list(value)


def runs(profile: str) -> list[RunConfig]:
    """The conditional study model for each weight of :func:`y_weights_of`, training seeds 0 to :data:`N_SEEDS` - 1."""
    return [conditional_config(profile, w, s) for w in y_weights_of(profile) for s in range(N_SEEDS)]


def model_name(y_weight: float, seed: int) -> str:
    return f"y_weight={y_weight:g}-seed{seed}"


@torch.no_grad()
def head_accuracy(model, images_uint8: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of the model's own classifier head (``Glow.classify`` on the mean top latent) on real images,
    entered at the centres of their bins."""
    dev = next(model.parameters()).device
    n_bits, correct = model.config.n_bits, 0
    for start in range(0, len(images_uint8), batch_size):
        x = to_float(images_uint8[start:start + batch_size], n_bits) + 0.5 / 2 ** n_bits
        zs, _ = model.encode(x.to(dev))
        correct += (model.classify(zs).argmax(1).cpu() == labels[start:start + batch_size]).sum().item()
    return correct / len(images_uint8)


def class_conditional(profile: str, y_weights, temperatures, n_per_class: int, n_show: int, n_seeds: int = N_SEEDS,
                      seed: int = 0) -> Experiment:
    """Class-conditional Glow (official ``--ycond``) for each classification-loss weight y_weight, training seeds
    ``seed`` to ``seed + n_seeds - 1``; every model's samples drawn with sampling seed ``seed``.

    Tables: ``models`` (one row per y_weight and seed: conditional test bits/dim −log₂ p(x | y)/D at the
    best-validation checkpoint, the classifier head's test accuracy, parameters, wall time); ``samples`` (one row
    per y_weight, seed, T and requested class: the fraction of n_per_class samples the measuring classifier
    assigns to the requested class, its mean probability for that class, its mean confidence), with the measuring
    classifier on a seeded random class-balanced draw of real test images as the baseline rows (``source`` "real
    test images"); ``quality`` (precision, recall and Fréchet distance of all classes' samples together against a
    random class-balanced real reference, with the real-vs-real row); ``gates`` (every model's sanity gates, on
    T = 1 samples of every class in equal numbers); ``decision`` (:func:`decisions`). Images: a grid per
    (y_weight, T) of the first seed's model, one row per class.
    """
    models, rows, per_class, quality, gates, images = {}, [], [], [], [], {}
    classifier = reference = None
    for w in y_weights_of(profile, y_weights):
        for s in range(seed, seed + n_seeds):
            tm = cached_model(conditional_config(profile, w, s))
            name = model_name(w, s)
            models[name] = tm
            splits = prepare_splits(tm.run)
            n_classes = tm.run.model.n_classes
            y = torch.arange(n_classes).repeat(n_per_class)          # every class in turn: balanced at any prefix
            if classifier is None:
                classifier = measuring_classifier(profile, tm.run.data.dataset)
                size = min(len(y), len(splits.test_x) // 2)
                first, second = real_half_indices(splits.test_y, size, seed)
                reference, held, held_y = splits.test_x[first], splits.test_x[second], splits.test_y[second]
                probs = classifier.predict_proba(held)
                for c in range(n_classes):
                    p = probs[held_y == c]
                    per_class.append({"source": "real test images", "y_weight": float("nan"), "seed": seed,
                                      "temperature": float("nan"), "requested_class": c, "n": len(p),
                                      "accuracy": (p.argmax(1) == c).double().mean().item(),
                                      "prob_requested": p[:, c].double().mean().item(),
                                      "confidence": p.max(1).values.double().mean().item()})
                quality.append({"source": REAL_VS_REAL, "y_weight": float("nan"), "seed": seed,
                                "temperature": float("nan"), **sample_quality(classifier, held, reference),
                                "n": size})
            gates += check_gates(name, tm.model, classifier, reference, len(reference), seed,
                                 y=y[:len(reference)], held=held,
                                 temperatures=[nearest_temperature(temperatures, PAPER_T)])[0]
            rows.append({"y_weight": w, "seed": s, "test_bpd": tm.summary["test_bpd_at_best_val"],
                         "head_test_accuracy": head_accuracy(tm.model, splits.test_x, splits.test_y),
                         "n_parameters": n_parameters(tm.model), "wall_s": tm.summary["wall_s"],
                         "steps": tm.summary["steps"],
                         "measuring_classifier_test_accuracy": classifier.test_accuracy})
            for t in temperatures:
                counts = {}                                          # over all classes at this temperature
                x = samples(tm.model, len(y), t, seed, y=y, counts=counts)
                probs = classifier.predict_proba(x)
                for c in range(n_classes):
                    p = probs[y == c]
                    per_class.append({"source": "model", "y_weight": w, "seed": s, "temperature": t,
                                      "requested_class": c, "n": len(p),
                                      "accuracy": (p.argmax(1) == c).double().mean().item(),
                                      "prob_requested": p[:, c].double().mean().item(),
                                      "confidence": p.max(1).values.double().mean().item(), **counts})
                quality.append({"source": "model", "y_weight": w, "seed": s, "temperature": t,
                                **sample_quality(classifier, x[:len(reference)], reference), "n": len(reference),
                                **counts})
                if s == seed:
                    by_class = torch.stack([x[y == c][:n_show] for c in range(n_classes)])
                    images[f"samples_yw{w:g}_T{t:g}"] = image_grid(by_class.flatten(0, 1),
                                                                   nrow=min(n_show, n_per_class))
    per_class, gates = pd.DataFrame(per_class), pd.DataFrame(gates)
    return Experiment({"models": pd.DataFrame(rows), "samples": per_class, "quality": pd.DataFrame(quality),
                       "gates": gates, "decision": decisions(per_class, gates)}, models, images)


def conditional_summary(per_class: pd.DataFrame) -> pd.DataFrame:
    """One row per source, y_weight and T: accuracy over all classes and seeds, the worst class's (mean over
    seeds), with the real test images' row as the baseline."""
    by_class = per_class.groupby(["source", "y_weight", "temperature", "requested_class"], dropna=False).agg(
        accuracy=("accuracy", "mean"), prob_requested=("prob_requested", "mean"),
        confidence=("confidence", "mean"), n=("n", "sum"), n_seeds=("seed", "nunique")).reset_index()
    return by_class.groupby(["source", "y_weight", "temperature"], dropna=False).agg(
        accuracy=("accuracy", "mean"), worst_class_accuracy=("accuracy", "min"),
        prob_requested=("prob_requested", "mean"), confidence=("confidence", "mean"), n=("n", "sum"),
        n_seeds=("n_seeds", "max")).reset_index()


def compared_temperature(per_class: pd.DataFrame) -> float:
    temps = sorted(set(per_class[per_class.source == "model"].temperature))
    return min(temps, key=lambda t: abs(t - PAPER_T))


def decisions(per_class: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """At T = 0.7 (or the nearest T run), the measuring classifier's accuracy on the requested class (mean over
    classes) per training seed: each y_weight against chance (1 / number of classes), and each y_weight > 0
    against y_weight = 0, paired by training seed (``stats.decide_paired``, claimed higher). Not testable when a
    compared model fails a gate."""
    model = per_class[per_class.source == "model"]
    t = compared_temperature(per_class)
    acc = model[model.temperature == t].groupby(["y_weight", "seed"]).accuracy.mean().reset_index()
    chance = 1 / model.requested_class.nunique()
    real = per_class[per_class.source != "model"].accuracy.mean()
    rows = []

    def row(label, a, b, names, w, against):
        d = decide_paired(a, b, "higher", failed_gates_of(gates, names))
        if against == "chance" and d.test:          # a known constant, not a second arm: the same t-interval
            d = dataclasses.replace(d, test=ONE_SAMPLE_T.format(chance=f"1/{model.requested_class.nunique()}"))
        rows.append({"comparison": label, "y_weight": w, "against": against, "temperature": t,
                     "accuracy": a.mean(), "baseline": b.mean(), "real_test_images": real, **decision_columns(d)})

    for w in sorted(set(acc.y_weight)):
        part = acc[acc.y_weight == w]
        row(f"y_weight={w:g} vs chance", part.accuracy.to_numpy(float), np.full(len(part), chance),
            [model_name(w, int(s)) for s in part.seed], w, "chance")
        if w > 0 and (acc.y_weight == 0).any():
            a, b = paired_values(acc, "y_weight", w, 0.0, "seed", "accuracy")
            seeds = sorted(set(part.seed) & set(acc[acc.y_weight == 0].seed))
            row(f"y_weight={w:g} vs y_weight=0", a, b,
                [model_name(v, int(s)) for v in (w, 0.0) for s in seeds], w, "y_weight=0")
    return pd.DataFrame(rows)


def plot_conditional(per_class: pd.DataFrame):
    """Measuring-classifier accuracy per requested class (mean ± std over training seeds), one panel per T, one bar
    group per y_weight; the classifier's accuracy on real test images of each class as black ticks. Two panels a
    row, as wide as the book's column (``base.COLUMN_INCHES``), one legend under them."""
    import matplotlib.pyplot as plt
    from .base import COLUMN_INCHES
    model, real = per_class[per_class.source == "model"], per_class[per_class.source != "model"]
    temps = sorted(set(model.temperature))
    weights = sorted(set(model.y_weight))
    ncol = min(2, len(temps))
    nrow = -(-len(temps) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES, 2.9 * nrow + 1.1), squeeze=False, sharey=True,
                             layout="constrained")
    width = 0.8 / len(weights)
    for ax, t in zip(axes.flat, temps):
        for i, w in enumerate(weights):
            g = model[(model.temperature == t) & (model.y_weight == w)].groupby("requested_class").accuracy
            stats = g.agg(["mean", "std"])
            ax.bar(stats.index + (i - (len(weights) - 1) / 2) * width, stats["mean"], width,
                   yerr=stats["std"].fillna(0), label=f"y_weight={w:g}", color=f"C{i}")
        ax.scatter(real.requested_class, real.accuracy, marker="_", s=150, color="k", label="real test images")
        ax.axhline(1 / model.requested_class.nunique(), color="k", ls=":", lw=1, label="chance")
        ax.set(title=f"T = {t:g}", xlabel="requested class", ylabel="classified as requested", ylim=(0, 1.05))
        ax.set_xticks(sorted(set(model.requested_class)))
    for ax in list(axes.flat)[len(temps):]:
        ax.set_visible(False)
    # one legend for every panel, under them, where it covers no bar
    fig.legend(*axes.flat[0].get_legend_handles_labels(), fontsize="small", loc="outside lower center",
               ncol=len(weights) + 2)
    fig.suptitle("Does the measuring classifier see the requested class\nin conditional samples?")
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def decide_requested_class(results: Results) -> Outcome:
    """The class conditioning users of the peer repositories ask for (the official code's ``--ycond``; the paper
    makes no class-conditional claim), from :func:`decisions`: at the official y_weight (else the first weight
    above 0, else the first), samples of the requested class more often than chance, over training seeds; every
    comparison's numbers beside it."""
    d = decisions(results.table(NOTEBOOK, "samples"), results.table(NOTEBOOK, "gates"))
    vs_chance = d[d.against == "chance"] if len(d) else d
    if vs_chance.empty:
        return Outcome(Decision(NOT_TESTABLE, reason="no conditional model was sampled"))
    weights = vs_chance.y_weight.tolist()
    w = OFFICIAL_Y_WEIGHT if OFFICIAL_Y_WEIGHT in weights else ([v for v in weights if v > 0] or weights)[0]
    return table_outcome(d, "comparison", ("temperature", "accuracy", "baseline", "real_test_images"),
                         [vs_chance.index[vs_chance.y_weight == w][0]])


CLAIMS = (
    ClaimSpec("class_conditional.requested_class",
              "Class-conditional Glow (official --ycond) generates the requested class (users of the peer "
              "repositories)", "users", decide_requested_class),
)
