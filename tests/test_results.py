"""Results I/O, notebook parameter validation, the published numbers, and the claims page's computed verdicts.

No training here: the claims are computed from small hand-made results tables whose verdicts are known.
"""
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from glowlib import profiles, results
from glowlib.results import PROVENANCE, REQUIRED_PROVENANCE, Recorder, check_tidy, results_dir
from glowlib.studies import all_runs, base, bpd_table, check_parameters


# ---------------------------------------------------------------------------------------------------- Recorder
def _record(out_dir, notebook="samples", tables=("a",), figures=("f",)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rec = Recorder(notebook, out_dir, "smoke", 0, {"profile": "smoke", "seed": 0}, "cpu")
    rec.config("model", {"model": {"depth": 2}})
    for name in tables:
        rec.table(pd.DataFrame({"k": [1, 2], "v": [0.5, 0.25]}), name, keys=["k"])
    for name in figures:
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        rec.figure(fig, name)
        plt.close(fig)
    return rec.finish()


def test_recorder_writes_tables_figures_and_provenance(tmp_path):
    record = _record(tmp_path / "out")
    out = tmp_path / "out"
    saved = json.loads((out / PROVENANCE).read_text())
    assert set(REQUIRED_PROVENANCE) <= set(saved)
    assert saved["profile"] == "smoke" and saved["seed"] == 0 and saved["configs"]["model"]["model"]["depth"] == 2
    assert saved["tables"]["a.csv"]["keys"] == ["k"] and saved["figures"]["f.png"]["what"] == "f"
    assert isinstance(saved["git_dirty"], (bool, str)) and saved["wall_s"] >= 0
    assert pd.read_csv(out / "a.csv").shape == (2, 2)
    assert (out / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp")), "temporary files were left behind"
    assert record["notebook"] == "samples"


def test_recorder_records_each_figures_saved_size_dpi_and_smallest_drawn_font(tmp_path):
    """The sizes the book's legibility check reads: the PNG as saved (trimmed by bbox_inches="tight", so not the
    figsize), and the smallest font among the texts drawn (a legend's, an annotation's), never a hidden one's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    rec = Recorder("samples", tmp_path / "out", "smoke", 0, {}, "cpu")
    fig, (a, b, unused) = plt.subplots(1, 3, figsize=(9, 3), sharey=True)
    a.plot([0, 1], label="line")
    a.legend(fontsize=7)
    b.plot([1, 0])
    b.annotate("point", (0.5, 0.5), fontsize=7.5)
    b.set_title("title", fontsize=14)
    unused.text(0.5, 0.5, "never drawn", fontsize=3)
    unused.set_visible(False)
    b.set_ylabel("", fontsize=2)                           # empty: draws nothing
    fig.suptitle("what it shows", fontsize=16)
    rec.figure(fig, "f", dpi=80)
    facts = rec.finish()["figures"]["f.png"]
    with Image.open(tmp_path / "out" / "f.png") as image:
        width, height = image.size
    assert facts["what"] == "what it shows" and facts["dpi"] == 80
    assert facts["width_in"] == pytest.approx(width / 80, abs=1e-3) and facts["width_in"] < 9
    assert facts["height_in"] == pytest.approx(height / 80, abs=1e-3)
    assert facts["min_font_pt"] == 7.0
    a.get_legend().remove()
    assert results.smallest_font_pt(fig) == 7.5
    b.texts[0].remove()
    ticks = matplotlib.font_manager.FontProperties(size=plt.rcParams["xtick.labelsize"]).get_size_in_points()
    assert results.smallest_font_pt(fig) == pytest.approx(ticks)       # the tick labels', now the smallest
    plt.close(fig)
    blank = plt.figure()
    assert results.smallest_font_pt(blank) is None
    plt.close(blank)


def test_recorder_removes_only_its_own_stale_outputs(tmp_path):
    out = tmp_path / "out"
    _record(out, tables=("a", "b"))
    (out / "samples.ipynb").write_text("{}")                      # the executed notebook: not the Recorder's
    _record(out, tables=("a",))
    assert (out / "a.csv").exists() and not (out / "b.csv").exists()
    assert (out / "samples.ipynb").exists()


def test_recorder_refuses_a_folder_of_another_notebook(tmp_path):
    out = tmp_path / "out"
    _record(out, notebook="samples")
    with pytest.raises(FileExistsError, match="'samples', not 'temperature'"):
        Recorder("temperature", out, "smoke", 0, {})
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x\n1\n")
    with pytest.raises(FileExistsError, match="no glowlib run wrote"):
        Recorder("samples", other, "smoke", 0, {})
    assert (other / "data.csv").read_text() == "x\n1\n"


def _tamper(out, tables):
    """Rewrite the previous run's provenance as a damaged or hostile file could have it."""
    record = json.loads((out / PROVENANCE).read_text())
    record["tables"] = {name: {} for name in tables}
    (out / PROVENANCE).write_text(json.dumps(record))


@pytest.mark.parametrize("entry", ["ABSOLUTE", "../victim.csv", "sub/../../victim.csv", "..", "", "LINK"])
def test_a_rerun_never_deletes_a_file_its_old_provenance_names_outside_its_folder(tmp_path, entry):
    """An absolute name, a '..' or a link out of the folder in the previous provenance.json is refused when the
    Recorder starts, naming the file and the entry; the file it names is untouched."""
    out = tmp_path / "results" / "smoke" / "samples"
    victim = tmp_path / "results" / "smoke" / "victim.csv"
    _record(out, tables=("a", "b"))
    victim.write_text("keep\n")
    if entry == "LINK":
        (out / "link.csv").symlink_to(victim)
    name = {"ABSOLUTE": str(victim), "LINK": "link.csv"}.get(entry, entry)
    _tamper(out, [name, "a.csv"])
    with pytest.raises(ValueError) as error:
        _record(out, tables=("c",))
    message = str(error.value)
    assert str(out / PROVENANCE) in message and repr(name) in message and "\n" not in message
    assert victim.read_text() == "keep\n"
    assert (out / "a.csv").is_file(), "a refused run deletes nothing"


def test_stale_outputs_are_removed_by_plain_names_and_links_inside_the_folder(tmp_path):
    out = tmp_path / "out"
    _record(out, tables=("a", "b"))
    (out / "alias.csv").symlink_to(out / "b.csv")                 # a link that stays in the folder is allowed
    _tamper(out, ["a.csv", "b.csv", "alias.csv"])
    _record(out, tables=("a",))
    assert (out / "a.csv").is_file() and not (out / "b.csv").exists() and not (out / "alias.csv").is_symlink()


def test_confined_accepts_plain_names_only():
    from glowlib.results import confined
    assert confined("/r/x", "a.csv", "p.json") == results.Path("/r/x/a.csv")
    for bad in ("/etc/passwd", "../a.csv", "a/b.csv", "..", ".", "", "a\\b", 3, None):
        with pytest.raises(ValueError, match="p.json lists"):
            confined("/r/x", bad, "p.json")


def test_a_listed_name_of_a_folder_is_refused_when_the_recorder_starts(tmp_path):
    """finish() removes the previous run's outputs by name: a folder listed as one is refused before any work,
    naming the file and the entry, and is left whole."""
    out = tmp_path / "out"
    _record(out, tables=("a",))
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("mine")
    record = json.loads((out / PROVENANCE).read_text())
    record["tables"]["sub"] = {}
    (out / PROVENANCE).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"provenance.json lists 'sub', .* or a folder\)"):
        _record(out, tables=("a",))
    assert (out / "sub" / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------------- staging
def test_a_staged_run_writes_only_into_the_staging_folder(tmp_path, monkeypatch):
    """With $GLOWLIB_STAGE (make sets it) the Recorder leaves out_dir as it was, writes everything into the
    staging folder, and records no path of the staging folder (make moves it to out_dir)."""
    out, stage = tmp_path / "results" / "samples", tmp_path / "results" / ".samples.staging"
    _record(out, tables=("a", "b"))
    (out / "samples.ipynb").write_text("{}")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setenv(results.STAGE_ENV, str(stage))
    record = _record(out, tables=("a",))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "out_dir changed during a staged run"
    assert sorted(p.name for p in stage.iterdir()) == ["a.csv", "f.png", PROVENANCE]
    assert ".samples.staging" not in (stage / PROVENANCE).read_text() and record["tables"].keys() == {"a.csv"}


def test_a_staged_run_refuses_a_staging_folder_in_use_and_files_it_would_lose(tmp_path, monkeypatch):
    out, stage = tmp_path / "samples", tmp_path / ".samples.staging"
    _record(out, tables=("a",))
    monkeypatch.setenv(results.STAGE_ENV, str(stage))
    stage.mkdir()
    (stage / "x.csv").write_text("x\n")
    with pytest.raises(FileExistsError, match=r"staging folder .*\.samples\.staging .* is not empty"):
        Recorder("samples", out, "smoke", 0, {})
    (stage / "x.csv").unlink()
    (out / "notes.txt").write_text("mine")                           # replacing out_dir would lose it
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\], which no run of 'samples' wrote"):
        Recorder("samples", out, "smoke", 0, {})
    monkeypatch.setenv(results.STAGE_ENV, str(out))
    (out / "notes.txt").unlink()
    with pytest.raises(ValueError, match="is out_dir itself"):
        Recorder("samples", out, "smoke", 0, {})


@pytest.mark.parametrize("df, keys, message", [
    (pd.DataFrame({"k": []}), ["k"], "empty"),
    (pd.DataFrame({"k": [1, 1], "v": [1, 2]}), ["k"], "same"),
    (pd.DataFrame({"k": [1]}), ["missing"], "key columns"),
    (pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])), [], "nested"),
])
def test_check_tidy_rejects_untidy_tables(df, keys, message):
    with pytest.raises(ValueError, match=message):
        check_tidy(df, keys, "t")


