"""Paired comparisons of trained models over training seeds, at equal steps and at equal compute.

A claim such as "the learned 1x1 convolution beats shuffle" compares two arms, each trained with the same seeds
(the same data order, noise and initialisation stream on both sides), so their difference is paired by seed
(``stats.decide_paired``). The studies that compare models (the permutation ablation, the bits/dim table, what makes
Glow work) all decide their claims here, from per-seed rows (:func:`paired_table`) that they record as ``pairs``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from .claims import Outcome
from .stats import (CONFIDENCE, CONTRADICTED, INCONCLUSIVE, MIN_SEEDS, NOT_TESTABLE, Decision, decide_paired,
                    paired_interval, verdict_of)

# Every comparison of two models is made twice, paired by training seed (the same seed: the same data order, noise
# and initialisation stream on both sides), and both are shown:
# - at equal steps: each run's whole training, the same steps and batch on both sides;
# - at equal compute: each side's run that spends the same budget of counted FLOPs to its end, on its own
#   learning-rate schedule (``glowlib.budget``: a run of its own where the two differ in FLOPs per step, the
#   equal-steps run where they do not).
# The runs' measured clock (:func:`training_clock`: the training process's CPU seconds where both runs recorded
# them, else wall seconds) is kept beside, as what the FLOPs leave out; it decides nothing, since two runs of
# identical work spread more in seconds than many differences it would equalise.
# Each claim's verdict says which of the two decides it, and why.
BASES = {"equal_steps": "equal steps", "equal_compute": "equal compute (counted FLOPs)"}
CLOCKS = {"cpu_s": "CPU seconds of the training process", "wall_s": "wall seconds"}
PAIR_KEYS = ["group", "a", "b", "seed"]
# the columns of a pairs table recorded by this glowlib that the claims read: an older table lacks one (pass it to
# ``Results.table(..., columns=PAIR_COLUMNS)``, so that the claim says which notebook to rerun)
PAIR_COLUMNS = tuple(f"{side}_bpd_{basis}" for basis in ("equal_steps", "equal_compute") for side in "ab")
# what a pair's value measures: the test bits/dim of the validation-chosen evaluation ("bpd"), or the mean of the
# test curve over the evaluations (lower: ahead during training, "curve_mean")
PAIR_METRICS = {"bpd": "test bits/dim of the validation-chosen evaluation",
                "curve_mean": "mean test bits/dim over the evaluations (lower: ahead during training)"}
# the comparisons' verdicts combine into the claim's: any contradicted makes it contradicted; else any not testable
# or inconclusive makes it that; it is confirmed only when every comparison confirms it
_PRECEDENCE = (CONTRADICTED, NOT_TESTABLE, INCONCLUSIVE)
# a claim that rests on several relations holds only if every one does: each relation's interval is widened for
# their number (Bonferroni), so that the claim's error rate stays at most 5%
CORRECTION = "Bonferroni"


def training_clock(*metrics: pd.DataFrame) -> str:
    """The column of metrics.csv that times the runs ``metrics`` alike (:data:`CLOCKS`): "cpu_s" when every one
    recorded a finite value at every evaluation, else "wall_s"."""
    def has_cpu(m):
        return "cpu_s" in m and len(m) > 0 and bool(np.isfinite(m.cpu_s.to_numpy(float)).all())
    return "cpu_s" if metrics and all(has_cpu(m) for m in metrics) else "wall_s"


def chosen_at(metrics: pd.DataFrame, time_s: float = math.inf, clock: str = "wall_s") -> dict:
    """What a run would have reported had it stopped at ``time_s`` seconds of training on ``clock`` (a column of
    :data:`CLOCKS`): among its evaluations at or before then (``metrics``: metrics.csv's ``step``, the clock,
    ``val_bpd``, ``test_bpd``), the one with the lowest validation bits/dim (the earliest of equal ones; a
    non-finite one is never chosen), its ``bpd`` (test bits/dim), ``val_bpd``, ``step`` and ``time_s``;
    ``steps_reached``, the last step evaluated by then; and ``curve_mean``, the mean test bits/dim over those
    evaluations. NaN where no evaluation is that early. ``time_s=inf``: the whole run (the equal-steps value)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock={clock!r} must be one of {tuple(CLOCKS)}")
    m = metrics.sort_values("step")
    m = m[m[clock].astype(float) <= time_s] if math.isfinite(time_s) else m
    out = {"bpd": math.nan, "val_bpd": math.nan, "step": math.nan, "time_s": math.nan,
           "steps_reached": float(m.step.max()) if len(m) else math.nan,
           "curve_mean": float(m.test_bpd.mean()) if len(m) else math.nan}
    finite = m[np.isfinite(m.val_bpd.to_numpy(float))]
    if len(finite):
        best = finite.loc[finite.val_bpd.idxmin()]
        out.update(bpd=float(best.test_bpd), val_bpd=float(best.val_bpd), step=float(best.step),
                   time_s=float(best[clock]))
    return out


