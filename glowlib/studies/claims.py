"""The claims page: every claim of the paper (Kingma & Dhariwal 2018) and every reviewer question, each with a
verdict computed from the results of the study that decides it (each study's ``CLAIMS``, decided in the book's
order by ``glowlib.studies.all_claims``). The logic of ``notebooks/claims.py``."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from ..config import check_choice
from ..results import results_dir
from ..profiles import PROFILES
from ..analysis.claims import COLUMNS as CLAIM_COLUMNS
from . import all_claims, left_out
from .base import CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_TESTABLE, STATES
from .base import device, publish  # noqa: F401  (the notebook calls them through this module)
from .base import check_values

NOTEBOOK = "claims"
BASELINE = "baseline"           # the recorded table of the verdicts a run is compared with (baseline.csv)


def revision(name, value):
    """"" or a git revision (a commit, a tag, ``HEAD~3``): letters, digits and ``~^._/-`` only, so that it can
    only ever name a revision."""
    if not isinstance(value, str) or (value and (value.startswith("-") or not all(
            c.isalnum() or c in "~^._/-" for c in value))):
        raise ValueError(f"{name}={value!r} must be '' or a git revision such as a commit hash, a tag or HEAD~1")
    return value


# baseline: "" keeps comparing with the baseline the last run recorded (at first: the claims it replaced); a git
# revision compares with the claims.csv committed there, e.g. "-p baseline v0.3.0"
PARAMETERS = {"baseline": revision}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``): ``profile``, ``out_dir`` and ``baseline``."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """None: the page reads the other notebooks' results."""
    return []


CLAIMS = ()          # none of its own: the page gathers every study's (:func:`claims_table`)
COLUMNS = CLAIM_COLUMNS
COLOURS = {CONFIRMED: "#1a7f37", CONTRADICTED: "#cf222e", INCONCLUSIVE: "#9a6700", NOT_TESTABLE: "#6e7781",
           NOT_RUN: "#afb8c1"}


def claims_table(profile: str, root=None, left_out_reasons: dict | None = None) -> pd.DataFrame:
    """Every claim of the paper and every reviewer question, each with a verdict computed from the other
    notebooks' results of ``profile``: one row per claim in :data:`COLUMNS`, keyed by its stable id."""
    return claims_and_numbers(profile, root, left_out_reasons)[0]


def claims_and_numbers(profile: str, root=None, left_out_reasons: dict | None = None) -> tuple:
    """:func:`claims_table` and the numbers each claim rests on (one row per claim and named number); a study the
    profile leaves out gives its reason from ``left_out_reasons`` (the notebook passes ``glowlib.plan``'s
    ``costed_left_out``, which leads each with its cost), else ``studies.left_out``'s."""
    check_choice("profile", profile, PROFILES)
    return all_claims(profile, root, left_out_reasons)


def verdict_counts(table: pd.DataFrame) -> dict:
    """The page's values: how many claims there are, how many got each verdict and how many were not run."""
    counts = table.verdict.value_counts()
    names = {CONFIRMED: "n_confirmed", CONTRADICTED: "n_contradicted", INCONCLUSIVE: "n_inconclusive",
             NOT_TESTABLE: "n_not_testable", NOT_RUN: "n_not_run"}
    return {"n_claims": len(table), **{name: int(counts.get(v, 0)) for v, name in names.items()}}


def correction_counts(numbers: pd.DataFrame) -> dict:
    """The page's values on multiple comparisons: how many claims paired comparisons decide, how many of them rest
    on more than one relation (their intervals Bonferroni-corrected: ``analysis.paired.paired_outcome``), and the
    relations in all."""
    relations = numbers[numbers.name == "relations"].value if len(numbers) else pd.Series(dtype=float)
    return {"n_paired_claims": len(relations), "n_corrected": int((relations > 1).sum()),
            "n_relations": int(relations.sum())}


def left_out_table(profile: str) -> pd.DataFrame:
    """The studies ``profile`` leaves out, with the reason (the book's pages for them say why)."""
    skipped = left_out(profile)
    return pd.DataFrame({"study": list(skipped), "reason": list(skipped.values())}, columns=["study", "reason"])


def previous_table(profile: str, root=None) -> pd.DataFrame | None:
    """The claims table of this page's last complete run at ``profile`` (the published ``claims.csv``, which a
    new run replaces only when it succeeds), if any."""
    path = results_dir(profile, NOTEBOOK, root) / "claims.csv"
    return pd.read_csv(path) if path.is_file() else None


