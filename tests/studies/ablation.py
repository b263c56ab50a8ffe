"""The permutation ablation's claims (glowlib.studies.ablation.CLAIMS), decided by paired tests over training seeds
from hand-made per-seed tables: every verdict reachable, the basis (equal steps or equal compute) that decides
named, a claim over several comparisons confirmed only when all are; and the 1x1's profiled time share."""

import pandas as pd
import pytest

from glowlib.analysis.bench_records import conv1x1_time
from glowlib.analysis.claims import decide_claims
from glowlib.analysis.paired import decide_all
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, Decision
from glowlib.studies import ablation
from judged import run, write

SEEDS = (0, 1, 2)
# per-seed final test bits/dim with a seed effect common to every variant (cancelled by pairing)


def same_coupling(ka, kb) -> bool:
    """The FLOPs test of the real runs, as they come out: permutations of one coupling cost alike within 1%;
    affine and additive coupling do not."""
    return ka[1] == kb[1]


def ablation_pairs(finals: dict, speed: dict | None = None, jitter: dict | None = None,
                   same=same_coupling) -> pd.DataFrame:
    """The ablation's pairs table from {(permutation, coupling): final bits/dim}."""
    metrics = {key: {s: run(v, s, (speed or {}).get(key, 1.0), (jitter or {}).get(key, 0.0)) for s in SEEDS}
               for key, v in finals.items()}
    return ablation.ablation_pairs(metrics, ["reverse", "shuffle", "conv1x1", "rotation"], ["additive", "affine"],
                                   same)


ORDERED = {"conv1x1": 3.0, "rotation": 3.1, "shuffle": 3.2, "reverse": 3.4}


def finals(order=ORDERED, affine_gain=0.1):
    return {(p, c): v - (affine_gain if c == "affine" else 0.0) for p, v in order.items()
            for c in ("additive", "affine")}


def cost_table(param_extra=0.0022, time_extras=(0.04, 0.009)) -> pd.DataFrame:
    rows = [dict(measure="parameters", source="counted", width=512, depth=32, batch=float("nan"), precision="fp32",
                 conv1x1=96768, total=44054256, share=param_extra / (1 + param_extra), extra=param_extra),
            dict(measure="flops", source="counted", width=512, depth=32, batch=64, precision="fp32", conv1x1=2e7,
                 total=2.4e10, share=0.0009, extra=0.0009)]
    rows += [dict(measure="time", source=f"profile_{i}.json", width=512, depth=8, batch=16, precision="fp32",
                  conv1x1=1.0, total=10.0, share=e / (1 + e), extra=e) for i, e in enumerate(time_extras)]
    return pd.DataFrame(rows)


def ablation_claims(tmp_path, pairs, cost=None, n_seeds=3, dataset="cifar10", **order_tables):
    """{claim id: row of the claims table}, and {claim id: {name: number}}. ``order_tables``: the order's tables on
    the RGB patches (``order_pairs``, ``order_curves``), where there are some."""
    summary = pd.DataFrame([dict(permutation=p, coupling=c, n_seeds=n_seeds) for p in ORDERED
                            for c in ("additive", "affine")])
    runs = summary.drop(columns="n_seeds").assign(dataset=dataset)
    write(tmp_path, "ablation", **{"pairs": pairs, "summary": summary, "runs": runs,
                                 "conv1x1_cost": cost_table() if cost is None else cost}, **order_tables)
    table, numbers = decide_claims(ablation.CLAIMS, "smoke", tmp_path)
    return ({r["id"]: r for r in table.to_dict("records")},
            {i: dict(zip(g.name, g.value)) for i, g in numbers.groupby("id")})


ORDER, FASTER, AFFINE = "ablation.permutation_order", "ablation.conv1x1_converges_faster", "ablation.affine_beats_additive"
COST, ROTATION, BARS = "ablation.conv1x1_cost", "ablation.learned_beats_rotation", "ablation.error_bars"


def test_ordered_variants_confirm_every_claim_at_equal_steps(tmp_path):
    claims, _ = ablation_claims(tmp_path, ablation_pairs(finals()))
    for claim_id in (ORDER, FASTER, AFFINE, ROTATION):
        c = claims[claim_id]
        assert c["verdict"] == CONFIRMED and c["n_seeds"] == 3 and c["evidence"].startswith("equal steps"), claim_id
    # the weakest confirmation decides: shuffle - reverse is -0.2, conv1x1 - shuffle -0.2 too; both exact
    assert claims[ORDER]["difference"] == pytest.approx(-0.2)
    assert claims[AFFINE]["difference"] == pytest.approx(-0.1)
    assert claims[COST]["verdict"] == CONFIRMED and claims[BARS]["verdict"] == CONFIRMED


