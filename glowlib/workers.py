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
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import RunConfig
from .files import atomic_write_bytes
from .plan import describe, hours, measured_seconds
from .plan import longest_first  # noqa: F401  (the order python -m glowlib models deals runs in)
from .runtime import visible_gpus, worker_threads
from .training.cache import is_cached, run_dir, train_if_free
from .training.device import CUDA_WARNING_SAID, warn_if_cuda_unusable
from .training.loop import TrainingFailed
from .training.stop import RunStopped, request_stop, stop_requested, training_now

# the signals that stop ``python -m glowlib models`` and its workers cleanly, each run's last.pt saved at a step
# boundary (a second one stops at once): a service manager's SIGTERM, a closed terminal's SIGHUP, and Ctrl-C's SIGINT,
# which would otherwise end each process with a KeyboardInterrupt traceback
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def order_for(runs: list, worker_index: int = 0, n_workers: int = 1, only_mine: bool = False) -> list:
    """Worker ``worker_index``'s order of ``runs``: its share (runs i, i + N, ...) first, then everyone else's."""
    if not 0 <= worker_index < n_workers:
        raise ValueError(f"worker_index={worker_index} must be in [0, n_workers={n_workers})")
    mine = runs[worker_index::n_workers]
    return mine if only_mine else mine + [r for r in runs if not any(r is m for m in mine)]


def work_through(runs: list, progress=True, log=print, name: str = "", failures: list | None = None,
                 failed_elsewhere=lambda key: False, on_failure=lambda record: None) -> dict[str, str]:
    """Train every run of ``runs`` that is not cached, skipping those another process holds and coming back to
    them at the end (waiting for each still held). Returns {cache key: what happened} (``train_if_free``'s
    words, or "failed"). Each run gets a line: its place, what happens, its estimate (from the plan's kept
    measurements). A run that fails (an exception other than a stop) does not stop the others: it is logged, added
    to ``failures`` (:func:`failure_record`) and the next run trains. A stop (``RunStopped``: SIGTERM or SIGHUP,
    :func:`stop_on_signals`) ends the list at once, the interrupted run's ``last.pt`` saved. A run set aside as held
    that another worker of the same command has meanwhile failed (``failed_elsewhere(key)``) is not tried again:
    the same failure would most likely repeat; ``on_failure(record)`` is called at each failure."""
    prefix = f"[{name}] " if name else ""
    failures = [] if failures is None else failures
    outcomes, held = {}, []

    def attempt(run, where, wait=False):
        try:
            outcome = train_if_free(run, progress, wait=wait, announce=lambda: log(f"{where}training {_planned(run)}"))
        except RunStopped:
            raise
        except Exception as e:                  # noqa: BLE001  (any failure of one run; the list goes on)
            failures.append(failure_record(run, e))
            on_failure(failures[-1])
            log(f"{where}FAILED {describe(run)}: {failures[-1]['why']} (its files: {failures[-1]['files']}); "
                f"going on with the other runs")
            del e
            _free_device_memory()
            return "failed"
        if outcome in ("trained", "waited", "cached"):
            prune_finished(run)
        if stop_requested() is not None:        # asked while the run saved its end: it is finished, stop now
            raise RunStopped(f"stopped by {signal.Signals(stop_requested()).name} after {describe(run)} finished",
                             stop_requested())
        return outcome

    for i, run in enumerate(runs, 1):
        where = f"{prefix}[{i}/{len(runs)}]"
        if is_cached(run):                      # finished and whole (a done.json alone is not)
            outcomes[run.key()] = "cached"
            prune_finished(run)
            log(f"{where} cached   {describe(run)}: {run_dir(run)}")
            continue
        if failed_elsewhere(run.key()):
            log(f"{where} not retrying {describe(run)}: it failed in another worker of this command")
            outcomes[run.key()] = "failed elsewhere"
            continue
        outcome = attempt(run, f"{where} ")
        if outcome == "busy":
            log(f"{where} held by another worker, coming back to it at the end: {describe(run)}")
            held.append(run)
        outcomes[run.key()] = outcome
    for run in held:
        if failed_elsewhere(run.key()):
            log(f"{prefix}not retrying {describe(run)}: it failed in another worker of this command")
            outcomes[run.key()] = "failed elsewhere"
            continue
        log(f"{prefix}waiting for {describe(run)} (another worker holds it)")
        outcomes[run.key()] = attempt(run, prefix, wait=True)
        if outcomes[run.key()] != "failed":
            log(f"{prefix}{outcomes[run.key()]} {describe(run)}")
    return outcomes


