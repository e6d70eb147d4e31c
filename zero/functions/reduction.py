"""Reductions: sum, mean, max, min over any axes."""

__all__ = ['max', 'mean', 'min', 'sum']
import numpy as np

from zero import utils
from zero.backend import floating
from zero.core import Function, as_variable
from zero.functions.shape import astype, broadcast_to, reshape


HALF = np.dtype(np.float16)   # the one floating dtype narrower than float32


def in_float32_at_least(op, *inputs):
    """op(*inputs), with float16 inputs computed in float32 and the result cast back: for ops that
    average over many elements (mean, the losses, batch norm; PyTorch's autocast too runs its
    losses and sums in float32). In float16 a sum overflows to inf past 65504, and so does the
    element count itself (np.float16(100352) is inf): a mean over more elements came out 0 or
    NaN, and its gradient gy / n zero. The casts are ops, so gradients come back in each input's
    dtype; the price is a float32 copy of each float16 input. Other dtypes call op(*inputs) as it is
    (the loop below is the whole cost: these ops are on every training step's path). A sum comes
    back in float16 too, where past 65504 it is inf: a float16 model trains on a mean loss."""
    for x in inputs:
        if getattr(x, "dtype", None) == HALF:
            break
    else:
        return op(*inputs)
    dtype = np.result_type(*(x.dtype for x in inputs if hasattr(x, "dtype")))  # the dtype op would give
    return astype(op(*(astype(x, np.float32) if getattr(x, "dtype", None) == HALF else x for x in inputs)), dtype)


def _spread(gy, x_shape, axis, keepdims):
    """Gradient of a reduction: put gy back on every reduced position."""
    if not keepdims:
        gy = reshape(gy, utils.keepdims_shape(x_shape, axis))
    return broadcast_to(gy, x_shape)


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        return _spread(gy, self.x_shape, self.axis, self.keepdims)  # d(sum)/dx_i = 1


class Mean(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        y = floating(x).mean(axis=self.axis, keepdims=self.keepdims)  # float32 for integers too
        self.count = x.size // y.size if y.size else 1
        return y

    def backward(self, gy):
        return _spread(gy, self.x_shape, self.axis, self.keepdims) / self.count  # 1/n each


class _ArgReduction(Function):
    """max/min: the gradient flows only to the selected element. At ties the
    first one (in C order over the reduced axes) is chosen, as argmax does."""

    reduce, select = None, None  # "max" and "argmax", or "min" and "argmin"

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return getattr(x, self.reduce)(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        x, = self.inputs
        mask = as_variable(self._first_selected(x.data).astype(gy.dtype))   # 1 at the chosen element
        return _spread(gy, self.x_shape, self.axis, self.keepdims) * mask

    def _first_selected(self, x):
        """A boolean array like x, True at the first max (min) of each reduced block: move the reduced
        axes last, flatten them, arg-select, one-hot, and move the axes back."""
        xp = self.xp
        axes = utils.normalize_axes(self.axis, x.ndim)
        k = len(axes)
        moved = xp.moveaxis(x, axes, tuple(range(x.ndim - k, x.ndim)))
        flat = moved.reshape(moved.shape[:x.ndim - k] + (-1,))
        chosen = getattr(flat, self.select)(axis=-1)
        one_hot = xp.arange(flat.shape[-1]) == chosen[..., None]
        return xp.moveaxis(one_hot.reshape(moved.shape), tuple(range(x.ndim - k, x.ndim)), axes)


class Max(_ArgReduction):
    reduce, select = "max", "argmax"


class Min(_ArgReduction):
    reduce, select = "min", "argmin"


def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (an int, a tuple of them, or None: all), as numpy.sum; its gradient
    spreads gy back over the summed elements."""
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (an int, a tuple of them, or None: all), as numpy.mean; each element
    gets gy / n back, n the number averaged. float16 is averaged in float32 (in_float32_at_least)."""
    return in_float32_at_least(Mean(axis, keepdims), x)


def max(x, axis=None, keepdims=False):
    """Largest element over `axis` (an int, a tuple of them, or None: all); the gradient goes
    to that element only, the first one at ties (as argmax)."""
    return Max(axis, keepdims)(x)


def min(x, axis=None, keepdims=False):
    """Smallest element over `axis` (an int, a tuple of them, or None: all); the gradient goes
    to that element only, the first one at ties (as argmin)."""
    return Min(axis, keepdims)(x)
