"""The bits/dim table (glowlib.studies.bpd_table): the equal-compute reader on hand-made curves, the rows' configs
(equal steps for every model of a dataset, warmup scaled to short runs, three seeds), the summary over seeds, and
its claims (``bpd_table.CLAIMS``) decided by paired tests over seeds from hand-made per-seed tables, each verdict
reachable."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from glowlib import profiles
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, t_quantile
from glowlib.results import PROVENANCE
from glowlib.analysis import paired
from glowlib.analysis.claims import decide_claims
from glowlib.studies import bpd_table

T95_2 = t_quantile(0.95, 2)          # 4.303: the 95% t quantile with 3 seeds


def metrics(wall, val, test=None, step=None) -> pd.DataFrame:
    """A metrics.csv: one row per evaluation."""
    step = step or [10 * (i + 1) for i in range(len(wall))]
    return pd.DataFrame({"step": step, "wall_s": wall, "val_bpd": val, "test_bpd": val if test is None else test})


# ---------------------------------------------------------------------------------------------------- equal time
def test_chosen_at_takes_the_best_validation_evaluation_at_or_before_the_time():
    m = metrics(wall=[1.0, 2.0, 3.0, 4.0], val=[5.0, 4.0, 4.5, 3.0], test=[5.1, 4.1, 4.6, 3.1])
    whole = paired.chosen_at(m)                                # equal steps: the whole run
    assert (whole["bpd"], whole["step"], whole["steps_reached"]) == (3.1, 40, 40)
    at3 = paired.chosen_at(m, 3.0)                             # "at or before": the evaluation at 3.0 counts
    assert (at3["bpd"], at3["val_bpd"], at3["step"], at3["steps_reached"]) == (4.1, 4.0, 20, 30)
    assert at3["curve_mean"] == pytest.approx((5.1 + 4.1 + 4.6) / 3)
    assert paired.chosen_at(m, 2.5)["bpd"] == 4.1
    early = paired.chosen_at(m, 0.5)                           # nothing evaluated yet
    assert math.isnan(early["bpd"]) and math.isnan(early["steps_reached"])
    # ties go to the earliest evaluation (training keeps best.pt only on a strictly lower val), NaN never chosen
    tie = metrics(wall=[1.0, 2.0, 3.0], val=[4.0, float("nan"), 4.0], test=[1.0, 0.0, 2.0])
    assert paired.chosen_at(tie)["bpd"] == 1.0
    # the rows' order in the file does not matter
    assert paired.chosen_at(m.iloc[::-1], 3.0)["bpd"] == 4.1


def test_at_equal_compute_reads_each_sides_run_at_the_budget_and_equal_steps_from_its_own_run():
    """Equal steps come from the runs of equal steps; equal compute from each side's own run at the shared FLOPs
    budget, read at its end (never a run cut partway); a side without such a run has no equal-compute value."""
    slow = metrics(wall=[2.0, 4.0, 6.0], val=[3.1, 2.4, 2.0])                  # costlier per step, lower at 30 steps
    fast = metrics(wall=[1.0, 2.0, 3.0], val=[3.0, 2.5, 2.2])
    slow_budget = metrics(wall=[1.0, 2.0, 3.0], val=[3.2, 2.6, 2.3], step=[5, 10, 15])   # half the steps
    table = paired.at_equal_compute({0: slow, 1: slow}, {0: fast, 2: fast}, {0: slow_budget}, {0: fast})
    assert list(table.seed) == [0]                                             # seeds 1 and 2 have no pair
    row = table.iloc[0]
    assert (row.a_bpd_equal_steps, row.b_bpd_equal_steps) == (2.0, 2.2)        # slow is lower at equal steps
    assert (row.a_bpd_equal_compute, row.b_bpd_equal_compute) == (2.3, 2.2)    # and higher at equal compute
    assert (row.a_steps, row.b_steps, row.a_steps_equal_compute, row.b_steps_equal_compute) == (30, 30, 15, 30)
    assert row.a_step_equal_compute == 15 and (row.a_total_s, row.b_total_s) == (3.0, 3.0)
    assert row.clock == "wall_s"
    lone = paired.at_equal_compute({0: slow}, {0: fast}).iloc[0]               # no runs at a budget
    assert math.isnan(lone.a_bpd_equal_compute) and math.isnan(lone.b_total_s) and lone.clock == ""
    with pytest.raises(ValueError, match="clock='gpu_s'"):
        paired.chosen_at(slow, 2.0, "gpu_s")


def test_the_measured_clock_beside_equal_compute_is_cpu_seconds_where_both_runs_recorded_them():
    """On a CPU each run records its process's CPU seconds: the pair's measured time is read on them; runs without
    them (a GPU, or an older glowlib) are timed on wall seconds, both sides alike. The clock decides nothing."""
    slowed = metrics(wall=[4.0, 8.0, 12.0], val=[3.1, 2.4, 2.0]).assign(cpu_s=[1.0, 2.0, 3.0])
    quiet = metrics(wall=[1.5, 3.0, 4.5], val=[3.0, 2.5, 2.2]).assign(cpu_s=[1.5, 3.0, 4.5])
    row = paired.at_equal_compute({0: slowed}, {0: quiet}, {0: slowed}, {0: quiet}).iloc[0]
    assert row.clock == "cpu_s" and (row.a_total_s, row.b_total_s) == (3.0, 4.5)
    older = quiet.assign(cpu_s=[1.5, float("nan"), 4.5])
    assert paired.at_equal_compute({0: slowed}, {0: older}, {0: slowed}, {0: older}).iloc[0].clock == "wall_s"
    assert paired.training_clock(slowed.drop(columns="cpu_s")) == "wall_s"


# ---------------------------------------------------------------------------------------------------- configs
def test_every_row_of_a_dataset_trains_the_same_steps_and_warms_up_over_a_share_of_them():
    from glowlib.training import warmup_steps
    for dataset in ("mnist5k", "fashion_mnist", "digits"):
        rows = [bpd_table.table_run("cpu", dataset, m) for m in bpd_table.table_models("cpu", dataset)]
        if not rows:        # cpu compares no mnist5k rows (Profile.table_left_out): nothing to hold equal
            assert profiles.profile("cpu").table_left_out.get(dataset), dataset
            continue
        assert len({(r.train.steps, r.train.batch_size) for r in rows}) == 1, dataset
        # cpu: the warmup is a fraction of the run (train.warmup_fraction), so it scales with the run's length
        assert {warmup_steps(r) for r in rows} == {round(0.05 * rows[0].train.steps)}, dataset
    # a preset with a fixed warmup: a tenth of a run shorter than 4 warmups
    assert bpd_table.scaled_warmup(3000, 500) == 500 and bpd_table.scaled_warmup(1999, 500) == 199
    assert bpd_table.table_run("cpu", "mnist5k", "glow").key() == profiles.profile_config("cpu", "mnist5k").key()
    # smoke: 30 steps and a fixed warmup of 5, kept since 30 >= 4 x 5
    assert bpd_table.table_run("smoke", "digits", "macow").train.warmup_steps == 5


def test_the_quality_run_is_the_cpu_tables_longer_headline_row_and_the_figures_model():
    from glowlib.studies import base
    for dataset in ("mnist5k", "fashion_mnist"):
        q, row = bpd_table.quality_run("cpu", dataset), bpd_table.table_run("cpu", dataset, "glow")
        assert q is not None and q.train.steps > row.train.steps
        # the same model and recipe, only longer (and evaluated as often)
        same = {k: v for k, v in q.to_dict()["train"].items() if k not in ("steps", "eval_every", "ckpt_every")}
        assert same == {k: v for k, v in row.to_dict()["train"].items() if k not in ("steps", "eval_every",
                                                                                      "ckpt_every")}
        # mnist5k's figures judge samples: additive coupling there (the cpu profile's quality_overrides)
        changed = {k for k, v in q.to_dict()["model"].items() if row.to_dict()["model"][k] != v}
        assert changed == ({"coupling"} if dataset in profiles.profile("cpu").quality_overrides else set()), dataset
        assert q.key() in {r.key() for r in bpd_table.runs("cpu")}
    assert base.shared_runs("cpu")[0].key() == bpd_table.quality_run("cpu", base.figure_dataset("cpu")).key()
    # profiles without a separate quality run: the table's seed-0 Glow is the figures' model
    assert bpd_table.quality_run("smoke", "digits") is None
    assert base.shared_runs("smoke", "digits")[0].key() == bpd_table.table_run("smoke", "digits", "glow").key()
    with pytest.raises(ValueError, match="tier"):
        profiles.profile_config("cpu", "mnist5k", tier="best")


def test_the_cpu_quality_run_of_mnist5k_is_the_gated_additive_study_model():
    """mnist5k's figures judge samples: its quality run is the additive model bench/model_gates.py passed, the very
    model of the 5-bit study's 8-bit arm (one training, shared), while Fashion-MNIST's stays affine."""
    from glowlib.studies import base
    quality = profiles.profile_config("cpu", "mnist5k", tier="quality")
    assert quality.key() == base.study_config("cpu").key()
    assert quality.model.coupling == "additive" and quality.train.steps == profiles.profile("cpu").quality_steps["mnist5k"]
    assert profiles.profile_config("cpu", "fashion_mnist", tier="quality").model.coupling == "affine"
    assert profiles.profile_config("gpu", "mnist5k", tier="quality").model.coupling == "affine"
    # nothing is compared on mnist5k at the cpu profile: the table trains no seeds of it, only the quality run
    assert {r.data.dataset for r in bpd_table.runs("cpu") if r.train.seed > 0} == {"fashion_mnist", "digits"}
    assert bpd_table.quality_run("cpu", "mnist5k").key() == quality.key()


def test_the_study_tier_is_longer_only_where_the_profile_says():
    compare = profiles.profile_config("cpu", "mnist5k")
    study = profiles.profile_config("cpu", "mnist5k", tier="study")
    assert study.train.steps == profiles.profile("cpu").study_steps["mnist5k"] > compare.train.steps
    assert study.train.eval_every == study.train.steps // profiles.profile("cpu").evaluations
    # datasets and profiles without a study length: the compare tier itself
    assert profiles.profile_config("cpu", "digits", tier="study").key() == profiles.profile_config("cpu", "digits").key()
    assert profiles.profile_config("smoke", "digits", tier="study").key() == \
        profiles.profile_config("smoke", "digits").key()


def test_runs_are_three_seeds_of_every_row_at_equal_steps_and_at_its_datasets_flops_budget():
    from glowlib import budget
    from glowlib.studies import base
    runs = bpd_table.runs("smoke")
    assert bpd_table.N_SEEDS == 3 and len({r.key() for r in runs}) == len(runs)
    for d in base.table_datasets():
        glow = base.table_run("smoke", d, "glow")
        for m in base.table_models("smoke", d):
            steps = [base.table_run("smoke", d, m, s) for s in range(3)]
            at = [base.table_run_at_budget("smoke", d, m, s) for s in range(3)]
            assert {r.key() for r in steps + at} <= {r.key() for r in runs}
            assert {r.train.steps for r in steps} == {glow.train.steps}
            spent = budget.run_flops(at[0]) / budget.run_flops(glow)
            # within one step's FLOPs of the budget, and its warmup and evaluations laid over its own length
            assert abs(spent - 1) <= max(budget.TOLERANCE, 1 / at[0].train.steps)
            # as many evaluations as the Glow run's, or one a step where the budget buys fewer steps than that
            # (smoke's glow+vardeq: a dequantiser 15x a tiny Glow's step, 2 steps)
            evaluations = glow.train.steps // glow.train.eval_every
            assert min(evaluations, at[0].train.steps) <= at[0].train.steps // at[0].train.eval_every \
                <= evaluations + 1
            if m == "glow":
                assert at[0].key() == steps[0].key()


def test_seed_summary_is_the_mean_with_its_t_interval():
    seeds = pd.DataFrame([dict(dataset="digits", model_type="glow", seed=s, dequantization="uniform", test_bpd=v,
                               test_sem=0.01, best_val_bpd=v, n_test=300, n_val=200, n_train=1000, steps=60,
                               batch_size=32, images_seen=1920, epochs=1.9, warmup_steps=10, wall_s=w,
                               images_per_s=1920 / w, n_parameters=100, n_parameters_dequantizer=0, n_bits=8, K=2,
                               L=2, width=32) for s, v, w in ((0, 4.0, 2.0), (1, 4.2, 3.0), (2, 4.4, 4.0))])
    row = bpd_table.seed_summary(seeds).iloc[0]
    half = T95_2 * 0.2 / math.sqrt(3)                          # sd of 4.0, 4.2, 4.4 is 0.2
    assert row.n_seeds == 3 and row.test_bpd == pytest.approx(4.2)
    assert (row.test_bpd_ci_low, row.test_bpd_ci_high) == pytest.approx((4.2 - half, 4.2 + half))
    assert row.wall_s == pytest.approx(3.0) and row.test_sem == pytest.approx(0.01)


# ---------------------------------------------------------------------------------------------------- claims
def write(root, tables: dict) -> None:
    out = root / "smoke" / "bpd_table"
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / PROVENANCE).write_text(json.dumps({"notebook": "bpd_table"}))


def pair(a_final, b_final, a_budget_cost=0.0, seeds=(0, 1, 2)) -> tuple[dict, dict]:
    """Two models' runs over ``seeds``, each {"steps": runs of equal steps, "budget": runs at the FLOPs budget}:
    three evaluations each, the last at ``*_final[seed]``, the earlier ones 0.5 and 0.3 bits/dim above it. ``a``'s
    run at the budget (fewer steps: it costs more per step) ends ``a_budget_cost`` above its equal-steps run;
    ``b`` is the budget row, its one run serving both."""
    def runs(final, shift=0.0):
        return {s: metrics(wall=[1.0, 2.0, 3.0], val=[final[s] + 0.5 + shift, final[s] + 0.3 + shift,
                                                      final[s] + shift]) for s in seeds}
    b = runs(b_final)
    return {"steps": runs(a_final), "budget": runs(a_final, a_budget_cost)}, {"steps": b, "budget": b}


def table_of(comparisons: dict) -> pd.DataFrame:
    """The pairs table from {(dataset, a, b): (a runs, b runs)} (:func:`pair`)."""
    metrics_ = {}
    for (d, a, b), (ra, rb) in comparisons.items():
        metrics_[(d, a)], metrics_[(d, b)] = ra["steps"], rb["steps"]
        metrics_[("budget", d, a)], metrics_[("budget", d, b)] = ra["budget"], rb["budget"]
    return paired.paired_table(metrics_, [(d, a, b, (d, a), (d, b), ("budget", d, a), ("budget", d, b))
                                          for d, a, b in comparisons])


def bpd_rows(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Matching seeds and bpd tables (the compute claim reads images/s and parameters from them)."""
    models = {(d, m) for d, a, b in zip(pairs.group, pairs.a, pairs.b) for m in (a, b)}
    seeds = pd.DataFrame([dict(dataset=d, model_type=m, seed=s, test_bpd=4.0, images_per_s=100.0,
                               n_parameters=1000) for d, m in sorted(models) for s in range(3)])
    return seeds, seeds.groupby(["dataset", "model_type"], as_index=False).first()


