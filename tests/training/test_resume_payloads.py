"""A checkpoint whose contents are malformed is refused before use, with one line naming what is wrong: by
``--resume`` (exit 2, no traceback), by ``load_trained`` and by the cache."""
import math

import pytest
import torch

from glowlib.__main__ import main
from glowlib.training import CheckpointError, load_checkpoint, load_trained, save_checkpoint, train
from test_train_robustness import tiny_run

SETS = ["model.depth=1", "model.width=8", "train.steps=8", "train.eval_every=4", "train.ckpt_every=4",
        "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=32", "data.n_val=32",
        "train.n_test_eval=64", "train.warmup_steps=3", "train.device='cpu'"]


def first_weight(state, key="model"):
    return next(k for k, v in state[key].items() if v.is_floating_point() and v.numel() > 1)


def break_state(state, how):
    if how == "missing model weight":
        del state["model"][first_weight(state)]
    elif how == "wrong shape":
        name = first_weight(state)
        state["model"][name] = torch.zeros(3, 3)
    elif how == "nan polyak weights":
        state["ema"][first_weight(state, "ema")].fill_(math.nan)
    elif how == "inf model weights":
        state["model"][first_weight(state)].fill_(math.inf)
    elif how == "step beyond the run":
        state["step"] = 10 ** 9
    elif how == "negative step":
        state["step"] = -1
    elif how == "step as text":
        state["step"] = "4"
    elif how == "huge depth in config":
        state["config"]["model"]["depth"] = 10 ** 7
    elif how == "optimizer not a state":
        state["optimizer"] = {"state": [], "param_groups": 5}
    elif how == "metrics not rows":
        state["metrics"] = "oops"
    elif how == "rng missing":
        del state["rng"]
    elif how == "window images negative":
        state["window_images"] = -5
    elif how == "lr scale nan":
        state["lr_scale"] = math.nan
    elif how == "model not a dict":
        state["model"] = [1, 2]
    elif how == "integer weights":
        name = first_weight(state, "ema")
        state["ema"][name] = torch.zeros(state["ema"][name].shape, dtype=torch.int64)
    return state


CASES = ["missing model weight", "wrong shape", "nan polyak weights", "inf model weights", "step beyond the run",
         "negative step", "step as text", "huge depth in config", "optimizer not a state", "metrics not rows",
         "rng missing", "window images negative", "lr scale nan", "model not a dict", "integer weights"]


@pytest.mark.parametrize("how", CASES)
def test_resume_from_a_malformed_checkpoint_is_one_line_and_changes_nothing(tmp_path, capsys, how):
    out = tmp_path / "run"
    train(tiny_run(), out, stop_after=4, progress=False)
    last = out / "last.pt"
    save_checkpoint(last, break_state(load_checkpoint(last, resume=True), how))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    rc = main(["train", "--profile", "smoke", "--dataset", "digits", "--out", str(out), "--resume", "--no-progress",
               "--set", *SETS])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and str(last) in captured.err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not (out / "best.pt").exists() or "best.pt" in before


def test_the_error_names_what_is_wrong(tmp_path):
    train(tiny_run(), tmp_path, stop_after=4, progress=False)
    last = tmp_path / "last.pt"
    good = load_checkpoint(last, resume=True)
    expectations = {"wrong shape": r"has shape \(3, 3\), but the model of its config has",
                    "nan polyak weights": r"ema\['top'\] holds non-finite values",
                    "step beyond the run": "step=1000000000, but its run trains train.steps=8 steps",
                    "huge depth in config": "depth=10000000 is out of range",
                    "missing model weight": "'model' weights do not fit the model of its config: lacks"}
    for how, message in expectations.items():
        save_checkpoint(last, break_state({k: v for k, v in good.items()} | {
            "model": dict(good["model"]), "ema": {k: v.clone() for k, v in good["ema"].items()},
            "config": {s: dict(v) if isinstance(v, dict) else v for s, v in good["config"].items()}}, how))
        with pytest.raises(CheckpointError, match=message):
            load_trained(last)
