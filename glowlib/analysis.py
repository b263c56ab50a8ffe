"""Everything the paper-figure notebooks compute from a trained model (Kingma & Dhariwal 2018, Sec. 5).

* Samples at a temperature T (Sec. 5, Fig. 8) and the image conversions that show them.
* Latent interpolation between real images (Sec. 5, Fig. 5), with the exact-reconstruction check.
* Semantic manipulation (Sec. 5, Fig. 6): the direction mean z(with attribute) − mean z(without), with the
  attribute measured from the images themselves (stroke thickness, slant) or given as labels.
* Objective sample-quality measures the paper does not have: a small CNN trained on the *real* training images
  gives confidence, the entropy of the predicted-class histogram (diversity), and a Fréchet distance between its
  features of samples and of real images (the FID formula with our classifier in place of Inception), plus
  nearest neighbours for the memorisation check.

Real images enter a model at the *centres* of their quantisation bins, ``to_float(x) + 0.5 / 2**n_bits``: the mean
of the dequantisation noise the model was trained on (Sec. 2), and the point from which a decode error far below
half a bin still rounds back to the same image. Every random choice is driven by a seeded ``torch.Generator``.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import check_choice, check_range
from .data import to_float

SPACES = ("pixel", "feature")


# ---------------------------------------------------------------------------------------------------- validation
def _check_images(images: Tensor, name: str = "images_uint8") -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a uint8 torch.Tensor (N, C, H, W), got {got}; real images come from "
                         f"load_dataset(...), model outputs from to_uint8(x, n_bits)")
    if images.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(images.shape)}; expected 4-D (N, C, H, W): add the batch "
                         f"dimension with images[None], or flatten extra ones with .flatten(0, 1)")
    if len(images) == 0:
        raise ValueError(f"{name} holds no images (shape {tuple(images.shape)})")


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature >= 0 \
            or math.isinf(temperature):
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (1 samples the model's "
                         f"density; the paper's Fig. 8 uses 0 to 1)")


# ---------------------------------------------------------------------------------------------------- images
def to_uint8(x: Tensor, n_bits: int) -> Tensor:
    """Inverse of ``data.to_float``: float in [-0.5, 0.5] → the n-bit bin floor((x + 0.5)·2^n_bits), clamped to
    [0, 2^n_bits − 1], shown on the 0..255 scale (bin · 2^(8 − n_bits)) as uint8 on the CPU.

    ``to_uint8(to_float(u, b), b) == (u >> (8 - b)) << (8 - b)``; a value anywhere inside a bin maps to that bin,
    and samples beyond [-0.5, 0.5] (high temperature) are clamped.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"to_uint8 expects a float torch.Tensor in [-0.5, 0.5], got {got}")
    check_range("n_bits", n_bits, 1, 8)
    if torch.isnan(x).any():
        raise ValueError("x contains NaN; a model that decodes to NaN is diverged (check its training curves)")
    bins = torch.floor((x.detach() + 0.5) * 2 ** n_bits).clamp(0, 2 ** n_bits - 1)
    return (bins * 2 ** (8 - n_bits)).to(torch.uint8).cpu()


def image_grid(images_uint8: Tensor, nrow: int, pad: int = 1, pad_value: int = 0) -> np.ndarray:
    """Tile N images into rows of ``nrow`` images with ``pad`` pixels between them (torchvision's convention).

    Returns uint8 (H', W') for 1-channel images or (H', W', 3) for RGB, ready for ``plt.imshow`` (use
    ``cmap="gray"`` for the former). An unfilled last row is left at ``pad_value``.
    """
    _check_images(images_uint8)
    check_range("nrow", nrow, 1)
    check_range("pad", pad, 0)
    check_range("pad_value", pad_value, 0, 255)
    n, c, h, w = images_uint8.shape
    if c not in (1, 3):
        raise ValueError(f"image_grid shows 1- or 3-channel images, got C={c}")
    ncol, nrows = min(nrow, n), math.ceil(n / nrow)
    grid = np.full((c, pad + nrows * (h + pad), pad + ncol * (w + pad)), pad_value, np.uint8)
    for i, image in enumerate(images_uint8.cpu().numpy()):
        top, left = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        grid[:, top: top + h, left: left + w] = image
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------------- model helpers
@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode for the duration: in training mode a never-initialised ActNorm would re-initialise on our batch."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _param(model: nn.Module) -> Tensor:
    """Any parameter of the model, for its device and dtype."""
    return next(model.parameters())


