"""Training: exact resume, atomic and validated checkpoints, the non-finite policy, the cache, the CLI."""
import json
import math
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

ROOT = Path(__file__).resolve().parents[2]
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


def nan_from(monkeypatch, bad_calls):
    """Make the training step's log p(x) NaN on the calls (1-based) for which ``bad_calls(n)`` is true. The step
    computes it with ``training.step.log_likelihood`` (``log_prob`` without the model's input checks, which would
    make the host wait for the device at every step), so that is where the NaN goes in."""
    import glowlib.training.step as step
    calls, plain = {"n": 0}, step.log_likelihood

    def flaky(model, x, y=None, latents=False):
        calls["n"] += 1
        return plain(model, x, y) * (float("nan") if bad_calls(calls["n"]) else 1.0)

    monkeypatch.setattr(step, "log_likelihood", flaky)


def test_nonfinite_loss_is_skipped_reloaded_and_the_run_survives(tmp_path, monkeypatch):
    """Steps 5-7 produce a NaN loss (as a blown-up affine coupling would). Each is undone on the device; the host
    learns of them when it reads the step statistics (here at step 8, an evaluation): two are recorded as skips,
    the third reloads the last good checkpoint (step 4) and halves the lr; the run finishes with finite weights
    and curves."""
    nan_from(monkeypatch, lambda n: 6 <= n <= 8)
    result = train(tiny_run(max_skips=3), tmp_path, progress=False)
    assert [e["step"] for e in result.nonfinite_events] == [5, 6, 7]
    assert [e["action"] for e in result.nonfinite_events][:2] == ["skip", "skip"]
    assert "reload" in result.nonfinite_events[2]["action"]
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["lr_scale"] == 0.5 and state["step"] == 12
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert pd.read_csv(tmp_path / "metrics.csv")[LOSSES].notna().all().all()


def test_skip_policy_never_reloads(tmp_path, monkeypatch):
    nan_from(monkeypatch, lambda n: True)
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


# ------------------------------------------------------------------ the step on the device, the budget, the warmup
def state_tensors(r):
    """Everything a step may change: the model's and the Polyak copy's parameters, the optimizer's state."""
    optimizer = [t for s in r.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    return list(r.model.parameters()) + list(r.ema.parameters()) + optimizer


def test_a_nonfinite_step_is_undone_exactly(monkeypatch):
    from glowlib.training.loop import session, train_step
    r = session(tiny_run())
    train_step(r)                                           # a good step: the optimizer has its state now
    before = [t.detach().clone() for t in state_tensors(r)]
    nan_from(monkeypatch, lambda n: True)
    train_step(r)
    assert r.step == 2 and all(torch.equal(a, b) for a, b in zip(before, state_tensors(r)))
    assert [row[3] for _, row in r.record.read(r.step)] == [1.0, 0.0]     # finite, then not


def test_a_nonfinite_first_step_leaves_the_fresh_state(monkeypatch):
    from glowlib.training.loop import session, train_step
    r = session(tiny_run())
    initial = [p.detach().clone() for p in list(r.model.parameters()) + list(r.ema.parameters())]
    nan_from(monkeypatch, lambda n: True)
    train_step(r)
    assert all(torch.equal(a, b) for a, b in zip(initial, list(r.model.parameters()) + list(r.ema.parameters())))
    assert all(not t.any() for s in r.optimizer.state.values() for t in s.values())   # as if never stepped


def test_the_time_budget_evaluates_checkpoints_stops_and_counts_resumed_time(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path / "cache"))
    run = tiny_run(steps=100_000, eval_every=50_000, ckpt_every=50_000, max_minutes=0.05)    # 3 s
    result = train(run, tmp_path / "run", progress=False)
    assert 0 < result.step < 100_000 and "max_minutes" in result.stopped
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == result.step and state["max_minutes"] == 0.05 and state["config"]["train"]["max_minutes"]
    assert state["wall_s"] >= 3 and pd.read_csv(tmp_path / "run" / "metrics.csv").step.iloc[-1] == result.step
    again = train(run, tmp_path / "run", resume=True, progress=False)     # the budget is spent: no more steps
    assert again.step == result.step and again.stopped
    cached = trained(run, progress=False)
    assert cached.summary["stopped"] and cached.summary["steps"] > 0


