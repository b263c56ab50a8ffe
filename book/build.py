"""The book's generated pages, from ``results/<profile>/`` only: ``python book/build.py --profile P``.

Copies each executed notebook into ``book/generated/`` (or writes a page saying it has not been run), writes the
intro page from the runs' provenance, and writes ``book/_toc.yml`` from the studies' registry
(``glowlib/studies/registry.py``), so that a new notebook is a new page. It never trains or executes anything
and needs no torch: it reads the registry file directly and the results as plain JSON and CSV.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = "provenance.json"
PROFILES = ("smoke", "cpu", "paper")                   # glowlib.profiles.PROFILES (tests/test_book.py compares)
PROFILE_WORDS = {"smoke": "tiny models for CI, trained for seconds: the numbers mean nothing, only that the "
                          "pipeline runs end to end",
                 "cpu": "small models that train in about 30 minutes each on a 2-core laptop",
                 "paper": "the official hyperparameters, for a GPU box"}


def registry():
    """``glowlib/studies/registry.py`` as a module (loaded from its file: importing the package would load torch)."""
    spec = importlib.util.spec_from_file_location("glowlib_registry", ROOT / "glowlib" / "studies" / "registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results_root() -> Path:
    """``$GLOWLIB_RESULTS``, else ``results/`` at the repository root (as ``glowlib.results.results_root``)."""
    env = os.environ.get("GLOWLIB_RESULTS")
    return Path(env) if env else ROOT / "results"


def write(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so that a killed build never leaves half a page."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def provenance(folder: Path) -> dict | None:
    path = folder / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else None


def intro(profile: str, root: Path, notebooks) -> str:
    """The book's first page, generated from the provenance of ``<root>/<profile>``."""
    records = {nb: r for nb in notebooks if (r := provenance(root / profile / nb)) is not None}
    lines = ["# Glow, reproduced", "",
             "A reproduction of Kingma & Dhariwal, *Glow: Generative Flow with Invertible 1x1 Convolutions* "
             "(NeurIPS 2018), with its RealNVP baseline: the permutation ablation (Fig. 3), the bits/dim table "
             "(Table 2), samples, temperature, interpolation and manipulation (Sec. 5), plus the nearest-neighbour "
             "and sample-quality checks its reviewers asked for, and a claims page that gives each claim a computed "
             "verdict. Every number and figure in this book was produced by a recorded run; this page is generated "
             "from those runs' provenance.", ""]
    if not records:
        return "\n".join(lines + [f"**No results for profile `{profile}` yet.** Run `make reproduce "
                                  f"PROFILE={profile}`."]) + "\n"
    first = min(r["start_time"] for r in records.values())
    models = {m["key"]: m for r in records.values() for m in r.get("models", {}).values()}
    shas = sorted({f"{r['git_sha'][:10]}{' (uncommitted changes)' if r['git_dirty'] is True else ''}"
                   for r in records.values()})
    hardware_seen = sorted({f"{r['hardware'].get('gpu') or r['hardware']['cpu']} "
                            f"({r['hardware']['cpu_count']} CPU cores), device `{r['device']}`"
                            for r in records.values()})
    torch_versions = ", ".join(sorted({r["torch_version"] for r in records.values()}))
    lines += ["## These results", "",
              f"- **Profile:** `{profile}` ({PROFILE_WORDS.get(profile, '')})",
              f"- **Hardware:** {'; '.join(hardware_seen)}",
              f"- **Code:** git {', '.join(shas)}; torch {torch_versions}",
              f"- **Run:** from {first}; executing the notebooks took "
              f"{sum(r['wall_s'] for r in records.values()) / 60:.1f} minutes",
              f"- **Training:** {len(models)} models, {sum(m['wall_s'] or 0 for m in models.values()) / 60:.1f} "
              f"minutes in all (each counted once; trained models are cached and shared between notebooks)", ""]
    missing = [nb for nb in notebooks if nb not in records]
    if missing:
        lines += [f"Not yet run for this profile: {', '.join(missing)}.", ""]
    scale_csv = root / profile / "bpd_table" / "scale.csv"
    if "bpd_table" in records and scale_csv.is_file():
        lines += ["## How far from the paper's scale", "",
                  "Each model of the bits/dim table beside the paper-profile model for the same data "
                  "(`glowlib.profiles`: the official CIFAR-10 hyperparameters; the paper's own runs used 8 GPUs):", "",
                  "| data | model | parameters (ours / paper) | images seen (ours / paper) | training images (ours / full) |",
                  "|---|---|---|---|---|"]
        for row in pd.read_csv(scale_csv).itertuples():
            lines.append(f"| {row.dataset} | {row.model_type} | {row.n_parameters:,} / {row.paper_n_parameters:,} "
                         f"({row.n_parameters / row.paper_n_parameters:.2%}) | {row.images_seen:,} / "
                         f"{row.paper_images_seen:,} ({row.images_seen / row.paper_images_seen:.2%}) | "
                         f"{row.n_train:,} / {row.full_n_train:,} |")
        lines.append("")
    lines += ["## Pages", "",
              "Each page is an executed notebook from `notebooks/`, its outputs in `results/" + profile + "/<name>/` "
              "(CSV tables, PNG figures, `provenance.json`). [Reproduce](../reproduce.md) says how to rerun any of them.",
              ""]
    return "\n".join(lines) + "\n"


def placeholder(profile: str, notebook: str) -> str:
    return (f"# {notebook} (not run)\n\nThe notebook `notebooks/{notebook}.py` has no results for profile "
            f"`{profile}` yet. Run `make notebook NB={notebook} PROFILE={profile}`, then `make book "
            f"PROFILE={profile}`.\n")


def toc(parts) -> str:
    """``_toc.yml``: the intro, one part per caption of the registry with its notebooks, then the reproduce page."""
    lines = ["# Written by book/build.py from glowlib/studies/registry.py: edit the registry, not this file.",
             "format: jb-book", "root: generated/intro", "parts:"]
    for caption, names in parts:
        lines += [f"  - caption: {caption}", "    chapters:"] + [f"      - file: generated/{n}" for n in names]
    lines += ["  - caption: Using this book", "    chapters:", "      - file: reproduce"]
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
    for nb in reg.STUDIES:
        executed = root / profile / nb / f"{nb}.ipynb"
        for stale in (out / f"{nb}.ipynb", out / f"{nb}.md"):
            stale.unlink(missing_ok=True)
        if executed.is_file():
            shutil.copyfile(executed, out / f"{nb}.ipynb")
        else:
            write(out / f"{nb}.md", placeholder(profile, nb))
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
