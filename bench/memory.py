"""Peak memory of a training step as the depth K grows, with and without invertible backprop, and of the reference.

    python bench/memory.py --channels 1 --size 32 --levels 3 --width 128 --batch 32 --depths 8 16 24 32

Every (implementation, K) runs in a fresh child process, which builds the model, initialises ActNorm, and takes two
training steps (forward, backward, Adamax). On CPU the figure is the child's peak resident set size: tracemalloc
does not see torch's allocator. It is read from ``VmHWM`` in /proc/self/status, the high-water mark of the child's
own address space; ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is recorded too, but Linux carries it over an
exec from a parent that was larger (a ``run_all.py`` that already ran other benchmarks), so it can read the
parent's peak instead of the child's. It includes the
interpreter and torch themselves (``rss_before_step``), the weights, their gradients and Adamax's two buffers per
weight (which grow with K whatever the method), and the activations. ``saved_mb`` counts what autograd keeps for
the backward pass (every tensor packed by ``torch.autograd.graph.saved_tensors_hooks``, each storage once): the
part that invertible backprop removes. On CUDA the figure is ``torch.cuda.max_memory_allocated``.
Prints JSON; asserts nothing.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from common import build, config_record, emit, environment, glow_config, images, parser, setup, train_step_fn

VARIANTS = {"ours_inv_backprop": {"inv_backprop": True}, "ours_stored": {"inv_backprop": False},
            "reference": None}


def rss_mb(field: str = "VmRSS") -> float:
    """The current (VmRSS) or peak (VmHWM) resident set size of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024            # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(args) -> dict:
    device = setup(args)
    fields = VARIANTS[args.variant]
    cfg = glow_config(args, **(fields or {}))
    x = images(args, device=device)
    ours, ref = build(cfg, x, reference=fields is None)
    model = ours if fields is not None else ref
    if fields is None:
        del ours
    step = train_step_fn(model, x, cfg.n_dims)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) / 2 ** 20 if cuda else rss_mb()
    seen = {}

    def pack(t):
        try:
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device)] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t
    step()
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        peak = rss_mb("VmHWM")
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):   # the forward pass only
        loss = model(x).mean()
    loss.backward()
    n_params = sum(p.numel() for p in model.parameters())
    return {"variant": args.variant, "depth": args.depth, "peak_mb": peak, "rss_before_step_mb": before,
            "step_mb": peak - before, "saved_mb": sum(seen.values()) / 2 ** 20,
            "parameters": n_params, "param_state_mb": 4 * n_params * 4 / 2 ** 20,
            # the step's memory less the gradients and Adamax's two buffers (the weights are in rss_before)
            "step_less_grads_and_adamax_mb": peak - before - 3 * n_params * 4 / 2 ** 20, "ru_maxrss_mb": ru_maxrss,
            "measure": "cuda.max_memory_allocated" if cuda else "VmHWM"}


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0], repeats=1)
    p.add_argument("--depths", type=int, nargs="*", default=[8, 16, 24, 32])
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--child", action="store_true", help=argparse_hidden())
    p.add_argument("--variant", choices=list(VARIANTS), help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    setup(args)
    rows = []
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    passthrough = _strip(passthrough, ("--depths", "--variants", "--out", "--depth"))
    for variant in args.variants:
        for depth in args.depths:
            cmd = [sys.executable, str(Path(__file__).resolve()), *passthrough, "--child", "--variant", variant,
                   "--depth", str(depth)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    growth = {}
    lo, hi = min(args.depths), max(args.depths)
    for variant in args.variants:
        by_k = {r["depth"]: r for r in rows if r["variant"] == variant}
        growth[variant] = {f"{key}_K{hi}_over_K{lo}": by_k[hi][key] / by_k[lo][key]
                           for key in ("peak_mb", "step_mb", "step_less_grads_and_adamax_mb", "saved_mb")
                           if by_k[lo][key] > 0}
    record = {"benchmark": "memory", "config": config_record(args, glow_config(args)), "depths": args.depths,
              "rows": rows, "growth": growth, "env": environment(args)}
    emit(record, args.out)
    return record


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


def _strip(argv, options):
    """argv without the named options and their values (the parent's own options, not the child's)."""
    out, skip = [], False
    for a in argv:
        if a.startswith("--"):
            skip = a.split("=")[0] in options
            if skip and "=" in a:
                skip = False
                continue
        if not skip:
            out.append(a)
    return out


if __name__ == "__main__":
    main()
