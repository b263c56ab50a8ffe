"""What buys quality per CPU-hour: short trainings of the cpu profile's Fashion-MNIST Glow that differ in one part
of the recipe each, compared at equal wall time, and judged on VALIDATION images only (the test split is never
looked at while the recipe is chosen).

Each variant is one process (``--variant NAME``), so that two can run side by side at ``--threads 1`` on a 2-core
machine. Variants whose step costs the same as the base's (learning rate, schedule, optimizer, EMA, beta2,
clipping: the same arithmetic per step) train the same number of steps, which is equal wall time; the others
(batch, width against depth) first time their step and the base's in this process (``glowlib.plan.measure``,
median of timed steps) and train ``steps x base s/step / own s/step`` steps, so that they too get the base's wall
time. ``--summary`` prints one line per recorded variant (the Cost page's recipe table shows and records them).

    .venv/bin/python bench/recipe.py --variant cosine --threads 1
    .venv/bin/python bench/recipe.py --summary
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from glowlib.files import atomic_write_bytes  # noqa: E402
from glowlib.profiles import profile_config  # noqa: E402
from glowlib.results import cpu_name, git_state  # noqa: E402
from glowlib.training.cache import cache_root  # noqa: E402

OUT = ROOT / "results" / "bench" / "recipe"
STEPS = 800            # ~51,000 images: 0.9 of an epoch of Fashion-MNIST's training part
N_VAL = 2000           # validation images held out of the 60,000 training images (val SEM ~0.01 bits/dim)
# the base every variant changes one thing of, pinned here so that the variants rerun as they ran whatever the
# profile's recipe becomes (it became what these experiments chose): Adamax 3e-3, constant after a warmup of 5%
# of the steps, batch 64, fp32 networks (the cpu profile picks bf16 on a CPU with a native bf16 path; these records
# were first made in fp32 and compare variants within one precision)
COMMON = ["model.precision='fp32'", f"train.steps={STEPS}", "train.eval_every=100", "train.ckpt_every=400", "train.n_train_eval=0",
          "train.n_test_eval=100", f"data.n_val={N_VAL}", "train.warmup_fraction=0.05", "train.optimizer='adamax'",
          "train.lr=3e-3", "train.lr_schedule='constant'", "train.batch_size=64", "train.ema_decay=0.999",
          "train.grad_clip=50.0", "train.beta2=0.999"]
COSINE = ["train.lr_schedule='cosine'"]
ADAM = COSINE + ["train.optimizer='adam'"]
# name: (overrides after COMMON, what it tests, whether its step costs the base's)
VARIANTS = {
    "committed": (["train.warmup_fraction=0.0", "train.warmup_steps=500"],
                  "the recipe the cpu profile had: Adamax 3e-3, 500-step warmup, constant", True),
    "constant": ([], "Adamax 3e-3, warmup 5% of the steps, constant", True),
    "cosine": (COSINE, "Adamax 3e-3, warmup 5%, cosine decay to 0", True),
    "cosine_lr1e-3": (COSINE + ["train.lr=1e-3"], "as cosine, lr 1e-3 (the official lr)", True),
    "cosine_lr6e-3": (COSINE + ["train.lr=6e-3"], "as cosine, lr 6e-3", True),
    "cosine_lr1e-2": (COSINE + ["train.lr=1e-2"], "as cosine, lr 1e-2", True),
    "adam": (COSINE + ["train.optimizer='adam'"], "as cosine, Adam instead of Adamax", True),
    # the Polyak decay is min(ema_decay, (1 + t)/(10 + t)) after step t, which stays below 0.99 until step 890:
    # in runs this short only "no averaging" differs from the default
    "no_ema": (COSINE + ["train.ema_decay=0.0"], "as cosine, no Polyak averaging (the raw weights evaluated)",
               True),
    "beta2_official": (ADAM, "as adam, beta2 = 1 - 1/(steps per epoch) as the official code (0.99890 here)", True),
    # Adam beat Adamax by far (above); the rest change one thing of the "adam" recipe
    "adam_lr1e-3": (ADAM + ["train.lr=1e-3"], "as adam, lr 1e-3 (the paper's text: Adam at 1e-3)", True),
    "adam_lr6e-3": (ADAM + ["train.lr=6e-3"], "as adam, lr 6e-3", True),
    "no_clip": (ADAM + ["train.grad_clip=0.0"], "as adam, no gradient clipping (default: norm 50)", True),
    "batch32": (ADAM + ["train.batch_size=32"], "as adam, batch 32 at the base's wall time", False),
    "batch128": (ADAM + ["train.batch_size=128"], "as adam, batch 128 at the base's wall time", False),
    "deep_narrow": (ADAM + ["model.depth=16", "model.width=64"], "as adam, K=16 width 64 at equal time", False),
    "shallow_wide": (ADAM + ["model.depth=4", "model.width=256"], "as adam, K=4 width 256 at equal time", False),
    # mnist5k (3,500 training images after its 500 validation images): how far the adam recipe gets in the
    # committed profile's 3,000 steps, which reached 1.926 test bits/dim with the committed recipe
    "mnist5k_3000": (ADAM + ["train.steps=3000", "train.eval_every=250", "train.ckpt_every=500",
                               "data.n_val=500"], "mnist5k, as adam, 3,000 steps", True),
    # how short and how small an mnist5k model can be and still pass the sanity gates (--gates)
    "mnist5k_1200": (ADAM + ["train.steps=1200", "train.eval_every=200", "train.ckpt_every=600", "data.n_val=500"],
                     "mnist5k, as adam, 1,200 steps", True),
    "mnist5k_w64_1200": (ADAM + ["train.steps=1200", "train.eval_every=200", "train.ckpt_every=600",
                                 "data.n_val=500", "model.width=64"], "mnist5k, as adam, width 64, 1,200 steps",
                         True),
}
DATASET = {name: "mnist5k" for name in VARIANTS if name.startswith("mnist5k")}


def variant_config(name: str, steps: int | None = None):
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    overrides = COMMON + VARIANTS[name][0] + ([f"train.steps={steps}"] if steps else [])
    run = profile_config("cpu", DATASET.get(name, "fashion_mnist"), "glow", 0, overrides)
    if name == "beta2_official":       # official optim.py: beta2 = 1 - 1/(train iterations per epoch)
        per_epoch = (60_000 - N_VAL) // run.train.batch_size
        run = run.override([f"train.beta2={1 - 1 / per_epoch!r}"])
    return run


def step_time_ratio(base_run, own_run, rounds: int = 12) -> dict:
    """How much longer a training step of ``own_run`` takes than one of ``base_run``, each at its own batch, on
    random images: both sessions in this process, their steps timed in alternating (ABBA) rounds, and the median
    over rounds of the ratio of two timings taken moments apart, which a shared machine's drifting load leaves
    nearly unbiased (``bench/common.paired_ratio``)."""
    from bench.common import alternate, paired_ratio
    from glowlib.step_count import probe_session
    from glowlib.training.loop import train_step
    sessions = {"base": probe_session(base_run, base_run.train.batch_size, "cpu"),
                "own": probe_session(own_run, own_run.train.batch_size, "cpu")}
    times = alternate({k: (lambda r=r: train_step(r)) for k, r in sessions.items()}, rounds, 3)
    return {"own_over_base": paired_ratio(times, "own", "base"), "base_s_per_step": statistics.median(times["base"]),
            "own_s_per_step": statistics.median(times["own"]), "rounds": rounds}


def run_variant(name: str, threads: int) -> dict:
    from glowlib.training import train
    torch.set_num_threads(threads)
    steps, timing = None, None         # None: the variant's own steps (STEPS unless it sets train.steps)
    if not VARIANTS[name][2]:          # equal wall time: scale the steps by the two measured step times
        timing = step_time_ratio(variant_config("adam"), variant_config(name))
        steps = max(1, round(STEPS / timing["own_over_base"]))
    run = variant_config(name, steps)
    steps = run.train.steps
    out_dir = cache_root() / "recipe" / name
    result = train(run, out_dir, restart=out_dir.exists(), progress="lines")
    rows = list(csv.DictReader(open(out_dir / "metrics.csv")))
    curve = [{"step": int(r["step"]), "wall_s": float(r["wall_s"]), "val_bpd": float(r["val_bpd"]),
              "train_bpd": float(r["train_bpd"]), "images_per_s": float(r["images_per_s"])} for r in rows]
    record = {"variant": name, "what": VARIANTS[name][1], "overrides": VARIANTS[name][0], "steps": steps,
              "timing": timing, "best_val_bpd": result.best_val_bpd, "final_val_bpd": curve[-1]["val_bpd"],
              "wall_s": result.wall_s, "nonfinite_events": len(result.nonfinite_events), "curve": curve,
              "config": run.to_dict(), "machine": cpu_name(), "threads": threads,
              "load_average_end": os.getloadavg(), "torch": torch.__version__, **git_state(ROOT),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(OUT / f"{name}.json", (json.dumps(record, indent=1) + "\n").encode())
    return record


def add_gates(name: str, n: int = 500) -> dict:
    """The variant's record with the sanity gates of its validation-chosen Polyak weights
    (``bench.common.sample_gates``) added."""
    from bench.common import sample_gates
    from glowlib.training import load_trained
    path = OUT / f"{name}.json"
    record = json.loads(path.read_text())
    model = load_trained(cache_root() / "recipe" / name / "best.pt")
    record.update(sample_gates(name, model, variant_config(name, record["steps"]), n))
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return record


def summary() -> list[dict]:
    """One row per recorded variant, as the Cost page's recipe table has them
    (``glowlib.analysis.bench_records.recipe``)."""
    from glowlib.analysis.bench_records import recipe
    table = recipe(OUT.parent)
    return [] if table is None else table.to_dict("records")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=tuple(VARIANTS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--summary", action="store_true")
    p.add_argument("--gates", nargs="*", metavar="VARIANT", help="add the sanity gates to finished variants")
    args = p.parse_args(argv)
    if args.variant or args.gates:
        from bench.common import refuse_uncommitted
        refuse_uncommitted()
    for name in args.gates or []:
        gates = add_gates(name)["gates"]
        print(name, [(g["gate"], round(g["value"], 3), g["passed"]) for g in gates])
    if args.variant:
        r = run_variant(args.variant, args.threads)
        print(f"{args.variant}: best val {r['best_val_bpd']:.4f} bits/dim in {r['wall_s']:.0f} s ({r['steps']} steps)")
    if args.summary:
        for r in summary():
            print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
