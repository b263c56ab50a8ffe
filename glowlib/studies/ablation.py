"""The permutation ablation (Kingma & Dhariwal 2018, Sec. 5.1, Fig. 3): every permutation × coupling variant of
the profile's ablation model (``glowlib.profiles.ablation_config``) over seeds, its training curves, and the
claims of Fig. 3 and Sec. 5.1: the comparisons paired by training seed (``analysis.stats.decide_paired``) at equal
steps and at equal training time, and the 1x1 convolution's cost counted and profiled. The logic of
``notebooks/ablation.py``; its equal-compute helpers (:func:`chosen_at`, :func:`paired_claim`) serve the bits/dim
table and the what-makes-Glow-work page too."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis.stats import MIN_SEEDS, PAIRED_T, Decision, decide_paired
from ..data import load_dataset
from ..profiles import ABLATION_COUPLINGS, ABLATION_PERMUTATIONS, ABLATION_SEEDS, ablation_config
from ..results import read_table, results_dir
from .base import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SEED, Claim, Experiment, cached_model,
                   choice, curves, folder, int_in, list_of, n_parameters, need)
from .base import device, plot_splits  # noqa: F401  (the notebook calls them through this module)
from .base import check_values
from .cost import Cost, bench_path, profiles

NOTEBOOK = "ablation"
PARAMETERS = {**SEED, "permutations": list_of(choice(ABLATION_PERMUTATIONS)),
              "couplings": list_of(choice(ABLATION_COUPLINGS)), "n_seeds": int_in(1), "bench_dir": folder}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """Every variant of the ablation for the profile's seeds."""
    return [ablation_config(profile, p, c, s) for p in ABLATION_PERMUTATIONS for c in ABLATION_COUPLINGS
            for s in ABLATION_SEEDS]


def ablation(profile: str, permutations, couplings, n_seeds: int, seed: int = 0) -> Experiment:
    """Permutation × coupling ablation (paper Fig. 3): every variant for seeds ``seed .. seed + n_seeds - 1``.

    Tables: ``runs`` (one row per training run: test bits/dim at the best-validation checkpoint, parameters,
    wall time, steps), ``curves`` (one row per run, evaluation and split) and ``pairs`` (:func:`ablation_pairs`:
    each comparison the claims make, paired by seed, at equal steps and at equal training time).
    """
    runs, curve_frames, models, n_test, metrics = [], [], {}, {}, {}
    for permutation in permutations:
        for coupling in couplings:
            for s in range(seed, seed + n_seeds):
                tm = cached_model(ablation_config(profile, permutation, coupling, s))
                name = f"{permutation}-{coupling}-seed{s}"
                dataset = tm.run.data.dataset
                if dataset not in n_test:
                    n_test[dataset] = tm.run.train.n_test_eval or len(load_dataset(dataset).test_images)
                models[name] = tm
                metrics.setdefault((permutation, coupling), {})[s] = tm.metrics
                labels = dict(permutation=permutation, coupling=coupling, seed=s)
                runs.append({**labels, "best_val_bpd": tm.summary["best_val_bpd"],
                             "test_bpd": tm.summary["test_bpd_at_best_val"],
                             "n_test": n_test[dataset],
                             "n_parameters": n_parameters(tm.model), "wall_s": tm.summary["wall_s"],
                             "steps": tm.summary["steps"],
                             "images_seen": tm.summary["steps"] * tm.run.train.batch_size,
                             "dataset": tm.run.data.dataset})
                curve_frames.append(curves(tm, **labels))
    runs = pd.DataFrame(runs)
    return Experiment({"runs": runs, "curves": pd.concat(curve_frames, ignore_index=True),
                       "pairs": ablation_pairs(metrics, permutations, couplings)}, models)


