"""The memorisation check's claim (glowlib.studies.nearest_neighbours): in both spaces the samples' median distance
to the training set against the test images', non-inferiority over sampling seeds, never past a failed gate."""
import pandas as pd

from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, NOT_TESTABLE
from glowlib.studies import nearest_neighbours
from judged import claim_of, gates_of, write


def summary_rows():
    return pd.DataFrame([{"space": sp, "sampling_seed": s, "median_sample_to_train": 5.0 + 0.1 * s,
                          "median_test_to_train": 5.0, "ratio": 1 + 0.02 * s} for sp in ("pixel", "feature")
                         for s in range(5)])


def test_samples_no_closer_than_test_images_in_both_spaces(tmp_path):
    summary = summary_rows()
    write(tmp_path, "nearest_neighbours", summary=summary, gates=gates_of("glow-mnist5k"))
    claim = claim_of(nearest_neighbours, tmp_path)
    assert claim.verdict == CONFIRMED and claim.source == "reviewers" and claim.n_seeds == 5
    assert claim.evidence == "pixel" and "sampling seeds" in claim.test
    write(tmp_path, "nearest_neighbours", summary=summary, gates=gates_of("glow-mnist5k", fail=["glow-mnist5k"]))
    claim = claim_of(nearest_neighbours, tmp_path)
    assert claim.verdict == NOT_TESTABLE and "pixel mean" in claim.gate
    copies = summary.assign(ratio=0.3)                                         # samples far closer than test images
    copies.loc[::2, "ratio"] = 0.32
    write(tmp_path, "nearest_neighbours", summary=copies, gates=gates_of("glow-mnist5k"))
    assert claim_of(nearest_neighbours, tmp_path).verdict == CONTRADICTED


def test_the_distances_fit_the_books_column_and_the_legend_covers_no_bar():
    import matplotlib.pyplot as plt
    import numpy as np
    from legible import LEGIBLE_PX, drawn_px, legends_over_bars
    rng = np.random.default_rng(0)
    table = pd.DataFrame([{"query": q, "space": sp, "query_index": i, "distance": rng.normal(5 + (q == "sample"), 1),
                           "train_index": i} for sp in ("pixel", "feature") for q in ("sample", "test")
                          for i in range(300)])
    fig = nearest_neighbours.plot_distances(table)
    assert not legends_over_bars(fig) and drawn_px(fig) >= LEGIBLE_PX
    plt.close(fig)
