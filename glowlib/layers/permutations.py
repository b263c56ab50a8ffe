"""The channel-mixing layer of a flow step (Glow Sec. 3.2): the invertible 1x1 convolution, plain or
LU-decomposed, and the fixed permutations it is compared with (RealNVP's reverse, a random shuffle)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Cached, Flow


def random_rotation(channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random orthogonal c×c matrix (QR of a Gaussian), the 1x1 conv's initialisation (Sec. 3.2)."""
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    return q


def channel_mix(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y[:, o] = Σ_c W[o, c]·x[:, c] + b[o] at every pixel: a 1x1 convolution computed as one batched matmul on
    the (B, C, H·W) view (on CPU several times faster than ``conv2d`` for the few channels of a flow step)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h * w)
    if bias is None:
        y = torch.matmul(weight, x)
    else:
        y = torch.baddbmm(bias.view(1, -1, 1).expand(b, -1, h * w), weight.expand(b, -1, -1), x)
    return y.view(b, -1, h, w)


class OneByOneConv(Flow):
    """y = W x per pixel, logdet = H·W·log|det W| (Sec. 3.2): the part both parameterisations of W share. A
    subclass gives ``weight_logdet() -> (W, log|det W|)`` and ``inverse_weight() -> W⁻¹``."""

    def forward(self, x):
        w, logabsdet = self.weight_logdet()
        y = F.conv2d(x, w[:, :, None, None])
        return y, x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * logabsdet)

    def reverse(self, y):
        return F.conv2d(y, self.inverse_weight()[:, :, None, None])


def inverse(w: torch.Tensor) -> torch.Tensor:
    """W⁻¹ without ``torch.linalg.inv``'s check that W is invertible: that check reads the factorisation's status
    back to the host, a wait for the GPU at every 1x1 convolution of every inverse (invertible backprop's too:
    128 a step for CelebA's L=4, K=32 model). A W that is singular to working precision gives inf or NaN instead
    of an error, which the training step treats as any non-finite step (it is undone)."""
    return torch.linalg.inv_ex(w)[0]


class InvConv1x1(OneByOneConv):
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
        self._forward_cache, self._inverse_cache = Cached(), Cached()

    def weight_logdet(self):
        """(W, log|det W|), the log-det per pixel cached in eval mode."""
        w = self.weight
        return w, self._forward_cache.get(self, [w], lambda: torch.linalg.slogdet(w)[1])

    def inverse_weight(self):
        return self._inverse_cache.get(self, [self.weight], lambda: inverse(self.weight))



class InvConv1x1LU(OneByOneConv):
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
        self._forward_cache, self._inverse_cache = Cached(), Cached()

    def _compose(self):
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def _params(self):
        return [self.lower, self.upper, self.log_s]

    def weight_logdet(self):
        """(W, log|det W| = Σ log|s|), W recomposed only when a parameter changed in eval mode."""
        return self._forward_cache.get(self, self._params(), self._compose), self.log_s.sum()

    def inverse_weight(self):
        return self._inverse_cache.get(self, self._params(), lambda: inverse(self._compose()))


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
