"""Where a run computes: the device of this process (one GPU per process under torchrun), TF32 kept off, batches
sent to the device without blocking, and the optimizer's options for the device."""
from __future__ import annotations

import functools
import os
import sys

import torch

# TF32 off: on Ampere and later GPUs cuDNN would otherwise run every float32 convolution, the invertible 1x1
# convolution among them, with a 10-bit mantissa, and the flow's exactness (round trip, log-determinants) rests on
# that arithmetic. The coupling networks get their speed from bf16 (GlowConfig.precision), not from TF32. Set
# when this module is imported (every study and notebook imports it) and again for each run; recorded in every
# checkpoint and in the notebooks' provenance (``results.hardware``).
ALLOW_TF32 = False


def set_tf32(allow: bool = ALLOW_TF32) -> dict:
    """Allow or forbid TF32 in float32 matmuls and cuDNN convolutions; returns the state (:func:`tf32_state`)."""
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    return tf32_state()


def tf32_state() -> dict:
    return {"matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


set_tf32()

# cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when the process first uses it, so a deterministic run (which needs a
# fixed workspace) must find it set before any CUDA work of its process, not at its own start: a worker trains
# several runs in one process, and an earlier run's matmuls would have fixed the workspace already. ":4096:8" is
# eight 4 MiB buffers (32 MiB), what torch picks by itself on a Hopper GPU, so the other runs lose nothing; a
# value the user set is kept. Set when this module is imported (before glowlib touches CUDA) and again before
# each run's device is chosen.
CUBLAS_WORKSPACE = ":4096:8"


def set_cublas_workspace() -> str:
    """``CUBLAS_WORKSPACE_CONFIG`` in this process's environment (:data:`CUBLAS_WORKSPACE` unless set); its value."""
    return os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


# True where this process used CUDA before it imported glowlib without the variable set: cuBLAS may have fixed its
# workspace already, and a deterministic run says so (set_deterministic)
_CUBLAS_MAYBE_FIXED = "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.cuda.is_initialized()
set_cublas_workspace()


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


def training_device(name: str) -> torch.device:
    """The device this process trains on: ``resolve_device``, with a GPU index. Under torchrun (WORLD_SIZE > 1)
    each process takes ``cuda:LOCAL_RANK``, so that N processes use N GPUs rather than all cuda:0. The GPU becomes
    the process's current device (``torch.cuda.set_device``), which NCCL and the caching allocator follow."""
    set_cublas_workspace()                        # before this process's first CUDA call (see above)
    device = resolve_device(name)
    if name == "auto" and device.type == "cpu":
        warn_if_cuda_unusable()
    if device.type != "cuda":
        return device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.index is not None:
            raise ValueError(f"train.device={name!r}: under torchrun each process trains on cuda:LOCAL_RANK; set "
                             f"train.device='auto' or 'cuda' (or choose the GPUs with CUDA_VISIBLE_DEVICES)")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                             f"start at most that many processes per node (torchrun --nproc_per_node)")
        device = torch.device("cuda", local)
    elif device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


# set in the environment of the processes a command starts (glowlib.workers) once the command has said whether CUDA
# is usable, so that `make models` says it once, not once per worker
CUDA_WARNING_SAID = "GLOWLIB_CUDA_WARNING_SAID"


def warn_if_cuda_unusable() -> None:
    """Say :func:`cuda_unavailable_reason` on stderr, if any: once per process, and not at all in a process whose
    parent said it already (:data:`CUDA_WARNING_SAID` in the environment)."""
    if not os.environ.get(CUDA_WARNING_SAID):
        _say_once(cuda_unavailable_reason())


@functools.lru_cache(maxsize=None)
def _say_once(line: str | None) -> None:
    if line:
        print(f"warning: {line}", file=sys.stderr, flush=True)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (on the host) on ``device``; to a GPU through pinned memory without blocking, so that the host queues
    the step's kernels while the copy runs (a blocking copy from pageable memory waits for the GPU)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def optimizer_options(device: torch.device) -> dict:
    """Multi-tensor updates everywhere; on CUDA also ``capturable``, which keeps each parameter's step count on the
    device and computes the bias corrections there (otherwise the update reads every count with ``.item()``; on
    the CPU those counts are host memory anyway, and torch allows capturable on accelerators only)."""
    return {"foreach": True, "capturable": device.type == "cuda"}


