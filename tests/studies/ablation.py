"""The permutation ablation's and the what-makes-Glow-work page's claims (glowlib.studies.ablation, what_works),
decided by paired tests over training seeds from hand-made per-seed tables: every verdict reachable, the basis
(equal steps or equal training time) named, a claim over several comparisons confirmed only when all are."""
import json

import pandas as pd
import pytest

from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, Decision
from glowlib.results import PROVENANCE
from glowlib.studies import ablation, what_works

SEEDS = (0, 1, 2)
# per-seed final test bits/dim with a seed effect common to every variant (cancelled by pairing)
SEED_EFFECT = (0.0, 0.3, -0.2)


def run(final: float, seed: int, speed: float = 1.0, jitter: float = 0.0) -> pd.DataFrame:
    """A metrics.csv of three evaluations ending at ``final`` + the seed effect (+ ``jitter`` on seed 1)."""
    end = final + SEED_EFFECT[seed] + (jitter if seed == 1 else 0.0)
    return pd.DataFrame({"step": [10, 20, 30], "wall_s": [1 / speed, 2 / speed, 3 / speed],
                         "val_bpd": [end + 0.6, end + 0.2, end], "test_bpd": [end + 0.6, end + 0.2, end]})


def write(root, notebook: str, tables: dict) -> None:
    out = root / "smoke" / notebook
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    (out / PROVENANCE).write_text(json.dumps({"notebook": notebook}))


def ablation_pairs(finals: dict, speed: dict | None = None, jitter: dict | None = None) -> pd.DataFrame:
    """The ablation's pairs table from {(permutation, coupling): final bits/dim}."""
    metrics = {key: {s: run(v, s, (speed or {}).get(key, 1.0), (jitter or {}).get(key, 0.0)) for s in SEEDS}
               for key, v in finals.items()}
    return ablation.ablation_pairs(metrics, ["reverse", "shuffle", "conv1x1", "rotation"], ["additive", "affine"])


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


def ablation_claims(tmp_path, pairs, cost=None, n_seeds=3):
    summary = pd.DataFrame([dict(permutation=p, coupling=c, n_seeds=n_seeds) for p in ORDERED
                            for c in ("additive", "affine")])
    write(tmp_path, "ablation", {"pairs": pairs, "summary": summary, "conv1x1_cost": cost_table() if cost is None
                                 else cost})
    return {c.claim: c for c in ablation.claims("smoke", tmp_path)}


ORDER = "1x1 convolution < shuffle < reverse in final NLL (Fig. 3)"
FASTER = "The learned 1x1 convolution converges faster than shuffle and reverse (Fig. 3)"
AFFINE = "Affine coupling reaches lower NLL than additive coupling (Fig. 3)"
COST = "The 1x1 convolution costs little: ~0.2% more parameters and ~7% more wall time (Sec. 5.1)"
ROTATION = "A learned 1x1 convolution beats a fixed random rotation (reviewers: ablate what makes Glow work)"
BARS = "Error bars over seeds (reviewers)"


def test_ordered_variants_confirm_every_claim_at_equal_steps(tmp_path):
    claims = ablation_claims(tmp_path, ablation_pairs(finals()))
    for text in (ORDER, FASTER, AFFINE, ROTATION):
        c = claims[text]
        assert c.verdict == CONFIRMED and c.n_seeds == 3 and "decided at equal steps" in c.evidence, text
    # the weakest confirmation decides: shuffle - reverse is -0.2, conv1x1 - shuffle -0.2 too; both exact
    assert claims[ORDER].difference == pytest.approx(-0.2)
    assert claims[AFFINE].difference == pytest.approx(-0.1)
    assert "Mean test bits/dim over the evaluations" in claims[FASTER].evidence
    assert claims[COST].verdict == CONFIRMED and claims[BARS].verdict == CONFIRMED


def test_a_reversed_pair_contradicts_and_a_noisy_one_is_inconclusive(tmp_path):
    swapped = dict(ORDERED, shuffle=3.5)                            # shuffle now worse than reverse
    claims = ablation_claims(tmp_path, ablation_pairs(finals(swapped)))
    c = claims[ORDER]
    assert c.verdict == CONTRADICTED and "by the comparison additive: shuffle - reverse" in c.evidence
    assert c.ci_low > 0
    noisy = ablation_pairs(finals(), jitter={("rotation", "additive"): -0.5, ("rotation", "affine"): -0.5})
    assert ablation_claims(tmp_path / "b", noisy)[ROTATION].verdict == INCONCLUSIVE


def test_a_slower_variant_can_lose_at_equal_time_while_the_steps_verdict_stands(tmp_path):
    slow = {key: 0.5 for key in finals() if key[0] == "conv1x1"}           # the 1x1 runs at half the speed
    pairs = ablation_pairs(finals(), speed=slow)
    c = ablation_claims(tmp_path, pairs)[ORDER]
    assert c.verdict == CONFIRMED                                           # decided at equal steps
    at_time = c.evidence.split("At equal training time (shown, not deciding): ")[1]
    assert "additive: conv1x1 - shuffle +0.400" in at_time and "contradicted" in at_time


def test_the_cost_claim_reads_counts_and_profiles(tmp_path):
    pairs = ablation_pairs(finals())
    assert ablation_claims(tmp_path, pairs, cost_table(0.05))[COST].verdict == CONTRADICTED
    assert ablation_claims(tmp_path / "b", pairs, cost_table(time_extras=(0.2, 0.01)))[COST].verdict == INCONCLUSIVE
    assert ablation_claims(tmp_path / "c", pairs, cost_table(time_extras=(0.2, 0.3)))[COST].verdict == CONTRADICTED
    c = ablation_claims(tmp_path / "d", pairs)[COST]
    assert "96,768 of 44,054,256" in c.evidence and "+0.220% against shuffle" in c.evidence
    assert "profile_0.json" in c.evidence and "+4.0%" in c.evidence


