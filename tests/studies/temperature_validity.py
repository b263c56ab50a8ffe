"""The temperature-validity study (glowlib.studies.temperature_validity): the importance-sampling estimator on
samplers that are exact by construction and on ones that are not, with known answers, and its claim: affine
against additive coupling's ESS/n, paired over training seeds (non-inferiority), never past a failed gate."""
import math

import pandas as pd
import pytest
import torch

from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.config import GlowConfig
from glowlib.models import Glow
from glowlib.studies import temperature_validity
from judged import claim_of, gates_of, write


def tiny_glow(perturb: bool = True, seed: int = 0, **config) -> Glow:
    """A digits-sized Glow (8x8, L=2, K=2, width 16), ActNorm initialised on random data, every parameter perturbed
    (zero-initialised layers would make every coupling the identity and every prior fixed: a test of nothing)."""
    torch.manual_seed(seed)
    model = Glow(GlowConfig(in_channels=1, image_size=8, n_levels=2, depth=2, width=16, **config)).double()
    model.initialize(torch.rand(64, 1, 8, 8, dtype=torch.float64) - 0.5)
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def ess(model, temperature, n=256, seed=0):
    w = temperature_validity.importance_weights(model, temperature, n, seed)
    return temperature_validity.validity_measures(w["log_p"], w["log_q"], temperature, model.config.n_dims), w


@pytest.mark.parametrize("learn_top", [False, True])
def test_additive_fixed_prior_sampler_is_exact(learn_top):
    model = tiny_glow(coupling="additive", learned_prior=False, learn_top=learn_top)
    assert temperature_validity.exact_by_construction(model.config)
    for t in (0.5, 0.7):
        m, w = ess(model, t)
        assert m["ess_fraction"] == pytest.approx(1.0, abs=1e-6)
        assert abs(m["kl_bits_per_dim"]) < 1e-9
        assert w["log_w"].std() < 1e-8 * w["log_w"].abs().mean()      # constant weights, not just a high ESS


@pytest.mark.parametrize("config", [dict(coupling="affine", learned_prior=False, learn_top=False),
                                    dict(coupling="affine"), dict(coupling="additive")])
def test_other_samplers_are_not_exact_at_reduced_temperature(config):
    model = tiny_glow(**config)
    assert not temperature_validity.exact_by_construction(model.config)
    m, _ = ess(model, 0.7)
    assert m["ess_fraction"] < 0.999
    assert m["kl_bits_per_dim"] > 0
    at_one, _ = ess(model, 1.0)                        # T = 1: the sampler is the model itself
    assert at_one["ess_fraction"] == pytest.approx(1.0, abs=1e-9)


def test_log_densities_match_the_model():
    model = tiny_glow(coupling="affine")
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64) - 0.5
    log_p, log_q = temperature_validity.log_densities(model, x, 1.0)
    torch.testing.assert_close(log_p, model.log_prob(x))
    torch.testing.assert_close(log_q, log_p)
    _, log_q_half = temperature_validity.log_densities(model, x, 0.5)
    assert torch.all(log_q_half != log_p)
    with pytest.raises(ValueError, match="> 0"):
        temperature_validity.log_densities(model, x, 0.0)


def test_validity_measures_known_answer():
    # weights w = (1, 1, 1, 4) (log p chosen with T = 1 and log q = 0): ESS = 49 / 19, over n = 4
    log_p = torch.tensor([0.0, 0.0, 0.0, math.log(4)], dtype=torch.float64)
    m = temperature_validity.validity_measures(log_p, torch.zeros(4, dtype=torch.float64), 1.0, n_dims=1)
    assert m["ess_fraction"] == pytest.approx(49 / 19 / 4)
    assert m["kl_bits_per_dim"] == pytest.approx((math.log(7 / 4) - math.log(4) / 4) / math.log(2))


