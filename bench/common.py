"""What every benchmark shares: the command line, building glowlib's model and the reference with the same
weights, timing in alternating repeats, and the JSON record (config, environment, figures) written atomically.

The development machine is shared, so a single timing means little: every comparison runs its contenders in ONE
process, interleaved repeat by repeat (ABBA order), and reports medians, minima and the ratio of medians.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from glowlib import Glow, GlowConfig  # noqa: E402
from glowlib.objective import bits_per_dim  # noqa: E402
from glowlib.results import cpu_name, git_state  # noqa: E402
from glowlib.files import atomic_write_bytes  # noqa: E402


def parser(description: str, **defaults) -> argparse.ArgumentParser:
    """The model/batch/threads/repeats options every script takes; ``defaults`` overrides their defaults."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--levels", type=int, default=3, help="L")
    p.add_argument("--depth", type=int, default=8, help="K")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--coupling", choices=("affine", "additive"), default="affine")
    p.add_argument("--no-lu", action="store_true", help="plain 1x1 conv instead of the LU-decomposed one")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--allocator", choices=("system", "tuned"), default="system",
                   help="the C allocator as it is (default: as a plain port runs), or as glowlib.training sets it "
                        "(glowlib.runtime.tune_allocator); it holds for every contender in the process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="other GlowConfig fields of our model, e.g. inv_backprop=False fused=False")
    p.add_argument("--no-reference", action="store_true", help="time our model only")
    p.add_argument("--out", help="also write the JSON record to this file (atomically)")
    p.set_defaults(**defaults)
    return p


def refuse_uncommitted() -> None:
    """Before any work, where the script will write a record: stop (one line, exit status 1) in a checkout with
    uncommitted changes outside results/, unless GLOWLIB_ALLOW_DIRTY=1 says to record anyway. The records are
    results the Cost page shows, and only a commit reproduces them (``glowlib.results.check_committed``)."""
    from glowlib.results import UncommittedChanges, check_committed
    try:
        check_committed(git_state(ROOT))
    except UncommittedChanges as e:
        raise SystemExit(f"error: {e}") from None


def setup(args) -> torch.device:
    from glowlib.runtime import tune_allocator
    if getattr(args, "out", None):
        refuse_uncommitted()
    args.allocator_state = tune_allocator(args.allocator)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch.device(args.device)


def glow_config(args, **changes) -> GlowConfig:
    extra = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            extra[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            extra[key] = raw
    extra.update(changes)
    return GlowConfig(in_channels=args.channels, image_size=args.size, n_levels=args.levels, depth=args.depth,
                      width=args.width, coupling=args.coupling, lu=not args.no_lu, **extra)


def images(args, n: int | None = None, device="cpu", seed: int = 1) -> torch.Tensor:
    """A dequantised batch of random 8-bit images in [-0.5, 0.5] (speed does not depend on the values)."""
    g = torch.Generator().manual_seed(seed)
    shape = (n or args.batch, args.channels, args.size, args.size)
    x = torch.randint(0, 256, shape, generator=g) / 256 - 0.5 + torch.rand(shape, generator=g) / 256
    return x.to(device)


def build(cfg: GlowConfig, x: torch.Tensor, reference: bool = True):
    """Our model with ActNorm initialised on x and every weight moved off its initial value, and the reference
    (``bench/reference.py``) holding the same weights; the reference is None when not wanted."""
    from bench.reference import load_from_glowlib
    torch.manual_seed(0)
    model = Glow(cfg).to(x.device)
    model.initialize(x)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g).to(p.device))
    return model, (load_from_glowlib(model) if reference else None)


def train_step_fn(model, x, n_dims: int, n_bits: int = 8, lr: float = 1e-4):
    """One training step as glowlib.training takes it (bits/dim, backward, Adamax); returns a closure."""
    optimizer = torch.optim.Adamax(model.parameters(), lr=lr)
    model.train()

    def step():
        loss = bits_per_dim(model(x), n_dims, n_bits).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def alternate(fns: dict, repeats: int, warmup: int, device="cpu") -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved: repeat r runs them in order, r+1 in reverse order (ABBA),
    so that load from other processes on the machine falls on all of them alike."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync(device)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def stats(seconds: list[float], per: float = 1.0) -> dict:
    """Median, minimum and quartiles of seconds/``per`` (e.g. per image)."""
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return {"median": statistics.median(seconds) / per, "min": min(seconds) / per, "q1": q[0] / per,
            "q3": q[2] / per, "n": len(seconds)}


def paired_ratio(times: dict, slow: str, fast: str) -> float:
    """Median over repeats of time[slow]/time[fast] taken in the same round, moments apart: steadier than the
    ratio of medians when the load of the machine drifts during the run."""
    return statistics.median(a / b for a, b in zip(times[slow], times[fast]))


def environment(args) -> dict:
    """Where and how the figures were taken: they mean little without the load the machine was under."""
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"device": str(device), "device_name": name, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "torch": torch.__version__,
            "python": platform.python_version(), "allocator": getattr(args, "allocator_state", None),
            # dirty ignores results/, where run_all.py writes the records of the jobs before
            **git_state(ROOT),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def sample_gates(name: str, model, run, n: int = 500) -> dict:
    """The study notebooks' sanity gates (``glowlib.analysis.check_gates``: the measuring classifier's confidence on
    T = 1 samples against real images', the share of non-finite draws, the pixel mean) of a trained ``model`` of
    ``run``, with the pixel means at T = 0.7 and of the real images: a class-balanced draw of n of the run's
    validation images (the test split is not looked at)."""
    from glowlib.analysis import cached_classifier
    from glowlib.analysis.judging import check_gates, reference_set
    from glowlib.analysis.sampling import samples
    from glowlib.training import prepare_splits
    splits = prepare_splits(run)
    real = reference_set(splits.val_x, splits.val_y, min(n, len(splits.val_x)), seed=0)
    gates, _ = check_gates(name, model, cached_classifier(run.data.dataset), real, n, seed=0)
    return {"gates": gates, "pixel_mean_t07": samples(model, n, 0.7, 0).float().mean().item() / 255,
            "real_pixel_mean": real.float().mean().item() / 255}


def config_record(args, cfg: GlowConfig) -> dict:
    import dataclasses
    return {"model": dataclasses.asdict(cfg), "batch": args.batch, "threads": args.threads,
            "repeats": args.repeats, "warmup": args.warmup}


def emit(record: dict, out: str | None) -> None:
    """Print the JSON record; with ``out``, also write it there atomically."""
    text = json.dumps(record, indent=1)
    print(text)
    if out:
        atomic_write_bytes(Path(out), (text + "\n").encode())
