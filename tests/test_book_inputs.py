"""What book/build.py reads from results/ before it publishes it, without a built book: every file name a
provenance record lists stays inside its results folder, claims.csv is checked row by row, and every text from
the results reaches the page as text (never as markup or HTML)."""
import json
import os
import runpy
import stat
from pathlib import Path

import pandas as pd
import pytest

from glowlib.results import PROVENANCE
from glowlib.studies import STUDIES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def build():
    return runpy.run_path(str(ROOT / "book" / "build.py"))


def _notebook(text="# A page\n\nGlow {cite}`kingma2018glow`."):
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}], "metadata": {},
            "nbformat": 4, "nbformat_minor": 5}


def _run(root: Path, nb: str, tables=(), figures=None, profile="smoke") -> Path:
    """A results folder of ``nb`` whose provenance lists ``tables`` (names as given)."""
    run = root / profile / nb
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{nb}.ipynb").write_text(json.dumps(_notebook()))
    (run / PROVENANCE).write_text(json.dumps({
        "notebook": nb, "start_time": "2025-01-01T00:00:00", "git_sha": "abc", "git_dirty": False,
        "device": "cpu", "hardware": {"cpu": "X", "cpu_count": 2}, "torch_version": "2", "wall_s": 60,
        "tables": {t: {} for t in tables}, "figures": figures or {}}))
    return run