def validity_rows(ess_affine, priors=("standard",)):
    rows = []
    for prior in priors:
        for coupling in ("additive", "affine"):
            for s in range(3):
                for t in (0.7, 1.0):
                    ess = 1.0 if coupling == "additive" or t == 1 else ess_affine + 0.01 * s
                    rows.append({"coupling": coupling, "prior": prior, "seed": s, "temperature": t,
                                 "ess_fraction": ess, "kl_bits_per_dim": 1 - ess,
                                 "exact_by_construction": coupling == "additive" and prior == "standard"})
    return pd.DataFrame(rows)


def test_temperature_validity_compares_affine_with_additive_by_seed(tmp_path):
    names = [temperature_validity.model_name(c, "standard", s) for c in ("additive", "affine") for s in range(3)]
    for ess, verdict in ((0.9, CONFIRMED), (0.002, CONTRADICTED)):
        write(tmp_path, "temperature_validity", validity=validity_rows(ess), gates=gates_of(*names))
        claim = claim_of(temperature_validity, tmp_path)
        assert claim.verdict == verdict and claim.n_seeds == 3 and claim.source == "reviewers"
        assert claim.difference == pytest.approx(ess + 0.01 - 1)              # affine minus additive, as reported
    write(tmp_path, "temperature_validity", validity=validity_rows(0.9), gates=gates_of(*names, fail=[names[-1]]))
    assert claim_of(temperature_validity, tmp_path).verdict == NOT_TESTABLE
    # decided on the standard prior, where additive coupling is exact, whatever the learned prior's rows say
    both = validity_rows(0.9, ("learned", "standard"))
    both.loc[(both.prior == "learned") & (both.coupling == "affine") & (both.temperature < 1), "ess_fraction"] = 0.01
    learned = [temperature_validity.model_name(c, "learned", s) for c in ("additive", "affine") for s in range(3)]
    write(tmp_path, "temperature_validity", validity=both, gates=gates_of(*names, *learned))
    claim = claim_of(temperature_validity, tmp_path)
    assert claim.verdict == CONFIRMED and claim.evidence == "standard"
    write(tmp_path, "temperature_validity", validity=validity_rows(0.9).query("coupling == 'affine'"),
          gates=gates_of(*names))
    assert claim_of(temperature_validity, tmp_path).verdict == NOT_TESTABLE


def test_a_prior_whose_additive_sampler_is_not_exact_is_not_decided(tmp_path):
    # with the learned prior both samplers sit at ESS/n's floor of 1/n: a difference of ESS/n within the margin
    # would "confirm" whatever the samplers do, so that prior gets no verdict, and alone it decides nothing
    learned = validity_rows(0.001, ("learned",))
    learned.loc[learned.temperature < 1, "ess_fraction"] = 0.001
    names = [temperature_validity.model_name(c, "learned", s) for c in ("additive", "affine") for s in range(3)]
    assert temperature_validity.decisions(learned, gates_of(*names)).empty
    write(tmp_path, "temperature_validity", validity=learned, gates=gates_of(*names))
    claim = claim_of(temperature_validity, tmp_path)
    assert claim.verdict == NOT_TESTABLE and "standard prior" in claim.evidence
    # the table's own column says which additive models are exact (here: it says the learned prior's are)
    learned["exact_by_construction"] = learned.coupling == "additive"
    assert temperature_validity.decisions(learned, gates_of(*names)).verdict.tolist() == [CONFIRMED]


def test_the_validity_figure_fits_the_books_column_two_panels_a_row():
    """ESS/n and the KL estimate side by side, as wide as the book's column, their smallest text drawn at least
    LEGIBLE_PX tall there (measured as the provenance records it: results.figure_facts); one legend under them."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    from glowlib.studies.base import COLUMN_INCHES
    fig = temperature_validity.plot_validity(validity_rows(0.8, priors=("standard", "learned")))
    assert len(fig.axes) == 2 and fig.get_size_inches()[0] <= COLUMN_INCHES and drawn_px(fig) >= LEGIBLE_PX
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)
    assert len(fig.legends[0].get_texts()) == 4                       # one line per (coupling, prior)
    plt.close(fig)
