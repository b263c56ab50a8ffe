"""Results I/O: where each notebook's outputs live, atomic writes, provenance, and reading them back.

``results/<profile>/<notebook>/`` holds one notebook's run: the executed notebook (written by ``make``), tidy CSVs
(one row per observation), PNG figures, and ``provenance.json`` (git SHA and dirty flag, profile, the full config
of every model used, seed, torch version, device, hardware, start time, wall seconds, parameters, and each
figure's saved size, dpi and smallest font). Everything is
written through a temporary file and ``os.replace``, so a killed run never leaves half a file, and a
:class:`Recorder` only ever writes into a folder that is empty or holds an earlier run of the same notebook.

``make`` runs a notebook with ``$GLOWLIB_STAGE`` set (:data:`STAGE_ENV`): the Recorder then writes into that
staging folder instead of ``out_dir``, and make puts it in place of ``out_dir`` only when the notebook succeeded,
so an interrupted or failed run leaves the previous results whole. ``out_dir`` (what the notebook and its
provenance name) stays the final folder, so the notebook still reads its previous run there.

Results are recorded only from committed code, so that each can be cited by its commit: a :class:`Recorder` refuses
to start in a checkout whose tracked files outside ``results/`` differ from the commit (:func:`check_committed`)
unless ``GLOWLIB_ALLOW_DIRTY=1`` (:data:`ALLOW_DIRTY_ENV`) says to, which the provenance then records. Outside git
(a copy without its history) there is no commit to cite: the run is recorded with ``git_sha`` "unknown" and the
package's version, which then identifies the code.

File names read back from a file (a previous ``provenance.json``) are only used through :func:`confined`: a plain
name of a file inside the folder, never a path that leads out of it.

It imports no model or training code: the book's build (``book/build.py``) and the claims read what it wrote.
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd

from .config import check_choice
from .files import TMP_SUFFIX, atomic_write_bytes, package_version

# glowlib.profiles.PROFILES (tests/test_results.py checks they agree), named here so that this module needs no
# model code
PROFILES = ("smoke", "cpu", "gpu", "paper")
PROVENANCE = "provenance.json"
# the numbers a page's words quote (``Recorder.values``), beside its tables
VALUES = "values.json"
# the folder a Recorder writes into instead of out_dir, set by the Makefile's execute macro
STAGE_ENV = "GLOWLIB_STAGE"
# set to 1 to record results from a checkout with uncommitted changes (the provenance says so)
ALLOW_DIRTY_ENV = "GLOWLIB_ALLOW_DIRTY"
REQUIRED_PROVENANCE = ("notebook", "git_sha", "git_dirty", "profile", "configs", "seed", "torch_version", "device",
                       "hardware", "start_time", "wall_s", "parameters", "tables", "figures")


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def results_root() -> Path:
    """``$GLOWLIB_RESULTS``, else ``results/`` at the repository root."""
    env = os.environ.get("GLOWLIB_RESULTS")
    return Path(env) if env else repo_root() / "results"


def results_dir(profile: str, notebook: str, root=None) -> Path:
    """``<root>/<profile>/<notebook>/``: one notebook's outputs for one profile. ``notebook`` is a plain name (the
    studies' registry, ``glowlib.studies.STUDIES``, says which exist; this module stays below the studies)."""
    check_choice("profile", profile, PROFILES)
    if not isinstance(notebook, str) or not notebook.isidentifier():
        raise ValueError(f"notebook={notebook!r} must be a notebook's name, e.g. 'ablation' (no folders)")
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


class UncommittedChanges(RuntimeError):
    """The checkout differs from its commit, so results made from it could not be cited (:func:`check_committed`)."""


def dirty_allowed() -> bool:
    """Whether ``$GLOWLIB_ALLOW_DIRTY`` says to record results from a checkout with uncommitted changes."""
    return os.environ.get(ALLOW_DIRTY_ENV, "").strip().lower() in ("1", "true", "yes")