def exact_model(model: nn.Module) -> nn.Module:
    """The model to run where decode(encode(x)) must give x back. A float32 model whose coupling networks run in
    bf16 (``precision="bf16"``) inverts only to bf16's accuracy: decode rebuilds a network's input with float32
    round-off, and where that straddles a bf16 rounding boundary the input rounds the other way (on the cpu
    profile's trained Fashion-MNIST models up to 0.04 on the [-0.5, 0.5] scale: ``results/cpu/precision``). Its
    float64 copy keeps the networks in bf16 but does the flow's own arithmetic in float64, where the round-off is far
    too small to flip a rounding (there: 2e-13), at a few percent more time. Any other model is returned as is."""
    if getattr(model.config, "precision", "fp32") == "bf16" and _param(model).dtype == torch.float32:
        return copy.deepcopy(model).double()
    return model


def _bin_centres(model, images_uint8: Tensor) -> Tensor:
    """Real images as the model's input: the centres of their n-bit bins, on the model's device and dtype."""
    n_bits = model.config.n_bits
    x = to_float(images_uint8, n_bits) + 0.5 / 2 ** n_bits
    p = _param(model)
    return x.to(device=p.device, dtype=p.dtype)


def _encode_batches(model, images_uint8: Tensor, batch_size: int):
    """Yield (slice, latents of that slice) over ``images_uint8`` in batches."""
    check_range("batch_size", batch_size, 1)
    for start in range(0, len(images_uint8), batch_size):
        part = slice(start, start + batch_size)
        zs, _ = model.encode(_bin_centres(model, images_uint8[part]))
        yield part, zs


# ---------------------------------------------------------------------------------------------------- sampling
MAX_REDRAWS = 100     # a draw that overflows with probability p survives all rounds with probability p^101


@torch.no_grad()
def samples(model, n: int, temperature: float, seed: int, y: Tensor | None = None,
            batch_size: int = 256, counts: dict | None = None) -> Tensor:
    """n samples at temperature T as uint8 (n, C, H, W): z ~ N(μ, (T·σ)²) at every level (Sec. 5, Fig. 8).

    One generator seeded with ``seed`` on the model's device draws the batches in turn, so the result is a function
    of (model, n, T, seed, y, batch_size) on a given device. ``y`` (n,) are the labels of a class-conditional model.
    Draws that decode to inf/NaN are drawn again (up to ``MAX_REDRAWS`` rounds, enough for any model whose draws
    overflow less than ~70% of the time); ``counts["nonfinite_redrawn"]`` adds up how many were, so the samples are
    those of the model conditioned on a finite decode, and the count says how often that condition bit.
    """
    check_range("n", n, 1)
    _check_temperature(temperature)
    check_range("seed", seed, 0)
    check_range("batch_size", batch_size, 1)
    if y is not None and (not isinstance(y, Tensor) or tuple(y.shape) != (n,)):
        raise ValueError(f"y must be a tensor of n={n} labels, got {getattr(y, 'shape', type(y).__name__)}")
    device = _param(model).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    with _eval_mode(model):
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            labels = None if y is None else y[start: start + size].to(device)
            x = model.sample(size, temperature, generator, y=labels)
            # a latent far in the tail can overflow the affine inverse (x = (y - t) / s, s in (0, 1), compounded
            # over K·L steps) to inf/NaN: such draws are drawn again from the same generator and counted
            for _ in range(MAX_REDRAWS + 1):
                bad = ~torch.isfinite(x).flatten(1).all(1)
                if not bad.any():
                    break
                if counts is not None:
                    counts["nonfinite_redrawn"] = counts.get("nonfinite_redrawn", 0) + int(bad.sum())
                x[bad] = model.sample(int(bad.sum()), temperature, generator,
                                      y=None if labels is None else labels[bad])
            if bad.any():
                raise ValueError(f"{int(bad.sum())} of {size} draws at temperature={temperature} still decode to "
                                 f"inf/NaN after {MAX_REDRAWS} redraws: the model's inverse overflows almost "
                                 f"everywhere at this temperature; use a lower one (the paper's 0.7) or check the "
                                 f"model's training curves")
            out.append(to_uint8(x, model.config.n_bits))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------- interpolation