def baseline_table(profile: str, baseline: str = "", root=None) -> pd.DataFrame | None:
    """The verdicts a run at ``profile`` is compared with, with a ``baseline_from`` column saying where they came
    from. ``baseline=""``: the baseline the last complete run recorded (``baseline.csv``), so that rerunning the
    page keeps listing every change since that baseline; where there is none, the claims that run published. A git
    revision: the ``claims.csv`` committed at it (ValueError naming the revision where git has none there)."""
    folder = results_dir(profile, NOTEBOOK, root)
    if not baseline:
        kept = folder / f"{BASELINE}.csv"
        if kept.is_file():
            return pd.read_csv(kept)
        previous = previous_table(profile, root)
        return None if previous is None else previous.assign(baseline_from="the run this one replaced")
    import io
    import subprocess
    from ..results import repo_root
    path = f"results/{profile}/{NOTEBOOK}/claims.csv"
    found = subprocess.run(["git", "show", f"{baseline}:{path}"], cwd=repo_root(), capture_output=True, text=True)
    if found.returncode != 0:
        raise ValueError(f"baseline={baseline!r}: git has no {path} at that revision ({found.stderr.strip()}); "
                         "name a commit where the claims page was committed, or '' for the last run's baseline")
    commit = subprocess.run(["git", "rev-parse", "--short=10", baseline], cwd=repo_root(), capture_output=True,
                            text=True).stdout.strip()
    return pd.read_csv(io.StringIO(found.stdout)).assign(baseline_from=f"commit {commit}")


def _basis(row) -> str:
    """How a verdict was decided, in a few words: the test and its seeds, a failed gate, or the evidence."""
    test = row.get("test")
    if isinstance(test, str) and test:
        return f"{test}, {int(row.get('n_seeds') or 0)} seeds"
    gate = row.get("gate")
    if isinstance(gate, str) and gate:
        return f"failed gate: {gate}"
    return str(row.get("evidence", ""))[:240]


def verdict_changes(previous: pd.DataFrame | None, table: pd.DataFrame) -> pd.DataFrame:
    """Each claim whose verdict differs from the previous run's, matched by its stable id (a previous table of
    positional ids, ``C1``, ``C2``, ..., is matched by the claim's text instead), with what it was, what it is, and
    how each was decided, so a reader sees why it changed."""
    columns = ["id", "claim", "before", "after", "decided before by", "decided now by"]
    if previous is None or not {"id", "claim", "verdict"} <= set(previous.columns):
        return pd.DataFrame(columns=columns)
    previous = previous.drop(columns="baseline_from", errors="ignore")
    positional = previous.id.astype(str).str.fullmatch(r"C\d+").all()
    key = "claim" if positional else "id"
    before = {r[key]: r for r in previous.to_dict("records")}
    rows = [{"id": r["id"], "claim": r["claim"], "before": before[r[key]]["verdict"], "after": r["verdict"],
             "decided before by": _basis(before[r[key]]), "decided now by": _basis(r)}
            for r in table.to_dict("records") if r[key] in before and before[r[key]]["verdict"] != r["verdict"]]
    return pd.DataFrame(rows, columns=columns)


def plot_verdicts(table: pd.DataFrame):
    """How many claims of the paper, the reviews and the users' requests got each verdict."""
    import matplotlib.pyplot as plt
    counts = table.groupby(["source", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[v for v in STATES if v in counts.columns])
    fig, ax = plt.subplots(figsize=(6, 1.6 + 0.5 * len(counts)), layout="constrained")
    counts.plot.barh(stacked=True, ax=ax, color=COLOURS)
    ax.set(xlabel="claims", ylabel="")
    ax.get_legend().remove()
    fig.legend(fontsize="small", loc="outside lower center", ncol=2)   # under the bars, never over one
    fig.suptitle("Verdicts")
    return fig


def claims_html(table: pd.DataFrame) -> str:
    """The claims table as a plain HTML table of class ``claims`` (escaped), for the notebook itself; the book shows
    its own, narrower rendering of ``claims.csv`` in its place."""
    columns = ["id", "claim", "source", "verdict", "difference", "ci_low", "ci_high", "n_seeds", "evidence", "rerun"]
    return table[columns].to_html(classes="claims", index=False, na_rep="—", float_format="{:+.3g}".format)
