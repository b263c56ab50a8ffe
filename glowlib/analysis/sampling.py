"""Drawing samples at a temperature T (Kingma & Dhariwal 2018, Sec. 5, Fig. 8), and the model helpers every
measure shares: eval mode for the duration, the exact (float64) copy of a bf16 model, real images at the centres
of their bins, latents in batches.

Real images enter a model at the *centres* of their quantisation bins, ``to_float(x) + 0.5 / 2**n_bits``: the mean
of the dequantisation noise the model was trained on (Sec. 2), and the point from which a decode error far below
half a bin still rounds back to the same image. Every random choice is driven by a seeded ``torch.Generator``.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..config import check_range
from ..data import to_float
from .images import check_temperature, to_uint8


@contextmanager
def eval_mode(model: nn.Module):
    """Eval mode for the duration: in training mode a never-initialised ActNorm would re-initialise on our batch."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def first_parameter(model: nn.Module) -> Tensor:
    """Any parameter of the model, for its device and dtype."""
    return next(model.parameters())


def exact_model(model: nn.Module) -> nn.Module:
    """The model to run where decode(encode(x)) must give x back. A float32 model whose coupling networks run in
    bf16 (``precision="bf16"``) inverts only to bf16's accuracy: decode rebuilds a network's input with float32
    round-off, and where that straddles a bf16 rounding boundary the input rounds the other way (on the cpu
    profile's trained Fashion-MNIST models up to 0.04 on the [-0.5, 0.5] scale: ``results/cpu/precision``). Its
    float64 copy keeps the networks in bf16 but does the flow's own arithmetic in float64, where the round-off is far
    too small to flip a rounding (there: 2e-13), at a few percent more time. Any other model is returned as is."""
    if getattr(model.config, "precision", "fp32") == "bf16" and first_parameter(model).dtype == torch.float32:
        return copy.deepcopy(model).double()
    return model


def bin_centres(model, images_uint8: Tensor) -> Tensor:
    """Real images as the model's input: the centres of their n-bit bins, on the model's device and dtype."""
    n_bits = model.config.n_bits
    x = to_float(images_uint8, n_bits) + 0.5 / 2 ** n_bits
    p = first_parameter(model)
    return x.to(device=p.device, dtype=p.dtype)


def encode_batches(model, images_uint8: Tensor, batch_size: int):
    """Yield (slice, latents of that slice) over ``images_uint8`` in batches."""
    check_range("batch_size", batch_size, 1)
    for start in range(0, len(images_uint8), batch_size):
        part = slice(start, start + batch_size)
        zs, _ = model.encode(bin_centres(model, images_uint8[part]))
        yield part, zs


MAX_REDRAWS = 100     # a draw that overflows with probability p survives all rounds with probability p^101


@torch.no_grad()
def samples(model, n: int, temperature: float, seed: int, y: Tensor | None = None,
            batch_size: int = 256, counts: dict | None = None) -> Tensor:
    """n samples at temperature T as uint8 (n, C, H, W): z ~ N(μ, (T·σ)²) at every level (Sec. 5, Fig. 8).

    One generator seeded with ``seed`` on the model's device draws the batches in turn, so the result is a function
    of (model, n, T, seed, y, batch_size) on a given device. ``y`` (n,) are the labels of a class-conditional model.
    Draws that decode to inf/NaN are drawn again (up to ``MAX_REDRAWS`` rounds, enough for any model whose draws
    overflow less than ~70% of the time), so the samples are those of the model conditioned on a finite decode.
    ``counts`` (a dict, updated in place) says how often that condition bit: ``"nonfinite_first_draw"`` adds up the
    draws whose *first* decode was non-finite (of n: the share of non-finite draws before any redraw, the sanity
    gate's measure) and ``"nonfinite_redrawn"`` every redraw made (a draw can overflow again).
    """
    check_range("n", n, 1)
    check_temperature(temperature)
    check_range("seed", seed, 0)
    check_range("batch_size", batch_size, 1)
    if y is not None and (not isinstance(y, Tensor) or tuple(y.shape) != (n,)):
        raise ValueError(f"y must be a tensor of n={n} labels, got {getattr(y, 'shape', type(y).__name__)}")
    if counts is not None:
        for key in ("nonfinite_first_draw", "nonfinite_redrawn"):
            counts.setdefault(key, 0)
    device = first_parameter(model).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out = []
    with eval_mode(model):
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            labels = None if y is None else y[start: start + size].to(device)
            x = model.sample(size, temperature, generator, y=labels)
            # a latent far in the tail can overflow the affine inverse (x = (y - t) / s, s in (0, 1), compounded
            # over K·L steps) to inf/NaN: such draws are drawn again from the same generator and counted
            for attempt in range(MAX_REDRAWS + 1):
                bad = ~torch.isfinite(x).flatten(1).all(1)
                if not bad.any():
                    break
                if counts is not None:
                    if attempt == 0:
                        counts["nonfinite_first_draw"] += int(bad.sum())
                    counts["nonfinite_redrawn"] += int(bad.sum())
                x[bad] = model.sample(int(bad.sum()), temperature, generator,
                                      y=None if labels is None else labels[bad])
            if bad.any():
                raise ValueError(f"{int(bad.sum())} of {size} draws at temperature={temperature} still decode to "
                                 f"inf/NaN after {MAX_REDRAWS} redraws: the model's inverse overflows almost "
                                 f"everywhere at this temperature; use a lower one (the paper's 0.7) or check the "
                                 f"model's training curves")
            out.append(to_uint8(x, model.config.n_bits))
    return torch.cat(out)
