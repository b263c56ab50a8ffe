"""Results I/O: where each notebook's outputs live, atomic writes, provenance, and the book's generated pages.

``results/<profile>/<notebook>/`` holds one notebook's run: the executed notebook (written by ``make``), tidy CSVs
(one row per observation), PNG figures, and ``provenance.json`` (git SHA and dirty flag, profile, the full config
of every model used, seed, torch version, device, hardware, start time, wall seconds, parameters). Everything is
written through a temporary file and ``os.replace``, so a killed run never leaves half a file, and a
:class:`Recorder` only ever writes into a folder that is empty or holds an earlier run of the same notebook.

``python -m glowlib.results book --profile P`` turns ``results/P`` into the book's generated pages (``book/``
only reads ``results/``; it never trains or executes anything).
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from .train import atomic_write_bytes

# The notebooks, in the book's order; the last one reads the others' results.
NOTEBOOKS = ("ablation", "bpd_table", "samples", "interpolation", "manipulation", "temperature",
             "nearest_neighbours", "what_works", "bits_5v8", "temperature_validity", "class_conditional",
             "sampling_cost", "precision", "cost", "claims")
PROVENANCE = "provenance.json"
REQUIRED_PROVENANCE = ("notebook", "git_sha", "git_dirty", "profile", "configs", "seed", "torch_version", "device",
                       "hardware", "start_time", "wall_s", "parameters", "tables", "figures")


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def results_root() -> Path:
    """``$GLOWLIB_RESULTS``, else ``results/`` at the repository root."""
    env = os.environ.get("GLOWLIB_RESULTS")
    return Path(env) if env else repo_root() / "results"


def results_dir(profile: str, notebook: str, root=None) -> Path:
    """``<root>/<profile>/<notebook>/``: one notebook's outputs for one profile."""
    from .config import check_choice
    from .profiles import PROFILES
    check_choice("profile", profile, PROFILES)
    check_choice("notebook", notebook, NOTEBOOKS)
    return Path(root if root is not None else results_root()) / profile / notebook


def git_state(cwd=None) -> dict:
    """``{"git_sha": ..., "git_dirty": ...}`` of the checkout; "unknown" outside git. Dirty means a tracked file
    outside ``results/`` differs from the commit: the notebooks' own outputs (rewritten as a run goes, notebook by
    notebook) are not the code that made them."""
    cwd = cwd or repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)results"], cwd=cwd,
                                capture_output=True, text=True, check=True).stdout
        return {"git_sha": sha, "git_dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"git_sha": "unknown", "git_dirty": "unknown"}


def hardware(device: str) -> dict:
    """What the numbers were computed on: CPU model and count, and the GPU's name where one was used."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _json_default(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record {type(value).__name__} in provenance")


def _clean(value):
    """NaN/inf are not JSON: record them as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def check_tidy(df: pd.DataFrame, keys, name: str) -> None:
    """A tidy table: not empty, flat unique string column names, and one row per observation (``keys`` unique)."""
    if len(df) == 0 or len(df.columns) == 0:
        raise ValueError(f"table {name!r} is empty; an experiment that produced nothing is a bug, not a result")
    if isinstance(df.columns, pd.MultiIndex) or not all(isinstance(c, str) and c for c in df.columns):
        raise ValueError(f"table {name!r} has non-string or nested column names {list(df.columns)}; "
                         f"flatten them (one column per variable)")
    if df.columns.duplicated().any():
        raise ValueError(f"table {name!r} repeats columns {list(df.columns[df.columns.duplicated()])}")
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"table {name!r}: key columns {missing} are not among {list(df.columns)}")
    if keys and df.duplicated(list(keys)).any():
        raise ValueError(f"table {name!r}: several rows share the same {list(keys)}; each row must be one "
                         f"observation")


