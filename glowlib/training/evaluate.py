"""Evaluation in bits/dim, the data splits a run trains and is chosen on, and the seeded random streams that make
a run a pure function of its config.

Checkpoint selection uses the validation images held out of the *training* split, never the test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import RunConfig
from ..data import ImageData, check_quantisation, load_dataset, split_validation, to_float
from ..models import Dequantizer, Glow
from ..objective import bits_per_dim, dequantize, importance_weighted_bits_per_dim

# independent random streams of a run (``seeded``): dequantisation noise, batch order, ActNorm init, evaluation
NOISE_STREAM, ORDER_STREAM, INIT_STREAM, EVAL_STREAM = 1, 2, 3, 4


def seeded(seed: int, stream: int, index: int = 0) -> torch.Generator:
    """An independent, reproducible generator for (seed, stream, index)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_000_007 + index)


def evaluate(model: Glow, images: torch.Tensor, n_bits: int, batch_size: int = 500, seed: int = 0,
             n_samples: int = 1, labels=None, dequantizer: Dequantizer | None = None) -> tuple[float, float]:
    """Mean bits/dim over all of ``images`` (uint8) and its standard error over images (:func:`bits_per_image`)."""
    return mean_and_sem(bits_per_image(model, images, n_bits, batch_size, seed, n_samples, labels, dequantizer))


def mean_and_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-image values and its standard error (NaN for one image)."""
    sem = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean().item(), sem


@torch.no_grad()
def bits_per_image(model: Glow, images: torch.Tensor, n_bits: int, batch_size: int = 500, seed: int = 0,
                   n_samples: int = 1, labels=None, dequantizer: Dequantizer | None = None) -> torch.Tensor:
    """Bits/dim of each of ``images`` (uint8), float64 (N,). The noise of a batch depends on (seed, its first
    index) only, so the values of a prefix ``images[:n]`` are the first n of the whole set's.

    With ``n_samples`` = k > 1 each image's log-probability is the importance-weighted estimate
    log (1/k) Σ_j p(x + u_j), u_j ~ U(0, 1/n_bins)^D: a lower bound on log P(x) that tightens as k grows.
    With a (variational) ``dequantizer`` q, u_j ~ q(u | x) and each term is weighted by 1/q: k = 1 is the ELBO,
    k > 1 the importance-weighted bound (``objective.importance_weighted_bits_per_dim``). Without one the
    model is scored as it is, so an 8-bit model can be scored on 5-bit images (``studies.bits_5v8.bpd_at_more_bits``).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    device = next(model.parameters()).device
    cfg = model.config
    per_image = []
    for start in range(0, len(images), batch_size):
        # images and noise on the CPU (the generator is a CPU one), so the noise is the same on every device and
        # images already on a GPU work too; each batch then moves to the model's device
        x = to_float(images[start:start + batch_size].cpu(), n_bits)
        y = None if labels is None else labels[start:start + batch_size].to(device)
        g = seeded(seed, EVAL_STREAM, start)
        if dequantizer is not None:
            bpd = importance_weighted_bits_per_dim(model, x.to(device), dequantizer, n_bits, n_samples, y, g)
            per_image.append(bpd.double().cpu())
            continue
        log_px = torch.stack([model.log_prob(dequantize(x, n_bits, g).to(device), y)
                              for _ in range(n_samples)])
        log_px = torch.logsumexp(log_px, 0) - math.log(n_samples)
        per_image.append(bits_per_dim(log_px, cfg.n_dims, n_bits).double().cpu())
    return torch.cat(per_image)


@dataclass
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    data: ImageData = field(repr=False)


def prepare_splits(run: RunConfig) -> Splits:
    """Load the dataset, check it fits the model, and hold a validation part out of the training images."""
    # CelebA is centre-cropped and resized to the model's size as it loads; other datasets are never resized
    size = run.model.image_size if run.data.dataset == "celeba" else None
    data = load_dataset(run.data.dataset, run.data.data_root, image_size=size, order=run.data.order)
    expected = (run.model.in_channels, run.model.image_size, run.model.image_size)
    if data.image_shape != expected:
        raise ValueError(f"dataset {run.data.dataset!r} has images of shape {data.image_shape}, but the model "
                         f"config expects {expected}; set model.in_channels/model.image_size to match")
    check_quantisation(run.data.dataset, data.train_images, run.data.n_bits)
    (tx, ty), (vx, vy) = split_validation(data.train_images, data.train_labels, run.data.n_val, run.train.seed,
                                          run.data.order)
    return Splits(tx, ty, vx, vy, data.test_images, data.test_labels, data)
