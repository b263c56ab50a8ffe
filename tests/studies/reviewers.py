"""The reviewers' studies that judge samples over seeds (glowlib.studies.bits_5v8, temperature_validity,
class_conditional): the study models' size and seeds and the arms each profile trains. (Each of them, and
what_works, samples, temperature and nearest_neighbours, has its own tests/studies/<study>.py.)"""
import pytest

from glowlib.studies import bits_5v8, class_conditional, temperature_validity
from glowlib.profiles import profile_config


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_the_5_bit_study_runs_on_images_of_8_bits(profile):
    # the 8x8 digits carry 4 bits (data.BIT_DEPTH), and a model of them trains at most that: no 8-bit arm there
    from glowlib.data import BIT_DEPTH
    for n_bits in bits_5v8.BIT_DEPTHS:
        run = bits_5v8.bits_config(profile, n_bits)
        assert BIT_DEPTH.get(run.data.dataset, 8) >= max(bits_5v8.BIT_DEPTHS)
        assert run.data.n_bits == run.model.n_bits == n_bits


# ---------------------------------------------------------------------------------------------------- study models
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_study_models_are_at_least_the_table_model_of_their_dataset(profile):
    from glowlib.studies.base import study_dataset
    table = profile_config(profile, study_dataset(profile))
    studied = [bits_5v8.bits_config(profile, 5), temperature_validity.validity_config(profile, "additive", "standard"),
               class_conditional.conditional_config(profile, 0.01)]
    # each study's dataset: the profile's study_dataset unless its study_datasets names another for the study
    assert [r.data.dataset for r in studied[1:]] == [temperature_validity.validity_dataset(profile),
                                                     class_conditional.conditional_dataset(profile)]
    for run in studied:
        table = profile_config(profile, run.data.dataset)
        assert run.model.depth >= table.model.depth and run.model.width >= table.model.width
        assert run.model.n_levels >= table.model.n_levels and run.train.steps >= table.train.steps
    # the models whose samples the 5-bit and class-conditional studies judge have additive coupling, as the
    # official code's qualitative models; the 8-bit arm is the unvaried study model, shared by both studies
    from glowlib.studies.base import study_config
    bits = bits_5v8.bits_config(profile, 8)
    assert bits.key() == profile_config(profile, bits.data.dataset, "glow", 0, ["model.coupling='additive'"],
                                        tier="study").key()
    if bits.data.dataset == study_config(profile).data.dataset:
        assert bits.key() == study_config(profile).key()
    for run in (bits_5v8.bits_config(profile, 5), class_conditional.conditional_config(profile, 0.01)):
        assert run.model.coupling == "additive" and run.model.learned_prior
    # the validity study keeps the table's length: its affine arm is what it tests
    for coupling in ("additive", "affine"):
        run = temperature_validity.validity_config(profile, coupling, "standard")
        table = profile_config(profile, run.data.dataset)
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


def test_the_cpu_profile_runs_the_validity_and_conditional_studies_on_the_digits_and_shares_the_table_glow():
    from glowlib.studies import studies_of
    from glowlib.studies.base import table_run
    assert {"temperature_validity", "class_conditional"} <= set(studies_of("cpu"))
    for run in temperature_validity.runs("cpu") + class_conditional.runs("cpu"):
        assert run.data.dataset == "digits" and run.train.steps == profile_config("cpu", "digits").train.steps
    # the affine arm with the learned prior is the bits/dim table's digits Glow itself, seed by seed (the cpu profile
    # does not decide on that prior, but a run of the notebook with it trains nothing twice)
    assert [temperature_validity.validity_config("cpu", "affine", "learned", s).key() for s in range(3)] == \
        [table_run("cpu", "digits", "glow", s).key() for s in range(3)]
    # where a profile names no dataset for a study, the study model is base.study_config's, as before
    from glowlib.studies.base import study_config
    assert class_conditional.conditional_config("smoke", 0.01, 1).key() == \
        study_config("smoke", 1).override(["model.n_classes=10", "train.y_weight=0.01"]).key()


def test_auto_arms_train_only_what_decides_the_claim_at_cpu():
    from glowlib.__main__ import notebook_defaults
    from glowlib.studies import class_conditional, temperature_validity
    cpu = class_conditional.runs("cpu")
    # the official weight, which decides the claim, and its control: the same model with the label's loss off
    assert {r.train.y_weight for r in cpu} == {0.0, class_conditional.OFFICIAL_Y_WEIGHT} and len(cpu) == 6
    assert {r.train.y_weight for r in class_conditional.runs("paper")} == set(class_conditional.Y_WEIGHTS)
    assert class_conditional.y_weights_of("cpu", [0.0, 1.0]) == [0.0, 1.0]          # an explicit list is kept
    validity = temperature_validity.runs("cpu")
    assert {(r.model.coupling, r.model.learned_prior) for r in validity} == {("additive", False), ("affine", False)}
    assert len(validity) == 6 and len(temperature_validity.runs("smoke")) == 12
    for study in (class_conditional, temperature_validity):
        name = "y_weights" if study is class_conditional else "priors"
        with pytest.raises(ValueError, match=name):
            study.check_parameters(**{**notebook_defaults(study.NOTEBOOK), name: "all"})


