"""What one training step does, counted where it runs: the aten operations it dispatches, the host syncs among
them and the FLOPs of its matrix products and convolutions (:class:`StepCounter`), on a session of the run at a
given batch on random images of its shape (:func:`probe_session`, :func:`count_step`), or on the meta device, where
nothing is computed (:func:`meta_session`, :func:`count_meta`). ``glowlib.plan`` times the step and turns these
counts into its estimates.

The meta device's kernels are Python (shape rules, no arithmetic), about 0.2 ms an operation, so a step of the
paper's CIFAR-10 Glow (L=3, K=32: some 20,000 operations and a multi-tensor optimizer over 1,000 parameter tensors)
takes seconds to count. A Glow's levels are K identical flow steps (``models.glow.Glow.make_level`` builds each with
``FlowStep(channels, config)``, no index), so every figure of its step, and of its model's size, is a + b·K:
:func:`by_depth` counts it at depths 1, 2 and 3, checks that the three lie on a line and extends the line to K,
five times faster than counting at K = 32 and exactly the same figures (``tests/training/test_step_count.py``).
A RealNVP's step k is a checkerboard or a channel coupling (k < ⌈K/2⌉ or not) of parity k mod 2
(``models.glow.RealNVP.make_step``): depths 1 to 5 hold these four kinds in proportions that pin down each one's
cost, and where their five counts lie on a line every kind costs the same (checkerboard-even as channel-odd, the
other two averaging the same), so every depth lies on that line too.

What a GPU runs is a later step, not the first: the first also creates the optimizer's state and the step guard's
copies (``training.step.StepGuard``), about five operations per parameter tensor (some 7,000 of a paper Glow's
28,000; 36,000 of a MaCow's 112,000), and a CPU or meta session reads each parameter's step count on the host,
where CUDA's capturable optimizer keeps it on the device. So :func:`count_meta` counts the objective (forward and
backward, the same in every step) in the first step and adds the operations outside it as a later step dispatches
them without those reads, counted once on the model at its smallest depth (they are multi-tensor updates, one
operation for all the parameters whatever their number; ``tests/training/test_step_count.py`` checks both).
Each count is also kept for the rest of the process under :func:`step_key` (what the step's work depends on), which
:func:`counted_meta` reads, and the plan keeps them on disk under :func:`count_key` (the step key, torch and the
step's code). The FLOPs budgets (``glowlib.budget``) need only a step's FLOPs, which all lie in the objective's
forward and backward pass: :func:`flops_meta` counts the step up to there, at about half the cost.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .config import RunConfig
from .data import ImageData
from .training.checkpoint import build_dequantizer, build_model
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
    operations they dispatch pass through here: ``LIBRARY_CHECKS``).

    ``answer_reads``: a value read of a meta tensor (which holds no values) is answered with zero (False for a
    bool), counted in ``reads_answered``, instead of failing. The one read of a training step is the label range
    check of a class-conditional prior (``y.min() < 0 or y.max() >= n_classes``), for which zero is "in range",
    so the step goes on as it does on real labels; a read whose zero answer takes an error path raises there.
    """

    SIZE_FROM_VALUES = ("nonzero", "masked_select", "_unique2", "unique_dim", "unique_consecutive")
    # torch's own checks that read a status back from the device: torch.linalg.inv, cholesky, solve, ... dispatch
    # ``_linalg_check_errors`` after the factorisation, which on CUDA copies its ``info`` to the host (the *_ex
    # variants skip it)
    LIBRARY_CHECKS = ("_linalg_check_errors",)

    def __init__(self, host=(), answer_reads: bool = False):
        super().__init__()
        self.answer_reads, self.reads_answered = answer_reads, 0
        self.host_reads = 0                     # values read from ``host`` tensors (dispatched, not syncs)
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
            if args[0].device.type == "cpu" and args[0].data_ptr() in self.host:
                self.host_reads += 1
                return None
            return "value read"
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
        if self.answer_reads and name == "_local_scalar_dense" and args[0].device.type == "meta":
            self.reads_answered += 1
            dtype = args[0].dtype
            return False if dtype == torch.bool else 0.0 if dtype.is_floating_point or dtype.is_complex else 0
        out = func(*args, **kwargs)
        if func.overloadpacket in flop_registry:
            self.flops += flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        return out


