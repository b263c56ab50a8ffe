"""Training throughput (images/s): forward, backward and an Adamax step, ours against ``bench/reference.py``.

    python bench/train_speed.py --channels 1 --size 32 --depth 8 --levels 3 --width 128 --batch 32
    python bench/train_speed.py ... --set inv_backprop=False      # our model without invertible backprop

Both models hold the same weights and run alternately in one process; the figure to quote is ``ratio`` (ours over
the reference, from the medians). Prints JSON; asserts nothing about speed.
"""
from __future__ import annotations

from common import (alternate, build, config_record, emit, environment, glow_config, images, paired_ratio, parser,
                    setup, stats, train_step_fn)


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    device = setup(args)
    cfg = glow_config(args)
    x = images(args, device=device)
    ours, ref = build(cfg, x, reference=not args.no_reference)
    fns = {"ours": train_step_fn(ours, x, cfg.n_dims)}
    if ref is not None:
        fns["reference"] = train_step_fn(ref, x, cfg.n_dims)
    times = alternate(fns, args.repeats, args.warmup, device)
    results = {name: {"images_per_s": args.batch / stats(t)["median"], "seconds_per_step": stats(t)}
               for name, t in times.items()}
    if ref is not None:
        results["ratio"] = results["ours"]["images_per_s"] / results["reference"]["images_per_s"]
        results["paired_ratio"] = paired_ratio(times, "reference", "ours")
    record = {"benchmark": "train_speed", "config": config_record(args, cfg), "results": results,
              "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
