"""Dataset and DataLoader: every example once per epoch, fresh seeded order
each epoch, float32 batches on the requested device."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from conftest import host, on
from zero.data import DataLoader, Dataset, epoch_loader
from zero.testing import StrictArray


def numbered(n):
    """Dataset whose example i is the row [i, i] (float64) with label i (int64)."""
    x = np.repeat(np.arange(n, dtype=np.float64)[:, None], 2, axis=1)
    return Dataset(x, np.arange(n, dtype=np.int64))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 25), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_every_example_once_per_epoch(n, batch_size, drop_last, shuffle, seed):
    expected_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    assume(expected_batches > 0)   # drop_last with batch_size > n is refused (test_a_loader_without_batches_is_refused)
    loader = DataLoader(numbered(n), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
    assert len(loader) == expected_batches
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == expected_batches
        seen = np.concatenate([t for _, t in batches]) if batches else np.zeros(0, np.int64)
        assert len(np.unique(seen)) == len(seen)  # nothing twice
        if drop_last:
            assert all(len(t) == batch_size for _, t in batches)
            assert len(seen) == expected_batches * batch_size
        else:
            assert sorted(seen) == list(range(n))  # everything once
        for x, t in batches:
            assert x.dtype == np.float32 and t.dtype == np.int64
            np.testing.assert_array_equal(x[:, 0], t)  # inputs stay paired with their labels
        if not shuffle:
            assert list(seen) == list(range(len(seen)))


def test_a_loader_without_batches_is_refused():
    """drop_last with batch_size above the data set's size, or an empty data set, gave a loader of length 0:
    every epoch ran no step, and a student's loop trained nothing without a word (or divided by len(loader))."""
    with pytest.raises(ValueError, match=r"DataLoader: no batches to iterate: drop_last=True leaves out the only, "
                                         r"incomplete batch \(5 examples, batch_size 8\): pass a batch_size of at most 5"):
        DataLoader(numbered(5), 8, drop_last=True)
    with pytest.raises(ValueError, match=r"DataLoader: no batches to iterate: the dataset is empty"):
        DataLoader(Dataset(np.zeros((0, 2), np.float32)), 8)
    assert len(DataLoader(numbered(5), 8)) == 1 and len(DataLoader(numbered(8), 8, drop_last=True)) == 1


def test_reshuffles_every_epoch_and_repeats_with_the_same_seed():
    first = DataLoader(numbered(100), 10, seed=3)
    second = DataLoader(numbered(100), 10, seed=3)
    orders = [np.concatenate([t for _, t in first]) for _ in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert np.array_equal(orders[0], np.concatenate([t for _, t in second]))
    other = DataLoader(numbered(100), 10, seed=4)
    assert not np.array_equal(orders[0], np.concatenate([t for _, t in other]))


def test_batches_are_moved_to_the_device(device):
    loader = DataLoader(numbered(7), 3, device=device)
    x, t = next(iter(loader))
    assert isinstance(x, StrictArray) == (device == "strict")
    assert isinstance(t, StrictArray) == (device == "strict")
    assert x.dtype == np.float32 and x.shape == (3, 2)


def test_dataset_already_on_a_device_is_indexed_there():
    x = on("strict", np.arange(10, dtype=np.float32).reshape(5, 2))
    loader = DataLoader(Dataset(x), 2, shuffle=False, device="strict")
    batches = list(loader)
    assert len(batches) == 3
    np.testing.assert_array_equal(host(batches[-1]), [[8, 9]])
    labeled = list(DataLoader(Dataset(x, on("strict", np.arange(5))), 2, shuffle=False, device="strict"))
    np.testing.assert_array_equal(host(labeled[-1][1]), [4])
    with pytest.raises(ValueError, match="x is on strict but t on cpu"):   # it failed at the first batch
        Dataset(x, np.arange(5))


def test_inputs_only_and_integer_inputs_keep_their_dtype():
    ids = np.arange(6).reshape(3, 2)
    batches = list(DataLoader(Dataset(ids), 2, shuffle=False))
    assert len(batches) == 2 and batches[0].dtype == ids.dtype
    images = np.zeros((4, 1, 2, 2), np.uint8)
    labels = [0, 1, 2, 3]
    x, t = next(iter(DataLoader(Dataset(images.astype(np.float64), labels), 4)))
    assert x.dtype == np.float32 and x.shape == (4, 1, 2, 2) and sorted(t) == labels


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="x has 3 examples but t has 2"):
        Dataset(np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="x has 2 examples but t has 3"):
        Dataset(np.zeros((2, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(numbered(3), 0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 1.5"):
        DataLoader(numbered(3), 1.5)
    for x, t in ((np.float32(3), None), (np.zeros((3, 1)), np.int64(2))):   # len() failed later, in the loader
        with pytest.raises(ValueError, match=r"Dataset: x and t must be arrays of examples \(N, ...\)"):
            Dataset(x, t)
    for bad in (None, float("nan"), float("inf"), True):   # a TypeError, ValueError or OverflowError from int()
        with pytest.raises(ValueError, match=f"DataLoader: batch_size must be a positive integer, got {bad!r}"):
            DataLoader(numbered(3), bad)
    with pytest.raises(ValueError, match="unknown device"):
        DataLoader(numbered(3), 1, device="tpu")
    for name, bad in (("shuffle", "no"), ("drop_last", "yes"), ("shuffle", None)):   # "no" shuffled
        with pytest.raises(TypeError, match=f"DataLoader: {name} must be True or False, got {bad!r}"):
            DataLoader(numbered(3), 1, **{name: bad})


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 30), batch_size=st.integers(1, 12), number_type=st.sampled_from([float, np.int64]))
def test_a_whole_batch_size_of_another_number_type_batches_as_the_int_does(n, batch_size, number_type):
    """A batch size computed as 64.0 or read from a NumPy array is still a whole number of examples."""
    as_int = [t for _, t in DataLoader(numbered(n), batch_size, seed=0)]
    as_other = [t for _, t in DataLoader(numbered(n), number_type(batch_size), seed=0)]
    assert len(as_other) == len(as_int)
    for got, expected in zip(as_other, as_int):
        np.testing.assert_array_equal(got, expected)


def test_a_dataset_of_python_lists_gives_array_batches():
    loader = DataLoader(Dataset([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], [7, 8, 9]), 2, shuffle=False)
    x, t = next(iter(loader))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(t, [7, 8])


def test_seed_repeats_the_random_numbers_of_a_run(device):
    """zero.seed seeds NumPy's generator and the device's (on a GPU, CuPy's: NumPy's seed alone
    leaves the noise drawn there unrepeatable)."""
    import zero
    from zero.backend import get_backend
    xp = get_backend(device).xp
    draws = []
    for _ in range(2):
        zero.seed(3, device)
        draws.append((np.random.rand(2), host(xp.random.standard_normal(3))))
    np.testing.assert_array_equal(draws[0][0], draws[1][0])
    np.testing.assert_array_equal(draws[0][1], draws[1][1])


def test_floating_point_targets_keep_their_dtype_and_values():
    """Only inputs are cast to float32: float64 regression targets come out unrounded."""
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    t = np.array([0.1, 1 / 3, 2.718281828459045])
    batches = list(DataLoader(Dataset(x, t), 2, shuffle=False))
    assert [b[0].dtype for b in batches] == [np.float32, np.float32]
    assert [b[1].dtype for b in batches] == [np.float64, np.float64]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), t)
    np.testing.assert_array_equal(batches[1][0], np.float32([[4, 5]]))   # the last, partial batch


