"""A plain, unoptimised Glow: the baseline that ``bench/`` measures glowlib against.

Written in the style of rosinality/glow-pytorch ``model.py`` (the PyTorch port most people start from) but with
exactly glowlib's architecture and arithmetic, so that a speed or memory ratio compares implementations and not
models:

- ActNorm with log-scale ``logs`` and data-dependent init, y = (x + b)·exp(logs);
- InvConv2dLU recomposing W = P·L·(U + diag(sign(s)·exp(log|s|))) in every call and inverting it with
  ``torch.inverse`` in every reverse call;
- affine (or additive) coupling: NN = conv3x3 → ActNorm → ReLU → conv1x1 → ActNorm → ReLU → zero conv scaled by
  exp(3·logs); shift/scale interleaved in the NN output, scale = sigmoid(h + 2), the first half transformed;
- squeeze, K steps, split with a learned prior (a zero conv on the kept half, mean/log-std interleaved) that is
  computed whenever a latent is needed, and a learned top prior.

Nothing is cached, fused or recomputed: plain autograd stores every activation. ``load_from_glowlib(model)``
builds one with a glowlib model's weights; ``tests/test_speed.py`` checks that both compute the same log p(x).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


class ActNorm(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.loc.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x):
        if self.training and not self.initialized:
            self.initialize(x)
        _, _, height, width = x.shape
        logdet = height * width * torch.sum(self.logs)
        return (x + self.loc) * torch.exp(self.logs), logdet

    def reverse(self, y):
        return y * torch.exp(-self.logs) - self.loc


class InvConv2d(nn.Module):
    def __init__(self, channels):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        self.weight = nn.Parameter(q)

    def forward(self, x):
        _, _, height, width = x.shape
        out = F.conv2d(x, self.weight.unsqueeze(2).unsqueeze(3))
        logdet = height * width * torch.linalg.slogdet(self.weight)[1]
        return out, logdet

    def reverse(self, y):
        return F.conv2d(y, self.weight.inverse().unsqueeze(2).unsqueeze(3))


class InvConv2dLU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        w_p, w_l, w_u = torch.linalg.lu(q)
        w_s = torch.diag(w_u)
        self.register_buffer("w_p", w_p)
        self.register_buffer("u_mask", torch.triu(torch.ones(channels, channels), 1))
        self.register_buffer("l_mask", self.u_mask.T.clone())
        self.register_buffer("s_sign", torch.sign(w_s))
        self.register_buffer("l_eye", torch.eye(channels))
        self.w_l = nn.Parameter(w_l)
        self.w_s = nn.Parameter(torch.log(torch.abs(w_s)))
        self.w_u = nn.Parameter(torch.triu(w_u, 1))

    def calc_weight(self):
        weight = self.w_p @ (self.w_l * self.l_mask + self.l_eye) @ (
            self.w_u * self.u_mask + torch.diag(self.s_sign * torch.exp(self.w_s)))
        return weight.unsqueeze(2).unsqueeze(3)

    def forward(self, x):
        _, _, height, width = x.shape
        out = F.conv2d(x, self.calc_weight())
        return out, height * width * torch.sum(self.w_s)

    def reverse(self, y):
        weight = self.calc_weight()
        return F.conv2d(y, weight.squeeze().inverse().unsqueeze(2).unsqueeze(3))


class ZeroConv2d(nn.Module):
    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv = nn.Conv2d(in_channel, out_channel, 3, padding=1)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.scale = nn.Parameter(torch.zeros(1, out_channel, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(self.scale * 3)


class ConvActNorm(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channel, out_channel, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = ActNorm(out_channel)

    def forward(self, x):
        return self.norm(self.conv(x))[0]


class AffineCoupling(nn.Module):
    def __init__(self, channels, filter_size=512, affine=True):
        super().__init__()
        self.affine = affine
        self.n_a = channels // 2
        self.net = nn.Sequential(
            ConvActNorm(channels - self.n_a, filter_size, 3), nn.ReLU(),
            ConvActNorm(filter_size, filter_size, 1), nn.ReLU(),
            ZeroConv2d(filter_size, self.n_a * 2 if affine else self.n_a),
        )

    def forward(self, x):
        in_a, in_b = x[:, :self.n_a], x[:, self.n_a:]
        h = self.net(in_b)
        if self.affine:
            t, log_s = h[:, 0::2], h[:, 1::2]
            s = torch.sigmoid(log_s + 2)
            out_a = (in_a + t) * s
            logdet = torch.sum(torch.log(s).view(x.shape[0], -1), 1)
        else:
            out_a = in_a + h
            logdet = 0
        return torch.cat([out_a, in_b], 1), logdet

    def reverse(self, y):
        out_a, in_b = y[:, :self.n_a], y[:, self.n_a:]
        h = self.net(in_b)
        if self.affine:
            t, log_s = h[:, 0::2], h[:, 1::2]
            s = torch.sigmoid(log_s + 2)
            in_a = out_a / s - t
        else:
            in_a = out_a - h
        return torch.cat([in_a, in_b], 1)


class FlowStep(nn.Module):
    def __init__(self, channels, filter_size, affine=True, conv_lu=True):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv2dLU(channels) if conv_lu else InvConv2d(channels)
        self.coupling = AffineCoupling(channels, filter_size, affine)

    def forward(self, x):
        out, logdet = self.actnorm(x)
        out, det1 = self.invconv(out)
        out, det2 = self.coupling(out)
        return out, logdet + det1 + det2

    def reverse(self, y):
        return self.actnorm.reverse(self.invconv.reverse(self.coupling.reverse(y)))


def gaussian_log_p(x, mean, log_sd):
    return -0.5 * LOG_2PI - log_sd - 0.5 * (x - mean) ** 2 / torch.exp(2 * log_sd)


class Block(nn.Module):
    def __init__(self, in_channel, n_flow, filter_size, split=True, affine=True, conv_lu=True):
        super().__init__()
        squeeze_dim = in_channel * 4
        self.flows = nn.ModuleList([FlowStep(squeeze_dim, filter_size, affine, conv_lu) for _ in range(n_flow)])
        self.split = split
        self.n_keep = squeeze_dim // 2 if split else 0
        if split:
            self.prior = ZeroConv2d(self.n_keep, (squeeze_dim - self.n_keep) * 2)

    @staticmethod
    def squeeze(x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.contiguous().view(b, c * 4, h // 2, w // 2)

    @staticmethod
    def unsqueeze(y):
        b, c, h, w = y.shape
        y = y.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.contiguous().view(b, c // 4, h * 2, w * 2)

    def forward(self, x):
        out = self.squeeze(x)
        logdet = 0
        for flow in self.flows:
            out, det = flow(out)
            logdet = logdet + det
        if self.split:
            out, z_new = out[:, :self.n_keep], out[:, self.n_keep:]
            prior = self.prior(out)
            mean, log_sd = prior[:, 0::2], prior[:, 1::2]
            log_p = gaussian_log_p(z_new, mean, log_sd).view(x.shape[0], -1).sum(1)
        else:
            out, z_new, log_p = None, out, 0
        return out, logdet, log_p, z_new

    def reverse(self, h, eps, temperature):
        """h: the kept half from above (None at the top); eps: a standard normal draw for this level's latent."""
        if self.split:
            prior = self.prior(h)
            mean, log_sd = prior[:, 0::2], prior[:, 1::2]
            z = mean + temperature * torch.exp(log_sd) * eps
            x = torch.cat([h, z], 1)
        else:
            x = eps
        for flow in self.flows[::-1]:
            x = flow.reverse(x)
        return self.unsqueeze(x)


