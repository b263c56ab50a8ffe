"""Attribute manipulation's claim (glowlib.studies.manipulation): the image is the unit of its standard errors
(each image's slope over its alphas, then their mean and t-interval over images), every verdict reachable."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from glowlib.analysis.claims import decide_claims
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, t_quantile
from glowlib.results import PROVENANCE
from glowlib.studies import manipulation

ALPHAS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])


def test_slopes_are_fitted_per_image_and_averaged_over_images():
    slopes = [0.2, 0.4, 0.3, 0.5]
    image = np.repeat(np.arange(4), len(ALPHAS))
    x = np.tile(ALPHAS, 4)
    y = np.concatenate([1.0 + s * ALPHAS for s in slopes])
    out = manipulation.image_slopes(image, x, y)
    half = t_quantile(0.95, 3) * np.std(slopes, ddof=1) / 2
    assert out["n_slopes"] == 4 and out["slope"] == pytest.approx(0.35)
    assert (out["slope_ci_low"], out["slope_ci_high"]) == pytest.approx((0.35 - half, 0.35 + half))
    # forty points from eight images are eight observations: repeating each image's points changes nothing
    twice = manipulation.image_slopes(np.concatenate([image, image]), np.concatenate([x, x]), np.concatenate([y, y]))
    assert twice["slope_ci_high"] == pytest.approx(out["slope_ci_high"])
    # an image left with one alpha (its other decodes overflowed) has no slope
    keep = ~((image == 0) & (x != 0))
    assert manipulation.image_slopes(image[keep], x[keep], y[keep])["n_slopes"] == 3


@pytest.mark.parametrize("slopes, verdict", [([0.2, 0.4, 0.3], CONFIRMED), ([-0.2, -0.4, -0.3], CONTRADICTED),
                                             ([0.5, -0.4, 0.1], INCONCLUSIVE), ([0.2, 0.4], NOT_TESTABLE)])
def test_claim_from_the_per_image_interval(tmp_path, slopes, verdict):
    out = tmp_path / "smoke" / "manipulation"
    out.mkdir(parents=True)
    rows = []
    for attribute in ("thickness", "slant"):
        image = np.repeat(np.arange(len(slopes)), len(ALPHAS))
        y = np.concatenate([s * ALPHAS for s in slopes])
        rows.append({"attribute": attribute, **manipulation.image_slopes(image, np.tile(ALPHAS, len(slopes)), y)})
    pd.DataFrame(rows).to_csv(out / "response.csv", index=False)
    (out / PROVENANCE).write_text(json.dumps({"notebook": "manipulation"}))
    [claim] = decide_claims(manipulation.CLAIMS, "smoke", tmp_path)[0].itertuples()
    assert claim.id == "manipulation.attribute_direction" and claim.verdict == verdict
    assert claim.test == manipulation.SLOPES_T                   # the image as the unit of the interval
    # the interval is the deciding attribute's (both are alike here: the first)
    assert claim.difference == pytest.approx(np.mean(slopes)) and not math.isnan(claim.ci_low)
    assert claim.evidence == ("thickness" if verdict != NOT_TESTABLE else "fewer images than the interval needs")


def test_unmeasurable_attributes_leave_the_claim_not_testable(tmp_path):
    out = tmp_path / "smoke" / "manipulation"
    out.mkdir(parents=True)
    (out / PROVENANCE).write_text(json.dumps({"notebook": "manipulation"}))     # a run without a response table
    [claim] = decide_claims(manipulation.CLAIMS, "smoke", tmp_path)[0].itertuples()
    assert claim.verdict == NOT_TESTABLE and "cannot be measured" in claim.evidence


def write_seeds(root, rows):
    out = root / "smoke" / "manipulation"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "seeds.csv", index=False)
    (out / PROVENANCE).write_text(json.dumps({"notebook": "manipulation"}))


@pytest.mark.parametrize("along, random, verdict", [
    ([0.12, 0.13, 0.125], [0.01, 0.02, 0.0], CONFIRMED),
    ([0.12, 0.13, 0.125], [0.2, 0.22, 0.21], CONTRADICTED),      # random directions move it more
    ([0.12, 0.13, 0.125], [0.12, 0.14, 0.11], INCONCLUSIVE),     # as much as random ones: no evidence
    ([0.12, 0.13], [0.01, 0.02], NOT_TESTABLE)])                # two seeds: no interval
def test_the_claim_is_decided_over_training_seeds_against_random_directions(tmp_path, along, random, verdict):
    rows = [{"attribute": a, "training_seed": s, "slope": x + (0.01 if a == "slant" else 0.0), "slope_random": r}
            for a in ("thickness", "slant") for s, (x, r) in enumerate(zip(along, random))]
    write_seeds(tmp_path, rows)
    [claim] = decide_claims(manipulation.CLAIMS, "smoke", tmp_path)[0].itertuples()
    assert claim.verdict == verdict
    if verdict == NOT_TESTABLE:
        return
    assert claim.n_seeds == 3 and claim.test.startswith(manipulation.SEEDS_T)
    # two attributes, each must hold: each interval at 97.5%, and the claim's is the lower one (thickness)
    assert "97.5%" in claim.test and "Bonferroni over 2 attributes" in claim.test
    diff = np.array(along) - np.array(random)
    half = t_quantile(0.975, 2) * diff.std(ddof=1) / math.sqrt(3)
    assert (claim.difference, claim.ci_low, claim.ci_high) == pytest.approx((diff.mean(), diff.mean() - half,
                                                                             diff.mean() + half))
    assert claim.evidence.startswith("thickness")


def test_a_random_direction_has_the_attributes_length_at_every_level_and_is_seeded():
    import torch
    direction = [torch.full((4, 4, 4), 0.5), torch.full((16, 2, 2), -2.0)]
    r = manipulation.random_direction(direction, seed=3)
    assert [t.shape for t in r] == [t.shape for t in direction]
    assert [t.norm().item() for t in r] == pytest.approx([t.norm().item() for t in direction])
    assert all(torch.equal(a, b) for a, b in zip(r, manipulation.random_direction(direction, seed=3)))
    assert not torch.equal(r[0], manipulation.random_direction(direction, seed=4)[0])
    cosine = (r[0].flatten() @ direction[0].flatten()) / (r[0].norm() * direction[0].norm())
    assert abs(cosine) < 0.6                                     # not the attribute's direction


def test_seeds_are_trained_only_where_the_claim_is_decided():
    assert manipulation.seeds_for("digits", 3) == 3 and manipulation.seeds_for("mnist5k", 3) == 3
    assert manipulation.seeds_for("cifar10", 3) == 1 and manipulation.seeds_for("celeba", 3) == 1
    assert len(manipulation.runs("cpu")) == 3 and {r.train.seed for r in manipulation.runs("cpu")} == {0, 1, 2}
