"""A profile's run list trained by several processes: one per GPU on a machine, or one per node on machines that
share the cache folder (``python -m glowlib models --profile P --workers N``).

Each worker goes through the whole list. For each run it takes the run's cache lock without waiting
(``training.cache.train_if_free``): a run that is cached is skipped, a run another worker holds is set aside, any
other is trained. At the end the worker comes back to the runs it set aside and waits for each one still held, so
that every worker ends when the whole list is trained; a run whose worker failed is trained by the next one to get
its lock. Worker i starts at its own share of the list (runs i, i + N, ...) and goes on to the others', so the N
workers start on different runs. Without a GPU the default is one worker per core, each with an equal share of the
cores as threads (``runtime.cpu_workers``: small steps split poorly across threads). With GPUs every worker is
pinned to one GPU: its process sees only that one (``CUDA_VISIBLE_DEVICES``), which its runs' ``train.device="auto"`` then picks as cuda:0, so the runs' configs and
cache keys stay the same whichever GPU trains them.

On several nodes (a Slurm array, say) each node runs one worker with ``--worker-index $SLURM_ARRAY_TASK_ID
--n-workers $SLURM_ARRAY_TASK_COUNT`` (and ``--workers 1``) over a shared ``$GLOWLIB_CACHE``: the locks are
``flock`` locks, which NFSv4 and Lustre (mounted with ``flock``) honour across nodes. On a file system whose locks
do not reach other nodes, add ``--only-mine``: each worker then trains its own share alone and never looks at the
others'.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import RunConfig
from .plan import describe, hours, measured_seconds
from .plan import longest_first  # noqa: F401  (the order python -m glowlib models deals runs in)
from .runtime import visible_gpus, worker_threads
from .training.cache import is_cached, run_dir, train_if_free


def order_for(runs: list, worker_index: int = 0, n_workers: int = 1, only_mine: bool = False) -> list:
    """Worker ``worker_index``'s order of ``runs``: its share (runs i, i + N, ...) first, then everyone else's."""
    if not 0 <= worker_index < n_workers:
        raise ValueError(f"worker_index={worker_index} must be in [0, n_workers={n_workers})")
    mine = runs[worker_index::n_workers]
    return mine if only_mine else mine + [r for r in runs if not any(r is m for m in mine)]


def work_through(runs: list, progress=True, log=print, name: str = "") -> dict[str, str]:
    """Train every run of ``runs`` that is not cached, skipping those another process holds and coming back to
    them at the end (waiting for each still held). Returns {cache key: what happened} (``train_if_free``'s
    words). Each run gets a line: its place, what happens, its estimate (from the plan's kept measurements)."""
    prefix = f"[{name}] " if name else ""
    outcomes, held = {}, []
    for i, run in enumerate(runs, 1):
        where = f"{prefix}[{i}/{len(runs)}]"
        if is_cached(run):                      # finished and whole (a done.json alone is not)
            outcomes[run.key()] = "cached"
            log(f"{where} cached   {describe(run)}: {run_dir(run)}")
            continue
        outcome = train_if_free(run, progress, announce=lambda: log(f"{where} training {_planned(run)}"))
        if outcome == "busy":
            log(f"{where} held by another worker, coming back to it at the end: {describe(run)}")
            held.append(run)
        outcomes[run.key()] = outcome
    for run in held:
        log(f"{prefix}waiting for {describe(run)} (another worker holds it)")
        outcomes[run.key()] = train_if_free(run, progress, wait=True,
                                            announce=lambda: log(f"{prefix}training {_planned(run)}"))
        log(f"{prefix}{outcomes[run.key()]} {describe(run)}")
    return outcomes


def _planned(run) -> str:
    seconds = measured_seconds(run)
    return (f"{describe(run)}, {run.train.steps:,} steps{f', about {hours(seconds)}' if seconds else ''} -> "
            f"{run_dir(run)}")


def run_workers(runs: list, n_workers: int, progress="lines") -> int:
    """Train ``runs`` with ``n_workers`` processes (module docstring), worker i pinned to GPU i (with more workers
    than GPUs, worker i to GPU i mod #GPUs: small models can share one), or without GPUs sharing the CPU's cores;
    returns the highest exit status of the workers (0: all ended well)."""
    gpus = visible_gpus()
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "runs.json"
        listing.write_text(json.dumps([run.to_dict() for run in runs]))
        workers = []
        for i in range(n_workers):
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
            else:
                env["OMP_NUM_THREADS"] = str(worker_threads(n_workers))
            command = [sys.executable, "-m", "glowlib.workers", "--runs", str(listing), "--worker-index", str(i),
                       "--n-workers", str(n_workers), "--progress", str(progress)]
            workers.append(subprocess.Popen(command, env=env))
        return max(w.wait() for w in workers)


def main(argv=None) -> int:
    """One worker process of :func:`run_workers`."""
    parser = argparse.ArgumentParser(prog="python -m glowlib.workers")
    parser.add_argument("--runs", required=True, help="JSON list of RunConfig dicts")
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--n-workers", type=int, default=1)
    parser.add_argument("--progress", default="lines")
    args = parser.parse_args(argv)
    runs = [RunConfig.from_dict(d) for d in json.loads(Path(args.runs).read_text())]
    progress = {"True": True, "False": False}.get(args.progress, args.progress)
    name = f"worker {args.worker_index}"
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        name += f", GPU {os.environ['CUDA_VISIBLE_DEVICES']}"
    work_through(order_for(runs, args.worker_index, args.n_workers), progress,
                 log=lambda line: print(line, flush=True), name=name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