def ablation_pairs(metrics: dict, permutations, couplings) -> pd.DataFrame:
    """The comparisons of Fig. 3's claims (:func:`paired_table`): for each coupling the learned 1x1 against shuffle,
    reverse and the fixed rotation, and shuffle against reverse; for each permutation affine against additive.
    ``metrics`` maps (permutation, coupling) to {seed: metrics.csv frame}."""
    comparisons = [(c, a, b, (a, c), (b, c)) for c in couplings
                   for a, b in (("conv1x1", "shuffle"), ("shuffle", "reverse"), ("conv1x1", "reverse"),
                                ("conv1x1", "rotation"))]
    comparisons += [(p, "affine", "additive", (p, "affine"), (p, "additive")) for p in permutations]
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
    """Bits/dim vs epochs, mean ± std over seeds, one panel per coupling, one line per permutation (Fig. 3)."""
    import matplotlib.pyplot as plt
    couplings = list(dict.fromkeys(curves_df.coupling))
    fig, axes = plt.subplots(1, len(couplings), figsize=(5 * len(couplings), 3.6), squeeze=False, sharey=True)
    data = curves_df[curves_df.split == split]
    for ax, coupling in zip(axes[0], couplings):
        for permutation, group in data[data.coupling == coupling].groupby("permutation", sort=False):
            stats = group.groupby("epoch").bpd.agg(["mean", "std", "count"]).reset_index()
            line, = ax.plot(stats.epoch, stats["mean"], marker=".", label=permutation)
            ax.fill_between(stats.epoch, stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
        ax.set(title=f"{coupling} coupling", xlabel="epoch", ylabel=f"{split} bits/dim")
        ax.legend()
    fig.suptitle(f"{split} bits/dim during training (mean ± std over seeds)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- equal compute
# Every comparison of two models is made twice, paired by training seed (the same seed: the same data order, noise
# and initialisation stream on both sides), and both are shown:
# - at equal steps: each run's whole training, the same steps and batch on both sides;
# - at equal training time, measured: the two runs of one seed are cut at the shorter run's total training time
#   (its clock at its last evaluation in metrics.csv, which counts the periodic evaluations that both runs make on
#   the same images), each reporting what it would have reported had it stopped then (:func:`chosen_at`).
# The clock (:func:`training_clock`) is the training process's CPU seconds where both runs recorded them (training
# on a CPU: one worker per core, so CPU seconds are the run's compute, which other processes on the machine cannot
# stretch as they stretch its wall time), else wall seconds (a GPU, one worker per GPU; or runs of an older glowlib).
# Each claim's verdict says which of the two decides it, and why.
BASES = {"equal_steps": "equal steps", "equal_time": "equal training time"}
CLOCKS = {"cpu_s": "CPU seconds of the training process", "wall_s": "wall seconds"}
PAIR_KEYS = ["group", "a", "b", "seed"]
# what a pair's value measures: the test bits/dim of the validation-chosen evaluation ("bpd"), or the mean of the
# test curve over the evaluations (lower: ahead during training, "curve_mean")
PAIR_METRICS = {"bpd": "test bits/dim of the validation-chosen evaluation",
                "curve_mean": "mean test bits/dim over the evaluations (lower: ahead during training)"}
# the comparisons' verdicts combine into the claim's: any contradicted makes it contradicted; else any not testable
# or inconclusive makes it that; it is confirmed only when every comparison confirms it
_PRECEDENCE = (CONTRADICTED, NOT_TESTABLE, INCONCLUSIVE)


def training_clock(*metrics: pd.DataFrame) -> str:
    """The column of metrics.csv that times the runs ``metrics`` alike (:data:`CLOCKS`): "cpu_s" when every one
    recorded a finite value at every evaluation, else "wall_s"."""
    def has_cpu(m):
        return "cpu_s" in m and len(m) > 0 and bool(np.isfinite(m.cpu_s.to_numpy(float)).all())
    return "cpu_s" if metrics and all(has_cpu(m) for m in metrics) else "wall_s"


def chosen_at(metrics: pd.DataFrame, time_s: float = math.inf, clock: str = "wall_s") -> dict:
    """What a run would have reported had it stopped at ``time_s`` seconds of training on ``clock`` (a column of
    :data:`CLOCKS`): among its evaluations at or before then (``metrics``: metrics.csv's ``step``, the clock,
    ``val_bpd``, ``test_bpd``), the one with the lowest validation bits/dim (the earliest of equal ones; a
    non-finite one is never chosen), its ``bpd`` (test bits/dim), ``val_bpd``, ``step`` and ``time_s``;
    ``steps_reached``, the last step evaluated by then; and ``curve_mean``, the mean test bits/dim over those
    evaluations. NaN where no evaluation is that early. ``time_s=inf``: the whole run (the equal-steps value)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock={clock!r} must be one of {tuple(CLOCKS)}")
    m = metrics.sort_values("step")
    m = m[m[clock].astype(float) <= time_s] if math.isfinite(time_s) else m
    out = {"bpd": math.nan, "val_bpd": math.nan, "step": math.nan, "time_s": math.nan,
           "steps_reached": float(m.step.max()) if len(m) else math.nan,
           "curve_mean": float(m.test_bpd.mean()) if len(m) else math.nan}
    finite = m[np.isfinite(m.val_bpd.to_numpy(float))]
    if len(finite):
        best = finite.loc[finite.val_bpd.idxmin()]
        out.update(bpd=float(best.test_bpd), val_bpd=float(best.val_bpd), step=float(best.step),
                   time_s=float(best[clock]))
    return out


def at_equal_compute(a: dict, b: dict) -> pd.DataFrame:
    """Two models' runs ({seed: metrics.csv frame} each) compared seed by seed, at equal steps and at the shorter
    run's total training time (:func:`chosen_at`, on the pair's :func:`training_clock`). One row per seed both
    have: ``clock``, ``time_s`` (the common time), ``a_total_s``/``b_total_s``, and for each side
    ``<side>_<value>_<basis>`` for value in ``bpd``, ``step`` (of the chosen evaluation), ``curve_mean`` and basis in
    :data:`BASES`, with ``<side>_steps`` (the run's steps) and ``<side>_steps_by_time`` (its last step evaluated by
    the common time)."""
    rows = []
    for seed in sorted(set(a) & set(b)):
        clock = training_clock(a[seed], b[seed])
        total = {side: float(m[clock].astype(float).max()) for side, m in (("a", a[seed]), ("b", b[seed]))}
        t = min(total.values())
        row = {"seed": seed, "clock": clock, "time_s": t, "a_total_s": total["a"], "b_total_s": total["b"]}
        for side, m in (("a", a[seed]), ("b", b[seed])):
            for basis, chosen in (("equal_steps", chosen_at(m)), ("equal_time", chosen_at(m, t, clock))):
                row.update({f"{side}_{v}_{basis}": chosen[v] for v in ("bpd", "step", "curve_mean")})
                row[f"{side}_steps" if basis == "equal_steps" else f"{side}_steps_by_time"] = chosen["steps_reached"]
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(metrics: dict, comparisons) -> pd.DataFrame:
    """One row per comparison and seed (:data:`PAIR_KEYS`, then :func:`at_equal_compute`'s columns).
    ``comparisons`` are (group, a, b, key of a, key of b) with ``metrics[key] = {seed: metrics.csv frame}``; one
    whose runs are not both in ``metrics`` is left out."""
    frames = [at_equal_compute(metrics[ka], metrics[kb]).assign(group=group, a=a, b=b)
              for group, a, b, ka, kb in comparisons if ka in metrics and kb in metrics]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=PAIR_KEYS)
    table = pd.concat(frames, ignore_index=True)
    return table[PAIR_KEYS + [c for c in table.columns if c not in PAIR_KEYS]]


def decide_comparison(pairs: pd.DataFrame, group: str, a: str, b: str, claimed: str, basis: str,
                      metric: str = "bpd") -> Decision:
    """``stats.decide_paired`` on one comparison's per-seed values (``a`` minus ``b``) at ``basis``; not testable,
    saying why, where the comparison has no runs or a run had no evaluation by the common time."""
    if basis not in BASES or metric not in PAIR_METRICS:
        raise ValueError(f"basis={basis!r} must be one of {tuple(BASES)} and metric={metric!r} one of "
                         f"{tuple(PAIR_METRICS)}")
    rows = pairs[(pairs.group == group) & (pairs.a == a) & (pairs.b == b)] if len(pairs) else pairs
    if not len(rows):
        return Decision(NOT_TESTABLE, reason=f"no runs of both {a} and {b} ({group})")
    x, y = rows[f"a_{metric}_{basis}"].to_numpy(float), rows[f"b_{metric}_{basis}"].to_numpy(float)
    missing = ~(np.isfinite(x) & np.isfinite(y))
    if missing.any():
        seeds = rows.seed[missing].tolist()
        why = (f"seed(s) {seeds} had no evaluation by the shorter run's time" if basis == "equal_time"
               else f"seed(s) {seeds} have no finite evaluation")
        return Decision(NOT_TESTABLE, n_seeds=len(rows), reason=why)
    return decide_paired(x, y, claimed)


def decide_all(decisions: dict) -> tuple[str, Decision]:
    """The claim's decision from its comparisons' ({name: Decision}, in order): the first contradicted one, else
    the first not testable, else the first inconclusive; when every one is confirmed, the one whose interval lies
    nearest 0 (the weakest confirmation)."""
    if not decisions:
        raise ValueError("a claim needs at least one comparison")
    for verdict in _PRECEDENCE:
        for name, d in decisions.items():
            if d.verdict == verdict:
                return name, d
    return min(decisions.items(), key=lambda item: min(abs(item[1].ci_low), abs(item[1].ci_high)))


def describe(d: Decision) -> str:
    """A decision in a few words: the mean paired difference, its interval and seeds, and the verdict."""
    if d.verdict == NOT_TESTABLE and math.isnan(d.ci_low):
        return f"{d.verdict} ({d.reason or d.gate})"
    return f"{d.difference:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}] over {d.n_seeds} seeds, {d.verdict}"


def paired_claim(text: str, source: str, where: str, pairs: pd.DataFrame, comparisons, decide_on: str, why: str,
                 metric: str = "bpd") -> Claim:
    """A claim decided by paired comparisons: ``comparisons`` are (group, a, b, claimed direction of a - b); each is
    decided at both :data:`BASES`, the verdict at ``decide_on`` (:func:`decide_all`), and ``why`` that basis is
    said in the evidence beside the other basis's results."""
    if decide_on not in BASES:
        raise ValueError(f"decide_on={decide_on!r} must be one of {tuple(BASES)}")
    other = next(b for b in BASES if b != decide_on)
    decisions, lines = {}, {basis: [] for basis in BASES}
    for group, a, b, claimed in comparisons:
        name = f"{group}: {a} - {b}"
        for basis in BASES:
            d = decide_comparison(pairs, group, a, b, claimed, basis, metric)
            decisions.setdefault(basis, {})[name] = d
            lines[basis].append(f"{name} {describe(d)} (claimed {'< 0' if claimed == 'lower' else '> 0'})")
    name, decision = decide_all(decisions[decide_on])
    evidence = (f"{PAIR_METRICS[metric][0].upper()}{PAIR_METRICS[metric][1:]}, paired by training seed ({PAIRED_T}); "
                f"decided at {BASES[decide_on]} ({why}), by the comparison {name}; at equal training time each "
                f"seed's two runs are cut at the shorter one's training time ({clocks_text(pairs)}). "
                f"At {BASES[decide_on]}: "
                + "; ".join(lines[decide_on]) + f". At {BASES[other]} (shown, not deciding): "
                + "; ".join(lines[other]) + ".")
    return Claim.decided(text, source, where, decision, evidence)


def clocks_text(pairs: pd.DataFrame) -> str:
    """Which clock timed the pairs (:data:`CLOCKS`), in words."""
    used = list(dict.fromkeys(pairs["clock"])) if "clock" in pairs and len(pairs) else []
    return "timed in " + " and ".join(CLOCKS[c] for c in used) if used else "no pair timed"


def pair_summary(pairs: pd.DataFrame, claimed="lower", metric: str = "bpd") -> pd.DataFrame:
    """One row per comparison and basis: the mean of each side over seeds, the mean paired difference ``a - b``
    with its 95% interval, the mean steps each side reached (and the common time, at equal training time), and the
    verdict for the ``claimed`` direction of ``a - b`` (one for all, or {(group, a, b): direction})."""
    rows = []
    for (group, a, b), part in pairs.groupby(["group", "a", "b"], sort=False):
        direction = claimed if isinstance(claimed, str) else claimed.get((group, a, b), "lower")
        for basis in BASES:
            d = decide_comparison(part, group, a, b, direction, basis, metric)
            steps = "steps" if basis == "equal_steps" else "steps_by_time"
            rows.append({"group": group, "a": a, "b": b, "basis": basis, "n_seeds": len(part),
                         "a_mean": part[f"a_{metric}_{basis}"].mean(), "b_mean": part[f"b_{metric}_{basis}"].mean(),
                         "difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high,
                         "a_steps": part[f"a_{steps}"].mean(), "b_steps": part[f"b_{steps}"].mean(),
                         "time_s": part.time_s.mean() if basis == "equal_time" else math.nan,
                         "clock": "/".join(dict.fromkeys(part["clock"])) if basis == "equal_time" and "clock" in part
                         else "", "claimed": direction, "verdict": d.verdict})
    return pd.DataFrame(rows)


def plot_pairs(summary: pd.DataFrame, title: str = "", unit: str = "bits/dim"):
    """The paired differences ``a - b`` with their 95% intervals over seeds, one row per comparison, at equal
    steps and at equal training time side by side (:func:`pair_summary`)."""
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(f"{r.group}: {r.a} - {r.b}" for r in summary.itertuples()))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(names) + 1.4))
    for k, (basis, words) in enumerate(BASES.items()):
        part = summary[summary.basis == basis]
        y = [names.index(f"{r.group}: {r.a} - {r.b}") + (k - 0.5) * 0.3 for r in part.itertuples()]
        low = (part.difference - part.ci_low).fillna(0).clip(lower=0)
        high = (part.ci_high - part.difference).fillna(0).clip(lower=0)
        ax.errorbar(part.difference, y, xerr=[low.to_numpy(), high.to_numpy()], fmt="o" if k == 0 else "s",
                    capsize=3, label=words)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(f"a - b, {unit} (mean over seeds, 95% paired t-interval)")
    ax.legend(fontsize="small")
    fig.suptitle(title or "Paired differences at equal steps and at equal training time")
    fig.tight_layout()
    return fig