def at_equal_compute(a: dict, b: dict, a_budget: dict | None = None, b_budget: dict | None = None) -> pd.DataFrame:
    """Two models' runs compared seed by seed at equal steps (``a``, ``b``: {seed: metrics.csv frame} of the runs
    of equal steps) and at equal compute (``a_budget``, ``b_budget``: the same of the runs that spend one FLOPs
    budget; None where a side has none, so its equal-compute values are NaN). A run's value is what it reports at
    its end (:func:`chosen_at`: its validation-chosen evaluation). One row per seed ``a`` and ``b`` both have: for
    each side ``<side>_<value>_<basis>`` for value in ``bpd``, ``step`` (of the chosen evaluation), ``curve_mean``
    and basis in :data:`BASES`; ``<side>_steps`` and ``<side>_steps_equal_compute`` (the runs' steps); and the
    equal-compute runs' measured training time, ``a_total_s``/``b_total_s`` on ``clock`` (:func:`training_clock`),
    which decides nothing."""
    rows = []
    for seed in sorted(set(a) & set(b)):
        row = {"seed": seed}
        budget = {"a": (a_budget or {}).get(seed), "b": (b_budget or {}).get(seed)}
        timed = [m for m in budget.values() if m is not None]
        clock = training_clock(*timed) if len(timed) == 2 else ""
        row["clock"] = clock
        for side, m in (("a", a[seed]), ("b", b[seed])):
            whole = chosen_at(m)
            row.update({f"{side}_{v}_equal_steps": whole[v] for v in ("bpd", "step", "curve_mean")})
            row[f"{side}_steps"] = whole["steps_reached"]
            at = chosen_at(budget[side]) if budget[side] is not None else {}
            row.update({f"{side}_{v}_equal_compute": at.get(v, math.nan) for v in ("bpd", "step", "curve_mean")})
            row[f"{side}_steps_equal_compute"] = at.get("steps_reached", math.nan)
            row[f"{side}_total_s"] = (float(budget[side][clock].astype(float).max()) if clock else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(metrics: dict, comparisons) -> pd.DataFrame:
    """One row per comparison and seed (:data:`PAIR_KEYS`, then :func:`at_equal_compute`'s columns).
    ``comparisons`` are (group, a, b, key of a, key of b, key of a's run at the budget, key of b's run at the
    budget) with ``metrics[key] = {seed: metrics.csv frame}``; a budget key is None (or absent) where that side has
    no run at the shared budget. A comparison whose equal-steps runs are not both in ``metrics`` is left out."""
    def budget(key):
        return metrics.get(key) if key is not None else None

    frames = [at_equal_compute(metrics[ka], metrics[kb], budget(kab), budget(kbb)).assign(group=group, a=a, b=b)
              for group, a, b, ka, kb, kab, kbb in (tuple(c) + (None,) * (7 - len(c)) for c in comparisons)
              if ka in metrics and kb in metrics]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=PAIR_KEYS)
    table = pd.concat(frames, ignore_index=True)
    return table[PAIR_KEYS + [c for c in table.columns if c not in PAIR_KEYS]]


