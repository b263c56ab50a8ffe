"""What makes Glow work (the reviewers: "ablation of what makes Glow work (depth? ActNorm? permutation?)", "baselines
trained with the same compute", "error bars over seeds"): depth K at a fixed parameter count, ActNorm against no
normalisation, the learned prior against a standard normal, each changed alone from the permutation ablation's
1x1/affine model, at equal training compute (same steps and batch; wall time recorded), over seeds; and each run's
test bits/dim read at a common wall-clock time, for these variants and for the permutation ablation (paper
Fig. 3). The logic of ``notebooks/what_works.py``.
"""
from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..config import RunConfig, check_choice, check_range
from ..profiles import ABLATION_COUPLINGS, ABLATION_PERMUTATIONS, ABLATION_SEEDS, PROFILES, ablation_config
from ..results import read_table
from .ablation import ablation  # noqa: F401  (the notebook reads the ablation's runs at equal wall time)
from .ablation import runs as ablation_runs
from .base import (CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE, SEED, Claim, Experiment, cached_model, choice,
                   config_parameters, curves, int_in, list_of, n_parameters, need, number_in)
from .base import device  # noqa: F401  (the notebook calls it through this module)
from .base import check_values

NOTEBOOK = "what_works"
# Each variant changes one thing in the permutation ablation's conv1x1/affine model (the reference), with its
# steps, batch and data. Depths: half, the same and twice the reference's K.
WHAT_WORKS_DEPTHS = {"smoke": (1, 2, 4), "cpu": (2, 4, 8), "paper": (16, 32, 64)}
WHAT_WORKS_OTHER = ("no_actnorm", "standard_prior")
WHAT_WORKS_SEEDS = ABLATION_SEEDS
# parameter counts of the depth variants match the reference's within this fraction (widths are integers)
WIDTH_TOLERANCE = 0.02


def what_works_reference(profile: str, seed: int) -> RunConfig:
    """The reference model: the permutation ablation's conv1x1/affine run (the same cache entry)."""
    return ablation_config(profile, "conv1x1", "affine", seed)


@lru_cache(maxsize=None)
def matched_width(profile: str, depth: int, tolerance: float = WIDTH_TOLERANCE) -> int:
    """Coupling width at which a K=``depth`` model has the reference's parameter count: found by counting the
    parameters of built models (meta device, so no memory and no time), never by formula. The count grows with
    the width, so a bisection finds the smallest width at or above the target, and the nearer of it and the width
    below is kept. Raises if the best width misses by more than ``tolerance``."""
    check_range("depth", depth, 1)
    reference = what_works_reference(profile, 0)
    target = config_parameters(reference)

    def count(width):
        return config_parameters(reference.override([f"model.depth={depth}", f"model.width={width}"]))

    low, high = 1, max(2, reference.model.width)
    while count(high) < target:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    best = min((low, high), key=lambda w: abs(count(w) - target))
    miss = abs(count(best) / target - 1)
    if miss > tolerance:
        raise ValueError(f"no width gives K={depth} the reference's {target:,} parameters within {tolerance:.0%} "
                         f"(best: width {best}, {miss:.1%} off)")
    return best


def what_works_variants(profile: str) -> list[str]:
    """The variants' names: ``K=<depth>`` for each depth (the reference's own K is the reference), then
    ``no_actnorm`` and ``standard_prior``."""
    check_choice("profile", profile, PROFILES)
    return [f"K={k}" for k in WHAT_WORKS_DEPTHS[profile]] + list(WHAT_WORKS_OTHER)


def what_works_config(profile: str, variant: str, seed: int) -> RunConfig:
    """One run of the what-makes-Glow-work ablation: the reference with one change.

    ``K=k``: depth k per level at the width of :func:`matched_width` (same parameter count); ``no_actnorm``: no
    ActNorm layer (the coupling networks' own ActNorms too, GlowConfig.actnorm); ``standard_prior``: every latent
    gets N(0, 1), neither the split priors predicted from the kept half nor the learned top prior.
    """
    check_choice("variant", variant, what_works_variants(profile))
    reference = what_works_reference(profile, seed)
    if variant.startswith("K="):
        depth = int(variant[2:])
        if depth == reference.model.depth:
            return reference
        return reference.override([f"model.depth={depth}", f"model.width={matched_width(profile, depth)}"])
    if variant == "no_actnorm":
        return reference.override(["model.actnorm=False"])
    return reference.override(["model.learned_prior=False", "model.learn_top=False"])