class Glow(nn.Module):
    """Same constructor arguments as glowlib's ``GlowConfig`` (the fields it supports)."""

    def __init__(self, in_channels=3, image_size=32, n_levels=3, depth=32, width=512, affine=True, conv_lu=True):
        super().__init__()
        self.blocks = nn.ModuleList()
        c, size = in_channels, image_size
        for i in range(n_levels):
            split = i < n_levels - 1
            self.blocks.append(Block(c, depth, width, split, affine, conv_lu))
            c, size = (2 * c if split else 4 * c), size // 2
        self.top = nn.Parameter(torch.zeros(1, 2 * c, size, size))

    def log_prob(self, x):
        log_p_sum, logdet, out = 0, 0, x
        for block in self.blocks:
            out, det, log_p, z = block(out)
            logdet = logdet + det
            log_p_sum = log_p_sum + log_p
        top = self.top.expand(x.shape[0], -1, -1, -1)
        log_p_sum = log_p_sum + gaussian_log_p(z, top[:, 0::2], top[:, 1::2]).view(x.shape[0], -1).sum(1)
        return log_p_sum + logdet

    forward = log_prob

    @torch.no_grad()
    def initialize(self, x):
        self.train()
        self.log_prob(x)

    @torch.no_grad()
    def sample(self, n, temperature=0.7, generator=None):
        top = self.top.expand(n, -1, -1, -1)
        eps = torch.randn(top[:, 0::2].shape, generator=generator, dtype=top.dtype)
        x = self.blocks[-1].reverse(None, top[:, 0::2] + temperature * torch.exp(top[:, 1::2]) * eps, temperature)
        for block in reversed(self.blocks[:-1]):
            c = x.shape[1]
            eps = torch.randn(x.shape[0], c, *x.shape[2:], generator=generator, dtype=x.dtype)
            x = block.reverse(x, eps, temperature)
        return x

    def encode(self, x):
        zs, out = [], x
        for block in self.blocks:
            out, _, _, z = block(out)
            zs.append(z)
        return zs


