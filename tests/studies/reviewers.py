"""The reviewers' studies (glowlib.studies.what_works, bits_5v8, temperature_validity, class_conditional) and the
sample-judging studies' verdicts (temperature, samples, nearest_neighbours): the temperature-validity estimator on
samplers that are exact by construction and on ones that are not, parameter-matched widths, the classification
loss (train.y_weight), the bits/dim conversion across bit depths, the wall-time interpolation, the study models'
size, and how each claim is decided: over seeds, paired, and never past a failed sanity gate."""
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import glowlib.training.loop as train_module
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, VERDICTS
from glowlib.studies import (bits_5v8, class_conditional, nearest_neighbours, samples, temperature,
                             temperature_validity, what_works)
from glowlib.config import EXECUTION_FIELDS, KEYED_FIELDS, GlowConfig, TrainConfig
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
    # where the profile has no longer study tier (smoke), the validity study's additive/learned model is the 8-bit one
    assert temperature_validity.validity_config("smoke", "additive", "learned").key() == \
        bits_5v8.bits_config("smoke", 8).key()
    with pytest.raises(ValueError, match="variant"):
        what_works.what_works_config("smoke", "K=3", 0)
    with pytest.raises(ValueError, match="variants\\[0\\]"):
        what_works.check_parameters(profile="smoke", seed=0, out_dir="", variants=["K=3"], n_seeds=1,
                                    permutations=["conv1x1"], couplings=["affine"])


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
    run = profile_config("cpu", "mnist5k", overrides=["data.order='file'"])   # the split the old keys trained on
    d = run.to_dict()
    for name in EXECUTION_FIELDS:
        del d["model"][name]
    del d["train"]["y_weight"], d["train"]["dequantization"]      # both later fields, at their defaults
    del d["data"]["order"]                                         # later too, at its legacy value
    defaults = TrainConfig()
    for name in set(d["train"]) - set(KEYED_FIELDS["train"]):      # later fields, left out at their defaults
        if d["train"][name] == getattr(defaults, name):
            del d["train"][name]
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


# ---------------------------------------------------------------------------------------------------- study models
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_study_models_are_at_least_the_table_model_of_their_dataset(profile):
    from glowlib.studies.base import STUDY_DATASET
    table = profile_config(profile, STUDY_DATASET[profile])
    studied = [bits_5v8.bits_config(profile, 5), temperature_validity.validity_config(profile, "additive", "standard"),
               class_conditional.conditional_config(profile, 0.01)]
    for run in studied:
        assert run.data.dataset == table.data.dataset
        assert run.model.depth >= table.model.depth and run.model.width >= table.model.width
        assert run.model.n_levels >= table.model.n_levels and run.train.steps >= table.train.steps
    # the models whose samples the 5-bit and class-conditional studies judge have additive coupling, as the
    # official code's qualitative models; the 8-bit arm is the unvaried study model, shared by both studies
    from glowlib.studies.base import study_config
    assert bits_5v8.bits_config(profile, table.data.n_bits).key() == study_config(profile).key()
    for run in (bits_5v8.bits_config(profile, 5), class_conditional.conditional_config(profile, 0.01)):
        assert run.model.coupling == "additive" and run.model.learned_prior
    # the validity study keeps the table's length: its affine arm is what it tests
    for coupling in ("additive", "affine"):
        run = temperature_validity.validity_config(profile, coupling, "standard")
        assert run.model.coupling == coupling and run.train.steps == table.train.steps


def test_compared_models_are_trained_with_three_seeds():
    for study, names in ((bits_5v8, lambda r: r.data.n_bits),
                         (temperature_validity, lambda r: (r.model.coupling, r.model.learned_prior)),
                         (class_conditional, lambda r: r.train.y_weight)):
        seeds = {}
        for run in study.runs("cpu"):
            seeds.setdefault(names(run), set()).add(run.train.seed)
        # at least two arms to compare: the conditional study compares its one cpu weight with chance and with the
        # real images, not with another weight
        assert len(seeds) >= (1 if study is class_conditional else 2), study.NOTEBOOK
        assert all(s == {0, 1, 2} for s in seeds.values()), study.NOTEBOOK
        assert study.PARAMETERS["n_seeds"]("n_seeds", 3) == 3


# ---------------------------------------------------------------------------------------------------- verdicts
SAMPLE_STUDIES = (samples, temperature, bits_5v8, temperature_validity, class_conditional, nearest_neighbours)
GATE_NAMES = ("classifier confidence on T=1 samples", "share of non-finite draws", "pixel mean of T=1 samples")


def gates_of(*models, fail=()):
    """A gates table of passing gates, with the named models' pixel-mean gate failed."""
    rows = []
    for m in models:
        for g in GATE_NAMES:
            bad = m in fail and g.startswith("pixel")
            rows.append({"model": m, "gate": g, "value": 0.01 if bad else 0.12, "reference": 0.13,
                         "threshold": "within x2 of real", "passed": not bad, "n": 500})
    return pd.DataFrame(rows)


