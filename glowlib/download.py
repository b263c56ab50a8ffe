"""Download MNIST, Fashion-MNIST and CIFAR-10 into the layout :mod:`glowlib.data` reads, with checksums.

    python -m glowlib.download [cifar10|mnist|fashion_mnist|all|celeba] [--data-root DIR]

Files go under the data root (``--data-root``, else ``$GLOWLIB_DATA``, else
``~/.glowlib/data``): MNIST's four idx ``.gz`` files into ``<root>/mnist/`` (read gzipped,
as they are), CIFAR-10's python batches into ``<root>/cifar10/cifar-10-batches-py/``.

Every file is checked against the SHA-256 in :data:`SOURCES` before it is used. Nothing
half-written is left behind: files are downloaded into a temporary folder next to their
destination (so that the final ``rename`` stays on one file system), verified, unpacked
there, and only then renamed into place; on any failure the temporary folder is removed.
Each request has a timeout and a failed download is retried a few times. (A run killed
outright, by SIGKILL, leaves a hidden ``.<name>-download-*`` folder, which glowlib.data
ignores and the next run removes.)

Runs that download the same dataset into the same folder at once take turns (a lock per destination, in the
temporary folder so that the data root holds only data): the second finds the files in place. A file is cut off
and refused once it grows past the size in :data:`SOURCES` (a wrong URL or a hostile server cannot fill the disk),
a full disk is one line, and the files land with the mode the umask gives, as any file the user writes.

CelebA and CelebA-HQ are not downloaded: see :data:`CELEBA_HELP`.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from . import data as _data
from .checksums import SOURCES, Remote
from .datafiles import CIFAR_FILES

log = logging.getLogger(__name__)

DOWNLOADABLE: tuple[str, ...] = tuple(SOURCES)
_IDX_SETS = ("mnist", "fashion_mnist")  # four idx .gz files each, kept as they are
# under the data root, as glowlib.data reads them
_FOLDERS = {"mnist": "mnist", "cifar10": "cifar10", "fashion_mnist": "fashion_mnist"}
_CIFAR_DIR = "cifar-10-batches-py"  # the archive's only top-level folder
_BACKOFF_S = 2.0  # wait before retry k (k = 1, 2, ...): _BACKOFF_S * k seconds

CELEBA_HELP = """\
CelebA and CelebA-HQ are not downloaded automatically: they are distributed through
Google Drive / Baidu links under a non-commercial research agreement you accept yourself.
Put the files under $GLOWLIB_DATA/celeba/ (glowlib.data reads img_align_celeba/ and
list_attr_celeba.txt, plus list_eval_partition.txt if present):
  * CelebA-HQ, needed for the 256x256 rows (the paper's CelebA-HQ model): 30,000
    1024x1024 faces, from CelebAMask-HQ, https://github.com/switchablenorms/CelebAMask-HQ .
    Put CelebA-HQ-img/*.jpg in celeba/img_align_celeba/ and CelebAMask-HQ-attribute-anno.txt
    (the same format) as celeba/list_attr_celeba.txt, with no list_eval_partition.txt
    (CelebA's refers to other file names): the seeded 90/10 split gives 27,000 training
    images, as in the paper. CelebA crops resized up to 256x256 are not CelebA-HQ.
  * CelebA (aligned 178x218 images, centre-cropped; enough for the 64x64 rows):
    img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt from
    https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html , unpacked in celeba/."""


class DownloadError(RuntimeError):
    """A download failed or a file did not match its checksum; nothing was left behind."""


def download(name: str, data_root: str | os.PathLike | None = None, base_url: str | None = None, *,
             sources: Mapping[str, tuple[Remote, ...]] | None = None, retries: int = 3,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Download dataset ``name`` ("mnist" or "cifar10") into the data root and return the
    folder :mod:`glowlib.data` reads it from. Files already in place are kept (MNIST files
    whose SHA-256 matches; a complete ``cifar-10-batches-py/``).

    base_url: fetch every file from ``base_url + filename`` instead of the URLs in the table
        (a mirror, or a local server in tests).
    sources: replaces :data:`SOURCES` (other hashes or files, e.g. test fixtures).
    retries: further attempts after a failed or corrupt download, waiting 2 s, 4 s, ...
    timeout: seconds allowed to connect and between received bytes (requests' timeout).
    """
    import pooch

    sources = SOURCES if sources is None else sources
    if name == "celeba":
        raise ValueError(CELEBA_HELP)
    if name not in sources or name not in _FOLDERS:
        raise ValueError(f"cannot download {name!r}; expected one of {tuple(n for n in sources if n in _FOLDERS)}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    root = _data.data_root(data_root)
    target = root / _FOLDERS[name]
    remotes = sources[name]
    made = _make_dirs(target)
    try:
        with _download_lock(target):
            _download_locked(name, target, remotes, base_url, retries, timeout, progress)
    except BaseException:
        for d in reversed(made):  # folders this call created, deepest first, if left empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return target


def _todo(name: str, target: Path, remotes) -> list[Remote]:
    """The files of ``name`` not yet in place (idx files whose SHA-256 matches; a complete CIFAR-10 folder)."""
    if name in _IDX_SETS:
        return [r for r in remotes if not _matches(target / r.filename, r.known_hash)]
    batches = target / _CIFAR_DIR
    if batches.exists():
        missing = [f for f in CIFAR_FILES if not (batches / f).is_file()]
        if not missing:
            return []
        raise DownloadError(f"{name}: {batches} exists but is incomplete (missing "
                            f"{', '.join(missing)}); remove it and run again")
    return list(remotes)


def _download_locked(name, target: Path, remotes, base_url, retries, timeout, progress) -> None:
    """The download itself, with this destination's lock held (so the files in place are decided afresh: a run
    that held the lock before may have fetched them)."""
    todo = _todo(name, target, remotes)
    if not todo:
        log.info("%s: already in %s", name, target)
        return
    for stale in target.glob(f".{name}-download-*"):  # left by a run killed outright (SIGKILL); we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=target))
    downloader = _CappedDownloader(timeout, progress)
    mode = 0o666 & ~_umask()
    try:
        for remote in todo:
            url = remote.url if base_url is None else base_url.rstrip("/") + "/" + remote.filename
            os.chmod(_fetch(url, remote, staging, downloader, retries), mode)   # pooch's temporary file is 0600
        if name in _IDX_SETS:
            for remote in todo:  # each verified; a rename within one folder is atomic
                os.replace(staging / remote.filename, target / remote.filename)
        else:
            unpacked = staging / "unpacked"
            _unpack_cifar(staging / remotes[0].filename, unpacked)
            os.rename(unpacked / _CIFAR_DIR, target / _CIFAR_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s: ready in %s", name, target)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _download_lock(target: Path):
    """Exclusive lock on downloads into ``target``, held until the files are in place; its file lives in the
    temporary folder, named by a hash of the destination's path."""
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"glowlib-download-{digest}.lock"
    try:            # a predictable name in a shared folder: never follow a link planted there, readable by us alone
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise DownloadError(f"cannot open the download lock {path} ({e.strerror}); remove it if it is not a plain "
                            f"file of yours, and retry") from None
    with os.fdopen(fd, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another download into %s is running; waiting for it", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DownloadTooLarge(DownloadError):
    """A download that grew past its expected size: refused, not retried."""


class _CappedDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that streams with requests and stops a file
    that grows past the size the current :class:`Remote` gives (``limit``)."""

    def __init__(self, timeout: float, progress: bool):
        self.timeout, self.progress, self.limit = timeout, progress, None

    def __call__(self, url, output_file, pooch_, check_only=False):
        import requests
        from tqdm.auto import tqdm

        with requests.get(url, stream=True, timeout=self.timeout) as response:
            response.raise_for_status()
            declared = int(response.headers.get("Content-Length") or 0)
            if self.limit is not None and declared > self.limit:
                raise DownloadTooLarge(f"{url} announces {declared:,} bytes, more than the {self.limit:,} expected; "
                                       f"refused (a wrong URL or mirror?)")
            received = 0
            with open(output_file, "wb") as f, tqdm(total=declared or None, unit="B", unit_scale=True,
                                                    disable=not self.progress, leave=False) as bar:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    received += len(chunk)
                    if self.limit is not None and received > self.limit:
                        raise DownloadTooLarge(f"{url} sent more than the {self.limit:,} bytes expected; cut off "
                                               f"and refused (a wrong URL or mirror?)")
                    f.write(chunk)
                    bar.update(len(chunk))


def _fetch(url: str, remote: Remote, folder: Path, downloader, retries: int) -> Path:
    """pooch.retrieve into ``folder`` (it writes a temporary file there, checks the hash and
    only then renames it to ``remote.filename``), retrying network errors and mismatches."""
    import pooch
    import requests

    downloader.limit = remote.size
    for attempt in range(retries + 1):
        try:
            return Path(pooch.retrieve(url, remote.known_hash, fname=remote.filename, path=folder,
                                       downloader=downloader))
        except DownloadError:
            raise                               # too large: refused, not retried
        except (requests.RequestException, ValueError) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            final = attempt == retries or (status is not None and 400 <= status < 500)
            what = "does not match its checksum" if isinstance(e, ValueError) else "could not be downloaded"
            if final:
                raise DownloadError(f"{remote.filename} {what} (from {url}; "
                                    f"{attempt + 1} attempt(s)): {e}") from e
            log.warning("%s %s (%s); retrying", remote.filename, what, e)
            time.sleep(_BACKOFF_S * (attempt + 1))
        except OSError as e:                    # writing it failed (requests' errors are OSErrors too: above)
            hint = "; free some space and run again" if e.errno == errno.ENOSPC else ""
            raise DownloadError(f"{remote.filename} could not be written into {folder}: {e.strerror or e}{hint}") \
                from e
    raise AssertionError("unreachable")


def _matches(path: Path, known_hash: str) -> bool:
    import pooch

    return path.is_file() and pooch.file_hash(str(path), alg=known_hash.split(":")[0]) == known_hash.split(":")[1]


def _make_dirs(path: Path) -> list[Path]:
    """mkdir -p, returning the folders it created, outermost first."""
    made = []
    for d in reversed([path, *path.parents]):
        if not d.exists():
            d.mkdir()
            made.append(d)
    return made


def _unpack_cifar(archive: Path, into: Path) -> None:
    """Extract ``cifar-10-batches-py/<file>`` members (regular files only) into ``into``;
    any other member (links, absolute or ``..`` paths, other folders) is refused, so the
    archive cannot write outside ``into``."""
    out = into / _CIFAR_DIR
    out.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isdir() and parts == (_CIFAR_DIR,):
                    continue
                if not member.isfile() or len(parts) != 2 or parts[0] != _CIFAR_DIR or parts[1] in ("..", "."):
                    raise DownloadError(f"{archive}: unexpected member {member.name!r}")
                with tar.extractfile(member) as src, open(out / parts[1], "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DownloadError(f"{archive}: cannot unpack ({e})") from e
    missing = [f for f in CIFAR_FILES if not (out / f).is_file()]
    if missing:
        raise DownloadError(f"{archive}: no {', '.join(_CIFAR_DIR + '/' + f for f in missing)} in the archive")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m glowlib.download",
        description="Download MNIST, Fashion-MNIST and CIFAR-10 into the layout glowlib.data reads, checking "
                    "their SHA-256.")
    parser.add_argument("dataset", nargs="?", default="all", choices=(*DOWNLOADABLE, "all", "celeba"),
                        help="what to download (default: all = %s; celeba only explains where to "
                             "get it)" % " and ".join(DOWNLOADABLE))
    parser.add_argument("--data-root", help="default: $GLOWLIB_DATA, else ~/.glowlib/data")
    parser.add_argument("--base-url", help="fetch the files from this mirror instead")
    parser.add_argument("--retries", type=int, default=3, help="attempts after the first (0 to 10)")
    args = parser.parse_args(argv)
    if not 0 <= args.retries <= 10:
        parser.error(f"argument --retries: {args.retries} is not between 0 and 10")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # SIGTERM (e.g. a job scheduler stopping us) exits through the cleanup in download()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.dataset == "celeba":
        print(CELEBA_HELP)
        return 0
    names = DOWNLOADABLE if args.dataset == "all" else (args.dataset,)
    for name in names:
        try:
            download(name, args.data_root, args.base_url, retries=args.retries)
        except (DownloadError, OSError) as e:   # OSError: a data root that cannot be created or written
            print(f"error: {e}", file=sys.stderr)
            return 1
    if args.dataset == "all":
        print("\n" + CELEBA_HELP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
