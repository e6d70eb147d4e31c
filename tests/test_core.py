"""The engine itself: variables, graph building and freeing, backward order,
higher-order derivatives, config switches, dtypes, devices and bad input."""
import gc
import math
import os
import re
import stat
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import zero
import zero.functions as F
from zero import Function, Parameter, Variable, no_grad
from zero.backend import check_numpy_version, cuda_available, device_of, to_device, to_device_beside, to_numpy
from zero.graph import get_dot_graph, plot_dot_graph
from zero.utils import (gradient_check, keepdims_shape, normalize_axes, numerical_grad, save_npz_atomically,
                        sum_to)

from conftest import host, on


# --- Variable ----------------------------------------------------------------
def test_variable_behaves_like_its_array():
    v = Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    assert (v.shape, v.ndim, v.size, v.dtype, len(v)) == ((2, 3), 2, 6, np.float32, 2)
    assert v.T.shape == (3, 2) and v.reshape(3, 2).shape == (3, 2) and v.transpose().shape == (3, 2)
    assert v.sum().item() == 15.0
    assert "Variable([[0. 1. 2.]" in repr(v)
    assert isinstance(Parameter(np.zeros(2)), Variable)


@pytest.mark.parametrize("bad", [1.0, [1.0, 2.0], "text", (1, 2)])
def test_variable_refuses_non_array_data(bad):
    with pytest.raises(TypeError, match=type(bad).__name__):
        Variable(bad)


def test_python_numbers_never_upcast_float32():
    x = Variable(np.ones(3, dtype=np.float32))
    for y in [x * 2.0, 2.0 * x, x + 1, 1.5 - x, x / 3.0, 3.0 / x, x ** 2, 2.0 ** x, -x, F.maximum(x, 0.5)]:
        assert y.dtype == np.float32
    x.data = np.ones(3, dtype=np.float64)
    assert (x * 2.0).dtype == np.float64


@pytest.mark.parametrize("version", ["1.26.4", "1.22.0", "0.9"])
def test_numpy_1_is_refused_at_import_naming_the_version_found(version):
    with pytest.raises(ImportError, match=rf"NumPy 2\.0 or later, found NumPy {re.escape(version)}"):
        check_numpy_version(version)


@pytest.mark.parametrize("version", ["2.0.0", "2.0.2", "2.5.5", "2.6.0.dev0+git20261201.abc1234", "3.0.0rc1"])
def test_numpy_2_and_later_are_accepted(version):
    check_numpy_version(version)


def test_numpy_array_on_the_left_gives_a_variable():
    x = Variable(np.ones(2))
    y = np.array([2.0, 3.0]) * x
    assert isinstance(y, Variable)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 3.0])
    W = Variable(np.arange(6.0).reshape(2, 3))
    y = np.array([[1.0, 0.0], [1.0, 1.0]]) @ W   # the array stays the left factor
    np.testing.assert_array_equal(y.data, [[0.0, 1.0, 2.0], [3.0, 5.0, 7.0]])


# --- backward --------------------------------------------------------------
def test_an_in_place_numpy_update_with_a_variable_is_refused():
    """`p.data -= lr * p.grad` (grad, not grad.data) made p.data a Variable holding the array, silently:
    the next forward computed on objects and failed far away (backward: dtype object)."""
    p = Parameter(np.ones(2, np.float32))
    p.grad = Variable(np.ones(2, np.float32))
    with pytest.raises(TypeError, match="Variable"):
        p.data -= 0.1 * p.grad
    assert type(p.data) is np.ndarray
    p.data -= 0.1 * p.grad.data   # the intended update
    np.testing.assert_allclose(p.data, 0.9, rtol=1e-6)
    with pytest.raises(TypeError, match="Parameter"):
        np.exp(p)   # NumPy functions work on arrays: p.data, or F.exp(p)


def test_square_of_exp_of_square():
    x = Variable(np.array(0.5))
    y = F.exp(x ** 2) ** 2
    y.backward()
    # d/dx exp(x^2)^2 = 4 x exp(2 x^2)
    assert math.isclose(x.grad.item(), 4 * 0.5 * math.exp(2 * 0.25))


def test_variable_used_twice_accumulates_its_gradient():
    x = Variable(np.array(3.0))
    y = x + x + x * x
    y.backward()
    assert x.grad.item() == 2 + 2 * 3.0


class CountingSquare(Function):
    calls = 0

    def forward(self, x):
        return x * x

    def backward(self, gy):
        CountingSquare.calls += 1
        return gy * 2 * self.inputs[0]


def test_diamond_graph_visits_every_function_once_in_order():
    CountingSquare.calls = 0
    x = Variable(np.array(2.0))
    a = CountingSquare()(x)
    y = CountingSquare()(a) + CountingSquare()(a)  # a feeds two branches
    y.backward()
    assert CountingSquare.calls == 3
    assert x.grad.item() == 64.0  # y = 2 x^4, y' = 8 x^3


def test_gradients_reset_with_cleargrad_and_accumulate_without():
    x = Variable(np.array(2.0))
    (x * x).backward()
    (x * x).backward()
    assert x.grad.item() == 8.0
    x.cleargrad()
    (x * x).backward()
    assert x.grad.item() == 4.0


def test_deep_graph_backpropagates_without_recursion():
    x = Variable(np.array(1.0))
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
    del y
    gc.collect()


def test_intermediate_gradients_are_kept_only_when_asked():
    x = Variable(np.array(2.0))
    a = x * x
    y = a * 3.0
    y.backward()
    assert a.grad is None and y.grad is None and x.grad.item() == 12.0
    x.cleargrad()
    y = (x * x) * 3.0
    a = y.creator.inputs[0]
    y.backward(retain_grad=True)
    assert a.grad.item() == 3.0 and y.grad.item() == 1.0


def test_a_kept_gradient_is_not_sent_back_again_by_the_next_backward():
    """Gradients kept by backward(retain_grad=True) stay on the intermediate variables; a later
    pass through them sends only its own gradient on, as PyTorch does (they once flowed twice)."""
    a = Variable(np.array([1.0, 2.0]))
    h = a * 3
    F.sum(h * h).backward(retain_grad=True)                 # dL/dh = 2h, dL/da = 6h
    np.testing.assert_array_equal(h.grad.data, [6, 12])
    F.sum(h).backward()                                      # + dh/da = 3
    np.testing.assert_array_equal(a.grad.data, [18 + 3, 36 + 3])
    np.testing.assert_array_equal(h.grad.data, [6, 12])      # a pass without retain_grad leaves it
    F.sum(h).backward(retain_grad=True)                      # kept gradients add up, like leaves'
    np.testing.assert_array_equal(a.grad.data, [24, 42])
    np.testing.assert_array_equal(h.grad.data, [7, 13])


def test_a_kept_gradient_of_an_unused_output_does_not_flow():
    """Of a two-output function, a later pass may reach one output only: the other's kept
    gradient must not be passed to backward again."""
    class Halves(Function):  # (x) -> (first half, second half)
        def forward(self, x):
            return x[:2].copy(), x[2:].copy()

        def backward(self, g_left, g_right):
            zeros = Variable(np.zeros(2))
            return F.concatenate([zeros if g_left is None else g_left, zeros if g_right is None else g_right])

    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    left, right = Halves()(x)
    F.sum(left * right).backward(retain_grad=True)
    np.testing.assert_array_equal(x.grad.data, [3, 4, 1, 2])
    x.cleargrad()
    F.sum(left).backward()
    np.testing.assert_array_equal(x.grad.data, [1, 1, 0, 0])


def test_constants_get_no_gradient_and_skip_the_graph():
    x = Variable(np.ones(3))
    y = F.exp(np.ones(3))  # an array straight into an op: a constant
    assert y.creator is None and not y.requires_grad
    z = (x * y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.data, np.e)
    assert y.grad is None


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "where", "matmul"])
def test_two_input_ops_compute_no_gradient_for_a_constant_input(op):
    """Backward returns None for a constant (requires_grad False) and a gradient for the other input."""
    def apply(a, b):
        if op == "where":
            return F.where(np.array([[True, False], [False, True]]), a, b)
        return getattr(F, op)(a, b)
    x = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]))
    constant = np.array([[2.0, 1.0], [1.0, 3.0]])
    for y, variable_position in [(apply(x, constant), 0), (apply(constant, x), 1)]:
        grads = y.creator.backward(Variable(np.ones_like(y.data)))
        assert grads[1 - variable_position] is None
        assert grads[variable_position].shape == x.shape
        x.cleargrad()
        y.backward()
        assert x.grad is not None


