"""bf16 against fp32: does training with the coupling networks in bf16 (``precision="bf16"``) cost quality, what
does it save in time, and how exact is its round trip. The logic of ``notebooks/precision.py``.

The study trains the profile's Glow on one data set in both precisions with the same seeds and the same number of
steps (two seeds, so that the difference between precisions can be set beside the difference between seeds),
evaluates every model on the whole test split, and measures each trained bf16 model's round trip
|x - decode(encode(x))| on real test images in several modes (:data:`ROUND_TRIP_MODES`). bf16 runs only where the
hardware has a bf16 path (``glowlib.layers.bf16_support``): emulated bf16 is several times slower than fp32 and
would say nothing about the hardware this option is for; the notebook then says so and shows the fp32 runs alone.

The round trip itself is ``glowlib.analysis.round_trip``'s, which ``bench/round_trip.py`` runs on any weights.
"""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from ..analysis.round_trip import ROUND_TRIP_MODES, ROUND_TRIP_TOLERANCE, round_trip, test_images  # noqa: F401
from ..config import PRECISIONS
from ..data import is_available, load_dataset
from ..layers import bf16_support
from ..profiles import profile_config
from ..profiles import profile as profile_of
from ..training import bits_per_image, mean_and_sem, trained
from .base import SEED, auto_or, available_dataset, choice, device, int_in, list_of
from .base import check_values, publish  # noqa: F401  (publish: the notebook calls it through this module)

NOTEBOOK = "precision"
# the data set and steps: the profile's ``precision_dataset`` and ``precision_steps``
SEEDS = (0, 1)
KEYS = {"runs": ["precision", "seed"], "comparison": ["quantity"], "round_trip": ["seed", "mode"]}
PARAMETERS = {**SEED, "seeds": list_of(int_in(0)), "dataset": auto_or(available_dataset),
              "precisions": list_of(choice(PRECISIONS)), "n_round_trip": int_in(1)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``dataset="auto"`` becomes the profile's
    (``Profile.precision_dataset``), and ``seeds`` must hold two different ones."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    if values["dataset"] == "auto":
        values["dataset"] = profile_of(values["profile"]).precision_dataset
    if len(set(values["seeds"])) < 2:
        raise ValueError(f"seeds={values['seeds']!r}: give at least two different seeds, so that the precisions' "
                         f"difference can be set beside the seeds'")
    return SimpleNamespace(**values)


def configs(profile: str, dataset: str, seeds, precisions) -> dict[tuple[str, int], object]:
    """{(precision, seed): RunConfig}: the profile's Glow for ``dataset`` with only the precision and seed changed."""
    steps = profile_of(profile).precision_steps
    steps = [f"train.steps={steps}"] if steps is not None else []
    return {(p, s): profile_config(profile, dataset, "glow", s, [f"model.precision={p!r}"] + steps)
            for p in precisions for s in seeds}


def runs(profile: str, on: str | None = None) -> list:
    """The runs the notebook trains with its default parameters on device ``on`` (default: ``base.device()``);
    none when the profile's data set is not on this machine."""
    dataset = profile_of(profile).precision_dataset
    if not is_available(dataset):
        return []
    precisions, _ = runnable(PRECISIONS, on or device())
    return list(configs(profile, dataset, SEEDS, precisions).values())


# none: the page states its own test (:func:`compare`); no claim of the paper rests on it
CLAIMS = ()


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