def check_committed(state: dict) -> None:
    """Refuse (:class:`UncommittedChanges`, one line saying how to proceed) a :func:`git_state` with uncommitted
    changes, unless :func:`dirty_allowed`. "unknown" (no git) passes: there is no commit to cite, and the
    provenance records the package's version instead."""
    if state.get("git_dirty") is True and not dirty_allowed():
        raise UncommittedChanges(
            "tracked files outside results/ differ from the commit (git status lists them), so these results "
            "could not be cited to a commit; commit the changes and rerun, or set GLOWLIB_ALLOW_DIRTY=1 to record "
            "them anyway (their provenance then says so)")


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# the CPU features that decide a figure's speed here: the vector width, and whether bf16 has a hardware path
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_identity() -> dict:
    """What names this CPU beyond its model name (which a virtual machine may reduce to "Intel(R) Xeon(R)
    Processor"): vendor, family, model and stepping, and which of :data:`CPU_FLAGS` it has (Linux:
    /proc/cpuinfo; {} elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    ident = " ".join(f"{k.split()[-1]} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
    return {"cpu_id": f"{fields.get('vendor_id', '')} {ident}".strip(),
            "cpu_flags": [f for f in CPU_FLAGS if f in flags]}


def hardware(device: str) -> dict:
    """What the numbers were computed on: CPU model and count, the GPU's name where one was used, and whether
    float32 matmuls and cuDNN convolutions were allowed TF32 (a 10-bit mantissa on Ampere and later GPUs;
    ``glowlib.training.loop`` turns it off)."""
    import torch
    from .bf16 import bf16_support
    info = {"cpu": cpu_name(), **cpu_identity(), "cpu_bf16_path": bf16_support("cpu")[1],
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version()}
    info["tf32"] = {"matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                    "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(torch.device(device))))
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


def confined(folder, name, listed_in) -> Path:
    """``folder / name`` for a file name read from a file (``listed_in``, named in the error): a plain name of a
    file in ``folder``: no folder part, not ``.`` or ``..``, not absolute, and not a symbolic link to a place
    outside ``folder``. Anything else is a ``ValueError`` naming the file and the entry: such an entry would have
    the caller delete or read a file that is not its own."""
    folder = Path(folder)
    plain = (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0"))
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


def listed_outputs(folder, record: dict, listed_in) -> list[Path]:
    """The tables and figures a provenance ``record`` of ``folder`` lists, each checked by :func:`confined`."""
    names = []
    for key in ("tables", "figures"):
        entries = record.get(key) or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{listed_in}: {key!r} must map file names to their records, not {entries!r}; "
                             f"correct or remove that entry")
        names += list(entries)
    return [confined(folder, name, listed_in) for name in names]


def _read_provenance(path: Path) -> dict | None:
    """A provenance record, or None where the file is missing or is not a JSON object."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def smallest_font_pt(fig) -> float | None:
    """The smallest font size (points) of any text ``fig`` draws: titles, axis labels, tick labels, legends,
    annotations, colour bars; None where it draws no text. Text that is hidden, or inside a hidden artist (an
    unused panel, the tick labels a shared axis hides), or empty, is not drawn and not counted. Read after the
    figure was drawn (saved): tick labels get their text when they are drawn."""
    from matplotlib.text import Text
    sizes, todo = [], [fig]
    while todo:
        artist = todo.pop()
        if not artist.get_visible():
            continue
        if isinstance(artist, Text) and artist.get_text().strip():
            sizes.append(float(artist.get_fontsize()))
        todo.extend(artist.get_children())
    return min(sizes) if sizes else None


