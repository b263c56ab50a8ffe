"""Quality against wall time: our cpu-profile Glow against the plain reference (``bench/reference.py`` trained with
the official recipe as the PyTorch ports run it), on the full Fashion-MNIST, for the same budget of training time.

One harness trains both, so that everything but the recipe and the implementation is shared: the same split (2,000
validation images held out of the 60,000 training images, a seeded stratified draw), the same ActNorm init images,
batch order and dequantisation noise, the same threads, and the same measurement. Every ``budget / 25`` seconds of
training the harness evaluates the weights it would keep (ours: the Polyak average; the reference: its weights, as
the ports keep no average) on the validation images and snapshots them; evaluation time is not training time and
is not charged to either. After the budget, for each budget mark the snapshot with the lowest validation bits/dim
is scored on the whole 10,000-image test split; every snapshot is also scored on a fixed, class-balanced
2,000-image draw of the test split for the curve (test bits/dim against seconds).

The reference's recipe does not depend on its budget (constant learning rate after the warmup), so one run at the
longest budget gives every mark. Ours decays its learning rate to zero at its last step, so each budget is its own
run: a pilot (``glowlib.plan.measure``: the median of 30 timed steps; at the cpu model's batch it times whole
batches) sets ``train.steps`` to fill 98% of the budget, and the harness stops at the budget if the machine turns
out slower.

    .venv/bin/python bench/quality_vs_time.py --contender reference --minutes 10 25
    .venv/bin/python bench/quality_vs_time.py --contender ours --minutes 10
    .venv/bin/python bench/quality_vs_time.py --contender ours --minutes 25
    .venv/bin/python bench/quality_vs_time.py --gates      # the sanity gates of our kept models
    .venv/bin/python bench/quality_vs_time.py --summary
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.reference import Glow as ReferenceGlow  # noqa: E402
from glowlib.data import to_float  # noqa: E402
from glowlib.files import atomic_write_bytes  # noqa: E402
from glowlib.objective import bits_per_dim, dequantize  # noqa: E402
from glowlib.profiles import profile_config  # noqa: E402
from glowlib.results import cpu_name, git_state  # noqa: E402
from glowlib.runtime import tune_allocator  # noqa: E402
from glowlib.analysis.judging import reference_indices  # noqa: E402
from glowlib.training.cache import cache_root  # noqa: E402
from glowlib.training.checkpoint import save_checkpoint  # noqa: E402
from glowlib.training.evaluate import NOISE_STREAM, bits_per_image, mean_and_sem, prepare_splits, seeded  # noqa: E402
from glowlib.training.schedule import batch_indices, init_images  # noqa: E402

OUT = ROOT / "results" / "bench" / "quality_vs_time"
N_VAL = 2000
N_TEST_CURVE = 2000
EVALS_PER_BUDGET = 25
# The reference's recipe, as the ports run it (y0ast/Glow-PyTorch, rosinality/glow-pytorch): Adamax at the official
# learning rate 1e-3, a linear warmup, no weight averaging, no clipping; the same model as ours (K=8, L=2, width 128,
# affine coupling, LU 1x1) and batch 64.
REFERENCE_RECIPE = {"optimizer": "adamax", "lr": 1e-3, "warmup_steps": 200, "batch_size": 64, "ema": None,
                    "grad_clip": None}


def our_run(minutes: float | None = None, steps: int | None = None, overrides=()):
    """Our cpu profile's Fashion-MNIST Glow, with the harness's validation split."""
    extra = [f"data.n_val={N_VAL}", "train.n_train_eval=0"] + ([f"train.steps={steps}"] if steps else [])
    extra += [f"train.max_minutes={minutes!r}"] if minutes else []
    return profile_config("cpu", "fashion_mnist", "glow", 0, extra + list(overrides))


class _Scored(torch.nn.Module):
    """The reference model seen through the interface ``bits_per_image`` calls (config.n_dims, log_prob(x, y))."""

    def __init__(self, model: ReferenceGlow, n_dims: int):
        super().__init__()
        self.model, self.config = model, type("Config", (), {"n_dims": n_dims})()

    def log_prob(self, x, y=None):
        return self.model.log_prob(x)


class _Reference:
    """The reference model and its training step (REFERENCE_RECIPE) over the harness's batches."""

    def __init__(self, run, splits):
        m = run.model
        self.model = ReferenceGlow(m.in_channels, m.image_size, m.n_levels, m.depth, m.width,
                                   m.coupling == "affine", m.lu)
        self.n_bits, self.n_dims, self.run, self.splits, self.step = run.data.n_bits, m.n_dims, run, splits, 0
        self.order = (-1, None)
        self.model.initialize(init_images(run, splits.train_x)[0])
        self.optimizer = torch.optim.Adamax(self.model.parameters(), lr=REFERENCE_RECIPE["lr"])

    def train_step(self):
        lr = REFERENCE_RECIPE["lr"] * min(1.0, (self.step + 1) / REFERENCE_RECIPE["warmup_steps"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, self.order = _batch(self.run, self.splits, self.step, REFERENCE_RECIPE["batch_size"], self.order)
        loss = bits_per_dim(self.model.log_prob(x), self.n_dims, self.n_bits).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1

    def evaluated(self):
        return _Scored(self.model, self.n_dims).eval()


class _Ours:
    def __init__(self, run, splits):
        from glowlib.training.loop import session
        self.r = session(run, splits)
        self.skipped = 0               # steps undone because their loss or gradient was not finite

    def train_step(self):
        from glowlib.training.loop import train_step
        train_step(self.r)
        if self.r.record.full(self.r.step):
            self.skipped += sum(row[3] == 0 for _, row in self.r.record.read(self.r.step))

    @property
    def step(self):
        return self.r.step

    def evaluated(self):
        return self.r.ema


def _batch(run, splits, step: int, batch: int, order=(-1, None)):
    """(step ``step``'s batch, the epoch's order) in glowlib's order and noise (``training.schedule``), for the
    reference."""
    idx, order = batch_indices(run, len(splits.train_x), step, batch, order)
    x = dequantize(to_float(splits.train_x[idx], run.data.n_bits), run.data.n_bits,
                   seeded(run.train.seed, NOISE_STREAM, step))
    return x, order


def _score(model, images, n_bits) -> tuple[float, float]:
    model.eval()
    try:
        return mean_and_sem(bits_per_image(model, images, n_bits, batch_size=500))
    finally:
        model.train()


def train_for(contender: str, budgets_min: list[float], threads: int) -> dict:
    """Train ``contender`` for max(budgets_min) minutes of training time; the record of its curve and of the
    validation-chosen checkpoint at each budget, scored on the whole test split."""
    torch.set_num_threads(threads)
    allocator = tune_allocator("tuned" if contender == "ours" else "system")
    budget_s = 60 * max(budgets_min)
    pilot = None
    if contender == "ours":
        from glowlib.plan import measure
        pilot = measure(our_run(), n_warmup=5, n_timed=30)
        run = our_run(max(budgets_min), steps=max(1, int(0.98 * budget_s / pilot["s_per_step"])))
    else:
        run = our_run(overrides=[f"train.batch_size={REFERENCE_RECIPE['batch_size']}"])
    splits = prepare_splits(run)
    test_curve_idx = reference_indices(splits.test_y, N_TEST_CURVE, seed=0)
    trainer = _Ours(run, splits) if contender == "ours" else _Reference(run, splits)
    n_bits, every = run.data.n_bits, budget_s / EVALS_PER_BUDGET
    snapshots, trained_s, next_eval = [], 0.0, every
    steps_cap = run.train.steps if contender == "ours" else 10 ** 9
    while trained_s < budget_s and trainer.step < steps_cap:
        start = time.perf_counter()
        trainer.train_step()
        trained_s += time.perf_counter() - start
        if trained_s >= next_eval or trained_s >= budget_s or trainer.step >= steps_cap:
            model = trainer.evaluated()
            val = _score(model, splits.val_x, n_bits)[0]
            snapshots.append({"step": trainer.step, "train_s": round(trained_s, 2), "val_bpd": val,
                              "state": copy.deepcopy(model.state_dict())})
            print(f"{contender}: step {trainer.step}, {trained_s:.0f} s, val {val:.4f} bits/dim", flush=True)
            next_eval += every
    model = trainer.evaluated()
    curve, chosen = [], []
    for snap in snapshots:
        model.load_state_dict(snap["state"])
        snap["test_curve_bpd"] = _score(model, splits.test_x[test_curve_idx], n_bits)[0]
        curve.append({k: v for k, v in snap.items() if k != "state"})
    for minutes in sorted(budgets_min):
        within = [s for s in snapshots if s["train_s"] <= 60 * minutes * 1.01] or snapshots[:1]
        best = min(within, key=lambda s: s["val_bpd"])
        model.load_state_dict(best["state"])
        if contender == "ours":         # kept (out of git) so that its samples can be checked: --gates
            kept = cache_root() / "quality_vs_time" / f"{record_name(contender, [minutes], cpu_name())}.pt"
            save_checkpoint(kept,
                            {"model": best["state"], "ema": best["state"], "config": run.to_dict(),
                             "step": best["step"], "optimizer": {}})
        test, sem = _score(model, splits.test_x, n_bits)
        chosen.append({"minutes": minutes, "step": best["step"], "train_s": best["train_s"],
                       "val_bpd": best["val_bpd"], "test_bpd": test, "test_sem": sem})
    return {"contender": contender, "budgets_min": sorted(budgets_min), "chosen": chosen, "curve": curve,
            "recipe": REFERENCE_RECIPE if contender == "reference" else run.to_dict()["train"],
            "model": run.to_dict()["model"], "pilot": pilot, "n_val": N_VAL, "n_test": len(splits.test_x),
            "machine": cpu_name(), "threads": threads, "allocator": allocator, "torch": torch.__version__,
            "skipped_steps": getattr(trainer, "skipped", None), "load_average_end": os.getloadavg(),
            **git_state(ROOT), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def record_name(contender: str, budgets_min: list[float], machine: str) -> str:
    """The record's file stem: contender, budgets and the machine (a slug of its CPU name), so that runs on
    different machines stand side by side instead of replacing each other."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", machine.lower())).strip("-")
    return f"{contender}_{'_'.join(f'{m:g}' for m in budgets_min)}min_{slug}"


def add_gates(n: int = 500) -> dict[str, list]:
    """Each of our records with the sanity gates (``bench.common.sample_gates``) of the model it kept for each
    budget (``$GLOWLIB_CACHE/quality_vs_time/``) added under ``gates``; {record: its budgets' gates}."""
    from bench.common import sample_gates
    from glowlib.training import load_trained
    out = {}
    for path in sorted(OUT.glob("ours_*.json")):
        record = json.loads(path.read_text())
        record.setdefault("gates", {})      # gates recorded before stay: the model may be on another machine
        for minutes in record["budgets_min"]:
            model_path = cache_root() / "quality_vs_time" / f"{path.stem}.pt"
            if model_path.is_file():
                record["gates"][f"{minutes:g}"] = sample_gates(f"ours_{minutes:g}min", load_trained(model_path),
                                                               our_run(), n)
        atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
        out[path.stem] = record["gates"]
    return out


def summary() -> list[dict]:
    """One row per recorded run and budget, as the Cost page has them
    (``glowlib.analysis.bench_records.quality_vs_time``)."""
    from glowlib.analysis.bench_records import quality_vs_time
    chosen, _ = quality_vs_time(OUT.parent)
    return [] if chosen is None else chosen.to_dict("records")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contender", choices=("ours", "reference"))
    p.add_argument("--minutes", type=float, nargs="+", default=[10.0, 25.0],
                   help="budgets of training time (ours: one run for the longest; give one budget per run)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--summary", action="store_true")
    p.add_argument("--gates", action="store_true", help="add the sanity gates of our kept models to their records")
    args = p.parse_args(argv)
    if args.gates or args.contender:
        from bench.common import refuse_uncommitted
        refuse_uncommitted()
    if args.gates:
        for name, by_budget in add_gates().items():
            for minutes, g in by_budget.items():
                print(name, minutes, [(x["gate"], round(x["value"], 3), x["passed"]) for x in g["gates"]])
    if args.contender:
        if args.contender == "ours" and len(args.minutes) > 1:
            raise SystemExit("ours decays its learning rate to the end of its budget: give one --minutes per run")
        record = train_for(args.contender, args.minutes, args.threads)
        OUT.mkdir(parents=True, exist_ok=True)
        name = record_name(args.contender, args.minutes, record["machine"]) + ".json"
        atomic_write_bytes(OUT / name, (json.dumps(record, indent=1) + "\n").encode())
        for c in record["chosen"]:
            print(f"{args.contender} {c['minutes']:g} min: test {c['test_bpd']:.4f} +- {c['test_sem']:.4f} "
                  f"bits/dim (step {c['step']}, val {c['val_bpd']:.4f})")
    if args.summary:
        for row in summary():
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
