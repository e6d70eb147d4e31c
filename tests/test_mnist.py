"""MNIST: IDX parsing and every validation failure on tiny files written here,
folder resolution, downloads from fake mirrors (monkeypatched urlopen and a
local HTTP server on 127.0.0.1), and one real-data training run."""
import errno
import functools
import gzip
import hashlib
import http.client
import http.server
import io
import os
import re
import stat
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import zero.functions as F
from zero import mnist, no_grad
from zero.errors import DataFileDamaged, SaveFailed, SetupError
from zero.data import DataLoader, Dataset
from zero.mnist import load_mnist, read_idx
from zero.models import MLP
from zero.optimizers import Adam

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx_bytes(kind, array, magic=None):
    """IDX encoding of a uint8 array: big-endian magic, dims, data."""
    magic = mnist.MAGIC[kind] if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_split(n, seed=0):
    """n images (mostly zero, so they compress fast) and their labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 14, :] = rng.integers(0, 256, (n, 28))
    labels = rng.integers(0, 10, n).astype(np.uint8)
    return images, labels


@functools.lru_cache(maxsize=None)
def official_size_test_files():
    """gzip bytes of a fake test split with the official count (10,000)."""
    images, labels = fake_split(10_000)
    return (gzip.compress(idx_bytes("images", images), compresslevel=1),
            gzip.compress(idx_bytes("labels", labels), compresslevel=1), images, labels)


def write_test_split(folder, compress=True):
    images_gz, labels_gz, images, labels = official_size_test_files()
    if compress:
        (folder / TEST_IMAGES).write_bytes(images_gz)
        (folder / TEST_LABELS).write_bytes(labels_gz)
    else:
        (folder / TEST_IMAGES[:-3]).write_bytes(gzip.decompress(images_gz))
        (folder / TEST_LABELS[:-3]).write_bytes(gzip.decompress(labels_gz))
    return images, labels


# -----------------------------------------------------------------------------
# Parsing and validation
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_gzip_and_raw(tmp_path, compress):
    images, labels = fake_split(5)
    encode = gzip.compress if compress else (lambda data: data)
    (tmp_path / "images").write_bytes(encode(idx_bytes("images", images)))
    (tmp_path / "labels").write_bytes(encode(idx_bytes("labels", labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "images", "images"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", "labels", expected_count=5), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_reads_a_local_folder(tmp_path, compress):
    images, labels = write_test_split(tmp_path, compress)
    x, t = load_mnist("test", data_dir=tmp_path, download=False)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == np.float32
    assert t.shape == (10_000,) and t.dtype == np.int64
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(t, labels)
    assert 0.0 <= x.min() and x.max() <= 1.0
    x_flat, _ = load_mnist("test", data_dir=tmp_path, download=False, flatten=True)
    assert x_flat.shape == (10_000, 784)
    np.testing.assert_array_equal(x_flat, x.reshape(10_000, 784))


def _invalid_deflate_block(gzip_data):
    """gzip data whose first deflate block has the reserved type 11 (zlib.error, not OSError)."""
    return gzip_data[:10] + b"\xff" + gzip_data[11:]


def _bad_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("kind, content, message", [
    ("images", idx_bytes("labels", np.zeros(3)), r"magic number 2049, expected 2051.*labels file"),
    ("labels", idx_bytes("images", np.zeros((1, 28, 28))), r"magic number 2051, expected 2049.*images file"),
    ("images", idx_bytes("images", np.zeros((2, 28, 28)), magic=1234), "magic number 1234"),
    ("images", (2049).to_bytes(4, "big"), r"magic number 2049, expected 2051"),
    ("labels", b"\x1f\x00" + bytes(20), "magic number 520093696, expected 2049"),
    ("images", idx_bytes("images", np.zeros((2, 27, 28))), "27 x 28, expected 28 x 28"),
    ("images", idx_bytes("images", np.zeros((2, 28, 27))), "28 x 27, expected 28 x 28"),
    ("images", idx_bytes("images", np.zeros((2, 28, 28)))[:-1], "is truncated"),
    ("images", idx_bytes("images", np.zeros((2, 28, 28)))[:10], r"truncated: 10 bytes, less than its 16-byte header"),
    ("labels", idx_bytes("labels", np.zeros(4)) + b"\0", "has extra bytes"),
    ("labels", idx_bytes("labels", np.array([1, 10, 2])), "label 10 found"),
    ("labels", gzip.compress(idx_bytes("labels", np.zeros(400)))[:-12], "corrupt or truncated gzip"),
    ("labels", b"\x1f\x8b" + b"garbage" * 10, "corrupt or truncated gzip"),
    ("labels", _invalid_deflate_block(gzip.compress(idx_bytes("labels", np.zeros(400)), mtime=0)),
     "corrupt or truncated gzip"),
])
def test_read_idx_rejects_bad_files_naming_them(tmp_path, kind, content, message):
    path = _bad_file(tmp_path, "suspect-file", content)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path, kind)
    assert "suspect-file" in str(error.value)


@pytest.mark.parametrize("expected_count", [10_000, 3])   # fewer than the official count, or more
def test_read_idx_checks_the_expected_count(tmp_path, expected_count):
    path = _bad_file(tmp_path, "labels", idx_bytes("labels", np.zeros(4)))
    with pytest.raises(ValueError, match=f"4 labels, but the official file has {expected_count}"):
        read_idx(path, "labels", expected_count=expected_count)


def test_read_idx_accepts_a_header_only_file_with_no_items(tmp_path):
    labels = _bad_file(tmp_path, "labels", idx_bytes("labels", np.zeros(0)))
    images = _bad_file(tmp_path, "images", idx_bytes("images", np.zeros((0, 28, 28))))
    assert read_idx(labels, "labels").shape == (0,)
    assert read_idx(images, "images").shape == (0, 28, 28)


def test_load_mnist_checks_counts_and_pairs(tmp_path):
    images, labels = fake_split(10)
    (tmp_path / TEST_IMAGES).write_bytes(gzip.compress(idx_bytes("images", images)))
    (tmp_path / TEST_LABELS).write_bytes(gzip.compress(idx_bytes("labels", labels[:9])))
    with pytest.raises(DataFileDamaged, match="holds 10 images but .*t10k-labels-idx1-ubyte.gz holds 9 labels. "
                                              "Delete those files"):
        load_mnist("test", data_dir=tmp_path, download=False)
    (tmp_path / TEST_LABELS).write_bytes(gzip.compress(idx_bytes("labels", labels)))
    # both files hold 10: the message named the images file alone, and said to delete 'that file'
    with pytest.raises(DataFileDamaged, match=r"t10k-images-idx3-ubyte.gz and \S*t10k-labels-idx1-ubyte.gz hold 10 "
                                              r"images and labels, but the official files hold 10000\. Delete those files"):
        load_mnist("test", data_dir=tmp_path, download=False)


def test_load_mnist_names_a_truncated_local_file(tmp_path):
    write_test_split(tmp_path)
    path = tmp_path / TEST_IMAGES
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz is corrupt or truncated"):
        load_mnist("test", data_dir=tmp_path, download=False)


def test_a_damaged_local_file_says_how_to_replace_it_and_deleting_it_downloads_it_again(
        tmp_path, monkeypatch, fake_md5):
    """A damaged file in the data folder is not missing, so it was never downloaded again, and its error (a
    ValueError: a step script's traceback) did not say what to do. DataFileDamaged is a SetupError too."""
    images_gz, _ = fake_md5
    write_test_split(tmp_path)
    path = tmp_path / TEST_IMAGES
    path.write_bytes(images_gz[:5000])
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({"https://m/" + TEST_IMAGES: images_gz}, []))
    monkeypatch.setattr(mnist, "MIRRORS", ["https://m/"])
    with pytest.raises(DataFileDamaged, match=f"{re.escape(str(path))} is corrupt or truncated gzip data .*"
                                              f"Delete that file and zero downloads it again, or replace it "
                                              f"with a good copy") as damaged:
        load_mnist("test", data_dir=tmp_path)
    assert isinstance(damaged.value, SetupError) and isinstance(damaged.value, ValueError)
    with pytest.raises(DataFileDamaged, match=r"load_mnist\(..., download=True\) downloads it again"):
        load_mnist("test", data_dir=tmp_path, download=False)
    path.unlink()
    x, _ = load_mnist("test", data_dir=tmp_path)   # as the message says
    assert len(x) == 10_000 and path.read_bytes() == images_gz


