"""zero's own threads for convolutions (zero/threads.py) and their use in zero/functions/conv.py:
the batch cut into ranges, results in order, errors after every thread is done, the same numbers
as on one thread, BLAS held to one thread and given back, ZERO_THREADS, and a forked child."""
import multiprocessing
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zero.functions as F
import zero.functions.conv as conv_module
from zero import Variable, threads


@pytest.fixture
def split_over(monkeypatch):
    """split_over(n): convolutions of any size split over n threads for the rest of the test.
    Afterwards the count is as it was (monkeypatch), and BLAS is given back if the test held it."""
    held_before = threads._threads.blas_threads is not None

    def split(count):
        threads.split_count()  # finds OpenBLAS, if there is one
        monkeypatch.setattr(threads._threads, "count", count)
        monkeypatch.setattr(threads, "MIN_SPLIT_ELEMENTS", 0)
    yield split
    if not held_before:
        threads.release_blas()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 9))
def test_ranges_cut_the_batch_into_nearly_equal_runs(count, parts):
    cut = threads.ranges(count, parts)
    assert [i for piece in cut for i in range(count)[piece]] == list(range(count))   # each once, in order
    lengths = [len(range(count)[piece]) for piece in cut]
    assert len(cut) == max(1, min(parts, count))
    assert max(lengths) - min(lengths) <= 1
    assert count == 0 or min(lengths) >= 1


def test_run_each_returns_results_in_order_and_uses_other_threads(split_over):
    split_over(3)
    names = []

    def work(item):
        time.sleep(0.01 * (3 - item))  # the first finishes last
        names.append(threading.current_thread().name)
        return item * 10
    assert threads.run_each(work, [0, 1, 2]) == [0, 10, 20]
    assert threading.current_thread().name in names and len(set(names)) == 3


def test_run_each_raises_only_after_every_item_is_done(split_over):
    split_over(2)
    finished = []

    def work(item):
        if item == 0:
            raise ValueError("the first range failed")
        time.sleep(0.05)
        finished.append(item)
    with pytest.raises(ValueError, match="the first range failed"):
        threads.run_each(work, [0, 1])
    assert finished == [1]   # the other thread's work was over before the error reached the caller


def _conv_cases(rng):
    """Every path that splits a batch: same convolutions (both splits of the offsets, and their
    gradients), a strided one (im2col, col2im), a transposed one, a weight gradient alone."""
    x, wide = rng.standard_normal((7, 3, 9, 9)), rng.standard_normal((7, 12, 6, 6))
    w_many, w_few, w, w_t = (rng.standard_normal(shape) for shape in
                             [(16, 3, 3, 3), (4, 12, 3, 3), (5, 3, 3, 3), (3, 4, 4, 4)])
    b4, b5, gy = rng.standard_normal(4), rng.standard_normal(5), rng.standard_normal((7, 5, 9, 9))
    V = Variable
    return {
        "same, input split": lambda: F.conv2d(V(x), V(w_many), None, 1, 1),
        "same, column split, bias": lambda: F.conv2d(V(wide), V(w_few), V(b4), 1, 1),
        "strided": lambda: F.conv2d(V(x), V(w), V(b5), 2, 1),
        "transposed": lambda: F.conv_transpose2d(V(x), V(w_t), V(b4), 2, 1),
        "weight gradient": lambda: F.conv2d_grad_weight(V(x), V(gy), 3, 1, 1),
    }


@pytest.mark.parametrize("count", [2, 3, 8])
def test_split_convolutions_give_the_numbers_of_one_thread(split_over, count):
    """Forward and backward of every splitting path, split over 2, 3 and 8 threads (more threads
    than images: 7 ranges of one) against one thread, in float64: the same images meet the same
    products, only the weight gradient's partial sums are grouped otherwise."""
    def run(case):
        y = case()
        gy = np.random.default_rng(1).standard_normal(y.shape)
        y.backward(Variable(gy))
        inputs = [v for v in y.creator.inputs if v.grad is not None]
        return [y.data] + [v.grad.data for v in inputs]

    for name, case in _conv_cases(np.random.default_rng(0)).items():
        one = run(case)
        split_over(count)
        many = run(case)
        split_over(1)
        assert len(one) == len(many) >= 2, name
        for a, b in zip(one, many):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12, err_msg=name)