def read_optional(profile: str, notebook: str, name: str, root=None) -> pd.DataFrame | None:
    """A recorded table, or None where the notebook's results predate it."""
    path = results_dir(profile, notebook, root) / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


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
    rows += conv1x1_time(profiles(bench_path(bench_dir), Cost())).to_dict("records")
    return pd.DataFrame(rows)


def conv1x1_time(profiled: pd.DataFrame | None) -> pd.DataFrame:
    """The ``time`` rows of :func:`conv1x1_cost` from profiled training steps (``cost.profiles``; None: no
    record): per step, the 1x1 group's milliseconds, its ``share`` of the step and ``extra``, share / (1 - share),
    what it adds against a model without it (an upper bound: a shuffle costs a copy), the quantity of the paper's
    "~7% more wall time" (:data:`PAPER_CONV1X1`)."""
    if profiled is None:
        return pd.DataFrame()
    return pd.DataFrame([{"measure": "time", "source": f"profile_{r.config}.json", "channels": r.channels,
                          "image_size": r.image_size, "levels": r.levels, "depth": r.depth, "width": r.width,
                          "batch": r.batch, "precision": r.precision, "conv1x1": r.ms_per_step,
                          "total": r.ms_per_step / r.share if r.share else math.nan, "share": r.share,
                          "extra": r.share / (1 - r.share)}
                         for r in profiled[profiled.group == "conv1x1"].itertuples()])