def test_train_split_must_hold_the_official_60000(tmp_path):
    images, labels = fake_split(10)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes("images", images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes("labels", labels)))
    with pytest.raises(ValueError, match="hold 10 images and labels, but the official files hold 60000"):
        load_mnist("train", data_dir=tmp_path, download=False)


def test_bad_split_is_a_clear_error():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("validation")


# -----------------------------------------------------------------------------
# Where the files are looked for
# -----------------------------------------------------------------------------
def test_folder_from_argument_then_env_var_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    assert mnist.mnist_dir() == tmp_path / "home" / ".cache" / "zero" / "mnist"
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "env"))
    assert mnist.mnist_dir() == tmp_path / "env"
    assert mnist.mnist_dir(tmp_path / "arg") == tmp_path / "arg"
    (tmp_path / "env").mkdir()
    write_test_split(tmp_path / "env")
    x, _ = load_mnist("test", download=False)
    assert len(x) == 10_000


def test_missing_files_without_download_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)
    with pytest.raises(FileNotFoundError) as error:
        load_mnist("train", data_dir=tmp_path, download=False)
    message = str(error.value)
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", str(tmp_path), "ZERO_DATA_DIR"):
        assert part in message


@pytest.mark.parametrize("labels_left_as", ["nothing", "a folder"])
def test_one_missing_file_without_download_is_named_and_nothing_is_fetched(tmp_path, monkeypatch, labels_left_as):
    """The images are there but not the labels (a folder of that name is no file): an error naming
    only the labels file, not a download."""
    write_test_split(tmp_path)
    (tmp_path / TEST_LABELS).unlink()
    if labels_left_as == "a folder":
        (tmp_path / TEST_LABELS).mkdir()
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)
    with pytest.raises(FileNotFoundError, match=f"MNIST files not found: {re.escape(TEST_LABELS)} missing in"):
        load_mnist("test", data_dir=tmp_path, download=False)


