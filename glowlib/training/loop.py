"""Training: maximum likelihood with Adam(ax), linear warmup, gradient clipping, Polyak (EMA) weights, atomic
resumable checkpoints, a non-finite-loss policy, a wall-clock budget, and DistributedDataParallel under ``torchrun``.

Determinism: the batch order of epoch e comes from a generator seeded with (seed, e), and the dequantisation noise of
step t from one seeded with (seed, t). A run is therefore a pure function of its config, and resuming from a
checkpoint replays exactly what the uninterrupted run would have done.

A step never waits for the device (``glowlib.training.step``): its statistics stay on the device and are read
every ``STATS_EVERY`` steps and at every evaluation and checkpoint, and a step whose loss or gradient is not finite
is undone on the device. What the host learns at a read (which steps were skipped) it acts on then: the events are
recorded, and ``max_skips`` skipped steps in a row reload the last checkpoint at half the learning rate.

Under ``torchrun`` each process trains on its own GPU (``cuda:LOCAL_RANK``) with ``train.batch_size`` images, as
the official code's ``n_batch_train`` is per GPU: the global batch is ``batch_size × processes`` (recorded in the
checkpoint; a run resumes only with the same number of processes).
"""
from __future__ import annotations

import copy
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..config import RunConfig
from ..data import to_float
from ..layers.actnorm import ActNorm
from ..layers.revgrad import check_drift, deferred_drift_checks
from ..models import Dequantizer, Glow
from ..objective import bits_per_dim, dequantize
from ..runtime import tune_allocator
from .checkpoint import (build_dequantizer, build_model, check_resumable, load_checkpoint, save_checkpoint,
                         write_csv)
from .evaluate import NOISE_STREAM, Splits, evaluate, prepare_splits, seeded
from .device import resolve_device  # noqa: F401  (glowlib.training's public name)
from .device import (compile_mode, optimizer_options, place_optimizer, set_deterministic, set_tf32, tf32_state,
                     to_device, training_device)
from .progress import Progress
from .run_folder import claim, set_aside
from .schedule import batch_indices, init_images, lr_factor, warmup_steps  # noqa: F401  (warmup_steps: public)
from .step import PHASE, FlatGradients, Likelihood, Polyak, Record, StepGuard, log_likelihood
from .stop import RunStopped, in_training, stop_requested

METRIC_FIELDS = ["step", "epoch", "train_bpd", "train_eval_bpd", "val_bpd", "val_sem", "test_bpd", "test_sem",
                 "lr", "images_per_s", "wall_s", "cpu_s"]

