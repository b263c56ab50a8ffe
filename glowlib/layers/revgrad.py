"""Invertible backpropagation: training memory that does not grow with the depth K (the openai post's "memory
constant instead of linear in depth" for reversible networks; RevNet, Gomez et al. 2017).

Plain autograd keeps every intermediate activation of every flow step until the backward pass. A flow step is
invertible, so its input can be recomputed from its output instead: ``invertible_forward(flows, x)`` runs a
``FlowSequence`` without recording a graph and keeps only its input and output. The backward pass walks the
steps from last to first; for each it rebuilds the step's input from its output, re-runs the step with autograd
on, and backpropagates through that one step, so only one step's activations are alive at any time.

A coupling layer's conditioning half passes through unchanged (y_b = x_b), so the coupling network's output
NN(x_b) is computed once, with autograd, from the exact y_b and serves both the inverse (x_a from y_a) and the
gradient (``Coupling.inverse_backward``, RevNet's trick). The price of the saved memory is then one extra
network evaluation per step (the forward pass without a graph), instead of two.

The rebuilt inputs carry floating-point round-off, so the gradients match plain autograd's to that accuracy, not
bit for bit (``tests/test_speed.py`` checks 1e-5 in float64). The input of each level is kept, so the drift of the
rebuilt one is measured (``reconstruction_error`` on the ``FlowSequence``) and a warning is raised when it is
large (inside the training loop, read with its statistics: ``deferred_drift_checks``). Only first derivatives are supported (the backward pass is not itself differentiable).

With bf16 coupling networks (``precision="bf16"``) a rebuilt input that lies near a bf16 rounding boundary would
round the other way than in the forward pass, and NN would see another input: on the 3x32x32, width-512 benchmark
model the rebuilt level inputs drifted by 1.6% of their scale. So the forward pass also files each network's bf16
input (half a step's channels at 2 bytes: small beside the network activations not kept) and the backward pass
reuses it (``precision.kept_network_input``); the rebuilding is then as accurate as in float32.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .base import FlowSequence
from .precision import keeping_network_inputs

DRIFT_WARNING = 1e-2      # relative to max|x|; float32 round-off stays near 1e-6 (bench/grad_accuracy.py)


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def recompute_backward(layer, y, g_y, g_logdet, need_x: bool = True):
    """The generic step of invertible backprop for any ``Flow``: x = layer.reverse(y), then backpropagate
    (g_y, g_logdet) through a fresh ``layer(x)``. Returns (x, ∂L/∂x or None, {parameter: gradient})."""
    with torch.no_grad():
        x = layer.reverse(y)
    return x, *grad_of(layer, x, g_y, g_logdet, need_x)


def grad_of(forward, x, g_y, g_logdet, need_x: bool, params=None):
    """(∂L/∂x or None, {parameter: gradient}) of L = <g_y, y> + <g_logdet, logdet> with (y, logdet) = forward(x)."""
    params = trainable(forward) if params is None else params
    x = x.detach().requires_grad_(need_x)
    inputs = ([x] if need_x else []) + params
    if not inputs:
        return None, {}
    with torch.enable_grad():
        y, logdet = forward(x)
        outputs, grads_out = [y], [g_y]
        if logdet.requires_grad:
            outputs.append(logdet)
            grads_out.append(g_logdet)
        grads = torch.autograd.grad(outputs, inputs, grads_out, allow_unused=True)
    g_x, grads = (grads[0], grads[1:]) if need_x else (None, grads)
    return g_x, dict(zip(params, grads))


def backprop_through(layer, y, g_y, g_logdet, need_x: bool = True):
    """Rebuild ``layer``'s input from its output y and backpropagate through it. Layers that can do better than
    reverse-then-recompute define ``inverse_backward`` with this signature (couplings, fused flow steps)."""
    custom = getattr(layer, "inverse_backward", None)
    if custom is not None:
        return custom(y, g_y, g_logdet, need_x)
    if isinstance(layer, FlowSequence):        # a composition: its layers one by one, each with its own method
        return sequence_inverse_backward(layer, y, g_y, g_logdet, need_x)
    return recompute_backward(layer, y, g_y, g_logdet, need_x)


def sequence_inverse_backward(flows, y, g_y, g_logdet, need_x: bool = True):
    """``backprop_through`` a ``FlowSequence``, layer by layer from the last; gradients of all its parameters."""
    grads = {}
    layers = list(flows.flows)
    for k in range(len(layers) - 1, -1, -1):
        y, g_y, g = backprop_through(layers[k], y, g_y, g_logdet, need_x or k > 0)
        grads.update(g)
    return y, g_y, grads


class _InvertibleSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, flows, *params):
        ctx.flows = flows
        ctx.kept = {}            # bf16 networks' inputs, filed here and reused backward (kept_network_input)
        with torch.no_grad(), keeping_network_inputs(ctx.kept, replay=False):
            y, logdet = flows(x)
        ctx.save_for_backward(x, y)                  # the level's input and output: no more as K grows
        return y, logdet

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_y, g_logdet):
        x_in, y = ctx.saved_tensors
        flows = ctx.flows
        with keeping_network_inputs(ctx.kept, replay=True):
            x, g_x, grads = sequence_inverse_backward(flows, y, g_y, g_logdet, ctx.needs_input_grad[0])
        ctx.kept = None
        _record_drift(flows, (x - x_in).abs().max() / x_in.abs().max().clamp_min(1e-12))
        return g_x, None, *(grads.get(p) for p in trainable(flows))


_defer = {"on": False}


class deferred_drift_checks:
    """Inside it, the drift of the rebuilt inputs is kept on the device (``FlowSequence.drift_since_check``, the
    largest since the last check) instead of read at once: reading it makes the host wait for the GPU at every
    level of every step. The training loop enters it for its steps and calls :func:`check_drift` where it reads
    its statistics anyway."""

    def __enter__(self):
        self.before, _defer["on"] = _defer["on"], True

    def __exit__(self, *exc):
        _defer["on"] = self.before


def _record_drift(flows, err) -> None:
    """Keep the error of the rebuilt level input relative to the input's scale on ``flows.reconstruction_error``
    and warn when it is large: the gradients are then inaccurate (an ill-conditioned step, e.g. coupling scales
    near 0). Train with ``inv_backprop=False`` if this persists. Deferred (:class:`deferred_drift_checks`): the
    largest since the last :func:`check_drift`, kept on the device."""
    flows.reconstruction_error = err
    if _defer["on"]:
        previous = getattr(flows, "drift_since_check", None)
        flows.drift_since_check = err if previous is None else torch.maximum(previous, err)   # NaN stays NaN
        return
    _warn_if_drifted(flows, err)


def _warn_if_drifted(flows, err) -> None:
    if not bool(err <= DRIFT_WARNING):           # also catches NaN
        warnings.warn(f"invertible backprop: the input rebuilt through {len(flows.flows)} inverse steps is off by "
                      f"{float(err):.3g} relative to its scale; the gradients are inaccurate. Train with "
                      f"GlowConfig(inv_backprop=False) if this persists.", RuntimeWarning, stacklevel=2)


def check_drift(module: nn.Module) -> None:
    """Warn for each level of ``module`` whose rebuilt input drifted too far since the last check (deferred by
    :class:`deferred_drift_checks`): one read of all the levels' errors, then they start afresh."""
    kept = [m for m in module.modules() if getattr(m, "drift_since_check", None) is not None]
    if not kept:
        return
    errors = torch.stack([m.drift_since_check.float() for m in kept]).tolist()
    for m, err in zip(kept, errors):
        m.drift_since_check = None
        _warn_if_drifted(m, torch.tensor(err))


def invertible_forward(flows, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``flows(x)`` -> (y, logdet), differentiable with respect to x and every trainable parameter of ``flows``,
    storing only x and y: the backward pass rebuilds each step's input from its output (see the module docstring).

    ``flows`` is a ``FlowSequence`` whose layers are deterministic, exactly invertible and independent across the
    batch. Layers with a pending data-dependent initialisation (ActNorm) must be initialised first
    (``Glow.initialize``); ``Level`` falls back to plain autograd until they are."""
    params = trainable(flows)
    if not torch.is_grad_enabled() or not (x.requires_grad or params):
        return flows(x)
    return _InvertibleSequence.apply(x, flows, *params)
