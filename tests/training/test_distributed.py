"""torchrun with 2 CPU processes (gloo) gives the same run as one process with the same global batch. Each process
takes ``train.batch_size`` images, as the official code's per-GPU ``n_batch_train``: 2 processes at 8 images are
one process at 16. Under torchrun on CUDA each process binds its own GPU, cuda:LOCAL_RANK."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from glowlib.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SETS = ["model.depth=1", "model.width=8", "train.steps=8", "train.eval_every=4", "train.init_batch=32",
        "train.n_train_eval=64", "data.n_val=64", "train.device='cpu'"]


def _train(out: Path, nproc: int, batch: int):
    args = ["-m", "glowlib", "train", "--profile", "smoke", "--dataset", "digits", "--out", str(out),
            "--no-progress", "--set", *SETS, f"train.batch_size={batch}"]
    if nproc > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] + args
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(out / "metrics.csv")


def test_two_gloo_processes_match_one(tmp_path):
    one = _train(tmp_path / "one", 1, 16)
    two = _train(tmp_path / "two", 2, 8)                 # 8 per process: the same global batch of 16
    assert list(one.step) == list(two.step) == [4, 8]
    for column in ["train_bpd", "val_bpd", "test_bpd", "train_eval_bpd"]:
        assert two[column].values == pytest.approx(one[column].values, abs=1e-3), column
    # only rank 0 writes: one metrics file and one lock (the folder's owner), no per-rank leftovers
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [".lock", "best.pt", "last.pt", "metrics.csv"]
    state = load_checkpoint(tmp_path / "two" / "last.pt")
    assert state["world_size"] == 2 and state["global_batch"] == 16


def test_each_torchrun_process_binds_its_own_gpu(monkeypatch):
    """What ``training_device`` does on a CUDA machine, with CUDA's calls stood in for: rank 1 of 2 takes cuda:1
    and makes it the current device (without that, every rank would use cuda:0 and NCCL refuses the duplicate)."""
    import glowlib.training.loop as loop
    bound = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", bound.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert loop.training_device("auto") == torch.device("cuda", 1) and bound == [torch.device("cuda", 1)]
    with pytest.raises(ValueError, match="cuda:LOCAL_RANK"):
        loop.training_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match="nproc_per_node"):
        loop.training_device("cuda")
