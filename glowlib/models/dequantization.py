"""Dequantisation: uniform (Glow, Sec. 2) and variational (Flow++, Ho et al. 2019, Sec. 3.1; used by MaCow).

A flow models a continuous density p on [-0.5, 0.5]^D, but images are discrete: x is an n-bit image mapped to the
grid {k/2^n - 0.5} by ``glowlib.data.to_float``, and each x owns the bin [x, x + δ)^D with δ = 1/2^n. Dequantising
means drawing noise u ∈ [0, 1)^D from q(u | x) and modelling x̃ = x + δ·u. For any q (Flow++ Sec. 3.1)

    log P(x) = log ∫ p(x + δ·u) δ^D du  ≥  E_q[ log p(x̃) − log q(u | x) ] − D·n·ln 2,

and the importance-weighted bound (Burda et al. 2016) log P(x) ≥ E[ log (1/k) Σ_j p(x̃_j) / q(u_j | x) ] − D·n·ln 2
tightens as k grows, reaching log P(x) as k → ∞.

Units, the one convention of this module: ``log_q`` is log q(u | x) in nats, per image (shape (B,)), of the noise
u **in bin units** (u ∈ (0, 1)^D, bin width 1). The density of x̃ itself, in the continuous space the flow models,
is log q(x̃ | x) = log_q + D·n·ln 2 (the δ^-D change of variables); ``objective.bits_per_dim`` adds exactly that
D·n·ln 2, so

    ELBO bits/dim = bits_per_dim(log p(x̃) − log_q, D, n) = −(log p(x̃) − log_q) / (D·ln 2) + n.

Uniform dequantisation has log_q = 0 and so gives what training reports today (``glowlib.objective``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DEQUANTIZATIONS, check_choice
from ..layers import ActNorm, checkerboard, coupling_network, gaussian_log_prob

_LOGIT_SCALE = 1.75          # sigmoid(1.75·N(0, 1)) is within 0.0095 nats/dim (KL) of U(0, 1), about the best scale
_GRID_TOL = 1e-3            # in bin units: float32 holds k/2^n - 0.5 exactly, so genuine n-bit data is far inside


def _check_n_bits(n_bits) -> None:
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits={n_bits!r} must be an int in [1, 8] (the bit depth the images were reduced to)")


def check_discrete(x: torch.Tensor, n_bits: int) -> None:
    """Raise a ValueError unless x is n-bit data as ``glowlib.data.to_float`` makes it: floats on the grid
    k/2^n − 0.5, k = 0 … 2^n − 1 (so in [-0.5, 0.5 − 2^-n]). Already-dequantised or [0, 1] / [0, 255] data fail."""
    _check_n_bits(n_bits)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor of n-bit data in [-0.5, 0.5), got {got}: convert uint8 "
                         f"images with glowlib.data.to_float(images, n_bits)")
    if x.numel() == 0:
        raise ValueError(f"x of shape {tuple(x.shape)} holds no images")
    k = (x.detach() + 0.5) * 2 ** n_bits                        # bin index, an integer for genuine data
    lo, hi = torch.aminmax(k)
    if not (lo >= -_GRID_TOL and hi <= 2 ** n_bits - 1 + _GRID_TOL):   # also catches NaN
        raise ValueError(f"x has values in [{lo.item() / 2 ** n_bits - 0.5:.4g}, {hi.item() / 2 ** n_bits - 0.5:.4g}]; "
                         f"expected {n_bits}-bit data in [-0.5, {0.5 - 2 ** -n_bits:.4g}]: convert uint8 images with "
                         f"glowlib.data.to_float(images, n_bits={n_bits})")
    off = (k - torch.round(k)).abs().max().item()
    if off > _GRID_TOL:
        raise ValueError(f"x is off the {n_bits}-bit grid k/2^{n_bits} - 0.5 by up to {off:.3g} bins: pass the "
                         f"discrete images (glowlib.data.to_float(images, n_bits={n_bits})), not already dequantised "
                         f"ones")


class Dequantizer(nn.Module):
    """One interface for every q(u | x): ``sample(x, n_bits) -> (x̃, log_q)``, ``log_prob(x̃, x, n_bits) -> log_q``.

    x: n-bit data from ``to_float``, (B, C, H, W). x̃ = x + u / 2^n. log_q: (B,) nats, u in bin units (module
    docstring). ``draw_noise`` gives the base noise the sample is a deterministic function of, so that a caller
    can draw it on the CPU from a seeded generator (the same on every device) and pass it as ``noise``.
    """

    def draw_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, noise: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base noise → (u in bin units, log q(u | x) in nats, (B,))."""
        raise NotImplementedError

    def log_prob(self, x_continuous: torch.Tensor, x: torch.Tensor, n_bits: int) -> torch.Tensor:
        raise NotImplementedError

    def _draw(self, sampler, x, generator):
        device = x.device if generator is None else generator.device
        return sampler(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)

    def sample(self, x: torch.Tensor, n_bits: int, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̃ = x + u/2^n, log q(u | x)) for n-bit data x; ``noise`` (from ``draw_noise``) overrides ``generator``.

        u is strictly inside (0, 1); in float32, x + u/2^n can still round onto the bin's upper edge when u is within
        about 2^(n-24) of 1, as with uniform noise (the flow accepts [-0.5, 0.5]).
        """
        check_discrete(x, n_bits)
        if noise is None:
            noise = self.draw_noise(x, generator)
        elif noise.shape != x.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected x's shape {tuple(x.shape)} "
                             f"(draw it with draw_noise(x, generator))")
        u, log_q = self.transform(noise, x)
        return x + u / 2 ** n_bits, log_q

    def _noise_in_bins(self, x_continuous, x, n_bits, strict: bool = False):
        """u = (x̃ − x)·2^n, checked to lie in [0, 1], or in (0, 1) when ``strict``."""
        check_discrete(x, n_bits)
        if x_continuous.shape != x.shape:
            raise ValueError(f"x_continuous has shape {tuple(x_continuous.shape)}; expected x's {tuple(x.shape)}")
        u = (x_continuous - x) * 2 ** n_bits
        lo, hi = torch.aminmax(u.detach())
        inside = lo > 0 and hi < 1 if strict else lo >= 0 and hi <= 1
        if not inside:
            raise ValueError(f"x_continuous = x + u/2^{n_bits} has u in [{lo.item():.4g}, {hi.item():.4g}]; expected u "
                             f"{'strictly inside (0, 1)' if strict else 'in [0, 1]'}: pass a point of x's own bins")
        return u


class UniformDequantization(Dequantizer):
    """q(u | x) = U(0, 1)^D: Glow's dequantisation (Sec. 2); log_q = 0. With the same generator its x̃ equals
    ``glowlib.objective.dequantize``'s bit for bit."""

    def draw_noise(self, x, generator=None):
        return self._draw(torch.rand, x, generator)

    def transform(self, noise, x):
        return noise, noise.new_zeros(noise.shape[0])

    def log_prob(self, x_continuous, x, n_bits):
        return self._noise_in_bins(x_continuous, x, n_bits).new_zeros(x.shape[0])


