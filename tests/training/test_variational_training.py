"""Variational dequantisation and MaCow through the training loop: trained jointly, checkpointed, resumed exactly,
evaluated as an ELBO and an importance-weighted bound, and refused where the combination makes no sense."""
import pandas as pd
import pytest
import torch

from glowlib import MaCow
from glowlib.config import RunConfig
from glowlib.models.dequantization import VariationalDequantization
from glowlib.objective import elbo_bits_per_dim
from glowlib.data import to_float
from glowlib.profiles import profile_config
from glowlib.training import (CheckpointError, evaluate, load_checkpoint, load_trained, load_trained_with_dequantizer,
                              prepare_splits, seeded, train)
from glowlib.training.evaluate import EVAL_STREAM

LOSSES = ["train_bpd", "train_eval_bpd", "val_bpd", "test_bpd"]


def tiny(model_type="glow", dequantization="variational", **train_overrides):
    sets = ["model.depth=2", "model.width=8", "train.steps=12", "train.eval_every=4", "train.ckpt_every=4",
            "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=64", "data.n_val=64",
            "train.warmup_steps=3", "train.device='cpu'", f"train.dequantization={dequantization!r}",
            "train.lr=0.005"] + [f"train.{k}={v!r}" for k, v in train_overrides.items()]
    return profile_config("smoke", "digits", model_type, overrides=sets)


@pytest.fixture(scope="module")
def variational_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vardeq") / "a"
    run = tiny()
    train(run, out, progress=False)
    return run, out


def test_dequantiser_is_trained_checkpointed_and_resumed_exactly(variational_run, tmp_path):
    run, a = variational_run
    state = load_checkpoint(a / "last.pt")
    fresh = VariationalDequantization(1)
    moved = [k for k, v in fresh.state_dict().items() if not torch.equal(v, state["dequantizer"][k])]
    assert any(k.startswith("couplings") for k in moved)              # the optimizer reached q's parameters
    assert not all(torch.equal(state["dequantizer"][k], state["dequantizer_ema"][k]) for k in moved)   # Polyak
    b = tmp_path / "b"
    train(run, b, stop_after=6, progress=False)
    train(run, b, resume=True, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv")[LOSSES], pd.read_csv(b / "metrics.csv")[LOSSES])
    other = load_checkpoint(b / "last.pt")
    assert all(torch.equal(state["dequantizer"][k], other["dequantizer"][k]) for k in state["dequantizer"])


def test_evaluation_is_the_elbo_of_the_learned_q_and_the_bound_tightens(variational_run):
    run, a = variational_run
    model, deq = load_trained_with_dequantizer(a / "best.pt")
    assert isinstance(deq, VariationalDequantization) and not deq.training
    test = prepare_splits(run).test_x
    elbo, sem = evaluate(model, test, run.data.n_bits, batch_size=1000, seed=3, dequantizer=deq)
    with torch.no_grad():                                             # the same noise, by hand
        by_hand = elbo_bits_per_dim(model, to_float(test, run.data.n_bits), deq, run.data.n_bits,
                                    generator=seeded(3, EVAL_STREAM, 0)).double().mean().item()
    assert elbo == pytest.approx(by_hand, abs=1e-9)
    iw, iw_sem = evaluate(model, test, run.data.n_bits, batch_size=1000, seed=3, n_samples=8, dequantizer=deq)
    assert iw <= elbo + 3 * sem                 # never looser beyond noise (its first sample is the ELBO's noise)
    # the uniform estimate of the same model is a different bound on the same -log2 P(x)
    uniform = evaluate(model, test, run.data.n_bits, batch_size=1000, seed=3)[0]
    assert uniform != elbo and abs(uniform - elbo) < 1.0


def test_uniform_run_has_no_dequantiser_and_its_key_is_unchanged(tmp_path):
    run = tiny(dequantization="uniform")
    plain = profile_config("smoke", "digits")                  # the key a run had before the field existed
    assert plain.key() == profile_config("smoke", "digits", overrides=["train.dequantization='uniform'"]).key()
    assert plain.key() != profile_config("smoke", "digits", overrides=["train.dequantization='variational'"]).key()
    train(run, tmp_path / "u", progress=False)
    assert "dequantizer" not in load_checkpoint(tmp_path / "u" / "last.pt")
    assert load_trained_with_dequantizer(tmp_path / "u" / "best.pt")[1] is None


def test_a_variational_checkpoint_without_its_dequantiser_is_refused(variational_run, tmp_path):
    run, a = variational_run
    state = load_checkpoint(a / "best.pt")
    del state["dequantizer"], state["dequantizer_ema"]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    size = path.stat().st_size
    with pytest.raises(CheckpointError, match="holds no dequanti[sz]er"):
        load_trained_with_dequantizer(path)
    assert path.stat().st_size == size


@pytest.mark.parametrize("dequantization", ["uniform", "variational"])
def test_macow_trains_resumes_and_loads(tmp_path, dequantization):
    run = tiny("macow", dequantization)
    a = tmp_path / "a"
    result = train(run, a, progress=False)
    m = pd.read_csv(a / "metrics.csv")
    assert result.step == 12 and m.val_bpd.iloc[-1] < m.val_bpd.iloc[0]         # it learns
    b = tmp_path / "b"
    train(run, b, stop_after=5, progress=False)
    train(run, b, resume=True, progress=False)
    pd.testing.assert_frame_equal(m[LOSSES], pd.read_csv(b / "metrics.csv")[LOSSES])
    model = load_trained(a / "best.pt")
    assert isinstance(model, MaCow) and RunConfig.from_dict(load_checkpoint(a / "best.pt")["config"]) == run


def test_bad_combinations_name_the_value():
    with pytest.raises(ValueError, match="dequantization='gaussian'.*choose one of \\('uniform', 'variational'\\)"):
        tiny(dequantization="gaussian")
    with pytest.raises(ValueError, match="y_weight=0.5 with train.dequantization='variational'"):
        profile_config("smoke", "digits", overrides=["model.n_classes=10", "train.y_weight=0.5",
                                                     "train.dequantization='variational'"])
    glow = profile_config("smoke", "digits")
    with pytest.raises(ValueError, match="model_type='macow' needs a MaCowConfig"):
        RunConfig(model=glow.model, data=glow.data, train=glow.train, model_type="macow")
    with pytest.raises(ValueError, match="model_type='flowpp' is not allowed"):
        profile_config("smoke", "digits", "flowpp")
