"""The reviewers' studies (glowlib.studies.what_works, bits_5v8, temperature_validity, class_conditional): the
temperature-validity estimator on samplers that are exact by
construction and on ones that are not, parameter-matched widths, the classification loss (train.y_weight), the
bits/dim conversion across bit depths, and the wall-time interpolation."""
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import glowlib.training.loop as train_module
from glowlib.studies import bits_5v8, class_conditional, temperature_validity, what_works
from glowlib.config import EXECUTION_FIELDS, GlowConfig, RunConfig
from glowlib.studies.base import config_parameters
from glowlib.models import Glow
from glowlib.objective import bits_per_dim
from glowlib.data import to_float
from glowlib.analysis import to_uint8
from glowlib.profiles import ablation_config, profile_config


def tiny_glow(perturb: bool = True, seed: int = 0, **config) -> Glow:
    """A digits-sized Glow (8x8, L=2, K=2, width 16), ActNorm initialised on random data, every parameter perturbed
    (zero-initialised layers would make every coupling the identity and every prior fixed: a test of nothing)."""
    torch.manual_seed(seed)
    model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16, **config)).double()
    model.initialize(torch.rand(64, 1, 8, 8, dtype=torch.float64) - 0.5)
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def ess(model, temperature, n=256, seed=0):
    w = temperature_validity.importance_weights(model, temperature, n, seed)
    return temperature_validity.validity_measures(w["log_p"], w["log_q"], temperature, model.config.n_dims), w


# ---------------------------------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("learn_top", [False, True])
def test_additive_fixed_prior_sampler_is_exact(learn_top):
    model = tiny_glow(coupling="additive", learned_prior=False, learn_top=learn_top)
    assert temperature_validity.exact_by_construction(model.config)
    for t in (0.5, 0.7):
        m, w = ess(model, t)
        assert m["ess_fraction"] == pytest.approx(1.0, abs=1e-6)
        assert abs(m["kl_bits_per_dim"]) < 1e-9
        assert w["log_w"].std() < 1e-8 * w["log_w"].abs().mean()      # constant weights, not just a high ESS


@pytest.mark.parametrize("config", [dict(coupling="affine", learned_prior=False, learn_top=False),
                                    dict(coupling="affine"), dict(coupling="additive")])
def test_other_samplers_are_not_exact_at_reduced_temperature(config):
    model = tiny_glow(**config)
    assert not temperature_validity.exact_by_construction(model.config)
    m, _ = ess(model, 0.7)
    assert m["ess_fraction"] < 0.999
    assert m["kl_bits_per_dim"] > 0
    at_one, _ = ess(model, 1.0)                        # T = 1: the sampler is the model itself
    assert at_one["ess_fraction"] == pytest.approx(1.0, abs=1e-9)


def test_log_densities_match_the_model():
    model = tiny_glow(coupling="affine")
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64) - 0.5
    log_p, log_q = temperature_validity.log_densities(model, x, 1.0)
    torch.testing.assert_close(log_p, model.log_prob(x))
    torch.testing.assert_close(log_q, log_p)
    _, log_q_half = temperature_validity.log_densities(model, x, 0.5)
    assert torch.all(log_q_half != log_p)
    with pytest.raises(ValueError, match="> 0"):
        temperature_validity.log_densities(model, x, 0.0)


def test_validity_measures_known_answer():
    # weights w = (1, 1, 1, 4) (log p chosen with T = 1 and log q = 0): ESS = 49 / 19, over n = 4
    log_p = torch.tensor([0.0, 0.0, 0.0, math.log(4)], dtype=torch.float64)
    m = temperature_validity.validity_measures(log_p, torch.zeros(4, dtype=torch.float64), 1.0, n_dims=1)
    assert m["ess_fraction"] == pytest.approx(49 / 19 / 4)
    assert m["kl_bits_per_dim"] == pytest.approx((math.log(7 / 4) - math.log(4) / 4) / math.log(2))


# ---------------------------------------------------------------------------------------------------- widths
@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_depth_variants_match_the_reference_parameter_count(profile):
    reference = what_works.what_works_reference(profile, 0)
    target = config_parameters(reference)
    widths = set()
    for k in what_works.WHAT_WORKS_DEPTHS[profile]:
        run = what_works.what_works_config(profile, f"K={k}", 0)
        assert run.model.depth == k
        assert abs(config_parameters(run) / target - 1) <= what_works.WIDTH_TOLERANCE
        widths.add(run.model.width)
    assert len(widths) == len(what_works.WHAT_WORKS_DEPTHS[profile])            # the widths really differ
    assert what_works.what_works_config(profile, f"K={reference.model.depth}", 0) == reference   # the ablation's run


