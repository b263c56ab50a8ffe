"""bf16 against fp32: does training with the coupling networks in bf16 (``precision="bf16"``) cost quality, what
does it save in time, and how exact is its round trip. The logic of ``notebooks/precision.py``.

The study trains the profile's Glow on one data set in both precisions with the same seeds and the same number of
steps (two seeds, so that the difference between precisions can be set beside the difference between seeds),
evaluates every model on the whole test split, and measures each trained bf16 model's round trip
|x - decode(encode(x))| on real test images in several modes (:data:`ROUND_TRIP_MODES`). bf16 runs only where the
hardware has a bf16 path (``glowlib.layers.bf16_support``): emulated bf16 is several times slower than fp32 and
would say nothing about the hardware this option is for; the notebook then says so and shows the fp32 runs alone.

``bench/round_trip.py`` uses :func:`round_trip` too, on weights moved off initialisation or on a cached model.
"""
from __future__ import annotations

import math
import time
import warnings
from types import SimpleNamespace

import pandas as pd
import torch

from ..config import PRECISIONS, check_choice
from ..data import is_available, load_dataset, to_float
from ..layers import bf16_support
from ..profiles import PROFILES, profile_config
from ..training import bits_per_image, mean_and_sem, trained
from .base import SEED, Claim, auto_or, available_dataset, choice, device, int_in, list_of
from .base import check_values

NOTEBOOK = "precision"
# smoke: the 8x8 digits (every code path in a minute); cpu: Fashion-MNIST, the bits/dim table's largest data set;
# paper: CIFAR-10 at the official settings for 20,000 steps (a full 400,000-step run per seed and precision would
# be four of the paper's runs for one comparison)
DATASETS = {"smoke": "digits", "cpu": "fashion_mnist", "gpu": "cifar10", "paper": "cifar10"}
STEPS = {"gpu": 3_000, "paper": 20_000}
SEEDS = (0, 1)
# each a (GlowConfig.precision, dtype of the flow's own arithmetic); the weights are the same in all three
ROUND_TRIP_MODES = {"fp32": ("fp32", torch.float32), "bf16": ("bf16", torch.float32),
                    "bf16_flow64": ("bf16", torch.float64), "fp64": ("fp32", torch.float64)}
