"""+, -, *, /, unary -, ** : the ops behind Variable's operators.

Inputs may have different shapes (NumPy broadcasting); backward then sums the
gradient back to each input's shape (`sum_to`). An input that needs no gradient (a
constant such as the 1 in `x - 1`) gets None: nothing is computed for it.
"""

__all__ = ['add', 'div', 'mul', 'neg', 'pow', 'rdiv', 'rpow', 'rsub', 'sub']

import math

from zero.core import Function, Variable
from zero.functions.math import exp, log
from zero.functions.shape import sum_to


class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        x0, x1 = self.inputs
        # d(x0 + x1)/dx0 = d(x0 + x1)/dx1 = 1
        gx0 = sum_to(gy, x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy, x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Sub(Function):
    def forward(self, x0, x1):
        return x0 - x1

    def backward(self, gy):
        x0, x1 = self.inputs
        # d(x0 - x1)/dx0 = 1, d(x0 - x1)/dx1 = -1
        gx0 = sum_to(gy, x0.shape) if x0.requires_grad else None
        gx1 = sum_to(-gy, x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs
        # d(x0 x1)/dx0 = x1, d(x0 x1)/dx1 = x0
        gx0 = sum_to(gy * x1, x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy * x0, x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs
        # d(x0/x1)/dx0 = 1/x1, d(x0/x1)/dx1 = -x0/x1^2
        gx0 = sum_to(gy / x1, x0.shape) if x0.requires_grad else None
        gx1 = sum_to(gy * (-x0 / (x1 * x1)), x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """x ** c for a constant exponent c."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x, = self.inputs
        if self.c == 0:  # x^0 = 1 is flat; c x^(c-1) would be 0 * inf at x = 0
            return gy * 0
        # d(x^c)/dx = c x^(c-1)
        return gy * (self.c * x ** (self.c - 1))


def add(x0, x1):
    return Add()(x0, x1)


def sub(x0, x1):
    return Sub()(x0, x1)


def rsub(x0, x1):
    return Sub()(x1, x0)


def mul(x0, x1):
    return Mul()(x0, x1)


def div(x0, x1):
    return Div()(x0, x1)


def rdiv(x0, x1):
    return Div()(x1, x0)


def neg(x):
    return Neg()(x)


def pow(x, c):
    """x ** c. A constant exponent (number) uses Pow; a Variable exponent
    goes through exp(c log x), defined for x > 0."""
    if isinstance(c, Variable):
        return exp(log(x) * c)
    if hasattr(c, "shape") and c.shape != ():
        raise TypeError(f"pow: the exponent must be a number or a Variable, got an array of shape {c.shape} "
                        f"(wrap it: x ** Variable(array))")
    if getattr(c, "shape", None) == ():  # NumPy scalars and 0-d arrays as Python numbers:
        c = c.item()                     # a float64 exponent would make float32 data float64
    return Pow(c)(x)


def rpow(x, c):
    """c ** x for a constant base c > 0: exp(x log c)."""
    if hasattr(c, "shape") and c.shape != ():
        raise TypeError(f"rpow: the base must be a number or a Variable, got an array of shape {c.shape} "
                        f"(wrap it: Variable(array) ** x)")
    if not c > 0:
        raise ValueError(f"rpow: c ** x is computed as exp(x log c), which needs a base c > 0, got {c!r}")
    return exp(x * math.log(c))
