"""The temperature study's claim (glowlib.studies.temperature): T = 0.7 against T = 1 over sampling seeds, precision
higher and recall lower, never past a failed sanity gate."""
import numpy as np
import pandas as pd
import pytest

from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE
from glowlib.studies import temperature
from judged import claim_of, gates_of, write


def temperature_rows(precision_low=0.8, recall_low=0.3, seeds=5, spread=0.01):
    """A temperature table: T in {0, 0.5, 0.7, 1}, ``seeds`` sampling seeds, T = 1 precision 0.5 and recall 0.6."""
    rng = np.random.default_rng(0)
    rows = []
    for t in (0.0, 0.5, 0.7, 1.0):
        for s in range(seeds):
            p, r = (precision_low, recall_low) if t < 1 else (0.5, 0.6)
            rows.append({"source": "model", "temperature": t, "sampling_seed": s,
                         "precision": p + spread * rng.standard_normal(), "recall": r + spread * rng.standard_normal(),
                         "frechet": 50.0 + t, "confidence": 0.9, "n": 500})
    rows.append({"source": "real vs real", "temperature": np.nan, "sampling_seed": 0, "precision": 0.9,
                 "recall": 0.9, "frechet": 3.0, "confidence": 0.95, "n": 500})
    return pd.DataFrame(rows)


def test_temperature_compares_t07_with_t1_over_sampling_seeds(tmp_path):
    d = temperature.decisions(temperature_rows(), gates_of("glow-mnist5k")).set_index("measure")
    assert list(d.index) == ["precision", "recall", "frechet"]
    assert (d.t_low == 0.7).all() and d.loc["precision", "n"] == 5            # T = 0.7, not a fit over T in [0, 1]
    assert d.loc["precision", "verdict"] == CONFIRMED and d.loc["recall", "verdict"] == CONFIRMED
    assert d.loc["precision", "difference"] == pytest.approx(0.3, abs=0.02)
    assert d.loc["precision", "real_vs_real"] == 0.9 and "sampling seeds" in d.loc["precision", "test"]
    write(tmp_path, "temperature", temperature=temperature_rows(), gates=gates_of("glow-mnist5k"))
    claim = claim_of(temperature, tmp_path)
    assert claim.id == "temperature.fidelity_for_diversity" and claim["where"] == "temperature"
    assert claim.source == "paper" and claim.verdict == CONFIRMED and claim.n_seeds == 5
    # the replicates are the sampler's seeds, not training seeds; both confirmed: the first measure's interval
    assert "sampling seeds" in claim.test and claim.evidence == "precision"
    assert claim.difference == pytest.approx(d.loc["precision", "difference"])
    # fidelity not raised at T = 0.7: the claim is contradicted, whatever the recall does
    write(tmp_path, "temperature", temperature=temperature_rows(precision_low=0.3), gates=gates_of("glow-mnist5k"))
    assert claim_of(temperature, tmp_path).verdict == CONTRADICTED
    # no trade at all: inconclusive
    write(tmp_path, "temperature", temperature=temperature_rows(0.5, 0.6, spread=0.05),
          gates=gates_of("glow-mnist5k"))
    assert claim_of(temperature, tmp_path).verdict == INCONCLUSIVE


def test_a_failed_gate_makes_the_claim_not_testable_naming_the_gate(tmp_path):
    write(tmp_path, "temperature", temperature=temperature_rows(),
          gates=gates_of("glow-mnist5k", fail=["glow-mnist5k"]))
    claim = claim_of(temperature, tmp_path)
    assert claim.verdict == NOT_TESTABLE and "glow-mnist5k: pixel mean of T=1 samples = 0.01" in claim.gate


def test_without_results_the_claim_is_not_testable(tmp_path):
    claim = claim_of(temperature, tmp_path)
    assert claim.verdict == NOT_TESTABLE and claim.rerun == "make notebook NB=temperature PROFILE=smoke"


def seeded_rows(offsets, precision_low=0.8, recall_low=0.3, seeds=5, spread=0.01) -> pd.DataFrame:
    """A table of several training seeds: seed k's values shifted by ``offsets[k]`` at both temperatures (a
    training seed's own level, cancelled by pairing), seeds beyond the first at 0.7 and 1 only."""
    frames = []
    for k, off in enumerate(offsets):
        rows = temperature_rows(precision_low, recall_low, seeds, spread)
        rows = rows[rows.source == "model"] if k else rows
        if k:
            rows = rows[rows.temperature.isin([0.7, 1.0])]
        frames.append(rows.assign(training_seed=k, precision=rows.precision + off, recall=rows.recall + off))
    return pd.concat(frames, ignore_index=True)


