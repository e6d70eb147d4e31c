"""Shared fixtures: every device test runs on NumPy and on the strict backend
(zero.testing), whose arrays refuse silent conversion to numpy.ndarray as
CuPy's do, so host fallbacks fail here on a CPU-only machine."""
import os
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
