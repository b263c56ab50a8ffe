"""The permutation ablation (Kingma & Dhariwal 2018, Sec. 5.1, Fig. 3): every permutation × coupling variant of
the profile's ablation model (``profiles.ablation_config``) over seeds, its training curves, its comparisons paired
by seed (``analysis.paired``), the 1x1 convolution's cost counted and profiled, and the claims these decide
(:data:`CLAIMS`). The logic of ``notebooks/ablation.py``."""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.paired import PAIR_COLUMNS, paired_outcome, paired_table, still_falling, with_stage
from ..analysis.paired import pair_summary, plot_pairs  # noqa: F401  (the notebook calls them through this module)
from ..analysis.stats import MIN_SEEDS, Decision
from ..budget import at_budget, run_flops, same_compute
from ..data import load_dataset
from ..profiles import (ABLATION_COUPLINGS, ABLATION_PERMUTATIONS, ABLATION_SEEDS, DATASET_SHAPES, ablation_config,
                        profile_config)
from ..profiles import profile as get_profile
from .base import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SEED, Experiment, cached_model, choice,
                   curves, folder, int_in, list_of, n_parameters)
from .base import COLUMN_INCHES, device, plot_splits, publish  # noqa: F401  (plot_splits, publish: the notebook's)
from .base import check_values
from ..analysis.bench_records import PAPER_CONV1X1, conv1x1_time, profiles

NOTEBOOK = "ablation"
PARAMETERS = {**SEED, "permutations": list_of(choice(ABLATION_PERMUTATIONS)),
              "couplings": list_of(choice(ABLATION_COUPLINGS)), "n_seeds": int_in(1), "bench_dir": folder}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """Every variant of the ablation for the profile's seeds, then each additive variant again at its affine
    twin's FLOPs budget (:func:`additive_at_affine_budget`), then the order's runs on RGB patches where the
    ablation's own data have too few channels (:func:`order_runs`)."""
    variants = [ablation_config(profile, p, c, s) for p in ABLATION_PERMUTATIONS for c in ABLATION_COUPLINGS
                for s in ABLATION_SEEDS]
    if {"affine", "additive"} <= set(ABLATION_COUPLINGS):
        variants += [additive_at_affine_budget(profile, p, s) for p in ABLATION_PERMUTATIONS for s in ABLATION_SEEDS]
    return variants + order_runs(profile)


# ------------------------------------------------------------------------------------- the order on RGB patches
# Where the profile's ablation data are 1-channel (too few channels for shuffle against reverse: FEW_CHANNELS), the
# order claim is decided on 16x16 RGB patches of two photographs (``data``'s "patches"), whose first level's
# couplings see 12 channels as CIFAR-10's do: the permutations of Fig. 3, every coupling of the ablation, its seeds
# and its model and schedule (``Profile.ablation_overrides``) on those data
ORDER_DATASET = "patches"
ORDER_PERMUTATIONS = ("conv1x1", "shuffle", "reverse")
ORDER_RELATIONS = (("conv1x1", "shuffle"), ("shuffle", "reverse"))


def order_config(profile: str, permutation: str, coupling: str, seed: int):
    """One run of the order on :data:`ORDER_DATASET`: the ablation's model and schedule (its overrides)."""
    return profile_config(profile, ORDER_DATASET, "glow", seed,
                          list(get_profile(profile).ablation_overrides)
                          + [f"model.permutation={permutation!r}", f"model.coupling={coupling!r}"])


def needs_order_runs(profile: str) -> bool:
    """Whether the profile's ablation data leave the order untestable (a first-level coupling sees fewer than
    :data:`MIN_COUPLING_CHANNELS` channels), so that the order is decided on :data:`ORDER_DATASET` instead."""
    return first_level_channels(get_profile(profile).ablation_dataset) < MIN_COUPLING_CHANNELS


def order_runs(profile: str) -> list:
    """The order's runs on :data:`ORDER_DATASET` (:func:`order_config`) where :func:`needs_order_runs`, else []."""
    if not needs_order_runs(profile):
        return []
    return [order_config(profile, p, c, s) for p in ORDER_PERMUTATIONS for c in ABLATION_COUPLINGS
            for s in ABLATION_SEEDS]


