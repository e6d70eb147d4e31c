"""MNIST handwritten digits: read the official IDX files, download them if missing.

    x, t = load_mnist("train")                  # x (60000, 1, 28, 28) float32 in [0, 1], t (60000,) int64
    x, t = load_mnist("test", flatten=True)     # x (10000, 784)

Where the files are looked for: `data_dir` if given, else the folder in the
environment variable ZERO_DATA_DIR, else ~/.cache/zero/mnist. Each split is
two files (see SPLITS), gzip-compressed under its official name or unpacked
under the same name without ".gz".

Local files are trusted by their structure, not by checksum (a copy may have
been re-compressed): magic number, 28 x 28 images, as many labels as images,
the official count, a file length that matches its header, labels 0..9. A
file that fails raises DataFileDamaged (a SetupError, which a step script shows
as its message alone, and a ValueError) naming it: delete it, and it is downloaded again.

Missing files are downloaded (download=True) from the first mirror in
MIRRORS that works. Each download streams to a temporary file next to its
destination (with a progress bar), must match the published MD5 and pass the
structure checks, and only then is renamed into place: a corrupt or
truncated download is deleted, never cached.
"""
import errno
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from zero.backend import DEFAULT_DTYPE
from zero.errors import DataFileDamaged, SaveFailed, SetupError
from zero.utils import replace_keeping_mode, writable_folder

ENV_VAR = "ZERO_DATA_DIR"
DEFAULT_DIR = Path("~/.cache/zero/mnist")

# split -> (images file, labels file, number of examples)
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
MD5 = {  # published checksums of the gzip files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
USER_AGENT = "zero-mnist-loader/0.1 (Python urllib)"
TIMEOUT_SECONDS = 30
# Errors of writing here, not of fetching: the next mirror would meet them too
LOCAL_WRITE_ERRORS = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG")
                      if hasattr(errno, name)}   # not every system defines all
CHUNK_BYTES = 1 << 16

# IDX format: a big-endian header (magic number, then one uint32 per dimension), then uint8 data
MAGIC = {"images": 2051, "labels": 2049}
NDIM = {"images": 3, "labels": 1}
IMAGE_SIZE = 28


def load_mnist(split="train", data_dir=None, download=True, flatten=False):
    """MNIST images and labels of one split ('train' or 'test').

    Returns x: float32 in [0, 1], (N, 1, 28, 28), or (N, 784) if flatten;
    t: int64 digits 0..9, (N,). N is 60,000 (train) or 10,000 (test).
    """
    if split not in SPLITS:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    folder = mnist_dir(data_dir)
    images_name, labels_name, count = SPLITS[split]
    missing = [name for name in (images_name, labels_name) if find_local(folder, name) is None]
    if missing and not download:
        raise FileNotFoundError(f"MNIST files not found: {', '.join(missing)} missing in {folder}. "
                                f"{_where_to_put(split, folder)}, or call load_mnist(..., download=True).")
    for name in missing:
        download_file(name, folder)
    images_path, labels_path = find_local(folder, images_name), find_local(folder, labels_name)
    images = _read_local(images_path, "images", download)
    labels = _read_local(labels_path, "labels", download)
    if len(images) != len(labels):
        raise _damaged(f"MNIST {split} split: {images_path} holds {len(images)} images but "
                       f"{labels_path} holds {len(labels)} labels", 2, download)
    if len(images) != count:   # and so do the labels, as many: both files are another set's
        raise _damaged(f"MNIST {split} split: {images_path} and {labels_path} hold {len(images)} images and "
                       f"labels, but the official files hold {count}", 2, download)
    x = images.astype(DEFAULT_DTYPE)
    x /= 255
    x = x.reshape(len(x), IMAGE_SIZE * IMAGE_SIZE) if flatten else x.reshape(len(x), 1, IMAGE_SIZE, IMAGE_SIZE)
    return x, labels.astype(np.int64)


