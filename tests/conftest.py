"""Shared fixtures: every device test runs on NumPy and on the strict backend
(zero.testing), whose arrays refuse silent conversion to numpy.ndarray as
CuPy's do, so host fallbacks fail here on a CPU-only machine."""
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import zero.testing  # noqa: F401  (registers the "strict" device)
from zero import Variable
from zero.backend import to_device, to_numpy
from zero.cli import running_under_ci

# Hypothesis: no deadline anywhere (a loaded 2-core machine made timing-only failures), and under CI
# (CI=true) the same examples on every run, so that a failure there can be run again; a local run
# draws new ones each time and keeps exploring. Set before the test modules make their settings.
settings.register_profile("local", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if running_under_ci() else "local")

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


# Double backprop: the backward pass is itself differentiable
def _directions(arrays, penalized, seed):
    """{k: a fixed random direction v_k of arrays[k]'s shape} for the k in penalized (all by default)."""
    rng = np.random.default_rng(seed)
    penalized = range(len(arrays)) if penalized is None else penalized
    return {k: rng.standard_normal(arrays[k].shape) for k in penalized}


def _gradient_penalty(f, device, arrays, directions, create_graph):
    """h = sum_k <dL/d(array_k), v_k> with L = sum(f(device, *variables)^2) / 2, all on device;
    returns h and the variables."""
    variables = [Variable(on(device, a.copy())) for a in arrays]
    y = f(device, *variables)
    ((y * y).sum() / 2).backward(create_graph=create_graph)
    total = sum((variables[k].grad * Variable(on(device, v))).sum() for k, v in directions.items())
    return total, variables


def second_order_gradients(f, arrays, device="cpu", penalized=None, seed=0):
    """The gradients (host arrays) of h = sum_k <dL/d(array_k), v_k> (see _gradient_penalty) with
    respect to each of arrays, dL/d built with backward(create_graph=True), on device. f(device,
    *variables); penalized: the k that enter h (all by default; one alone leaves the other
    gradients' second derivatives out, which an op's backward treats as a case of its own)."""
    total, variables = _gradient_penalty(f, device, arrays, _directions(arrays, penalized, seed), True)
    for v in variables:
        v.cleargrad()
    total.backward()
    return [np.zeros(v.shape) if v.grad is None else host(v.grad.data) for v in variables]


def second_order_check(f, arrays, seed=0, eps=1e-6, penalized=None):
    """Double backprop of f(*variables) on the CPU (second_order_gradients) against central
    differences of h."""
    on_cpu = lambda device, *variables: f(*variables)  # noqa: E731
    analytic = second_order_gradients(on_cpu, arrays, "cpu", penalized, seed)
    directions = _directions(arrays, penalized, seed)
    for index, (a, gradient) in enumerate(zip(arrays, analytic)):
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus, minus = [b.copy() for b in arrays], [b.copy() for b in arrays]
            plus[index][i] += eps
            minus[index][i] -= eps
            h_plus = _gradient_penalty(on_cpu, "cpu", plus, directions, False)[0].item()
            h_minus = _gradient_penalty(on_cpu, "cpu", minus, directions, False)[0].item()
            numeric[i] = (h_plus - h_minus) / (2 * eps)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-5, err_msg=f"input {index}")


@contextlib.contextmanager
def counting_calls(*methods):
    """{method: calls so far} for methods defined in a class (LinearGrad.backward, say), counted
    while in the block."""
    calls = dict.fromkeys(methods, 0)
    owners = [getattr(sys.modules[m.__module__], m.__qualname__.rsplit(".", 1)[0]) for m in methods]

    def counted(method):
        def call(*args, **kwargs):
            calls[method] += 1
            return method(*args, **kwargs)
        return call

    for owner, method in zip(owners, methods):
        setattr(owner, method.__name__, counted(method))
    try:
        yield calls
    finally:
        for owner, method in zip(owners, methods):
            setattr(owner, method.__name__, method)


def interrupted_at_call(owner, name, call):
    """owner, whose method `name` raises KeyboardInterrupt (Ctrl-C) at its `call`-th call from now on."""
    method, calls = getattr(owner, name), [0]

    def interrupted(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return method(*args, **kwargs)
    setattr(owner, name, interrupted)
    return owner


def assert_double_backprop_on_strict_matches_cpu(f, arrays, penalized=None, reaches=()):
    """second_order_gradients of f(device, *variables) on the strict device equal those on the CPU:
    no backward built with create_graph copies to the host. reaches: the methods (such as
    LinearGrad.backward) that must run on the strict device's way, so that a case tests the op it
    names; the CPU's gradients must not all be 0 (a comparison of zeros would pass anything)."""
    expected = second_order_gradients(f, arrays, "cpu", penalized)
    with counting_calls(*reaches) as calls:
        actual = second_order_gradients(f, arrays, "strict", penalized)
    assert all(calls.values()), f"not reached: {[m.__qualname__ for m, n in calls.items() if not n]}"
    assert any(np.abs(g).max() > 1e-6 for g in expected), "every second-order gradient is 0"
    for index, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"input {index}")


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
