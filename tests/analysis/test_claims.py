"""The claim engine: a claim is declared once and decided by one function, which handles missing, left-out and stale
results the same way for every study; ids are stable and every study's claims are well formed."""
import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glowlib.analysis.claims import COLUMNS, ClaimSpec, Outcome, Results, decide_claims
from glowlib.analysis.paired import paired_outcome
from glowlib.analysis.stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_TESTABLE, VERDICTS, Decision
from glowlib.studies import STUDIES, claim_specs, study

ROOT = Path(__file__).resolve().parents[2]


def write_results(root: Path, profile: str, notebook: str, tables: dict) -> None:
    folder = root / profile / notebook
    folder.mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps({"notebook": notebook, "tables": list(tables)}))


def mean_of(results: Results) -> Outcome:
    t = results.table("alpha", "scores")
    return Outcome(Decision(CONFIRMED if t.score.mean() > 0 else CONTRADICTED), {"mean": t.score.mean()}, "scores")


SPEC = ClaimSpec("alpha.positive", "Scores are positive", "paper", mean_of)


def test_a_claim_is_decided_from_its_tables_and_keeps_its_numbers(tmp_path):
    write_results(tmp_path, "smoke", "alpha", {"scores": pd.DataFrame({"score": [1.0, 2.0]})})
    table, numbers = decide_claims([SPEC], "smoke", tmp_path)
    assert list(table.columns) == list(COLUMNS)
    row = table.iloc[0]
    assert (row.id, row.verdict, row["where"], row.evidence) == ("alpha.positive", CONFIRMED, "alpha", "scores")
    assert row.rerun == "make notebook NB=alpha PROFILE=smoke"
    assert numbers.to_dict("records") == [{"id": "alpha.positive", "name": "mean", "value": 1.5}]


def test_missing_results_make_a_claim_not_testable_naming_the_command(tmp_path):
    table, numbers = decide_claims([SPEC], "smoke", tmp_path)
    row = table.iloc[0]
    assert row.verdict == NOT_TESTABLE and "no results of alpha" in row.evidence
    assert row.rerun == "make notebook NB=alpha PROFILE=smoke" and numbers.empty


def test_a_left_out_study_has_no_verdict_but_says_it_was_not_run_and_why(tmp_path):
    table, numbers = decide_claims([SPEC], "cpu", tmp_path, {"alpha": "costs two hours"})
    row = table.iloc[0]
    assert row.verdict == NOT_RUN and row.verdict not in VERDICTS and numbers.empty
    assert row.evidence == "not run at the cpu profile: costs two hours" and np.isnan(row.difference)
    assert row.rerun == "make notebook NB=alpha PROFILE=cpu"
    # a study left out but run all the same (make notebook) is decided from its results
    write_results(tmp_path, "cpu", "alpha", {"scores": pd.DataFrame({"score": [1.0, 2.0]})})
    assert decide_claims([SPEC], "cpu", tmp_path, {"alpha": "costs two hours"})[0].iloc[0].verdict != NOT_RUN


def test_results_that_predate_a_table_are_stale_not_an_error(tmp_path):
    write_results(tmp_path, "smoke", "alpha", {"other": pd.DataFrame({"x": [1]})})
    table, _ = decide_claims([SPEC], "smoke", tmp_path)
    assert table.iloc[0].verdict == NOT_TESTABLE
    assert table.iloc[0].evidence == "the results of alpha predate scores.csv"


def test_a_claim_reading_another_notebook_needs_its_results(tmp_path):
    spec = ClaimSpec("alpha.with_beta", "Uses beta", "reviewers", mean_of, reads=("beta",))
    write_results(tmp_path, "smoke", "alpha", {"scores": pd.DataFrame({"score": [1.0]})})
    table, _ = decide_claims([spec], "smoke", tmp_path)
    assert table.iloc[0].verdict == NOT_TESTABLE and table.iloc[0].rerun.endswith("NB=beta PROFILE=smoke")


@pytest.mark.parametrize("bad", ["ablation", "ablation.", "C1", "a.b.c d", ".x"])
def test_ids_are_study_dot_name(bad):
    with pytest.raises(ValueError, match="must be '<study>.<name>'"):
        ClaimSpec(bad, "text", "paper", mean_of)


def test_unknown_source_and_repeated_ids_are_refused():
    with pytest.raises(ValueError, match="source="):
        ClaimSpec("alpha.x", "text", "blog", mean_of)
    with pytest.raises(ValueError, match="more than once"):
        decide_claims([SPEC, SPEC], "smoke", "/nonexistent")


def test_adding_a_claim_renumbers_nothing(tmp_path):
    write_results(tmp_path, "smoke", "alpha", {"scores": pd.DataFrame({"score": [1.0]})})
    first, _ = decide_claims([SPEC], "smoke", tmp_path)
    extra = ClaimSpec("alpha.aaa_first", "Declared before", "paper", mean_of)
    second, _ = decide_claims([extra, SPEC], "smoke", tmp_path)
    assert second.set_index("id").loc["alpha.positive"].equals(first.set_index("id").loc["alpha.positive"])


