"""Array backends: NumPy on the CPU, CuPy on a CUDA GPU.

zero never decides the backend from a global switch: the data decides.
`get_array_module(a)` returns the module (``numpy`` or ``cupy``) that owns the
array ``a``; an op asks once and does all its array work with the answer,
called ``xp`` by convention. Moving data between devices is always explicit
(`to_device`, `to_numpy`): nothing here converts a device array to the host
behind the user's back.

A backend is a small record: its device name, its array module, its array
type and the two copies host -> device and device -> host. NumPy ("cpu") is
always there; CuPy ("cuda") is used when it is installed; tests register a
third one (see `zero.testing`) that refuses every implicit host conversion.
"""
import numpy as np

from zero.errors import SetupError

DEFAULT_DTYPE = np.float32


def check_numpy_version(version):
    """Refuse NumPy 1: zero relies on NumPy 2's promotion rules (NEP 50), under which a Python number
    never widens an array of its own kind (2.0 * float32 stays float32) and float32 scalars stay float32. Under NumPy 1.26 losses and
    their gradients came out float64 (13 tests failed), so refusing is clearer than running."""
    if int(version.split(".")[0]) < 2:
        raise ImportError(f"zero needs NumPy 2.0 or later, found NumPy {version}: "
                          f"upgrade it, e.g. pip install -U 'numpy>=2'")


check_numpy_version(np.__version__)