def _render(markdown: str) -> str:
    """The HTML that MyST (Jupyter Book's Markdown) makes of ``markdown``, with the book's extensions."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser
    return create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath"}), RendererHTML).render(
        markdown)


# ------------------------------------------------------------------------------------------- file names
@pytest.mark.parametrize("entry", ["ABSOLUTE", "../secret.csv", "x/../../secret.csv", "..", "LINK"])
def test_the_build_refuses_a_table_name_that_leads_out_of_its_results_folder(build, tmp_path, entry):
    """An absolute name, '..' or a link out of the folder in provenance.json stops the build naming the file and
    the entry, and the file it names is neither read onto a page nor rewritten."""
    root, book = tmp_path / "results", tmp_path / "book"
    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n")
    secret.chmod(0o600)
    run = root / "smoke" / "bpd_table"
    run.mkdir(parents=True)
    if entry == "LINK":
        (run / "link.csv").symlink_to(secret)
    name = {"ABSOLUTE": str(secret), "LINK": "link.csv"}.get(entry, entry)
    _run(root, "bpd_table", tables=["ok.csv", name])
    (run / "ok.csv").write_text("x\n2\n")
    with pytest.raises(ValueError) as error:
        build["prepare_book"]("smoke", book, root)
    assert str(run / PROVENANCE) in str(error.value) and repr(name) in str(error.value)
    assert secret.read_text() == "x\n1\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600
    copied = book / "generated" / "_extra" / "tables" / "bpd_table"
    assert not copied.exists() or not any(copied.iterdir())


def test_the_command_line_names_a_bad_entry_in_one_line(build, tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    _run(root, "bpd_table", tables=["/etc/passwd"])
    monkeypatch.setenv("GLOWLIB_RESULTS", str(root))
    assert build["main"](["--profile", "smoke", "--book", str(tmp_path / "book")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "'/etc/passwd'" in err and PROVENANCE in err


def test_a_link_inside_the_folder_and_plain_names_are_copied(build, tmp_path):
    root, book = tmp_path / "results", tmp_path / "book"
    run = _run(root, "bpd_table", tables=["a.csv", "b.csv"])
    (run / "a.csv").write_text("x\n1\n")
    (run / "b.csv").symlink_to(run / "a.csv")
    build["prepare_book"]("smoke", book, root)
    copied = book / "generated" / "_extra" / "tables" / "bpd_table"
    assert sorted(p.name for p in copied.iterdir()) == ["a.csv", "b.csv"]


def test_the_build_and_the_recorder_confine_names_alike(build, tmp_path):
    from glowlib.results import confined
    (tmp_path / "in.csv").write_text("")
    (tmp_path / "out").symlink_to("/etc")
    (tmp_path / "sub").mkdir()
    for name in ["in.csv", "a b.csv", ".hidden.csv", "...", "/etc/passwd", "../x", "a/b", "..", ".", "", "out", "sub",
                 "a\\b", None, 7]:
        answers = []
        for check in (confined, build["confined"]):
            try:
                answers.append(check(tmp_path, name, "p.json"))
            except ValueError as e:
                answers.append(str(e))
        assert answers[0] == answers[1], name


# ------------------------------------------------------------------------------------------- claims.csv
GOOD = {"id": "C1", "claim": "1x1 < shuffle", "source": "paper", "verdict": "confirmed", "difference": -0.05,
        "ci_low": -0.08, "ci_high": -0.02, "n_seeds": 3, "test": "paired t-interval", "gate": "",
        "evidence": "per seed", "where": "ablation"}


def _claims(root: Path, rows, drop=()) -> Path:
    run = _run(root, "claims", tables=["claims.csv"])
    pd.DataFrame(rows).drop(columns=list(drop)).to_csv(run / "claims.csv", index=False)
    _run(root, "ablation")
    return run / "claims.csv"


def test_good_claims_reach_their_page(build, tmp_path):
    root, book = tmp_path / "results", tmp_path / "book"
    _claims(root, [GOOD, {**GOOD, "id": "C2", "verdict": "not testable at this scale", "difference": None,
                          "ci_low": None, "ci_high": None, "n_seeds": 0, "where": ""}])
    out = build["prepare_book"]("smoke", book, root)
    page = json.loads((out / "ablation.ipynb").read_text())
    answer = next("".join(c["source"]) for c in page["cells"] if c.get("id") == "book-answer")
    # the claim in words (its id is an identifier, kept for the claims page's folded details), decided here only
    assert build["md_text"](GOOD["claim"]) in answer and "-0.05 [-0.08, -0.02] over 3 seeds" in answer
    assert answer.count("\n- ") == 1, "the claim decided on no page stays off this one"


@pytest.mark.parametrize("change, drop, message", [
    ({}, ("where",), r"lacks the columns \['where'\]"),
    ({}, ("verdict", "ci_low"), r"lacks the columns \['verdict', 'ci_low'\]"),
    ({"verdict": "sort of"}, (), r"row 2 \(id 'C2'\): verdict='sort of' is not one of"),
    ({"difference": 0.5}, (), r"row 2 \(id 'C2'\): ci_low <= difference <= ci_high does not hold"),
    ({"ci_low": 0.1, "ci_high": -0.1, "difference": None}, (), r"row 2 .*ci_low <= difference <= ci_high"),
    ({"ci_high": None}, (), r"row 2 .*an interval needs both ends"),
    ({"difference": "inf"}, (), r"row 2 .*difference='inf' is not a finite number"),
    ({"ci_low": "nan"}, (), r"row 2 .*ci_low='nan' is not a finite number"),
    ({"n_seeds": "three"}, (), r"row 2 .*n_seeds='three' is not a number"),
    ({"n_seeds": 2.5}, (), r"row 2 .*n_seeds='2.5' is not a count"),
    ({"id": "C1"}, (), r"row 2 \(id 'C1'\): the id 'C1' is given to an earlier row"),
    ({"where": "ablaton"}, (), r"row 2 .*where='ablaton' names no study"),
    ({"claim": ""}, (), r"row 2 .*the id and the claim must not be empty"),
])
def test_a_bad_claims_table_stops_the_build_naming_the_file_and_the_row(build, tmp_path, change, drop, message):
    root, book = tmp_path / "results", tmp_path / "book"
    path = _claims(root, [GOOD, {**GOOD, "id": "C2", **change}], drop)
    with pytest.raises(ValueError, match=message) as error:
        build["prepare_book"]("smoke", book, root)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_builds_verdicts_and_claim_columns_are_the_packages(build):
    from glowlib.analysis.paired import EARLY
    from glowlib.analysis.stats import STATES
    from glowlib.studies.claims import COLUMNS
    assert tuple(build["VERDICTS"]) == STATES and build["EARLY"] == EARLY
    assert set(build["CLAIM_COLUMNS"]) <= set(COLUMNS), "the book needs a column the claims page does not write"


def test_the_committed_claims_pass_the_checks(build):
    for path in sorted((ROOT / "results").glob("*/claims/claims.csv")):
        assert build["read_claims"](path, STUDIES), path


# ------------------------------------------------------------------------------------------- escaping
HOSTILE = "<script>alert(1)</script> *bold* [link](http://x) {cite}`x` $x$ a|b & ```"


def test_texts_from_the_results_reach_the_html_as_text(build, tmp_path):
    """A claim, its evidence, a gate, a caption, a parameter and the hardware that hold markup show as written:
    the page's Markdown, rendered as MyST renders it, has no tag, link, role or emphasis from them."""
    root, book = tmp_path / "results", tmp_path / "book"
    _claims(root, [{**GOOD, "claim": HOSTILE, "evidence": "run `make notebook NB=ablation` " + HOSTILE,
                    "gate": HOSTILE, "test": HOSTILE}])
    out = build["prepare_book"]("smoke", book, root)
    answer = "".join(json.loads((out / "ablation.ipynb").read_text())["cells"][1]["source"]).splitlines()
    fences = [i for i, line in enumerate(answer) if line.lstrip().startswith("```")]
    assert fences == [0, len(answer) - 1], "a text closed the admonition's fence"
    html = _render("\n".join(answer[1:-1]))                      # the admonition's body, as Sphinx renders it
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<em>" not in html and "<a " not in html and "<strong>*bold*" not in html
    assert "<code>make notebook NB=ablation</code>" in html, "a code span in the evidence stays code"
    assert html.count("*bold*") == 4 and html.count("a|b") == 4

    figures = {"curves.png": {"what": HOSTILE}}
    captions = build["captions"](["curves"], figures, 1)
    assert "<script" not in _render(captions[0][1]) and "*bold*" in _render(captions[0][1])
    table = build["parameters_table"]({"dataset": "x"}, {"dataset": "<script>|`"})
    rendered = _render(table)
    assert "<script" not in rendered and rendered.count("<td>") == 3, "the value stays in its cell"

    run = _run(root, "samples")
    record = json.loads((run / PROVENANCE).read_text())
    record["hardware"]["cpu"] = HOSTILE
    (run / PROVENANCE).write_text(json.dumps(record))
    for text in (build["intro"]("smoke", root, STUDIES), build["costs"](root, STUDIES)):
        rendered = _render(text)
        assert "<script" not in rendered and "*bold*" in rendered


