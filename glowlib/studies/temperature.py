"""Temperature (Kingma & Dhariwal 2018, Sec. 5, Fig. 8, made quantitative): the paper samples at T = 0.7 rather than
T = 1 and says lower temperatures give better-looking but less diverse samples. Here that is a claim about fidelity
and diversity measured apart: precision and recall (Kynkäänniemi et al. 2019) in the measuring classifier's
features, beside the Fréchet distance, each against a random class-balanced real reference, with the real-vs-real
baseline of two disjoint real draws beside every measure. T = 0.7 is compared with T = 1 over three training seeds
of the figures' model (each seed's value the mean over several seeds of its sampler), so that the verdict is about
Glow trained this way rather than about one network; the whole curve over T is shown for the first.
The logic of ``notebooks/temperature.py``."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis import REAL_VS_REAL, check_gates, failed_gates_of, image_grid, real_halves
from ..analysis import sample_quality, samples, temperature_samples_table
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.judging import (decide_over_sampling_seeds, decision_columns, nearest_temperature, paired_values,
                                table_outcome)
from ..analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, decide_paired
from ..data import load_dataset
from .base import (SEED, Experiment, available_dataset, device, int_in, list_of, number_in, shared_seed_models,
                   shared_seed_runs)
from .base import classifier_provenance, measuring_classifier, plot_named_grids, shared_model, show  # noqa: F401
from .base import auto_or, check_values, notebook_dataset, with_figure_dataset

NOTEBOOK = "temperature"
PAPER_T = 0.7
PARAMETERS = {**SEED, "dataset": auto_or(available_dataset), "temperatures": list_of(number_in(0.0)),
              "temperature": number_in(0.0, 1.0), "n_samples": int_in(2), "n_sampling_seeds": int_in(1),
              "n_grid": int_in(1, 400), "n_training_seeds": int_in(1, 10)}
# training seeds of the figures' model the claim is decided over (stats.MIN_SEEDS: the paired test needs 3)
TRAINING_SEEDS = 3
# the claim: at the lower temperature, precision (fidelity) is higher and recall (diversity) lower than at T = 1
CLAIMED = {"precision": "higher", "recall": "lower"}
MEASURES = ("precision", "recall", "frechet")
INK = ("its interval does not clear the move an ink change as large as the samples' makes on real images "
       "(the ink_control table)")


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); the compared ``temperature`` and T = 1 join
    ``temperatures`` if they are not among them."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    values = with_figure_dataset(values, notebook_dataset(values["profile"], NOTEBOOK))
    values["temperatures"] = sorted(set(values["temperatures"]) | {values["temperature"], 1.0})
    return SimpleNamespace(**values)


def runs(profile: str, dataset: str | None = None, n: int = TRAINING_SEEDS) -> list:
    """The shared Glow of ``dataset`` (default: ``base.notebook_dataset``; ``base.shared_model``, seed 0) and the
    same run with training seeds 1 .. ``n`` - 1."""
    return shared_seed_runs(profile, dataset or notebook_dataset(profile, NOTEBOOK), n)


def seed_models(profile: str, dataset: str, n: int) -> dict:
    """{training seed: trained model} of :func:`runs` beyond seed 0 (seed 0 is ``base.shared_model``)."""
    return shared_seed_models(profile, dataset, n)


def sampling_seeds(seed: int, n: int) -> list[int]:
    """The sampler's seeds, the replicates of the comparison: ``seed``, ``seed + 1``, ..."""
    return list(range(seed, seed + n))


def sample_grids(model, temperatures, n: int, seed: int, nrow: int = 6) -> dict:
    """{T: uint8 grid of n samples at T}, every T with the same seed: each grid scales the same standard-normal
    draws by T."""
    return {t: image_grid(samples(model, n, t, seed), nrow=nrow) for t in temperatures}


def temperature_table(model, dataset: str, temperatures, n: int, n_sampling_seeds: int, seed: int,
                      name: str = "", more_models: dict | None = None, *, classifier) -> Experiment:
    """Fidelity and diversity against temperature, for ``n_sampling_seeds`` seeds of the sampler, measured with
    ``classifier`` (the profile's measuring classifier of ``dataset``: ``base.measuring_classifier``).

    The real test images are split into two disjoint seeded class-balanced draws of ``n`` images (``n`` is capped
    at half the test split): samples are measured against the first (the reference); the second measured against
    it is the real-vs-real baseline. ``more_models`` ({training seed: model}) are the same model trained with
    other seeds: each is gated and measured at the compared temperature and T = 1 only. Tables: ``temperature``
    (one row per training seed, T and sampling seed, plus the baseline row), ``gates`` (the sanity gates of every
    model, ``analysis.check_gates``) and ``decision`` (:func:`decisions`).
    """
    name = name or f"glow-{dataset}"
    data = load_dataset(dataset)
    n = min(n, len(data.test_images) // 2)
    reference, held = real_halves(data.test_images, data.test_labels, n, seed)
    gates, _ = check_gates(name, model, classifier, reference, n, seed, held=held,
                           temperatures=[nearest_temperature(temperatures, PAPER_T, below_one=True), 1.0])
    table = temperature_samples_table(model, classifier, reference, temperatures, n,
                                      sampling_seeds(seed, n_sampling_seeds)).assign(training_seed=0)
    low = nearest_temperature(temperatures, PAPER_T, below_one=True)
    frames = [table]
    for s, other in (more_models or {}).items():
        rows, _ = check_gates(f"{name}-seed{s}", other, classifier, reference, n, seed, held=held,
                              temperatures=[low, 1.0])
        gates += rows
        frames.append(temperature_samples_table(other, classifier, reference, [low, 1.0], n,
                                                sampling_seeds(seed, n_sampling_seeds)).assign(training_seed=s))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "source", "model")
    real = {"source": REAL_VS_REAL, "temperature": np.nan, "sampling_seed": seed,
            **sample_quality(classifier, held, reference), "n": n}
    table = pd.concat([table, pd.DataFrame([real])], ignore_index=True)
    table["classifier_test_accuracy"] = classifier.test_accuracy
    gates = pd.DataFrame(gates)
    ink = ink_control(classifier, held, reference, ink_ratio(gates, low))
    return Experiment({"temperature": table, "gates": gates, "ink_control": ink,
                       "decision": decisions(table, gates, ink)})