def test_convergence_is_decided_on_the_mean_of_the_test_curve(tmp_path):
    """The curves fall 0.6 and 0.2 above their last value: the curve mean of conv1x1 - shuffle is its final -0.2."""
    claims, numbers = ablation_claims(tmp_path, ablation_pairs(finals(affine_gain=0.0)))
    assert claims[FASTER]["verdict"] == CONFIRMED
    assert numbers[FASTER]["equal_steps additive: conv1x1 - shuffle difference"] == pytest.approx(-0.2)


def test_a_reversed_pair_contradicts_and_a_noisy_one_is_inconclusive(tmp_path):
    swapped = dict(ORDERED, shuffle=3.5)                            # shuffle now worse than reverse
    claims, _ = ablation_claims(tmp_path, ablation_pairs(finals(swapped)))
    c = claims[ORDER]
    assert c["verdict"] == CONTRADICTED and c["evidence"] == "equal steps, shuffle - reverse"
    assert c["ci_low"] > 0
    noisy = ablation_pairs(finals(), jitter={("rotation", "additive"): -0.5, ("rotation", "affine"): -0.5})
    assert ablation_claims(tmp_path / "b", noisy)[0][ROTATION]["verdict"] == INCONCLUSIVE


def test_pairs_compare_at_equal_compute_only_where_their_flops_agree(tmp_path):
    """Variants of equal FLOPs per step compare at equal compute on their own runs; affine against additive,
    whose FLOPs differ, get no equal-compute value rather than one from a run cut partway, and their claim is
    decided at equal steps as Fig. 3 compares them."""
    slow = {key: 0.5 for key in finals() if key[0] == "conv1x1"}           # measured time decides nothing
    pairs = ablation_pairs(finals(), speed=slow)
    perms, couplings = pairs[pairs.b != "additive"], pairs[pairs.b == "additive"]
    assert (perms.a_bpd_equal_compute == perms.a_bpd_equal_steps).all()
    assert couplings.a_bpd_equal_compute.isna().all() and couplings.b_bpd_equal_compute.isna().all()
    claims, numbers = ablation_claims(tmp_path, pairs)
    assert claims[AFFINE]["verdict"] == CONFIRMED and claims[AFFINE]["evidence"].startswith("equal steps")
    assert numbers[ORDER]["equal_compute additive: conv1x1 - shuffle difference"] == pytest.approx(-0.2)
    assert "equal_compute additive: affine - additive difference" not in numbers[AFFINE]


def test_the_cost_claim_reads_counts_and_profiles(tmp_path):
    pairs = ablation_pairs(finals())
    assert ablation_claims(tmp_path, pairs, cost_table(0.05))[0][COST]["verdict"] == CONTRADICTED
    assert ablation_claims(tmp_path / "b", pairs, cost_table(time_extras=(0.2, 0.01)))[0][COST]["verdict"] == \
        INCONCLUSIVE
    assert ablation_claims(tmp_path / "c", pairs, cost_table(time_extras=(0.2, 0.3)))[0][COST]["verdict"] == \
        CONTRADICTED
    claims, numbers = ablation_claims(tmp_path / "d", pairs)
    assert numbers[COST]["extra parameters"] == pytest.approx(0.0022)
    assert numbers[COST]["extra time, profile_0.json"] == pytest.approx(0.04)


def test_too_few_seeds(tmp_path):
    pairs = ablation_pairs(finals())
    claims, _ = ablation_claims(tmp_path, pairs[pairs.seed < 2], n_seeds=2)
    assert claims[ORDER]["verdict"] == NOT_TESTABLE and claims[BARS]["verdict"] == NOT_TESTABLE
    assert claims[ORDER]["n_seeds"] == 2 and "2 seed(s); the test needs at least 3" in claims[ORDER]["evidence"]


def test_decide_all_prefers_contradiction_then_not_testable_then_inconclusive():
    ok = Decision(CONFIRMED, -0.3, -0.5, -0.1, 3, "t")
    weak = Decision(CONFIRMED, -0.2, -0.4, -0.02, 3, "t")
    unsure = Decision(INCONCLUSIVE, -0.1, -0.3, 0.1, 3, "t")
    against = Decision(CONTRADICTED, 0.3, 0.1, 0.5, 3, "t")
    missing = Decision(NOT_TESTABLE, reason="no runs")
    assert decide_all({"a": ok, "b": weak}) == ("b", weak)
    assert decide_all({"a": ok, "b": unsure, "c": missing})[0] == "c"
    assert decide_all({"a": unsure, "b": missing, "c": against})[0] == "c"
    assert decide_all({"a": ok, "b": unsure})[0] == "b"


