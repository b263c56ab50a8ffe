"""What makes Glow work: depth K at a fixed parameter count, ActNorm against no normalisation, the learned prior
against a standard normal, each changed alone from the permutation ablation's 1x1/affine model, at equal training
compute (same steps and batch; training time recorded), over seeds, each compared with the reference paired by seed
(``analysis.paired``) at equal steps, and at equal counted FLOPs where those agree; and the permutation ablation's
recorded pairs (``results/<profile>/ablation/``) read and decided at equal compute. Its claims: :data:`CLAIMS`. The
logic of
``notebooks/what_works.py``.
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..config import RunConfig, check_choice, check_range
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.paired import pair_summary, plot_pairs  # noqa: F401  (the notebook calls them through this module)
from ..analysis.paired import (CLOCKS, PAIR_COLUMNS, paired_outcome, paired_table, still_falling,
                               training_clock, with_stage)
from ..analysis.stats import NOT_TESTABLE, Decision
from ..budget import at_budget, run_flops, same_compute
from ..profiles import ABLATION_SEEDS, ablation_config
from ..profiles import profile as profile_of
from ..results import read_table
from .base import COLUMN_INCHES, SEED, Experiment, cached_model, config_parameters, curves, int_in, n_parameters
from .base import device, publish  # noqa: F401  (the notebook calls them through this module)
from .base import check_values

NOTEBOOK = "what_works"
# Each variant changes one thing in the permutation ablation's conv1x1/affine model (the reference), with its
# steps, batch and data. Depths: the profile's ``what_works_depths`` (half, the same and twice the reference's K).
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
    return [f"K={k}" for k in profile_of(profile).what_works_depths] + list(WHAT_WORKS_OTHER)


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


PARAMETERS = {**SEED, "variants": variants_or_auto, "n_seeds": int_in(1)}


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
    """Every variant for the ablation's seeds (the K=reference runs are the ablation's conv1x1/affine runs; the
    ablation's other runs are its own page's, whose recorded tables this page reads), then each variant whose
    FLOPs per step differ from the reference's again at the reference's budget (:func:`at_reference_budget`)."""
    variants = what_works_variants(profile)
    return ([what_works_config(profile, v, s) for v in variants for s in WHAT_WORKS_SEEDS]
            + [at_reference_budget(profile, v, s) for v in variants if needs_budget_run(profile, v)
               for s in WHAT_WORKS_SEEDS])


def needs_budget_run(profile: str, variant: str) -> bool:
    """Whether ``variant``'s steps cost other FLOPs than the reference's (beyond ``budget.TOLERANCE``), so that
    equal compute needs a run of its own: the depth variants at a fixed parameter count do."""
    return not same_compute(what_works_config(profile, variant, 0), what_works_reference(profile, 0))


def at_reference_budget(profile: str, variant: str, seed: int) -> RunConfig:
    """``variant`` trained to its end on the reference's counted FLOPs (``budget.at_budget``: its steps, warmup and
    cosine decay laid over that budget): the variant at equal compute, beside equal steps."""
    return at_budget(what_works_config(profile, variant, seed), run_flops(what_works_reference(profile, seed)))


def ablation_tables(profile: str, root=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, pairs) recorded by the permutation ablation's page at ``profile`` (its runs' curves and its
    comparisons paired by seed at equal steps and equal compute); the error says how to make them."""
    return read_table(profile, "ablation", "curves", root), read_table(profile, "ablation", "pairs", root)


