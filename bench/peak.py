"""This machine's own peak, measured in this process: matmul and 3x3-convolution GFLOP/s per precision.

    python bench/peak.py                          # CPU: float32 and bfloat16, at --threads (default 2)
    python bench/peak.py --device cuda            # CUDA: float32 (TF32 off), tf32 and bfloat16

The roofline of ``bench/train_throughput.py`` divides its achieved GFLOP/s by these figures, so they are taken
the same way it is (same process, same thread count, same load): a large square matmul (``--matmul-size``, 2·n³
FLOPs) and a 3x3 convolution of the shape of Glow's coupling networks (``--conv-shape B C H W``, C → C channels,
padding 1, 2·B·C·C·9·H·W FLOPs) in NCHW and channels-last. ``peak_gflops[precision]`` is the best median over
those entries: a measured ceiling for this software stack, not the vendor's number. On a CPU without native bfloat16
(no AVX512-BF16/AMX) the bfloat16 entries are emulated and far below float32. Prints JSON; asserts nothing.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from common import alternate, emit, environment, parser, setup, stats

PRECISIONS = {"cpu": ("float32", "bfloat16"), "cuda": ("float32", "tf32", "bfloat16")}
CONV_SHAPE = (16, 512, 16, 16)       # (B, C, H, W): CIFAR-10 Glow's width-512 coupling NN at the first level
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device):
    """The dtype of ``precision``; on CUDA, TF32 on for "tf32" and off otherwise (restored on exit)."""
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    if device.type != "cuda":
        yield dtype
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield dtype
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _entry(op, precision, layout, shape, flop, seconds) -> dict:
    s = stats(seconds)
    return {"op": op, "precision": precision, "layout": layout, "shape": list(shape), "flop": flop,
            "seconds": s, "gflops": flop / s["median"] / 1e9, "gflops_best": flop / s["min"] / 1e9}


def measure_peak(device="cpu", precisions=None, matmul_size: int | None = None, conv_shape=CONV_SHAPE,
                 repeats: int = 5, warmup: int = 1, seed: int = 0) -> dict:
    """Matmul and 3x3-conv GFLOP/s of this process (at its current ``torch.get_num_threads()``).

    Returns ``{"entries": [...], "peak_gflops": {precision: best median GFLOP/s}, "peak_entry": {precision:
    "op/layout"}, "threads": n, "device": ...}``; see the module docstring for what is measured.
    """
    device = torch.device(device)
    allowed = PRECISIONS["cuda" if device.type == "cuda" else "cpu"]
    precisions = list(precisions or allowed)
    bad = [q for q in precisions if q not in allowed]
    if bad:
        raise ValueError(f"precision(s) {bad} are not measured on {device.type}; choose from {list(allowed)}")
    n = matmul_size or MATMUL_SIZE["cuda" if device.type == "cuda" else "cpu"]
    b, c, h, w = conv_shape
    g = torch.Generator().manual_seed(seed)
    entries = []
    for precision in precisions:
        with precision_mode(precision, device) as dtype:
            a1, a2 = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
            t = alternate({"mm": lambda: torch.mm(a1, a2)}, repeats, warmup, device)["mm"]
            entries.append(_entry("matmul", precision, None, (n, n, n), 2 * n ** 3, t))
            del a1, a2
            x = torch.randn(b, c, h, w, generator=g).to(device, dtype)
            weight = torch.randn(c, c, 3, 3, generator=g).to(device, dtype) / (3 * c ** 0.5)
            for layout in ("nchw", "channels_last"):
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                xl, wl = x.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)
                t = alternate({"conv": lambda: F.conv2d(xl, wl, padding=1)}, repeats, warmup, device)["conv"]
                entries.append(_entry("conv3x3", precision, layout, (b, c, h, w), 2 * b * c * c * 9 * h * w, t))
    peak, best = {}, {}
    for e in entries:
        if e["gflops"] > peak.get(e["precision"], 0.0):
            peak[e["precision"]] = e["gflops"]
            best[e["precision"]] = e["op"] + (f"/{e['layout']}" if e["layout"] else "")
    return {"entries": entries, "peak_gflops": peak, "peak_entry": best, "threads": torch.get_num_threads(),
            "device": str(device)}


def add_arguments(p, prefix: str = "") -> None:
    """The peak options, as ``--{prefix}matmul-size`` etc. (``train_throughput.py`` uses prefix "peak-")."""
    p.add_argument(f"--{prefix}matmul-size", type=int, default=None,
                   help=f"n of the n x n matmul (default {MATMUL_SIZE['cpu']} on CPU, {MATMUL_SIZE['cuda']} on CUDA)")
    p.add_argument(f"--{prefix}conv-shape", type=int, nargs=4, default=list(CONV_SHAPE), metavar=("B", "C", "H", "W"))
    p.add_argument(f"--{prefix}precisions", nargs="*", default=None,
                   help="subset of float32 tf32 bfloat16 (default: all for the device; tf32 only on CUDA)")


def from_args(args, prefix: str = "", repeats: int | None = None, warmup: int | None = None) -> dict:
    """``measure_peak`` with the options of ``add_arguments`` and the script's device."""
    attr = prefix.replace("-", "_")
    return measure_peak(args.device, getattr(args, attr + "precisions"), getattr(args, attr + "matmul_size"),
                        tuple(getattr(args, attr + "conv_shape")), repeats or args.repeats,
                        args.warmup if warmup is None else warmup, args.seed)


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0], repeats=5, warmup=1)
    add_arguments(p)
    args = p.parse_args(argv)
    setup(args)
    results = from_args(args)
    record = {"benchmark": "peak", "config": {"matmul_size": results["entries"][0]["shape"][0],
                                              "conv_shape": list(args.conv_shape), "threads": args.threads,
                                              "repeats": args.repeats, "warmup": args.warmup},
              "results": results, "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