class ConditionalCoupling(nn.Module):
    """RealNVP's checkerboard affine coupling (Dinh et al. 2017, Eq. 9) whose network also sees features of x:
    y = b⊙e + (1−b)⊙(e·exp(log s) + t), (log s, t) = NN([b⊙e, context]), log s = scale·tanh(·) as RealNVP.

    NN is Glow's coupling network without ActNorm (zero-initialised last conv: starts as the identity).
    ``forward(e, context) -> (y, logdet (B,))``, ``reverse(y, context) -> e``.
    """

    def __init__(self, channels: int, context_channels: int, width: int, parity: int):
        super().__init__()
        self.parity = parity
        self.net = coupling_network(channels + context_channels, 2 * channels, width, actnorm=False, fused=False)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def _log_s_t(self, e, context):
        b = checkerboard(e.shape[2], e.shape[3], self.parity).to(e)          # (1, 1, H, W)
        h = self.net(torch.cat([e * b, context], 1))                         # (B, 2C, H, W)
        free = 1 - b
        return self.scale * torch.tanh(h[:, 0::2]) * free, h[:, 1::2] * free

    def forward(self, e, context):
        log_s, t = self._log_s_t(e, context)
        return e * torch.exp(log_s) + t, log_s.flatten(1).sum(1)

    def reverse(self, y, context):
        log_s, t = self._log_s_t(y, context)        # y equals e where the mask is 1, so NN sees the same input
        return (y - t) * torch.exp(-log_s)


