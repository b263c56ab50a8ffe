"""torchrun with 2 CPU processes (gloo) gives the same run as one process with the same global batch."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SETS = ["model.depth=1", "model.width=8", "train.steps=8", "train.eval_every=4", "train.batch_size=16",
        "train.init_batch=32", "train.n_train_eval=64", "data.n_val=64", "train.device='cpu'"]


def _train(out: Path, nproc: int):
    args = ["-m", "glowlib", "train", "--profile", "smoke", "--dataset", "digits", "--out", str(out),
            "--no-progress", "--set", *SETS]
    if nproc > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] + args
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(out / "metrics.csv")


def test_two_gloo_processes_match_one(tmp_path):
    one = _train(tmp_path / "one", 1)
    two = _train(tmp_path / "two", 2)
    assert list(one.step) == list(two.step) == [4, 8]
    for column in ["train_bpd", "val_bpd", "test_bpd", "train_eval_bpd"]:
        assert two[column].values == pytest.approx(one[column].values, abs=1e-3), column
    # only rank 0 writes: one metrics file and one lock (the folder's owner), no per-rank leftovers
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [".lock", "best.pt", "last.pt", "metrics.csv"]
