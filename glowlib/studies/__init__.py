"""One module per notebook: ``glowlib.studies.<name>`` holds everything ``notebooks/<name>.py`` computes and plots.

Each study module defines ``PARAMETERS`` (its notebook's parameters, name -> checker), ``check_parameters(**params)``,
``runs(profile)`` (the trained models its notebook uses at its default parameters; [] if none), ``CLAIMS`` (the
claims its results decide, declared once: ``analysis.claims.ClaimSpec``; () if none), and its tables and figures. ``registry.STUDIES`` lists them in
the book's order; ``base`` holds what several share.

This package imports only the registry and the config's checks: a study module is loaded when it is asked for
(:func:`study`), so that ``glowlib.results`` can read the registry without importing a study.
"""
from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

from ..config import check_choice
from .registry import PARTS, STUDIES

__all__ = ["PARTS", "STUDIES", "left_out", "left_out_cost", "costed_left_out", "studies_of", "study",
           "check_parameters", "all_runs", "all_claims", "claim_specs"]


def left_out(profile: str) -> dict:
    """{study: reason} of the studies ``profile`` leaves out of `make reproduce` (their notebooks are not run,
    their models not trained; `make notebook` still runs one): the Profile's ``left_out``."""
    from ..profiles import profile as profile_of
    return dict(profile_of(profile).left_out)


def studies_of(profile: str) -> tuple:
    """The studies `make reproduce PROFILE=profile` runs, in the book's order (:data:`STUDIES` less
    :func:`left_out`)."""
    skipped = left_out(profile)
    return tuple(name for name in STUDIES if name not in skipped)


def study(name: str) -> ModuleType:
    """The module ``glowlib.studies.<name>`` of a notebook in :data:`STUDIES`."""
    check_choice("notebook", name, STUDIES)
    return importlib.import_module(f"{__name__}.{name}")


def check_parameters(name: str, **params) -> SimpleNamespace:
    """Notebook ``name``'s parameters checked and normalised by its study (see ``base.check_values``)."""
    return study(name).check_parameters(**params)


def all_runs(profile: str) -> list:
    """Every RunConfig the notebooks that ``profile`` runs use (``registry.studies_of``: a study the profile leaves
    out trains nothing), each once, in the order they are trained: the bits/dim table's models first (the
    paper-figure notebooks share them), then every other study's in the book's order (a run two studies share is
    trained once, in its first place)."""
    unique = {}
    for name in sorted(studies_of(profile), key=lambda n: n != "bpd_table"):
        for run in study(name).runs(profile):
            unique.setdefault(run.key(), run)
    return list(unique.values())


def claim_specs() -> list:
    """Every study's declared claims (``analysis.claims.ClaimSpec``, each study's ``CLAIMS``), in the book's
    order."""
    return [spec for name in STUDIES for spec in getattr(study(name), "CLAIMS", ())]


def left_out_cost(profile: str, name: str) -> dict:
    """What the study ``name`` would add to the training of ``profile`` were it run: its trainings that the
    profile's own run list (:func:`all_runs`) does not hold, each from ``glowlib.plan``'s step costs (kept
    measurements, else measured now on this machine, as `make plan` measures them) and dealt to the workers `make
    models` starts (``plan.makespan``). Where this machine lacks the profile's device the steps are counted, not
    timed, and the time is the plan's central H100-class case. {"seconds", "serial_seconds", "trainings",
    "workers", "where"}."""
    from .. import plan
    from ..runtime import default_workers, worker_threads
    from ..training.loop import training_device
    own = {run.key() for run in all_runs(profile)}
    runs = list({run.key(): run for run in study(name).runs(profile) if run.key() not in own}.values())
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
    """:func:`left_out` with each reason led by the study's cost (:func:`left_out_cost`): "costs X h of training
    on <device> (...)". Measures the steps it has no kept measurement of, so it is for the claims, not the listing
    of notebooks."""
    out = {}
    for name, why in left_out(profile).items():
        c = left_out_cost(profile, name)
        out[name] = (f"costs {c['seconds'] / 3600:.1f} h of training on {c['where']} ({c['trainings']} trainings "
                     f"the profile does not hold, {c['workers']} worker(s); glowlib.plan's step costs): {why}")
    return out


def all_claims(profile: str, root=None) -> tuple:
    """(claims table, numbers table): every declared claim decided from the results of ``profile`` under ``root``
    (``analysis.claims.decide_claims``), in the book's order; a study the profile leaves out reads "not run at the
    profile: costs X h ..." (:func:`costed_left_out`)."""
    from ..analysis.claims import decide_claims
    return decide_claims(claim_specs(), profile, root, costed_left_out(profile))
