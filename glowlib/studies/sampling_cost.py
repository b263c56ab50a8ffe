"""Sampling cost against image height, Glow against MaCow (the MaCow reviewers' question about generation speed).
The logic of ``notebooks/sampling_cost.py``.

Glow's inverse is one parallel pass per flow step; MaCow's masked convolutional flows invert one row (or column) at
a time, H sequential passes per flow on a window of constant size (MaCow Sec. 3.1: O(H) against the O(H·W) of a
fully autoregressive model). Per model and height H, the architecture otherwise fixed: wall and process-CPU ms per
image of ``model.sample`` after a warm-up, repeats interleaved so that load falls on both models alike
(:func:`measure`); the work of one sample counted (``analysis.timing.count_work``: FLOPs, convolutions, aten
operations); and the growth law ms ∝ H^b fitted on log ms = a + b·log H (:func:`fit_growth`), a power law because
the question is the order of growth, which its exponent answers whatever the constant factors. Models are freshly
initialised (ActNorm set from random images): the work of a sample does not depend on the weights' values.

The paper's own figure, ~130 ms per 256x256 sample on a GTX 1080 Ti (Sec. 5; ``glowlib/published_speed.csv``), is
checked on the paper's CelebA-HQ model itself (:func:`measure_paper_speed`): timed here, and carried to the card by
the ratio of this device's measured float32 peak to the card's.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis.claims import ClaimSpec, Outcome, Results, not_testable
from ..analysis.stats import MIN_SEEDS, Decision, paired_interval
from ..config import GlowConfig, MaCowConfig, check_choice, check_range
from ..models import Glow, MaCow
from ..profiles import PROFILES
from ..profiles import profile as profile_of
from ..analysis.timing import (count_work, machine, peak_ops, peak_rate, power_law, successive_exponents,
                               timed)
from .base import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SEED, auto_or, choice, int_in, list_of,
                   number_in)
from .base import publish  # noqa: F401  (the notebook calls it through this module)
from .base import device  # noqa: F401  (the notebook calls it through this module)
from .base import check_values

NOTEBOOK = "sampling_cost"
MODELS = ("glow", "macow")
MODEL_WORDS = {"glow": "Glow", "macow": "MaCow"}
CLOCKS = {"wall": "ms_per_image", "cpu": "cpu_ms_per_image"}
TEMPERATURE = 0.7                                        # the paper's samples (Glow Sec. 5)
KEYS = {"timings": ["model", "height", "repeat"], "fit": ["model", "clock"],
        "local": ["model", "clock", "height_from", "height_to"], "ratios": ["clock", "height"],
        "ratio_trend": ["clock"], "paper_speed": ["repeat"]}
RATIO_TEST = "paired t-interval over timing repeats of log(MaCow ms / Glow ms) (95%, two-sided)"


def check_heights(name: str, heights, n_levels: int, where: str = "") -> list[int]:
    """Distinct heights, each a positive multiple of 2**n_levels (every level halves the image), sorted."""
    heights = list_of(int_in(1), allow_single=False)(name, heights)
    step = 2 ** n_levels
    for i, h in enumerate(heights):
        if h % step:
            raise ValueError(f"{name}[{i}]={h} is not divisible by 2**n_levels={step} (each of the L={n_levels} "
                             f"levels{where} halves the image); choose multiples of {step}, e.g. "
                             f"{[step * 2 ** k for k in range(3)]}")
    if len(set(heights)) != len(heights):
        raise ValueError(f"{name}={heights} repeats a height; give each once")
    return sorted(heights)


@dataclass(frozen=True)
class Setup:
    """What is timed: the heights, one architecture for both models at every height, and the repeats.

    Glow and MaCow share L = ``n_levels``, K = ``depth`` steps per level and the coupling network's ``width``, so
    each MaCow step is a Glow step with ``n_units`` × 4 masked convolutional flows in front (MaCow's own step,
    ``glowlib.models.MaCowStep``); the masked convs' width is MaCow's default, min(2·channels, 512). MaCow is the
    bigger model at equal L, K and width: the table records both parameter counts and FLOPs, and time per FLOP.
    L stays fixed as H grows, so the top latent grows with the image and nothing but H changes.
    """

    heights: tuple[int, ...]
    channels: int = 3            # RGB, as CIFAR-10 and CelebA-HQ
    n_levels: int = 2            # L
    depth: int = 2               # K
    width: int = 32              # coupling network's hidden channels
    n_units: int = 2             # MaCow units per step (MaCowConfig's default, the official code's)
    batch: int = 4               # images per sample call; times are per image
    n_repeats: int = 3           # the exponent's 95% interval uses t with n_repeats - 1 degrees of freedom
    n_warmup: int = 1
    # the paper's ~130 ms claim (:func:`measure_paper_speed`): True times the paper's own 256x256 CelebA-HQ Glow
    # (PAPER_SPEED_MODEL, n_repeats samples of one image); False a 32x32 stand-in of the same code path, which
    # decides nothing (a smoke run's seconds)
    paper_model: bool = False

    def __post_init__(self):
        for name in ("channels", "n_levels", "depth", "width", "n_units", "batch"):
            check_range(name, getattr(self, name), 1)
        check_range("n_repeats", self.n_repeats, 1)
        check_range("n_warmup", self.n_warmup, 0)
        check_range("paper_model", self.paper_model, kind=bool)
        object.__setattr__(self, "heights", tuple(check_heights("heights", self.heights, self.n_levels)))


# each profile's setup is its ``Profile.sampling_cost`` (the fields of :class:`Setup`)


# ---------------------------------------------------------------------------------------------------- parameters
def distinct_models(name, value):
    """A list of :data:`MODELS`, each at most once."""
    models = list_of(choice(MODELS))(name, value)
    if len(set(models)) != len(models):
        raise ValueError(f"{name}={models} repeats a model; give each of {MODELS} at most once")
    return models


PARAMETERS = {**SEED, "models": distinct_models, "heights": auto_or(list_of(int_in(1), allow_single=False)),
              "temperature": number_in(1e-3, 10.0),      # T > 0: T = 0 decodes the prior means, another program
              "n_repeats": auto_or(int_in(2)),           # two at least: the exponent's error comes from the repeats
              "batch": auto_or(int_in(1))}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``): ``"auto"`` becomes the profile's heights,
    batch and repeats, and heights are checked against the profile's L."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    chosen = setup(values["profile"], values["heights"], values["batch"], values["n_repeats"])
    values.update(heights=list(chosen.heights), batch=chosen.batch, n_repeats=chosen.n_repeats)
    return SimpleNamespace(**values)


def setup(profile: str, heights="auto", batch="auto", n_repeats="auto") -> Setup:
    """The profile's :class:`Setup`, with the heights, batch and repeats given in place of ``"auto"``."""
    check_choice("profile", profile, PROFILES)
    base = Setup(**profile_of(profile).sampling_cost)
    changes = {}
    if heights != "auto":
        changes["heights"] = tuple(check_heights("heights", heights, base.n_levels, f" of profile {profile!r}"))
    if batch != "auto":
        changes["batch"] = batch
    if n_repeats != "auto":
        changes["n_repeats"] = n_repeats
    return dataclasses.replace(base, **changes)


