"""Invertible layers of Glow (paper Sec. 3, Table 1) and RealNVP (Dinh et al. 2017).

Direction is the paper's: ``forward`` maps data to latent and returns ``(y, logdet)`` with ``logdet`` of shape
``(B,)``; ``reverse`` maps latent back to data.
"""
from __future__ import annotations

import contextlib
import math
import threading
import warnings

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

    def inverse_backward(self, y, g_y, g_logdet, need_x: bool = True):
        """Invertible backprop (``glowlib.revgrad``), layer by layer from the last."""
        from .revgrad import sequence_inverse_backward
        return sequence_inverse_backward(self, y, g_y, g_logdet, need_x)


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
        self._known_initialized = False

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)
        self._known_initialized = True

    def is_initialized(self) -> bool:
        """The ``initialized`` buffer as a bool; once True it is remembered, so training on a GPU does not wait
        for the device at every layer (``load_state_dict`` forgets it)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def needs_init(self) -> bool:
        """True when the next forward pass initialises the layer from its batch (training mode, not yet done)."""
        return self.training and not self.is_initialized()

    def _load_from_state_dict(self, *args, **kwargs):
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x):
        if self.needs_init():
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
            # ordinary tensors even when filled under inference_mode (sampling), so later uses may autograd
            with torch.inference_mode(False), torch.no_grad():
                self.value = compute()
            self.key = key
        return self.value


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

    def weight_logdet(self):
        """(W, log|det W|), the log-det per pixel cached in eval mode."""
        w = self.weight
        return w, self._forward_cache.get(self, [w], lambda: torch.linalg.slogdet(w)[1])

    def inverse_weight(self):
        return self._inverse_cache.get(self, [self.weight], lambda: torch.linalg.inv(self.weight))

    def forward(self, x):
        w, logabsdet = self.weight_logdet()
        y = F.conv2d(x, w[:, :, None, None])
        return y, x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * logabsdet)

    def reverse(self, y):
        return F.conv2d(y, self.inverse_weight()[:, :, None, None])


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

    def weight_logdet(self):
        """(W, log|det W| = Σ log|s|), W recomposed only when a parameter changed in eval mode."""
        return self._forward_cache.get(self, self._params(), self._compose), self.log_s.sum()

    def inverse_weight(self):
        return self._inverse_cache.get(self, self._params(), lambda: torch.linalg.inv(self._compose()))

    def forward(self, x):
        w, logabsdet = self.weight_logdet()
        y = F.conv2d(x, w[:, :, None, None])
        return y, x.new_ones(x.shape[0]) * (x.shape[2] * x.shape[3] * logabsdet)

    def reverse(self, y):
        return F.conv2d(y, self.inverse_weight()[:, :, None, None])


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


# ------------------------------------------------------------------ precision of the coupling networks
# GlowConfig.precision -> the dtype the coupling networks compute in; None: the flow's own (float32, or float64).
# Only the networks change: the 1x1 convs, ActNorms, the scale and shift as applied, the log-dets and the priors
# stay in the flow's dtype, since they decide exactness (invertibility and the value of log p).
NETWORK_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def network_dtype(precision: str) -> torch.dtype | None:
    """The compute dtype of a coupling network for ``GlowConfig.precision`` (None: the flow's own dtype)."""
    if precision not in NETWORK_DTYPES:
        raise ValueError(f"precision={precision!r} is not allowed; choose one of {tuple(NETWORK_DTYPES)}")
    return NETWORK_DTYPES[precision]


def bf16_support(device) -> tuple[bool, str]:
    """(fast, reason): whether bf16 convolutions have a hardware fast path on ``device`` (a torch.device or a
    string). CUDA: bf16 tensor cores (compute capability >= 8.0). CPU: AMX (amx_bf16, Sapphire Rapids and later)
    or AVX512-BF16 (avx512_bf16: Cooper Lake, Zen 4 and later), whose bf16 dot products oneDNN uses at twice the
    float32 rate (``results/bench/peak.json``, 2-core AMD EPYC with AVX512-BF16: 3x3 conv 474 vs 232 GFLOP/s);
    without either oneDNN emulates bf16 through float32 and is slower than plain float32 (an AVX2 EPYC: 22 vs 189
    GFLOP/s)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{torch.cuda.get_device_name(device)} has bf16 tensor cores"
        return False, (f"{torch.cuda.get_device_name(device)} has no bf16 tensor cores (compute capability "
                       f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))} < 8.0): bf16 would be "
                       f"emulated and slower")
    if device.type == "cpu":
        caps = dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {}
        if not caps:                                    # older torch: ask the kernel
            try:
                with open("/proc/cpuinfo") as f:
                    flags = f.read().split()
                caps = {"amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags}
            except OSError:
                pass
        if caps.get("amx_bf16", False):
            return True, "this CPU has AMX (amx_bf16)"
        if caps.get("avx512_bf16", False):
            return True, "this CPU has AVX512-BF16 (avx512_bf16; no AMX): bf16 dot products at twice float32's rate"
        return False, (f"this CPU has neither AMX nor AVX512-BF16 (capability "
                       f"{torch.backends.cpu.get_cpu_capability()}): bf16 would be emulated and slower")
    return False, f"bf16 speed on device type {device.type!r} is not known; it may be emulated"


_CHECKED_DEVICES: set[str] = set()


def warn_if_emulated(device) -> None:
    """Warn once per device type when bf16 has no fast path there (the results are still correct)."""
    device = torch.device(device)
    if device.type in _CHECKED_DEVICES:
        return
    _CHECKED_DEVICES.add(device.type)
    fast, reason = bf16_support(device)
    if not fast:
        warnings.warn(f"GlowConfig(precision='bf16'): {reason}. Results are correct; use precision='fp32' for "
                      f"speed.", RuntimeWarning, stacklevel=3)


def network_input(x: torch.Tensor, dtype: torch.dtype | None, memory_format=None) -> torch.Tensor:
    """x as a coupling network's input: cast to the network's compute ``dtype`` (None: kept) and laid out in
    ``memory_format`` (None: kept), in one copy. With this and ``network_output`` around it, any network made of
    layers that compute in their input's dtype (``Conv2d``, ``ConvActNorm``, ``ZeroConv2d``, ReLU) runs in bf16."""
    if dtype is not None and dtype != x.dtype:
        warn_if_emulated(x.device)
        return x.to(dtype, memory_format=torch.preserve_format if memory_format is None else memory_format)
    return x if memory_format is None else x.contiguous(memory_format=memory_format)


class _KeptInputs(threading.local):
    """The bf16 network inputs of one invertible forward pass (``revgrad``), by the module that computed them."""
    store: dict | None = None
    replay: bool = False


_KEPT = _KeptInputs()


@contextlib.contextmanager
def keeping_network_inputs(store: dict | None, replay: bool):
    """Within: ``kept_network_input`` files each low-precision network input in ``store`` (``replay=False``, the
    forward pass of invertible backprop) or hands back the one filed for the same module (``replay=True``, its
    backward pass). ``store=None`` does nothing."""
    saved = _KEPT.store, _KEPT.replay
    _KEPT.store, _KEPT.replay = store, replay
    try:
        yield
    finally:
        _KEPT.store, _KEPT.replay = saved


class _Replayed(torch.autograd.Function):
    """The network input filed in the forward pass, as the input computed from x: its value is the filed one,
    its gradient goes back to x as the cast's would (cast to x's dtype)."""

    @staticmethod
    def forward(ctx, x, kept):
        ctx.dtype = x.dtype
        return kept.view_as(kept)

    @staticmethod
    def backward(ctx, g):
        return g.to(ctx.dtype), None


def kept_network_input(module: nn.Module, x: torch.Tensor, dtype: torch.dtype | None,
                       memory_format=None) -> torch.Tensor:
    """``network_input``, made exact for invertible backprop in low precision.

    In bf16 the backward pass of invertible backprop rebuilds x with float32 round-off, and where x lies near a
    bf16 rounding boundary the rebuilt value rounds the other way: NN then sees another input than in the forward
    pass, the rebuilt activations drift (1.6% of their scale at 3x32x32, K=8, width 512) and the gradients with
    them. So the forward pass files the bf16 input (half the channels, 2 bytes each: far less than the network's
    activations that invertible backprop does not keep) and the backward pass reuses it (``revgrad``)."""
    store = _KEPT.store
    if store is None or dtype is None or dtype == x.dtype:
        return network_input(x, dtype, memory_format)
    if not _KEPT.replay:
        store[module] = network_input(x, dtype, memory_format).detach()
        return store[module]
    kept = store.get(module)
    return network_input(x, dtype, memory_format) if kept is None else _Replayed.apply(x, kept)


def network_output(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A network's output back in the flow's ``dtype`` and NCHW layout, before any sigmoid, scale or shift."""
    return _to_nchw(h).to(dtype)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` computed in the dtype of its input: the weights are cast to it (a no-op when they match), so
    a network fed bf16 runs in bf16 while its parameters, their gradients and the optimizer stay float32."""

    def forward(self, x):
        return self._conv_forward(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class ZeroConv2d(nn.Module):
    """3x3 conv initialised to zero, output scaled by exp(3·logs) (official code: ``conv2d_zeros``).

    Zero init makes every coupling start as the identity (Sec. 3.3).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(3 * self.logs)          # in the dtype of logs: the scale is applied at full
                                                                # precision even when the conv ran in bf16

    def folded(self, order: torch.Tensor | None = None):
        """Weight and bias of one conv equal to this layer, (W∗x + b)·e = (e·W)∗x + e·b with e = exp(3·logs),
        output channels optionally reordered by ``order``."""
        e = torch.exp(3 * self.logs).view(-1, 1, 1, 1)                 # (C_out, 1, 1, 1)
        w, b = self.conv.weight * e, self.conv.bias * e.view(-1)
        return (w, b) if order is None else (w[order], b[order])

    def conv_folded(self, x, weight_bias):
        w, b = weight_bias
        return F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=self.conv.padding)


class ConvActNorm(nn.Module):
    """Conv without bias followed by ActNorm, as the official code's ``conv2d`` (its log-det is not used).

    ``fused``: once ActNorm is initialised it is folded into the conv, (W∗x + b)·s = (s·W)∗x + s·b, which saves
    two passes over the widest activations of the model and the memory autograd would keep for them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, actnorm: bool = True,
                 fused: bool = True):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not actnorm)
        self.norm = ActNorm(out_channels) if actnorm else None
        self.fused = fused
        self._cache = _Cached()

    def _folded(self):
        s = torch.exp(self.norm.logs)                                   # (1, C_out, 1, 1)
        return self.conv.weight * s.view(-1, 1, 1, 1), (self.norm.bias * s).view(-1)

    def forward(self, x):
        if self.norm is None:
            return self.conv(x)
        if not self.fused or self.norm.needs_init():
            # ActNorm (and its data-dependent init) in its parameters' dtype, the result back in x's
            return self.norm(self.conv(x).to(self.norm.logs.dtype))[0].to(x.dtype)
        w, b = self._cache.get(self, [self.conv.weight, self.norm.bias, self.norm.logs], self._folded)
        return F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=self.conv.padding)


