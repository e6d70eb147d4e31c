"""The differentiable ops, grouped by theme; use as ``import zero.functions as F``.

This module also gives Variable its operators and array-like methods, so
that ``x * y + 1``, ``x @ W``, ``x[0, :]`` and ``x.sum(axis=1)`` build graphs.
"""
from zero.core import Variable
from zero.functions.activation import *  # noqa: F401,F403
from zero.functions.arithmetic import *  # noqa: F401,F403
from zero.functions.conv import *  # noqa: F401,F403
from zero.functions.gaussian import *  # noqa: F401,F403
from zero.functions.linalg import *  # noqa: F401,F403
from zero.functions.loss import *  # noqa: F401,F403
from zero.functions.math import *  # noqa: F401,F403
from zero.functions.nn import *  # noqa: F401,F403
from zero.functions.reduction import *  # noqa: F401,F403
from zero.functions.shape import *  # noqa: F401,F403
from zero.functions import arithmetic as _arithmetic, linalg as _linalg, reduction as _reduction, shape as _shape


def _install_variable_methods():
    a, la, r, s = _arithmetic, _linalg, _reduction, _shape
    Variable.__add__ = Variable.__radd__ = a.add
    Variable.__sub__, Variable.__rsub__ = a.sub, a.rsub
    Variable.__mul__ = Variable.__rmul__ = a.mul
    Variable.__truediv__, Variable.__rtruediv__ = a.div, a.rdiv
    Variable.__neg__ = a.neg
    Variable.__pow__, Variable.__rpow__ = a.pow, a.rpow
    Variable.__matmul__ = la.matmul
    Variable.__rmatmul__ = lambda W, x: la.matmul(x, W)
    Variable.__getitem__ = s.get_item
    Variable.astype = s.astype
    Variable.reshape = s.reshape
    Variable.transpose = s.transpose
    Variable.T = property(s.transpose)
    Variable.sum, Variable.mean, Variable.max, Variable.min = r.sum, r.mean, r.max, r.min


_install_variable_methods()
