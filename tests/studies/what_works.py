"""What makes Glow work (glowlib.studies.what_works): depth variants matched to the reference's parameter count, one
change at a time from the ablation's model, and its claims (``what_works.CLAIMS``) decided by paired tests over
training seeds from hand-made per-seed tables, the ablation's read from the ablation page's results."""

import pandas as pd
import pytest

from glowlib.analysis.claims import decide_claims
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.profiles import ablation_config
from glowlib.profiles import profile as profile_of
from glowlib.studies import ablation, what_works
from glowlib.studies.base import config_parameters
from judged import run, write

SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------------------------------- variants
@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_depth_variants_match_the_reference_parameter_count(profile):
    reference = what_works.what_works_reference(profile, 0)
    target = config_parameters(reference)
    widths = set()
    for k in profile_of(profile).what_works_depths:
        run = what_works.what_works_config(profile, f"K={k}", 0)
        assert run.model.depth == k
        assert abs(config_parameters(run) / target - 1) <= what_works.WIDTH_TOLERANCE
        widths.add(run.model.width)
    assert len(widths) == len(profile_of(profile).what_works_depths)            # the widths really differ
    assert what_works.what_works_config(profile, f"K={reference.model.depth}", 0) == reference   # the ablation's run


def test_variants_change_one_thing_and_the_reference_is_the_ablations_run():
    ref = what_works.what_works_reference("smoke", 1)
    assert what_works.what_works_config("smoke", "no_actnorm", 1) == ref.override(["model.actnorm=False"])
    prior = what_works.what_works_config("smoke", "standard_prior", 1).model
    assert not prior.learned_prior and not prior.learn_top
    keys = [r.key() for r in what_works.runs("smoke")]
    assert ablation_config("smoke", "conv1x1", "affine", 0).key() in keys and len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match="variant"):
        what_works.what_works_config("smoke", "K=3", 0)
    with pytest.raises(ValueError, match="variants\\[0\\]"):
        what_works.check_parameters(profile="smoke", seed=0, out_dir="", variants=["K=3"], n_seeds=1)


def test_claimed_directions_follow_the_reference_depth():
    assert what_works.claimed_direction("smoke", "K=4") == "lower"
    assert what_works.claimed_direction("smoke", "K=1") == "higher"
    assert what_works.claimed_direction("smoke", "no_actnorm") == "higher"
    with pytest.raises(ValueError, match="variant"):
        what_works.claimed_direction("smoke", "no_prior")


# ---------------------------------------------------------------------------------------------------- claims
ORDERED = {"conv1x1": 3.0, "rotation": 3.1, "shuffle": 3.2, "reverse": 3.4}
DEPTH, TIME = "what_works.one_change_ablations", "what_works.conv1x1_at_equal_time"


def what_works_claims(tmp_path, variants: dict, conv_flops_agree=True, miss=0.005, with_ablation=True,
                      conv_gain=0.0) -> dict:
    """{claim id: row of the claims table} from the variants' final bits/dim and the ablation's runs (the 1x1's
    FLOPs per step within 1% of the fixed permutations' where ``conv_flops_agree``, the 1x1 ``conv_gain`` above
    ORDERED), the depth variants ``miss``-ing the reference's parameters."""
    reference = what_works.reference_variant("smoke")
    metrics = {v: {s: run(b, s) for s in SEEDS} for v, b in variants.items()}
    pairs = what_works.paired_table(metrics, [(what_works.GROUP, v, reference, v, reference) for v in variants
                                              if v != reference])
    summary = pd.DataFrame([dict(variant=v, n_seeds=3, parameters_vs_reference=0.0 if v == reference else miss)
                            for v in variants])
    write(tmp_path, "what_works", **{"pairs": pairs, "summary": summary})
    if with_ablation:
        ab = {(p, c): {s: run(v - (0.1 if c == "affine" else 0.0) + (conv_gain if p == "conv1x1" else 0.0), s)
                       for s in SEEDS} for p, v in ORDERED.items() for c in ("additive", "affine")}

        def same(ka, kb):
            return ka[1] == kb[1] and (conv_flops_agree or "conv1x1" not in (ka[0], kb[0]))
        write(tmp_path, "ablation", **{"pairs": ablation.ablation_pairs(ab, list(ORDERED), ["additive", "affine"],
                                                                        same)})
    table, _ = decide_claims(what_works.CLAIMS, "smoke", tmp_path)
    return {r["id"]: r for r in table.to_dict("records")}


def test_what_works_claims(tmp_path):
    helps = {"K=1": 3.4, "K=2": 3.0, "K=4": 2.8, "no_actnorm": 3.5, "standard_prior": 3.2}     # smoke: K=2 reference
    claims = what_works_claims(tmp_path, helps)
    assert claims[DEPTH]["verdict"] == CONFIRMED and claims[DEPTH]["evidence"].startswith("equal steps")
    assert claims[TIME]["verdict"] == CONFIRMED and claims[TIME]["evidence"].startswith("equal compute")
    hurts = dict(helps, standard_prior=2.9)                      # the standard prior does better
    c = what_works_claims(tmp_path / "b", hurts)[DEPTH]
    assert c["verdict"] == CONTRADICTED and c["evidence"] == "equal steps, standard_prior - K=2"
    # the 1x1 worse than shuffle and reverse at equal compute
    assert what_works_claims(tmp_path / "c", helps, conv_gain=0.6)[TIME]["verdict"] == CONTRADICTED
    # a 1x1 whose FLOPs are not those of a fixed permutation has no run at their budget: not testable, saying so
    unequal = what_works_claims(tmp_path / "d", helps, conv_flops_agree=False)[TIME]
    assert unequal["verdict"] == NOT_TESTABLE and "one FLOPs budget" in unequal["evidence"]