# -----------------------------------------------------------------------------
# Downloading
# -----------------------------------------------------------------------------
def _refuse(*args, **kwargs):
    raise AssertionError("no network access expected here")


class FakeResponse(io.BytesIO):
    def __init__(self, body, announced_length=None):
        super().__init__(body)
        self.headers = {"Content-Length": str(announced_length if announced_length is not None else len(body))}


def fake_urlopen(routes, requests):
    """urlopen serving routes {url: body or exception}; records (url, user agent)."""
    def urlopen(request, timeout=None):
        requests.append((request.full_url, request.get_header("User-agent")))
        body = routes.get(request.full_url, urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, None))
        if isinstance(body, Exception):
            raise body
        if isinstance(body, tuple):  # (body, announced length): a connection cut short
            return FakeResponse(*body)
        return FakeResponse(body)
    return urlopen


@pytest.fixture
def fake_md5(monkeypatch):
    """Make the fake test split's MD5s the 'published' ones."""
    images_gz, labels_gz, _, _ = official_size_test_files()
    monkeypatch.setitem(mnist.MD5, TEST_IMAGES, hashlib.md5(images_gz).hexdigest())
    monkeypatch.setitem(mnist.MD5, TEST_LABELS, hashlib.md5(labels_gz).hexdigest())
    return images_gz, labels_gz


