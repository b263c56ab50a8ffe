"""The Cost page: what training and sampling cost, read from the recorded benchmarks.

Nothing here times anything: ``bench/`` measures (``bench/run_all.py`` writes ``results/bench/<job>.json``), this
module turns those records into tidy tables and figures, and ``notebooks/cost.py`` shows and records them. A record
that is missing (a benchmark not run yet) leaves its table out and adds a note saying which command makes it.

Tables (one row per observation):

- ``epoch_time``: seconds and minutes per training epoch, ours and the reference, per benchmarked config, from
  ``train_*.json`` (images/s of forward, backward and an Adamax step). An epoch is the training set of the data the
  config's shape stands for: 50,000 images for 3x32x32 (CIFAR-10), 60,000 for one-channel 28x28 or 32x32
  (MNIST / Fashion-MNIST, padded to 32x32 in the benchmark configs); other shapes have no epoch and are left out.
- ``sampling``: ms per sample against the image size, from ``sample_*.json``, beside the published figure of
  ``glowlib/published_speed.csv`` (the paper's ~130 ms for a 256x256 sample on a GTX 1080 Ti).
- ``memory``: peak memory of a training step against the depth K, with and without invertible backprop and for
  the reference, from ``memory_*.json``.
- ``throughput`` and ``peak``: achieved GFLOP/s of a training step per config (``train_*.json`` written by
  ``bench/train_throughput.py``) and the machine's measured matmul/conv peak per precision (``peak.json`` and the
  peak each train record measured in its own process).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from ..results import repo_root
from ._training_cost import plot_quality_vs_time, quality_summary, quality_vs_time, recipe  # noqa: F401  (notebook)
from .base import SEED, Claim, folder
from .base import check_values

NOTEBOOK = "cost"
PARAMETERS = {**SEED, "bench_dir": folder}
# (channels, image size) -> (training images per epoch, the data set it stands for)
EPOCH_IMAGES = {(3, 32): (50_000, "CIFAR-10"), (1, 28): (60_000, "MNIST / Fashion-MNIST"),
                (1, 32): (60_000, "MNIST / Fashion-MNIST (padded to 32x32)")}
KEYS = {"epoch_time": ["config", "implementation"], "sampling": ["source", "config", "implementation"],
        "memory": ["config", "variant", "depth"], "throughput": ["config", "implementation"],
        "peak": ["source", "op", "precision", "layout"], "batch_sweep": ["config", "variant", "batch"],
        "compile": ["config", "variant"], "profile": ["config", "group"], "quality_vs_time": ["run", "minutes"],
        "quality_curves": ["run", "step"], "recipe": ["variant"]}
IMPLEMENTATION_WORDS = {"ours": "glowlib", "ours_T0": "glowlib, T = 0", "reference": "plain reference",
                        "ours_inv_backprop": "glowlib, invertible backprop", "ours_stored": "glowlib, autograd stores",
                        }
RUN = "python bench/run_all.py"


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``)."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """None: the page reads the benchmark records of ``bench/``."""
    return []


def claims(profile: str, root=None) -> list[Claim]:
    """None: the page reports costs; the sampling-speed claim is the sampling-cost study's."""
    return []


def published_speed() -> pd.DataFrame:
    """The published speed figures (``glowlib/published_speed.csv``), with their source."""
    with resources.files("glowlib").joinpath("published_speed.csv").open() as f:
        return pd.read_csv(f)


def bench_path(bench_dir) -> Path:
    """``bench_dir``; a relative one is taken from the repository root (where ``make`` runs the notebooks)."""
    path = Path(bench_dir)
    if not path.is_absolute() and not path.exists():
        path = repo_root() / path
    return path


