"""What a training step takes, as functions of the config and the step alone (so that a resumed run, every rank
of a distributed one and ``bench/quality_vs_time.py``'s reference take the same): the learning rate, the batch's
images and the images ActNorm is initialised on."""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..data import to_float
from ..objective import dequantize
from .evaluate import INIT_STREAM, ORDER_STREAM, seeded


def init_images(run: RunConfig, train_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantised images, their indices): the ``train.init_batch`` training images ActNorm is initialised on, a
    seeded draw (the same on every rank and for ``bench/quality_vs_time.py``'s reference)."""
    tc, n_bits = run.train, run.data.n_bits
    idx = torch.randperm(len(train_x), generator=seeded(tc.seed, INIT_STREAM))[:tc.init_batch]
    return dequantize(to_float(train_x[idx], n_bits), n_bits, seeded(tc.seed, INIT_STREAM, 1)), idx


def batch_indices(run: RunConfig, n_train: int, step: int, global_batch: int, order=(-1, None)):
    """(indices of step ``step``'s global batch, the epoch's order): a seeded shuffle per epoch of the ``n_train``
    training images. ``order`` is the (epoch, permutation) the caller kept, reused within its epoch."""
    epoch, within = divmod(step, n_train // global_batch)
    if order[0] != epoch:
        order = (epoch, torch.randperm(n_train, generator=seeded(run.train.seed, ORDER_STREAM, epoch)))
    return order[1][within * global_batch:(within + 1) * global_batch], order


def warmup_steps(run: RunConfig) -> int:
    """The warmup's length: ``train.warmup_fraction`` of the steps when > 0, else ``train.warmup_steps``."""
    tc = run.train
    return round(tc.warmup_fraction * tc.steps) if tc.warmup_fraction > 0 else tc.warmup_steps


def lr_factor(run: RunConfig, step: int) -> float:
    """The learning rate of ``step`` as a fraction of ``train.lr``: a linear warmup from 0, then 1 ("constant") or
    half a cosine down to ``train.lr_final_fraction`` at the last step ("cosine"). A function of the step alone,
    so a resumed run takes the same rates."""
    tc, warm = run.train, warmup_steps(run)
    if step < warm:
        return (step + 1) / warm
    if tc.lr_schedule == "constant":
        return 1.0
    t = min(1.0, (step - warm) / max(1, tc.steps - warm))
    return tc.lr_final_fraction + (1 - tc.lr_final_fraction) * 0.5 * (1 + math.cos(math.pi * t))
