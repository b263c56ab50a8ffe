"""Training throughput against batch size: images/s, GFLOP/s and fraction of this machine's peak of our model at
each batch, per variant of its options, all in one process in alternating repeats.

    python bench/batch_sweep.py --channels 3 --size 32 --depth 8 --width 512 --batches 8 16 32 64
    python bench/batch_sweep.py ... --variants "defaults=" "no_inv=inv_backprop=False" "bf16=precision='bf16'"

A variant is ``name=FIELD=VALUE ...`` as in ``bench/options.py`` (default: the defaults, and the defaults without
invertible backprop). Every (variant, batch) pair holds the same weights and its own Adamax state, and all pairs
take turns step by step (ABBA), so drift in the machine's load falls on every batch alike.

FLOPs are counted as in ``bench/train_throughput.py`` (``FlopCounterMode``, matmuls and convolutions, forward and
backward) for every variant at every batch: per image they fall slightly with the batch, since some work is done
once per step (the 1x1 convolutions' weights composed from their LU factors, their log-determinants).
``fraction_of_peak`` divides executed GFLOP/s by the peak of the variant's precision; ``model_fraction_of_peak`` divides the useful
work (the FLOPs of plain autograd, ``inv_backprop=False``) instead, the figure that compares variants. The peak is
``bench/peak.py``'s, measured here with its convolution at every swept batch (B, width, H/2, W/2), the best of them
taken, so that a batch that suits the convolutions is not credited with a peak measured at another. Prints JSON;
asserts nothing about speed.
"""
from __future__ import annotations

import peak as peak_mod
from common import alternate, build, config_record, emit, environment, glow_config, images, parser, setup, stats, \
    train_step_fn
from options import parse_variants
from train_throughput import training_flops, training_precision

DEFAULT_VARIANTS = {"defaults": {}, "defaults_without_inv_backprop": {"inv_backprop": False}}


def sweep_peak(args, batches) -> dict:
    """``peak.measure_peak`` at the first level's coupling-conv shape for every batch; the best per precision."""
    entries, best, where = [], {}, {}
    for b in batches:
        shape = (b, args.width, args.size // 2, args.size // 2)
        measured = peak_mod.measure_peak(args.device, None, None, shape, args.peak_repeats, 1, args.seed)
        entries += measured["entries"]
        for precision, gflops in measured["peak_gflops"].items():
            if gflops > best.get(precision, 0.0):
                best[precision], where[precision] = gflops, f"{measured['peak_entry'][precision]} at batch {b}"
    return {"entries": entries, "peak_gflops": best, "peak_entry": where,
            "source": "measured in this process before the timing, conv at every swept batch"}


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0], repeats=6)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--variants", nargs="*", help="name=FIELD=VALUE ... (see bench/options.py)")
    p.add_argument("--peak-repeats", type=int, default=3)
    p.add_argument("--no-peak", action="store_true", help="no peak, no fractions")
    args = p.parse_args(argv)
    if any(b < 1 for b in args.batches):
        raise SystemExit(f"--batches {args.batches}: every batch must be at least 1")
    device = setup(args)
    batches = sorted(set(args.batches))
    variants = parse_variants(args.variants) if args.variants else DEFAULT_VARIANTS
    base_cfg = glow_config(args)
    xs = {b: images(args, n=b, device=device) for b in batches}
    base, _ = build(base_cfg, xs[batches[0]], reference=False)
    peak = None if args.no_peak else sweep_peak(args, batches)

    plain = type(base)(base_cfg.replace(inv_backprop=False)).to(device)
    plain.load_state_dict(base.state_dict())
    model_flops = {b: training_flops(plain, xs[b], base_cfg.n_dims) / b for b in batches}
    del plain
    fns, meta = {}, {}
    for name, fields in variants.items():
        cfg = base_cfg.replace(**fields)
        for b in batches:
            model = type(base)(cfg).to(device)
            model.load_state_dict(base.state_dict())
            key = f"{name}@{b}"
            precision = training_precision(device, cfg.precision)
            meta[key] = {"variant": name, "batch": b, "flops_per_image": training_flops(model, xs[b], cfg.n_dims) / b,
                         "model_flops_per_image": model_flops[b], "precision": precision,
                         "peak_gflops": (peak or {}).get("peak_gflops", {}).get(precision)}
            fns[key] = train_step_fn(model, xs[b], cfg.n_dims)
    times = alternate(fns, args.repeats, args.warmup, device)

    rows = []
    for key, t in times.items():
        m = meta[key]
        images_per_s = m["batch"] / stats(t)["median"]
        gflops = m["flops_per_image"] * images_per_s / 1e9
        model_gflops = m["model_flops_per_image"] * images_per_s / 1e9
        rows.append({**m, "images_per_s": images_per_s, "seconds_per_step": stats(t), "gflops_per_s": gflops,
                     "model_gflops_per_s": model_gflops,
                     "fraction_of_peak": gflops / m["peak_gflops"] if m["peak_gflops"] else None,
                     "model_fraction_of_peak": model_gflops / m["peak_gflops"] if m["peak_gflops"] else None})
    best = {}
    for row in rows:
        if row["variant"] not in best or row["images_per_s"] > best[row["variant"]]["images_per_s"]:
            best[row["variant"]] = row
    record = {"benchmark": "batch_sweep", "config": {**config_record(args, base_cfg), "batches": batches},
              "variants": variants, "rows": rows,
              "best_batch": {v: r["batch"] for v, r in best.items()}, "peak": peak, "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
