"""The training step eager against compiled (train.compile) on this machine's device: seconds per step of each,
interleaved (ABAB after both are warm), the compile time, and the ratio; JSON to --out. glowlib.training.device's
COMPILE_ON_CPU cites the CPU records (results/bench/compile_step/).

    .venv/bin/python bench/compile_step.py --out results/bench/compile_step/cpu_small.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from glowlib.profiles import profile_config
from glowlib.results import cpu_name
from glowlib.training.loop import session, train_step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--set", nargs="*", default=["model.depth=4", "model.width=64"])
    parser.add_argument("--mode", default="default", help="the torch.compile mode of the compiled contender")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    sessions, warmup = {}, {}
    for name, mode in (("eager", "off"), ("compiled", args.mode)):
        run = profile_config(args.profile, args.dataset, overrides=list(args.set) + [f"train.compile={mode!r}"])
        start = time.perf_counter()
        sessions[name] = session(run)
        for _ in range(3):
            train_step(sessions[name])
        warmup[name] = time.perf_counter() - start
    times = {name: [] for name in sessions}
    for _ in range(args.repeats):                # interleaved: a shared machine's load hits both alike
        for name, r in sessions.items():
            start = time.perf_counter()
            train_step(r)
            if r.device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    ratios = sorted(e / c for e, c in zip(times["eager"], times["compiled"]))
    record = {"config": run.to_dict(), "mode": args.mode, "device": str(sessions["eager"].device),
              "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "warmup_s": warmup, "s_per_step_median": median, "paired_speedup_median": ratios[len(ratios) // 2],
              "load_average": os.getloadavg(), "platform": platform.platform()}
    print(json.dumps({k: record[k] for k in ("warmup_s", "s_per_step_median", "paired_speedup_median")}))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
