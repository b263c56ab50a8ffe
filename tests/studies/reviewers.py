"""The reviewers' studies that judge samples over seeds (glowlib.studies.bits_5v8, temperature_validity,
class_conditional): the study models' size and seeds and the arms each profile trains. (Each of them, and
what_works, samples, temperature and nearest_neighbours, has its own tests/studies/<study>.py.)"""
import pytest

from glowlib.studies import bits_5v8, class_conditional, temperature_validity
from glowlib.profiles import profile_config


def test_the_validity_studys_additive_model_is_the_5_bit_studys_8_bit_one_at_smoke():
    # where the profile has no longer study tier (smoke), the validity study's additive/learned model is the 8-bit one
    assert temperature_validity.validity_config("smoke", "additive", "learned").key() == \
        bits_5v8.bits_config("smoke", 8).key()


# ---------------------------------------------------------------------------------------------------- study models
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_study_models_are_at_least_the_table_model_of_their_dataset(profile):
    from glowlib.studies.base import study_dataset
    table = profile_config(profile, study_dataset(profile))
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


