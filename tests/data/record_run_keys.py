"""Re-record tests/data/all_runs_keys.json: RunConfig.key() of every run the notebooks of the smoke and cpu profiles
train, in training order. Run it after a change that is meant to change what the notebooks train (each key names a
cached model: a changed key retrains), and say in the commit why the runs changed.

    .venv/bin/python tests/data/record_run_keys.py
"""
import json
import sys
from pathlib import Path

import torch

from glowlib.data import DATASETS, is_available
from glowlib.layers import bf16_support
from glowlib.studies import all_runs

HERE = Path(__file__).resolve().parent


def environment() -> dict:
    """What changes the run list besides the code: a fast bf16 path (the precision study) and the datasets present."""
    return {"bf16_fast_cpu": bf16_support("cpu")[0], "available": [d for d in DATASETS if is_available(d)]}


def record() -> dict:
    if torch.cuda.is_available():
        sys.exit("record on a CPU-only machine: the default profile and precision differ with CUDA")
    return {"about": "RunConfig.key() of every run the notebooks of each profile train, in training order, on a "
                     "machine with these datasets and this bf16 support (tests/data/record_run_keys.py)",
            "environment": environment(),
            **{profile: [r.key() for r in all_runs(profile)] for profile in ("smoke", "cpu")}}


if __name__ == "__main__":
    (HERE / "all_runs_keys.json").write_text(json.dumps(record(), indent=1) + "\n")
    print(f"recorded {HERE / 'all_runs_keys.json'}")