@dataclass
class Cost:
    """The tables that could be made, one note per table that could not (or per record that was skipped), and
    where each record came from (file, git SHA, time, command, machine)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, dict] = field(default_factory=dict)


def _records(bench_dir: Path, prefix: str, cost: Cost, benchmarks) -> dict[str, dict]:
    """``{config name: record}`` of ``<prefix>_<config>.json`` (and ``<prefix>.json``, config name "") whose
    benchmark is one of ``benchmarks``."""
    out = {}
    for path in sorted(bench_dir.glob(f"{prefix}_*.json")) + sorted(bench_dir.glob(f"{prefix}.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            cost.notes.append(f"`{path.name}` could not be read ({e}); it is left out.")
            continue
        if record.get("benchmark") not in benchmarks:
            continue
        out[path.stem[len(prefix) + 1:]] = record
        env = record.get("env", {})
        cost.sources[path.name] = {k: env.get(k) for k in ("device_name", "threads", "git_sha", "git_dirty", "time",
                                                           "command", "load_average")}
    return out


def _model_columns(record: dict) -> dict:
    m = record["config"]["model"]
    return {"channels": m["in_channels"], "image_size": m["image_size"], "levels": m["n_levels"],
            "depth": m["depth"], "width": m["width"], "batch": record["config"]["batch"],
            "precision": m.get("precision", "fp32")}


def _precision_of(impl: str, model: dict) -> str:
    """The precision a contender computed in: ours in its config's, the reference always in float32."""
    return "fp32" if impl == "reference" else model["precision"]


def _machine(record: dict) -> dict:
    env = record.get("env", {})
    return {"device": env.get("device"), "device_name": env.get("device_name"), "threads": env.get("threads")}


def _allocator(record: dict) -> str:
    """How the record's process left glibc's allocator: ``tuned`` as glowlib.training sets it, else ``system``
    (records made before the setting existed included)."""
    return "tuned" if (record.get("env", {}).get("allocator") or {}).get("applied") else "system"


ALLOCATOR_WORDS = {"tuned": "tuned", "system": "as it is"}
TRAIN_BENCHMARKS = ("train_throughput", "train_speed")        # train_speed: records made before the rename


def epoch_time(records: dict[str, dict], bench_dir, cost: Cost) -> pd.DataFrame | None:
    """Minutes per epoch from the training records (``_records(bench_dir, "train", ...)``)."""
    rows = []
    for config, record in records.items():
        model = _model_columns(record)
        epoch = EPOCH_IMAGES.get((model["channels"], model["image_size"]))
        if epoch is None:
            cost.notes.append(f"`train_{config}.json` ({model['channels']}x{model['image_size']}x"
                              f"{model['image_size']}) has no data set of that shape, so no epoch; left out of the "
                              f"epoch table.")
            continue
        for impl in ("ours", "reference"):
            res = record["results"].get(impl)
            if res is None:
                continue
            seconds = epoch[0] / res["images_per_s"]
            rows.append({"config": config, "implementation": impl, **model,
                         "precision": _precision_of(impl, model), "epoch_images": epoch[0],
                         "epoch_of": epoch[1], "images_per_s": res["images_per_s"], "seconds_per_epoch": seconds,
                         "minutes_per_epoch": seconds / 60, **_machine(record)})
    if not rows:
        cost.notes.append(f"No training throughput recorded (`train_*.json` in {bench_dir}): no epoch times. "
                          f"Run `{RUN} --only train_small train_cifar`.")
        return None
    return pd.DataFrame(rows)


def sampling(bench_dir, cost: Cost) -> pd.DataFrame | None:
    rows = []
    for config, record in _records(bench_dir, "sample", cost, ("sample_speed",)).items():
        for impl in ("ours", "ours_T0", "reference"):
            res = record["results"].get(impl)
            if res is not None:
                model = _model_columns(record)
                rows.append({"source": "measured", "config": config, "implementation": impl, **model,
                             "precision": _precision_of(impl, model), "temperature": 0.0 if impl == "ours_T0" else
                             record.get("temperature"), "ms_per_image": res["ms_per_image"],
                             **_machine(record), "citation": ""})
    if not rows:
        cost.notes.append(f"No sampling speed recorded (`sample_*.json` in {bench_dir}): the sampling figure shows "
                          f"only the published number. Run `{RUN} --only sample_small sample_cifar sample_64`.")
    for r in published_speed().itertuples():
        if r.what == "sampling":
            rows.append({"source": "published", "config": f"paper_{r.image_size}", "implementation": r.model,
                         "channels": r.channels, "image_size": r.image_size, "ms_per_image": float(r.ms_per_image),
                         "device": "cuda", "device_name": r.hardware, "citation": r.source})
    df = pd.DataFrame(rows)
    ints = [c for c in ("levels", "depth", "width", "batch", "threads") if c in df]
    df[ints] = df[ints].astype("Int64")          # the published row has no model or batch: missing, not NaN floats
    return df


