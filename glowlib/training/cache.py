"""Trained-model cache: one trained model per full config, trained the first time and reused after that.

The folder of a run is ``<cache root>/<model_type>-<dataset>-<hash of the full RunConfig>/``. An unfinished run
(``last.pt`` but no ``done.json``) is resumed, so a killed ``make reproduce`` loses at most ``ckpt_every`` steps.
A run that ends without a finite evaluation raises ``TrainingFailed`` and gets no ``done.json``; its files are set
aside (``run_folder.set_aside``), so the next call trains it afresh.
The root is ``$GLOWLIB_CACHE``, else ``checkpoints/`` beside the package (kept out of git).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .. import __version__
from ..config import RunConfig
from ..files import atomic_write_bytes
from ..models import Dequantizer, Glow
from ..profiles import profile_config
from .checkpoint import load_trained_with_dequantizer
from .evaluate import evaluate, prepare_splits
from .loop import train


def cache_root() -> Path:
    env = os.environ.get("GLOWLIB_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def run_dir(run: RunConfig) -> Path:
    return cache_root() / f"{run.model_type}-{run.data.dataset}-{run.key()}"


@dataclass
class TrainedModel:
    """A trained model (Polyak weights, eval mode) with its config, training curves and summary."""

    model: Glow
    run: RunConfig
    path: Path                   # run folder
    metrics: pd.DataFrame        # one row per evaluation: train/val/test bits/dim, lr, images/s, wall seconds
    summary: dict                # best val bits/dim, test bits/dim at that checkpoint, wall seconds, steps, ...
    dequantizer: Dequantizer | None = None   # the learned q(u | x) of a variational-dequantisation run


@contextmanager
def _locked(path: Path, wait: bool = True):
    """Exclusive lock so that two processes (make -j, ``glowlib models --workers``) never train the same run at
    once. ``wait=False``: raise ``BlockingIOError`` at once when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(run: RunConfig) -> Path:
    """The lock a process holds while it trains ``run`` into the cache (beside the run folder)."""
    folder = run_dir(run)
    return folder.with_name(folder.name + ".lock")


def _train_into_cache(run: RunConfig, progress) -> None:
    """Train (or resume) ``run`` into its cache folder and write ``done.json``; the caller holds the lock."""
    folder = run_dir(run)
    result = train(run, folder, resume=(folder / "last.pt").exists(), progress=progress)
    started = time.perf_counter()
    whole = _whole_test(run, folder)
    # when it finished, with the scoring's seconds and the threads it ran on: what a reader needs to add up the
    # wall time of trainings that ran side by side (book/build.py)
    summary = {**whole, "key": run.key(), "steps": result.step, "best_val_bpd": result.best_val_bpd,
               "test_bpd_at_best_val": result.test_bpd_at_best, "wall_s": round(result.wall_s, 1),
               "cpu_s": None if math.isnan(result.cpu_s) else round(result.cpu_s, 1),
               "whole_test_s": round(time.perf_counter() - started, 1), "finished": _now(),
               "threads": torch.get_num_threads(),
               "nonfinite_events": result.nonfinite_events, "glowlib_version": __version__,
               "config": run.to_dict(), **({"stopped": result.stopped} if result.stopped else {})}
    atomic_write_bytes(folder / "done.json", json.dumps(summary, indent=1).encode())


def _now(seconds: float | None = None) -> str:
    """Local time (now, or ``seconds`` since the epoch) as ISO 8601 with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _whole_test(run: RunConfig, folder: Path) -> dict:
    """A run whose periodic evaluations see only part of the test split (``train.n_test_eval``, a class-balanced
    prefix of the stratified order) gets its validation-chosen checkpoint (``best.pt``, Polyak weights) scored on
    the whole test split once, at the end: ``test_bpd_full``, its standard error and image count. Empty when the
    periodic evaluations already see every test image."""
    tc = run.train
    if not tc.n_test_eval:                   # the periodic evaluations saw every test image
        return {}
    splits = prepare_splits(run)
    if tc.n_test_eval >= len(splits.test_x):
        return {}
    model, dequantizer = load_trained_with_dequantizer(folder / "best.pt")
    labels = splits.test_y if run.model.n_classes else None
    bpd, sem = evaluate(model, splits.test_x, n_bits=run.data.n_bits, batch_size=tc.eval_batch, seed=tc.seed,
                        labels=labels, dequantizer=dequantizer)
    return {"test_bpd_full": bpd, "test_sem_full": sem, "n_test_full": len(splits.test_x)}


def train_if_free(run: RunConfig, progress=True, wait: bool = False, announce=None) -> str:
    """Make sure ``run`` is in the cache: "cached" (it was), "trained" (this process trained or resumed it), or,
    when another process holds its lock, "busy" (nothing done) or, with ``wait``, "waited" (this process waited for
    the other to finish; had that one failed, this one trains the run and says "trained"). ``announce()`` is
    called when this process is about to train."""
    done = run_dir(run) / "done.json"
    if done.exists():
        return "cached"
    try:
        with _locked(lock_path(run), wait=False):
            if done.exists():
                return "cached"
            if announce:
                announce()
            _train_into_cache(run, progress)
            return "trained"
    except BlockingIOError:
        if not wait:
            return "busy"
    with _locked(lock_path(run)):
        if done.exists():
            return "waited"
        if announce:
            announce()
        _train_into_cache(run, progress)
        return "trained"


def trained(run: RunConfig, device: str = "cpu", progress=True) -> TrainedModel:
    """The trained model of ``run``: from the cache if finished, else trained (or resumed) now; if another
    process is training it, this one waits for it."""
    folder = run_dir(run)
    done = folder / "done.json"
    with _locked(lock_path(run)):
        if not done.exists():
            _train_into_cache(run, progress)
    summary = json.loads(done.read_text())
    # a run finished before done.json named the time: the file's own time, when it was written
    summary.setdefault("finished", _now(done.stat().st_mtime))
    model, dequantizer = load_trained_with_dequantizer(folder / "best.pt", device=device)
    return TrainedModel(model, run, folder, pd.read_csv(folder / "metrics.csv"), summary, dequantizer)


def get_model(profile: str, dataset: str = "mnist5k", model_type: str = "glow", seed: int = 0, overrides=(),
              device: str = "cpu", progress: bool = True, tier: str = "compare") -> TrainedModel:
    """Shorthand: the trained model of a profile's preset for ``dataset`` (see ``glowlib.profiles``)."""
    return trained(profile_config(profile, dataset, model_type, seed, overrides, tier), device, progress)
