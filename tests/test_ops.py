"""Every differentiable op of the engine: backward against central-difference
numerical gradients (float64, hypothesis-generated shapes with broadcasting),
and the same computation on the strict device (no silent host copies) giving
the same values and gradients as on the CPU."""
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import zero.functions as F
from zero import Function, Variable
from zero.backend import to_device, to_numpy
from zero.functions.linalg import LinearGrad
from zero.functions.shape import GetItemGrad
from zero.utils import gradient_check

from conftest import assert_double_backprop_on_strict_matches_cpu, on, second_order_check

SETTINGS = settings(max_examples=15, deadline=None)

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**31 - 1)


def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape):
    return rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """Values at least 0.05 apart, so max/min/maximum have no ties to blur."""
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.1 + rng.uniform(0, 0.05, size)).reshape(shape) - size * 0.05


def check_everywhere(f, *arrays):
    """Gradient check on the CPU; then the strict device must agree exactly. f's output is weighted
    (by fixed numbers away from zero, of both signs where it has several entries), so that the op under
    test gets an incoming gradient gy other than the ones backward() starts from: a backward that
    ignored gy would pass with gy = 1."""
    shape = f(*[Variable(a.copy()) for a in arrays]).shape
    weights = away_from_zero(np.random.default_rng(0), shape)
    gradient_check(lambda *v: f(*v) * weights, *arrays)
    on_cpu = [Variable(a.copy()) for a in arrays]
    on_device = [Variable(to_device(a, "strict")) for a in arrays]
    y_cpu, y_device = f(*on_cpu), f(*on_device)
    (y_cpu * weights).backward()
    (y_device * to_device(weights, "strict")).backward()
    assert y_device.device == "strict"
    np.testing.assert_allclose(to_numpy(y_device.data), y_cpu.data, rtol=1e-12, atol=1e-12)
    for a, b in zip(on_cpu, on_device):
        assert b.grad.device == "strict"
        np.testing.assert_allclose(to_numpy(b.grad.data), a.grad.data, rtol=1e-12, atol=1e-12)


# --- element-wise ops on one input ------------------------------------------
UNARY = {
    "neg": (lambda x: -x, normal),
    "exp": (F.exp, normal),
    "log": (F.log, positive),
    "sin": (F.sin, normal),
    "cos": (F.cos, normal),
    "tanh": (F.tanh, normal),
    "sqrt": (F.sqrt, positive),
    "abs": (F.abs, away_from_zero),
    "square": (F.square, normal),
    "pow_3": (lambda x: x ** 3, normal),
    "pow_half": (lambda x: x ** 0.5, positive),
    "rpow": (lambda x: 2.0 ** x, normal),
    "clip": (lambda x: F.clip(x, -0.5, 0.5), lambda rng, s: away_from_zero(rng, s) * 0.9 + 0.0),
    "sigmoid": (F.sigmoid, normal),
    "relu": (F.relu, away_from_zero),
    "scalar_ops": (lambda x: (3.0 - x) * 2.0 / (x * x + 1.0) + 1.0, normal),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=seeds)
def test_unary_op_gradients(name, shape, seed):
    f, make = UNARY[name]
    check_everywhere(f, make(np.random.default_rng(seed), shape))


def test_clip_passes_no_gradient_where_clipped():
    x = Variable(np.array([-2.0, 0.0, 2.0]))
    F.clip(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 0.0])


@settings(deadline=None, max_examples=30)
@given(shape=shapes, seed=seeds)
def test_clip_with_array_bounds_that_broadcast_x_up_sums_its_gradient_back_to_xs_shape(shape, seed):
    """Bounds of shape (2, *x.shape) make y twice x's size: backward returned gy * mask at y's shape, and
    an optimizer step then refused the parameter's gradient. Summed to x's shape, as torch.clamp does."""
    rng = np.random.default_rng(seed)
    x = normal(rng, shape) * 2
    low = rng.uniform(-1.5, 0.0, (2,) + shape)
    low = np.where(np.abs(x - low) < 1e-3, low - 0.01, low)   # no kink within the numerical step
    check_everywhere(lambda v: F.clip(v, low if v.device == "cpu" else to_device(low, "strict"), 1.0), x)


def test_clip_with_array_bounds_gives_each_entry_of_x_the_gradient_of_every_copy_of_it():
    x = Variable(np.array([-1.0, 0.5, 2.0], np.float32))
    y = F.clip(x, np.zeros((2, 3), np.float32), 1.0)
    y.sum().backward()
    assert y.shape == (2, 3) and x.grad.shape == (3,) and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.data, [0.0, 2.0, 0.0])


def test_clip_without_bounds_passes_the_whole_gradient():
    x = Variable(np.array([-2.0, 0.0, 2.0]))
    y = F.clip(x, None, None)  # NumPy allows it: no limit on either side (a copy, not passed to clip,
    (y * 3.0).sum().backward()  # which refuses two None bounds in some CuPy versions)
    np.testing.assert_array_equal(y.data, x.data)
    assert not np.shares_memory(y.data, x.data)
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0, 3.0])


# --- element-wise ops on two broadcasting inputs ----------------------------
BINARY = {
    "add": (lambda a, b: a + b, normal, normal),
    "sub": (lambda a, b: a - b, normal, normal),
    "mul": (lambda a, b: a * b, normal, normal),
    "div": (lambda a, b: a / b, normal, away_from_zero),
    "pow_variable_exponent": (lambda a, b: a ** b, positive, normal),
    "maximum": (F.maximum, None, None),
    "minimum": (F.minimum, None, None),
    "mse_like": (lambda a, b: (a - b) * (a - b), normal, normal),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=broadcast_pairs, seed=seeds)
def test_binary_op_gradients_with_broadcasting(name, shapes, seed):
    f, make_a, make_b = BINARY[name]
    rng = np.random.default_rng(seed)
    shape_a, shape_b = shapes.input_shapes
    if make_a is None:  # maximum/minimum: all values distinct across both inputs
        values = distinct(rng, (int(np.prod(shape_a)) + int(np.prod(shape_b)),))
        a, b = values[:int(np.prod(shape_a))].reshape(shape_a), values[int(np.prod(shape_a)):].reshape(shape_b)
    else:
        a, b = make_a(rng, shape_a), make_b(rng, shape_b)
    check_everywhere(f, a, b)