def additive_at_affine_budget(profile: str, permutation: str, seed: int):
    """The additive variant trained to spend the affine variant's FLOPs (``budget.at_budget``: more steps, its
    warmup and cosine decay laid over them): affine against additive at equal compute, beside equal steps. An
    affine step costs more (its coupling network outputs a scale as well as a shift, and the scale's logdet is
    computed), so at equal steps the affine arm has spent more."""
    affine = ablation_config(profile, permutation, "affine", seed)
    return at_budget(ablation_config(profile, permutation, "additive", seed), run_flops(affine))


def ablation(profile: str, permutations, couplings, n_seeds: int, seed: int = 0) -> Experiment:
    """Permutation × coupling ablation (paper Fig. 3): every variant for seeds ``seed .. seed + n_seeds - 1``.

    Tables: ``runs`` (one row per training run: test bits/dim at the best-validation checkpoint, parameters,
    wall time, steps), ``curves`` (one row per run, evaluation and split) and ``pairs`` (:func:`ablation_pairs`:
    each comparison the claims make, paired by seed, at equal steps and at equal compute).
    """
    runs, curve_frames, models, metrics = _trained_variants(
        permutations, couplings, range(seed, seed + n_seeds),
        lambda p, c, s: ablation_config(profile, p, c, s), "")
    for permutation in permutations:
        for s in range(seed, seed + n_seeds):
            if "additive" in couplings and "affine" in couplings:
                budget_run = additive_at_affine_budget(profile, permutation, s)
                if budget_run.key() != ablation_config(profile, permutation, "additive", s).key():
                    metrics.setdefault((permutation, BUDGET_ARM), {})[s] = cached_model(budget_run).metrics
    configs = {(p, c): ablation_config(profile, p, c, seed) for p in permutations for c in couplings}
    return Experiment({"runs": runs, "curves": curve_frames,
                       "pairs": ablation_pairs(metrics, permutations, couplings,
                                               lambda ka, kb: same_compute(configs[ka], configs[kb]))}, models)


def _trained_variants(permutations, couplings, seeds, config_of, prefix: str) -> tuple:
    """Every permutation x coupling x seed run of ``config_of(permutation, coupling, seed)``, trained or found in
    the cache: (``runs`` table, ``curves`` table, {name: trained model} with names led by ``prefix``,
    {(permutation, coupling): {seed: metrics}})."""
    runs, curve_frames, models, n_test, metrics = [], [], {}, {}, {}
    for permutation in permutations:
        for coupling in couplings:
            for s in seeds:
                tm = cached_model(config_of(permutation, coupling, s))
                models[f"{prefix}{permutation}-{coupling}-seed{s}"] = tm
                metrics.setdefault((permutation, coupling), {})[s] = tm.metrics
                labels = dict(permutation=permutation, coupling=coupling, seed=s)
                runs.append(_run_row(tm, labels, n_test))
                curve_frames.append(curves(tm, **labels))
    return pd.DataFrame(runs), pd.concat(curve_frames, ignore_index=True), models, metrics


def _run_row(tm, labels: dict, n_test: dict) -> dict:
    """A ``runs`` row of trained model ``tm``; ``n_test`` caches each dataset's evaluated test images."""
    dataset = tm.run.data.dataset
    if dataset not in n_test:
        split = len(load_dataset(dataset).test_images)
        n_test[dataset] = min(tm.run.train.n_test_eval or split, split)
    return {**labels, "best_val_bpd": tm.summary["best_val_bpd"], "test_bpd": tm.summary["test_bpd_at_best_val"],
            "n_test": n_test[dataset], "n_parameters": n_parameters(tm.model), "wall_s": tm.summary["wall_s"],
            "steps": tm.summary["steps"], "images_seen": tm.summary["steps"] * tm.run.train.batch_size,
            "dataset": dataset}


def order_study(profile: str, couplings, n_seeds: int, seed: int = 0) -> Experiment:
    """The order's runs on :data:`ORDER_DATASET` (:func:`order_runs`) for seeds ``seed .. seed + n_seeds - 1``:
    tables ``order_runs``, ``order_curves`` and ``order_pairs`` (1x1 against shuffle and reverse, shuffle against
    reverse, per coupling, paired by seed), as the ablation's own; no tables where the profile needs none."""
    if not needs_order_runs(profile):
        return Experiment({})
    runs, curve_frames, models, metrics = _trained_variants(
        ORDER_PERMUTATIONS, couplings, range(seed, seed + n_seeds),
        lambda p, c, s: order_config(profile, p, c, s), f"{ORDER_DATASET}-")
    return Experiment({"order_runs": runs, "order_curves": curve_frames,
                       "order_pairs": order_pairs(metrics, couplings)}, models)


