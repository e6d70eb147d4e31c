"""Array helpers used by the ops, the argument checks the library shares, and the teaching
tools: numerical gradients and the gradient check students use to test their own ops."""
import math
import numbers
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from zero.backend import get_array_module, to_numpy
from zero.errors import SaveFailed, SetupError

# What reading a damaged .npz file (weights, a checkpoint) can raise: NumPy's and zipfile's errors,
# and, for a damaged zip header, zipfile's NotImplementedError (an unknown compression method or
# zip version) and RuntimeError (the entry then looks encrypted), and zlib's error for a damaged
# compressed entry; found by flipping bytes of saved weights. Readers turn them into a ValueError
# that names the file.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError,
                   zlib.error)


def read_npz(path, names=None, optional=()):
    """{name: host array} of the .npz archive at `path`: every entry, or those in `names` plus those
    of `optional` that it holds; None if the file is an .npy array instead. Raises what reading
    raises (FileNotFoundError, a missing name's KeyError, the rest of NPZ_READ_ERRORS): the caller
    names the file in its own words. Nothing is unpickled."""
    # our own file object: np.load leaves the file it opened open when the zip is damaged
    with open(path, "rb") as file:
        start = file.read(6)
        if start == b"\x93NUMPY":   # an .npy array: not read (it may be large, or claim to be)
            return None
        if not start.startswith(b"PK"):   # else np.load takes it for a pickle, and says so
            raise ValueError("neither an .npz archive nor an .npy array (the file does not start as they do)")
        file.seek(0)
        archive = np.load(file, allow_pickle=False)
        with archive:
            if names is None:
                names = archive.files
            else:
                names = [*names, *(name for name in optional if name in archive.files)]
            arrays = {}
            for name in names:
                try:
                    arrays[name] = archive[name]
                except MemoryError as error:   # NumPy allocates what the entry's header claims before reading it
                    raise ValueError(f"entry {name!r} does not fit in memory ({error}): its header is damaged, "
                                     f"or the file is too large for this machine") from None
            return arrays


def save_npz_atomically(path, arrays):
    """Write host arrays {name: numpy.ndarray} to `path` as .npz without ever
    leaving a half-written file there: write a temporary file in the same
    folder, flush it to disk, then rename it over `path` (atomic on POSIX and
    Windows). An interrupted save leaves the previous file intact."""
    return save_npz_files_atomically({path: arrays})[0]


def save_npz_files_atomically(files):
    """save_npz_atomically for files that belong together ({path: arrays}, a GAN's two players), as
    write_files_atomically saves them. Returns the paths."""
    return write_files_atomically({path: (lambda file, arrays=arrays: write_npz(file, arrays))
                                   for path, arrays in files.items()})


def write_atomically(path, write):
    """Call write(file) on an open binary temporary file beside `path`, then rename it over `path`
    (write_files_atomically): an interrupted or failed write leaves `path` as it was (or absent), never
    half-written. An OSError (the disk full) is raised as SaveFailed naming `path`. Returns `path`."""
    return write_files_atomically({path: write})[0]