def mnist_dir(data_dir=None):
    """The MNIST folder: data_dir, else $ZERO_DATA_DIR, else ~/.cache/zero/mnist."""
    return Path(data_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def find_local(folder, name):
    """Path of file `name` (gzip) or of its unpacked twin (name without .gz) in folder, or None."""
    for candidate in (Path(folder) / name, Path(folder) / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path, kind, expected_count=None):
    """Parse an MNIST IDX file (gzip or raw, told apart by content) -> uint8 array.

    kind: 'images' -> (N, 28, 28), 'labels' -> (N,). Raises ValueError naming
    the file if it is corrupt, truncated, of the other kind, not 28 x 28, has
    labels outside 0..9, or (if expected_count is given) has another count.
    """
    raw = _read_bytes(path)
    ndim = NDIM[kind]
    header_bytes = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic is not None and magic != MAGIC[kind]:
        other = {MAGIC[k]: k for k in MAGIC}.get(magic)
        hint = f" (it looks like an MNIST {other} file)" if other else ""
        raise ValueError(f"MNIST file {path}: magic number {magic}, expected {MAGIC[kind]} for {kind}{hint}")
    if len(raw) < header_bytes:
        raise ValueError(f"MNIST file {path} is truncated: {len(raw)} bytes, less than its "
                         f"{header_bytes}-byte header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise ValueError(f"MNIST file {path}: images are {dims[1]} x {dims[2]}, expected 28 x 28")
    expected_bytes = header_bytes + int(np.prod(dims))
    if len(raw) != expected_bytes:
        problem = "is truncated" if len(raw) < expected_bytes else "has extra bytes"
        raise ValueError(f"MNIST file {path} {problem}: its header announces {dims[0]} {kind} "
                         f"({expected_bytes} bytes) but the data has {len(raw)} bytes")
    if expected_count is not None and dims[0] != expected_count:
        raise ValueError(f"MNIST file {path}: {dims[0]} {kind}, but the official file has {expected_count}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)
    if kind == "labels" and array.size and array.max() > 9:
        raise ValueError(f"MNIST file {path}: label {array.max()} found, labels must be digits 0..9")
    return array


def _read_local(path, kind, download):
    """read_idx of a file in the data folder: one that fails the checks raises DataFileDamaged, which
    says how to replace it (a damaged file is never downloaded again by itself: it is not missing)."""
    try:
        return read_idx(path, kind)
    except ValueError as error:
        raise _damaged(str(error), 1, download) from None


def _damaged(problem, files, download):
    """DataFileDamaged: `problem`, which names the damaged file (files=1) or pair (2), and what to do."""
    them, it = ("those files", "them") if files > 1 else ("that file", "it")
    fetch = "zero downloads" if download else "load_mnist(..., download=True) downloads"
    return DataFileDamaged(f"{problem}. Delete {them} and {fetch} {it} again, or replace {it} with "
                           f"{'good copies' if files > 1 else 'a good copy'}")


def _read_bytes(path):
    """File contents, gunzipped if they start with the gzip magic bytes."""
    with open(path, "rb") as file:
        raw = file.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"MNIST file {path} is corrupt or truncated gzip data ({error})") from None
    return raw


def download_file(name, folder, mirrors=None):
    """Download official file `name` into folder from the first mirror that gives a
    correct copy (published MD5 and valid structure); returns its path."""
    folder = Path(os.path.abspath(folder))   # a/../b is b, whose parents are not a's (mkdir would make a)
    created = [f for f in (folder, *folder.parents) if not f.exists()]   # deepest first
    writable_folder(folder, f"MNIST data folder (to download {name} into)")
    kind = "images" if "images" in name else "labels"
    count = next(n for images, labels, n in SPLITS.values() if name in (images, labels))
    failures = []
    try:
        for mirror in MIRRORS if mirrors is None else mirrors:
            url = mirror + name
            temporary = None
            try:
                handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
                with os.fdopen(handle, "wb") as file:
                    digest = _fetch(url, file, name)
                if digest != MD5[name]:
                    raise ValueError(f"MD5 {digest} differs from the published {MD5[name]}")
                read_idx(temporary, kind, count)
                replace_keeping_mode(temporary, folder / name)
                return folder / name
            except OSError as error:
                if error.errno in LOCAL_WRITE_ERRORS:   # the disk full, no permission: no mirror can help
                    failure = SaveFailed(f"cannot write MNIST file {name} into {folder}: {error.strerror}. Free "
                                         f"some space there, or give another folder (--data-dir, or ${ENV_VAR})")
                    failure.errno = error.errno
                    raise failure from None
                failures.append(f"  {url}: {error}")
            except (ValueError, http.client.HTTPException) as error:
                failures.append(f"  {url}: {error}")
            finally:
                if temporary is not None and os.path.exists(temporary):
                    os.unlink(temporary)
    finally:   # also on Ctrl-C: a mistyped --data-dir leaves no empty folder behind, nor its new parents
        for new_folder in created:
            if not new_folder.is_dir() or any(new_folder.iterdir()):
                break
            new_folder.rmdir()
    split = next(s for s, (images, labels, _) in SPLITS.items() if name in (images, labels))
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise SetupError(f"could not download MNIST file {name} from any mirror:\n{tried}\n"
                     f"{_where_to_put(split, folder)}.")


def _fetch(url, file, name):
    """Stream url into the open file with a progress bar; returns the MD5 hex digest."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.md5(usedforsecurity=False)
    written = 0
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None   # the bar's size only: a bad header is no error
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar:
            while chunk := response.read(CHUNK_BYTES):
                file.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written != total:
        raise ValueError(f"download truncated: got {written} of {total} bytes")
    return digest.hexdigest()


def _where_to_put(split, folder):
    """How to provide the files of a split by hand."""
    images_name, labels_name, _ = SPLITS[split]
    return (f"The MNIST {split} split needs {images_name} and {labels_name} (gzip, or unpacked "
            f"without .gz) in {folder}: put them there, or set the environment variable {ENV_VAR} "
            f"to the folder that holds them")