CUDA_INSTALL_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install -e '.[gpu]'` "
    "(which installs cupy-cuda12x for CUDA 12), on a machine with an NVIDIA GPU"
)


class Backend:
    """One device: its name, array module `xp`, array type and host copies."""

    def __init__(self, name, xp, array_type, from_numpy, to_numpy):
        self.name = name
        self.xp = xp
        self.array_type = array_type
        self.from_numpy = from_numpy  # numpy.ndarray -> device array
        self.to_numpy = to_numpy      # device array -> numpy.ndarray

    def __repr__(self):
        return f"Backend({self.name!r})"


CPU = Backend("cpu", np, np.ndarray, lambda a: a, lambda a: a)
_backends = {"cpu": CPU}        # device name -> Backend
_by_type = {np.ndarray: CPU}    # array type -> Backend (numpy scalars handled below)


def register_backend(backend):
    """Make a device known by name and by its array type."""
    _backends[backend.name] = backend
    _by_type[backend.array_type] = backend


try:  # CuPy is optional: everything but device='cuda' works without it.
    import cupy
except ImportError:  # pragma: no cover - depends on the machine
    cupy = None
else:  # pragma: no cover - needs CuPy
    register_backend(Backend("cuda", cupy, cupy.ndarray, cupy.asarray, cupy.asnumpy))


VARIABLE_TYPES = ()  # (Variable,), set by zero.core, so that this module needs no import of it


def _data(x):
    """The array inside a Variable (or an instance of a subclass of it), or x itself."""
    if isinstance(x, VARIABLE_TYPES):
        return x.data
    return x


def backend_of(x):
    """The Backend that owns array (or Variable) x. Python and NumPy scalars
    and anything that is not a registered device array count as CPU."""
    x = _data(x)
    backend = _by_type.get(type(x))
    if backend is not None:
        return backend
    for array_type, backend in _by_type.items():
        if isinstance(x, array_type):
            return backend
    return CPU


def get_array_module(x):
    """`numpy`, `cupy` (or a registered test module) for array or Variable x."""
    if type(x) is np.ndarray:  # the common case, kept fast
        return np
    return backend_of(x).xp


def device_of(x):
    """Device name of an array or Variable: 'cpu', 'cuda', ..."""
    return backend_of(x).name


def get_backend(device):
    """The Backend for a device name; a clear error if it is not available."""
    if device is None:
        return CPU
    name, _, index = str(device).partition(":")
    if index not in ("", "0"):  # CuPy computes on the current GPU; 'cuda:1' would silently mean GPU 0
        if name not in ("cuda", "gpu"):
            raise ValueError(f"device {device!r}: {name!r} has one device, {name!r} (or {name + ':0'!r})")
        raise ValueError(f"device {device!r}: zero computes on one GPU, 'cuda' (the first one it sees); "
                         f"to use another, choose it with the environment variable CUDA_VISIBLE_DEVICES={index}")
    if name == "gpu":
        name = "cuda"
    backend = _backends.get(name)
    if backend is None:
        if name == "cuda":
            raise SetupError(f"device 'cuda' requested but CuPy is not installed: {CUDA_INSTALL_HINT}.")
        known = ", ".join(sorted(_backends))
        raise ValueError(f"unknown device {device!r}; available devices: {known}")
    if name == "cuda":  # pragma: no cover - needs CuPy
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:
            raise SetupError(f"device 'cuda' requested but no usable GPU was found ({error}); "
                             f"{CUDA_INSTALL_HINT}.") from None
        if count == 0:
            raise SetupError(f"device 'cuda' requested but no GPU was found; {CUDA_INSTALL_HINT}.")
    return backend


def seed(value, device="cpu"):
    """Seed a run's random numbers: NumPy's global generator (initial weights, noise drawn on the
    host) and, for another device, that device's own generator (noise drawn on a GPU comes from
    CuPy's, which NumPy's seed does not reach). A DataLoader's batch order comes from its own
    `seed` argument, not from here."""
    np.random.seed(value)
    xp = get_backend(device).xp
    if xp is not np:
        xp.random.seed(value)


def reseed_device(device):
    """Seed `device`'s own generator from NumPy's global one; on the CPU, whose noise comes from
    NumPy's, nothing. Training loops call it at the start of every epoch. A checkpoint keeps the
    state of NumPy's generator, but CuPy's has no state that can be saved: drawn from NumPy's, its
    seed makes a resumed GPU run draw the noise an uninterrupted one would."""
    xp = get_backend(device).xp
    if xp is not np:
        xp.random.seed(np.random.randint(2**31))


def cuda_available():
    """True when CuPy is installed and sees at least one GPU."""
    try:
        get_backend("cuda")
    except (RuntimeError, ValueError):
        return False
    return True


def to_numpy(x):
    """An explicit copy to the host, as numpy.ndarray (no copy if already there)."""
    x = _data(x)
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    backend = backend_of(x)
    if backend is CPU:  # Python scalar or list
        return np.asarray(x)
    return backend.to_numpy(x)


def to_device(x, device):
    """Array x (any backend, or a Python scalar/list) as an array on `device`."""
    target = get_backend(device)
    x = _data(x)
    if isinstance(x, target.array_type):
        return x
    return target.from_numpy(to_numpy(x))


def to_device_beside(x, device, what, beside="the data"):
    """x on `device`, for the inputs an op or model moves next to its data itself (labels, targets,
    indices, time steps, images to score): host data (a NumPy array, list or number) is copied
    there, an array already there is returned as it is, and an array on another device is refused,
    naming `what`, what it goes `beside` (the data, the model) and both devices: moving it would
    copy a device's data to the host (or to another device) without being asked."""
    source, target = device_of(x), get_backend(device).name
    if source not in ("cpu", target):
        raise TypeError(f"{what} on {source} and {beside} on {target}: move one to the other's device "
                        f"first (zero.to_device)")
    return to_device(x, device)


def any_outside(values, low, high):
    """Whether some entry of the integer array `values` lies outside [low, high): the range check of
    labels and ids, which CuPy would otherwise let wrap around silently. One read by the host on a
    device (min and max would be two waits for a GPU); min and max on the CPU, where they are faster
    than building boolean arrays. An empty array has none."""
    if values.size == 0:
        return False
    if get_array_module(values) is np:
        return int(values.min()) < low or int(values.max()) >= high
    return bool(((values < low) | (values >= high)).any())


def host_min_max(*arrays):
    """[min, max] of each non-empty array, in order, as Python numbers: (a, b) -> [a_min, a_max, b_min,
    b_max], read by the host in one copy (a GPU waits once, not once per number)."""
    xp = get_array_module(arrays[0])
    return to_numpy(xp.stack([value for array in arrays for value in (array.min(), array.max())])).tolist()


def floating(array):
    """array as is if it holds floating-point (or complex) numbers; integers and booleans as
    DEFAULT_DTYPE. Ops such as exp, log and softmax use it: NumPy would pick float16 to float64 by the
    integer's width (float64 for int32 and int64),
    and a float result in an integer array (x - max(x), in place) would not even fit."""
    return array if array.dtype.kind in "fc" else array.astype(DEFAULT_DTYPE)


def standard_normal(xp, shape, dtype=DEFAULT_DTYPE):
    """Draws of N(0, 1): an array of `shape` and `dtype` on xp's device, from that device's
    global generator (see `seed`). NumPy's draws float64 numbers, cast here (a seed gives the
    same numbers, rounded, in every dtype); CuPy draws in `dtype` directly, with no float64
    array on the GPU (float16 in float32, cast: CuPy draws no float16)."""
    if cupy is not None and xp is cupy:
        return cupy.random.standard_normal(shape, dtype=_cupy_draw_dtype(dtype)).astype(dtype, copy=False)
    return xp.random.standard_normal(shape).astype(dtype, copy=False)


def uniform(xp, shape, dtype=DEFAULT_DTYPE):
    """Draws of U[0, 1): on NumPy its float64 draws, returned in float64 whatever `dtype` (dropout,
    their one user, only compares them with p, and a seed gives the same mask in every dtype); on
    CuPy drawn in `dtype` directly (a float32 model's dropout mask then draws no float64 array as
    large as its activations on the GPU; float16 in float32, cast, which can round a draw up to 1.0)."""
    if cupy is not None and xp is cupy:
        return cupy.random.random_sample(shape, dtype=_cupy_draw_dtype(dtype)).astype(dtype, copy=False)
    return xp.random.random_sample(shape)


def _cupy_draw_dtype(dtype):
    """CuPy's random functions draw float32 or float64 only (float16 raises TypeError): others
    are drawn in float32 and cast."""
    return dtype if np.dtype(dtype) in (np.float32, np.float64) else np.float32


def ones(xp, shape, dtype):
    """xp.ones(shape, dtype) by empty + fill: NumPy's ones takes about twice as long on tiny arrays
    (0.59 us against 0.28 for 100 float32 elements, 2026-12-03), which shows on the per-op hot path."""
    array = xp.empty(shape, dtype)
    array.fill(1)
    return array
