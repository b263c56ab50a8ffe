"""The benchmark records of ``bench/`` read into tidy tables (one row per observation).

Nothing here times anything: ``bench/`` measures (``bench/run_all.py`` writes ``results/bench/<job>.json``), this
module reads those records, and the Cost page (``glowlib.studies.cost``) and the ablation's 1x1 cost show them. A
record that is missing (a benchmark not run yet) leaves its table out and adds a note saying which command makes it.

Tables (:func:`cost_tables`, keys in :data:`KEYS`):

- ``epoch_time``: seconds and minutes per training epoch, ours and the reference, per benchmarked config, from
  ``train_*.json`` (images/s of forward, backward and an Adamax step). An epoch is the training set of the data the
  config's shape stands for (:data:`EPOCH_IMAGES`); other shapes have no epoch and are left out.
- ``sampling``: ms per sample against the image size, from ``sample_*.json``, beside the published figure of
  ``glowlib/published_speed.csv`` (the paper's ~130 ms for a 256x256 sample on a GTX 1080 Ti).
- ``memory``: peak memory of a training step against the depth K, with and without invertible backprop and for
  the reference, from ``memory_*.json``.
- ``throughput`` and ``peak``: achieved GFLOP/s of a training step per config (``train_*.json`` written by
  ``bench/train_throughput.py``) and the machine's measured matmul/conv peak per precision (``peak.json`` and the
  peak each train record measured in its own process).
- ``batch_sweep``, ``compile``, ``profile``: images/s against the batch, ``torch.compile`` against eager, and where
  a training step's time goes per group of ops.
- ``quality_vs_time``, ``quality_curves``, ``recipe``: test bits/dim against minutes of training, ours against the
  plain reference (``bench/quality_vs_time.py``), and the recipe experiments that chose the cpu profile's training
  (``bench/recipe.py``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from ..results import dirty_allowed, repo_root

# (channels, image size) -> (training images per epoch, the data set it stands for): 50,000 for 3x32x32
# (CIFAR-10), 60,000 for one-channel 28x28 or 32x32 (MNIST / Fashion-MNIST, padded to 32x32 in the benchmark configs)
EPOCH_IMAGES = {(3, 32): (50_000, "CIFAR-10"), (1, 28): (60_000, "MNIST / Fashion-MNIST"),
                (1, 32): (60_000, "MNIST / Fashion-MNIST (padded to 32x32)")}
KEYS = {"epoch_time": ["config", "implementation"], "sampling": ["source", "config", "implementation"],
        "memory": ["config", "variant", "depth"], "throughput": ["config", "implementation"],
        "peak": ["source", "op", "precision", "layout"], "batch_sweep": ["config", "variant", "batch"],
        "compile": ["config", "variant"], "profile": ["config", "group"], "quality_vs_time": ["run", "minutes"],
        "quality_curves": ["run", "step"], "recipe": ["variant"]}
RUN = "python bench/run_all.py"


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
class BenchTables:
    """The tables that could be made, one note per table that could not (or per record that was skipped), and
    where each record came from (file, git SHA, time, command, machine)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, dict] = field(default_factory=dict)
    uncommitted: list[str] = field(default_factory=list)     # records left out: made from uncommitted code

    def keep(self, name: str, source: dict) -> bool:
        """Whether the record ``name`` (its ``source``) is shown: not where it was made from uncommitted code
        (``git_dirty``), which no commit reproduces, unless GLOWLIB_ALLOW_DIRTY=1 says to show it (named in a
        note, :func:`uncommitted_note`, either way)."""
        if source.get("git_dirty") is True:
            self.uncommitted.append(name)
            if not dirty_allowed():
                return False
        self.sources[name] = source
        return True


