"""Attribute manipulation (Kingma & Dhariwal 2018, Sec. 5, Fig. 6): a direction in latent space from training
images with and without an attribute, test images decoded along it, and whether the attribute measured from the
results moves the intended way. The logic of ``notebooks/manipulation.py``."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from ..analysis import attribute_direction, image_grid, manipulate, measure_attributes
from ..analysis.claims import ClaimSpec, Outcome, Results
from ..analysis.paired import CORRECTION
from ..analysis.stats import CONFIDENCE, MIN_SEEDS, Decision, paired_interval
from ..config import check_choice
from ..data import is_available, split_validation
from ..profiles import profile as profile_of
from ..training import prepare_splits, seeded
from .base import (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SEED, Experiment, available_dataset,
                   choice, int_in, list_of, number_in, shared_seed_models, shared_seed_runs)
from .base import device, shared_model, show  # noqa: F401  (the notebook calls them through this module)
from .base import auto_or, check_values, with_figure_dataset

NOTEBOOK = "manipulation"
MNIST_ATTRIBUTES = ("thickness", "slant")            # measured from the images (analysis.measure_attributes)
CELEBA_ATTRIBUTES = ("Smiling", "Young", "Blond_Hair")
# CIFAR-10 has no attribute labels: a class is the attribute (mean latent of the class minus that of the others)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_AUTO = ("automobile", "cat", "ship")
# where each dataset's direction comes from (the table's ``direction`` column)
DIRECTIONS = {"celeba": "CelebA attribute file", "cifar10": "CIFAR-10 class: mean latent of the class minus the rest"}
MEASURED_DIRECTION = "measured from the images, split at the median"
# training seeds of the shared Glow the claim is decided over (stats.MIN_SEEDS: the t-interval needs 3)
TRAINING_SEEDS = 3
# random directions per attribute, each as long as the attribute's at every level: the control. Any move in latent
# space changes a decoded image somewhat (noise reads as thinner strokes), so the claim is that the attribute's own
# direction changes it more than a direction that knows nothing of it
N_RANDOM = 4


def manipulation_dataset(profile: str) -> str:
    """The first of the profile's ``manipulation_datasets`` whose files are here (else its last): CelebA's
    attributes where CelebA is present, else a CIFAR-10 class, at the profiles that train them."""
    choices = profile_of(profile).manipulation_datasets
    return next((d for d in choices if is_available(d)), choices[-1])


def attributes_of(dataset: str) -> tuple:
    """The attributes a direction can be found for on ``dataset``."""
    return {"celeba": CELEBA_ATTRIBUTES, "cifar10": CIFAR10_CLASSES}.get(dataset, MNIST_ATTRIBUTES)


def attributes_or_auto(name, value):
    """"auto" (the dataset's attributes) or a list of attribute names."""
    if value == "auto":
        return value
    return list_of(choice(MNIST_ATTRIBUTES + CELEBA_ATTRIBUTES + CIFAR10_CLASSES))(name, value)


PARAMETERS = {**SEED, "dataset": auto_or(available_dataset), "attributes": attributes_or_auto,
              "alphas": list_of(number_in()), "n_images": int_in(1, 64), "n_direction": int_in(2),
              "n_training_seeds": int_in(1, 10)}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``); ``dataset="auto"`` becomes the profile's
    (:func:`manipulation_dataset`), ``attributes="auto"`` the dataset's (CIFAR-10: :data:`CIFAR10_AUTO`), and every
    attribute must be one the dataset has."""
    values = check_values(NOTEBOOK, PARAMETERS, params)
    values = with_figure_dataset(values, manipulation_dataset(values["profile"]))
    allowed = attributes_of(values["dataset"])
    if values["attributes"] == "auto":
        values["attributes"] = list(CIFAR10_AUTO if values["dataset"] == "cifar10" else allowed)
    for a in values["attributes"]:
        check_choice(f"attributes (for dataset={values['dataset']!r})", a, allowed)
    return SimpleNamespace(**values)


def seeds_for(dataset: str, n: int) -> int:
    """How many training seeds the study uses on ``dataset``: ``n`` where the attributes are measured from the
    images (the claim is decided over seeds), else 1: CelebA's and CIFAR-10's directions are only shown, and a
    paper-size Glow trained twice more for pictures alone would cost hours."""
    return n if dataset not in DIRECTIONS else 1


def runs(profile: str, n: int = TRAINING_SEEDS) -> list:
    """The shared Glow (``base.shared_model``) of :func:`manipulation_dataset` and, where the claim is decided
    (:func:`seeds_for`), the same run with training seeds 1 .. ``n`` - 1 (``base.shared_seed_runs``)."""
    dataset = manipulation_dataset(profile)
    return shared_seed_runs(profile, dataset, seeds_for(dataset, n))


def seed_models(profile: str, dataset: str, n: int) -> dict:
    """{training seed: trained model} of the runs beyond seed 0 (seed 0 is ``base.shared_model``)."""
    return shared_seed_models(profile, dataset, seeds_for(dataset, n))


def random_direction(direction: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """A direction drawn at random (standard normal, seeded), scaled at every level to the length of
    ``direction``'s there: the control that knows nothing of the attribute."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for d in direction:
        r = torch.randn(d.shape, generator=g, dtype=torch.float64)
        out.append((r * d.double().norm() / r.norm()).to(dtype=d.dtype, device=d.device))
    return out


