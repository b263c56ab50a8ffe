"""The studies (glowlib.studies): one module per notebook, listed once in the registry that the Makefile, the book
and the package read; each notebook's parameters checked however they are passed; the models every notebook needs,
as they were before the studies were split; the one command line."""
import ast
import base64
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glowlib import __main__ as cli
from glowlib.config import RunConfig
from glowlib.data import DATASETS, is_available
from glowlib.layers import bf16_support
from glowlib.profiles import PROFILES
from glowlib import studies
from glowlib.analysis.claims import ClaimSpec
from glowlib.analysis.stats import NOT_TESTABLE
from glowlib.studies import STUDIES, all_claims, all_runs, check_parameters, registry, study

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def parameters_cell(name: str) -> dict:
    """The values of notebooks/<name>.py's parameters cell."""
    return cli.notebook_defaults(name)


def code_of(name: str) -> ast.Module:
    """The notebook's code cells (markdown cells are comments)."""
    return ast.parse((NOTEBOOKS / f"{name}.py").read_text())


# ---------------------------------------------------------------------------------------------------- registry
def test_the_registry_is_every_notebook_once_and_pure_python():
    assert sorted(STUDIES) == sorted(p.stem for p in NOTEBOOKS.glob("*.py")) and len(set(STUDIES)) == len(STUDIES)
    assert STUDIES[-1] == "claims", "the claims page reads every other notebook's results"
    top = [n for n in ast.parse(Path(registry.__file__).read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not top, "the registry imports nothing at its top (read by the system Python, before .venv)"
    printed = subprocess.run(["python3", registry.__file__], capture_output=True, text=True, check=True).stdout
    assert printed.split() == list(STUDIES)


def test_a_profile_leaves_out_only_named_studies_with_a_reason_and_trains_nothing_for_them():
    for profile in PROFILES:
        left_out = studies.left_out(profile)
        assert set(left_out) <= set(STUDIES) and "claims" not in left_out
        assert all(len(why) > 40 for why in left_out.values()), "each left-out study says why"
        printed = subprocess.run([sys.executable, "-m", "glowlib.studies", profile], capture_output=True,
                                 text=True, check=True, cwd=ROOT).stdout.split()
        assert printed == [s for s in STUDIES if s not in left_out] == list(studies.studies_of(profile))
        trained = {r.key() for r in all_runs(profile)}
        kept = {r.key() for name in studies.studies_of(profile) for r in study(name).runs(profile)}
        assert trained == kept
        for name in left_out:             # a left-out study's own models are not trained (shared ones may be)
            assert {r.key() for r in study(name).runs(profile)} - kept, name
    assert studies.studies_of("smoke") == STUDIES          # CI runs every notebook


def test_a_left_out_study_is_not_run_with_the_profile_s_reason(tmp_path):
    from glowlib.analysis.claims import decide_claims
    from glowlib.analysis.stats import NOT_RUN
    profile = next(p for p in PROFILES if studies.left_out(p))
    name, why = next(iter(studies.left_out(profile).items()))
    table, _ = decide_claims(study(name).CLAIMS, profile, tmp_path, studies.left_out(profile))
    assert (table.verdict == NOT_RUN).all() and table.evidence.str.contains(why, regex=False).all()
    assert (table.rerun == f"make notebook NB={name} PROFILE={profile}").all()
    other = next(s for s in STUDIES if s not in studies.left_out(profile) and study(s).CLAIMS)
    table, _ = decide_claims(study(other).CLAIMS, profile, tmp_path, studies.left_out(profile))
    assert table.evidence.str.startswith("no results").all()


def test_the_makefile_and_the_book_read_the_registry():
    shown = subprocess.run(["make", "-s", "--no-print-directory", "help", "PROFILE=smoke"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    line = next(l for l in shown.splitlines() if l.startswith("notebooks "))
    assert line.partition(": ")[2].split(";")[0].split() == list(STUDIES)
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    assert [c["file"] for part in toc["parts"] for c in part["chapters"]] == \
        [f"generated/{name}" for name in STUDIES] + ["reproduce", "bibliography"]


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_module_has_the_interface(name):
    module = study(name)
    assert module.NOTEBOOK == name and isinstance(module.PARAMETERS, dict)
    assert all(callable(check) for check in module.PARAMETERS.values())
    runs = module.runs("smoke")
    assert isinstance(runs, list) and all(isinstance(r, RunConfig) for r in runs)
    assert isinstance(module.CLAIMS, tuple) and all(isinstance(c, ClaimSpec) for c in module.CLAIMS)
    assert all(c.study == name for c in module.CLAIMS), "a study declares only its own claims"


@pytest.mark.parametrize("name", STUDIES)
def test_every_notebook_names_its_studys_parameters_and_imports_only_it(name):
    defaults = parameters_cell(name)
    assert set(defaults) == set(study(name).PARAMETERS) | {"profile", "out_dir"}
    assert defaults["profile"] == "smoke" and defaults["out_dir"] == ""
    check_parameters(name, **defaults)                                    # its defaults pass its own check
    imported = {node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(code_of(name)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    glowlib = {m for m in imported if m.split(".")[0] == "glowlib"}
    # the claims page also asks what each left-out study would cost, and the Cost page what each page's trainings
    # cost on one H100 (glowlib.left_out, above the studies: it prices their runs with the plan, which imports every
    # study)
    allowed = {"glowlib.results", "glowlib.studies", "glowlib.analysis.presentation"} | \
        ({"glowlib.left_out"} if name in ("claims", "cost") else set())
    assert glowlib <= allowed, glowlib
    assert {"glowlib.results", "glowlib.studies"} <= glowlib, glowlib
    line = f"from glowlib.studies import {name} as study"
    assert line in (NOTEBOOKS / f"{name}.py").read_text(), f"{name} imports its own study as `study`"


def test_parameter_cells_carry_no_trailing_comments():
    """papermill cannot parse a parameter line whose comment holds '=' ("Unable to parse line"): comments go above."""
    for name in STUDIES:
        cell = (NOTEBOOKS / f"{name}.py").read_text().split('# %% tags=["parameters"]')[1].split("# %%")[0]
        assert not [l for l in cell.splitlines() if "=" in l and "#" in l.split("=", 1)[1]], name


# ---------------------------------------------------------------------------------------------------- runs, claims
def test_the_run_lists_are_the_recorded_ones():
    """Each key names a cached model, so a change to what the notebooks train retrains models: it must be a
    decision, re-recorded with tests/fixtures/record_run_keys.py, never a side effect."""
    recorded = json.loads((ROOT / "tests" / "fixtures" / "all_runs_keys.json").read_text())
    here = {"bf16_fast_cpu": bf16_support("cpu")[0], "available": [d for d in DATASETS if is_available(d)]}
    if here != recorded["environment"] or sys.modules["torch"].cuda.is_available():
        pytest.skip(f"the recorded keys are for {recorded['environment']} on a CPU; this machine has {here}")
    for profile in ("smoke", "cpu"):
        assert [r.key() for r in all_runs(profile)] == recorded[profile], \
            f"{profile}: the run list changed; if that is intended, run tests/fixtures/record_run_keys.py"


def test_all_claims_come_in_the_books_order_each_from_its_study(tmp_path):
    claims, _ = all_claims("smoke", tmp_path)
    order = [STUDIES.index(w) for w in claims["where"]]
    assert order == sorted(order) and len(claims) == 26
    assert set(claims.verdict) == {NOT_TESTABLE}


# ---------------------------------------------------------------------------------------------------- parameters
def test_numbers_must_be_finite():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="temperature=.* must be a finite number"):
            check_parameters("nearest_neighbours", **{**parameters_cell("nearest_neighbours"), "temperature": bad})
        with pytest.raises(ValueError, match=r"temperatures\[1\]=.* must be a finite number"):
            check_parameters("samples", **{**parameters_cell("samples"), "temperatures": [0.7, bad]})


def check(name, *args, profile="smoke"):
    return cli.check_papermill_args(name, profile, list(args))


def test_each_papermill_form_is_read_as_papermill_reads_it(tmp_path):
    assert check("temperature", "-p", "temperature", "0.5").temperature == 0.5
    assert check("temperature", "--parameters", "n_grid", "4").n_grid == 4
    assert check("manipulation", "-r", "dataset", "mnist5k").dataset == "mnist5k"
    assert check("temperature", "-y", "temperatures: [0.5, 1]").temperatures == [0.5, 0.7, 1.0]
    path = tmp_path / "p.yaml"
    path.write_text("n_pairs: 3\nn_points: 4\n")
    p = check("interpolation", "-f", str(path))
    assert (p.n_pairs, p.n_points) == (3, 4)
    encoded = base64.b64encode(b"alphas: [-1, 1]").decode()
    assert check("manipulation", "-b", encoded).alphas == [-1.0, 1.0]
    # later forms win, as in papermill: -b, -f, -y, then -p, then -r
    assert check("temperature", "-p", "n_grid", "9", "-y", "n_grid: 4").n_grid == 9


@pytest.mark.parametrize("args, match", [
    (["-p", "temprature", "0.5"], r"has no parameter \['temprature'\]"),
    (["-r", "temperature", "0.5"], r"temperature='0.5' must be a number"),
    (["-p", "temperature", "nan"], r"temperature=nan must be a finite number"),
    (["-y", "temperature: .inf"], r"temperature=inf must be a finite number"),
    (["-y", "temperatures: [0.5, .nan]"], r"temperatures\[1\]=nan must be a finite number"),
    (["-f", "/nonexistent/p.yaml"], r"-f '/nonexistent/p.yaml': the parameters file cannot be read"),
    (["-b", base64.b64encode(b"n_grid: -1").decode()], r"n_grid=-1 is out of range"),
    (["-b", "not base64!"], r"-b 'not base64!' is not"),
    (["-y", "[1, 2]"], r"must be a YAML mapping"),
    (["-y", "a: [1"], r"is not valid YAML"),
    (["-p", "profile", "cpu"], r"profile='cpu' contradicts make's PROFILE=smoke"),
    (["-p", "out_dir", "/tmp/x"], r"out_dir='/tmp/x': make writes notebook 'temperature' into results/smoke/"),
    (["-y", "out_dir: ''"], r"out_dir='': make writes"),
    (["--log-output"], r"'--log-output' is not a papermill parameter option"),
    (["-p", "temperature"], r"-p needs a name and a value"),
])
def test_each_form_is_checked_by_name_and_value(args, match):
    with pytest.raises(ValueError, match=match):
        check("temperature", *args)


def test_the_profile_make_runs_may_be_repeated():
    assert check("temperature", "-p", "profile", "smoke").profile == "smoke"


# ---------------------------------------------------------------------------------------------------- command line
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "glowlib", *args], capture_output=True, text=True, cwd=ROOT)


def test_studies_prints_the_registry():
    done = run_cli("studies")
    assert done.returncode == 0 and done.stdout.split() == list(STUDIES)


@pytest.mark.parametrize("args, match", [
    (["check-params", "--profile", "smoke", "temperature", "-p", "temperature", "-1"],
     "temperature=-1.0 is out of range"),
    (["check-params", "--profile", "smoke", "plots"], "invalid choice: 'plots'"),
    (["models", "--profile", "huge"], "invalid choice: 'huge'"),
    (["train", "--out", "/tmp/unused", "--set", "model.depth=2", "--set", "model.nope=1"], "nope"),
    (["evaluate", "/nonexistent/best.pt"], "no checkpoint at /nonexistent/best.pt"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_every_user_error_is_one_line_and_status_2(args, match):
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_train_applies_every_set_flag():
    args = cli.parser().parse_args(["train", "--out", "x", "--set", "model.depth=2", "--set", "train.lr=0.01",
                                    "data.n_bits=5"])
    assert args.set == ["model.depth=2", "train.lr=0.01", "data.n_bits=5"]


@pytest.mark.parametrize("params, match", [
    ('-p temperature nan', "temperature=nan must be a finite number"),
    ("-y 'temperatures: [0.5, .inf]'", r"temperatures[1]=inf must be a finite number"),
    ("-p profile cpu", "profile='cpu' contradicts make's PROFILE=smoke"),
    ("-p out_dir /tmp/elsewhere", "out_dir='/tmp/elsewhere': make writes notebook 'temperature'"),
])
def test_make_refuses_bad_parameters_before_the_notebook_runs(tmp_path, params, match):
    stamp = tmp_path / "stamp"                        # the environment counts as installed: nothing is installed
    stamp.touch()
    done = subprocess.run(["make", "-s", "--no-print-directory", "notebook", "NB=temperature", "PROFILE=smoke",
                           f"PARAMS={params}", f"STAMP={stamp}", f"RESULTS={tmp_path / 'results'}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "running notebooks" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and match in errors[0], done.stderr


def test_every_claim_has_one_of_the_four_verdicts_or_not_run_and_a_known_source(tmp_path):
    """'not confirmed' could mean 'the paper is wrong' or 'we cannot tell': neither the code nor a page uses it."""
    from glowlib.analysis.stats import STATES
    from glowlib.analysis.claims import SOURCES
    for path in list((ROOT / "glowlib" / "studies").glob("*.py")) + list((ROOT / "notebooks").glob("*.py")):
        assert "not confirmed" not in path.read_text().lower(), path
    for claim in all_claims("smoke", tmp_path)[0].itertuples():
        assert claim.verdict in STATES and claim.source in SOURCES, claim
