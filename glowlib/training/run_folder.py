"""A run folder (``train``'s ``out_dir``) and the rules for writing it: one writing process at a time, checked
writable before the first step, left tidy by killed writes, and never emptied silently.

- Ownership: ``claim`` takes an exclusive, non-blocking ``flock`` on ``OUT/.lock`` and writes its pid there. A
  second process that tries fails at once, naming the holder. The kernel drops the lock when its process dies, so
  a killed run leaves no stale lock behind (the file stays, with the dead pid, and means nothing).
- Writability: ``claim`` creates the folder and writes and removes a probe file, so a read-only or missing disk
  fails before any training time is spent, not at the first checkpoint.
- Killed writes: a file is written to a temporary beside it and renamed (``glowlib.files``); ``claim`` removes
  the temporaries that a killed process left (safe: it holds the lock), and only those of the files a run writes
  (``.last.pt.<pid>.tmp``, ...): another program's hidden ``*.tmp`` (an editor's) is not glowlib's to remove.
- Starting over: ``set_aside`` moves checkpoints and metrics into a dated subfolder instead of deleting them. A run
  that fails again keeps one ``failed-<date>/`` folder: a run is a pure function of its config, so each failure
  writes the same states, and stacking a copy per attempt would only fill the disk.
"""
from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path

from ..files import TMP_SUFFIX, WriteError, atomic_write_bytes
from .checkpoint import CheckpointError, CheckpointWriteError

LOCK_NAME = ".lock"
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")
# the temporaries of glowlib's own writes in a run folder (``files.temporary_name``): a run's files, the cache's
# done.json, and claim's probe
_OWN_TEMPORARY = re.compile(r"\.(last\.pt|best\.pt|metrics\.csv|done\.json|\.write-probe-\d+)\.\d+"
                            + re.escape(TMP_SUFFIX))


class RunFolderBusy(CheckpointError):
    """Another process is writing the run folder."""


class RunFolder:
    """A claimed run folder: holds the lock until ``release`` (or the process ends)."""

    def __init__(self, path: Path, handle: int):
        self.path, self._handle = path, handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            os.close(self._handle)
            self._handle = None


def claim(path: Path) -> RunFolder:
    """Create ``path`` if needed, lock it for this process, check it is writable, and remove the temporaries of
    killed writes. Raises ``RunFolderBusy`` naming the holder's pid, or ``CheckpointWriteError`` naming the path
    and the reason it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)   # no truncation: the holder's pid stays
    except OSError as e:
        raise CheckpointWriteError(f"cannot use {path} as a run folder: {e.strerror or e}") from e
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(handle)
        raise RunFolderBusy(f"{path} is being written by another process (pid {holder}); wait for it to finish, "
                            f"stop it, or choose another --out") from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    folder = RunFolder(path, handle)
    try:
        probe = path / f".write-probe-{os.getpid()}"
        atomic_write_bytes(probe, b"probe")
        probe.unlink()
        remove_own_temporaries(path)
    except (WriteError, OSError) as e:
        folder.release()
        raise CheckpointWriteError(str(e) if isinstance(e, WriteError) else
                                   f"could not write {path}: {e.strerror or e}") from e
    return folder


def remove_own_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries that glowlib's writes killed mid-way left in ``folder`` (``_OWN_TEMPORARY``), no
    other file. Call it only while holding the folder (``claim``). Returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if _OWN_TEMPORARY.fullmatch(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def set_aside(path: Path, why: str) -> Path | None:
    """Move the run files of ``path`` (checkpoints, metrics) into ``path/<why>-<date-time>/``; None if there were
    none. ``why="failed"`` reuses an earlier ``failed-*`` folder, its files replaced by this failure's (module
    docstring). The caller holds the folder (``claim``)."""
    present = [path / name for name in RUN_FILES if (path / name).exists()]
    if not present:
        return None
    earlier = sorted(d for d in path.glob("failed-*") if d.is_dir()) if why == "failed" else []
    if earlier:
        for file in present:
            os.replace(file, earlier[-1] / file.name)
        return earlier[-1]
    target = path / f"{why}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while target.exists():
        n += 1
        target = path / f"{why}-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    target.mkdir()
    for file in present:
        os.replace(file, target / file.name)
    return target
