"""Class-conditional Glow (the official code's ``--ycond`` and ``--weight_y``): the study model (``base.study_config``)
with a class-conditional prior, for several weights of the classification loss; samples of each requested class,
judged by the measuring classifier, and the model's own classifier head on real test images. The logic of
``notebooks/class_conditional.py``."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import torch

from ..analysis import cached_classifier, image_grid, samples
from ..config import RunConfig
from ..data import to_float
from ..results import read_table
from ..training import prepare_splits
from .base import (CONFIRMED, NOT_CONFIRMED, N_CLASSES, SEED, Claim, Experiment, cached_model, device, int_in,
                   list_of, n_parameters, need, number_in, sampler_temperatures, study_config)
from .base import STUDY_DATASET, classifier_provenance, plot_named_grids  # noqa: F401  (for the notebook)
from .base import check_values

NOTEBOOK = "class_conditional"
Y_WEIGHTS = (0.0, 0.01, 1.0)                 # 0: likelihood only; 0.01: official conditional runs; 1: strong
PARAMETERS = {**SEED, "y_weights": list_of(number_in(0.0)), "temperatures": sampler_temperatures,
              "n_per_class": int_in(2), "n_show": int_in(1, 32)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def conditional_config(profile: str, y_weight: float, seed: int = 0) -> RunConfig:
    """The study model with a class-conditional prior (official ``--ycond``) and classification-loss weight
    ``y_weight`` (official ``--weight_y``)."""
    run = study_config(profile, seed)
    return run.override([f"model.n_classes={N_CLASSES[run.data.dataset]}", f"train.y_weight={float(y_weight)!r}"])


def runs(profile: str) -> list[RunConfig]:
    """The conditional study model for each of :data:`Y_WEIGHTS`, seed 0."""
    return [conditional_config(profile, w) for w in Y_WEIGHTS]


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


def class_conditional(profile: str, y_weights, temperatures, n_per_class: int, n_show: int,
                      seed: int = 0) -> Experiment:
    """Class-conditional Glow (official ``--ycond``) for each classification-loss weight y_weight.

    Tables: ``models`` (one row per y_weight: conditional test bits/dim −log₂ p(x | y)/D at the best-validation
    checkpoint, the classifier head's test accuracy, parameters, wall time); ``samples`` (one row per y_weight,
    T and requested class: the fraction of n_per_class samples the measuring classifier assigns to the requested
    class, its mean probability for that class, its mean confidence). Images: a grid per (y_weight, T), one row
    per class.
    """
    models, rows, per_class, images = {}, [], [], {}
    classifier = None
    for w in y_weights:
        tm = cached_model(conditional_config(profile, w))
        models[f"y_weight={w:g}"] = tm
        splits = prepare_splits(tm.run)
        if classifier is None:
            classifier = cached_classifier(tm.run.data.dataset, device=device())
        n_classes = tm.run.model.n_classes
        rows.append({"y_weight": w, "test_bpd": tm.summary["test_bpd_at_best_val"],
                     "head_test_accuracy": head_accuracy(tm.model, splits.test_x, splits.test_y),
                     "n_parameters": n_parameters(tm.model), "wall_s": tm.summary["wall_s"],
                     "steps": tm.summary["steps"], "measuring_classifier_test_accuracy": classifier.test_accuracy})
        y = torch.arange(n_classes).repeat_interleave(n_per_class)
        for t in temperatures:
            counts = {"nonfinite_redrawn": 0}                      # over all classes at this temperature
            x = samples(tm.model, len(y), t, seed, y=y, counts=counts)
            probs = classifier.predict_proba(x)
            for c in range(n_classes):
                p = probs[y == c]
                per_class.append({"y_weight": w, "temperature": t, "requested_class": c, "n": len(p),
                                  "accuracy": (p.argmax(1) == c).double().mean().item(),
                                  "prob_requested": p[:, c].double().mean().item(),
                                  "confidence": p.max(1).values.double().mean().item(), **counts})
            shown = x.view(n_classes, n_per_class, *x.shape[1:])[:, :n_show].flatten(0, 1)
            images[f"samples_yw{w:g}_T{t:g}"] = image_grid(shown, nrow=min(n_show, n_per_class))
    return Experiment({"models": pd.DataFrame(rows), "samples": pd.DataFrame(per_class)}, models, images)


def conditional_summary(per_class: pd.DataFrame) -> pd.DataFrame:
    """One row per (y_weight, T): accuracy over all classes, and the worst class's."""
    return per_class.groupby(["y_weight", "temperature"]).agg(
        accuracy=("accuracy", "mean"), worst_class_accuracy=("accuracy", "min"),
        prob_requested=("prob_requested", "mean"), confidence=("confidence", "mean"), n=("n", "sum")).reset_index()


def plot_conditional(per_class: pd.DataFrame):
    """Measuring-classifier accuracy per requested class, one panel per T, one bar group per y_weight."""
    import matplotlib.pyplot as plt
    temps = sorted(set(per_class.temperature))
    weights = sorted(set(per_class.y_weight))
    fig, axes = plt.subplots(1, len(temps), figsize=(5 * len(temps), 3.4), squeeze=False, sharey=True)
    width = 0.8 / len(weights)
    for ax, t in zip(axes[0], temps):
        for i, w in enumerate(weights):
            g = per_class[(per_class.temperature == t) & (per_class.y_weight == w)]
            ax.bar(g.requested_class + (i - (len(weights) - 1) / 2) * width, g.accuracy, width,
                   label=f"y_weight={w:g}")
        ax.axhline(1 / per_class.requested_class.nunique(), color="k", ls=":", lw=1, label="chance")
        ax.set(title=f"T = {t:g}", xlabel="requested class", ylabel="classified as requested", ylim=(0, 1.02))
        ax.legend(fontsize="x-small")
    fig.suptitle("Does the measuring classifier see the requested class in conditional samples?")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """The official code's class conditioning, from the measuring classifier's accuracy on requested classes."""
    out = []
    # 5: class-conditional samples
    claim = "Class-conditional Glow (official --ycond) generates the requested class"
    missing = need(profile, root, "class_conditional")
    if missing:
        out.append(Claim(claim, "paper", "class_conditional", missing.verdict, missing.evidence))
    else:
        c = read_table(profile, "class_conditional", "summary", root)
        t = c.temperature.iloc[(c.temperature - 0.7).abs().argmin()]
        at = c[c.temperature == t]
        ok = bool((at.accuracy >= 0.5).all())
        out.append(Claim(claim, "paper", "class_conditional", CONFIRMED if ok else NOT_CONFIRMED,
                         f"Fraction of samples at T={t:g} that the measuring classifier assigns to the requested "
                         f"class (chance 0.1); confirmed when ≥ 0.5 for every y_weight: "
                         + "; ".join(f"y_weight={r.y_weight:g}: {r.accuracy:.2f} (worst class "
                                     f"{r.worst_class_accuracy:.2f})" for r in at.itertuples())))
    return out