def budget_of(pairs: pd.DataFrame, flops: dict | None = None, recount: float = 1.0) -> pd.DataFrame:
    """A budget table for the pairs' rows: each row's FLOPs per step (``flops``, default 1e9), its steps at
    equal compute spending the budget row's (glow's 30 steps at 1e9) FLOPs, a recount ``recount`` times the count,
    and measured seconds per step that spread 10% between seeds."""
    flops = flops or {}
    models = sorted({(d, m) for d, a, b in zip(pairs.group, pairs.a, pairs.b) for m in (a, b)})
    rows = []
    for d, m in models:
        f = flops.get(m, 1e9)
        steps = round(30 * 1e9 / f)
        rows += [dict(dataset=d, model_type=m, seed=s, flops_per_step=f, flops_recounted=f * recount,
                      budget_flops=30 * 1e9, steps=30, steps_equal_compute=steps, flops_equal_compute=f * steps,
                      clock="cpu_s", seconds_per_step=0.1 * (1 + 0.1 * s), seconds_per_step_equal_compute=0.1)
                 for s in range(3)]
    return pd.DataFrame(rows)


def decided(tmp_path) -> dict:
    """{claim id: row of the claims table, with its numbers under "numbers"}."""
    table, numbers = decide_claims(bpd_table.CLAIMS, "smoke", tmp_path)
    named = {i: dict(zip(g.name, g.value)) for i, g in numbers.groupby("id")}
    return {r["id"]: SimpleNamespace(**r, numbers=named.get(r["id"], {})) for r in table.to_dict("records")}


