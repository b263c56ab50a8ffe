"""The studies, one per notebook of ``notebooks/`` and one page of the book each, in the book's order: the paper's
figures and tables, the reviewers' questions, the cost pages, and the claims page, which reads the others'
results and so comes last. Samples and their temperature stand together (both draw from the same models).

Pure Python without imports: the Makefile reads the list with the system Python before .venv exists
(``python3 glowlib/studies/registry.py`` prints every study, one a line), and the book's build reads it without
torch. A profile's own list, less the studies it leaves out (``Profile.left_out``), needs the profile and so the
venv's Python: ``python -m glowlib.studies cpu`` (``glowlib.studies.studies_of``).
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


if __name__ == "__main__":
    print("\n".join(STUDIES))
