"""The Cost page's figures and values: what training and sampling cost, from the benchmark records of ``bench/``
read by ``glowlib.analysis.bench_records`` (nothing here times anything). The logic of ``notebooks/cost.py``."""
from __future__ import annotations

import math
import textwrap
from types import SimpleNamespace

import pandas as pd

from ..analysis.bench_records import KEYS, conv1x1_time_beside_paper, cost_tables  # noqa: F401  (the notebook calls them here)
from .base import SEED, folder, publish  # noqa: F401  (publish: the notebook calls it through this module)
from .base import COLUMN_INCHES, check_values

NOTEBOOK = "cost"
PARAMETERS = {**SEED, "bench_dir": folder}
IMPLEMENTATION_WORDS = {"ours": "glowlib", "ours_T0": "glowlib, T = 0", "reference": "plain reference",
                        "ours_inv_backprop": "glowlib, invertible backprop", "ours_stored": "glowlib, autograd stores",
                        }
ALLOCATOR_WORDS = {"tuned": "tuned", "system": "as it is"}
QUALITY_WORDS = {"ours": "glowlib, cpu profile recipe", "reference": "plain reference, official recipe as ports run it"}
# the 1x1 convolution's cost (``ablation.conv1x1_cost``) and the paper's sampling speed
# (``sampling_cost.paper_sampling_speed``) are decided on their own pages; this page reports costs
CLAIMS = ()


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """None: the page reads the benchmark records of ``bench/``."""
    return []


def page_values(tables: dict) -> dict:
    """The numbers the page's words quote that no table or figure beside them shows (NaN where not recorded):
    ``bf16_over_fp32_<allocator>``, the best bf16 images/s of the batch sweep over the best fp32 (each at its best
    batch and options), per allocator setting; ``compile_speedup``, a compiled training step's images/s over eager's
    of the same variant, and ``compile_first_step_s``, its first step's seconds (tracing and code generation)."""
    values = {f"bf16_over_fp32_{a}": math.nan for a in ALLOCATOR_WORDS}
    sweep = tables.get("batch_sweep")
    if sweep is not None:
        best = sweep.groupby(["allocator", "precision"]).images_per_s.max()
        for allocator in ALLOCATOR_WORDS:
            if (allocator, "bf16") in best and (allocator, "fp32") in best:
                values[f"bf16_over_fp32_{allocator}"] = best[allocator, "bf16"] / best[allocator, "fp32"]
    values.update(compile_speedup=math.nan, compile_first_step_s=math.nan)
    timed = tables.get("compile")
    if timed is not None:
        eager = timed[~timed.compiled].set_index(["config", "variant"]).images_per_s
        for r in timed[timed.compiled].itertuples():
            if (r.config, r.variant.removeprefix("compiled_")) in eager:
                values.update(compile_speedup=r.images_per_s / eager[r.config, r.variant.removeprefix("compiled_")],
                              compile_first_step_s=r.first_step_s)
                break
    return values


# ---------------------------------------------------------------------------------------------------- figures
def _hardware(df: pd.DataFrame) -> str:
    seen = sorted({f"{r.device_name} ({r.device}, {r.threads} threads)" if r.device == "cpu" else
                   f"{r.device_name}" for r in df.itertuples()})
    return "; ".join(seen)


def _label(r) -> str:
    return f"{r.config}: {r.channels}x{r.image_size}x{r.image_size}, L={r.levels}, K={r.depth}, width {r.width}"


def _title(text: str) -> str:
    """A figure's title wrapped to lines that fit the book's column at its font (a machine's long name)."""
    return textwrap.fill(text, 90)


def _config_lines(r) -> str:
    """A benchmark config in three short lines, to stand under or beside its bars."""
    return f"{r.config}\n{r.channels}x{r.image_size}x{r.image_size}, L={r.levels}, K={r.depth}\nwidth {r.width}"


