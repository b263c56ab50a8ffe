"""What a computation costs, counted and timed: aten operations dispatched and FLOPs of one sample, wall and
process-CPU seconds of one call with the device synchronised, the machine they were taken on, and power-law fits of
a time against a size (the order of growth is the fitted exponent)."""
from __future__ import annotations

import math
import os
import time
from collections import Counter

import numpy as np
import pandas as pd
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..results import hardware


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched (each a separate step of the program; on a GPU, about a kernel)."""

    def __init__(self):
        super().__init__()
        self.counts = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


CONV_OPS = ("conv2d", "convolution")


def count_work(net, temperature: float = 0.7, seed: int = 0) -> dict:
    """What one sample (batch of one) computes: ``flops`` (matmul and convolution FLOPs,
    ``torch.utils.flop_counter``), ``conv_calls`` (convolutions, run one after another) and ``op_calls`` (aten
    operations dispatched). A first, uncounted call computes what the model caches (Glow's inverse 1x1 weights),
    which later calls do not."""
    from torch.utils.flop_counter import FlopCounterMode
    device = next(net.parameters()).device
    net.sample(1, temperature, torch.Generator(device).manual_seed(seed))
    with FlopCounterMode(display=False) as flops, OpCounter() as ops:
        net.sample(1, temperature, torch.Generator(device).manual_seed(seed))
    return {"flops": int(flops.get_total_flops()), "conv_calls": sum(ops.counts[o] for o in CONV_OPS),
            "op_calls": sum(ops.counts.values())}


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, the device synchronised before and after."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def machine(device="cpu") -> dict:
    """Where the times were taken: device, CPU or GPU model, threads, torch version, load average."""
    info = hardware(str(device))
    return {"device": str(device), "device_name": info.get("gpu", info["cpu"]), "threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "load_average_1min": os.getloadavg()[0]}


def power_law(log_h, log_y) -> tuple[float, float, float, float]:
    """Least squares log_y = a + b·log_h: (b, a, standard error of b, R²); the error is NaN with < 3 points."""
    x, y = np.asarray(log_h, float), np.asarray(log_y, float)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    b = float(xc @ (y - y.mean())) / sxx
    a = float(y.mean() - b * x.mean())
    resid = y - a - b * x
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0
    se = math.sqrt(float(resid @ resid) / (len(x) - 2) / sxx) if len(x) > 2 else math.nan
    return b, a, se, r2


def successive_exponents(medians: pd.Series) -> list[tuple[int, int, float]]:
    """(h0, h1, log(t1/t0) / log(h1/h0)) for each pair of successive heights of a Series of times by height."""
    pairs = list(medians.items())
    return [(int(h0), int(h1), math.log(t1 / t0) / math.log(h1 / h0)) for (h0, t0), (h1, t1) in zip(pairs, pairs[1:])]


def peak_ops(device="cpu", seed: int = 0) -> dict:
    """{FLOPs: call} of the two operations this device's float32 peak is taken from, as ``bench/peak.py`` takes it:
    a 1024-square matmul and a 3x3 convolution of 512 channels on 16x16 images in channels-last layout (Glow's
    coupling network at CIFAR-10's first level; 4 images, a quarter of bench/peak.py's batch, so that a repeat costs
    a fraction of a second on a CPU), each called once to warm it up."""
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(1024, 1024, generator=g).to(device) for _ in range(2))
    x = torch.randn(4, 512, 16, 16, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(512, 512, 3, 3, generator=g) / 68).to(device).contiguous(memory_format=torch.channels_last)
    ops = {2 * 1024 ** 3: lambda: torch.mm(a, b),
           2 * 4 * 512 * 512 * 9 * 16 * 16: lambda: torch.nn.functional.conv2d(x, w, padding=1)}
    with torch.inference_mode():
        for op in ops.values():
            op()
    return ops


def peak_rate(ops: dict, device="cpu") -> float:
    """The faster of :func:`peak_ops`' operations, in FLOP/s, each timed once."""
    with torch.inference_mode():
        return max(flop / timed(op, device)[0] for flop, op in ops.items())
