"""The studies, one per notebook of ``notebooks/`` and one page of the book each, in the book's order: the paper's
figures and tables, the reviewers' questions, the cost pages, and the claims page, which reads the others'
results and so comes last. Samples and their temperature stand together (both draw from the same models).

Pure Python without imports at the top: the Makefile reads the list with the system Python before .venv exists
(``python3 glowlib/studies/registry.py`` prints every study, one a line). A profile's own list, less the studies it
leaves out (``Profile.left_out``), needs glowlib and so the venv's Python: ``python -m glowlib.studies.registry
cpu``.
"""

PARTS = (
    ("Paper figures and tables",
     ("ablation", "bpd_table", "samples", "temperature", "interpolation", "manipulation", "nearest_neighbours")),
    ("Answers to the reviewers",
     ("what_works", "bits_5v8", "temperature_validity", "class_conditional", "sampling_cost")),
    ("Cost", ("precision", "cost")),
    ("Verdicts", ("claims",)),
)
STUDIES = tuple(name for _, names in PARTS for name in names)


def left_out(profile: str) -> dict:
    """{study: reason} of the studies ``profile`` leaves out of `make reproduce` (their notebooks are not run, their
    models not trained, their claims "not testable at this scale"): the Profile's ``left_out`` field, where the
    reason is given. Imports ``glowlib.profiles`` (so torch): only :data:`STUDIES` is free of imports."""
    from glowlib.profiles import profile as _profile
    return dict(_profile(profile).left_out)


def studies_of(profile: str) -> tuple:
    """The studies `make reproduce PROFILE=profile` runs, in the book's order (:data:`STUDIES` less
    :func:`left_out`)."""
    skipped = left_out(profile)
    return tuple(name for name in STUDIES if name not in skipped)


if __name__ == "__main__":
    import sys
    print("\n".join(studies_of(sys.argv[1]) if len(sys.argv) > 1 else STUDIES))
