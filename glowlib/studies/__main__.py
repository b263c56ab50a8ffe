"""``python -m glowlib.studies PROFILE``: the notebooks `make reproduce PROFILE=...` runs, one a line, in the
book's order (the Makefile reads them); without a profile, every study."""
import sys

from . import STUDIES, studies_of

if __name__ == "__main__":
    print("\n".join(studies_of(sys.argv[1]) if len(sys.argv) > 1 else STUDIES))