def test_results_names_the_profiles_without_importing_them():
    assert results.PROFILES == profiles.PROFILES


def test_results_dir_names_bad_profile_and_notebook():
    assert results_dir("smoke", "samples", "/r").as_posix() == "/r/smoke/samples"
    with pytest.raises(ValueError, match="profile='huge'.*smoke"):
        results_dir("huge", "samples")
    with pytest.raises(ValueError, match="notebook='../plots' must be a notebook's name"):
        results_dir("smoke", "../plots")


# ---------------------------------------------------------------------------------------------------- parameters
COMMON = dict(profile="smoke", seed=0, out_dir="")


def _temperature(**changes):
    params = dict(COMMON, dataset="mnist5k", temperatures=[0.0, 0.7, 1.0], temperature=0.5, n_samples=10,
                  n_grid=4, n_sampling_seeds=5, n_training_seeds=3)
    return check_parameters("temperature", **{**params, **changes})


def test_check_parameters_normalises():
    p = _temperature()
    assert p.temperatures == [0.0, 0.5, 0.7, 1.0]                  # the highlighted T joins the table
    assert p.out_dir.endswith("results/smoke/temperature")
    p = check_parameters("bpd_table", **COMMON, datasets="auto", model_types="glow", n_seeds=3)
    assert p.datasets[:3] == ["mnist5k", "fashion_mnist", "digits"] and p.model_types == ["glow"]


