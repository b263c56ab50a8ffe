"""Fake dataset files in the real formats (idx, CIFAR-10 python pickles, CelebA folders) for the data, download
and pipeline tests: small, seeded, written into a test's tmp_path."""
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glowlib import data as gd
from glowlib import datafiles

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


# ----------------------------------------------------------------------------- fixture writers


@pytest.fixture
def small_data(monkeypatch):
    """Accept the small files :func:`make_idx_dir` and :func:`make_cifar_dir` write by
    default (5 train / 3 test idx images, 2-image CIFAR batches) instead of the image
    counts of the full datasets."""
    set_counts(monkeypatch)


def set_counts(monkeypatch, n_train=5, n_test=3, n_batch=2, n_test_batch=None, checksums=False):
    """Accept fake files of these sizes; ``checksums=False`` also switches off the idx files' known SHA-256 (fake
    files never have them)."""
    for name in ("mnist", "fashion_mnist"):
        monkeypatch.setitem(gd.EXPECTED_COUNTS, name, {"train": n_train, "t10k": n_test})
        if not checksums:
            monkeypatch.setitem(gd.IDX_CONTENT_SHA256, name, {})
    if not checksums:
        monkeypatch.setattr(datafiles, "IDX_GZ_CHECKED", ())   # read there, by the idx reader
    monkeypatch.setitem(gd.EXPECTED_COUNTS, "cifar10",
                        {"data_batch": n_batch, "test_batch": n_test_batch or n_batch})


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw += array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def make_idx_dir(d: Path, gz: str, n_train=5, n_test=3, seed=0) -> dict:
    """The four idx files; gz in {"all", "none", "mixed"}. Returns the arrays written."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for k, (name, arr) in enumerate(arrays.items()):
        use_gz = gz == "all" or (gz == "mixed" and k % 2 == 0)
        write_idx(d / (name + ".gz" if use_gz else name), arr, 0x803 if arr.ndim == 3 else 0x801)
    return arrays


def make_cifar_dir(d: Path, n_per_batch=2) -> dict:
    """CIFAR-10 python batches as distributed: protocol-2 pickles of dicts with bytes keys."""
    rng = np.random.default_rng(1)
    d.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    written = {}
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": f.encode(), b"labels": rng.integers(0, 10, n_per_batch).tolist(),
                 b"data": rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8),
                 b"filenames": [b"x.png"] * n_per_batch}
        (d / f).write_bytes(pickle.dumps(batch, protocol=2))
        written[f] = batch
    meta = {b"num_cases_per_batch": n_per_batch, b"label_names": names, b"num_vis": 3072}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def celeba_pixels(w: int, h: int, k: int) -> np.ndarray:
    """An RGB image whose pixels encode their position (and image index k)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, np.full_like(x, 10 * k)], axis=-1).astype(np.uint8)


def make_celeba_dir(root: Path, files: list[str], size=(178, 218), partition=None,
                    listed_extra=()) -> np.ndarray:
    """img_align_celeba/ with the given images (PNG/JPEG by extension), list_attr_celeba.txt
    in the standard layout (also listing ``listed_extra`` files that are absent) and an
    optional list_eval_partition.txt. Returns the attribute matrix of all listed files."""
    d = root / "celeba"
    (d / "img_align_celeba").mkdir(parents=True)
    for k, f in enumerate(files):
        Image.fromarray(celeba_pixels(*size, k)).save(d / "img_align_celeba" / f)
    listed = list(files) + list(listed_extra)
    rng = np.random.default_rng(2)
    attrs = rng.choice([-1, 1], (len(listed), 40))
    lines = [str(len(listed)), " ".join(CELEBA_ATTRS) + " "]
    lines += [f + " " + " ".join(f"{v:2d}" for v in row) for f, row in zip(listed, attrs)]
    (d / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition is not None:
        (d / "list_eval_partition.txt").write_text(
            "".join(f"{f} {p}\n" for f, p in zip(listed, partition)))
    return attrs