def pairs_of(cells: dict) -> pd.DataFrame:
    """A pairs table: {(group, a, b): [a - b per seed]}, the same at both bases (b's value 3.0)."""
    rows = []
    for (group, a, b), diffs in cells.items():
        for seed, d in enumerate(diffs):
            rows.append({"group": group, "a": a, "b": b, "seed": seed, "a_bpd_equal_steps": 3.0 + d,
                         "b_bpd_equal_steps": 3.0, "a_bpd_equal_compute": 3.0 + d, "b_bpd_equal_compute": 3.0})
    return pd.DataFrame(rows)


def test_a_general_claim_is_decided_on_the_effect_averaged_over_its_cells():
    # each cell alone is inconclusive (one seed goes the other way); their per-seed average is clearly below 0
    pairs = pairs_of({("additive", "affine", "additive"): [-0.9, -0.7, 0.1],
                      ("affine", "affine", "additive"): [0.0, -0.6, -0.9]})
    out = paired_outcome(pairs, [(g, "affine", "additive", "lower") for g in ("additive", "affine")], "equal_steps")
    assert out.decision.verdict == CONFIRMED
    assert math.isclose(out.decision.difference, -0.5)
    assert out.decided_by == "equal steps, affine - additive" and out.numbers["relations"] == 1
    assert "averaged over 2 cells, 95.0%" in out.decision.test
    for g in ("additive", "affine"):          # the per-cell numbers stay beside the averaged one
        assert out.numbers[f"equal_steps {g}: affine - additive ci_high"] > 0


def test_a_claim_of_several_relations_is_corrected_for_their_number():
    # b - c: mean -0.2, standard error 0.040: its 95% interval excludes 0 (half width 4.30 se), its 97.5% one,
    # Bonferroni's for two relations, does not (6.21 se)
    pairs = pairs_of({("g", "a", "b"): [-1.0, -1.001, -0.999], ("g", "b", "c"): [-0.27, -0.2, -0.13]})
    one = paired_outcome(pairs, [("g", "b", "c", "lower")], "equal_steps")
    two = paired_outcome(pairs, [("g", "a", "b", "lower"), ("g", "b", "c", "lower")], "equal_steps")
    assert one.decision.verdict == CONFIRMED
    assert two.decision.verdict == INCONCLUSIVE and two.decided_by == "equal steps, b - c"
    assert "Bonferroni over 2 relations" in two.decision.test and two.numbers["relations"] == 2
    assert two.numbers["b - c ci_low"] < one.numbers["b - c ci_low"] < one.numbers["b - c ci_high"] < 0


def test_contradicted_needs_a_corrected_interval_on_the_other_side():
    pairs = pairs_of({("g", "a", "b"): [-1.0, -1.001, -0.999], ("g", "b", "c"): [0.5, 0.501, 0.499]})
    out = paired_outcome(pairs, [("g", "a", "b", "lower"), ("g", "b", "c", "lower")], "equal_steps")
    assert out.decision.verdict == CONTRADICTED and out.decided_by == "equal steps, b - c"
    assert out.decision.ci_low > 0


def test_a_seed_missing_in_one_cell_leaves_the_seeds_every_cell_has():
    pairs = pairs_of({("x", "a", "b"): [-1.0, -1.1, -0.9], ("y", "a", "b"): [-1.0, -1.05]})
    out = paired_outcome(pairs, [("x", "a", "b", "lower"), ("y", "a", "b", "lower")], "equal_steps")
    assert out.decision.n_seeds == 2 and out.decision.verdict == NOT_TESTABLE


# ------------------------------------------------------------------------------------ every study's declarations
def test_every_declared_claim_is_well_formed_and_its_id_unique():
    specs = claim_specs()
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids)), "claim ids must be unique"
    for spec in specs:
        assert spec.study in STUDIES, f"{spec.id}: {spec.study} is not a study"
        assert spec in study(spec.study).CLAIMS, f"{spec.id} is declared outside its study"
        for nb in spec.reads:
            assert nb in STUDIES, f"{spec.id} reads {nb}, which is not a study"


def _decide_functions():
    for spec in claim_specs():
        path = Path(study(spec.study).__file__)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == spec.decide.__name__:
                yield spec, node


def test_decide_functions_build_no_sentences():
    found = [(spec.id, node) for spec, node in _decide_functions()]
    assert found, "no decide function found"
    for claim_id, node in found:
        formatted = [n.lineno for n in ast.walk(node) if isinstance(n, ast.JoinedStr)]
        assert not formatted, f"{claim_id}: f-strings at lines {formatted} of its decide function"


def test_every_claim_is_decided_on_empty_results_without_an_error(tmp_path):
    table, numbers = decide_claims(claim_specs(), "smoke", tmp_path)
    assert set(table.verdict) == {NOT_TESTABLE}
    assert table.rerun.str.startswith("make notebook NB=").all()
    assert set(table.verdict) <= set(VERDICTS) and numbers.empty


def test_the_committed_cpu_claims_decide_without_an_error():
    root = ROOT / "results"
    if not (root / "cpu" / "claims").is_dir():
        pytest.skip("no committed cpu results")
    table, numbers = decide_claims(claim_specs(), "cpu", root)
    assert len(table) == len(claim_specs())
    decided = table[table.verdict != NOT_TESTABLE]
    assert len(decided) and np.isfinite(numbers.value).all()
