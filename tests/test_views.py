"""Ops on views: an input that is a transposed, strided or reversed view of a larger array (as
x.T, x[:, ::2] or a channel slice hand them on) must give what the same values in a fresh
contiguous array give, values and gradients, and must not be written to. Stride tricks (im2col,
the shifted rows of conv2d), in-place updates and reshapes that assume a layout are the places
where a view could go wrong."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zero.functions as F
from zero import Variable

SETTINGS = settings(max_examples=10, deadline=None)
LAYOUTS = ["transposed", "strided", "reversed", "channel slice"]


def as_view(values, layout):
    """An array equal to `values` but laid out as `layout` in memory, never C-contiguous
    (unless it has at most one element); the memory around it holds other numbers."""
    if layout == "transposed":   # Fortran order: the transpose of a C-ordered transpose
        return np.ascontiguousarray(values.T).T
    if layout == "strided":      # every other element of a wider array along the last axis
        wide = np.full(values.shape[:-1] + (2 * values.shape[-1],), np.nan)
        wide[..., ::2] = values
        return wide[..., ::2]
    if layout == "reversed":     # negative strides on every axis
        return np.ascontiguousarray(values[(slice(None, None, -1),) * values.ndim])[
            (slice(None, None, -1),) * values.ndim]
    if layout == "channel slice":   # axis 1 cut out of a larger array, as x[:, 1:1 + C]
        shape = list(values.shape)
        shape[1] += 2
        bigger = np.full(shape, np.nan)
        bigger[:, 1:1 + values.shape[1]] = values
        return bigger[:, 1:1 + values.shape[1]]
    raise ValueError(layout)


# name: (f(*variables) -> Variable, shapes of the inputs); every input has at least 2 axes and 2 elements per axis
# (a 1-D parameter such as a bias is taken as a row of a 2-D input: b[0])
OPS = {
    "exp": (F.exp, [(3, 4)]),
    "tanh * x": (lambda x: F.tanh(x) * x, [(3, 4)]),
    "sigmoid": (F.sigmoid, [(3, 4)]),
    "softplus": (F.softplus, [(3, 4)]),
    "silu": (F.silu, [(4, 3)]),
    "relu": (F.relu, [(3, 4)]),
    "leaky_relu": (F.leaky_relu, [(3, 4)]),
    "square": (F.square, [(2, 5)]),
    "add broadcast": (lambda a, b: a + b, [(2, 3, 4), (3, 4)]),
    "mul and div": (lambda a, b: a * b / (b * b + 1.0), [(3, 4), (3, 4)]),
    "maximum": (F.maximum, [(3, 4), (3, 4)]),
    "sum axis 0": (lambda x: F.sum(x, axis=0), [(3, 4)]),
    "mean axis 1": (lambda x: F.mean(x, axis=1), [(3, 4)]),
    "max axis 1": (lambda x: F.max(x, axis=1), [(3, 4)]),
    "softmax": (F.softmax, [(3, 4)]),
    "log_softmax": (F.log_softmax, [(3, 4)]),
    "logsumexp": (F.logsumexp, [(3, 4)]),
    "reshape": (lambda x: F.reshape(x, (4, 3)), [(3, 4)]),
    "transpose": (lambda x: F.transpose(x), [(3, 4)]),
    "get_item": (lambda x: x[1:, ::2], [(3, 4)]),
    "concatenate": (lambda a, b: F.concatenate([a, b], axis=1), [(3, 4), (3, 2)]),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "linear": (lambda x, W, b: F.linear(x, W, b[0]), [(3, 4), (4, 2), (3, 2)]),   # a bias (2,), one row of b
    "mean_squared_error": (F.mean_squared_error, [(3, 4), (3, 4)]),
    "binary_cross_entropy_with_logits": (lambda a, b: F.binary_cross_entropy_with_logits(a, F.sigmoid(b)),
                                         [(3, 4), (3, 4)]),
    "batch_norm 2-D": (lambda x, g, b: F.batch_norm(x, g[0], b[0], np.zeros(4), np.ones(4)), [(5, 4), (2, 4), (2, 4)]),
    "batch_norm 4-D": (lambda x, g, b: F.batch_norm(x, g[0], b[0], np.zeros(3), np.ones(3)),
                       [(2, 3, 4, 4), (2, 3), (2, 3)]),
    "conv2d same": (lambda x, w: F.conv2d(x, w, padding=1), [(2, 3, 5, 5), (4, 3, 3, 3)]),
    "conv2d stride 2": (lambda x, w: F.conv2d(x, w, stride=2), [(2, 3, 6, 6), (2, 3, 2, 2)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                         [(2, 3, 3, 3), (3, 2, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [(2, 3, 4, 4)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), [(2, 3, 4, 4)]),
    "upsample nearest": (lambda x: F.upsample(x, 2), [(2, 3, 3, 3)]),
    "upsample bilinear": (lambda x: F.upsample(x, 2, mode="bilinear"), [(2, 3, 3, 3)]),
}


def _run(f, arrays):
    """f's value and each input's gradient, for a weighted sum of f (every output element counts)."""
    variables = [Variable(a) for a in arrays]
    y = f(*variables)
    weights = np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape)   # fixed, all different
    F.sum(y * weights).backward()
    return y.data, [v.grad.data for v in variables]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(OPS))
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1))
def test_an_op_on_views_gives_what_it_gives_on_fresh_arrays(name, layout, seed):
    f, shapes = OPS[name]
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape) for shape in shapes]
    views = [as_view(v, layout) for v in values]
    assert all(np.array_equal(view, v) and not view.flags.c_contiguous for view, v in zip(views, values))
    kept = [view.copy() for view in views]
    y_fresh, grads_fresh = _run(f, [v.copy() for v in values])
    y_view, grads_view = _run(f, views)
    np.testing.assert_allclose(y_view, y_fresh, rtol=1e-12, atol=1e-12)
    for grad_view, grad_fresh in zip(grads_view, grads_fresh):
        np.testing.assert_allclose(grad_view, grad_fresh, rtol=1e-12, atol=1e-12)
    for view, before in zip(views, kept):
        np.testing.assert_array_equal(view, before)   # no op writes into its input