@pytest.mark.parametrize("changes, message", [
    (dict(profile="huge"), r"profile='huge' is not allowed; choose one of \('smoke', 'cpu', 'gpu', 'paper'\)"),
    (dict(temperature=-0.5), r"temperature=-0.5 is out of range; allowed: \[0.0, 1.0\]"),
    (dict(temperatures=[0.7, -1]), r"temperatures\[1\]=-1.0 is out of range"),
    (dict(dataset="imagenet"), r"dataset='imagenet' is not allowed; choose one of \('mnist5k'"),
    (dict(n_samples=0), r"n_samples=0 is out of range"),
    (dict(temperature="hot"), r"temperature='hot' must be a number"),
])
def test_check_parameters_names_the_bad_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _temperature(**changes)


def test_check_parameters_rejects_unknown_and_missing_names():
    with pytest.raises(ValueError, match=r"no parameter \['temprature'\]; its parameters are"):
        _temperature(temprature=0.5)
    with pytest.raises(ValueError, match=r"\['n_pairs'\] were not given"):
        check_parameters("interpolation", **COMMON, dataset="mnist5k", n_points=3)
    with pytest.raises(ValueError, match="notebook='plots'"):
        check_parameters("plots", **COMMON)


def test_absent_dataset_is_named_with_the_available_ones(monkeypatch):
    monkeypatch.setattr(base, "is_available", lambda name: name != "cifar10")
    with pytest.raises(ValueError, match=r"dataset='cifar10': its files are not on this machine; available here"):
        check_parameters("interpolation", **COMMON, dataset="cifar10", n_pairs=2, n_points=3)


def test_manipulation_attributes_follow_the_dataset():
    p = check_parameters("manipulation", **COMMON, dataset="mnist5k", attributes="auto", alphas=[-1, 1],
                            n_images=2, n_direction=10, n_training_seeds=3)
    assert p.attributes == ["thickness", "slant"] and p.alphas == [-1.0, 1.0]
    with pytest.raises(ValueError, match="Smiling"):
        check_parameters("manipulation", **COMMON, dataset="mnist5k", attributes=["Smiling"], alphas=[1],
                            n_images=2, n_direction=10, n_training_seeds=3)