def manipulation(model, run, attributes, alphas, n_images: int, n_direction: int, seed: int,
                 n_random: int = N_RANDOM) -> Experiment:
    """Attribute manipulation (Sec. 5, Fig. 6). For each attribute a direction = mean z(with) − mean z(without)
    over ``n_direction`` training images (MNIST-like data: the attribute measured from the image, binarised at its
    median; CelebA: its attribute file; CIFAR-10: a class against the others), then ``n_images`` test images
    decoded at z + α·direction; where the attribute is measured, the same images also along ``n_random``
    :func:`random_direction` of the same length.

    Tables: ``manipulation`` (one row per attribute, image and α, with the measured attributes of the result where
    they can be measured) and ``response`` (:func:`image_slopes`: one row per attribute, the image as the unit: each
    image's least-squares slope of the measured attribute against α, their mean with its 95% t-interval over
    images; the change of the mean from α = min to α = max; and ``slope_random``, the mean slope along the random
    directions).
    """
    splits = prepare_splits(run)
    data = splits.data
    pick = torch.randperm(len(splits.train_x), generator=seeded(seed, 8))[:n_direction]
    train_x = splits.train_x[pick]
    source = DIRECTIONS.get(run.data.dataset, MEASURED_DIRECTION)
    measured = measure_attributes(train_x) if source == MEASURED_DIRECTION else None
    test_x = splits.test_x[torch.randperm(len(splits.test_x), generator=seeded(seed, 9))[:n_images]]
    rows, response, images = [], [], {}
    for attribute in attributes:
        if measured is not None:
            has = torch.from_numpy((measured[attribute] > measured[attribute].median()).to_numpy(copy=True))
        elif run.data.dataset == "cifar10":       # a class against the rest
            has = splits.train_y[pick] == data.class_names.index(attribute)
        else:                                     # CelebA: the attribute file, in the training split's order
            column = data.attribute_names.index(attribute)
            train_attr = _celeba_train_attributes(run, data)[pick]
            has = train_attr[:, column] > 0
        direction = attribute_direction(model, train_x, has)
        out, finite = manipulate(model, test_x, direction, alphas, return_finite=True)   # (N, A, C, H, W)
        images[attribute] = out
        values = measure_attributes(out.flatten(0, 1)) if measured is not None else None
        for i in range(out.shape[0]):
            for j, alpha in enumerate(alphas):
                row = {"attribute": attribute, "direction": source, "image": i, "alpha": float(alpha),
                       "decoded_finite": bool(finite[i, j])}
                if values is not None:
                    row.update({f"measured_{m}": values[m].iloc[i * len(alphas) + j] for m in MNIST_ATTRIBUTES})
                rows.append(row)
        if values is not None:
            image, x, y = _points(values[attribute].to_numpy(), finite, alphas)
            per_alpha = pd.DataFrame({"alpha": x, "y": y}).groupby("alpha").y.mean()
            response.append({"attribute": attribute, **image_slopes(image, x, y),
                             "slope_random": _random_slope(model, test_x, direction, attribute, alphas, seed,
                                                           n_random),
                             "change": per_alpha.iloc[-1] - per_alpha.iloc[0], "n_images": out.shape[0],
                             "n_nonfinite": int((~finite).sum()),
                             "n_with": int(has.sum()), "n_without": int((~has).sum()),
                             "threshold": float(measured[attribute].median())})
    tables = {"manipulation": pd.DataFrame(rows)}
    if response:
        tables["response"] = pd.DataFrame(response)
    return Experiment(tables, images=images)