def ink_ratio(gates: pd.DataFrame, low: float) -> float:
    """The samples' ink at the compared temperature over their ink at T = 1: the ratio of the pixel means the
    sanity gates recorded (their own draws), averaged over the gated models."""
    means = gates[gates.gate.str.startswith("pixel mean")].groupby(["model", "temperature"]).value.first().unstack()
    return float((means[low] / means[1.0]).mean())


def ink_control(classifier, held, reference, ratio: float) -> pd.DataFrame:
    """What an ink change as large as the one between the compared temperatures does to the measures on real
    images: the held real images measured against the reference (the real-vs-real baseline), then the same
    images with their ink scaled by ``ratio`` in two ways that keep the shapes: every pixel scaled (dimmed, or
    brightened and clipped) and the strokes thinned or thickened (blended with a 3x3 cross erosion or dilation as
    far as gives that ink). One row per change and measure, with ``move``, the change of the measure. A
    temperature effect no larger than the largest move cannot be told from the ink change (:func:`decisions`)."""
    from ..analysis.classifier import dilate, dim, erode
    base = sample_quality(classifier, held, reference)
    ink = held.double().mean()
    morph = dilate(held, "cross") if ratio >= 1 else erode(held, "cross")
    gain = morph.double().mean() / ink - 1
    share = float(min(1.0, max(0.0, (ratio - 1) / gain))) if gain != 0 else 0.0
    changed = {"pixels scaled": dim(held, ratio),
               "strokes " + ("thickened" if ratio >= 1 else "thinned"):
                   ((1 - share) * held.float() + share * morph.float()).round().to(held.dtype)}
    rows = []
    for change, x in changed.items():
        q = sample_quality(classifier, x, reference)
        achieved = float(x.double().mean() / ink)
        rows += [{"change": change, "ink_ratio": ratio, "achieved_ink_ratio": achieved, "measure": m,
                  "real": base[m], "changed": q[m], "move": q[m] - base[m]} for m in CLAIMED]
    return pd.DataFrame(rows)


def compared_temperature(table: pd.DataFrame) -> float:
    """The lower temperature of the comparison: the one below 1 nearest the paper's 0.7."""
    below = sorted(set(table[(table.source == "model") & (table.temperature < 1)].temperature))
    if not below:
        raise ValueError("the table has no temperature below 1 to compare with T = 1")
    return min(below, key=lambda t: abs(t - PAPER_T))