def test_download_skips_a_bad_mirror_and_caches_only_good_files(tmp_path, monkeypatch, fake_md5):
    images_gz, labels_gz = fake_md5
    bad, good = "https://bad.example/mnist/", "https://good.example/mnist/"
    corrupt = bytearray(images_gz)
    corrupt[len(corrupt) // 2] ^= 0xFF
    routes = {bad + TEST_IMAGES: bytes(corrupt),  # wrong MD5
              bad + TEST_LABELS: urllib.error.URLError("connection refused"),
              good + TEST_IMAGES: images_gz, good + TEST_LABELS: labels_gz}
    requests = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(routes, requests))
    monkeypatch.setattr(mnist, "MIRRORS", [bad, good])
    x, t = load_mnist("test", data_dir=tmp_path / "cache")
    assert x.shape == (10_000, 1, 28, 28) and len(t) == 10_000
    assert [url for url, _ in requests] == [bad + TEST_IMAGES, good + TEST_IMAGES,
                                            bad + TEST_LABELS, good + TEST_LABELS]
    assert all(agent for _, agent in requests)  # a User-Agent is sent
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([TEST_IMAGES, TEST_LABELS])
    assert (tmp_path / "cache" / TEST_IMAGES).read_bytes() == images_gz
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)  # now cached: no network needed
    load_mnist("test", data_dir=tmp_path / "cache")


def test_failed_downloads_cache_nothing_and_explain(tmp_path, monkeypatch, fake_md5):
    images_gz, _ = fake_md5
    first, second, third = "https://one.example/", "https://two.example/", "https://three.example/"
    routes = {first + TEST_IMAGES: (images_gz[:1000], len(images_gz)),  # cut short
              second + TEST_IMAGES: b"<html>moved</html>"}  # third: 404
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(routes, []))
    monkeypatch.setattr(mnist, "MIRRORS", [first, second, third])
    with pytest.raises(RuntimeError) as error:
        load_mnist("test", data_dir=tmp_path)
    message = str(error.value)
    for part in (first + TEST_IMAGES, "truncated", second + TEST_IMAGES, "MD5", third + TEST_IMAGES, "404",
                 str(tmp_path), TEST_LABELS, "ZERO_DATA_DIR"):
        assert part in message
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_up_during_a_download_stops_it_naming_the_folder_without_trying_other_mirrors(
        tmp_path, monkeypatch, fake_md5):
    """The disk full: every mirror was tried in turn, each download written again until it failed the same
    way, and the message said to put the files there by hand. A local write error is final now."""
    images_gz, _ = fake_md5
    first, second = "https://one.example/", "https://two.example/"
    requests = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({first + TEST_IMAGES: images_gz,
                                                                 second + TEST_IMAGES: images_gz}, requests))
    monkeypatch.setattr(mnist, "MIRRORS", [first, second])

    class FullDisk:
        def __init__(self, file):
            self.file = file
        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")
    real_fetch = mnist._fetch
    monkeypatch.setattr(mnist, "_fetch", lambda url, file, name: real_fetch(url, FullDisk(file), name))
    with pytest.raises(SaveFailed, match=rf"^cannot write MNIST file {TEST_IMAGES} into {re.escape(str(tmp_path))}: "
                                         r"No space left on device\. Free some space there, or give another folder"):
        load_mnist("test", data_dir=tmp_path)
    assert [url for url, _ in requests] == [first + TEST_IMAGES]
    assert list(tmp_path.iterdir()) == []


def test_download_with_right_md5_but_bad_structure_is_not_cached(tmp_path, monkeypatch):
    body = gzip.compress(idx_bytes("labels", np.zeros(5)))  # valid IDX, but not 10,000 labels
    monkeypatch.setitem(mnist.MD5, TEST_LABELS, hashlib.md5(body).hexdigest())
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({"https://m/" + TEST_LABELS: body}, []))
    with pytest.raises(RuntimeError, match="official file has 10000"):
        mnist.download_file(TEST_LABELS, tmp_path, mirrors=["https://m/"])
    assert list(tmp_path.iterdir()) == []


def test_only_the_missing_file_is_downloaded(tmp_path, monkeypatch, fake_md5):
    _, labels_gz = fake_md5
    write_test_split(tmp_path, compress=False)
    (tmp_path / TEST_LABELS[:-3]).unlink()                    # the unpacked images stay
    requests = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({"https://m/" + TEST_LABELS: labels_gz}, requests))
    monkeypatch.setattr(mnist, "MIRRORS", ["https://m/"])
    x, t = load_mnist("test", data_dir=tmp_path)
    assert [url for url, _ in requests] == ["https://m/" + TEST_LABELS]
    assert len(x) == len(t) == 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([TEST_IMAGES[:-3], TEST_LABELS])