# the largest round-trip error counted as exact, on the [-0.5, 0.5] scale: about a quarter of an 8-bit bin
ROUND_TRIP_TOLERANCE = 1e-3
KEYS = {"runs": ["precision", "seed"], "comparison": ["quantity"], "round_trip": ["seed", "mode"]}
PARAMETERS = {**SEED, "seeds": list_of(int_in(0)), "dataset": auto_or(available_dataset),
              "precisions": list_of(choice(PRECISIONS)), "n_round_trip": int_in(1)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``dataset="auto"`` becomes the profile's
    (:data:`DATASETS`), and ``seeds`` must hold two different ones."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    if values["dataset"] == "auto":
        values["dataset"] = DATASETS[values["profile"]]
    if len(set(values["seeds"])) < 2:
        raise ValueError(f"seeds={values['seeds']!r}: give at least two different seeds, so that the precisions' "
                         f"difference can be set beside the seeds'")
    return SimpleNamespace(**values)


def configs(profile: str, dataset: str, seeds, precisions) -> dict[tuple[str, int], object]:
    """{(precision, seed): RunConfig}: the profile's Glow for ``dataset`` with only the precision and seed changed."""
    check_choice("profile", profile, PROFILES)
    steps = [f"train.steps={STEPS[profile]}"] if profile in STEPS else []
    return {(p, s): profile_config(profile, dataset, "glow", s, [f"model.precision={p!r}"] + steps)
            for p in precisions for s in seeds}


def runs(profile: str, on: str | None = None) -> list:
    """The runs the notebook trains with its default parameters on device ``on`` (default: ``base.device()``);
    none when the profile's data set is not on this machine."""
    dataset = DATASETS[profile]
    if not is_available(dataset):
        return []
    precisions, _ = runnable(PRECISIONS, on or device())
    return list(configs(profile, dataset, SEEDS, precisions).values())


def claims(profile: str, root=None) -> list[Claim]:
    """None: the precision page states its own test (:func:`compare`); no claim of the paper rests on it."""
    return []


def runnable(precisions, device: str) -> tuple[list[str], list[str]]:
    """(the precisions to train on ``device``, a note for each one left out and why)."""
    keep, notes = [], []
    for p in precisions:
        if p == "bf16":
            fast, reason = bf16_support(device)
            if not fast:
                notes.append(f"bf16 is not trained here: {reason}. Its rows need a machine with AMX, AVX512-BF16 "
                             f"or bf16 tensor cores.")
                continue
        keep.append(p)
    return keep, notes


def train_all(configs: dict, device: str = "cpu", progress: bool = False) -> dict:
    """The trained model of each config, from the model cache (trained on first use)."""
    return {k: trained(run, device, progress) for k, run in configs.items()}


def evaluate(models: dict, seed: int = 0, device: str = "cpu") -> pd.DataFrame:
    """One row per (precision, seed): test bits/dim of the Polyak weights chosen on validation, over the whole test
    split, with its standard error; the validation figure that chose them; training steps, seconds, images/s."""
    rows = []
    tests = {}
    for (precision, s), tm in models.items():
        dataset, n_bits = tm.run.data.dataset, tm.run.data.n_bits
        if dataset not in tests:
            tests[dataset] = load_dataset(dataset).test_images
        # the images stay on the CPU, where bits_per_image draws their noise; it moves each batch to the model
        values = bits_per_image(tm.model.to(device), tests[dataset], n_bits, seed=seed)
        mean, sem = mean_and_sem(values)
        wall = tm.summary["wall_s"]
        rows.append({"precision": precision, "seed": s, "dataset": dataset, "steps": tm.summary["steps"],
                     "wall_s": wall, "images_per_s": tm.summary["steps"] * tm.run.train.batch_size / wall,
                     "test_bpd": mean, "test_sem": sem, "n_test": len(values),
                     "val_bpd": tm.summary["best_val_bpd"], "key": tm.run.key()})
    return pd.DataFrame(rows).sort_values(["precision", "seed"]).reset_index(drop=True)


def compare(table: pd.DataFrame) -> pd.DataFrame:
    """The page's test, one row per quantity: the spread between fp32 seeds (largest minus smallest test bits/dim),
    bf16 minus fp32 for each seed, the worst of those, and the training speed-up (fp32 seconds over bf16 seconds,
    per seed and its mean). ``passes`` (on the worst difference) is whether bf16 is no worse than fp32 by more than
    the fp32 seeds' spread. Empty when either precision is missing."""
    by = table.set_index(["precision", "seed"])
    if not {"fp32", "bf16"} <= set(table.precision):
        return pd.DataFrame(columns=["quantity", "value", "passes"])
    fp32 = by.loc["fp32"]
    spread = fp32.test_bpd.max() - fp32.test_bpd.min()
    seeds = sorted(set(by.loc["bf16"].index) & set(fp32.index))
    rows = [{"quantity": "fp32_seed_spread", "value": spread, "passes": None}]
    diffs, speed = [], []
    for s in seeds:
        d = by.loc[("bf16", s), "test_bpd"] - by.loc[("fp32", s), "test_bpd"]
        diffs.append(d)
        speed.append(by.loc[("fp32", s), "wall_s"] / by.loc[("bf16", s), "wall_s"])
        rows.append({"quantity": f"bf16_minus_fp32_seed{s}", "value": d, "passes": None})
        rows.append({"quantity": f"speedup_seed{s}", "value": speed[-1], "passes": None})
    if diffs:
        rows.append({"quantity": "worst_bf16_minus_fp32", "value": max(diffs), "passes": bool(max(diffs) <= spread)})
        rows.append({"quantity": "mean_speedup", "value": sum(speed) / len(speed), "passes": None})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- round trip
def round_trip(model, x: torch.Tensor, n_bits: int) -> dict[str, dict]:
    """|x - decode(encode(x))| of ``model``'s weights in each of :data:`ROUND_TRIP_MODES` (x: images in [-0.5, 0.5]):
    the largest error over finite pixels and its 99.99th percentile, the fraction of pixels off by more than
    :data:`ROUND_TRIP_TOLERANCE`, the non-finite pixels, the fraction of images whose n-bit bins change, mean
    bits/dim and ms per image of encode (with the prior's log-density) + decode, after a warm-up call."""
    state, cfg = model.state_dict(), model.config
    out = {}
    for mode, (precision, dtype) in ROUND_TRIP_MODES.items():
        m = type(model)(cfg.replace(precision=precision)).to(x.device)
        m.load_state_dict(state)
        m = m.to(dtype).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)            # emulated bf16: slower, still correct
            out[mode] = _round_trip(m, x.to(dtype), n_bits, cfg.n_dims)
    return out


def _round_trip(model, x, n_bits: int, n_dims: int) -> dict:
    bins = 2 ** n_bits
    with torch.no_grad():
        model.decode(model.encode(x[:8])[0])                       # warm-up: first calls allocate, pick kernels
        start = time.perf_counter()
        zs, logdet, log_pz = model._encode(x, None)                # one pass gives the latents and log p(x)
        decoded = model.decode(zs)
        seconds = time.perf_counter() - start
        log_px = log_pz + logdet
    err = (decoded - x).abs().double()
    finite = torch.isfinite(err)
    e = err[finite]
    same_bin = (torch.floor((decoded + 0.5) * bins) == torch.floor((x + 0.5) * bins)).flatten(1).all(1)
    bpd = -log_px.double() / (n_dims * math.log(2)) + n_bits
    return {"max_error": e.max().item() if e.numel() else float("nan"),
            "p9999_error": e.quantile(0.9999).item() if e.numel() else float("nan"),
            "fraction_over_1e-3": (err > ROUND_TRIP_TOLERANCE).double().mean().item(),
            "nonfinite_pixels": int((~finite).sum()),
            "fraction_images_bin_changed": 1 - same_bin.double().mean().item(),
            "bits_per_dim": bpd[torch.isfinite(bpd)].mean().item(),
            "ms_per_image": 1e3 * seconds / x.shape[0]}