def coupling_network(in_channels: int, out_channels: int, width: int, actnorm: bool = True,
                     fused: bool = True) -> nn.Module:
    """NN() of the coupling layer (official ``f``): 3x3 conv → ReLU → 1x1 conv → ReLU → zero-init 3x3 conv."""
    return nn.Sequential(
        ConvActNorm(in_channels, width, 3, actnorm, fused), nn.ReLU(inplace=fused),
        ConvActNorm(width, width, 1, actnorm, fused), nn.ReLU(inplace=fused),
        ZeroConv2d(width, out_channels),
    )


class _FromChannelsLast(torch.autograd.Function):
    """An NHWC tensor made NCHW-contiguous, whose gradient goes back NHWC. Plain ``contiguous`` hands the NCHW
    gradient back as it is, and the convolution and ReLU backward that receive it then run on mixed layouts, tens
    of times slower than on one. (NHWC is made by permuting, which also works under vmap, unlike memory_format.)"""

    @staticmethod
    def forward(ctx, x):
        return x.contiguous()

    @staticmethod
    def backward(ctx, g):
        return g.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def _to_nchw(x):
    """x as an NCHW-contiguous tensor; from channels-last, with the gradient returned channels-last."""
    if x.is_contiguous():
        return x
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return _FromChannelsLast.apply(x)
    return x.contiguous()


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
        self._zero_cache = _Cached()

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
        """Invertible backprop (``glowlib.revgrad``) with NN run once: xb = y_b exactly, so NN(xb) computed with
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