def kernel_seconds(step: Callable[[], None], device) -> float | None:
    """Seconds a CUDA device spends in the kernels of ``step()``: the durations of the kernels (and copies) torch's
    profiler records from CUPTI, summed, the gaps between them left out, so a step the host cannot feed fast
    enough shows the device's own time. None where the profiler records none (no CUPTI)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize(device)
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize(device)
        micro = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type == DeviceType.CUDA)
    except (RuntimeError, AssertionError):
        return None
    return micro / 1e6 if micro > 0 else None


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


# depths at which a model's step is counted to find the line a + b·K (module docstring); MaCow's steps come in
# groups of unequal sizes around its splits, so it is counted at its own depth
DEPTHS = {"glow": (1, 2, 3), "realnvp": (1, 2, 3, 4, 5)}


def by_depth(run: RunConfig, figures: Callable[[RunConfig], dict]) -> dict:
    """``figures(run)``, a dict of numbers (and other values), for a Glow or RealNVP from ``figures`` at the depths
    of :data:`DEPTHS` on the line a + b·K (module docstring): every number's values must lie on a line (equal
    steps from depth to depth) and every other value be the same at each depth, else (and for MaCow or a model no
    deeper than those depths) ``figures(run)`` itself. ``{}`` from any depth: ``{}``."""
    depth, depths = run.model.depth, DEPTHS.get(run.model_type)
    if depths is None or depth <= depths[-1]:
        return figures(run)
    try:
        small = [figures(run.override([f"model.depth={k}"])) for k in depths]
    except ValueError:                          # a config that does not allow a depth this small
        return figures(run)
    if not all(small):
        return {}
    if any(part.keys() != small[0].keys() for part in small):
        return figures(run)
    out = {}
    for key in small[0]:
        values = [part[key] for part in small]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        steps = {b - a for a, b in zip(values, values[1:])} if numbers else None
        if numbers and len(steps) == 1:
            out[key] = values[0] + steps.pop() * (depth - depths[0])
        elif all(v == values[0] for v in values):
            out[key] = values[0]
        else:
            return figures(run)
    return out


# train fields that set values, the schedule, the run's length, its evaluations or where and how it runs, none of
# which changes the operations of a step dispatched on the meta device: left out of :func:`step_key`. Every other
# field keys the count, a field added later too, so that a count is never shared by steps that differ.
NOT_COUNTED = ("lr", "warmup_steps", "steps", "init_batch", "ema_decay", "eval_every", "ckpt_every", "n_train_eval",
               "n_test_eval", "eval_batch", "nonfinite_policy", "max_skips", "device", "seed", "max_minutes",
               "warmup_fraction", "lr_schedule", "lr_final_fraction", "beta2", "compile", "deterministic")
_COUNTED: dict[str, dict] = {}              # step_key -> count_meta, this process's counts


def step_key(run: RunConfig) -> str:
    """What a step counted on the meta device depends on, as a string: the model (every field, execution ones
    included) and the train fields but :data:`NOT_COUNTED` (whether the gradient is clipped and the classification
    loss weighted, not by how much); not the dataset beyond the image shape the model names."""
    train = {k: v for k, v in run.to_dict()["train"].items() if k not in NOT_COUNTED}
    train["grad_clip"], train["y_weight"] = run.train.grad_clip > 0, run.train.y_weight > 0
    return json.dumps({"model": run.to_dict()["model"], "model_type": run.model_type, "train": train},
                      sort_keys=True)


@functools.cache
def code_version() -> str:
    """SHA-256 (16 hex digits) of the code a training step runs: every module of glowlib but the studies', the
    analysis', the plan's and the budgets' (which only read the counts), so that a count kept under it is counted
    again after any change to the step's code."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(("studies/", "analysis/")) or relative in ("plan.py", "budget.py"):
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def count_key(run: RunConfig) -> str:
    """What a step counted on the meta device depends on, as a key for counts kept on disk: :func:`step_key` (the
    model and the train fields that change the step's operations), torch and :func:`code_version`."""
    what = [step_key(run), torch.__version__, code_version()]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def read_kept(path: Path) -> dict:
    """The counts (or measurements) kept in the JSON file ``path`` by key; ``{}`` where there is none."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:                          # a file cut short: counted again, and written whole
        return {}


def counted_meta(run: RunConfig) -> dict:
    """:func:`count_meta` of ``run``, or of a step with the same :func:`step_key` already counted in this
    process."""
    return dict(_COUNTED[step_key(run)]) if step_key(run) in _COUNTED else count_meta(run)


def count_meta(run: RunConfig) -> dict:
    """The work of a training step of ``run`` at its batch as a GPU runs it, counted on the meta device
    (:func:`meta_session`; a Glow or RealNVP through :func:`by_depth`): FLOPs, the operations a later CUDA step
    dispatches (``ops_per_step``: the first step's objective and a later step's operations outside it, without
    reading the optimizer's step counts; module docstring) and those of the objective's forward and backward pass
    (``objective_ops``: what ``train.compile`` puts into a graph), the first step's operations
    (``first_step_ops``) and the value reads answered (:class:`StepCounter`). Host syncs are not counted here (the
    meta device's own kernels read shapes, not values); ``plan.measure`` counts them where the step runs. ``{}``
    where the step cannot be dispatched there. Always a count of its own (kept for :func:`counted_meta`)."""
    counts = by_depth(run, _count_meta)
    outside = _later_step_outside(run) if counts else None
    if outside is not None:
        counts["first_step_ops"] = counts["ops_per_step"]
        counts["ops_per_step"] = counts["objective_ops"] + outside
    _COUNTED[step_key(run)] = dict(counts)
    return counts


def _later_step_outside(run: RunConfig) -> int | None:
    """Operations outside the objective of a later step of ``run`` at its smallest depth, less the host reads of the
    optimizer's step counts (module docstring): after two steps' worth of optimizer updates through the step guard
    (``StepGuard.step``: the optimizer's state and the guard's copies made, as by two steps), one step counted."""
    for depth in range(1, run.model.depth + 1):
        try:
            small = run.override([f"model.depth={depth}"])
            break
        except ValueError:                      # a depth the model does not allow (MaCow's fine_splits)
            continue
    try:
        r = meta_session(small)
        ok = torch.ones((), dtype=torch.bool, device=r.device)
        for _ in range(2):
            r.guard.step(ok)
        counter = StepCounter(host=optimizer_step_counts(r), answer_reads=True)
        with counter:
            train_step(r)
    except (RuntimeError, ValueError):          # as _count_meta: the first step's count stands
        return None
    return counter.n_ops - counter.objective_ops - counter.host_reads


def _counted_step(run: RunConfig, counter: StepCounter, stop=()) -> bool:
    """One training step of ``run`` dispatched on the meta device under ``counter`` (:func:`meta_session`): True
    where it ran (or ended early by raising one of ``stop``), False where the meta device cannot dispatch it."""
    try:
        r = meta_session(run)
        with counter:
            train_step(r)
    except stop:
        return True
    except RuntimeError as e:               # an operation the meta device has no kernel for
        if "meta" not in str(e):
            raise
        return False
    except ValueError:                      # a check that failed on an answered read: not a fault of the config
        if not counter.reads_answered:
            raise
        return False
    return True


def _count_meta(run: RunConfig) -> dict:
    counter = StepCounter(answer_reads=True)
    if not _counted_step(run, counter):
        return {}
    return {"flops_per_step": counter.flops, "ops_per_step": counter.n_ops, "syncs_per_step": None, "syncs": {},
            "objective_ops": counter.objective_ops, "reads_answered": counter.reads_answered, "counted_on": "meta"}


class _ObjectiveDone(Exception):
    """Raised by :class:`_ObjectiveCounter` at the first operation after the objective's forward and backward."""


class _ObjectiveCounter(StepCounter):
    """A :class:`StepCounter` that stops the step at its first operation after the objective (``step.PHASE``): the
    matrix products and convolutions that carry a step's FLOPs all lie in the objective's forward and backward (the
    gradient norm, the optimizer and the Polyak update are elementwise and multi-tensor operations, with no FLOPs
    in ``torch.utils.flop_counter``'s formulas), and the rest of a step costs as much again to dispatch on the meta
    device (Adamax over every parameter tensor). ``tests/training/test_step_count.py`` checks that the two counts
    agree."""

    stopped = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.objective_ops and PHASE["name"] != "objective":
            self.stopped = True
            raise _ObjectiveDone
        return super().__torch_dispatch__(func, types, args, kwargs)


def _flops_meta(run: RunConfig) -> dict:
    counter = _ObjectiveCounter(answer_reads=True)
    if _counted_step(run, counter, _ObjectiveDone) and counter.stopped:
        return {"flops_per_step": counter.flops}
    return {}


def flops_meta(run: RunConfig) -> float | None:
    """The FLOPs of a training step of ``run`` at its batch, counted on the meta device: ``count_meta(run)
    ["flops_per_step"]`` at about half its cost (the step is counted up to the end of the objective's backward
    pass, :class:`_ObjectiveCounter`; a Glow or RealNVP through :func:`by_depth`). None where the step cannot be
    dispatched there."""
    return by_depth(run, _flops_meta).get("flops_per_step")


def _model_size(run: RunConfig) -> dict:
    with torch.device("meta"):
        model, deq = build_model(run), build_dequantizer(run)
    modules = [m for m in (model, deq) if m is not None]
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "weights": sum(t.numel() * t.element_size() for m in modules for t in m.state_dict().values()),
            "optimizer": sum(2 * p.numel() * p.element_size() for m in modules for p in m.parameters()
                             if p.requires_grad)}


@functools.lru_cache(maxsize=None)
def _model_size_of(key: str) -> dict:
    return by_depth(RunConfig.from_dict(json.loads(key)), _model_size)


def model_size(run: RunConfig) -> dict:
    """{"parameters": the model's, "weights": bytes of the model's (and dequantiser's) state dict, "optimizer":
    bytes of Adam(ax)'s state (each parameter's two moments, in its dtype)}, from the model built on the meta device
    (no memory, no arithmetic; a Glow or RealNVP at its small depths, :func:`by_depth`), once per model in a
    process."""
    what = run.to_dict()
    what["train"] = {"dequantization": run.train.dequantization}        # all the dequantiser's size depends on
    return dict(_model_size_of(json.dumps(what, sort_keys=True)))