def test_unchain_backward_cuts_the_graph():
    x = Variable(np.array(2.0))
    a = x * x
    y = a * 3.0
    a.unchain_backward()  # a keeps its creator? no: everything behind a is cut
    y.backward()
    assert a.creator is None and x.grad is None


def test_backward_on_integer_data_is_an_error():
    x = Variable(np.array([1, 2, 3]))
    y = x * 2
    with pytest.raises(TypeError, match="floating-point.*int64"):
        y.backward()


# --- higher-order derivatives --------------------------------------------------
def test_second_derivative_of_sin():
    x = Variable(np.array(1.0))
    y = F.sin(x)
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    gx.backward(create_graph=True)
    assert math.isclose(x.grad.item(), -math.sin(1.0))
    gx2 = x.grad
    x.cleargrad()
    gx2.backward()
    assert math.isclose(x.grad.item(), -math.cos(1.0))


def test_newtons_method_with_second_derivative():
    # f(x) = x^4 - 2 x^2, minimum at x = 1; Newton: x <- x - f'(x) / f''(x)
    x = Variable(np.array(2.0))
    path = []
    for _ in range(10):
        y = x ** 4 - 2 * x ** 2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        x.data = x.data - gx.data / x.grad.data
        path.append(x.item())
    assert math.isclose(path[0], 2 - 24 / 44)  # f'(2) = 24, f''(2) = 44
    assert math.isclose(path[-1], 1.0, rel_tol=1e-12)


def test_higher_derivatives_of_tanh():
    x = Variable(np.linspace(-2, 2, 7))
    y = F.tanh(x)
    derivatives = []
    for _ in range(3):
        x.cleargrad()
        y.sum().backward(create_graph=True) if y.ndim else y.backward(create_graph=True)
        y = x.grad
        derivatives.append(y.data.copy())
    t = np.tanh(x.data)
    np.testing.assert_allclose(derivatives[0], 1 - t ** 2)
    np.testing.assert_allclose(derivatives[1], -2 * t * (1 - t ** 2))
    np.testing.assert_allclose(derivatives[2], (1 - t ** 2) * (6 * t ** 2 - 2))


def test_double_backprop_through_the_fused_ops():
    # gradient-penalty style: differentiate |d loss / d W|^2 with respect to W
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))

    def penalty(W, b):
        W.cleargrad(), b.cleargrad()
        loss = F.mean_squared_error(F.sigmoid(F.linear(x, W, b)), t)
        loss.backward(create_graph=True)
        return (W.grad * W.grad).sum() + (b.grad * b.grad).sum()

    W0, b0 = rng.standard_normal((3, 1)), rng.standard_normal(1)
    W, b = Variable(W0.copy()), Variable(b0.copy())
    g = penalty(W, b)
    W.cleargrad(), b.cleargrad()
    g.backward()
    expected_W, expected_b = numerical_grad(lambda W, b: penalty(W, b), W0, b0)
    np.testing.assert_allclose(W.grad.data, expected_W, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(b.grad.data, expected_b, rtol=1e-5, atol=1e-8)


# --- graph freeing and config ---------------------------------------------------
def test_finished_graph_is_freed_by_reference_counting():
    x = Variable(np.ones(3))
    y = F.exp(x * 2.0)
    function = weakref.ref(y.creator)
    middle = weakref.ref(y.creator.inputs[0])
    del y
    assert function() is None and middle() is None  # no cycles: freed at once


def test_no_grad_builds_no_graph():
    x = Variable(np.ones(3))
    with no_grad():
        y = F.exp(x) * 2.0
    assert y.creator is None and not y.requires_grad
    y = F.exp(x) * 2.0
    assert y.creator is not None


def test_test_mode_switches_config_train_and_restores_it():
    assert zero.Config.train
    with zero.test_mode():
        assert not zero.Config.train
    assert zero.Config.train


# --- devices -----------------------------------------------------------------
def test_variable_moves_between_devices_and_keeps_values():
    x = Variable(np.arange(3.0))
    x.to("strict")
    assert x.device == "strict"
    y = (x * 2.0).sum()
    y.backward()
    assert x.grad.device == "strict"
    x.to("cpu")
    assert type(x.data) is np.ndarray and type(x.grad.data) is np.ndarray
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0, 2.0])


