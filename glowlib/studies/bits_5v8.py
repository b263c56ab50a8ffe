"""5-bit vs 8-bit (the reviewers: "are the good samples due to the model or to fewer bits?"): the same model
(``base.study_config``) trained on 5-bit and on 8-bit versions of the same images; bits/dim made comparable
across bit depths (:func:`bpd_at_more_bits`), samples judged by the temperature study's classifier measures, the
8-bit model's also shown at 5 bits. The logic of ``notebooks/bits_5v8.py``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import torch

from ..analysis import cached_classifier, image_grid, sample_quality, samples
from ..config import RunConfig, check_range
from ..results import read_table
from ..training import evaluate, prepare_splits
from .base import (CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE, SEED, Claim, Experiment, cached_model, device, int_in,
                   list_of, n_parameters, need, sampler_temperatures, study_config)
from .base import STUDY_DATASET, classifier_provenance, plot_named_grids  # noqa: F401  (for the notebook)
from .base import check_values

NOTEBOOK = "bits_5v8"
BIT_DEPTHS = (5, 8)                          # the paper's CelebA-HQ samples are 5-bit, its tables 8-bit
PARAMETERS = {**SEED, "bit_depths": list_of(int_in(1, 8)), "n_seeds": int_in(1), "temperatures": sampler_temperatures,
              "n_samples": int_in(2), "n_grid": int_in(1, 400)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def bits_config(profile: str, n_bits: int, seed: int = 0) -> RunConfig:
    """The study model trained on ``n_bits``-bit images (the same images, fewer bits: see ``data.to_float``)."""
    check_range("n_bits", n_bits, 1, 8)
    return study_config(profile, seed).override([f"data.n_bits={n_bits}"])


def runs(profile: str) -> list[RunConfig]:
    """The study model at each of :data:`BIT_DEPTHS`, seed 0."""
    return [bits_config(profile, b) for b in BIT_DEPTHS]


def bpd_at_more_bits(bpd, from_bits: int, to_bits: int):
    """Bits/dim of an n-bit model's density, as a model of the same images at m ≥ n bits: bpd_m = bpd_n + (m − n).

    Derivation. An n-bit image assigns each pixel one of 2^n bins; bits/dim is −log₂ P_n(x) / D (the objective's
    D·log n_bins term turns the dequantised density into this discrete probability). Each n-bit bin is the union
    of 2^(m−n) m-bit bins. Spreading each n-bit bin's probability uniformly over its sub-bins,
    P_m(x_m) = P_n(x_n) · 2^(−(m−n)·D), is an m-bit model, and −log₂ P_m / D = bpd_n + (m − n). For 5 → 8 bits:
    add 3. The other direction has no exact formula (merging bins sums probabilities); evaluating an m-bit
    model's continuous density with n-bit bins gives an upper bound instead (see :func:`bits_5v8`).
    Known answer: the uniform density on [−0.5, 0.5]^D has bpd_n = n, and n + (m − n) = m.
    """
    check_range("from_bits", from_bits, 1, 8)
    check_range("to_bits", to_bits, from_bits, 8)
    return bpd + (to_bits - from_bits)


def reduce_bits(images_uint8: torch.Tensor, n_bits: int) -> torch.Tensor:
    """uint8 images reduced to ``n_bits`` (low bits cleared), as ``to_uint8(to_float(x, n), n)``: how an n-bit
    model's samples and data are shown."""
    check_range("n_bits", n_bits, 1, 8)
    shift = 8 - n_bits
    return (images_uint8 >> shift) << shift


