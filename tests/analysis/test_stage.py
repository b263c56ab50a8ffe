"""Whether the runs behind a claim about final NLL have flattened (analysis.paired.still_falling), and the label a
verdict then carries."""
import math

import pandas as pd

from glowlib.analysis.claims import Outcome
from glowlib.analysis.paired import EARLY, FLAT_DROP, still_falling, with_stage
from glowlib.analysis.stats import CONFIRMED, Decision


def curve(variant, seed, vals):
    steps = [100 * (i + 1) for i in range(len(vals))]
    return pd.DataFrame({"variant": variant, "seed": seed, "step": steps, "split": "val", "bpd": vals})


def test_a_run_still_falling_over_its_last_quarter_marks_the_verdict_early():
    flat = curve("a", 0, [5.0, 4.0, 3.5, 3.4, 3.4, 3.4, 3.4, 3.4])            # settled by three quarters
    falling = curve("b", 0, [5.0, 4.5, 4.2, 4.0, 3.9, 3.8, 3.7, 3.6])         # 0.2 over its last quarter
    stage = still_falling(pd.concat([flat, falling]), ["variant"])
    assert stage["runs"] == 2 and stage["runs still falling"] == 1
    assert math.isclose(stage["largest validation drop, last quarter"], 3.8 - 3.6)
    out = with_stage(Outcome(Decision(CONFIRMED), {"x": 1.0}, "equal steps, a - b"), stage)
    assert out.decided_by == "equal steps, a - b; " + EARLY and out.numbers["x"] == 1.0
    settled = with_stage(Outcome(Decision(CONFIRMED), {}, "equal steps"), still_falling(flat, ["variant"]))
    assert settled.decided_by == "equal steps"


def test_a_rise_or_a_drop_within_the_criterion_counts_as_flat_and_a_nonfinite_one_does_not():
    rising = curve("a", 0, [5.0, 4.0, 3.5, 3.4, 3.45, 3.5, 3.55, 3.6])       # overfitting: flat by this rule
    small = curve("a", 1, [5.0, 4.0, 3.5, 3.4, 3.4, 3.4, 3.4, 3.4 - FLAT_DROP / 2])
    assert still_falling(pd.concat([rising, small]), ["variant"])["runs still falling"] == 0
    broken = curve("a", 2, [5.0, 4.0, 3.5, 3.4, 3.4, 3.4, float("nan"), 3.4])
    assert still_falling(broken, ["variant"])["runs still falling"] == 1


def test_a_pairs_table_read_back_from_its_csv_is_summarised_with_its_untimed_pairs(tmp_path):
    """An equal-compute pair without runs at one budget has no clock: "" in the table, NaN in its CSV read back
    (the what_works page reads the ablation's pairs.csv); each comparison then names the clock it was timed on,
    if any."""
    import math
    import pandas as pd
    from glowlib.analysis.paired import pair_summary
    rows = []
    for b, clock in (("reverse", "cpu_s"), ("shuffle", "")):
        for seed in range(3):
            rows.append({"group": "affine", "a": "conv1x1", "b": b, "seed": seed, "clock": clock,
                         "a_bpd_equal_steps": 5.0 + seed / 10, "b_bpd_equal_steps": 5.2 + seed / 9,
                         "a_steps": 30, "b_steps": 30, "a_steps_equal_compute": 30, "b_steps_equal_compute": 30,
                         "a_bpd_equal_compute": 5.0 + seed / 10 if clock else math.nan,
                         "b_bpd_equal_compute": 5.2 + seed / 9 if clock else math.nan,
                         "a_total_s": 10.0 if clock else math.nan, "b_total_s": 12.0 if clock else math.nan})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    summary = pair_summary(pd.read_csv(tmp_path / "pairs.csv")).set_index(["b", "basis"])
    assert summary.clock.to_dict() == {("reverse", "equal_steps"): "", ("reverse", "equal_compute"): "cpu_s",
                                       ("shuffle", "equal_steps"): "", ("shuffle", "equal_compute"): ""}