# ---------------------------------------------------------------------------------------------------- published
def test_published_numbers_hold_table_2_and_the_mnist_caveat():
    pub = bpd_table.published_bpd()
    assert {"model", "dataset", "bpd", "source", "note"} <= set(pub.columns)
    original = pub[pub.kind == "original"].set_index(["model", "dataset"]).bpd
    assert original[("Glow", "cifar10")] == 3.35 and original[("RealNVP", "cifar10")] == 3.49
    assert len(original) == 12                                   # 2 models x 6 datasets of Table 2
    mnist = pub[(pub.dataset == "mnist") & (pub.model == "Glow")]
    assert mnist.bpd.iloc[0] == 1.05 and "32x32x3" in mnist.note.iloc[0]
    assert not pub.duplicated(["model", "dataset", "source"]).any()


# ---------------------------------------------------------------------------------------------------- claims
# Each study's claims are tested beside it: tests/test_bpd_table.py, test_ablation_claims.py, test_cost_claims.py,
# test_manipulation_claims.py, test_sampling_cost.py, test_reviewers.py; the claims page in tests/test_studies.py.


def test_table_rows_per_profile_and_their_configs():
    assert bpd_table.table_models("cpu", "mnist5k") == []                 # LEFT_OUT_ROWS: decided elsewhere
    assert bpd_table.table_models("cpu", "digits") == ["realnvp", "glow"]
    assert bpd_table.table_models("cpu", "fashion_mnist") == [m for m in bpd_table.TABLE_MODELS if m != "macow+vardeq"]
    assert bpd_table.table_models("gpu", "cifar10") == list(bpd_table.TABLE_MODELS)
    run = bpd_table.table_run("smoke", "digits", "macow+vardeq")
    assert run.model_type == "macow" and type(run.model).__name__ == "MaCowConfig"
    assert run.train.dequantization == "variational"
    assert bpd_table.table_run("smoke", "digits", "macow").key() != run.key()
    assert bpd_table.table_run("cpu", "mnist5k", "glow").key() == profiles.profile_config("cpu", "mnist5k").key()
    with pytest.raises(ValueError, match="'glow\\+flow'.*choose one of"):
        bpd_table.table_run("smoke", "digits", "glow+flow")
    needed = {(r.model_type, r.data.dataset, r.train.dequantization) for r in all_runs("smoke")}
    assert {("macow", "digits", "variational"), ("glow", "digits", "variational")} <= needed
    assert ("macow", "mnist5k", "uniform") not in needed


# ---------------------------------------------------------------------------------------------------- git
def test_git_state_is_dirty_for_code_changes_but_not_for_results(tmp_path):
    import subprocess
    from glowlib.results import git_state

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.csv").write_text("x\n1\n")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "results" / "a.csv").write_text("x\n2\n")             # a notebook rewrote its own output
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_state(tmp_path)["git_dirty"] is True


# ---------------------------------------------------------------------------------------------------- make notebook
FAKE_PAPERMILL = '''
import json, os, signal, sys
from pathlib import Path
import pandas as pd
from glowlib.results import Recorder
args = sys.argv[1:]
params = {args[i + 1]: args[i + 2] for i, a in enumerate(args) if a == "-p"}
mode, value = os.environ["FAKE_RUN"].split(":")
rec = Recorder(Path(args[-1]).name.split(".")[0], params["out_dir"], params["profile"], 0, params, "cpu")
rec.table(pd.DataFrame({"k": [1], "v": [value], "t": [params.get("temperature")]}), "a", keys=["k"])
if mode == "kill":                                   # as a Ctrl-C or an out-of-memory kill of the run
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
if mode == "fail":
    sys.exit(1)
rec.table(pd.DataFrame({"k": [1]}), f"only_{value}", keys=["k"])
rec.finish()
Path(args[-1]).write_text(json.dumps({"run": value}))
'''