@pytest.mark.parametrize("headers", [{}, {"Content-Length": "unknown"}])
def test_download_without_a_usable_content_length_is_accepted(tmp_path, monkeypatch, fake_md5, headers):
    _, labels_gz = fake_md5

    def urlopen(request, timeout=None):                       # e.g. chunked transfer: no length announced
        response = FakeResponse(labels_gz)
        response.headers = headers                            # the length only sizes the progress bar
        return response

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    path = mnist.download_file(TEST_LABELS, tmp_path, mirrors=["https://m/"])
    assert path.read_bytes() == labels_gz


def test_a_download_is_written_beside_its_destination_under_a_hidden_name(tmp_path, monkeypatch, fake_md5):
    """While it streams, the file is a hidden .part file in the destination folder (a rename from
    another file system, /tmp say, can fail), never a half file under the official name."""
    _, labels_gz = fake_md5
    folder_while_reading = []

    class WatchedResponse(FakeResponse):
        def read(self, size=-1):
            folder_while_reading.append([p.name for p in tmp_path.iterdir()])
            return super().read(size)

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout=None: WatchedResponse(labels_gz))
    mnist.download_file(TEST_LABELS, tmp_path, mirrors=["https://m/"])
    assert folder_while_reading
    for names in folder_while_reading:
        assert len(names) == 1 and names[0].startswith(f".{TEST_LABELS}.") and names[0].endswith(".part")
    assert [p.name for p in tmp_path.iterdir()] == [TEST_LABELS]


def test_a_download_sets_a_timeout_so_a_silent_mirror_cannot_hang_it(tmp_path, monkeypatch, fake_md5):
    _, labels_gz = fake_md5
    timeouts = []

    def urlopen(request, timeout=None):
        timeouts.append(timeout)
        return FakeResponse(labels_gz)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    mnist.download_file(TEST_LABELS, tmp_path, mirrors=["https://m/"])
    assert len(timeouts) == 1 and isinstance(timeouts[0], (int, float)) and timeouts[0] > 0


def test_an_http_protocol_error_moves_on_to_the_next_mirror(tmp_path, monkeypatch, fake_md5):
    _, labels_gz = fake_md5
    bad, good = "https://bad.example/", "https://good.example/"
    routes = {bad + TEST_LABELS: http.client.IncompleteRead(b"partial", 1000),  # not an OSError
              good + TEST_LABELS: labels_gz}
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(routes, []))
    path = mnist.download_file(TEST_LABELS, tmp_path, mirrors=[bad, good])
    assert path.read_bytes() == labels_gz
    assert [p.name for p in tmp_path.iterdir()] == [TEST_LABELS]


def test_a_download_creates_the_missing_parent_folders(tmp_path, monkeypatch, fake_md5):
    _, labels_gz = fake_md5
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({"https://m/" + TEST_LABELS: labels_gz}, []))
    folder = tmp_path / "home" / ".cache" / "zero" / "mnist"
    assert mnist.download_file(TEST_LABELS, folder, mirrors=["https://m/"]) == folder / TEST_LABELS
    assert (folder / TEST_LABELS).read_bytes() == labels_gz


def test_a_download_is_readable_as_a_plainly_written_file_and_a_file_as_folder_is_named(tmp_path, monkeypatch,
                                                                                         fake_md5):
    """Downloads were left readable by their owner alone (mkstemp's 0600): a shared cache locked others out."""
    _, labels_gz = fake_md5
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({"https://m/" + TEST_LABELS: labels_gz}, []))
    umask = os.umask(0o022)
    try:
        path = mnist.download_file(TEST_LABELS, tmp_path / "cache", mirrors=["https://m/"])
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(SetupError, match=r"MNIST data folder .*a_file is a file, not a folder"):
        mnist.download_file(TEST_LABELS, tmp_path / "a_file", mirrors=["https://m/"])


