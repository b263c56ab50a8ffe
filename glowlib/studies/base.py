"""What several studies share: what an experiment returns, the checks of notebook parameters, the trained models
and run lists several notebooks use, a page's values, and plot helpers.

A study module (``glowlib.studies.<notebook>``) builds its ``PARAMETERS`` from the checkers here (:func:`int_in`,
:func:`number_in`, :func:`list_of`, :func:`choice`, ...) and checks its notebook's values with
:func:`check_values`; every bad value raises a ValueError naming it and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis import ClassifierSettings, cached_classifier, classifier_path
from ..analysis.stats import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_TESTABLE, STATES,  # noqa: F401
                              VERDICTS, Decision)
from ..budget import at_budget, run_flops
from ..step_count import model_size
from ..config import RunConfig, check_choice, check_range
from ..data import DATASETS, is_available
from ..profiles import PROFILES, profile_config
from ..profiles import profile as profile_of
from ..results import repo_root, results_dir
from ..training import get_model, trained

N_CLASSES = {"digits": 10, "mnist5k": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10}
# columns of a training run's metrics.csv, by the split they measure (train: running loss of the training weights)
CURVE_COLUMNS = {"train": "train_bpd", "train_eval": "train_eval_bpd", "val": "val_bpd", "test": "test_bpd"}


# ---------------------------------------------------------------------------------------------------- results
@dataclass
class Experiment:
    """What an experiment returns: its tables, and the trained models it used (for the provenance)."""

    tables: dict[str, pd.DataFrame]
    models: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- parameters
def int_in(low=None, high=None):
    """An int within [low, high]."""
    def check(name, value):
        check_range(name, value, low, high)
        return value
    return check


def number_in(low=None, high=None):
    """A finite number within [low, high], returned as a float (an int is accepted: papermill's ``-p T 1``)."""
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}={value!r} must be a number")
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number")
        check_range(name, float(value), low, high, kind=float)
        return float(value)
    return check