def test_variants_change_one_thing_and_runs_are_unique():
    ref = what_works.what_works_reference("smoke", 1)
    assert what_works.what_works_config("smoke", "no_actnorm", 1) == ref.override(["model.actnorm=False"])
    prior = what_works.what_works_config("smoke", "standard_prior", 1).model
    assert not prior.learned_prior and not prior.learn_top
    keys = [r.key() for study in (what_works, bits_5v8, temperature_validity, class_conditional)
            for r in study.runs("smoke")]
    assert ablation_config("smoke", "conv1x1", "affine", 0).key() in keys
    assert temperature_validity.validity_config("smoke", "affine", "learned").key() == bits_5v8.bits_config("smoke", 8).key()
    with pytest.raises(ValueError, match="variant"):
        what_works.what_works_config("smoke", "K=3", 0)
    with pytest.raises(ValueError, match="variants\\[0\\]"):
        what_works.check_parameters(profile="smoke", seed=0, out_dir="", variants=["K=3"], n_seeds=1,
                                    permutations=["conv1x1"], couplings=["affine"], wall_s=0.0)


# ---------------------------------------------------------------------------------------------------- y_weight
def conditional_run(y_weight=None, **train):
    sets = ["model.depth=1", "model.width=8", "model.n_classes=10", "train.steps=6", "train.eval_every=3",
            "train.ckpt_every=3", "train.batch_size=16", "train.init_batch=32", "train.n_train_eval=32",
            "data.n_val=32", "train.warmup_steps=2", "train.device='cpu'", "train.n_test_eval=64"]
    sets += [] if y_weight is None else [f"train.y_weight={y_weight!r}"]
    sets += [f"train.{k}={v!r}" for k, v in train.items()]
    return profile_config("smoke", "digits", overrides=sets)