def test_strict_arrays_refuse_silent_host_copies():
    device_array = to_device(np.ones(3), "strict")
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(device_array)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        device_array + np.ones(3)
    np.testing.assert_array_equal(to_numpy(device_array), np.ones(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standard_normal_draws_in_the_dtype_on_the_device_from_the_seeded_generator(device, dtype):
    xp = zero.backend.get_backend(device).xp
    zero.backend.seed(3, device)
    draws = zero.backend.standard_normal(xp, (2, 3), dtype)
    assert type(draws) is zero.backend.get_backend(device).array_type and draws.dtype == dtype
    np.random.seed(3)  # NumPy's global generator (the strict device's too), rounded to dtype
    np.testing.assert_array_equal(to_numpy(draws), np.random.standard_normal((2, 3)).astype(dtype))
    assert zero.backend.standard_normal(xp, 4).dtype == np.float32  # the default dtype


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cupys_draws_are_made_in_a_dtype_cupy_can_draw(monkeypatch, dtype):
    """cupy.random draws float32 and float64 only (float16 raises TypeError there): a float16 model's
    noise on a GPU is drawn in float32 and cast. Checked against a stand-in with CuPy's rule."""
    def only_float32_and_64(draw):
        def drawn(shape, dtype):
            if np.dtype(dtype) not in (np.float32, np.float64):
                raise TypeError("cupy.random only supports float32 and float64")
            return draw(shape).astype(dtype)
        return drawn
    fake_cupy = SimpleNamespace(random=SimpleNamespace(standard_normal=only_float32_and_64(np.random.standard_normal),
                                                       random_sample=only_float32_and_64(np.random.random_sample)))
    monkeypatch.setattr(zero.backend, "cupy", fake_cupy)
    assert zero.backend.standard_normal(fake_cupy, (2, 3), dtype).dtype == dtype
    assert zero.backend.uniform(fake_cupy, (2, 3), dtype).dtype == dtype


def test_mixing_devices_names_the_op_and_devices():
    a = Variable(np.ones(3))
    b = Variable(to_device(np.ones(3), "strict"))
    with pytest.raises(TypeError, match=r"Add: inputs are on different devices: \(3,\) float64 on cpu, "
                                        r"\(3,\) float64 on strict"):
        a + b


@pytest.mark.skipif(cuda_available(), reason="a GPU is present: the error path cannot be shown")
def test_asking_for_cuda_without_a_gpu_says_how_to_install():
    with pytest.raises(RuntimeError, match="cupy"):
        Variable(np.ones(2)).to("cuda")


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Variable(np.ones(2)).to("tpu")


# --- bad input names the op ------------------------------------------------------
def test_matmul_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"MatMul: .*\(2, 3\) float32 on cpu, \(4, 5\) float32 on cpu"):
        Variable(np.ones((2, 3), np.float32)) @ Variable(np.ones((4, 5), np.float32))


@pytest.mark.parametrize("x_shape, W_shape", [((3,), (4,)), ((3,), (4, 5)), ((2, 3), (4,))])
def test_matmul_with_a_1d_operand_names_the_shapes_it_was_given(x_shape, W_shape):
    """The 1-D operand is reshaped to a row or a column first: the message named (1, 3) and (4, 1)."""
    x, W = Variable(np.ones(x_shape, np.float32)), Variable(np.ones(W_shape, np.float32))
    with pytest.raises(ValueError, match=rf"^MatMul: .*shapes {re.escape(str(x_shape))} and {re.escape(str(W_shape))}$"):
        x @ W


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add: .*\(2, 3\) float64 on cpu, \(4,\) float64 on cpu"):
        Variable(np.ones((2, 3))) + Variable(np.ones(4))


# --- teaching tools --------------------------------------------------------------
def test_gradient_check_reports_a_wrong_backward():
    class WrongSquare(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            return gy * 3 * self.inputs[0]  # should be 2 x

    assert gradient_check(lambda x: x * x, np.array([1.0, 2.0])) < 1e-6
    with pytest.raises(AssertionError, match="gradient check failed for input 0"):
        gradient_check(lambda x: WrongSquare()(x), np.array([1.0, 2.0]))


class _ScaledSquare(Function):
    """x^2 with a backward scaled by `factor` (1 is right)."""
    def __init__(self, factor):
        self.factor = factor

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * 2 * self.inputs[0] * self.factor


def test_gradient_check_tolerances_are_relative_to_the_numerical_gradient():
    x = np.array([1.0, 2.0])
    with pytest.raises(AssertionError, match="gradient check failed"):   # 0.1% off: more than the default rtol 1e-4
        gradient_check(lambda v: _ScaledSquare(1.001)(v), x)
    gradient_check(lambda v: _ScaledSquare(1.001)(v), x, rtol=1e-2)
    # 5 times too large: |analytic - numeric| = 4 |numeric| fails rtol=1 (it would pass relative to analytic)
    with pytest.raises(AssertionError, match="gradient check failed"):
        gradient_check(lambda v: _ScaledSquare(5.0)(v), x, rtol=1.0)


def test_gradient_check_returns_the_largest_difference_at_the_given_eps():
    # analytic 2x * 1.5 against 2x: the largest difference is 0.5 * 2 * 2 = 2
    assert gradient_check(lambda v: _ScaledSquare(1.5)(v), np.array([1.0, 2.0]), rtol=1.0) == pytest.approx(2.0)
    # central differences of x^3 are 3x^2 + eps^2 exactly: the difference from the backward is eps^2
    assert gradient_check(lambda v: v ** 3, np.array([1.0, -2.0]), eps=0.1, rtol=1.0) == pytest.approx(0.01)


def test_gradient_check_takes_python_numbers_and_an_input_without_gradient():
    assert gradient_check(lambda v: v * v, [1, 2]) < 1e-6           # ints become float64
    assert gradient_check(lambda v: v * v * v, 1.5) < 1e-5
    assert gradient_check(lambda v, unused: v * 2.0, np.array([1.0, 2.0]), np.array([3.0])) < 1e-6


def test_gradient_check_refuses_a_gradient_of_the_wrong_shape():
    class SumWithoutBroadcast(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return gy  # shape () where x is (3,): right values once broadcast, wrong shape

    with pytest.raises(AssertionError, match=r"gradient shape \(\) != input shape \(3,\)"):
        gradient_check(lambda v: SumWithoutBroadcast()(v), np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("scalar", [np.float64(3.0), np.float32(3.0)])
def test_numerical_grad_and_gradient_check_take_numpy_scalars(scalar):
    np.testing.assert_allclose(numerical_grad(lambda x: x * x, scalar, eps=1e-2)[0], 6.0, rtol=1e-3)
    assert gradient_check(lambda x: x * x, scalar, eps=1e-2, rtol=1e-2, atol=1e-2) < 1e-2
    with pytest.raises(AssertionError, match="gradient check failed"):  # and a wrong backward still fails
        gradient_check(lambda x: F.clip(x, 0.0, 10.0) * 0.0 + x.data ** 2, scalar, eps=1e-2, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_numerical_grad_takes_a_function_that_returns_a_bare_array(device):
    """getattr(y, "data", y) took an ndarray's .data, its memory buffer, and failed on NumPy
    (and would on CuPy) where the strict device let it through."""
    x = to_device(np.array([1.0, -2.0]), device)
    grad, = numerical_grad(lambda v: v.data ** 2, x)
    np.testing.assert_allclose(zero.to_numpy(grad), [2.0, -4.0], rtol=1e-6)


def test_numerical_grad_is_accurate_and_leaves_its_inputs_alone():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    grad, = numerical_grad(lambda v: v ** 3, x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(x, before)
    # a non-contiguous input (a transpose) and a function that mixes the elements: d/dx_i (sum x)^2 = 2 sum x
    w = np.arange(6.0).reshape(2, 3).T
    grad, = numerical_grad(lambda v: F.sum(v) ** 2, w)
    np.testing.assert_allclose(grad, np.full((3, 2), 2 * 15.0), rtol=0, atol=1e-6)


def test_array_helpers_sum_to_and_axes():
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(sum_to(x, (3, 1)), x.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(sum_to(x, (1, 4)), x.sum(axis=(0, 1))[None, :])
    assert normalize_axes((-1, 0), 3) == (0, 2) and normalize_axes(None, 2) == (0, 1)
    assert normalize_axes(np.int64(-2), 3) == (1,)  # a NumPy integer is one axis too
    assert keepdims_shape((2, 3, 4), -2) == (2, 1, 4)


def test_npz_saved_atomically_into_a_new_folder(tmp_path):
    path = save_npz_atomically(tmp_path / "new" / "folder" / "arrays.npz", {"w": np.arange(3.0)})
    assert path == tmp_path / "new" / "folder" / "arrays.npz"
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["w"], [0.0, 1.0, 2.0])
    assert [p.name for p in path.parent.iterdir()] == ["arrays.npz"]


def test_an_atomic_save_keeps_the_mode_of_the_file_it_replaces_or_gives_a_new_one_the_usual_one(tmp_path):
    """mkstemp's temporary files are 0600: renamed over a checkpoint, they made it unreadable to others."""
    umask = os.umask(0o022)
    try:
        new = save_npz_atomically(tmp_path / "new.npz", {"w": np.arange(3.0)})
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        os.chmod(new, 0o640)
        save_npz_atomically(new, {"w": np.arange(4.0)})
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


def test_npz_is_written_beside_its_target_then_renamed(tmp_path, monkeypatch):
    """The temporary file sits in the target's folder: a rename within one file system is atomic
    (from another one, os.replace would copy, or fail)."""
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renames.append((source, target)),
                                                                  real_replace(source, target)))
    path = save_npz_atomically(tmp_path / "arrays.npz", {"w": np.arange(3.0)})
    (source, target), = renames
    assert Path(source).parent == tmp_path and Path(target) == path


def test_dot_graph_lists_every_function_and_variable(tmp_path, monkeypatch):
    x = Variable(np.ones((2, 3)), name="x")
    y = F.tanh(x * 2.0).sum()
    y.name = "y"
    text = get_dot_graph(y)
    for label in ["Mul", "Tanh", "Sum", 'label="x: 2x3 float64"', 'label="y: scalar float64"']:
        assert label in text
    assert text.count("->") == 7  # x, 2.0 -> Mul -> a -> Tanh -> b -> Sum -> y
    monkeypatch.setattr("shutil.which", lambda name: None)
    written = plot_dot_graph(y, tmp_path / "graph.png")
    assert written == tmp_path / "graph.dot" and written.read_text() == text


@pytest.mark.parametrize("penalized", ["x W b t", "x", "W", "t"])
def test_double_backprop_through_every_gradient_of_the_fused_ops(penalized):
    """As test_double_backprop_through_the_fused_ops, but every input needs a gradient, and the penalty
    takes the squares of all four first derivatives or of one alone: the second pass runs through every
    branch of LinearGrad.backward (gx = gy W^T, with and without gW beside it) and
    MeanSquaredErrorGrad.backward (either input's gradient, or both). Only all four together were
    tested: an input-gradient penalty (dL/dx alone, as WGAN-GP's) never ran LinearGrad.backward without gW."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2),
              rng.standard_normal((5, 2))]

    def penalty(x, W, b, t):  # sum of squares of the penalized first derivatives of a loss
        for v in (x, W, b, t):
            v.cleargrad()
        loss = F.mean_squared_error(F.sin(F.linear(x, W, b)), t)
        loss.backward(create_graph=True)
        chosen = [v for name, v in zip("xWbt", (x, W, b, t)) if name in penalized.split()]
        return sum(F.sum(v.grad * v.grad) for v in chosen)

    variables = [Variable(a.copy()) for a in arrays]
    g = penalty(*variables)
    for v in variables:
        v.cleargrad()
    g.backward()
    for v, expected in zip(variables, numerical_grad(penalty, *arrays)):
        np.testing.assert_allclose(v.grad.data, expected, rtol=1e-5, atol=1e-8)


def test_double_backprop_through_indexing():
    """d/dx of |d sum(sin(x[idx])^2) / dx|^2, with a repeated index: GetItemGrad's backward."""
    index = np.array([0, 2, 2, 3])

    def penalty(x):
        x.cleargrad()
        F.sum(F.sin(x[index]) ** 2).backward(create_graph=True)
        return F.sum(x.grad * x.grad)

    x0 = np.random.default_rng(2).standard_normal(5)
    x = Variable(x0.copy())
    g = penalty(x)
    x.cleargrad()
    g.backward()
    np.testing.assert_allclose(x.grad.data, numerical_grad(penalty, x0)[0], rtol=1e-5, atol=1e-8)


def test_reflected_operators_compute_the_right_values():
    x = Variable(np.array([0.5, 2.0, 4.0]))
    np.testing.assert_allclose((3.0 / x).data, 3.0 / x.data)
    np.testing.assert_allclose((2.0 ** x).data, 2.0 ** x.data)
    np.testing.assert_allclose((1.5 - x).data, 1.5 - x.data)
    for f in (lambda x: 3.0 / x, lambda x: 2.0 ** x):
        gradient_check(f, x.data.copy())


def test_a_constant_never_receives_a_gradient():
    """Even when an op's backward returns a gradient for every input, constants keep grad None."""
    class Scale(Function):  # y = a * b, backward always returns both gradients
        def forward(self, a, b):
            return a * b

        def backward(self, gy):
            a, b = self.inputs
            return gy * b, gy * a

    a, b = Variable(np.array([2.0])), Variable(np.array([3.0]), requires_grad=False)
    Scale()(a, b).backward()
    assert a.grad.item() == 3.0 and b.grad is None


def test_gradient_check_names_the_worst_element_not_the_first_failing_one():
    """A backward of 2x (1 + 0.01x) for x^2: at x = 1, 2, 3 it is off by 0.02, 0.08 and 0.18;
    the message names element (2,), as the docstring promises."""

    class SlightlyWrongSquare(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            x, = self.inputs
            return gy * 2 * x * (1 + 0.01 * x)

    with pytest.raises(AssertionError, match=r"at \(2,\): backward gives 6\.18"):
        gradient_check(lambda x: SlightlyWrongSquare()(x).sum(), np.array([1.0, 2.0, 3.0]))


def test_gradient_check_fails_on_a_nan_gradient():
    """NaN compares false with every tolerance: it must count as a failure, not as error 0."""

    class NanBackward(Function):
        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return gy * np.nan

    with pytest.raises(AssertionError, match="backward gives nan"):
        gradient_check(lambda x: NanBackward()(x), np.ones(3))


def test_numpy_integer_scalars_keep_float32_like_python_numbers():
    x = Variable(np.ones(3, np.float32))
    for y in (x * np.int64(2), np.int32(2) * x, x / np.int64(2), x + np.int8(1), np.int64(1) - x):
        assert y.dtype == np.float32, y.dtype
    np.testing.assert_array_equal((x * np.int64(3)).data, np.full(3, 3.0, np.float32))


INTEGER_ARRAY_OPS = {
    "mul": lambda w, a: w * a, "rmul": lambda w, a: a * w, "add": lambda w, a: w + a,
    "sub": lambda w, a: w - a, "rsub": lambda w, a: a - w, "div": lambda w, a: w / (a + 1),
    "maximum": lambda w, a: F.maximum(w, a), "minimum": lambda w, a: F.minimum(a, w),
    "matmul": lambda w, a: F.matmul(w.reshape(1, 3), a.reshape(3, 1)),
    "bce_with_logits": lambda w, a: F.binary_cross_entropy_with_logits(w, a % 2),
}


@pytest.mark.parametrize("name", sorted(INTEGER_ARRAY_OPS))
@pytest.mark.parametrize("integer_dtype", [np.int64, np.int32, np.uint8, np.uint32, np.bool_])
def test_integer_arrays_beside_a_float32_variable_keep_float32_and_its_gradient_too(name, integer_dtype):
    """NumPy would make float32 op int64 a float64 result, and the parameter a float64 gradient."""
    op = INTEGER_ARRAY_OPS[name]
    integers = np.array([0, 1, 2]).astype(integer_dtype)
    w = Variable(np.array([0.5, -1.5, 2.0], np.float32))
    y = op(w, integers)
    y.sum().backward()
    assert (y.dtype, w.grad.dtype) == (np.float32, np.float32)
    # the same values as with the integers written as float32 by hand
    w_by_hand = Variable(w.data.copy())
    expected = op(w_by_hand, integers.astype(np.float32))
    expected.sum().backward()
    np.testing.assert_array_equal(y.data, expected.data)
    np.testing.assert_array_equal(w.grad.data, w_by_hand.grad.data)


def test_arrays_in_ops_follow_numpy_where_no_integers_meet_floats():
    w = Variable(np.ones(3, np.float32))
    assert (w * np.ones(3, np.float64)).dtype == np.float64    # two floating dtypes: NumPy's promotion
    assert (Variable(np.arange(3)) * np.arange(3)).dtype == np.int64  # no floating input: integers stay
    assert (w.astype(np.float64) * np.arange(3)).dtype == np.float64  # the floating input's dtype
    halves = Variable(np.arange(3)) * 2.5   # a number beside integers only: NumPy's rules, int64 * 2.5 is float64
    assert halves.dtype == np.float64
    np.testing.assert_array_equal(halves.data, [0.0, 2.5, 5.0])


def test_a_0d_floating_array_is_a_number_beside_a_floating_variable_on_every_device(device):
    """CuPy gives 0-d arrays where NumPy gives scalars (a sum, an element): W * total was float32 on the
    CPU for NumPy's float64 scalar and float64 on a device for its 0-d array, and so was W's gradient."""
    W = Parameter(on(device, np.ones(3, np.float32)))
    total = on(device, np.array([0.5, 2.0]))[1]          # float64; 0-d on the device, a scalar on the CPU
    other = on(device, np.array(2.0))                     # a 0-d float64 array on both
    for y in (W * total, total * W, W + other, F.maximum(other, W), other / W):
        assert y.dtype == np.float32
    (W * total + other * W).sum().backward()
    assert W.grad.dtype == np.float32
    np.testing.assert_array_equal(host(W.grad.data), [4.0, 4.0, 4.0])
    assert (Variable(on(device, np.ones(3))) * on(device, np.array(2.0, np.float32))).dtype == np.float64


def test_where_takes_the_device_of_the_array_input_when_the_other_is_a_numpy_scalar(device):
    """np.float32(0) has a shape: where took it for the reference and kept the condition on the host."""
    x = Variable(on(device, np.array([-1.0, 2.0], np.float32)))
    for condition in (x.data > 0, np.array([False, True])):
        y = F.where(condition, np.float32(0), x)
        assert device_of(y.data) == device
        np.testing.assert_array_equal(host(y.data), [-1.0, 0.0])


def test_the_gradient_backward_starts_from_is_a_constant():
    a, c = Parameter(np.ones(3, np.float32)), Parameter(np.ones(3, np.float32))
    (a + c).backward()
    assert not a.grad.requires_grad and not c.grad.requires_grad


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint8, np.int64, np.bool_])
@pytest.mark.parametrize("number", [2, True, 2.5, 300, -1, np.int64(2)])
def test_a_number_beside_an_integer_variable_gives_numpys_dtype_or_its_error(dtype, number):
    """NEP 50: a Python int keeps an integer array's dtype (int32 * 2 is int32; zero made it int64), a
    float does not (int32 * 2.5 is float64), a NumPy scalar counts as an array, and an int that
    does not fit (300 in int8, -1 in uint8) raises OverflowError, as NumPy does."""
    integers = np.arange(3).astype(dtype)
    for op in (lambda a, n: a * n, lambda a, n: n - a):
        try:
            expected = op(integers, number)
        except (OverflowError, TypeError) as error:   # TypeError: NumPy has no bool - bool
            with pytest.raises(type(error)):
                op(Variable(integers), number)
            continue
        result = op(Variable(integers), number)
        assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
        np.testing.assert_array_equal(result.data, expected)


def test_ops_take_plain_arrays_and_numbers_without_any_variable():
    """F.add(array, 2.0) once read the array's .data (a memoryview) as if it were a Variable's."""
    y = F.add(np.ones(3, np.float32), 2.0)
    assert y.dtype == np.float32 and not y.requires_grad
    np.testing.assert_array_equal(y.data, np.full(3, 3.0, np.float32))
    np.testing.assert_array_equal(F.mul(2, np.arange(3)).data, [0, 2, 4])
    with pytest.raises(TypeError, match="Variable needs an array.*list"):
        F.add(2.0, [1.0, 2.0])


# --- found by a mutation audit of core.py, backend.py and testing.py ---
class _Halves(Function):
    """(x of 4 elements) -> (first half, second half): a function with two outputs."""
    def forward(self, x):
        return x[:2].copy(), x[2:].copy()

    def backward(self, g_left, g_right):
        zeros = Variable(np.zeros(2))
        return F.concatenate([zeros if g_left is None else g_left, zeros if g_right is None else g_right])


def test_config_switches_are_restored_after_an_exception_and_when_nested():
    with pytest.raises(RuntimeError, match="inside"):
        with no_grad():
            raise RuntimeError("inside")
    assert zero.Config.enable_backprop
    with no_grad():
        with no_grad():
            pass
        assert not zero.Config.enable_backprop  # the inner block restores the outer one's value
    assert zero.Config.enable_backprop


def test_numpy_scalars_become_0d_arrays_and_none_is_allowed():
    v = Variable(np.float64(2.5))
    assert type(v.data) is np.ndarray and v.shape == () and v.item() == 2.5
    empty = Variable(None)
    assert empty.data is None and repr(empty) == "Variable(None)"


def test_repr_aligns_rows_and_names_a_device_other_than_the_cpu():
    v = Variable(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    assert repr(v) == "Variable([[1. 2.]\n" + " " * 10 + "[3. 4.]])"
    assert repr(Variable(to_device(np.array([1.0], np.float32), "strict"))) == "Variable([1.], device='strict')"


def test_repr_names_a_dtype_other_than_float32():
    """A float64 batch is refused by float32 layers: its repr says why at a glance."""
    assert repr(Variable(np.array([1.0, 2.0]))) == "Variable([1. 2.], dtype=float64)"
    assert repr(Variable(to_device(np.arange(2), "strict"))) == "Variable([0 1], dtype=int64, device='strict')"


def test_item_refuses_a_variable_of_several_elements():
    with pytest.raises(ValueError, match=r"item: only a one-element variable has a single value; .* has 2 elements"):
        Variable(np.ones(2)).item()


def test_outputs_are_one_generation_after_their_creator():
    x = Variable(np.arange(4.0))
    left, right = _Halves()(x * 2.0)     # Mul: generation 0, its output 1; Halves: 1, its outputs 2
    assert left.creator.generation == 1 and left.generation == right.generation == 2


def test_unchain_backward_cuts_every_path_and_every_output():
    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    x.unchain_backward()                       # a leaf: nothing to cut
    a = F.exp(x)
    b = F.sin(a) * 2.0
    left, right = _Halves()(b)
    z = F.cos(a)
    y = F.sum(left * right) + F.sum(z)         # a reaches y along two paths, Halves through two outputs
    y.unchain_backward()
    assert [v.creator for v in (a, b, left, right, z)] == [None] * 5
    y.backward()
    assert x.grad is None


def test_to_returns_the_variable_itself():
    x = Variable(np.ones(2))
    assert x.to("strict") is x and x.to("cpu") is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_seeds_with_ones_of_the_outputs_dtype(dtype):
    x = Variable(np.array([0.1, 0.2], dtype))
    y = x * 3.0
    y.backward(retain_grad=True)
    assert y.grad.dtype == x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data, np.full(2, 3.0, dtype))


@pytest.mark.parametrize("as_variable", [False, True])
def test_backward_from_a_given_gradient_is_a_vector_jacobian_product(as_variable):
    x = Variable(np.array([1.0, 2.0]))
    y = x * x
    v = np.array([3.0, -1.0])
    y.backward(Variable(v) if as_variable else v)   # v^T dy/dx = v * 2x
    np.testing.assert_array_equal(x.grad.data, [6.0, -4.0])


def test_a_given_gradient_array_is_a_constant_as_arrays_passed_to_ops_are():
    x = Variable(np.array([1.0, 2.0]))
    (x * 3.0).backward(np.array([1.0, -1.0]), create_graph=True)
    np.testing.assert_array_equal(x.grad.data, [3.0, -3.0])
    assert not x.grad.requires_grad   # 3 v depends on the constant v only: nothing to differentiate
    leaf = Variable(np.array([1.0]))
    leaf.backward(np.array([2.0]))
    assert not leaf.grad.requires_grad


@pytest.mark.parametrize("gradient, match", [
    (np.ones(3), r"shape and dtype of the variable \(shape \(2,\)\), float64; got shape \(3,\), dtype float64"),
    (np.ones(2, np.float32), "got shape \\(2,\\), dtype float32"),
    ([1.0, 1.0], "got list"),
])
def test_a_given_gradient_of_another_shape_or_dtype_is_refused(gradient, match):
    x = Variable(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=match):
        (x * x).backward(gradient)
    assert x.grad is None


def test_a_given_gradient_on_another_device_is_refused():
    x = Variable(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="the gradient is on strict, the variable \\(shape \\(2,\\)\\) on cpu"):
        (x * x).backward(to_device(np.ones(2), "strict"))


def test_a_gradient_kept_from_an_earlier_pass_is_not_the_seed_of_the_next():
    """y.grad kept by z.backward(retain_grad=True) was taken as dy/dy by y.backward(), and then erased."""
    x = Variable(np.array(3.0))
    y = x * x
    z = y * 2.0
    z.backward(retain_grad=True)
    assert (y.grad.data, z.grad.data, x.grad.data) == (2.0, 1.0, 12.0)
    x.cleargrad()
    y.backward()
    assert x.grad.data == 6.0 and y.grad.data == 2.0    # dy/dx; y keeps the earlier pass's gradient
    y.backward(retain_grad=True)
    assert x.grad.data == 12.0 and y.grad.data == 3.0   # now it adds this pass's dy/dy = 1, as a leaf would


def test_backward_of_a_leaf_adds_one_each_time():
    a = Variable(np.array(2.0))
    a.backward()
    a.backward()
    assert a.grad.data == 2.0


def test_an_input_whose_backward_gives_none_gets_no_gradient_and_stops_the_pass():
    class FirstOnly(Function):  # y = a; b is passed in but gets no gradient
        def forward(self, a, b):
            return a.copy()

        def backward(self, gy):
            return gy, None

    x = Variable(np.array([1.0, 2.0]))
    b = F.exp(x)
    FirstOnly()(x * 2.0, b).sum().backward()
    assert b.grad is None
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_backward_twice_from_an_output_that_kept_its_gradient():
    x = Variable(np.array([1.0, 2.0]))
    y = x * x
    y.backward(retain_grad=True)
    y.backward(retain_grad=True)               # each pass starts from dy/dy = 1, and y adds it, as x adds 2x
    np.testing.assert_array_equal(x.grad.data, [4.0, 8.0])
    np.testing.assert_array_equal(y.grad.data, [2.0, 2.0])


def test_a_kept_gradient_of_the_seeds_sibling_output_does_not_flow():
    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    left, right = _Halves()(x * 1.0)
    F.sum(left * right).backward(retain_grad=True)
    np.testing.assert_array_equal(right.grad.data, [1.0, 2.0])
    x.cleargrad(), left.cleargrad()
    left.backward()                            # from one output of Halves: right's kept gradient stays out
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(right.grad.data, [1.0, 2.0])


def test_a_cleared_kept_gradient_gets_only_the_next_passs_gradient():
    a = Variable(np.array([1.0, 2.0]))
    h = a * 3
    F.sum(h * h).backward(retain_grad=True)
    h.cleargrad()
    F.sum(h).backward(retain_grad=True)
    np.testing.assert_array_equal(h.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.data, [18.0 + 3, 36.0 + 3])


def test_gradients_are_constants_unless_create_graph():
    x = Variable(np.array([1.0, 2.0]))
    (x * x).sum().backward()
    assert x.grad.creator is None and not x.grad.requires_grad
    x.cleargrad()
    (x * x).sum().backward(create_graph=True)
    assert x.grad.creator is not None


def test_backward_restores_the_backprop_switch_also_after_an_error_and_inside_no_grad():
    class BrokenBackward(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            raise RuntimeError("broken backward")

    x = Variable(np.ones(2))
    try:
        with pytest.raises(RuntimeError, match="broken backward"):
            BrokenBackward()(x).sum().backward()
        assert zero.Config.enable_backprop
        y = (x * x).sum()
        with no_grad():
            y.backward(create_graph=True)
            assert not zero.Config.enable_backprop
        assert zero.Config.enable_backprop
    finally:
        zero.Config.enable_backprop = True


def test_an_output_that_was_freed_sends_no_gradient_and_two_output_graphs_are_freed():
    x = Variable(np.arange(1.0, 5.0))
    left, right = _Halves()(x * 1.0)
    del right                                   # freed: Halves.backward gets None for it
    F.sum(left * 3.0).backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0, 0.0, 0.0])
    halves = weakref.ref(left.creator)
    gc.disable()
    try:
        del left
        assert halves() is None                 # no reference cycle through the outputs
    finally:
        gc.enable()


def test_arrays_of_one_device_but_different_array_types_mix():
    class Sub(np.ndarray):
        pass

    y = Variable(np.arange(3.0).view(Sub)) + Variable(np.ones(3))
    np.testing.assert_array_equal(y.data, [1.0, 2.0, 3.0])


def test_an_index_error_names_the_op_and_keeps_its_cause():
    with pytest.raises(IndexError, match=r"\(3,\) float64 on cpu") as info:
        Variable(np.ones(3))[5]
    assert isinstance(info.value.__cause__, IndexError)


def test_ops_on_python_numbers_only_give_float32_for_floats_and_keep_integers():
    assert F.add(1.5, 2.0).dtype == np.float32
    y = F.add(2, 3)
    assert y.dtype.kind == "i" and y.item() == 5


def test_a_forward_that_returns_a_python_number_gives_a_0d_array():
    class Norm(Function):
        def forward(self, x):
            return float(np.sqrt((x * x).sum()))

        def backward(self, gy):
            x, = self.inputs
            return gy * x / Norm()(x)

    y = Norm()(Variable(np.array([3.0, 4.0])))
    assert type(y.data) is np.ndarray and y.shape == () and y.item() == 5.0


def test_backend_helpers_see_through_parameters():
    p = Parameter(to_device(np.arange(3.0), "strict"))
    assert zero.backend.device_of(p) == "strict"
    np.testing.assert_array_equal(to_numpy(p), [0.0, 1.0, 2.0])


def test_a_device_array_on_the_left_gives_a_variable():
    x = Variable(to_device(np.ones(2), "strict"))
    y = to_device(np.array([2.0, 3.0]), "strict") * x
    assert isinstance(y, Variable) and y.device == "strict"
    y.sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad.data), [2.0, 3.0])


