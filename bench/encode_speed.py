"""Encoding speed (ms per image): x → latents without gradients, in eval mode, ours against the reference.

    python bench/encode_speed.py --channels 3 --size 32 --levels 3 --depth 8 --width 512 --batch 16

Also times ``log_prob`` (encoding plus the priors), the evaluation workload. Prints JSON; asserts nothing.
"""
from __future__ import annotations

import torch

from common import (alternate, build, config_record, emit, environment, glow_config, images, paired_ratio, parser,
                    setup, stats)


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    device = setup(args)
    cfg = glow_config(args)
    x = images(args, device=device)
    ours, ref = build(cfg, x, reference=not args.no_reference)
    ours.eval()

    def no_grad(f):
        def run():
            with torch.no_grad():
                return f(x)
        return run
    fns = {"ours_encode": no_grad(ours.encode), "ours_log_prob": no_grad(ours.log_prob)}
    if ref is not None:
        ref.eval()
        fns.update(reference_encode=no_grad(ref.encode), reference_log_prob=no_grad(ref.log_prob))
    times = alternate(fns, args.repeats, args.warmup, device)
    results = {name: {"ms_per_image": 1e3 * stats(t, per=args.batch)["median"], "seconds_per_call": stats(t)}
               for name, t in times.items()}
    if ref is not None:
        for what in ("encode", "log_prob"):
            results[f"{what}_speedup"] = (results[f"reference_{what}"]["ms_per_image"]
                                          / results[f"ours_{what}"]["ms_per_image"])
            results[f"{what}_paired_speedup"] = paired_ratio(times, f"reference_{what}", f"ours_{what}")
    record = {"benchmark": "encode_speed", "config": config_record(args, cfg), "results": results,
              "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
