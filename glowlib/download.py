"""Download MNIST and CIFAR-10 into the layout :mod:`glowlib.data` reads, with checksums.

    python -m glowlib.download [cifar10|mnist|all|celeba] [--data-root DIR]

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

CelebA and CelebA-HQ are not downloaded: see :data:`CELEBA_HELP`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import data as _data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remote:
    """One file to fetch: its name, its URL and its hash as pooch writes it ("sha256:<hex>")."""

    filename: str
    url: str
    known_hash: str


_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's MNIST mirror

# dataset -> files. The SHA-256 sums are those TensorFlow Datasets and Keras check; the MD5
# sums in the comments are torchvision's and the CIFAR page's, for cross-checking.
SOURCES: dict[str, tuple[Remote, ...]] = {
    "mnist": (
        Remote("train-images-idx3-ubyte.gz", _MNIST_MIRROR + "train-images-idx3-ubyte.gz",  # md5 f68b3c2dcbeaaa9fbdd348bbdeb94873
               "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        Remote("train-labels-idx1-ubyte.gz", _MNIST_MIRROR + "train-labels-idx1-ubyte.gz",  # md5 d53e105ee54ea40749a09fcbcd1e9432
               "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        Remote("t10k-images-idx3-ubyte.gz", _MNIST_MIRROR + "t10k-images-idx3-ubyte.gz",  # md5 9fb629c4189551a2d022fa330f9573f3
               "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        Remote("t10k-labels-idx1-ubyte.gz", _MNIST_MIRROR + "t10k-labels-idx1-ubyte.gz",  # md5 ec29112dd5afa0611ce80d1b7f02629c
               "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    "cifar10": (
        Remote("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",  # md5 c58f30108f718f92721af3b95e74349a
               "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    ),
}
DOWNLOADABLE: tuple[str, ...] = tuple(SOURCES)
_FOLDERS = {"mnist": "mnist", "cifar10": "cifar10"}  # under the data root, as glowlib.data reads them
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

    if name == "mnist":
        todo = [r for r in remotes if not _matches(target / r.filename, r.known_hash)]
    else:
        todo = list(remotes)
        batches = target / _CIFAR_DIR
        if batches.exists():
            missing = [f for f in _data._CIFAR_FILES if not (batches / f).is_file()]
            if not missing:
                todo = []
            else:
                raise DownloadError(f"{name}: {batches} exists but is incomplete (missing "
                                    f"{', '.join(missing)}); remove it and run again")
    if not todo:
        log.info("%s: already in %s", name, target)
        return target

    made = _make_dirs(target)
    for stale in target.glob(f".{name}-download-*"):  # left by a run killed outright (SIGKILL)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=target))
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    try:
        for remote in todo:
            url = remote.url if base_url is None else base_url.rstrip("/") + "/" + remote.filename
            _fetch(url, remote, staging, downloader, retries)
        if name == "mnist":
            for remote in todo:  # each verified; a rename within one folder is atomic
                os.replace(staging / remote.filename, target / remote.filename)
        else:
            unpacked = staging / "unpacked"
            _unpack_cifar(staging / remotes[0].filename, unpacked)
            os.rename(unpacked / _CIFAR_DIR, target / _CIFAR_DIR)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(made):  # folders this call created, deepest first, if left empty
            try:
                d.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(staging, ignore_errors=True)
    log.info("%s: ready in %s", name, target)
    return target


def _fetch(url: str, remote: Remote, folder: Path, downloader, retries: int) -> Path:
    """pooch.retrieve into ``folder`` (it writes a temporary file there, checks the hash and
    only then renames it to ``remote.filename``), retrying network errors and mismatches."""
    import pooch
    import requests

    for attempt in range(retries + 1):
        try:
            return Path(pooch.retrieve(url, remote.known_hash, fname=remote.filename, path=folder,
                                       downloader=downloader))
        except (requests.RequestException, ValueError) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            final = attempt == retries or (status is not None and 400 <= status < 500)
            what = "does not match its checksum" if isinstance(e, ValueError) else "could not be downloaded"
            if final:
                raise DownloadError(f"{remote.filename} {what} (from {url}; "
                                    f"{attempt + 1} attempt(s)): {e}") from e
            log.warning("%s %s (%s); retrying", remote.filename, what, e)
            time.sleep(_BACKOFF_S * (attempt + 1))
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
    missing = [f for f in _data._CIFAR_FILES if not (out / f).is_file()]
    if missing:
        raise DownloadError(f"{archive}: no {', '.join(_CIFAR_DIR + '/' + f for f in missing)} in the archive")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m glowlib.download",
        description="Download MNIST and CIFAR-10 into the layout glowlib.data reads, checking their SHA-256.")
    parser.add_argument("dataset", nargs="?", default="all", choices=(*DOWNLOADABLE, "all", "celeba"),
                        help="what to download (default: all = %s; celeba only explains where to "
                             "get it)" % " and ".join(DOWNLOADABLE))
    parser.add_argument("--data-root", help="default: $GLOWLIB_DATA, else ~/.glowlib/data")
    parser.add_argument("--base-url", help="fetch the files from this mirror instead")
    parser.add_argument("--retries", type=int, default=3)
    args = parser.parse_args(argv)
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
        except DownloadError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if args.dataset == "all":
        print("\n" + CELEBA_HELP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
