"""Activation functions and the softmax family.

Everything that exponentiates is written to be stable for large |x|:
sigmoid as 1 / (1 + e^-x) (an overflow to inf gives the right limit, 0),
softplus through log1p(exp(-|x|)), and softmax, log_softmax and logsumexp
subtract the maximum before exponentiating (softmax(x) = softmax(x - c) for any constant c).
"""

__all__ = ['leaky_relu', 'log_softmax', 'logsumexp', 'relu', 'sigmoid', 'silu', 'softmax', 'softplus']
import numpy as np

from zero import utils
from zero.backend import floating
from zero.core import Function, as_variable
from zero.functions.math import exp
from zero.functions.reduction import sum
from zero.functions.shape import reshape


def _sigmoid(xp, x):
    """1 / (1 + e^-x) on an array, as written: for x < 0, e^-x is large and 1 / (1 + e^-x) keeps
    its full relative precision (sigmoid(-20) = 2.1e-9 in float32, where 0.5 tanh(x/2) + 0.5 rounds
    it to 0 and log(sigmoid(-20)) would be -inf). Below x = -88.7 (float32) e^-x overflows to inf
    and 1 / (1 + inf) = 0, the right limit: NumPy's overflow warning is silenced for it."""
    x = floating(x)
    y = xp.negative(x, out=xp.empty_like(x))   # -x, in an array of its own (for a 0-d x too), worked on in place
    with np.errstate(over="ignore"):
        xp.exp(y, out=y)                        # e^-x
    y += 1
    return xp.reciprocal(y, out=y)              # 1 / (1 + e^-x)


class Sigmoid(Function):
    def forward(self, x):
        return _sigmoid(self.xp, x)

    def backward(self, gy):
        y = self.outputs[0]()
        return SigmoidGrad()(y, gy)


class SigmoidGrad(Function):
    """gx = gy * y (1 - y), since sigma'(x) = sigma(x) (1 - sigma(x)), as one op
    (the hot path of the book's sigmoid MLPs)."""

    def forward(self, y, gy):
        gx = 1 - y  # one new array, then in place: gx = (1 - y) y gy
        gx *= y
        gx *= gy
        return gx

    def backward(self, ggx):
        y, gy = self.inputs
        # d/dy [gy y (1 - y)] = gy (1 - 2 y);  d/dgy = y (1 - y)
        return ggx * gy * (1 - 2 * y), ggx * y * (1 - y)


class ReLU(Function):
    def forward(self, x):
        return self.xp.maximum(x, 0)

    def backward(self, gy):
        x, = self.inputs
        return gy * as_variable((x.data > 0).astype(gy.dtype))  # slope 1 where x > 0 (a constant mask)


class LeakyReLU(Function):
    """x where x > 0, negative_slope * x elsewhere."""

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        # y = max(x, slope x) for slope <= 1 (min for slope > 1): two fast passes, where xp.where is slow
        larger_or_smaller = self.xp.maximum if self.negative_slope <= 1 else self.xp.minimum
        x = floating(x)
        return larger_or_smaller(x, x * x.dtype.type(self.negative_slope))

    def backward(self, gy):
        x, = self.inputs
        one, slope = gy.dtype.type(1), gy.dtype.type(self.negative_slope)
        local_slope = (x.data > 0) * (one - slope)  # 1 - slope where x > 0, 0 elsewhere
        local_slope += slope                        # 1 where x > 0, negative_slope elsewhere
        return gy * as_variable(local_slope)


class Softplus(Function):
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): the exponent is never positive."""

    def forward(self, x):
        xp, x = self.xp, floating(x)
        y = xp.log1p(xp.exp(-xp.abs(x)))
        y += xp.maximum(x, 0)
        return y

    def backward(self, gy):
        x, = self.inputs
        return gy * sigmoid(x)  # d/dx log(1 + e^x) = sigma(x)


class SiLU(Function):
    """x sigma(x), also called swish."""

    def forward(self, x):
        y = _sigmoid(self.xp, x)
        y *= x
        return y

    def backward(self, gy):
        x, = self.inputs
        return SiLUGrad()(x, gy)


class SiLUGrad(Function):
    """gx = gy silu'(x), with silu'(x) = s + x s (1 - s) = s (1 + x (1 - s)), s = sigma(x),
    computed in place on arrays (silu is a hot op of diffusion U-Nets)."""

    def forward(self, x, gy):
        s = _sigmoid(self.xp, x)
        gx = 1 - s
        gx *= x
        gx += 1
        gx *= s
        gx *= gy
        return gx

    def backward(self, ggx):
        x, gy = self.inputs
        s = sigmoid(x)
        first = s * (1 + x * (1 - s))                 # silu'(x)
        second = s * (1 - s) * (2 + x * (1 - 2 * s))  # silu''(x)
        return ggx * gy * second, ggx * first


class Softmax(Function):
    """y_i = e^(x_i) / sum_j e^(x_j) along `axis`."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        x = floating(x)
        if x.size == 0:   # max over an empty axis raises: nothing to normalise
            return x.copy()
        y = self.xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward(self, gy):
        y = self.outputs[0]()
        # dL/dx_i = y_i (gy_i - sum_j gy_j y_j)
        gx = y * gy
        return gx - y * sum(gx, axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^(x_j) along `axis`."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp, x = self.xp, floating(x)
        if x.size == 0:   # max over an empty axis raises: nothing to normalise
            return x.copy()
        y = x - x.max(axis=self.axis, keepdims=True)
        y -= xp.log(xp.exp(y).sum(axis=self.axis, keepdims=True))
        return y

    def backward(self, gy):
        y = self.outputs[0]()
        # dL/dx_i = gy_i - softmax_i sum_j gy_j, and softmax = e^y
        return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)


class LogSumExp(Function):
    """y = log sum_i e^(x_i) over `axis` = m + log sum_i e^(x_i - m), m = max_i x_i."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp, x = self.xp, floating(x)
        m = x.max(axis=self.axis, keepdims=True)
        # rows that are all -inf (or hold +inf): shift by 0, so the result is -inf (+inf), not nan
        m = xp.where(xp.isfinite(m), m, m.dtype.type(0))
        y = xp.log(xp.exp(x - m).sum(axis=self.axis, keepdims=True))
        y += m
        return y if self.keepdims else y.reshape(self.reduced_shape(x.shape))

    def reduced_shape(self, x_shape):
        axes = utils.normalize_axes(self.axis, len(x_shape))
        return tuple(size for i, size in enumerate(x_shape) if i not in axes)

    def backward(self, gy):
        x, = self.inputs
        y = self.outputs[0]()
        if not self.keepdims:
            kept = utils.keepdims_shape(x.shape, self.axis)
            gy, y = reshape(gy, kept), reshape(y, kept)
        return gy * exp(x - y)  # d/dx_i logsumexp(x) = e^(x_i - y) = softmax_i


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, negative_slope * x elsewhere."""
    return LeakyReLU(negative_slope)(x)


def softplus(x):
    """log(1 + e^x), stable for large |x|."""
    return Softplus()(x)


def silu(x):
    """x * sigmoid(x)."""
    return SiLU()(x)


def softmax(x, axis=-1):
    """e^x normalised to sum to 1 along `axis`; same shape as x."""
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    """log(softmax(x, axis)), computed without forming softmax; same shape as x."""
    return LogSoftmax(axis)(x)


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x), axis)) without overflow; `axis` is an int or a tuple."""
    return LogSumExp(axis, keepdims)(x)