def figure_facts(fig, png: bytes, dpi: float) -> dict:
    """What a page needs to know how large a saved figure's text is drawn: ``width_in`` and ``height_in``, the
    saved PNG's size in inches (its pixels over ``dpi``: ``bbox_inches="tight"`` trims the figure, so this is not
    its ``figsize``), ``dpi``, and ``min_font_pt`` (:func:`smallest_font_pt`). A figure shown ``W`` px wide draws
    its smallest text ``min_font_pt / 72 * W / width_in`` px tall."""
    from PIL import Image
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    smallest = smallest_font_pt(fig)
    return {"width_in": round(width / dpi, 3), "height_in": round(height / dpi, 3), "dpi": dpi,
            "min_font_pt": None if smallest is None else round(smallest, 2)}


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
        self.page_values = {}
        self.torch_version = torch.__version__
        # the code this run imported: checked before any work, recorded at finish()
        self.git = git_state()
        check_committed(self.git)
        self.dirty_allowed = self.git["git_dirty"] is True
        stage = os.environ.get(STAGE_ENV)
        # where the files go: out_dir itself, or make's staging folder that replaces out_dir on success
        self.folder = Path(stage) if stage else self.out_dir
        previous = self.out_dir / PROVENANCE
        old = _read_provenance(previous) if previous.exists() else None
        if previous.exists():
            owner = (old or {}).get("notebook")
            if owner != notebook:
                raise FileExistsError(f"{self.out_dir} holds the results of {owner!r}, not {notebook!r}; choose "
                                      f"another out_dir (nothing was overwritten)")
            # checked now, before any work, as finish() deletes by these names
            self.previous_outputs = listed_outputs(self.out_dir, old, previous)
        else:
            self.previous_outputs = []
            if self.out_dir.exists() and any(p for p in self.out_dir.iterdir()
                                             if p.suffix in (".csv", ".png", ".json")):
                raise FileExistsError(f"{self.out_dir} holds files that no glowlib run wrote (no {PROVENANCE}); move "
                                      f"them elsewhere, or delete them if an interrupted run left them, or choose "
                                      f"another out_dir (nothing was overwritten)")
        if stage:
            if self.folder.resolve() == self.out_dir.resolve():
                raise ValueError(f"{STAGE_ENV}={stage} is out_dir itself; the staging folder must be another one")
            if self.out_dir.exists():
                # the staging folder replaces out_dir whole: a file there that no run of this notebook listed
                # would be lost with it
                known = {p.name for p in self.previous_outputs} | {PROVENANCE, VALUES, f"{notebook}.ipynb"}
                foreign = sorted(p.name for p in self.out_dir.iterdir()
                                 if p.name not in known and not p.name.endswith(TMP_SUFFIX))
                if foreign:
                    raise FileExistsError(f"{self.out_dir} holds {foreign}, which no run of {notebook!r} wrote and "
                                          f"which replacing the folder would lose; move them elsewhere (nothing "
                                          f"was overwritten)")
            if self.folder.exists() and any(self.folder.iterdir()):
                raise FileExistsError(f"the staging folder {self.folder} ({STAGE_ENV}) is not empty; remove it (make "
                                      f"removes it before each run)")
        self.folder.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- what was used
    def config(self, name: str, run) -> None:
        """Record the full config (a RunConfig or a dict) of something used, under ``name``."""
        self.configs[name] = run.to_dict() if hasattr(run, "to_dict") else dict(run)

    def model(self, name: str, trained) -> None:
        """Record a trained model (``glowlib.training.TrainedModel``): its full config, cache key and training cost."""
        self.config(name, trained.run)
        s = trained.summary
        self.models[name] = {"key": s.get("key"), "steps": s.get("steps"), "wall_s": s.get("wall_s"),
                             "whole_test_s": s.get("whole_test_s"), "finished": s.get("finished"),
                             "threads": s.get("threads"),
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
        return self.folder / (name + suffix)

    def table(self, df: pd.DataFrame, name: str, keys=()) -> None:
        """Write a tidy CSV ``name.csv``; ``keys`` are the columns that identify one observation."""
        check_tidy(df, keys, name)
        path = self._path(name, ".csv")
        atomic_write_bytes(path, df.to_csv(index=False).encode())
        self.tables[path.name] = {"keys": list(keys), "rows": len(df), "columns": list(df.columns)}

    def figure(self, fig, name: str, dpi: int = 120) -> None:
        """Save a matplotlib figure as ``name.png``; the provenance records its saved size, dpi and smallest font
        (:func:`figure_facts`), from which the book's checks work out how large its text is drawn on a page."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        path = self._path(name, ".png")
        atomic_write_bytes(path, buffer.getvalue())
        # a title wrapped to fit its figure is one line of words as a caption
        self.figures[path.name] = {"what": " ".join(fig.get_suptitle().split()) or name,
                                   **figure_facts(fig, buffer.getvalue(), dpi)}

    def image(self, array, name: str, what: str = "") -> None:
        """Save a uint8 image (H, W) or (H, W, 3), e.g. a sample grid, as ``name.png`` at its own resolution."""
        from PIL import Image
        import numpy as np
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="png")
        path = self._path(name, ".png")
        atomic_write_bytes(path, buffer.getvalue())
        self.figures[path.name] = {"what": what or name}

    def values(self, **values) -> dict:
        """Record the numbers (or short strings) that the page's words quote into ``values.json``, added to those
        recorded before; returns them all. Numpy scalars become Python numbers."""
        for name, value in values.items():
            value = value.item() if hasattr(value, "item") else value
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(f"page value {name}={value!r} must be a number or a string")
            self.page_values[name] = value
        text = json.dumps(_clean(self.page_values), indent=1, sort_keys=True) + "\n"
        atomic_write_bytes(self.folder / VALUES, text.encode())
        return dict(self.page_values)

    def finish(self) -> dict:
        """Write ``provenance.json`` and, when writing into ``out_dir`` itself, remove the outputs of this notebook's
        previous run that were not rewritten (a staging folder starts empty and replaces ``out_dir`` whole)."""
        if self.folder == self.out_dir:
            previous = self.out_dir / PROVENANCE
            old = _read_provenance(previous) if previous.exists() else None
            # read again: the names are only used once confined to out_dir
            for stale in listed_outputs(self.out_dir, old or {}, previous):
                if stale.name not in self.tables and stale.name not in self.figures:
                    stale.unlink(missing_ok=True)
        record = {"notebook": self.notebook, **self.git, "dirty_allowed": self.dirty_allowed,
                  "glowlib_version": package_version(), "profile": self.profile, "seed": self.seed,
                  "parameters": self.parameters, "configs": self.configs, "models": self.models,
                  "torch_version": self.torch_version, "device": self.device, "hardware": hardware(self.device),
                  "start_time": self.start_time, "wall_s": round(time.time() - self.started, 2),
                  "tables": self.tables, "figures": self.figures, "values": self.page_values, **self.extra}
        text = json.dumps(_clean(record), indent=1, default=_json_default)
        atomic_write_bytes(self.folder / PROVENANCE, text.encode())
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
