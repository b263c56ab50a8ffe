"""Samples of every model of the bits/dim table at each temperature (Kingma & Dhariwal 2018, Sec. 5; the
reviewers asked for the baselines' samples too), with pixel statistics per grid, each model's sanity gates, and
precision, recall and Fréchet distance against a random class-balanced real reference beside the real-vs-real
baseline of each dataset. The logic of ``notebooks/samples.py``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis import REAL_VS_REAL, check_gates, failed_gates_of, image_grid, real_halves
from ..analysis import sample_quality, samples
from ..analysis.claims import ClaimSpec, Outcome, Results, not_testable
from ..analysis.judging import nearest_temperature
from ..analysis.stats import Decision
from ..data import load_dataset
from .base import (CONFIRMED, NOT_TESTABLE, SEED, TABLE_MODELS, Experiment, cached_model, choice, datasets_or_auto,
                   int_in, list_of, number_in, quality_run, table_models, table_run, table_runs)
from .base import device  # noqa: F401  (the notebook calls it through this module)
from .base import check_values, measuring_classifier

NOTEBOOK = "samples"
PARAMETERS = {**SEED, "datasets": datasets_or_auto, "model_types": list_of(choice(TABLE_MODELS)),
              "temperatures": list_of(number_in(0.0)), "n_samples": int_in(1, 400), "n_measure": int_in(4)}
MEASURES = ("precision", "recall", "frechet")
# the label of the longer Glow run that a profile's figures share (``base.quality_run``), shown beside the
# table's rows: at cpu the table's rows are short runs judged by likelihood, and this is the model whose samples
# the paper's figures use
QUALITY = "glow (quality run)"
QUALITY_SLUG = "glow-quality"          # in its grids' file names and its model name, glow-quality-<dataset>


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``datasets="auto"`` becomes the table's."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """The bits/dim table's models (``base.table_runs``): a grid of each."""
    return table_runs(profile)


def sample_models(profile: str, dataset: str, model_types) -> list[tuple]:
    """(label, file slug, RunConfig) of each model whose samples the page shows for ``dataset``: the bits/dim
    table's rows among ``model_types``, then the dataset's longer Glow run where the profile has one."""
    out = [(m, m, table_run(profile, dataset, m)) for m in model_types if m in table_models(profile, dataset)]
    longer = quality_run(profile, dataset) if "glow" in model_types else None
    return out + ([(QUALITY, QUALITY_SLUG, longer)] if longer is not None else [])


