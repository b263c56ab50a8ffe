"""Process-wide settings that make training faster without changing what is computed.

``tune_allocator``: glibc's malloc hands every buffer above its mmap threshold (at most 32 MiB, adjusted as it
goes) back to the kernel when freed, so each training step maps its largest activations afresh and pays a page
fault per 4 KiB page while it first writes them. Raising the mmap and trim thresholds keeps those buffers in the
heap for the next step. On the 2-core AMD EPYC of ``results/bench`` (AVX512-BF16) a float32 training step of the
CIFAR-sized Glow (3x32x32, K=8, L=3, width 512, batch 16, stored activations) ran 8% faster with it; the
``batch_sweep_cifar`` and ``batch_sweep_cifar_tuned`` records measure it at batches 8 to 64 (``bench/README.md``).
The values are glibc's documented ``MALLOC_*_`` tunables, set by ``mallopt`` in this process; a process started
with those environment variables already set is left as it is.

``GLOWLIB_ALLOCATOR`` chooses: ``tuned`` (the default) or ``system`` (leave the C allocator alone, e.g. to measure
the difference, or in a process shared with code that needs memory returned to the system promptly).

``cpu_workers`` and ``worker_threads``: how the trainings of a profile share a CPU without a GPU. Steps of the
small models the cpu and smoke profiles train (28x28 images, batch 32) split poorly across threads: on the 2-core
Intel Xeon of ``results/bench/workers/``, two one-thread trainings side by side trained more images per second
than one two-thread training (the record gives the ratio, ``bench/workers.py``). So the trainings run one process
per core, up to ``CPU_MAX_WORKERS``, and each gets an equal share of the cores as threads.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

from .config import check_choice

ALLOCATORS = ("tuned", "system")
# at most this many CPU training processes by default: beyond it a share of cores becomes threads again, and the
# data and model of each process stay in memory (measured at 2 cores only; set --workers to try more)
CPU_MAX_WORKERS = 8
# mallopt parameter numbers (glibc malloc.h) and the values set: 1 GiB mmap threshold, 2 GiB trim threshold
# (mallopt takes an int), 256 MiB top pad; the same as MALLOC_MMAP_THRESHOLD_ / TRIM_THRESHOLD_ / TOP_PAD_
SETTINGS = {"M_MMAP_THRESHOLD": (-3, 1 << 30), "M_TRIM_THRESHOLD": (-1, 2**31 - 1), "M_TOP_PAD": (-2, 256 << 20)}
ENV_NAMES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state: dict | None = None


def allocator_choice() -> str:
    """``$GLOWLIB_ALLOCATOR`` (``tuned`` when unset); an unknown value is an error that names it."""
    choice = os.environ.get("GLOWLIB_ALLOCATOR", "") or "tuned"
    check_choice("$GLOWLIB_ALLOCATOR", choice, ALLOCATORS)
    return choice


def _glibc():
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        get = libc.gnu_get_libc_version             # glibc only (musl has no such function)
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_char_p
    return libc, get().decode()


def tune_allocator(choice: str | None = None) -> dict:
    """Apply ``choice`` (default: ``allocator_choice()``) once per process and say what was done:
    ``{"allocator": "tuned" | "system", "applied": bool, "reason": str}``. Later calls return the first answer
    (settings made by hand since are not undone)."""
    global _state
    if _state is None:
        choice = allocator_choice() if choice is None else choice
        check_choice("allocator", choice, ALLOCATORS)
        _state = {"allocator": choice, **_apply(choice)}
    return _state


def _apply(choice: str) -> dict:
    """Set the thresholds if ``choice`` and the environment allow: ``{"applied": bool, "reason": str}``."""
    if choice == "system":
        return {"applied": False, "reason": "GLOWLIB_ALLOCATOR=system: left as it is"}
    preset = [name for name in ENV_NAMES if name in os.environ]
    if preset:
        return {"applied": False, "reason": f"{', '.join(preset)} set in the environment: left to them"}
    found = _glibc()
    if found is None:
        return {"applied": False, "reason": "not glibc: nothing to tune"}
    libc, version = found
    failed = [name for name, (param, value) in SETTINGS.items() if libc.mallopt(param, value) != 1]
    if failed:
        return {"applied": False, "reason": f"glibc {version}: mallopt refused {failed}"}
    return {"applied": True, "reason": f"glibc {version}: " + ", ".join(f"{n}={v}" for n, (_, v) in SETTINGS.items())}


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def cpu_workers() -> int:
    """Training processes on a CPU without a GPU: one per usable core, at most :data:`CPU_MAX_WORKERS`."""
    return min(usable_cores(), CPU_MAX_WORKERS)


def check_workers(workers: int) -> int:
    """A ``--workers`` count: at least 1 and at most :func:`max_workers` (each worker is a process holding its own
    copy of torch: a count meant for another machine would start them all here). Returns it; else ValueError."""
    if workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    if workers > max_workers():
        raise ValueError(f"--workers {workers}: at most {max_workers()} on this machine (four per core, or the "
                         f"visible GPUs); on a cluster start one per node with --worker-index and --n-workers")
    return workers


def max_workers() -> int:
    """The most training processes one machine starts: four per core, at least 8."""
    return max(8, 4 * (os.cpu_count() or 1))


def worker_threads(n_workers: int) -> int:
    """Threads each of ``n_workers`` CPU training processes gets: ``$OMP_NUM_THREADS`` when set (the user's or
    the Makefile's choice), else an equal share of the usable cores, at least one."""
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers}: give at least 1")
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given:
        try:
            threads = int(given)
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS={given!r} is not a whole number of threads; unset it or give one "
                             f"such as 1") from None
        if threads >= 1:
            return threads
        raise ValueError(f"OMP_NUM_THREADS={given!r}: give at least 1 thread, or unset it")
    return max(1, usable_cores() // n_workers)


def visible_gpus() -> list[str]:
    """The ids of the GPUs this process may use, as CUDA_VISIBLE_DEVICES names them; [] without CUDA."""
    import torch
    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in listed.split(",") if d.strip()] if listed else []
    return ids[:torch.cuda.device_count()] or [str(i) for i in range(torch.cuda.device_count())]


def default_workers() -> int:
    """Training processes ``python -m glowlib models`` starts: one per visible GPU; without one, one per core
    (:func:`cpu_workers`)."""
    return len(visible_gpus()) or cpu_workers()
