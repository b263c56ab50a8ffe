"""The README's first screen states what the committed cpu results found; these tests hold its words to them, so
that a rerun that changes a verdict cannot leave the README saying the old one."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLAIMS = ROOT / "results" / "cpu" / "claims" / "claims.csv"
VERDICTS = ("confirmed", "contradicted", "inconclusive", "not testable at this scale", "not run at this profile")


def first_screen() -> str:
    """The README up to its second section (what a newcomer sees first)."""
    text = README.read_text()
    return text[:text.index("\n## ", text.index("\n## ") + 1)]


@pytest.fixture(scope="module")
def claims() -> pd.DataFrame:
    if not CLAIMS.is_file():
        pytest.skip("no committed cpu claims table")
    return pd.read_csv(CLAIMS)


def test_the_first_screen_is_short_and_gives_both_commands_and_the_book():
    text = first_screen()
    assert len(text.splitlines()) <= 50
    for needed in ("make reproduce", "make test", "book/_build/html/index.html", "make notebook NB="):
        assert needed in text, needed
    assert not re.search(r"\b[A-Z]{3,}_[A-Z_]+\b", text), "a placeholder is left in the README's first screen"


def test_the_verdict_counts_the_readme_states_are_the_committed_ones(claims):
    text = " ".join(first_screen().split())
    found = re.search(r"of (\d+) claims, (\d+) confirmed, (\d+) contradicted, (\d+) inconclusive, (\d+) not "
                      r"testable at this scale and (\d+) not run at this profile", text)
    assert found, "the README's first screen does not state the verdict counts"
    counts = claims.verdict.value_counts()
    assert int(found.group(1)) == len(claims)
    assert [int(g) for g in found.groups()[1:]] == [int(counts.get(v, 0)) for v in VERDICTS]


def test_each_claim_the_readme_names_has_the_verdict_it_gives(claims):
    """Claims named in the first screen by their id, as "`id`: verdict"."""
    text = " ".join(first_screen().split())
    named = re.findall(r"`([a-z_0-9]+\.[a-z_0-9]+)`: (" + "|".join(VERDICTS) + ")", text)
    assert named, "the README names no claim with its verdict"
    verdicts = dict(zip(claims.id, claims.verdict))
    for claim, verdict in named:
        assert verdicts.get(claim) == verdict, (claim, verdict, verdicts.get(claim))


def test_the_readmes_figure_is_committed():
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", first_screen()):
        assert (ROOT / image).is_file(), image