def sample_grids(profile: str, datasets, model_types, temperatures, n: int, seed: int,
                 n_measure: int = 500) -> Experiment:
    """Sample grids of each model of the bits/dim table at each temperature (uint8 grids in ``images``), and the
    measures that say what they show. Rows of :data:`TABLE_MODELS` that the profile does not train for a dataset
    (:func:`table_models`) are left out; the dataset's longer Glow run (``base.quality_run``), where the
    profile has one, is shown beside them as :data:`QUALITY` (name ``glow-quality-<dataset>``). Every row gives
    its model's training steps.

    Tables: ``samples`` (one row per grid: mean and spread of the pixel values, the fraction of clipped pixels);
    ``quality`` (one row per model and T: ``analysis.sample_quality`` of ``n_measure`` samples (the grid's are
    the first of them; the non-finite draws redrawn are counted over all ``n_drawn``) against a seeded random
    class-balanced draw of the dataset's real test images, plus one real-vs-real row per dataset: a disjoint draw
    of the same size against the same reference; ``n_measure`` is
    capped at half the test split); ``gates`` (the sanity gates of every model, ``analysis.check_gates``).
    """
    rows, quality, gates, images, models = [], [], [], {}, {}
    for dataset in datasets:
        present = sample_models(profile, dataset, model_types)
        if not present:
            continue
        data = load_dataset(dataset)
        classifier = measuring_classifier(profile, dataset)
        size = min(n_measure, len(data.test_images) // 2)
        reference, held = real_halves(data.test_images, data.test_labels, size, seed)
        quality.append({"dataset": dataset, "source": REAL_VS_REAL, "model_type": "", "temperature": math.nan,
                        **sample_quality(classifier, held, reference), "n": size})
        for model_type, slug, run in present:
            tm = cached_model(run)
            name = f"{slug}-{dataset}"
            models[name] = tm
            gates += check_gates(name, tm.model, classifier, reference, size, seed, held=held,
                                 temperatures=[nearest_temperature(temperatures, SHOWN_T)])[0]
            for t in temperatures:
                counts = {}
                drawn = samples(tm.model, max(n, size), t, seed, counts=counts)
                x = drawn[:n]
                grid = f"samples_{dataset}_{slug}_T{t:g}"
                images[grid] = image_grid(x, nrow=math.ceil(math.sqrt(n)))
                values = x.double() / 255
                rows.append({"dataset": dataset, "model_type": model_type, "steps": run.train.steps,
                             "temperature": t, "n": n,
                             "pixel_mean": values.mean().item(), "pixel_std": values.std().item(),
                             "clipped_fraction": ((x == 0) | (x == 255)).double().mean().item(),
                             "image": f"{grid}.png"})
                quality.append({"dataset": dataset, "source": "model", "model_type": model_type,
                                "steps": run.train.steps, "temperature": t,
                                **sample_quality(classifier, drawn[:size], reference), "n": size,
                                "n_drawn": len(drawn), **counts})
    return Experiment({"samples": pd.DataFrame(rows), "quality": pd.DataFrame(quality), "gates": pd.DataFrame(gates)},
                      models, images)


def quality_table(quality: pd.DataFrame) -> pd.DataFrame:
    """The ``quality`` table as the page shows it: one row per dataset, model and T, with the dataset's
    real-vs-real value beside each measure."""
    real = quality[quality.source == REAL_VS_REAL].set_index("dataset")
    model = quality[quality.source == "model"]
    out = model[["dataset", "model_type"] + (["steps"] if "steps" in model else []) + ["temperature"]].copy()
    for m in MEASURES:
        out[m] = model[m].to_numpy()
        out[f"{m}_real_vs_real"] = real.loc[model.dataset, m].to_numpy()
    return out.reset_index(drop=True)


def plot_grids(images: dict, table: pd.DataFrame, rows: str, cols, ncol: int = 4):
    """A panel per grid, grouped by ``rows``: each value of ``rows`` starts a row of its own and fills as many
    rows of ``ncol`` panels as its grids need, one panel per combination of ``cols`` in the table's order, each
    titled by its value of ``rows`` and of each of ``cols`` (one a line). As wide as the book's column
    (``base.COLUMN_INCHES``, sized as ``base.plot_named_grids`` sizes its panels)."""
    import matplotlib.pyplot as plt
    from .base import COLUMN_INCHES
    groups = {key: [r for r in table.itertuples() if getattr(r, rows) == key] for key in dict.fromkeys(table[rows])}
    ncol = min(ncol, max(map(len, groups.values())))
    starts = np.cumsum([0] + [math.ceil(len(g) / ncol) for g in groups.values()])   # each group's first row
    side = min(2.8, COLUMN_INCHES / ncol)
    fig, axes = plt.subplots(starts[-1], ncol, figsize=(side * ncol, (side + 0.5) * starts[-1]), squeeze=False,
                             layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)             # room between the titles of neighbouring panels
    for start, (key, group) in zip(starts, groups.items()):
        for k, r in enumerate(group):
            ax = axes[start + k // ncol, k % ncol]
            grid = images[r.image.removesuffix(".png")]
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title("\n".join([str(key)] + [f"{c}={getattr(r, c)}" for c in cols]), fontsize="small")
    for ax in axes.flat:
        ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------------- claims
SHOWN_T = 0.7                  # the temperature whose measures the claim's numbers give (the paper's figures)


def decide_baselines(results: Results) -> Outcome:
    """Every row of the bits/dim table has sample grids (else not testable), and the samples are judged on the
    models that pass the sanity gates: confirmed where at least one dataset's rows, the baselines with Glow, all
    pass every gate (each model gated on draws of the gate seed stream, ``analysis.judging.check_gates``, never the
    draws the grids and measures use), so that the baselines' samples there are shown beside Glow's and measured
    against real images; not testable, naming the failed gates, where no dataset's rows all pass. A row that fails
    a gate is counted and named in the numbers' table (its grid is shown, its measures are not judged). The numbers:
    each judged model's precision, recall and Fréchet distance at the temperature nearest :data:`SHOWN_T`, beside the
    real-vs-real baseline, the rows failing a gate, and whether the longer Glow runs pass."""
    s = results.table(NOTEBOOK, "samples")
    t = results.table("bpd_table", "bpd")
    gates = results.table(NOTEBOOK, "gates")
    q = quality_table(results.table(NOTEBOOK, "quality"))
    needed = set(map(tuple, t[["dataset", "model_type"]].values))
    shown = set(map(tuple, s[["dataset", "model_type"]].values))
    if needed - shown:
        return not_testable("a row of the bits/dim table has no samples: run the samples notebook with every model")
    failed = {(d, m): failed_gates_of(gates, [m + "-" + d]) for d, m in sorted(needed)}
    # a dataset is judged when its rows include a baseline (a row other than Glow) and every one passes its gates
    judged = sorted(d for d in {d for d, m in needed if m != "glow"}
                    if not any(failed[d, m] for dd, m in needed if dd == d))
    longer = sorted(set(gates.model[gates.model.str.startswith(QUALITY_SLUG + "-")]))
    numbers = {"rows with grids": len(needed), "rows failing a gate": sum(bool(f) for f in failed.values()),
               "datasets judged": len(judged), "longer runs failing a gate": len(failed_gates_of(gates, longer))}
    if len(q):
        at = q[q.temperature == q.temperature[(q.temperature - SHOWN_T).abs().idxmin()]]
        for r in at.itertuples():
            if r.dataset in judged and (r.dataset, r.model_type) in needed:
                for m in MEASURES:
                    numbers[" ".join((r.model_type, r.dataset, m))] = getattr(r, m)
                    numbers[" ".join((r.dataset, m, "real vs real"))] = getattr(r, m + "_real_vs_real")
    if not judged:
        return Outcome(Decision(NOT_TESTABLE, gate="; ".join(g for f in failed.values() for g in f),
                                reason="a sanity gate failed on every dataset"), numbers, "gates.csv")
    return Outcome(Decision(CONFIRMED), numbers, "gates.csv + quality.csv: judged on " + ", ".join(judged))


CLAIMS = (
    ClaimSpec("samples.baselines_sampled",
              "Samples from the baselines too, for every dataset with a number in a table (reviewers)", "reviewers",
              decide_baselines, reads=("bpd_table",)),
)