class VariationalDequantization(Dequantizer):
    """q(u | x) as a conditional flow (Flow++ Sec. 3.1): ε ~ N(0, I), h = f(ε; c(x)), u = sigmoid(h).

    c is a small conv net on x; f is a per-channel affine map (an ActNorm, not data-initialised) followed by
    ``n_steps`` checkerboard affine couplings of alternating parity whose networks see [masked h, c(x)]. By the
    change of variables (exact, no approximation)

        log q(u | x) = log N(ε; 0, I) − log|det ∂f/∂ε| − Σ log sigmoid'(h),  log sigmoid'(h) = log σ(h) + log σ(−h).

    Flow++ uses mixture-of-logistics couplings and a deeper context net; this is the affine version at small size.
    The couplings start as the identity and the ActNorm as h = 1.75·ε, so q starts as sigmoid(N(0, 1.75²)), the
    logit-normal closest to Glow's uniform q (KL 0.0095 nats/dim; with scale 1 it would be 0.19).
    """

    def __init__(self, in_channels: int, width: int = 32, context_channels: int = 16, n_steps: int = 4):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("context_channels", context_channels),
                            ("n_steps", n_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an int >= 1")
        self.in_channels = in_channels
        self.context = nn.Sequential(
            nn.Conv2d(in_channels, context_channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(context_channels, context_channels, 3, padding=1), nn.ReLU())
        self.logit_scale = ActNorm(in_channels)
        with torch.no_grad():
            self.logit_scale.logs.fill_(math.log(_LOGIT_SCALE))
            self.logit_scale.initialized.fill_(True)        # a fixed init, not from the first batch of ε
        self.couplings = nn.ModuleList(ConditionalCoupling(in_channels, context_channels, width, i % 2)
                                       for i in range(n_steps))

    def _check_shape(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, {self.in_channels}, H, W) for this "
                             f"dequantiser (in_channels={self.in_channels})")

    def draw_noise(self, x, generator=None):
        return self._draw(torch.randn, x, generator)

    def transform(self, noise, x):
        self._check_shape(x)
        context = self.context(2 * x)                       # data scaled to [-1, 1)
        h, logdet = self.logit_scale(noise)
        for coupling in self.couplings:
            h, ld = coupling(h, context)
            logdet = logdet + ld
        log_base = gaussian_log_prob(noise, torch.zeros_like(noise), torch.zeros_like(noise))
        log_sigmoid_grad = (F.logsigmoid(h) + F.logsigmoid(-h)).flatten(1).sum(1)
        return torch.sigmoid(h), log_base - logdet - log_sigmoid_grad

    def log_prob(self, x_continuous, x, n_bits):
        """log q(u | x) of a given x̃ = x + u/2^n (u strictly inside (0, 1)), by inverting the flow."""
        self._check_shape(x)
        u = self._noise_in_bins(x_continuous, x, n_bits, strict=True)
        context = self.context(2 * x)
        h = torch.log(u) - torch.log1p(-u)                  # logit
        for coupling in reversed(self.couplings):
            h = coupling.reverse(h, context)
        return self.transform(self.logit_scale.reverse(h), x)[1]


def make_dequantizer(name: str, in_channels: int, **kwargs) -> Dequantizer:
    """The dequantiser called ``name`` (one of ``DEQUANTIZATIONS``); kwargs go to ``VariationalDequantization``."""
    check_choice("dequantization", name, DEQUANTIZATIONS)
    if name == "uniform":
        if kwargs:
            raise ValueError(f"dequantization='uniform' takes no options; got {sorted(kwargs)}")
        return UniformDequantization()
    return VariationalDequantization(in_channels, **kwargs)


# ------------------------------------------------------------------------------------------------- objectives
def _model_log_prob(model, x, y):
    """model.log_prob(x[, y]); a model without ``log_prob`` (a DistributedDataParallel wrapper of Glow, whose
    forward is log_prob) is called instead."""
    f = getattr(model, "log_prob", None) or model
    return f(x) if y is None else f(x, y)


def _check_model_bits(model, n_bits) -> None:
    model_bits = getattr(getattr(model, "config", None), "n_bits", n_bits)
    if model_bits != n_bits:
        raise ValueError(f"n_bits={n_bits} but the model was configured with n_bits={model_bits}; pass the bit depth "
                         f"the images were reduced to, the same for both")


def log_weight(model, x: torch.Tensor, dequantizer: Dequantizer, n_bits: int, y=None,
               generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x̃) − log q(u | x) in nats, (B,), for one x̃ ~ q: the ELBO's integrand (bin units, module docstring)."""
    _check_model_bits(model, n_bits)
    x_continuous, log_q = dequantizer.sample(x, n_bits, generator, noise)
    return _model_log_prob(model, x_continuous, y) - log_q


class DequantizedModel(nn.Module):
    """A flow and its dequantiser as one module whose ``forward`` is the ELBO's integrand log p(x̃) − log q(u | x)
    (nats, (B,)), so that ``DistributedDataParallel`` can wrap both and synchronise both sets of gradients."""

    def __init__(self, model: nn.Module, dequantizer: Dequantizer, n_bits: int):
        super().__init__()
        _check_n_bits(n_bits)
        _check_model_bits(model, n_bits)
        self.model, self.dequantizer, self.n_bits = model, dequantizer, n_bits

    def forward(self, x, y=None, generator=None, noise=None):
        return log_weight(self.model, x, self.dequantizer, self.n_bits, y, generator, noise)
