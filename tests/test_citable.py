"""Results can be cited: one version (pyproject.toml's) in the package and in CITATION.cff, and results recorded
only from committed code unless told otherwise, which their provenance then says."""
import json
import re
from pathlib import Path

import pytest
import yaml

import glowlib
from glowlib import results
from glowlib.results import ALLOW_DIRTY_ENV, PROVENANCE, Recorder, UncommittedChanges

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    project = (ROOT / "pyproject.toml").read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    return re.search(r'(?m)^version\s*=\s*"([^"]+)"', project).group(1)


def test_citation_file_names_this_version_and_the_glow_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == _pyproject_version(), "CITATION.cff's version must be pyproject.toml's"
    assert cff["title"] and cff["authors"] == [{"name": "glowlib contributors"}]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))
    assert ("license" in cff) == any((ROOT / name).is_file() for name in ("LICENSE", "LICENSE.md", "LICENSE.txt"))
    glow = [r for r in cff["references"] if "Glow" in r["title"]]
    assert len(glow) == 1 and glow[0]["year"] == 2018
    assert [a["family-names"] for a in glow[0]["authors"]] == ["Kingma", "Dhariwal"]
    assert "arXiv:1807.03039" in [i["value"] for i in glow[0]["identifiers"]]
    assert "NeurIPS" in glow[0]["conference"]["name"]


def test_the_package_version_is_pyprojects():
    assert glowlib.__version__ == _pyproject_version(), \
        "the installed metadata is stale: reinstall (make env, or pip install -e .)"


def test_the_book_reads_the_same_version_and_cites_from_the_citation_file():
    import runpy
    build = runpy.run_path(str(ROOT / "book" / "build.py"))
    assert build["package_version"]() == _pyproject_version()
    line = build["citation"]()
    assert "glowlib contributors" in line and f"version {_pyproject_version()}" in line
    assert "{cite}`kingma2018glow`" in line and "arXiv:1807.03039" in line


def _dirty(monkeypatch):
    monkeypatch.setattr(results, "git_state", lambda cwd=None: {"git_sha": "f" * 40, "git_dirty": True})


def test_a_checkout_with_uncommitted_changes_records_nothing(tmp_path, monkeypatch):
    _dirty(monkeypatch)
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    with pytest.raises(UncommittedChanges) as refused:
        Recorder("samples", tmp_path / "out", "smoke", 0, {})
    message = str(refused.value)
    assert "\n" not in message and "commit" in message and f"{ALLOW_DIRTY_ENV}=1" in message
    assert not (tmp_path / "out").exists(), "refused before anything was written"


def test_told_to_it_records_and_says_so(tmp_path, monkeypatch):
    _dirty(monkeypatch)
    monkeypatch.setenv(ALLOW_DIRTY_ENV, "1")
    Recorder("samples", tmp_path / "out", "smoke", 0, {}).finish()
    record = json.loads((tmp_path / "out" / PROVENANCE).read_text())
    assert record["git_dirty"] is True and record["dirty_allowed"] is True
    assert record["glowlib_version"] == glowlib.__version__


@pytest.mark.parametrize("state", [{"git_sha": "a" * 40, "git_dirty": False},
                                   {"git_sha": "unknown", "git_dirty": "unknown"}], ids=["clean", "no git"])
def test_committed_code_or_a_copy_without_git_records(tmp_path, monkeypatch, state):
    """Outside git there is no commit to cite: the run records "unknown" and the version identifies the code."""
    monkeypatch.setattr(results, "git_state", lambda cwd=None: dict(state))
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    Recorder("samples", tmp_path / "out", "smoke", 0, {}).finish()
    record = json.loads((tmp_path / "out" / PROVENANCE).read_text())
    assert record["git_sha"] == state["git_sha"] and record["dirty_allowed"] is False
    assert record["glowlib_version"] == glowlib.__version__