def _random_slope(model, test_x, direction, attribute: str, alphas, seed: int, n_random: int) -> float:
    """The mean over ``n_random`` :func:`random_direction` (seeds derived from ``seed``) and over images of each
    image's slope of the measured ``attribute`` against α, its overflowed decodes left out."""
    slopes = []
    for k in range(n_random):
        out, finite = manipulate(model, test_x, random_direction(direction, 1_000 * seed + k), alphas,
                                 return_finite=True)
        slopes.append(image_slopes(*_points(measure_attributes(out.flatten(0, 1))[attribute].to_numpy(), finite,
                                            alphas))["slope"])
    return float(np.nanmean(slopes)) if slopes else math.nan


def _points(measured, finite, alphas) -> tuple:
    """(image, alpha, measured value) of every finite decode of an (N, A) manipulation, the values in its
    flattened order: a decode that overflowed has no attribute to measure."""
    keep = finite.flatten().numpy()
    n = finite.shape[0]
    return (np.repeat(np.arange(n), len(alphas))[keep], np.tile(np.asarray(alphas, dtype=float), n)[keep],
            np.asarray(measured)[keep])


def seed_response(models: dict, attributes, alphas, n_images: int, n_direction: int, seed: int,
                  done: dict | None = None) -> pd.DataFrame:
    """The claim's replicates: for each training seed's model ({seed: trained model}), :func:`manipulation`'s
    ``response`` rows (slope along the attribute's direction and along random ones), one row per seed and
    attribute; the same test and direction images for every seed. ``done`` ({seed: Experiment}): the seeds'
    manipulations already made (the figures' model's), read rather than made again."""
    frames, done = [], done or {}
    for s in sorted(set(models) | set(done)):
        r = done.get(s) or manipulation(models[s].model, models[s].run, attributes, alphas, n_images, n_direction,
                                        seed)
        if "response" in r.tables:
            frames.append(r.tables["response"].assign(training_seed=s))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _celeba_train_attributes(run, data):
    (train_attr, _), _ = split_validation(data.train_attributes, data.train_labels, run.data.n_val, run.train.seed,
                                           run.data.order)
    return train_attr


def image_slopes(image, x, y) -> dict:
    """The response with the image as the unit: the alphas of one image share its latent, so its points are not
    independent of each other, but images are. Each image's least-squares slope of ``y`` on ``x`` (images with fewer
    than two distinct alphas left out), then their mean, standard error and 95% t-interval over ``n_slopes``
    images (``stats.paired_interval`` against 0)."""
    frame = pd.DataFrame({"image": image, "x": np.asarray(x, float), "y": np.asarray(y, float)})
    slopes = np.array([_slope(g.x, g.y)[0] for _, g in frame.groupby("image") if g.x.nunique() >= 2])
    if not len(slopes):
        return {"slope": np.nan, "slope_stderr": np.nan, "slope_ci_low": np.nan, "slope_ci_high": np.nan,
                "n_slopes": 0}
    iv = paired_interval(slopes, np.zeros_like(slopes))
    stderr = float(slopes.std(ddof=1) / math.sqrt(len(slopes))) if len(slopes) > 1 else math.inf
    return {"slope": iv.difference, "slope_stderr": stderr, "slope_ci_low": iv.low, "slope_ci_high": iv.high,
            "n_slopes": iv.n}


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = x - x.mean()
    slope = (dx * (y - y.mean())).sum() / (dx ** 2).sum()
    residual = y - y.mean() - slope * dx
    stderr = math.sqrt((residual ** 2).sum() / max(1, len(x) - 2) / (dx ** 2).sum())
    return float(slope), float(stderr)


def attribute_grid(images: torch.Tensor):
    """The manipulated images of one attribute (N, A, C, H, W) as a grid: one row per image, one column per α."""
    return image_grid(images.flatten(0, 1), nrow=images.shape[1])


def plot_response(table: pd.DataFrame):
    """Measured attribute of the manipulated images against α, one panel per manipulated attribute."""
    import matplotlib.pyplot as plt
    attributes = list(dict.fromkeys(table.attribute))
    fig, axes = plt.subplots(1, len(attributes), figsize=(4.5 * len(attributes), 3.4), squeeze=False)
    for ax, attribute in zip(axes[0], attributes):
        part = table[table.attribute == attribute]
        if "decoded_finite" in part:
            part = part[part.decoded_finite]                  # an overflowed decode has no attribute to plot
        for image, group in part.groupby("image"):
            ax.plot(group.alpha, group[f"measured_{attribute}"], color="0.7", lw=0.8)
        stats = part.groupby("alpha")[f"measured_{attribute}"].mean()
        ax.plot(stats.index, stats.values, color="C3", lw=2, marker="o", label="mean over images")
        ax.set(title=f"direction: {attribute}", xlabel="α", ylabel=f"measured {attribute}")
        ax.legend(fontsize="small")
    fig.suptitle("Does moving along the direction change the measured attribute?")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------- claims
