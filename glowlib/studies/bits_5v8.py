"""5-bit vs 8-bit (the reviewers: "are the good samples due to the model or to fewer bits?"): the same model
(``base.study_config``) trained on 5-bit and on 8-bit versions of the same images; bits/dim made comparable
across bit depths (:func:`bpd_at_more_bits`), samples judged by the temperature study's classifier measures, the
8-bit model's also shown at 5 bits. The logic of ``notebooks/bits_5v8.py``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import torch

from ..analysis import REAL_VS_REAL, check_gates, failed_gates_of, image_grid, real_halves
from ..analysis import reduce_bits as _reduce_bits
from ..analysis import sample_quality, samples
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.judging import decision_columns, nearest_temperature, paired_values, table_outcome
from ..analysis.stats import Decision, decide_paired
from ..config import RunConfig, check_choice, check_range
from ..profiles import PROFILES, profile_config
from ..profiles import profile as profile_of
from ..training import evaluate, prepare_splits
from .base import (NOT_TESTABLE, SEED, Experiment, cached_model, device, int_in, list_of, n_parameters,
                   sampler_temperatures)
from .base import classifier_provenance, study_dataset, plot_named_grids  # noqa: F401  (for the notebook)
from .base import check_values, measuring_classifier

NOTEBOOK = "bits_5v8"
BIT_DEPTHS = (5, 8)                          # the paper's CelebA-HQ samples are 5-bit, its tables 8-bit
N_SEEDS = 3                                  # training seeds of each model: the replicates of the comparison
PAPER_T = 0.7                                # the temperature of the paper's samples
TWO_DEPTHS = "needs models at two bit depths"
PARAMETERS = {**SEED, "bit_depths": list_of(int_in(1, 8)), "n_seeds": int_in(1), "temperatures": sampler_temperatures,
              "n_samples": int_in(4), "n_grid": int_in(1, 400)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def bits_dataset(profile: str) -> str:
    """The study's dataset: the profile's ``study_datasets`` entry for it, else ``base.study_dataset``. It must
    carry the most bits compared: the 8x8 digits carry 4 (``data.BIT_DEPTH``), so no 8-bit arm."""
    check_choice("profile", profile, PROFILES)
    return profile_of(profile).study_datasets.get(NOTEBOOK, study_dataset(profile))


def bits_config(profile: str, n_bits: int, seed: int = 0) -> RunConfig:
    """The study model (``base.study_config``: additive coupling, the "study" tier of steps) of
    :func:`bits_dataset`, trained on ``n_bits``-bit images (the same images, fewer bits: see ``data.to_float``)."""
    check_range("n_bits", n_bits, 1, 8)
    return profile_config(profile, bits_dataset(profile), "glow", seed,
                          ["model.coupling='additive'", f"data.n_bits={n_bits}"], tier="study")


def runs(profile: str) -> list[RunConfig]:
    """The study model at each of :data:`BIT_DEPTHS`, training seeds 0 to :data:`N_SEEDS` - 1."""
    return [bits_config(profile, b, s) for b in BIT_DEPTHS for s in range(N_SEEDS)]


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
    model's samples and data are shown (``analysis.reduce_bits``)."""
    return _reduce_bits(images_uint8, n_bits)


def model_name(n_bits: int, seed: int) -> str:
    return f"{n_bits}bit-seed{seed}"