def test_with_several_training_seeds_they_are_the_replicates(tmp_path):
    table = seeded_rows([0.0, 0.05, -0.05])
    d = temperature.decisions(table, gates_of("glow-mnist5k")).set_index("measure")
    assert d.loc["precision", "n"] == 3 and "training seeds" in d.loc["precision", "test"]
    assert d.loc["precision", "verdict"] == CONFIRMED
    assert d.loc["precision", "difference"] == pytest.approx(0.3, abs=0.02)
    a, b = temperature.training_seed_means(table[table.source == "model"], 0.7, "precision")
    assert len(a) == 3 and a - b == pytest.approx([0.3, 0.3, 0.3], abs=0.02)
    # one seed whose T = 0.7 lowers precision: the three disagree, and three training seeds decide nothing
    mixed = seeded_rows([0.0, 0.0, 0.0])
    mixed.loc[(mixed.training_seed == 2) & (mixed.temperature == 0.7), "precision"] -= 0.7
    assert temperature.decisions(mixed, gates_of("glow-mnist5k")).set_index("measure").loc[
        "precision", "verdict"] == INCONCLUSIVE
    # any seed's failed gate stops the verdict
    gates = pd.concat([gates_of("glow-mnist5k"), gates_of("glow-mnist5k-seed2", fail=["glow-mnist5k-seed2"])])
    write(tmp_path, "temperature", temperature=table, gates=gates)
    assert claim_of(temperature, tmp_path).verdict == NOT_TESTABLE


def test_the_runs_are_the_figures_model_with_three_training_seeds():
    runs = temperature.runs("cpu")
    assert [r.train.seed for r in runs] == [0, 1, 2] and len({r.key() for r in runs}) == 3
    from glowlib.studies.base import shared_runs
    assert runs[0].key() == shared_runs("cpu", temperature.notebook_dataset("cpu", "temperature"))[0].key()
    assert {r.override(["train.seed=0"]).key() for r in runs} == {runs[0].key()}


def test_the_tradeoff_fits_the_books_column_two_panels_a_row():
    """Four panels, two a row, their smallest text drawn at least LEGIBLE_PX tall in the book's column; one legend
    under them, and the plane names the two compared temperatures."""
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px
    fig = temperature.plot_tradeoff(temperature_rows())
    panels = [ax for ax in fig.axes if ax.get_xlabel()]                  # the colour bar has no x label
    assert len(panels) == 4 and len({round(ax.get_position().x0, 2) for ax in panels}) == 2
    assert drawn_px(fig) >= LEGIBLE_PX
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in panels)
    assert sorted(t.get_text() for t in panels[3].texts) == ["T=0.7", "T=1"]
    plt.close(fig)


def ink_table(precision_move, recall_move):
    return pd.DataFrame([{"change": c, "ink_ratio": 1.05, "achieved_ink_ratio": 1.05, "measure": m, "real": 0.9,
                          "changed": 0.9 + move, "move": move}
                         for c in ("pixels scaled", "strokes thickened")
                         for m, move in (("precision", precision_move), ("recall", recall_move))])


def test_an_effect_within_what_the_samples_ink_change_moves_on_real_images_is_inconclusive(tmp_path):
    gates = gates_of("glow-mnist5k")
    small = temperature.decisions(temperature_rows(), gates, ink_table(0.01, -0.01)).set_index("measure")
    assert (small.loc[["precision", "recall"], "verdict"] == CONFIRMED).all()
    assert small.loc["precision", "ink_move"] == pytest.approx(0.01)
    # an ink change that moves precision by more than the effect's interval clears: the effect could be the ink
    large = temperature.decisions(temperature_rows(), gates, ink_table(0.5, -0.01)).set_index("measure")
    assert large.loc["precision", "verdict"] == INCONCLUSIVE and "ink" in large.loc["precision", "reason"]
    assert large.loc["recall", "verdict"] == CONFIRMED
    write(tmp_path, "temperature", temperature=temperature_rows(), gates=gates, ink_control=ink_table(0.5, -0.01))
    assert claim_of(temperature, tmp_path).verdict == INCONCLUSIVE


def test_the_ink_control_changes_real_images_by_the_samples_ink_ratio():
    import torch
    from glowlib.analysis import cached_classifier
    from glowlib.analysis.judging import real_halves
    from glowlib.data import load_dataset
    data = load_dataset("digits")
    reference, held = real_halves(data.test_images, data.test_labels, 150, seed=0)
    classifier = cached_classifier("digits")
    ink = temperature.ink_control(classifier, held, reference, 1.05)
    assert set(ink.change) == {"pixels scaled", "strokes thickened"} and set(ink.measure) == {"precision", "recall"}
    thick = ink[ink.change == "strokes thickened"].achieved_ink_ratio.iloc[0]
    assert thick == pytest.approx(1.05, abs=0.01)
    assert (ink.move.abs() <= 0.1).all()            # the measures follow shapes: a 5% ink change moves them little
    thin = temperature.ink_control(classifier, held, reference, 0.95)
    assert set(thin.change) == {"pixels scaled", "strokes thinned"}
    assert thin[thin.change == "strokes thinned"].achieved_ink_ratio.iloc[0] == pytest.approx(0.95, abs=0.01)
    assert torch.equal(held, held)                  # the held images are not changed in place
