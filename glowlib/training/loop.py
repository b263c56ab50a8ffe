"""Training: maximum likelihood with Adam(ax), linear warmup, gradient clipping, Polyak (EMA) weights, atomic
resumable checkpoints, a non-finite-loss policy, and DistributedDataParallel under ``torchrun``.

Determinism: the batch order of epoch e comes from a generator seeded with (seed, e), and the dequantisation noise of
step t from one seeded with (seed, t). A run is therefore a pure function of its config, and resuming from a
checkpoint replays exactly what the uninterrupted run would have done.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import RunConfig
from ..data import to_float
from ..models import DequantizedModel, Dequantizer, Glow
from ..objective import bits_per_dim, dequantize
from ..runtime import tune_allocator
from .checkpoint import (CheckpointError, build_dequantizer, build_model, load_checkpoint, run_config_of,
                         save_checkpoint, write_csv)
from .evaluate import INIT_STREAM, NOISE_STREAM, ORDER_STREAM, Splits, evaluate, prepare_splits, seeded
from .run_folder import claim, set_aside

METRIC_FIELDS = ["step", "epoch", "train_bpd", "train_eval_bpd", "val_bpd", "val_sem", "test_bpd", "test_sem",
                 "lr", "images_per_s", "wall_s"]


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch.device ("auto": cuda if available, else cpu); a device this machine does not
    have raises a ValueError saying so, before any work is done."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={name!r} but CUDA is not available on this machine; use "
                             f"train.device='cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"train.device={name!r} but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s); use cuda:0 ... cuda:{torch.cuda.device_count() - 1} or 'auto'")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"train.device={name!r} but MPS is not available on this machine; use 'cpu' or 'auto'")
    return device


def update_ema(ema: Glow, model: Glow, decay: float) -> None:
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p, 1 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def maybe_init_distributed(device: torch.device) -> None:
    """Under torchrun (WORLD_SIZE > 1), join the process group: gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


# ---------------------------------------------------------------------------------------------------- training
class _JointObjective(torch.nn.Module):
    """log p(x | y) and the class logits of the same pass, for the classification loss of a class-conditional
    model; one module, so that DistributedDataParallel sees a single forward call."""

    def __init__(self, model: Glow):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        zs, logdet, log_pz = self.model._encode(x, y)
        return log_pz + logdet, self.model.classify(zs)