def test_device_names_take_index_0_and_the_gpu_alias_and_none_means_the_cpu():
    backend = zero.backend
    assert backend.get_backend(None) is backend.CPU
    assert backend.get_backend("cpu:0") is backend.CPU and backend.get_backend("strict:0").name == "strict"
    with pytest.raises(ValueError, match=r"device 'cuda:1': zero computes on one GPU.*CUDA_VISIBLE_DEVICES=1"):
        backend.get_backend("cuda:1")  # CuPy would compute on the current GPU, 0, silently
    for name in ("cpu", "strict"):   # the GPU advice, CUDA_VISIBLE_DEVICES, was given for these too
        with pytest.raises(ValueError, match=rf"^device '{name}:1': '{name}' has one device, '{name}' \(or '{name}:0'\)$"):
            backend.get_backend(f"{name}:1")
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; available devices: cpu, .*strict"):
        backend.get_backend("tpu")
    if backend.cupy is None:
        with pytest.raises(RuntimeError, match="CuPy is not installed"):
            backend.get_backend("gpu")
        assert backend.cuda_available() is False
    assert repr(backend.CPU) == "Backend('cpu')"


def test_a_subclass_of_a_device_array_belongs_to_that_device():
    import zero.testing

    class Sub(zero.testing.StrictArray):
        __slots__ = ()

    assert zero.backend.device_of(Sub(np.ones(2))) == "strict"
    assert zero.backend.device_of(1.5) == "cpu" and zero.backend.device_of([1, 2]) == "cpu"


