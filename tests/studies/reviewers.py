"""The reviewers' studies (glowlib.studies.what_works, bits_5v8, temperature_validity, class_conditional) and the
samples page's verdicts: parameter-matched widths, the study models' size and seeds, the arms each profile trains,
and how the samples claim is decided, never past a failed sanity gate. (Each of bits_5v8, temperature_validity,
class_conditional, temperature and nearest_neighbours has its own tests/studies/<study>.py.)"""
from pathlib import Path

import pandas as pd
import pytest

from glowlib.analysis.stats import NOT_TESTABLE, VERDICTS
from glowlib.studies import bits_5v8, class_conditional, samples, temperature_validity, what_works
from glowlib.studies.base import config_parameters
from glowlib.profiles import ablation_config, profile_config
from judged import gates_of, write


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
SAMPLE_STUDIES = (samples,)


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
