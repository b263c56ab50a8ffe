"""The coupling network NN() of Glow's affine coupling (Sec. 3.3, official ``f``) and its convolutions, each
computing in its input's dtype so that one cast at the network's input runs it in bf16 (``precision``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .actnorm import ActNorm
from .base import Cached


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` computed in the dtype of its input: the weights are cast to it (a no-op when they match), so
    a network fed bf16 runs in bf16 while its parameters, their gradients and the optimizer stay float32."""

    def forward(self, x):
        return self._conv_forward(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class ZeroConv2d(nn.Module):
    """3x3 conv initialised to zero, output scaled by exp(3·logs) (official code: ``conv2d_zeros``).

    Zero init makes every coupling start as the identity (Sec. 3.3).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(3 * self.logs)          # in the dtype of logs: the scale is applied at full
                                                                # precision even when the conv ran in bf16

    def folded(self, order: torch.Tensor | None = None):
        """Weight and bias of one conv equal to this layer, (W∗x + b)·e = (e·W)∗x + e·b with e = exp(3·logs),
        output channels optionally reordered by ``order``."""
        e = torch.exp(3 * self.logs).view(-1, 1, 1, 1)                 # (C_out, 1, 1, 1)
        w, b = self.conv.weight * e, self.conv.bias * e.view(-1)
        return (w, b) if order is None else (w[order], b[order])

    def conv_folded(self, x, weight_bias):
        w, b = weight_bias
        return F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=self.conv.padding)


class ConvActNorm(nn.Module):
    """Conv without bias followed by ActNorm, as the official code's ``conv2d`` (its log-det is not used).

    ``fused``: once ActNorm is initialised it is folded into the conv, (W∗x + b)·s = (s·W)∗x + s·b, which saves
    two passes over the widest activations of the model and the memory autograd would keep for them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, actnorm: bool = True,
                 fused: bool = True):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not actnorm)
        self.norm = ActNorm(out_channels) if actnorm else None
        self.fused = fused
        self._cache = Cached()

    def _folded(self):
        s = torch.exp(self.norm.logs)                                   # (1, C_out, 1, 1)
        return self.conv.weight * s.view(-1, 1, 1, 1), (self.norm.bias * s).view(-1)

    def forward(self, x):
        if self.norm is None:
            return self.conv(x)
        if not self.fused or self.norm.needs_init():
            # ActNorm (and its data-dependent init) in its parameters' dtype, the result back in x's
            return self.norm(self.conv(x).to(self.norm.logs.dtype))[0].to(x.dtype)
        w, b = self._cache.get(self, [self.conv.weight, self.norm.bias, self.norm.logs], self._folded)
        return F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=self.conv.padding)


def coupling_network(in_channels: int, out_channels: int, width: int, actnorm: bool = True,
                     fused: bool = True) -> nn.Module:
    """NN() of the coupling layer (official ``f``): 3x3 conv → ReLU → 1x1 conv → ReLU → zero-init 3x3 conv."""
    return nn.Sequential(
        ConvActNorm(in_channels, width, 3, actnorm, fused), nn.ReLU(inplace=fused),
        ConvActNorm(width, width, 1, actnorm, fused), nn.ReLU(inplace=fused),
        ZeroConv2d(width, out_channels),
    )