def failure_record(run: RunConfig, error: BaseException) -> dict:
    """What a failed run's report says: the run, why (one line: the exception's type and first line) and where its
    files are (a run without a finite evaluation has them set aside in a ``failed-*`` subfolder and starts afresh
    next time; any other failure leaves its folder as it was, ``last.pt`` resuming from the last checkpoint)."""
    folder = run_dir(run)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    why = f"{type(error).__name__}: {first}" if first else type(error).__name__
    aside = sorted(folder.glob("failed-*"), key=lambda p: p.stat().st_mtime) if isinstance(error, TrainingFailed) \
        else []
    files = (f"{aside[-1]} (set aside; the next attempt starts afresh)" if aside else
             f"{folder} ({'last.pt resumes from step ' + str(_saved_step(folder)) if (folder / 'last.pt').exists() else 'no checkpoint yet'})")
    return {"run": describe(run), "key": run.key(), "why": why, "files": files}


def _saved_step(folder: Path) -> str:
    """The last step of ``folder``'s metrics.csv (the checkpoints are saved with the evaluations), or "?"."""
    try:
        lines = (folder / "metrics.csv").read_text().strip().splitlines()
        return f"{int(float(lines[-1].split(',')[0])):,}" if len(lines) > 1 else "0"
    except (OSError, ValueError, IndexError):
        return "?"


def _free_device_memory() -> None:
    """After a failed run (a CUDA out-of-memory error among them), give its memory back before the next run: the
    failed run's tensors are garbage once its exception is dropped, but the caching allocator keeps their blocks."""
    gc.collect()
    import torch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def prune_finished(run: RunConfig) -> list[Path]:
    """Remove what a finished cache entry no longer needs: its ``last.pt`` (the weights, the Polyak weights and the
    optimizer's state of the last step, kept only so that an interrupted run resumes). A finished entry is served
    from ``best.pt`` and ``metrics.csv`` (``training.cache``), and its config fixes its number of steps, so it never
    resumes. Only once the entry is whole (``is_cached``). Returns what was removed."""
    if not is_cached(run):
        return []
    last = run_dir(run) / "last.pt"
    if last.is_file():
        last.unlink()
        return [last]
    return []


def failure_report(failures: list[dict], retry: str = "the same command") -> list[str]:
    """The lines that end a list with failed runs: each run, why, where its files are, and how to retry them."""
    lines = [f"{len(failures)} run(s) failed; the others were trained:"]
    lines += [f"  - {f['run']} [{f['key']}]: {f['why']}; its files: {f['files']}" for f in failures]
    lines.append(f"to retry only these, run {retry} again: finished runs are found in the cache, each failed one "
                 f"resumes from its last.pt or, set aside, starts afresh")
    return lines


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its parent (the ``models`` command, pid ``parent_pid``) ends,
    however it ends (kill -9 included, which it cannot pass on): the worker then saves its run's ``last.pt`` and
    stops instead of training on unseen. Linux only (prctl); elsewhere nothing is done."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)                    # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:                                # it ended before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop this process's training cleanly: the first one asks the training loop to save
    ``last.pt`` after its current step and raise ``RunStopped`` (``training.stop.request_stop``); outside a training
    loop (waiting for a lock, scoring a finished run), or at a second signal, ``RunStopped`` is raised at once.
    Files are written atomically, so a stop anywhere leaves every file whole."""
    def handler(signum, frame):
        first = stop_requested() is None
        request_stop(signum)
        if not (first and training_now()):
            raise RunStopped(f"stopped by {signal.Signals(signum).name}", signum)
    for number in STOP_SIGNALS:
        signal.signal(number, handler)


def train_here(runs: list, progress=True, name: str = "", retry: str = "the same command") -> int:
    """Work through ``runs`` in this process (``python -m glowlib models --workers 1``), stopped cleanly by SIGTERM
    or SIGHUP; the exit status: 0, 1 when a run failed (after the report), 128 + the signal's number when stopped."""
    stop_on_signals()
    failures = []
    say = lambda line: print(line, flush=True)  # noqa: E731
    try:
        work_through(runs, progress, log=say, name=name, failures=failures)
    except RunStopped as e:
        say(f"{e}; rerun {retry} to resume")
        if failures:
            say("\n".join(failure_report(failures, retry)))
        return 128 + e.signal
    if failures:
        print("\n".join(failure_report(failures, retry)), file=sys.stderr, flush=True)
        return 1
    return 0


