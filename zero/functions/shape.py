"""Ops that move values around without changing them: reshape, transpose,
broadcast_to, indexing, concatenate, stack; sum_to, broadcast_to's adjoint,
which adds up the copies; and astype, which keeps the values but stores them
in another dtype."""

__all__ = ['astype', 'broadcast_to', 'concatenate', 'expand_dims', 'flatten', 'get_item', 'reshape', 'squeeze', 'stack', 'sum_to', 'swapaxes', 'transpose']
import numpy as np

from zero import backend, utils
from zero.core import Function, as_variable


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.x_shape)


class Transpose(Function):
    """Permute axes (reverse them when axes is None)."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        inverse = tuple(np.argsort([a % len(self.axes) for a in self.axes]))
        return transpose(gy, inverse)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.x_shape = x.shape
        return self.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        # every copy of an element passes its gradient back: sum them
        return sum_to(gy, self.x_shape)


class SumTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.x_shape = x.shape
        lead = x.ndim - len(self.shape)  # shape must broadcast to x's: each size 1 or x's own
        if lead < 0 or any(size not in (1, x_size) for size, x_size in zip(self.shape, x.shape[lead:])):
            raise ValueError(f"cannot sum an array of shape {x.shape} to shape {self.shape} "
                             f"(that shape does not broadcast to it)")
        return utils.sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)


class AsType(Function):
    """x stored in another floating dtype. y = x (rounded), so dy/dx = 1: the gradient is gy,
    cast back to x's dtype (a float32 weight gets a float32 gradient from a float64 loss)."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        if self.x_dtype.kind != "f":  # an integer x: its gradient in the dtype computed in, as other ops give it
            return gy
        return astype(gy, self.x_dtype)


class GetItem(Function):
    """x[index] for slices, integers, None, Ellipsis and integer/boolean arrays."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape = x.shape
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.x_shape)(gy)


class GetItemGrad(Function):
    """Scatter-add gy into zeros of the input shape: the gradient of x[index].
    Repeated integer indices accumulate (xp.add.at), as each use adds."""

    def __init__(self, index, x_shape):
        self.index = index
        self.x_shape = x_shape

    def forward(self, gy):
        gx = self.xp.zeros(self.x_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = gy  # slices never hit an element twice
        else:
            self.xp.add.at(gx, self.index, gy)
        return gx

    def backward(self, ggx):
        return get_item(ggx, self.index)


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (slice, int, type(None), type(Ellipsis))) for i in items)


class Concatenate(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        _check_axis(self.axis, xs[0].ndim)
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        axis = self.axis % gy.ndim
        grads, start = [], 0
        for size in self.sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(get_item(gy, index))
            start += size
        return tuple(grads)


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        _check_axis(self.axis, xs[0].ndim + 1)   # the new axis may come after the last one
        return self.xp.stack(xs, axis=self.axis)

    def backward(self, gy):
        axis = self.axis % gy.ndim
        return tuple(get_item(gy, (slice(None),) * axis + (i,)) for i in range(gy.shape[axis]))


# -----------------------------------------------------------------------------
def reshape(x, *shape):
    """x with a new shape of as many elements: reshape(x, 2, -1) or reshape(x, (2, -1))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if tuple(x.shape) == shape:
        return as_variable(x)
    return Reshape(shape)(x)


def transpose(x, *axes):
    """Reverse the axes, or permute them: transpose(x, 0, 2, 1) or transpose(x, (0, 2, 1))."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose(axes or None)(x)


def swapaxes(x, axis1, axis2):
    """x with axes axis1 and axis2 exchanged (a transpose), as numpy.swapaxes."""
    axes = list(range(x.ndim))
    for axis in (axis1, axis2):
        if not -x.ndim <= axis < x.ndim:   # AxisError: a ValueError and an IndexError, as NumPy's
            raise np.exceptions.AxisError(f"swapaxes: axis {axis} is out of range for x of shape {tuple(x.shape)}")
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return Transpose(tuple(axes))(x)


def broadcast_to(x, shape):
    """x repeated along new or size-1 axes to `shape`, by NumPy's broadcasting rules; the
    gradient is gy summed back to x's shape (sum_to)."""
    if tuple(x.shape) == tuple(shape):
        return as_variable(x)
    return BroadcastTo(shape)(x)


def sum_to(x, shape):
    """x summed down to `shape`, the reverse of broadcast_to: over the leading axes x has in
    excess and over the axes where `shape` has size 1."""
    if tuple(x.shape) == tuple(shape):
        return as_variable(x)
    return SumTo(shape)(x)


def astype(x, dtype):
    """x with its values in floating dtype `dtype` (x itself when it has that dtype already):
    Variable.astype(np.float64), for a float64 check of a float32 computation, say."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"astype: zero computes gradients in floating dtypes only, got {dtype}")
    if x.dtype == dtype:
        return as_variable(x)
    return AsType(dtype)(x)


def get_item(x, index):
    """x[index]. Index arrays (host or Variable) are moved to x's device (from the host only)."""
    x = as_variable(x)
    items = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, (slice, int, type(None), type(Ellipsis))) for i in items):
        device = x.device
        items = tuple(backend.to_device_beside(i, device, "get_item: the index arrays")
                      if not isinstance(i, (slice, int, type(None), type(Ellipsis))) else i for i in items)
        index = items if isinstance(index, tuple) else items[0]
    return GetItem(index)(x)


def concatenate(xs, axis=0):
    """The arrays or Variables of `xs` joined along an existing axis; each gets its slice of gy."""
    _check_inputs("concatenate", xs, axis)
    return Concatenate(axis)(*xs)


def stack(xs, axis=0):
    """The arrays or Variables of `xs`, all of one shape, joined along a new axis."""
    _check_inputs("stack", xs, axis)
    return Stack(axis)(*xs)


def _check_axis(axis, ndim):
    """Refuse an axis that is not one of ndim axes (from -ndim to ndim - 1), naming both, with NumPy's
    AxisError (both a ValueError and an IndexError, as NumPy's own refusals are)."""
    if ndim == 0:
        raise np.exceptions.AxisError("the inputs are 0-d arrays, which have no axis to join along")
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"axis {axis} is out of range for {ndim} axes (-{ndim} to {ndim - 1})")


def _check_inputs(op, xs, axis):
    """Refuse xs that is not a list or tuple (a Variable or an array iterates over its rows, which
    would be joined), an empty one, and an axis that is not an integer (op(a, b) takes b for it)."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{op}: xs must be a list or tuple of Variables, got a {type(xs).__name__}; "
                        f"to join a and b, call {op}([a, b])")
    if len(xs) == 0:
        raise ValueError(f"{op}: needs at least one array, got an empty sequence")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}")


def flatten(x):
    """(N, ...) -> (N, prod(...)), as between a conv stack and a linear layer."""
    return reshape(x, (x.shape[0], -1))


def expand_dims(x, axis):
    """x with a new axis of size 1 at position `axis` (a reshape), as numpy.expand_dims."""
    shape = list(x.shape)
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ValueError(f"expand_dims: axis {axis} is out of range for x of shape {tuple(x.shape)} "
                         f"(from {-len(shape) - 1} to {len(shape)})")
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(x, tuple(shape))


def squeeze(x, axis):
    """x without its axis `axis`, which must have size 1 (a reshape), as numpy.squeeze(x, axis)."""
    shape = list(x.shape)
    if not -len(shape) <= axis < len(shape) or shape[axis] != 1:
        raise ValueError(f"squeeze: axis {axis} of x {tuple(x.shape)} is not an axis of size 1")
    del shape[axis]
    return reshape(x, tuple(shape))