def test_maximum_and_minimum_send_tied_gradients_to_the_first_input():
    a, b = Variable(np.array([1.0, 2.0])), Variable(np.array([1.0, 3.0]))
    F.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.0, 0.0])
    np.testing.assert_array_equal(b.grad.data, [0.0, 1.0])
    a.cleargrad(), b.cleargrad()
    F.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(b.grad.data, [0.0, 0.0])


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where_gradients(shapes, seed):
    rng = np.random.default_rng(seed)
    cond_shape, shape_a, shape_b = shapes.input_shapes
    condition = rng.random(cond_shape) < 0.5
    a, b = normal(rng, shape_a), normal(rng, shape_b)
    # check_everywhere weights the output (a backward that ignored gy passed with gy = 1) and compares
    # the strict device's gradients, not only its values
    check_everywhere(lambda x0, x1: F.where(condition if x0.device == "cpu" else to_device(condition, "strict"),
                                            x0, x1), a, b)


@pytest.mark.parametrize("condition", [np.array([2, 0, -1]), np.array([0.5, 0.0, -3.0]), [1, 0, 7]])
def test_where_reads_a_condition_that_is_not_boolean_by_its_truth_in_backward_too(condition):
    a, b = Variable(np.array([1.0, 2.0, 3.0])), Variable(np.array([4.0, 5.0, 6.0]))
    y = F.where(condition, a, b)
    y.sum().backward()
    np.testing.assert_array_equal(y.data, np.where(condition, a.data, b.data))
    np.testing.assert_array_equal(a.grad.data, [1.0, 0.0, 1.0])  # 1 where a was chosen, not the condition's value
    np.testing.assert_array_equal(b.grad.data, [0.0, 1.0, 0.0])


# --- reductions --------------------------------------------------------------
@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axes = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True).map(tuple)))
    return shape, axes, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@SETTINGS
@given(case=shape_and_axis(), seed=seeds)
def test_reduction_gradients(name, case, seed):
    shape, axis, keepdims = case
    reduce = getattr(F, name)
    x = distinct(np.random.default_rng(seed), shape)
    y = reduce(Variable(x), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(y.data, getattr(np, name)(x, axis=axis, keepdims=keepdims))
    # a different upstream gradient per output element: a backward that spread it to the wrong
    # elements would pass with a constant one
    weights = normal(np.random.default_rng(seed + 1), y.shape)
    check_everywhere(lambda v, w: reduce(v, axis=axis, keepdims=keepdims) * w, x, weights)


def test_max_ties_send_the_gradient_to_the_first_maximum_only():
    x = Variable(np.array([[3.0, 1.0, 3.0], [2.0, 2.0, 0.0]]))
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1, 0, 0], [1, 0, 0]])
    x.cleargrad()
    x.min().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0, 0], [0, 0, 1]])


# --- shape ops ---------------------------------------------------------------
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), seed=seeds, data=st.data())
def test_reshape_and_transpose_gradients(shape, seed, data):
    x = normal(np.random.default_rng(seed), shape)
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    weights = normal(np.random.default_rng(seed + 1), tuple(shape[a] for a in axes))
    check_everywhere(lambda v, w: F.transpose(v, axes) * w, x, weights)
    check_everywhere(lambda v, w: F.reshape(v, (-1,)) * w, x, weights.reshape(-1))
    check_everywhere(lambda v, w: v.T * w, x, np.transpose(x).copy())


def test_reshape_takes_the_new_shape_as_one_int_as_several_or_as_a_tuple():
    """reshape(x, 6), reshape(x, 3, -1) and reshape(x, (3, 2)), as numpy.reshape and Variable.reshape take it."""
    x = np.arange(6.0).reshape(2, 3)
    for shape, expected in [((6,), (6,)), ((3, -1), (3, 2)), (((3, 2),), (3, 2)), (([6],), (6,))]:
        v = Variable(x)
        y = F.reshape(v, *shape)
        assert y.shape == expected
        np.testing.assert_array_equal(y.data, x.reshape(expected))
        (y * Variable(np.arange(6.0).reshape(expected))).sum().backward()
        np.testing.assert_array_equal(v.grad.data, np.arange(6.0).reshape(2, 3))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), seed=seeds, data=st.data())
def test_swapaxes_expand_dims_squeeze_match_numpy_and_their_gradients(shape, seed, data):
    x = normal(np.random.default_rng(seed), shape)
    axis1, axis2 = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    new_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    np.testing.assert_array_equal(F.swapaxes(Variable(x), axis1, axis2).data, np.swapaxes(x, axis1, axis2))
    np.testing.assert_array_equal(F.expand_dims(Variable(x), new_axis).data, np.expand_dims(x, new_axis))
    weights = normal(np.random.default_rng(seed + 1), np.swapaxes(x, axis1, axis2).shape)
    check_everywhere(lambda v, w: F.swapaxes(v, axis1, axis2) * w, x, weights)
    check_everywhere(lambda v: F.squeeze(F.expand_dims(v, new_axis), new_axis) * 2.0, x)


def test_swapaxes_refuses_an_axis_out_of_range_by_name():
    with pytest.raises(np.exceptions.AxisError, match=r"swapaxes: axis 5 is out of range for x of shape \(3, 4\)"):
        F.swapaxes(Variable(np.zeros((3, 4))), 0, 5)
    with pytest.raises(np.exceptions.AxisError, match=r"swapaxes: axis 2 is out of range"):
        F.swapaxes(Variable(np.zeros((3, 4))), 2, 0)   # ndim itself, the first axis past the end
    assert F.swapaxes(Variable(np.zeros((3, 4))), -1, -2).shape == (4, 3)


def test_squeeze_refuses_an_axis_that_is_not_of_size_one():
    x = Variable(np.zeros((2, 1, 3)))
    assert F.squeeze(x, 1).shape == (2, 3) and F.squeeze(x, -2).shape == (2, 3)
    for axis in (0, 2, 3, -4):
        with pytest.raises(ValueError, match=rf"squeeze: axis {axis} of x \(2, 1, 3\)"):
            F.squeeze(x, axis)


@SETTINGS
@given(shapes=broadcast_pairs, seed=seeds)
def test_broadcast_to_and_sum_to_gradients(shapes, seed):
    shape, _ = shapes.input_shapes
    target = shapes.result_shape
    rng = np.random.default_rng(seed)
    weights = normal(rng, target)
    check_everywhere(lambda v, w: F.broadcast_to(v, target) * w, normal(rng, shape), weights)
    check_everywhere(lambda v, w: F.sum_to(v, shape) * w, normal(rng, target), normal(rng, shape))


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(signature="(m,n),(n,p)->(m,p)", max_dims=2, max_side=4),
       seed=seeds)
