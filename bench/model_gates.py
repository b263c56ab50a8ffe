"""Which cpu-profile models pass the studies' sanity gates: the measuring classifier's confidence on T = 1
samples against real images', the share of T = 1 draws that overflow, the pixel mean (``bench.common.sample_gates``,
500 draws, class-balanced validation images as the real reference; the test split is not looked at). It decides
the coupling and length of the reviewers' study models (``glowlib.studies.base.study_config``).

Each variant is a run of the cpu profile's mnist5k Glow, taken from the trained-model cache ($GLOWLIB_CACHE) and
trained there first where it is missing (minutes to tens of minutes on a 2-core CPU). One JSON record per variant
in ``results/bench/model_gates/``: the run's config key, steps, validation and test bits/dim, the gates, the machine.

    .venv/bin/python bench/model_gates.py --variant affine_1500 affine_3000 additive_1500 additive_2500
    .venv/bin/python bench/model_gates.py --summary
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import sample_gates  # noqa: E402
from glowlib.files import atomic_write_bytes  # noqa: E402
from glowlib.profiles import profile, profile_config  # noqa: E402
from glowlib.results import cpu_name, git_state  # noqa: E402

OUT = ROOT / "results" / "bench" / "model_gates"
ADDITIVE = ["model.coupling='additive'"]
# name: (overrides of the cpu profile's mnist5k Glow, seed 0, its tier, what it is)
VARIANTS = {
    "affine_1500": ([], "compare", "the bits/dim table's model: affine coupling, 1,500 steps"),
    # the profile's evaluation rule (profiles.profile_config) at 3,000 steps
    "affine_3000": (["train.steps=3000", f"train.eval_every={3000 // profile('cpu').evaluations}",
                     f"train.ckpt_every={3000 // profile('cpu').evaluations}"], "compare", "the same, twice as long"),
    "additive_1500": (ADDITIVE, "compare", "additive coupling (the official code's qualitative models), 1,500 steps"),
    "additive_2500": (ADDITIVE, "study", "additive coupling, the study tier's steps"),
}


def run_of(name: str):
    overrides, tier, _ = VARIANTS[name]
    return profile_config("cpu", "mnist5k", "glow", 0, overrides, tier=tier)


def measure(name: str) -> dict:
    from glowlib.training.cache import trained
    run = run_of(name)
    tm = trained(run, device="cpu", progress=False)
    return {"variant": name, "what": VARIANTS[name][2], "key": run.key(), "coupling": run.model.coupling,
            "steps": tm.summary["steps"], "best_val_bpd": tm.summary["best_val_bpd"],
            "test_bpd_at_best_val": tm.summary["test_bpd_at_best_val"], "wall_s": tm.summary["wall_s"],
            **sample_gates(name, tm.model, run), "cpu": cpu_name(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), **git_state(ROOT),
            "command": f"bench/model_gates.py --variant {name}", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def summary() -> list[str]:
    """One line per recorded variant: steps, bits/dim and each gate's value and verdict."""
    lines = []
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        gates = "; ".join(f"{g['gate']} {g['value']:.3g} ({'pass' if g['passed'] else 'FAIL'})" for g in r["gates"])
        lines.append(f"{r['variant']}: {r['steps']} steps, test {r['test_bpd_at_best_val']:.3f} bits/dim; {gates}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", nargs="+", choices=sorted(VARIANTS), default=[])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summary", action="store_true", help="print the recorded variants")
    args = p.parse_args(argv)
    if args.summary:
        print("\n".join(summary()) or f"no records in {OUT}")
        return 0
    if not args.variant:
        p.error("give --variant NAME ... or --summary")
    from bench.common import refuse_uncommitted
    refuse_uncommitted()
    torch.set_num_threads(args.threads)
    for name in args.variant:
        record = measure(name)
        OUT.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(OUT / f"{name}.json", (json.dumps(record, indent=1, default=str) + "\n").encode())
        print(f"{name}: {record['steps']} steps, gates "
              f"{[(g['gate'], round(g['value'], 3), g['passed']) for g in record['gates']]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