def write(root, notebook, **tables):
    """Tables of a notebook's results under ``root`` as the notebook writes them (CSV), with a provenance file."""
    folder = Path(root) / "smoke" / notebook
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "provenance.json").write_text("{}")
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)


def temperature_rows(precision_low=0.8, recall_low=0.3, seeds=5, spread=0.01):
    """A temperature table: T in {0, 0.5, 0.7, 1}, ``seeds`` sampling seeds, T = 1 precision 0.5 and recall 0.6."""
    rng = np.random.default_rng(0)
    rows = []
    for t in (0.0, 0.5, 0.7, 1.0):
        for s in range(seeds):
            p, r = (precision_low, recall_low) if t < 1 else (0.5, 0.6)
            rows.append({"source": "model", "temperature": t, "sampling_seed": s,
                         "precision": p + spread * rng.standard_normal(), "recall": r + spread * rng.standard_normal(),
                         "frechet": 50.0 + t, "confidence": 0.9, "n": 500})
    rows.append({"source": "real vs real", "temperature": np.nan, "sampling_seed": 0, "precision": 0.9,
                 "recall": 0.9, "frechet": 3.0, "confidence": 0.95, "n": 500})
    return pd.DataFrame(rows)


def test_temperature_compares_t07_with_t1_over_sampling_seeds(tmp_path):
    d = temperature.decisions(temperature_rows(), gates_of("glow-mnist5k")).set_index("measure")
    assert list(d.index) == ["precision", "recall", "frechet"]
    assert (d.t_low == 0.7).all() and d.loc["precision", "n"] == 5            # T = 0.7, not a fit over T in [0, 1]
    assert d.loc["precision", "verdict"] == CONFIRMED and d.loc["recall", "verdict"] == CONFIRMED
    assert d.loc["precision", "difference"] == pytest.approx(0.3, abs=0.02)
    assert d.loc["precision", "real_vs_real"] == 0.9 and "sampling seeds" in d.loc["precision", "test"]
    write(tmp_path, "temperature", temperature=temperature_rows(), gates=gates_of("glow-mnist5k"))
    [claim] = temperature.claims("smoke", tmp_path)
    assert claim.source == "paper" and claim.verdict == CONFIRMED and claim.n_seeds == 5
    assert "sampling seeds" in claim.test and "not training seeds" in claim.evidence
    # fidelity not raised at T = 0.7: the claim is contradicted, whatever the recall does
    write(tmp_path, "temperature", temperature=temperature_rows(precision_low=0.3), gates=gates_of("glow-mnist5k"))
    assert temperature.claims("smoke", tmp_path)[0].verdict == CONTRADICTED
    # no trade at all: inconclusive
    write(tmp_path, "temperature", temperature=temperature_rows(0.5, 0.6, spread=0.05),
          gates=gates_of("glow-mnist5k"))
    assert temperature.claims("smoke", tmp_path)[0].verdict == INCONCLUSIVE


def test_a_failed_gate_makes_a_claim_not_testable_naming_the_gate(tmp_path):
    write(tmp_path, "temperature", temperature=temperature_rows(),
          gates=gates_of("glow-mnist5k", fail=["glow-mnist5k"]))
    [claim] = temperature.claims("smoke", tmp_path)
    assert claim.verdict == NOT_TESTABLE and "glow-mnist5k: pixel mean of T=1 samples = 0.01" in claim.gate
    summary = pd.DataFrame([{"space": sp, "sampling_seed": s, "median_sample_to_train": 5.0 + 0.1 * s,
                             "median_test_to_train": 5.0, "ratio": 1 + 0.02 * s} for sp in ("pixel", "feature")
                            for s in range(5)])
    write(tmp_path, "nearest_neighbours", summary=summary, gates=gates_of("glow-mnist5k"))
    assert nearest_neighbours.claims("smoke", tmp_path)[0].verdict == CONFIRMED
    write(tmp_path, "nearest_neighbours", summary=summary, gates=gates_of("glow-mnist5k", fail=["glow-mnist5k"]))
    claim = nearest_neighbours.claims("smoke", tmp_path)[0]
    assert claim.verdict == NOT_TESTABLE and "pixel mean" in claim.gate
    copies = summary.assign(ratio=0.3)                                         # samples far closer than test images
    copies.loc[::2, "ratio"] = 0.32
    write(tmp_path, "nearest_neighbours", summary=copies, gates=gates_of("glow-mnist5k"))
    assert nearest_neighbours.claims("smoke", tmp_path)[0].verdict == CONTRADICTED


