import json
import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

ERRORS_FILE = os.environ.get("GLOWLIB_EXACTNESS_LOG")


@pytest.fixture(scope="session")
def exactness_log():
    """Collects the largest round-trip and log-det errors; written to $GLOWLIB_EXACTNESS_LOG if set."""
    seen = {}
    yield seen
    if ERRORS_FILE and seen:
        with open(ERRORS_FILE, "w") as f:
            json.dump(seen, f, indent=1)