def load_from_glowlib(model) -> Glow:
    """A reference Glow with the architecture and the weights (and ActNorm state) of a glowlib ``Glow``."""
    cfg = model.config
    if cfg.permutation != "conv1x1" or not cfg.actnorm or not cfg.learned_prior or cfg.n_classes:
        raise ValueError("the reference implements Glow with conv1x1, ActNorm, learned priors, no labels; got "
                         f"{cfg}")
    ref = Glow(cfg.in_channels, cfg.image_size, cfg.n_levels, cfg.depth, cfg.width, cfg.coupling == "affine",
               cfg.lu)
    ref = ref.to(dtype=next(model.parameters()).dtype, device=next(model.parameters()).device)
    with torch.no_grad():
        for block, level in zip(ref.blocks, model.levels):
            for ours, theirs in zip(level.steps.flows, block.flows):
                actnorm, conv, coupling = ours.flows
                _copy_actnorm(theirs.actnorm, actnorm)
                if cfg.lu:
                    c = theirs.invconv
                    c.w_p.copy_(conv.p)
                    c.s_sign.copy_(conv.sign_s)
                    c.w_l.copy_(conv.lower)
                    c.w_u.copy_(conv.upper)
                    c.w_s.copy_(conv.log_s)
                else:
                    theirs.invconv.weight.copy_(conv.weight)
                for a, b in ((0, 0), (2, 2)):
                    theirs.coupling.net[a].conv.weight.copy_(coupling.net[b].conv.weight)
                    _copy_actnorm(theirs.coupling.net[a].norm, coupling.net[b].norm)
                _copy_zero(theirs.coupling.net[4], coupling.net[4])
            if level.split:
                _copy_zero(block.prior, level.prior)
        ref.top.copy_(model.top)
    return ref.train(model.training)


def _copy_actnorm(theirs, ours):
    theirs.loc.copy_(ours.bias)
    theirs.logs.copy_(ours.logs)
    theirs.initialized.copy_(ours.initialized)


def _copy_zero(theirs, ours):
    theirs.conv.weight.copy_(ours.conv.weight)
    theirs.conv.bias.copy_(ours.conv.bias)
    theirs.scale.copy_(ours.logs)