def decide_comparison(pairs: pd.DataFrame, group: str, a: str, b: str, claimed: str, basis: str,
                      metric: str = "bpd") -> Decision:
    """``stats.decide_paired`` on one comparison's per-seed values (``a`` minus ``b``) at ``basis``; not testable,
    saying why, where the comparison has no runs (at equal compute: no runs at one FLOPs budget)."""
    if basis not in BASES or metric not in PAIR_METRICS:
        raise ValueError(f"basis={basis!r} must be one of {tuple(BASES)} and metric={metric!r} one of "
                         f"{tuple(PAIR_METRICS)}")
    rows = pairs[(pairs.group == group) & (pairs.a == a) & (pairs.b == b)] if len(pairs) else pairs
    if not len(rows):
        return Decision(NOT_TESTABLE, reason=f"no runs of both {a} and {b} ({group})")
    x, y = rows[f"a_{metric}_{basis}"].to_numpy(float), rows[f"b_{metric}_{basis}"].to_numpy(float)
    missing = ~(np.isfinite(x) & np.isfinite(y))
    if missing.any():
        seeds = rows.seed[missing].tolist()
        why = (f"seed(s) {seeds} have no runs of both at one FLOPs budget" if basis == "equal_compute"
               else f"seed(s) {seeds} have no finite evaluation")
        return Decision(NOT_TESTABLE, n_seeds=len(rows), reason=why)
    return decide_paired(x, y, claimed)


def decide_all(decisions: dict) -> tuple[str, Decision]:
    """The claim's decision from its comparisons' ({name: Decision}, in order): the first contradicted one, else
    the first not testable, else the first inconclusive; when every one is confirmed, the one whose interval lies
    nearest 0 (the weakest confirmation)."""
    if not decisions:
        raise ValueError("a claim needs at least one comparison")
    for verdict in _PRECEDENCE:
        for name, d in decisions.items():
            if d.verdict == verdict:
                return name, d
    return min(decisions.items(), key=lambda item: min(abs(item[1].ci_low), abs(item[1].ci_high)))


def pair_summary(pairs: pd.DataFrame, claimed="lower", metric: str = "bpd") -> pd.DataFrame:
    """One row per comparison and basis: the mean of each side over seeds, the mean paired difference ``a - b``
    with its 95% interval, the mean steps each side trained (at equal compute, with its measured training time),
    and the verdict for the ``claimed`` direction of ``a - b`` (one for all, or {(group, a, b): direction})."""
    rows = []
    for (group, a, b), part in pairs.groupby(["group", "a", "b"], sort=False):
        direction = claimed if isinstance(claimed, str) else claimed.get((group, a, b), "lower")
        for basis in BASES:
            d = decide_comparison(part, group, a, b, direction, basis, metric)
            steps = "steps" if basis == "equal_steps" else "steps_equal_compute"
            timed = basis == "equal_compute" and "a_total_s" in part
            rows.append({"group": group, "a": a, "b": b, "basis": basis, "n_seeds": len(part),
                         "a_mean": part[f"a_{metric}_{basis}"].mean(), "b_mean": part[f"b_{metric}_{basis}"].mean(),
                         "difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high,
                         "a_steps": part[f"a_{steps}"].mean(), "b_steps": part[f"b_{steps}"].mean(),
                         "a_total_s": part.a_total_s.mean() if timed else math.nan,
                         "b_total_s": part.b_total_s.mean() if timed else math.nan,
                         # an untimed pair's clock is "", NaN once its table was read back from its CSV
                         "clock": "/".join(c for c in dict.fromkeys(part["clock"]) if isinstance(c, str) and c)
                         if timed else "",
                         "claimed": direction, "verdict": d.verdict})
    return pd.DataFrame(rows)