def training_seed_means(model: pd.DataFrame, low: float, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """(values at ``low``, values at T = 1) of ``measure``, one per training seed: the mean over the sampling seeds
    both temperatures have for that model (a sampling seed's draws are shared by both temperatures)."""
    a, b = [], []
    for _, part in model.groupby("training_seed", sort=True):
        x, y = paired_values(part, "temperature", low, 1.0, "sampling_seed", measure)
        if len(x):
            a.append(x.mean())
            b.append(y.mean())
    return np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def decisions(table: pd.DataFrame, gates: pd.DataFrame, ink: pd.DataFrame | None = None) -> pd.DataFrame:
    """T = 0.7 (or the nearest lower T run) against T = 1: one row per measure with the mean paired difference
    (low T minus T = 1), its interval, the claimed direction and the verdict. With several training seeds
    (``training_seed``), the replicates are the training seeds, each the mean over its sampling seeds
    (``stats.decide_paired``: the claim is about Glow trained this way); a table of one model (older results)
    is decided over its sampling seeds, and says so. The Fréchet distance is shown, not claimed: it mixes
    fidelity and diversity. A failed sanity gate of any model makes every row not testable. With the
    :func:`ink_control` table, ``ink_move`` is the largest move of the measure under the samples' ink change, and
    a confirmed or contradicted verdict whose interval does not clear it (its end nearer 0 within ``ink_move`` of
    0) is inconclusive: the effect could be the ink."""
    model = table[table.source == "model"]
    if "training_seed" not in model:
        model = model.assign(training_seed=0)
    several = model.training_seed.nunique() > 1
    low = compared_temperature(table)
    failed = failed_gates_of(gates)
    rows = []
    for measure in MEASURES:
        if several:
            a, b = training_seed_means(model, low, measure)
        else:
            a, b = paired_values(model, "temperature", low, 1.0, "sampling_seed", measure)
        real = table[table.source == REAL_VS_REAL][measure].iloc[0]
        row = {"measure": measure, "t_low": low, "mean_t_low": a.mean(), "mean_t1": b.mean(), "real_vs_real": real}
        if measure in CLAIMED:
            d = (decide_paired(a, b, CLAIMED[measure], failed) if several
                 else decide_over_sampling_seeds(a, b, CLAIMED[measure], failed))
            if ink is not None and len(ink):
                move = float(ink[ink.measure == measure].move.abs().max())
                row["ink_move"] = move
                if d.verdict in (CONFIRMED, CONTRADICTED) and min(abs(d.ci_low), abs(d.ci_high)) <= move:
                    d = dataclasses.replace(d, verdict=INCONCLUSIVE, reason=INK)
            row.update(claimed=CLAIMED[measure], **decision_columns(d))
        else:
            row.update(claimed="", verdict="", difference=float(np.mean(a - b)), n=len(a))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_tradeoff(table: pd.DataFrame):
    """Precision, recall and the Fréchet distance against T (mean ± std over sampling seeds) of the first training
    seed's model, the real-vs-real baseline as a dashed line in each panel; and the fidelity-diversity plane, one
    point per T coloured by T, the compared T and T = 1 named; one legend under the panels. Two panels a row, as
    wide as the book's column (``base.COLUMN_INCHES``)."""
    import matplotlib.pyplot as plt
    from .base import COLUMN_INCHES
    model, real = table[table.source == "model"], table[table.source == REAL_VS_REAL].iloc[0]
    if "training_seed" in model:                    # the curve is the first training seed's; the others add 2 T
        model = model[model.training_seed == model.training_seed.min()]
    stats = model.groupby("temperature")[list(MEASURES)].agg(["mean", "std"])
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_INCHES, 6.6), layout="constrained")
    labels = {"precision": "precision (fidelity)", "recall": "recall (diversity)",
              "frechet": "Fréchet distance\n(classifier features)"}
    compared = compared_temperature(table)
    for ax, measure in zip(axes.flat, MEASURES):
        mean, std = stats[measure]["mean"], stats[measure]["std"].fillna(0)
        ax.errorbar(mean.index, mean, yerr=std, marker="o", capsize=3, label="samples")
        ax.axhline(real[measure], color="C3", ls="--", label=REAL_VS_REAL)
        for t in (compared, 1.0):
            ax.axvline(t, color="0.6", lw=0.8, ls=":")
        ax.set(xlabel="temperature T", ylabel=labels[measure])
    plane = axes.flat[3]
    recall, precision = stats["recall"]["mean"], stats["precision"]["mean"]
    plane.plot(recall, precision, color="0.6", lw=1, zorder=1)
    points = plane.scatter(recall, precision, c=stats.index, cmap="viridis", zorder=2)
    fig.colorbar(points, ax=plane, label="temperature T")
    # the two temperatures the claim compares, one named below right and one above: nearby T lie close together
    for t, offset, align in ((compared, (6, -12), "left"), (1.0, (0, 8), "center")):
        if t in stats.index:
            plane.annotate(f"T={t:g}", (recall[t], precision[t]), fontsize="small", textcoords="offset points",
                           xytext=offset, ha=align)
    plane.scatter([real.recall], [real.precision], marker="*", s=150, color="C3",
                  label=f"{REAL_VS_REAL} (recall, precision)")
    plane.set(xlabel="recall (diversity)", ylabel="precision (fidelity)")
    plane.margins(y=0.12)                        # room for the label above T = 1
    # one legend for every panel, under them, where it covers no curve
    handles, names = axes.flat[0].get_legend_handles_labels()
    star, star_name = plane.get_legend_handles_labels()
    fig.legend(handles + star, names + star_name, loc="outside lower center", ncol=3, fontsize="small")
    fig.suptitle("Temperature: fidelity against diversity (mean ± std over sampling seeds)")
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def decide_trade(results: Results) -> Outcome:
    """Fig. 8's claim from :func:`decisions`: precision higher and recall lower at the compared T than at T = 1,
    both needed (``analysis.judging.table_outcome``); not testable when the model fails a sanity gate."""
    d = decisions(results.table(NOTEBOOK, "temperature"), results.table(NOTEBOOK, "gates"),
                  results.optional(NOTEBOOK, "ink_control")).set_index("measure", drop=False)
    return table_outcome(d, "measure", ("t_low", "mean_t_low", "mean_t1", "real_vs_real"), list(CLAIMED))


CLAIMS = (
    ClaimSpec("temperature.fidelity_for_diversity",
              "Lowering the temperature (T = 0.7 against T = 1) trades diversity (recall) for fidelity (precision) "
              "(Sec. 5, Fig. 8)", "paper", decide_trade),
)
