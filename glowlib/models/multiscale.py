"""The multi-scale skeleton shared by Glow, RealNVP and MaCow (Glow Fig. 2; RealNVP Sec. 3.6), and Glow's flow step.

A model is L levels. Each level squeezes (C, H, W) → (4C, H/2, W/2), runs K flow steps, and (except the last)
splits off half the channels as a latent whose Gaussian prior is predicted from the kept half (Sec. 3, the
multi-scale architecture of RealNVP). ``encode`` returns one latent per level, bottom level first.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GlowConfig
from ..layers import (ActNorm, Cached, Coupling, Flow, FlowSequence, InvConv1x1, InvConv1x1LU, Squeeze, ZeroConv2d,
                      channel_mix, gaussian_log_prob, gaussian_sample, make_permutation)
from ..layers.revgrad import grad_of, invertible_forward, sequence_inverse_backward


class FlowStep(FlowSequence):
    """One step of flow (Table 1): ActNorm → invertible 1x1 conv (or a permutation) → coupling.

    ``cfg.fused``: once ActNorm is initialised, ActNorm and the 1x1 conv run as one affine map per pixel,
    y = W·diag(s)·x + W·(s⊙b), computed as a batched matmul; its inverse x = diag(1/s)·W⁻¹·y − b likewise, with
    both cached in eval mode until a parameter changes. Same function, one pass over the data instead of three.
    """

    def __init__(self, channels: int, cfg: GlowConfig):
        layers = [ActNorm(channels)] if cfg.actnorm else []
        layers += [make_permutation(cfg.permutation, channels, cfg.lu),
                   Coupling(channels, cfg.width, cfg.coupling, cfg.actnorm, cfg.fused, cfg.channels_last,
                            cfg.precision)]
        super().__init__(layers)
        self.fused = cfg.fused and isinstance(layers[-2], (InvConv1x1, InvConv1x1LU))
        self._mix_cache, self._inverse_cache = Cached(), Cached()

    def _parts(self):
        """(ActNorm or None, 1x1 conv, coupling); not attributes, which would register the layers twice."""
        return (self.flows[0] if len(self.flows) == 3 else None), self.flows[-2], self.flows[-1]

    def _mix_params(self):
        actnorm, conv, _ = self._parts()
        return list(conv.parameters()) + list(conv.buffers()) + ([] if actnorm is None else
                                                               [actnorm.bias, actnorm.logs])

    def _mix(self):
        """(W·diag(s), W·(s⊙b), log-det per pixel): ActNorm followed by the 1x1 conv."""
        actnorm, conv, _ = self._parts()
        w, logdet = conv.weight_logdet()
        if actnorm is None:
            return w, None, logdet
        s = torch.exp(actnorm.logs).view(-1)
        return w * s, w @ (s * actnorm.bias.view(-1)), logdet + actnorm.logs.sum()

    def _mix_inverse(self):
        actnorm, conv, _ = self._parts()
        w_inv = conv.inverse_weight()
        if actnorm is None:
            return w_inv, None
        return w_inv * torch.exp(-actnorm.logs).view(-1, 1), -actnorm.bias.view(-1)

    def _use_fused(self) -> bool:
        actnorm = self._parts()[0]
        return self.fused and (actnorm is None or not actnorm.needs_init())

    def forward(self, x):
        if not self._use_fused():
            return super().forward(x)
        w, b, logdet = self._mix_cache.get(self, self._mix_params(), self._mix)
        y, logdet_coupling = self._parts()[2](channel_mix(x, w, b))
        return y, logdet_coupling + x.shape[2] * x.shape[3] * logdet

    def reverse(self, y):
        if not self.fused:
            return super().reverse(y)
        w_inv, b_inv = self._inverse_cache.get(self, self._mix_params(), self._mix_inverse)
        return channel_mix(self._parts()[2].reverse(y), w_inv, b_inv)

    def _mix_forward(self, x):
        w, b, logdet = self._mix()
        return channel_mix(x, w, b), (x.shape[2] * x.shape[3] * logdet).expand(x.shape[0])

    def inverse_backward(self, y, g_y, g_logdet, need_x: bool = True):
        """Invertible backprop (``glowlib.layers.revgrad``): the coupling's own (NN run once), then the fused
        ActNorm + 1x1 conv map, rebuilt through its inverse and recomputed."""
        if not self._use_fused():
            return sequence_inverse_backward(self, y, g_y, g_logdet, need_x)
        u, g_u, grads = self._parts()[2].inverse_backward(y, g_y, g_logdet)
        with torch.no_grad():
            x = channel_mix(u, *self._mix_inverse())
        mix_params = [p for p in self._mix_params() if p.requires_grad]
        g_x, mix_grads = grad_of(self._mix_forward, x, g_u, g_logdet, need_x, mix_params)
        grads.update(mix_grads)
        return x, g_x, grads


class Level(nn.Module):
    """Squeeze → K steps → (split). The split-off half's prior N(mean, exp(log_std)²) comes from a
    zero-initialised conv on the kept half (official ``split2d_prior``), or is N(0, 1) without
    ``learned_prior``.

    ``inv_backprop``: in training, the K steps run through ``revgrad.invertible_forward``, which stores only
    their output and recomputes the rest in the backward pass, so the level's memory does not grow with K.
    """

    def __init__(self, steps: list[Flow], channels: int, split: bool, learned_prior: bool,
                 inv_backprop: bool = False, fused: bool = False):
        super().__init__()
        self.squeeze = Squeeze()
        self.steps = FlowSequence(steps)
        self.split = split
        self.n_keep = channels // 2 if split else 0
        self.n_z = channels - self.n_keep                       # channels of this level's latent
        self.prior = ZeroConv2d(self.n_keep, 2 * self.n_z) if split and learned_prior else None
        self.inv_backprop, self.fused = inv_backprop, fused
        # official code interleaves mean / log-std; the fused prior reorders its filters to [mean | log-std]
        self.register_buffer("order", torch.cat([torch.arange(0, 2 * self.n_z, 2),
                                                 torch.arange(1, 2 * self.n_z, 2)]), persistent=False)
        self._prior_cache, self._mean_cache = Cached(), Cached()
        self._actnorms = None

    def _needs_init(self) -> bool:
        if self._actnorms is None:
            self._actnorms = [m for m in self.steps.modules() if isinstance(m, ActNorm)]
        return any(m.needs_init() for m in self._actnorms)

    def encode(self, x):
        """x (B, C, H, W) → h (B, 4C - n_z, H/2, W/2) or None at the top, z, logdet."""
        x, _ = self.squeeze(x)                                  # (B, 4C, H/2, W/2)
        if self.inv_backprop and self.training and not self._needs_init():
            x, logdet = invertible_forward(self.steps, x)
        else:
            x, logdet = self.steps(x)
        if not self.split:
            return None, x, logdet
        return x[:, : self.n_keep], x[:, self.n_keep:], logdet

    def encode_with_prior(self, x, with_prior: bool = True):
        """``encode`` and log p(z | h) of the split-off latent (zeros at the top, or without ``with_prior``)."""
        h, z, logdet = self.encode(x)
        if with_prior and h is not None:
            return h, z, logdet, gaussian_log_prob(z, *self.prior_params(h))
        return h, z, logdet, x.new_zeros(x.shape[0])

    def decode(self, h, z, temperature: float = 1.0, generator=None):
        """Inverse of ``encode``; below the top, z None is drawn from its prior at ``temperature``."""
        if z is None:
            z = self.sample_latent(h, temperature, generator)
        x = z if h is None else torch.cat([h, z], 1)
        return self.squeeze.reverse(self.steps.reverse(x))

    def _prior_weights(self, mean_only: bool):
        p = self.prior
        params = [p.conv.weight, p.conv.bias, p.logs]
        if mean_only:
            return self._mean_cache.get(self, params, lambda: p.folded(self.order[: self.n_z]))
        return self._prior_cache.get(self, params, lambda: p.folded(self.order))

    def prior_params(self, h):
        if self.prior is None:
            zeros = h.new_zeros(h.shape[0], self.n_z, *h.shape[2:])
            return zeros, zeros
        if self.fused:
            out = self.prior.conv_folded(h, self._prior_weights(mean_only=False))
            return out[:, : self.n_z], out[:, self.n_z:]
        out = self.prior(h)
        return out[:, 0::2], out[:, 1::2]                       # official code interleaves mean / log-std

    def sample_latent(self, h, temperature: float, generator=None):
        """z ~ N(mean(h), (T·std(h))²) with no work that cannot change z: at T = 0 only the mean's filters run,
        and without a learned prior no conv runs at all."""
        if self.prior is None:
            shape = (h.shape[0], self.n_z, *h.shape[2:])
            if temperature == 0:
                return h.new_zeros(shape)
            return temperature * torch.randn(shape, generator=generator, dtype=h.dtype, device=h.device)
        if self.fused and temperature == 0:
            return self.prior.conv_folded(h, self._prior_weights(mean_only=True))
        return gaussian_sample(*self.prior_params(h), temperature, generator)


def check_tensor(name: str, x) -> None:
    """Raise a ValueError unless ``x`` is a floating-point tensor holding at least one image."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {got}: convert uint8 images with "
                         f"glowlib.data.to_float(images, n_bits)")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} of shape {tuple(x.shape)} holds no images; pass a batch of at least one")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise a ValueError if ``x`` holds NaN or infinite values: a density is defined on finite points only."""
    if not bool(torch.isfinite(x.detach()).all()):
        n = int((~torch.isfinite(x.detach())).sum())
        raise ValueError(f"{name} holds {n} non-finite values (NaN or inf); the model takes finite inputs only")


