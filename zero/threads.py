"""Threads of zero's own for convolutions, with NumPy's BLAS held to one thread.

A convolution is a few large matrix products and the copies that feed them (functions/conv.py).
NumPy's BLAS (OpenBLAS) spreads each product over all cores, but the copies and additions around
it run on the one core that calls it, so every product's other threads read rows that core has
just written. On the 2-core virtual machine of README's benchmarks the host sometimes places its
two CPUs far apart, and then the conv benchmark's step took 0.26-0.27 s instead of 0.15-0.17.
So zero cuts a batch into one range of images per core and runs each range on a thread of its
own, copies, products and all, each product on one BLAS thread: each core reads what it wrote.
That step then took 0.14-0.17 s with the CPUs near or far (MEASUREMENTS.md, 2026-12-06 21:10).

BLAS stays held to one thread once zero has split a convolution. After each product it spreads,
OpenBLAS lets its idle threads spin for about 0.1 s, to start the next product at once; a
spinning thread takes half the core of the thread zero runs beside it, which made the U-Net's step
1.5-1.7 times as slow when a Linear layer's product came between its convolutions. So a process that
convolves runs its other products (a Linear layer's, say) on one thread too; in a network with
convolutions they are a small part of the work. A process that never convolves keeps BLAS's
threads: an MLP's small products gain from them (a step 0.48-0.52 ms against 0.54-0.59 on one thread).

A result does not depend on which thread finishes first: each image is computed by one thread
as it would be by one, and a weight gradient's partial sums are added in batch order. It may differ
in the last digits with the number of threads, which moves the chunks' bounds (and so the
grouping of those sums).

ZERO_THREADS=1 (read at the first convolution) turns this off: convolutions run on the calling
thread and BLAS keeps its threads. ZERO_THREADS=n asks for n threads. Without it, zero takes as
many as OpenBLAS had. Where NumPy's BLAS is not an OpenBLAS zero can find (NumPy built against
MKL or Accelerate, say), nothing changes.
"""
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MIN_SPLIT_ELEMENTS = 2 ** 17  # less work than this (a convolution's patch elements) stays on one thread:
# handing a range to another thread and back takes about 20 us


def _find_openblas():
    """(get_num_threads, set_num_threads) of the OpenBLAS bundled with NumPy's wheels, or None.
    The library is the one NumPy has loaded (ctypes opens the same file again: the same library)."""
    numpy_folder = Path(np.__file__).resolve().parent
    candidates = [*sorted(numpy_folder.parent.glob("numpy.libs/*openblas*")),   # Linux and Windows wheels
                  *sorted(numpy_folder.glob(".dylibs/*openblas*"))]              # macOS wheels
    names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),   # NumPy 2
             ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),               # NumPy 1.2x wheels
             ("openblas_get_num_threads", "openblas_set_num_threads")]
    for path in candidates:
        try:
            library = ctypes.CDLL(str(path))
        except OSError:
            continue
        for get_name, set_name in names:
            get, set_ = getattr(library, get_name, None), getattr(library, set_name, None)
            if get is not None and set_ is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                return get, set_
    return None


def _asked_threads():
    """ZERO_THREADS as a whole number >= 1, or None when it is not set."""
    value = os.environ.get("ZERO_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ZERO_THREADS must be a whole number >= 1, got {value!r}")
    return int(value)


class _Threads:
    """How many threads a split uses, BLAS's hold, and the worker threads (_pool)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = None        # threads a split uses, decided at the first call of split_count
        self.blas = None         # (get, set) of OpenBLAS's thread count
        self.blas_threads = None  # OpenBLAS's thread count before zero held it to one
        self.pool, self.pool_pid, self.pool_size = None, None, 0


_threads = _Threads()


def split_count():
    """How many threads a convolution's batch is split over: ZERO_THREADS, else OpenBLAS's thread
    count; 1 where BLAS's threads cannot be held (no OpenBLAS found)."""
    state = _threads
    if state.count is None:
        with state.lock:
            if state.count is None:
                asked = _asked_threads()
                state.blas = _find_openblas() if asked != 1 else None
                if state.blas is None:
                    state.count = 1
                else:
                    state.count = asked or max(1, state.blas[0]())
    return state.count


def hold_blas():
    """Hold OpenBLAS to one thread from now on (see the module's text); remembers its count."""
    state = _threads
    if state.blas is not None and state.blas_threads is None:
        with state.lock:
            if state.blas_threads is None:
                state.blas_threads = state.blas[0]()
                state.blas[1](1)


def release_blas():
    """Give OpenBLAS back the thread count it had before zero held it (a no-op if it never did).
    The next convolution that splits holds it again."""
    state = _threads
    with state.lock:
        if state.blas_threads is not None:
            state.blas[1](state.blas_threads)
            state.blas_threads = None


def ranges(count, parts):
    """Slices cutting range(count) into `parts` runs of nearly equal length (none empty)."""
    parts = max(1, min(parts, count))
    bounds = [count * k // parts for k in range(parts + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(parts)]


def run_each(work, items):
    """[work(item) for item in items], the first on the calling thread and the others on zero's
    worker threads, all at once. Waits for every one before returning or raising (the first error
    in items' order), so no thread still writes into shared outputs afterwards."""
    if len(items) == 1:
        return [work(items[0])]
    pool = _pool(len(items) - 1)
    futures = [pool.submit(work, item) for item in items[1:]]
    try:
        first = work(items[0])
    finally:
        for future in futures:  # wait for all, even when the first raised
            future.exception()
    return [first] + [future.result() for future in futures]


def _pool(workers):
    """At least `workers` worker threads, started at the first split that needs them (again in a
    forked child, which has none of its parent's threads)."""
    state = _threads
    with state.lock:
        if state.pool is None or state.pool_pid != os.getpid() or state.pool_size < workers:
            state.pool = ThreadPoolExecutor(workers, thread_name_prefix="zero")
            state.pool_pid, state.pool_size = os.getpid(), workers
        return state.pool
