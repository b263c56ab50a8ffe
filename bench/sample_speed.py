"""Sampling speed (ms per image at temperature T), ours against ``bench/reference.py``, in eval mode.

    python bench/sample_speed.py --channels 3 --size 32 --levels 3 --depth 8 --width 512 --batch 16
    python bench/sample_speed.py --channels 3 --size 64 --levels 4 --depth 8 --width 512 --batch 16

``--batch`` images per call. Ours: ``Glow.sample`` (inverse weights cached once, inference mode, split priors
without wasted work). The reference recomposes and inverts every 1x1 conv and computes every prior in full on every
call. Also times ours at T = 0 (prior means only). Prints JSON; asserts nothing about speed.
"""
from __future__ import annotations

import torch

from common import (alternate, build, config_record, emit, environment, glow_config, images, paired_ratio, parser,
                    setup, stats)


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--temperature", type=float, default=0.7)
    args = p.parse_args(argv)
    device = setup(args)
    cfg = glow_config(args)
    ours, ref = build(cfg, images(args, device=device), reference=not args.no_reference)
    ours.eval()
    n, temp = args.batch, args.temperature

    def gen():
        return torch.Generator(device).manual_seed(0)
    fns = {"ours": lambda: ours.sample(n, temp, gen()), "ours_T0": lambda: ours.sample(n, 0.0, gen())}
    if ref is not None:
        ref.eval()
        fns["reference"] = lambda: ref.sample(n, temp, gen())
    times = alternate(fns, args.repeats, args.warmup, device)
    results = {name: {"ms_per_image": 1e3 * stats(t, per=n)["median"], "seconds_per_call": stats(t)}
               for name, t in times.items()}
    if ref is not None:
        results["speedup"] = results["reference"]["ms_per_image"] / results["ours"]["ms_per_image"]
        results["paired_speedup"] = paired_ratio(times, "reference", "ours")
    record = {"benchmark": "sample_speed", "temperature": temp, "images_per_call": n,
              "config": config_record(args, cfg), "results": results, "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