def what_works(profile: str, variants, n_seeds: int, seed: int = 0) -> Experiment:
    """Train (or find in the cache) each variant for seeds ``seed .. seed + n_seeds - 1``.

    Tables: ``runs`` (one row per run: test bits/dim at the best-validation checkpoint, the architecture,
    parameters, steps, images seen, wall seconds, non-finite events), ``curves`` (one row per run, evaluation
    and split, with wall seconds) and ``pairs`` (each variant against the reference, paired by seed, at equal steps,
    and at equal compute where the two spend the same FLOPs (``budget.same_compute``); ``analysis.paired
    .paired_table``; group "variants").
    """
    rows, frames, models, metrics = [], [], {}, {}
    for variant in variants:
        for s in range(seed, seed + n_seeds):
            tm = cached_model(what_works_config(profile, variant, s))
            m = tm.run.model
            models[f"{variant}-seed{s}"] = tm
            metrics.setdefault(variant, {})[s] = tm.metrics
            rows.append({"variant": variant, "seed": s, "K": m.depth, "width": m.width, "actnorm": m.actnorm,
                         "prior": "learned" if m.learned_prior else "standard",
                         "test_bpd": tm.summary["test_bpd_at_best_val"], "best_val_bpd": tm.summary["best_val_bpd"],
                         "n_parameters": n_parameters(tm.model), "steps": tm.summary["steps"],
                         "images_seen": tm.summary["steps"] * tm.run.train.batch_size,
                         "wall_s": tm.summary["wall_s"], "nonfinite_events": len(tm.summary["nonfinite_events"]),
                         "dataset": tm.run.data.dataset})
            frames.append(curves(tm, variant=variant, seed=s))
            if needs_budget_run(profile, variant):
                metrics.setdefault((variant, "budget"), {})[s] = cached_model(
                    at_reference_budget(profile, variant, s)).metrics
    reference = reference_variant(profile)

    def at_compute(v):
        """The runs that compare at equal compute: the variant's own where its FLOPs are the reference's, else
        its run at the reference's budget, if trained."""
        return (v, reference) if not needs_budget_run(profile, v) else \
            ((v, "budget"), reference) if (v, "budget") in metrics else ()
    pairs = paired_table(metrics, [(GROUP, v, reference, v, reference) + at_compute(v)
                                   for v in variants if v != reference])
    return Experiment({"runs": pd.DataFrame(rows), "curves": pd.concat(frames, ignore_index=True), "pairs": pairs},
                      models)


GROUP = "variants"              # the pairs' group: every variant against the reference


def reference_variant(profile: str) -> str:
    """The reference's name among the variants: ``K=<the ablation model's depth>``."""
    return f"K={what_works_reference(profile, 0).model.depth}"