def test_md_text_keeps_plain_text_readable(build):
    md_text, md_code = build["md_text"], build["md_code"]
    assert md_text("paired t-interval over training seeds (95%, two-sided)") == \
        "paired t-interval over training seeds (95%, two-sided)"
    assert md_text("a\n\n- b") == "a - b", "a line break cannot start a list or a block"
    assert md_code("a``b") == "```a``b```" and md_code("`a") == "`` `a ``"


@pytest.mark.parametrize("change, message", [
    (lambda r: "{not json", "is not a JSON provenance record"),
    (lambda r: "[1, 2]", "the record is a list, not a JSON object"),
    (lambda r: {k: v for k, v in r.items() if k != "start_time"}, "start_time is None, not a text"),
    (lambda r: {**r, "wall_s": "slow"}, "wall_s is 'slow', not a number of seconds"),
    (lambda r: {**r, "hardware": {}}, "hardware lacks the cpu's name and cpu_count"),
    (lambda r: {**r, "models": {"m": {"wall_s": 3}}}, "models['m'] is not a model record with its cache key"),
    (lambda r: {**r, "models": {"m": {"key": "k", "finished": "yesterday"}}}, "models['m'].finished is 'yesterday'"),
])
def test_a_provenance_record_the_book_cannot_read_stops_it_naming_the_file_and_field(build, tmp_path, change,
                                                                                      message, capsys):
    run = _run(tmp_path / "results", "temperature")
    changed = change(json.loads((run / PROVENANCE).read_text()))
    (run / PROVENANCE).write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GLOWLIB_RESULTS", str(tmp_path / "results"))
        assert build["main"](["--profile", "smoke", "--book", str(tmp_path / "book")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / PROVENANCE}") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("text, message", [("{not json", "is not an executed notebook"),
                                           ('{"cells": 3}', "no list of cells")])