def test_too_few_seeds(tmp_path):
    pairs = ablation_pairs(finals())
    claims = ablation_claims(tmp_path, pairs[pairs.seed < 2], n_seeds=2)
    assert claims[ORDER].verdict == NOT_TESTABLE and claims[BARS].verdict == NOT_TESTABLE
    assert "2 seed(s); the test needs at least 3" in claims[ORDER].evidence


def test_decide_all_prefers_contradiction_then_not_testable_then_inconclusive():
    ok = Decision(CONFIRMED, -0.3, -0.5, -0.1, 3, "t")
    weak = Decision(CONFIRMED, -0.2, -0.4, -0.02, 3, "t")
    unsure = Decision(INCONCLUSIVE, -0.1, -0.3, 0.1, 3, "t")
    against = Decision(CONTRADICTED, 0.3, 0.1, 0.5, 3, "t")
    missing = Decision(NOT_TESTABLE, reason="no runs")
    assert ablation.decide_all({"a": ok, "b": weak}) == ("b", weak)
    assert ablation.decide_all({"a": ok, "b": unsure, "c": missing})[0] == "c"
    assert ablation.decide_all({"a": unsure, "b": missing, "c": against})[0] == "c"
    assert ablation.decide_all({"a": ok, "b": unsure})[0] == "b"


# ---------------------------------------------------------------------------------------------------- what_works
DEPTH = "What makes Glow work: more depth at a fixed parameter count, ActNorm and the learned prior each lower " \
        "bits/dim (reviewers: ablations of depth, ActNorm and the prior, with error bars)"
TIME = "The learned 1x1 convolution still beats shuffle and reverse at equal training time (reviewers: same " \
       "compute)"


def what_works_claims(tmp_path, variants: dict, ablation_finals: dict, conv_speed=1.0, miss=0.005):
    reference = what_works.reference_variant("smoke")
    metrics = {v: {s: run(b, s) for s in SEEDS} for v, b in variants.items()}
    pairs = what_works.paired_table(metrics, [(what_works.GROUP, v, reference, v, reference) for v in variants
                                              if v != reference])
    summary = pd.DataFrame([dict(variant=v, n_seeds=3, parameters_vs_reference=0.0 if v == reference else miss)
                            for v in variants])
    slow = {key: conv_speed for key in ablation_finals if key[0] == "conv1x1"}
    write(tmp_path, "what_works", {"pairs": pairs, "summary": summary,
                                   "ablation_pairs": ablation_pairs(ablation_finals, speed=slow)})
    return {c.claim: c for c in what_works.claims("smoke", tmp_path)}


def test_what_works_claims(tmp_path):
    helps = {"K=1": 3.4, "K=2": 3.0, "K=4": 2.8, "no_actnorm": 3.5, "standard_prior": 3.2}     # smoke: K=2 reference
    claims = what_works_claims(tmp_path, helps, finals())
    assert claims[DEPTH].verdict == CONFIRMED and "decided at equal steps" in claims[DEPTH].evidence
    assert "variants: no_actnorm - K=2 +0.500" in claims[DEPTH].evidence
    assert claims[TIME].verdict == CONFIRMED and "decided at equal training time" in claims[TIME].evidence
    hurts = dict(helps, standard_prior=2.9)                      # the standard prior does better
    assert what_works_claims(tmp_path / "b", hurts, finals())[DEPTH].verdict == CONTRADICTED
    # half as fast: at the shorter run's time the 1x1 has its first evaluation only, 0.6 above its last
    assert what_works_claims(tmp_path / "c", helps, finals(), conv_speed=0.5)[TIME].verdict == CONTRADICTED
    unmatched = what_works_claims(tmp_path / "d", helps, finals(), miss=0.05)[DEPTH]
    assert unmatched.verdict == NOT_TESTABLE and "misses the reference's parameter count" in unmatched.evidence


def test_claimed_directions_follow_the_reference_depth():
    assert what_works.claimed_direction("smoke", "K=4") == "lower"
    assert what_works.claimed_direction("smoke", "K=1") == "higher"
    assert what_works.claimed_direction("smoke", "no_actnorm") == "higher"
    with pytest.raises(ValueError, match="variant"):
        what_works.claimed_direction("smoke", "no_prior")


def test_the_1x1_time_beside_the_paper_compares_what_it_adds_not_its_share():
    """The paper's "~7% more wall time" is what the 1x1 adds against a model without it: share / (1 - share)."""
    profiled = pd.DataFrame([{"group": "conv1x1", "config": "x", "channels": 3, "image_size": 32, "levels": 3,
                              "depth": 8, "width": 512, "batch": 16, "precision": "fp32", "ms_per_step": 20.0,
                              "share": 0.2},
                             {"group": "actnorm", "config": "x", "channels": 3, "image_size": 32, "levels": 3,
                              "depth": 8, "width": 512, "batch": 16, "precision": "fp32", "ms_per_step": 5.0,
                              "share": 0.05}])
    table = ablation.conv1x1_time_beside_paper(profiled)
    assert list(table.source) == ["ours: profile_x.json",
                                  "paper: Kingma & Dhariwal 2018, Sec. 5.1 (CIFAR-10, 3x32x32, full scale, GPUs)"]
    assert table.extra.tolist() == pytest.approx([0.25, ablation.PAPER_CONV1X1["time"]])
    assert table.depth.iloc[1] == 32 and ablation.conv1x1_time(None).empty