def memory(bench_dir, cost: Cost) -> pd.DataFrame | None:
    rows = []
    for config, record in _records(bench_dir, "memory", cost, ("memory",)).items():
        model = {k: v for k, v in _model_columns(record).items() if k != "depth"}
        for r in record["rows"]:
            rows.append({"config": config, "variant": r["variant"], "depth": r["depth"], **model,
                         "peak_mb": r["peak_mb"], "step_mb": r.get("step_mb"), "saved_mb": r.get("saved_mb"),
                         "measure": r.get("measure"), **_machine(record)})
    if not rows:
        cost.notes.append(f"No memory benchmark recorded (`memory_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only memory_small memory_cifar`.")
        return None
    return pd.DataFrame(rows)


def throughput(records: dict[str, dict], bench_dir,
               cost: Cost) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(achieved GFLOP/s per config and implementation, measured peak entries) from the training records and
    ``peak.json``; None where not recorded."""
    rows, peaks = [], []
    for config, record in records.items():
        res = record["results"]
        if "flops_per_image" not in res.get("ours", {}):
            cost.notes.append(f"`train_{config}.json` was recorded before FLOPs were counted "
                              f"({record['benchmark']}); rerun `{RUN} --only train_{config}` for the roofline.")
            continue
        for impl in ("ours", "reference"):
            if impl in res:
                r = res[impl]
                model = _model_columns(record)
                rows.append({"config": config, "implementation": impl, **model,
                             "precision": _precision_of(impl, model),
                             "peak_precision": r.get("precision", res["precision"] if impl == "ours" else "float32"),
                             "flops_per_image": r["flops_per_image"],
                             "model_flops_per_image": res["model_flops_per_image"],
                             "images_per_s": r["images_per_s"], "gflops_per_s": r["gflops_per_s"],
                             "model_gflops_per_s": r["model_gflops_per_s"],
                             "peak_gflops": r.get("peak_gflops", res["peak_gflops"]),
                             "fraction_of_peak": r["fraction_of_peak"], **_machine(record)})
        for e in (record.get("peak") or {}).get("entries", []):
            peaks.append(_peak_row(f"train_{config}", e, record))
    peak = _records(bench_dir, "peak", cost, ("peak",)).get("")        # peak.json: the name has no config part
    if peak is not None:
        peaks += [_peak_row("peak", e, peak) for e in peak["results"]["entries"]]
    else:
        cost.notes.append(f"No peak measurement (`peak.json` in {bench_dir}). Run `{RUN} --only peak`.")
    if not records:
        cost.notes.append("No training FLOPs recorded: no roofline. Run "
                          f"`{RUN} --only peak train_small train_cifar`.")
    return (pd.DataFrame(rows) if rows else None), (pd.DataFrame(peaks) if peaks else None)


def batch_sweep(bench_dir, cost: Cost) -> pd.DataFrame | None:
    """Training images/s and fraction of peak against the batch, per variant and allocator setting, from
    ``batch_sweep_*.json`` (``bench/batch_sweep.py``)."""
    rows = []
    for config, record in _records(bench_dir, "batch_sweep", cost, ("batch_sweep",)).items():
        model = {k: v for k, v in _model_columns(record).items() if k not in ("batch", "precision")}
        for r in record["rows"]:
            variant_model = {**record["config"]["model"], **record["variants"][r["variant"]]}
            rows.append({"config": config, "variant": r["variant"], "batch": r["batch"], **model,
                         "precision": variant_model.get("precision", "fp32"),
                         "inv_backprop": variant_model.get("inv_backprop", True),
                         "allocator": _allocator(record),
                         "peak_precision": r["precision"], "images_per_s": r["images_per_s"],
                         "flops_per_image": r["flops_per_image"], "model_flops_per_image": r["model_flops_per_image"],
                         "gflops_per_s": r["gflops_per_s"], "model_gflops_per_s": r["model_gflops_per_s"],
                         "peak_gflops": r["peak_gflops"], "fraction_of_peak": r["fraction_of_peak"],
                         "model_fraction_of_peak": r["model_fraction_of_peak"], **_machine(record)})
    if not rows:
        cost.notes.append(f"No batch sweep recorded (`batch_sweep_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only batch_sweep_cifar batch_sweep_cifar_tuned`.")
        return None
    return pd.DataFrame(rows)


def compiled(bench_dir, cost: Cost) -> pd.DataFrame | None:
    """``torch.compile`` against eager (``compile_*.json``, ``bench/options.py --compile``): images/s per variant,
    and the first step's seconds (tracing and code generation) of the compiled one."""
    rows = []
    for config, record in _records(bench_dir, "compile", cost, ("options",)).items():
        for variant, r in record["results"].get("train", {}).items():
            rows.append({"config": config, "variant": variant, **_model_columns(record),
                         "compiled": variant.startswith("compiled_"), "images_per_s": r["images_per_s"],
                         "first_step_s": r.get("first_step_s"), **_machine(record)})
    if not rows:
        cost.notes.append(f"No torch.compile measurement (`compile_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only compile_cifar`.")
        return None
    return pd.DataFrame(rows)


