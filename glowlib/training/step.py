"""The machinery of one training step that never waits for the device.

A GPU runs a step's kernels in the order the host queues them; whenever the host reads a value back (``.item()``,
``bool(tensor)``, ``.cpu()``, a blocking copy from pageable memory) it waits until every queued kernel has run, and
the GPU then idles while the host queues the next ones. A Glow step queues some 19,000 small kernels, so the step
is only as fast as the host can queue them if it never waits. Everything here keeps that rule:

- ``log_likelihood``: log p(x) as ``MultiScaleFlow.log_prob`` computes it, without the model's input checks, which
  read the batch back to the host (``bool`` of a device tensor); a training batch is finite by construction (uint8
  images through ``to_float`` and uniform or learned noise in the unit bin).
- ``FlatGradients``: every parameter's gradient is a view of one buffer per (device, dtype), so the global norm,
  the clipping and the zeroing of a non-finite step's gradient are one operation each instead of one per tensor.
- ``StepGuard``: the optimizer step, undone on the device when the step was not finite: the parameters and the
  optimizer's state are copied before the step (multi-tensor copies) and put back, exactly, with ``ok`` as a
  device-side 0/1 weight; the gradient was zeroed first, so that every value involved is finite.
- ``Polyak``: the averaged weights, updated with multi-tensor operations, by a weight that is 0 on a skipped step.
- ``device.to_device``: a host batch to the device from pinned memory without blocking.
- ``Record``: each step's loss, gradient norm, bits/dim and finiteness, kept on the device until the loop reads them
  (every ``STATS_EVERY`` steps and at every evaluation and checkpoint: one wait for many steps).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import gaussian_log_prob

# steps between two reads of the per-step statistics (one wait on the device each); evaluations and checkpoints
# read them too
STATS_EVERY = 100
RECORD_FIELDS = ("loss", "grad_norm", "bpd", "finite")
# which part of the step runs: "objective" during the loss's forward and backward pass (what train.compile compiles),
# "step" otherwise; read by glowlib.step_count's counter to tell the operations a CUDA graph would launch as one
PHASE = {"name": "step"}


def log_likelihood(model, x: torch.Tensor, y=None, latents: bool = False):
    """log p(x) in nats, (B,), of a multi-scale flow (Glow, RealNVP, MaCow): the sum that ``MultiScaleFlow._encode``
    and ``log_prob`` compute, in the same order (so the same numbers, bit for bit; tests/test_step_ops.py checks),
    without their input checks (see the module docstring). ``latents``: also return the latents."""
    logdet, log_pz, h, zs = x.new_zeros(x.shape[0]), x.new_zeros(x.shape[0]), x, []
    for level in model.levels:
        h, z, ld, lp = level.encode_with_prior(h, True)
        logdet, log_pz = logdet + ld, log_pz + lp
        zs.append(z)
    log_pz = log_pz + gaussian_log_prob(zs[-1], *model.top_prior(x.shape[0], y))
    log_px = log_pz + logdet
    return (log_px, zs) if latents else log_px


class Likelihood(nn.Module):
    """What the loss of an unconditional run calls: log p(x) of the model (uniform noise added by the loop), or,
    with a learned dequantiser q, the ELBO's integrand log p(x + u/2^n) − log q(u | x) for the base noise given
    (as ``models.dequantization.log_weight`` computes it, without ``check_discrete``'s reads of the batch). One
    module, so that DistributedDataParallel synchronises the gradients of both."""

    def __init__(self, model: nn.Module, dequantizer: nn.Module | None, n_bits: int):
        super().__init__()
        self.model, self.dequantizer, self.n_bits = model, dequantizer, n_bits

    def forward(self, x, y=None, noise=None):
        if self.dequantizer is None:
            return log_likelihood(self.model, x, y)
        u, log_q = self.dequantizer.transform(noise, x)
        return log_likelihood(self.model, x + u / 2 ** self.n_bits, y) - log_q


class FlatGradients:
    """The gradients of ``params`` as views of one flat buffer per (device, dtype); autograd accumulates into an
    existing gradient in place, so the views stay the gradients (``intact`` checks, on the host)."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = list(params)
        groups: dict = {}
        for p in self.params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        self.buffers = []
        for (device, dtype), ps in groups.items():
            flat = torch.zeros(sum(p.numel() for p in ps), device=device, dtype=dtype)
            offset = 0
            for p in ps:
                p.grad = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
            self.buffers.append(flat)
        self.views = [p.grad for p in self.params]

    def zero(self) -> None:
        for flat in self.buffers:
            flat.zero_()

    def norm(self) -> torch.Tensor:
        """The global 2-norm of every gradient (float32, on the first buffer's device)."""
        norms = [torch.linalg.vector_norm(flat, dtype=torch.float32) for flat in self.buffers]
        return norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))

    def scale(self, factor: torch.Tensor) -> None:
        for flat in self.buffers:
            flat.mul_(factor.to(flat.dtype))

    def zero_unless(self, ok: torch.Tensor) -> None:
        """Zero every gradient where ``ok`` (a 0-dim bool on the device) is False; NaN and inf included."""
        for flat in self.buffers:
            flat.masked_fill_(~ok, 0)

    def intact(self) -> bool:
        """Whether every parameter's gradient is still its view (a host-side check of pointers: no wait)."""
        return all(p.grad is not None and p.grad.data_ptr() == v.data_ptr() for p, v in zip(self.params, self.views))