def place_optimizer(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """After ``load_state_dict``: the options of :func:`optimizer_options` for ``device`` (a checkpoint written on
    another kind of device carries its own) and each step count where those options want it."""
    options = optimizer_options(device)
    for group in optimizer.param_groups:
        group.update(options)
    for state in optimizer.state.values():
        step = state.get("step")
        if torch.is_tensor(step):
            state["step"] = step.to(device if options["capturable"] else "cpu", torch.float32)


# torch.compile of the step's objective (forward and backward) on the CPU: off. bench/compile_step.py times both
# (results/bench/compile_step/cpu_smoke.json: the smoke profile's digits Glow, K=2, width 16, one thread of a
# 2-core Xeon, a loaded machine: 2.1x faster a step, 0.065 s against 0.127 s, after 218 s of compiling, which is
# more than a smoke run trains in all). The cpu profile's models are not measured yet; at width 512 inductor ran
# at 0.95x eager (compile_cifar.json). Turn it on per run with train.compile="default".
COMPILE_ON_CPU = False
# on CUDA: "reduce-overhead" records the objective's kernels into CUDA graphs, so the host launches one graph
# instead of queueing each of some 20,000 kernels (the eager step is launch-bound: glowlib.plan)
CUDA_COMPILE_MODE = "reduce-overhead"
# ... for runs this long or longer: compiling takes about 90 s (glowlib.plan's central case), which CUDA graphs win
# back where the eager step waits on the host, after about 1,000 steps of CIFAR-10's paper-size Glow (host ~0.1 s,
# device ~0.05 s a step); the small datasets' runs at the gpu profile (4,000 steps or fewer, their arithmetic
# keeping the GPU busy) train eager. The plan counts a compiled run's compile time and credits it no device speed-up
# (inductor's fused elementwise kernels), so a device-bound run counts ~90 s dearer compiled than eager.
CUDA_COMPILE_MIN_STEPS = 5_000


def compile_mode(train_compile: str, device: torch.device, inv_backprop: bool = False,
                 steps_left: int | None = None) -> str | None:
    """The torch.compile mode a run's objective is compiled with on ``device``, or None for eager: "off" is eager,
    a mode is that mode, "auto" is :data:`CUDA_COMPILE_MODE` on CUDA for a run with at least
    :data:`CUDA_COMPILE_MIN_STEPS` ``steps_left`` (None: as many), "default" on the CPU where
    :data:`COMPILE_ON_CPU`, else eager. Invertible backprop stays eager under "auto": its backward is a custom
    autograd function that calls ``autograd.grad`` inside, which torch.compile cannot trace into one graph. The
    plan (``glowlib.plan.gpu_run_seconds``) counts each run by this same answer."""
    if train_compile == "off" or device.type not in ("cuda", "cpu"):
        return None
    if train_compile != "auto":
        return train_compile
    if inv_backprop:
        return None
    if device.type == "cuda":
        short = steps_left is not None and steps_left < CUDA_COMPILE_MIN_STEPS
        return None if short else CUDA_COMPILE_MODE
    return "default" if COMPILE_ON_CPU else None


def set_deterministic(on: bool, device: torch.device) -> dict:
    """Deterministic CUDA kernels when ``on`` (``train.deterministic``): ``torch.use_deterministic_algorithms``
    (an operation without a deterministic kernel raises instead of varying), cuBLAS's fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``: set when this module is imported, before the process's first CUDA call, since
    cuBLAS reads it only then; :func:`set_cublas_workspace`) and cuDNN without benchmarking (which picks
    algorithms by timing, so by chance). The CPU kernels glowlib uses are deterministic already. Not ``on`` (or
    not CUDA): all three as torch has them by default, so that a run after a deterministic one in the same process
    (a worker trains several) is not held to it. Returns the state, recorded with each run."""
    on = on and device.type == "cuda"
    if on:
        set_cublas_workspace()
        if _CUBLAS_MAYBE_FIXED:
            _say_once("train.deterministic=True, but this process used CUDA before glowlib set "
                      "CUBLAS_WORKSPACE_CONFIG, so cuBLAS may vary between runs; set CUBLAS_WORKSPACE_CONFIG=:4096:8 "
                      "in the environment before starting Python (or import glowlib before any CUDA work)")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False
    return {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


@functools.lru_cache(maxsize=None)
def cuda_unavailable_reason() -> str | None:
    """One line when this machine has an NVIDIA GPU (``nvidia-smi`` lists one) that this torch cannot use, with
    the fix; None otherwise. Without it, "auto" would train on the CPU without a word."""
    import shutil
    import subprocess
    if torch.cuda.is_available() or shutil.which("nvidia-smi") is None:
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [line for line in listed.splitlines() if line.startswith("GPU ")]
    if not gpus:
        return None
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return (f"nvidia-smi lists {len(gpus)} GPU(s) ({gpus[0].split(' (')[0]}), but torch {torch.__version__} "
            f"({build}) cannot use them, so training would run on the CPU; install a CUDA build of torch that "
            f"matches the driver (pip install torch=={torch.__version__.split('+')[0]} --index-url "
            f"https://download.pytorch.org/whl/cu126, say) or check the driver with nvidia-smi")
