"""The dataset files glowlib knows by their SHA-256: what the downloader fetches (:data:`SOURCES`) and the
decompressed idx contents the readers check (:data:`IDX_CONTENT_SHA256`). Imports nothing from glowlib, so that
both the downloader (:mod:`glowlib.download`) and the file readers (:mod:`glowlib.datafiles`) can use one table
without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Remote:
    """One file to fetch: its name, its URL, its hash as pooch writes it ("sha256:<hex>") and its size in bytes
    (None: unbounded; a download past it is refused)."""

    filename: str
    url: str
    known_hash: str
    size: int | None = None


_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's MNIST mirror
_FASHION_MIRROR = ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                   "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion/")

# dataset -> files. The SHA-256 sums are those TensorFlow Datasets and Keras check; the MD5
# sums in the comments are torchvision's and the CIFAR page's, for cross-checking.
SOURCES: dict[str, tuple[Remote, ...]] = {
    "mnist": (
        Remote("train-images-idx3-ubyte.gz", _MNIST_MIRROR + "train-images-idx3-ubyte.gz",  # md5 f68b3c2dcbeaaa9fbdd348bbdeb94873
               "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        Remote("train-labels-idx1-ubyte.gz", _MNIST_MIRROR + "train-labels-idx1-ubyte.gz",  # md5 d53e105ee54ea40749a09fcbcd1e9432
               "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        Remote("t10k-images-idx3-ubyte.gz", _MNIST_MIRROR + "t10k-images-idx3-ubyte.gz",  # md5 9fb629c4189551a2d022fa330f9573f3
               "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        Remote("t10k-labels-idx1-ubyte.gz", _MNIST_MIRROR + "t10k-labels-idx1-ubyte.gz",  # md5 ec29112dd5afa0611ce80d1b7f02629c
               "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ),
    "cifar10": (
        Remote("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",  # md5 c58f30108f718f92721af3b95e74349a
               "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),
    ),
    # Zalando's files at a fixed revision of their repository (the same bytes as their S3 bucket: the SHA-256 sums
    # are TensorFlow Datasets' for the S3 files); sizes as listed in the repository's README
    "fashion_mnist": tuple(
        Remote(f"{part}-ubyte.gz", _FASHION_MIRROR + f"{part}-ubyte.gz", f"sha256:{digest}", size)
        for part, digest, size in (
            ("train-images-idx3", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
            ("train-labels-idx1", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
            ("t10k-images-idx3", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
            ("t10k-labels-idx1", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148))),
}

# SHA-256 of the decompressed content of each idx file whose content is known, checked on every load (a file
# can be well-formed, of the right count, and still altered). Fashion-MNIST: computed from Debian's
# dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist/*.gz, decompressed); Debian re-gzipped the files,
# so their .gz bytes differ from Zalando's while the content is the same, hence the content's hash and not the
# .gz's. MNIST: no published hash of the decompressed files could be verified, so a gzipped MNIST file is checked
# against the .gz's SHA-256 that the downloader checks (SOURCES, above), and an uncompressed one by its
# format and image count only. Tests that write small fixture files switch a dataset's check off by emptying its
# entry (tests/fakedata.py set_counts); nothing else should.
IDX_CONTENT_SHA256: dict[str, dict[str, str]] = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "mnist": {},
}
