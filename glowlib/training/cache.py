"""Trained-model cache: one trained model per full config, trained the first time and reused after that.

The folder of a run is ``<cache root>/<model_type>-<dataset>-<hash of the full RunConfig>/``. An unfinished run
(``last.pt`` but no ``done.json``) is resumed, so a killed ``make reproduce`` loses at most ``ckpt_every`` steps.
A run that ends without a finite evaluation raises ``TrainingFailed`` and gets no ``done.json``; its files are set
aside (``run_folder.set_aside``), so the next call trains it afresh.

An entry is served only when it is whole: ``done.json`` readable and naming this config's key, ``metrics.csv``, and
a ``best.pt`` whose checksum matches, whose contents pass ``checkpoint.check_state`` and whose config hashes to the
entry's key. Anything else (a checkpoint of another config copied in, a file lost while the run trained, a
``done.json`` that is not JSON) is moved aside whole, to ``<folder>.set-aside-<date>/`` beside it, never deleted,
and the run is trained again, with one line on stderr saying so. A finished entry is read without taking its lock,
so that a read-only cache serves its models.
The root is ``$GLOWLIB_CACHE``, else ``checkpoints/`` beside the package (kept out of git).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..files import package_version
from ..config import RunConfig
from ..files import atomic_write_bytes
from ..models import Dequantizer, Glow
from ..profiles import profile_config
from .checkpoint import (CheckpointError, build_dequantizer, build_model, check_state, load_checkpoint,
                         load_trained_with_dequantizer)
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
    """Train (or resume) ``run`` into its cache folder and write ``done.json``; the caller holds the lock. A
    checkpoint of the folder that cannot be resumed sets the folder aside and trains afresh; ``done.json`` is
    written only once ``best.pt`` and ``metrics.csv`` are there and ``best.pt`` is this run's."""
    folder = run_dir(run)
    resume = (folder / "last.pt").exists()
    try:
        # not resuming: files of an attempt killed before its first checkpoint (metrics.csv) go to a replaced-*
        # subfolder instead of stopping the run
        result = train(run, folder, resume=resume, restart=not resume, progress=progress)
    except CheckpointError as e:
        if not resume or str(folder / "last.pt") not in str(e):
            raise
        set_aside_entry(run, f"its last.pt cannot be resumed ({_first_sentence(e)})")
        resume, result = False, train(run, folder, progress=progress)
    problem = _entry_problem(run, folder, finished=False)
    if problem and resume:                  # files lost before this process resumed it: start over, once
        set_aside_entry(run, f"resumed, {problem}")
        result = train(run, folder, progress=progress)
        problem = _entry_problem(run, folder, finished=False)
    if problem:
        raise CheckpointError(f"training into {folder} ended, but {problem}; no done.json was written, so the next "
                              f"use sets the folder aside and trains it again")
    started = time.perf_counter()
    whole = _whole_test(run, folder)
    # when it finished, with the scoring's seconds and the threads it ran on: what a reader needs to add up the
    # wall time of trainings that ran side by side (book/build.py)
    summary = {**whole, "key": run.key(), "steps": result.step, "best_val_bpd": result.best_val_bpd,
               "test_bpd_at_best_val": result.test_bpd_at_best, "wall_s": round(result.wall_s, 1),
               "cpu_s": None if math.isnan(result.cpu_s) else round(result.cpu_s, 1),
               "whole_test_s": round(time.perf_counter() - started, 1), "finished": _now(),
               "threads": torch.get_num_threads(),
               "nonfinite_events": result.nonfinite_events, "glowlib_version": package_version(),
               "config": run.to_dict(), **({"stopped": result.stopped} if result.stopped else {})}
    atomic_write_bytes(folder / "done.json", json.dumps(summary, indent=1).encode())


def _first_sentence(e: Exception) -> str:
    return str(e).split(". ")[0]