def variants_or_auto(name, value):
    """"auto" or a list of variant names (checked against the profile's in :func:`check_parameters`)."""
    if value == "auto":
        return value
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}={value!r} must be 'auto' or a non-empty list of variant names")
    return list(value)


PARAMETERS = {**SEED, "variants": variants_or_auto, "n_seeds": int_in(1),
              "permutations": list_of(choice(ABLATION_PERMUTATIONS)),
              "couplings": list_of(choice(ABLATION_COUPLINGS)), "wall_s": number_in(0.0)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``variants="auto"`` becomes the profile's
    (:func:`what_works_variants`), and every variant must be one of them."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    allowed = what_works_variants(values["profile"])
    if values["variants"] == "auto":
        values["variants"] = allowed
    for i, v in enumerate(values["variants"]):
        check_choice(f"variants[{i}] (for profile={values['profile']!r})", v, allowed)
    return SimpleNamespace(**values)


def runs(profile: str) -> list[RunConfig]:
    """Every variant for the ablation's seeds (the K=reference runs are the ablation's conv1x1/affine runs), then
    the permutation ablation's runs, which the notebook compares at equal wall time."""
    return [what_works_config(profile, v, s) for v in what_works_variants(profile) for s in WHAT_WORKS_SEEDS] \
        + ablation_runs(profile)


def what_works(profile: str, variants, n_seeds: int, seed: int = 0) -> Experiment:
    """Train (or find in the cache) each variant for seeds ``seed .. seed + n_seeds - 1``.

    Tables: ``runs`` (one row per run: test bits/dim at the best-validation checkpoint, the architecture,
    parameters, steps, images seen, wall seconds, non-finite events) and ``curves`` (one row per run, evaluation
    and split, with wall seconds).
    """
    rows, frames, models = [], [], {}
    for variant in variants:
        for s in range(seed, seed + n_seeds):
            tm = cached_model(what_works_config(profile, variant, s))
            m = tm.run.model
            models[f"{variant}-seed{s}"] = tm
            rows.append({"variant": variant, "seed": s, "K": m.depth, "width": m.width, "actnorm": m.actnorm,
                         "prior": "learned" if m.learned_prior else "standard",
                         "test_bpd": tm.summary["test_bpd_at_best_val"], "best_val_bpd": tm.summary["best_val_bpd"],
                         "n_parameters": n_parameters(tm.model), "steps": tm.summary["steps"],
                         "images_seen": tm.summary["steps"] * tm.run.train.batch_size,
                         "wall_s": tm.summary["wall_s"], "nonfinite_events": len(tm.summary["nonfinite_events"]),
                         "dataset": tm.run.data.dataset})
            frames.append(curves(tm, variant=variant, seed=s))
    return Experiment({"runs": pd.DataFrame(rows), "curves": pd.concat(frames, ignore_index=True)}, models)


def what_works_summary(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """One row per variant: mean, std and standard error over seeds of the test bits/dim, and its difference from
    the ``reference`` variant paired by seed (same seed: same data order and noise), with the standard error of
    the paired differences; parameters and wall time, and their ratios to the reference's."""
    stats = runs.groupby("variant", sort=False).agg(
        n_seeds=("seed", "count"), K=("K", "first"), width=("width", "first"), test_bpd_mean=("test_bpd", "mean"),
        test_bpd_std=("test_bpd", "std"), n_parameters=("n_parameters", "mean"), wall_s_mean=("wall_s", "mean"),
        wall_s_std=("wall_s", "std"), steps=("steps", "first"), images_seen=("images_seen", "first"),
        nonfinite_events=("nonfinite_events", "sum")).reset_index()
    stats["test_bpd_sem"] = stats.test_bpd_std / np.sqrt(stats.n_seeds)
    if reference in set(runs.variant):
        base = runs[runs.variant == reference].set_index("seed")
        paired = runs.assign(diff=runs.test_bpd - runs.seed.map(base.test_bpd)).groupby("variant", sort=False)["diff"]
        stats["diff_vs_reference"] = stats.variant.map(paired.mean())
        stats["diff_sem"] = stats.variant.map(paired.std() / np.sqrt(paired.count()))
        ref = stats.set_index("variant").loc[reference]
        stats["parameters_vs_reference"] = stats.n_parameters / ref.n_parameters - 1
        stats["wall_vs_reference"] = stats.wall_s_mean / ref.wall_s_mean - 1
    return stats


def plot_what_works(summary: pd.DataFrame, reference: str):
    """Test bits/dim per variant, mean ± std over seeds (the reference marked), and training wall time."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.6 * len(summary) + 1.8))
    y = np.arange(len(summary))[::-1]
    colours = ["C3" if v == reference else "C0" for v in summary.variant]
    a.barh(y, summary.test_bpd_mean, xerr=summary.test_bpd_std.fillna(0), color=colours, alpha=0.8, capsize=3)
    lo = (summary.test_bpd_mean - summary.test_bpd_std.fillna(0)).min()
    hi = (summary.test_bpd_mean + summary.test_bpd_std.fillna(0)).max()
    a.set_xlim(lo - 0.1 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
    a.set(yticks=y, yticklabels=summary.variant, xlabel="test bits/dim (mean ± std over seeds)")
    b.barh(y, summary.wall_s_mean, xerr=summary.wall_s_std.fillna(0), color=colours, alpha=0.8, capsize=3)
    b.set(yticks=y, yticklabels=[f"{v} ({n / 1e3:.0f}k params)" for v, n in zip(summary.variant,
                                                                                  summary.n_parameters)],
          xlabel="training wall time (s), same steps and batch")
    fig.suptitle(f"What makes Glow work: one change at a time from {reference} (red)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- wall time
def bpd_at_wall_time(curves_df: pd.DataFrame, by, wall_s: float | None = None, split: str = "test") -> pd.DataFrame:
    """Each run's ``split`` bits/dim linearly interpolated at a common wall-clock time (equal compute).

    ``curves_df`` is a tidy curve table (``experiments.curves``: one row per evaluation and split, with
    ``wall_s``); a run is one combination of the columns ``by`` and ``seed``. ``wall_s=None`` takes the largest
    time every run reached (the shortest run's last evaluation), so nothing is extrapolated; a run that did not
    reach ``wall_s`` gets NaN, as does one that had not yet been evaluated by then. Returns one row per run:
    the ``by`` columns, seed, wall_s, bpd_at_wall_s, the step reached then (interpolated), and the run's last
    evaluation (bits/dim, step and wall time: the equal-steps comparison).
    """
    by = list(by)
    data = curves_df[curves_df.split == split].sort_values("wall_s")
    if data.empty:
        raise ValueError(f"no rows of split {split!r} in the curves; splits present: {sorted(set(curves_df.split))}")
    groups = data.groupby(by + ["seed"], sort=False)
    if wall_s is None:
        wall_s = float(groups.wall_s.max().min())
    rows = []
    for key, g in groups:
        t, v, s = g.wall_s.to_numpy(float), g.bpd.to_numpy(float), g.step.to_numpy(float)
        inside = t[0] <= wall_s <= t[-1]
        rows.append({**dict(zip(by + ["seed"], key)), "wall_s": wall_s,
                     "bpd_at_wall_s": float(np.interp(wall_s, t, v)) if inside else math.nan,
                     "step_at_wall_s": float(np.interp(wall_s, t, s)) if inside else math.nan,
                     "final_bpd": v[-1], "final_step": int(s[-1]), "final_wall_s": t[-1]})
    return pd.DataFrame(rows)


def wall_time_summary(table: pd.DataFrame, by) -> pd.DataFrame:
    """Mean ± std over seeds of :func:`bpd_at_wall_time`'s columns, one row per combination of ``by``;
    ``n_seeds`` counts the runs that reached the common time (the others are left out of the mean), ``n_runs``
    all of them."""
    return table.groupby(list(by), sort=False).agg(
        n_seeds=("bpd_at_wall_s", "count"), n_runs=("seed", "count"), wall_s=("wall_s", "first"), bpd_at_wall_s_mean=("bpd_at_wall_s", "mean"),
        bpd_at_wall_s_std=("bpd_at_wall_s", "std"), step_at_wall_s_mean=("step_at_wall_s", "mean"),
        final_bpd_mean=("final_bpd", "mean"), final_bpd_std=("final_bpd", "std"),
        final_wall_s_mean=("final_wall_s", "mean")).reset_index()


def plot_bpd_vs_wall(curves_df: pd.DataFrame, by, wall_s: float, split: str = "test", panel: str | None = None,
                     title: str = ""):
    """``split`` bits/dim against wall-clock seconds, one thin line per run coloured by ``by`` (one panel per value
    of ``panel`` if given), and the common wall time of :func:`bpd_at_wall_time` as a dashed line."""
    import matplotlib.pyplot as plt
    by = list(by)
    data = curves_df[curves_df.split == split]
    panels = list(dict.fromkeys(data[panel])) if panel else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, value in zip(axes[0], panels):
        part = data if panel is None else data[data[panel] == value]
        labels = list(dict.fromkeys(map(tuple, part[by].values)))
        for i, label in enumerate(labels):
            runs = part[(part[by] == pd.Series(label, index=by)).all(axis=1)]
            for j, (_, run) in enumerate(runs.groupby("seed")):
                run = run.sort_values("wall_s")
                ax.plot(run.wall_s, run.bpd, color=f"C{i}", lw=1, alpha=0.8,
                        label=" / ".join(map(str, label)) if j == 0 else None)
        ax.axvline(wall_s, color="k", ls="--", lw=1)
        lows = part.groupby(by + ["seed"]).bpd.min()
        ax.set_ylim(lows.min() - 0.05, np.percentile(part.bpd, 90) + 0.05)
        ax.set(xlabel="wall-clock seconds", ylabel=f"{split} bits/dim", title="" if value is None else str(value))
        ax.legend(fontsize="small")
    fig.suptitle(title or f"{split} bits/dim against wall time (dashed: the common time compared)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def claims(profile: str, root=None) -> list[Claim]:
    """The reviewers' questions this page answers, each with a verdict computed from its tables (the rule is
    stated in the evidence): the one-change ablations, and the permutation ablation at equal wall time."""
    out = []
    # 1: depth / ActNorm / prior ablation
    claim = "Ablations of depth (at a fixed parameter count), ActNorm and the learned prior, with error bars (reviewers)"
    missing = need(profile, root, "what_works")
    if missing:
        out.append(Claim(claim, "review", "what_works", missing.verdict, missing.evidence))
    else:
        s = read_table(profile, "what_works", "summary", root)
        matched = s[s.variant.str.startswith("K=")].parameters_vs_reference.abs().max()
        ok = int(s.n_seeds.min()) >= 2 and matched <= WIDTH_TOLERANCE and {"no_actnorm", "standard_prior"} <= set(
            s.variant)
        parts = "; ".join(f"{r.variant}: {r.test_bpd_mean:.3f} ± {r.test_bpd_std:.3f} "
                          f"({r.diff_vs_reference:+.3f} ± {r.diff_sem:.3f} paired)" for r in s.itertuples())
        out.append(Claim(claim, "review", "what_works", CONFIRMED if ok else NOT_CONFIRMED,
                         f"Confirmed when every variant has ≥ 2 seeds and depth variants match the reference's "
                         f"parameters within {WIDTH_TOLERANCE:.0%} (largest miss {matched:.2%}). Test bits/dim, mean ± "
                         f"std over seeds, and the difference from the reference paired by seed: {parts}."))
    # 2: the permutation ablation at equal wall time
    claim = "The learned 1x1 convolution still beats shuffle and reverse at equal wall-clock time (reviewers: same compute)"
    w = None if missing else read_table(profile, "what_works", "ablation_walltime_summary", root)
    if missing:
        out.append(Claim(claim, "review", "what_works", missing.verdict, missing.evidence))
    elif not {"conv1x1", "shuffle", "reverse"} <= set(w.permutation):
        out.append(Claim(claim, "review", "what_works", NOT_TESTABLE, "the ablation lacks conv1x1, shuffle or reverse"))
    elif w[w.permutation.isin(["conv1x1", "shuffle", "reverse"])].bpd_at_wall_s_mean.isna().any():
        out.append(Claim(claim, "review", "what_works", NOT_TESTABLE,
                         f"some variant had no evaluation by the common time {w.wall_s.iloc[0]:.1f} s (runs too "
                         f"short to compare at equal time; set the notebook's wall_s)"))
    else:
        ok, parts = True, []
        for c, g in w.groupby("coupling", sort=False):
            v = g.set_index("permutation").bpd_at_wall_s_mean
            ok &= bool(v["conv1x1"] < v["shuffle"] and v["conv1x1"] < v["reverse"])
            parts.append(f"{c}: " + ", ".join(f"{p} {v[p]:.3f}" for p in v.index))
        out.append(Claim(claim, "review", "what_works", CONFIRMED if ok else NOT_CONFIRMED,
                         f"Test bits/dim interpolated at {w.wall_s.iloc[0]:.0f} s of training (the time every run "
                         f"reached), mean over seeds; confirmed when conv1x1 is lowest for every coupling. "
                         + "; ".join(parts)))
    return out
