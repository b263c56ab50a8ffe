"""Claims as data, decided by one engine.

A study declares each claim it decides once, where the study lives (``CLAIMS`` in ``glowlib.studies.<study>``), as
a :class:`ClaimSpec`: a stable id ``<study>.<name>``, the claim's text, where it comes from, the other notebooks
whose results it reads, and a ``decide`` function. ``decide`` reads recorded tables through :class:`Results` and
returns an :class:`Outcome`: a ``stats.Decision`` (verdict, paired difference and interval, test, failed gate, why
not testable) and a dict of named numbers. It builds no sentence: the page that shows a claim explains it.

:func:`decide_claims` does for every claim what each study once repeated: results missing at the profile (or the
study left out of it), a table a claim reads missing from older results, and the row of the claims table. The id
never depends on a claim's position, so adding or renaming a claim renumbers nothing, and two runs of the claims
page are compared by id.
"""
from __future__ import annotations

import math
from numbers import Real
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..results import has_results, read_table, results_dir
from .stats import NOT_RUN, NOT_TESTABLE, VERDICTS, Decision

# Where a claim comes from: the Glow or MaCow paper itself, their reviews, or what users of the peer repositories
# ask for (a question the paper never answered is not the paper's claim)
SOURCES = ("paper", "reviewers", "users")
# the claims table's columns, in order: the decision's numbers in their own columns, one short line of evidence
# (which comparison decided, or why a claim is not testable), the page that explains it and the command that
# reruns that page
COLUMNS = ("id", "claim", "source", "verdict", "difference", "ci_low", "ci_high", "n_seeds", "test", "gate",
           "evidence", "where", "rerun")
NUMBER_COLUMNS = ("id", "name", "value")


class Stale(LookupError):
    """A table a claim reads is missing from its notebook's results: they were recorded by an older glowlib."""

    def __init__(self, notebook: str, name: str, column: str = ""):
        super().__init__(f"{notebook}/{name}.csv" + (f" column {column}" if column else ""))
        self.notebook, self.name, self.column = notebook, name, column

    @property
    def what(self) -> str:
        """What the results lack, in words: ``pairs.csv`` or ``the column x of pairs.csv``."""
        return f"the column {self.column} of {self.name}.csv" if self.column else f"{self.name}.csv"


@dataclass(frozen=True)
class Outcome:
    """What ``decide`` returns: the decision and the numbers it rests on (name -> value), and which comparison or
    cell decided it (a short label, e.g. ``"equal_steps affine: shuffle - reverse"``)."""

    decision: Decision
    numbers: Mapping[str, float] = field(default_factory=dict)
    decided_by: str = ""


@dataclass(frozen=True)
class ClaimSpec:
    """One claim, declared once. ``reads``: notebooks besides the claim's own study whose results it needs."""

    id: str
    text: str
    source: str
    decide: Callable[["Results"], Outcome]
    reads: tuple[str, ...] = ()

    def __post_init__(self):
        study, _, name = self.id.partition(".")
        if not (study.isidentifier() and name.isidentifier()):
            raise ValueError(f"claim id {self.id!r} must be '<study>.<name>', e.g. 'ablation.permutation_order'")
        if self.source not in SOURCES:
            raise ValueError(f"claim {self.id}: source={self.source!r} must be one of {SOURCES}")
        if not self.text.strip():
            raise ValueError(f"claim {self.id} has no text")

    @property
    def study(self) -> str:
        return self.id.partition(".")[0]


