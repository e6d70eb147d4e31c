"""A CPU backend for tests that behaves like CuPy where it matters.

No GPU is needed to catch the classic device bug: code that quietly turns a
device array into a NumPy array (``np.asarray(x)``, ``float(...)`` on a whole
array, mixing a NumPy array into a device computation). On CuPy those lines
raise on a GPU machine and nowhere else. `StrictArray` wraps a NumPy array and
refuses the same conversions, so the whole test suite can run every op on
device "strict" and fail on a laptop exactly where CuPy would fail on a GPU.

`xp` (the module returned by `zero.backend.get_array_module` for a
StrictArray) mirrors the parts of the NumPy namespace zero uses: functions,
ufuncs with `.at`/`.reduce`, `random` (a generator of its own, as CuPy's),
`lib.stride_tricks`, dtypes. It answers only the names in `CUPY_NAMES`, each
checked present in CuPy, so a NumPy function CuPy lacks fails here too.
"""
import functools
import types

import numpy as np

from zero.backend import Backend, register_backend

DEVICE = "strict"


# What zero and its tests use of CuPy's API, by namespace: the only names the strict device answers,
# so that code reaching for a NumPy name CuPy lacks (np.errstate, np.random.Generator, x.resize)
# fails in the test suite, not first on a GPU. "xp" also holds the NumPy functions and ufuncs that
# device arrays reach through np.concatenate(...) and operators (x + y is np.add), as CuPy's
# __array_function__ and __array_ufunc__ answer only the ones CuPy has. Every name was checked present
# in CuPy 13.3.0 and 14.2.0 (tests/test_core.py, test_the_strict_devices_names_are_all_in_cupy: CuPy
# imports without a GPU). Adding a name: look it up in CuPy's API first, then run that test with CuPy.
CUPY_NAMES = {
    "xp": {"abs", "absolute", "add", "arange", "argmin", "asarray", "ascontiguousarray", "bitwise_and",
           "bitwise_or", "bitwise_xor", "broadcast_to", "clip", "concatenate", "copyto", "cos", "cumsum",
           "diagonal", "divide", "dot", "einsum", "empty", "empty_like", "equal", "exp", "eye", "finfo",
           "float32", "float64", "floor", "floor_divide", "full", "greater", "greater_equal", "inf", "invert",
           "isfinite", "less", "less_equal", "lib", "linalg", "linspace", "log", "log1p", "matmul", "maximum",
           "minimum", "moveaxis", "multiply", "negative", "not_equal", "power", "reciprocal", "remainder",
           "shape", "sign", "sin", "split", "sqrt", "square", "stack", "subtract", "swapaxes", "tanh", "vdot",
           "where", "zeros", "zeros_like"},
    "xp.random": {"randint", "random_sample", "seed", "standard_normal"},
    "xp.linalg": {"cholesky", "inv"},
    "xp.lib": {"stride_tricks"},
    "xp.lib.stride_tricks": {"sliding_window_view"},
    "ndarray": {"all", "any", "argmax", "argmin", "astype", "copy", "device", "fill", "max", "mean", "min",
                "reshape", "std", "sum", "transpose"},   # and the properties StrictArray defines itself
}


def _not_in_cupy(where, name):
    return AttributeError(f"{where} has no {name!r} on the strict device: it mirrors only the parts of "
                          f"CuPy's API in zero.testing.CUPY_NAMES[{where!r}]; if CuPy has {name!r}, add it there")


class HostConversionError(TypeError):
    """Raised when a strict array would be silently copied to the host."""


host_reads = 0   # reads of device data by the host so far (float, int, bool, item, tolist, to_numpy, repr,
                 # boolean-mask indexing): each is a wait for the GPU on CuPy; tests count them per training step


def _host_read():
    global host_reads
    host_reads += 1


