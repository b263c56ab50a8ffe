"""Invertible layers of Glow (paper Sec. 3, Table 1) and RealNVP (Dinh et al. 2017).

Direction is the paper's: ``forward`` maps data to latent and returns ``(y, logdet)`` with ``logdet`` of shape
``(B,)``; ``reverse`` maps latent back to data.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Flow(nn.Module):
    """Base of every invertible layer: ``forward(x) -> (y, logdet)``, ``reverse(y) -> x``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FlowSequence(Flow):
    """Composition: log-dets add, the inverse runs the layers backwards."""

    def __init__(self, flows):
        super().__init__()
        self.flows = nn.ModuleList(flows)

    def forward(self, x):
        logdet = x.new_zeros(x.shape[0])
        for flow in self.flows:
            x, ld = flow(x)
            logdet = logdet + ld
        return x, logdet

    def reverse(self, y):
        for flow in reversed(self.flows):
            y = flow.reverse(y)
        return y


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

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x):
        if self.training and not self.initialized:
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.logs)
        logdet = x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * self.logs.sum())
        return y, logdet

    def reverse(self, y):
        return y * torch.exp(-self.logs) - self.bias


def random_rotation(channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random orthogonal c×c matrix (QR of a Gaussian), the 1x1 conv's initialisation (Sec. 3.2)."""
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    return q


class _Cached:
    """Caches a function of some tensors, recomputed when any of them changes (tracked by version counters).

    Used in eval mode so that decoding does not recompose the LU weight or invert it on every call; an
    optimizer step or ``load_state_dict`` bumps the version and invalidates the cache.
    """

    def __init__(self):
        self.key, self.value = None, None

    def get(self, module: nn.Module, tensors, compute):
        if module.training or torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return compute()  # gradients must flow through a fresh computation
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        if key != self.key:
            with torch.no_grad():
                self.value = compute()
            self.key = key
        return self.value


class InvConv1x1(Flow):
    """Invertible 1x1 convolution y = W x per pixel (Sec. 3.2); logdet = H·W·log|det W| via ``slogdet``.

    ``trainable=False`` gives the fixed random-rotation baseline the reviewers asked for (log|det W| = 0).
    """

    def __init__(self, channels: int, trainable: bool = True, generator=None):
        super().__init__()
        w = random_rotation(channels, generator)
        if trainable:
            self.weight = nn.Parameter(w)
        else:
            self.register_buffer("weight", w)
        self._forward_cache, self._inverse_cache = _Cached(), _Cached()

    def forward(self, x):
        w = self.weight
        logabsdet = self._forward_cache.get(self, [w], lambda: torch.linalg.slogdet(w)[1])
        y = F.conv2d(x, w[:, :, None, None])
        return y, x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * logabsdet)

    def reverse(self, y):
        w_inv = self._inverse_cache.get(self, [self.weight], lambda: torch.linalg.inv(self.weight))
        return F.conv2d(y, w_inv[:, :, None, None])


class InvConv1x1LU(Flow):
    """LU-decomposed 1x1 conv W = P·L·(U + diag(sign(s)·exp(log|s|))) (Sec. 3.2); logdet = H·W·Σ log|s|.

    P and sign(s) are fixed buffers; L (unit lower) and U (strict upper) are masked; log|s| is trained.
    Initialised from the LU decomposition of a random rotation, so it starts as the same W as ``InvConv1x1``.
    """

    def __init__(self, channels: int, generator=None):
        super().__init__()
        p, lower, upper = torch.linalg.lu(random_rotation(channels, generator))
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))
        self._forward_cache, self._inverse_cache = _Cached(), _Cached()

    def _compose(self):
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def _params(self):
        return [self.lower, self.upper, self.log_s]

    def forward(self, x):
        w = self._forward_cache.get(self, self._params(), self._compose)
        y = F.conv2d(x, w[:, :, None, None])
        return y, x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * self.log_s.sum())

    def reverse(self, y):
        w_inv = self._inverse_cache.get(self, self._params(), lambda: torch.linalg.inv(self._compose()))
        return F.conv2d(y, w_inv[:, :, None, None])


class Permute(Flow):
    """Fixed channel permutation: "reverse" (RealNVP) or "shuffle" (a fixed random one); logdet = 0."""

    def __init__(self, channels: int, kind: str, generator=None):
        super().__init__()
        if kind == "reverse":
            perm = torch.arange(channels - 1, -1, -1)
        elif kind == "shuffle":
            perm = torch.randperm(channels, generator=generator)
        else:
            raise ValueError(f"kind={kind!r} is not a fixed permutation; choose 'reverse' or 'shuffle'")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def reverse(self, y):
        return y[:, self.inverse_perm]


