"""Equal compute by counted FLOPs (glowlib.budget): the count is the same on every count, kept for later processes
under the step's work and code, a costlier run gets fewer steps with its schedule and evaluations laid over them,
and runs within the tolerance are left alone."""
import pytest

from glowlib import budget, step_count
from glowlib.profiles import profile_config
from glowlib.training.schedule import lr_factor, warmup_steps


def tiny(**train):
    base = profile_config("smoke", "digits", overrides=["model.depth=1", "model.width=8"])
    return base.override([f"train.{k}={v!r}" for k, v in train.items()])


def test_the_count_is_the_same_on_every_count_and_grows_with_the_model():
    run = tiny()
    first = budget.flops_per_step(run)
    assert first > 0 and budget.flops_per_step(run, again=True) == first
    assert budget.flops_per_step(run.override(["train.seed=7"])) == first         # the seed changes no work
    deeper = run.override(["model.depth=2"])
    assert 1.5 < budget.flops_per_step(deeper) / first < 2.5


def test_a_count_is_kept_for_later_processes_under_the_step_s_work_and_code(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(budget, "_COUNTED", {})
    run = tiny()
    first = budget.flops_per_step(run)
    assert budget.flops_path().is_file()
    monkeypatch.setattr(budget, "_COUNTED", {})                                  # a later process
    monkeypatch.setattr(step_count, "flops_meta", lambda run: pytest.fail("counted again"))
    assert budget.flops_per_step(run.override(["train.steps=7", "train.lr=0.1"])) == first
    with pytest.raises(BaseException, match="counted again"):
        budget.flops_per_step(run, again=True)                                    # a recount is a count
    monkeypatch.setattr(budget, "_COUNTED", {})
    monkeypatch.setattr(step_count, "code_version", lambda: "other code")
    monkeypatch.setattr(step_count, "flops_meta", lambda run: 1.0)
    assert budget.flops_per_step(run) == 1.0                                      # a count of other code: unread


def test_a_costlier_run_spends_the_budget_on_fewer_steps_with_its_own_schedule():
    cheap = tiny(steps=60, eval_every=20, ckpt_every=20, warmup_steps=10, lr_schedule="cosine")
    costly = cheap.override(["model.depth=2"])
    at = budget.at_budget(costly, budget.run_flops(cheap))
    assert at.train.steps < costly.train.steps
    assert abs(budget.run_flops(at) / budget.run_flops(cheap) - 1) <= budget.flops_per_step(costly) \
        / budget.run_flops(cheap)                                                 # within half a step, rounded
    assert at.train.steps // at.train.eval_every == 3 and at.train.steps // at.train.ckpt_every == 3
    assert warmup_steps(at) == round(10 * at.train.steps / 60)
    assert lr_factor(at, at.train.steps - 1) < 0.01                              # decayed by its own last step
    assert budget.same_compute(at, cheap) and not budget.same_compute(costly, cheap)
    fraction = costly.override(["train.warmup_fraction=0.1"])
    assert budget.at_budget(fraction, budget.run_flops(cheap)).train.warmup_steps == fraction.train.warmup_steps


def test_a_run_within_the_tolerance_is_its_own_run_at_the_budget():
    run = tiny(steps=200, eval_every=50, ckpt_every=50)
    assert budget.at_budget(run, budget.run_flops(run) * (1 + budget.TOLERANCE / 2)) is run
    assert budget.at_budget(run, budget.run_flops(run) * 1.5).train.steps == 300
    with pytest.raises(ValueError, match="budget=0"):
        budget.at_budget(run, 0)