def test_the_1x1_time_is_what_it_adds_not_its_share():
    """The paper's "~7% more wall time" is what the 1x1 adds against a model without it: share / (1 - share)."""
    profiled = pd.DataFrame([{"group": "conv1x1", "config": "x", "channels": 3, "image_size": 32, "levels": 3,
                              "depth": 8, "width": 512, "batch": 16, "precision": "fp32", "ms_per_step": 20.0,
                              "share": 0.2},
                             {"group": "actnorm", "config": "x", "channels": 3, "image_size": 32, "levels": 3,
                              "depth": 8, "width": 512, "batch": 16, "precision": "fp32", "ms_per_step": 5.0,
                              "share": 0.05}])
    table = conv1x1_time(profiled)
    assert list(table.source) == ["profile_x.json"] and table.extra.tolist() == pytest.approx([0.25])
    assert conv1x1_time(None).empty


def test_shuffle_against_reverse_is_not_decided_on_one_channel_images(tmp_path):
    """On 1-channel images a first-level coupling sees 4 channels: a shuffle keeps its halves in 1 of 6 steps, so
    the order of shuffle and reverse measures that artefact; the verdict says so and keeps the numbers."""
    claims, numbers = ablation_claims(tmp_path, ablation_pairs(finals()), dataset="fashion_mnist")
    c = claims[ORDER]
    assert c["verdict"] == NOT_TESTABLE and "1 of 6 steps" in c["evidence"]
    assert numbers[ORDER]["first level's coupling channels"] == 4
    assert numbers[ORDER]["share of shuffle steps that keep the halves"] == pytest.approx(1 / 6)
    assert numbers[ORDER]["shuffle - reverse difference"] == pytest.approx(-0.2)
    assert claims[FASTER]["verdict"] == CONFIRMED                  # the 1x1's claims stand on these data


def test_the_curves_fit_the_books_column():
    """The test curves (a panel per coupling) and the split curves (a panel per permutation and coupling, as the
    notebook draws them) two panels a row, their smallest text drawn at least LEGIBLE_PX tall in the book's
    column."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    curves = pd.DataFrame([{"permutation": p, "coupling": c, "seed": seed, "step": step, "epoch": step / 10,
                            "split": split, "bpd": 6.0 - step / 100 + seed / 10}
                           for p in ablation.ABLATION_PERMUTATIONS for c in ("additive", "affine") for seed in (0, 1)
                           for step in (10, 20, 30) for split in ("train", "train_eval", "val", "test")])
    for fig in (ablation.plot_ablation(curves),
                ablation.plot_splits(curves.assign(variant=curves.permutation + " / " + curves.coupling),
                                     by="variant")):
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len({round(ax.get_position().x0, 3) for ax in panels}) == 2
        assert drawn_px(fig) >= LEGIBLE_PX
        plt.close(fig)


def test_affine_against_additive_at_equal_compute_reads_the_additive_run_at_the_affine_budget(tmp_path):
    """With the additive runs trained again at the affine budget (more steps), the coupling pairs gain an
    equal-compute value from those runs, never from a run cut partway; the claim stays decided at equal steps,
    with the equal-compute interval beside it."""
    values = finals()
    metrics = {key: {s: run(v, s) for s in SEEDS} for key, v in values.items()}
    for p in ORDERED:                                   # longer additive runs: 0.05 lower than at equal steps
        metrics[(p, ablation.BUDGET_ARM)] = {s: run(values[(p, "additive")] - 0.05, s) for s in SEEDS}
    pairs = ablation.ablation_pairs(metrics, list(ORDERED), ["additive", "affine"], same_coupling)
    couplings = pairs[pairs.b == "additive"]
    assert (couplings.b_bpd_equal_compute < couplings.b_bpd_equal_steps).all()
    assert (couplings.a_bpd_equal_compute == couplings.a_bpd_equal_steps).all()
    claims, numbers = ablation_claims(tmp_path, pairs)
    assert claims[AFFINE]["verdict"] == CONFIRMED and claims[AFFINE]["evidence"].startswith("equal steps")
    assert claims[AFFINE]["difference"] == pytest.approx(-0.1)
    assert numbers[AFFINE]["equal compute difference"] == pytest.approx(-0.05)


def test_the_cpu_ablation_trains_each_additive_variant_again_at_its_affine_twins_flops():
    from glowlib.budget import run_flops
    from glowlib.profiles import ablation_config
    budget_runs = [r for r in ablation.runs("cpu") if r.train.steps != ablation_config("cpu", "reverse",
                                                                                          "affine", 0).train.steps]
    assert {(r.model.permutation, r.model.coupling, r.train.seed) for r in budget_runs} == \
        {(p, "additive", s) for p in ORDERED for s in SEEDS}
    for r in budget_runs:
        affine = ablation_config("cpu", r.model.permutation, "affine", r.train.seed)
        assert r.train.steps > affine.train.steps and r.train.warmup_fraction == affine.train.warmup_fraction
        assert abs(run_flops(r) - run_flops(affine)) <= 0.01 * run_flops(affine)


# ---------------------------------------------------------------------------------------------------- the order on RGB
def patch_pairs(order=ORDERED, jitter=None) -> pd.DataFrame:
    """The order's pairs table on the patches from {permutation: final bits/dim} (both couplings alike)."""
    metrics = {(p, c): {s: run(order[p], s, jitter=(jitter or {}).get(p, 0.0)) for s in SEEDS}
               for p in ablation.ORDER_PERMUTATIONS for c in ("additive", "affine")}
    return ablation.order_pairs(metrics, ["additive", "affine"])


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_one_channel_profiles_train_the_order_on_rgb_patches(profile):
    """Where the ablation's data are 1-channel, every permutation of the order with every coupling and seed is
    trained on the patches (a first-level coupling sees 12 channels), at the ablation's model size and steps."""
    from glowlib.profiles import ablation_config
    order = ablation.order_runs(profile)
    assert order and all(r in ablation.runs(profile) for r in order)
    assert {(r.model.permutation, r.model.coupling, r.train.seed) for r in order} == \
        {(p, c, s) for p in ("conv1x1", "shuffle", "reverse") for c in ("additive", "affine") for s in SEEDS}
    assert len({r.key() for r in ablation.runs(profile)}) == len(ablation.runs(profile))
    for r in order:
        own = ablation_config(profile, r.model.permutation, r.model.coupling, r.train.seed)
        assert r.data.dataset == "patches" and (r.model.in_channels, r.model.image_size) == (3, 16)
        assert ablation.first_level_channels("patches") == 12
        assert (r.model.depth, r.model.width, r.model.n_levels, r.train.steps, r.train.eval_every) == \
            (own.model.depth, own.model.width, own.model.n_levels, own.train.steps, own.train.eval_every)
        assert 1 <= r.data.n_val < 5928 // 2 and r.model.n_bits == 8


