"""Latent interpolation between real test images (Kingma & Dhariwal 2018, Sec. 5, Fig. 5) and the check that the
decoded endpoints are the real images. The logic of ``notebooks/interpolation.py``."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis import image_grid, interpolate, to_uint8
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.stats import Decision
from ..data import load_dataset, to_float
from ..training import seeded
from .base import CONFIRMED, CONTRADICTED, SEED, Experiment, available_dataset, int_in, shared_runs
from .base import device, publish, shared_model, show  # noqa: F401  (the notebook calls them here)
from .base import auto_or, check_values, with_figure_dataset

NOTEBOOK = "interpolation"
PARAMETERS = {**SEED, "dataset": auto_or(available_dataset), "n_pairs": int_in(1, 64), "n_points": int_in(2, 64)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**with_figure_dataset(check_values(NOTEBOOK, PARAMETERS, params)))


def runs(profile: str) -> list:
    return shared_runs(profile)                     # the shared Glow (``base.shared_model``)


def test_pairs(dataset: str, n_pairs: int, seed: int):
    """``n_pairs`` seeded pairs of distinct test images: (x_a, x_b, index_a, index_b)."""
    test = load_dataset(dataset).test_images
    order = torch.randperm(len(test), generator=seeded(seed, 7))[:2 * n_pairs]
    return test[order[:n_pairs]], test[order[n_pairs:]], order[:n_pairs], order[n_pairs:]


def interpolation(model, x_a, x_b, index_a, index_b, n_points: int) -> Experiment:
    """Latent interpolation between real test images (Sec. 5, Fig. 5). Tables: ``interpolation`` (one row per pair
    and point: mean absolute pixel difference to each endpoint image) and ``reconstruction`` (one row per pair: the
    endpoints' decoded pixels that differ from the real images at the model's bit depth, and the largest decode
    error on the [-0.5, 0.5] scale over all pairs)."""
    path, max_error = interpolate(model, x_a, x_b, n_points)       # (P, n_points, C, H, W)
    n_bits = model.config.n_bits
    a, b = (to_uint8(to_float(x, n_bits), n_bits) for x in (x_a, x_b))   # the real images at the model's bits
    rows, recon = [], []
    for p in range(len(path)):
        for k, t in enumerate(np.linspace(0, 1, n_points)):
            rows.append({"pair": p, "t": t, "index_a": int(index_a[p]), "index_b": int(index_b[p]),
                         "mean_abs_diff_to_a": (path[p, k].double() - a[p].double()).abs().mean().item(),
                         "mean_abs_diff_to_b": (path[p, k].double() - b[p].double()).abs().mean().item()})
        recon.append({"pair": p, "pixels_differing_a": int((path[p, 0] != a[p]).sum()),
                      "pixels_differing_b": int((path[p, -1] != b[p]).sum()), "max_abs_error_all_pairs": max_error,
                      "half_bin": 0.5 / 2 ** n_bits})
    return Experiment({"interpolation": pd.DataFrame(rows), "reconstruction": pd.DataFrame(recon)},
                      images={"interpolation": path})


def path_grid(x_a: torch.Tensor, path: torch.Tensor, x_b: torch.Tensor):
    """One row per pair: the real image a, the decoded path from z_a to z_b, the real image b (uint8 grid)."""
    return image_grid(torch.cat([x_a[:, None], path, x_b[:, None]], 1).flatten(0, 1), nrow=path.shape[1] + 2)


def path_steps(x_a: torch.Tensor, path: torch.Tensor, x_b: torch.Tensor) -> dict[float, np.ndarray]:
    """The path point by point, for the page's explorer: {t: the grid of every pair's real image a, its decoded
    image at t, its real image b}, t evenly spaced from 0 (z_a) to 1 (z_b) as in :func:`interpolation`."""
    return {float(t): path_grid(x_a, path[:, k:k + 1], x_b) for k, t in enumerate(np.linspace(0, 1, path.shape[1]))}


def plot_distance_along_path(table: pd.DataFrame):
    """Mean absolute pixel difference of each decoded point to the real images a and b, ± std over pairs."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for column, label in (("mean_abs_diff_to_a", "to image a"), ("mean_abs_diff_to_b", "to image b")):
        stats = table.groupby("t")[column].agg(["mean", "std"])
        ax.errorbar(stats.index, stats["mean"], stats["std"], marker="o", capsize=3, label=label)
    ax.set(xlabel="t (0: z_a, 1: z_b)", ylabel="mean |pixel difference|")
    ax.legend()
    return fig


def page_values(recon: pd.DataFrame) -> dict:
    """The numbers the page quotes and its claim rests on, from the reconstruction table."""
    return {"largest_error": float(recon.max_abs_error_all_pairs.max()), "half_bin": float(recon.half_bin.iloc[0]),
            "pixels_differing": int(recon.pixels_differing_a.sum() + recon.pixels_differing_b.sum()),
            "pairs": len(recon)}


# ---------------------------------------------------------------------------------------------------- claims
def decide_exact(results: Results) -> Outcome:
    """Fig. 5's premise, a property: one endpoint pixel decoded into another bin contradicts it."""
    v = page_values(results.table(NOTEBOOK, "reconstruction"))
    exact = v["largest_error"] < v["half_bin"] and v["pixels_differing"] == 0
    return Outcome(Decision(CONFIRMED if exact else CONTRADICTED), v, "reconstruction.csv")


CLAIMS = (
    ClaimSpec("interpolation.exact_reconstruction",
              "Encoding and decoding are exact, so interpolations start and end at the real images (Sec. 5, Fig. 5)",
              "paper", decide_exact),
)