def check_temperature(temperature) -> None:
    """Raise a ValueError unless the sampling temperature T is a finite number >= 0 (T scales the prior's std)."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        t = math.nan
    if isinstance(temperature, bool) or not math.isfinite(t) or t < 0:
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (1: the model's own "
                         f"distribution, 0: the prior's means)")


class MultiScaleFlow(nn.Module):
    """The multi-scale skeleton shared by Glow, RealNVP and MaCow (Glow Fig. 2; RealNVP Sec. 3.6): L levels, each
    squeezing its input, flowing and (below the top) factoring out a latent with a conditional Gaussian prior, and
    a learned Gaussian prior for the top latent. ``forward`` direction is data → latent, as in the papers.

    A subclass builds its levels with ``make_level(channels, size, last)``. A level has ``split`` (False at the
    top), ``n_keep`` (channels passed up), ``encode_with_prior(x, with_prior) -> (h, z, logdet, log p of its
    split-off latent)`` with h None at the top, and ``decode(h, z, temperature, generator)``, which draws a
    missing z below the top from its prior.
    """

    def __init__(self, config):
        super().__init__()
        cfg = self.config = config
        levels, c, size = [], cfg.in_channels, cfg.image_size
        for i in range(cfg.n_levels):
            c, size = 4 * c, size // 2
            level = self.make_level(c, size, last=i == cfg.n_levels - 1)
            levels.append(level)
            c = level.n_keep if level.split else c
        self.levels = nn.ModuleList(levels)
        top = torch.zeros(1, 2 * c, size, size)                 # mean and log-std of the top latent
        if cfg.learn_top:
            self.top = nn.Parameter(top)
        else:
            self.register_buffer("top", top)

    def make_level(self, channels: int, size: int, last: bool) -> nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ checks
    def _check_input(self, x: torch.Tensor) -> None:
        """x must be a non-empty floating-point batch of this config's shape with finite values. Any finite value
        is allowed: the model is a density on all of R^D (its own samples leave [-0.5, 0.5]^D at T = 1), so the
        check that images were scaled is made where data enters (``glowlib.data.to_float``, which takes uint8
        only, and ``objective.check_data_range`` in the bits/dim helpers), not here."""
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        check_tensor("x", x)
        self._check_dtype("x", x)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (B, {', '.join(map(str, expected))}) "
                             f"for this model's config")
        check_finite("x", x)

    def _check_dtype(self, name: str, x: torch.Tensor) -> None:
        """Inputs in the dtype of the model's weights (float32; the coupling networks cast to bf16 themselves
        where ``precision="bf16"``): not cast silently, since float64 would lose the precision the caller asked
        for and float16 inputs would come from code that expects float16 arithmetic, which the model never does."""
        if x.dtype != self.top.dtype:
            raise ValueError(f"{name} is {x.dtype}, but the model computes in {self.top.dtype}; pass "
                             f"{name}.to({self.top.dtype}) (glowlib.data.to_float gives {self.top.dtype})")

    def _check_entry(self, y) -> None:
        """Run first by ``encode``, ``log_prob``, ``decode`` and ``sample``. Glow checks labels only where the top
        prior uses them (``_check_labels``); a model without a conditional prior refuses them here."""

    def _check_labels(self, y, batch: int):
        if not self.config.n_classes:
            if y is not None:
                raise ValueError("labels y were given but config.n_classes=0; set n_classes for a conditional prior")
            return None
        if y is None or y.shape != (batch,):
            raise ValueError(f"config.n_classes={self.config.n_classes}: pass labels y of shape ({batch},)")
        if y.min() < 0 or y.max() >= self.config.n_classes:
            raise ValueError(f"labels must be in [0, {self.config.n_classes}); got [{y.min()}, {y.max()}]")
        return F.one_hot(y, self.config.n_classes).to(self.top.dtype)

    # ------------------------------------------------------------------ prior
    def top_prior(self, batch: int, y=None):
        h = self.top.expand(batch, *self.top.shape[1:])
        onehot = self._check_labels(y, batch)
        if onehot is not None:
            h = h + self.class_prior(onehot)[:, :, None, None]
        return self._mean_log_std(h)

    @staticmethod
    def _mean_log_std(h):
        return h[:, 0::2], h[:, 1::2]                           # official code interleaves mean / log-std

    # ------------------------------------------------------------------ API
    def _encode(self, x, y=None, with_prior: bool = True):
        self._check_input(x)
        self._check_entry(y)
        zs, logdet, log_pz, h = [], x.new_zeros(x.shape[0]), x.new_zeros(x.shape[0]), x
        for level in self.levels:
            h, z, ld, lp = level.encode_with_prior(h, with_prior)
            logdet, log_pz = logdet + ld, log_pz + lp
            zs.append(z)
        if with_prior:
            log_pz = log_pz + gaussian_log_prob(zs[-1], *self.top_prior(x.shape[0], y))
        return zs, logdet, log_pz

    def encode(self, x: torch.Tensor, y=None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x (B, C, H, W), finite (data lies in [-0.5, 0.5]) → (latents, one per level bottom first; logdet (B,))."""
        zs, logdet, _ = self._encode(x, y, with_prior=False)
        return zs, logdet

    def log_prob(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """log p(x) in nats, shape (B,): Σ log p(z_l | prior) + logdet (change of variables, Eq. 1-3)."""
        _, logdet, log_pz = self._encode(x, y)
        return log_pz + logdet

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """``log_prob``: calling the model gives the training objective (so DistributedDataParallel syncs it)."""
        return self.log_prob(x, y)

    def decode(self, zs, y=None, temperature: float = 1.0, generator=None) -> torch.Tensor:
        """Exact inverse of ``encode``. A latent given as None is drawn from its prior at ``temperature``."""
        self._check_entry(y)
        if len(zs) != len(self.levels):
            raise ValueError(f"decode needs {len(self.levels)} latents (one per level), got {len(zs)}")
        check_temperature(temperature)
        for i, (z, shape) in enumerate(zip(zs, self.config.latent_shapes)):
            if z is None:
                continue
            check_tensor(f"latent {i}", z)
            self._check_dtype(f"latent {i}", z)
            if tuple(z.shape[1:]) != shape:
                raise ValueError(f"latent of shape {tuple(z.shape)}; expected (B, {', '.join(map(str, shape))})")
            check_finite(f"latent {i}", z)
        given = [z.shape[0] for z in zs if z is not None] + ([] if y is None else [y.shape[0]])
        if not given:
            labels = " or labels y" if getattr(self.config, "n_classes", 0) else ""
            raise ValueError(f"decode needs at least one latent{labels} to know the batch size; use sample(n)")
        return self._decode(zs, given[0], y, temperature, generator)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator=None, y=None) -> torch.Tensor:
        """n images from z ~ N(μ, (T·σ)²) at every level (Sec. 5, temperature T).

        The samples are NOT clipped to [-0.5, 0.5]: the model is a density on R^D, and at T = 1 some pixels fall
        outside the data's range. ``log_prob`` of a sample is its exact log-density; clip (or quantise with
        ``glowlib.analysis.to_uint8``) only to display or store images."""
        self._check_entry(y)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be an int >= 1 (the number of images to draw)")
        with torch.inference_mode():
            x = self._decode([None] * len(self.levels), n, y, temperature, generator)
        return x.clone()                   # an ordinary tensor, which later autograd code may use

    def _decode(self, zs, batch, y, temperature, generator):
        check_temperature(temperature)
        h = None
        for level, z in zip(reversed(self.levels), reversed(zs)):
            if z is None and not level.split:
                mean, log_std = self.top_prior(batch, y)
                z = mean if temperature == 0 else gaussian_sample(mean, log_std, temperature, generator)
            h = level.decode(h, z, temperature, generator)
        return h

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, y=None) -> None:
        """Data-dependent ActNorm initialisation on batch x (Sec. 3.1): one forward pass in training mode."""
        was_training = self.training
        self.train()
        self._encode(x, y, with_prior=False)
        self.train(was_training)
