"""The dataset files' readers and their checks, below :mod:`glowlib.data`'s loaders: idx files (MNIST,
Fashion-MNIST), CIFAR-10's python pickles, CelebA's whitespace tables, the image count each full file must hold
(:data:`EXPECTED_COUNTS`) and the SHA-256 an idx file must have where it is known (:mod:`glowlib.checksums`).

Files are checked, not trusted: idx headers and lengths, the image count of each file (a truncated download or copy
can still be a well-formed file), the known hashes (a file can be well-formed, of the right count, and still
altered), and CIFAR-10's pickles are read by an unpickler that only builds dicts, lists, bytes, ints and numpy
arrays, so a tampered batch cannot run code.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import pickle
from pathlib import Path

import numpy as np

from .checksums import IDX_CONTENT_SHA256, SOURCES

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 0x00000803, 0x00000801  # ubyte data, 3 dims / 1 dim
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
               "data_batch_5", "test_batch", "batches.meta")

# Images per file in the full datasets (mnist/fashion_mnist: per idx split, "train" and
# "t10k"; cifar10: per pickle batch; mnist5k and digits: the whole set). A file with another
# count is refused: a cut-short file can still be self-consistent. Tests that write small
# fixture files set the entries they need with monkeypatch.setitem; nothing else should.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "mnist": {"train": 60_000, "t10k": 10_000},
    "fashion_mnist": {"train": 60_000, "t10k": 10_000},
    "cifar10": {"data_batch": 10_000, "test_batch": 10_000},
    "mnist5k": {"all": 5_000},
    "digits": {"all": 1_797},
}
# datasets whose .gz files are checked against the downloader's hashes where their content's hash is not known
IDX_GZ_CHECKED = ("mnist",)
# files that passed their check in this process: (resolved path, size, mtime in ns, expected hash); a file changed
# since (another size or time) is checked again
_VERIFIED: set[tuple] = set()


class DataNotFoundError(FileNotFoundError):
    """Dataset files are missing; the message names the expected paths and how to get them."""


class DataFormatError(ValueError):
    """A dataset file exists but is malformed; the message names the file and the problem."""


def _known_hash(dataset: str | None, name: str, path: Path) -> tuple[str, str] | None:
    """(what is hashed: "content" or "gz", its expected SHA-256) for an idx file, or None where none is known."""
    if dataset is None:
        return None
    content = IDX_CONTENT_SHA256.get(dataset, {}).get(name)
    if content:
        return "content", content
    if dataset in IDX_GZ_CHECKED and path.suffix == ".gz":
        for remote in SOURCES.get(dataset, ()):
            if remote.filename == name + ".gz":
                return "gz", remote.known_hash.split(":", 1)[1]
    return None


def _check_hash(path: Path, raw: bytes, known: tuple[str, str]) -> None:
    """Raise DataFormatError unless ``path`` (``raw``: its decompressed content) has the known SHA-256; a file that
    passed once is remembered by its size and modification time."""
    kind, expected = known
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected)
    if memo in _VERIFIED:
        return
    data = raw if kind == "content" else path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        what = "decompressed content" if kind == "content" and path.suffix == ".gz" else \
            "content" if kind == "content" else "gzipped file"
        raise DataFormatError(f"{path}: the SHA-256 of its {what} is {got[:16]}..., not the published "
                              f"{expected[:16]}...: a damaged or altered copy; fetch it again (python -m "
                              f"glowlib.download) or restore it from its package")
    _VERIFIED.add(memo)


def read_idx(path: Path, magic: int, dataset: str | None = None) -> np.ndarray:
    """Read an idx file (gzipped if its name ends in .gz) of unsigned bytes: big-endian
    magic number (0x00000803 images, 0x00000801 labels; low byte = number of dims), one
    big-endian uint32 per dim, then the data. Validates magic and exact file length, and, for a
    ``dataset`` whose hashes are known (:data:`IDX_CONTENT_SHA256`), the file's SHA-256."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # includes gzip.BadGzipFile and truncated gzip streams
        raise DataFormatError(f"{path}: cannot read idx file ({e})") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: {len(raw)} bytes, too short for an idx header of {header} bytes")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise DataFormatError(f"{path}: idx magic number 0x{got:08x}, expected 0x{magic:08x}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + math.prod(dims):
        raise DataFormatError(f"{path}: {len(raw)} bytes, but the header (dims {dims}) "
                              f"implies {header + math.prod(dims)}")
    known = _known_hash(dataset, path.name.removesuffix(".gz"), path)
    if known is not None:
        if magic == IDX_IMAGES_MAGIC:      # a short file says so first (usually an interrupted copy)
            check_count(path, dataset, path.name.split("-")[0], dims[0])
        _check_hash(path, raw, known)
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def check_count(where, dataset: str, part: str, found: int) -> None:
    """Raise DataFormatError unless ``found`` images is the count :data:`EXPECTED_COUNTS`
    gives for ``dataset`` / ``part``."""
    expected = EXPECTED_COUNTS[dataset][part]
    if found != expected:
        raise DataFormatError(
            f"{where}: {found:,} images, expected {expected:,} ({dataset} {part}); "
            + ("a short file is usually an interrupted download or copy: fetch it again"
               if found < expected else "not the standard file"))


def _latin1_bytes(text, encoding):
    """Stand-in for ``_codecs.encode``: Python 3 writes bytes into protocol-2 pickles as
    ``_codecs.encode(text, 'latin1')``; no other use of it is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}): "
                                     "only latin1 text is accepted")
    return text.encode("latin1")


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:
        from numpy.core.multiarray import _reconstruct  # numpy 1.x
    return _reconstruct


# Every global a CIFAR-10 batch needs. The distributed files (Python 2, numpy 1) name
# numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype; the same dicts pickled
# by Python 3 with protocol 2 also name _codecs.encode (non-empty bytes), __builtin__.bytes
# (empty bytes) and, with numpy 2, numpy._core.multiarray._reconstruct. Dicts, lists, ints
# and Python 2 strings need no global.
_CIFAR_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): bytes,
    ("builtins", "bytes"): bytes,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_CIFAR_PICKLE_GLOBALS`: a pickle runs code only
    through the globals it names, so refusing every other one makes loading safe."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise DataFormatError(
                f"{self._path}: refused to load the global {module}.{name} named in the pickle; "
                "a CIFAR-10 batch holds only dicts, lists, bytes, ints and numpy arrays, and "
                "other globals could run code") from None


def read_cifar_pickle(path: Path, keys: tuple[bytes, ...]) -> dict:
    """Load a CIFAR-10 pickle (Python 2, protocol 2, read with encoding='bytes') with
    :class:`_CifarUnpickler`, which refuses anything but the globals the batches need."""
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, path).load()
    except DataFormatError:
        raise
    except Exception as e:  # pickle raises many types on garbage
        raise DataFormatError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        raise DataFormatError(f"{path}: expected a dict with keys {keys}")
    return obj


def read_table(path: Path, n_fields: int | None, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows after ``skip`` header lines, checking the field count."""
    rows = [line.split() for line in path.read_text().splitlines()[skip:] if line.strip()]
    for i, row in enumerate(rows):
        if n_fields is not None and len(row) != n_fields:
            raise DataFormatError(f"{path}: line {i + skip + 1} has {len(row)} fields, expected {n_fields}")
    return rows
