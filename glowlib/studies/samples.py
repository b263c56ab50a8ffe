"""Samples of every model of the bits/dim table at each temperature (Kingma & Dhariwal 2018, Sec. 5; the
reviewers asked for the baselines' samples too), with pixel statistics per grid. The logic of
``notebooks/samples.py``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from ..analysis import image_grid, samples
from ..results import read_table
from .base import (CONFIRMED, NOT_CONFIRMED, SEED, Claim, Experiment, cached_model, choice, int_in, list_of, need,
                   number_in)
from .base import device  # noqa: F401  (the notebook calls it through this module)
from .base import check_values
from .bpd_table import TABLE_MODELS, datasets_or_auto, table_models, table_run
from .bpd_table import runs as table_runs

NOTEBOOK = "samples"
PARAMETERS = {**SEED, "datasets": datasets_or_auto, "model_types": list_of(choice(TABLE_MODELS)),
              "temperatures": list_of(number_in(0.0)), "n_samples": int_in(1, 400)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``datasets="auto"`` becomes the table's."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """The bits/dim table's models (``bpd_table.runs``): a grid of each."""
    return table_runs(profile)


def sample_grids(profile: str, datasets, model_types, temperatures, n: int, seed: int) -> Experiment:
    """Sample grids of each model of the bits/dim table at each temperature (uint8 grids in ``images``), and a
    table with one row per grid (mean and spread of the pixel values, the fraction of clipped pixels). Rows of
    :data:`TABLE_MODELS` that the profile does not train for a dataset (:func:`table_models`) are left out."""
    rows, images, models = [], {}, {}
    for dataset in datasets:
        for model_type in (m for m in model_types if m in table_models(profile, dataset)):
            tm = cached_model(table_run(profile, dataset, model_type))
            models[f"{model_type}-{dataset}"] = tm
            for t in temperatures:
                counts = {"nonfinite_redrawn": 0}
                x = samples(tm.model, n, t, seed, counts=counts)
                name = f"samples_{dataset}_{model_type}_T{t:g}"
                images[name] = image_grid(x, nrow=math.ceil(math.sqrt(n)))
                values = x.double() / 255
                rows.append({"dataset": dataset, "model_type": model_type, "temperature": t, "n": n,
                             "pixel_mean": values.mean().item(), "pixel_std": values.std().item(),
                             "clipped_fraction": ((x == 0) | (x == 255)).double().mean().item(),
                             **counts, "image": f"{name}.png"})
    return Experiment({"samples": pd.DataFrame(rows)}, models, images)


def plot_grids(images: dict, table: pd.DataFrame, rows: str, cols):
    """A panel per grid: one row per value of ``rows``, one column per combination of ``cols``."""
    import matplotlib.pyplot as plt
    row_keys = list(dict.fromkeys(table[rows]))
    col_keys = list(dict.fromkeys(map(tuple, table[list(cols)].values)))
    fig, axes = plt.subplots(len(row_keys), len(col_keys), figsize=(2.6 * len(col_keys), 2.8 * len(row_keys)),
                             squeeze=False)
    for r in table.itertuples():
        i = row_keys.index(getattr(r, rows))
        j = col_keys.index(tuple(getattr(r, c) for c in cols))
        grid = images[r.image.removesuffix(".png")]
        axes[i, j].imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
        axes[i, j].set_title(f"{getattr(r, rows)}\n" + ", ".join(f"{c}={getattr(r, c)}" for c in cols),
                             fontsize="small")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """The reviewers' request for the baselines' samples: every row of the bits/dim table has sample grids."""
    claim = "Samples from the baselines too, for every dataset with a number in a table (reviewers)"
    missing = need(profile, root, "samples", "bpd_table")
    if missing:
        return [Claim(claim, "review", "samples", missing.verdict, missing.evidence)]
    s = read_table(profile, "samples", "samples", root)
    t = read_table(profile, "bpd_table", "bpd", root)
    needed = set(map(tuple, t[["dataset", "model_type"]].values))
    shown = set(map(tuple, s[["dataset", "model_type"]].values))
    lacking = sorted(needed - shown)
    return [Claim(claim, "review", "samples", CONFIRMED if not lacking else NOT_CONFIRMED,
                  f"{len(needed & shown)} of {len(needed)} (dataset, model) rows of the bits/dim table have "
                  f"sample grids, at T = {sorted(set(s.temperature))}" + (f"; missing: {lacking}" if lacking else ""))]
