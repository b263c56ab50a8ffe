"""Latent interpolation between real test images (Kingma & Dhariwal 2018, Sec. 5, Fig. 5) and the
exact-reconstruction check: the decoded endpoints must be the real images. The logic of
``notebooks/interpolation.py``."""
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
from .base import device, shared_model, show  # noqa: F401  (the notebook calls them through this module)
from .base import check_values

NOTEBOOK = "interpolation"
PARAMETERS = {**SEED, "dataset": available_dataset, "n_pairs": int_in(1, 64), "n_points": int_in(2, 64)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """The shared Glow (``base.shared_model``)."""
    return shared_runs(profile)


def test_pairs(dataset: str, n_pairs: int, seed: int):
    """``n_pairs`` seeded pairs of distinct test images: (x_a, x_b, index_a, index_b)."""
    test = load_dataset(dataset).test_images
    order = torch.randperm(len(test), generator=seeded(seed, 7))[:2 * n_pairs]
    ia, ib = order[:n_pairs], order[n_pairs:]
    return test[ia], test[ib], ia, ib


def interpolation(model, x_a, x_b, index_a, index_b, n_points: int) -> Experiment:
    """Latent interpolation between real test images (Sec. 5, Fig. 5) and the exact-reconstruction check.

    Tables: ``interpolation`` (one row per pair and point: mean absolute pixel difference to each endpoint image)
    and ``reconstruction`` (one row per pair: the endpoints' decoded pixels that differ from the real images at the
    model's bit depth, and the largest decode error on the [-0.5, 0.5] scale over all pairs).
    """
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
    n_points = path.shape[1]
    return image_grid(torch.cat([x_a[:, None], path, x_b[:, None]], 1).flatten(0, 1), nrow=n_points + 2)


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


# ---------------------------------------------------------------------------------------------------- claims
def decide_exact(results: Results) -> Outcome:
    """Fig. 5's premise, from the reconstruction table: decoded endpoints are the real images. Exactness is a
    property, not a comparison: one endpoint pixel decoded into another bin contradicts it."""
    r = results.table(NOTEBOOK, "reconstruction")
    err, half = r.max_abs_error_all_pairs.max(), r.half_bin.iloc[0]
    differing = int(r.pixels_differing_a.sum() + r.pixels_differing_b.sum())
    verdict = CONFIRMED if err < half and differing == 0 else CONTRADICTED
    return Outcome(Decision(verdict), {"largest decode error": err, "half bin": half, "pixels differing": differing,
                                       "pairs": len(r)}, "reconstruction.csv")


CLAIMS = (
    ClaimSpec("interpolation.exact_reconstruction",
              "Encoding and decoding are exact, so interpolations start and end at the real images (Sec. 5, Fig. 5)",
              "paper", decide_exact),
)
