"""What a study costs in training, by :mod:`glowlib.plan` as `make plan` counts it: a study the profile leaves out,
were it run (its trainings the profile does not hold, timed or counted; the claims page leads each left-out study's
reason with it, so a reader sees what "not run at this profile" would take), and each page's trainings on one H100
(counted: the Cost page's table, which each page's rerun footer quotes)."""
from __future__ import annotations

from . import plan, studies
from .runtime import default_workers, worker_threads
from .studies import all_runs
from .training.loop import training_device

__all__ = ["left_out_cost", "costed_left_out", "page_h100_costs"]


def left_out_cost(profile: str, name: str) -> dict:
    """What the study ``name`` would add to the training of ``profile`` were it run: its trainings that the
    profile's own run list (:func:`all_runs`) does not hold, each from ``glowlib.plan``'s step costs (kept
    measurements, else measured now on this machine, as `make plan` measures them) and dealt to the workers `make
    models` starts (``makespan``). Where this machine lacks the profile's device the steps are counted, not
    timed, and the time is the plan's central H100-class case. {"seconds", "serial_seconds", "trainings",
    "workers", "where"}."""
    own = {run.key() for run in all_runs(profile)}
    runs = list({run.key(): run for run in studies.study(name).runs(profile) if run.key() not in own}.values())
    workers, device = default_workers(), training_device("auto")
    timed = device.type == plan.PROFILE_DEVICE[profile]
    threads = worker_threads(workers) if device.type == "cpu" else None
    costs = plan.measured(runs, threads=threads, timed=timed)
    seconds = []
    for run in runs:
        cost = costs[plan.cost_key(run, threads, timed)]
        seconds.append(plan.run_seconds(run, run.train.steps, cost["s_per_step"], cost.get("setup_s", 0.0))
                       if timed else plan.gpu_run_seconds(run, run.train.steps, cost))
    where = plan.device_name(device) if timed else f"{plan.ASSUMED_GPU['name']} (counted, not timed)"
    return {"seconds": plan.makespan(seconds, workers), "serial_seconds": sum(seconds), "trainings": len(runs),
            "workers": workers, "where": where}


def costed_left_out(profile: str) -> dict:
    """``studies.left_out`` with each reason led by the study's cost (:func:`left_out_cost`): "costs X h of training
    on <device> (...)". Measures the steps it has no kept measurement of, so it is for the claims, not the listing
    of notebooks."""
    out = {}
    for name, why in studies.left_out(profile).items():
        c = left_out_cost(profile, name)
        out[name] = (f"costs {c['seconds'] / 3600:.1f} h of training on {c['where']} ({c['trainings']} trainings "
                     f"the profile does not hold, {c['workers']} worker(s); glowlib.plan's step costs): {why}")
    return out


def _page_title(name: str) -> str:
    """The page's title: the first heading of ``notebooks/<name>.py``, else the name; as ``book/build.py``'s
    ``page_title``, which cannot import glowlib (it loads torch): tests/test_book.py holds the two to one answer."""
    from .results import repo_root
    path = repo_root() / "notebooks" / f"{name}.py"
    lines = path.read_text().splitlines() if path.is_file() else []
    return next((line[4:].strip() for line in lines if line.startswith("# # ")), name)


def page_h100_costs(profile: str):
    """One row per page (every study, in the book's order, those the profile leaves out too): its trainings at
    ``profile`` (``study.runs``, each once, shared ones included) and their minutes on one H100-class GPU in each of
    the plan's cases (``plan.h100_seconds``: counted operations and FLOPs, not timed)."""
    import pandas as pd
    rows = []
    for name in studies.STUDIES:
        runs = list({run.key(): run for run in studies.study(name).runs(profile)}.values())
        rows.append({"notebook": name, "page": _page_title(name), "trainings": len(runs),
                     "run": name not in studies.left_out(profile),
                     **{f"h100_{case}_min": s / 60 for case, s in plan.h100_seconds(runs).items()}})
    return pd.DataFrame(rows)