def test_seed_seeds_numpy_and_the_devices_own_generator_and_checks_the_device(monkeypatch):
    backend = zero.backend
    seeded = []
    device_random = type("Random", (), {"seed": staticmethod(seeded.append)})
    device_xp = type("Xp", (), {"random": device_random})
    monkeypatch.setitem(backend._backends, "fake", backend.Backend("fake", device_xp, object, None, None))
    state = np.random.get_state()
    try:
        backend.seed(5)
        first = np.random.rand(3)
        backend.seed(5)
        np.testing.assert_array_equal(np.random.rand(3), first)
        backend.seed(7, device="fake")                  # NumPy's generator and the device's own
        assert seeded == [7]
        with pytest.raises(ValueError, match="unknown device 'tpu'"):
            backend.seed(5, device="tpu")
    finally:
        np.random.set_state(state)


def test_to_device_beside_copies_host_data_over_and_refuses_another_devices_array():
    on_device = to_device(np.arange(3.0), "strict")
    assert to_device_beside(on_device, "strict", "the labels") is on_device
    assert device_of(to_device_beside([1, 2], "strict", "the labels")) == "strict"   # host data: copied
    with pytest.raises(TypeError, match="the labels on strict and the data on cpu"):
        to_device_beside(on_device, "cpu", "the labels")   # a device's array is never copied to the host
    with pytest.raises(TypeError, match="softmax_cross_entropy: the labels on strict and the data on cpu"):
        F.softmax_cross_entropy(Variable(np.zeros((2, 3))), to_device(np.array([0, 1]), "strict"))


