"""Element-wise math: exp, log, sin, cos, tanh, sqrt, abs, clip,
maximum/minimum, where. Each backward is the derivative you learned in school,
times the incoming gradient gy (the chain rule). The transcendental ones give
float32 (the default dtype) for integer input, where NumPy picks float16 to float64 by the
integer's width (float64 for int32 and int64)."""

__all__ = ['abs', 'clip', 'cos', 'exp', 'log', 'maximum', 'minimum', 'sin', 'sqrt', 'square', 'tanh', 'where']

from zero import backend
from zero.backend import floating, get_array_module
from zero.core import NUMBERS, Function, Variable, as_variable
from zero.functions.shape import sum_to


def _mask(condition, dtype):
    """A constant 0/1 Variable from a boolean array (requires_grad=False: never differentiated)."""
    return as_variable(condition.astype(dtype))


class Exp(Function):
    def forward(self, x):
        return self.xp.exp(floating(x))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * y  # (e^x)' = e^x


class Log(Function):
    def forward(self, x):
        return self.xp.log(floating(x))

    def backward(self, gy):
        x, = self.inputs
        return gy / x  # (log x)' = 1/x


class Sin(Function):
    def forward(self, x):
        return self.xp.sin(floating(x))

    def backward(self, gy):
        x, = self.inputs
        return gy * cos(x)


class Cos(Function):
    def forward(self, x):
        return self.xp.cos(floating(x))

    def backward(self, gy):
        x, = self.inputs
        return gy * -sin(x)


class Tanh(Function):
    def forward(self, x):
        return self.xp.tanh(floating(x))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)  # tanh' = 1 - tanh^2


class Sqrt(Function):
    def forward(self, x):
        return self.xp.sqrt(floating(x))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy / (2 * y)  # (sqrt x)' = 1 / (2 sqrt x)


class Abs(Function):
    def forward(self, x):
        return self.xp.abs(x)

    def backward(self, gy):
        x, = self.inputs
        return gy * as_variable(self.xp.sign(x.data))  # |x|' = sign(x), 0 at 0 (a constant)


class Clip(Function):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        if self.low is None and self.high is None:  # NumPy 2 allows it, some CuPy versions refuse it
            return x.copy()
        return self.xp.clip(x, self.low, self.high)

    def backward(self, gy):
        x, = self.inputs
        if self.low is None and self.high is None:  # no limit on either side: y = x
            return gy
        if self.low is None:  # slope 1 inside [low, high], 0 where clipped; a bound None: no limit
            inside = x.data <= self.high
        elif self.high is None:
            inside = x.data >= self.low
        else:
            inside = (x.data >= self.low) & (x.data <= self.high)
        return sum_to(gy * _mask(inside, gy.dtype), x.shape)   # array bounds may broadcast x up


class Maximum(Function):
    """Element-wise max. At ties the gradient goes to the first input."""

    def forward(self, x0, x1):
        return self.xp.maximum(x0, x1)

    def backward(self, gy):
        x0, x1 = self.inputs
        first = x0.data >= x1.data
        gx0 = sum_to(gy * _mask(first, gy.dtype), x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy * _mask(~first, gy.dtype), x1.shape) if x1.requires_grad else None
        return gx0, gx1  # None for a constant input (e.g. the 0 of maximum(x, 0))


class Minimum(Function):
    """Element-wise min. At ties the gradient goes to the first input."""

    def forward(self, x0, x1):
        return self.xp.minimum(x0, x1)

    def backward(self, gy):
        x0, x1 = self.inputs
        first = x0.data <= x1.data
        gx0 = sum_to(gy * _mask(first, gy.dtype), x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy * _mask(~first, gy.dtype), x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Where(Function):
    """where(condition, x0, x1): x0 where condition holds, else x1."""

    def __init__(self, condition):
        self.condition = condition

    def forward(self, x0, x1):
        return self.xp.where(self.condition, x0, x1)

    def backward(self, gy):
        x0, x1 = self.inputs
        chosen = _mask(self.condition, gy.dtype)
        gx0 = sum_to(gy * chosen, x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy * (1 - chosen), x1.shape) if x1.requires_grad else None
        return gx0, gx1


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sin(x):
    return Sin()(x)


def cos(x):
    return Cos()(x)


def tanh(x):
    return Tanh()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clip(x, low, high):
    """x limited to [low, high] element-wise (a bound None: no limit on that side)."""
    # NumPy scalars and 0-d arrays as Python numbers: float64 ones would upcast float32
    low, high = (bound.item() if getattr(bound, "shape", None) == () else bound for bound in (low, high))
    return Clip(low, high)(x)


def maximum(x0, x1):
    """Element-wise larger of x0 and x1 (broadcast); at ties the gradient goes to x0."""
    return Maximum()(x0, x1)


def minimum(x0, x1):
    """Element-wise smaller of x0 and x1 (broadcast); at ties the gradient goes to x0."""
    return Minimum()(x0, x1)


def where(condition, x0, x1):
    """condition: boolean array or Variable (not differentiated; other values count by their
    truth, as in numpy.where: nonzero is True). A host condition is moved to the device of x0
    (or of x1, if x0 is a number), as get_item moves host indices (zero.backend.to_device_beside)."""
    condition = condition.data if isinstance(condition, Variable) else condition
    reference = x0 if not isinstance(x0, NUMBERS) else x1   # np.float32(0) has a shape, and no device
    if hasattr(reference, "shape") and not isinstance(reference, NUMBERS):
        condition = backend.to_device_beside(condition, backend.device_of(reference), "where: the condition")
    condition = get_array_module(condition).asarray(condition, dtype=bool)  # backward uses it as a 0/1 mask
    return Where(condition)(x0, x1)


def square(x):
    """x ** 2, element-wise."""
    return as_variable(x) ** 2