def bits_5v8(profile: str, bit_depths, n_seeds: int, temperatures, n_samples: int, n_grid: int,
             seed: int = 0) -> Experiment:
    """The same model trained at each bit depth (``bits_config``), for ``n_seeds`` seeds.

    Tables: ``bpd``: one row per model and *evaluation* bit depth: measured (the model's own depth, full test
    split), ``exact`` (a lower-bit model at a higher depth: :func:`bpd_at_more_bits` of its measured value) or
    ``upper bound`` (a higher-bit model's continuous density evaluated with the lower depth's bins and noise:
    E_u[log p] ≤ log ∫_bin p by Jensen, so bits/dim at least the true value). ``quality``: classifier measures
    (``analysis.sample_quality``) of each seed-``seed`` model's samples at each T, shown at its own depth and at
    every lower one, plus real test images at each depth. ``images``: sample grids.
    """
    bit_depths = sorted(set(bit_depths))
    rows, quality, images, models = [], [], {}, {}
    classifier = None
    for n_bits in bit_depths:
        for s in range(seed, seed + n_seeds):
            tm = cached_model(bits_config(profile, n_bits, s))
            models[f"{n_bits}bit-seed{s}"] = tm
            splits = prepare_splits(tm.run)
            measured, sem = evaluate(tm.model, splits.test_x, n_bits, tm.run.train.eval_batch, seed=s)
            for eval_bits in bit_depths:
                if eval_bits == n_bits:
                    value, method = measured, "measured"
                elif eval_bits > n_bits:
                    value, method = bpd_at_more_bits(measured, n_bits, eval_bits), "exact"
                else:
                    value, method = evaluate(tm.model, splits.test_x, eval_bits, tm.run.train.eval_batch,
                                             seed=s)[0], "upper bound"
                rows.append({"model_bits": n_bits, "seed": s, "eval_bits": eval_bits, "bpd": value,
                             "test_sem": sem, "method": method, "n_test": len(splits.test_x),
                             "n_parameters": n_parameters(tm.model), "wall_s": tm.summary["wall_s"]})
            if s != seed:
                continue
            if classifier is None:
                classifier = cached_classifier(tm.run.data.dataset, device=device())
                test = splits.test_x
                reference, held = test[: len(test) // 2], test[len(test) // 2:]
                for shown in bit_depths:
                    quality.append({"source": "real test images", "model_bits": math.nan, "shown_bits": shown,
                                    "temperature": math.nan, **sample_quality(classifier, reduce_bits(
                                        held[:n_samples], shown), reference), "n": min(n_samples, len(held))})
            for t in temperatures:
                counts = {"nonfinite_redrawn": 0}                  # draws whose decode overflowed, drawn again
                x = samples(tm.model, n_samples, t, seed, counts=counts)   # shown at the model's own bit depth
                images[f"samples_{n_bits}bit_T{t:g}"] = image_grid(x[:n_grid], nrow=math.ceil(math.sqrt(n_grid)))
                for shown in [b for b in bit_depths if b <= n_bits]:
                    quality.append({"source": "model", "model_bits": n_bits, "shown_bits": shown, "temperature": t,
                                    **sample_quality(classifier, reduce_bits(x, shown), reference), "n": n_samples,
                                    **counts})
    quality = pd.DataFrame(quality)
    quality["classifier_test_accuracy"] = classifier.test_accuracy
    return Experiment({"bpd": pd.DataFrame(rows), "quality": quality}, models, images)


def bits_table(bpd: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the ``bpd`` table as a matrix: one row per trained bit depth, one column per evaluation
    bit depth (``bpd@<m>bit``), with how each entry was obtained."""
    mean = bpd.groupby(["model_bits", "eval_bits"]).agg(bpd=("bpd", "mean"), method=("method", "first"),
                                                        n_seeds=("seed", "count")).reset_index()
    values = mean.pivot(index="model_bits", columns="eval_bits", values="bpd")
    methods = mean.pivot(index="model_bits", columns="eval_bits", values="method")
    out = pd.DataFrame({"model_bits": values.index})
    for m in values.columns:
        out[f"bpd@{m}bit"] = values[m].to_numpy()
        out[f"how@{m}bit"] = methods[m].to_numpy()
    out["n_seeds"] = mean.groupby("model_bits").n_seeds.first().to_numpy()
    return out


def plot_bits_quality(quality: pd.DataFrame):
    """Fréchet distance and classifier confidence against T for each (trained bits, shown bits), real images as
    horizontal lines."""
    import matplotlib.pyplot as plt
    model, real = quality[quality.source == "model"], quality[quality.source != "model"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, measure in zip(axes, ("frechet", "confidence")):
        for i, ((trained, shown), g) in enumerate(model.groupby(["model_bits", "shown_bits"])):
            ax.plot(g.temperature, g[measure], marker="o", color=f"C{i}",
                    label=f"{trained:g}-bit model, shown at {shown:g} bits")
        for j, r in enumerate(real.itertuples()):
            ax.axhline(getattr(r, measure), color="0.3", ls=["--", ":", "-."][j % 3], lw=1,
                       label=f"real test images at {r.shown_bits:g} bits")
        ax.set(xlabel="temperature T", ylabel={"frechet": "Fréchet distance (classifier features)",
                                              "confidence": "mean classifier confidence"}[measure])
        ax.legend(fontsize="x-small")
    fig.suptitle("5-bit vs 8-bit: the model or the fewer bits?")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """The reviewers' 5-bit question, from the Fréchet distances of samples shown at the lower bit depth."""
    out = []
    # 3: 5-bit vs 8-bit
    claim = "5-bit vs 8-bit: the better-looking samples come from training at 5 bits, not only from showing fewer bits (reviewers)"
    missing = need(profile, root, "bits_5v8")
    if missing:
        out.append(Claim(claim, "review", "bits_5v8", missing.verdict, missing.evidence))
    else:
        q, b = read_table(profile, "bits_5v8", "quality", root), read_table(profile, "bits_5v8", "bpd", root)
        m = q[(q.source == "model") & (q.shown_bits == q.shown_bits.min())]
        low = m[m.model_bits == m.model_bits.min()].set_index("temperature").frechet
        high = m[m.model_bits == m.model_bits.max()].set_index("temperature").frechet
        common = low.index.intersection(high.index)
        if low.equals(high) or not len(common):
            out.append(Claim(claim, "review", "bits_5v8", NOT_TESTABLE, "needs models at two bit depths"))
        else:
            ok = bool((low[common] < high[common]).all())
            lo_b, hi_b = int(b.model_bits.min()), int(b.model_bits.max())
            bb = b.groupby(["model_bits", "eval_bits"]).bpd.mean()
            out.append(Claim(claim, "review", "bits_5v8", CONFIRMED if ok else NOT_CONFIRMED,
                             f"Fréchet distance (classifier features) of samples shown at {lo_b} bits, by T: "
                             + ", ".join(f"T={t:g}: {lo_b}-bit model {low[t]:.2f} vs {hi_b}-bit model {high[t]:.2f}"
                                         for t in common)
                             + f". Confirmed when the {lo_b}-bit model is closer at every T. Bits/dim on the "
                             f"{hi_b}-bit scale: {lo_b}-bit model {bb[(lo_b, hi_b)]:.3f} (its {lo_b}-bit value "
                             f"{bb[(lo_b, lo_b)]:.3f} + {hi_b - lo_b}, exact) vs {hi_b}-bit model {bb[(hi_b, hi_b)]:.3f}."))
    return out