def test_to_numpy_gives_an_ndarray_and_moving_to_the_same_device_does_not_copy():
    for value in (np.float32(1.5), 2.0, [1, 2]):
        assert type(to_numpy(value)) is np.ndarray
    v = Variable(np.arange(3.0))
    assert to_numpy(v) is v.data
    on_device = to_device(np.arange(3.0), "strict")
    assert to_device(on_device, "strict") is on_device and to_device(v.data, "cpu") is v.data
    np.testing.assert_array_equal(to_numpy(Variable(on_device)), [0.0, 1.0, 2.0])


def test_floating_makes_integers_and_booleans_float32_and_keeps_floats():
    backend = zero.backend
    assert backend.floating(np.arange(3)).dtype == np.float32
    assert backend.floating(np.array([True])).dtype == np.float32
    for kept in (np.ones(2), np.array([1 + 2j])):
        assert backend.floating(kept) is kept


def test_strict_arrays_follow_numpy_for_operators_scalars_and_iteration():
    import operator

    from zero.testing import StrictArray
    a_np, b_np = np.array([[-7, 5], [3, -2]]), np.array([[2, -3], [3, 2]])
    a, b = to_device(a_np, "strict"), to_device(b_np, "strict")
    for op in (operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
               operator.and_, operator.or_, operator.xor, operator.matmul,
               operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):
        pairs = [(a, b, a_np, b_np)]
        if op is not operator.matmul:
            pairs += [(3, a, 3, a_np), (a, 3, a_np, 3)]
        for left, right, left_np, right_np in pairs:   # also the reflected operators: 3 - a
            result = op(left, right)
            assert type(result) is StrictArray, op
            np.testing.assert_array_equal(to_numpy(result), op(left_np, right_np), err_msg=op.__name__)
    np.testing.assert_array_equal(to_numpy(a ** abs(b)), a_np ** np.abs(b_np))
    for op in (operator.neg, operator.pos, abs, operator.invert):
        np.testing.assert_array_equal(to_numpy(op(a)), op(a_np), err_msg=op.__name__)
    c = to_device(a_np.copy(), "strict")
    c_before = c
    c -= b
    assert c is c_before
    np.testing.assert_array_equal(to_numpy(c), a_np - b_np)
    assert all(type(row) is StrictArray for row in a) and type(a.T) is StrictArray
    assert [type(part) for part in zero.testing.xp.split(a, 2)] == [StrictArray, StrictArray]
    assert type(np.concatenate([a, b])) is StrictArray                   # NumPy functions dispatch to it


def test_strict_arrays_give_python_scalars_only_from_one_element():
    one, several = to_device(np.array(2.5), "strict"), to_device(np.array([1.0, 0.0]), "strict")
    assert float(one) == 2.5 and int(one) == 2 and bool(one) and one.item() == 2.5
    for convert in (float, int):
        with pytest.raises(TypeError):
            convert(several)
    with pytest.raises(ValueError):
        bool(several)
    with pytest.raises(TypeError):          # no __index__ either, as CuPy's arrays (it would copy to the host)
        [10, 20, 30][to_device(np.array(1), "strict")]
    with pytest.raises(TypeError):
        hash(one)                           # unhashable, as NumPy and CuPy arrays
    for name in ("base", "ctypes"):  # no direct access to the memory
        assert not hasattr(several, name)
    # .data is a handle of the memory, as CuPy's MemoryPointer: not the values, and not an array
    assert not isinstance(several.data, (np.ndarray, zero.testing.StrictArray))
    assert not hasattr(several.data, "sum") and "16 bytes" in repr(several.data)