def order_pairs(metrics: dict, couplings) -> pd.DataFrame:
    """The order's comparisons on the patches (:func:`paired_table`), for each coupling: 1x1 against shuffle,
    shuffle against reverse and 1x1 against reverse, at equal steps and, as the permutations cost alike (within 1%
    of counted FLOPs), at equal compute on the same runs."""
    return paired_table(metrics, [(c, a, b, (a, c), (b, c), (a, c), (b, c)) for c in couplings
                                  for a, b in ORDER_RELATIONS + (("conv1x1", "reverse"),)])


# the metrics key of the additive variant trained at its affine twin's FLOPs budget (:func:`additive_at_affine_budget`)
BUDGET_ARM = "additive at the affine budget"


def ablation_pairs(metrics: dict, permutations, couplings, same=None) -> pd.DataFrame:
    """The comparisons of Fig. 3's claims (:func:`paired_table`): for each coupling the learned 1x1 against shuffle,
    reverse and the fixed rotation, and shuffle against reverse; for each permutation affine against additive (at
    equal compute against the additive run at the affine budget, ``metrics[(permutation, BUDGET_ARM)]``, where
    there is one).
    ``metrics`` maps (permutation, coupling) to {seed: metrics.csv frame}; ``same(key_a, key_b)`` says whether two
    variants' runs spend the same FLOPs (``budget.same_compute``), so that they also compare at equal compute
    (the permutations cost nearly alike: a 1x1 convolution's FLOPs are a fraction of a percent of a coupling's);
    without it, or where they do not, the pair has no equal-compute value."""
    def keys(ka, kb):
        return (ka, kb) + ((ka, kb) if same is not None and same(ka, kb) else (None, None))

    def coupling_keys(p):
        """Affine against additive; at equal compute against the additive run at the affine budget, if any."""
        ka, kb = (p, "affine"), (p, "additive")
        if (p, BUDGET_ARM) in metrics:
            return ka, kb, ka, (p, BUDGET_ARM)
        return keys(ka, kb)
    comparisons = [(c, a, b, *keys((a, c), (b, c))) for c in couplings
                   for a, b in (("conv1x1", "shuffle"), ("shuffle", "reverse"), ("conv1x1", "reverse"),
                                ("conv1x1", "rotation"))]
    comparisons += [(p, "affine", "additive", *coupling_keys(p)) for p in permutations]
    return paired_table(metrics, comparisons)