def make_permutation(kind: str, channels: int, lu: bool, generator=None) -> Flow:
    """The channel-mixing layer of a flow step, by name (see ``config.PERMUTATIONS``)."""
    if kind == "conv1x1":
        return InvConv1x1LU(channels, generator) if lu else InvConv1x1(channels, generator=generator)
    if kind == "rotation":
        return InvConv1x1(channels, trainable=False, generator=generator)
    return Permute(channels, kind, generator)


class ZeroConv2d(nn.Module):
    """3x3 conv initialised to zero, output scaled by exp(3·logs) (official code: ``conv2d_zeros``).

    Zero init makes every coupling start as the identity (Sec. 3.3).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(3 * self.logs)


class ConvActNorm(nn.Module):
    """Conv without bias followed by ActNorm, as the official code's ``conv2d`` (its log-det is not used)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, actnorm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not actnorm)
        self.norm = ActNorm(out_channels) if actnorm else None

    def forward(self, x):
        x = self.conv(x)
        return x if self.norm is None else self.norm(x)[0]


def coupling_network(in_channels: int, out_channels: int, width: int, actnorm: bool = True) -> nn.Module:
    """NN() of the coupling layer (official ``f``): 3x3 conv → ReLU → 1x1 conv → ReLU → zero-init 3x3 conv."""
    return nn.Sequential(
        ConvActNorm(in_channels, width, 3, actnorm), nn.ReLU(),
        ConvActNorm(width, width, 1, actnorm), nn.ReLU(),
        ZeroConv2d(width, out_channels),
    )


class Coupling(Flow):
    """Affine or additive coupling (Sec. 3.3, Table 1).

    xa, xb = split(x); h = NN(xb); affine: ya = (xa + t)·s with s = sigmoid(h_s + 2) (official code; the paper
    writes exp(log s) and the scale before the shift); additive: ya = xa + t. y = concat(ya, xb).
    """

    def __init__(self, channels: int, width: int, kind: str = "affine", actnorm: bool = True):
        super().__init__()
        if channels < 2:
            raise ValueError(f"channels={channels}: a coupling layer needs at least 2 channels to split")
        self.kind = kind
        self.n_a = channels // 2                    # transformed half
        n_b = channels - self.n_a                   # conditioning half
        self.net = coupling_network(n_b, self.n_a * (2 if kind == "affine" else 1), width, actnorm)

    def _shift_scale(self, xb):
        h = self.net(xb)
        if self.kind == "additive":
            return h, None
        # official code interleaves the channels: shift = h[:, 0::2], scale = h[:, 1::2]
        return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0)

    def forward(self, x):
        xa, xb = x[:, : self.n_a], x[:, self.n_a:]
        t, s = self._shift_scale(xb)
        if s is None:
            return torch.cat([xa + t, xb], 1), x.new_zeros(x.shape[0])
        return torch.cat([(xa + t) * s, xb], 1), torch.log(s).flatten(1).sum(1)

    def reverse(self, y):
        ya, xb = y[:, : self.n_a], y[:, self.n_a:]
        t, s = self._shift_scale(xb)
        xa = ya - t if s is None else ya / s - t
        return torch.cat([xa, xb], 1)


def checkerboard(height: int, width: int, parity: int) -> torch.Tensor:
    """(1, 1, H, W) mask with 1 where (i + j) % 2 == parity."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((i + j) % 2 == parity).float()[None, None]


class MaskedCoupling(Flow):
    """RealNVP's masked affine coupling (Dinh et al. 2017, Eq. 9): y = b⊙x + (1−b)⊙(x⊙exp(log s) + t).

    (log s, t) = NN(b⊙x), log s = scale·tanh(·) as RealNVP. The mask b is a checkerboard
    (``mask="checkerboard"``) or one half of the channels (``mask="channel"``); ``parity`` alternates it.
    """

    def __init__(self, channels: int, size: int, width: int, mask: str, parity: int, actnorm: bool = True):
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
        self.net = coupling_network(channels, 2 * channels, width, actnorm)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def _log_s_t(self, x):
        h = self.net(x * self.mask)
        free = 1 - self.mask
        return self.scale * torch.tanh(h[:, 0::2]) * free, h[:, 1::2] * free

    def forward(self, x):
        log_s, t = self._log_s_t(x)
        return x * torch.exp(log_s) + t, log_s.flatten(1).sum(1)

    def reverse(self, y):
        log_s, t = self._log_s_t(y)  # y equals x where the mask is 1, so NN sees the same input
        return (y - t) * torch.exp(-log_s)


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


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dim of log N(z; mean, exp(log_std)²), in nats; shape (B,)."""
    lp = -0.5 * (math.log(2 * math.pi) + 2 * log_std + (z - mean) ** 2 * torch.exp(-2 * log_std))
    return lp.flatten(1).sum(1)


def gaussian_sample(mean, log_std, temperature: float, generator=None) -> torch.Tensor:
    """z ~ N(mean, (T·std)²): the paper's reduced-temperature sampling (Sec. 5, Fig. 8)."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + temperature * torch.exp(log_std) * eps
