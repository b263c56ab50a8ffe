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

__all__ = ["PARTS", "STUDIES", "left_out", "studies_of", "study",
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


def all_claims(profile: str, root=None, left_out_reasons: dict | None = None) -> tuple:
    """(claims table, numbers table): every declared claim decided from the results of ``profile`` under ``root``
    (``analysis.claims.decide_claims``), in the book's order; a study the profile leaves out reads "not run at the
    profile: <reason>", the reason from ``left_out_reasons`` (``glowlib.plan.costed_left_out``: led by its cost),
    else :func:`left_out`'s."""
    from ..analysis.claims import decide_claims
    return decide_claims(claim_specs(), profile, root,
                         left_out(profile) if left_out_reasons is None else left_out_reasons)