def bits_quality(n_seeds, low=100.0, high=150.0):
    rows = [{"source": "real vs real", "model_bits": np.nan, "seed": np.nan, "shown_bits": b, "temperature": np.nan,
             "frechet": 2.0, "precision": 0.9, "recall": 0.9} for b in (5, 8)]
    for bits, fd in ((5, low), (8, high)):
        for s in range(n_seeds):
            for shown in [b for b in (5, 8) if b <= bits]:
                for t in (0.7, 1.0):
                    rows.append({"source": "model", "model_bits": bits, "seed": s, "shown_bits": shown,
                                 "temperature": t, "frechet": fd + 3 * s + t, "precision": 0.5, "recall": 0.4})
    return pd.DataFrame(rows)


def test_bits_5v8_is_paired_over_training_seeds(tmp_path):
    names = [bits_5v8.model_name(b, s) for b in (5, 8) for s in range(3)]
    d = bits_5v8.decisions(bits_quality(3), gates_of(*names))
    assert d.verdict.tolist() == [CONFIRMED, CONFIRMED] and (d.n == 3).all()
    assert d.difference.tolist() == pytest.approx([-50.0, -50.0]) and (d.frechet_real_vs_real == 2.0).all()
    assert bits_5v8.decisions(bits_quality(2), gates_of(*names)).verdict.tolist() == [NOT_TESTABLE] * 2
    gated = bits_5v8.decisions(bits_quality(3), gates_of(*names, fail=["8bit-seed1"]))
    assert (gated.verdict == NOT_TESTABLE).all() and gated.gate.str.contains("8bit-seed1").all()
    bpd = pd.DataFrame([{"model_bits": m, "eval_bits": e, "bpd": 1.0 + e, "seed": 0} for m in (5, 8) for e in (5, 8)])
    write(tmp_path, "bits_5v8", quality=bits_quality(3, low=200.0), bpd=bpd, gates=gates_of(*names))
    [claim] = bits_5v8.claims("smoke", tmp_path)
    assert claim.verdict == CONTRADICTED and claim.source == "reviewers" and claim.n_seeds == 3


def validity_rows(ess_affine):
    rows = []
    for coupling, prior in (("additive", "standard"), ("affine", "standard")):
        for s in range(3):
            for t in (0.7, 1.0):
                ess = 1.0 if coupling == "additive" or t == 1 else ess_affine + 0.01 * s
                rows.append({"coupling": coupling, "prior": prior, "seed": s, "temperature": t,
                             "ess_fraction": ess, "kl_bits_per_dim": 1 - ess})
    return pd.DataFrame(rows)


def test_temperature_validity_compares_affine_with_additive_by_seed(tmp_path):
    names = [temperature_validity.model_name(c, "standard", s) for c in ("additive", "affine") for s in range(3)]
    for ess, verdict in ((0.9, CONFIRMED), (0.002, CONTRADICTED)):
        write(tmp_path, "temperature_validity", validity=validity_rows(ess), gates=gates_of(*names))
        [claim] = temperature_validity.claims("smoke", tmp_path)
        assert claim.verdict == verdict and claim.n_seeds == 3 and claim.source == "reviewers"
        assert claim.difference == pytest.approx(ess + 0.01 - 1)              # affine minus additive, as reported
    write(tmp_path, "temperature_validity", validity=validity_rows(0.9), gates=gates_of(*names, fail=[names[-1]]))
    assert temperature_validity.claims("smoke", tmp_path)[0].verdict == NOT_TESTABLE


def conditional_rows(accuracy):
    rows = [{"source": "real test images", "y_weight": np.nan, "seed": 0, "temperature": np.nan,
             "requested_class": c, "accuracy": 0.95} for c in range(10)]
    for w, acc in accuracy.items():
        for s in range(3):
            for c in range(10):
                rows.append({"source": "model", "y_weight": w, "seed": s, "temperature": 0.7, "requested_class": c,
                             "accuracy": acc + 0.01 * s + 0.001 * c})
    return pd.DataFrame(rows)


def test_class_conditional_is_a_users_claim_decided_over_seeds(tmp_path):
    names = [class_conditional.model_name(w, s) for w in (0.0, 0.01) for s in range(3)]
    per_class = conditional_rows({0.0: 0.1, 0.01: 0.6})
    d = class_conditional.decisions(per_class, gates_of(*names)).set_index("comparison")
    assert d.loc["y_weight=0.01 vs chance", "verdict"] == CONFIRMED
    assert d.loc["y_weight=0.01 vs y_weight=0", "verdict"] == CONFIRMED
    assert d.loc["y_weight=0 vs chance", "verdict"] == INCONCLUSIVE                # the label ignored: chance
    write(tmp_path, "class_conditional", samples=per_class, gates=gates_of(*names))
    [claim] = class_conditional.claims("smoke", tmp_path)
    assert claim.source == "users" and claim.verdict == CONFIRMED and claim.n_seeds == 3
    write(tmp_path, "class_conditional", samples=per_class, gates=gates_of(*names, fail=["y_weight=0.01-seed2"]))
    claim = class_conditional.claims("smoke", tmp_path)[0]
    assert claim.verdict == NOT_TESTABLE and "y_weight=0.01-seed2" in claim.gate


