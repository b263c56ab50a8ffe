"""What one training step does, counted where it runs: the aten operations it dispatches, the host syncs among
them and the FLOPs of its matrix products and convolutions (:class:`StepCounter`), on a session of the run at a
given batch on random images of its shape (:func:`probe_session`, :func:`count_step`), or on the meta device, where
a paper-size step is counted in about a second (:func:`meta_session`, :func:`count_meta`). ``glowlib.plan`` times
the step and turns these counts into its estimates.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .config import RunConfig
from .data import ImageData
from .training.evaluate import Splits
from .training.loop import session, session_without_data, train_step
from .training.step import PHASE


def _device_of(value) -> torch.device | None:
    return value if isinstance(value, torch.device) else torch.device(value) if isinstance(value, str) else None


class StepCounter(TorchDispatchMode):
    """Counts the aten operations that code dispatches (each about one kernel on a GPU) and, among them, the ones
    that make the host wait for the device there: reading a value (``_local_scalar_dense``: ``.item()``,
    ``bool(t)``, ``float(t)``), an output whose size depends on values (``nonzero``, ``masked_select``, ...), a
    copy from the device to the host, and a blocking copy from the host to the device. Values read from tensors in
    ``host`` are not counted: torch.optim keeps each parameter's step count on the host where it cannot keep it on
    the device (CPU training), and reading host memory makes nobody wait.

    It also adds up the FLOPs of the matrix products and convolutions with ``torch.utils.flop_counter``'s
    formulas, those of ``FlopCounterMode``, without that mode's module tracking, whose backward hooks fail inside
    the nested ``autograd.grad`` of invertible backprop. Syncs inside torch's own functions count too (the
    operations they dispatch pass through here: ``LIBRARY_CHECKS``)."""

    SIZE_FROM_VALUES = ("nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive")
    # torch's own checks that read a status back from the device: torch.linalg.inv, cholesky, solve, ... dispatch
    # ``_linalg_check_errors`` after the factorisation, which on CUDA copies its ``info`` to the host (the *_ex
    # variants skip it)
    LIBRARY_CHECKS = ("_linalg_check_errors",)

    def __init__(self, host=()):
        super().__init__()
        self.ops, self.syncs = Counter(), Counter()
        self.host = {t.data_ptr() for t in host}
        self.flops = 0
        self.objective_ops = 0                 # dispatched in the objective's forward and backward (step.PHASE)

    @property
    def n_ops(self) -> int:
        return sum(self.ops.values())

    @property
    def n_syncs(self) -> int:
        return sum(self.syncs.values())

    def _sync(self, name, args, kwargs) -> str | None:
        if name in ("_local_scalar_dense", "item", "is_nonzero", "equal"):
            return None if args[0].data_ptr() in self.host else "value read"
        if name in self.LIBRARY_CHECKS:
            return "library error check"
        if name in self.SIZE_FROM_VALUES:
            return "size from values"
        if name == "_to_copy":
            src, dst = args[0].device, _device_of(kwargs.get("device")) or args[0].device
        elif name == "copy_":
            dst, src = args[0].device, args[1].device if isinstance(args[1], torch.Tensor) else args[0].device
        else:
            return None
        if src.type != "cpu" and dst.type == "cpu":
            return "device to host"
        if src.type == "cpu" and dst.type != "cpu" and not kwargs.get("non_blocking", False):
            return "blocking host to device"
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        self.objective_ops += PHASE["name"] == "objective"
        kind = self._sync(name, args, kwargs)
        if kind:
            self.syncs[kind] += 1
        out = func(*args, **kwargs)
        if func.overloadpacket in flop_registry:
            self.flops += flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        return out


def optimizer_step_counts(r) -> list[torch.Tensor]:
    """The optimizer's step counts that live on the host (CPU training): what :class:`StepCounter` may read."""
    return [s["step"] for s in r.optimizer.state.values()
            if torch.is_tensor(s.get("step")) and s["step"].device.type == "cpu"]


def synthetic_splits(run: RunConfig, n_train: int) -> Splits:
    """Random uint8 images and labels of the run's shape, as ``prepare_splits`` would give: a step's arithmetic
    does not depend on the pixel values, so the step is measured without the data files."""
    g = torch.Generator().manual_seed(0)
    c, s, k = run.model.in_channels, run.model.image_size, max(run.model.n_classes, 10)

    def part(n):
        return torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8), torch.randint(0, k, (n,),
                                                                                                   generator=g)
    (tx, ty), (vx, vy), (ex, ey) = part(n_train), part(2), part(2)
    data = ImageData(run.data.dataset, tx, ty, ex, ey, class_names=tuple(str(i) for i in range(k)))
    return Splits(tx, ty, vx, vy, ex, ey, data)


def probe_session(run: RunConfig, batch: int, device):
    """A training session of ``run`` at ``batch`` images per step on random images (:func:`synthetic_splits`)."""
    probe = run.override([f"train.batch_size={batch}", f"train.init_batch={2 * batch}"])
    return session(probe, synthetic_splits(probe, 4 * batch), device)


def count_step(run: RunConfig, batch: int = 1, device="cpu") -> tuple[StepCounter, float]:
    """(the operations and syncs of one training step, its FLOPs) at ``batch``, after two warm-up steps (the first
    creates the optimizer's state, the second the copies that undo a step: allocations made once)."""
    r = probe_session(run, batch, device)
    train_step(r)
    train_step(r)
    counter = StepCounter(host=optimizer_step_counts(r))
    with counter:
        train_step(r)
    return counter, counter.flops


def meta_session(run: RunConfig, batch: int | None = None):
    """A training session of ``run`` on the meta device: every operation is dispatched with its shapes and nothing
    is computed or stored, so a paper-size step is counted in about a second. ActNorm's data-dependent
    initialisation (which reads values) is marked done instead of run: it sets values, not the step's work."""
    batch = run.train.batch_size if batch is None else batch
    probe = run.override([f"train.batch_size={batch}", f"train.init_batch={2 * batch}"])
    return session_without_data(probe, synthetic_splits(probe, 2 * batch), torch.device("meta"))


def count_meta(run: RunConfig) -> dict:
    """The work of one training step of ``run`` at its batch, counted on the meta device (:func:`meta_session`):
    FLOPs, dispatched operations and those of the objective's forward and backward pass (what ``train.compile``
    puts into a graph). The first step is counted (a warm-up step costs as much again on the meta device): it
    also creates the optimizer's state, a few hundred operations more than a later step. Host syncs are not
    counted here (the meta device's own kernels read shapes, not values); ``plan.measure`` counts them where the
    step runs."""
    try:
        r = meta_session(run)
        counter = StepCounter()
        with counter:
            train_step(r)
    except RuntimeError as e:               # a model that reads values in its step (class labels' range check)
        if "meta" not in str(e):
            raise
        return {}
    return {"flops_per_step": counter.flops, "ops_per_step": counter.n_ops, "syncs_per_step": None, "syncs": {},
            "objective_ops": counter.objective_ops, "counted_on": "meta"}