SLOPES_T = "t-interval over images of per-image slopes (95%, two-sided)"
SEEDS_T = ("paired t-interval over training seeds of the slope along the attribute's direction minus along random "
           "directions of its length")
UNMEASURED = "the manipulated attributes cannot be measured from these images"


def decide_direction(results: Results) -> Outcome:
    """Fig. 6's claim: along each attribute's direction the measured attribute rises more than along random
    directions of the same length. Over training seeds (the ``seeds`` table): per seed and attribute the mean
    per-image slope against α minus the random directions'; a paired t-interval over seeds per attribute, each at
    the Bonferroni-corrected level for the attributes' number, since the claim needs every one to hold. Confirmed
    where every interval lies above 0, contradicted where one lies below; the interval shown is the lowest. Results
    without seeds (older ones) are decided, as before, on the figure model's per-image slopes alone."""
    seeds = results.optional(NOTEBOOK, "seeds")
    if seeds is not None and len(seeds) and "slope_random" in seeds:
        return _decide_over_seeds(seeds)
    r = results.optional(NOTEBOOK, "response")
    if r is None or "slope_ci_low" not in r:        # CelebA's or a class's direction, or results before the slopes
        return Outcome(Decision(NOT_TESTABLE, reason=UNMEASURED if r is None else "results before per-image slopes"))
    above, below = r.slope_ci_low > 0, r.slope_ci_high < 0
    verdict = (NOT_TESTABLE if r.n_slopes.min() < MIN_SEEDS else CONTRADICTED if below.any()
               else CONFIRMED if above.all() else INCONCLUSIVE)
    decisive = (r[below] if below.any() else r[~above] if not above.all() else r).sort_values("slope_ci_low").iloc[0]
    numbers = {x.attribute + " " + c: getattr(x, c) for x in r.itertuples()
               for c in ("slope", "slope_ci_low", "slope_ci_high", "n_slopes")}
    return Outcome(Decision(verdict, decisive.slope, decisive.slope_ci_low, decisive.slope_ci_high, 0, SLOPES_T,
                            reason="fewer images than the interval needs" if verdict == NOT_TESTABLE else ""),
                   numbers, decisive.attribute)


def _decide_over_seeds(seeds: pd.DataFrame) -> Outcome:
    attributes = list(dict.fromkeys(seeds.attribute))
    confidence = 1 - (1 - CONFIDENCE) / len(attributes)
    rows, numbers = [], {}
    for attribute in attributes:
        part = seeds[seeds.attribute == attribute].sort_values("training_seed")
        n = len(part)
        if n < MIN_SEEDS:
            return Outcome(Decision(NOT_TESTABLE, reason=f"{n} training seed(s) of {attribute}; the interval needs "
                                                         f"{MIN_SEEDS}"), numbers)
        iv = paired_interval(part.slope.to_numpy(float), part.slope_random.to_numpy(float), confidence)
        rows.append((attribute, iv))
        numbers.update({f"{attribute} slope": part.slope.mean(), f"{attribute} random slope": part.slope_random.mean(),
                        f"{attribute} difference": iv.difference, f"{attribute} ci_low": iv.low,
                        f"{attribute} ci_high": iv.high})
    numbers["relations"] = len(attributes)
    below = [r for r in rows if r[1].high < 0]
    verdict = CONTRADICTED if below else CONFIRMED if all(iv.low > 0 for _, iv in rows) else INCONCLUSIVE
    attribute, iv = min(below or rows, key=lambda r: r[1].low)
    test = f"{SEEDS_T} ({confidence:.1%}, two-sided" + (f"; {CORRECTION} over {len(rows)} attributes)"
                                                         if len(rows) > 1 else ")")
    return Outcome(Decision(verdict, iv.difference, iv.low, iv.high, iv.n, test), numbers,
                   f"{attribute}: its direction against random directions of its length")


CLAIMS = (
    ClaimSpec("manipulation.attribute_direction",
              "Moving a latent along an attribute direction changes that attribute (Sec. 5, Fig. 6)", "paper",
              decide_direction),
)