def list_of(item_check, allow_single=True):
    """A non-empty list whose items pass ``item_check``; a single item becomes a list of one if ``allow_single``."""
    def check(name, value):
        if allow_single and not isinstance(value, (list, tuple)):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name}={value!r} must be a non-empty list")
        return [item_check(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return check


def choice(allowed):
    """One of ``allowed``."""
    def check(name, value):
        check_choice(name, value, allowed)
        return value
    return check


def auto_or(item_check):
    """The string "auto" (the study picks the value) or a value that passes ``item_check``."""
    def check(name, value):
        return value if isinstance(value, str) and value == "auto" else item_check(name, value)
    return check


def available_dataset(name, value):
    """A dataset glowlib knows whose files are on this machine."""
    check_choice(name, value, DATASETS)
    if not is_available(value):
        raise ValueError(f"{name}={value!r}: its files are not on this machine; available here: "
                         f"{[d for d in DATASETS if is_available(d)]} (see README, Data)")
    return value


def with_figure_dataset(values: dict, dataset: str | None = None) -> dict:
    """A figure notebook's checked ``values`` with ``dataset="auto"`` made ``dataset`` (default: the profile's
    :func:`figure_dataset`), whose files must be on this machine."""
    if values["dataset"] == "auto":
        values["dataset"] = available_dataset("dataset", dataset or figure_dataset(values["profile"]))
    return values


def out_dir_path(name, value):
    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r} must be a path string ('' for results/<profile>/<notebook>/)")
    return value


def folder(name, value):
    """A folder of the repository's results (read by the notebook): a relative path that stays inside
    ``results/`` (no absolute path, no ``..`` out of it, no link leading elsewhere)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}={value!r} must be a folder path (e.g. results/bench)")
    results = (repo_root() / "results").resolve()
    if Path(value).is_absolute() or not (repo_root() / value).resolve().is_relative_to(results):
        raise ValueError(f"{name}={value!r} must be a folder inside the repository's results/ (e.g. results/bench), "
                         f"given relative to the repository")
    return value


COMMON = {"profile": choice(PROFILES), "out_dir": out_dir_path}     # every notebook's
SEED = {"seed": int_in(0, 2**31 - 1)}                # as config.TrainConfig.seed
# temperatures of the T-sampler where its density is needed: T > 0 (at T = 0 it has none)
sampler_temperatures = list_of(number_in(1e-3, 10.0))


def check_values(notebook: str, parameters: dict, params: dict) -> dict:
    """Check a notebook's values (the plain values papermill passes) against :data:`COMMON` and its study's
    ``parameters``; return them normalised, ``out_dir=""`` made ``results/<profile>/<notebook>/``.

    A parameter the notebook does not have, or one it has that is not given, is an error naming it.
    """
    schema = {**COMMON, **parameters}
    unknown, missing = sorted(set(params) - set(schema)), sorted(set(schema) - set(params))
    if unknown:
        raise ValueError(f"notebook {notebook!r} has no parameter {unknown}; its parameters are {sorted(schema)}")
    if missing:
        raise ValueError(f"notebook {notebook!r}: parameters {missing} were not given; all of {sorted(schema)} "
                         f"are needed")
    values = {name: schema[name](name, value) for name, value in params.items()}
    values["out_dir"] = values["out_dir"] or str(results_dir(values["profile"], notebook))
    return values


# ---------------------------------------------------------------------------------------------------- models
def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def config_parameters(run: RunConfig) -> int:
    """Parameter count of a config's model, built on the meta device at a few small depths and extrapolated along
    the depth (``step_count.model_size``: exact, since every step of a level has the same parameters), once per
    model in a process: a paper-size model built whole took seconds a count."""
    return int(model_size(run)["parameters"])


def cached_model(run: RunConfig):
    """The trained model of ``run`` on :func:`device`, from the model cache (trained there on first use)."""
    return trained(run, device=device(), progress=False)


def figure_dataset(profile: str) -> str:
    """The dataset of the one Glow the figure notebooks share (``Profile.figure_dataset``)."""
    return profile_of(profile).figure_dataset


def notebook_dataset(profile: str, notebook: str) -> str:
    """The dataset of a figure notebook's model: the profile's ``study_datasets`` entry for ``notebook`` (a dataset
    whose shared Glow passes the sample gates where the figures' own does not), else :func:`figure_dataset`."""
    return profile_of(profile).study_datasets.get(notebook) or figure_dataset(profile)


def study_dataset(profile: str) -> str:
    """The dataset of the 5-bit, temperature-validity and class-conditional studies (``Profile.study_dataset``)."""
    return profile_of(profile).study_dataset


def shared_model(profile: str, dataset: str | None = None):
    """The one Glow of ``dataset`` (default: the profile's :func:`figure_dataset`) that the samples, interpolation,
    manipulation, temperature and nearest-neighbour notebooks share (trained once, through the cache): the
    profile's "quality" run of it (``Profile.quality_steps``), the bits/dim table's headline row."""
    return get_model(profile, dataset or figure_dataset(profile), "glow", device=device(), progress=False,
                     tier="quality")


def shared_runs(profile: str, dataset: str | None = None) -> list[RunConfig]:
    """The config of :func:`shared_model`, as a study's ``runs``."""
    return [profile_config(profile, dataset or figure_dataset(profile), "glow", tier="quality")]


def shared_seed_runs(profile: str, dataset: str, n: int) -> list[RunConfig]:
    """The shared Glow of ``dataset`` (:func:`shared_runs`: training seed 0, the figures' model) and the same run
    with training seeds 1 .. ``n`` - 1: the replicates of a claim about Glow trained this way."""
    first = shared_runs(profile, dataset)[0]
    return [first] + [first.override([f"train.seed={s}"]) for s in range(1, n)]


def shared_seed_models(profile: str, dataset: str, n: int) -> dict:
    """{training seed: trained model} of :func:`shared_seed_runs` beyond seed 0 (seed 0 is :func:`shared_model`)."""
    return {r.train.seed: trained(r, device(), progress=False) for r in shared_seed_runs(profile, dataset, n)[1:]}


def study_config(profile: str, seed: int = 0) -> RunConfig:
    """The model of the 5-bit, temperature-validity and class-conditional studies: the Glow of
    :func:`study_dataset` at the profile's size and schedule, its "study" tier of steps
    (``Profile.study_steps``), with ADDITIVE coupling, as the official code trains every model whose samples
    the paper shows (its README: CelebA-HQ, LSUN and the class-conditional CIFAR-10 and ImageNet models all use
    ``--flow_coupling 0``; the affine coupling is for the likelihood results), trained with ``seed``. Each study
    overrides only what it varies (bit depth, coupling and prior, class conditioning).

    Why not the bits/dim table's affine model: an affine inverse divides by the coupling's scale, and at the cpu
    profile's lengths the affine model's T = 1 draws overflow too often for the sanity gates, an additive one's
    never (``bench/model_gates.py``'s records; cited beside ``Profile.study_steps``). The
    smoke profile's is tiny (CI): its samples fail the sanity gates, and its claims are then not testable at
    this scale."""
    check_choice("profile", profile, PROFILES)
    return profile_config(profile, study_dataset(profile), "glow", seed, ["model.coupling='additive'"], tier="study")


def classifier_datasets(profile: str) -> list[str]:
    """The datasets whose measuring classifier the notebooks of ``profile`` use: the shared model's, the reviewers'
    studies' and, where the profile runs the samples page, every dataset of the bits/dim table."""
    from . import studies_of
    table = table_datasets() if "samples" in studies_of(profile) else []
    return list(dict.fromkeys([figure_dataset(profile), study_dataset(profile), *table]))


def classifier_settings(profile: str) -> ClassifierSettings:
    """The measuring classifier's settings at ``profile``: ClassifierSettings' defaults with the profile's own
    (``Profile.classifier``)."""
    return ClassifierSettings(**profile_of(profile).classifier)


def measuring_classifier(profile: str, dataset: str):
    """The measuring classifier of ``dataset`` at ``profile``'s settings (:func:`classifier_settings`), from the
    cache (trained there on first use): every page of a profile measures with the same one."""
    return cached_classifier(dataset, device=device(), settings=classifier_settings(profile))


def classifier_provenance(dataset: str, profile: str) -> dict:
    """What the measuring classifier of ``dataset`` at ``profile`` is, for the provenance: its settings and test
    accuracy."""
    settings = classifier_settings(profile)
    classifier = measuring_classifier(profile, dataset)
    return {"dataset": dataset, "seed": 0, "settings": dataclasses.asdict(settings),
            "cache_file": classifier_path(dataset, settings=settings).name, "test_accuracy": classifier.test_accuracy}


def curves(trained_model, **labels) -> pd.DataFrame:
    """A run's metrics as a tidy table: one row per (evaluation step, split), with ``labels`` as columns."""
    m = trained_model.metrics
    cpu = m["cpu_s"] if "cpu_s" in m else np.nan                 # older runs did not record CPU seconds
    frames = [pd.DataFrame({**labels, "step": m["step"], "epoch": m["epoch"], "wall_s": m["wall_s"], "cpu_s": cpu,
                            "split": split, "bpd": m[column]})
              for split, column in CURVE_COLUMNS.items()]
    return pd.concat(frames, ignore_index=True).dropna(subset=["bpd"])


# ---------------------------------------------------------------------------------------------------- plots
# A notebook shows a figure at matplotlib's figure.dpi (100), and the book's main column is 944 px wide on a laptop's
# 1280 px page and 877 px on a 1536 px one, where the page's right-hand sidebar takes its share (tests/test_book.py
# measures both): a figure up to 8.7 inches wide is shown at its own size in either, its 10-point text 14 px tall,
# while a wider one is shrunk to the column (a 17-inch row of four panels draws 10-point text under 8 px). So the
# figures are drawn COLUMN_INCHES wide, with room for the column's margins, and take more rows rather than more
# columns; LEGIBLE_PX is the smallest text a reader takes in without zooming.
SHOWN_DPI, COLUMN_PX, COLUMN_INCHES, LEGIBLE_PX = 100, 877, 7.5, 9.0


def drawn_text_px(facts: dict) -> float:
    """How tall (px) a recorded figure's smallest text is drawn in the book's column, from the facts its provenance
    records (``results.figure_facts``: its saved width in inches and smallest font in points)."""
    shown = min(COLUMN_PX, facts["width_in"] * SHOWN_DPI)
    return facts["min_font_pt"] / 72 * shown / facts["width_in"]


def plot_splits(curves_df: pd.DataFrame, by: str, splits=("train", "train_eval", "val", "test"), title=""):
    """One panel per value of ``by`` (e.g. the model), two a row to fit the book's column (:data:`COLUMN_INCHES`),
    one line per split, mean ± std over seeds if any; one legend under the panels names the splits for all."""
    import matplotlib.pyplot as plt
    keys = list(dict.fromkeys(curves_df[by]))
    ncol = min(2, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(COLUMN_INCHES * ncol / 2, 2.5 * nrow + 0.7), squeeze=False,
                             layout="constrained")
    handles = {}
    for ax, key in zip(axes.flat, keys):
        part = curves_df[curves_df[by] == key]
        for i, split in enumerate(splits):
            stats = part[part.split == split].groupby("epoch").bpd.agg(["mean", "std"]).reset_index()
            if len(stats):
                line, = ax.plot(stats.epoch, stats["mean"], marker=".", label=split, color=f"C{i}")
                ax.fill_between(stats.epoch, stats["mean"] - stats["std"].fillna(0),
                                stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.2)
                handles.setdefault(split, line)
        ax.set(title=str(key), xlabel="epoch", ylabel="bits/dim")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.suptitle(title)
    if handles:                 # below the panels: the layout would draw one above them over the title
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles))
    return fig