def _read_summary(done: Path) -> dict:
    """``done.json`` as a dict; a file that is not a JSON object raises CheckpointError naming it."""
    try:
        summary = json.loads(done.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{done} is not a readable run summary ({type(e).__name__}: {e})") from e
    if not isinstance(summary, dict):
        raise CheckpointError(f"{done} is not a run summary: it holds a {type(summary).__name__}, not a JSON object")
    return summary


def _entry_problem(run: RunConfig, folder: Path, finished: bool = True) -> str:
    """Why the cache entry of ``run`` cannot be served, without reading its checkpoint ("" if it looks whole): a
    missing or unreadable ``done.json`` (``finished``), one naming another key, or a missing ``best.pt`` or
    ``metrics.csv``."""
    if finished:
        try:
            summary = _read_summary(folder / "done.json")
        except CheckpointError as e:
            return str(e)
        if summary.get("key", run.key()) != run.key():
            return f"{folder / 'done.json'} names the key {summary.get('key')!r}, not this config's {run.key()!r}"
    for name in ("best.pt", "metrics.csv"):
        if not (folder / name).is_file():
            return f"it has no {name}"
    return ""


def is_cached(run: RunConfig) -> bool:
    """Whether ``run``'s entry is finished and whole, as far as can be told without reading its checkpoint (which
    ``trained`` checks before serving it): what ``make models`` and the plan list as cached."""
    folder = run_dir(run)
    return (folder / "done.json").exists() and not _entry_problem(run, folder)


def set_aside_entry(run: RunConfig, why: str) -> Path:
    """Move the cache folder of ``run`` whole to ``<folder>.set-aside-<date>[-n]/`` beside it (never deleted, and
    out of the cache's way), saying so in one line on stderr; returns where it went. The caller holds the lock."""
    folder = run_dir(run)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = folder.with_name(f"{folder.name}.set-aside-{stamp}"), 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.set-aside-{stamp}-{n}")
    os.rename(folder, target)
    print(f"cache: {folder} set aside to {target} and trained again: {why}", file=sys.stderr, flush=True)
    return target


def _checkpoint_problem(run: RunConfig) -> str:
    """Why the ``best.pt`` of ``run``'s entry cannot be served ("" if it can): it fails its checksum or its checks,
    or was trained with another config."""
    best = run_dir(run) / "best.pt"
    try:
        key = check_state(load_checkpoint(best), best).key()
    except CheckpointError as e:
        return _first_sentence(e)
    return "" if key == run.key() else f"{best} was trained with another config (key {key}) than the entry's {run.key()}"


def _load_entry(run: RunConfig, device: str) -> tuple[Glow, Dequantizer | None, dict, pd.DataFrame]:
    """(model, dequantiser, summary, metrics) of ``run``'s entry after every check (module docstring); a
    CheckpointError says what does not hold."""
    folder = run_dir(run)
    problem = _entry_problem(run, folder)
    if problem:
        raise CheckpointError(problem)
    best = folder / "best.pt"
    state = load_checkpoint(best, map_location=device)
    key = check_state(state, best).key()
    if key != run.key():
        raise CheckpointError(f"{best} was trained with another config (key {key}) than the entry's {run.key()}")
    summary = _read_summary(folder / "done.json")
    # a run finished before done.json named the time: the file's own time, when it was written
    summary.setdefault("finished", _now((folder / "done.json").stat().st_mtime))
    try:
        metrics = pd.read_csv(folder / "metrics.csv")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / 'metrics.csv'} cannot be read ({type(e).__name__}: {e})") from e
    model = build_model(run).to(device)
    model.load_state_dict(state["ema"])
    dequantizer = build_dequantizer(run)
    if dequantizer is not None:
        dequantizer.to(device).load_state_dict(state["dequantizer_ema"])
        dequantizer.eval()
    return model.eval(), dequantizer, summary, metrics


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


def _ensure(run: RunConfig, progress, announce, found: str) -> str:
    """With the lock held: ``found`` if the entry is whole, else set it aside (if there is one) and train it."""
    folder = run_dir(run)
    if (folder / "done.json").exists():
        problem = _entry_problem(run, folder) or _checkpoint_problem(run)
        if not problem:
            return found
        set_aside_entry(run, problem)
    if announce:
        announce()
    _train_into_cache(run, progress)
    return "trained"


def train_if_free(run: RunConfig, progress=True, wait: bool = False, announce=None) -> str:
    """Make sure ``run`` is in the cache: "cached" (it was), "trained" (this process trained or resumed it), or,
    when another process holds its lock, "busy" (nothing done) or, with ``wait``, "waited" (this process waited for
    the other to finish; had that one failed, this one trains the run and says "trained"). ``announce()`` is
    called when this process is about to train. An entry that is not whole is set aside and trained again."""
    if is_cached(run) and not _checkpoint_problem(run):
        return "cached"
    try:
        with _locked(lock_path(run), wait=False):
            return _ensure(run, progress, announce, "cached")
    except BlockingIOError:
        if not wait:
            return "busy"
    with _locked(lock_path(run)):
        return _ensure(run, progress, announce, "waited")


def trained(run: RunConfig, device: str = "cpu", progress=True) -> TrainedModel:
    """The trained model of ``run``: from the cache if finished and whole (read without the lock, so a read-only
    cache serves it), else trained (or resumed) now; if another process is training it, this one waits for it. An
    entry that fails a check (module docstring) is set aside and trained again."""
    folder = run_dir(run)
    if (folder / "done.json").exists():
        try:
            return TrainedModel(*_served(run, device))
        except CheckpointError:
            pass                            # decided again below, under the lock: another process may be at it
    with ExitStack() as stack:
        try:
            stack.enter_context(_locked(lock_path(run)))
        except OSError as e:
            raise CheckpointError(f"the cache entry {folder} cannot be served, and the cache cannot be written to "
                                  f"train it ({e.strerror or e}): make {cache_root()} writable, or set "
                                  f"$GLOWLIB_CACHE to a writable folder") from e
        if (folder / "done.json").exists():
            try:
                return TrainedModel(*_served(run, device))
            except CheckpointError as e:
                set_aside_entry(run, _first_sentence(e))
        _train_into_cache(run, progress)
        return TrainedModel(*_served(run, device))


def _served(run: RunConfig, device: str) -> tuple:
    model, dequantizer, summary, metrics = _load_entry(run, device)
    return model, run, run_dir(run), metrics, summary, dequantizer


def get_model(profile: str, dataset: str = "mnist5k", model_type: str = "glow", seed: int = 0, overrides=(),
              device: str = "cpu", progress: bool = True, tier: str = "compare") -> TrainedModel:
    """Shorthand: the trained model of a profile's preset for ``dataset`` (see ``glowlib.profiles``)."""
    return trained(profile_config(profile, dataset, model_type, seed, overrides, tier), device, progress)
