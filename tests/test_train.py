"""Training: exact resume, atomic and validated checkpoints, the non-finite policy, the cache, the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from glowlib.training import get_model, run_dir, trained
from glowlib.profiles import profile_config
from glowlib.training import CheckpointError, TrainingFailed, evaluate, load_checkpoint, load_trained, train

ROOT = Path(__file__).resolve().parent.parent
LOSSES = ["train_bpd", "train_eval_bpd", "val_bpd", "test_bpd"]


def tiny_run(**train_overrides):
    sets = ["model.depth=1", "model.width=8", "train.steps=12", "train.eval_every=4", "train.ckpt_every=4",
            "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=64", "data.n_val=64",
            "train.warmup_steps=3", "train.device='cpu'"] + [f"train.{k}={v!r}" for k, v in train_overrides.items()]
    return profile_config("smoke", "digits", overrides=sets)


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    run = tiny_run()
    train(run, tmp_path / "a", progress=False)
    train(run, tmp_path / "b", stop_after=6, progress=False)          # interrupted between two checkpoints
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 6
    train(run, tmp_path / "b", resume=True, progress=False)
    a, b = pd.read_csv(tmp_path / "a" / "metrics.csv"), pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert list(a.step) == list(b.step) == [4, 8, 12]
    pd.testing.assert_frame_equal(a[LOSSES], b[LOSSES])
    wa, wb = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])


def test_same_seed_is_deterministic_and_seeds_differ(tmp_path):
    run = tiny_run()
    train(run, tmp_path / "a", progress=False)
    train(run, tmp_path / "b", progress=False)
    train(tiny_run(seed=1), tmp_path / "c", progress=False)
    a, b, c = (pd.read_csv(tmp_path / n / "metrics.csv") for n in "abc")
    pd.testing.assert_frame_equal(a[LOSSES], b[LOSSES])
    assert not a.train_bpd.equals(c.train_bpd)


def test_training_lowers_bits_per_dim_and_best_is_chosen_on_validation(tmp_path):
    run = tiny_run(steps=40, eval_every=10)
    result = train(run, tmp_path, progress=False)
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert m.val_bpd.iloc[-1] < m.val_bpd.iloc[0] - 0.2
    assert result.best_val_bpd == pytest.approx(m.val_bpd.min())
    assert result.test_bpd_at_best == pytest.approx(m.test_bpd[m.val_bpd.idxmin()])
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["step"] == m.step[m.val_bpd.idxmin()]


def test_corrupt_checkpoint_is_reported_and_left_untouched(tmp_path):
    run = tiny_run()
    train(run, tmp_path, stop_after=4, progress=False)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:100])                         # truncated, as by a full disk
    damaged = last.read_bytes()
    with pytest.raises(CheckpointError, match="corrupt"):
        train(run, tmp_path, resume=True, progress=False)
    assert last.read_bytes() == damaged
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fresh_run_refuses_to_overwrite_checkpoints(tmp_path):
    run = tiny_run()
    train(run, tmp_path, stop_after=4, progress=False)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(run, tmp_path, progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_with_another_config_is_refused(tmp_path):
    train(tiny_run(), tmp_path, stop_after=4, progress=False)
    with pytest.raises(CheckpointError, match="different config"):
        train(tiny_run(lr=5e-4), tmp_path, resume=True, progress=False)


def test_nonfinite_loss_is_skipped_reloaded_and_the_run_survives(tmp_path, monkeypatch):
    """Steps 5-7 produce a NaN loss (as a blown-up affine coupling would): two are skipped, the third reloads the
    last good checkpoint (step 4) and halves the lr; the run finishes with finite weights and curves."""
    from glowlib.models import Glow
    calls, plain = {"n": 0}, Glow.forward

    def flaky(self, x, y=None):
        calls["n"] += 1
        return plain(self, x, y) * (float("nan") if 6 <= calls["n"] <= 8 else 1.0)

    monkeypatch.setattr(Glow, "forward", flaky)
    result = train(tiny_run(max_skips=3), tmp_path, progress=False)
    assert [e["step"] for e in result.nonfinite_events] == [5, 6, 7]
    assert [e["action"] for e in result.nonfinite_events][:2] == ["skip", "skip"]
    assert "reload" in result.nonfinite_events[2]["action"]
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["lr_scale"] == 0.5 and state["step"] == 12
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert pd.read_csv(tmp_path / "metrics.csv")[LOSSES].notna().all().all()


def test_skip_policy_never_reloads(tmp_path, monkeypatch):
    from glowlib.models import Glow
    plain = Glow.forward
    monkeypatch.setattr(Glow, "forward", lambda self, x, y=None: plain(self, x, y) * float("nan"))
    with pytest.raises(TrainingFailed) as failed:       # every step non-finite: no evaluation, nothing to keep
        train(tiny_run(nonfinite_policy="skip", steps=6), tmp_path, progress=False)
    assert [e["action"] for e in failed.value.result.nonfinite_events] == ["skip"] * 6


def test_evaluate_sem_and_importance_weighting(tmp_path):
    run = tiny_run()
    train(run, tmp_path, progress=False)
    model = load_trained(tmp_path / "best.pt")
    from glowlib.data import load_dataset
    images = load_dataset("digits").test_images[:64]
    bpd1, sem = evaluate(model, images, 8, seed=0)
    bpd8, _ = evaluate(model, images, 8, seed=0, n_samples=8)
    assert 0 < sem < 1
    assert bpd8 <= bpd1 + 3 * sem        # the k-sample bound is tighter (up to noise)
    with pytest.raises(ValueError, match="n_samples=0"):
        evaluate(model, images, 8, n_samples=0)


def test_cache_trains_once_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    run = tiny_run()
    first = trained(run, progress=False)
    mtime = (run_dir(run) / "best.pt").stat().st_mtime_ns
    second = trained(run, progress=False)
    assert (run_dir(run) / "best.pt").stat().st_mtime_ns == mtime
    assert first.summary == second.summary and first.summary["key"] == run.key()
    x = torch.rand(4, 1, 8, 8) - 0.5
    assert torch.equal(first.model.log_prob(x), second.model.log_prob(x))
    assert not first.model.training


def test_cli_train_and_evaluate(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "glowlib", "train", "--profile", "smoke", "--dataset", "digits", "--out", str(out),
           "--no-progress", "--set", "train.steps=8", "train.eval_every=4", "model.depth=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == 8
    ev = subprocess.run([sys.executable, "-m", "glowlib", "evaluate", str(out / "best.pt")], capture_output=True,
                        text=True, env=env, cwd=ROOT)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n_images"] == 300
    bad = subprocess.run(cmd[:-3] + ["model.depthh=3"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "no field 'depthh'" in bad.stderr


@pytest.mark.parametrize("sets, match", [(["train.optimizer='sgd'"], "optimizer='sgd'"),
                                         (["bogus"], "expected key=value"),
                                         (["data.dataset='imagenet'"], "dataset='imagenet'")])
def test_bad_overrides_name_the_value(sets, match):
    with pytest.raises(ValueError, match=match):
        profile_config("smoke", "digits", overrides=sets)


def test_model_and_dataset_shapes_must_agree(tmp_path):
    run = profile_config("smoke", "digits", overrides=["model.image_size=16"])
    with pytest.raises(ValueError, match="expects \\(1, 16, 16\\)"):
        train(run, tmp_path, progress=False)
