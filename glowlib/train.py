"""Training: maximum likelihood with Adam(ax), linear warmup, gradient clipping, Polyak (EMA) weights, atomic
resumable checkpoints, a non-finite-loss policy, and DistributedDataParallel under ``torchrun``.

Determinism: the batch order of epoch e comes from a generator seeded with (seed, e), and the dequantisation noise of
step t from one seeded with (seed, t). A run is therefore a pure function of its config, and resuming from a
checkpoint replays exactly what the uninterrupted run would have done.

Checkpoint selection uses the validation images held out of the *training* split, never the test split.
"""
from __future__ import annotations

import copy
import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import RunConfig
from .data import ImageData, load_dataset, split_validation, to_float
from .dequantization import DequantizedModel, Dequantizer, importance_weighted_bits_per_dim, make_dequantizer
from .model import Glow, RealNVP
from .objective import bits_per_dim, dequantize
from .runtime import tune_allocator

METRIC_FIELDS = ["step", "epoch", "train_bpd", "train_eval_bpd", "val_bpd", "val_sem", "test_bpd", "test_sem",
                 "lr", "images_per_s", "wall_s"]
_NOISE_STREAM, _ORDER_STREAM, _INIT_STREAM, _EVAL_STREAM = 1, 2, 3, 4


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read; it is left untouched."""


# ---------------------------------------------------------------------------------------------------- helpers
def build_model(run: RunConfig) -> Glow:
    if run.model_type == "macow":
        from .macow import MaCow
        return MaCow(run.model)
    return (RealNVP if run.model_type == "realnvp" else Glow)(run.model)


def build_dequantizer(run: RunConfig) -> Dequantizer | None:
    """The learned q(u | x) of a ``train.dequantization="variational"`` run (its default size), else None: uniform
    noise needs no module."""
    if run.train.dequantization == "uniform":
        return None
    return make_dequantizer(run.train.dequantization, run.model.in_channels)


def seeded(seed: int, stream: int, index: int = 0) -> torch.Generator:
    """An independent, reproducible generator for (seed, stream, index)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_000_007 + index)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and a rename, so a crash never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint; a missing or corrupt file raises CheckpointError naming it (the file is not touched)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated / garbage files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a glowlib checkpoint ({type(e).__name__}: "
                              f"{e}). It was left as it is; delete it or train without --resume.") from e
    missing = {"model", "ema", "optimizer", "step", "config"} - set(state) if isinstance(state, dict) else {"all"}
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}; it is not a glowlib training checkpoint")
    return state


def load_trained(path, device="cpu", ema: bool = True) -> Glow:
    """The model of a checkpoint, with its Polyak-averaged weights by default, in eval mode."""
    return load_trained_with_dequantizer(path, device, ema)[0]


def load_trained_with_dequantizer(path, device="cpu", ema: bool = True) -> tuple[Glow, Dequantizer | None]:
    """(model, dequantiser) of a checkpoint, Polyak-averaged by default, in eval mode; the dequantiser is None for
    a uniform-dequantisation run."""
    state = load_checkpoint(path, map_location=device)
    run = RunConfig.from_dict(state["config"])
    model = build_model(run).to(device)
    model.load_state_dict(state["ema" if ema else "model"])
    dequantizer = build_dequantizer(run)
    if dequantizer is not None:
        if "dequantizer" not in state:
            raise CheckpointError(f"checkpoint {path} is of a variational-dequantisation run but holds no "
                                  f"dequantiser; it is incomplete (the file was left as it is)")
        dequantizer.to(device).load_state_dict(state["dequantizer_ema" if ema else "dequantizer"])
        dequantizer.eval()
    return model.eval(), dequantizer


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def evaluate(model: Glow, images: torch.Tensor, n_bits: int, batch_size: int = 500, seed: int = 0,
             n_samples: int = 1, labels=None, dequantizer: Dequantizer | None = None) -> tuple[float, float]:
    """Mean bits/dim over all of ``images`` (uint8) and its standard error over images (:func:`bits_per_image`)."""
    return mean_and_sem(bits_per_image(model, images, n_bits, batch_size, seed, n_samples, labels, dequantizer))