def runs(profile: str) -> list:
    """None: the models are freshly initialised (the work of a sample does not depend on the weights' values)."""
    return []


# ---------------------------------------------------------------------------------------------------- models
def model_config(model: str, height: int, s: Setup) -> GlowConfig | MaCowConfig:
    """The config of ``model`` ("glow" or "macow") for H×H images under setup ``s``."""
    check_choice("model", model, MODELS)
    common = dict(in_channels=s.channels, image_size=height, n_levels=s.n_levels, depth=s.depth, width=s.width)
    if model == "glow":
        return GlowConfig(**common)
    return MaCowConfig(**common, n_units=s.n_units)


def configs(s: Setup, models=MODELS) -> dict[str, dict]:
    """The setup and every model's full config, by name (``<model>-<height>``), for the provenance."""
    out = {"setup": dataclasses.asdict(s)}
    out.update({f"{m}-{h}": dataclasses.asdict(model_config(m, h, s)) for m in distinct_models("models", models)
                for h in s.heights})
    out["paper_speed"] = dataclasses.asdict(paper_speed_config(s))
    return out


def build(model: str, height: int, s: Setup, seed: int = 0, device="cpu"):
    """A freshly initialised model in eval mode, its ActNorms set from a batch of random images (so that Glow's
    ActNorm and 1x1 conv run fused, as in a trained model)."""
    cfg = model_config(model, height, s)
    torch.manual_seed(seed)
    net = (Glow if model == "glow" else MaCow)(cfg).to(device)
    g = torch.Generator().manual_seed(seed)
    net.initialize((torch.rand(8, cfg.in_channels, height, height, generator=g) - 0.5).to(device))
    return net.eval()


