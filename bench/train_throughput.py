"""Training throughput (images/s, GFLOP/s, fraction of this machine's peak): forward, backward and an Adamax step,
ours against ``bench/reference.py``.

    python bench/train_throughput.py --channels 1 --size 32 --depth 8 --levels 3 --width 128 --batch 32
    python bench/train_throughput.py ... --set inv_backprop=False      # our model without invertible backprop
    python bench/train_throughput.py ... --peak-json results/bench/peak.json   # a peak measured beforehand
    python bench/train_throughput.py ... --no-peak                     # images/s and FLOPs only

Both models hold the same weights and run alternately in one process; the figure to quote is ``ratio`` (ours over
the reference, from the medians).

FLOPs are counted, not estimated: ``torch.utils.flop_counter.FlopCounterMode`` around one forward and backward pass
of each contender (the Adamax step adds no matmul or convolution FLOPs), divided by the batch. The counter counts
matmuls and convolutions (and their backward), not elementwise work. ``flops_per_image`` is what that contender
executes: with invertible backprop, the backward pass re-runs each coupling network, so ours counts more than the
reference for the same model. ``model_flops_per_image`` is the count of plain autograd on our model
(``inv_backprop=False``), the work the model needs; ``model_gflops_per_s`` divides it by each contender's time,
so it compares implementations on useful work. ``fraction_of_peak`` divides the achieved (executed) GFLOP/s by the
measured peak of each contender's precision (bfloat16 for ours with ``--set precision=bf16``, else float32; on
CUDA, TF32 when ``torch.backends`` allows it) from
``bench/peak.py``, measured in this process just before the timing unless ``--peak-json`` or ``--no-peak`` says
otherwise. Prints JSON; asserts nothing about speed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import peak as peak_mod
from common import (alternate, build, config_record, emit, environment, glow_config, images, paired_ratio, parser,
                    setup, stats, train_step_fn)
from glowlib.objective import bits_per_dim


def training_flops(model, x, n_dims: int) -> int:
    """FLOPs of one training step's forward and backward pass on batch x (matmuls and convolutions, as counted by
    ``FlopCounterMode``). Leaves the weights unchanged (no optimizer step) and the gradients cleared."""
    model.train()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        bits_per_dim(model(x), n_dims, 8).mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def training_precision(device: torch.device, model_precision: str = "fp32") -> str:
    """The peak to compare a model's training with: bfloat16 for ``precision="bf16"`` (its coupling networks, almost
    all of the FLOPs, run in bf16; the 1x1 convolutions stay float32 and have only float32's peak, so the fraction
    slightly understates how near the bf16 part comes to its limit), else float32, or TF32 where CUDA is allowed to
    use it for convolutions."""
    if model_precision == "bf16":
        return "bfloat16"
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "float32"


def load_peak(args, device) -> dict | None:
    if args.no_peak:
        return None
    if args.peak_json:
        record = json.loads(Path(args.peak_json).read_text())
        results = record.get("results", record)
        return {**results, "source": str(args.peak_json), "env": record.get("env")}
    return {**peak_mod.from_args(args, prefix="peak-", repeats=args.peak_repeats, warmup=1),
            "source": "measured in this process before the timing"}


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--peak-json", help="read the peak from this bench/peak.py record instead of measuring it")
    p.add_argument("--no-peak", action="store_true", help="no peak, no fraction_of_peak")
    p.add_argument("--peak-repeats", type=int, default=3)
    peak_mod.add_arguments(p, prefix="peak-")
    args = p.parse_args(argv)
    device = setup(args)
    cfg = glow_config(args)
    x = images(args, device=device)
    ours, ref = build(cfg, x, reference=not args.no_reference)
    contenders = {"ours": ours, **({"reference": ref} if ref is not None else {})}
    flops = {name: training_flops(m, x, cfg.n_dims) for name, m in contenders.items()}
    plain = type(ours)(cfg.replace(inv_backprop=False)).to(device)
    plain.load_state_dict(ours.state_dict())
    model_flops = training_flops(plain, x, cfg.n_dims)
    del plain
    peak = load_peak(args, device)
    # the reference always computes in float32; ours in its config's precision
    precision = {"ours": training_precision(device, cfg.precision), "reference": training_precision(device)}
    peak_gflops = {name: (peak or {}).get("peak_gflops", {}).get(prec) for name, prec in precision.items()}

    fns = {name: train_step_fn(m, x, cfg.n_dims) for name, m in contenders.items()}
    times = alternate(fns, args.repeats, args.warmup, device)
    results = {}
    for name, t in times.items():
        images_per_s = args.batch / stats(t)["median"]
        gflops = flops[name] / args.batch * images_per_s / 1e9
        results[name] = {"images_per_s": images_per_s, "seconds_per_step": stats(t),
                         "flops_per_image": flops[name] / args.batch, "gflops_per_s": gflops,
                         "model_gflops_per_s": model_flops / args.batch * images_per_s / 1e9,
                         "precision": precision[name], "peak_gflops": peak_gflops[name],
                         "fraction_of_peak": gflops / peak_gflops[name] if peak_gflops[name] else None}
    if ref is not None:
        results["ratio"] = results["ours"]["images_per_s"] / results["reference"]["images_per_s"]
        results["paired_ratio"] = paired_ratio(times, "reference", "ours")
    results["model_flops_per_image"] = model_flops / args.batch
    results["precision"] = precision["ours"]             # ours' (as records made before per-contender fields)
    results["peak_gflops"] = peak_gflops["ours"]
    record = {"benchmark": "train_throughput", "config": config_record(args, cfg), "results": results,
              "peak": peak, "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
