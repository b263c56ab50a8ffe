"""Temperature (Kingma & Dhariwal 2018, Sec. 5, Fig. 8, made quantitative): sample grids of the shared Glow at each
temperature T, and sample quality against diversity measured by a classifier of the real training images. The
logic of ``notebooks/temperature.py``."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis import cached_classifier, image_grid, sample_quality, samples, temperature_samples_table
from ..data import load_dataset
from ..results import read_table
from .base import (CONFIRMED, NOT_CONFIRMED, SEED, Claim, Experiment, available_dataset, device, int_in, list_of,
                   need, number_in, shared_runs)
from .base import classifier_provenance, plot_named_grids, shared_model, show  # noqa: F401  (for the notebook)
from .base import check_values

NOTEBOOK = "temperature"
PARAMETERS = {**SEED, "dataset": available_dataset, "temperatures": list_of(number_in(0.0)),
              "temperature": number_in(0.0), "n_samples": int_in(2), "n_grid": int_in(1, 400)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); the highlighted ``temperature`` joins
    ``temperatures`` if it is not among them."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    if values["temperature"] not in values["temperatures"]:
        values["temperatures"] = sorted(values["temperatures"] + [values["temperature"]])
    return SimpleNamespace(**values)


def runs(profile: str) -> list:
    """The shared Glow (``base.shared_model``)."""
    return shared_runs(profile)


def sample_grids(model, temperatures, n: int, seed: int, nrow: int = 6) -> dict:
    """{T: uint8 grid of n samples at T}, every T with the same seed: each grid scales the same standard-normal
    draws by T."""
    return {t: image_grid(samples(model, n, t, seed), nrow=nrow) for t in temperatures}


def temperature_table(model, dataset: str, temperatures, n: int, seed: int) -> Experiment:
    """Sample quality and diversity against temperature (Sec. 5, Fig. 8 made quantitative), from a classifier
    of the real training images, plus the same measures for real test images (the reference row)."""
    classifier = cached_classifier(dataset, device=device())
    test = load_dataset(dataset).test_images
    reference, held = test[: len(test) // 2], test[len(test) // 2:]
    table = temperature_samples_table(model, classifier, reference, temperatures, n, seed)
    table.insert(0, "source", "model")
    real = {"source": "real test images", "temperature": np.nan,
            **sample_quality(classifier, held[:n], reference), "n": min(n, len(held))}
    table = pd.concat([table, pd.DataFrame([real])], ignore_index=True)
    table["classifier_test_accuracy"] = classifier.test_accuracy
    return Experiment({"temperature": table})


def plot_tradeoff(table: pd.DataFrame):
    """Quality (classifier confidence) against diversity (entropy of predicted classes), one point per T, and the
    Fréchet distance to real test images against T."""
    import matplotlib.pyplot as plt
    model, real = table[table.source == "model"], table[table.source != "model"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(model.class_entropy, model.confidence, marker="o")
    for r in model.itertuples():
        a.annotate(f"T={r.temperature:g}", (r.class_entropy, r.confidence), fontsize="small",
                   textcoords="offset points", xytext=(4, 4))
    a.scatter(real.class_entropy, real.confidence, marker="*", s=150, color="C3", label="real test images")
    a.set(xlabel="diversity: entropy of predicted classes (nats)", ylabel="quality: mean confidence")
    a.legend(fontsize="small")
    b.plot(model.temperature, model.frechet, marker="o")
    b.axhline(real.frechet.iloc[0], color="C3", ls="--", label="real test images")
    b.set(xlabel="temperature T", ylabel="Fréchet distance (classifier features)")
    b.legend(fontsize="small")
    fig.suptitle("Temperature trades diversity for quality")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """Fig. 8's claim, from the rank correlations of T with the classifier's confidence and class entropy.
    (Whether T-samples follow p(x)^(1/T²) is the temperature-validity study's claim.)"""
    claim = "Lowering the temperature (T ≈ 0.7) trades diversity for sample quality (Sec. 5, Fig. 8)"
    missing = need(profile, root, "temperature")
    if missing:
        return [Claim(claim, "paper", "temperature", missing.verdict, missing.evidence)]
    t = read_table(profile, "temperature", "temperature", root)
    m = t[t.source == "model"].sort_values("temperature")
    conf = m.temperature.corr(m.confidence, method="spearman")
    div = m.temperature.corr(m.class_entropy, method="spearman")
    ok = conf < 0 and div > 0
    return [Claim(claim, "paper", "temperature", CONFIRMED if ok else NOT_CONFIRMED,
                  f"Over T = {m.temperature.tolist()}: rank correlation of T with classifier confidence "
                  f"{conf:+.2f} (quality; the claim needs < 0) and with the entropy of predicted classes "
                  f"{div:+.2f} (diversity; needs > 0). Confirmed when both hold.")]