def plot_named_grids(grids: dict, ncol: int = 4, title: str = ""):
    """One panel per named uint8 grid, ``ncol`` panels a row, the row as wide as the book's column allows
    (:data:`COLUMN_INCHES`, at most 2.8 inches a panel); each name above its own panel."""
    import matplotlib.pyplot as plt
    ncol = min(ncol, len(grids))
    nrow = math.ceil(len(grids) / ncol)
    side = min(2.8, COLUMN_INCHES / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(side * ncol, (side + 0.35) * nrow + (0.4 if title else 0)),
                             squeeze=False, layout="constrained")
    for ax, (name, grid) in zip(axes.flat, grids.items()):
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(name, fontsize="medium")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title)
    return fig


def show(image: np.ndarray, title: str = "", zoom: float = 2.0):
    """A uint8 grid as a figure, each image pixel ``zoom`` screen pixels wide (at 100 dpi)."""
    import matplotlib.pyplot as plt
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(max(2.5, w * zoom / 100), max(1.5, h * zoom / 100 + 0.4)))
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_title(title, fontsize="small")
    ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------------- page values
def publish(rec, **values) -> dict:
    """The numbers a page's words quote, computed by its study: recorded by the page's ``Recorder`` into
    ``values.json`` beside its tables, and glued (myst-nb's ``glue``) so that the notebook's markdown fills them in
    with ``{glue:text}`name``` and no sentence is built in Python. Values are numbers or short strings."""
    from myst_nb import glue
    recorded = rec.values(**values)
    for name in values:
        glue(name, recorded[name], display=False)
    return recorded


