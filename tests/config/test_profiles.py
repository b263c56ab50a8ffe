"""A profile is one object: every per-profile choice is a field of ``profiles.Profile``, each with its reason, and no
study keeps a table of its own keyed by profile name."""
import ast
import inspect
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from glowlib import profiles
from glowlib.data import DATASETS, is_available
from glowlib.profiles import PROFILES, Profile, profile

ROOT = Path(__file__).resolve().parents[2]
STUDIES_DIR = ROOT / "glowlib" / "studies"


def test_one_profile_per_name():
    assert [profile(name).name for name in PROFILES] == list(PROFILES)
    with pytest.raises(ValueError, match="profile"):
        profile("laptop")


def test_every_field_has_its_reason():
    """Each field of Profile carries one comment line (on the line above it or its own line)."""
    source = inspect.getsource(Profile).splitlines()
    undocumented = []
    for f in fields(Profile):
        if f.name == "name":
            continue
        at = next(i for i, line in enumerate(source) if re.match(rf"\s+{f.name}\s*:", line))
        if "#" not in source[at] and not source[at - 1].strip().startswith("#"):
            undocumented.append(f.name)
    assert not undocumented, f"fields without a reason: {undocumented}"


def test_profiles_quotes_no_measured_figure():
    """The measurements live in results/bench/ and on the Cost page; profiles.py cites them. A bits/dim, a
    percentage, a time or a ratio in a comment would drift from its record."""
    text = (ROOT / "glowlib" / "profiles.py").read_text()
    comments = " ".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    quoted = re.findall(r"\d\.\d{2,}|\d+(?:\.\d+)?\s*%|\d+(?:\.\d+)?\s*(?:ms|GB|MB|TFLOP|hours?\b)|x\s?\d\.\d",
                        comments)
    assert not quoted, quoted


def _profile_keyed_dicts(path: Path) -> list[str]:
    """Dict displays (or dict(...) calls) in ``path`` whose keys are all profile names, and stores under a profile
    name (``TABLE["gpu"] = ...``). A dict mixing a profile name with other keys (``{"wall": ..., "cpu": ...}``) is
    not keyed by profile."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        keys = []
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
            keys = [k.arg for k in node.keywords]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.slice, ast.Constant):
            keys = [node.slice.value]
        if keys and set(keys) <= set(PROFILES):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_study_keeps_a_table_keyed_by_profile():
    offenders = [hit for path in sorted(STUDIES_DIR.glob("*.py")) for hit in _profile_keyed_dicts(path)]
    assert not offenders, f"per-profile choices belong in profiles.Profile: {offenders}"


def test_the_check_sees_a_profile_keyed_table(tmp_path):
    module = tmp_path / "study.py"
    module.write_text('DEPTHS = {"smoke": (1,), "cpu": (2,)}\nOTHER = {"mnist5k": 1}\nCLOCKS = {"wall": 1, "cpu": 2}\n'
                      'PRIORS = dict(cpu=("standard",))\n')
    assert _profile_keyed_dicts(module) == ["study.py:1", "study.py:4"]


def test_no_profile_name_branch_in_profile_config():
    source = inspect.getsource(profiles.profile_config) + inspect.getsource(profiles.ablation_config)
    assert not re.search(r"profile\s*(==|!=|in)\s*[\"'(]", source)


def test_the_figure_models_use_cifar10_at_gpu_and_paper():
    from glowlib.studies import base, manipulation, samples  # noqa: F401
    for name in ("gpu", "paper"):
        assert base.figure_dataset(name) == base.study_dataset(name) == "cifar10"
        assert [r.data.dataset for r in base.shared_runs(name)] == ["cifar10"]
        assert manipulation.manipulation_dataset(name) in ("celeba", "cifar10")
    assert base.figure_dataset("cpu") == base.figure_dataset("smoke") == "mnist5k"
    assert base.study_dataset("smoke") == "digits" and base.study_dataset("cpu") == "mnist5k"


def test_auto_dataset_is_the_profiles():
    from glowlib.studies import check_parameters
    p = check_parameters("interpolation", profile="cpu", seed=0, out_dir="", dataset="auto", n_pairs=2, n_points=3)
    assert p.dataset == "mnist5k"


def test_the_sample_judging_notebooks_use_a_dataset_whose_model_passes_the_gates():
    """cpu: temperature and nearest neighbours judge samples of the digits' Glow (the figures' mnist5k model fails
    the recall and class-coverage gates at its length); their training seeds are the bits/dim table's digits runs,
    so the move adds no training."""
    from glowlib.studies import base, bpd_table, temperature
    assert {nb: base.notebook_dataset("cpu", nb) for nb in ("temperature", "nearest_neighbours", "interpolation")} \
        == {"temperature": "digits", "nearest_neighbours": "digits", "interpolation": "mnist5k"}
    assert base.with_figure_dataset({"profile": "cpu", "dataset": "auto"}, "digits")["dataset"] == "digits"
    table = {r.key() for r in bpd_table.runs("cpu")}
    assert {r.key() for r in temperature.runs("cpu")} <= table


def test_the_run_keys_are_the_recorded_ones(monkeypatch):
    """Moving the choices into Profile changed no run: smoke's and cpu's keys are the recorded fp32 ones (bf16
    trainings of the precision study, which depend on the machine's bf16 path, left out as where they were
    recorded)."""
    import torch

    from glowlib.studies import all_runs, precision
    recorded = json.loads((ROOT / "tests" / "fixtures" / "all_runs_keys.json").read_text())
    available = [d for d in DATASETS if is_available(d)]
    if available != recorded["environment"]["available"] or torch.cuda.is_available():
        pytest.skip(f"the keys are recorded with {recorded['environment']['available']} on a CPU; here {available}")
    monkeypatch.setenv("GLOWLIB_PRECISION", "fp32")
    if not recorded["environment"]["bf16_fast_cpu"]:
        real = precision.runnable
        monkeypatch.setattr(precision, "runnable", lambda ps, device: real([p for p in ps if p != "bf16"], device))
    for name in ("smoke", "cpu"):
        assert [r.key() for r in all_runs(name)] == recorded[name], name


def test_registry_lists_every_study_without_imports_and_a_profiles_from_the_profile():
    import subprocess
    import sys

    from glowlib.studies import STUDIES, left_out, studies_of
    plain = subprocess.run(["python3", str(STUDIES_DIR / "registry.py")], capture_output=True, text=True, check=True)
    assert plain.stdout.split() == list(STUDIES)
    assert left_out("cpu") == dict(profile("cpu").left_out) and left_out("smoke") == {}
    assert set(studies_of("cpu")) == set(STUDIES) - set(profile("cpu").left_out)
    cpu = subprocess.run([sys.executable, "-m", "glowlib.studies", "cpu"], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert cpu.stdout.split() == list(studies_of("cpu"))
