"""The studies, one per notebook of ``notebooks/`` and one page of the book each, in the book's order: the paper's
figures and tables, the reviewers' questions, the cost pages, and the claims page, which reads the others'
results and so comes last. Samples and their temperature stand together (both draw from the same models).

Pure Python without imports: the Makefile reads the list with the system Python (``python3
glowlib/studies/registry.py`` prints one name a line) and the book is built from it without torch.
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

# Studies a profile leaves out of `make reproduce` (their notebooks are not run, their models not trained, their
# claims "not testable at this scale"), with the reason. cpu: the 5-bit, temperature-validity and class-conditional
# studies judge the samples of mnist5k models over three training seeds each; at the size and length whose samples
# pass the sanity gates (bench/model_gates.py: an additive K=8, width 128 Glow at 2,500 steps) their models cost
# about as much as the rest of the profile together on a 2-core CPU in fp32 (`make plan PROFILE=cpu` measured 4.3
# against 4.2 hours of training on a 2-core AMD EPYC), beyond the profile's budget of 3 hours. `make notebook NB=<name> PROFILE=cpu` still runs one (training its models first).
LEFT_OUT = {
    "cpu": {name: ("its models (three training seeds each, at the size and length whose samples pass the sanity "
                   "gates) would double the cpu profile's training time, beyond its budget of 3 hours "
                   "on a 2-core CPU")
            for name in ("bits_5v8", "temperature_validity", "class_conditional")},
}


def studies_of(profile: str) -> tuple:
    """The studies `make reproduce PROFILE=profile` runs, in the book's order (:data:`STUDIES` less
    :data:`LEFT_OUT`)."""
    return tuple(name for name in STUDIES if name not in LEFT_OUT.get(profile, {}))


if __name__ == "__main__":
    import sys
    print("\n".join(studies_of(sys.argv[1]) if len(sys.argv) > 1 else STUDIES))