def test_images(dataset: str, n: int, n_bits: int) -> torch.Tensor:
    """The first ``n`` test images of ``dataset`` at the centres of their n-bit bins (as the interpolation study
    encodes them), so that a pixel decodes into another bin only when its error exceeds half a bin."""
    images = load_dataset(dataset, max_images=n).test_images
    return to_float(images, n_bits) + 0.5 / 2 ** n_bits


def round_trip_table(models: dict, n: int, device: str = "cpu") -> pd.DataFrame:
    """:func:`round_trip` of every bf16-trained model on its first ``n`` test images (:func:`test_images`), one row
    per (seed, mode)."""
    rows = []
    for (precision, s), tm in models.items():
        if precision != "bf16":
            continue
        x = test_images(tm.run.data.dataset, n, tm.run.data.n_bits).to(device)
        for mode, r in round_trip(tm.model.to(device), x, tm.run.data.n_bits).items():   # reads its weights only
            rows.append({"seed": s, "mode": mode, "n_images": len(x), **r})
    return pd.DataFrame(rows)


def summary_lines(table: pd.DataFrame, comparison: pd.DataFrame, trip: pd.DataFrame) -> list[str]:
    """The result in words, every number read from the tables."""
    lines = []
    for precision, part in table.groupby("precision", sort=True):
        runs = ", ".join(f"seed {r.seed}: {r.test_bpd:.3f} ± {r.test_sem:.3f} in {r.wall_s:.0f} s"
                         for r in part.itertuples())
        lines.append(f"{precision}, {int(part.steps.iloc[0])} steps on {part.dataset.iloc[0]}: {runs}.")
    if len(comparison):
        c = comparison.set_index("quantity")
        worst = c.loc["worst_bf16_minus_fp32"]
        lines.append(f"bf16 minus fp32 at the same seed: at worst {worst.value:+.3f} bits/dim, against an fp32 "
                     f"seed spread of {c.loc['fp32_seed_spread'].value:.3f}: "
                     f"{'within it (the test passes)' if worst.passes else 'beyond it (the test fails)'}. "
                     f"Training took {c.loc['mean_speedup'].value:.2f}x less wall time in bf16.")
    if len(trip):
        by = trip.groupby("mode").agg(max_error=("max_error", "max"), over=("fraction_over_1e-3", "max"),
                                      changed=("fraction_images_bin_changed", "max"),
                                      nonfinite=("nonfinite_pixels", "sum"), n=("n_images", "first"),
                                      ms=("ms_per_image", "mean"))
        b, f = by.loc["bf16"], by.loc["bf16_flow64"]
        lines.append(f"Round trip on {int(b.n)} test images, worst model: bf16 networks in a float32 flow "
                     f"{b.max_error:.2g} at most ({b.over:.2%} of pixels beyond 1e-3, {b.changed:.1%} of images with "
                     f"a pixel decoded into another bin); the same networks in a float64 flow {f.max_error:.2g} "
                     f"({'within' if f.max_error <= ROUND_TRIP_TOLERANCE else 'beyond'} the "
                     f"{ROUND_TRIP_TOLERANCE:g} that counts as exact, a quarter of an 8-bit bin), at {f.ms:.2f} "
                     f"against {b.ms:.2f} ms per image for encode + decode.")
        if by.nonfinite.sum():
            lines.append("Non-finite decoded pixels per mode: " + ", ".join(
                f"{m} {int(v)}" for m, v in by.nonfinite.items()) + " (an affine scale that underflows in float32 "
                "loses its input; float64 keeps it).")
    return lines


def plot(table: pd.DataFrame, trip: pd.DataFrame | None):
    """Left: test bits/dim ± SEM per seed and precision. Right: round-trip error of the bf16 models per mode."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if trip is not None and len(trip) else 1, figsize=(10, 3.6), squeeze=False)
    ax = axes[0, 0]
    for i, (precision, part) in enumerate(table.groupby("precision", sort=True)):
        ax.errorbar(part.seed + (i - 0.5) * 0.15, part.test_bpd, yerr=part.test_sem, fmt="o", capsize=3,
                    label=f"{precision} ({part.wall_s.mean():.0f} s per run)")
    ax.set(xlabel="seed", ylabel="test bits/dim", xticks=sorted(table.seed.unique()),
           title=f"{table.dataset.iloc[0]}, {int(table.steps.iloc[0])} steps")
    ax.legend()
    if axes.shape[1] > 1:
        ax = axes[0, 1]
        for s, part in trip.groupby("seed"):
            ax.plot(part["mode"], part.max_error.clip(lower=1e-17), "o-", label=f"bf16 model, seed {s}")
        ax.axhline(ROUND_TRIP_TOLERANCE, color="k", ls=":",
                   label=f"{ROUND_TRIP_TOLERANCE:g}: a quarter of an 8-bit bin")
        ax.set(yscale="log", ylabel="max |x − decode(encode(x))|", title="round trip by mode")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