def ablation_summary(runs: pd.DataFrame, curves_df: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: mean ± std over seeds of the final test bits/dim, of the test curve's mean (lower:
    faster convergence), wall time and parameters, and their ratios to the ``reverse`` variant."""
    test_curve = curves_df[curves_df.split == "test"].groupby(["permutation", "coupling", "seed"]).bpd.mean()
    runs = runs.merge(test_curve.rename("curve_mean_bpd").reset_index(), on=["permutation", "coupling", "seed"])
    summary = runs.groupby(["permutation", "coupling"], sort=False).agg(
        n_seeds=("seed", "count"), test_bpd_mean=("test_bpd", "mean"), test_bpd_std=("test_bpd", "std"),
        curve_mean_bpd=("curve_mean_bpd", "mean"), curve_mean_std=("curve_mean_bpd", "std"),
        n_parameters=("n_parameters", "first"), wall_s_mean=("wall_s", "mean"),
        wall_s_std=("wall_s", "std"), wall_s_median=("wall_s", "median")).reset_index()
    base = summary[summary.permutation == "reverse"].set_index("coupling")
    if len(base):
        summary["parameters_vs_reverse"] = summary.n_parameters / summary.coupling.map(base.n_parameters) - 1
        summary["wall_vs_reverse"] = summary.wall_s_median / summary.coupling.map(base.wall_s_median) - 1
    return summary


def plot_ablation(curves_df: pd.DataFrame, split: str = "test"):
    """Bits/dim vs epochs, mean ± std over seeds, one panel per coupling (two a row, to fit the book's column:
    ``base.COLUMN_INCHES``), one line per permutation (Fig. 3)."""
    import matplotlib.pyplot as plt
    couplings = list(dict.fromkeys(curves_df.coupling))
    ncol = min(2, len(couplings))
    nrow = -(-len(couplings) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES * ncol / 2, 3.2 * nrow), squeeze=False,
                             sharey=True)
    data = curves_df[curves_df.split == split]
    for ax, coupling in zip(axes.flat, couplings):
        for permutation, group in data[data.coupling == coupling].groupby("permutation", sort=False):
            stats = group.groupby("epoch").bpd.agg(["mean", "std", "count"]).reset_index()
            line, = ax.plot(stats.epoch, stats["mean"], marker=".", label=permutation)
            ax.fill_between(stats.epoch, stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
        ax.set(title=f"{coupling} coupling", xlabel="epoch", ylabel=f"{split} bits/dim")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(couplings):]:
        ax.set_visible(False)
    fig.suptitle(f"{split} bits/dim during training (mean ± std over seeds)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- the 1x1's cost
def free_parameters(model) -> tuple[int, int]:
    """(free parameters of ``model``, those of its 1x1 convolutions). A parameter tensor counts its entries, less
    those an LU-decomposed 1x1 convolution's masks hold fixed: its L (unit lower) and U (strictly upper) are stored
    as full c×c tensors of which the masks let c(c-1)/2 entries each train, and log|s| adds c, so c² in all, as
    many as a plain c×c weight. The masks are read from an ``InvConv1x1LU`` of the same channels built on the CPU,
    so that a model built on the meta device is counted too."""
    from ..layers.permutations import InvConv1x1, InvConv1x1LU
    total = sum(p.numel() for p in model.parameters())
    conv, held, masks = 0, 0, {}
    for m in model.modules():
        if isinstance(m, InvConv1x1LU):
            c = m.log_s.numel()
            if c not in masks:
                twin = InvConv1x1LU(c)
                masks[c] = int(twin.lower_mask.sum()) + int(twin.lower_mask.T.sum()) + twin.log_s.numel()
            conv += masks[c]
            held += m.lower.numel() + m.upper.numel() + m.log_s.numel() - masks[c]
        elif isinstance(m, InvConv1x1):
            conv += sum(p.numel() for p in m.parameters(recurse=False))
    return total - held, conv


def training_step_flops(config, batch: int) -> int:
    """Matmul and convolution FLOPs (``torch.utils.flop_counter``) of one training step, forward and backward, of a
    Glow of ``config`` on ``batch`` images, counted on the meta device: shapes only, no memory and no arithmetic.
    ActNorm is marked initialised and the input's finiteness check skipped there; neither changes what is
    computed."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..layers.actnorm import ActNorm
    from ..models import Glow
    from ..objective import bits_per_dim
    with torch.device("meta"):
        model = Glow(config)
        x = torch.empty(batch, config.in_channels, config.image_size, config.image_size)
    for m in model.modules():
        if isinstance(m, ActNorm):
            m._known_initialized = True
    model._check_input = lambda x: None
    model.train()
    with FlopCounterMode(display=False) as counter:
        bits_per_dim(model(x), config.n_dims, config.n_bits).mean().backward()
    return int(counter.get_total_flops())