def profiles(bench_dir, cost: Cost) -> pd.DataFrame | None:
    """Where a training step's time goes (``profile_*.json``, ``bench/profile_ops.py``): self time per group of ops
    and its share of the step, per profiled config."""
    rows = []
    for config, record in _records(bench_dir, "profile", cost, ("profile_ops",)).items():
        model = record["config"]["model"]
        for group, g in record["results"]["groups"].items():
            rows.append({"config": config, "group": group, **_model_columns(record),
                         "inv_backprop": model.get("inv_backprop", True),
                         "allocator": _allocator(record),
                         "ms_per_step": g["ms_per_step"], "share": g["share"], **_machine(record)})
    if not rows:
        cost.notes.append(f"No profile recorded (`profile_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only profile_cifar profile_cifar_b64`.")
        return None
    return pd.DataFrame(rows)


def _peak_row(source: str, e: dict, record: dict) -> dict:
    return {"source": source, "op": e["op"], "precision": e["precision"], "layout": e["layout"] or "",
            "shape": "x".join(map(str, e["shape"])), "gflops": e["gflops"], "gflops_best": e["gflops_best"],
            **_machine(record)}


def cost_tables(bench_dir="results/bench") -> Cost:
    """Every table that the records in ``bench_dir`` allow, and a note for each that they do not."""
    bench_dir = bench_path(bench_dir)
    cost = Cost()
    if not bench_dir.is_dir():
        cost.notes.append(f"{bench_dir} does not exist: no benchmark has been recorded. Run `{RUN}`.")
    train = _records(bench_dir, "train", cost, TRAIN_BENCHMARKS)      # read once, used by two tables
    tables = {"epoch_time": epoch_time(train, bench_dir, cost), "sampling": sampling(bench_dir, cost),
              "memory": memory(bench_dir, cost)}
    tables["throughput"], tables["peak"] = throughput(train, bench_dir, cost)
    tables["batch_sweep"], tables["compile"] = batch_sweep(bench_dir, cost), compiled(bench_dir, cost)
    tables["profile"] = profiles(bench_dir, cost)
    tables["quality_vs_time"], tables["quality_curves"] = quality_vs_time(bench_dir, cost.notes, cost.sources)
    tables["recipe"] = recipe(bench_dir, cost.notes, cost.sources)
    cost.tables = {name: df for name, df in tables.items() if df is not None and len(df)}
    return cost


# ---------------------------------------------------------------------------------------------------- figures
def _hardware(df: pd.DataFrame) -> str:
    seen = sorted({f"{r.device_name} ({r.device}, {r.threads} threads)" if r.device == "cpu" else
                   f"{r.device_name}" for r in df.itertuples()})
    return "; ".join(seen)


