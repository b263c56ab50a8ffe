"""The memorisation check the reviewers asked for: the nearest training image of each generated sample and of each
held-out test image, in pixel space and in the measuring classifier's feature space; and the shared model's train
and test curves. The logic of ``notebooks/nearest_neighbours.py``."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis import cached_classifier, image_grid, nearest_neighbours, samples
from ..results import read_table
from ..training import prepare_splits
from .base import (CONFIRMED, NOT_CONFIRMED, SEED, Claim, Experiment, available_dataset, device, int_in, need,
                   number_in, shared_runs, show)
from .base import classifier_provenance, curves, plot_splits, shared_model  # noqa: F401  (for the notebook)
from .base import check_values

NOTEBOOK = "nearest_neighbours"
PARAMETERS = {**SEED, "dataset": available_dataset, "temperature": number_in(0.0), "n_samples": int_in(2),
              "n_show": int_in(1, 64)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """The shared Glow (``base.shared_model``)."""
    return shared_runs(profile)


def nearest_neighbour_check(model, run, temperature: float, n: int, seed: int) -> Experiment:
    """Memorisation check the reviewers asked for: the nearest training image of each generated sample and of each
    held-out test image, in pixel space and in the classifier's feature space. Samples no closer to the training
    set than unseen test images are means no sign of copying.

    Tables: ``neighbours`` (one row per query image and space) and ``summary`` (one row per space).
    Images: the samples, the training set and the neighbour indices, for the side-by-side figure.
    """
    splits = prepare_splits(run)
    classifier = cached_classifier(run.data.dataset, device=device())
    generated = samples(model, n, temperature, seed)
    test = splits.test_x[:n]
    rows, summary, index = [], [], {}
    for space in ("pixel", "feature"):
        for kind, queries in (("sample", generated), ("test", test)):
            dist, idx = nearest_neighbours(queries, splits.train_x, space, classifier=classifier)
            index[(kind, space)] = idx[:, 0]
            rows += [{"query": kind, "space": space, "query_index": i, "distance": float(d), "train_index": int(j)}
                     for i, (d, j) in enumerate(zip(dist[:, 0], idx[:, 0]))]
        part = pd.DataFrame([r for r in rows if r["space"] == space])
        s, t = part[part["query"] == "sample"].distance, part[part["query"] == "test"].distance
        summary.append({"space": space, "median_sample_to_train": s.median(), "median_test_to_train": t.median(),
                        "fraction_samples_closer_than_min_test": float((s < t.min()).mean()),
                        "n": len(s), "temperature": temperature})
    return Experiment({"neighbours": pd.DataFrame(rows), "summary": pd.DataFrame(summary)},
                      images={"samples": generated, "train": splits.train_x, "index": index})


def neighbour_figure(images: dict, n_show: int):
    """Each sample beside its nearest training image in pixel space and in feature space."""
    s = images["samples"][:n_show]
    train = images["train"]
    columns = [s, train[images["index"][("sample", "pixel")][:n_show]],
               train[images["index"][("sample", "feature")][:n_show]]]
    stacked = torch.stack(columns, 1).flatten(0, 1)                  # (n_show * 3, C, H, W), row-wise
    return show(image_grid(stacked, nrow=3, pad=2),
                "sample | nearest training image: pixels | classifier features", zoom=3)


def plot_distances(table: pd.DataFrame):
    import matplotlib.pyplot as plt
    spaces = list(dict.fromkeys(table.space))
    fig, axes = plt.subplots(1, len(spaces), figsize=(5 * len(spaces), 3.4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        part = table[table.space == space]
        bins = np.histogram_bin_edges(part.distance, bins=30)
        for kind, label in (("sample", "generated sample → train"), ("test", "test image → train")):
            ax.hist(part[part["query"] == kind].distance, bins=bins, alpha=0.5, label=label)
        ax.set(title=f"{space} space", xlabel="distance to the nearest training image", ylabel="images")
        ax.legend(fontsize="small")
    fig.suptitle("Nearest-neighbour distances to the training set")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """The reviewers' memorisation question, from the distance summary."""
    claim = "Samples are not copies of training images: nearest-neighbour check in pixel and feature space (reviewers)"
    missing = need(profile, root, "nearest_neighbours")
    if missing:
        return [Claim(claim, "review", "nearest_neighbours", missing.verdict, missing.evidence)]
    s = read_table(profile, "nearest_neighbours", "summary", root)
    ok = bool((s.median_sample_to_train >= s.median_test_to_train).all())
    detail = "; ".join(f"{r.space}: median sample→train {r.median_sample_to_train:.3f} vs test→train "
                       f"{r.median_test_to_train:.3f}, {r.fraction_samples_closer_than_min_test:.1%} of samples closer "
                       f"than any test image" for r in s.itertuples())
    return [Claim(claim, "review", "nearest_neighbours", CONFIRMED if ok else NOT_CONFIRMED,
                  f"Confirmed when generated samples are no closer to the training set than unseen test images "
                  f"are, in both spaces. {detail}")]