# ---------------------------------------------------------------------------------------------------- measurement
def measure(s: Setup, models=MODELS, temperature: float = TEMPERATURE, seed: int = 0, device="cpu") -> pd.DataFrame:
    """Milliseconds per image of ``model.sample(s.batch, temperature)`` for each model and height of ``s``.

    Every model is built first and warmed up (``s.n_warmup`` calls each); then each of ``s.n_repeats`` repeats
    sweeps all (height, model) pairs, every other repeat in reverse order, so that a change of load on the machine
    falls on both models and on every height alike. Each call gets its own generator, seeded by ``seed`` and the
    repeat. One row per (model, height, repeat): wall and process-CPU ms per image, the sample's counted work
    (:func:`count_work`, per image), parameters, the architecture and the machine.
    """
    models = distinct_models("models", models)
    temperature = PARAMETERS["temperature"]("temperature", temperature)
    seed = PARAMETERS["seed"]("seed", seed)
    nets, work = {}, {}
    for h in s.heights:
        for m in models:
            net = nets[m, h] = build(m, h, s, seed, device)
            for _ in range(s.n_warmup):
                net.sample(s.batch, temperature, torch.Generator(device).manual_seed(seed))
            work[m, h] = count_work(net, temperature, seed)
    where = machine(device)
    order = [(m, h) for h in s.heights for m in models]
    rows = []
    with torch.inference_mode():
        for r in range(s.n_repeats):
            for m, h in (order if r % 2 == 0 else order[::-1]):
                net, g = nets[m, h], torch.Generator(device).manual_seed(seed + r)
                wall, cpu = timed(lambda: net.sample(s.batch, temperature, g), device)
                rows.append({"model": m, "height": h, "repeat": r, "batch": s.batch,
                             "ms_per_image": 1e3 * wall / s.batch, "cpu_ms_per_image": 1e3 * cpu / s.batch,
                             "flops_per_image": work[m, h]["flops"], "conv_calls": work[m, h]["conv_calls"],
                             "op_calls": work[m, h]["op_calls"],
                             "n_parameters": sum(p.numel() for p in net.parameters()),
                             "channels": s.channels, "n_levels": s.n_levels, "depth": s.depth, "width": s.width,
                             "temperature": float(temperature), **where})
    table = pd.DataFrame(rows).sort_values(["model", "height", "repeat"], ignore_index=True)
    table["load_average_1min_end"] = os.getloadavg()[0]
    return table


# ---------------------------------------------------------------------------------------------------- the paper's speed
# The model of the paper's ~130 ms claim (Sec. 5: a 256x256 sample of its CelebA-HQ Glow on a GTX 1080 Ti), as the
# official README trains it: --image_size 256 --n_level 6 --depth 32 (width 512, the default), additive coupling
# (--flow_coupling 0), 5-bit images, learned prior. The work of a sample does not depend on the weights, so a
# freshly initialised one is timed (the module docstring); the stand-in runs the same code in a smoke run's seconds.
PAPER_SPEED_MODEL = GlowConfig(in_channels=3, image_size=256, n_levels=6, depth=32, width=512, coupling="additive",
                               n_bits=5)
STAND_IN_SPEED_MODEL = dataclasses.replace(PAPER_SPEED_MODEL, image_size=32, n_levels=3, depth=2, width=16)
# The GTX 1080 Ti's float32 peak, NVIDIA's specification: 3,584 CUDA cores x 1,582 MHz boost x 2 FLOPs a fused
# multiply-add. It has no tensor cores, so float32 is what the paper's TensorFlow code ran on it.
GTX_1080_TI_FLOPS = 3584 * 1.582e9 * 2
# A device's time is carried to the card by the ratio of the two peaks (:func:`measure_paper_speed`), which assumes
# that the card runs the sample at the share of its peak that this device does. That share is not one number even on
# one machine: the 2-core CPU of results/bench/peak.json runs a float32 matmul at 93 and a 3x3 convolution at 228
# GFLOP/s, a factor 2.5 apart, and nothing here says which share the card reaches. So the claim is confirmed when
# the card would make 130 ms even at a TRANSFER_SPREAD-th of this device's share (the estimate's whole interval below
# 130 / TRANSFER_SPREAD ms), contradicted only when the sample's FLOPs need more than the card's whole peak in 130 ms,
# and inconclusive between (:func:`decide_paper_speed`).
TRANSFER_SPREAD = 2.5
PAPER_SPEED_TEST = ("t-interval over timing repeats of log(estimated GTX 1080 Ti ms) (95%, two-sided); each "
                    "repeat's ms carried to the card by this device's faster float32 peak against the card's; "
                    f"confirmed when the interval lies below the paper's ms / {TRANSFER_SPREAD:g} (the spread of "
                    "a device's share of its peak between operations), contradicted when the sample's FLOPs need "
                    "more than the card's peak")


def paper_speed_config(s: Setup) -> GlowConfig:
    """The model :func:`measure_paper_speed` times under setup ``s``: the paper's or the stand-in."""
    return PAPER_SPEED_MODEL if s.paper_model else STAND_IN_SPEED_MODEL


