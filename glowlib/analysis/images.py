"""Images as the notebooks show them: model outputs to uint8 at a bit depth, and grids of them; the checks every
measure makes of the images and temperatures it is given."""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

from ..config import check_range


def check_images(images: Tensor, name: str = "images_uint8") -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a uint8 torch.Tensor (N, C, H, W), got {got}; real images come from "
                         f"load_dataset(...), model outputs from to_uint8(x, n_bits)")
    if images.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(images.shape)}; expected 4-D (N, C, H, W): add the batch "
                         f"dimension with images[None], or flatten extra ones with .flatten(0, 1)")
    if len(images) == 0:
        raise ValueError(f"{name} holds no images (shape {tuple(images.shape)})")


def check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature >= 0 \
            or math.isinf(temperature):
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (1 samples the model's "
                         f"density; the paper's Fig. 8 uses 0 to 1)")


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


def reduce_bits(images_uint8: Tensor, n_bits: int) -> Tensor:
    """uint8 images reduced to ``n_bits`` (low bits cleared), as ``to_uint8(to_float(x, n), n)``: how an n-bit
    model's samples and data are shown."""
    check_images(images_uint8)
    check_range("n_bits", n_bits, 1, 8)
    shift = 8 - n_bits
    return (images_uint8 >> shift) << shift


def image_grid(images_uint8: Tensor, nrow: int, pad: int = 1, pad_value: int = 0) -> np.ndarray:
    """Tile N images into rows of ``nrow`` images with ``pad`` pixels between them (torchvision's convention).

    Returns uint8 (H', W') for 1-channel images or (H', W', 3) for RGB, ready for ``plt.imshow`` (use
    ``cmap="gray"`` for the former). An unfilled last row is left at ``pad_value``.
    """
    check_images(images_uint8)
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