def mean_and_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-image values and its standard error (NaN for one image)."""
    sem = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean().item(), sem


@torch.no_grad()
def bits_per_image(model: Glow, images: torch.Tensor, n_bits: int, batch_size: int = 500, seed: int = 0,
                   n_samples: int = 1, labels=None, dequantizer: Dequantizer | None = None) -> torch.Tensor:
    """Bits/dim of each of ``images`` (uint8), float64 (N,). The noise of a batch depends on (seed, its first
    index) only, so the values of a prefix ``images[:n]`` are the first n of the whole set's.

    With ``n_samples`` = k > 1 each image's log-probability is the importance-weighted estimate
    log (1/k) Σ_j p(x + u_j), u_j ~ U(0, 1/n_bins)^D: a lower bound on log P(x) that tightens as k grows.
    With a (variational) ``dequantizer`` q, u_j ~ q(u | x) and each term is weighted by 1/q: k = 1 is the ELBO,
    k > 1 the importance-weighted bound (``dequantization.importance_weighted_bits_per_dim``). Without one the
    model is scored as it is, so an 8-bit model can be scored on 5-bit images (``reviewers.bpd_at_more_bits``).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    device = next(model.parameters()).device
    cfg = model.config
    per_image = []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size], n_bits)   # noise drawn on the CPU: same on every device
        y = None if labels is None else labels[start:start + batch_size].to(device)
        g = seeded(seed, _EVAL_STREAM, start)
        if dequantizer is not None:
            bpd = importance_weighted_bits_per_dim(model, x.to(device), dequantizer, n_bits, n_samples, y, g)
            per_image.append(bpd.double().cpu())
            continue
        log_px = torch.stack([model.log_prob(dequantize(x, n_bits, g).to(device), y)
                              for _ in range(n_samples)])
        log_px = torch.logsumexp(log_px, 0) - math.log(n_samples)
        per_image.append(bits_per_dim(log_px, cfg.n_dims, n_bits).double().cpu())
    return torch.cat(per_image)


@dataclass
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    data: ImageData = field(repr=False)


def prepare_splits(run: RunConfig) -> Splits:
    """Load the dataset, check it fits the model, and hold a validation part out of the training images."""
    # CelebA is centre-cropped and resized to the model's size as it loads; other datasets are never resized
    size = run.model.image_size if run.data.dataset == "celeba" else None
    data = load_dataset(run.data.dataset, run.data.data_root, image_size=size)
    expected = (run.model.in_channels, run.model.image_size, run.model.image_size)
    if data.image_shape != expected:
        raise ValueError(f"dataset {run.data.dataset!r} has images of shape {data.image_shape}, but the model "
                         f"config expects {expected}; set model.in_channels/model.image_size to match")
    (tx, ty), (vx, vy) = split_validation(data.train_images, data.train_labels, run.data.n_val, run.train.seed)
    return Splits(tx, ty, vx, vy, data.test_images, data.test_labels, data)


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


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    best_val_bpd: float
    test_bpd_at_best: float
    nonfinite_events: list
    wall_s: float