def published_sampling_ms(image_size: int = 256) -> float:
    """The paper's ms per sample at ``image_size`` (``glowlib/published_speed.csv``)."""
    from ..analysis.bench_records import published_speed
    table = published_speed()
    row = table[(table.what == "sampling") & (table.image_size == image_size)]
    if row.empty:
        raise ValueError(f"published_speed.csv has no sampling figure at {image_size}x{image_size}")
    return float(row.ms_per_image.iloc[0])


def measure_paper_speed(s: Setup, temperature: float = TEMPERATURE, seed: int = 0, device="cpu") -> pd.DataFrame:
    """The paper's ~130 ms per 256x256 sample (Sec. 5), measured on this device and carried to the GTX 1080 Ti.

    The model of :func:`paper_speed_config`, freshly initialised (ActNorm from one random image), samples one image
    at ``temperature`` after ``s.n_warmup`` warm-up samples; each of ``s.n_repeats`` repeats times this device's
    float32 peak (``analysis.timing.peak_rate``) and then one sample, moments apart, so that a change of load falls on both.
    One row per repeat: wall and process-CPU ms of the sample, its counted FLOPs (``count_work``), the achieved
    rate and its share of the peak, and ``estimate_ms``: the sample's ms at that share of the card's peak
    (:data:`GTX_1080_TI_FLOPS`), ms x peak here / the card's peak; beside it the paper's figure (``paper_ms``)."""
    temperature = PARAMETERS["temperature"]("temperature", temperature)
    cfg = paper_speed_config(s)
    torch.manual_seed(seed)
    net = Glow(cfg).to(device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():                 # ActNorm's data-dependent start; no graph kept for a backward pass
        net.initialize((torch.rand(1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g) - 0.5).to(device))
    net.eval()
    for _ in range(s.n_warmup):
        net.sample(1, temperature, torch.Generator(device).manual_seed(seed))
    work = count_work(net, temperature, seed)
    where, paper_ms = machine(device), published_sampling_ms(PAPER_SPEED_MODEL.image_size)
    ops, rows = peak_ops(device, seed), []
    with torch.inference_mode():
        for r in range(s.n_repeats):
            peak = peak_rate(ops, device)
            gen = torch.Generator(device).manual_seed(seed + r)
            wall, cpu = timed(lambda: net.sample(1, temperature, gen), device)
            achieved = work["flops"] / wall
            rows.append({"repeat": r, "paper_model": s.paper_model, "image_size": cfg.image_size,
                         "n_levels": cfg.n_levels, "depth": cfg.depth, "width": cfg.width, "coupling": cfg.coupling,
                         "n_parameters": sum(p.numel() for p in net.parameters()), "ms_per_image": 1e3 * wall,
                         "cpu_ms_per_image": 1e3 * cpu, "flops_per_image": work["flops"],
                         "conv_calls": work["conv_calls"], "achieved_gflops": achieved / 1e9,
                         "peak_gflops": peak / 1e9, "share_of_peak": achieved / peak,
                         "card_peak_gflops": GTX_1080_TI_FLOPS / 1e9,
                         "estimate_ms": 1e3 * wall * peak / GTX_1080_TI_FLOPS, "paper_ms": paper_ms,
                         "temperature": float(temperature), **where})
    table = pd.DataFrame(rows)
    table["load_average_1min_end"] = os.getloadavg()[0]
    return table


# ---------------------------------------------------------------------------------------------------- growth
def fit_growth(timings: pd.DataFrame, clocks=tuple(CLOCKS)) -> pd.DataFrame:
    """One row per model and clock ("wall", "cpu"): the exponent b of ms ∝ H^b.

    ``exponent`` is the least-squares slope of log(median ms over repeats) on log H, with ``r2`` its R²;
    ``exponent_se`` the standard error over repeats (each repeat's own sweep of heights fitted alone: the spread
    of those slopes / √repeats) and ``exponent_ci_low``/``_high`` its 95% t-interval; ``exponent_se_ols`` the
    slope's least-squares standard error on the medians, which measures how far the points are from a power law
    rather than how noisy they are. Also the exponents of the counted work (FLOPs, convolutions run in sequence)
    where the table has them, the local exponents' range and the last of them (:func:`local_exponents`), and ms
    per image at the largest H.
    """
    from scipy.special import stdtrit                      # Student's t quantile (scipy.stats imports slowly)
    rows = []
    for clock in clocks:
        check_choice("clock", clock, tuple(CLOCKS))
        column = CLOCKS[clock]
        for model, part in timings.groupby("model", sort=False):
            med = part.groupby("height")[column].median()
            if len(med) < 2:
                raise ValueError(f"model {model!r} was timed at heights {list(med.index)}; a growth law needs two "
                                 f"heights at least")
            b, a, se_ols, r2 = power_law(np.log(med.index), np.log(med.values))
            local = [e for _, _, e in successive_exponents(med)]
            per_repeat = [power_law(np.log(p.height), np.log(p[column]))[0]
                          for _, p in part.groupby("repeat") if p.height.nunique() >= 2]
            n = len(per_repeat)
            se = float(np.std(per_repeat, ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
            half = float(stdtrit(n - 1, 0.975)) * se if n >= 2 else math.nan
            row = {"model": model, "clock": clock, "n_heights": len(med), "height_min": int(med.index.min()),
                   "height_max": int(med.index.max()), "n_repeats": n, "exponent": b, "exponent_se": se,
                   "exponent_ci_low": b - half, "exponent_ci_high": b + half, "exponent_se_ols": se_ols, "r2": r2,
                   "last_exponent": local[-1], "local_exponent_min": min(local), "local_exponent_max": max(local),
                   "ms_at_height_max": float(med.iloc[-1])}
            for what in ("flops_per_image", "conv_calls"):
                if what in part:
                    counts = part.groupby("height")[what].first()
                    row[f"{what.removesuffix('_per_image')}_exponent"] = power_law(np.log(counts.index),
                                                                               np.log(counts.values))[0]
            rows.append(row)
    return pd.DataFrame(rows)


def local_exponents(timings: pd.DataFrame, clocks=tuple(CLOCKS)) -> pd.DataFrame:
    """One row per model, clock and pair of successive heights: log(ms ratio) / log(height ratio) of the medians
    over repeats. Rising exponents mean fixed per-call costs giving way to work that grows with the image."""
    rows = []
    for clock in clocks:
        check_choice("clock", clock, tuple(CLOCKS))
        for model, part in timings.groupby("model", sort=False):
            for h0, h1, e in successive_exponents(part.groupby("height")[CLOCKS[clock]].median()):
                rows.append({"model": model, "clock": clock, "height_from": h0, "height_to": h1, "exponent": e})
    return pd.DataFrame(rows)


def per_flop(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per model and height: median ms per image and its time per FLOP (ns), and the counted work (those
    of ``conv_calls``, ``op_calls`` and ``n_parameters`` that the table has)."""
    counted = [c for c in ("conv_calls", "op_calls", "n_parameters") if c in timings]
    out = timings.groupby(["model", "height"], sort=False).agg(
        ms_per_image=("ms_per_image", "median"), cpu_ms_per_image=("cpu_ms_per_image", "median"),
        flops_per_image=("flops_per_image", "first"), **{c: (c, "first") for c in counted}).reset_index()
    out["ns_per_flop"] = 1e6 * out.ms_per_image / out.flops_per_image
    out["gflops_per_s"] = out.flops_per_image / out.ms_per_image / 1e6
    return out


# ---------------------------------------------------------------------------------------------------- ratios
def _paired_logs(timings: pd.DataFrame, clock: str) -> pd.DataFrame:
    """log ms per image, one column per model, one row per (height, repeat) that timed both models."""
    check_choice("clock", clock, tuple(CLOCKS))
    logs = timings.assign(log_ms=np.log(timings[CLOCKS[clock]].astype(float)))
    table = logs.pivot_table(index=["height", "repeat"], columns="model", values="log_ms")
    if not {"glow", "macow"} <= set(table.columns):
        raise ValueError(f"the ratio needs timings of both glow and macow; the table has {sorted(set(timings.model))}")
    return table.dropna(subset=["glow", "macow"])


def ratios(timings: pd.DataFrame, clock: str = "wall") -> pd.DataFrame:
    """MaCow's time per sample over Glow's, per height, paired by repeat (each repeat times both models moments
    apart in the same sweep, so load on the machine falls on both): the geometric mean of the per-repeat ratios
    and its 95% interval (a paired t-interval of log MaCow ms - log Glow ms, exponentiated); ``n_repeats``; and the
    medians of both models' ms."""
    logs, rows = _paired_logs(timings, clock), []
    for h, part in logs.groupby(level="height"):
        iv = paired_interval(part.macow.to_numpy(), part.glow.to_numpy())
        rows.append({"clock": clock, "height": int(h), "n_repeats": iv.n, "ratio": math.exp(iv.difference),
                     "ci_low": math.exp(iv.low), "ci_high": math.exp(iv.high),
                     "glow_ms": float(np.exp(part.glow).median()), "macow_ms": float(np.exp(part.macow).median())})
    return pd.DataFrame(rows)


def ratio_trend(timings: pd.DataFrame, clock: str = "wall") -> pd.DataFrame:
    """How the ratio of :func:`ratios` changes with H: the exponent c of ratio ∝ H^c, fitted on each repeat's sweep
    of heights (least squares of log ratio on log H), its mean over repeats with a 95% t-interval; and the ratio's
    change over the last doubling (largest height against the one below, paired by repeat) with its interval.
    One row."""
    logs = _paired_logs(timings, clock)
    gap = (logs.macow - logs.glow).rename("log_ratio").reset_index()
    slopes = [power_law(np.log(g.height), g.log_ratio)[0] for _, g in gap.groupby("repeat") if g.height.nunique() >= 2]
    if not slopes:
        raise ValueError("the ratio's trend needs two heights at least")
    iv = paired_interval(np.asarray(slopes), np.zeros(len(slopes)))
    heights = sorted(gap.height.unique())
    last = gap.pivot(index="repeat", columns="height", values="log_ratio")[[heights[-2], heights[-1]]].dropna()
    change = paired_interval(last[heights[-1]].to_numpy(), last[heights[-2]].to_numpy())
    return pd.DataFrame([{"clock": clock, "height_min": int(heights[0]), "height_max": int(heights[-1]),
                          "n_repeats": iv.n, "exponent": iv.difference, "exponent_ci_low": iv.low,
                          "exponent_ci_high": iv.high, "last_height_from": int(heights[-2]),
                          "last_change": math.exp(change.difference), "last_change_ci_low": math.exp(change.low),
                          "last_change_ci_high": math.exp(change.high)}])


def trend_words(low: float, high: float) -> str:
    """A trend named by its interval: rising or falling only when the interval excludes no change."""
    return "rises" if low > 0 else "falls" if high < 0 else "shows no trend these repeats can resolve"


# ---------------------------------------------------------------------------------------------------- reporting
def _exponent_text(r) -> str:
    if math.isnan(r.exponent_se):
        return f"H^{r.exponent:.2f}"
    return f"H^{r.exponent:.2f} ± {r.exponent_se:.2f}"


def page_values(fit: pd.DataFrame, trend: pd.DataFrame) -> dict:
    """The numbers the page's words quote that its tables do not show: MaCow's wall-clock growth exponent minus
    Glow's (:func:`fit_growth`) and whether their 95% intervals overlap; the trend of MaCow's time over Glow's
    against H (:func:`ratio_trend`): its exponent with interval, its direction in words (:func:`trend_words`), and
    its change over the last doubling with interval."""
    walls = fit[fit.clock == "wall"].set_index("model")
    g, m = walls.loc["glow"], walls.loc["macow"]
    overlap = ("not measured: one repeat" if math.isnan(m.exponent_se) or math.isnan(g.exponent_se) else
               "do not overlap" if m.exponent_ci_low > g.exponent_ci_high or g.exponent_ci_low > m.exponent_ci_high
               else "overlap")
    t = trend.iloc[0]
    return {"exponent_difference": m.exponent - g.exponent, "exponent_intervals": overlap,
            "ratio_trend": trend_words(t.exponent_ci_low, t.exponent_ci_high), "ratio_exponent": t.exponent,
            "ratio_exponent_ci_low": t.exponent_ci_low, "ratio_exponent_ci_high": t.exponent_ci_high,
            "last_height_from": int(t.last_height_from), "last_height_to": int(t.height_max),
            "last_change": t.last_change, "last_change_ci_low": t.last_change_ci_low,
            "last_change_ci_high": t.last_change_ci_high}


def plot_growth(timings: pd.DataFrame, fit: pd.DataFrame):
    """Three log-log panels against H: ms per image (each repeat, the medians with their range, the fitted power
    laws with their exponents; wall time filled, process CPU time hollow), its legend beside it; ns per FLOP, and
    the convolutions one sample runs in sequence. Two places a row, as wide as the book's column (``COLUMN_INCHES``)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    from .base import COLUMN_INCHES
    fig, axes = plt.subplot_mosaic([["a", "key"], ["b", "c"]], figsize=(COLUMN_INCHES, 6.6), layout="constrained")
    a, b, c = axes["a"], axes["b"], axes["c"]
    work = per_flop(timings)
    heights = np.array(sorted(timings.height.unique()), float)
    fits = fit.set_index(["model", "clock"])
    for i, (model, part) in enumerate(timings.groupby("model", sort=False)):
        colour, name = f"C{i}", MODEL_WORDS.get(model, model)
        for clock, column in CLOCKS.items():
            if (model, clock) not in fits.index:
                continue
            r = fits.loc[(model, clock)]
            stats = part.groupby("height")[column].agg(["median", "min", "max"])
            filled = clock == "wall"
            a.scatter(part.height, part[column], s=8, color=colour, alpha=0.3 if filled else 0.15)
            a.errorbar(stats.index, stats["median"], yerr=[stats["median"] - stats["min"],
                                                           stats["max"] - stats["median"]],
                       fmt="o", color=colour, mfc=colour if filled else "none", capsize=3)
            centre_h, centre_t = np.log(stats.index.to_numpy(float)).mean(), np.log(stats["median"]).mean()
            a.plot(heights, np.exp(centre_t + r.exponent * (np.log(heights) - centre_h)),
                   "-" if filled else ":", color=colour, label=f"{name}, {clock}: {_exponent_text(r)}")
        w = work[work.model == model]
        b.plot(w.height, w.ns_per_flop, "o-", color=colour, label=name)
        c.plot(w.height, w.conv_calls, "o-", color=colour, label=name)
        for h, n in zip(w.height, w.conv_calls):
            c.annotate(f"{n}", (h, n), xytext=(0, 5), textcoords="offset points", ha="center", fontsize="small")
    low = timings.groupby(["model", "height"])[CLOCKS["wall"]].median().min()
    for power, style in ((1, "--"), (2, "-.")):                  # guides: what H and H² growth look like
        a.plot(heights, low * (heights / heights[0]) ** power, style, color="grey", lw=0.8, label=f"∝ H^{power}")
    for ax in (a, b, c):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(heights, [f"{h:g}" for h in heights])
        ax.set_xlabel("image height H (H×H images)")
    for ax in (b, c):
        ax.legend(fontsize="small")
    axes["key"].axis("off")                                          # panel a's legend, beside it
    axes["key"].legend(*a.get_legend_handles_labels(), fontsize="small", loc="center", title="time per sample",
                       title_fontsize="small")
    c.margins(y=0.15)                                                # room for the counts above the points
    a.set(ylabel="ms per sample", title="time per sample, fitted H^b")
    b.set(ylabel="ns per FLOP (wall, median)", title="time per FLOP")
    c.set(ylabel="convolutions per sample", title="convolutions run in sequence")
    fig.suptitle("Sampling cost against image height: Glow and MaCow")
    return fig


# ---------------------------------------------------------------------------------------------------- claims
LINEAR = 0.15           # MaCow's sequential convolutions grow as H^(1 ± this), Glow's as H^(0 ± this)


def paper_speed_summary(table: pd.DataFrame) -> dict:
    """The numbers of :func:`measure_paper_speed`'s table that the page quotes and the claim reads: medians over
    repeats of the time here, this device's peak and the share of it the sample reached; the card's peak and the
    share of it the paper's figure needs; and, with two repeats or more, the estimated card ms with the 95%
    t-interval of its log over repeats (``estimate_ms``, ``estimate_ci_low``, ``estimate_ci_high``)."""
    paper_ms, flops, card = (float(table[c].iloc[0]) for c in ("paper_ms", "flops_per_image", "card_peak_gflops"))
    out = {"paper_model": bool(table.paper_model.astype(str).eq("True").all()), "repeats": len(table),
           "paper_ms": paper_ms, "gflops_per_sample": flops / 1e9,
           "ms_here": float(table.ms_per_image.median()), "peak_gflops_here": float(table.peak_gflops.median()),
           "share_of_peak_here": float(table.share_of_peak.median()), "card_peak_gflops": card,
           "card_share_needed": flops / (paper_ms / 1e3 * card * 1e9), "image_size": int(table.image_size.iloc[0])}
    if len(table) >= 2:
        iv = paired_interval(np.log(table.estimate_ms.to_numpy(float)), np.zeros(len(table)))
        out.update(estimate_ms=math.exp(iv.difference), estimate_ci_low=math.exp(iv.low),
                   estimate_ci_high=math.exp(iv.high))
    return out


def decide_paper_speed(results: Results) -> Outcome:
    """The paper's ~130 ms per 256x256 sample on a GTX 1080 Ti, from :func:`measure_paper_speed`'s repeats
    (:func:`paper_speed_summary`): the t-interval of the log of the estimated card time (:data:`PAPER_SPEED_TEST`),
    reported as its ratio to the paper's figure; confirmed when the whole interval lies below the figure over
    :data:`TRANSFER_SPREAD`, contradicted when the sample's counted FLOPs need more than the card's peak in the
    paper's time (``card_share_needed`` above 1), inconclusive otherwise.
    Not testable where the run timed the stand-in rather than the paper's model, or with fewer repeats than an
    interval needs."""
    summary = paper_speed_summary(results.table(NOTEBOOK, "paper_speed"))
    numbers = {k.replace("_", " "): v for k, v in summary.items() if k != "paper_model"}
    if not summary["paper_model"]:
        return not_testable("this profile timed the stand-in (its Setup's paper_model is False), not the paper's "
                            "256x256 model")
    if summary["repeats"] < MIN_SEEDS:
        return Outcome(Decision(NOT_TESTABLE, reason="fewer timing repeats than the interval needs"),
                       {**numbers, "repeats needed": MIN_SEEDS})
    paper_ms = summary["paper_ms"]
    ratio, low, high = (summary[k] / paper_ms for k in ("estimate_ms", "estimate_ci_low", "estimate_ci_high"))
    verdict = (CONTRADICTED if summary["card_share_needed"] > 1 else CONFIRMED if high * TRANSFER_SPREAD < 1
               else INCONCLUSIVE)
    return Outcome(Decision(verdict, ratio, low, high, 0, PAPER_SPEED_TEST), numbers,
                   "paper_speed.csv: estimated card ms / paper ms")


def _walls(results: Results) -> pd.DataFrame | None:
    """The wall-clock rows of :func:`fit_growth`'s table by model, or None unless both models were timed."""
    fit = results.table(NOTEBOOK, "fit")
    wall = fit[fit.clock == "wall"].set_index("model")
    return wall if {"glow", "macow"} <= set(wall.index) else None


def decide_sequential(results: Results) -> Outcome:
    """MaCow's convolutions run in sequence per sample, counted (exact): confirmed when they grow as H^(1 ±
    :data:`LINEAR`) while Glow's stay H^(0 ± :data:`LINEAR`), contradicted otherwise."""
    wall = _walls(results)
    if wall is None:
        return not_testable("the notebook timed only one of Glow and MaCow")
    g, m = wall.loc["glow"], wall.loc["macow"]
    numbers = {"macow conv_calls exponent": m.conv_calls_exponent, "glow conv_calls exponent": g.conv_calls_exponent,
               "macow flops exponent": m.flops_exponent, "glow flops exponent": g.flops_exponent,
               "height min": float(m.height_min), "height max": float(m.height_max)}
    linear = abs(m.conv_calls_exponent - 1) <= LINEAR and abs(g.conv_calls_exponent) <= LINEAR
    return Outcome(Decision(CONFIRMED if linear else CONTRADICTED), numbers, "fit.csv conv_calls_exponent")


def decide_wall_clock(results: Results) -> Outcome:
    """MaCow slower than Glow at every height, from the per-height ratios of wall-clock time (:func:`ratios`):
    confirmed when every ratio's interval lies above 1, contradicted when one lies below, inconclusive otherwise;
    the deciding height is the first contradicting one, else the first undecided one, else the lowest interval."""
    if _walls(results) is None:
        return not_testable("the notebook timed only one of Glow and MaCow")
    table = results.table(NOTEBOOK, "ratios")
    trend = results.table(NOTEBOOK, "ratio_trend")
    table, trend = table[table.clock == "wall"], trend[trend.clock == "wall"]
    n = int(table.n_repeats.min())
    if n < MIN_SEEDS:
        return Outcome(Decision(NOT_TESTABLE, reason="fewer timing repeats than the interval needs"),
                       {"repeats": n, "repeats needed": MIN_SEEDS})
    above, below = table.ci_low > 1, table.ci_high < 1
    verdict = CONTRADICTED if below.any() else CONFIRMED if above.all() else INCONCLUSIVE
    decisive = (table[below] if below.any() else table[~above] if not above.all() else table).sort_values("ci_low")
    r = decisive.iloc[0]
    numbers = {"ratio at H = " + str(int(h.height)): h.ratio for h in table.itertuples()}
    numbers.update({"deciding height": float(r.height), "trend exponent": trend.exponent.iloc[0],
                    "trend exponent ci_low": trend.exponent_ci_low.iloc[0],
                    "trend exponent ci_high": trend.exponent_ci_high.iloc[0]})
    return Outcome(Decision(verdict, r.ratio, r.ci_low, r.ci_high, 0, RATIO_TEST), numbers, "ratios.csv")


CLAIMS = (
    ClaimSpec("sampling_cost.paper_sampling_speed",
              "Sampling is fast: ~130 ms per 256×256 sample on a GTX 1080 Ti (Sec. 5)", "paper", decide_paper_speed),
    ClaimSpec("sampling_cost.macow_sequential_passes",
              "MaCow inverts a masked convolutional flow in O(H) sequential passes, not O(H·W) (MaCow, Sec. 3)",
              "paper", decide_sequential),
    ClaimSpec("sampling_cost.macow_wall_clock",
              "MaCow: wall-clock sampling cost against image height, beside Glow's (MaCow reviewers)", "reviewers",
              decide_wall_clock),
)