def claims_of(tmp_path, comparisons: dict, iw=None, budget=None) -> dict:
    pairs = table_of(comparisons)
    seeds, bpd = bpd_rows(pairs)
    budget = budget_of(pairs) if budget is None else budget
    write(tmp_path, {"pairs": pairs, "seeds": seeds, "bpd": bpd, "budget": budget,
                     **({"iw": iw} if iw is not None else {})})
    return decided(tmp_path)


GLOW, COMPUTE, CIFAR = "bpd_table.glow_beats_realnvp", "bpd_table.same_compute", "bpd_table.glow_cifar10"
MACOW, VARDEQ, IW = "bpd_table.macow_beats_glow", "bpd_table.vardeq_beats_uniform", "bpd_table.iw_bound_tighter"


@pytest.mark.parametrize("glow, realnvp, glow_cost, verdict", [
    ([2.0, 2.1, 1.9], [2.2, 2.4, 2.1], 0.0, CONFIRMED),         # lower on every seed, the same FLOPs
    ([2.0, 2.1, 1.9], [2.2, 2.4, 2.1], 0.5, CONTRADICTED),      # lower at equal steps, higher on its budget run
    ([2.0, 2.3, 1.9], [2.2, 2.1, 2.0], 0.0, INCONCLUSIVE),      # the seeds disagree
])
def test_glow_against_realnvp_is_decided_paired_by_seed_at_equal_compute(tmp_path, glow, realnvp, glow_cost,
                                                                         verdict):
    g, r = pair(glow, realnvp, a_budget_cost=glow_cost)
    claims = claims_of(tmp_path, {("mnist5k", "glow", "realnvp"): (g, r)})
    c = claims[GLOW]
    assert c.verdict == verdict and c.n_seeds == 3 and c.test.startswith("paired t-interval over training seeds")
    assert c.evidence == "equal compute (counted FLOPs), glow - realnvp"
    assert "equal_steps mnist5k: glow - realnvp difference" in c.numbers          # equal steps beside
    d = np.subtract(glow, realnvp) + glow_cost
    half = T95_2 * d.std(ddof=1) / math.sqrt(3)
    assert (c.difference, c.ci_low, c.ci_high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    if glow_cost:
        assert c.numbers["equal_steps mnist5k: glow - realnvp ci_high"] < 0     # equal steps beside, confirmed
    assert claims[COMPUTE].verdict == CONFIRMED
    assert claims[CIFAR].verdict == NOT_TESTABLE and claims[MACOW].verdict == NOT_TESTABLE


def test_a_claim_over_several_datasets_is_decided_on_their_averaged_effect(tmp_path):
    """Glow wins on one dataset and loses on the other by about as much: the general claim is undecided, while
    each dataset's own interval stays beside it."""
    g, r = pair([2.0, 2.1, 1.9], [2.2, 2.4, 2.1])
    worse_g, worse_r = pair([2.4, 2.5, 2.6], [2.2, 2.3, 2.3])
    c = claims_of(tmp_path, {("mnist5k", "glow", "realnvp"): (g, r),
                             ("digits", "glow", "realnvp"): (worse_g, worse_r)})[GLOW]
    assert c.verdict == INCONCLUSIVE and c.evidence == "equal compute (counted FLOPs), glow - realnvp"
    assert c.difference == pytest.approx(0.0) and "averaged over 2 cells" in c.test
    assert c.numbers["equal_compute mnist5k: glow - realnvp ci_high"] < 0
    assert c.numbers["equal_compute digits: glow - realnvp ci_low"] > 0


@pytest.mark.parametrize("macow, vardeq_gain, expected", [
    ([3.9, 3.93, 3.88], 0.05, (CONFIRMED, CONFIRMED)),
    ([4.1, 4.13, 4.1], 0.05, (CONTRADICTED, CONFIRMED)),
    ([3.9, 3.93, 3.88], -0.05, (CONFIRMED, CONTRADICTED)),
    ([3.9, 4.1, 4.0], 0.0, (INCONCLUSIVE, INCONCLUSIVE)),
])
def test_macow_and_dequantisation_claims(tmp_path, macow, vardeq_gain, expected):
    glow = [4.0, 4.02, 3.98]
    noise = [0.01, -0.01, 0.0] if vardeq_gain == 0 else [0.0, 0.0, 0.0]
    shifted = lambda v, k: [x - vardeq_gain + k * n for x, n in zip(v, noise)]
    runs = {m: pair(v, v)[0] for m, v in (("glow", glow), ("macow", macow), ("glow+vardeq", shifted(glow, 1)),
                                          ("macow+vardeq", shifted(macow, -1)))}
    comparisons = {("digits", a, b): (runs[a], runs[b]) for a, b in bpd_table.COMPARISONS if a in runs and b in runs}
    iw = pd.DataFrame([dict(dataset="digits", model_type=m, seed=0, iw_k=4, iw_n=n, elbo_iw_images=4.0,
                            iw_bpd=3.99, iw_sem=0.01) for m, n in (("glow", 100), ("macow", 37))])
    claims = claims_of(tmp_path, comparisons, iw)
    assert (claims[MACOW].verdict, claims[VARDEQ].verdict) == expected
    assert "equal_compute digits: macow+vardeq - glow+vardeq difference" in claims[MACOW].numbers
    assert "equal_compute digits: glow+vardeq - glow difference" in claims[VARDEQ].numbers
    bound = claims[IW]
    assert bound.verdict == CONFIRMED and bound.numbers == pytest.approx({"digits glow bound - ELBO": -0.01,
                                                                          "digits macow bound - ELBO": -0.01})


def test_bound_looser_than_the_elbo_beyond_its_error_contradicts(tmp_path):
    g, r = pair([2.0, 2.1, 1.9], [2.2, 2.4, 2.1])
    iw = pd.DataFrame([dict(dataset="digits", model_type="glow", seed=0, iw_k=4, iw_n=300, elbo_iw_images=4.0,
                            iw_bpd=iw, iw_sem=0.01) for iw in (4.05,)])
    assert claims_of(tmp_path, {("mnist5k", "glow", "realnvp"): (g, r)}, iw)[IW].verdict == CONTRADICTED
    iw["iw_bpd"] = 4.005
    assert claims_of(tmp_path / "b", {("mnist5k", "glow", "realnvp"): (g, r)}, iw)[IW].verdict == INCONCLUSIVE


def test_too_few_seeds_or_unequal_steps_are_named(tmp_path):
    g, r = pair([2.0, 2.1], [2.2, 2.4], seeds=(0, 1))
    claims = claims_of(tmp_path, {("mnist5k", "glow", "realnvp"): (g, r)})
    assert claims[GLOW].verdict == NOT_TESTABLE and "2 seed(s); the test needs at least 3" in claims[GLOW].evidence
    assert claims[GLOW].n_seeds == 2
    g, r = pair([2.0, 2.1, 1.9], [2.2, 2.4, 2.1])
    r["steps"] = {s: m.iloc[:2] for s, m in r["steps"].items()}            # realnvp stopped a step short
    compute = claims_of(tmp_path / "b", {("mnist5k", "glow", "realnvp"): (g, r)})[COMPUTE]
    assert compute.verdict == INCONCLUSIVE and compute.numbers["pairs of unequal steps"] == 3
    assert "a pair trained unequal steps" in compute.evidence


def test_equal_compute_needs_every_pair_run_at_the_budget_and_a_count_that_does_not_spread(tmp_path):
    g, r = pair([2.0, 2.1, 1.9], [2.2, 2.4, 2.1])
    pairs = table_of({("digits", "glow", "realnvp"): (g, r)})
    fine = claims_of(tmp_path, {("digits", "glow", "realnvp"): (g, r)},
                     budget=budget_of(pairs, {"realnvp": 1.333e9}))[COMPUTE]
    assert fine.verdict == CONFIRMED, fine.numbers
    assert fine.numbers["digits realnvp steps at equal compute"] == 23, fine.numbers                # 30 * 1e9 / 1.333e9
    assert fine.numbers["digits realnvp seconds per step, spread over seeds"] == pytest.approx(0.2 / 1.1)
    assert fine.numbers["FLOPs recount difference"] == 0
    spread = claims_of(tmp_path / "b", {("digits", "glow", "realnvp"): (g, r)},
                       budget=budget_of(pairs, recount=1.02))[COMPUTE]
    assert spread.verdict == INCONCLUSIVE and "two counts of one config differ" in spread.evidence
    missed = budget_of(pairs)
    missed.loc[missed.model_type == "realnvp", "flops_equal_compute"] *= 1.05
    assert claims_of(tmp_path / "c", {("digits", "glow", "realnvp"): (g, r)}, budget=missed)[COMPUTE].verdict \
        == INCONCLUSIVE
    r["budget"] = {0: r["budget"][0]}                                       # seeds 1, 2 never trained at the budget
    lacking = claims_of(tmp_path / "d", {("digits", "glow", "realnvp"): (g, r)})
    assert lacking[COMPUTE].numbers["pairs lacking a run at equal compute"] == 2
    assert lacking[GLOW].verdict == NOT_TESTABLE and "one FLOPs budget" in lacking[GLOW].evidence


def test_old_results_without_per_seed_tables_say_how_to_remake_them(tmp_path):
    write(tmp_path, {"bpd": pd.DataFrame([dict(dataset="digits", model_type="glow", test_bpd=4.0)])})
    claims = decided(tmp_path)
    assert len(claims) == 7 and {c.verdict for c in claims.values()} == {NOT_TESTABLE}
    assert claims[GLOW].evidence == "the results of bpd_table predate seeds.csv"
    assert claims[GLOW].rerun == "make notebook NB=bpd_table PROFILE=smoke"


def test_the_curves_draw_the_papers_table_2_number_only_on_the_same_model_and_data():
    import matplotlib.pyplot as plt
    curves = pd.DataFrame([{"model": m, "dataset": d, "model_type": t, "seed": 0, "step": s, "epoch": s / 10,
                            "split": "test",
                            "bpd": 4.0 - s / 100}
                           for m, d, t in (("glow", "cifar10", "glow"), ("macow+vardeq", "cifar10", "macow+vardeq"),
                                           ("glow (mnist5k)", "mnist5k", "glow"))
                           for s in (10, 20)])
    published = pd.DataFrame({"model": ["Glow", "MaCow (variational dequantisation)", "Glow"],
                              "dataset": ["cifar10", "cifar10", "mnist"], "bpd": [3.35, 3.16, 1.05],
                              "kind": ["original", "original", "original"], "source": ["a", "b", "c"]})
    fig = bpd_table.plot_curves(curves, published)
    lines = {ax.get_title(): [t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("paper:")]
             for ax in fig.axes if ax.get_legend()}
    assert lines.get("glow") == ["paper: Glow on cifar10, Table 2 (full scale)"]
    assert lines.get("macow+vardeq") == ["paper: MaCow (variational dequantisation) on cifar10, Table 2 (full scale)"]
    assert not lines.get("glow (mnist5k)")                    # MNIST is not the same data as mnist5k
    plt.close(fig)


def test_the_curves_fit_the_books_column_two_panels_a_row_under_one_legend_of_the_splits():
    """Eight panels (the cpu profile's six rows and two longer runs): two a row, their smallest text drawn at least
    LEGIBLE_PX tall in the book's column, and one legend names the splits for every panel."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    curves = pd.DataFrame([{"model": f"glow {d}", "dataset": d, "model_type": "glow", "seed": seed, "step": step,
                            "epoch": step / 10, "split": split, "bpd": 5.0 - step / 100 + seed / 10}
                           for d in ("digits", "fashion_mnist", "mnist5k", "d4", "d5", "d6", "d7", "d8")
                           for seed in (0, 1) for step in (10, 20, 30)
                           for split in ("train", "train_eval", "val", "test")])
    published = pd.DataFrame({"model": ["Glow"], "dataset": ["cifar10"], "bpd": [3.35], "kind": ["original"],
                              "source": ["a"]})
    fig = bpd_table.plot_curves(curves, published)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 8 and len({round(ax.get_position().x0, 3) for ax in panels}) == 2
    assert drawn_px(fig) >= LEGIBLE_PX
    assert [[t.get_text() for t in legend.get_texts()] for legend in fig.legends] == [
        ["train", "train_eval", "val", "test"]]
    assert not any(ax.get_legend() for ax in panels)              # no paper line: Table 2 has none of these data
    plt.close(fig)


def test_a_left_out_row_says_why_and_every_row_reports_a_standard_error():
    from types import SimpleNamespace
    assert "table_left_out" in bpd_table.why_left_out("cpu", "mnist5k", "glow")
    assert "table_left_out" in bpd_table.why_left_out("cpu", "fashion_mnist", "macow+vardeq")
    assert "trains it only on ['fashion_mnist']" in bpd_table.why_left_out("cpu", "digits", "macow")
    metrics = pd.DataFrame({"step": [10, 20], "wall_s": [1.0, 2.0], "val_bpd": [3.0, 2.9], "test_bpd": [3.1, 2.8],
                            "test_sem": [0.02, 0.03]})
    chosen = paired.chosen_at(metrics)
    # periodic evaluations saw the whole test split (mnist5k): the chosen evaluation's own error
    assert bpd_table.test_score(SimpleNamespace(summary={}, metrics=metrics), chosen) == (2.8, 0.03)
    whole = SimpleNamespace(summary={"test_bpd_full": 2.75, "test_sem_full": 0.01}, metrics=metrics)
    assert bpd_table.test_score(whole, chosen) == (2.75, 0.01)


def test_the_figures_model_stands_beside_the_published_number_with_its_scale():
    ours = pd.DataFrame([dict(dataset="fashion_mnist", model_type="glow", test_bpd=3.9, test_bpd_ci_low=3.8,
                              test_bpd_ci_high=4.0, n_seeds=3, n_parameters=1e6, images_seen=19200, n_train=59000)])
    scale = pd.DataFrame([dict(dataset="fashion_mnist", model_type="glow", **bpd_table.paper_scale("fashion_mnist"))])
    quality = pd.DataFrame([dict(dataset="mnist5k", model_type="glow", seed=0, test_bpd=2.28, test_sem=0.01,
                                 n_parameters=1e6, images_seen=80000, n_train=3500,
                                 **bpd_table.paper_scale("mnist5k"))])
    table = bpd_table.compare_with_published(ours, scale, bpd_table.published_bpd(), quality)
    fashion, digits = table.iloc[0], table.iloc[1]
    assert np.isnan(fashion.published) and fashion.source == "no published number for this data"
    assert digits.model_type == bpd_table.QUALITY_ROW and digits.n_seeds == 1
    assert digits.published == 1.05 and digits.published_dataset == "mnist"        # FFJORD's table, 28x28
    assert digits.gap == pytest.approx(2.28 - 1.05)
    assert (digits.ours_ci_low, digits.ours_ci_high) == pytest.approx((2.28 - 0.0196, 2.28 + 0.0196))
    assert digits.train_images_ratio == pytest.approx(3500 / 60_000)
    assert 0 < digits.images_seen_ratio < 1 and 0 < digits.parameters_ratio < 1


def test_the_departures_set_the_profiles_runs_beside_the_paper_profiles_settings(monkeypatch):
    """Each aspect once, ours from the configs the table trains and the paper's from the paper profile's preset:
    neither this machine's precision nor $GLOWLIB_OVERRIDES reaches the paper's column; where our runs differ in an
    aspect, each value names its runs."""
    monkeypatch.setenv("GLOWLIB_PRECISION", "bf16")
    monkeypatch.setenv("GLOWLIB_OVERRIDES", "model.width=16")
    cpu, paper = profiles.profile("cpu"), profiles.profile("paper")
    table = bpd_table.departures("cpu", ["mnist5k", "digits"]).set_index("aspect")
    assert list(table.index) == list(bpd_table.DEPARTURE_ASPECTS) and list(table.columns) == ["ours", "paper"]
    ours, theirs = table.ours, table.paper
    assert ours["optimiser and learning rate"] == f"{cpu.train.optimizer.capitalize()}, {cpu.train.lr:g}"
    assert theirs["optimiser and learning rate"] == f"{paper.train.optimizer.capitalize()}, {paper.train.lr:g}"
    assert (ours["batch"], theirs["batch"]) == (str(cpu.train.batch_size), str(paper.train.batch_size))
    assert theirs["warmup"] == f"{paper.train.warmup_steps:,} steps" and ours["warmup"].endswith("of the steps")
    assert theirs["Polyak averaging (decay)"] == f"{paper.train.ema_decay:g}"
    assert (ours["precision"], theirs["precision"]) == ("bf16", "fp32")
    assert ours["model (L, K, width)"] == f"L={cpu.model.n_levels}, K={cpu.model.depth}, width 16"
    assert theirs["model (L, K, width)"] == (                  # the paper's model on 28x28 images has fewer levels
        f"L={paper.model.n_levels}, K={paper.model.depth}, width {paper.model.width} (cifar10); "
        f"L={paper.dataset_models['mnist5k']['n_levels']}, K={paper.model.depth}, width {paper.model.width} "
        f"(mnist5k, digits)")
    steps = ours["steps (images seen)"]
    for name, n in (("mnist5k", cpu.steps["mnist5k"]), ("digits", cpu.steps["digits"]),
                    ("mnist5k longer run", cpu.quality_steps["mnist5k"])):
        assert f"{n:,} steps, {n * cpu.train.batch_size:,} images ({name})" in steps
    assert theirs["steps (images seen)"] == f"{paper.train.steps:,} steps, " \
                                            f"{paper.train.steps * paper.train.batch_size:,} images"
    assert ours["coupling"] == "affine (mnist5k, digits); additive (mnist5k longer run)"
    assert ours["training seeds"] == f"{bpd_table.N_SEEDS} per compared row; 1 per longer run"
    assert bpd_table.departures("smoke", ["digits"], n_seeds=2).set_index("aspect").ours["training seeds"] == \
        "2 per compared row"                                        # smoke has no longer run


def curves_of(pairs: pd.DataFrame, drop: float) -> pd.DataFrame:
    """Validation curves of every row of ``pairs`` over 40 steps, falling by ``drop`` over the last quarter."""
    models = {(d, m) for d, a, b in zip(pairs.group, pairs.a, pairs.b) for m in (a, b)}
    return pd.DataFrame([dict(dataset=d, model_type=m, seed=s, step=step, split="val",
                              bpd=4.0 + drop * (40 - step) / 10) for d, m in sorted(models) for s in range(3)
                         for step in (10, 20, 30, 40)])


@pytest.mark.parametrize("drop, verdict", [(0.0, CONTRADICTED), (0.2, INCONCLUSIVE)])
def test_in_early_training_a_verdict_stands_only_where_equal_steps_agrees(tmp_path, drop, verdict):
    """Lower at equal steps but higher on the costlier arm's shorter budget run: flat curves let equal compute
    decide; curves still falling make it inconclusive, both intervals kept."""
    g, r = pair([2.0, 2.1, 1.9], [2.2, 2.4, 2.1], a_budget_cost=0.5)
    pairs = table_of({("mnist5k", "glow", "realnvp"): (g, r)})
    seeds, bpd = bpd_rows(pairs)
    write(tmp_path, {"pairs": pairs, "seeds": seeds, "bpd": bpd, "budget": budget_of(pairs),
                     "curves": curves_of(pairs, drop)})
    c = decided(tmp_path)[GLOW]
    assert c.verdict == verdict and c.difference > 0
    if drop:
        assert "disagree" in c.evidence and c.numbers["equal steps ci_high"] < 0