def conv1x1_cost(bench_dir="results/bench", config=None, batch: int | None = None) -> pd.DataFrame:
    """The learned 1x1 convolution's cost (paper Sec. 5.1: ~0.2% more parameters, ~7% more wall time), counted
    and profiled rather than timed over whole runs. One row per measure:

    - ``parameters``: free parameters at ``config`` (default the paper's CIFAR-10 model, ``GlowConfig()``) and the
      1x1's part (:func:`free_parameters`); the same model with a fixed shuffle must hold exactly the rest;
    - ``flops``: FLOPs per image of a training step at ``batch`` (default the paper's 64), the 1x1 model's against
      the shuffle model's (:func:`training_step_flops`);
    - ``time``: one row per profiled training step (``profile_*.json``, :func:`profiles`): the share of the step's
      time in the 1x1 group.

    ``share`` is the 1x1's part of the whole; ``extra`` what it adds against a model without it,
    share / (1 - share) (for time an upper bound: a shuffle costs a copy).
    """
    import torch

    from ..config import GlowConfig
    from ..models import Glow
    from ..profiles import PAPER_TRAIN
    config = config or GlowConfig()
    batch = batch or PAPER_TRAIN.batch_size
    shape = {"channels": config.in_channels, "image_size": config.image_size, "levels": config.n_levels,
             "depth": config.depth, "width": config.width}
    rows = []
    with torch.device("meta"):
        models = {p: Glow(config.replace(permutation=p)) for p in ("conv1x1", "shuffle")}
    (total, conv), (shuffle, none) = free_parameters(models["conv1x1"]), free_parameters(models["shuffle"])
    if none or shuffle != total - conv:
        raise AssertionError(f"the shuffle model has {shuffle:,} parameters, the 1x1 model {total:,} of which "
                             f"{conv:,} are the 1x1's: the difference is not the 1x1")
    rows.append({"measure": "parameters", "source": "counted, built model", **shape, "batch": math.nan,
                 "precision": config.precision, "conv1x1": conv, "total": total, "share": conv / total,
                 "extra": conv / shuffle})
    with_conv = training_step_flops(config.replace(permutation="conv1x1", inv_backprop=False), batch) / batch
    without = training_step_flops(config.replace(permutation="shuffle", inv_backprop=False), batch) / batch
    rows.append({"measure": "flops", "source": "counted, FlopCounterMode per image", **shape, "batch": batch,
                 "precision": config.precision, "conv1x1": with_conv - without, "total": with_conv,
                 "share": (with_conv - without) / with_conv, "extra": (with_conv - without) / without})
    rows += conv1x1_time(profiles(bench_dir)).to_dict("records")
    return pd.DataFrame(rows)


def page_values(runs: pd.DataFrame, cost: pd.DataFrame) -> dict:
    """The numbers the page's words quote: the runs' count, data, steps, images and test images, and our largest
    variant's parameters beside the paper's CIFAR-10 model's (``cost``: :func:`conv1x1_cost`)."""
    paper = int(cost.loc[cost.measure == "parameters", "total"].iloc[0])
    first = runs.iloc[0]
    return {"n_runs": len(runs), "dataset": first.dataset, "steps": int(first.steps),
            "images_seen": int(first.images_seen), "n_test": int(first.n_test),
            "n_parameters": int(runs.n_parameters.max()), "paper_parameters": paper,
            "parameters_share": runs.n_parameters.max() / paper}


