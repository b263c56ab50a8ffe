"""Tests for glowlib.download, fully offline: a local HTTP server on 127.0.0.1 serves small
fixture archives in the real layouts; the table's hashes are replaced by the fixtures'."""

import errno
import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pooch")

from glowlib import data as gd  # noqa: E402
from glowlib.datafiles import CIFAR_FILES  # noqa: E402
from glowlib import download as dl  # noqa: E402
from glowlib.download import DownloadError, Remote, download  # noqa: E402
from fakedata import make_cifar_dir, make_idx_dir, set_counts  # noqa: E402

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ----------------------------------------------------------------------------- offline guard


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch):
    """Refuse every connection but 127.0.0.1, ignore proxies, and make retries instant."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(dl, "_BACKOFF_S", 0.0)


# ----------------------------------------------------------------------------- local server


class _Handler(BaseHTTPRequestHandler):
    """Serves server.files[name] at /name. Names in server.cut announce their full length
    but send half and close; names in server.stall send nothing until the test ends."""

    def do_GET(self):
        name = self.path.lstrip("/")
        self.server.hits.append(name)
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        if name in self.server.stall:
            self.server.release.wait(30)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.server.cut:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads, httpd.block_on_close = True, False
    httpd.files, httpd.cut, httpd.stall, httpd.hits = {}, set(), set(), []
    httpd.release = threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


# ----------------------------------------------------------------------------- fixtures


def sha256(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def cifar_archive(tmp_path: Path, extra: tarfile.TarInfo | None = None) -> tuple[bytes, dict]:
    """cifar-10-python.tar.gz as distributed: cifar-10-batches-py/ with the six batches,
    batches.meta and readme.html; 2 images per batch."""
    src = tmp_path / "cifar_src" / "cifar-10-batches-py"
    batches = make_cifar_dir(src)
    (src / "readme.html").write_text("<html></html>")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size) if extra.isfile() else None)
    return buf.getvalue(), batches


def publish(server, tmp_path: Path, evil_member=None) -> tuple[dict, dict, dict]:
    """Put the fixture files on the server; return (sources, mnist arrays, cifar batches)."""
    arrays = make_idx_dir(tmp_path / "mnist_src", "all")
    for f in MNIST_FILES:
        server.files[f] = (tmp_path / "mnist_src" / f).read_bytes()
    server.files["cifar-10-python.tar.gz"], batches = cifar_archive(tmp_path, evil_member)
    sources = {"mnist": tuple(Remote(f, server.url + f, sha256(server.files[f])) for f in MNIST_FILES),
               "cifar10": (Remote("cifar-10-python.tar.gz", server.url + "cifar-10-python.tar.gz",
                                  sha256(server.files["cifar-10-python.tar.gz"])),)}
    return sources, arrays, batches


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# ----------------------------------------------------------------------------- good downloads


def test_download_unpacks_into_the_layout_data_reads(server, tmp_path, monkeypatch):
    sources, arrays, batches = publish(server, tmp_path)
    root = tmp_path / "data"
    assert download("mnist", root, sources=sources, progress=False) == root / "mnist"
    assert download("cifar10", root, sources=sources, progress=False) == root / "cifar10"
    assert tree(root / "mnist") == sorted(MNIST_FILES)  # no temporary files left
    assert tree(root / "cifar10") == ["cifar-10-batches-py"] + sorted(
        f"cifar-10-batches-py/{f}" for f in (*CIFAR_FILES, "readme.html"))
    for f in MNIST_FILES:
        assert (root / "mnist" / f).read_bytes() == server.files[f]

    set_counts(monkeypatch)  # the fixtures are small
    assert gd.is_available("mnist", root) and gd.is_available("cifar10", root)
    mnist = gd.load_dataset("mnist", data_root=root, order="file")
    assert np.array_equal(mnist.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(mnist.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    cifar = gd.load_dataset("cifar10", data_root=root, order="file")
    assert cifar.source == str(root / "cifar10" / "cifar-10-batches-py")
    assert np.array_equal(cifar.test_images.reshape(2, 3072).numpy(), batches["test_batch"][b"data"])

    hits = len(server.hits)  # files in place are not fetched again
    download("mnist", root, sources=sources, progress=False)
    download("cifar10", root, sources=sources, progress=False)
    assert len(server.hits) == hits


def test_base_url_replaces_the_table_urls_and_glowlib_data_is_the_root(server, tmp_path, monkeypatch):
    sources, _, _ = publish(server, tmp_path)
    moved = {"mnist": tuple(Remote(r.filename, server.url + "nowhere/" + r.filename, r.known_hash)
                            for r in sources["mnist"])}
    monkeypatch.setenv("GLOWLIB_DATA", str(tmp_path / "env_root"))
    download("mnist", base_url=server.url.rstrip("/"), sources=moved, progress=False)
    assert tree(tmp_path / "env_root" / "mnist") == sorted(MNIST_FILES)
    assert not any(h.startswith("nowhere/") for h in server.hits)


def test_only_missing_or_corrupt_mnist_files_are_fetched(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    root = tmp_path / "data"
    download("mnist", root, sources=sources, progress=False)
    (root / "mnist" / MNIST_FILES[1]).unlink()
    (root / "mnist" / MNIST_FILES[2]).write_bytes(b"damaged")
    server.hits.clear()
    download("mnist", root, sources=sources, progress=False)
    assert sorted(server.hits) == sorted(MNIST_FILES[1:3])
    assert all((root / "mnist" / f).read_bytes() == server.files[f] for f in MNIST_FILES)


# ----------------------------------------------------------------------------- failures leave nothing


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path, name):
    sources, _, _ = publish(server, tmp_path)
    bad = dict(sources)
    bad[name] = tuple(Remote(r.filename, r.url, sha256(b"something else")) for r in sources[name])
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="does not match its checksum") as e:
        download(name, root, sources=bad, retries=1, progress=False)
    assert bad[name][0].filename in str(e.value)
    assert not root.exists()  # not even the folders it created
    assert server.hits.count(bad[name][0].filename) == 2  # one retry


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_interrupted_download_leaves_nothing_half_written(server, tmp_path, name):
    sources, _, _ = publish(server, tmp_path)
    root = tmp_path / "data"
    (root / name).mkdir(parents=True)  # an existing folder stays, and stays empty
    cut = sources[name][-1].filename  # MNIST: the first three files arrive intact
    server.cut.add(cut)
    with pytest.raises(DownloadError, match=f"{cut} could not be downloaded"):
        download(name, root, sources=sources, retries=2, progress=False)
    assert tree(root) == [name]
    assert server.hits.count(cut) == 3
    server.cut.clear()  # the next run completes
    download(name, root, sources=sources, progress=False)
    assert gd.is_available(name, root)


def test_stalled_server_times_out(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    server.stall.add("train-images-idx3-ubyte.gz")
    start = time.monotonic()
    with pytest.raises(DownloadError, match="could not be downloaded"):
        download("mnist", tmp_path / "data", sources=sources, retries=0, timeout=0.5, progress=False)
    assert time.monotonic() - start < 10
    assert not (tmp_path / "data").exists()


def test_missing_file_on_server_is_not_retried(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(DownloadError, match="404"):
        download("mnist", tmp_path / "data", sources=sources, retries=3, progress=False)
    assert server.hits.count("t10k-images-idx3-ubyte.gz") == 1
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("member", ["../escape", "cifar-10-batches-py/link", "other/file"])
def test_archive_members_outside_the_layout_are_refused(server, tmp_path, member):
    info = tarfile.TarInfo(member)
    if member.endswith("link"):
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        info.size = 3
    sources, _, _ = publish(server, tmp_path, evil_member=info)
    with pytest.raises(DownloadError, match="unexpected member"):
        download("cifar10", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "escape").exists()


def test_incomplete_cifar_folder_is_reported_before_downloading(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    with pytest.raises(DownloadError, match="incomplete.*remove it"):
        download("cifar10", tmp_path / "data", sources=sources, progress=False)
    assert server.hits == []


def test_leftovers_of_a_killed_run_are_removed(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    stale = tmp_path / "data" / "mnist" / ".mnist-download-old"
    stale.mkdir(parents=True)
    (stale / "tmpabc").write_bytes(b"half")
    download("mnist", tmp_path / "data", sources=sources, progress=False)
    assert tree(tmp_path / "data" / "mnist") == sorted(MNIST_FILES)


# ----------------------------------------------------------------------------- table, CLI, celeba


def test_table_has_every_file_data_reads_with_sha256():
    assert set(dl.SOURCES) == {"mnist", "cifar10", "fashion_mnist"}
    assert [r.filename for r in dl.SOURCES["mnist"]] == list(MNIST_FILES)
    assert [r.filename for r in dl.SOURCES["fashion_mnist"]] == list(MNIST_FILES)
    assert [r.filename for r in dl.SOURCES["cifar10"]] == ["cifar-10-python.tar.gz"]
    for remote in (*dl.SOURCES["mnist"], *dl.SOURCES["cifar10"], *dl.SOURCES["fashion_mnist"]):
        assert isinstance(remote.size, int) and remote.size > 0
        assert remote.url.startswith("https://") and remote.url.endswith("/" + remote.filename)
        alg, hexdigest = remote.known_hash.split(":")
        assert alg == "sha256" and len(hexdigest) == 64 and int(hexdigest, 16) >= 0


def test_cli_reports_a_checksum_failure(server, tmp_path, capsys):
    publish(server, tmp_path)  # fixture files do not match the real hashes
    rc = dl.main(["mnist", "--data-root", str(tmp_path / "data"), "--base-url", server.url, "--retries", "0"])
    assert rc == 1 and "does not match its checksum" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_celeba_is_explained_not_downloaded(capsys, tmp_path):
    assert dl.main(["celeba"]) == 0
    out = capsys.readouterr().out
    assert "CelebA-HQ" in out and "$GLOWLIB_DATA/celeba/" in out and "CelebAMask-HQ" in out
    with pytest.raises(ValueError, match="CelebA-HQ"):
        download("celeba", tmp_path)
    with pytest.raises(ValueError, match="cannot download 'imagenet'"):
        download("imagenet", tmp_path)
    assert not any(tmp_path.iterdir())


def test_gzip_fixtures_are_real_idx_files(tmp_path):
    """The served MNIST fixtures are what data.py reads (a sanity check of the fixtures)."""
    make_idx_dir(tmp_path, "all")
    raw = gzip.decompress((tmp_path / MNIST_FILES[0]).read_bytes())
    assert raw[:4] == (0x803).to_bytes(4, "big")


# ----------------------------------------------------------------------------- hardening


def test_every_downloadable_dataset_of_the_gpu_profile_is_fetched_by_make_data():
    """make data runs ``python -m glowlib.download all``: every dataset glowlib reads from files (the gpu profile
    trains on each) is in the table; mnist5k, digits and the photographs' patches ship with packages, CelebA is
    explained, not fetched."""
    needed = set(gd.DATASETS) - {"mnist5k", "digits", "celeba", "patches"}
    assert needed == {"mnist", "fashion_mnist", "cifar10"} and needed <= set(dl.DOWNLOADABLE)


def test_fashion_mnist_downloads_into_the_folder_data_reads(server, tmp_path, monkeypatch):
    sources, arrays, _ = publish(server, tmp_path)
    fashion = {"fashion_mnist": tuple(Remote(r.filename, r.url, r.known_hash) for r in sources["mnist"])}
    root = tmp_path / "data"
    assert download("fashion_mnist", root, sources=fashion, progress=False) == root / "fashion_mnist"
    set_counts(monkeypatch)
    data = gd.load_dataset("fashion_mnist", data_root=root, order="file")
    assert np.array_equal(data.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])


def test_a_download_larger_than_expected_is_cut_off_and_refused(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    name = MNIST_FILES[0]
    small = dict(sources)
    small["mnist"] = tuple(Remote(r.filename, r.url, r.known_hash, len(server.files[r.filename]) // 4
                                  if r.filename == name else None) for r in sources["mnist"])
    with pytest.raises(DownloadError, match=r"more than the [\d,]+ expected"):
        download("mnist", tmp_path / "data", sources=small, retries=3, progress=False)
    assert server.hits.count(name) == 1                   # refused, not retried
    assert not (tmp_path / "data").exists()


def test_downloaded_files_take_the_umask_mode(server, tmp_path):
    sources, _, _ = publish(server, tmp_path)
    old = os.umask(0o022)
    try:
        download("mnist", tmp_path / "data", sources=sources, progress=False)
    finally:
        os.umask(old)
    for f in MNIST_FILES:
        assert stat.S_IMODE((tmp_path / "data" / "mnist" / f).stat().st_mode) == 0o644


def test_a_full_disk_is_one_line_and_leaves_nothing(server, tmp_path, monkeypatch, capsys):
    sources, _, _ = publish(server, tmp_path)
    plain_open = open

    def full_disk_open(file, mode="r", *args, **kwargs):
        handle = plain_open(file, mode, *args, **kwargs)
        if "w" in mode and ".mnist-download-" in str(file):
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            handle.write = write
        return handle

    monkeypatch.setattr("builtins.open", full_disk_open)
    monkeypatch.setattr(dl, "SOURCES", sources)
    rc = dl.main(["mnist", "--data-root", str(tmp_path / "data"), "--retries", "2"])
    monkeypatch.setattr("builtins.open", plain_open)
    err = capsys.readouterr().err.split("\r")[-1]           # after the progress bar, which clears its line
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "No space left on device; free some space" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_concurrent_downloads_take_turns(server, tmp_path):
    """Two downloads of one dataset into one folder at once: the second waits for the first, then finds the files
    in place; neither removes the other's staging folder."""
    sources, _, _ = publish(server, tmp_path)
    server.stall.add(MNIST_FILES[0])                         # the first holds its staging folder open
    root = tmp_path / "data"
    errors = []

    def first():
        try:
            download("mnist", root, sources=sources, progress=False, timeout=20)
        except Exception as e:                                # noqa: BLE001  (reported below)
            errors.append(e)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 10
    while not list((root / "mnist").glob(".mnist-download-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.Popen([sys.executable, "-c", SECOND.format(root=str(root), sources=repr(
        {k: [tuple(r.__dict__.values()) for r in v] for k, v in sources.items()}))], stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert second.poll() is None                             # waiting for the lock, the staging folder intact
    assert list((root / "mnist").glob(".mnist-download-*"))
    server.stall.clear()
    server.release.set()                                     # the stalled response ends; the first retries
    thread.join(60)
    assert second.wait(60) == 0, second.stderr.read().decode()
    assert errors == [] and tree(root / "mnist") == sorted(MNIST_FILES)


SECOND = """
from glowlib.download import Remote, download
sources = {{k: tuple(Remote(*r) for r in v) for k, v in {sources}.items()}}
download("mnist", {root!r}, sources=sources, progress=False)
"""


@pytest.mark.parametrize("retries", ["-1", "1000000"])
def test_a_retry_count_out_of_range_is_one_line_before_anything_is_fetched(retries, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        dl.main(["mnist", "--retries", retries, "--data-root", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"error: argument --retries: {retries} is not between 0 and 10")
    assert not any(tmp_path.iterdir())


def test_the_lock_never_follows_a_link_planted_at_its_predictable_name(tmp_path, monkeypatch):
    """The lock's name in the shared temporary folder is predictable: a link planted there must not make glowlib
    create or write a file elsewhere; the download stops with one error naming the lock."""
    import hashlib
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "shared-tmp"))
    (tmp_path / "shared-tmp").mkdir()
    target = tmp_path / "data" / "mnist"
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    victim = tmp_path / "victim"
    (tmp_path / "shared-tmp" / f"glowlib-download-{digest}.lock").symlink_to(victim)
    with pytest.raises(dl.DownloadError, match="cannot open the download lock"):
        with dl._download_lock(target):
            pass
    assert not victim.exists()