def training_loss(net, x, y, run: RunConfig, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, its bits/dim part) of a batch. The loss is the mean bits/dim of log p(x | y), plus, when
    ``train.y_weight`` > 0, y_weight · the cross-entropy of the classifier head in bits per image (official code:
    ``bits_x + weight_y * bits_y`` with ``bits_y`` = softmax cross-entropy / ln 2). ``net`` is the model, or its
    ``_JointObjective`` when y_weight > 0, or a ``DequantizedModel`` (then x is the discrete batch, ``kwargs`` holds
    q's base ``noise`` and the loss is the negative ELBO in bits/dim); any of them possibly wrapped in
    DistributedDataParallel."""
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


@dataclass
class _Run:
    """Everything one training run holds: what ``_setup`` builds, and the progress that checkpoints save and
    ``_resume_or_initialise`` restores."""

    run: RunConfig
    out_dir: Path
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
    saved_step: int | None = None
    wall_before: float = 0.0                     # wall seconds of the run before this process resumed it
    t_start: float = 0.0

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
    def steps_per_epoch(self) -> int:
        return len(self.splits.train_x) // self.run.train.batch_size

    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start


def train(run: RunConfig, out_dir, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, restart: bool = False) -> TrainResult:
    """Train ``run`` into ``out_dir``: ``metrics.csv``, ``last.pt`` (resume), ``best.pt`` (lowest val bits/dim).

    ``resume`` continues ``last.pt`` exactly; ``restart`` moves the folder's checkpoints and metrics aside (into a
    dated subfolder, ``run_folder.set_aside``) and starts fresh. ``stop_after`` ends the run after that many
    steps, as an interruption would (tests use it for resume). The folder is held by this process while it trains
    (``run_folder.claim``: a second writer fails at once).
    Non-finite loss or gradient: the batch is skipped and the step recorded; with ``nonfinite_policy="reload"``,
    ``max_skips`` skips in a row reload ``last.pt`` (the last good state) and halve the learning rate. A run that
    reaches its last step without one finite validation evaluation raises ``TrainingFailed``, its files set aside.
    """
    if resume and restart:
        raise ValueError("resume=True and restart=True exclude each other: resume continues last.pt, restart moves "
                         "it aside and starts over")
    r = _setup(run, Path(out_dir))
    folder = claim(r.out_dir) if r.rank == 0 else None      # only rank 0 writes the folder
    try:
        if restart and r.rank == 0:
            set_aside(r.out_dir, "replaced")
        _resume_or_initialise(r, resume)
        r.net = _objective(r)
        _steps(r, stop_after, progress)
        return _finish(r)
    finally:
        if folder is not None:
            folder.release()


def _steps(r: _Run, stop_after: int | None, progress: bool) -> None:
    """The loop: steps until the last one (or ``stop_after`` more), evaluating and checkpointing on schedule."""
    tc = r.run.train
    r.t_start = time.perf_counter()
    bar = tqdm(total=tc.steps, initial=r.step, disable=not progress or r.rank != 0, mininterval=2.0,
               desc=f"{r.run.model_type} {r.run.data.dataset}")
    r.window_t = time.perf_counter()
    end = tc.steps if stop_after is None else min(tc.steps, r.step + stop_after)
    r.model.train()
    while r.step < end:
        loss = _step(r, bar)
        if loss is not None:
            _evaluate_and_checkpoint(r, bar, loss)
    bar.close()


def _finish(r: _Run) -> TrainResult:
    """Save ``last.pt`` if the last step was not saved yet; a finished run without a finite evaluation fails."""
    if r.rank == 0 and r.saved_step != r.step:
        save_checkpoint(r.last_path, _snapshot(r))
    result = TrainResult(r.out_dir, r.step, r.best_val, r.test_at_best, r.events, r.wall_s())
    if r.rank == 0 and r.step >= r.run.train.steps and not math.isfinite(r.best_val):
        _fail(r, result)
    return result


def _fail(r: _Run, result: TrainResult) -> None:
    """Set the files of a run without a finite evaluation aside, so that the next attempt starts over instead of
    resuming a finished failure, and raise ``TrainingFailed``."""
    target = set_aside(r.out_dir, "failed")
    raise TrainingFailed(f"training into {r.out_dir} reached step {r.step} without a finite validation "
                         f"bits/dim ({len(r.rows)} evaluations, {len(r.events)} non-finite steps); its files were "
                         f"moved to {target}. Try a lower train.lr or train.grad_clip.", result)


def _setup(run: RunConfig, out_dir: Path) -> _Run:
    """Device, process group, data, and a freshly initialised model, dequantiser and optimizer."""
    tc = run.train
    device = resolve_device(tc.device)
    allocator = tune_allocator()                  # glibc: keep large buffers between steps ($GLOWLIB_ALLOCATOR)
    maybe_init_distributed(device)
    rank, world = _dist_info()
    if tc.batch_size % world:
        raise ValueError(f"train.batch_size={tc.batch_size} must be divisible by the number of processes ({world})")
    torch.manual_seed(tc.seed)                                    # model initialisation
    splits = prepare_splits(run)
    n_train = len(splits.train_x)
    if n_train < tc.batch_size:
        raise ValueError(f"train.batch_size={tc.batch_size} exceeds the {n_train} training images")
    if tc.y_weight > 0 and run.model.n_classes == 0:
        raise ValueError(f"train.y_weight={tc.y_weight} needs a class-conditional model (model.n_classes > 0); "
                         f"set model.n_classes or train.y_weight=0.0")
    model = build_model(run).to(device)
    deq = build_dequantizer(run)
    deq = deq.to(device) if deq is not None else None
    trainable = list(model.parameters()) + (list(deq.parameters()) if deq is not None else [])
    optimizer = (torch.optim.Adamax if tc.optimizer == "adamax" else torch.optim.Adam)(trainable, lr=tc.lr)
    return _Run(run, out_dir, device, rank, world, allocator, splits, model, deq, trainable, optimizer)


def _resume_or_initialise(r: _Run, resume: bool) -> None:
    """Continue from ``last.pt`` (``resume``), or initialise ActNorm from data and start the Polyak copies."""
    run, tc = r.run, r.run.train
    if resume and r.last_path.exists():
        state = load_checkpoint(r.last_path, map_location=r.device)
        if run_config_of(state, r.last_path).key() != run.key():         # execution-only fields may differ
            raise CheckpointError(f"{r.last_path} was written by a different config; use another --out or drop "
                                  f"--resume (the file was left as it is)")
        r.model.load_state_dict(state["model"])
        r.optimizer.load_state_dict(state["optimizer"])
        r.ema = build_model(run).to(r.device)
        r.ema.load_state_dict(state["ema"])
        if r.deq is not None:
            r.deq.load_state_dict(state["dequantizer"])
            r.ema_deq = copy.deepcopy(r.deq)
            r.ema_deq.load_state_dict(state["dequantizer_ema"])
        r.step, r.best_val, r.test_at_best = state["step"], state["best_val"], state["test_at_best"]
        r.lr_scale, r.events, r.wall_before = state["lr_scale"], state["nonfinite_events"], state["wall_s"]
        r.window, r.window_images = state["window"], state["window_images"]
        r.rows = [row for row in state["metrics"] if row["step"] <= r.step]
        torch.set_rng_state(state["rng"]["torch"])
    else:
        if r.out_dir.exists() and any(r.out_dir.glob("*.pt")) and r.rank == 0:
            raise FileExistsError(f"{r.out_dir} already holds checkpoints; pass --resume to continue them, "
                                  f"--restart to move them aside and start over, or choose another --out "
                                  f"(nothing was overwritten)")
        # ActNorm's data-dependent init on the same images on every rank (seeded), before DDP wraps the model
        n_bits, train_x = run.data.n_bits, r.splits.train_x
        init_idx = torch.randperm(len(train_x), generator=seeded(tc.seed, INIT_STREAM))[:tc.init_batch]
        x0 = dequantize(to_float(train_x[init_idx], n_bits), n_bits, seeded(tc.seed, INIT_STREAM, 1))
        r.model.initialize(x0.to(r.device), r.splits.train_y[init_idx].to(r.device) if r.conditional else None)
        r.ema = copy.deepcopy(r.model)
        r.ema_deq = copy.deepcopy(r.deq)
    r.ema.eval()
    if r.deq is not None:
        r.ema_deq.eval()


def _objective(r: _Run) -> torch.nn.Module:
    """What the loss calls: the model (log p(x)), with its dequantiser (log p(x̃) − log q(u | x)), or with its
    classifier head; one module either way, wrapped for DistributedDataParallel under torchrun."""
    run = r.run
    net = _JointObjective(r.model) if run.train.y_weight > 0 else \
        DequantizedModel(r.model, r.deq, run.data.n_bits) if r.deq is not None else r.model
    if r.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[r.device.index] if r.device.type == "cuda" else None,
            find_unused_parameters=r.conditional)               # the classifier head is unused without its loss
    return net


def _batch(r: _Run) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """This rank's part of step ``r.step``'s batch (x, y, extra arguments of the objective); the global batch and
    its noise depend on (seed, step) only."""
    tc, n_bits = r.run.train, r.run.data.n_bits
    local = tc.batch_size // r.world
    mine = slice(r.rank * local, (r.rank + 1) * local)
    epoch, within = divmod(r.step, r.steps_per_epoch)
    order = torch.randperm(len(r.splits.train_x), generator=seeded(tc.seed, ORDER_STREAM, epoch))
    idx = order[within * tc.batch_size:(within + 1) * tc.batch_size]
    noise = seeded(tc.seed, NOISE_STREAM, r.step)
    x = to_float(r.splits.train_x[idx], n_bits)
    if r.deq is None:
        x = dequantize(x, n_bits, noise)
        kwargs = {}
    else:                                  # base noise of q drawn on the CPU, so every device gets the same
        kwargs = {"noise": r.deq.draw_noise(x, noise)[mine].to(r.device)}
    y = r.splits.train_y[idx][mine].to(r.device) if r.conditional else None
    return x[mine].to(r.device), y, kwargs


def _step(r: _Run, bar) -> float | None:
    """One optimisation step; its loss, or None when the loss or gradient was not finite and the batch skipped."""
    tc = r.run.train
    x, y, kwargs = _batch(r)
    lr = tc.lr * r.lr_scale * min(1.0, (r.step + 1) / max(1, tc.warmup_steps))
    for group in r.optimizer.param_groups:
        group["lr"] = lr
    loss, bpd = training_loss(r.net, x, y, r.run, **kwargs)
    r.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(r.trainable, tc.grad_clip if tc.grad_clip > 0 else math.inf)
    stats = torch.stack([loss.detach(), grad_norm.detach(), bpd.detach()])
    if r.world > 1:                        # the global batch's mean loss; every rank takes the same decision
        dist.all_reduce(stats)
        stats[::2] /= r.world              # the losses (0, 2), not the summed gradient norm (1)
    stats = stats.cpu()
    if not torch.isfinite(stats).all():
        _skip(r, stats, bar)
        return None
    r.skips = 0
    r.optimizer.step()
    r.step += 1
    decay = min(tc.ema_decay, (1 + r.step) / (10 + r.step))
    update_ema(r.ema, r.model, decay)
    if r.deq is not None:
        update_ema(r.ema_deq, r.deq, decay)
    r.window.append(stats[2].item())       # train_bpd: the bits/dim part, without the classification term
    r.window_images += tc.batch_size
    bar.update(1)
    return stats[0].item()


def _skip(r: _Run, stats: torch.Tensor, bar) -> None:
    """A non-finite loss or gradient: record it, drop the batch, and after ``max_skips`` in a row (policy
    "reload") go back to the last good checkpoint at half the learning rate."""
    tc = r.run.train
    r.skips += 1
    r.events.append({"step": r.step, "loss": stats[0].item(), "grad_norm": stats[1].item(), "action": "skip"})
    if tc.nonfinite_policy == "reload" and r.skips >= tc.max_skips:
        if r.last_path.exists():
            state = load_checkpoint(r.last_path, map_location=r.device)
            r.model.load_state_dict(state["model"])
            r.optimizer.load_state_dict(state["optimizer"])
            r.ema.load_state_dict(state["ema"])
            if r.deq is not None:
                r.deq.load_state_dict(state["dequantizer"])
                r.ema_deq.load_state_dict(state["dequantizer_ema"])
        r.lr_scale *= 0.5
        r.events[-1]["action"] = f"reload last good checkpoint, lr x{r.lr_scale:g}"
        r.skips = 0
    bar.write(f"non-finite loss/gradient at step {r.step}: {r.events[-1]['action']}")
    r.step += 1                                                    # the batch is consumed, as in the replay
    bar.update(1)


def _evaluate_and_checkpoint(r: _Run, bar, loss: float) -> None:
    """After a step: evaluate every ``eval_every`` steps and at the end, save ``last.pt`` every ``ckpt_every``."""
    tc = r.run.train
    if r.step % tc.eval_every == 0 or r.step == tc.steps:
        images_per_s = r.window_images / (time.perf_counter() - r.window_t)
        if r.rank == 0:
            row = _evaluate(r, sum(r.window) / len(r.window), round(images_per_s, 2))
            bar.set_postfix(train=f"{row['train_bpd']:.3f}", val=f"{row['val_bpd']:.3f}")
        r.window, r.window_images = [], 0
        r.model.train()
        r.window_t = time.perf_counter()
    else:
        bar.set_postfix(bpd=f"{loss:.3f}", refresh=False)
    if r.rank == 0 and (r.step % tc.ckpt_every == 0 or r.step == tc.steps):
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
           "wall_s": round(r.wall_s(), 2)}
    r.rows.append(row)
    write_csv(r.out_dir / "metrics.csv", r.rows, METRIC_FIELDS)
    if val < r.best_val:                                         # False for NaN: never chosen
        r.best_val, r.test_at_best = val, test
        save_checkpoint(r.best_path, _snapshot(r))
    return row


def _snapshot(r: _Run) -> dict:
    """The checkpoint of the run as it stands: everything ``_resume_or_initialise`` restores."""
    extra = {} if r.deq is None else {"dequantizer": r.deq.state_dict(), "dequantizer_ema": r.ema_deq.state_dict()}
    return {**extra, "model": r.model.state_dict(), "ema": r.ema.state_dict(), "optimizer": r.optimizer.state_dict(),
            "step": r.step, "config": r.run.to_dict(), "best_val": r.best_val, "test_at_best": r.test_at_best,
            "lr_scale": r.lr_scale, "nonfinite_events": r.events, "metrics": r.rows, "window": r.window,
            "window_images": r.window_images, "wall_s": r.wall_s(), "torch_version": str(torch.__version__),
            "allocator": r.allocator, "rng": {"torch": torch.get_rng_state()}}