def plot_pairs(summary: pd.DataFrame, title: str = "", unit: str = "bits/dim"):
    """The paired differences ``a - b`` with their 95% intervals over seeds, one row per comparison, at equal
    steps and at equal compute side by side (:func:`pair_summary`)."""
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(f"{r.group}: {r.a} - {r.b}" for r in summary.itertuples()))
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(names) + 1.4))
    for k, (basis, words) in enumerate(BASES.items()):
        part = summary[summary.basis == basis]
        y = [names.index(f"{r.group}: {r.a} - {r.b}") + (k - 0.5) * 0.3 for r in part.itertuples()]
        low = (part.difference - part.ci_low).fillna(0).clip(lower=0)
        high = (part.ci_high - part.difference).fillna(0).clip(lower=0)
        ax.errorbar(part.difference, y, xerr=[low.to_numpy(), high.to_numpy()], fmt="o" if k == 0 else "s",
                    capsize=3, label=words)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(f"a - b, {unit} (mean over seeds, 95% paired t-interval)")
    ax.legend(fontsize="small")
    fig.suptitle(title or "Paired differences at equal steps and at equal compute")
    fig.tight_layout()
    return fig


def relation_effects(pairs: pd.DataFrame, groups, a: str, b: str, basis: str, metric: str = "bpd") -> pd.Series:
    """The per-seed difference ``a - b`` at ``basis`` averaged over the cells (``groups``) a relation spans: one
    value per training seed that every cell has, NaN where a cell's value at that seed is not finite."""
    cells = []
    for group in groups:
        rows = pairs[(pairs.group == group) & (pairs.a == a) & (pairs.b == b)] if len(pairs) else pairs
        cells.append((rows[f"a_{metric}_{basis}"] - rows[f"b_{metric}_{basis}"]).set_axis(rows.seed.to_numpy()))
    if not cells or any(not len(c) for c in cells):
        return pd.Series(dtype=float)
    table = pd.concat(cells, axis=1, join="inner")
    return table.mean(axis=1, skipna=False).sort_index()


def decide_relation(pairs: pd.DataFrame, groups, a: str, b: str, claimed: str, basis: str, metric: str = "bpd",
                    confidence: float = CONFIDENCE) -> Decision:
    """"``a`` is ``claimed`` than ``b``" over the cells ``groups``: the t-interval, at ``confidence``, of the
    per-seed difference averaged over the cells (:func:`relation_effects`), so that a general claim is decided on
    its averaged effect rather than on every cell alone; not testable where a cell lacks the runs or a seed's value
    is not finite."""
    effects = relation_effects(pairs, groups, a, b, basis, metric)
    if not len(effects):
        return Decision(NOT_TESTABLE, reason=f"no runs of both {a} and {b} in every cell")
    finite = np.isfinite(effects.to_numpy(float))
    if not finite.all():
        seeds = effects.index[~finite].tolist()
        why = "no runs of both at one FLOPs budget" if basis == "equal_compute" else "no finite value"
        return Decision(NOT_TESTABLE, n_seeds=len(effects), reason=f"seed(s) {seeds} of {a} - {b} have {why}")
    iv = paired_interval(effects.to_numpy(float), np.zeros(len(effects)), confidence)
    verdict = verdict_of(iv, claimed)
    reason = f"{iv.n} seed(s); the test needs at least {MIN_SEEDS}" if verdict == NOT_TESTABLE else ""
    return Decision(verdict, iv.difference, iv.low, iv.high, iv.n, relation_test(confidence, len(groups)),
                    reason=reason)


def relation_test(confidence: float, n_cells: int) -> str:
    """The test's name as the claims table gives it."""
    cells = f"averaged over {n_cells} cells, " if n_cells > 1 else ""
    return f"paired t-interval over training seeds ({cells}{confidence:.1%}, two-sided)"