@torch.no_grad()
def interpolate(model, x_a_uint8: Tensor, x_b_uint8: Tensor, n_points: int,
                batch_size: int = 256) -> tuple[Tensor, float]:
    """Linear interpolation in latent space between pairs of real images (Sec. 5, Fig. 5).

    Each pair is encoded (at bin centres), every level's latent is interpolated as (1 − t)·z_a + t·z_b for
    ``n_points`` values of t from 0 to 1, and decoded. Returns uint8 images (P, n_points, C, H, W), endpoints at
    t = 0 and t = 1, and the largest absolute difference (on the [-0.5, 0.5] scale) between the decoded endpoints
    and the encoded inputs: the exact-reconstruction check, ~1e-6 in float32 for a healthy model (a bf16 model
    runs as its float64 copy, ``exact_model``).
    """
    _check_images(x_a_uint8, "x_a_uint8")
    _check_images(x_b_uint8, "x_b_uint8")
    if x_a_uint8.shape != x_b_uint8.shape:
        raise ValueError(f"x_a_uint8 {tuple(x_a_uint8.shape)} and x_b_uint8 {tuple(x_b_uint8.shape)} must have "
                         f"the same shape: one pair per row")
    check_range("n_points", n_points, 2)
    check_range("batch_size", batch_size, 1)
    model = exact_model(model)
    out, max_error = [], 0.0
    with _eval_mode(model):
        for start in range(0, len(x_a_uint8), batch_size):
            x_a = _bin_centres(model, x_a_uint8[start: start + batch_size])
            x_b = _bin_centres(model, x_b_uint8[start: start + batch_size])
            (zs_a, _), (zs_b, _) = model.encode(x_a), model.encode(x_b)
            t = torch.linspace(0, 1, n_points, dtype=x_a.dtype, device=x_a.device)
            # at t = 0 and 1 the latents are exactly z_a and z_b, so the endpoints test the inverse itself
            rows = [model.decode([(1 - ti) * za + ti * zb for za, zb in zip(zs_a, zs_b)]) for ti in t]
            max_error = max(max_error, (rows[0] - x_a).abs().max().item(), (rows[-1] - x_b).abs().max().item())
            out.append(to_uint8(torch.stack(rows, 1), model.config.n_bits))   # (P, n_points, C, H, W)
    return torch.cat(out), max_error


# ---------------------------------------------------------------------------------------------------- attributes
def _ink(images_uint8: Tensor) -> Tensor:
    """Ink intensity in [0, 1], (N, H, W) float64: the channel mean (MNIST-like data: bright strokes on black)."""
    _check_images(images_uint8)
    return images_uint8.double().mean(1) / 255


def stroke_thickness(images_uint8: Tensor) -> Tensor:
    """Mean stroke width in pixels, float (N,): 2 · ink mass / total variation.

    For a binary stroke of width w and length L the ink mass is the area w·L and the total variation
    Σ|I(i+1, j) − I(i, j)| + |I(i, j+1) − I(i, j)| (image zero-padded) is the length of its outline 2(L + w), so
    the ratio is w·L / (L + w) → w for long strokes; a bar 3 wide and 12 long gives 2.4. An antialiased edge
    ramping from 0 to 1 adds 1 to the total variation however blurred it is, so no threshold or skeleton is
    needed. Diagonal strokes read up to √2 thinner (their outline is a staircase) and noise reads thinner, so
    compare images of similar content. A blank image gives 0.
    """
    ink = F.pad(_ink(images_uint8), (1, 1, 1, 1))
    variation = (ink.diff(dim=1).abs().sum((1, 2)) + ink.diff(dim=2).abs().sum((1, 2)))
    mass = ink.sum((1, 2))
    return torch.where(variation > 0, 2 * mass / variation.clamp_min(1e-12), torch.zeros_like(mass)).float()


