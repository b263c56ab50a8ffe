"""Coupling layers: Glow's affine and additive coupling (Sec. 3.3, Table 1) and RealNVP's masked affine coupling
(Dinh et al. 2017, Eq. 9), each with an ``inverse_backward`` for invertible backprop (``revgrad``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Cached, Flow
from .networks import coupling_network
from .precision import kept_network_input, network_dtype, network_output


class _AffineCouplingFn(torch.autograd.Function):
    """ya = (xa + t)·s with s = sigmoid(h_s + 2) and logdet = Σ log s, as one autograd node.

    Saves s and ya only, and needs three passes backward: ∂/∂xa = ∂/∂t = g·s, ∂/∂h_s = (1 − s)·(g·ya + g_logdet)
    (since ∂ya/∂h_s = ya·(1 − s) and ∂log s/∂h_s = 1 − s).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(xa, t, h_s):
        z = h_s + 2.0
        s = torch.sigmoid(z)
        ya = (xa + t).mul_(s)
        return ya, F.logsigmoid(z).flatten(1).sum(1), s

    @staticmethod
    def setup_context(ctx, inputs, output):
        ya, _, s = output
        ctx.mark_non_differentiable(s)
        ctx.save_for_backward(s, ya)

    @staticmethod
    def backward(ctx, g_y, g_logdet, _):
        s, ya = ctx.saved_tensors
        g_u = g_y * s
        g_h = torch.addcmul(g_logdet.view(-1, *[1] * (ya.dim() - 1)), g_y, ya).mul_(1.0 - s)
        return g_u, g_u, g_h


def affine_coupling(xa, t, h_s):
    """(ya, logdet) of the affine coupling (Table 1, official sigmoid(h + 2) scale), fused; see ``Coupling``."""
    ya, logdet, _ = _AffineCouplingFn.apply(xa, t, h_s)
    return ya, logdet


class Coupling(Flow):
    """Affine or additive coupling (Sec. 3.3, Table 1).

    xa, xb = split(x); h = NN(xb); affine: ya = (xa + t)·s with s = sigmoid(h_s + 2) (official code; the paper
    writes exp(log s) and the scale before the shift); additive: ya = xa + t. y = concat(ya, xb).

    ``fused``: NN's ActNorms and zero conv folded into its convs, the affine map as one autograd node
    (``affine_coupling``). ``channels_last``: NN's convs run NHWC, oneDNN's fast layout on CPU. ``precision``:
    NN's dtype (``network_dtype``); h is cast back to x's dtype before the scale and shift are formed, and NN sees
    xb, which passes through unchanged, so the inverse recomputes the very same h.
    """

    def __init__(self, channels: int, width: int, kind: str = "affine", actnorm: bool = True, fused: bool = True,
                 channels_last: bool = False, precision: str = "fp32"):
        super().__init__()
        if channels < 2:
            raise ValueError(f"channels={channels}: a coupling layer needs at least 2 channels to split")
        self.kind = kind
        self.n_a = channels // 2                    # transformed half
        n_b = channels - self.n_a                   # conditioning half
        n_out = self.n_a * (2 if kind == "affine" else 1)
        self.net = coupling_network(n_b, n_out, width, actnorm, fused)
        self.fused = fused
        self.net_dtype = network_dtype(precision)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # official code interleaves NN's output channels: shift = h[:, 0::2], scale = h[:, 1::2]. The fused path
        # reorders the zero conv's filters once so that they come out as [shift | scale], two dense halves.
        order = torch.cat([torch.arange(0, n_out, 2), torch.arange(1, n_out, 2)]) if kind == "affine" else None
        self.register_buffer("order", order, persistent=False)
        self._zero_cache = Cached()

    def _shift_scale(self, xb):
        h = network_output(self.net(kept_network_input(self, xb, self.net_dtype)), xb.dtype)
        if self.kind == "additive":
            return h, None
        return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0)

    def _h(self, xb):
        """NN(xb), fused path: ActNorms folded into the convs, output [shift | scale] (B, n_out, H, W)."""
        h = kept_network_input(self, xb, self.net_dtype, self.memory_format)
        for layer in self.net[:-1]:
            h = layer(h)
        zero = self.net[-1]
        folded = self._zero_cache.get(self, [zero.conv.weight, zero.conv.bias, zero.logs],
                                      lambda: zero.folded(self.order))
        return network_output(zero.conv_folded(h, folded), xb.dtype)

    def forward(self, x):
        xa, xb = x[:, : self.n_a], x[:, self.n_a:]
        if self.fused:
            h = self._h(xb)
            if self.kind == "additive":
                return torch.cat([xa + h, xb], 1), x.new_zeros(x.shape[0])
            ya, logdet = affine_coupling(xa, h[:, : self.n_a], h[:, self.n_a:])
            return torch.cat([ya, xb], 1), logdet
        t, s = self._shift_scale(xb)
        if s is None:
            return torch.cat([xa + t, xb], 1), x.new_zeros(x.shape[0])
        return torch.cat([(xa + t) * s, xb], 1), torch.log(s).flatten(1).sum(1)

    def reverse(self, y):
        ya, xb = y[:, : self.n_a], y[:, self.n_a:]
        if self.fused:
            h = self._h(xb)
            t, s = (h, None) if self.kind == "additive" else (h[:, : self.n_a], torch.sigmoid(h[:, self.n_a:] + 2.0))
        else:
            t, s = self._shift_scale(xb)
        xa = ya - t if s is None else ya / s - t
        return torch.cat([xa, xb], 1)

    def inverse_backward(self, y, g_y, g_logdet, need_x: bool = True):
        """Invertible backprop (``glowlib.layers.revgrad``) with NN run once: xb = y_b exactly, so NN(xb) computed with
        autograd gives both the inverse xa = ya/s − t and the gradient. Returns (x, ∂L/∂x, {param: grad})."""
        n = self.n_a
        ya, xb = y[:, :n], y[:, n:].detach().requires_grad_()
        params = [p for p in self.parameters() if p.requires_grad]
        with torch.enable_grad():
            if self.fused:
                h = self._h(xb)
                t, h_s = (h, None) if self.kind == "additive" else (h[:, :n], h[:, n:])
            else:
                t, s = self._shift_scale(xb)
            with torch.no_grad():
                if self.fused:
                    s = None if h_s is None else torch.sigmoid(h_s + 2.0)
                xa = ya - t if s is None else ya / s - t
            xa.requires_grad_()
            if s is None:
                outputs, grads_out = [xa + t], [g_y[:, :n]]
            elif self.fused:
                ya, logdet = affine_coupling(xa, t, h_s)
                outputs, grads_out = [ya, logdet], [g_y[:, :n], g_logdet]
            else:
                outputs, grads_out = [(xa + t) * s, torch.log(s).flatten(1).sum(1)], [g_y[:, :n], g_logdet]
            g_xa, g_xb, *grads = torch.autograd.grad(outputs, [xa, xb] + params, grads_out, allow_unused=True)
        g_xb = g_y[:, n:] if g_xb is None else g_xb + g_y[:, n:]
        return torch.cat([xa.detach(), xb.detach()], 1), torch.cat([g_xa, g_xb], 1), dict(zip(params, grads))