def paired_outcome(pairs: pd.DataFrame, comparisons, decide_on: str, metric: str = "bpd") -> Outcome:
    """A claim decided by paired comparisons: ``comparisons`` are (group, a, b, claimed direction of a - b). The
    comparisons that share (a, b, direction) form one relation, decided on the per-seed difference averaged over
    its cells (:func:`decide_relation`); a claim of R relations (e.g. "1x1 < shuffle < reverse": two) holds only
    if every one does, so each relation's interval is widened to confidence 1 - 0.05 / R (Bonferroni). The claim
    is contradicted when a corrected interval lies on the other side, confirmed when every one lies on the claimed
    side, else inconclusive (:func:`decide_all`). The numbers: every cell's uncorrected difference and interval at
    both bases, ``<basis> <group>: <a> - <b> <field>``, and every relation's at ``decide_on``, ``<a> - <b>
    <field>``, with the number of relations."""
    if decide_on not in BASES:
        raise ValueError(f"decide_on={decide_on!r} must be one of {tuple(BASES)}")
    relations, numbers = {}, {}
    for group, a, b, claimed in comparisons:
        relations.setdefault((a, b, claimed), []).append(group)
        for basis in BASES:
            d = decide_comparison(pairs, group, a, b, claimed, basis, metric)
            numbers.update({f"{basis} {group}: {a} - {b} {k}": getattr(d, k) for k in ("difference", "ci_low", "ci_high")})
    if not relations:
        raise ValueError("a claim needs at least one comparison")
    confidence = 1 - (1 - CONFIDENCE) / len(relations)
    decisions = {}
    for (a, b, claimed), groups in relations.items():
        d = decide_relation(pairs, groups, a, b, claimed, decide_on, metric, confidence)
        decisions[f"{a} - {b}"] = d
        numbers.update({f"{a} - {b} {k}": getattr(d, k) for k in ("difference", "ci_low", "ci_high")})
    numbers["relations"] = len(relations)
    name, decision = decide_all(decisions)
    if len(relations) > 1:
        decision = replace(decision, test=decision.test + f"; {CORRECTION} over {len(relations)} relations")
    return Outcome(decision, numbers, f"{BASES[decide_on]}, {name}")


# A claim about final NLL is read from runs that have reached it only if their validation curves have flattened:
# a run has, by this criterion, when its validation bits/dim fell by less than FLAT_DROP over the last quarter of
# its steps (a tenth of the smallest differences the claims here resolve, about 0.1 bits/dim). Runs still falling
# decide a claim about early training, and its verdict says so.
FLAT_DROP = 0.01
EARLY = "early training: validation still falling"


def still_falling(curves_df: pd.DataFrame, run_keys) -> dict:
    """How far the runs of a curves table (``base.curves`` rows, ``split`` "val") are from flat: for each run
    (``run_keys`` plus ``seed``), the drop of its validation bits/dim from its evaluation nearest three quarters of
    its steps to its last; returns {"runs": n, "runs still falling": count over :data:`FLAT_DROP`, "largest
    validation drop, last quarter": the largest drop}. A run with a non-finite evaluation in that quarter counts
    as falling (it has not settled)."""
    val = curves_df[curves_df.split == "val"]
    drops = []
    for _, run in val.groupby(list(run_keys) + ["seed"], sort=False):
        run = run.sort_values("step")
        last = run.step.max()
        start = run.iloc[(run.step - 0.75 * last).abs().argmin()]
        tail = run[run.step >= start.step].bpd.to_numpy(float)
        drops.append(float(start.bpd - tail[-1]) if np.isfinite(tail).all() else math.inf)
    drops = np.asarray(drops, dtype=float)
    return {"runs": len(drops), "runs still falling": int((drops > FLAT_DROP).sum()),
            "largest validation drop, last quarter": float(drops.max()) if len(drops) else math.nan}


def with_stage(outcome: Outcome, stage: dict) -> Outcome:
    """``outcome`` with the runs' :func:`still_falling` numbers, its label marked :data:`EARLY` where a run is."""
    label = outcome.decided_by + ("; " + EARLY if stage.get("runs still falling") else "")
    return replace(outcome, numbers={**outcome.numbers, **stage}, decided_by=label)