def _planned(run) -> str:
    seconds = measured_seconds(run)
    return (f"{describe(run)}, {run.train.steps:,} steps{f', about {hours(seconds)}' if seconds else ''} -> "
            f"{run_dir(run)}")


def run_workers(runs: list, n_workers: int, progress="lines", retry: str = "the same command") -> int:
    """Train ``runs`` with ``n_workers`` processes (module docstring), worker i pinned to GPU i (with more workers
    than GPUs, worker i to GPU i mod #GPUs: small models can share one), or without GPUs sharing the CPU's cores.
    Whether CUDA is usable (a GPU that this torch cannot use) is said here, once, and not by each worker.
    SIGTERM or SIGHUP to this process is passed on to every worker, each of which saves its run's ``last.pt`` and
    stops. Returns 0 when every run ended well, 1 when some failed (after a report of them all, with how to retry),
    128 + the signal's number when stopped, else the highest exit status of the workers."""
    gpus = visible_gpus()
    if any(run.train.device == "auto" for run in runs):
        warn_if_cuda_unusable()                 # here, once: the workers are told it is said (CUDA_WARNING_SAID)
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "runs.json"
        listing.write_text(json.dumps([run.to_dict() for run in runs]))
        workers, stopped = [], []

        def pass_on(signum, frame):
            stopped.append(signum)
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
        before = {number: signal.signal(number, pass_on) for number in STOP_SIGNALS}
        try:
            for i in range(n_workers):
                env = {**os.environ, CUDA_WARNING_SAID: "1"}
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
                else:
                    env["OMP_NUM_THREADS"] = str(worker_threads(n_workers))
                command = [sys.executable, "-m", "glowlib.workers", "--runs", str(listing), "--worker-index", str(i),
                           "--n-workers", str(n_workers), "--progress", str(progress), "--parent", str(os.getpid()),
                           "--failures", str(Path(folder) / f"failures-{i}.json")]
                if stopped:
                    break
                workers.append(subprocess.Popen(command, env=env))
            statuses = [w.wait() for w in workers]
        finally:
            for number, handler in before.items():
                signal.signal(number, handler)
        failures = []
        for i in range(n_workers):
            path = Path(folder) / f"failures-{i}.json"
            failures += json.loads(path.read_text()) if path.is_file() else []
    if failures:
        print("\n".join(failure_report(failures, retry)), file=sys.stderr, flush=True)
    if stopped:
        print(f"stopped by {signal.Signals(stopped[0]).name}: every worker saved its run's last.pt and ended; rerun "
              f"{retry} to resume", file=sys.stderr, flush=True)
        return 128 + stopped[0]
    return 1 if failures else max(statuses, default=0)


def main(argv=None) -> int:
    """One worker process of :func:`run_workers`."""
    parser = argparse.ArgumentParser(prog="python -m glowlib.workers")
    parser.add_argument("--runs", required=True, help="JSON list of RunConfig dicts")
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--n-workers", type=int, default=1)
    parser.add_argument("--progress", default="lines")
    parser.add_argument("--failures", default=None, help="write the failed runs' records here (JSON list)")
    parser.add_argument("--parent", type=int, default=None, help="stop (as by SIGTERM) when this process ends")
    args = parser.parse_args(argv)
    stop_on_signals()
    if args.parent is not None:
        die_with_parent(args.parent)
    runs = [RunConfig.from_dict(d) for d in json.loads(Path(args.runs).read_text())]
    progress = {"True": True, "False": False}.get(args.progress, args.progress)
    name = f"worker {args.worker_index}"
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        name += f", GPU {os.environ['CUDA_VISIBLE_DEVICES']}"
    failures = []
    mine = Path(args.failures) if args.failures else None

    def record(_):                              # at once, so that the other workers do not retry the run
        if mine is not None:
            atomic_write_bytes(mine, json.dumps(failures).encode())

    def failed_elsewhere(key: str) -> bool:
        if mine is None:
            return False
        return any(f["key"] == key for path in mine.parent.glob("failures-*.json") if path != mine
                   for f in json.loads(path.read_text()))
    try:
        work_through(order_for(runs, args.worker_index, args.n_workers), progress,
                     log=lambda line: print(line, flush=True), name=name, failures=failures,
                     failed_elsewhere=failed_elsewhere, on_failure=record)
    except RunStopped as e:
        print(f"[{name}] {e}", flush=True)
        return 128 + e.signal
    finally:
        record(None)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
