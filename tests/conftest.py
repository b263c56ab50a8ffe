import json
import os

import pytest
import torch

# At most two threads a test process, and one per core it has to itself: `make test` runs one pytest-xdist worker
# per core, where two threads each would oversubscribe the cores (and torch's threads spin while they wait).
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))
# The tests record results into temporary folders, never into results/, and run on a working tree with edits (that
# is when they are run): they record from it explicitly (glowlib.results.check_committed); tests/test_citable.py
# checks the refusal with the override removed. Subprocesses (make notebook) inherit it.
os.environ["GLOWLIB_ALLOW_DIRTY"] = "1"

ERRORS_FILE = os.environ.get("GLOWLIB_EXACTNESS_LOG")


@pytest.fixture(scope="session")
def exactness_log():
    """Collects the largest round-trip and log-det errors; written to $GLOWLIB_EXACTNESS_LOG if set."""
    seen = {}
    yield seen
    if ERRORS_FILE and seen:
        with open(ERRORS_FILE, "w") as f:
            json.dump(seen, f, indent=1)