def claimed_direction(profile: str, variant: str) -> str:
    """What the variant's difference from the reference is expected to be, were Glow's choices what makes it work:
    more depth at the same parameters lowers bits/dim ("lower" for a deeper K, "higher" for a shallower one);
    removing ActNorm or the learned prior raises it."""
    if variant.startswith("K="):
        return "lower" if int(variant[2:]) > what_works_reference(profile, 0).model.depth else "higher"
    check_choice("variant", variant, WHAT_WORKS_OTHER)
    return "higher"


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
    """Test bits/dim per variant as a dot with its mean ± std over seeds, the reference's mean a dotted line (a bar
    would have to start at zero, where differences of a few tenths of a bits/dim near 4 to 6 vanish, and one that
    starts elsewhere exaggerates them), beside training wall time as bars from zero, one row per variant (its
    parameter count named), the reference red. As wide as the book's column (``base.COLUMN_INCHES``)."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, sharey=True, figsize=(COLUMN_INCHES, 0.45 * len(summary) + 1.6),
                               width_ratios=(3, 2), layout="constrained")
    y = np.arange(len(summary))[::-1]
    colours = ["C3" if v == reference else "C0" for v in summary.variant]
    for yi, mean, std, colour in zip(y, summary.test_bpd_mean, summary.test_bpd_std.fillna(0), colours):
        a.errorbar(mean, yi, xerr=std, fmt="o", color=colour, capsize=3)
    if reference in set(summary.variant):
        a.axvline(summary.set_index("variant").test_bpd_mean[reference], color="C3", lw=0.8, ls=":")
    a.margins(x=0.15)
    a.set(yticks=y, yticklabels=[f"{v} ({n / 1e3:.0f}k params)" for v, n in zip(summary.variant,
                                                                                  summary.n_parameters)],
          xlabel="test bits/dim\n(mean ± std over seeds)")
    b.barh(y, summary.wall_s_mean, xerr=summary.wall_s_std.fillna(0), color=colours, alpha=0.8, capsize=3)
    b.set_xlim(left=0)
    b.set(xlabel="training wall time (s)\nsame steps and batch")
    fig.suptitle(f"What makes Glow work: one change at a time from {reference} (red)")
    return fig


# ---------------------------------------------------------------------------------------------------- wall time
def plot_bpd_vs_wall(curves_df: pd.DataFrame, by, split: str = "test", panel: str | None = None, title: str = ""):
    """``split`` bits/dim against measured training time on the runs' clock (``analysis.paired.training_clock``: CPU
    seconds of the training process where every run recorded them, else wall seconds), one thin line per run
    coloured by ``by`` (one panel per value of ``panel`` if given): what each arm's extra cost per step does on this
    machine. It decides nothing (the claims compare at equal steps and at equal counted FLOPs)."""
    import matplotlib.pyplot as plt
    by = list(by)
    data = curves_df[curves_df.split == split]
    clock = training_clock(data)
    panels = list(dict.fromkeys(data[panel])) if panel else [None]
    ncol = min(2, len(panels))                 # two panels a row fill the book's column (base.COLUMN_INCHES)
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES * (ncol + 1) / 3, 3.4 * nrow), squeeze=False,
                             sharey=True)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax, value in zip(axes.flat, panels):
        part = data if panel is None else data[data[panel] == value]
        labels = list(dict.fromkeys(map(tuple, part[by].values)))
        for i, label in enumerate(labels):
            runs = part[(part[by] == pd.Series(label, index=by)).all(axis=1)]
            for j, (_, run) in enumerate(runs.groupby("seed")):
                run = run.sort_values(clock)
                ax.plot(run[clock], run.bpd, color=f"C{i}", lw=1, alpha=0.8,
                        label=" / ".join(map(str, label)) if j == 0 else None)
        lows = part.groupby(by + ["seed"]).bpd.min()
        ax.set_ylim(lows.min() - 0.05, np.percentile(part.bpd, 90) + 0.05)
        ax.set(xlabel=CLOCKS[clock], ylabel=f"{split} bits/dim", title="" if value is None else str(value))
        ax.legend(fontsize="small")
    fig.suptitle(title or f"{split} bits/dim against measured training time")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
def decide_one_change(results: Results) -> Outcome:
    """Each variant against the reference, paired by seed, in its claimed direction (:func:`claimed_direction`),
    decided at equal steps (each variant changes one thing and keeps the reference's steps, batch and data, as the
    ablation does); equal compute beside it in its numbers, from the variants' own runs where their FLOPs agree and
    from their runs at the reference's budget where they do not. Not testable where a depth variant misses the reference's
    parameter count by more than :data:`WIDTH_TOLERANCE`: depth is then not compared at a fixed parameter count."""
    pairs = results.table(NOTEBOOK, "pairs", columns=PAIR_COLUMNS)
    summary = results.table(NOTEBOOK, "summary")
    miss = summary[summary.variant.str.startswith("K=")].parameters_vs_reference.abs().max()
    comparisons = [(GROUP, v, b, claimed_direction(results.profile, v)) for v, b in dict.fromkeys(zip(pairs.a,
                                                                                                        pairs.b))]
    outcome = paired_outcome(pairs, comparisons, "equal_steps")
    curves_df = results.optional(NOTEBOOK, "curves")
    if curves_df is not None:
        outcome = with_stage(outcome, still_falling(curves_df, ["variant"]))
    numbers = {**outcome.numbers, "depth parameter miss": miss, "parameter tolerance": WIDTH_TOLERANCE}
    if len(pairs) and np.isfinite(pairs[["a_bpd_equal_compute", "b_bpd_equal_compute"]].to_numpy(float)).all():
        at_compute = paired_outcome(pairs, comparisons, "equal_compute").decision     # beside, not deciding
        numbers.update({"equal compute difference": at_compute.difference, "equal compute ci_low": at_compute.ci_low,
                        "equal compute ci_high": at_compute.ci_high})
    if miss > WIDTH_TOLERANCE:
        return Outcome(Decision(NOT_TESTABLE, reason="a depth variant misses the reference's parameter count"),
                       numbers, outcome.decided_by)
    return Outcome(outcome.decision, numbers, outcome.decided_by)


def decide_conv1x1_compute(results: Results) -> Outcome:
    """The permutation ablation's learned 1x1 against shuffle and reverse for each coupling, paired by seed, at
    equal compute (the reviewers asked whether its gain survives its extra cost per step): the runs that spend one
    FLOPs budget, which are the ablation's own where the 1x1 convolution's FLOPs are within ``budget.TOLERANCE``
    of a fixed permutation's; not testable where no such runs were recorded."""
    pairs = results.table("ablation", "pairs", columns=PAIR_COLUMNS)
    couplings = list(dict.fromkeys(pairs[pairs.a != "affine"].group))
    outcome = paired_outcome(pairs, [(c, "conv1x1", b, "lower") for c in couplings
                                     for b in ("shuffle", "reverse")], "equal_compute")
    curves_df = results.optional("ablation", "curves")
    return outcome if curves_df is None else with_stage(outcome, still_falling(curves_df, ["permutation", "coupling"]))


CLAIMS = (
    ClaimSpec("what_works.one_change_ablations",
              "What makes Glow work: more depth at a fixed parameter count, ActNorm and the learned prior each lower "
              "bits/dim (reviewers: ablations of depth, ActNorm and the prior, with error bars)", "reviewers",
              decide_one_change),
    ClaimSpec("what_works.conv1x1_at_equal_time",
              "The learned 1x1 convolution still beats shuffle and reverse at equal compute (reviewers: same "
              "compute)", "reviewers", decide_conv1x1_compute, reads=("ablation",)),
)