def plot_epoch_time(df: pd.DataFrame | None):
    """Minutes per epoch, ours beside the reference, a row of two bars per config (its model, batch and epoch
    named beside it), as wide as the book's column (``base.COLUMN_INCHES``); None without data."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 0.85 * len(configs) + 1.5), layout="constrained")
    for k, impl in enumerate(("ours", "reference")):
        part = df[df.implementation == impl].set_index("config")
        ys = [i + (k - 0.5) * 0.38 for i, c in enumerate(configs) if c in part.index]
        xs = [part.loc[c, "minutes_per_epoch"] for c in configs if c in part.index]
        bars = ax.barh(ys, xs, height=0.36, label=IMPLEMENTATION_WORDS[impl])
        ax.bar_label(bars, fmt="%.1f", fontsize="small", padding=2)
    first = df.drop_duplicates("config").set_index("config")
    ax.set_yticks(range(len(configs)), [f"{_label(first.loc[[c]].reset_index().iloc[0])}\nbatch "
                                        f"{first.loc[c, 'batch']}, epoch = {first.loc[c, 'epoch_images']:,}\n"
                                        f"({first.loc[c, 'epoch_of']})" for c in configs], fontsize="small")
    ax.invert_yaxis()
    ax.margins(x=0.12)                           # room for the bar labels
    ax.set_xlabel("minutes per training epoch")
    ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
    fig.suptitle(_title(f"Time per epoch (forward, backward, Adamax) on {_hardware(df)}"), fontsize="medium")
    return fig


def plot_sampling(df: pd.DataFrame | None):
    """ms per sample against image size, ours and the reference, beside the published figure; the legend under
    the axes, where it covers no point."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 5.4), layout="constrained")
    df = df.assign(dims=df.channels * df.image_size ** 2)
    measured = df[df.source == "measured"]
    for (impl, precision), part in measured.groupby(["implementation", "precision"], sort=False):
        part = part.sort_values("dims").drop_duplicates("dims")    # each bf16 record times the reference again
        ax.plot(part.dims, part.ms_per_image, "o-" if precision == "fp32" else "s--",
                label=f"{IMPLEMENTATION_WORDS.get(impl, impl)}{', bf16 networks' if precision == 'bf16' else ''}, "
                f"{_hardware(part)}")
        if impl == "reference":
            for r in part.itertuples():
                ax.annotate(f"{r.config}: {r.channels}x{r.image_size}x{r.image_size}\nL={r.levels:.0f}, "
                            f"K={r.depth:.0f}",
                            (r.dims, r.ms_per_image), fontsize="x-small", xytext=(-4, 4), textcoords="offset points",
                            ha="right", va="bottom")
    for r in df[df.source == "published"].itertuples():
        ax.plot([r.dims], [r.ms_per_image], "*", markersize=14, color="black",
                label=f"paper: ~{r.ms_per_image:.0f} ms, {r.channels}x{r.image_size}x{r.image_size}, {r.device_name}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.margins(x=0.2)                            # room for the labels left of the first points
    ax.set_xlabel("dimensions per sample, C·H·W (resolution)")
    ax.set_ylabel("ms per sample")
    fig.legend(fontsize="small", loc="outside lower center")
    fig.suptitle("Sampling cost against resolution (published figure: Kingma & Dhariwal 2018)", fontsize="medium")
    return fig


def plot_memory(df: pd.DataFrame | None):
    """Peak memory of a training step against K, per config (two panels a row, as wide as the book's column), with
    and without invertible backprop."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    ncol = min(2, len(configs))
    nrow = -(-len(configs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES * ncol / 2, 3.4 * nrow), squeeze=False,
                             layout="constrained")
    for ax in list(axes.flat)[len(configs):]:
        ax.set_visible(False)
    for ax, config in zip(axes.flat, configs):
        part = df[df.config == config]
        for variant, rows in part.groupby("variant", sort=False):
            rows = rows.sort_values("depth")
            ax.plot(rows.depth, rows.peak_mb, "o-", label=IMPLEMENTATION_WORDS.get(variant, variant))
        r = part.iloc[0]
        ax.set_title(f"{_label(r)}\nbatch {r.batch}", fontsize="small")
        ax.set_xlabel("depth K (steps per level)")
        ax.set_ylabel(f"peak memory, MiB ({r.measure})")
        ax.legend(fontsize="small")
    fig.suptitle(_title(f"Training memory against depth on {_hardware(df)}"), fontsize="medium")
    return fig


def plot_roofline(df: pd.DataFrame | None, peaks: pd.DataFrame | None = None):
    """Achieved GFLOP/s per config and implementation against the peak measured in the same process (and the
    standalone peak entries, when recorded), log scale; the legend under the figure, where it covers no bar."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 5.6), layout="constrained")
    for k, impl in enumerate(("ours", "reference")):
        part = df[df.implementation == impl].set_index("config")
        xs = [i + (k - 0.5) * 0.38 for i, c in enumerate(configs) if c in part.index]
        rows = [part.loc[c] for c in configs if c in part.index]
        # useful work: the model's FLOPs per image (plain autograd) × images/s, so that invertible backprop's
        # recomputation, which costs time but does no extra useful work, does not count as throughput
        useful = [r.model_gflops_per_s if "model_gflops_per_s" in r and not pd.isna(r.model_gflops_per_s)
                  else r.gflops_per_s for r in rows]
        bars = ax.bar(xs, useful, width=0.36, label=IMPLEMENTATION_WORDS[impl])
        ax.bar_label(bars, labels=["" if pd.isna(r.peak_gflops) else f"{u / r.peak_gflops:.0%}"
                                   for r, u in zip(rows, useful)], fontsize="small")
    first = df.drop_duplicates("config").set_index("config")            # ours' row: its precision's peak
    labelled = set()
    for i, c in enumerate(configs):
        p, precision = first.loc[c, "peak_gflops"], first.loc[c, "peak_precision"]
        if p is not None and not pd.isna(p):
            ax.hlines(p, i - 0.45, i + 0.45, colors="black", linestyles="--" if precision == "float32" else "-.",
                      label=None if precision in labelled else f"measured {precision} peak, same process (ours)")
            labelled.add(precision)
    if peaks is not None:
        standalone = peaks[peaks.source == "peak"]
        for j, (precision, part) in enumerate(standalone.groupby("precision", sort=False)):
            ax.axhline(part.gflops.max(), color=f"C{j + 2}", linestyle=":", linewidth=1,
                       label=f"peak.json: {precision} best of matmul/conv3x3")
    ax.set_yscale("log")
    ax.set_xticks(range(len(configs)), [_config_lines(first.loc[[c]].reset_index().iloc[0]) for c in configs],
                  fontsize="small")
    ax.tick_params(axis="y", which="both", labelsize="small")
    ax.set_ylabel("useful GFLOP/s\n(model's matmul + conv FLOPs)")
    fig.legend(fontsize="small", loc="outside lower center", ncol=2)
    fig.suptitle(_title(f"Training throughput against this machine's peak on {_hardware(df)} (bar labels: fraction "
                        f"of peak)"), fontsize="medium")
    return fig


VARIANT_WORDS = {"defaults": "fp32, invertible backprop", "defaults_without_inv_backprop": "fp32, stored activations",
                 "bf16": "bf16, invertible backprop", "bf16_without_inv_backprop": "bf16, stored activations"}


def plot_batch_sweep(df: pd.DataFrame | None):
    """Useful fraction of peak (top) and images/s (bottom) against the batch, a line per variant, solid with the
    allocator as glowlib.training sets it, dashed as it is by default; the panels one above the other and the
    legend under them, as wide as the book's column."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 7.6), sharex=True, layout="constrained")
    variants = list(dict.fromkeys(df.variant))
    for (config, variant), part in df.groupby(["config", "variant"], sort=False):
        part = part.sort_values("batch")
        tuned = (part.allocator == "tuned").all()
        style = dict(color=f"C{variants.index(variant)}", linestyle="-" if tuned else "--",
                     marker="o" if tuned else "s")
        label = f"{VARIANT_WORDS.get(variant, variant)}, allocator {ALLOCATOR_WORDS['tuned' if tuned else 'system']}"
        axes[0].plot(part.batch, part.model_fraction_of_peak, label=label, **style)
        axes[1].plot(part.batch, part.images_per_s, label=label, **style)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(df.batch.unique()), [str(b) for b in sorted(df.batch.unique())])
    axes[1].set_xlabel("batch size")
    axes[0].set_ylabel("useful GFLOP/s over the\nmeasured peak of its precision")
    axes[0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    axes[1].set_ylabel("training images/s")
    axes[1].legend(*axes[1].get_legend_handles_labels(), fontsize="small", loc="upper center", ncol=2,
                   bbox_to_anchor=(0.5, -0.22))
    first = df.iloc[0]
    fig.suptitle(_title(f"Training throughput against the batch: {first.channels}x{first.image_size}x"
                        f"{first.image_size}, L={first.levels}, K={first.depth}, width {first.width} on "
                        f"{_hardware(df)}"), fontsize="medium")
    return fig


def plot_profile(df: pd.DataFrame | None):
    """Share of a training step's time per group of ops, a stacked bar per profiled config (named beside it in
    two lines), the legend under the bars, as wide as the book's column."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    groups = list(dict.fromkeys(df.group))
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 2.2 + 0.6 * len(configs)), layout="constrained")
    left = [0.0] * len(configs)
    for j, group in enumerate(groups):
        part = df[df.group == group].set_index("config")
        widths = [float(part.loc[c, "share"]) if c in part.index else 0.0 for c in configs]
        ax.barh(range(len(configs)), widths, left=left, color=f"C{j}", label=group.replace("_", " "))
        for i, (w, l0) in enumerate(zip(widths, left)):
            if w >= 0.08:                    # a label fits inside its part of the bar
                ax.text(l0 + w / 2, i, f"{w:.0%}", ha="center", va="center", fontsize="small", color="white")
        left = [a + b for a, b in zip(left, widths)]
    first = df.drop_duplicates("config").set_index("config")
    ax.set_yticks(range(len(configs)), [
        f"{c}: {first.loc[c, 'channels']}x{first.loc[c, 'image_size']}x{first.loc[c, 'image_size']}, width "
        f"{first.loc[c, 'width']}, batch {first.loc[c, 'batch']}\n{first.loc[c, 'precision']}, "
        f"{'invertible backprop' if first.loc[c, 'inv_backprop'] else 'stored activations'}"
        f"{', allocator tuned' if first.loc[c, 'allocator'] == 'tuned' else ''}" for c in configs], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("share of a training step's time (torch.profiler self time)")
    fig.legend(fontsize="small", loc="outside lower center", ncol=3)
    fig.suptitle(_title(f"Where a training step's time goes, on {_hardware(df)}"), fontsize="medium")
    return fig



def plot_quality_vs_time(chosen: pd.DataFrame | None, curves: pd.DataFrame | None):
    """Test bits/dim (2,000-image part) against minutes of training, a line per run, and each budget's
    validation-chosen checkpoint on the whole test split as a marker (None without records); one panel per
    machine, one above the other, as wide as the book's column (``base.COLUMN_INCHES``)."""
    if chosen is None or curves is None:
        return None
    import matplotlib.pyplot as plt
    machines = list(dict.fromkeys(chosen.device_name))         # one panel per machine: its runs share a clock
    fig, axes = plt.subplots(len(machines), 1, figsize=(COLUMN_INCHES, 3.2 * len(machines) + 0.5), squeeze=False,
                             sharey=True, layout="constrained")
    colours = {"ours": "C0", "reference": "C1"}
    for ax, machine in zip(axes[:, 0], machines):
        here = chosen[chosen.device_name == machine]
        for run, part in curves[curves.run.isin(set(here.run))].groupby("run", sort=False):
            c = part.contender.iloc[0]
            ax.plot(part.train_s / 60, part.test_curve_bpd, color=colours.get(c, "C2"), alpha=0.8,
                    label=f"{QUALITY_WORDS.get(c, c)}, {part.budget_min.iloc[0]:g}-min run")
        for r in here.itertuples():
            ax.plot(r.minutes, r.test_bpd, "o", color=colours.get(r.contender, "C2"), markersize=7)
            ax.annotate(f"{r.test_bpd:.3f}", (r.minutes, r.test_bpd), textcoords="offset points", xytext=(4, 4),
                        fontsize="small")
        ax.set(xlabel="minutes of training", ylabel="test bits/dim",
               ylim=(None, min(6.0, curves.test_curve_bpd.max())),
               title=f"{machine}, {here.threads.iloc[0]} threads, {here.precision.iloc[0]}")
        ax.margins(x=0.06)                       # room for the last checkpoint's label
        ax.legend(fontsize="small")
    fig.suptitle("Fashion-MNIST: quality against training time")
    return fig


