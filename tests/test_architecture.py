"""The package's shape, enforced: tiers import downward only, no cycles, small modules, one study module per
notebook, and a project that speaks of itself rather than of its development history.

Tiers, lowest first (a module may import its own tier and the ones below):

    files, config, checksums, bf16   leaves: no glowlib import at all
    layers                           every invertible layer (torch only)
    models                           Glow, RealNVP, MaCow, dequantisers
    objective, data, datafiles, splits, profiles, runtime, download, results
    training                         the loop, checkpoints, evaluation, the trained-model cache
    analysis, step_count, budget      measures on trained models; the work of one training step counted (FLOPs,
                                     operations) and the equal-compute budgets built on it
    studies                          one module per notebook
    __init__, __main__, plan, workers, left_out
                                     the public API, the command line, the plan of a profile, its workers, and
                                     what a study the profile leaves out would cost

Read from the source with ``ast`` (imports inside functions count too), so nothing is imported to check it.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "glowlib"
MAX_LINES = 600
TIERS = [("files", "config", "checksums", "bf16"), ("layers",), ("models",),
         ("objective", "data", "datafiles", "splits", "profiles", "runtime", "download", "results"),
         ("training",), ("analysis", "step_count", "budget"), ("studies",),
         ("__init__", "__main__", "plan", "workers", "left_out")]
TIER = {name: i for i, names in enumerate(TIERS) for name in names}
# the provenance writer records results; it must not pull in model or training code
NO_MODEL_CODE = ("glowlib.results", "glowlib.files", "glowlib.config", "glowlib.studies.registry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name.split(".") if is_package(path) else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [a.name for a in node.names], node.lineno))
    return found


def glowlib_edges() -> dict[str, set[str]]:
    """Module -> the glowlib modules it imports (``from . import x`` counts as importing ``pkg.x``)."""
    mods = modules()
    edges = {}
    for name, path in mods.items():
        out = set()
        for target, names, _ in imports_of(name, path):
            if not target.startswith("glowlib"):
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            out.update(subs or [target])
        out.discard(name)
        edges[name] = out
    return edges


def tier_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    assert key in TIER, f"{module} belongs to no tier; add it to TIERS in {Path(__file__).name}"
    return TIER[key]


def test_every_module_has_a_tier():
    for name in modules():
        tier_of(name)


def test_imports_go_down_the_tiers_only():
    bad = [f"{a} (tier {tier_of(a)}) imports {b} (tier {tier_of(b)})"
           for a, outs in glowlib_edges().items() for b in outs
           if b in modules() and tier_of(b) > tier_of(a)
           and not (a.startswith("glowlib.") and b == "glowlib")]
    assert not bad, "\n".join(bad)


def test_leaves_import_nothing_from_glowlib():
    for leaf in ("glowlib.config", "glowlib.files", "glowlib.studies.registry"):
        assert not glowlib_edges()[leaf], f"{leaf} must be a leaf, imports {glowlib_edges()[leaf]}"


def test_the_results_writer_imports_no_model_code():
    edges = glowlib_edges()
    for name in NO_MODEL_CODE:
        seen, todo = set(), [name]
        while todo:
            m = todo.pop()
            for b in edges.get(m, ()):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        heavy = sorted(m for m in seen if tier_of(m) in (TIER["layers"], TIER["models"], TIER["training"]))
        assert not heavy, f"{name} reaches model code through {heavy}"


def test_no_import_cycles():
    edges = glowlib_edges()
    # the package's own __init__ re-exports; submodules importing it would be a cycle through it
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for b in sorted(edges.get(m, ())):
            if state.get(b) == 1:
                cycles.append(stack[stack.index(b):] + [b])
            elif b in edges and not state.get(b):
                visit(b)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if not state.get(m):
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_nothing_in_glowlib_imports_notebooks_or_the_book():
    for name, path in modules().items():
        for target, _, line in imports_of(name, path):
            assert not target.split(".")[0] in ("notebooks", "book", "bench", "tests"), f"{path}:{line} {target}"


def test_no_private_name_is_imported_across_modules():
    bad = []
    for name, path in modules().items():
        for target, names, line in imports_of(name, path):
            if target.startswith("glowlib"):
                bad += [f"{path.relative_to(ROOT)}:{line} imports {n} from {target}"
                        for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines; split it (limit {MAX_LINES})"


def test_one_study_module_per_notebook():
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.py")}
    studies = {p.stem for p in (PACKAGE / "studies").glob("*.py")} - {"__init__", "base", "registry"}
    helpers = {s for s in studies if s.startswith("_")}
    assert notebooks == studies - helpers, (sorted(notebooks - studies), sorted(studies - helpers - notebooks))
    registry = subprocess.run([sys.executable, str(PACKAGE / "studies" / "registry.py")], capture_output=True,
                              text=True, check=True).stdout.split()
    assert sorted(registry) == sorted(notebooks) and len(registry) == len(set(registry))


# development history has no place in the project: a reader cannot check "issue 9" or "stop 13"
HISTORY = re.compile(r"tracker issue|\bissues? \d+|\(issue|\bstops? \d+\b|the brief\b|\bcommit [0-9a-f]{7}|"
                     r"PAPER\.md|the issue's", re.IGNORECASE)
SPEAKING_FILES = ["glowlib", "notebooks", "bench", "book", "tests", "README.md", "Makefile", "pyproject.toml",
                  "environment.yml", ".ci", ".github"]


def project_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *SPEAKING_FILES],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in listed if Path(f).suffix in (".py", ".md", ".yml", ".yaml", ".toml", ".txt", "")
            and (ROOT / f).is_file()]


def test_the_project_does_not_cite_its_development_history():
    me = Path(__file__).resolve()
    hits = []
    for path in project_files():
        if path.resolve() == me:
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


def test_history_pattern_catches_what_it_must():
    for text in ("see tracker issue 6", "(issue 9)", "at stop 13", "the brief's setting", "commit 792a226",
                 "PAPER.md", "The issue's test"):
        assert HISTORY.search(text), text
    for text in ("a 1x1 convolution", "stopping at step 13", "the official commit log", "issued 5 samples"):
        assert not HISTORY.search(text), text


# ---------------------------------------------------------------------------------------------------- studies
STUDIES_DIR = PACKAGE / "studies"
# what every study may import: the shared helpers, the registry, and the package (which loads a study by name)
SHARED_STUDY_MODULES = {"glowlib.studies", "glowlib.studies.base", "glowlib.studies.registry"}


def study_modules() -> set[str]:
    return {module_name(p) for p in STUDIES_DIR.glob("*.py") if p.stem not in ("__init__", "base", "registry")}


def imported_modules(path: Path, name: str) -> set[str]:
    """The glowlib modules a file imports (``from glowlib.studies import ablation`` counts as the module
    ``glowlib.studies.ablation``)."""
    mods, out = set(modules()), set()
    for target, names, _ in imports_of(name, path):
        if target.startswith("glowlib"):
            subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in mods}
            out |= subs or {target}
    return out


def test_no_study_imports_another_study():
    """Studies are siblings: what two share lives in ``analysis/`` or ``studies/base.py``."""
    studies = study_modules()
    bad = [f"{name} imports {other}" for name in sorted(studies)
           for other in sorted(imported_modules(modules()[name], name) & studies - {name})]
    assert not bad, "\n".join(bad)


def test_a_notebook_imports_no_other_notebooks_study():
    """``notebooks/<name>.py`` imports at most ``glowlib.studies.<name>`` of the studies."""
    studies = study_modules()
    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        own = f"glowlib.studies.{path.stem}"
        bad += [f"notebooks/{path.name} imports {m}" for m in sorted(imported_modules(path, f"notebooks.{path.stem}")
                                                                     & studies - {own})]
    assert not bad, "\n".join(bad)


def test_bench_imports_no_study():
    """The benchmarks measure; what they share with a page lives in ``analysis/`` or ``training/``."""
    bad = [f"bench/{path.name}:{line} imports {target}" for path in sorted((ROOT / "bench").glob("*.py"))
           for target, _, line in imports_of(f"bench.{path.stem}", path) if target.startswith("glowlib.studies")]
    assert not bad, "\n".join(bad)