def test_y_weight_adds_the_classification_loss_and_its_gradient():
    run0, run1 = conditional_run(), conditional_run(0.5)
    torch.manual_seed(0)
    model = Glow(run0.model)
    x, y = torch.rand(8, 1, 8, 8) - 0.5, torch.arange(8)
    model.initialize(x, y)
    with torch.no_grad():
        model.class_prior.weight.add_(0.1 * torch.randn_like(model.class_prior.weight))
        model.classifier.weight.add_(0.1 * torch.randn_like(model.classifier.weight))
    loss0, bpd0 = train_module.training_loss(model, x, y, run0)
    assert torch.equal(loss0, bits_per_dim(model(x, y), run0.model.n_dims, 8).mean())    # the loss as before
    loss0.backward()
    assert model.classifier.weight.grad is None                                          # the head is untouched
    model.zero_grad(set_to_none=True)
    loss1, bpd1 = train_module.training_loss(train_module._JointObjective(model), x, y, run1)
    zs, _ = model.encode(x)
    cross_entropy_bits = F.cross_entropy(model.classify(zs), y) / math.log(2)
    torch.testing.assert_close(bpd1, bpd0)
    torch.testing.assert_close(loss1 - bpd1, 0.5 * cross_entropy_bits)
    loss1.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_y_weight_zero_trains_exactly_as_before(tmp_path, monkeypatch):
    train_module.train(conditional_run(), tmp_path / "default", progress=False)

    def refuse(model):
        raise AssertionError("y_weight=0 must not build the classification objective")
    monkeypatch.setattr(train_module, "_JointObjective", refuse)
    train_module.train(conditional_run(0.0), tmp_path / "zero", progress=False)
    a, b = (pd.read_csv(tmp_path / n / "metrics.csv") for n in ("default", "zero"))
    columns = ["train_bpd", "train_eval_bpd", "val_bpd", "test_bpd"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    state = train_module.load_checkpoint(tmp_path / "zero" / "last.pt")
    assert not state["model"]["classifier.weight"].any()                   # zero-initialised, never trained


def test_y_weight_trains_the_head_and_needs_classes(tmp_path):
    run = conditional_run(1.0)
    train_module.train(run, tmp_path / "a", progress=False)
    state = train_module.load_checkpoint(tmp_path / "a" / "last.pt")
    assert state["model"]["classifier.weight"].abs().sum() > 0
    with pytest.raises(ValueError, match="n_classes"):
        train_module.train(run.override(["model.n_classes=0"]), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="y_weight"):
        conditional_run(-1.0)


def test_y_weight_zero_keeps_existing_cache_keys():
    run = profile_config("cpu", "mnist5k")
    d = run.to_dict()
    for name in EXECUTION_FIELDS:
        del d["model"][name]
    del d["train"]["y_weight"], d["train"]["dequantization"]      # both later fields, at their defaults
    if "precision" in d["model"] and d["model"]["precision"] == "fp32":
        del d["model"]["precision"]
    assert run.key() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    assert conditional_run(0.01).key() != conditional_run(0.0).key()


# ---------------------------------------------------------------------------------------------------- bits
def test_bits_per_dim_across_bit_depths_known_answers():
    d = 64
    uniform = torch.zeros(3, dtype=torch.float64)                    # log-density of U[-0.5, 0.5]^D
    bpd5, bpd8 = bits_per_dim(uniform, d, 5), bits_per_dim(uniform, d, 8)
    torch.testing.assert_close(bpd5, torch.full_like(bpd5, 5.0))
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(bpd5, 5, 8), bpd8)
    # a non-uniform 1-D density, constant on each 5-bit bin with probabilities pi: the 8-bit bins inside a 5-bit
    # bin share its probability equally, so scoring the same density with 8-bit bins must give bpd_5 + 3
    pi = torch.softmax(torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 0)
    pixels = torch.arange(256)
    log_density = torch.log(32 * pi[pixels // 8])
    b5 = bits_per_dim(log_density, 1, 5)
    torch.testing.assert_close(bits_5v8.bpd_at_more_bits(b5, 5, 8), bits_per_dim(log_density, 1, 8))
    torch.testing.assert_close(b5, -torch.log2(pi[pixels // 8]))
    with pytest.raises(ValueError):
        bits_5v8.bpd_at_more_bits(8.0, 8, 5)


def test_reduce_bits_is_how_n_bit_images_are_shown():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    for n in (1, 5, 8):
        assert torch.equal(bits_5v8.reduce_bits(images, n), to_uint8(to_float(images, n), n))


# ---------------------------------------------------------------------------------------------------- wall time
def hand_curves():
    rows = [("a", 0, 10, 100, 3.0), ("a", 0, 20, 200, 2.0), ("a", 0, 30, 300, 1.5),
            ("b", 0, 15, 100, 4.0), ("b", 0, 40, 200, 2.0),
            ("b", 1, 10, 100, 5.0), ("b", 1, 50, 200, 1.0)]
    df = pd.DataFrame(rows, columns=["variant", "seed", "wall_s", "step", "bpd"])
    return pd.concat([df.assign(split="test"), df.assign(split="train", bpd=df.bpd + 100)], ignore_index=True)


def test_bpd_at_wall_time_interpolates_and_never_extrapolates():
    table = what_works.bpd_at_wall_time(hand_curves(), ["variant"]).set_index(["variant", "seed"])
    assert (table.wall_s == 30).all()                           # the longest time every run reached
    assert table.loc[("a", 0), "bpd_at_wall_s"] == pytest.approx(1.5)
    assert table.loc[("b", 0), "bpd_at_wall_s"] == pytest.approx(4.0 - 2.0 * 15 / 25)
    assert table.loc[("b", 1), "bpd_at_wall_s"] == pytest.approx(5.0 - 4.0 * 20 / 40)
    assert table.loc[("b", 0), "step_at_wall_s"] == pytest.approx(100 + 100 * 15 / 25)
    assert table.loc[("a", 0), "final_bpd"] == 1.5 and table.loc[("b", 1), "final_step"] == 200
    later = what_works.bpd_at_wall_time(hand_curves(), ["variant"], wall_s=35).set_index(["variant", "seed"])
    assert np.isnan(later.loc[("a", 0), "bpd_at_wall_s"])        # run a ended at 30 s
    assert later.loc[("b", 0), "bpd_at_wall_s"] == pytest.approx(4.0 - 2.0 * 20 / 25)
    early = what_works.bpd_at_wall_time(hand_curves(), ["variant"], wall_s=12).set_index(["variant", "seed"])
    assert np.isnan(early.loc[("b", 0), "bpd_at_wall_s"])        # run b/0 was first evaluated at 15 s
    assert early.loc[("a", 0), "bpd_at_wall_s"] == pytest.approx(2.8)
    summary = what_works.wall_time_summary(table.reset_index(), ["variant"]).set_index("variant")
    assert summary.loc["b", "bpd_at_wall_s_mean"] == pytest.approx((2.8 + 3.0) / 2)
    assert summary.loc["b", "n_seeds"] == 2
    partial = what_works.wall_time_summary(later.reset_index(), ["variant"]).set_index("variant")
    assert partial.loc["a", "n_seeds"] == 0 and partial.loc["a", "n_runs"] == 1
