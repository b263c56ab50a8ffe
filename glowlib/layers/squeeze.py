"""Squeeze, the space-to-depth reshaping between the levels of a multi-scale flow (Glow Sec. 3, Fig. 2)."""
from __future__ import annotations

from .base import Flow


class Squeeze(Flow):
    """Space-to-depth (Sec. 3, Fig. 2): (B, C, H, W) → (B, 4C, H/2, W/2); logdet = 0."""

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def reverse(self, y):
        b, c, h, w = y.shape
        y = y.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(b, c // 4, 2 * h, 2 * w)