def conv1x1_time_beside_paper(profiled: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`conv1x1_time`'s rows (empty without a profile record) beside the paper's Sec. 5.1 figure, a row at
    the paper's configuration (``profiles.PAPER_MODEL``, ``PAPER_TRAIN``'s batch) marked as the paper's."""
    from ..analysis.presentation import beside_paper
    from ..profiles import PAPER_MODEL, PAPER_TRAIN
    ours = conv1x1_time(profiled)
    if not len(ours):
        return ours
    paper = pd.DataFrame({"depth": [PAPER_MODEL.depth], "width": [PAPER_MODEL.width], "batch": [PAPER_TRAIN.batch_size],
                          "extra": [PAPER_CONV1X1["time"]],
                          "source": ["Kingma & Dhariwal 2018, Sec. 5.1 (CIFAR-10, 3x32x32, full scale, GPUs)"]})
    columns = ["source", "depth", "width", "batch", "precision", "conv1x1", "share", "extra"]
    return beside_paper(ours[columns], paper, label="depth")


# ---------------------------------------------------------------------------------------------------- claims
STEPS_WHY = ("Fig. 3 compares the permutations at equal epochs; the what_works page decides the reviewers' "
             "equal-time question")
PAPER_CONV1X1 = {"parameters": 0.002, "time": 0.07}     # Sec. 5.1: ~0.2% more parameters, ~7% more wall time
COST_FACTOR = 2       # "costs little" holds while ours is at most twice the paper's figure