def test_floating_point_inputs_without_targets_come_as_float32():
    x = np.arange(6, dtype=np.float64).reshape(3, 2) / 3
    batches = list(DataLoader(Dataset(x), 2, shuffle=False))
    assert [b.dtype for b in batches] == [np.float32, np.float32]
    np.testing.assert_array_equal(np.concatenate(batches), x.astype(np.float32))


def test_a_loader_for_a_float64_model_gives_float64_inputs_and_keeps_the_targets():
    """dtype=model.dtype: a float64 model refuses float32 batches (and a float32 one float64)."""
    x, t = np.arange(6, dtype=np.float32).reshape(3, 2) / 3, np.array([0, 1, 2])
    (xb, tb), = list(DataLoader(Dataset(x, t), 3, shuffle=False, dtype=np.float64))
    assert (xb.dtype, tb.dtype) == (np.float64, t.dtype)
    np.testing.assert_array_equal(xb, x.astype(np.float64))
    with pytest.raises(TypeError, match="DataLoader: dtype must be a floating dtype .*got int32"):
        DataLoader(Dataset(x), 2, dtype=np.int32)


def test_without_a_seed_two_loaders_shuffle_differently():
    first, second = DataLoader(numbered(100), 100), DataLoader(numbered(100), 100)
    assert not np.array_equal(next(iter(first))[1], next(iter(second))[1])


def test_a_dataset_on_a_device_is_not_copied_to_the_host_by_a_cpu_loader():
    x = on("strict", np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"dataset is on device 'strict' but the loader's device is 'cpu': "
                                         r"pass device='strict'"):
        DataLoader(Dataset(x), 2)


def test_epoch_loader_gives_the_batches_of_seed_and_epoch_and_reseeds_the_device():
    """Every training loop starts an epoch with it: the order of (seed, epoch), batches in the model's dtype,
    and the device's generator drawn from NumPy's, so a resumed run repeats an uninterrupted one."""
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    batches = [host(b) for b in epoch_loader(Dataset(x), 4, 3, 2, dtype=np.float64)]
    expected = [host(b) for b in DataLoader(Dataset(x), 4, seed=(3, 2), dtype=np.float64)]
    assert len(batches) == 3 and all(b.dtype == np.float64 for b in batches)
    for got, want in zip(batches, expected):
        np.testing.assert_array_equal(got, want)
    assert len(epoch_loader(Dataset(x), 4, 3, 2, drop_last=True)) == 2
    np.random.seed(5)
    epoch_loader(Dataset(on("strict", x)), 4, 3, 2, device="strict")
    after_loader = np.random.randint(2**31)
    np.random.seed(5)
    np.random.randint(2**31)                                   # what reseed_device("strict") draws
    assert np.random.randint(2**31) == after_loader            # the loader drew that one number, nothing else


@pytest.mark.parametrize("x, t, said", [(None, None, "x must be an array of examples \\(N, ...\\), got NoneType"),
                                        ({"a": 1}, None, "x must be an array of examples \\(N, ...\\), got dict"),
                                        (np.zeros((3, 2)), {"a": 1}, "t must be an array of examples \\(N, ...\\), got dict")])
def test_a_dataset_of_no_array_says_what_it_got(x, t, said):
    """Dataset(None) said 'got a single number (x has shape ())'."""
    with pytest.raises(TypeError, match="Dataset: " + said):
        Dataset(x, t)


def test_a_loader_of_an_x_t_pair_asks_for_a_dataset():
    """DataLoader((x, t), 4) indexed the pair: NumPy's 'only integer scalar arrays can be converted'."""
    with pytest.raises(TypeError, match=r"DataLoader: dataset must be a Dataset, e\.g\. Dataset\(x, t\), got a tuple"):
        DataLoader((np.zeros((3, 2)), np.zeros(3)), 4)