def test_an_empty_mirror_list_tries_nothing_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)
    with pytest.raises(RuntimeError, match=r"from any mirror:\n  \(no mirrors given\)"):
        mnist.download_file(TEST_LABELS, tmp_path, mirrors=[])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_removes_the_folder_it_made_and_keeps_one_that_was_there(tmp_path, monkeypatch):
    """A mistyped --data-dir was left behind as an empty folder after the download failed."""
    monkeypatch.setattr(urllib.request, "urlopen", _refuse)
    mistyped = tmp_path / "mnsit"
    with pytest.raises(RuntimeError, match="from any mirror"):
        mnist.download_file(TEST_LABELS, mistyped, mirrors=[])
    assert not mistyped.exists()
    with pytest.raises(RuntimeError, match="from any mirror"):   # its new parents go too, up to what was there
        mnist.download_file(TEST_LABELS, tmp_path / "typo" / "data" / "mnist", mirrors=[])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "there").mkdir()              # an empty folder that was there stays, whatever the path's spelling
    with pytest.raises(RuntimeError, match="from any mirror"):
        mnist.download_file(TEST_LABELS, tmp_path / "new" / ".." / "there" / "mnist", mirrors=[])
    assert [p.name for p in tmp_path.iterdir()] == ["there"] and list((tmp_path / "there").iterdir()) == []
    with pytest.raises(RuntimeError, match="from any mirror"):
        mnist.download_file(TEST_LABELS, tmp_path, mirrors=[])
    assert tmp_path.is_dir()


def test_ctrl_c_during_a_download_leaves_no_partial_file_and_no_folder_it_made(tmp_path, monkeypatch):
    def interrupted(request, timeout=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(urllib.request, "urlopen", interrupted)
    new_folder = tmp_path / "mnist"
    with pytest.raises(KeyboardInterrupt):
        mnist.download_file(TEST_LABELS, new_folder, mirrors=["https://m/"])
    assert not new_folder.exists()
    with pytest.raises(KeyboardInterrupt):
        mnist.download_file(TEST_LABELS, tmp_path, mirrors=["https://m/"])
    assert list(tmp_path.iterdir()) == []   # the folder that was there stays, without a .part file


def test_the_default_mirrors_are_asked_for_the_official_file_name(tmp_path, monkeypatch):
    requests = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({}, requests))
    with pytest.raises(RuntimeError, match="404"):
        mnist.download_file(TEST_LABELS, tmp_path)
    assert [url for url, _ in requests] == [mirror + TEST_LABELS for mirror in mnist.MIRRORS]
    assert all(url.endswith("/mnist/" + TEST_LABELS) for url, _ in requests)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_over_http_from_a_local_server(tmp_path, fake_md5):
    images_gz, labels_gz = fake_md5
    served = tmp_path / "served" / "good"
    served.mkdir(parents=True)
    (served / TEST_IMAGES).write_bytes(images_gz)
    (served / TEST_LABELS).write_bytes(labels_gz)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        path = mnist.download_file(TEST_IMAGES, tmp_path / "cache", mirrors=[base + "missing/", base + "good/"])
    finally:
        server.shutdown()
        server.server_close()
    assert path.read_bytes() == images_gz
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [TEST_IMAGES]


# -----------------------------------------------------------------------------
# Real data
# -----------------------------------------------------------------------------
def test_mlp_reaches_95_percent_on_real_mnist(real_mnist_dir):
    x, t = load_mnist("test", data_dir=real_mnist_dir, download=False, flatten=True)
    np.random.seed(0)
    model = MLP((784, 256, 10))
    optimizer = Adam(model.params())
    loader = DataLoader(Dataset(x[:8000], t[:8000]), batch_size=64, seed=0)
    epochs = 10
    for epoch in range(epochs):
        optimizer.lr = 2e-3 * (1 - epoch / epochs)  # linear decay: ~96% with any seed tried
        for xb, tb in loader:
            loss = F.softmax_cross_entropy(model(xb), tb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with no_grad():
        accuracy = F.accuracy(model.eval()(x[8000:]), t[8000:])
    assert accuracy >= 0.95