def write_files_atomically(files):
    """Write files that belong together, {path: write(file)}, without ever leaving a half-written file:
    each write gets an open binary temporary file in its path's folder, flushed to disk, and every file
    is written to its temporary first, and only then are they renamed (atomic on POSIX and Windows), so
    that a save interrupted while writing (the slow part) leaves the previous set whole. Once the first
    rename has happened, the new set is the one on disk: an error or Ctrl-C among the renames finishes
    the others (each one tried) before it is raised, since a set half old and half new would load
    as neither. Only a process killed outright in those microseconds (SIGKILL, a power cut) leaves a
    mixed set, with the new files not yet renamed beside it as .tmp files. Returns the paths.
    An OSError that leaves the previous set whole (the disk full, a read-only folder) is raised
    as SaveFailed, which names the file being saved and says so."""
    files = {Path(path): write for path, write in files.items()}
    for path in files:   # before any writing: else the rename fails after it, naming the temporary file
        if path.is_dir():
            raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name inside it, "
                                    f"e.g. {path / 'model.npz'}")
        file = file_in_the_way(path.parent)   # else mkdir says only "File exists"
        if file is not None:
            raise NotADirectoryError(f"cannot save to {path}: {file} is a file, not a folder: give another "
                                     f"path, or move that file away")
    written = []   # (temporary, path)
    renaming = False
    try:
        for path, write in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            written.append((temporary, path))
            with os.fdopen(handle, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
        renaming = True
        for temporary, path in written:
            replace_keeping_mode(temporary, path)
    except BaseException as error:
        left = [(temporary, path) for temporary, path in written if os.path.exists(temporary)]
        if renaming and len(left) < len(written):   # some are in place: complete the new set
            failures = []
            for temporary, path in left:
                try:
                    replace_keeping_mode(temporary, path)
                except OSError as failure:   # this one stays a .tmp file; the others are still renamed
                    failures.append((temporary, path, failure))
            if failures:
                raise _rename_failed(failures, [path for _, path in written]) from None
            raise
        for temporary, _ in left:                   # the old set is untouched: drop the new one
            os.unlink(temporary)
        if isinstance(error, OSError):   # the disk full, a read-only folder: name the file, not its temporary
            raise _save_failed(path, error, list(files)) from None
        raise
    return [path for _, path in written]


def copy_file_atomically(source, target):
    """Copy the file `source` to `target` with write_atomically: never a half copy at `target`."""
    def copy(file):
        with open(source, "rb") as original:
            shutil.copyfileobj(original, file)
    return write_atomically(target, copy)


def _save_failed(path, error, paths):
    """SaveFailed for the OSError `error` met while saving `path`, one of `paths` (a set saved together):
    its reason, and which of them keep their previous contents (nothing was renamed over them)."""
    kept = [str(p) for p in paths if p.exists()]
    if kept:
        state = f"the previous {' and '.join(kept)} {'is' if len(kept) == 1 else 'are'} unchanged"
    else:
        state = "no file was written"
    failure = SaveFailed(f"cannot save {path}: {error.strerror or error}; {state}")
    failure.errno = error.errno   # for code that tells a full disk (ENOSPC) from other failures
    return failure


def _rename_failed(failures, paths):
    """SaveFailed for renames [(temporary, path, OSError)] that failed after another file of the set
    `paths` was renamed into place: each new file that stayed behind, and the rename that completes the set."""
    temporary, path, error = failures[0]
    left = "; ".join(f"rename {temporary} to {path}" for temporary, path, _ in failures)
    replaced = len(paths) - len(failures)
    failure = SaveFailed(f"cannot save {path}: {error.strerror or error}, after {replaced} of the {len(paths)} "
                         f"files saved together {'was' if replaced == 1 else 'were'} replaced: the set on disk is "
                         f"mixed; to complete the new one, {left}")
    failure.errno = error.errno
    return failure


def write_npz(file, arrays):
    """Write {name: array} to the open binary `file` as an .npz archive, what np.savez writes, for
    any names: np.savez takes them as keyword arguments, so an entry named 'file' or 'allow_pickle'
    collided with its own (an error, or an entry silently dropped). Nothing is pickled."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def replace_keeping_mode(temporary, path):
    """Rename the finished `temporary` over `path`, first giving it the mode a plain write would
    have left: `path`'s own if it exists, else the usual one for new files (0666 less the umask).
    mkstemp makes its files readable by their owner alone (0600): a checkpoint or a shared MNIST
    cache written that way would lock other users out."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)   # the only way to read it is to set it: put it straight back
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def file_in_the_way(folder):
    """The file where `folder` or one of the parents it would need should be a folder, or None."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def writable_folder(folder, what):
    """`folder`, created if needed, once a file could be written there: a folder that cannot hold
    `what` (a file where a folder should be, no permission) is refused by name before any work,
    not after an hour of training. Raises SetupError."""
    folder = Path(folder)
    file = file_in_the_way(folder)
    if file is not None:
        raise SetupError(f"{what}: {file} is a file, not a folder: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".zero-write-test.")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise SetupError(f"{what}: cannot write in the folder {folder} ({error.strerror or error}): "
                         f"give a writable one") from None
    return folder


# -----------------------------------------------------------------------------
# Argument checks shared by layers, models and training
# -----------------------------------------------------------------------------
def check_count(owner, name, value, optional=False, at_least=1):
    """Refuse a size or count (layer widths, time steps, image limits) that is not a whole number >= 1
    (or >= at_least: an epoch count may be 0), naming `owner` and `name`; None passes when optional.
    A 0 or -3 fails here, clearly, instead of in a later division by zero, an empty weight or a NaN."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < at_least:
        raise ValueError(f"{owner}: {name} must be a whole number >= {at_least}, got {value!r}")


def check_number(owner, name, value, at_least=None, above=None, at_most=None, below=None):
    """Refuse a setting (a rate, a scale, a probability) that is not a finite real number within its
    bounds, naming `owner` and `name`: NaN, inf, True or the string '0.1' fail here, clearly, instead
    of in a later step that turns every weight into NaN. Bounds: at most one lower (at_least: >=,
    above: >) and one upper (at_most: <=, below: <)."""
    low, high = (at_least if above is None else above), (at_most if below is None else below)
    valid = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
             and (low is None or value > low or (value == low and above is None))
             and (high is None or value < high or (value == high and below is None)))
    if valid:
        return
    if low is not None and high is not None:
        bounds = f" in {'[' if above is None else '('}{low}, {high}{']' if below is None else ')'}"
    elif low is not None:
        bounds = f" {'>=' if above is None else '>'} {low}"
    elif high is not None:
        bounds = f" {'<=' if below is None else '<'} {high}"
    else:
        bounds = ""
    raise ValueError(f"{owner}: {name} must be a finite number{bounds}, got {value!r}")


