"""A step counted on the meta device: a Glow's (RealNVP's) counts from depths 1 to 3 (5) on their line are the counts
of the whole step, the operations are those of a later step as CUDA dispatches it, a class-conditional step is
counted too, and a plan without the profile's device counts each distinct step once and keeps the counts for the
next plan."""
import warnings

import pytest

import glowlib.plan as plan
from glowlib.profiles import profile_config
from glowlib.step_count import (StepCounter, _count_meta, _model_size, by_depth, count_meta, flops_meta,
                                 meta_session, model_size, optimizer_step_counts, probe_session)
from glowlib.studies.base import config_parameters
from glowlib.training.loop import train_step


def small(depth=5, model_type="glow", **sets):
    overrides = [f"model.depth={depth}", "model.width=16", "train.batch_size=4", "train.init_batch=8",
                 "train.device='cpu'"] + [f"{k}={v!r}" for k, v in sets.items()]
    return profile_config("smoke", "digits", model_type, overrides=overrides)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():             # bf16's speed on the meta device is unknown: nothing runs there
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("model_type, sets", [
    ("glow", {}), ("glow", {"model.coupling": "additive", "model.permutation": "shuffle"}),
    ("glow", {"model.inv_backprop": True}), ("glow", {"train.dequantization": "variational"}), ("realnvp", {})])
def test_a_step_counted_at_small_depths_gives_the_counts_of_the_whole_step(model_type, sets):
    run = small(8, model_type, **sets)
    line, whole = by_depth(run, _count_meta), _count_meta(run)
    assert whole["ops_per_step"] > 0 and whole["flops_per_step"] > 0
    assert line == whole


@pytest.mark.parametrize("model_type, sets", [("glow", {}), ("glow", {"model.n_classes": 10, "train.y_weight": 0.01}),
                                              ("realnvp", {}), ("macow", {})])
def test_the_operations_are_a_later_step_s_as_cuda_dispatches_it(model_type, sets):
    """A third step on the meta device, less its reads of the optimizer's host step counts (on CUDA the optimizer
    is capturable: no reads), is what count_meta gives, though it counted only a first step at full depth."""
    run = small(4 if model_type == "macow" else 6, model_type, **sets)
    r = meta_session(run)
    for _ in range(2):
        with StepCounter(answer_reads=True):
            train_step(r)
    third = StepCounter(host=optimizer_step_counts(r), answer_reads=True)
    with third:
        train_step(r)
    counted = count_meta(run)
    assert third.host_reads == len(list(r.optimizer.param_groups[0]["params"])) > 0
    assert counted["ops_per_step"] == third.n_ops - third.host_reads
    assert counted["objective_ops"] == third.objective_ops and counted["flops_per_step"] == third.flops
    assert counted["first_step_ops"] > counted["ops_per_step"] + 4 * third.host_reads   # the state it creates


@pytest.mark.parametrize("model_type, sets", [
    ("glow", {}), ("glow", {"model.n_classes": 10, "train.y_weight": 0.01, "train.grad_clip": 1.0}),
    ("glow", {"model.inv_backprop": True}), ("glow", {"train.dequantization": "variational"}), ("realnvp", {}),
    ("macow", {})])
def test_the_flops_counted_to_the_end_of_the_objective_are_the_whole_step_s(model_type, sets):
    """The budgets' count (``flops_meta``) stops the step after the objective's backward pass: what it leaves out
    (gradient norm and clipping, optimizer, step guard, Polyak update) has no FLOPs, so it is count_meta's figure,
    and a later step's (the optimizer's state made) too."""
    run = small(4 if model_type == "macow" else 6, model_type, **sets)
    r = meta_session(run)
    for _ in range(2):
        with StepCounter(answer_reads=True):
            train_step(r)
    third = StepCounter(answer_reads=True)
    with third:
        train_step(r)
    assert flops_meta(run) == count_meta(run)["flops_per_step"] == third.flops > 0


@pytest.mark.parametrize("model_type, sets", [("glow", {"train.dequantization": "variational"}), ("realnvp", {})])
def test_the_model_size_from_small_depths_is_the_built_model_s(model_type, sets):
    run = small(8, model_type, **sets)
    assert model_size(run) == _model_size(run)
    assert model_size(run)["parameters"] == config_parameters(run)


def test_figures_off_the_line_are_taken_at_the_full_depth():
    calls = []

    def figures(run):
        calls.append(run.model.depth)
        return {"n": run.model.depth ** 2, "kind": "x"}
    assert by_depth(small(7), figures) == {"n": 49, "kind": "x"}
    assert calls == [1, 2, 3, 7]
    calls.clear()
    assert by_depth(small(7, "macow"), figures) == {"n": 49, "kind": "x"} and calls == [7]


def test_a_class_conditional_step_is_counted_as_on_the_cpu():
    """The label range check reads values, which the meta device has none of: the counter answers both reads as
    "in range", and the step goes on as on real labels. The conditional prior then adds as many operations on the
    meta device as in a CPU step, but for torch's own ``one_hot``, which on the CPU checks the labels' range itself
    (an ``aminmax`` and two reads, skipped on CUDA and meta) and builds its output by another route (1 operation
    apart here); the FLOPs are the CPU's exactly."""
    plain = small(2)
    conditional = small(2, **{"model.n_classes": 10, "train.y_weight": 0.01})
    counts = {}
    for name, run in (("plain", plain), ("conditional", conditional)):
        r = probe_session(run, run.train.batch_size, "cpu")
        cpu = StepCounter()
        with cpu:                               # the first step, as count_meta counts it
            train_step(r)
        counts[name] = (count_meta(run), cpu)
    assert counts["conditional"][0]["reads_answered"] == 2 and counts["plain"][0]["reads_answered"] == 0
    added_meta = counts["conditional"][0]["first_step_ops"] - counts["plain"][0]["first_step_ops"]
    added_cpu = counts["conditional"][1].n_ops - counts["plain"][1].n_ops
    assert added_meta > 50 and abs(added_cpu - added_meta) <= 3, (added_meta, added_cpu)
    assert all(meta["flops_per_step"] == cpu.flops for meta, cpu in counts.values())


def test_a_plan_without_the_profile_s_device_counts_each_step_once_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_CACHE", str(tmp_path))
    runs = [small(5), small(5, **{"train.seed": 1}), small(5, **{"train.steps": 80}), small(4)]
    monkeypatch.setattr(plan, "all_runs", lambda profile: runs)
    monkeypatch.setitem(plan.PROFILE_DEVICE, "smoke", "cuda")       # this machine has no CUDA device
    if plan.training_device("auto").type == "cuda":
        pytest.skip("this machine has the device, so the plan times the steps")
    counted = []
    monkeypatch.setattr(plan, "counted_meta", lambda run: counted.append(run) or count_meta(run))
    p = plan.plan("smoke")
    assert not p["timed"] and len(counted) == 2                      # seeds and lengths share one count
    rows = p["rows"]
    assert rows[0].cost == rows[1].cost == rows[2].cost != rows[3].cost
    assert [r.n_parameters for r in rows] == [config_parameters(r) for r in runs]
    text = plan.format_plan(p)
    assert "NOT timed" in text and "optimistic" in text and "central" in text and "pessimistic" in text
    monkeypatch.setattr(plan, "counted_meta", lambda run: pytest.fail("counted again"))
    assert [r.cost for r in plan.plan("smoke")["rows"]] == [r.cost for r in rows]
    assert plan.counts_path().is_file()
