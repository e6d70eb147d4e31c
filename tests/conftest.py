"""Shared fixtures: every device test runs on NumPy and on the strict backend
(zero.testing), whose arrays refuse silent conversion to numpy.ndarray as
CuPy's do, so host fallbacks fail here on a CPU-only machine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zero.testing  # noqa: F401  (registers the "strict" device)
from zero.backend import to_device, to_numpy

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"

DEVICES = ["cpu", "strict"]


@pytest.fixture(params=DEVICES)
def device(request):
    """Device name: 'cpu' (NumPy) and 'strict' (host-refusing test backend)."""
    return request.param


def mnist_dir():
    """The real MNIST folder (test split only here) or None."""
    candidates = [os.environ.get("ZERO_DATA_DIR"), SHARED_MNIST]
    for candidate in candidates:
        if candidate and (Path(candidate) / "t10k-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


@pytest.fixture
def real_mnist_dir():
    folder = mnist_dir()
    if folder is None:
        pytest.skip(f"real MNIST not found (looked in $ZERO_DATA_DIR and {SHARED_MNIST})")
    return folder


def on(device, array):
    """Array moved to device (helper for tests)."""
    return to_device(np.asarray(array), device)


def host(array):
    return to_numpy(array)


# Fields of a zip archive's central directory entry (after its 4-byte signature PK\1\2) that, once
# damaged, make zipfile raise something other than BadZipFile: (offset in the entry, new bytes).
ZIP_HEADER_DAMAGE = {
    "zip version": (6, b"\xff\x00"),        # version needed to extract 25.5: NotImplementedError
    "encrypted flag": (8, b"\x01\x00"),     # general purpose bit 0, encrypted: RuntimeError
    "compression method": (10, b"\x63\x00"),  # method 99, unknown: NotImplementedError
}


def damage_zip_header(path, field):
    """Overwrite `field` (a key of ZIP_HEADER_DAMAGE) in the first central directory entry of the
    .npz file at path, as a flipped byte on disk would."""
    offset, value = ZIP_HEADER_DAMAGE[field]
    data = bytearray(Path(path).read_bytes())
    entry = data.find(b"PK\x01\x02")
    data[entry + offset:entry + offset + len(value)] = value
    Path(path).write_bytes(bytes(data))


def open_handles(path):
    """This process's file descriptors open on `path` (Linux's /proc; elsewhere the test skips)."""
    fd_folder = Path("/proc/self/fd")
    if not fd_folder.is_dir():
        pytest.skip("needs /proc/self/fd (Linux) to list open files")
    target = str(Path(path).resolve())
    handles = []
    for fd in os.listdir(fd_folder):
        try:
            if os.readlink(fd_folder / fd) == target:
                handles.append(int(fd))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return handles


_HELP_TEXTS = """import contextlib, io, json, runpy, sys
texts = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
        runpy.run_path(path, run_name="__main__")
    texts[path] = help_text.getvalue()
print(json.dumps(texts))
"""


def help_texts(scripts):
    """{str(path): what `python path --help` prints} for step scripts, all read in one subprocess."""
    result = subprocess.run([sys.executable, "-c", _HELP_TEXTS, *map(str, scripts)], capture_output=True, text=True,
                            env=dict(os.environ, MPLBACKEND="Agg"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])