def update_ema(ema: Glow, model: Glow, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model, parameters with one multi-tensor operation; buffers copied."""
    Polyak([(ema, model)]).update(decay)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def maybe_init_distributed(device: torch.device) -> None:
    """Under torchrun (WORLD_SIZE > 1), join the process group: gloo on CPU, nccl on CUDA (bound to this
    process's GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")


# ---------------------------------------------------------------------------------------------------- training
class _JointObjective(torch.nn.Module):
    """log p(x | y) and the class logits of the same pass, for the classification loss of a class-conditional
    model; one module, so that DistributedDataParallel sees a single forward call."""

    def __init__(self, model: Glow):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        log_px, zs = log_likelihood(self.model, x, y, latents=True)
        return log_px, self.model.classify(zs)


def training_loss(net, x, y, run: RunConfig, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, its bits/dim part) of a batch. The loss is the mean bits/dim of log p(x | y), plus, when
    ``train.y_weight`` > 0, y_weight · the cross-entropy of the classifier head in bits per image (official code:
    ``bits_x + weight_y * bits_y`` with ``bits_y`` = softmax cross-entropy / ln 2). ``net`` is the model, or its
    ``_JointObjective`` when y_weight > 0, or a ``step.Likelihood`` (with a dequantiser, x is the discrete batch,
    ``kwargs`` holds q's base ``noise`` and the loss is the negative ELBO in bits/dim); any of them possibly wrapped
    in DistributedDataParallel."""
    if run.train.y_weight > 0:
        log_px, logits = net(x, y)
        bpd = bits_per_dim(log_px, run.model.n_dims, run.data.n_bits).mean()
        return bpd + run.train.y_weight * F.cross_entropy(logits, y) / math.log(2), bpd
    bpd = bits_per_dim(net(x, y, **kwargs), run.model.n_dims, run.data.n_bits).mean()   # log p(x) (or the ELBO's
    # integrand log p(x̃) − log q(u | x); bits_per_dim adds the D·n·ln 2 of q's bin units)
    return bpd, bpd


class TrainingFailed(RuntimeError):
    """A run that reached its last step without one finite validation evaluation; ``result`` holds its record."""

    def __init__(self, message: str, result: "TrainResult"):
        super().__init__(message)
        self.result = result


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    best_val_bpd: float
    test_bpd_at_best: float
    nonfinite_events: list
    wall_s: float
    stopped: str = ""            # why the run stopped before train.steps (the time budget), else ""
    cpu_s: float = math.nan      # CPU seconds of the training process (CPU device only; see _Run.cpu_before)


@dataclass
class _Run:
    """Everything one training run holds: what ``_setup`` builds, and the progress that checkpoints save and
    ``_resume_or_initialise`` restores."""

    run: RunConfig
    out_dir: Path | None
    device: torch.device
    rank: int
    world: int
    allocator: dict
    splits: Splits
    model: Glow
    deq: Dequantizer | None                      # the learned q(u | x) of a variational run; None: uniform noise
    trainable: list
    optimizer: torch.optim.Optimizer
    ema: Glow | None = None                      # Polyak-averaged copies, the weights that are evaluated
    ema_deq: Dequantizer | None = None
    net: torch.nn.Module | None = None           # what the loss calls (``_objective``)
    grads: FlatGradients | None = None           # the step's machinery (``_prepare_step``)
    guard: StepGuard | None = None
    polyak: Polyak | None = None
    record: Record | None = None
    step: int = 0
    best_val: float = math.inf
    test_at_best: float = math.nan
    lr_scale: float = 1.0
    events: list = field(default_factory=list)   # non-finite steps and what was done about them
    rows: list = field(default_factory=list)     # metrics.csv
    window: list = field(default_factory=list)   # training bits/dim since the last evaluation (checkpointed too)
    window_images: int = 0
    window_t: float = 0.0
    skips: int = 0                               # non-finite steps in a row
    good_steps: int = 0                          # finite steps so far; nothing to evaluate before the first
    saved_step: int | None = None
    evaluated_step: int | None = None
    stopped: str = ""
    wall_before: float = 0.0                     # wall seconds of the run before this process resumed it
    t_start: float = 0.0
    # CPU seconds of the training process (all its threads; ``time.process_time``), on a CPU device only: the
    # compute a run took, which other processes on the machine do not stretch as they stretch its wall time.
    # NaN where a part of the run was trained without it being recorded (a checkpoint of an older glowlib).
    cpu_before: float = 0.0
    c_start: float = 0.0
    step_at_start: int = 0
    order: tuple = (-1, None)                    # (epoch, its batch order)
    progress: Progress | None = None

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def conditional(self) -> bool:
        return self.run.model.n_classes > 0

    @property
    def global_batch(self) -> int:
        return self.run.train.batch_size * self.world

    @property
    def steps_per_epoch(self) -> int:
        return len(self.splits.train_x) // self.global_batch

    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    def cpu_s(self) -> float:
        if self.device.type != "cpu":
            return math.nan
        return self.cpu_before + time.process_time() - self.c_start


def train(run: RunConfig, out_dir, resume: bool = False, stop_after: int | None = None,
          progress=True, restart: bool = False) -> TrainResult:
    """Train ``run`` into ``out_dir``: ``metrics.csv``, ``last.pt`` (resume), ``best.pt`` (lowest val bits/dim).

    ``resume`` continues ``last.pt`` exactly; ``restart`` moves the folder's checkpoints and metrics aside (into a
    dated subfolder, ``run_folder.set_aside``) and starts fresh. ``stop_after`` ends the run after that many
    steps, as an interruption would (tests use it for resume). The folder is held by this process while it trains
    (``run_folder.claim``: a second writer fails at once).
    Non-finite loss or gradient: the step is undone and recorded; with ``nonfinite_policy="reload"``,
    ``max_skips`` skips in a row reload ``last.pt`` (the last good state) and halve the learning rate. A run that
    reaches its last step without one finite validation evaluation raises ``TrainingFailed``, its files set aside.
    ``train.max_minutes`` > 0: at that much wall time (counting the time before a resume) the run evaluates,
    checkpoints and stops (``TrainResult.stopped`` says so).
    ``progress``: True, a bar on a terminal and a line per evaluation otherwise; "lines"; "bar"; False, silent.
    """
    if resume and restart:
        raise ValueError("resume=True and restart=True exclude each other: resume continues last.pt, restart moves "
                         "it aside and starts over")
    device = training_device(run.train.device)
    maybe_init_distributed(device)
    with in_training():                          # a stop signal from here on waits for the next step boundary
        r = _setup(run, Path(out_dir), device=device)
        folder = claim(r.out_dir) if r.rank == 0 else None      # only rank 0 writes the folder
        try:
            if restart and r.rank == 0:
                set_aside(r.out_dir, "replaced")
            _resume_or_initialise(r, resume)
            _prepare_step(r)
            _steps(r, stop_after, progress)
            return _finish(r)
        finally:
            if folder is not None:
                folder.release()


def session(run: RunConfig, splits: Splits | None = None, device: torch.device | str | None = None) -> _Run:
    """A run set up to take steps in memory, nothing written: model and dequantiser initialised from the data (or
    ``splits``), Polyak copies, objective and step machinery; one process. For measuring the step
    (``glowlib.plan``) and for tests: :func:`train_step` takes one step."""
    device = training_device(run.train.device) if device is None else torch.device(device)
    r = _setup(run, None, splits, device)
    _initialise(r)
    _prepare_step(r)
    r.model.train()
    r.t_start, r.c_start = time.perf_counter(), time.process_time()
    return r


def session_without_data(run: RunConfig, splits: Splits, device: torch.device) -> _Run:
    """A :func:`session` whose ActNorm data-dependent initialisation is marked done instead of run, set up with
    ``device`` as the default device: for the meta device, where every operation is dispatched with its shapes and
    nothing is computed, so there are no values to initialise from (``glowlib.plan`` counts a step there)."""
    with device:
        r = _setup(run, None, splits, device)
    for module in list(r.model.modules()) + (list(r.deq.modules()) if r.deq is not None else []):
        if isinstance(module, ActNorm):
            module._known_initialized = True
    _initialise_without_data(r)
    _prepare_step(r)
    r.model.train()
    return r


def train_step(r: _Run) -> None:
    """One optimisation step of a :func:`session` (or of a run inside ``train``); never waits for the device."""
    _step(r)


def _steps(r: _Run, stop_after: int | None, progress) -> None:
    """The loop: steps until the last one (or ``stop_after`` more, or the time budget), evaluating and
    checkpointing on schedule."""
    tc = r.run.train
    r.t_start, r.step_at_start = time.perf_counter(), r.step
    r.c_start = time.process_time()
    r.progress = Progress(r, progress)
    r.window_t = time.perf_counter()
    end = tc.steps if stop_after is None else min(tc.steps, r.step + stop_after)
    r.model.train()
    while r.step < end:
        if stop_requested() is not None:
            _stop_now(r)
        if _out_of_time(r):
            r.stopped = f"time budget train.max_minutes={tc.max_minutes:g} reached at step {r.step}"
            r.progress.write(f"{r.progress.desc}: {r.stopped}; evaluating and saving")
            _after_step(r, final=True)
            break
        _step(r)
        r.progress.update()
        _after_step(r)
    r.progress.close()


def _stop_now(r: _Run) -> None:
    """Save ``last.pt`` at this step (rank 0) and raise ``RunStopped``: a stop asked by a signal."""
    _read(r)
    if r.rank == 0 and r.saved_step != r.step:
        save_checkpoint(r.last_path, _snapshot(r))
        r.saved_step = r.step
    r.progress.close()
    number = stop_requested()
    raise RunStopped(f"{r.progress.desc}: stopped by {signal.Signals(number).name} at step {r.step:,} of "
                     f"{r.run.train.steps:,}; {r.last_path} holds it, and the same command resumes it", number)


def _out_of_time(r: _Run) -> bool:
    """Whether the run has used its ``train.max_minutes``. Under torchrun all processes decide together, right
    after a read of the statistics (the one place a step waits anyway), so that none stops alone."""
    budget = r.run.train.max_minutes * 60
    if budget <= 0:
        return False
    if r.world == 1:
        return r.wall_s() >= budget
    if r.step != r.record.start:
        return False
    spent = torch.tensor(float(r.wall_s() >= budget), device=r.device)
    dist.all_reduce(spent, op=dist.ReduceOp.MAX)
    return bool(spent.item())


def _finish(r: _Run) -> TrainResult:
    """Save ``last.pt`` if the last step was not saved yet; a finished run without a finite evaluation fails."""
    _read(r)
    if r.rank == 0 and r.saved_step != r.step:
        save_checkpoint(r.last_path, _snapshot(r))
    result = TrainResult(r.out_dir, r.step, r.best_val, r.test_at_best, r.events, r.wall_s(), r.stopped, r.cpu_s())
    if r.rank == 0 and (r.step >= r.run.train.steps or r.stopped) and not math.isfinite(r.best_val):
        _fail(r, result)
    return result


def _fail(r: _Run, result: TrainResult) -> None:
    """Set the files of a run without a finite evaluation aside, so that the next attempt starts over instead of
    resuming a finished failure, and raise ``TrainingFailed``."""
    target = set_aside(r.out_dir, "failed")
    raise TrainingFailed(f"training into {r.out_dir} reached step {r.step} without a finite validation "
                         f"bits/dim ({len(r.rows)} evaluations, {len(r.events)} non-finite steps); its files were "
                         f"moved to {target}. Try a lower train.lr or train.grad_clip.", result)


def _setup(run: RunConfig, out_dir: Path | None, splits: Splits | None = None,
           device: torch.device | None = None) -> _Run:
    """Device, data, and a freshly initialised model, dequantiser and optimizer."""
    tc = run.train
    device = training_device(tc.device) if device is None else device
    allocator = tune_allocator()                  # glibc: keep large buffers between steps ($GLOWLIB_ALLOCATOR)
    set_tf32()
    set_deterministic(tc.deterministic, device)
    rank, world = _dist_info()
    torch.manual_seed(tc.seed)                                    # model initialisation
    splits = prepare_splits(run) if splits is None else splits
    n_train = len(splits.train_x)
    if n_train < tc.batch_size * world:
        raise ValueError(f"train.batch_size={tc.batch_size} × {world} process(es) exceeds the {n_train} training "
                         f"images")
    if tc.y_weight > 0 and run.model.n_classes == 0:
        raise ValueError(f"train.y_weight={tc.y_weight} needs a class-conditional model (model.n_classes > 0); "
                         f"set model.n_classes or train.y_weight=0.0")
    model = build_model(run).to(device)
    deq = build_dequantizer(run)
    deq = deq.to(device) if deq is not None else None
    trainable = list(model.parameters()) + (list(deq.parameters()) if deq is not None else [])
    optimizer = (torch.optim.Adamax if tc.optimizer == "adamax" else torch.optim.Adam)(
        trainable, lr=tc.lr, betas=(0.9, tc.beta2), **optimizer_options(device))
    return _Run(run, out_dir, device, rank, world, allocator, splits, model, deq, trainable, optimizer)


def _initialise(r: _Run) -> None:
    """ActNorm's data-dependent init on the same images on every rank (seeded), before DDP wraps the model; the
    Polyak copies start as the model."""
    x0, init_idx = init_images(r.run, r.splits.train_x)
    r.model.initialize(x0.to(r.device), r.splits.train_y[init_idx].to(r.device) if r.conditional else None)
    _initialise_without_data(r)


def _initialise_without_data(r: _Run) -> None:
    """The Polyak copies of the model and dequantiser as they stand."""
    r.ema = copy.deepcopy(r.model).eval()
    r.ema_deq = copy.deepcopy(r.deq)
    if r.deq is not None:
        r.ema_deq.eval()


def _resume_or_initialise(r: _Run, resume: bool) -> None:
    """Continue from ``last.pt`` (``resume``), or initialise ActNorm from data and start the Polyak copies."""
    run = r.run
    if not (resume and r.last_path.exists()):
        held = [f.name for f in (*r.out_dir.glob("*.pt"), r.out_dir / "metrics.csv") if f.exists()]
        if held and r.rank == 0:                 # metrics.csv too: a fresh run would write over another's curves
            raise FileExistsError(f"{r.out_dir} already holds {', '.join(sorted(held))}; pass --resume to continue "
                                  f"them, --restart to move them aside and start over, or choose another --out "
                                  f"(nothing was overwritten)")
        _initialise(r)
        return
    state = load_checkpoint(r.last_path, map_location=r.device, resume=True)   # checked before any use
    check_resumable(state, r.last_path, run, r.world)
    r.model.load_state_dict(state["model"])
    r.optimizer.load_state_dict(state["optimizer"])
    place_optimizer(r.optimizer, r.device)
    r.ema = build_model(run).to(r.device)
    r.ema.load_state_dict(state["ema"])
    r.ema.eval()
    if r.deq is not None:
        r.deq.load_state_dict(state["dequantizer"])
        r.ema_deq = copy.deepcopy(r.deq)
        r.ema_deq.load_state_dict(state["dequantizer_ema"])
        r.ema_deq.eval()
    r.step, r.best_val, r.test_at_best = state["step"], state["best_val"], state["test_at_best"]
    r.lr_scale, r.events, r.wall_before = state["lr_scale"], state["nonfinite_events"], state["wall_s"]
    r.cpu_before = state.get("cpu_s", math.nan)
    r.window, r.window_images = state["window"], state["window_images"]
    r.good_steps, r.stopped = state.get("good_steps", r.step), state.get("stopped", "")
    r.rows = [row for row in state["metrics"] if row["step"] <= r.step]
    r.evaluated_step = r.rows[-1]["step"] if r.rows else None
    torch.set_rng_state(state["rng"]["torch"])


def _objective(r: _Run) -> torch.nn.Module:
    """What the loss calls: log p(x) (``step.Likelihood``, with the dequantiser's ELBO integrand if any), or with
    the classifier head (``_JointObjective``); one module either way, wrapped for DistributedDataParallel under
    torchrun."""
    run = r.run
    net = _JointObjective(r.model) if run.train.y_weight > 0 else Likelihood(r.model, r.deq, run.data.n_bits)
    if r.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[r.device.index] if r.device.type == "cuda" else None,
            find_unused_parameters=r.conditional)               # the classifier head is unused without its loss
    return net


def _prepare_step(r: _Run) -> None:
    """The objective and the step's machinery (``glowlib.training.step``) for a run set up and initialised."""
    r.net = _objective(r)
    mode = compile_mode(r.run.train.compile, r.device, getattr(r.run.model, "inv_backprop", False),
                        r.run.train.steps - r.step)
    if mode is not None:                   # forward and backward compiled; the optimizer's part stays eager
        r.net = torch.compile(r.net, mode=mode)
    r.grads = FlatGradients(r.trainable)
    r.guard = StepGuard(r.optimizer, r.trainable)
    r.polyak = Polyak([(r.ema, r.model), (r.ema_deq, r.deq)])
    r.record = Record(r.device, r.step)


def _batch(r: _Run) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """This process's part of step ``r.step``'s global batch (x, y, extra arguments of the objective); the global
    batch and its noise depend on (seed, step, number of processes) only, drawn on the host and sent without
    blocking."""
    tc, n_bits, local = r.run.train, r.run.data.n_bits, r.run.train.batch_size
    mine = slice(r.rank * local, (r.rank + 1) * local)
    idx, r.order = batch_indices(r.run, len(r.splits.train_x), r.step, r.global_batch, r.order)
    noise = seeded(tc.seed, NOISE_STREAM, r.step)
    x = to_float(r.splits.train_x[idx], n_bits)
    if r.deq is None:
        x = dequantize(x, n_bits, noise)
        kwargs = {}
    else:                                  # base noise of q drawn on the CPU, so every device gets the same
        kwargs = {"noise": to_device(r.deq.draw_noise(x, noise)[mine], r.device)}
    y = to_device(r.splits.train_y[idx][mine], r.device) if r.conditional else None
    return to_device(x[mine], r.device), y, kwargs


def _step(r: _Run) -> None:
    """One optimisation step, undone on the device when its loss or gradient is not finite (module docstring)."""
    tc = r.run.train
    x, y, kwargs = _batch(r)
    lr = tc.lr * r.lr_scale * lr_factor(r.run, r.step)
    for group in r.optimizer.param_groups:
        group["lr"] = lr
    r.grads.zero()
    with deferred_drift_checks():          # invertible backprop's drift read at _read, not at every level
        PHASE["name"] = "objective"
        try:
            loss, bpd = training_loss(r.net, x, y, r.run, **kwargs)
            loss.backward()
        finally:
            PHASE["name"] = "step"
    norm = r.grads.norm()
    stats = torch.stack([loss.detach().float(), norm, bpd.detach().float()])
    if r.world > 1:                        # the global batch's mean loss; every rank takes the same decision
        dist.all_reduce(stats)
        stats = stats / r.world            # the gradient norm is the same on every rank after DDP's all-reduce
    ok = torch.isfinite(stats).all()
    if tc.grad_clip > 0:
        r.grads.scale((tc.grad_clip / (norm + 1e-6)).clamp(max=1.0))
    r.grads.zero_unless(ok)
    r.guard.step(ok)
    r.polyak.update(min(tc.ema_decay, (2 + r.step) / (11 + r.step)), ok)   # (1 + t)/(10 + t) after step t
    r.record.write(r.step, stats, ok)
    r.step += 1


def _read(r: _Run) -> None:
    """Read the steps' statistics since the last read (one wait on the device): the training bits/dim of the
    finite steps join the window, each non-finite step is recorded, and with ``nonfinite_policy="reload"``
    ``max_skips`` in a row go back to the last good checkpoint at half the learning rate."""
    tc, reload = r.run.train, False
    for step, (loss, grad_norm, bpd, finite) in r.record.read(r.step):
        if finite:
            r.window.append(bpd)           # train_bpd: the bits/dim part, without the classification term
            r.window_images += r.global_batch
            r.skips, r.good_steps = 0, r.good_steps + 1
            continue
        r.skips += 1
        r.events.append({"step": step, "loss": loss, "grad_norm": grad_norm, "action": "skip"})
        if tc.nonfinite_policy == "reload" and r.skips >= tc.max_skips:
            r.lr_scale *= 0.5
            r.events[-1]["action"] = f"reload last good checkpoint, lr x{r.lr_scale:g}"
            r.skips, reload = 0, True
        r.progress.write(f"non-finite loss/gradient at step {step}: {r.events[-1]['action']}")
    check_drift(r.model)
    if reload and r.last_path.exists():
        _reload(r)
    if not r.grads.intact():
        raise RuntimeError("a parameter's gradient is no longer a view of the flat gradient buffer; something "
                           "replaced it (set_to_none?), so non-finite steps could not be undone")


def _reload(r: _Run) -> None:
    """The model, optimizer and Polyak weights of ``last.pt`` (the step counter and schedule go on)."""
    state = load_checkpoint(r.last_path, map_location=r.device, resume=True)   # checked before any use
    r.model.load_state_dict(state["model"])
    r.optimizer.load_state_dict(state["optimizer"])
    place_optimizer(r.optimizer, r.device)
    r.ema.load_state_dict(state["ema"])
    if r.deq is not None:
        r.deq.load_state_dict(state["dequantizer"])
        r.ema_deq.load_state_dict(state["dequantizer_ema"])


def _after_step(r: _Run, final: bool = False) -> None:
    """Read the statistics, evaluate and save on schedule: evaluate every ``eval_every`` steps and at the end (or
    at the time budget, ``final``), save ``last.pt`` every ``ckpt_every``; read at least every ``STATS_EVERY``."""
    tc = r.run.train
    at_end = final or r.step >= tc.steps
    evaluate_now = at_end or r.step % tc.eval_every == 0
    save_now = at_end or r.step % tc.ckpt_every == 0
    if evaluate_now or save_now or r.record.full(r.step):
        _read(r)
    if evaluate_now and r.good_steps and r.evaluated_step != r.step:
        images_per_s = r.window_images / max(time.perf_counter() - r.window_t, 1e-9)
        if r.rank == 0:
            row = _evaluate(r, sum(r.window) / len(r.window) if r.window else math.nan, round(images_per_s, 2))
            r.progress.note(row)
        r.window, r.window_images, r.evaluated_step = [], 0, r.step
        r.model.train()
        r.window_t = time.perf_counter()
    if save_now and r.rank == 0 and r.saved_step != r.step:
        save_checkpoint(r.last_path, _snapshot(r))
        r.saved_step = r.step


def _evaluate(r: _Run, train_window: float, images_per_s: float) -> dict:
    """Evaluate the Polyak weights on val, test and part of train; add the row to metrics.csv, and save
    ``best.pt`` when val bits/dim is the lowest yet."""
    tc, splits = r.run.train, r.splits
    ev = dict(n_bits=r.run.data.n_bits, batch_size=tc.eval_batch, seed=tc.seed,
              dequantizer=r.ema_deq)           # variational: the ELBO bits/dim, on the Polyak weights of both

    def on(x, y, n=None):
        n = len(x) if n is None else n
        return evaluate(r.ema, x[:n], labels=y[:n] if r.conditional else None, **ev)

    val, val_sem = on(splits.val_x, splits.val_y)                # DataConfig requires n_val >= 1
    test, test_sem = on(splits.test_x, splits.test_y, tc.n_test_eval or len(splits.test_x))
    train_eval = on(splits.train_x, splits.train_y, tc.n_train_eval)[0] if tc.n_train_eval else math.nan
    row = {"step": r.step, "epoch": round(r.step / r.steps_per_epoch, 3), "train_bpd": train_window,
           "train_eval_bpd": train_eval, "val_bpd": val, "val_sem": val_sem, "test_bpd": test,
           "test_sem": test_sem, "lr": r.optimizer.param_groups[0]["lr"], "images_per_s": images_per_s,
           "wall_s": round(r.wall_s(), 2), "cpu_s": round(r.cpu_s(), 2)}
    r.rows.append(row)
    write_csv(r.out_dir / "metrics.csv", r.rows, METRIC_FIELDS)
    if val < r.best_val:                                         # False for NaN: never chosen
        r.best_val, r.test_at_best = val, test
        save_checkpoint(r.best_path, _snapshot(r, optimizer=False))
    return row


def _snapshot(r: _Run, optimizer: bool = True) -> dict:
    """The checkpoint of the run as it stands: everything ``_resume_or_initialise`` restores. ``optimizer=False``
    (``best.pt``): without the optimizer's state (None), which is twice the weights under Adam(ax) and needed only
    to resume, which reads ``last.pt``; evaluation and the studies read the weights and Polyak weights of
    ``best.pt``."""
    extra = {} if r.deq is None else {"dequantizer": r.deq.state_dict(), "dequantizer_ema": r.ema_deq.state_dict()}
    return {**extra, "model": r.model.state_dict(), "ema": r.ema.state_dict(),
            "optimizer": r.optimizer.state_dict() if optimizer else None,
            "step": r.step, "config": r.run.to_dict(), "best_val": r.best_val, "test_at_best": r.test_at_best,
            "lr_scale": r.lr_scale, "nonfinite_events": r.events, "metrics": r.rows, "window": r.window,
            "window_images": r.window_images, "wall_s": r.wall_s(), "cpu_s": r.cpu_s(),
            "torch_version": str(torch.__version__),
            "allocator": r.allocator, "rng": {"torch": torch.get_rng_state()}, "world_size": r.world,
            "global_batch": r.global_batch, "good_steps": r.good_steps, "stopped": r.stopped,
            "max_minutes": r.run.train.max_minutes, "tf32": tf32_state()}