def cost_claim(text: str, source: str, table: pd.DataFrame | None) -> Claim:
    """The 1x1 convolution's cost (Sec. 5.1), from ``cost.conv1x1_cost``'s table: confirmed when its extra
    parameters at the paper's config and its extra time in every profiled training step at the paper's width are
    at most :data:`COST_FACTOR` times the paper's figures; contradicted when the parameters, or every such profile,
    exceed that; inconclusive when the profiles disagree."""
    if table is None or not len(table):
        return Claim(text, source, "ablation", NOT_TESTABLE, "the ablation's results predate the cost table "
                     "(conv1x1_cost.csv): rerun `make notebook NB=ablation`")
    params = table[table.measure == "parameters"].iloc[0]
    flops = table[table.measure == "flops"]
    times = table[(table.measure == "time") & (table.width == params.width)]
    limit = {k: COST_FACTOR * v for k, v in PAPER_CONV1X1.items()}
    parts = [f"parameters at the paper's config (free parameters under LU, counted from a built model): "
             f"{int(params.conv1x1):,} of {int(params.total):,}, {params.share:.3%} of the model, "
             f"{params.extra:+.3%} against shuffle (paper ~+{PAPER_CONV1X1['parameters']:.1%})"]
    if len(flops):
        f = flops.iloc[0]
        parts.append(f"FLOPs of a training step at the paper's config (counted): {f.share:.3%} of the step, "
                     f"{f.extra:+.3%} against shuffle")
    parts.append("time (torch.profiler self time of the 1x1 group, which with fused layers holds the step's ActNorm "
                 "too, so an upper bound; extra = share / (1 - share)): "
                 + ("; ".join(f"{r.source} (width {r.width:.0f}, K={r.depth:.0f}, batch {r.batch:.0f}, "
                              f"{r.precision}) {r.share:.1%} of the step, {r.extra:+.1%}" for r in times.itertuples())
                    if len(times) else f"no profile record at the paper's width {params.width:.0f}"))
    evidence = (f"Counted, not timed over whole runs; confirmed when the extra parameters and every profiled "
                f"extra time at the paper's width are at most {COST_FACTOR}x the paper's figures "
                f"(+{limit['parameters']:.1%}, +{limit['time']:.0%}). " + "; ".join(parts) + ".")
    if not len(times):
        return Claim(text, source, "ablation", NOT_TESTABLE, evidence)
    over_params = params.extra > limit["parameters"]
    over_time = times.extra > limit["time"]
    verdict = (CONTRADICTED if over_params or over_time.all() else INCONCLUSIVE if over_time.any() else CONFIRMED)
    return Claim(text, source, "ablation", verdict, evidence, test="counted parameters and FLOPs; profiled time shares")


