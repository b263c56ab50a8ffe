"""The base of every invertible layer, their composition, and a small cache the layers share.

Direction is the paper's (Glow, Kingma & Dhariwal 2018, Sec. 3): ``forward`` maps data to latent and returns
``(y, logdet)`` with ``logdet`` of shape ``(B,)``; ``reverse`` maps latent back to data.
"""
from __future__ import annotations

import torch
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


class Cached:
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
            # ordinary tensors even when filled under inference_mode (sampling), so later uses may autograd
            with torch.inference_mode(False), torch.no_grad():
                self.value = compute()
            self.key = key
        return self.value
