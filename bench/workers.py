"""How to share a CPU's cores among trainings: one process with every core as a thread, or one process per core
with a thread each (``python -m glowlib models --workers N``). Small convolutions (28x28 images, width 128,
batch 32) split poorly across threads, so on a few cores several one-thread trainings side by side may train
more images per second than one training with all the threads.

Both arrangements take real training steps of the same run (the cpu profile's Glow of ``--dataset``, random
images of its shape: ``glowlib.step_count.probe_session``), in rounds that alternate A B B A so that other load on the
machine falls on both alike. A round of A is one process with ``--cores`` threads; a round of B is ``--cores``
processes with one thread each, started together. Each process times ``--steps`` steps after warm-up and reports
its median step; throughput is images per second summed over the processes of a round. The record gives both,
their ratio (B over A, per round, then the median) and the machine.

    .venv/bin/python bench/workers.py --out results/bench/workers/fashion_mnist.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from glowlib.results import cpu_name, git_state  # noqa: E402
from glowlib.runtime import usable_cores  # noqa: E402


def child(dataset: str, threads: int, steps: int, warmup: int) -> dict:
    """One process's part of a round: the median of ``steps`` timed training steps at ``threads`` threads, as the
    plan times a step (``glowlib.plan.measure``)."""
    from glowlib.plan import measure
    from glowlib.profiles import profile_config
    run = profile_config("cpu", dataset, "glow")
    cost = measure(run, "cpu", n_warmup=warmup, n_timed=steps, threads=threads)
    return {"threads": cost["threads"], "batch": run.train.batch_size, "median_s": cost["s_per_step"]}


def round_of(args, processes: int, threads: int) -> dict:
    """``processes`` children at ``threads`` threads each, started together; their summed images per second."""
    command = [sys.executable, __file__, "--child", "--dataset", args.dataset, "--threads", str(threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outputs = [json.loads(p.communicate()[0]) for p in started]
    if any(p.returncode for p in started):
        raise RuntimeError(f"a child of the {processes}x{threads} round failed: {[p.returncode for p in started]}")
    return {"processes": processes, "threads": threads, "children": outputs,
            "images_per_s": sum(o["batch"] / o["median_s"] for o in outputs)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=("fashion_mnist", "mnist5k", "digits"))
    p.add_argument("--cores", type=int, default=usable_cores(), help="cores to share (default: this process's)")
    p.add_argument("--rounds", type=int, default=4, help="rounds of each arrangement, in ABBA order")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="(a child's threads; set by the parent)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help="also write the JSON record to this file (atomically)")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.dataset, args.threads, args.steps, args.warmup)))
        return 0
    if args.cores < 2:
        raise SystemExit(f"error: --cores {args.cores}: sharing needs at least 2 cores")
    if args.out:
        from bench.common import refuse_uncommitted
        refuse_uncommitted()
    arrangements = {"one_process": (1, args.cores), "one_per_core": (args.cores, 1)}
    rounds = {name: [] for name in arrangements}
    for r in range(args.rounds):
        for name in (list(arrangements) if r % 2 == 0 else list(arrangements)[::-1]):
            rounds[name].append(round_of(args, *arrangements[name]))
    ratios = [b["images_per_s"] / a["images_per_s"] for a, b in zip(rounds["one_process"], rounds["one_per_core"])]
    record = {"what": "images per second of the cpu profile's Glow training step: one process with every core as a "
                      "thread against one process per core (one thread each), alternating rounds",
              "dataset": args.dataset, "cores": args.cores, "steps": args.steps, "warmup": args.warmup,
              "images_per_s": {n: statistics.median(x["images_per_s"] for x in v) for n, v in rounds.items()},
              "ratio_one_per_core": statistics.median(ratios), "ratios": ratios, "rounds": rounds,
              "cpu": cpu_name(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), **git_state(ROOT),
              "command": " ".join(["bench/workers.py", *(argv if argv is not None else sys.argv[1:])]),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    emit(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
