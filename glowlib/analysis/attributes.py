"""Attributes measured from MNIST-like images themselves (bright strokes on black), so that a manipulation
direction can be found and its effect measured without labels: stroke thickness and slant."""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .images import check_images


def _ink(images_uint8: Tensor) -> Tensor:
    """Ink intensity in [0, 1], (N, H, W) float64: the channel mean (MNIST-like data: bright strokes on black)."""
    check_images(images_uint8)
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