def _count_mask_read(index):
    """x[mask] and x[mask] = v with a boolean device array: CuPy counts the mask's True entries
    on the host first (the size of the selection), a wait for the GPU like any other read."""
    for part in index if isinstance(index, tuple) else (index,):
        if isinstance(part, StrictArray) and part.dtype == np.bool_:
            _host_read()


class StrictArray:
    """A NumPy array in disguise that cannot be turned into one implicitly."""

    __slots__ = ("_array",)
    __array_priority__ = 100  # as cupy.ndarray: objects with a higher priority win

    def __init__(self, array):
        self._array = array

    # --- the one rule: no implicit conversion to numpy.ndarray ---
    def __array__(self, dtype=None, copy=None):
        raise HostConversionError(
            "implicit conversion of a device array to numpy.ndarray "
            f"(shape {self.shape}, dtype {self.dtype}); use zero.backend.to_numpy() explicitly")

    # np.add(x, y) and np.concatenate([x, y]) reach CuPy only for the functions CuPy has
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ not in CUPY_NAMES["xp"]:
            return NotImplemented
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs)))

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ not in CUPY_NAMES.get(func.__module__.replace("numpy", "xp", 1), ()):
            return NotImplemented
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # --- array attributes and methods, answered by the wrapped array ---
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    strides = property(lambda self: self._array.strides)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    T = property(lambda self: StrictArray(self._array.T))
    flags = property(lambda self: self._array.flags)

    @property
    def data(self):
        """A handle of the memory, as cupy.ndarray.data is (a MemoryPointer): not the values. Code that
        unwraps a Variable with getattr(x, "data", x) gets this from a bare array, as it would on CuPy."""
        return _DeviceMemory(self.nbytes)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("base", "ctypes"):
            # no __array_interface__, buffer or pointer access: those would let
            # NumPy read the memory directly, which a GPU array does not allow
            raise AttributeError(name)
        if name not in CUPY_NAMES["ndarray"]:
            raise _not_in_cupy("ndarray", name)
        attribute = getattr(self._array, name)
        if callable(attribute):
            return _wrapped(attribute)
        return attribute

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (_wrap(row) for row in self._array)

    def __getitem__(self, index):
        _count_mask_read(index)
        return _wrap(self._array[_unwrap(index)])

    def __setitem__(self, index, value):
        _count_mask_read(index)
        self._array[_unwrap(index)] = _unwrap(value)

    def __repr__(self):   # CuPy prints a copy it makes on the host
        _host_read()
        return f"StrictArray({self._array!r})"

    # Scalars out of 0-d (or size-1) arrays are explicit, as in CuPy (and counted: host_reads).
    def __float__(self):
        _host_read()
        return float(self._array)

    def __int__(self):
        _host_read()
        return int(self._array)

    def __bool__(self):
        _host_read()
        return bool(self._array)

    def item(self):
        _host_read()
        return self._array.item()

    def tolist(self):
        _host_read()
        return self._array.tolist()


class _DeviceMemory:
    """What StrictArray.data gives: where the values are, not the values (cupy.cuda.MemoryPointer)."""

    __slots__ = ("nbytes",)

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def __repr__(self):
        return f"<device memory, {self.nbytes} bytes>"


def _binary(ufunc, reflected=False):
    """An operator method. Like CuPy, it defers (NotImplemented) to an operand
    with a higher __array_priority__, such as a zero Variable, so that
    `device_array * variable` calls Variable.__rmul__."""
    def method(self, other):
        if getattr(other, "__array_priority__", 0) > StrictArray.__array_priority__:
            return NotImplemented
        return ufunc(other, self) if reflected else ufunc(self, other)
    return method


def _inplace(ufunc):
    def method(self, other):
        ufunc(self._array, _unwrap(other), out=self._array)
        return self
    return method