def _label(r) -> str:
    return f"{r.config}: {r.channels}x{r.image_size}x{r.image_size}, L={r.levels}, K={r.depth}, width {r.width}"


def plot_epoch_time(df: pd.DataFrame | None):
    """Minutes per epoch, ours beside the reference, per config (None without data)."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * len(configs), 3.6))
    for k, impl in enumerate(("ours", "reference")):
        part = df[df.implementation == impl].set_index("config")
        xs = [i + (k - 0.5) * 0.38 for i, c in enumerate(configs) if c in part.index]
        ys = [part.loc[c, "minutes_per_epoch"] for c in configs if c in part.index]
        bars = ax.bar(xs, ys, width=0.36, label=IMPLEMENTATION_WORDS[impl])
        ax.bar_label(bars, fmt="%.1f", fontsize="small")
    first = df.drop_duplicates("config").set_index("config")
    ax.set_xticks(range(len(configs)), [f"{_label(first.loc[[c]].reset_index().iloc[0])}\nbatch "
                                        f"{first.loc[c, 'batch']}, epoch = {first.loc[c, 'epoch_images']:,} "
                                        f"({first.loc[c, 'epoch_of']})" for c in configs], fontsize="x-small")
    ax.set_ylabel("minutes per training epoch")
    ax.legend(fontsize="small")
    fig.suptitle(f"Time per epoch (forward, backward, Adamax) on {_hardware(df)}", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_sampling(df: pd.DataFrame | None):
    """ms per sample against image size, ours and the reference, beside the published figure."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    df = df.assign(dims=df.channels * df.image_size ** 2)
    measured = df[df.source == "measured"]
    for (impl, precision), part in measured.groupby(["implementation", "precision"], sort=False):
        part = part.sort_values("dims").drop_duplicates("dims")    # each bf16 record times the reference again
        ax.plot(part.dims, part.ms_per_image, "o-" if precision == "fp32" else "s--",
                label=f"{IMPLEMENTATION_WORDS.get(impl, impl)}{', bf16 networks' if precision == 'bf16' else ''}, "
                f"{_hardware(part)}")
        if impl == "reference":
            for r in part.itertuples():
                ax.annotate(f"{r.config}: {r.channels}x{r.image_size}x{r.image_size}, L={r.levels}, K={r.depth}",
                            (r.dims, r.ms_per_image), fontsize="xx-small", xytext=(4, 2), textcoords="offset points")
    for r in df[df.source == "published"].itertuples():
        ax.plot([r.dims], [r.ms_per_image], "*", markersize=14, color="black",
                label=f"paper: ~{r.ms_per_image:.0f} ms, {r.channels}x{r.image_size}x{r.image_size}, {r.device_name}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dimensions per sample, C·H·W (resolution)")
    ax.set_ylabel("ms per sample")
    ax.legend(fontsize="x-small")
    fig.suptitle("Sampling cost against resolution (published figure: Kingma & Dhariwal 2018)", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_memory(df: pd.DataFrame | None):
    """Peak memory of a training step against K, per config, with and without invertible backprop."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    fig, axes = plt.subplots(1, len(configs), figsize=(4.4 * len(configs), 3.6), squeeze=False)
    for ax, config in zip(axes[0], configs):
        part = df[df.config == config]
        for variant, rows in part.groupby("variant", sort=False):
            rows = rows.sort_values("depth")
            ax.plot(rows.depth, rows.peak_mb, "o-", label=IMPLEMENTATION_WORDS.get(variant, variant))
        r = part.iloc[0]
        ax.set_title(f"{_label(r)}, batch {r.batch}", fontsize="x-small")
        ax.set_xlabel("depth K (steps per level)")
        ax.set_ylabel(f"peak memory, MiB ({r.measure})")
        ax.legend(fontsize="x-small")
    fig.suptitle(f"Training memory against depth on {_hardware(df)}", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_roofline(df: pd.DataFrame | None, peaks: pd.DataFrame | None = None):
    """Achieved GFLOP/s per config and implementation against the peak measured in the same process (and the
    standalone peak entries, when recorded), log scale."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    fig, ax = plt.subplots(figsize=(2.6 + 2.4 * len(configs), 4.0))
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
                                   for r, u in zip(rows, useful)], fontsize="x-small")
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
    ax.set_xticks(range(len(configs)), [_label(first.loc[[c]].reset_index().iloc[0]) for c in configs],
                  fontsize="x-small")
    ax.set_ylabel("useful GFLOP/s (model's matmul + conv FLOPs)")
    ax.legend(fontsize="x-small")
    fig.suptitle(f"Training throughput against this machine's peak on {_hardware(df)} (bar labels: fraction of "
                 f"peak)", fontsize="medium")
    fig.tight_layout()
    return fig


