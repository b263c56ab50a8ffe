"""Tests for glowlib.download, fully offline: a local HTTP server on 127.0.0.1 serves small
fixture archives in the real layouts; the table's hashes are replaced by the fixtures'."""

import gzip
import hashlib
import io
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pooch")

from glowlib import data as gd  # noqa: E402
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
        f"cifar-10-batches-py/{f}" for f in (*gd._CIFAR_FILES, "readme.html"))
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
    assert set(dl.SOURCES) == {"mnist", "cifar10"}
    assert [r.filename for r in dl.SOURCES["mnist"]] == list(MNIST_FILES)
    assert [r.filename for r in dl.SOURCES["cifar10"]] == ["cifar-10-python.tar.gz"]
    for remote in (*dl.SOURCES["mnist"], *dl.SOURCES["cifar10"]):
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