def test_sample_studies_use_only_the_four_verdicts():
    for study in SAMPLE_STUDIES:
        source = Path(study.__file__).read_text()
        assert "NOT_CONFIRMED" not in source and "not confirmed" not in source.lower(), study.NOTEBOOK
        notebook = Path(study.__file__).parents[2] / "notebooks" / f"{study.NOTEBOOK}.py"
        assert "not confirmed" not in notebook.read_text().lower(), study.NOTEBOOK
        for claim in study.claims("smoke", Path("/nonexistent")):
            assert claim.verdict in VERDICTS and claim.source in ("paper", "reviewers", "users")


def test_auto_arms_train_only_what_decides_the_claim_at_cpu():
    from glowlib.__main__ import notebook_defaults
    from glowlib.studies import class_conditional, temperature_validity
    cpu = class_conditional.runs("cpu")
    assert {r.train.y_weight for r in cpu} == {class_conditional.OFFICIAL_Y_WEIGHT} and len(cpu) == 3
    assert {r.train.y_weight for r in class_conditional.runs("smoke")} == set(class_conditional.Y_WEIGHTS)
    assert class_conditional.y_weights_of("cpu", [0.0, 1.0]) == [0.0, 1.0]          # an explicit list is kept
    validity = temperature_validity.runs("cpu")
    assert {(r.model.coupling, r.model.learned_prior) for r in validity} == {("additive", False), ("affine", False)}
    assert len(validity) == 6 and len(temperature_validity.runs("smoke")) == 12
    for study in (class_conditional, temperature_validity):
        name = "y_weights" if study is class_conditional else "priors"
        with pytest.raises(ValueError, match=name):
            study.check_parameters(**{**notebook_defaults(study.NOTEBOOK), name: "all"})


def test_the_samples_page_shows_the_longer_glow_run_beside_the_tables_rows():
    from glowlib.studies import bpd_table
    shown = samples.sample_models("cpu", "mnist5k", bpd_table.TABLE_MODELS)
    # cpu compares no mnist5k rows: the figures' model is the only one, and it is the quality run
    assert [(label, run.key()) for label, _, run in shown] == [
        (samples.QUALITY, bpd_table.quality_run("cpu", "mnist5k").key())]
    fashion = samples.sample_models("cpu", "fashion_mnist", bpd_table.TABLE_MODELS)
    assert [label for label, _, _ in fashion] == bpd_table.table_models("cpu", "fashion_mnist") + [samples.QUALITY]
    assert fashion[-1][2].train.steps > fashion[0][2].train.steps
    assert samples.sample_models("cpu", "fashion_mnist", ["realnvp"])[-1][0] == "realnvp"   # glow not asked for


def test_the_samples_claim_names_the_longer_runs_gates_beside_the_failed_table_rows(tmp_path):
    bpd = pd.DataFrame({"dataset": ["digits"] * 2, "model_type": ["glow", "realnvp"]})
    grids = pd.DataFrame({"dataset": ["digits"] * 3, "model_type": ["glow", "realnvp", samples.QUALITY],
                          "steps": [600, 600, 6000], "temperature": [0.7] * 3})
    quality = pd.DataFrame([{"dataset": "digits", "source": src, "model_type": m, "temperature": t,
                             "precision": 0.5, "recall": 0.5, "frechet": 10.0}
                            for src, m, t in (("real vs real", "", float("nan")), ("model", "glow", 0.7),
                                              ("model", "realnvp", 0.7), ("model", samples.QUALITY, 0.7))])
    quality.loc[0, "source"] = samples.REAL_VS_REAL
    write(tmp_path, "bpd_table", bpd=bpd)
    write(tmp_path, "samples", samples=grids, quality=quality,
          gates=gates_of("glow-digits", "realnvp-digits", "glow-quality-digits", fail=["glow-digits"]))
    [claim] = samples.claims("smoke", tmp_path)
    assert claim.verdict == NOT_TESTABLE and claim.gate.startswith("glow-digits: pixel mean")
    assert "longer Glow runs the paper's figures use (digits: 6000 steps) pass every gate" in claim.evidence
    write(tmp_path, "samples", samples=grids, quality=quality,
          gates=gates_of("glow-digits", "realnvp-digits", "glow-quality-digits",
                         fail=["glow-digits", "glow-quality-digits"]))
    assert "fail too: glow-quality-digits: pixel mean" in samples.claims("smoke", tmp_path)[0].evidence