class Recorder:
    """Writes one notebook's outputs into ``out_dir`` and, at :meth:`finish`, its provenance.

    >>> rec = Recorder("ablation", "results/smoke/ablation", profile="smoke", seed=0, parameters={...})
    >>> rec.model("glow-mnist5k", trained_model); rec.table(df, "runs", keys=["seed"]); rec.figure(fig, "curves")
    >>> rec.finish()
    """

    def __init__(self, notebook: str, out_dir, profile: str, seed: int | None, parameters: dict,
                 device: str = "cpu"):
        import torch
        self.notebook, self.out_dir, self.profile, self.seed = notebook, Path(out_dir), profile, seed
        self.parameters, self.device = dict(parameters), device
        self.started = time.time()
        self.start_time = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.configs, self.models, self.tables, self.figures, self.extra = {}, {}, {}, {}, {}
        self.torch_version = torch.__version__
        previous = self.out_dir / PROVENANCE
        if previous.exists():
            try:
                owner = json.loads(previous.read_text()).get("notebook")
            except (OSError, ValueError):
                owner = None
            if owner != notebook:
                raise FileExistsError(f"{self.out_dir} holds the results of {owner!r}, not {notebook!r}; choose "
                                      f"another out_dir (nothing was overwritten)")
        elif self.out_dir.exists() and any(p for p in self.out_dir.iterdir()
                                           if p.suffix in (".csv", ".png", ".json")):
            raise FileExistsError(f"{self.out_dir} holds files that no glowlib run wrote; choose another out_dir "
                                  f"(nothing was overwritten)")
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- what was used
    def config(self, name: str, run) -> None:
        """Record the full config (a RunConfig or a dict) of something used, under ``name``."""
        self.configs[name] = run.to_dict() if hasattr(run, "to_dict") else dict(run)

    def model(self, name: str, trained) -> None:
        """Record a trained model (``glowlib.cache.TrainedModel``): its full config, cache key and training cost."""
        self.config(name, trained.run)
        s = trained.summary
        self.models[name] = {"key": s.get("key"), "steps": s.get("steps"), "wall_s": s.get("wall_s"),
                             "best_val_bpd": s.get("best_val_bpd"),
                             "test_bpd_at_best_val": s.get("test_bpd_at_best_val"),
                             "n_parameters": sum(p.numel() for p in trained.model.parameters())}

    def note(self, **values) -> None:
        """Extra facts for the provenance (e.g. the classifier's test accuracy)."""
        self.extra.update(values)

    # ---------------------------------------------------------------- outputs
    def _path(self, name: str, suffix: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"output name {name!r} must be a plain file name without folders")
        if name + suffix == PROVENANCE:
            raise ValueError(f"{PROVENANCE} is written by finish()")
        return self.out_dir / (name + suffix)

    def table(self, df: pd.DataFrame, name: str, keys=()) -> None:
        """Write a tidy CSV ``name.csv``; ``keys`` are the columns that identify one observation."""
        check_tidy(df, keys, name)
        path = self._path(name, ".csv")
        atomic_write_bytes(path, df.to_csv(index=False).encode())
        self.tables[path.name] = {"keys": list(keys), "rows": len(df), "columns": list(df.columns)}

    def figure(self, fig, name: str, dpi: int = 120) -> None:
        """Save a matplotlib figure as ``name.png``."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        path = self._path(name, ".png")
        atomic_write_bytes(path, buffer.getvalue())
        self.figures[path.name] = {"what": fig.get_suptitle() or name}

    def image(self, array, name: str, what: str = "") -> None:
        """Save a uint8 image (H, W) or (H, W, 3), e.g. a sample grid, as ``name.png`` at its own resolution."""
        from PIL import Image
        import numpy as np
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="png")
        path = self._path(name, ".png")
        atomic_write_bytes(path, buffer.getvalue())
        self.figures[path.name] = {"what": what or name}

    def finish(self) -> dict:
        """Write ``provenance.json`` and remove outputs of this notebook's previous run that were not rewritten."""
        previous = self.out_dir / PROVENANCE
        if previous.exists():
            old = json.loads(previous.read_text())
            for stale in set(old.get("tables", {})) | set(old.get("figures", {})):
                if stale not in self.tables and stale not in self.figures:
                    (self.out_dir / stale).unlink(missing_ok=True)
        record = {"notebook": self.notebook, **git_state(), "profile": self.profile, "seed": self.seed,
                  "parameters": self.parameters, "configs": self.configs, "models": self.models,
                  "torch_version": self.torch_version, "device": self.device, "hardware": hardware(self.device),
                  "start_time": self.start_time, "wall_s": round(time.time() - self.started, 2),
                  "tables": self.tables, "figures": self.figures, **self.extra}
        text = json.dumps(_clean(record), indent=1, default=_json_default)
        atomic_write_bytes(previous, text.encode())
        return record


# ---------------------------------------------------------------------------------------------------- reading
def load_provenance(profile: str, notebook: str, root=None) -> dict:
    path = results_dir(profile, notebook, root) / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"no results of notebook {notebook!r} for profile {profile!r} ({path} is missing); "
                                f"run `make notebook NB={notebook} PROFILE={profile}`")
    return json.loads(path.read_text())