def slant(images_uint8: Tensor) -> Tensor:
    """Shear of the ink from its second moments, float (N,): μ11 / μ02 with x to the right and y *up*.

    μ11 is the ink-weighted covariance of x and y and μ02 the variance of y, so the slant is the horizontal
    shift of the ink per pixel of height (tan of the angle from vertical; the skew that MNIST-style deskewing
    removes, with the sign flipped because image rows run downwards). Positive: leaning right, like "/";
    negative: leaning left, like "\\". A blank image or one with no vertical extent gives 0.
    """
    ink = _ink(images_uint8)
    _, h, w = ink.shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=ink.dtype), torch.arange(w, dtype=ink.dtype), indexing="ij")
    y, x = -rows, cols                                  # y up
    mass = ink.sum((1, 2))
    safe_mass = mass.clamp_min(1e-12)
    mean_x = (ink * x).sum((1, 2)) / safe_mass
    mean_y = (ink * y).sum((1, 2)) / safe_mass
    dx, dy = x - mean_x[:, None, None], y - mean_y[:, None, None]
    mu11 = (ink * dx * dy).sum((1, 2)) / safe_mass
    mu02 = (ink * dy ** 2).sum((1, 2)) / safe_mass
    ok = (mass > 0) & (mu02 > 1e-12)
    return torch.where(ok, mu11 / mu02.clamp_min(1e-12), torch.zeros_like(mu11)).float()


def measure_attributes(images_uint8: Tensor) -> pd.DataFrame:
    """One row per image: ``thickness`` (:func:`stroke_thickness`) and ``slant`` (:func:`slant`)."""
    return pd.DataFrame({"thickness": stroke_thickness(images_uint8).numpy(), "slant": slant(images_uint8).numpy()})


@torch.no_grad()
def attribute_direction(model, images_uint8: Tensor, has_attribute: Tensor, batch_size: int = 256) -> list[Tensor]:
    """Semantic manipulation direction (Sec. 5, Fig. 6): mean z over images with the attribute minus mean z over
    those without, for every level's latent (a list shaped like ``encode``'s output without the batch dimension,
    on the model's device). The labels are used only here, after training; the model never saw them.
    """
    _check_images(images_uint8)
    if not isinstance(has_attribute, Tensor) or has_attribute.dtype != torch.bool \
            or tuple(has_attribute.shape) != (len(images_uint8),):
        raise ValueError(f"has_attribute must be a bool tensor of shape ({len(images_uint8)},), got "
                         f"{getattr(has_attribute, 'dtype', type(has_attribute).__name__)} "
                         f"{tuple(getattr(has_attribute, 'shape', ()))}; e.g. measure_attributes(x).slant > 0")
    n_with = int(has_attribute.sum())
    if n_with in (0, len(images_uint8)):
        raise ValueError(f"has_attribute is {'all True' if n_with else 'all False'}; a direction needs images "
                         f"both with and without the attribute")
    p = _param(model)
    sums_with = [p.new_zeros(shape) for shape in model.config.latent_shapes]
    sums_without = [p.new_zeros(shape) for shape in model.config.latent_shapes]
    with _eval_mode(model):
        for part, zs in _encode_batches(model, images_uint8, batch_size):
            mask = has_attribute[part].to(p.device)
            for level, z in enumerate(zs):
                sums_with[level] += z[mask].sum(0)
                sums_without[level] += z[~mask].sum(0)
    n_without = len(images_uint8) - n_with
    return [a / n_with - b / n_without for a, b in zip(sums_with, sums_without)]


@torch.no_grad()
def manipulate(model, images_uint8: Tensor, direction: list[Tensor], alphas, batch_size: int = 256,
               return_finite: bool = False):
    """decode(z + α·direction) for each α (Sec. 5, Fig. 6): uint8 (N, len(alphas), C, H, W).

    α = 0 gives back the images (at the model's n_bits); e.g. ``alphas=torch.linspace(-1, 1, 5)``. A decode that
    overflows to inf/NaN is returned mid-grey; ``return_finite=True`` also returns which were finite, (N, A) bool.
    """
    _check_images(images_uint8)
    shapes = model.config.latent_shapes
    if not isinstance(direction, (list, tuple)) or len(direction) != len(shapes) \
            or any(tuple(d.shape) != s for d, s in zip(direction, shapes)):
        got = [tuple(d.shape) for d in direction] if isinstance(direction, (list, tuple)) else type(direction)
        raise ValueError(f"direction must be a list of {len(shapes)} latents of shapes {shapes} (as returned by "
                         f"attribute_direction), got {got}")
    alphas = torch.as_tensor(alphas, dtype=torch.float64).flatten()
    if len(alphas) == 0 or not torch.isfinite(alphas).all():
        raise ValueError(f"alphas must be a non-empty sequence of finite numbers, got {alphas.tolist()}")
    model = exact_model(model)                    # alpha = 0 gives the images back, as in float32
    p = _param(model)
    direction = [d.to(device=p.device, dtype=p.dtype) for d in direction]
    out, finite = [], []
    with _eval_mode(model):
        for _, zs in _encode_batches(model, images_uint8, batch_size):
            decoded = [model.decode([z + alpha.item() * d for z, d in zip(zs, direction)]) for alpha in alphas]
            decoded = torch.stack(decoded, 1)                                      # (B, A, C, H, W)
            # a shifted latent can overflow the affine inverse to inf/NaN: shown mid-grey and flagged
            ok = torch.isfinite(decoded).flatten(2).all(2)                         # (B, A)
            decoded[~ok] = 0.0
            out.append(to_uint8(decoded, model.config.n_bits))
            finite.append(ok.cpu())
    return (torch.cat(out), torch.cat(finite)) if return_finite else torch.cat(out)


