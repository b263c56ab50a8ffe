"""Round-trip error |x - decode(encode(x))| of one model's weights in each precision mode, and its cost.

    python bench/round_trip.py --channels 1 --size 32 --levels 3 --depth 8 --width 128 --batch 64
    python bench/round_trip.py --profile cpu --dataset mnist5k --n 500     # a trained model, on its test images

The modes (``glowlib.analysis.round_trip.ROUND_TRIP_MODES``), all with the same weights: ``fp32``; ``bf16``
(``precision="bf16"``: the coupling networks in bf16 inside a float32 flow); ``bf16_flow64`` (the same bf16
networks inside a float64 flow, ``model.double()``); ``fp64``. Why ``bf16`` alone is not exact, and why the float64
flow is: ``glowlib/analysis/round_trip.py`` and ``notebooks/precision.py``.

Without ``--profile`` the weights are moved off their initial values (as every bench script does) and the images
are random 8-bit ones; with ``--profile`` the model comes from the trained-model cache (``glowlib.training.cache``, which
trains it first if it is not there) and the images are the first ``--n`` test images at their bins' centres. Per
mode: the largest error over finite pixels, its 99.99th percentile, the fraction of pixels off by more than 1e-3,
the non-finite pixels, the fraction of images whose n-bit quantisation changes, the mean bits/dim and ms per image
of encode + decode. Prints JSON; asserts nothing.
"""
from __future__ import annotations

from common import build, config_record, emit, environment, glow_config, images, parser, setup

from glowlib.analysis.round_trip import round_trip, test_images


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", help="a trained model of the cache: the profile (smoke, cpu, paper)")
    p.add_argument("--dataset", default="mnist5k", help="with --profile: its data set, whose test images are used")
    p.add_argument("--n", type=int, default=500, help="with --profile: how many test images")
    args = p.parse_args(argv)
    device = setup(args)
    if args.profile:
        from glowlib.training import get_model
        tm = get_model(args.profile, args.dataset, "glow", progress=False)
        model, n_bits = tm.model.to(device), tm.run.data.n_bits
        x = test_images(args.dataset, args.n, n_bits).to(device)
        run = {"profile": args.profile, "dataset": args.dataset, "key": tm.run.key(), "folder": str(tm.path),
               "precision_trained": tm.run.model.precision, "steps": tm.summary.get("steps"),
               "test_bpd_at_best_val": tm.summary.get("test_bpd_at_best_val")}
    else:
        x = images(args, device=device)
        model, _ = build(glow_config(args), x, reference=False)
        n_bits, run = 8, None
    record = {"benchmark": "round_trip", "config": config_record(args, model.config), "trained_model": run,
              "n_images": x.shape[0], "n_bits": n_bits, "results": round_trip(model, x, n_bits),
              "env": environment(args)}
    emit(record, args.out)
    return record


if __name__ == "__main__":
    main()