def test_no_order_runs_where_the_ablation_has_colour():
    assert ablation.order_runs("gpu") == [] and ablation.order_runs("paper") == []
    assert ablation.order_study("gpu", ["affine"], 3).tables == {}


def test_the_order_is_decided_on_the_rgb_patches_beside_the_one_channel_numbers(tmp_path):
    """With the patch runs' pairs, the order is decided on them (both relations, Bonferroni), every verdict
    reachable, the 1-channel runs' numbers kept beside; without them it stays not testable."""
    one_channel = ablation_pairs(finals(dict(ORDERED, shuffle=3.5)))        # the artefact: shuffle above reverse
    curves = pd.DataFrame([{"permutation": p, "coupling": c, "seed": s, "step": step, "split": "val",
                            "bpd": 3.0 + 0.0005 * (30 - step)} for p in ablation.ORDER_PERMUTATIONS
                           for c in ("additive", "affine") for s in SEEDS for step in (10, 20, 30)])
    claims, numbers = ablation_claims(tmp_path, one_channel, dataset="fashion_mnist", order_pairs=patch_pairs(),
                                      order_curves=curves)
    c = claims[ORDER]
    assert c["verdict"] == CONFIRMED and c["evidence"].startswith("RGB patches (patches), equal steps")
    assert c["difference"] == pytest.approx(-0.2)
    assert numbers[ORDER]["shuffle - reverse difference"] == pytest.approx(-0.2)
    assert numbers[ORDER]["1-channel shuffle - reverse difference"] == pytest.approx(0.1)
    assert numbers[ORDER]["1-channel first level's coupling channels"] == 4
    assert numbers[ORDER]["runs still falling"] == 0 and numbers[ORDER]["relations"] == 2
    swapped = patch_pairs(dict(ORDERED, shuffle=3.5))
    c = ablation_claims(tmp_path / "b", one_channel, dataset="fashion_mnist", order_pairs=swapped)[0][ORDER]
    assert c["verdict"] == CONTRADICTED and c["evidence"].endswith("shuffle - reverse") and c["ci_low"] > 0
    noisy = patch_pairs(jitter={"shuffle": -0.9})
    assert ablation_claims(tmp_path / "c", one_channel, dataset="fashion_mnist",
                           order_pairs=noisy)[0][ORDER]["verdict"] == INCONCLUSIVE
    assert ablation_claims(tmp_path / "d", one_channel, dataset="fashion_mnist")[0][ORDER]["verdict"] == NOT_TESTABLE


def test_the_order_pairs_compare_every_coupling_at_both_bases():
    pairs = patch_pairs()
    assert set(zip(pairs.group, pairs.a, pairs.b)) == {(c, a, b) for c in ("additive", "affine") for a, b in
                                                       (("conv1x1", "shuffle"), ("shuffle", "reverse"),
                                                        ("conv1x1", "reverse"))}
    assert (pairs.a_bpd_equal_compute == pairs.a_bpd_equal_steps).all() and len(pairs) == 6 * len(SEEDS)