def test_matmul_gradients_batched_and_broadcast(shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    check_everywhere(lambda a, b: a @ b, normal(rng, a_shape), normal(rng, b_shape))


@pytest.mark.parametrize("a_shape,b_shape", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,))])
def test_matmul_with_vectors_matches_numpy(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    np.testing.assert_allclose((Variable(a) @ Variable(b)).data, a @ b)
    check_everywhere(lambda x, y: F.matmul(x, y) * 1.0, a, b)


@SETTINGS
@given(batch=st.integers(1, 4), n_in=st.integers(1, 4), n_out=st.integers(1, 4), lead=st.booleans(), seed=seeds)
def test_linear_gradients(batch, n_in, n_out, lead, seed):
    rng = np.random.default_rng(seed)
    x_shape = (2, batch, n_in) if lead else (batch, n_in)
    x, W, b = normal(rng, x_shape), normal(rng, (n_in, n_out)), normal(rng, (n_out,))
    np.testing.assert_allclose(F.linear(Variable(x), Variable(W), Variable(b)).data, x @ W + b)
    weights = normal(rng, x_shape[:-1] + (n_out,))   # a different upstream gradient per output element
    check_everywhere(lambda x, W, b, w: F.linear(x, W, b) * w, x, W, b, weights)
    check_everywhere(lambda x, W, w: F.linear(x, W) * w, x, W, weights)
    # x as a plain array (a network's first layer, the data): linear then computes no gradient for x
    check_everywhere(lambda W, b, w: F.linear(to_device(x, W.device), W, b) * w, W, b, weights)
    check_everywhere(lambda W, w: F.linear(to_device(x, W.device), W) * w, W, weights)



@st.composite
def linear_shapes_with_a_broadcast_bias(draw):
    """x (*lead, batch, in), W (in, out) and a bias shape that broadcasts to y's (*lead, batch, out)
    without enlarging it: its last axes, each kept or 1."""
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    batch, n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    y_shape = (*lead, batch, n_out)
    axes = draw(st.integers(0, len(y_shape)))
    kept = draw(st.lists(st.booleans(), min_size=axes, max_size=axes))
    bias_shape = tuple(size if keep else 1 for size, keep in zip(y_shape[len(y_shape) - axes:], kept))
    return (*lead, batch, n_in), (n_in, n_out), bias_shape


@SETTINGS
@given(shapes=linear_shapes_with_a_broadcast_bias(), seed=seeds)
@example(shapes=((2, 3, 4), (4, 2), (3, 1)), seed=0)   # one bias per row of a 3-D x
@example(shapes=((2, 3, 4), (4, 2), (1, 2)), seed=0)
def test_linear_gradients_with_a_bias_broadcast_to_any_shape(shapes, seed):
    """Only a (out,) bias was drawn, and other bias shapes were checked with a 2-D x: a bias gradient
    scaled by 2 for inputs of more than 2 axes passed the suite."""
    x_shape, w_shape, bias_shape = shapes
    rng = np.random.default_rng(seed)
    x, W, b = normal(rng, x_shape), normal(rng, w_shape), normal(rng, bias_shape)
    np.testing.assert_allclose(F.linear(Variable(x), Variable(W), Variable(b)).data, x @ W + b)
    weights = normal(rng, x_shape[:-1] + w_shape[-1:])
    check_everywhere(lambda x, W, b, w: F.linear(x, W, b) * w, x, W, b, weights)

def test_linear_on_a_single_vector_and_on_four_axes():
    # 2-D inputs take one product (dot); others are flattened to rows and back
    rng = np.random.default_rng(1)
    W, b = normal(rng, (3, 2)), normal(rng, (2,))
    for x_shape in [(3,), (2, 2, 4, 3)]:
        x = normal(rng, x_shape)
        y = F.linear(Variable(x), Variable(W), Variable(b))
        assert y.shape == x_shape[:-1] + (2,)
        np.testing.assert_allclose(y.data, x @ W + b)
        check_everywhere(lambda x, W, b: F.linear(x, W, b), x, W, b)


@pytest.mark.parametrize("w_shape", [(4,), (4, 2, 3)])
def test_linear_refuses_a_weight_that_is_not_a_matrix(w_shape):
    """A 1-D W gave a result whose backward failed inside LinearGrad; a 3-D one followed np.dot's rules."""
    with pytest.raises(ValueError, match=rf"Linear: W must be a matrix \(in, out\), got shape {re.escape(str(w_shape))}"):
        F.linear(Variable(np.ones((3, 4))), Variable(np.ones(w_shape)))


def test_linear_on_a_data_array_still_gives_the_weight_gradient():
    rng = np.random.default_rng(0)
    data, W = normal(rng, (4, 3)), Variable(normal(rng, (3, 2)))
    F.linear(data, W).sum().backward()
    # d sum(x W) / dW[i, j] = sum over rows of x[:, i]
    np.testing.assert_allclose(W.grad.data, np.repeat(data.sum(axis=0)[:, None], 2, axis=1))


INDEXES = {
    "slice": np.s_[1:3],
    "step_slice": np.s_[::2, 1:],
    "integer": np.s_[1],
    "repeated_integers": np.s_[[0, 2, 2, 0]],
    "rows_and_columns": np.s_[[0, 1, 1], [2, 0, 0]],
    "ellipsis_newaxis": np.s_[..., None, 0],
    "boolean_mask": np.array([True, False, True, True]),
    "slice_and_repeated_integers": np.s_[:, [0, 0, 2]],
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_getitem_gradients_accumulate_repeated_indices(name):
    index = INDEXES[name]
    x = normal(np.random.default_rng(0), (4, 3))
    check_everywhere(lambda v: v[index] * 2.0, x)
    expected = np.zeros_like(x)
    np.add.at(expected, index, 1.0)
    v = Variable(x)
    v[index].sum().backward()
    np.testing.assert_array_equal(v.grad.data, expected)


@st.composite
def shapes_and_indexes(draw):
    """An array shape and an index into it: basic (ints, slices, ..., None), integer arrays with
    repeats along the first axis, or a boolean mask over the leading axes."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    kind = draw(st.sampled_from(["basic", "integers", "mask"]))
    if kind == "basic":
        return shape, draw(hnp.basic_indices(shape, allow_newaxis=True))
    if kind == "integers":
        rows = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6))
        return shape, (np.array(rows),)
    leading = draw(st.integers(1, len(shape)))
    return shape, draw(hnp.arrays(np.bool_, shape[:leading]))


@SETTINGS
@given(case=shapes_and_indexes(), seed=seeds)
def test_getitem_gradients_on_hypothesis_shapes_and_indexes(case, seed):
    """x[index] and its gradient for any index NumPy takes: the upstream gradient, a different
    weight per selected element, lands on the elements it came from, summed where one repeats."""
    shape, index = case
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    np.testing.assert_array_equal(Variable(x)[index].data, x[index])
    weights = normal(rng, x[index].shape)
    check_everywhere(lambda v, w: v[index] * w, x, weights)
    expected = np.zeros_like(x)
    np.add.at(expected, index, weights)
    v = Variable(x)
    (v[index] * Variable(weights)).sum().backward()
    np.testing.assert_allclose(v.grad.data, expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(n=st.integers(1, 3), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), seed=seeds, data=st.data())
def test_concatenate_and_stack_gradients(n, shape, seed, data):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    arrays = [normal(rng, shape) for _ in range(n)]
    weights_s = normal(rng, np.stack(arrays, axis=axis).shape)
    check_everywhere(lambda w, *vs: F.stack(vs, axis=axis) * w, weights_s, *arrays)
    # concatenate's parts may differ in size along the axis (a U-Net's skip connections do)
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    parts = [normal(rng, shape[:axis % len(shape)] + (size,) + shape[axis % len(shape) + 1:]) for size in sizes]
    weights_c = normal(rng, np.concatenate(parts, axis=axis).shape)
    check_everywhere(lambda w, *vs: F.concatenate(vs, axis=axis) * w, weights_c, *parts)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_mean_squared_error_gradients(reduction, shape, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shape), normal(rng, shape)
    value = F.mean_squared_error(Variable(a), Variable(b), reduction=reduction).data
    expected = ((a - b) ** 2).mean() if reduction == "mean" else ((a - b) ** 2).sum()
    np.testing.assert_allclose(value, expected)
    check_everywhere(lambda x0, x1: F.mean_squared_error(x0, x1, reduction=reduction), a, b)


# --- constants and edge cases found in review ---
def test_numpy_scalar_exponents_and_bounds_keep_float32():
    x = Variable(np.ones(3, np.float32))
    assert (x ** np.float64(2.0)).dtype == np.float32
    assert F.clip(x, np.float64(-0.5), np.float64(0.5)).dtype == np.float32


def test_gradient_of_x_to_the_zero_is_zero_even_at_zero():
    x = Variable(np.array([0.0, 1.0]))
    (x ** 0).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])  # was nan at 0: 0 * 0^-1


def test_clip_with_one_bound():
    x = Variable(np.array([-1.0, 0.5, 2.0]))
    y = F.clip(x, None, 1.0)
    y.backward()
    np.testing.assert_array_equal(y.data, [-1.0, 0.5, 1.0])
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0, 0.0])
    x.cleargrad()
    F.clip(x, 0.0, None).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 1.0])
    values = away_from_zero(np.random.default_rng(2), (3, 4))   # none within 0.3 of the bound 0
    weights = normal(np.random.default_rng(3), (3, 4))
    check_everywhere(lambda v, w: F.clip(v, None, 0.0) * w, values, weights)
    check_everywhere(lambda v, w: F.clip(v, 0.0, None) * w, values, weights)


@pytest.mark.parametrize("reduce", [lambda x, a: x.sum(axis=a), lambda x, a: F.mean(x, axis=a),
                                    lambda x, a: F.max(x, axis=a), lambda x, a: F.logsumexp(x, axis=a)],
                         ids=["sum", "mean", "max", "logsumexp"])
def test_reductions_take_a_numpy_integer_axis(reduce):
    x = Variable(np.arange(6.0).reshape(2, 3))
    y = reduce(x, np.int64(1))
    assert y.shape == (2,)
    F.sum(y).backward()
    assert x.grad.shape == (2, 3)


def test_arrays_stay_constants_through_shortcuts():
    """get_item, a no-op reshape/broadcast/sum_to and dropout at test time return their input
    as a Variable: an array must come back a constant, as from any op."""
    data = np.ones((2, 3))
    for y in (F.get_item(data, 0), F.reshape(data, (2, 3)), F.broadcast_to(data, (2, 3)),
              F.sum_to(data, (2, 3)), F.dropout(data, 0.0)):
        assert not y.requires_grad


def test_an_op_error_keeps_the_kind_of_numpy_error():
    class AddInPlace(Function):
        def forward(self, x0, x1):
            x0 += x1  # a float added into an integer array: NumPy's UFuncTypeError
            return x0

    with pytest.raises(TypeError, match="AddInPlace"):   # a TypeError still, not a ValueError
        AddInPlace()(Variable(np.ones(2, int)), np.ones(2))  # a Variable: an integer array would be cast


def test_linear_of_integer_inputs_computes_in_float32():
    """int64 @ float32 is float64 in NumPy: the activations and the weights' gradient were float64."""
    W, b = Variable(np.ones((3, 2), np.float32)), Variable(np.zeros(2, np.float32))
    # an array is cast on its way into the op; a Variable holding integers reaches Linear as it is
    for x in (np.arange(12).reshape(4, 3), Variable(np.arange(12).reshape(4, 3), requires_grad=False)):
        W.cleargrad(), b.cleargrad()
        y = F.linear(x, W, b)
        y.sum().backward()
        assert (y.dtype, W.grad.dtype, b.grad.dtype) == (np.float32, np.float32, np.float32)
        np.testing.assert_array_equal(y.data[:, 0], [3.0, 12.0, 21.0, 30.0])   # row sums of 0..11


@SETTINGS
@given(shape=shapes, seed=seeds)
def test_astype_passes_the_gradient_back_in_the_input_dtype(shape, seed):
    """float64 -> float32 -> float64: x's gradient comes back in float64 (a float32 one would pass
    every value check). x holds multiples of 2^-8 in [-2, 2) and eps is 2^-8, so x +- eps and their
    squares are exact in float32 and the numerical gradient is exact: with sin and eps 1e-3, float32
    rounding of f (6e-8 of |f|, over 2 eps) moved it by up to about 1e-4 and the check failed
    now and then (shape (4, 4), seed 1614081)."""
    rng = np.random.default_rng(seed)
    x, w = np.asarray(rng.integers(-512, 512, shape) / 256), normal(rng, shape)

    def f(v, u):
        return (F.astype(v, np.float32) ** 2).astype(np.float64) * u
    gradient_check(f, x, w, eps=2 ** -8)
    for device in ["cpu", "strict"]:
        v = Variable(to_device(x, device))
        f(v, to_device(w, device)).backward()
        assert (v.grad.dtype, v.grad.device) == (np.float64, device)
        np.testing.assert_allclose(to_numpy(v.grad.data), 2 * x * w, rtol=1e-6)  # w rounded to float32 on the way


def test_astype_gives_float32_weights_float32_gradients_of_a_float64_loss():
    W = Variable(np.full((2, 3), 0.5, np.float32))
    y = (W.astype(np.float64) ** 2).sum()
    y.backward()
    assert (y.dtype, W.grad.dtype) == (np.float64, np.float32)
    np.testing.assert_array_equal(W.grad.data, np.ones((2, 3)))
    assert F.astype(W, np.float32).data is W.data  # the same dtype: no op, no copy
    with pytest.raises(TypeError, match="astype: .*floating dtypes only, got int32"):
        W.astype(np.int32)
    with pytest.raises(TypeError, match="floating dtypes only, got complex64"):  # backward would drop
        W.astype(np.complex64)                                                  # the imaginary part


def test_astype_of_an_integer_variable_passes_back_a_floating_gradient():
    """x has no floating dtype to cast the gradient back to: it keeps gy's dtype, as x * w does for an
    integer x (casting it to int64 raised TypeError from inside backward)."""
    x = Variable(np.arange(3))
    (F.astype(x, np.float64) * np.array([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0, 3.0])


# --- found by a mutation audit of the ops ---
def test_power_with_a_variable_exponent_matches_numpy():
    """x ** c with c a Variable goes through exp(c log x): value and both partial derivatives."""
    rng = np.random.default_rng(7)
    a, b = positive(rng, (2, 3)), normal(rng, (2, 3))
    x, c = Variable(a), Variable(b)
    y = x ** c
    np.testing.assert_allclose(y.data, a ** b, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, b * a ** (b - 1), rtol=1e-12)   # d/dx x^c = c x^(c-1)
    np.testing.assert_allclose(c.grad.data, a ** b * np.log(a), rtol=1e-12)  # d/dc x^c = x^c log x


def test_gradients_of_integer_powers_at_zero():
    """d(x^c)/dx = c x^(c-1) is 0 at x = 0 for c > 1 (not 0 / 0 or 0 * inf)."""
    x = Variable(np.array([0.0, 2.0]))
    for c, slope in [(1, [1.0, 1.0]), (2, [0.0, 4.0]), (3, [0.0, 12.0])]:
        x.cleargrad()
        (x ** c).sum().backward()
        np.testing.assert_array_equal(x.grad.data, slope, err_msg=f"x ** {c}")
    x.cleargrad()
    F.square(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 4.0])


def test_numpy_integer_exponents_keep_float32():
    x = Variable(np.array([0.5, 2.0], np.float32))
    for c in (np.int64(3), np.int32(2)):
        x.cleargrad()
        y = x ** c
        y.sum().backward()
        assert y.dtype == x.grad.dtype == np.float32, type(c)
        np.testing.assert_allclose(x.grad.data, int(c) * x.data ** (int(c) - 1), rtol=1e-6)


def second_derivative(f, x0):
    """f''(x) of an element-wise f at each element of x0, by two backward passes (create_graph)."""
    x = Variable(x0.copy())
    f(x).sum().backward(create_graph=True)
    first = x.grad
    x.cleargrad()
    first.sum().backward()
    return x.grad.data


@pytest.mark.parametrize("f, second", [
    (F.exp, np.exp),
    (F.log, lambda x: -1 / x ** 2),
    (F.sqrt, lambda x: -0.25 * x ** -1.5),
    (lambda x: 1.0 / x, lambda x: 2 / x ** 3),
], ids=["exp", "log", "sqrt", "reciprocal"])
def test_second_derivatives_of_exp_log_sqrt_and_reciprocal(f, second):
    x0 = np.array([0.5, 1.0, 2.5])
    np.testing.assert_allclose(second_derivative(f, x0), second(x0), rtol=1e-12)


def test_mixed_second_derivatives_of_division():
    """d^2 (x0 / x1) / dx0 dx1 = -1 / x1^2 and d^2 / dx1^2 = 2 x0 / x1^3: the backward of
    division must itself be differentiable with respect to both inputs."""
    a, b = np.array([1.5, -2.0]), np.array([0.5, 4.0])
    x0, x1 = Variable(a), Variable(b)
    (x0 / x1).sum().backward(create_graph=True)
    g0, g1 = x0.grad, x1.grad
    x0.cleargrad(), x1.cleargrad()
    g0.sum().backward()
    np.testing.assert_allclose(x1.grad.data, -1 / b ** 2, rtol=1e-12)
    x0.cleargrad(), x1.cleargrad()
    g1.sum().backward()
    np.testing.assert_allclose(x0.grad.data, -1 / b ** 2, rtol=1e-12)
    np.testing.assert_allclose(x1.grad.data, 2 * a / b ** 3, rtol=1e-12)


SHAPE_OPS = {  # x of shape (3, 4) -> something; sin on top makes the incoming gradient depend on x
    "reshape": lambda x: F.reshape(x, (2, 6)),
    "transpose": lambda x: F.transpose(x),
    "broadcast_to": lambda x: F.broadcast_to(x, (2, 3, 4)),
    "sum_to": lambda x: F.sum_to(x, (1, 4)),
    "slice": lambda x: x[1:, ::2],
    "repeated_indices": lambda x: x[[0, 2, 2]],
    "concatenate": lambda x: F.concatenate([x, x * x], axis=1),
    "stack": lambda x: F.stack([x, x * x], axis=-1),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_gradients_of_gradients_through_shape_ops(name):
    """Second and third derivatives through the shape ops: their backward passes are built from
    differentiable zero ops (needed for gradient penalties), checked by central differences."""
    op = SHAPE_OPS[name]
    rng = np.random.default_rng(8)
    x0 = normal(rng, (3, 4))
    weights = normal(rng, op(Variable(x0)).shape)
    directions = Variable(normal(rng, (3, 4)))

    def penalty(x):  # |d/dx sum(w sin(op(x)))|^2
        x.cleargrad()
        F.sum(F.sin(op(x)) * weights).backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        return F.sum(gx * gx)

    def penalty_slope(x):  # <d penalty / dx, v>: differentiating it is a third derivative
        penalty(x).backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        return F.sum(gx * directions)

    gradient_check(penalty, x0, rtol=1e-5, atol=1e-7)
    gradient_check(penalty_slope, x0, rtol=1e-5, atol=1e-7)


def test_gradients_at_kinks_follow_the_usual_conventions():
    """As PyTorch: |x|' = sign(x), so 0 at 0; clip passes the gradient on at the bounds themselves
    (slope 1 on the closed interval [low, high]), also with one bound only."""
    x = Variable(np.array([-1.0, 0.0, 1.0]))
    F.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [-1.0, 0.0, 1.0])
    x = Variable(np.array([-1.5, -1.0, 0.0, 1.0, 1.5]))
    for low, high, expected in [(-1.0, 1.0, [0, 1, 1, 1, 0]), (None, 1.0, [1, 1, 1, 1, 0]),
                                (-1.0, None, [0, 1, 1, 1, 1])]:
        x.cleargrad()
        F.clip(x, low, high).sum().backward()
        np.testing.assert_array_equal(x.grad.data, expected, err_msg=f"clip({low}, {high})")


@pytest.mark.parametrize("f", [
    lambda x: F.clip(x, -0.5, 0.5), lambda x: F.clip(x, None, 0.5), lambda x: F.abs(x),
    lambda x: F.maximum(x, x[::-1]), lambda x: F.minimum(x, 0.25), lambda x: F.where(x.data > 0, x, 2 * x),
    lambda x: F.max(x), lambda x: F.min(x, axis=0, keepdims=True),
], ids=["clip", "clip_high", "abs", "maximum", "minimum", "where", "max", "min"])
def test_masked_gradients_keep_float32(f):
    """Ops whose backward multiplies by a 0/1 mask or a sign must not turn float32 gradients into float64."""
    x = Variable(np.array([-1.0, 0.25, 0.75, 2.0], np.float32))
    y = f(x)
    y.sum().backward() if y.ndim else y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_where_takes_a_variable_condition():
    condition = Variable(np.array([True, False, True]))
    a, b = Variable(np.array([1.0, 2.0, 3.0])), Variable(np.array([-1.0, -2.0, -3.0]))
    y = F.where(condition, a, b)
    np.testing.assert_array_equal(y.data, [1.0, -2.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.data, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad.data, [0.0, 1.0, 0.0])
    # between two numbers too, where no input array gives it a device
    np.testing.assert_array_equal(F.where(condition, 1.0, 0.0).data, [1.0, 0.0, 1.0])


def test_where_moves_a_host_condition_to_the_inputs_device():
    a = Variable(to_device(np.array([1.0, 2.0, 3.0]), "strict"))
    y = F.where(np.array([True, False, True]), a, 0.0)
    np.testing.assert_array_equal(to_numpy(y.data), [1.0, 0.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(a.grad.data), [1.0, 0.0, 1.0])
    assert F.where([False, True, True], 5.0, a).device == "strict"


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions_over_several_axes_keep_dims(name):
    x0 = distinct(np.random.default_rng(9), (2, 3, 4))
    x = Variable(x0)
    y = getattr(F, name)(x, axis=(0, 2), keepdims=True)
    assert y.shape == (1, 3, 1)
    np.testing.assert_allclose(y.data, getattr(np, name)(x0, axis=(0, 2), keepdims=True), rtol=1e-12)
    gradient_check(lambda v: getattr(F, name)(v, axis=(0, 2), keepdims=True) * np.arange(1.0, 4.0)[:, None], x0)


def test_mean_over_an_empty_batch():
    """Mean over the last axis of 0 rows: an empty result and an empty gradient, not a ZeroDivisionError."""
    x = Variable(np.zeros((0, 3)))
    y = F.mean(x, axis=1)
    assert y.shape == (0,)
    y.sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("axis", [3, -4, 10])
def test_expand_dims_refuses_an_axis_out_of_range_as_numpy_does(axis):
    with pytest.raises(ValueError, match=f"expand_dims: axis {axis} is out of range for x of shape \\(3, 2\\)"):
        F.expand_dims(Variable(np.ones((3, 2))), axis)
    assert F.expand_dims(Variable(np.ones((3, 2))), 2).shape == (3, 2, 1)
    assert F.expand_dims(Variable(np.ones((3, 2))), -3).shape == (1, 3, 2)


@pytest.mark.parametrize("x_shape, shape", [((3, 4), (3,)), ((3, 2), (4,)), ((3,), (2, 3)), ((2, 3), (3, 3)),
                                            ((3,), (1, 3))])  # more axes than x, even of size 1
def test_sum_to_refuses_a_shape_that_does_not_broadcast_to_the_input(x_shape, shape):
    with pytest.raises(ValueError, match=r"SumTo: cannot sum an array of shape .* to shape"):
        F.sum_to(Variable(np.ones(x_shape)), shape)


def test_zero_dimensional_float64_exponents_and_bounds_keep_float32_as_numbers_do():
    x = Variable(np.array([0.5, 2.0, 3.0], np.float32))
    for y in (x ** np.array(2.0), F.clip(x, np.array(1.0), np.array(2.5)), F.clip(x, np.float64(1.0), None)):
        y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32
        x.cleargrad()
    np.testing.assert_array_equal((x ** np.array(2.0)).data, [0.25, 4.0, 9.0])


@pytest.mark.parametrize("op", [F.concatenate, F.stack])
def test_concatenate_and_stack_of_nothing_are_refused_by_name(op):
    with pytest.raises(ValueError, match=f"{op.__name__}: needs at least one array"):
        op([])


@pytest.mark.parametrize("op", [F.concatenate, F.stack])
@pytest.mark.parametrize("call, kind", [(lambda op, x: op(x), "Variable"), (lambda op, x: op(x.data), "ndarray"),
                                        (lambda op, x: op(x, x), "Variable")], ids=["x", "x.data", "x, x"])
def test_concatenate_and_stack_refuse_one_array_as_xs(op, call, kind):
    """A Variable or array iterates over its rows: concatenate(x) of a (2, 3) x joined its rows into shape (6,),
    stack(x) gave x back; concatenate(a, b) took b as the axis ('<=' not supported between int and Variable)."""
    x = Variable(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=rf"^{op.__name__}: xs must be a list or tuple of Variables, got a {kind}; "
                                        rf"to join a and b, call {op.__name__}\(\[a, b\]\)$"):
        call(op, x)


@pytest.mark.parametrize("op", [F.concatenate, F.stack])
@pytest.mark.parametrize("axis", [1.0, "1", True, None])
def test_concatenate_and_stack_refuse_an_axis_that_is_not_an_integer(op, axis):
    x = Variable(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=rf"^{op.__name__}: axis must be an integer, got {re.escape(repr(axis))}$"):
        op([x, x], axis=axis)
    assert op([x, x], axis=np.int64(-1)).shape == ((2, 6) if op is F.concatenate else (2, 3, 2))


@pytest.mark.parametrize("op, axis, axes", [(F.concatenate, 2, 2), (F.concatenate, -3, 2), (F.stack, 3, 3),
                                           (F.stack, -4, 3)])
def test_concatenate_and_stack_name_an_axis_out_of_range(op, axis, axes):
    """concatenate's was IndexError's 'tuple index out of range', which said neither the axis nor how many
    there are. NumPy's AxisError, as before for stack: both a ValueError and an IndexError."""
    x = np.ones((2, 3), np.float32)
    with pytest.raises(np.exceptions.AxisError,
                       match=rf"axis {axis} is out of range for {axes} axes \(-{axes} to {axes - 1}\)"):
        op([x, x], axis=axis)
    with pytest.raises(np.exceptions.AxisError, match="Concatenate: the inputs are 0-d arrays, which have no axis"):
        F.concatenate([np.float32(1), np.float32(2)])


def test_reshape_and_transpose_take_lists_and_negative_axes():
    x0 = np.arange(24.0).reshape(2, 3, 4)
    assert F.reshape(Variable(x0), [4, 6]).shape == (4, 6)
    assert Variable(x0).reshape([6, 4]).shape == (6, 4)
    np.testing.assert_array_equal(F.transpose(Variable(x0), [2, 0, 1]).data, x0.transpose(2, 0, 1))
    np.testing.assert_array_equal(F.transpose(Variable(x0), -1, 0, -2).data, x0.transpose(-1, 0, -2))
    weights = normal(np.random.default_rng(10), (4, 2, 3))
    check_everywhere(lambda v, w: F.transpose(v, -1, 0, -2) * w, x0, weights)
    check_everywhere(lambda v, w: F.transpose(v, (-1, -3, 1)) * w, x0, weights)


def test_flatten_keeps_the_batch_axis():
    x0 = normal(np.random.default_rng(11), (2, 3, 4))
    y = F.flatten(Variable(x0))
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(y.data, x0.reshape(2, 12))
    check_everywhere(lambda v, w: F.flatten(v) * w, x0, normal(np.random.default_rng(12), (2, 12)))


# --- found by a mutation audit of linalg.py ---
@pytest.mark.parametrize("a_shape,b_shape", [((3,), (3,)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,))])
def test_matmul_with_vectors_has_numpys_shape(a_shape, b_shape):
    rng = np.random.default_rng(3)
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    y = Variable(a) @ Variable(b)
    assert y.shape == (a @ b).shape
    np.testing.assert_allclose(y.data, a @ b, rtol=1e-12)
    check_everywhere(lambda x, w: F.sum(F.matmul(x, w) * 1.5), a, b)


def test_linear_keeps_float32_gradients_and_takes_an_empty_batch():
    x = Variable(np.ones((4, 3), np.float32))
    W, b = Variable(np.ones((3, 2), np.float32)), Variable(np.zeros(2, np.float32))
    F.linear(x, W, b).sum().backward()
    assert x.grad.dtype == W.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_array_equal(b.grad.data, [4.0, 4.0])
    empty = F.linear(Variable(np.zeros((0, 2, 3))), W, b)
    assert empty.shape == (0, 2, 2)


@pytest.mark.parametrize("bias", [True, False])
def test_double_backprop_through_linear_with_batch_axes(bias):
    """d/d(x, W, b) of |d sum(sin(linear(x, W, b))) / d(x, W, b)|^2 for a 3-D x, with and without bias,
    checked by central differences: all gradients penalised at once (one at a time: below)."""
    rng = np.random.default_rng(4)
    arrays = [normal(rng, (2, 3, 4)), normal(rng, (4, 2))] + ([normal(rng, 2)] if bias else [])

    def penalty(*vs):
        for v in vs:
            v.cleargrad()
        F.sum(F.sin(F.linear(*vs))).backward(create_graph=True)
        grads = [v.grad for v in vs]
        for v in vs:
            v.cleargrad()
        return sum(F.sum(g * g) for g in grads)

    gradient_check(penalty, *arrays, rtol=1e-5, atol=1e-7)


def test_double_backprop_through_the_bias_gradient_alone():
    """Only b's gradient is differentiated again: gy gets the bias term only, broadcast to gy's shape
    (the reshape after linear would refuse a gradient of b's shape)."""
    rng = np.random.default_rng(5)
    data, W0, b0 = normal(rng, (3, 4)), normal(rng, (4, 2)), normal(rng, 2)

    def penalty(W, b):
        W.cleargrad(), b.cleargrad()
        F.sum(F.sin(F.reshape(F.linear(data, W, b), (-1,)))).backward(create_graph=True)
        gb = b.grad
        W.cleargrad(), b.cleargrad()
        return F.sum(gb * gb)

    gradient_check(penalty, W0, b0, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("penalized", [0, 1, 2], ids=["x_gradient_only", "weight_gradient_only", "bias_gradient_only"])
@pytest.mark.parametrize("x_shape", [(3, 4), (2, 3, 4)], ids=["2d_x", "3d_x"])
def test_double_backprop_through_one_gradient_of_linear(x_shape, penalized):
    """A penalty on dL/dx alone (an input-gradient penalty, as WGAN-GP's or R1's) or on dL/dW alone
    leaves LinearGrad.backward the other output gradients None: those branches were never run."""
    rng = np.random.default_rng(6)
    arrays = [normal(rng, x_shape), normal(rng, (4, 2)), normal(rng, 2)]
    second_order_check(lambda x, W, b: F.linear(x, W, b), arrays, penalized=[penalized])


_rng = np.random.default_rng(12)
STRICT_DOUBLE_BACKPROP_CASES = {   # name: f(device, *variables), arrays, penalized, methods that must run
    "linear": (lambda d, x, W, b: F.linear(x, W, b), [normal(_rng, (2, 3, 4)), normal(_rng, (4, 2)),
               normal(_rng, 2)], None, [LinearGrad.backward]),
    "linear_x_gradient_only": (lambda d, x, W, b: F.linear(x, W, b), [normal(_rng, (3, 4)), normal(_rng, (4, 2)),
                               normal(_rng, 2)], [0], [LinearGrad.backward]),
    "linear_weight_gradient_only": (lambda d, x, W: F.linear(x, W), [normal(_rng, (3, 4)), normal(_rng, (4, 2))],
                                    [1], [LinearGrad.backward]),
    "linear_bias_gradient_only": (lambda d, x, W, b: F.linear(x, W, b), [normal(_rng, (3, 4)), normal(_rng, (4, 2)),
                                  normal(_rng, 2)], [2], [LinearGrad.backward]),
    "linear_of_data": (lambda d, W, b, x=normal(_rng, (3, 4)): F.linear(on(d, x), W, b),
                       [normal(_rng, (4, 2)), normal(_rng, 2)], None, [LinearGrad.backward]),
    "linear_with_a_broadcast_bias": (lambda d, x, W, b: F.linear(x, W, b), [normal(_rng, (2, 3, 4)),
                                     normal(_rng, (4, 2)), normal(_rng, (3, 1))], None, [LinearGrad.backward]),
    "get_item_slice": (lambda d, x: F.sin(x[1:, ::2]), [normal(_rng, (3, 4))], None, [GetItemGrad.backward]),
    "get_item_repeated_indices": (lambda d, x: F.sin(x[on(d, np.array([0, 2, 2]))]), [normal(_rng, (3, 4))], None,
                                  [GetItemGrad.backward]),
}


@pytest.mark.parametrize("case", sorted(STRICT_DOUBLE_BACKPROP_CASES))
def test_double_backprop_on_strict_device_matches_cpu(case):
    """Double backprop never ran on the strict device: a host copy in LinearGrad's or GetItemGrad's
    backward passed every test."""
    f, arrays, penalized, reaches = STRICT_DOUBLE_BACKPROP_CASES[case]
    assert_double_backprop_on_strict_matches_cpu(f, arrays, penalized, reaches)


# --- found by a mutation audit of the element-wise, reduction and shape ops ---
def test_a_number_to_the_power_of_a_variable_matches_numpy():
    x0 = np.array([-1.5, 0.0, 2.0])
    x = Variable(x0)
    y = 3.0 ** x
    np.testing.assert_allclose(y.data, 3.0 ** x0, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 3.0 ** x0 * np.log(3.0), rtol=1e-12)


@pytest.mark.parametrize("base", [0.0, -2.0])
def test_a_base_that_is_not_positive_is_refused_by_name(base):
    with pytest.raises(ValueError, match=rf"rpow: .*needs a base c > 0, got {base}"):
        base ** Variable(np.array([1.0, 2.0]))


def test_concatenate_and_stack_default_to_the_first_axis():
    a, b = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
    joined, stacked = F.concatenate([Variable(a), Variable(b)]), F.stack([Variable(a), Variable(b)])
    assert joined.shape == (4, 3) and stacked.shape == (2, 2, 3)
    np.testing.assert_array_equal(joined.data, np.concatenate([a, b]))
    np.testing.assert_array_equal(stacked.data, np.stack([a, b]))


def test_get_item_of_a_device_array_moves_a_host_index_to_it():
    x = to_device(np.arange(8.0).reshape(4, 2), "strict")
    y = F.get_item(x, np.array([3, 0, 3]))
    assert y.device == "strict"
    np.testing.assert_array_equal(to_numpy(y.data), [[6.0, 7.0], [0.0, 1.0], [6.0, 7.0]])


@pytest.mark.parametrize("as_variable", [False, True])  # an array is cast on its way in; a Variable reaches Linear
def test_double_backprop_through_linear_with_integer_input_keeps_float32(as_variable):
    x = np.arange(8).reshape(2, 4)  # integer data, computed as float32 by linear
    W = Variable(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    b = Variable(np.zeros(3, np.float32))
    F.tanh(F.linear(Variable(x, requires_grad=False) if as_variable else x, W, b)).sum().backward(create_graph=True)
    gW = W.grad
    W.cleargrad()
    b.cleargrad()
    (gW * gW).sum().backward()
    assert W.grad.dtype == np.float32 and b.grad.dtype == np.float32
    x64 = x.astype(np.float64)  # the same second derivatives as float input
    W64, b64 = Variable(W.data.astype(np.float64)), Variable(b.data.astype(np.float64))
    F.tanh(F.linear(x64, W64, b64)).sum().backward(create_graph=True)
    gW64 = W64.grad
    W64.cleargrad()
    b64.cleargrad()
    (gW64 * gW64).sum().backward()
    np.testing.assert_allclose(W.grad.data, W64.grad.data, rtol=1e-4, atol=1e-5)


def test_numpy_integer_exponents_keep_integer_input_integer():
    x = Variable(np.array([1, 2, 3]))
    for c in (2, np.int64(2)):
        y = x ** c
        assert y.dtype == np.int64, type(c)
        np.testing.assert_array_equal(y.data, [1, 4, 9])


@pytest.mark.parametrize("bias_shape", [(1, 2), (4, 2), (), (4, 1)])
def test_linear_with_a_bias_of_another_shape_gets_that_shape_s_gradient(bias_shape):
    """The fused op summed the bias gradient over rows whatever the bias's shape: a (4, 2) bias got
    a (2,) gradient, silently wrong."""
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(bias_shape)
    assert gradient_check(lambda x, W, b: F.linear(x, W, b) * np.arange(8.0).reshape(4, 2), x, W, b) < 1e-6
    b_var = Variable(b)
    F.linear(x, W, b_var).sum().backward()
    assert b_var.grad.shape == bias_shape


def test_an_array_exponent_or_base_is_refused_by_name():
    x = Variable(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"pow: the exponent must be a number or a Variable, got an array of shape \(2,\)"):
        x ** np.array([1.0, 2.0])
    with pytest.raises(TypeError, match=r"rpow: the base must be a number or a Variable, got an array of shape \(2,\)"):
        np.array([2.0, 3.0]) ** x


@pytest.mark.parametrize("scalar", [np.float32(2), np.float16(2), np.bool_(True), np.uint8(2)])
def test_numpy_scalars_join_a_device_array_as_numbers(scalar):
    """np.float32 (not a Python float subclass) was taken for a host array: 'inputs are on different devices'."""
    x = Variable(to_device(np.ones(2, np.float32), "strict"))
    y = x * scalar
    assert y.device == "strict" and y.dtype == np.float32
    np.testing.assert_array_equal(to_numpy(y.data), np.full(2, float(scalar), np.float32))