def check_not_empty(owner, array, what):
    """Refuse an array without rows, naming `owner` and what was missing: a mean over no images
    would be a division by zero, a training run over them a model that learned nothing."""
    if len(array) == 0:
        raise ValueError(f"{owner}: no {what} (an empty array of shape {tuple(array.shape)})")


# -----------------------------------------------------------------------------
# Array helpers for broadcasting and reductions
# -----------------------------------------------------------------------------
def sum_to(x, shape):
    """Sum array x down to `shape` (the reverse of broadcasting shape -> x.shape)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    lead_axes = tuple(range(lead))
    kept_axes = tuple(i + lead for i, size in enumerate(shape) if size == 1 and x.shape[i + lead] != 1)
    y = x.sum(axis=lead_axes + kept_axes, keepdims=True)
    if lead > 0:
        y = y.reshape(y.shape[lead:])
    return y


def normalize_axes(axis, ndim):
    """axis (None, int or tuple, negatives allowed) -> sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def keepdims_shape(x_shape, axis):
    """The shape a reduction over `axis` has with keepdims=True."""
    axes = normalize_axes(axis, len(x_shape))
    return tuple(1 if i in axes else size for i, size in enumerate(x_shape))


# -----------------------------------------------------------------------------
# Numerical gradients: the independent check of every backward
# -----------------------------------------------------------------------------
def numerical_grad(f, *inputs, eps=1e-6):
    """Central differences (f(x + eps) - f(x - eps)) / 2 eps of sum(f(*inputs))
    with respect to every input array; returns a list of arrays.

    f takes and returns Variables (or arrays). Use float64 inputs: in float32
    the rounding error of the difference swamps the derivative.
    """
    from zero.core import Variable

    def total(arrays):
        y = f(*[Variable(a) for a in arrays])  # f may itself call backward
        y = y.data if isinstance(y, Variable) else y   # not getattr(y, "data"): an ndarray's .data is its buffer
        return float(y.sum())

    # copies, to perturb in place (a NumPy scalar as a 0-d array: its reshape would be a new array)
    arrays = [np.array(a) if isinstance(a, np.generic) else a.copy() for a in inputs]
    grads = []
    for a in arrays:
        xp = get_array_module(a)
        grad = xp.zeros_like(a)
        flat, flat_grad = a.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            original = flat[i].copy()
            flat[i] = original + eps
            plus = total(arrays)
            flat[i] = original - eps
            minus = total(arrays)
            flat[i] = original
            flat_grad[i] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def gradient_check(f, *inputs, eps=1e-6, rtol=1e-4, atol=1e-5, verbose=False):
    """Compare backward() with numerical gradients for f at `inputs`.

    Returns the largest absolute difference over all inputs; raises
    AssertionError naming the input and the worst element when
    |analytic - numeric| > atol + rtol * |numeric| anywhere.

        err = gradient_check(lambda x: F.tanh(x) * x, np.random.randn(3, 4))

    Every input is checked in float64 (a copy on its own device): in float32 the rounding of
    f(x + eps) - f(x - eps) swamps the derivative, and an integer array would truncate x + eps.
    """
    from zero.core import Variable

    arrays = [np.asarray(a, dtype=np.float64) if isinstance(a, (list, float, int, np.generic)) else
              a.astype(np.float64) for a in inputs]
    variables = [Variable(a.copy()) for a in arrays]
    y = f(*variables)
    y.backward()
    numeric = numerical_grad(f, *arrays, eps=eps)
    worst = 0.0
    for index, (variable, expected) in enumerate(zip(variables, numeric)):
        analytic = to_numpy(variable.grad.data) if variable.grad is not None else np.zeros(variable.shape)
        expected = to_numpy(expected)
        if analytic.shape != expected.shape:
            raise AssertionError(f"input {index}: gradient shape {analytic.shape} != input shape {expected.shape}")
        error = np.where(np.isnan(analytic - expected), np.inf, np.abs(analytic - expected))  # NaN fails
        worst = max(worst, float(error.max()) if error.size else 0.0)
        bad = error > atol + rtol * np.abs(expected)
        if verbose:
            print(f"input {index}: max |analytic - numeric| = {error.max() if error.size else 0:.3g}")
        if bad.any():
            excess = np.where(bad, error - (atol + rtol * np.abs(expected)), -np.inf)
            where = tuple(int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))  # the worst
            raise AssertionError(
                f"gradient check failed for input {index} (shape {expected.shape}) at {where}: "
                f"backward gives {analytic[where]:.6g}, numerical gradient {expected[where]:.6g}")
    return worst