VARIANT_WORDS = {"defaults": "fp32, invertible backprop", "defaults_without_inv_backprop": "fp32, stored activations",
                 "bf16": "bf16, invertible backprop", "bf16_without_inv_backprop": "bf16, stored activations"}


def plot_batch_sweep(df: pd.DataFrame | None):
    """Useful fraction of peak (left) and images/s (right) against the batch, a line per variant, solid with the
    allocator as glowlib.training sets it, dashed as it is by default."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
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
        ax.set_xlabel("batch size")
    axes[0].set_ylabel("useful GFLOP/s / measured peak of its precision")
    axes[0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    axes[1].set_ylabel("training images/s")
    axes[1].legend(fontsize="x-small")
    first = df.iloc[0]
    fig.suptitle(f"Training throughput against the batch: {first.channels}x{first.image_size}x{first.image_size}, "
                 f"L={first.levels}, K={first.depth}, width {first.width} on {_hardware(df)}", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_profile(df: pd.DataFrame | None):
    """Share of a training step's time per group of ops, a stacked bar per profiled config."""
    if df is None:
        return None
    import matplotlib.pyplot as plt
    configs = list(dict.fromkeys(df.config))
    groups = list(dict.fromkeys(df.group))
    fig, ax = plt.subplots(figsize=(10.0, 1.6 + 0.45 * len(configs)))
    left = [0.0] * len(configs)
    for j, group in enumerate(groups):
        part = df[df.group == group].set_index("config")
        widths = [float(part.loc[c, "share"]) if c in part.index else 0.0 for c in configs]
        ax.barh(range(len(configs)), widths, left=left, color=f"C{j}", label=group.replace("_", " "))
        for i, (w, l0) in enumerate(zip(widths, left)):
            if w >= 0.06:
                ax.text(l0 + w / 2, i, f"{w:.0%}", ha="center", va="center", fontsize="x-small", color="white")
        left = [a + b for a, b in zip(left, widths)]
    first = df.drop_duplicates("config").set_index("config")
    ax.set_yticks(range(len(configs)), [
        f"{c}: {first.loc[c, 'channels']}x{first.loc[c, 'image_size']}x{first.loc[c, 'image_size']}, width "
        f"{first.loc[c, 'width']}, batch {first.loc[c, 'batch']}, {first.loc[c, 'precision']}, "
        f"{'invertible backprop' if first.loc[c, 'inv_backprop'] else 'stored activations'}"
        f"{', allocator tuned' if first.loc[c, 'allocator'] == 'tuned' else ''}" for c in configs], fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_xlabel("share of a training step's time (torch.profiler self time)")
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"Where a training step's time goes, on {_hardware(df)}", fontsize="medium")
    fig.tight_layout()
    return fig


