"""Every command the README, the book (book/*.md and the pages book/build.py writes), the published claims and
the error messages tell a user to run is accepted as written: each `make ...` by a dry run (`make -n`, which
prints the recipes without running them; every step of reproduce is a sub-make, so nothing runs), each
`python -m glowlib ...` by the command line's own parser (running it would train), `studies` and `check-params`
for real, and the PARAMS of each `make notebook` by the check make runs before the notebook.

A placeholder in a command (PROFILE=P, NB=..., --workers N) stands for each value it may take (PLACEHOLDERS); a
command with one not declared there fails, so that a new kind is declared, not skipped.
"""
import itertools
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from glowlib.profiles import PROFILES
from glowlib.studies import STUDIES

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
# what a placeholder stands for: the token as written -> the tokens to check in its place
PLACEHOLDERS = {"PROFILE=P": [f"PROFILE={p}" for p in PROFILES], "--profile P": [f"--profile {p}" for p in PROFILES],
                "NB=...": [f"NB={s}" for s in STUDIES], "NB=<name>": [f"NB={s}" for s in STUDIES],
                "NB=name": [f"NB={s}" for s in STUDIES], "--workers N": ["--workers 2"],
                "$SLURM_ARRAY_TASK_ID": ["0"], "$SLURM_ARRAY_TASK_COUNT": ["1"]}
# what a command starts with: environment assignments, then make or glowlib's command line
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:make(?:\s|$)|(?:\.venv/bin/)?python -m glowlib\s)")


# ------------------------------------------------------------------------------------------------ extraction
def _commands_in_markdown(text: str) -> list[str]:
    """The commands of the fenced code blocks (one a line, comments cut) and of the inline code spans (which may
    wrap across lines) of a Markdown text."""
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if COMMAND.match(line):
                found.append(line)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if COMMAND.match(span):
            found.append(span)
    return found


def _expand(command: str) -> list[str]:
    """The commands a written one stands for: each optional ``[...]`` left out and given (a ``A=x|y`` one given
    as each of its values, a ``[...=...]`` only left out), each placeholder replaced by each of its values."""
    group = re.search(r"(?<!\S)\[([^\]'\"]*)\](?!\S)", command)
    if group:
        inner = group.group(1)
        choices = [""]
        if "..." not in inner:
            name, _, values = inner.partition("=")
            choices += [f"{name}={v}" for v in values.split("|")] if "|" in values else [inner]
        return [c for choice in choices
                for c in _expand(" ".join((command[:group.start()] + choice + command[group.end():]).split()))]
    for token, values in PLACEHOLDERS.items():
        if re.search(re.escape(token) + r"(?!\S)", command):
            return [c for v in values for c in _expand(re.sub(re.escape(token) + r"(?!\S)", v, command, count=1))]
    return [command]


def _error_message_commands() -> list[str]:
    """The `make ...` commands that the error messages of the results reader, the book's build and the Makefile
    give, with their fields ({notebook}, {profile}, ...) filled in with every value."""
    found = set()
    for source in ("glowlib/results.py", "book/build.py", "Makefile"):
        text = (ROOT / source).read_text()
        for command in re.findall(r"make (?:[a-z-]+)(?: [A-Z_]+=(?:\{\w+\}|[\w.]+|\"[^\"]*\"))+", text):
            fields = re.findall(r"\{(\w+)\}", command)
            values = [PROFILES if f == "profile" else STUDIES for f in fields]
            for combo in itertools.product(*values):
                filled = command
                for f, v in zip(fields, combo):
                    filled = filled.replace("{" + f + "}", v, 1)
                found.add(filled)
    return sorted(found)


def _build_page_commands(tmp_path) -> list[str]:
    """The commands on the pages book/build.py writes: the intro without results and with some (its left-out
    line), and the page of each study without results, for every profile."""
    build = runpy.run_path(str(ROOT / "book" / "build.py"))
    texts = []
    for profile in PROFILES:
        root = tmp_path / profile
        texts.append(build["intro"](profile, root, STUDIES))
        run = root / profile / STUDIES[0]
        run.mkdir(parents=True)
        (run / "provenance.json").write_text(json.dumps({
            "notebook": STUDIES[0], "start_time": "2025-01-01T00:00:00", "git_sha": "abc", "git_dirty": False,
            "device": "cpu", "hardware": {"cpu": "X", "cpu_count": 2}, "torch_version": "2", "wall_s": 60}))
        texts.append(build["intro"](profile, root, STUDIES))
        texts += [build["placeholder"](profile, nb) for nb in STUDIES]
        # the end of every page: the command that reruns it, with and without a record of its run
        record = json.loads((run / "provenance.json").read_text())
        texts += [build["rerun"](profile, nb, r) for nb in STUDIES for r in (record, None)]
    return [c for t in texts for c in _commands_in_markdown(t)]