class Results:
    """The recorded tables of one profile, read on demand (``results/<profile>/<notebook>/<name>.csv``)."""

    def __init__(self, profile: str, root=None):
        self.profile, self.root = profile, root
        self._cache = {}

    def table(self, notebook: str, name: str, columns=()) -> pd.DataFrame:
        """A recorded table; :class:`Stale` where the notebook's results predate it or one of ``columns``."""
        key = (notebook, name)
        if key not in self._cache:
            if not (results_dir(self.profile, notebook, self.root) / f"{name}.csv").is_file():
                raise Stale(notebook, name)
            self._cache[key] = read_table(self.profile, notebook, name, self.root)
        table = self._cache[key]
        for column in columns:
            if len(table) and column not in table:
                raise Stale(notebook, name, column)
        return table

    def optional(self, notebook: str, name: str) -> pd.DataFrame | None:
        """A recorded table, or None where the notebook's results predate it."""
        try:
            return self.table(notebook, name)
        except Stale:
            return None


def rerun_command(notebook: str, profile: str) -> str:
    return "make notebook NB=" + notebook + " PROFILE=" + profile


def not_testable(reason: str) -> Outcome:
    return Outcome(Decision(NOT_TESTABLE, reason=reason))


def decide_claim(spec: ClaimSpec, profile: str, root=None, left_out: Mapping[str, str] | None = None) -> tuple:
    """(row of the claims table, {name: number}) for one claim at ``profile``. ``left_out``: the studies the
    profile does not run, with the reason; a claim whose study is among them and has no results reads
    ``stats.NOT_RUN``, no verdict."""
    left_out = left_out or {}
    notebooks = (spec.study, *spec.reads)
    missing = [nb for nb in notebooks if not has_results(profile, nb, root)]
    if missing and missing[0] in left_out:          # no verdict: what running it would cost, and why it was not
        first = missing[0]
        row = {**dict.fromkeys(COLUMNS, ""), "id": spec.id, "claim": spec.text, "source": spec.source,
               "verdict": NOT_RUN, "difference": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 0,
               "evidence": f"not run at the {profile} profile: {left_out[first]}", "where": spec.study,
               "rerun": rerun_command(first, profile)}
        return row, {}
    if missing:
        first = missing[0]
        outcome = not_testable(f"no results of {first} at the {profile} profile")
        rerun = rerun_command(first, profile)
    else:
        try:
            outcome = spec.decide(Results(profile, root))
        except Stale as stale:
            outcome = not_testable(f"the results of {stale.notebook} predate {stale.what}")
            stale_nb = stale.notebook
        else:
            stale_nb = spec.study
        rerun = rerun_command(stale_nb, profile)
    d = outcome.decision
    if d.verdict not in VERDICTS:
        raise ValueError(f"claim {spec.id}: verdict {d.verdict!r} is not one of {VERDICTS}")
    evidence = d.reason if d.verdict == NOT_TESTABLE and d.reason else outcome.decided_by
    row = {"id": spec.id, "claim": spec.text, "source": spec.source, "verdict": d.verdict,
           "difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high, "n_seeds": d.n_seeds,
           "test": d.test, "gate": d.gate, "evidence": evidence, "where": spec.study, "rerun": rerun}
    # numbers.Real takes numpy's integers too (a count read from a CSV), which (int, float) would drop unseen
    numbers = {k: float(v) for k, v in outcome.numbers.items()
               if isinstance(v, Real) and not isinstance(v, (bool, np.bool_)) and not math.isnan(float(v))}
    return row, numbers


def decide_claims(specs, profile: str, root=None, left_out: Mapping[str, str] | None = None) -> tuple:
    """The claims table (one row per claim, :data:`COLUMNS`) and its numbers (one row per claim and named number,
    :data:`NUMBER_COLUMNS`) of ``specs`` at ``profile``. Ids must be unique."""
    specs = list(specs)
    seen = [s.id for s in specs]
    repeated = sorted({i for i in seen if seen.count(i) > 1})
    if repeated:
        raise ValueError(f"claim ids {repeated} are declared more than once")
    rows, numbers = [], []
    for spec in specs:
        row, named = decide_claim(spec, profile, root, left_out)
        rows.append(row)
        numbers += [{"id": spec.id, "name": k, "value": v} for k, v in named.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS)), pd.DataFrame(numbers, columns=list(NUMBER_COLUMNS))
