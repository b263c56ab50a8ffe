"""The memorisation check the reviewers asked for: the nearest training image of each generated sample and of each
held-out test image, in pixel space and in the measuring classifier's feature space; and the shared model's train
and test curves. The logic of ``notebooks/nearest_neighbours.py``."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis import check_gates, failed_gates_of, image_grid, nearest_neighbours, reference_set
from ..analysis import samples
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.judging import SAMPLING_SEEDS_T, decide_non_inferior, decision_columns, table_outcome
from ..training import prepare_splits
from .base import SEED, Experiment, available_dataset, device, int_in, number_in, shared_runs, show
from .base import classifier_provenance, curves, measuring_classifier, plot_splits, shared_model  # noqa: F401
from .base import auto_or, check_values, notebook_dataset, with_figure_dataset

NOTEBOOK = "nearest_neighbours"
PARAMETERS = {**SEED, "dataset": auto_or(available_dataset), "temperature": number_in(0.0), "n_samples": int_in(4),
              "n_sampling_seeds": int_in(1), "n_show": int_in(1, 64)}
SPACES = ("pixel", "feature")
# samples count as no closer to the training set than unseen test images when the ratio of their median
# nearest-training-image distances is above 1 - MARGIN (a copying model puts its samples at distance ~0)
MARGIN = 0.1


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    return SimpleNamespace(**with_figure_dataset(values, notebook_dataset(values["profile"], NOTEBOOK)))


def runs(profile: str) -> list:
    """The shared Glow of the notebook's dataset (``base.notebook_dataset``)."""
    return shared_runs(profile, notebook_dataset(profile, NOTEBOOK))


def nearest_neighbour_check(model, run, temperature: float, n: int, n_sampling_seeds: int, seed: int, *,
                            classifier) -> Experiment:
    """Memorisation check the reviewers asked for: the nearest training image of each generated sample and of each
    held-out test image, in pixel space and in the feature space of ``classifier`` (the profile's measuring
    classifier of the run's dataset: ``base.measuring_classifier``). Samples no closer to the training
    set than unseen test images are no sign of copying.

    Replicate r (sampling seed ``seed + r``) draws n samples and a seeded random class-balanced draw of n test
    images (``analysis.reference_set``; n is capped at the test split's size, and where the split has no more
    than n images every replicate's draw is the whole split, so only the samples vary between replicates); the
    test images' distances are the real baseline beside the samples'. Tables: ``neighbours`` (one row per query image and space, first
    replicate), ``summary`` (one row per space and replicate: the medians and their ratio), ``gates`` (the
    model's sanity gates) and ``decision`` (:func:`decisions`). Images: the first replicate's samples, the
    training set and the neighbour indices, for the side-by-side figure.
    """
    splits = prepare_splits(run)
    n = min(n, len(splits.test_x))
    gates, _ = check_gates(f"glow-{run.data.dataset}", model, classifier,
                           reference_set(splits.test_x, splits.test_y, n, seed), n, seed, temperatures=[temperature])
    rows, summary, index, shown = [], [], {}, None
    for r in range(n_sampling_seeds):
        generated = samples(model, n, temperature, seed + r)
        test = reference_set(splits.test_x, splits.test_y, n, seed + r)
        shown = generated if r == 0 else shown
        for space in SPACES:
            found = {kind: nearest_neighbours(queries, splits.train_x, space, classifier=classifier)
                     for kind, queries in (("sample", generated), ("test", test))}
            dist = {kind: d[:, 0] for kind, (d, _) in found.items()}
            if r == 0:
                for kind, (d, idx) in found.items():
                    index[(kind, space)] = idx[:, 0]
                    rows += [{"query": kind, "space": space, "query_index": i, "distance": float(a),
                              "train_index": int(j)} for i, (a, j) in enumerate(zip(d[:, 0], idx[:, 0]))]
            s, t = float(np.median(dist["sample"])), float(np.median(dist["test"]))
            summary.append({"space": space, "sampling_seed": seed + r, "median_sample_to_train": s,
                            "median_test_to_train": t, "ratio": s / t,
                            "fraction_samples_closer_than_min_test":
                                float((dist["sample"] < dist["test"].min()).mean()),
                            "n": n, "temperature": temperature})
    summary, gates = pd.DataFrame(summary), pd.DataFrame(gates)
    return Experiment({"neighbours": pd.DataFrame(rows), "summary": summary, "gates": gates,
                       "decision": decisions(summary, gates)},
                      images={"samples": shown, "train": splits.train_x, "index": index})


def decisions(summary: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """Per space, the ratio median(sample → train) / median(test → train) against 1, over the replicates
    (sampling seeds, each with its own test draw, the same draw where the test split is no larger than it):
    non-inferiority with margin :data:`MARGIN`, i.e. confirmed
    when the samples are not closer to the training set than test images by more than 10%, contradicted when the
    whole interval says they are. A failed sanity gate makes it not testable."""
    failed = failed_gates_of(gates)
    rows = []
    for space in SPACES:
        part = summary[summary.space == space]
        d = decide_non_inferior(part.ratio.to_numpy(float), np.ones(len(part)), MARGIN, failed, SAMPLING_SEEDS_T)
        rows.append({"space": space, "mean_ratio": part.ratio.mean(), **decision_columns(d)})
    return pd.DataFrame(rows)


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
    """Histograms of the distances to the nearest training image, of samples and of real test images, a panel per
    space, two a row, as wide as the book's column (``base.COLUMN_INCHES``); one legend under the panels, where it
    covers no bar."""
    import matplotlib.pyplot as plt
    from .base import COLUMN_INCHES
    spaces = list(dict.fromkeys(table.space))
    ncol = min(2, len(spaces))
    nrow = -(-len(spaces) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES * ncol / 2, 3.0 * nrow + 0.5), squeeze=False,
                             layout="constrained")
    for ax in list(axes.flat)[len(spaces):]:
        ax.set_visible(False)
    for ax, space in zip(axes.flat, spaces):
        part = table[table.space == space]
        bins = np.histogram_bin_edges(part.distance, bins=30)
        for i, (kind, label) in enumerate((("sample", "generated sample → train"),
                                           ("test", "real test image → train (baseline)"))):
            ax.hist(part[part["query"] == kind].distance, bins=bins, alpha=0.5, label=label, color=f"C{i}")
        ax.set(title=f"{space} space", xlabel="distance to the nearest\ntraining image", ylabel="images")
    fig.suptitle("Nearest-neighbour distances to the training set")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), fontsize="small", loc="outside lower center", ncol=2)
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def decide_not_copies(results: Results) -> Outcome:
    """The reviewers' memorisation question, from :func:`decisions`: in both spaces, samples no closer to the
    training set than unseen test images (ratio of medians over sampling seeds, non-inferiority); not testable
    when a gate fails."""
    summary = results.table(NOTEBOOK, "summary")
    table = decisions(summary, results.table(NOTEBOOK, "gates"))
    medians = summary.groupby("space")[["median_sample_to_train", "median_test_to_train"]].mean()
    return table_outcome(table.join(medians, on="space"), "space",
                         ("mean_ratio", "median_sample_to_train", "median_test_to_train"))


CLAIMS = (
    ClaimSpec("nearest_neighbours.not_copies",
              "Samples are not copies of training images: nearest-neighbour check in pixel and feature space "
              "(reviewers)", "reviewers", decide_not_copies),
)
