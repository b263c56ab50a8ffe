"""MaCow: Masked Convolutional Generative Flow (Ma, Kong, Zhang & Hovy, NeurIPS 2019), on glowlib's layers.

Two changes to Glow (the paper's Sec. 3):

- Masked convolutional flows (``glowlib.layers.masked_conv``): y = s(x_<) ⊙ x + b(x_<), an autoregressive affine
  map whose scale and shift at a pixel come from a masked convolution over a small window of neighbouring rows
  or columns; the inverse is one pass per row (or column), O(H) instead of the O(H·W) of an autoregressive flow.
- Fine-grained multi-scale architecture: the half of a level's channels that Glow factors out
  at the end of the level leaves in several smaller parts, one after each group of steps, so the channels that
  stay go through more steps than in Glow.

One MaCow step (official ``macow/flows/macow.py``, ``MaCowStep`` and ``MaCowUnit``): ``n_units`` × [ActNorm →
MCF top-down → MCF bottom-up → ActNorm → MCF left-right → MCF right-left], then a Glow step ActNorm → 1x1 conv →
coupling. The masked convolutions come before the 1x1 conv and coupling, as in the official code.

>>> model = MaCow(MaCowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16))
>>> zs, logdet = model.encode(x)       # x in [-0.5, 0.5]; one latent per level, bottom first; logdet (B,)
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import MaCowConfig
from ..layers import ActNorm, Coupling, FlowSequence, InvConv1x1LU, MaCowUnit, Squeeze, ZeroConv2d
from ..layers import gaussian_log_prob, gaussian_sample
from .multiscale import MultiScaleFlow


class MaCowStep(FlowSequence):
    """One MaCow step: ``n_units`` MaCow units, then a Glow step ActNorm → LU 1x1 conv → coupling."""

    def __init__(self, channels: int, cfg: MaCowConfig):
        width = cfg.mcf_width if cfg.mcf_width is not None else min(2 * channels, 512)
        units = [MaCowUnit(channels, width, cfg.kernel_height, cfg.kernel_width, cfg.precision)
                 for _ in range(cfg.n_units)]
        super().__init__(units + [ActNorm(channels), InvConv1x1LU(channels),
                                  Coupling(channels, cfg.width, cfg.coupling, precision=cfg.precision)])
        self.channels = channels


class MaCowLevel(nn.Module):
    """Squeeze → groups of steps, each group followed by a split (the fine-grained
    multi-scale architecture; official ``MaCowInternalBlock``). With ``multiscale="glow"`` one group
    of K steps and half the channels split off; with "fine" ``fine_splits`` groups, each splitting off
    channels/(2·fine_splits). Each split-off part's prior N(mean, exp(log_std)²) comes from a zero-initialised
    conv on the channels kept at that point (the official code uses a NICE coupling onto N(0, 1) there: the same
    conditional Gaussian family). The top level has one group and no split."""

    def __init__(self, channels: int, cfg: MaCowConfig, last: bool):
        super().__init__()
        self.squeeze = Squeeze()
        self.splits = cfg.split_sizes(channels, last)                    # channels leaving after each group
        n_groups = len(self.splits)
        sizes = [cfg.depth // n_groups + (j < cfg.depth % n_groups) for j in range(n_groups)]
        groups, priors, c = [], [], channels
        for n_steps, n_z in zip(sizes, self.splits):
            groups.append(FlowSequence([MaCowStep(c, cfg) for _ in range(n_steps)]))
            if not last and cfg.learned_prior:
                priors.append(ZeroConv2d(c - n_z, 2 * n_z))
            c -= n_z
        self.groups = nn.ModuleList(groups)
        self.priors = nn.ModuleList(priors)                            # empty: N(0, 1) for every part
        self.split = not last
        self.n_keep = c if not last else 0

    def prior_params(self, j: int, h):
        """(mean, log_std) of group j's split-off part given the kept channels h."""
        n_z = self.splits[j]
        if not len(self.priors):
            zeros = h.new_zeros(h.shape[0], n_z, *h.shape[2:])
            return zeros, zeros
        out = self.priors[j](h)
        return out[:, :n_z], out[:, n_z:]

    def encode(self, x):
        """x (B, C, H, W) → h (B, n_keep, H/2, W/2) or None at the top, z (the split parts concatenated), logdet."""
        return self.encode_with_prior(x, with_prior=False)[:3]

    def encode_with_prior(self, x, with_prior: bool = True):
        """``encode`` and Σ log p of the split-off parts, each given the channels kept at its split."""
        x, _ = self.squeeze(x)                                          # (B, 4C, H/2, W/2)
        logdet, log_pz, parts = x.new_zeros(x.shape[0]), x.new_zeros(x.shape[0]), []
        for j, (group, n_z) in enumerate(zip(self.groups, self.splits)):
            x, ld = group(x)
            logdet = logdet + ld
            if not self.split:
                return None, x, logdet, log_pz
            x, z = x[:, : x.shape[1] - n_z], x[:, x.shape[1] - n_z:]
            if with_prior:
                log_pz = log_pz + gaussian_log_prob(z, *self.prior_params(j, x))
            parts.append(z)
        return x, torch.cat(parts, 1), logdet, log_pz

    def decode(self, h, z, temperature: float = 1.0, generator=None):
        """Inverse of ``encode``; with z None, each part is drawn from its prior at ``temperature``, last first."""
        if not self.split:
            return self.squeeze.reverse(self.groups[0].reverse(z))
        parts = None if z is None else torch.split(z, self.splits, 1)
        x = h
        for j in reversed(range(len(self.groups))):
            z_j = parts[j] if parts is not None else self._sample_part(j, x, temperature, generator)
            x = self.groups[j].reverse(torch.cat([x, z_j], 1))
        return self.squeeze.reverse(x)

    def _sample_part(self, j, h, temperature, generator):
        mean, log_std = self.prior_params(j, h)
        return mean if temperature == 0 else gaussian_sample(mean, log_std, temperature, generator)


class MaCow(MultiScaleFlow):
    """MaCow (Ma et al. 2019) on the multi-scale skeleton of :class:`glowlib.Glow`, so with its public API:
    ``encode``, ``decode``, ``log_prob`` (= ``forward``), ``sample``, ``initialize``. ``forward`` direction is
    data → latent. Each masked conv flow inverts in H (or W) sequential passes, so sampling is slower than Glow's
    (the paper's stated cost).

    ``y`` is accepted where Glow takes it so that callers of either model are the same; MaCow has no
    class-conditional prior and refuses labels.
    """

    def __init__(self, config: MaCowConfig | None = None):
        super().__init__(config if config is not None else MaCowConfig())

    def make_level(self, channels: int, size: int, last: bool) -> MaCowLevel:
        return MaCowLevel(channels, self.config, last)

    def _check_labels(self, y, batch: int | None = None) -> None:
        if y is not None:
            raise ValueError("labels y were given but MaCow has no class-conditional prior; pass y=None")

    _check_entry = _check_labels

    @staticmethod
    def _mean_log_std(h):
        c = h.shape[1] // 2
        return h[:, :c], h[:, c:]                               # [mean | log-std] of the top latent
