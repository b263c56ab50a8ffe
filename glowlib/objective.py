"""The training objective and its unit, bits per dimension (paper Sec. 2, official ``model.py``)."""
from __future__ import annotations

import math

import torch


def dequantize(x: torch.Tensor, n_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """x̃ = x + U(0, 1/n_bins): uniform dequantisation of n-bit data in [-0.5, 0.5) (Sec. 2, Eq. 2)."""
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + noise / 2 ** n_bits


def bits_per_dim(log_px: torch.Tensor, n_dims: int, n_bits: int) -> torch.Tensor:
    """(−log p(x̃) + D·log n_bins) / (D·ln 2), per image.

    ``log_px`` is the continuous log-density (nats) of the dequantised image in [-0.5, 0.5]^D; adding
    D·log n_bins turns it into the log-probability of the discrete n-bit image's bin of volume n_bins^-D
    (official code: ``objective += -log(n_bins) * D``). A uniform density (log p = 0) gives exactly n_bits.
    """
    if n_dims < 1 or not 1 <= n_bits <= 8:
        raise ValueError(f"n_dims={n_dims} must be >= 1 and n_bits={n_bits} in [1, 8]")
    return (-log_px + n_dims * math.log(2 ** n_bits)) / (n_dims * math.log(2))


def nll_bits_per_dim(model, x: torch.Tensor, y=None, generator=None) -> torch.Tensor:
    """Dequantise x (in [-0.5, 0.5), n-bit) and return each image's bits/dim under ``model``, shape (B,)."""
    cfg = model.config
    return bits_per_dim(model.log_prob(dequantize(x, cfg.n_bits, generator), y), cfg.n_dims, cfg.n_bits)