def summary(cost: Cost) -> list[str]:
    """Sentences computed from the tables: the headline of each (for the page's text)."""
    out = quality_summary(cost.tables.get("quality_vs_time"))
    t = cost.tables.get("epoch_time")
    if t is not None:
        for config, part in t.groupby("config", sort=False):
            by = part.set_index("implementation").minutes_per_epoch
            line = (f"`{config}`: {by['ours']:.1f} min per epoch of {part.epoch_images.iloc[0]:,} images "
                    f"({part.epoch_of.iloc[0]})" if "ours" in by else f"`{config}`:")
            if "reference" in by:
                line += f", the reference {by['reference']:.1f} min"
            out.append(line + f" on {_hardware(part)}.")
    s = cost.tables.get("sampling")
    if s is not None:
        paper = s[s.source == "published"]
        ours = s[(s.source == "measured") & (s.implementation == "ours")].sort_values("image_size")
        for r in paper.itertuples():
            line = (f"The paper: about {r.ms_per_image:.0f} ms per {r.image_size}x{r.image_size} sample on one "
                    f"{r.device_name} ({r.citation}).")
            if len(ours):
                big = ours.iloc[-1]
                line += (f" Ours, largest measured: {big.ms_per_image:.1f} ms per {big.image_size}x"
                         f"{big.image_size} sample (K={big.depth}, L={big.levels}) on {big.device_name}; the models "
                         f"and the hardware differ, so this places the figures side by side, it does not rank them.")
            out.append(line)
    m = cost.tables.get("memory")
    if m is not None:
        for (config, variant), part in m.groupby(["config", "variant"], sort=False):
            part = part.sort_values("depth")
            lo, hi = part.iloc[0], part.iloc[-1]
            if hi.depth != lo.depth:
                out.append(f"`{config}`, {IMPLEMENTATION_WORDS.get(variant, variant)}: {lo.peak_mb:.0f} MiB at "
                           f"K={lo.depth}, {hi.peak_mb:.0f} MiB at K={hi.depth} (x{hi.peak_mb / lo.peak_mb:.2f}).")
    r = cost.tables.get("throughput")
    if r is not None:
        for row in r.itertuples():
            frac = "" if row.fraction_of_peak is None or (isinstance(row.fraction_of_peak, float) and
                                                           math.isnan(row.fraction_of_peak)) \
                else f", {row.fraction_of_peak:.1%} of the measured {row.peak_precision} peak"
            out.append(f"`{row.config}`, {IMPLEMENTATION_WORDS[row.implementation]}: "
                       f"{row.flops_per_image / 1e9:.2f} GFLOP per training image, {row.gflops_per_s:.1f} GFLOP/s"
                       f"{frac}.")
    b = cost.tables.get("batch_sweep")
    if b is not None:
        best = b.loc[b.groupby(["precision", "allocator"]).images_per_s.idxmax()]
        for row in best.itertuples():
            out.append(f"Batch sweep, best {row.precision} with the allocator "
                       f"{ALLOCATOR_WORDS[row.allocator]}: {row.images_per_s:.1f} images/s "
                       f"({VARIANT_WORDS.get(row.variant, row.variant)}, batch {row.batch}), "
                       f"{row.model_fraction_of_peak:.1%} of the measured {row.peak_precision} peak in useful work.")
        for allocator, part in best.groupby("allocator"):
            by = part.set_index("precision").images_per_s
            if {"fp32", "bf16"} <= set(by.index):
                out.append(f"bf16 over fp32, each at its best batch and options (allocator "
                           f"{ALLOCATOR_WORDS[allocator]}): x{by['bf16'] / by['fp32']:.2f}.")
    p = cost.tables.get("profile")
    if p is not None:
        for config, part in p.groupby("config", sort=False):
            shares = ", ".join(f"{r.group.replace('_', ' ')} {r.share:.0%}"
                               for r in part.sort_values("share", ascending=False, kind="stable").itertuples())
            out.append(f"Profile `{config}` (batch {part.batch.iloc[0]}, {part.precision.iloc[0]}): {shares}.")
    c = cost.tables.get("compile")
    if c is not None:
        for config, part in c.groupby("config", sort=False):
            eager, comp = part[~part.compiled], part[part.compiled]
            for row in comp.itertuples():
                twin = eager[eager.variant == row.variant.removeprefix("compiled_")]
                if len(twin):
                    out.append(f"`{config}`: torch.compile ran {row.images_per_s:.1f} images/s against eager's "
                               f"{twin.images_per_s.iloc[0]:.1f} (x{row.images_per_s / twin.images_per_s.iloc[0]:.2f})"
                               f", after a first step of {row.first_step_s:.0f} s.")
    return out