def _published_claim_commands() -> list[str]:
    """The commands in the evidence of the committed claims tables (what the claims page tells a reader to run)."""
    import pandas as pd
    found = []
    for path in sorted((ROOT / "results").glob("*/claims/claims.csv")):
        for text in pd.read_csv(path, dtype=str, keep_default_na=False)["evidence"]:
            found += _commands_in_markdown(text)
    return found


def _written_commands(tmp_path) -> dict[str, list[str]]:
    """Where each command comes from -> its commands, as written."""
    sources = {p.relative_to(ROOT).as_posix(): _commands_in_markdown(p.read_text())
               for p in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]}
    sources["pages written by book/build.py"] = _build_page_commands(tmp_path)
    sources["published claims"] = _published_claim_commands()
    sources["error messages"] = _error_message_commands()
    return sources


# ------------------------------------------------------------------------------------------------ checks
def _default_profile() -> str:
    """The PROFILE make computes on this machine, as `make` (its help) says: checked once as written, then given
    to the other commands in the environment, since computing it imports torch (seconds a command)."""
    done = subprocess.run([MAKE, "--no-print-directory"], cwd=ROOT, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PROFILE"})
    assert done.returncode == 0, done.stderr
    return re.search(r"PROFILE now: (\w+)", done.stdout).group(1)


def _check_make(command: str, profile: str) -> str | None:
    """None if `make -n` accepts ``command`` (as a shell would split it), else why not."""
    words = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "MAKEFLAGS", "MFLAGS")}
    env["PROFILE"] = profile
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    done = subprocess.run([MAKE, "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode:
        return f"make -n exited with {done.returncode}: {done.stderr.strip()[-500:]}"
    variables = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    if "notebook" in words and variables.get("PARAMS"):
        from glowlib.__main__ import check_papermill_args
        try:
            check_papermill_args(variables["NB"], variables.get("PROFILE", profile), shlex.split(variables["PARAMS"]))
        except ValueError as e:
            return f"its PARAMS are refused: {e}"
    return None


def _check_cli(command: str) -> str | None:
    """None if glowlib's command line accepts ``command``: parsed (running would train), and `studies` and
    `check-params`, which are quick and read only, run."""
    from glowlib.__main__ import main, parser
    argv = shlex.split(command)[3:]
    if len(argv) == 1 and argv[0] not in ("studies",):
        argv = argv + ["--help"]                 # a command named in prose: it exists and says how it is used
    try:
        parser().parse_args(argv)
        if argv[0] in ("studies", "check-params") and main(argv) != 0:
            return "it exits with an error"
    except SystemExit as e:
        return f"the parser refuses it (exit {e.code})" if e.code else None
    return None


def test_every_command_the_docs_and_messages_give_is_accepted(tmp_path, capsys):
    written = _written_commands(tmp_path)
    assert any("make notebook NB=bits_5v8 PROFILE=cpu" in c for c in written["README.md"])
    assert written["pages written by book/build.py"] and written["error messages"]
    profile = _default_profile()
    failures, wanted = [], {}
    for source, commands in written.items():
        for written_command in commands:
            expanded = _expand(written_command)
            if any(re.search(r"\.\.\.|<\w+>|\$\w", c) for c in expanded):
                failures.append(f"{source}: `{written_command}` has a placeholder PLACEHOLDERS does not declare")
                continue
            for command in expanded:
                wanted.setdefault(command, []).append(source)
    is_make = {c: not c.split()[0].endswith("python") and "make" in shlex.split(c)[:3] for c in wanted}
    # the dry runs side by side (each is a few processes that mostly wait); the command line in this process
    with ThreadPoolExecutor(4) as pool:
        checked = dict(zip([c for c in wanted if is_make[c]],
                           pool.map(lambda c: _check_make(c, profile), [c for c in wanted if is_make[c]])))
    checked.update({c: _check_cli(c) for c in wanted if not is_make[c]})
    failures += [f"{', '.join(sorted(set(wanted[c])))}: `{c}`: {why}" for c, why in checked.items() if why]
    capsys.readouterr()
    assert not failures, "\n".join(failures)


def test_a_study_the_profile_leaves_out_runs_with_make_notebook_but_not_with_reproduce():
    """make notebook takes any study of the registry, whatever PROFILE leaves out; make results (reproduce) runs
    only the profile's list."""
    from glowlib import studies as registry
    profile, skipped = next((p, [s for s in STUDIES if s not in registry.studies_of(p)]) for p in PROFILES
                            if set(registry.studies_of(p)) != set(STUDIES))
    for study in skipped:
        assert _check_make(f"make notebook NB={study} PROFILE={profile}", profile) is None
    done = subprocess.run([MAKE, "-n", "results", f"PROFILE={profile}"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not any(f"notebooks/{study}.py" in done.stdout for study in skipped)
    assert all(f"notebooks/{study}.py" in done.stdout or f"results/{profile}/{study}/" not in done.stdout
               for study in registry.studies_of(profile))


@pytest.mark.parametrize("nb, message", [("bits5v8", "NB=bits5v8 is not a notebook; choose one of: ablation"),
                                         ("'ablation claims'", "NB=ablation claims names several notebooks"),
                                         ("", "NB is not set; choose one of: ablation")])
def test_make_notebook_names_a_bad_nb_in_one_line(nb, message):
    done = subprocess.run(f"{MAKE} -n notebook PROFILE=cpu NB={nb}", shell=True, cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode != 0 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_extraction_finds_inline_wrapped_and_optional_commands():
    text = ("```bash\nmake reproduce [PROFILE=smoke|cpu]   # a comment\n```\nRun `make notebook NB=...` or "
            "`python -m glowlib models --profile P\n  --workers N`; not `make` alone in words, nor `makefile`.")
    commands = _commands_in_markdown(text)
    assert commands == ["make reproduce [PROFILE=smoke|cpu]", "make notebook NB=...",
                        "python -m glowlib models --profile P --workers N", "make"]
    assert _expand(commands[0]) == ["make reproduce", "make reproduce PROFILE=smoke", "make reproduce PROFILE=cpu"]
    assert len(_expand(commands[1])) == len(STUDIES)
    assert _expand(commands[2])[0] == f"python -m glowlib models --profile {PROFILES[0]} --workers 2"


# ------------------------------------------------------------------------------------------------ make env
def _fake_tools(tmp_path, chromium_installs: bool, dataset_installs: bool = True) -> dict:
    """A PATH on which `id` says root and `apt-get` logs its arguments and fails as told; no chromium on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "id").write_text("#!/bin/bash\necho 0\n")
    (bin_dir / "apt-get").write_text(
        "#!/bin/bash\n"
        f"echo \"$*\" >> {log}\n"
        f"if [[ \"$*\" == *chromium* ]]; then {'exit 0' if chromium_installs else 'echo snap: cannot communicate >&2; exit 100'}; fi\n"
        f"if [[ \"$*\" == *dataset-fashion-mnist* ]]; then exit {0 if dataset_installs else 100}; fi\n"
        "exit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "log": log}


def _system_packages(tmp_path, tools) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "--no-print-directory", "system-packages", "PROFILE=smoke",
                           f"FASHION_MNIST_DIR={tmp_path / 'no-dataset'}"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": tools["PATH"], "HOME": tools["HOME"]})


def test_a_chromium_that_cannot_be_installed_is_a_note_not_a_failure(tmp_path):
    """apt-get install chromium fails in a container (Ubuntu's package installs a snap): make env goes on, with a
    note saying what needs Chromium and how to get it; the dataset is still installed."""
    tools = _fake_tools(tmp_path, chromium_installs=False)
    done = _system_packages(tmp_path, tools)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "only the book's browser tests" in done.stdout and "apt-get install chromium" in done.stdout
    calls = tools["log"].read_text()
    assert "install -y -qq dataset-fashion-mnist" in calls and "install -y -qq chromium" in calls


def test_a_dataset_that_cannot_be_installed_is_named_with_its_fix_and_left_to_the_plan(tmp_path):
    """make env does not fail for data (a profile that needs none, or a user who runs make data next, goes on);
    it names the missing dataset and both ways to get it, and the plan stops a run that needs it before training
    (tests/training/test_plan.py)."""
    tools = _fake_tools(tmp_path, chromium_installs=True, dataset_installs=False)
    done = _system_packages(tmp_path, tools)
    assert done.returncode == 0, done.stdout + done.stderr
    note = [line for line in done.stdout.splitlines() if "Fashion-MNIST is missing" in line]
    assert len(note) == 1 and "apt-get install dataset-fashion-mnist" in note[0] and "make data" in note[0]


@pytest.mark.parametrize("args, message", [
    (["temperature", "-p", "seed", "12345678901234567890"], "seed=12345678901234567890 is out of range"),
    (["cost", "-p", "bench_dir", "/etc"], "bench_dir='/etc' must be a folder inside the repository's results/"),
    (["cost", "-p", "bench_dir", "results/../../etc"], "must be a folder inside the repository's results/"),
])
def test_check_params_refuses_unbounded_seeds_and_folders_outside_results(args, message, capsys):
    from glowlib.__main__ import main
    assert main(["check-params", "--profile", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert main(["check-params", "--profile", "smoke", "cost", "-p", "bench_dir", "results/bench"]) == 0


@pytest.mark.parametrize("kwargs, message", [({"workers": 0}, "--workers 0: give at least 1"),
                                             ({"workers": 2, "n_workers": 3}, "start one per machine")])
def test_make_models_refuses_a_bad_worker_count_before_building_the_run_list(monkeypatch, kwargs, message):
    """The run list takes minutes at the gpu profile (counted budgets); a mistyped count is refused before it."""
    import glowlib.__main__ as cli

    def too_early(profile):
        raise AssertionError("the run list was built before the worker count was checked")
    monkeypatch.setattr(cli, "all_runs", too_early)
    with pytest.raises(ValueError, match=re.escape(message)):
        cli.train_models("gpu", **kwargs)