def bits_5v8(profile: str, bit_depths, n_seeds: int, temperatures, n_samples: int, n_grid: int,
             seed: int = 0) -> Experiment:
    """The same model trained at each bit depth (``bits_config``), for training seeds ``seed`` to
    ``seed + n_seeds - 1``; every model's samples drawn with sampling seed ``seed``.

    Tables: ``bpd``: one row per model and *evaluation* bit depth: measured (the model's own depth, full test
    split), ``exact`` (a lower-bit model at a higher depth: :func:`bpd_at_more_bits` of its measured value) or
    ``upper bound`` (a higher-bit model's continuous density evaluated with the lower depth's bins and noise:
    E_u[log p] ≤ log ∫_bin p by Jensen, so bits/dim at least the true value). ``quality``: classifier measures
    (``analysis.sample_quality``: precision, recall, Fréchet distance, ...) of every model's samples at each T,
    shown at its own depth and at every lower one, against a seeded random class-balanced draw of real test images
    at that depth, plus one real-vs-real row per depth (a disjoint real draw of the same size); ``n_samples`` is
    capped at half the test split. ``gates``: the sanity gates of every model. ``images``: sample grids of the
    first seed's models.
    """
    bit_depths = sorted(set(bit_depths))
    rows, quality, gates, images, models = [], [], [], {}, {}
    classifier = reference = None
    for n_bits in bit_depths:
        for s in range(seed, seed + n_seeds):
            tm = cached_model(bits_config(profile, n_bits, s))
            name = model_name(n_bits, s)
            models[name] = tm
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
            if classifier is None:
                classifier = measuring_classifier(profile, tm.run.data.dataset)
                n_samples = min(n_samples, len(splits.test_x) // 2)
                reference, held = real_halves(splits.test_x, splits.test_y, n_samples, seed)
                for shown in bit_depths:
                    quality.append({"source": REAL_VS_REAL, "model_bits": math.nan, "seed": math.nan,
                                    "shown_bits": shown, "temperature": math.nan,
                                    **sample_quality(classifier, reduce_bits(held, shown),
                                                     reduce_bits(reference, shown)),
                                    "n": n_samples})
            gates += check_gates(name, tm.model, classifier, reference, n_samples, seed, held=held,
                                 temperatures=[nearest_temperature(temperatures, PAPER_T)])[0]
            for t in temperatures:
                counts = {}                                        # draws whose decode overflowed, drawn again
                x = samples(tm.model, n_samples, t, seed, counts=counts)   # shown at the model's own bit depth
                if s == seed:
                    images[f"samples_{n_bits}bit_T{t:g}"] = image_grid(x[:n_grid], nrow=math.ceil(math.sqrt(n_grid)))
                for shown in [b for b in bit_depths if b <= n_bits]:
                    quality.append({"source": "model", "model_bits": n_bits, "seed": s, "shown_bits": shown,
                                    "temperature": t, **sample_quality(classifier, reduce_bits(x, shown),
                                                                       reduce_bits(reference, shown)),
                                    "n": n_samples, **counts})
    quality = pd.DataFrame(quality)
    quality["classifier_test_accuracy"] = classifier.test_accuracy
    gates = pd.DataFrame(gates)
    return Experiment({"bpd": pd.DataFrame(rows), "quality": quality, "gates": gates,
                       "decision": decisions(quality, gates)}, models, images)


def decisions(quality: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """The reviewers' question, per temperature: at the lowest bit depth shown, is the low-bit model's Fréchet
    distance lower than the high-bit model's samples reduced to that depth? Paired by training seed
    (``stats.decide_paired``), precision and recall beside it; not testable when a compared model fails a gate or
    fewer than two bit depths were trained."""
    model = quality[quality.source == "model"]
    if model.model_bits.nunique() < 2:
        return pd.DataFrame([{"temperature": math.nan, "verdict": NOT_TESTABLE, "reason": TWO_DEPTHS}])
    lo, hi = int(model.model_bits.min()), int(model.model_bits.max())
    real = quality[(quality.source == REAL_VS_REAL) & (quality.shown_bits == lo)].iloc[0]
    at = model[model.shown_bits == lo]
    compared = [model_name(b, int(s)) for b in (lo, hi) for s in sorted(set(at.seed))]
    failed = failed_gates_of(gates, compared)
    rows = []
    for t in sorted(set(at.temperature)):
        part = at[at.temperature == t]
        row = {"temperature": t, "low_bits": lo, "high_bits": hi, "shown_bits": lo}
        for measure in ("frechet", "precision", "recall"):
            a, b = paired_values(part, "model_bits", lo, hi, "seed", measure)
            row.update({f"{measure}_low": a.mean(), f"{measure}_high": b.mean(),
                        f"{measure}_real_vs_real": real[measure]})
        a, b = paired_values(part, "model_bits", lo, hi, "seed", "frechet")
        d = decide_paired(a, b, "lower", failed)
        row.update(decision_columns(d))
        rows.append(row)
    return pd.DataFrame(rows)


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
    """Fréchet distance, precision and recall against T for each (trained bits, shown bits), mean ± std over
    training seeds, real against real at each depth as horizontal lines. Two panels a row, as wide as the book's
    column (``base.COLUMN_INCHES``); the one legend in the fourth place."""
    import matplotlib.pyplot as plt
    from .base import COLUMN_INCHES
    model, real = quality[quality.source == "model"], quality[quality.source == REAL_VS_REAL]
    measures = {"frechet": "Fréchet distance\n(classifier features)", "precision": "precision (fidelity)",
                "recall": "recall (diversity)"}
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_INCHES, 5.8), layout="constrained")
    for ax, (measure, label) in zip(axes.flat, measures.items()):
        for i, ((trained, shown), g) in enumerate(model.groupby(["model_bits", "shown_bits"])):
            stats = g.groupby("temperature")[measure].agg(["mean", "std"])
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                        color=f"C{i}", label=f"{trained:g}-bit model, shown at {shown:g} bits")
        for j, r in enumerate(real.itertuples()):
            ax.axhline(getattr(r, measure), color="0.3", ls=["--", ":", "-."][j % 3], lw=1,
                       label=f"real vs real at {r.shown_bits:g} bits")
        ax.set(xlabel="temperature T", ylabel=label)
    legend = axes.flat[3]                           # the panels share their lines: one legend names them for all
    legend.axis("off")
    legend.legend(*axes.flat[0].get_legend_handles_labels(), fontsize="small", loc="center")
    fig.suptitle("5-bit vs 8-bit: the model or the fewer bits?\n(mean ± std over training seeds)")
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def decide_bits(results: Results) -> Outcome:
    """The reviewers' 5-bit question, from :func:`decisions` at T = 0.7 (or the nearest T run): the low-bit
    model's Fréchet distance against the high-bit model's shown at the low depth, paired by training seed; the
    bits/dim of both on the high-bit scale beside it."""
    d = decisions(results.table(NOTEBOOK, "quality"), results.table(NOTEBOOK, "gates"))
    if d.temperature.isna().all():
        return Outcome(Decision(NOT_TESTABLE, reason=TWO_DEPTHS))
    nearest = (d.temperature - PAPER_T).abs().idxmin()
    lo, hi = int(d.low_bits[nearest]), int(d.high_bits[nearest])
    bpd = results.table(NOTEBOOK, "bpd").groupby(["model_bits", "eval_bits"]).bpd.mean()
    measures = [m + side for m in ("frechet", "precision", "recall") for side in ("_low", "_high", "_real_vs_real")]
    return table_outcome(d, "temperature", measures, [nearest],
                         {"low-bit model bpd": bpd[(lo, lo)], "low-bit model bpd at high bits": bpd[(lo, hi)],
                          "high-bit model bpd": bpd[(hi, hi)]})


CLAIMS = (
    ClaimSpec("bits_5v8.trained_at_fewer_bits",
              "5-bit vs 8-bit: the better-looking samples come from training at 5 bits, not only from showing fewer "
              "bits (reviewers)", "reviewers", decide_bits),
)