def order_values(order_runs_df: pd.DataFrame | None) -> dict:
    """The numbers the page's words about the RGB patches quote: a first-level coupling's channels on colour and on
    one-channel images and how many ways a shuffle splits the latter (one of which keeps the halves), the patches'
    size and counts (``data.patch_corners``, two photographs) and the order's runs on them (0 where the profile
    trains none)."""
    from ..data import PATCH_PHOTOS, PATCH_SIZE, patch_corners
    n = 0 if order_runs_df is None else len(order_runs_df)
    gray = first_level_channels("mnist")
    return {"rgb_channels": first_level_channels("cifar10"), "gray_channels": gray,
            "gray_shuffle_keeps": math.comb(gray, gray // 2), "patch_size": PATCH_SIZE, "patch_photos": len(PATCH_PHOTOS),
            "patch_train": len(PATCH_PHOTOS) * len(patch_corners("train")),
            "patch_test": len(PATCH_PHOTOS) * len(patch_corners("test")), "order_runs": n,
            "order_steps": int(order_runs_df.steps.iloc[0]) if n else 0}


# ---------------------------------------------------------------------------------------------------- claims
COST_FACTOR = 2       # "costs little" holds while ours is at most twice the paper's figure
COST_TEST = "counted parameters and FLOPs; profiled time shares"


def decide_cost(results: Results) -> Outcome:
    """The 1x1 convolution's cost (Sec. 5.1), from :func:`conv1x1_cost`'s table: confirmed when its extra
    parameters at the paper's config and its extra time in every profiled training step at the paper's width are
    at most :data:`COST_FACTOR` times the paper's figures; contradicted when the parameters, or every such profile,
    exceed that; inconclusive when the profiles disagree; not testable without a profile at the paper's width."""
    table = results.table(NOTEBOOK, "conv1x1_cost")
    params = table[table.measure == "parameters"].iloc[0]
    flops = table[table.measure == "flops"]
    times = table[(table.measure == "time") & (table.width == params.width)]
    limit = {k: COST_FACTOR * v for k, v in PAPER_CONV1X1.items()}
    numbers = {"extra parameters": params.extra, "extra parameters allowed": limit["parameters"],
               "extra time allowed": limit["time"]}
    if len(flops):
        numbers["extra FLOPs"] = flops.iloc[0].extra
    numbers.update({"extra time, " + r.source: r.extra for r in times.itertuples()})
    if not len(times):
        return Outcome(Decision(NOT_TESTABLE, reason="no profiled training step at the paper's width"), numbers)
    over_params = params.extra > limit["parameters"]
    over_time = times.extra > limit["time"]
    verdict = CONTRADICTED if over_params or over_time.all() else INCONCLUSIVE if over_time.any() else CONFIRMED
    return Outcome(Decision(verdict, test=COST_TEST), numbers, "conv1x1_cost.csv")


def _cells(pairs, a_b, coupling_groups=True):
    groups = list(dict.fromkeys(pairs[(pairs.a != "affine") == coupling_groups].group))
    return [(g, a, b, "lower") for g in groups for a, b in a_b]


# Fig. 3's order of shuffle and reverse was measured on CIFAR-10, whose first level's couplings see 12 channels
# (3 colours, squeezed 2x2). On 1-channel images they see 4: a random shuffle of 4 channels leaves the coupling's two
# halves as they were (so the next coupling transforms the same half, conditioned on the same half, again) in
# 1 of comb(4, 2) = 6 steps, and 1 of 924 with 12 channels, while reverse swaps the halves in every step. Between
# shuffle and reverse, 1-channel data then measure how often a shuffle repeats a split, not the paper's comparison.
MIN_COUPLING_CHANNELS = 12
FEW_CHANNELS = ("on 1-channel images a first-level coupling sees 4 channels, where a shuffle keeps the coupling's "
                "halves in 1 of 6 steps and reverse swaps them in every step; shuffle against reverse then measures "
                "that, not Fig. 3's comparison on CIFAR-10's 12 channels")


def first_level_channels(dataset: str) -> int:
    """The channels a coupling of the first level sees on ``dataset``: its colours, squeezed 2x2 (later levels
    see twice as many each, after the split and the next squeeze)."""
    return 4 * DATASET_SHAPES[dataset][0]


def decide_order(results: Results) -> Outcome:
    """1x1 < shuffle < reverse at equal steps, for each coupling (Fig. 3 compares at equal epochs). On data whose
    first level's couplings see fewer than :data:`MIN_COUPLING_CHANNELS` channels, shuffle against reverse
    measures an artefact of few channels: there the claim is decided on the runs on RGB patches (``order_pairs``,
    :func:`order_study`) where they were trained, with the ablation's own numbers beside (``<channels>-channel
    ...``), and is not testable where they were not (the numbers of both relations kept beside)."""
    pairs = results.table(NOTEBOOK, "pairs", columns=PAIR_COLUMNS)
    outcome = with_stage(paired_outcome(pairs, _cells(pairs, ORDER_RELATIONS), "equal_steps"), _stage(results))
    datasets = set(results.table(NOTEBOOK, "runs").dataset)
    channels = min(first_level_channels(d) for d in datasets) if datasets else MIN_COUPLING_CHANNELS
    if channels >= MIN_COUPLING_CHANNELS:
        return outcome
    numbers = {**outcome.numbers, "first level's coupling channels": channels,
               "channels needed": MIN_COUPLING_CHANNELS,
               "share of shuffle steps that keep the halves": 1 / math.comb(channels, channels // 2)}
    patches = results.optional(NOTEBOOK, "order_pairs")
    if patches is None or not len(patches):
        return Outcome(Decision(NOT_TESTABLE, reason=FEW_CHANNELS), numbers, outcome.decided_by)
    patches = results.table(NOTEBOOK, "order_pairs", columns=PAIR_COLUMNS)   # Stale where it predates a column
    order_curves = results.optional(NOTEBOOK, "order_curves")
    stage = {} if order_curves is None else still_falling(order_curves, ["permutation", "coupling"])
    on_patches = with_stage(paired_outcome(patches, _cells(patches, ORDER_RELATIONS), "equal_steps"), stage)
    return Outcome(on_patches.decision, {**on_patches.numbers, **_named_by_channels(numbers, channels)},
                   ON_PATCHES + on_patches.decided_by)


ON_PATCHES = f"RGB patches ({ORDER_DATASET}), "     # the label of an order decided on the patches' pairs


def _named_by_channels(numbers: dict, channels: int) -> dict:
    """The 1-channel runs' numbers, each name led by their images' channels ("1-channel ..."), beside the patches'."""
    return {f"{channels // 4}-channel {name}": value for name, value in numbers.items()}


def decide_faster(results: Results) -> Outcome:
    """The learned 1x1's test curve lies below shuffle's and reverse's on average over the evaluations."""
    pairs = results.table(NOTEBOOK, "pairs", columns=PAIR_COLUMNS)
    return paired_outcome(pairs, _cells(pairs, (("conv1x1", "shuffle"), ("conv1x1", "reverse"))), "equal_steps",
                          metric="curve_mean")


def _stage(results: Results) -> dict:
    """:func:`analysis.paired.still_falling` of the ablation's runs ({} where its results predate curves.csv)."""
    curves_df = results.optional(NOTEBOOK, "curves")
    return {} if curves_df is None else still_falling(curves_df, ["permutation", "coupling"])


def decide_affine(results: Results) -> Outcome:
    """Affine below additive, for each permutation, at equal steps, as Fig. 3 compares them (about early training
    where the runs' validation curves are still falling); the same at equal compute beside it, in its numbers
    (``equal compute ...``), where the additive runs at the affine budget were trained."""
    pairs = results.table(NOTEBOOK, "pairs", columns=PAIR_COLUMNS)
    cells = _cells(pairs, (("affine", "additive"),), coupling_groups=False)
    if not cells:
        return Outcome(Decision(NOT_TESTABLE, reason="the ablation ran one coupling only"))
    outcome = with_stage(paired_outcome(pairs, cells, "equal_steps"), _stage(results))
    rows = pairs[pairs.a == "affine"]
    if len(rows) and np.isfinite(rows.b_bpd_equal_compute.to_numpy(float)).all():
        at_compute = paired_outcome(pairs, cells, "equal_compute").decision
        outcome = replace(outcome, numbers={**outcome.numbers, "equal compute difference": at_compute.difference,
                                            "equal compute ci_low": at_compute.ci_low,
                                            "equal compute ci_high": at_compute.ci_high})
    return outcome


def decide_rotation(results: Results) -> Outcome:
    """The learned 1x1 below the fixed random rotation, for each coupling, at equal steps (the two differ only in
    training the weights, which costs little time)."""
    pairs = results.table(NOTEBOOK, "pairs", columns=PAIR_COLUMNS)
    return with_stage(paired_outcome(pairs, _cells(pairs, (("conv1x1", "rotation"),)), "equal_steps"),
                      _stage(results))


def decide_error_bars(results: Results) -> Outcome:
    """Every variant trained with at least ``stats.MIN_SEEDS`` seeds."""
    n_seeds = int(results.table(NOTEBOOK, "summary").n_seeds.min())
    numbers = {"seeds": n_seeds, "seeds needed": MIN_SEEDS}
    if n_seeds < MIN_SEEDS:
        return Outcome(Decision(NOT_TESTABLE, reason="fewer seeds than the paired test needs"), numbers)
    return Outcome(Decision(CONFIRMED), numbers, "summary.csv")


CLAIMS = (
    ClaimSpec("ablation.permutation_order", "1x1 convolution < shuffle < reverse in final NLL (Fig. 3)", "paper",
              decide_order),
    ClaimSpec("ablation.conv1x1_converges_faster",
              "The learned 1x1 convolution converges faster than shuffle and reverse (Fig. 3)", "paper",
              decide_faster),
    ClaimSpec("ablation.affine_beats_additive", "Affine coupling reaches lower NLL than additive coupling (Fig. 3)",
              "paper", decide_affine),
    ClaimSpec("ablation.conv1x1_cost",
              "The 1x1 convolution costs little: ~0.2% more parameters and ~7% more wall time (Sec. 5.1)", "paper",
              decide_cost),
    ClaimSpec("ablation.learned_beats_rotation",
              "A learned 1x1 convolution beats a fixed random rotation (reviewers: ablate what makes Glow work)",
              "reviewers", decide_rotation),
    ClaimSpec("ablation.error_bars", "Error bars over seeds (reviewers)", "reviewers", decide_error_bars),
)