def _records(bench_dir: Path, prefix: str, into: BenchTables, benchmarks) -> dict[str, dict]:
    """``{config name: record}`` of ``<prefix>_<config>.json`` (and ``<prefix>.json``, config name "") whose
    benchmark is one of ``benchmarks``."""
    out = {}
    for path in sorted(bench_dir.glob(f"{prefix}_*.json")) + sorted(bench_dir.glob(f"{prefix}.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            into.notes.append(f"`{path.name}` could not be read ({e}); it is left out.")
            continue
        if record.get("benchmark") not in benchmarks:
            continue
        env = record.get("env", {})
        if into.keep(path.name, {k: env.get(k) for k in ("device_name", "threads", "git_sha", "git_dirty", "time",
                                                         "command", "load_average")}):
            out[path.stem[len(prefix) + 1:]] = record
    return out


def uncommitted_note(names, shown: bool = False) -> str | None:
    """One note naming the records made from uncommitted code: no commit reproduces them, so they are left out of
    the page's tables and figures (``shown``: kept, as GLOWLIB_ALLOW_DIRTY=1 asked) and named here."""
    dirty = sorted(names)
    if not dirty:
        return None
    fate = "shown as GLOWLIB_ALLOW_DIRTY=1 asked" if shown else "left out of the tables and figures"
    return (f"{len(dirty)} records were made from uncommitted changes, so no commit reproduces them, and are {fate}: "
            f"{', '.join(f'`{n}`' for n in dirty)}. Rerun their benchmarks from a clean checkout to replace them.")


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


TRAIN_BENCHMARKS = ("train_throughput", "train_speed")        # train_speed: records made before the rename


def epoch_time(records: dict[str, dict], bench_dir, into: BenchTables) -> pd.DataFrame | None:
    """Minutes per epoch from the training records (``_records(bench_dir, "train", ...)``)."""
    rows = []
    for config, record in records.items():
        model = _model_columns(record)
        epoch = EPOCH_IMAGES.get((model["channels"], model["image_size"]))
        if epoch is None:
            into.notes.append(f"`train_{config}.json` ({model['channels']}x{model['image_size']}x"
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
        into.notes.append(f"No training throughput recorded (`train_*.json` in {bench_dir}): no epoch times. "
                          f"Run `{RUN} --only train_small train_cifar`.")
        return None
    return pd.DataFrame(rows)


def sampling(bench_dir, into: BenchTables) -> pd.DataFrame | None:
    rows = []
    for config, record in _records(bench_dir, "sample", into, ("sample_speed",)).items():
        for impl in ("ours", "ours_T0", "reference"):
            res = record["results"].get(impl)
            if res is not None:
                model = _model_columns(record)
                rows.append({"source": "measured", "config": config, "implementation": impl, **model,
                             "precision": _precision_of(impl, model), "temperature": 0.0 if impl == "ours_T0" else
                             record.get("temperature"), "ms_per_image": res["ms_per_image"],
                             **_machine(record), "citation": ""})
    if not rows:
        into.notes.append(f"No sampling speed recorded (`sample_*.json` in {bench_dir}): the sampling figure shows "
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


def memory(bench_dir, into: BenchTables) -> pd.DataFrame | None:
    rows = []
    for config, record in _records(bench_dir, "memory", into, ("memory",)).items():
        model = {k: v for k, v in _model_columns(record).items() if k != "depth"}
        for r in record["rows"]:
            rows.append({"config": config, "variant": r["variant"], "depth": r["depth"], **model,
                         "peak_mb": r["peak_mb"], "step_mb": r.get("step_mb"), "saved_mb": r.get("saved_mb"),
                         "measure": r.get("measure"), **_machine(record)})
    if not rows:
        into.notes.append(f"No memory benchmark recorded (`memory_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only memory_small memory_cifar`.")
        return None
    return pd.DataFrame(rows)


def throughput(records: dict[str, dict], bench_dir,
               into: BenchTables) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(achieved GFLOP/s per config and implementation, measured peak entries) from the training records and
    ``peak.json``; None where not recorded."""
    rows, peaks = [], []
    for config, record in records.items():
        res = record["results"]
        if "flops_per_image" not in res.get("ours", {}):
            into.notes.append(f"`train_{config}.json` was recorded before FLOPs were counted "
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
    peak = _records(bench_dir, "peak", into, ("peak",)).get("")        # peak.json: the name has no config part
    if peak is not None:
        peaks += [_peak_row("peak", e, peak) for e in peak["results"]["entries"]]
    else:
        into.notes.append(f"No peak measurement (`peak.json` in {bench_dir}). Run `{RUN} --only peak`.")
    if not records:
        into.notes.append("No training FLOPs recorded: no roofline. Run "
                          f"`{RUN} --only peak train_small train_cifar`.")
    return (pd.DataFrame(rows) if rows else None), (pd.DataFrame(peaks) if peaks else None)


def batch_sweep(bench_dir, into: BenchTables) -> pd.DataFrame | None:
    """Training images/s and fraction of peak against the batch, per variant and allocator setting, from
    ``batch_sweep_*.json`` (``bench/batch_sweep.py``)."""
    rows = []
    for config, record in _records(bench_dir, "batch_sweep", into, ("batch_sweep",)).items():
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
        into.notes.append(f"No batch sweep recorded (`batch_sweep_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only batch_sweep_cifar batch_sweep_cifar_tuned`.")
        return None
    return pd.DataFrame(rows)


def compiled(bench_dir, into: BenchTables) -> pd.DataFrame | None:
    """``torch.compile`` against eager (``compile_*.json``, ``bench/options.py --compile``): images/s per variant,
    and the first step's seconds (tracing and code generation) of the compiled one."""
    rows = []
    for config, record in _records(bench_dir, "compile", into, ("options",)).items():
        for variant, r in record["results"].get("train", {}).items():
            rows.append({"config": config, "variant": variant, **_model_columns(record),
                         "compiled": variant.startswith("compiled_"), "images_per_s": r["images_per_s"],
                         "first_step_s": r.get("first_step_s"), **_machine(record)})
    if not rows:
        into.notes.append(f"No torch.compile measurement (`compile_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only compile_cifar`.")
        return None
    return pd.DataFrame(rows)


def profiles(bench_dir, into: BenchTables | None = None) -> pd.DataFrame | None:
    """Where a training step's time goes (``profile_*.json``, ``bench/profile_ops.py``): self time per group of ops
    and its share of the step, per profiled config (``bench_dir`` as :func:`bench_path` takes it)."""
    bench_dir, into = bench_path(bench_dir), into or BenchTables()
    rows = []
    for config, record in _records(bench_dir, "profile", into, ("profile_ops",)).items():
        model = record["config"]["model"]
        for group, g in record["results"]["groups"].items():
            rows.append({"config": config, "group": group, **_model_columns(record),
                         "inv_backprop": model.get("inv_backprop", True),
                         "allocator": _allocator(record),
                         "ms_per_step": g["ms_per_step"], "share": g["share"], **_machine(record)})
    if not rows:
        into.notes.append(f"No profile recorded (`profile_*.json` in {bench_dir}). Run "
                          f"`{RUN} --only profile_cifar profile_cifar_b64`.")
        return None
    return pd.DataFrame(rows)


# Kingma & Dhariwal 2018, Sec. 5.1: the learned 1x1 convolution costs ~0.2% more parameters and ~7% more wall time
# than a fixed permutation (CIFAR-10, the full model, on the paper's GPUs)
PAPER_CONV1X1 = {"parameters": 0.002, "time": 0.07}


def conv1x1_time_beside_paper(profiled: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`conv1x1_time`'s rows (empty without a profile record) and, below them, the paper's Sec. 5.1 figure
    marked as the paper's (``presentation.beside_paper``)."""
    from .presentation import beside_paper
    ours = conv1x1_time(profiled)
    if not len(ours):
        return ours
    paper = pd.DataFrame({"extra": [PAPER_CONV1X1["time"]], "depth": [32], "width": [512], "batch": [64],
                          "source": ["Kingma & Dhariwal 2018, Sec. 5.1 (CIFAR-10, 3x32x32, full scale, GPUs)"]})
    columns = ["source", "depth", "width", "batch", "precision", "conv1x1", "share", "extra"]
    return beside_paper(ours[columns], paper, label="depth")


def conv1x1_time(profiled: pd.DataFrame | None) -> pd.DataFrame:
    """The invertible 1x1 convolutions' time in profiled training steps (:func:`profiles`' table; None: no record),
    one row per step: its milliseconds, its ``share`` of the step and ``extra``, share / (1 - share), what it adds
    against a model without it (an upper bound: a shuffle costs a copy), the quantity of the paper's "~7% more wall
    time" (Sec. 5.1)."""
    if profiled is None:
        return pd.DataFrame()
    return pd.DataFrame([{"measure": "time", "source": f"profile_{r.config}.json", "channels": r.channels,
                          "image_size": r.image_size, "levels": r.levels, "depth": r.depth, "width": r.width,
                          "batch": r.batch, "precision": r.precision, "conv1x1": r.ms_per_step,
                          "total": r.ms_per_step / r.share if r.share else math.nan, "share": r.share,
                          "extra": r.share / (1 - r.share)}
                         for r in profiled[profiled.group == "conv1x1"].itertuples()])


def _peak_row(source: str, e: dict, record: dict) -> dict:
    return {"source": source, "op": e["op"], "precision": e["precision"], "layout": e["layout"] or "",
            "shape": "x".join(map(str, e["shape"])), "gflops": e["gflops"], "gflops_best": e["gflops_best"],
            **_machine(record)}


def cost_tables(bench_dir="results/bench") -> BenchTables:
    """Every table that the records in ``bench_dir`` allow, and a note for each that they do not."""
    bench_dir = bench_path(bench_dir)
    into = BenchTables()
    if not bench_dir.is_dir():
        into.notes.append(f"{bench_dir} does not exist: no benchmark has been recorded. Run `{RUN}`.")
    train = _records(bench_dir, "train", into, TRAIN_BENCHMARKS)      # read once, used by two tables
    tables = {"epoch_time": epoch_time(train, bench_dir, into), "sampling": sampling(bench_dir, into),
              "memory": memory(bench_dir, into)}
    tables["throughput"], tables["peak"] = throughput(train, bench_dir, into)
    tables["batch_sweep"], tables["compile"] = batch_sweep(bench_dir, into), compiled(bench_dir, into)
    tables["profile"] = profiles(bench_dir, into)
    tables["quality_vs_time"], tables["quality_curves"] = quality_vs_time(bench_dir, into)
    tables["recipe"] = recipe(bench_dir, into)
    into.tables = {name: df for name, df in tables.items() if df is not None and len(df)}
    if (note := uncommitted_note(into.uncommitted, dirty_allowed())) is not None:
        into.notes.append(note)
    return into


def _read(folder: Path, into: BenchTables) -> list[tuple[str, dict]]:
    """(name, record) of every JSON record in ``folder``; each record's machine and code go into ``into.sources``
    (``<folder>/<file>``: the page's provenance, as :func:`_records` does for the speed benchmarks), an
    unreadable one into ``into.notes``."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            into.notes.append(f"`{path.name}` could not be read ({e}); it is left out.")
            continue
        if into.keep(f"{folder.name}/{path.name}", {
                "device_name": record.get("machine"), "threads": record.get("threads"),
                "git_sha": record.get("git_sha"), "git_dirty": record.get("git_dirty"), "time": record.get("time"),
                "load_average": record.get("load_average_end")}):
            out.append((path.stem, record))
    return out


def quality_vs_time(bench_dir: Path,
                    into: BenchTables | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(``chosen``: one row per contender's run and budget, the validation-chosen checkpoint's bits/dim on the
    whole test split; ``curves``: one row per evaluation, seconds of training against validation bits/dim and
    test bits/dim on a class-balanced 2,000-image part of the test split), or Nones with a note."""
    into = into or BenchTables()
    records = _read(bench_dir / "quality_vs_time", into)
    if not records:
        into.notes.append("No quality-against-time record: run `python bench/quality_vs_time.py` (see its docstring).")
        return None, None
    chosen, curves = [], []
    for run, r in records:
        machine = {"device_name": r["machine"], "threads": r["threads"],
                   "precision": r["model"].get("precision", "fp32") if r["contender"] == "ours" else "fp32"}
        chosen += [{"contender": r["contender"], "run": run, **c, **machine} for c in r["chosen"]]
        curves += [{"contender": r["contender"], "run": run, "budget_min": max(r["budgets_min"]), **c}
                   for c in r["curve"]]
    return pd.DataFrame(chosen), pd.DataFrame(curves)


def recipe(bench_dir: Path, into: BenchTables | None = None) -> pd.DataFrame | None:
    """One row per recipe experiment: what it changed, its steps and wall time, its best validation bits/dim and
    the difference from the Adam base (same data, seed and wall time), and its sanity gates where checked."""
    rows, into = [], into or BenchTables()
    for _, r in _read(bench_dir / "recipe", into):
        gates = {g["gate"]: g for g in r.get("gates", [])}
        rows.append({"variant": r["variant"], "dataset": r["config"]["data"]["dataset"], "what": r["what"],
                     "steps": r["steps"], "batch": r["config"]["train"]["batch_size"], "wall_s": r["wall_s"],
                     "best_val_bpd": r["best_val_bpd"],
                     "t1_nonfinite_share": gates.get("share of non-finite draws", {}).get("value"),
                     "gates_passed": all(g["passed"] for g in gates.values()) if gates else None,
                     "device_name": r["machine"], "threads": r["threads"]})
    if not rows:
        into.notes.append("No recipe experiment recorded: run `python bench/recipe.py --variant NAME` (see its "
                          "docstring).")
        return None
    df = pd.DataFrame(rows)
    base = df[(df.variant == "adam")].best_val_bpd
    df["vs_adam"] = df.best_val_bpd - base.iloc[0] if len(base) else float("nan")
    df.loc[df.dataset != "fashion_mnist", "vs_adam"] = float("nan")
    return df

