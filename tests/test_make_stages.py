"""`make test` and `make reproduce` say what they are doing and how far along they are: each stage (set-up, plan,
models, each notebook, book, pytest) ends with one line "== STAGE: done in D (T since the start)", and `make test`
ends with "make test: passed in T" or "make test: FAILED (the stage) after T". Run with the real Makefile and a
fake .venv whose python answers each step at once (a step that fails is chosen by $FAKE_FAIL)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# what the fake python does for each step make runs: the notebooks' list, plan and models print a line; jupytext
# writes its output file; papermill writes the provenance the Makefile checks for; pytest exits; a step named in
# $FAKE_FAIL exits 1 instead
FAKE_PYTHON = """#!/bin/bash
fail() {{ case " $FAKE_FAIL " in *" $1 "*) echo "fake $1 failed" >&2; exit 1;; esac; }}
case "$1 $2" in
  "-m glowlib.studies") echo "temperature claims"; exit 0;;
  "-m glowlib") fail "$3"; echo "fake glowlib $3"; exit 0;;
  "-m jupytext") while [ $# -gt 0 ]; do [ "$1" = -o ] && echo '{{}}' > "$2"; shift; done; exit 0;;
  "-m papermill") nb=$(basename "${{@: -2:1}}" .ipynb); fail "$nb"; mkdir -p "$GLOWLIB_STAGE";
                  echo '{{}}' > "$GLOWLIB_STAGE/provenance.json"; echo '{{}}' > "${{@: -1}}"; exit 0;;
  "-m pytest") fail pytest; echo "fake pytest passed"; exit 0;;
  "book/build.py --profile") fail book; exit 0;;
esac
exec {python} "$@"
"""


def make_test(tmp_path, fail: str = "") -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    if not venv.exists():
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text(FAKE_PYTHON.format(python=sys.executable))
        (venv / "bin" / "jupyter-book").write_text("#!/bin/bash\nexit 0\n")
        for tool in (venv / "bin").iterdir():
            tool.chmod(0o755)
        (venv / ".installed-stamp").touch()                     # newer than pyproject.toml: no set-up to do
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "GLOWLIB_STARTED")}
    return subprocess.run(["make", "--no-print-directory", "test", "PROFILE=smoke", f"VENV={venv}",
                           f"RESULTS={tmp_path / 'results'}", "NOTEBOOK_JOBS=1"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**env, "FAKE_FAIL": fail, "GLOWLIB_CACHE": str(tmp_path / "cache")})


STAGE = r"== {}: done in \d+ s \(\d+ s since the start\)"


def test_make_test_ends_each_stage_with_its_time_and_ends_with_one_line(tmp_path):
    done = make_test(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    stages = ["set-up", "plan", "models", r"notebook temperature \(1 of 2\)", r"notebook claims \(2 of 2\)", "book",
              "pytest"]
    found = [next((i for i, line in enumerate(lines) if re.fullmatch(STAGE.format(s), line)), None) for s in stages]
    assert None not in found and found == sorted(found), dict(zip(stages, found))
    assert re.fullmatch(r"make test: passed in \d+ s", lines[-1]) and "make test:" not in "\n".join(lines[:-1])


@pytest.mark.parametrize("fail, stage", [("pytest", "pytest"), ("models", "make reproduce PROFILE=smoke at models"),
                                         ("claims", "make reproduce PROFILE=smoke at notebook claims")])
def test_a_failed_make_test_names_the_stage_that_failed(tmp_path, fail, stage):
    done = make_test(tmp_path, fail)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("make test:")]
    assert len(ours) == 1 and re.fullmatch(rf"make test: FAILED \({stage}\) after \d+ s", ours[0]), done.stderr
    # after it only make's own report of the failed recipe
    assert all(line.startswith("make: ***") for line in done.stderr.splitlines()[done.stderr.splitlines().index(ours[0]) + 1:])
    assert "fake pytest passed" not in done.stdout
