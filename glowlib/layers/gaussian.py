"""The Gaussian priors of a multi-scale flow: log-density and (reduced-temperature) sampling."""
from __future__ import annotations

import math

import torch


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dim of log N(z; mean, exp(log_std)²), in nats; shape (B,)."""
    lp = -0.5 * (math.log(2 * math.pi) + 2 * log_std + (z - mean) ** 2 * torch.exp(-2 * log_std))
    return lp.flatten(1).sum(1)


def gaussian_sample(mean, log_std, temperature: float, generator=None) -> torch.Tensor:
    """z ~ N(mean, (T·std)²): the paper's reduced-temperature sampling (Sec. 5, Fig. 8)."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + temperature * torch.exp(log_std) * eps