def checkerboard(height: int, width: int, parity: int) -> torch.Tensor:
    """(1, 1, H, W) mask with 1 where (i + j) % 2 == parity."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((i + j) % 2 == parity).float()[None, None]


class MaskedCoupling(Flow):
    """RealNVP's masked affine coupling (Dinh et al. 2017, Eq. 9): y = b⊙x + (1−b)⊙(x⊙exp(log s) + t).

    (log s, t) = NN(b⊙x), log s = scale·tanh(·) as RealNVP. The mask b is a checkerboard
    (``mask="checkerboard"``) or one half of the channels (``mask="channel"``); ``parity`` alternates it.
    """

    def __init__(self, channels: int, size: int, width: int, mask: str, parity: int, actnorm: bool = True,
                 fused: bool = True, channels_last: bool = False, precision: str = "fp32"):
        super().__init__()
        if mask == "checkerboard":
            b = checkerboard(size, size, parity).expand(1, channels, size, size).clone()
        elif mask == "channel":
            if channels < 2:
                raise ValueError(f"channels={channels}: a channel-wise mask needs at least 2 channels")
            b = torch.zeros(1, channels, 1, 1)
            b[:, : channels // 2] = 1.0
            b = (1 - b if parity else b).expand(1, channels, size, size).clone()
        else:
            raise ValueError(f"mask={mask!r} is not allowed; choose 'checkerboard' or 'channel'")
        self.register_buffer("mask", b)
        self.net = coupling_network(channels, 2 * channels, width, actnorm, fused)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net_dtype = network_dtype(precision)   # NN's dtype, as in ``Coupling``

    def _log_s_t(self, x):
        h = network_output(self.net(kept_network_input(self, x * self.mask, self.net_dtype, self.memory_format)),
                           x.dtype)
        free = 1 - self.mask
        return self.scale * torch.tanh(h[:, 0::2]) * free, h[:, 1::2] * free

    def forward(self, x):
        log_s, t = self._log_s_t(x)
        return x * torch.exp(log_s) + t, log_s.flatten(1).sum(1)

    def reverse(self, y):
        log_s, t = self._log_s_t(y)  # y equals x where the mask is 1, so NN sees the same input
        return (y - t) * torch.exp(-log_s)

    def inverse_backward(self, y, g_y, g_logdet, need_x: bool = True):
        """Invertible backprop with NN run once, as ``Coupling.inverse_backward``: NN's input b⊙x = b⊙y is exact.
        ``x_nn`` stands for x in NN's input (only its masked part matters), ``x`` in the affine map."""
        x_nn = y.detach().requires_grad_()
        params = [p for p in self.parameters() if p.requires_grad]
        with torch.enable_grad():
            log_s, t = self._log_s_t(x_nn)
            with torch.no_grad():
                x = (y - t) * torch.exp(-log_s)
            x.requires_grad_()
            outputs = [x * torch.exp(log_s) + t, log_s.flatten(1).sum(1)]
            g_x, g_nn, *grads = torch.autograd.grad(outputs, [x, x_nn] + params, [g_y, g_logdet], allow_unused=True)
        return x.detach(), g_x if g_nn is None else g_x + g_nn, dict(zip(params, grads))