for _name, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                      ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                      ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                      ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
    setattr(StrictArray, f"__r{_name}__", _binary(_ufunc, reflected=True))
    setattr(StrictArray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                      ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
StrictArray.__neg__ = lambda self: np.negative(self)
StrictArray.__pos__ = lambda self: self
StrictArray.__abs__ = lambda self: np.absolute(self)
StrictArray.__invert__ = lambda self: np.invert(self)
StrictArray.__hash__ = None


def _unwrap(value):
    """Strict arrays -> their NumPy array. A real NumPy array among device
    arrays is a host/device mix: refuse it, as CuPy does."""
    if isinstance(value, StrictArray):
        return value._array
    if isinstance(value, np.ndarray):
        raise HostConversionError(
            f"a numpy.ndarray (shape {value.shape}, dtype {value.dtype}) was mixed into a "
            "device computation; move it with zero.backend.to_device() first")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results -> strict arrays (0-d arrays for NumPy scalars, as CuPy)."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    return value


def _wrapped(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))
    return call


def _from_host(function):
    """Creation functions may read host data explicitly (cupy.asarray(np_array))."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        args = [a._array if isinstance(a, StrictArray) else a for a in args]
        return _wrap(function(*args, **kwargs))
    return call


# The ufunc methods CuPy 13 has, and for which ufuncs (its reference, "Universal functions"):
# any other, such as maximum.reduce, raises NotImplementedError there, and so here.
_UFUNC_METHODS = {"reduce": {"add", "multiply"},
                  "at": {"add", "subtract", "maximum", "minimum", "bitwise_and", "bitwise_or", "bitwise_xor"}}


class _Ufunc:
    """A NumPy ufunc that takes and returns strict arrays, with .at and .reduce where CuPy has them."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        if name in _UFUNC_METHODS and self.__name__ not in _UFUNC_METHODS[name]:
            raise NotImplementedError(f"{self.__name__}.{name} is not available on CuPy's ufuncs")
        attribute = getattr(self._ufunc, name)
        return _wrapped(attribute) if callable(attribute) else attribute


_HOST_READERS = {"asarray", "array", "ascontiguousarray", "asanyarray"}


class _Namespace(types.SimpleNamespace):
    """A view of a NumPy (sub)module whose functions speak strict arrays."""

    def __init__(self, module, name):
        super().__init__()
        self._module = module
        self.__name__ = name

    def __getattr__(self, name):
        where = self.__name__.replace("zero.testing.", "", 1)
        if name not in CUPY_NAMES.get(where, ()):
            raise _not_in_cupy(where, name)
        attribute = getattr(self._module, name)
        if isinstance(attribute, np.ufunc):
            wrapped = _Ufunc(attribute)
        elif isinstance(attribute, (type, np.dtype)) or not callable(attribute):
            if isinstance(attribute, types.ModuleType):
                wrapped = _Namespace(attribute, f"{self.__name__}.{name}")
            else:
                wrapped = attribute  # dtypes, constants
        elif name in _HOST_READERS:
            wrapped = _from_host(attribute)
        else:
            wrapped = _wrapped(attribute)
        setattr(self, name, wrapped)  # cache
        return wrapped


class _DeviceGenerator(_Namespace):
    """The device's own global generator, as CuPy's is: NumPy's seed does not reach it, and its
    state can be neither read nor set (CuPy has no get_state); only `seed` sets it."""

    def __getattr__(self, name):
        if name in ("get_state", "set_state"):
            raise AttributeError(f"{self.__name__} has no {name}: as on CuPy, the state of a device's "
                                 f"generator cannot be saved or restored, only seeded")
        return super().__getattr__(name)


xp = _Namespace(np, "zero.testing.xp")
xp.ndarray = StrictArray
xp.random = _DeviceGenerator(np.random.RandomState(), "zero.testing.xp.random")


def _to_strict(array):
    return StrictArray(np.array(array, copy=True))


def _to_numpy(array):
    _host_read()
    return np.array(array._array, copy=True)


BACKEND = Backend(DEVICE, xp, StrictArray, _to_strict, _to_numpy)
register_backend(BACKEND)