def test_an_executed_notebook_the_book_cannot_read_is_named(build, tmp_path, capsys, text, message):
    run = _run(tmp_path / "results", "temperature")
    (run / "temperature.ipynb").write_text(text)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GLOWLIB_RESULTS", str(tmp_path / "results"))
        assert build["main"](["--profile", "smoke", "--book", str(tmp_path / "book")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'temperature.ipynb'}") and message in err and err.count("\n") == 1
    assert "make notebook NB=temperature" in err


@pytest.mark.parametrize("drop, value, message", [("paper_images_seen", None, "lacks the columns ['paper_images_seen']"),
                                                 (None, "many", "column 'n_parameters' must hold positive numbers")])
def test_a_scale_table_the_intro_cannot_read_is_named(build, tmp_path, capsys, drop, value, message):
    run = _run(tmp_path / "results", "bpd_table")
    row = dict(dataset="digits", model_type="glow", n_parameters=100, paper_n_parameters=44_000_000,
               images_seen=3200, paper_images_seen=25_600_000, n_train=1297, full_n_train=1797)
    if drop:
        row.pop(drop)
    if value is not None:
        row["n_parameters"] = value
    pd.DataFrame([row]).to_csv(run / "scale.csv", index=False)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GLOWLIB_RESULTS", str(tmp_path / "results"))
        assert build["main"](["--profile", "smoke", "--book", str(tmp_path / "book")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'scale.csv'}") and message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------- departures
def test_the_departures_show_the_recorded_settings_beside_the_papers_and_fall_back_without_them(build, tmp_path):
    """The intro's departures read the bits/dim table's departures.csv (the profiles' settings) where it was
    recorded; older results give the recipe from their configs with the paper's "not recorded"; a departures.csv
    the intro cannot read is named."""
    from glowlib.studies import bpd_table
    root = tmp_path / "results"
    run = _run(root, "bpd_table")
    config = {"model_type": "glow", "data": {"dataset": "digits"},
              "model": {"n_levels": 2, "depth": 2, "width": 32, "precision": "fp32"},
              "train": {"optimizer": "adamax", "lr": 0.001, "batch_size": 32}}
    records = {"bpd_table": {"configs": {"glow-digits": config}}}
    pd.DataFrame([dict(dataset="digits", model_type="glow", n_parameters=100, paper_n_parameters=44_000_000,
                       images_seen=3200, paper_images_seen=25_600_000, n_train=1297, full_n_train=1797)]).to_csv(
        run / "scale.csv", index=False)
    old = build["departures_table"](root, "smoke", records, {})
    assert "| **optimiser and recipe** | Adamax at learning rate 0.001, batch 32 | not recorded |" in old
    assert "| **model size (parameters)** | 100; L=2, K=2, width 32 |" in old
    departures = bpd_table.departures("smoke", ["digits"])
    departures.to_csv(run / "departures.csv", index=False)
    new = build["departures_table"](root, "smoke", records, {})
    rendered = _render(new)
    for r in departures.itertuples():
        assert f"| **{build['md_text'](r.aspect, True)}** | {build['md_text'](r.ours, True)} | " \
               f"{build['md_text'](r.paper, True)} |" in new
    # the header, data, size, images seen and machine rows beside the recorded ones; L, K and width shown once
    assert "optimiser and recipe" not in new and rendered.count("<tr>") == len(departures) + 5
    assert "| **model size (parameters)** | 100 |" in new
    departures.assign(paper="").to_csv(run / "departures.csv", index=False)
    with pytest.raises(ValueError, match="departures.csv: every row must give an aspect, ours and the paper's"):
        build["departures_table"](root, "smoke", records, {})
    departures.drop(columns="paper").to_csv(run / "departures.csv", index=False)
    with pytest.raises(ValueError, match=r"departures.csv lacks the columns \['paper'\]"):
        build["departures_table"](root, "smoke", records, {})


def test_a_verdict_from_runs_still_falling_says_early_training_beside_it(build):
    early = {"evidence": "equal compute (counted FLOPs), glow+vardeq - glow; " + build["EARLY"],
             "test": "paired t-interval over training seeds (95%, two-sided)", "n_seeds": 3}
    scale = build["claim_scale"](early, None, {})
    assert scale.endswith(build["EARLY_WORDS"]) and "3 training seeds" in scale
    assert "early training" not in build["claim_scale"]({**early, "evidence": "equal compute"}, None, {})