# ---------------------------------------------------------------------------------------------------- table rows
# The bits/dim table's rows: the models its page trains over seeds and the samples page draws from, so both read
# them here (a study never imports another).
ALWAYS_DATASETS = ("mnist5k", "fashion_mnist", "digits")
OPTIONAL_DATASETS = ("cifar10", "mnist", "celeba")   # in the bits/dim table when their files are present
MODEL_TYPES = ("realnvp", "glow")
# rows of the bits/dim table: a model type, "+vardeq" for variational dequantisation (train.dequantization)
TABLE_MODELS = ("realnvp", "glow", "glow+vardeq", "macow", "macow+vardeq")
TABLE_SEEDS = 3                # training seeds of every row: the paired tests need stats.MIN_SEEDS (3)


def table_datasets() -> list[str]:
    """The bits/dim table's datasets: the three always present, plus each optional one whose files are here."""
    return list(ALWAYS_DATASETS) + [d for d in OPTIONAL_DATASETS if is_available(d)]


def table_models(profile: str, dataset: str) -> list[str]:
    """The bits/dim table's rows for ``dataset`` at ``profile`` (:data:`TABLE_MODELS` on the profile's
    ``table_dequant_datasets``, else :data:`MODEL_TYPES`, less its ``table_left_out``)."""
    p = profile_of(profile)
    rows = TABLE_MODELS if dataset in p.table_dequant_datasets else MODEL_TYPES
    left, _ = p.table_left_out.get(dataset, ((), ""))
    return [m for m in rows if m not in left]


