"""The samples page (glowlib.studies.samples): which models it shows (the bits/dim table's rows and the longer
Glow run beside them) and its claim (``samples.CLAIMS``), never decided past a failed sanity gate."""
import pandas as pd

from glowlib.analysis.claims import decide_claims
from glowlib.analysis.stats import CONFIRMED, NOT_TESTABLE
from glowlib.studies import base, samples
from judged import claim_of, gates_of, write


def test_the_samples_page_shows_the_longer_glow_run_beside_the_tables_rows():
    shown = samples.sample_models("cpu", "mnist5k", base.TABLE_MODELS)
    # cpu compares no mnist5k rows: the figures' model is the only one, and it is the quality run
    assert [(label, run.key()) for label, _, run in shown] == [
        (samples.QUALITY, base.quality_run("cpu", "mnist5k").key())]
    fashion = samples.sample_models("cpu", "fashion_mnist", base.TABLE_MODELS)
    assert [label for label, _, _ in fashion] == base.table_models("cpu", "fashion_mnist") + [samples.QUALITY]
    assert fashion[-1][2].train.steps > fashion[0][2].train.steps
    assert samples.sample_models("cpu", "fashion_mnist", ["realnvp"])[-1][0] == "realnvp"   # glow not asked for
    assert [r.key() for r in samples.runs("smoke")] == [r.key() for r in base.table_runs("smoke")]


def sample_tables(tmp_path, fail=(), rows=("glow", "realnvp"), datasets=("digits",)):
    bpd = pd.DataFrame([{"dataset": d, "model_type": m} for d in datasets for m in ("glow", "realnvp")])
    shown = [*rows, samples.QUALITY]
    grids = pd.DataFrame([{"dataset": d, "model_type": m, "steps": 6000 if m == samples.QUALITY else 600,
                           "temperature": 0.7} for d in datasets for m in shown])
    quality = pd.DataFrame([{"dataset": d, "source": src, "model_type": m, "temperature": t,
                             "precision": 0.5 + 0.1 * i, "recall": 0.5, "frechet": 10.0}
                            for i, d in enumerate(datasets)
                            for src, m, t in ((samples.REAL_VS_REAL, "", float("nan")),
                                              *(("model", m, 0.7) for m in shown))])
    write(tmp_path, "bpd_table", bpd=bpd)
    write(tmp_path, "samples", samples=grids, quality=quality,
          gates=gates_of(*(f"{m}-{d}" for d in datasets for m in ("glow", "realnvp", "glow-quality")), fail=fail))
    _, numbers = decide_claims(samples.CLAIMS, "smoke", tmp_path)
    return claim_of(samples, tmp_path), dict(zip(numbers.name, numbers.value))


def test_the_samples_claim_names_the_failed_gate_and_counts_the_longer_runs_beside(tmp_path):
    claim, numbers = sample_tables(tmp_path, fail=["glow-digits"])
    assert claim.verdict == NOT_TESTABLE and claim.gate.startswith("glow-digits: pixel mean")
    assert numbers["longer runs failing a gate"] == 0                       # the longer Glow run passes
    claim, numbers = sample_tables(tmp_path / "b", fail=["glow-digits", "glow-quality-digits"])
    assert claim.verdict == NOT_TESTABLE and numbers["longer runs failing a gate"] == 1


def test_the_samples_claim_is_judged_on_the_datasets_whose_rows_all_pass_their_gates(tmp_path):
    both = ("digits", "fashion_mnist")
    # Fashion-MNIST's Glow fails a gate: the digits' baselines and Glow pass every gate and decide the claim
    claim, numbers = sample_tables(tmp_path, fail=["glow-fashion_mnist"], datasets=both)
    assert claim.verdict == CONFIRMED and claim.evidence.endswith("judged on digits")
    assert numbers["rows failing a gate"] == 1 and numbers["datasets judged"] == 1 and numbers["rows with grids"] == 4
    assert numbers["realnvp digits precision"] == 0.5 and "realnvp fashion_mnist precision" not in numbers
    # a failed baseline takes its dataset out as a failed Glow does; with both datasets out, nothing is judged
    claim, numbers = sample_tables(tmp_path / "b", fail=["glow-fashion_mnist", "realnvp-digits"], datasets=both)
    assert claim.verdict == NOT_TESTABLE and numbers["datasets judged"] == 0
    assert "realnvp-digits: pixel mean" in claim.gate and "glow-fashion_mnist: pixel mean" in claim.gate
    # the longer Glow run is shown beside the rows but is not a row: its failure decides nothing
    claim, numbers = sample_tables(tmp_path / "c", fail=["glow-quality-digits"])
    assert claim.verdict == CONFIRMED and numbers["longer runs failing a gate"] == 1


def test_every_row_sampled_and_every_gate_passed_confirms(tmp_path):
    claim, numbers = sample_tables(tmp_path)
    assert claim.verdict == CONFIRMED and numbers["rows with grids"] == 2
    assert numbers["glow digits precision"] == 0.5 and numbers["digits precision real vs real"] == 0.5
    claim, _ = sample_tables(tmp_path / "b", rows=("glow",))                 # realnvp has no grid
    assert claim.verdict == NOT_TESTABLE and "has no samples" in claim.evidence


def test_the_samples_page_uses_only_the_four_verdicts(tmp_path):
    from pathlib import Path
    notebook = Path(samples.__file__).parents[2] / "notebooks" / "samples.py"
    for text in (Path(samples.__file__).read_text(), notebook.read_text()):
        assert "NOT_CONFIRMED" not in text and "not confirmed" not in text.lower()
    table, _ = decide_claims(samples.CLAIMS, "smoke", tmp_path)
    assert set(table.verdict) == {NOT_TESTABLE} and set(table.source) <= {"paper", "reviewers", "users"}


def test_the_grids_figure_fits_the_books_column_four_grids_a_row():
    """Every grid, at most four a row, each dataset starting a row of its own, as wide as the book's column, the
    smallest text drawn at least LEGIBLE_PX tall there (measured as the provenance records it: results.
    figure_facts), and no panel's title running into its neighbour's."""
    import matplotlib.pyplot as plt
    import numpy as np
    from legible import LEGIBLE_PX, drawn_px, overlapping
    from glowlib.studies.base import COLUMN_INCHES
    shown = {"mnist5k": [samples.QUALITY], "fashion_mnist": ["glow", "realnvp", samples.QUALITY],
             "digits": ["glow", "realnvp"]}
    table = pd.DataFrame([{"dataset": d, "model_type": m, "temperature": t, "image": f"samples_{d}_{m}_T{t:g}.png"}
                          for d, models in shown.items() for m in models for t in (0.7, 1.0)])
    images = {name.removesuffix(".png"): np.zeros((58, 58), np.uint8) for name in table.image}
    fig = samples.plot_grids(images, table, rows="dataset", cols=["model_type", "temperature"])
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == len(table) and fig.axes[0].get_title().splitlines() == [
        "mnist5k", f"model_type={samples.QUALITY}", "temperature=0.7"]
    rows = {}
    for ax in drawn:
        rows.setdefault(round(ax.get_position().y0, 2), []).append(ax.get_title().splitlines()[0])
    assert [len(r) for r in rows.values()] == [2, 4, 2, 4] and all(len(set(r)) == 1 for r in rows.values())
    assert fig.get_size_inches()[0] <= COLUMN_INCHES and drawn_px(fig) >= LEGIBLE_PX
    assert not overlapping([ax.title for ax in drawn])
    plt.close(fig)