def test_a_split_convolution_holds_blas_to_one_thread_and_release_gives_it_back(split_over):
    blas = threads._find_openblas()
    if blas is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS zero can find (zero.threads._find_openblas)")
    get, set_ = blas
    threads.release_blas()
    set_(2)
    split_over(2)
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    F.conv2d(x, np.ones((3, 2, 3, 3), np.float32), None, 1, 1)
    assert get() == 1
    threads.release_blas()
    assert get() == 2


def test_no_split_on_one_thread_small_work_or_a_single_image(monkeypatch):
    """Below MIN_SPLIT_ELEMENTS, with one image, or with one thread, every chunk runs on the caller."""
    calls = []
    monkeypatch.setattr(threads, "run_each", lambda work, items: calls.append(items) or [])
    monkeypatch.setattr(threads._threads, "count", 2)
    x = np.zeros((4, 1, 4, 4), np.float32)
    seen = conv_module._each_chunk(x, 9, lambda batch: batch)          # 4 * 9 elements: too little work
    assert seen == [slice(0, 4)] and calls == []
    monkeypatch.setattr(threads, "MIN_SPLIT_ELEMENTS", 0)
    assert conv_module._each_chunk(x[:1], 9, lambda batch: batch) == [slice(0, 1)] and calls == []
    monkeypatch.setattr(threads._threads, "count", 1)
    assert conv_module._each_chunk(x, 9, lambda batch: batch) == [slice(0, 4)] and calls == []
    monkeypatch.setattr(threads._threads, "count", 2)
    conv_module._each_chunk(x, 9, lambda batch: batch)
    assert calls == [[slice(0, 2), slice(2, 4)]]


def test_chunks_stay_within_each_threads_range(monkeypatch):
    monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", 20)
    x = np.zeros((11, 1, 2, 2), np.float32)
    assert conv_module._batch_chunks(x, 10, slice(3, 9)) == [slice(3, 5), slice(5, 7), slice(7, 9)]
    assert conv_module._batch_chunks(x, 10) == [slice(k, min(k + 2, 11)) for k in range(0, 11, 2)]


@pytest.mark.parametrize("value, count", [("1", 1), ("3", 3), (" 2 ", 2)])
def test_zero_threads_sets_the_count(monkeypatch, value, count):
    monkeypatch.setattr(threads, "_threads", threads._Threads())
    monkeypatch.setattr(threads, "_find_openblas", lambda: ("get", "set"))
    monkeypatch.setenv("ZERO_THREADS", value)
    assert threads.split_count() == count
    assert threads._threads.blas == (None if count == 1 else ("get", "set"))  # 1: BLAS left alone


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_zero_threads_refuses_what_is_not_a_count(monkeypatch, value):
    monkeypatch.setattr(threads, "_threads", threads._Threads())
    monkeypatch.setenv("ZERO_THREADS", value)
    with pytest.raises(ValueError, match=f"ZERO_THREADS must be a whole number >= 1, got '{value}'"):
        threads.split_count()


def test_without_an_openblas_convolutions_stay_on_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "_threads", threads._Threads())
    monkeypatch.setattr(threads, "_find_openblas", lambda: None)
    monkeypatch.delenv("ZERO_THREADS", raising=False)
    assert threads.split_count() == 1


def _convolve_in_child(queue):
    x = np.random.default_rng(0).standard_normal((6, 2, 8, 8))
    queue.put(F.conv2d(x, np.ones((3, 2, 3, 3)), None, 1, 1).data.sum())


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the default start method on Linux only")
def test_a_forked_child_splits_on_threads_of_its_own(split_over):
    """The parent's worker threads do not exist in a forked child: its first split starts new ones
    (instead of waiting forever on threads that are not there)."""
    split_over(2)
    x = np.random.default_rng(0).standard_normal((6, 2, 8, 8))
    expected = F.conv2d(x, np.ones((3, 2, 3, 3)), None, 1, 1).data.sum()   # starts the parent's pool
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_convolve_in_child, args=(queue,))
    with warnings.catch_warnings():  # Python 3.12+ warns that forking a process with threads may deadlock:
        warnings.simplefilter("ignore", DeprecationWarning)  # what this test checks zero does not do
        child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.isclose(queue.get(timeout=5), expected)