class StepGuard:
    """``optimizer.step()``, undone on the device when ``ok`` is False (module docstring). The copies cost one read
    and write of the parameters and optimizer state per step (a few ms on a GPU for 44M parameters), no wait."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]):
        self.optimizer, self.params = optimizer, list(params)
        self._key, self._live, self._saved = None, [], []

    def _state(self) -> list[torch.Tensor]:
        state = self.optimizer.state
        return [t for p in self.params for t in state[p].values() if torch.is_tensor(t)] if state else []

    def step(self, ok: torch.Tensor) -> None:
        state = self.optimizer.state
        key = (id(state), len(state))               # a loaded optimizer has a new state; the first step creates it
        if key != self._key:
            self._live = [p.detach() for p in self.params] + self._state()
            self._saved = [torch.empty_like(t) for t in self._live]
            self._key = key
        fresh = len(state) == 0                     # no state yet: its values before the step are all zero
        keep = ok.to(torch.float32)
        with torch.no_grad():
            torch._foreach_copy_(self._saved, self._live)
            self.optimizer.step()
            torch._foreach_mul_(self._live, keep)    # x·1 + y·0 = x and x·0 + y·1 = y exactly, x and y finite
            torch._foreach_add_(self._live, torch._foreach_mul(self._saved, 1 - keep))
            if fresh:
                torch._foreach_mul_(self._state(), keep)


class Polyak:
    """The Polyak (exponential moving) average of each live module's parameters in its ``ema`` copy, with the
    buffers copied; ``pairs`` are (ema, live) modules."""

    def __init__(self, pairs):
        pairs = [(ema, live) for ema, live in pairs if ema is not None]
        self.ema_params = [p.detach() for ema, _ in pairs for p in ema.parameters()]
        self.live_params = [p.detach() for _, live in pairs for p in live.parameters()]
        self.ema_buffers = [b for ema, _ in pairs for b in ema.buffers()]
        self.live_buffers = [b for _, live in pairs for b in live.buffers()]

    def update(self, decay: float, ok: torch.Tensor | None = None) -> None:
        """ema += (1 − decay)·(live − ema), by a weight of 0 where ``ok`` (0-dim, on the device) is False."""
        with torch.no_grad():
            if ok is None:
                torch._foreach_lerp_(self.ema_params, self.live_params, 1 - decay)
            else:
                step = torch._foreach_sub(self.live_params, self.ema_params)
                torch._foreach_mul_(step, ok.to(torch.float32) * (1 - decay))
                torch._foreach_add_(self.ema_params, step)
            if self.ema_buffers:
                torch._foreach_copy_(self.ema_buffers, self.live_buffers)


class Record:
    """Per-step statistics (:data:`RECORD_FIELDS`) kept on the device; ``read`` returns them as Python rows."""

    def __init__(self, device: torch.device, start: int):
        self.rows = torch.zeros(STATS_EVERY, len(RECORD_FIELDS), device=device)
        self.start = start                           # the step of row 0

    def write(self, step: int, stats: torch.Tensor, ok: torch.Tensor) -> None:
        row = (step - self.start) % STATS_EVERY     # the loop reads before a row is reused (``full``)
        self.rows[row, :3] = stats
        self.rows[row, 3] = ok

    def full(self, step: int) -> bool:
        return step - self.start >= STATS_EVERY

    def read(self, step: int) -> list[tuple[int, list[float]]]:
        """(step, row) of every step since the last read; the one wait on the device."""
        n = step - self.start
        if n > STATS_EVERY:
            raise RuntimeError(f"{n} steps since the last read of the statistics; the record holds {STATS_EVERY}")
        rows = self.rows[:n].tolist() if n else []
        out = [(self.start + k, row) for k, row in enumerate(rows)]
        self.start = step
        return out
