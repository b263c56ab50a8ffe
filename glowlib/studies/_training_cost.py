"""The Cost page's quality-per-hour part: test bits/dim against seconds of training, ours against the plain
reference (``bench/quality_vs_time.py``), and the recipe experiments that chose the cpu profile's training
(``bench/recipe.py``). Read from the records under ``results/bench/``; nothing here trains or times anything."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

WORDS = {"ours": "glowlib, cpu profile recipe", "reference": "plain reference, official recipe as ports run it"}


def _read(folder: Path, notes: list[str], sources: dict) -> list[tuple[str, dict]]:
    """(name, record) of every JSON record in ``folder``; each record's machine and code go into ``sources``
    (``<folder>/<file>``: the page's provenance, as ``cost._records`` does for the speed benchmarks), an
    unreadable one into ``notes``."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            notes.append(f"`{path.name}` could not be read ({e}); it is left out.")
            continue
        out.append((path.stem, record))
        sources[f"{folder.name}/{path.name}"] = {"device_name": record.get("machine"), "threads": record.get("threads"),
                                                 "git_sha": record.get("git_sha"), "git_dirty": record.get("git_dirty"),
                                                 "time": record.get("time"),
                                                 "load_average": record.get("load_average_end")}
    return out


def quality_vs_time(bench_dir: Path, notes: list[str],
                    sources: dict) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(``chosen``: one row per contender's run and budget, the validation-chosen checkpoint's bits/dim on the
    whole test split; ``curves``: one row per evaluation, seconds of training against validation bits/dim and
    test bits/dim on a class-balanced 2,000-image part of the test split), or Nones with a note."""
    records = _read(bench_dir / "quality_vs_time", notes, sources)
    if not records:
        notes.append("No quality-against-time record: run `python bench/quality_vs_time.py` (see its docstring).")
        return None, None
    chosen, curves = [], []
    for run, r in records:
        machine = {"device_name": r["machine"], "threads": r["threads"],
                   "precision": r["model"].get("precision", "fp32") if r["contender"] == "ours" else "fp32"}
        chosen += [{"contender": r["contender"], "run": run, **c, **machine} for c in r["chosen"]]
        curves += [{"contender": r["contender"], "run": run, "budget_min": max(r["budgets_min"]), **c}
                   for c in r["curve"]]
    return pd.DataFrame(chosen), pd.DataFrame(curves)


def recipe(bench_dir: Path, notes: list[str], sources: dict) -> pd.DataFrame | None:
    """One row per recipe experiment: what it changed, its steps and wall time, its best validation bits/dim and
    the difference from the Adam base (same data, seed and wall time), and its sanity gates where checked."""
    rows = []
    for _, r in _read(bench_dir / "recipe", notes, sources):
        gates = {g["gate"]: g for g in r.get("gates", [])}
        rows.append({"variant": r["variant"], "dataset": r["config"]["data"]["dataset"], "what": r["what"],
                     "steps": r["steps"], "batch": r["config"]["train"]["batch_size"], "wall_s": r["wall_s"],
                     "best_val_bpd": r["best_val_bpd"],
                     "t1_nonfinite_share": gates.get("share of non-finite draws", {}).get("value"),
                     "gates_passed": all(g["passed"] for g in gates.values()) if gates else None,
                     "device_name": r["machine"], "threads": r["threads"]})
    if not rows:
        notes.append("No recipe experiment recorded: run `python bench/recipe.py --variant NAME` (see its docstring).")
        return None
    df = pd.DataFrame(rows)
    base = df[(df.variant == "adam")].best_val_bpd
    df["vs_adam"] = df.best_val_bpd - base.iloc[0] if len(base) else float("nan")
    df.loc[df.dataset != "fashion_mnist", "vs_adam"] = float("nan")
    return df


def plot_quality_vs_time(chosen: pd.DataFrame | None, curves: pd.DataFrame | None):
    """Test bits/dim (2,000-image part) against minutes of training, a line per run, and each budget's
    validation-chosen checkpoint on the whole test split as a marker (None without records)."""
    if chosen is None or curves is None:
        return None
    import matplotlib.pyplot as plt
    machines = list(dict.fromkeys(chosen.device_name))         # one panel per machine: its runs share a clock
    fig, axes = plt.subplots(1, len(machines), figsize=(7 * len(machines), 4), squeeze=False, sharey=True)
    colours = {"ours": "C0", "reference": "C1"}
    for ax, machine in zip(axes[0], machines):
        here = chosen[chosen.device_name == machine]
        for run, part in curves[curves.run.isin(set(here.run))].groupby("run", sort=False):
            c = part.contender.iloc[0]
            ax.plot(part.train_s / 60, part.test_curve_bpd, color=colours.get(c, "C2"), alpha=0.8,
                    label=f"{WORDS.get(c, c)}, {part.budget_min.iloc[0]:g}-min run")
        for r in here.itertuples():
            ax.plot(r.minutes, r.test_bpd, "o", color=colours.get(r.contender, "C2"), markersize=7)
            ax.annotate(f"{r.test_bpd:.3f}", (r.minutes, r.test_bpd), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        ax.set(xlabel="minutes of training", ylim=(None, min(6.0, curves.test_curve_bpd.max())),
               title=f"{machine}, {here.threads.iloc[0]} threads, {here.precision.iloc[0]}")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("test bits/dim")
    fig.suptitle("Fashion-MNIST: quality against training time")
    fig.tight_layout()
    return fig


def quality_summary(chosen: pd.DataFrame | None) -> list[str]:
    """One sentence per budget: ours against the reference on the whole test split, with the machine."""
    if chosen is None:
        return []
    out = []
    for (_, minutes), part in chosen.groupby(["device_name", "minutes"], sort=False):
        by = {r.contender: r for r in part.itertuples()}
        if {"ours", "reference"} <= set(by):
            o, ref = by["ours"], by["reference"]
            out.append(f"After {minutes:g} minutes of training on {o.device_name} ({o.threads} threads, {o.precision}):"
                       f" ours {o.test_bpd:.3f} ± {o.test_sem:.3f} test bits/dim, the reference "
                       f"{ref.test_bpd:.3f} ± {ref.test_sem:.3f} (each at its validation-chosen checkpoint, whole "
                       f"test split; ± one standard error over test images, one training seed each).")
    return out
