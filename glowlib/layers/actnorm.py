"""ActNorm (Glow Sec. 3.1): a per-channel affine layer with data-dependent initialisation."""
from __future__ import annotations

import torch
from torch import nn

from .base import Flow


class ActNorm(Flow):
    """Per-channel affine y = (x + b)·exp(logs), data-dependent init (Sec. 3.1); logdet = H·W·Σ log|s|.

    The first forward pass in training mode sets b and logs so that its batch has zero mean and unit variance
    per channel. ``initialized`` is a buffer, so a loaded model never re-initialises.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps
        self._known_initialized = False

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)
        self._known_initialized = True

    def is_initialized(self) -> bool:
        """The ``initialized`` buffer as a bool; once True it is remembered, so training on a GPU does not wait
        for the device at every layer (``load_state_dict`` forgets it)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def needs_init(self) -> bool:
        """True when the next forward pass initialises the layer from its batch (training mode, not yet done)."""
        return self.training and not self.is_initialized()

    def _load_from_state_dict(self, *args, **kwargs):
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x):
        if self.needs_init():
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.logs)
        logdet = x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * self.logs.sum())
        return y, logdet

    def reverse(self, y):
        return y * torch.exp(-self.logs) - self.bias
