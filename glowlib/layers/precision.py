"""Precision of the coupling networks, and the one protocol a layer with a network follows (bf16 and invertible
backprop).

``GlowConfig.precision`` (and ``MaCowConfig.precision``) picks the dtype the networks compute in
(``NETWORK_DTYPES``; None: the flow's own, float32 or float64). Only the networks change: the 1x1 convs,
ActNorms, the scale and shift as applied, the log-dets and the priors stay in the flow's dtype, since they decide
exactness (invertibility and the value of log p).

A layer whose scale and shift come from a network NN (``Coupling``, ``MaskedCoupling``, MaCow's
``MaskedConvFlow``) does three things:

1. ``self.net_dtype = network_dtype(precision)`` when it is built.
2. It feeds NN through ``kept_network_input(self, x_nn, self.net_dtype, memory_format)``, never a cast of its
   own. Outside invertible backprop this is ``network_input``: one copy that casts to NN's dtype and lays the
   tensor out NHWC if asked. Inside it (``revgrad.invertible_forward``) the forward pass files the low-precision
   input under the layer, and the backward pass hands the filed one back: the rebuilt x carries float32
   round-off, and near a bf16 rounding boundary a fresh cast would round the other way, so NN would see another
   input than the forward pass saw (the rebuilt level inputs of a 3x32x32, K=8, width-512 model drifted by 1.6%
   of their scale). ``network_input`` directly is enough only for a layer that never runs under invertible
   backprop: ``MaskedConvFlow``, whose inverse calls NN once per row on other windows than the forward pass.
3. It passes NN's output through ``network_output(h, x.dtype)`` before any sigmoid, scale or shift, so the
   affine map and its log-det are formed in the flow's dtype (and NCHW layout).

NN itself is made of layers that compute in their input's dtype (``networks.Conv2d``, ``ZeroConv2d``,
``ConvActNorm``, ReLU), so the cast at its input is all that runs it in bf16; its parameters, their gradients and
the optimizer stay float32. For invertible backprop the layer also defines
``inverse_backward(y, g_y, g_logdet, need_x) -> (x, dL/dx, {param: grad})``: NN's input passes through the layer
unchanged, so one autograd evaluation of NN on the exact y gives both the inverse and the gradients
(``Coupling.inverse_backward``); a layer without one is reversed and recomputed (``revgrad.recompute_backward``).
``bf16_support`` says whether a device has a bf16 fast path; ``warn_if_emulated`` warns once where it has not.
"""
from __future__ import annotations

import contextlib
import threading
import warnings

import torch
from torch import nn


from ..bf16 import bf16_support  # noqa: F401  (re-exported: layers.bf16_support)


NETWORK_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def network_dtype(precision: str) -> torch.dtype | None:
    """The compute dtype of a coupling network for ``GlowConfig.precision`` (None: the flow's own dtype)."""
    if precision not in NETWORK_DTYPES:
        raise ValueError(f"precision={precision!r} is not allowed; choose one of {tuple(NETWORK_DTYPES)}")
    return NETWORK_DTYPES[precision]


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


def network_output(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A network's output back in the flow's ``dtype`` and NCHW layout, before any sigmoid, scale or shift."""
    return _to_nchw(h).to(dtype)