# ---------------------------------------------------------------------------------------------------- classifier
@dataclass(frozen=True)
class ClassifierSettings:
    """Network and training of the measuring classifier. ``cached_classifier`` hashes these."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3             # Adam
    channels: tuple[int, int] = (32, 64)
    n_features: int = 128        # width of the penultimate layer, the space of the Fréchet distance

    def __post_init__(self):
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("lr", self.lr, 0, kind=float)
        check_range("n_features", self.n_features, 1)
        if len(self.channels) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                          for c in self.channels):
            raise ValueError(f"channels={self.channels!r} must be two positive ints (the two conv layers)")


# Bump when the network or the training loop changes, so that cached classifiers are retrained.
_CLASSIFIER_VERSION = 1
_PREDICT_BATCH = 512


class _ConvNet(nn.Module):
    """(conv 3x3 → ReLU → max-pool 2) × 2 → average-pool to at most 4x4 → fc (features, ReLU) → fc (logits)."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, settings: ClassifierSettings):
        super().__init__()
        c, h, w = image_shape
        c1, c2 = settings.channels
        pooled = (min(h // 4, 4), min(w // 4, 4))
        self.register_buffer("mean", torch.zeros(1, c, 1, 1))   # per-channel input standardisation, set by fit
        self.register_buffer("std", torch.ones(1, c, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
            nn.Linear(c2 * pooled[0] * pooled[1], settings.n_features), nn.ReLU())
        self.head = nn.Linear(settings.n_features, n_classes)

    def features(self, images_uint8: Tensor) -> Tensor:
        x = images_uint8.to(self.mean.device, torch.float32) / 255
        return self.body((x - self.mean) / self.std)

    def forward(self, images_uint8: Tensor) -> Tensor:
        return self.head(self.features(images_uint8))


class Classifier:
    """The instrument of the objective sample-quality measures: a small CNN trained on *real* training images.

    Deterministic given its seed (on the CPU). ``test_accuracy`` is set by :func:`cached_classifier` (else None).
    """

    def __init__(self, net: _ConvNet, image_shape: tuple[int, int, int], n_classes: int,
                 settings: ClassifierSettings, seed: int, test_accuracy: float | None = None):
        self.net = net.eval()
        self.image_shape = tuple(image_shape)
        self.n_classes = n_classes
        self.settings = settings
        self.seed = seed
        self.test_accuracy = test_accuracy

    @classmethod
    def fit(cls, images_uint8: Tensor, labels: Tensor, n_classes: int, seed: int = 0, device: str = "cpu",
            **settings) -> "Classifier":
        """Train with Adam and cross-entropy; ``settings`` override :class:`ClassifierSettings` (epochs, ...)."""
        _check_images(images_uint8)
        check_range("n_classes", n_classes, 2)
        check_range("seed", seed, 0)
        allowed = tuple(f.name for f in dataclasses.fields(ClassifierSettings))
        for key in settings:
            check_choice("setting", key, allowed)
        settings = ClassifierSettings(**settings)
        labels = _check_labels(labels, len(images_uint8), n_classes)
        image_shape = tuple(images_uint8.shape[1:])
        with torch.random.fork_rng(devices=[]):          # seeded initialisation without touching global state
            torch.manual_seed(seed)
            net = _ConvNet(image_shape, n_classes, settings)
        x = images_uint8.double() / 255
        net.mean.copy_(x.mean((0, 2, 3), keepdim=True).float())
        net.std.copy_(x.std((0, 2, 3), keepdim=True).float().clamp_min(1e-3))   # constant channels: no blow-up
        net = net.to(device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
        order = torch.Generator().manual_seed(seed)
        for _ in range(settings.epochs):
            for batch in torch.randperm(len(labels), generator=order).split(settings.batch_size):
                loss = F.cross_entropy(net(images_uint8[batch]), labels[batch].to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return cls(net, image_shape, n_classes, settings, seed)

    @torch.no_grad()
    def _batched(self, images_uint8: Tensor, fn) -> Tensor:
        _check_images(images_uint8)
        if tuple(images_uint8.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {tuple(images_uint8.shape[1:])}; this classifier was trained on "
                             f"{self.image_shape}")
        return torch.cat([fn(part).float().cpu() for part in images_uint8.split(_PREDICT_BATCH)])

    def predict_proba(self, images_uint8: Tensor) -> Tensor:
        """Class probabilities, float (N, n_classes)."""
        return self._batched(images_uint8, lambda x: torch.softmax(self.net(x), 1))

    def features(self, images_uint8: Tensor) -> Tensor:
        """Penultimate-layer activations, float (N, n_features): the space of :func:`frechet_distance`."""
        return self._batched(images_uint8, self.net.features)

    def accuracy(self, images_uint8: Tensor, labels: Tensor) -> float:
        labels = _check_labels(labels, len(images_uint8), self.n_classes)
        return (self.predict_proba(images_uint8).argmax(1) == labels).double().mean().item()

    def save(self, path) -> None:
        """Write atomically (temporary file, then rename), so a crash never leaves a half-written classifier."""
        from .train import atomic_write_bytes

        state = {"version": _CLASSIFIER_VERSION, "settings": dataclasses.asdict(self.settings),
                 "image_shape": list(self.image_shape), "n_classes": self.n_classes, "seed": self.seed,
                 "test_accuracy": self.test_accuracy,
                 "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()}}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path, device: str = "cpu") -> "Classifier":
        state = torch.load(path, map_location=device, weights_only=True)
        if state.get("version") != _CLASSIFIER_VERSION:
            raise ValueError(f"{path}: classifier format version {state.get('version')!r}, this glowlib reads "
                             f"{_CLASSIFIER_VERSION}; delete the file to retrain")
        settings = ClassifierSettings(**{**state["settings"], "channels": tuple(state["settings"]["channels"])})
        image_shape = tuple(state["image_shape"])
        net = _ConvNet(image_shape, state["n_classes"], settings).to(device)
        net.load_state_dict(state["state_dict"])
        return cls(net, image_shape, state["n_classes"], settings, state["seed"], state["test_accuracy"])


def _check_labels(labels: Tensor, n: int, n_classes: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool \
            or tuple(labels.shape) != (n,):
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels in [{labels.min()}, {labels.max()}]; expected [0, {n_classes})")
    return labels.long().cpu()


def classifier_path(dataset: str, seed: int = 0) -> Path:
    """Where :func:`cached_classifier` keeps the classifier of (dataset, seed) at the current settings."""
    from .cache import cache_root

    settings = {"version": _CLASSIFIER_VERSION, **dataclasses.asdict(ClassifierSettings())}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "classifiers" / f"{dataset}-{seed}-{key}.pt"


def cached_classifier(dataset: str, seed: int = 0, device: str = "cpu") -> Classifier:
    """The classifier of ``dataset``'s real training images (default :class:`ClassifierSettings`), trained the first
    time and loaded after that; its ``test_accuracy`` on the test split is stored with it.

    Two processes that miss the cache at once both train the same (seeded) classifier; the atomic write makes the
    last one win harmlessly.
    """
    from .data import load_dataset

    check_range("seed", seed, 0)
    path = classifier_path(dataset, seed)
    if path.is_file():
        return Classifier.load(path, device)
    data = load_dataset(dataset)
    if data.n_classes < 2:
        raise ValueError(f"dataset={dataset!r} has no class labels to train a classifier on; use a labelled one")
    classifier = Classifier.fit(data.train_images, data.train_labels, data.n_classes, seed, device)
    classifier.test_accuracy = classifier.accuracy(data.test_images, data.test_labels)
    classifier.save(path)
    return classifier


# ---------------------------------------------------------------------------------------------------- measures
def frechet_distance(feat_a, feat_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F) (the FID formula of Heusel et al.
    2017): |μa − μb|² + tr(Σa) + tr(Σb) − 2·tr((Σa Σb)^½), covariances with the N − 1 denominator.

    tr((Σa Σb)^½) is computed as Σ √λ over the eigenvalues λ of Σa^½ Σb Σa^½, which is similar to Σa Σb but
    symmetric positive semi-definite: the eigenvalues are real (round-off negatives clipped to 0), so no complex
    matrix square root, and singular covariances (N ≤ F) are fine.
    """
    a, b = (np.asarray(f.detach().cpu() if isinstance(f, Tensor) else f, dtype=np.float64) for f in (feat_a, feat_b))
    for name, f in (("feat_a", a), ("feat_b", b)):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"{name} has shape {f.shape}; expected (N, F) with N >= 2 to fit a Gaussian")
        if not np.isfinite(f).all():
            raise ValueError(f"{name} contains non-finite values")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat_a has {a.shape[1]} features and feat_b {b.shape[1]}; they must match")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    sqrt_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(max(mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * cross, 0.0))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _entropy(p: Tensor) -> Tensor:
    """Entropy in nats along the last dimension, with 0·log 0 = 0."""
    p = p.double()
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)


def sample_quality(classifier: Classifier, samples_uint8: Tensor, reference_uint8: Tensor) -> dict:
    """Objective sample-quality measures from a classifier of the real data.

    ``confidence``: mean max-probability (recognisable samples score high); ``class_entropy``: entropy (nats) of
    the histogram of predicted classes, log(n_classes) when every class is equally common (diversity);
    ``mean_entropy``: mean per-sample predictive entropy (low: unambiguous samples); ``frechet``: Fréchet
    distance between the classifier features of the samples and of ``reference_uint8`` (real images).
    """
    if len(samples_uint8) < 2:
        raise ValueError(f"sample_quality needs at least 2 samples to fit the Fréchet Gaussian, got "
                         f"{len(samples_uint8)}")
    probs = classifier.predict_proba(samples_uint8)
    histogram = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double() / len(probs)
    return {"confidence": probs.max(1).values.double().mean().item(),
            "class_entropy": _entropy(histogram).item(),
            "mean_entropy": _entropy(probs).mean().item(),
            "frechet": frechet_distance(classifier.features(samples_uint8), classifier.features(reference_uint8))}


def nearest_neighbours(queries_uint8: Tensor, reference_uint8: Tensor, space: str,
                       classifier: Classifier | None = None, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference images of each query (the memorisation check): Euclidean distance on pixels in
    [0, 1] (``space="pixel"``) or on ``classifier.features`` (``space="feature"``). Returns (distances (N, k),
    indices into ``reference_uint8`` (N, k)), nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    check_choice("space", space, SPACES)
    _check_images(queries_uint8, "queries_uint8")
    _check_images(reference_uint8, "reference_uint8")
    if queries_uint8.shape[1:] != reference_uint8.shape[1:]:
        raise ValueError(f"queries {tuple(queries_uint8.shape[1:])} and reference {tuple(reference_uint8.shape[1:])} "
                         f"images must have the same (C, H, W)")
    check_range("k", k, 1, len(reference_uint8))
    if space == "feature":
        if classifier is None:
            raise ValueError("space='feature' needs classifier=...; e.g. cached_classifier(dataset)")
        queries, reference = classifier.features(queries_uint8).numpy(), classifier.features(reference_uint8).numpy()
    else:
        queries, reference = (x.flatten(1).double().numpy() / 255 for x in (queries_uint8, reference_uint8))
    distances, indices = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(queries)
    return distances, indices


def temperature_samples_table(model, classifier: Classifier, reference_uint8: Tensor, temperatures, n: int,
                              seed: int) -> pd.DataFrame:
    """Sample quality against temperature (Sec. 5, Fig. 8 made quantitative): one row per temperature with
    ``temperature, confidence, class_entropy, mean_entropy, frechet, n, nonfinite_redrawn``.

    Every temperature uses the same seed, so the same standard-normal draws are scaled by each T: the rows
    differ by the temperature alone.
    """
    temperatures = torch.as_tensor(temperatures, dtype=torch.float64).flatten().tolist()
    if not temperatures:
        raise ValueError("temperatures is empty; pass e.g. [0, 0.5, 0.7, 1.0]")
    for t in temperatures:
        _check_temperature(t)
    rows = []
    for t in temperatures:
        counts = {"nonfinite_redrawn": 0}
        x = samples(model, n, t, seed, counts=counts)
        rows.append({"temperature": float(t), **sample_quality(classifier, x, reference_uint8), "n": n, **counts})
    return pd.DataFrame(rows)
