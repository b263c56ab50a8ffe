"""The claims page: every claim of the paper (Kingma & Dhariwal 2018) and every reviewer question, each with a
verdict computed from the results of the study that decides it (each study's ``claims``, gathered in the book's
order by ``glowlib.studies.all_claims``). The logic of ``notebooks/claims.py``."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from ..config import check_choice
from ..profiles import PROFILES
from . import all_claims
from .base import CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE, Claim
from .base import device  # noqa: F401  (the notebook calls it through this module)
from .base import check_values

NOTEBOOK = "claims"
PARAMETERS = {}


def check_parameters(**params) -> SimpleNamespace:
    """The notebook's parameters checked (``base.check_values``): only ``profile`` and ``out_dir``."""
    return SimpleNamespace(**check_values(NOTEBOOK, PARAMETERS, params))


def runs(profile: str) -> list:
    """None: the page reads the other notebooks' results."""
    return []


def claims(profile: str, root=None) -> list[Claim]:
    """None of its own: the page gathers the other studies' (:func:`claims_table`)."""
    return []


def claims_table(profile: str, root=None) -> pd.DataFrame:
    """Every claim of the paper and every reviewer question, each with a verdict computed from the other
    notebooks' results of ``profile``: one row per claim (id, claim, source, where, verdict, evidence)."""
    check_choice("profile", profile, PROFILES)
    table = pd.DataFrame([c.__dict__ for c in all_claims(profile, root)])
    table.insert(0, "id", [f"C{i + 1}" for i in range(len(table))])
    return table


def plot_verdicts(table: pd.DataFrame):
    """How many claims of the paper and of the reviews got each verdict."""
    import matplotlib.pyplot as plt
    counts = table.groupby(["source", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[v for v in (CONFIRMED, NOT_CONFIRMED, NOT_TESTABLE) if v in counts.columns])
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.5 * len(counts)))
    counts.plot.barh(stacked=True, ax=ax, color={CONFIRMED: "#1a7f37", NOT_CONFIRMED: "#cf222e",
                                                 NOT_TESTABLE: "#adb5bd"})
    ax.set(xlabel="claims", ylabel="")
    ax.legend(fontsize="small", loc="lower right")
    fig.suptitle("Verdicts")
    fig.tight_layout()
    return fig


def claims_html(table: pd.DataFrame) -> str:
    """The claims table as HTML, each claim linked to the page whose figure or table decides it."""
    import html
    colour = {CONFIRMED: "#1a7f37", NOT_CONFIRMED: "#cf222e", NOT_TESTABLE: "#6e7781"}

    def link(where):
        return f'<a href="{where}.html">{where}</a>' if isinstance(where, str) and where else "—"

    rows = "".join(
        f"<tr><td>{r.id}</td><td>{html.escape(r.claim)}</td><td>{r.source}</td>"
        f"<td style='color:{colour[r.verdict]};font-weight:bold'>{r.verdict}</td>"
        f"<td>{html.escape(r.evidence)}</td><td>{link(r.where)}</td></tr>"
        for r in table.itertuples())
    return ("<table class='claims'><thead><tr><th>id</th><th>claim</th><th>from</th><th>verdict</th>"
            f"<th>evidence (computed)</th><th>decided by</th></tr></thead><tbody>{rows}</tbody></table>")
