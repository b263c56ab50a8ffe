"""Command line: ``python -m glowlib train|evaluate ...`` (see README)."""
from __future__ import annotations

import argparse
import json
import sys

from .config import DEQUANTIZATIONS, MODEL_TYPES
from .profiles import DATASET_SHAPES, PROFILES, profile_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glowlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a model; resumable")
    tr.add_argument("--profile", choices=PROFILES, default="cpu")
    tr.add_argument("--dataset", choices=sorted(DATASET_SHAPES), default="mnist5k")
    tr.add_argument("--model", choices=MODEL_TYPES, default="glow")
    tr.add_argument("--dequantization", choices=DEQUANTIZATIONS, default="uniform",
                    help="variational: a learned q(u | x) trained with the model on the ELBO")
    tr.add_argument("--out", required=True, help="run folder: metrics.csv, last.pt, best.pt")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override config fields, e.g. model.depth=16 train.lr=5e-4 data.n_bits=5")
    tr.add_argument("--no-progress", action="store_true")
    ev = sub.add_parser("evaluate", help="bits/dim of a checkpoint's Polyak weights on a dataset split")
    ev.add_argument("checkpoint")
    ev.add_argument("--split", choices=("test", "val", "train"), default="test")
    ev.add_argument("--samples", type=int, default=1, help="dequantisation samples per image (importance-weighted; "
                    "with a variational-dequantisation checkpoint, 1 is its ELBO)")
    args = parser.parse_args(argv)

    from .train import load_checkpoint, evaluate, load_trained_with_dequantizer, prepare_splits, train
    from .config import RunConfig
    try:
        if args.command == "train":
            overrides = [f"train.dequantization={args.dequantization!r}"] + list(args.set) + \
                ([f"train.device={args.device!r}"] if args.device else [])
            run = profile_config(args.profile, args.dataset, args.model, args.seed, overrides)
            result = train(run, args.out, resume=args.resume, progress=not args.no_progress)
            print(json.dumps({"out": str(result.out_dir), "step": result.step, "best_val_bpd": result.best_val_bpd,
                              "test_bpd_at_best_val": result.test_bpd_at_best, "wall_s": round(result.wall_s, 1),
                              "nonfinite_events": len(result.nonfinite_events)}))
        else:
            run = RunConfig.from_dict(load_checkpoint(args.checkpoint)["config"])
            splits = prepare_splits(run)
            images = {"test": splits.test_x, "val": splits.val_x, "train": splits.train_x}[args.split]
            labels = {"test": splits.test_y, "val": splits.val_y, "train": splits.train_y}[args.split]
            model, dequantizer = load_trained_with_dequantizer(args.checkpoint)
            bpd, sem = evaluate(model, images, run.data.n_bits, n_samples=args.samples,
                                labels=labels if run.model.n_classes else None, dequantizer=dequantizer)
            print(json.dumps({"split": args.split, "bpd": bpd, "sem": sem, "n_images": len(images)}))
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