def test_the_strict_device_counts_the_host_reads_cupy_makes_unasked():
    """Printing a CuPy array copies it to the host, and x[mask] (or x[mask] = v) with a boolean mask
    reads the mask's count back first: each a wait for the GPU, so counted like float(x)."""
    x = to_device(np.array([1.0, -2.0, 3.0]), "strict")
    mask, index = x > 0, to_device(np.array([0, 2]), "strict")
    for action, reads in [(lambda: repr(x), 1), (lambda: f"{x}", 1), (lambda: x[mask], 1),
                          (lambda: x.__setitem__(mask, 0.0), 1), (lambda: x[index], 0), (lambda: x[1:], 0),
                          (lambda: x.__setitem__((mask,), 0.0), 1)]:
        before = zero.testing.host_reads
        action()
        assert zero.testing.host_reads - before == reads


def test_the_strict_device_copies_at_its_borders_and_its_module_refuses_host_arrays():
    import zero.testing
    xp = zero.testing.xp
    host = np.ones(3)
    on_device = to_device(host, "strict")
    host[0] = 5.0
    back = to_numpy(on_device)
    back[1] = 7.0
    np.testing.assert_array_equal(to_numpy(on_device), [1.0, 1.0, 1.0])
    assert isinstance(on_device, xp.ndarray) and isinstance(xp.asarray(host), xp.ndarray)  # explicit reads are fine
    for call in (lambda: xp.add.reduce(host), lambda: xp.lib.stride_tricks.sliding_window_view(host, 2)):
        with pytest.raises(zero.testing.HostConversionError):
            call()
    assert isinstance(xp.lib.stride_tricks.sliding_window_view(on_device, 2), xp.ndarray)


def test_the_strict_device_has_a_generator_of_its_own_that_only_a_seed_sets():
    """As CuPy's: NumPy's seed does not reach it, and its state can be neither read nor set."""
    import zero.testing
    device_random = zero.testing.xp.random
    zero.seed(3, "strict")
    first = to_numpy(device_random.standard_normal(4))
    np.random.seed(3)                                        # NumPy's seed leaves the device's stream alone
    assert not np.array_equal(to_numpy(device_random.standard_normal(4)), first)
    zero.seed(3, "strict")
    np.testing.assert_array_equal(to_numpy(device_random.standard_normal(4)), first)
    for name in ("get_state", "set_state"):
        with pytest.raises(AttributeError, match=f"has no {name}"):
            getattr(device_random, name)


def test_the_strict_device_has_only_the_ufunc_methods_cupy_has():
    """CuPy 13 has reduce only for add and multiply, and at for add, subtract, maximum, minimum and
    the bitwise ufuncs: a maximum.reduce would pass on NumPy and fail first on a GPU."""
    import zero.testing
    xp = zero.testing.xp
    a = to_device(np.array([1.0, 3.0, 2.0]), "strict")
    assert float(xp.add.reduce(a)) == 6.0 and float(xp.multiply.reduce(a)) == 6.0
    xp.maximum.at(a, to_device(np.array([0, 0]), "strict"), 5.0)
    np.testing.assert_array_equal(to_numpy(a), [5.0, 3.0, 2.0])
    for call in (lambda: xp.maximum.reduce(a), lambda: xp.multiply.at(a, 0, 2.0)):
        with pytest.raises(NotImplementedError, match="not available on CuPy's ufuncs"):
            call()


def test_the_strict_device_answers_only_the_names_it_has_checked_in_cupy():
    """NumPy has names CuPy lacks; code using one would pass on NumPy and fail first on a GPU. The
    strict device refuses them, by its module, the arrays' methods, and NumPy's own functions and
    ufuncs called on its arrays (which CuPy also answers only for the names it has)."""
    import zero.testing
    xp = zero.testing.xp
    a = to_device(np.array([1.0, 2.0]), "strict")
    for call, where, name in [(lambda: xp.errstate, "xp", "errstate"),
                              (lambda: xp.random.Generator, "xp.random", "Generator"),
                              (lambda: xp.linalg.multi_dot, "xp.linalg", "multi_dot"),
                              (lambda: a.resize, "ndarray", "resize")]:
        with pytest.raises(AttributeError, match=rf"{where} has no '{name}' on the strict device.*"
                                                 rf"CUPY_NAMES\['{where}'\]"):
            call()
    with pytest.raises(TypeError):
        np.insert(a, 0, 3.0)          # CuPy has no insert: NumPy finds no implementation for the array
    with pytest.raises(TypeError):
        np.spacing(a)                 # nor the ufunc spacing
    # every listed name resolves on the strict device (no typo, nothing NumPy lacks)
    for where, names in zero.testing.CUPY_NAMES.items():
        namespace = _cupy_names_namespace(where, xp, a)
        for name in names:
            getattr(namespace, name)


def _cupy_names_namespace(where, module, array):
    """What a key of zero.testing.CUPY_NAMES names: `array` for "ndarray", else `module` or a submodule."""
    if where == "ndarray":
        return array
    for part in where.split(".")[1:]:
        module = getattr(module, part)
    return module


def test_the_strict_devices_names_are_all_in_cupy():
    """Where CuPy is installed (it imports without a GPU): every name the strict device answers exists
    in CuPy, and the ufunc methods it refuses are the ones CuPy refuses (CuPy raises
    NotImplementedError for those before it looks at its arguments). Passed with CuPy 13.3.0 and
    14.2.0 (cupy-cuda12x, 2026-12-06)."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: its API cannot be compared")
    import zero.testing
    for where, names in zero.testing.CUPY_NAMES.items():
        namespace = _cupy_names_namespace(where, cupy, cupy.ndarray)
        missing = sorted(f"{where}.{name}" for name in names if not hasattr(namespace, name))
        assert not missing, f"CuPy {cupy.__version__} has no {', '.join(missing)}"
    for method, supported in zero.testing._UFUNC_METHODS.items():
        for name in ("add", "subtract", "multiply", "maximum", "minimum", "bitwise_and"):
            try:
                getattr(getattr(cupy, name), method)(None, None, None)
            except NotImplementedError:
                assert name not in supported, f"CuPy {cupy.__version__} has no {name}.{method}"
            except Exception:     # it got as far as the (missing) arrays: CuPy has the method
                assert name in supported, f"CuPy {cupy.__version__} has {name}.{method}: allow it"


def test_reseed_device_seeds_a_devices_generator_from_numpys_and_leaves_the_cpu_alone():
    import zero.testing
    np.random.seed(5)
    zero.reseed_device("cpu")                                # CPU noise is NumPy's own: nothing drawn
    np.testing.assert_array_equal(np.random.random(3), np.random.RandomState(5).random_sample(3))
    draws = []
    for numpy_seed in (5, 5, 6):
        np.random.seed(numpy_seed)
        zero.reseed_device("strict")
        draws.append(to_numpy(zero.testing.xp.random.standard_normal(4)))
    np.testing.assert_array_equal(draws[0], draws[1])        # NumPy's state decides the device's stream
    assert not np.array_equal(draws[0], draws[2])


def test_backend_helpers_see_through_a_subclass_of_variable():
    """backend._data recognised Variable and Parameter by exact type: a subclass was taken for an array."""
    class NamedVariable(Variable):
        __slots__ = ()

    v = NamedVariable(to_device(np.arange(3.0), "strict"))
    assert zero.backend.device_of(v) == v.device == "strict"
    np.testing.assert_array_equal(to_numpy(NamedVariable(np.arange(3.0))), [0.0, 1.0, 2.0])


def test_a_gradient_on_an_intermediate_variable_that_backward_did_not_put_there_does_not_flow_back():
    """Only the pass's own gradients flow (as in PyTorch): one set by hand on h was sent on and then erased."""
    x = Variable(np.array([1.0, 2.0]))
    h = x * 3.0
    y = F.sum(h * 1.0)
    h.grad = Variable(np.array([100.0, 100.0]))
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])
    np.testing.assert_array_equal(h.grad.data, [100.0, 100.0])


def test_an_unchained_output_of_a_two_output_function_is_a_leaf():
    x = Variable(np.arange(1.0, 5.0))
    left, right = _Halves()(x * 1.0)
    left.unchain()
    F.sum(left * right).backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0, 2.0])   # through right only
    np.testing.assert_array_equal(left.grad.data, [3.0, 4.0])          # a leaf keeps its gradient