def test_a_depth_variant_off_the_reference_parameters_makes_the_claim_not_testable(tmp_path):
    helps = {"K=1": 3.4, "K=2": 3.0, "K=4": 2.8, "no_actnorm": 3.5, "standard_prior": 3.2}
    unmatched = what_works_claims(tmp_path, helps, miss=0.05)[DEPTH]
    assert unmatched["verdict"] == NOT_TESTABLE and "misses the reference's parameter count" in unmatched["evidence"]
    assert pd.isna(unmatched["difference"]) and unmatched["n_seeds"] == 0
    assert what_works_claims(tmp_path / "b", helps, miss=0.02)[DEPTH]["verdict"] == CONFIRMED   # within 2%: kept
    _, numbers = decide_claims(what_works.CLAIMS, "smoke", tmp_path)
    assert dict(zip(numbers.name, numbers.value))["depth parameter miss"] == pytest.approx(0.05)


def test_the_equal_time_claim_reads_the_ablation_pages_results(tmp_path):
    helps = {"K=1": 3.4, "K=2": 3.0, "K=4": 2.8, "no_actnorm": 3.5, "standard_prior": 3.2}
    claims = what_works_claims(tmp_path, helps, with_ablation=False)
    assert claims[DEPTH]["verdict"] == CONFIRMED
    assert claims[TIME]["verdict"] == NOT_TESTABLE and claims[TIME]["rerun"] == "make notebook NB=ablation PROFILE=smoke"


def test_the_figure_draws_bits_per_dim_as_dots_and_bars_only_from_zero():
    """A bar that starts anywhere but zero exaggerates a difference: the bits/dim (a few tenths apart near 4 to 6)
    are dots with their intervals, the wall times bars from zero; the figure fits the book's column legibly."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px, overlapping
    summary = pd.DataFrame({"variant": ["K=2", "K=4", "K=8", "no_actnorm", "standard_prior"],
                            "test_bpd_mean": [5.06, 4.48, 4.20, 5.52, 4.61],
                            "test_bpd_std": [0.09, 0.06, 0.04, 0.07, 0.06],
                            "n_parameters": [77600, 78032, 77000, 77000, 77000],
                            "wall_s_mean": [81.0, 95.5, 123.0, 93.0, 87.0], "wall_s_std": [4.4, 2.3, 3.0, 6.0, 2.5]})
    fig = what_works.plot_what_works(summary, "K=4")
    bpd, wall = fig.axes
    assert not bpd.patches and len(bpd.lines) >= len(summary)          # dots (and their interval lines), no bars
    assert len(wall.patches) == len(summary) and all(p.get_x() == 0 for p in wall.patches)
    assert wall.get_xlim()[0] == 0
    assert drawn_px(fig) >= LEGIBLE_PX and not overlapping(bpd.get_yticklabels())
    plt.close(fig)


def test_depth_variants_are_trained_again_at_the_references_flops_and_compared_there_beside():
    from glowlib.budget import TOLERANCE, run_flops
    reference = what_works.what_works_reference("cpu", 0)
    extra = what_works.runs("cpu")[len(what_works.what_works_variants("cpu")) * len(SEEDS):]
    assert {(r.model.depth, r.train.seed) for r in extra} == {(2, s) for s in SEEDS} | {(8, s) for s in SEEDS}
    for r in extra:
        assert abs(run_flops(r) - run_flops(reference)) <= TOLERANCE * run_flops(reference)
        assert r.train.steps != reference.train.steps and r.train.warmup_fraction == reference.train.warmup_fraction
    assert not what_works.needs_budget_run("cpu", "no_actnorm") and what_works.needs_budget_run("cpu", "K=8")


def test_the_depth_claim_carries_the_equal_compute_interval_beside_it(tmp_path):
    helps = {"K=1": 3.4, "K=2": 3.0, "K=4": 2.8, "no_actnorm": 3.5, "standard_prior": 3.2}
    reference = what_works.reference_variant("smoke")
    metrics = {v: {s: run(b, s) for s in SEEDS} for v, b in helps.items()}
    metrics.update({(v, "budget"): {s: run(helps[v] + 0.05, s) for s in SEEDS} for v in ("K=1", "K=4")})
    at = {v: ((v, "budget"), reference) if v in ("K=1", "K=4") else (v, reference) for v in helps}
    pairs = what_works.paired_table(metrics, [(what_works.GROUP, v, reference, v, reference) + at[v]
                                              for v in helps if v != reference])
    summary = pd.DataFrame([dict(variant=v, n_seeds=3, parameters_vs_reference=0.0) for v in helps])
    write(tmp_path, "what_works", **{"pairs": pairs, "summary": summary})
    table, numbers = decide_claims(what_works.CLAIMS, "smoke", tmp_path)
    claim = table.set_index("id").loc[DEPTH]
    named = numbers[numbers.id == DEPTH].set_index("name").value
    assert claim.verdict == CONFIRMED and claim.evidence.startswith("equal steps")
    assert {"equal compute difference", "equal compute ci_low", "equal compute ci_high"} <= set(named.index)
