"""`python -m zero`: what this installation of zero works with, and where it finds its data.

    python -m zero                    # versions, devices, bundled data sets, the MNIST folder
    python -m zero --data-dir DIR     # the same, checking the MNIST files in DIR

Paste its output into a bug report. It reads no network: MNIST files that are present are
checked by structure (magic number, counts, sizes), and missing ones are listed with the
place a first run would download them to. The exit status is 1 when a file that is there
cannot be read (a damaged MNIST or data set file), else 0.
"""
import argparse
import os
import platform
import sys

import numpy as np

import zero
from zero import datasets, mnist, threads
from zero.backend import get_backend
from zero.errors import SetupError
from zero.utils import file_in_the_way


def _version(module_name):
    try:
        return __import__(module_name).__version__
    except ImportError:
        return "not installed"


def _blas():
    """NumPy's BLAS library and version, as NumPy reports it (None if it does not say)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except Exception:  # the layout of show_config's report is not a stable API
        return None


BLAS_PINNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNSET_BLAS_PINNING = "env " + " ".join(f"-u {name}" for name in BLAS_PINNING_VARIABLES)  # a command's prefix


def pinned_blas_variables():
    """'NAME=value' for each environment variable set here that makes OpenBLAS use a kernel (or
    cache size) of its choosing instead of OpenBLAS's own for this CPU. Some machines set them for
    old OpenBLAS builds; on a newer CPU they slow every matrix product down (a Zen 5 pinned to
    Haswell's AVX2 kernel ran the course in 34.9 minutes instead of 27.2)."""
    return [f"{name}={os.environ[name]}" for name in BLAS_PINNING_VARIABLES if name in os.environ]


def _blas_pinning():
    """The report's line on pinned_blas_variables(), or None when none is set."""
    pinned = pinned_blas_variables()
    if not pinned:
        return None
    return (f"  {' and '.join(pinned)} set: OpenBLAS uses that, not its own choice for this CPU "
            f"(unset to compare: {UNSET_BLAS_PINNING} ...)")


def _gpu():
    """One line on the CUDA device: ready (with CuPy's version) or why not."""
    try:
        backend = get_backend("cuda")
    except SetupError as error:
        return f"not available: {error}"
    count = backend.xp.cuda.runtime.getDeviceCount()  # pragma: no cover - needs a GPU
    return f"ready: CuPy {backend.xp.__version__}, {count} GPU(s) seen"  # pragma: no cover


def _threads_line():
    """How convolutions use the cores (zero.threads), or what is wrong with ZERO_THREADS."""
    try:
        count = threads.split_count()
    except ValueError as error:
        return f"convolutions: PROBLEM: {error}"
    if count > 1:
        return (f"convolutions: on {count} threads of zero's own, NumPy's OpenBLAS held to one thread "
                f"from the first (ZERO_THREADS=1 leaves BLAS its threads)")
    why = ("ZERO_THREADS=1" if threads._asked_threads() == 1
           else "NumPy's BLAS is not an OpenBLAS zero can find" if threads._threads.blas is None
           else "OpenBLAS runs one thread")
    return f"convolutions: on the calling thread ({why})"


def _mnist_lines(data_dir):
    """Lines on the MNIST folder and each split's files, and whether one that is there is damaged."""
    folder = mnist.mnist_dir(data_dir)
    source = ("--data-dir" if data_dir else f"${mnist.ENV_VAR}" if os.environ.get(mnist.ENV_VAR)
              else f"the default; set ${mnist.ENV_VAR} or pass --data-dir to use another")
    lines, damaged = [f"MNIST folder: {folder} ({source})"], False
    file = file_in_the_way(folder)   # a run would stop there (zero.utils.writable_folder)
    if file is not None:
        return lines + [f"  PROBLEM: {file} is a file, not a folder: give a folder"], True
    for split, (images_name, labels_name, count) in mnist.SPLITS.items():
        found, missing = [], []
        for name, kind in ((images_name, "images"), (labels_name, "labels")):
            path = mnist.find_local(folder, name)
            if path is None:
                missing.append(name)
                continue
            try:
                mnist.read_idx(path, kind, expected_count=count)
            except (OSError, ValueError) as error:
                lines.append(f"  {split}: DAMAGED: {error}")
                damaged = True
            else:
                found.append(path.name)
        if len(found) == 2:
            lines.append(f"  {split}: {count:,} images and labels, valid ({', '.join(found)})")
        elif split == "train" and not found and _complete(folder, "test"):   # --source auto takes the test split
            lines.append(f"  {split}: missing {', '.join(missing)}: not needed while the test split is here "
                         f"(--source auto trains on its first 8,000 images); --source train downloads them "
                         f"into this folder (with internet), or put them there by hand")
        elif missing:
            lines.append(f"  {split}: missing {', '.join(missing)}: downloaded into this folder on first "
                         f"use (with internet), or put there by hand")
    return lines, damaged


def _complete(folder, split):
    """Whether both files of `split` are in `folder` (as zero.training.mnist_splits' 'auto' asks)."""
    return all(mnist.find_local(folder, name) for name in mnist.SPLITS[split][:2])


def _dataset_lines():
    lines, damaged = [f"bundled data sets: {datasets.DATA_DIR}"], False
    for name, load in (("heights, height/weight", datasets.load_height_weight),
                       ("Old Faithful", datasets.load_old_faithful)):
        try:
            rows = len(load())
        except (OSError, ValueError) as error:
            lines.append(f"  {name}: DAMAGED or missing: {error}")
            damaged = True
        else:
            lines.append(f"  {name}: {rows} rows")
    return lines, damaged


def report(data_dir=None):
    """The report's lines, and True if a file that should be readable is not."""
    blas = _blas()
    lines = [
        f"zero {zero.__version__} at {os.path.dirname(zero.__file__)}",
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPU(s)",
        f"NumPy {np.__version__}" + (f" ({blas})" if blas else "")
        + f", matplotlib {_version('matplotlib')}, tqdm {_version('tqdm')}",
        "device cpu: ready",
        _threads_line(),
        f"device cuda: {_gpu()}",
    ]
    pinning = _blas_pinning()
    if pinning:
        lines.insert(3, pinning)  # under the NumPy line
    data_lines, damaged_data = _dataset_lines()
    mnist_lines, damaged_mnist = _mnist_lines(data_dir)
    return lines + data_lines + mnist_lines, damaged_data or damaged_mnist


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zero", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help=f"MNIST folder to check (default: ${mnist.ENV_VAR}, "
                                           f"else {mnist.DEFAULT_DIR})")
    args = parser.parse_args(argv)
    lines, damaged = report(args.data_dir)
    print("\n".join(lines))
    return 1 if damaged else 0


if __name__ == "__main__":
    sys.exit(main())
