"""Glow (Kingma & Dhariwal 2018) and the RealNVP baseline (Dinh et al. 2017) on the multi-scale skeleton."""
from __future__ import annotations

import torch
from torch import nn

from ..config import GlowConfig
from ..layers import ActNorm, Flow, FlowSequence, MaskedCoupling
from .multiscale import FlowStep, Level, MultiScaleFlow


class Glow(MultiScaleFlow):
    """Glow (Kingma & Dhariwal 2018). ``forward`` direction is data → latent, as in the paper.

    >>> model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16))
    >>> zs, logdet = model.encode(x)       # x in [-0.5, 0.5]; one latent per level; logdet (B,)
    """

    def __init__(self, config: GlowConfig | None = None):
        super().__init__(config if config is not None else GlowConfig())
        cfg, c = self.config, self.top.shape[1] // 2
        if cfg.n_classes:
            # official --ycond: a zero-initialised linear map from the one-hot label adds to the top prior,
            # and a linear classifier on the mean top latent gives the optional classification loss
            self.class_prior = nn.Linear(cfg.n_classes, 2 * c)
            self.classifier = nn.Linear(c, cfg.n_classes)
            for layer in (self.class_prior, self.classifier):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def make_level(self, channels: int, size: int, last: bool) -> Level:
        cfg = self.config
        steps = [self.make_step(channels, size, k) for k in range(cfg.depth)]
        return Level(steps, channels, not last, cfg.learned_prior, cfg.inv_backprop, cfg.fused)

    def make_step(self, channels: int, size: int, index: int) -> Flow:
        return FlowStep(channels, self.config)

    def classify(self, zs) -> torch.Tensor:
        """Class logits from the mean of the top latent (official ``--ycond`` classification head)."""
        return self.classifier(zs[-1].mean(dim=(2, 3)))


class RealNVP(Glow):
    """The RealNVP baseline (Dinh et al. 2017) at the sizes of a ``GlowConfig``.

    Same multi-scale skeleton, priors and coupling network as Glow, so that the comparison isolates the flow
    step. In each level the first ⌈K/2⌉ steps are checkerboard-masked affine couplings and the rest channel-wise
    masked ones, with alternating masks in place of any permutation (RealNVP Sec. 3.4-3.6). ``permutation``,
    ``lu`` and ``coupling`` of the config are unused. ActNorm replaces RealNVP's batch normalisation so that
    both models see the same batch-independent normalisation (a deliberate departure from RealNVP).
    """

    def make_step(self, channels: int, size: int, index: int) -> Flow:
        cfg = self.config
        mask = "checkerboard" if index < (cfg.depth + 1) // 2 else "channel"
        coupling = MaskedCoupling(channels, size, cfg.width, mask, index % 2, cfg.actnorm, cfg.fused,
                                  cfg.channels_last, cfg.precision)
        return FlowSequence(([ActNorm(channels)] if cfg.actnorm else []) + [coupling])
