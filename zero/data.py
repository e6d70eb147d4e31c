"""Datasets and mini-batches.

    loader = DataLoader(Dataset(images, labels), batch_size=64, seed=0, device="cuda")
    for epoch in range(10):
        for x, t in loader:          # x: float32 (64, ...) on the device, t: labels
            ...

A `Dataset` holds whole arrays (examples along axis 0) and is indexed by an
integer array, so a batch is gathered by one fancy-indexing operation instead
of one Python call per example.
"""
import math
import numbers

import numpy as np

from zero.backend import DEFAULT_DTYPE, device_of, get_backend, reseed_device, to_device


class Dataset:
    """Examples x (N, ...) and optional targets t (N, ...); dataset[indices] -> (x, t) or x."""

    def __init__(self, x, t=None):
        for name, value in (("x", x), ("t", t)):   # np.asarray would take these for one strange number
            if (value is None and name == "x") or isinstance(value, (dict, set, str)):
                raise TypeError(f"Dataset: {name} must be an array of examples (N, ...), got {type(value).__name__}")
        x = x if hasattr(x, "shape") else np.asarray(x)
        t = t if t is None or hasattr(t, "shape") else np.asarray(t)
        if x.ndim == 0 or (t is not None and t.ndim == 0):
            raise ValueError(f"Dataset: x and t must be arrays of examples (N, ...), got a single number "
                             f"({'x' if x.ndim == 0 else 't'} has shape ())")
        if t is not None and len(x) != len(t):
            raise ValueError(f"Dataset: x has {len(x)} examples but t has {len(t)}")
        if t is not None and device_of(x) != device_of(t):  # one batch of indices must serve both
            raise ValueError(f"Dataset: x is on {device_of(x)} but t on {device_of(t)}; "
                             f"move both to one device (zero.to_device) first")
        self.x = x
        self.t = t

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        if self.t is None:
            return self.x[indices]
        return self.x[indices], self.t[indices]


class DataLoader:
    """Mini-batches of a dataset, moved to `device`: (x, t) per batch, or x alone if
    the dataset has no targets. Floating-point x comes as `dtype` (float32 unless a
    float64 model asks for model.dtype; integer x, e.g. token ids, and targets keep their dtype).

    Every epoch (every `for` loop over the loader) visits each example once,
    in a new order when shuffle=True; the order comes from the loader's own
    NumPy Generator seeded with `seed`, so runs with the same seed are repeatable
    (seed=None: the operating system's entropy, another order every run). drop_last=True
    leaves out the final, smaller batch. len(loader) is the number of batches; a loader
    with none (an empty dataset, or drop_last with batch_size above its size) is refused.
    """

    def __init__(self, dataset, batch_size, shuffle=True, drop_last=False, seed=None, device="cpu",
                 dtype=DEFAULT_DTYPE):
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Real)
                or not math.isfinite(batch_size) or int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):   # shuffle="no" would shuffle
                raise TypeError(f"DataLoader: {name} must be True or False, got {flag!r}")
        if isinstance(dataset, (tuple, list)):   # (x, t) would be indexed as a pair, not as examples
            raise TypeError(f"DataLoader: dataset must be a Dataset, e.g. Dataset(x, t), got a {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = get_backend(device).name
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"DataLoader: dtype must be a floating dtype (that of the model's parameters), "
                            f"got {self.dtype}")
        data_device = device_of(getattr(dataset, "x", None))
        if data_device != "cpu" and self.device == "cpu":
            raise ValueError(f"DataLoader: the dataset is on device '{data_device}' but the loader's device is "
                             f"'cpu': pass device='{data_device}' (batches are never copied to the host silently)")
        if len(self) == 0:   # every epoch would run no step: the loop trains nothing, silently
            n = len(dataset)
            reason = ("the dataset is empty" if n == 0 else
                      f"drop_last=True leaves out the only, incomplete batch ({n} examples, batch_size "
                      f"{self.batch_size}): pass a batch_size of at most {n}, or drop_last=False")
            raise ValueError(f"DataLoader: no batches to iterate: {reason}")
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = self.dataset[self._indices(order[start:start + self.batch_size])]
            if isinstance(batch, tuple):
                yield tuple(self._move(array, index == 0) for index, array in enumerate(batch))
            else:
                yield self._move(batch, True)

    def _indices(self, indices):
        """Host indices, moved next to the dataset's arrays if those live on a device."""
        data = getattr(self.dataset, "x", None)
        if data is None or isinstance(data, np.ndarray):
            return indices
        return to_device(indices, device_of(data))

    def _move(self, array, is_input):
        """array on the loader's device; floating-point inputs in the loader's dtype."""
        array = to_device(array, self.device)
        if is_input and array.dtype.kind == "f" and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        return array


def epoch_loader(dataset, batch_size, seed, epoch, device="cpu", dtype=DEFAULT_DTYPE, drop_last=False):
    """The batches of epoch `epoch` of a training run seeded `seed`, the way every training loop of
    zero starts an epoch: a DataLoader shuffled by the generator of (seed, epoch), so that a run resumed
    at any epoch visits the batches an uninterrupted one would, then the device's generator reseeded
    from NumPy's (zero.reseed_device: a GPU's noise from here on follows NumPy's generator, which
    checkpoints keep). dtype: the model's, which its batches take."""
    loader = DataLoader(dataset, batch_size, seed=(seed, epoch), device=device, dtype=dtype, drop_last=drop_last)
    reseed_device(device)
    return loader