def claims(profile: str, root=None) -> list[Claim]:
    """Fig. 3's and Sec. 5.1's claims and the reviewers' questions the ablation answers: paired by seed over its
    runs (:func:`paired_claim`, at equal steps as Fig. 3, equal training time beside), and the 1x1's cost from counts
    and profiles (:func:`cost_claim`)."""
    missing = need(profile, root, "ablation")
    texts = ["1x1 convolution < shuffle < reverse in final NLL (Fig. 3)",
             "The learned 1x1 convolution converges faster than shuffle and reverse (Fig. 3)",
             "Affine coupling reaches lower NLL than additive coupling (Fig. 3)",
             "The 1x1 convolution costs little: ~0.2% more parameters and ~7% more wall time (Sec. 5.1)",
             "A learned 1x1 convolution beats a fixed random rotation (reviewers: ablate what makes Glow work)",
             "Error bars over seeds (reviewers)"]
    sources = ["paper", "paper", "paper", "paper", "reviewers", "reviewers"]
    if missing:
        return [Claim(c, s, "ablation", missing.verdict, missing.evidence) for c, s in zip(texts, sources)]
    pairs = read_optional(profile, "ablation", "pairs", root)
    if pairs is None:
        stale = Claim("", "paper", "ablation", NOT_TESTABLE, "the ablation's results predate its per-seed pairs "
                      "(pairs.csv): rerun `make notebook NB=ablation`")
        out = [Claim(c, s, "ablation", stale.verdict, stale.evidence) for c, s in zip(texts, sources)]
        out[3] = cost_claim(texts[3], sources[3], read_optional(profile, "ablation", "conv1x1_cost", root))
        return out
    couplings = list(dict.fromkeys(pairs[pairs.a != "affine"].group))
    permutations = list(dict.fromkeys(pairs[pairs.a == "affine"].group))
    out = [paired_claim(texts[0], sources[0], "ablation", pairs,
                        [(c, a, b, "lower") for c in couplings for a, b in (("conv1x1", "shuffle"),
                                                                            ("shuffle", "reverse"))],
                        "equal_steps", STEPS_WHY),
           paired_claim(texts[1], sources[1], "ablation", pairs,
                        [(c, "conv1x1", b, "lower") for c in couplings for b in ("shuffle", "reverse")],
                        "equal_steps", STEPS_WHY, metric="curve_mean"),
           paired_claim(texts[2], sources[2], "ablation", pairs,
                        [(p, "affine", "additive", "lower") for p in permutations], "equal_steps", STEPS_WHY)
           if permutations else Claim(texts[2], sources[2], "ablation", NOT_TESTABLE,
                                      "the ablation ran one coupling only"),
           cost_claim(texts[3], sources[3], read_optional(profile, "ablation", "conv1x1_cost", root)),
           paired_claim(texts[4], sources[4], "ablation", pairs,
                        [(c, "conv1x1", "rotation", "lower") for c in couplings], "equal_steps",
                        "the fixed rotation differs from the learned 1x1 only in training its weights, which costs "
                        "little time")]
    s = read_table(profile, "ablation", "summary", root)
    n_seeds = int(s.n_seeds.min())
    evidence = (f"Every ablation variant was trained with {n_seeds} or more seeds (the paired tests need "
                f"{MIN_SEEDS}); the figure shows mean ± std bands, the summary mean ± std, and every claim above "
                f"a paired t-interval over seeds.")
    out.append(Claim(texts[5], sources[5], "ablation", CONFIRMED if n_seeds >= MIN_SEEDS else NOT_TESTABLE,
                     evidence if n_seeds >= MIN_SEEDS else f"{n_seeds} seed(s); the test needs {MIN_SEEDS}. "
                     + evidence))
    return out
