"""The training objective and its unit, bits per dimension (paper Sec. 2, official ``model.py``), with uniform
dequantisation or a learned q(u | x) (the ELBO and its importance-weighted bound, ``glowlib.models.dequantization``)."""
from __future__ import annotations

import math

import torch

from .models.dequantization import Dequantizer, log_weight


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


def check_data_range(x: torch.Tensor) -> None:
    """Raise a ValueError unless x looks like images as ``glowlib.data.to_float`` makes them: values in [-0.5, 0.5]
    (uint8 values or [0, 1] images passed by mistake fail, as do NaNs). The models themselves take any finite
    input; this guards the places where data enters the objective."""
    lo, hi = torch.aminmax(x.detach())
    if not (lo >= -0.5 - 1e-4 and hi <= 0.5 + 1e-4):            # also catches NaN
        raise ValueError(f"x has values in [{lo.item():.4g}, {hi.item():.4g}]; expected images in [-0.5, 0.5]: "
                         f"convert uint8 images with glowlib.data.to_float(images, n_bits)")


def nll_bits_per_dim(model, x: torch.Tensor, y=None, generator=None) -> torch.Tensor:
    """Dequantise x (in [-0.5, 0.5), n-bit) and return each image's bits/dim under ``model``, shape (B,)."""
    check_data_range(x)
    cfg = model.config
    return bits_per_dim(model.log_prob(dequantize(x, cfg.n_bits, generator), y), cfg.n_dims, cfg.n_bits)


def check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be an int >= 1 (the number of importance samples per image; k=1 is the ELBO)")


def elbo_bits_per_dim(model, x: torch.Tensor, dequantizer: Dequantizer, n_bits: int, y=None,
                      generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One-sample ELBO of each image in bits/dim, (B,): an upper bound on −log2 P(x) / D in expectation, the loss to
    minimise (over the model and the dequantiser together). With ``UniformDequantization`` and the same noise it
    equals ``bits_per_dim(model.log_prob(dequantize(x, n_bits, g)), D, n_bits)``, the training loss of Glow."""
    return bits_per_dim(log_weight(model, x, dequantizer, n_bits, y, generator, noise), x[0].numel(), n_bits)


def importance_weighted_bits_per_dim(model, x: torch.Tensor, dequantizer: Dequantizer, n_bits: int, k: int, y=None,
                                     generator: torch.Generator | None = None) -> torch.Tensor:
    """−log (1/k) Σ_j p(x̃_j) / q(u_j | x) in bits/dim per image, (B,) (Burda et al. 2016).

    Its expectation does not increase with k and is at most the ELBO's; k = 1 is the ELBO. The k samples are drawn
    one after another from ``generator``, so with the same seed the samples for k are the first k of those for
    any larger k (common random numbers), and k = 1 equals ``elbo_bits_per_dim`` exactly.
    """
    check_k(k)
    log_w = torch.stack([log_weight(model, x, dequantizer, n_bits, y, generator) for _ in range(k)])   # (k, B)
    return bits_per_dim(torch.logsumexp(log_w, 0) - math.log(k), x[0].numel(), n_bits)