def scaled_warmup(steps: int, warmup: int) -> int:
    """A row's learning-rate warmup: the preset's, unless the run is shorter than 4 times it, then a tenth of the
    run (never more than the preset's): a 700-step run must not spend 500 steps warming up."""
    return warmup if steps >= 4 * warmup else min(warmup, steps // 10)


def table_run(profile: str, dataset: str, name: str, seed: int = 0) -> RunConfig:
    """The RunConfig of the table row ``name`` (one of :data:`TABLE_MODELS`): the profile's preset of its model type,
    with variational dequantisation for a "+vardeq" row and the warmup of :func:`scaled_warmup`. Every row of a
    dataset trains the same steps and batch."""
    check_choice("model", name, TABLE_MODELS)
    model_type, _, vardeq = name.partition("+")
    run = profile_config(profile, dataset, model_type, seed, ["train.dequantization='variational'"] if vardeq else [])
    if run.train.warmup_fraction > 0:                # the warmup already scales with the run's length
        return run
    warmup = scaled_warmup(run.train.steps, run.train.warmup_steps)
    return run if warmup == run.train.warmup_steps else run.override([f"train.warmup_steps={warmup}"])


def quality_run(profile: str, dataset: str) -> RunConfig | None:
    """The profile's longer "quality" run of Glow on ``dataset`` (``profiles.profile_config(tier="quality")``: the
    model the figures share), or None where it is the table's own seed-0 row."""
    run = profile_config(profile, dataset, "glow", 0, tier="quality")
    return None if run.key() == table_run(profile, dataset, "glow", 0).key() else run


# The table's rows compared at equal compute each spend the FLOPs of its dataset's Glow row (the paper's model,
# trained the profile's steps): a row of another cost per step trains its own run of budget / FLOPs-per-step steps
# (``glowlib.budget``), beside its run of equal steps.
BUDGET_ROW = "glow"


def table_budget(profile: str, dataset: str) -> float:
    """The FLOPs every row of ``dataset``'s table spends at equal compute: its :data:`BUDGET_ROW`'s whole run."""
    return run_flops(table_run(profile, dataset, BUDGET_ROW))


def table_run_at_budget(profile: str, dataset: str, name: str, seed: int = 0) -> RunConfig:
    """The row ``name`` trained to spend :func:`table_budget` (``budget.at_budget``: its own steps where they
    already do, within ``budget.TOLERANCE``)."""
    return at_budget(table_run(profile, dataset, name, seed), table_budget(profile, dataset))


def table_runs(profile: str) -> list[RunConfig]:
    """Every row of the table for seeds 0 .. :data:`TABLE_SEEDS` - 1, seed by seed (each dataset present × the
    profile's rows for it, :func:`table_models`), each at equal steps and, where that is another run, at equal
    compute (:func:`table_run_at_budget`); then each dataset's :func:`quality_run`."""
    runs = [r for s in range(TABLE_SEEDS) for d in table_datasets() for m in table_models(profile, d)
            for r in (table_run(profile, d, m, s), table_run_at_budget(profile, d, m, s))]
    runs += [r for d in table_datasets() if (r := quality_run(profile, d))]
    return list({r.key(): r for r in runs}.values())


def datasets_or_auto(name, value):
    """"auto" (the bits/dim table's datasets, :func:`table_datasets`) or a list of available datasets."""
    if value == "auto":
        return table_datasets()
    return list_of(available_dataset)(name, value)