def test_a_pass_that_failed_leaves_nothing_that_the_next_pass_sends_again():
    class FailsOnce(Function):
        failed = False

        def forward(self, x):
            return x.copy()

        def backward(self, gy):
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise RuntimeError("backward failed")
            return gy

    x = Variable(np.array([1.0, 2.0]))
    y = F.sum((FailsOnce()(x) * 2.0) ** 2)
    with pytest.raises(RuntimeError):
        y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [8.0, 16.0])   # d/dx (2x)^2 = 8x, once (the old core gave 16x)


def test_gradient_check_fails_when_backward_gives_no_gradient_for_an_input_that_matters():
    class ForgetsSecond(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, gy):
            a, b = self.inputs
            return gy * b, None            # d/db = a forgotten

    with pytest.raises(AssertionError, match="input 1"):
        gradient_check(lambda a, b: ForgetsSecond()(a, b), np.array([1.0, 2.0]), np.array([3.0, 4.0]))


def test_gradient_check_returns_the_worst_difference_over_all_inputs():
    """input 0 is off by 2.0 (tolerated by rtol=1), input 1 exact: the answer is 2.0, not the last input's ~0."""
    error = gradient_check(lambda a, b: _ScaledSquare(1.5)(a) + b * 2.0, np.array([1.0, 2.0]), np.array([3.0]),
                           rtol=1.0)
    assert error == pytest.approx(2.0)


def test_reseeding_a_device_every_epoch_gives_every_epoch_a_noise_stream_of_its_own():
    """reseed_device draws the device's seed from NumPy's generator: `2**31` written as `31**2`
    (961 possible seeds) passed every test, though then epochs would often repeat an earlier
    epoch's noise (with 200 epochs, certainly)."""
    import zero.testing
    np.random.seed(0)
    first_draws = set()
    for _ in range(200):
        zero.reseed_device("strict")
        first_draws.add(float(to_numpy(zero.testing.xp.random.standard_normal(1))[0]))
    assert len(first_draws) == 200, f"only {len(first_draws)} distinct noise streams in 200 epochs"


def test_to_device_of_a_variable_already_on_that_device_gives_its_array_without_a_copy():
    """to_device unwraps a Variable before asking whether its array is already on the target
    device: deleting `x = _data(x)` passed every test, though then a Variable already on a GPU went
    GPU -> host -> GPU on every call (a copy, not the array)."""
    for device in ("cpu", "strict"):
        v = Variable(to_device(np.arange(3.0), device))
        assert to_device(v, device) is v.data, f"to_device copied a Variable's array already on {device}"


def test_save_npz_atomically_takes_a_path_given_as_a_string(tmp_path):
    """Every caller passed a pathlib.Path, so deleting `path = Path(path)` passed every test; a str
    path then failed with AttributeError: 'str' object has no attribute 'parent'."""
    from zero.utils import save_npz_atomically
    target = tmp_path / "sub" / "arrays.npz"
    written = save_npz_atomically(str(target), {"w": np.arange(3.0)})
    assert written == target
    with np.load(target) as archive:
        np.testing.assert_array_equal(archive["w"], np.arange(3.0))


def test_writable_folder_takes_a_folder_given_as_a_string(tmp_path):
    """As above for writable_folder: without `folder = Path(folder)` a str folder failed with
    AttributeError ('str' object has no attribute 'parents') instead of being created."""
    from zero.utils import writable_folder
    folder = writable_folder(str(tmp_path / "figures" / "step"), "figures (--out)")
    assert folder == tmp_path / "figures" / "step" and folder.is_dir()


def test_gradient_check_checks_float32_and_integer_arrays_in_float64():
    # in float32 the difference quotient was rounding noise (0.48 for a derivative of 0.20); an integer
    # array truncated x + eps back to x (a "numerical gradient" of 420735 for sin at 1)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    assert gradient_check(lambda v: F.tanh(v) * v, x) < 1e-6
    assert gradient_check(lambda v: F.sin(v), np.arange(3)) < 1e-6
    assert gradient_check(lambda v: v * v * v, np.float32(1.5)) < 1e-5


def test_backward_of_a_result_that_needs_no_gradient_says_why_instead_of_doing_nothing():
    x = Variable(np.ones(3))
    with no_grad():
        loss = F.sum(x * x)
    with pytest.raises(RuntimeError, match=r"backward: the variable \(shape \(\)\) needs no gradient: it was "
                                           r"computed under no_grad\(\), or from constants only"):
        loss.backward()
    assert x.grad is None
    with pytest.raises(RuntimeError, match="needs no gradient"):
        F.sum(np.ones(3) * 2.0).backward()                 # arrays passed to ops are constants
    F.sum(x * x).backward()                                # the same loss with the graph: x gets 2x
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("values, outside", [([0, 3], False), ([-1, 2], True), ([0, 4], True), ([2], False),
                                            (np.zeros(0, np.int64), False)])
def test_any_outside_is_the_same_range_check_on_every_device_with_one_read_on_a_device(device, values, outside):
    import zero.testing
    array = to_device(np.array(values), device)
    before = zero.testing.host_reads
    assert zero.backend.any_outside(array, 0, 4) is outside
    assert device == "cpu" or zero.testing.host_reads - before == min(len(values), 1)   # an empty array: none


def test_a_save_to_a_folder_says_so_and_leaves_nothing_behind(tmp_path):
    """The rename failed after the writing, with an IsADirectoryError naming the hidden temporary file."""
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(IsADirectoryError, match=r"cannot save to .*checkpoints: it is a folder; give a file name "
                                                r"inside it, e\.g\. .*checkpoints/model\.npz"):
        save_npz_atomically(tmp_path / "checkpoints", {"w": np.arange(3.0)})
    assert list(tmp_path.rglob("*")) == [tmp_path / "checkpoints"]


@pytest.mark.parametrize("failing", ["write", "mkstemp"])
def test_a_save_that_the_disk_refuses_names_the_file_and_says_the_old_one_is_unchanged(tmp_path, monkeypatch,
                                                                                         failing):
    """A full disk ended in OSError: [Errno 28] No space left on device, naming no file; a read-only folder
    named only the hidden temporary file. SaveFailed names the file being saved, and is an OSError (with
    its errno) and a SetupError (a step script shows its message alone)."""
    import errno
    import tempfile
    import zero.utils
    from zero.errors import SaveFailed, SetupError
    path = tmp_path / "run.npz"

    def refuse(*args, **kwargs):
        if failing == "write":
            args[0].write(b"part of a checkpoint")   # the disk fills up part-way
            raise OSError(errno.ENOSPC, "No space left on device")
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".run.npz.abc.tmp"))
    refused_call = (zero.utils, "write_npz") if failing == "write" else (tempfile, "mkstemp")
    monkeypatch.setattr(*refused_call, refuse)
    reason = "No space left on device" if failing == "write" else "Read-only file system"
    with pytest.raises(SaveFailed, match=f"^cannot save {re.escape(str(path))}: {reason}; no file was written$"):
        save_npz_atomically(path, {"w": np.arange(3.0)})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_npz_atomically(path, {"w": np.arange(3.0)})
    old = path.read_bytes()
    monkeypatch.setattr(*refused_call, refuse)
    with pytest.raises(OSError, match=f"^cannot save {re.escape(str(path))}: {reason}; the previous "
                                      f"{re.escape(str(path))} is unchanged$") as refused:
        save_npz_atomically(path, {"w": np.arange(4.0)})
    assert isinstance(refused.value, SetupError) and ".tmp" not in str(refused.value)
    assert refused.value.errno == (errno.ENOSPC if failing == "write" else errno.EROFS)
    assert path.read_bytes() == old and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("inside", ["run.npz", "runs/run.npz"])
def test_a_save_below_a_file_names_the_file_in_the_way(tmp_path, inside):
    """mkdir raised FileExistsError: [Errno 17] File exists: '.../afile', which suggests the checkpoint exists."""
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "afile" / inside
    with pytest.raises(NotADirectoryError, match=f"cannot save to {re.escape(str(path))}: "
                                                 f"{re.escape(str(tmp_path / 'afile'))} is a file, not a folder"):
        save_npz_atomically(path, {"w": np.arange(3.0)})
    assert list(tmp_path.iterdir()) == [tmp_path / "afile"] and (tmp_path / "afile").read_text() == "x"


def test_item_of_more_than_one_element_names_the_variable_and_its_size():
    assert Variable(np.array([[2.5]], np.float32)).item() == 2.5
    with pytest.raises(ValueError, match=r"item: only a one-element variable has a single value; variable 'w' "
                                         r"\(shape \(2, 2\)\) has 4 elements"):
        Variable(np.zeros((2, 2)), name="w").item()
