"""Writing files so that a crash never leaves half of one: the one helper the training code and the results
writer share (torch-free, so that the results writer imports no model code)."""
from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".tmp"      # temporary files are ``.<name>.<pid>.tmp`` beside their target


def package_version() -> str:
    """glowlib's version: pyproject.toml's, the single source (CITATION.cff repeats it), as the installed package
    metadata gives it; ``0+unknown`` for a source tree that is not installed. Here, in a leaf, so that the results
    writer records it without importing the package (and its model code)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("glowlib")
    except PackageNotFoundError:
        return "0+unknown"


class WriteError(OSError):
    """A file that could not be written; the message names it and says why, on one line."""


def temporary_name(path: Path) -> Path:
    """Where ``atomic_write_bytes`` writes ``path`` first: hidden, beside it, named by this process."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and a rename, so a crash never leaves a half file. A failed
    write (full disk, no permission) removes its temporary file and raises ``WriteError`` naming path and reason."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass                          # the folder itself is gone or unreadable: nothing was left in it
        error = WriteError(f"could not write {path}: {e.strerror or e}")
        error.errno = e.errno
        raise error from e


def remove_orphaned_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``folder`` (never a finished file: those are
    only ever renamed into place). Call it only while no other process writes there. Returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