def _make_notebook(tmp_path, run: str, params: str = "") -> subprocess.CompletedProcess:
    """`make notebook NB=temperature PROFILE=smoke` with the real Makefile and the Recorder, but a papermill that
    runs FAKE_PAPERMILL (``run``: "ok:<value>", "fail:<value>" or "kill:<value>") instead of a kernel; results
    under ``tmp_path``."""
    import sys
    venv = tmp_path / "venv"
    if not venv.exists():
        (venv / "bin").mkdir(parents=True)
        (tmp_path / "fake_papermill.py").write_text(FAKE_PAPERMILL)
        python = venv / "bin" / "python"
        python.write_text(f"""#!/bin/bash
if [ "$1 $2" = "-m jupytext" ]; then while [ $# -gt 0 ]; do [ "$1" = -o ] && echo '{{}}' > "$2"; shift; done; exit 0; fi
if [ "$1 $2" = "-m papermill" ]; then shift 2; exec {sys.executable} {tmp_path / 'fake_papermill.py'} "$@"; fi
exec {sys.executable} "$@"
""")
        python.chmod(0o755)
        (venv / ".installed-stamp").touch()
        os.utime(venv / ".installed-stamp", (2**31, 2**31))       # newer than pyproject.toml
    command = ["make", "--no-print-directory", "notebook", "NB=temperature", "PROFILE=smoke", f"VENV={venv}",
               f"RESULTS={tmp_path / 'results' / 'smoke'}"] + ([f"PARAMS={params}"] if params else [])
    return subprocess.run(command, cwd=results.repo_root(), capture_output=True, text=True,
                          env={**os.environ, "FAKE_RUN": run}, timeout=300)


def test_make_notebook_replaces_the_results_only_when_the_run_succeeds(tmp_path):
    """A killed first run blocks nothing; a failed or killed rerun leaves the previous results whole (tables,
    figure, provenance and executed notebook of one run); a success replaces them all at once; a publish killed
    between its two renames gets the previous folder back."""
    final = tmp_path / "results" / "smoke" / "temperature"
    stage = final.parent / ".temperature.staging"

    def state():
        return {p.name: p.read_text() for p in final.iterdir()} if final.exists() else None

    done = _make_notebook(tmp_path, "kill:1")
    assert done.returncode != 0 and state() is None
    done = _make_notebook(tmp_path, "ok:2")
    assert done.returncode == 0, done.stderr
    assert sorted(state()) == sorted(["a.csv", PROVENANCE, "only_2.csv", "temperature.ipynb"]) and not stage.exists()
    saved = json.loads((final / PROVENANCE).read_text())
    assert saved["parameters"]["out_dir"] == str(final) and ".staging" not in json.dumps(saved)
    before = state()
    for run in ("fail:3", "kill:4"):
        done = _make_notebook(tmp_path, run)
        assert done.returncode != 0 and state() == before, run
    assert "the previous results in" in _make_notebook(tmp_path, "fail:5").stderr
    done = _make_notebook(tmp_path, "ok:6", params="-p temperature 0.5")
    assert done.returncode == 0, done.stderr
    assert sorted(state()) == sorted(["a.csv", PROVENANCE, "only_6.csv", "temperature.ipynb"]) and not stage.exists()
    assert pd.read_csv(final / "a.csv").to_dict("records") == [{"k": 1, "v": 6, "t": 0.5}]
    previous = final.parent / ".temperature.previous"
    final.rename(previous)                                           # killed between the two renames
    done = _make_notebook(tmp_path, "fail:7")
    assert done.returncode != 0 and sorted(state()) == sorted(["a.csv", PROVENANCE, "only_6.csv", "temperature.ipynb"])
    assert sorted(p.name for p in final.parent.iterdir()) == ["temperature"]


def test_make_notebook_refuses_a_results_folder_it_cannot_replace(tmp_path):
    done = _make_notebook(tmp_path, "ok:1")
    assert done.returncode == 0, done.stderr
    final = tmp_path / "results" / "smoke" / "temperature"
    final.chmod(0o555)
    try:
        if os.access(final, os.W_OK):
            pytest.skip("running as root: every folder is writable")
        done = _make_notebook(tmp_path, "ok:2")
        assert done.returncode != 0 and f"error: {final} is not writable" in done.stderr
        assert (final / "only_1.csv").exists()
    finally:
        final.chmod(0o755)


def test_the_hardware_names_the_cpu_beyond_its_model_name_and_its_bf16_path():
    from glowlib.results import CPU_FLAGS, hardware
    info = hardware("cpu")
    assert isinstance(info["cpu_bf16_path"], str) and info["cpu_bf16_path"]
    if Path("/proc/cpuinfo").is_file():
        assert info["cpu_id"].split()[1:2] == ["family"] and set(info["cpu_flags"]) <= set(CPU_FLAGS)
        flags = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
        assert ("amx_bf16" in info["cpu_flags"]) == (" amx_bf16" in flags)