def test_warmup_fraction_scales_with_the_run_and_new_fields_keep_keys():
    from glowlib.training.loop import warmup_steps
    assert warmup_steps(tiny_run(steps=400, warmup_fraction=0.25)) == 100
    assert warmup_steps(tiny_run(steps=400)) == 3                       # 0.0: warmup_steps as given
    with pytest.raises(ValueError, match="warmup_fraction"):
        tiny_run(warmup_fraction=1.5)
    with pytest.raises(ValueError, match="max_minutes"):
        tiny_run(max_minutes=-1.0)
    assert tiny_run().key() == tiny_run(max_minutes=0.0, warmup_fraction=0.0).key()   # old keys unchanged
    assert tiny_run(max_minutes=5.0).key() != tiny_run().key() != tiny_run(warmup_fraction=0.1).key()


def test_cosine_schedule_warms_up_decays_to_its_floor_and_is_a_function_of_the_step():
    from glowlib.training.loop import lr_factor
    run = tiny_run(steps=100, warmup_fraction=0.1, lr_schedule="cosine", lr_final_fraction=0.1)
    f = [lr_factor(run, s) for s in range(100)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])             # linear warmup over 10 steps
    assert f[10] == pytest.approx(1.0) and f[99] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert all(a >= b for a, b in zip(f[10:], f[11:]))                               # never rises after the warmup
    assert lr_factor(run, 100) == pytest.approx(0.1)                                 # the floor at the last step
    constant = tiny_run(steps=100, warmup_fraction=0.1)
    assert [lr_factor(constant, s) for s in (10, 50, 99)] == [1.0, 1.0, 1.0]


def test_schedule_and_beta2_reach_the_optimizer_and_bad_values_are_named():
    from glowlib.training.loop import session, train_step
    run = tiny_run(steps=20, warmup_fraction=0.5, lr_schedule="cosine", beta2=0.99)
    r = session(run)
    assert r.optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    for _ in range(15):
        train_step(r)
    from glowlib.training.loop import lr_factor
    assert r.optimizer.param_groups[0]["lr"] == pytest.approx(run.train.lr * lr_factor(run, 14))
    assert r.optimizer.param_groups[0]["lr"] < run.train.lr
    with pytest.raises(ValueError, match="lr_schedule='linear'.*constant.*cosine"):
        tiny_run(lr_schedule="linear")
    with pytest.raises(ValueError, match="beta2"):
        tiny_run(beta2=1.0)
    with pytest.raises(ValueError, match="lr_final_fraction"):
        tiny_run(lr_final_fraction=2.0)
    # the defaults reproduce the old behaviour, so they leave every cache key as it was
    assert tiny_run().key() == tiny_run(lr_schedule="constant", lr_final_fraction=0.0, beta2=0.999).key()
    assert len({tiny_run().key(), tiny_run(lr_schedule="cosine").key(), tiny_run(beta2=0.99).key()}) == 3


def test_cpu_seconds_are_recorded_carried_over_a_resume_and_unknown_after_an_older_checkpoint(tmp_path):
    """metrics.csv's cpu_s: the training process's CPU seconds (what a run cost, whatever else the machine ran),
    growing with the steps, carried over a resume; a checkpoint written without it leaves the total unknown."""
    run = tiny_run()
    result = train(run, tmp_path / "a", stop_after=4, progress=False)
    first = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert first.cpu_s.iloc[-1] > 0 and result.cpu_s >= first.cpu_s.iloc[-1]
    train(run, tmp_path / "a", resume=True, progress=False)
    whole = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert whole.cpu_s.is_monotonic_increasing and whole.cpu_s.iloc[-1] > first.cpu_s.iloc[-1]
    train(run, tmp_path / "b", stop_after=4, progress=False)
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    del state["cpu_s"]
    torch.save(state, tmp_path / "b" / "last.pt")
    assert math.isnan(train(run, tmp_path / "b", resume=True, progress=False).cpu_s)
