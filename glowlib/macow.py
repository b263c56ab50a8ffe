"""MaCow: Masked Convolutional Generative Flow (Ma, Kong, Zhang & Hovy, NeurIPS 2019), on glowlib's layers.

Two changes to Glow (PAPER.md, "MaCow"):

- Masked convolutional flows: y = s(x_<) ⊙ x + b(x_<), an autoregressive affine map whose scale and
  shift at a pixel come from a masked (shifted) convolution over a small window of the rows above it (top-down),
  below it, or of the columns left / right of it. Forward is one parallel pass; the inverse is one pass per row
  (or column), O(H) instead of the O(H·W) of a fully autoregressive flow, each pass on a window of constant size.
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

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import COUPLINGS, PRECISIONS, MultiScaleConfig, check_choice, check_range
from .flows import (ActNorm, Conv2d, Coupling, Flow, FlowSequence, InvConv1x1LU, Squeeze, ZeroConv2d,
                    gaussian_log_prob, gaussian_sample, network_dtype, network_input, network_output)
from .model import MultiScaleFlow

ORIENTATIONS = ("top-down", "bottom-up", "left-right", "right-left")
MULTISCALES = ("fine", "glow")


@dataclass(frozen=True)
class MaCowConfig(MultiScaleConfig):
    """Architecture of a MaCow model. K = ``depth`` MaCow steps per level, L = ``n_levels`` levels.

    Defaults follow the official CIFAR-10 config (``cifar10-macow.json``) where it applies: 2 groups of 16 steps
    per internal level ("num_steps": [.., [16, 16], ..], "factors": [4, 4]), 256 hidden channels.
    """

    in_channels: int = 3
    image_size: int = 32
    n_levels: int = 3            # L; the official code adds an unsqueezed bottom block, not built here
    depth: int = 32              # K
    width: int = 256             # hidden channels of the Glow step's coupling network
    coupling: str = "affine"
    n_units: int = 2             # MaCow units per step, each 4 MCFs: 8 per step, as official MaCowStep's 4 × 2
    mcf_width: int | None = None  # hidden channels of an MCF; None: min(2·channels, 512), official conv.py
    kernel_height: int = 2       # rows (top-down) a masked conv sees above a pixel
    kernel_width: int = 3        # columns it sees, centred on the pixel's own; odd
    multiscale: str = "fine"     # "glow": factor out half the channels at the end of each level
    fine_splits: int = 2         # "fine": that half leaves in this many parts (official factor 4 = 2 parts of 1/4)
    learn_top: bool = True
    learned_prior: bool = True   # split-off parts get a Gaussian predicted from the kept channels
    n_bits: int = 8
    # dtype of the networks (the MCFs' and the couplings'), as GlowConfig.precision: the scales and shifts as
    # applied, ActNorm, the 1x1 conv, the log-dets and the priors stay float32
    precision: str = "fp32"
    n_classes = 0                # not a field: MaCow has no class-conditional prior (callers read it as Glow's)

    def __post_init__(self):
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("in_channels", "image_size", "n_levels", "depth", "width", "n_units", "kernel_height",
                     "kernel_width", "fine_splits"):
            check_range(name, getattr(self, name), 1)
        check_range("n_bits", self.n_bits, 1, 8)
        if self.mcf_width is not None:
            check_range("mcf_width", self.mcf_width, 1)
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("multiscale", self.multiscale, MULTISCALES)
        for flag in ("learn_top", "learned_prior"):
            check_range(flag, getattr(self, flag), kind=bool)
        if self.kernel_width % 2 == 0:
            raise ValueError(f"kernel_width={self.kernel_width} is not allowed; choose an odd width (1, 3, 5, ...) "
                             f"so that the window is centred on the pixel's own column")
        self.check_levels()
        if self.multiscale == "fine" and self.n_levels > 1:
            c = 4 * self.in_channels         # channels of the first level, the binding divisibility constraint
            if c % (2 * self.fine_splits):
                allowed = [m for m in range(1, c // 2 + 1) if c % (2 * m) == 0]
                raise ValueError(f"fine_splits={self.fine_splits} is not allowed for in_channels={self.in_channels}: "
                                 f"half of the first level's {c} channels must split into equal parts; "
                                 f"choose one of {allowed}")
            if self.depth < self.fine_splits:
                raise ValueError(f"fine_splits={self.fine_splits} needs depth >= {self.fine_splits} (one group of "
                                 f"steps before each split); depth={self.depth}")

    def split_sizes(self, channels: int, last: bool) -> list[int]:
        """Channels factored out after each group of steps of a level with ``channels`` (after its squeeze)."""
        if last:
            return [0]
        if self.multiscale == "glow":
            return [channels - channels // 2]
        return [channels // (2 * self.fine_splits)] * self.fine_splits

    def replace(self, **changes) -> "MaCowConfig":
        return dataclasses.replace(self, **changes)


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
