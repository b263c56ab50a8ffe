"""The conda and pip paths install the same packages, and torch is pinned where the wheel lies on disk."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    conda_side = {m.strip() for m in re.findall(r"^\s+- (.+)$", pip_section, flags=re.M)} - {"-e ."}
    assert {_name(r) for r in conda_side} == {_name(r) for r in pip_side}
    assert conda_side == pip_side, f"version specifiers differ: {conda_side ^ pip_side}"


def test_torch_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
