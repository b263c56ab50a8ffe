"""The claims page's baseline (glowlib.studies.claims): the verdicts a run lists changes against stay the same
over reruns until another is named, and a named one is read from git at that revision."""
import pandas as pd
import pytest

from glowlib.results import repo_root
from glowlib.studies import claims


def table(**verdicts) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "claim": f"claim {i}", "verdict": v, "test": "", "n_seeds": 0, "gate": "",
                          "evidence": "e"} for i, v in verdicts.items()])


def test_the_baseline_outlives_a_rerun(tmp_path):
    folder = tmp_path / "cpu" / "claims"
    assert claims.baseline_table("cpu", "", tmp_path) is None                   # nothing run yet
    folder.mkdir(parents=True)
    table(**{"a.x": "inconclusive", "a.y": "confirmed"}).to_csv(folder / "claims.csv", index=False)
    first = claims.baseline_table("cpu", "", tmp_path)
    assert set(first.baseline_from) == {"the run this one replaced"}
    now = table(**{"a.x": "confirmed", "a.y": "confirmed"})
    assert list(claims.verdict_changes(first, now).id) == ["a.x"]
    # the rerun recorded the baseline beside its claims: a second rerun still lists the change
    first.to_csv(folder / f"{claims.BASELINE}.csv", index=False)
    now.to_csv(folder / "claims.csv", index=False)
    again = claims.baseline_table("cpu", "", tmp_path)
    assert list(claims.verdict_changes(again, now).id) == ["a.x"]
    assert list(claims.verdict_changes(again, now).columns) == ["id", "claim", "before", "after",
                                                                "decided before by", "decided now by"]


def test_a_named_revision_is_read_from_git_and_a_bad_one_is_named():
    if not (repo_root() / ".git").exists():
        pytest.skip("not a git checkout")
    committed = claims.baseline_table("cpu", "HEAD")
    assert committed is not None and len(committed) and committed.baseline_from.iloc[0].startswith("commit ")
    with pytest.raises(ValueError, match="baseline='no-such-revision-x'"):
        claims.baseline_table("cpu", "no-such-revision-x")
    for bad in ("--output=/tmp/x", "HEAD; rm -rf /", 7):
        with pytest.raises(ValueError, match="must be '' or a git revision"):
            claims.check_parameters(profile="cpu", out_dir="", baseline=bad)


def test_the_verdicts_legend_covers_no_bar():
    import matplotlib.pyplot as plt
    from legible import LEGIBLE_PX, drawn_px, legends_over_bars
    verdicts = ["confirmed"] * 7 + ["contradicted"] * 3 + ["inconclusive"] * 2 + ["not testable at this scale"] * 3
    rows = table(**{f"p.{i}": v for i, v in enumerate(verdicts)}).assign(source="paper")
    fig = claims.plot_verdicts(pd.concat([rows, rows.assign(source="reviewers", id=rows.id + "r")]))
    assert not legends_over_bars(fig) and drawn_px(fig) >= LEGIBLE_PX
    plt.close(fig)