def read_table(profile: str, notebook: str, name: str, root=None) -> pd.DataFrame:
    """A CSV written by notebook ``notebook`` for ``profile``; the message says how to make it if it is missing."""
    path = results_dir(profile, notebook, root) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `make notebook NB={notebook} PROFILE={profile}`")
    return pd.read_csv(path)


def has_results(profile: str, notebook: str, root=None) -> bool:
    return (results_dir(profile, notebook, root) / PROVENANCE).is_file()


# ---------------------------------------------------------------------------------------------------- the book
def _intro(profile: str, root) -> str:
    """The book's first page, generated from the provenance of ``results/<profile>``."""
    records = {nb: load_provenance(profile, nb, root) for nb in NOTEBOOKS if has_results(profile, nb, root)}
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
    lines += ["## These results", "",
              f"- **Profile:** `{profile}` ({_PROFILE_WORDS.get(profile, '')})",
              f"- **Hardware:** {'; '.join(hardware_seen)}",
              f"- **Code:** git {', '.join(shas)}; torch {', '.join(sorted({r['torch_version'] for r in records.values()}))}",
              f"- **Run:** from {first}; executing the notebooks took "
              f"{sum(r['wall_s'] for r in records.values()) / 60:.1f} minutes",
              f"- **Training:** {len(models)} models, {sum(m['wall_s'] or 0 for m in models.values()) / 60:.1f} "
              f"minutes in all (each counted once; trained models are cached and shared between notebooks)", ""]
    missing = [nb for nb in NOTEBOOKS if nb not in records]
    if missing:
        lines += [f"Not yet run for this profile: {', '.join(missing)}.", ""]
    if has_results(profile, "bpd_table", root):
        scale = read_table(profile, "bpd_table", "scale", root)
        lines += ["## How far from the paper's scale", "",
                  "Each model of the bits/dim table beside the paper-profile model for the same data "
                  "(`glowlib.profiles`: the official CIFAR-10 hyperparameters; the paper's own runs used 8 GPUs):", "",
                  "| data | model | parameters (ours / paper) | images seen (ours / paper) | training images (ours / full) |",
                  "|---|---|---|---|---|"]
        for row in scale.itertuples():
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


_PROFILE_WORDS = {"smoke": "tiny models for CI, trained for seconds: the numbers mean nothing, only that the "
                           "pipeline runs end to end",
                  "cpu": "small models that train in about 30 minutes each on a 2-core laptop",
                  "paper": "the official hyperparameters, for a GPU box"}


def _placeholder(profile: str, notebook: str) -> str:
    return (f"# {notebook} (not run)\n\nThe notebook `notebooks/{notebook}.py` has no results for profile "
            f"`{profile}` yet. Run `make notebook NB={notebook} PROFILE={profile}`, then `make book "
            f"PROFILE={profile}`.\n")


def prepare_book(profile: str, book_dir=None, root=None) -> Path:
    """Fill ``<book>/generated/`` from ``results/<profile>``: the intro page and one page per notebook (the
    executed notebook, or a page saying it has not been run). Returns the folder."""
    from .config import check_choice
    from .profiles import PROFILES
    check_choice("profile", profile, PROFILES)
    book_dir = Path(book_dir) if book_dir is not None else repo_root() / "book"
    out = book_dir / "generated"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "intro.md", _intro(profile, root).encode())
    for nb in NOTEBOOKS:
        executed = results_dir(profile, nb, root) / f"{nb}.ipynb"
        for stale in (out / f"{nb}.ipynb", out / f"{nb}.md"):
            stale.unlink(missing_ok=True)
        if executed.is_file():
            shutil.copyfile(executed, out / f"{nb}.ipynb")
        else:
            atomic_write_bytes(out / f"{nb}.md", _placeholder(profile, nb).encode())
    atomic_write_bytes(out / "profile.json", json.dumps({"profile": profile, "results": str(
        Path(root) if root is not None else results_root())}).encode())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glowlib.results", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="generate the book's pages from results/<profile>")
    book.add_argument("--profile", required=True)
    book.add_argument("--book", default=None, help="book folder (default: book/ at the repository root)")
    args = parser.parse_args(argv)
    try:
        out = prepare_book(args.profile, args.book)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"book pages for profile {args.profile!r} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
