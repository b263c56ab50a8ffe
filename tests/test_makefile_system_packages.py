"""`make system-packages` (run by make env, so by make test and make reproduce) never stops the build: with apt-get
failing (no network, a broken mirror) it leaves installed packages alone, tries what is missing, and says in one
line per missing thing what it is, why it is missing and how to install it. Run with the real Makefile and a PATH
of stubs only (apt-get, id, chromium), so nothing on this machine is installed or asked."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def stub(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"#!/bin/bash\n{body}\n")
    (folder / name).chmod(0o755)


def system_packages(tmp_path, *, root=True, update_ok=False, install_ok=False, fashion=False, chromium=False):
    """Run the target; returns (the run, the apt-get calls it made)."""
    bin_dir, data, system = tmp_path / "bin", tmp_path / "data", tmp_path / "fashion-mnist"
    bin_dir.mkdir()
    data.mkdir(exist_ok=True)
    if fashion:
        system.mkdir()
    calls = tmp_path / "apt-calls"
    installs = f'{shutil.which("mkdir")} -p {system}' if install_ok else 'exit 100'
    stub(bin_dir, "apt-get", f'echo "$*" >> {calls}\n'
                             f'case "$1" in update) {"exit 0" if update_ok else "echo E: no network >&2; exit 100"};;\n'
                             f'  install) case " $* " in *" dataset-fashion-mnist "*) {installs};; *) exit 100;; '
                             f'esac;; esac')
    stub(bin_dir, "id", f'echo {0 if root else 1000}')
    if chromium:
        stub(bin_dir, "chromium", 'echo "Chromium 1.0"')
    os.symlink(Path(sys.executable).resolve(), bin_dir / "python3")  # what the Makefile asks while it is read
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "GLOWLIB_DATA": str(data), "GLOWLIB_STARTED": "0"}
    done = subprocess.run([shutil.which("make"), "--no-print-directory", "-C", str(ROOT), "system-packages",
                           "PROFILE=smoke", f"FASHION_MNIST_DIR={system}"],
                          env=env, capture_output=True, text=True, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def notes(done) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def test_installed_packages_need_no_apt_get(tmp_path):
    done, calls = system_packages(tmp_path, fashion=True, chromium=True)
    assert done.returncode == 0 and notes(done) == [] and calls == []


def test_a_failing_apt_get_update_does_not_stop_the_build(tmp_path):
    """apt-get update fails, and so does every install: exit 0, one line per missing thing with why and how."""
    done, calls = system_packages(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls[0].startswith("update")
    lines = notes(done)
    assert len(lines) == 2, lines
    fashion, chromium = lines
    assert fashion.startswith("note: Fashion-MNIST is missing (apt-get update failed")
    assert "apt-get install dataset-fashion-mnist" in fashion and "make data" in fashion
    assert chromium.startswith("note: Chromium is missing") and "apt-get update failed" in chromium
    assert "apt-get install chromium" in chromium and "tests/test_book.py skips" in chromium


def test_with_the_dataset_installed_only_chromium_is_named(tmp_path):
    done, calls = system_packages(tmp_path, fashion=True)
    assert done.returncode == 0
    assert not any("dataset-fashion-mnist" in c for c in calls)      # installed: not asked for again
    lines = notes(done)
    assert len(lines) == 1 and lines[0].startswith("note: Chromium is missing"), lines


def test_after_a_failed_update_the_lists_already_here_still_install(tmp_path):
    done, calls = system_packages(tmp_path, install_ok=True, chromium=True)
    assert done.returncode == 0 and notes(done) == []
    assert calls[0].startswith("update") and any("dataset-fashion-mnist" in c for c in calls[1:])


def test_without_root_it_says_how_to_install_and_runs_nothing(tmp_path):
    done, calls = system_packages(tmp_path, root=False, chromium=True)
    assert done.returncode == 0 and calls == []
    lines = notes(done)
    assert len(lines) == 1 and lines[0].startswith("note: Fashion-MNIST is missing (not root"), lines


@pytest.mark.parametrize("folder", ["fashion_mnist", "fashion-mnist"])
def test_fashion_mnist_in_the_data_root_counts_as_here(tmp_path, folder):
    data = tmp_path / "data"
    (data / folder).mkdir(parents=True)
    done, calls = system_packages(tmp_path, chromium=True)
    assert done.returncode == 0 and notes(done) == [] and calls == []
