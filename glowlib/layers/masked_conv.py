"""MaCow's masked convolutional flow (Ma, Kong, Zhang & Hovy, NeurIPS 2019, Sec. 3.1) and the unit of four of
them that gives every pixel context from all four sides.

y = s(x_<) ⊙ x + b(x_<): an autoregressive affine map whose scale and shift at a pixel come from a masked
(shifted) convolution over a small window of the rows above it (top-down), below it, or of the columns left /
right of it. Forward is one parallel pass; the inverse is one pass per row (or column), O(H) instead of the
O(H·W) of a fully autoregressive flow, each pass on a window of constant size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import ORIENTATIONS, check_choice
from .actnorm import ActNorm
from .base import Flow, FlowSequence
from .networks import Conv2d, ZeroConv2d
from .precision import network_dtype, network_input, network_output


class MaskedConvFlow(Flow):
    """Masked convolutional flow (MaCow's MCF): y = s ⊙ x + b with (log s, b) = NN(x_<), logdet = Σ log s.

    In the top-down orientation, (s, b) at pixel (i, j) are a function of the rows i−kh … i−1 and the columns
    j−kw//2 … j+kw//2 of every channel (a shifted convolution, official ``ShiftedConv2d``), so the Jacobian is
    triangular in raster order with diagonal s. The other orientations are top-down on a flipped or transposed
    image; left-right and right-left see kh columns and kw rows (the kernel transposed, as the official code).
    NN = masked conv → ELU → zero-initialised 1x1 conv (official ``MCFBlock``); s = sigmoid(h + 2) as in the
    official code. The official masked conv is weight-normalised with data-dependent init; here a plain conv.
    """

    def __init__(self, channels: int, width: int, kernel_height: int, kernel_width: int, orientation: str,
                 precision: str = "fp32"):
        super().__init__()
        check_choice("orientation", orientation, ORIENTATIONS)
        if kernel_height < 1 or kernel_width < 1 or kernel_width % 2 == 0:
            raise ValueError(f"kernel ({kernel_height}, {kernel_width}): height must be >= 1, width odd and >= 1")
        self.orientation = orientation
        self.kh, self.pad = kernel_height, kernel_width // 2
        self.conv = Conv2d(channels, width, (kernel_height, kernel_width))      # valid conv on the shifted input
        self.net_dtype = network_dtype(precision)
        self.out = ZeroConv2d(width, 2 * channels, kernel_size=1)             # [shift | scale]

    def _to_top_down(self, x):
        if self.orientation == "bottom-up":
            return x.flip(2)
        if self.orientation == "left-right":
            return x.transpose(2, 3)
        if self.orientation == "right-left":
            return x.transpose(2, 3).flip(2)
        return x

    def _from_top_down(self, u):
        if self.orientation == "bottom-up":
            return u.flip(2)
        if self.orientation == "left-right":
            return u.transpose(2, 3)
        if self.orientation == "right-left":
            return u.flip(2).transpose(2, 3)
        return u

    def _shift_logscale(self, window):
        """window (B, C, R + kh − 1, W + 2·pad), zero-padded → shift, log-scale pre-activation (B, C, R, W)."""
        h = network_output(self.out(F.elu(self.conv(network_input(window, self.net_dtype)))), window.dtype)
        c = h.shape[1] // 2
        return h[:, :c], h[:, c:] + 2.0

    def forward(self, x):
        u = self._to_top_down(x)                                     # (B, C, H', W') top-down frame
        # row i of the conv's output sees rows i−kh … i−1: pad kh zero rows on top, drop the last row
        window = F.pad(u[:, :, : u.shape[2] - 1], (self.pad, self.pad, self.kh, 0))
        t, z = self._shift_logscale(window)
        v = u * torch.sigmoid(z) + t                                 # official order: scale, then shift
        return self._from_top_down(v), F.logsigmoid(z).flatten(1).sum(1)

    def reverse(self, y):
        """Row by row: row i's (s, b) depend on rows i−kh … i−1 only, which are already inverted. One conv per row
        on a window of kh rows, so H sequential passes of constant cost each (O(H), not O(H·W))."""
        v = self._to_top_down(y)
        b, c, height, width = v.shape
        rows = [v.new_zeros(b, c, 1, width + 2 * self.pad)] * self.kh     # zero padding above the image
        out = []
        for i in range(height):
            t, z = self._shift_logscale(torch.cat(rows[-self.kh:], 2))     # (B, C, 1, W') each
            u_i = (v[:, :, i: i + 1] - t) / torch.sigmoid(z)
            out.append(u_i)
            rows.append(F.pad(u_i, (self.pad, self.pad)))
        return self._from_top_down(torch.cat(out, 2))


class MaCowUnit(FlowSequence):
    """ActNorm → MCF top-down → MCF bottom-up → ActNorm → MCF left-right → MCF right-left (official
    ``MaCowUnit``): every pixel sees context from all four sides after one unit."""

    def __init__(self, channels: int, width: int, kernel_height: int, kernel_width: int, precision: str = "fp32"):
        def mcf(orientation):
            return MaskedConvFlow(channels, width, kernel_height, kernel_width, orientation, precision)
        super().__init__([ActNorm(channels), mcf("top-down"), mcf("bottom-up"),
                          ActNorm(channels), mcf("left-right"), mcf("right-left")])