def train(run: RunConfig, out_dir, resume: bool = False, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``run`` into ``out_dir``: ``metrics.csv``, ``last.pt`` (resume), ``best.pt`` (lowest val bits/dim).

    ``stop_after`` ends the run after that many steps, as an interruption would (tests use it for resume).
    Non-finite loss or gradient: the batch is skipped and the step recorded; with ``nonfinite_policy="reload"``,
    ``max_skips`` skips in a row reload ``last.pt`` (the last good state) and halve the learning rate.
    """
    out_dir = Path(out_dir)
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
    steps_per_epoch = n_train // tc.batch_size
    conditional = run.model.n_classes > 0
    if tc.y_weight > 0 and not conditional:
        raise ValueError(f"train.y_weight={tc.y_weight} needs a class-conditional model (model.n_classes > 0); "
                         f"set model.n_classes or train.y_weight=0.0")

    model = build_model(run).to(device)
    deq = build_dequantizer(run)                  # None: uniform noise
    deq = deq.to(device) if deq is not None else None
    ema_deq = None
    trainable = list(model.parameters()) + (list(deq.parameters()) if deq is not None else [])
    optimizer = (torch.optim.Adamax if tc.optimizer == "adamax" else torch.optim.Adam)(trainable, lr=tc.lr)
    last_path, best_path, metrics_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "metrics.csv"
    rows, events, step, best_val, test_at_best, lr_scale, wall_before = [], [], 0, math.inf, math.nan, 1.0, 0.0
    window, window_images = [], 0           # training losses since the last evaluation (checkpointed too)

    if resume and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        if RunConfig.from_dict(state["config"]).key() != run.key():     # execution-only fields may differ
            raise CheckpointError(f"{last_path} was written by a different config; use another --out or drop "
                                  f"--resume (the file was left as it is)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema = build_model(run).to(device)
        ema.load_state_dict(state["ema"])
        if deq is not None:
            deq.load_state_dict(state["dequantizer"])
            ema_deq = copy.deepcopy(deq)
            ema_deq.load_state_dict(state["dequantizer_ema"])
        step, best_val, test_at_best = state["step"], state["best_val"], state["test_at_best"]
        lr_scale, events, wall_before = state["lr_scale"], state["nonfinite_events"], state["wall_s"]
        window, window_images = state["window"], state["window_images"]
        rows = [r for r in state["metrics"] if r["step"] <= step]
        torch.set_rng_state(state["rng"]["torch"])
    else:
        if out_dir.exists() and any(out_dir.glob("*.pt")) and rank == 0:
            raise FileExistsError(f"{out_dir} already holds checkpoints; pass --resume to continue them or choose "
                                  f"another --out (nothing was overwritten)")
        # ActNorm's data-dependent init on the same images on every rank (seeded), before DDP wraps the model
        init_idx = torch.randperm(n_train, generator=seeded(tc.seed, _INIT_STREAM))[:tc.init_batch]
        x0 = dequantize(to_float(splits.train_x[init_idx], run.data.n_bits), run.data.n_bits,
                        seeded(tc.seed, _INIT_STREAM, 1))
        model.initialize(x0.to(device), splits.train_y[init_idx].to(device) if conditional else None)
        ema = copy.deepcopy(model)
        ema_deq = copy.deepcopy(deq)
    ema.eval()
    if deq is not None:
        ema_deq.eval()

    # what the loss calls: the model (log p(x)), with its dequantiser (log p(x̃) − log q(u | x)), or with its
    # classifier head; one module either way, for DistributedDataParallel
    net = _JointObjective(model) if tc.y_weight > 0 else \
        DequantizedModel(model, deq, run.data.n_bits) if deq is not None else model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=conditional)                   # the classifier head is unused without its loss

    def snapshot():
        extra = {} if deq is None else {"dequantizer": deq.state_dict(), "dequantizer_ema": ema_deq.state_dict()}
        return {**extra, "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "config": run.to_dict(), "best_val": best_val, "test_at_best": test_at_best,
                "lr_scale": lr_scale, "nonfinite_events": events, "metrics": rows, "window": window,
                "window_images": window_images,
                "wall_s": wall_before + time.perf_counter() - t_start, "torch_version": torch.__version__,
                "allocator": allocator, "rng": {"torch": torch.get_rng_state()}}

    def evaluate_row(train_window, images_per_s):
        nonlocal best_val, test_at_best
        ev = dict(n_bits=run.data.n_bits, batch_size=tc.eval_batch, seed=tc.seed,
                  dequantizer=ema_deq)           # variational: the ELBO bits/dim, on the Polyak weights of both
        val, val_sem = evaluate(ema, splits.val_x, labels=splits.val_y if conditional else None, **ev) \
            if len(splits.val_x) else (math.nan, math.nan)
        n_test = tc.n_test_eval or len(splits.test_x)
        test, test_sem = evaluate(ema, splits.test_x[:n_test], labels=splits.test_y[:n_test] if conditional else None,
                                  **ev)
        n_te = tc.n_train_eval
        train_eval = evaluate(ema, splits.train_x[:n_te], labels=splits.train_y[:n_te] if conditional else None,
                              **ev)[0] if n_te else math.nan
        row = {"step": step, "epoch": round(step / steps_per_epoch, 3), "train_bpd": train_window,
               "train_eval_bpd": train_eval, "val_bpd": val, "val_sem": val_sem, "test_bpd": test,
               "test_sem": test_sem, "lr": optimizer.param_groups[0]["lr"], "images_per_s": images_per_s,
               "wall_s": round(wall_before + time.perf_counter() - t_start, 2)}
        rows.append(row)
        write_csv(metrics_path, rows, METRIC_FIELDS)
        chooser = val if len(splits.val_x) else -step              # no validation part: keep the latest
        if chooser < best_val:
            best_val, test_at_best = chooser, test
            save_checkpoint(best_path, snapshot())
        return row

    t_start = time.perf_counter()
    bar = tqdm(total=tc.steps, initial=step, disable=not progress or rank != 0, mininterval=2.0,
               desc=f"{run.model_type} {run.data.dataset}")
    window_t, skips, saved_step = time.perf_counter(), 0, None
    local = tc.batch_size // world
    end = tc.steps if stop_after is None else min(tc.steps, step + stop_after)
    model.train()
    while step < end:
        epoch, within = divmod(step, steps_per_epoch)
        order = torch.randperm(n_train, generator=seeded(tc.seed, _ORDER_STREAM, epoch))
        idx = order[within * tc.batch_size:(within + 1) * tc.batch_size]
        noise = seeded(tc.seed, _NOISE_STREAM, step)
        x = to_float(splits.train_x[idx], run.data.n_bits)
        if deq is None:
            x = dequantize(x, run.data.n_bits, noise)
            kwargs = {}
        else:                              # base noise of q drawn on the CPU, so every device gets the same
            kwargs = {"noise": deq.draw_noise(x, noise)[rank * local:(rank + 1) * local].to(device)}
        x = x[rank * local:(rank + 1) * local].to(device)
        y = splits.train_y[idx][rank * local:(rank + 1) * local].to(device) if conditional else None
        lr = tc.lr * lr_scale * min(1.0, (step + 1) / max(1, tc.warmup_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr

        loss, bpd = training_loss(net, x, y, run, **kwargs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, tc.grad_clip if tc.grad_clip > 0 else math.inf)
        stats = torch.stack([loss.detach(), grad_norm.detach(), bpd.detach()])
        if world > 1:                       # the global batch's mean loss; every rank takes the same decision
            dist.all_reduce(stats)
            stats[::2] /= world            # the losses (0, 2), not the summed gradient norm (1)
        stats = stats.cpu()
        batch_loss = stats[0].item()
        if not torch.isfinite(stats).all():
            skips += 1
            events.append({"step": step, "loss": batch_loss, "grad_norm": stats[1].item(), "action": "skip"})
            if tc.nonfinite_policy == "reload" and skips >= tc.max_skips:
                if last_path.exists():
                    state = load_checkpoint(last_path, map_location=device)
                    model.load_state_dict(state["model"])
                    optimizer.load_state_dict(state["optimizer"])
                    ema.load_state_dict(state["ema"])
                    if deq is not None:
                        deq.load_state_dict(state["dequantizer"])
                        ema_deq.load_state_dict(state["dequantizer_ema"])
                lr_scale *= 0.5
                events[-1]["action"] = f"reload last good checkpoint, lr x{lr_scale:g}"
                skips = 0
            bar.write(f"non-finite loss/gradient at step {step}: {events[-1]['action']}")
            step += 1                                              # the batch is consumed, as in the replay
            bar.update(1)
            continue
        skips = 0
        optimizer.step()
        step += 1
        decay = min(tc.ema_decay, (1 + step) / (10 + step))
        update_ema(ema, model, decay)
        if deq is not None:
            update_ema(ema_deq, deq, decay)
        window.append(stats[2].item())     # train_bpd: the bits/dim part, without the classification term
        window_images += tc.batch_size
        bar.update(1)
        if step % tc.eval_every == 0 or step == tc.steps:
            images_per_s = window_images / (time.perf_counter() - window_t)
            if rank == 0:
                row = evaluate_row(sum(window) / len(window), round(images_per_s, 2))
                bar.set_postfix(train=f"{row['train_bpd']:.3f}", val=f"{row['val_bpd']:.3f}")
            window, window_images = [], 0
            model.train()
            window_t = time.perf_counter()
        else:
            bar.set_postfix(bpd=f"{batch_loss:.3f}", refresh=False)
        if rank == 0 and (step % tc.ckpt_every == 0 or step == tc.steps):
            save_checkpoint(last_path, snapshot())
            saved_step = step
    bar.close()
    if rank == 0 and saved_step != step:
        save_checkpoint(last_path, snapshot())
    return TrainResult(out_dir, step, best_val, test_at_best, events,
                       wall_before + time.perf_counter() - t_start)

