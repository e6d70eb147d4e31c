"""dropout, batch_norm, embedding (zero/functions/nn.py): numerical gradients in
float64 on hypothesis shapes, plain-loop references, both devices, PyTorch
cross-checks."""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import zero.functions as F
import zero
from zero import Config, Variable, get_array_module, no_grad, using_config
from zero.functions.nn import BatchNorm as BatchNormOp
from zero.layers import BatchNorm
from zero.utils import gradient_check

from conftest import assert_double_backprop_on_strict_matches_cpu, host, on
from test_activations_losses import check_double_backprop

# the device fixture is a plain string, so sharing it across examples is safe
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)


# =============================================================================
# Dropout
# =============================================================================
@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seed=seeds,
       p=st.sampled_from([0.1, 0.5, 0.8]))
def test_dropout_gradient_with_a_fixed_mask(device, shape, seed, p):
    x = on(device, np.random.default_rng(seed).standard_normal(shape))
    xp = get_array_module(x)

    def f(v):
        xp.random.seed(seed % 2**31)  # the same mask at every call of the numerical gradient
        return F.dropout(v, p) * Variable(on(device, np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)))

    gradient_check(f, x)


def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(device):
    p = 0.3
    x = Variable(on(device, np.ones((100, 100), dtype=np.float32)))
    y = F.dropout(x, p)
    y.backward()
    values = host(y.data)
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert set(np.unique(values)) == {0.0, np.float32(1 / (1 - p))}
    assert abs((values == 0).mean() - p) < 0.03
    np.testing.assert_array_equal(host(x.grad.data), values)  # gradient = the mask
    other = host(F.dropout(x, p).data)
    assert (other != values).any()  # a new mask at every call
    assert set(np.unique(host(F.dropout(x).data))) == {0.0, 2.0}   # p = 0.5 by default


def test_dropout_of_integers_scales_by_the_exact_factor_in_float32(device):
    """x's integer dtype truncated 1 / (1 - p): 1 / 0.7 became 1, and the mean was not kept."""
    y = host(F.dropout(on(device, np.full(1000, 10)), 0.3).data)
    assert y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, np.float32(10) * np.float32(1 / 0.7)}


def test_dropout_is_the_identity_in_test_mode_and_for_p_zero(device):
    data = on(device, np.arange(6, dtype=np.float32).reshape(2, 3))
    with zero.test_mode():
        assert F.dropout(Variable(data), 0.5).data is data
    assert F.dropout(Variable(data), 0.0).data is data
    with pytest.raises(ValueError, match=r"dropout: p must be a finite number in \[0, 1\), got 1"):
        F.dropout(Variable(data), 1)


# =============================================================================
# Batch norm
# =============================================================================
def batch_norm_loop(x, gamma, beta, running_mean, running_var, momentum, eps, train):
    """One channel at a time, straight from the definition. Returns y and the new running arrays."""
    y = np.empty_like(x)
    running_mean, running_var = running_mean.copy(), running_var.copy()
    for c in range(x.shape[1]):
        values = x[:, c]
        if train:
            mean = values.mean()
            var = ((values - mean) ** 2).mean()
            unbiased = var * values.size / (values.size - 1)
            running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
            running_var[c] = (1 - momentum) * running_var[c] + momentum * unbiased
        else:
            mean, var = running_mean[c], running_var[c]
        y[:, c] = gamma[c] * (values - mean) / np.sqrt(var + eps) + beta[c]
    return y, running_mean, running_var


small, tiny = st.integers(1, 3), st.integers(1, 2)
bn_shapes = st.one_of(st.tuples(st.integers(2, 5), small),              # (N, C)
                      st.tuples(small, small, st.integers(1, 4)),       # (N, C, L)
                      st.tuples(small, small, small, small),            # (N, C, H, W)
                      st.tuples(small, small, tiny, tiny, tiny))        # (N, C, D, H, W)


def random_bn_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = 2 * rng.standard_normal(shape) + rng.standard_normal((1, channels) + (1,) * (len(shape) - 2))
    gamma, beta = rng.uniform(0.5, 2, channels), rng.standard_normal(channels)
    running_mean, running_var = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    return x, gamma, beta, running_mean, running_var, rng.standard_normal(shape)


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@FAST
@given(shape=bn_shapes, seed=seeds)
@example(shape=(2, 3, 4), seed=0)        # gradients of 3-D and 5-D inputs were never checked: both
@example(shape=(2, 2, 2, 1, 2), seed=0)  # on every run, with more than one channel
def test_batch_norm_value_running_stats_and_gradient(device, train, shape, seed):
    if train and np.prod(shape) // shape[1] < 2:
        shape = (2,) + shape[1:]
    x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, seed)
    expected = batch_norm_loop(x, gamma, beta, running_mean, running_var, 0.1, 1e-5, train)
    mean_d, var_d = on(device, running_mean), on(device, running_var)
    with using_config("train", train):
        y = F.batch_norm(Variable(on(device, x)), Variable(on(device, gamma)), Variable(on(device, beta)),
                         mean_d, var_d)
        np.testing.assert_allclose(host(y.data), expected[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(host(mean_d), expected[1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(host(var_d), expected[2], rtol=1e-12)

        def f(x, gamma, beta):  # fresh running arrays: each call of the numerical gradient updates them
            return F.batch_norm(x, gamma, beta, on(device, running_mean), on(device, running_var)) * \
                Variable(on(device, weights))

        gradient_check(f, on(device, x), on(device, gamma), on(device, beta), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3, 5), (2, 3, 2, 2, 3)])   # one spatial axis, and three
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_batch_norm_of_any_number_of_spatial_axes(shape, train):
    x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, 5)
    y_loop, mean_loop, var_loop = batch_norm_loop(x, gamma, beta, running_mean, running_var, 0.1, 1e-5, train)
    with using_config("train", train):
        y = F.batch_norm(Variable(x), Variable(gamma), Variable(beta), running_mean, running_var)
    np.testing.assert_allclose(y.data, y_loop, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(running_mean, mean_loop, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(running_var, var_loop, rtol=1e-12)


BN_SHAPES_BY_NDIM = [(6, 3), (4, 3, 2), (3, 2, 2, 3), (2, 3, 2, 1, 2)]   # (N, C) and 1, 2, 3 spatial axes


@pytest.mark.parametrize("shape", BN_SHAPES_BY_NDIM, ids=lambda shape: f"{len(shape)}d")
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_batch_norm_double_backprop(shape, train):
    x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, 7)
    weights = Variable(weights)
    with using_config("train", train):
        def loss(v):
            y = F.batch_norm(v, Variable(gamma), Variable(beta), running_mean.copy(), running_var.copy())
            return (F.tanh(y) * weights).sum()  # tanh: a nonlinear loss, so the second derivative is nonzero

        check_double_backprop(loss, x)


@pytest.mark.parametrize("shape", BN_SHAPES_BY_NDIM, ids=lambda shape: f"{len(shape)}d")
def test_batch_norm_both_backward_paths_agree_in_training(shape):
    """The in-place array path and the zero-op graph path (create_graph) of the training-mode
    gradient give the same gradients, for every number of axes: only 2-D and 4-D inputs were
    compared (and test mode, which has one path, was compared with itself)."""
    x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, 7)
    weights = Variable(weights)
    grads = []
    for create_graph in (False, True):
        v, g, b = Variable(x.copy()), Variable(gamma.copy()), Variable(beta.copy())
        with using_config("train", True):
            y = F.batch_norm(v, g, b, running_mean.copy(), running_var.copy())
        (F.tanh(y) * weights).sum().backward(create_graph=create_graph)
        grads.append([v.grad.data, g.grad.data, b.grad.data])
    for fast, graph in zip(*grads):
        np.testing.assert_allclose(fast, graph, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 1, 2)], ids=["2d", "5d"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
def test_batch_norm_double_backprop_on_strict_device_matches_cpu(shape, train):
    """Double backprop never ran on the strict device: a host copy in BatchNorm's create_graph
    backward (either mode) passed every test."""
    x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, 9)

    def f(device, x, gamma, beta):
        y = F.batch_norm(x, gamma, beta, on(device, running_mean), on(device, running_var))
        return y * Variable(on(device, weights))

    with using_config("train", train):
        reaches = [BatchNormOp._backward_graph if train else BatchNormOp._backward_test]
        assert_double_backprop_on_strict_matches_cpu(f, [x, gamma, beta], reaches=reaches)


def test_batch_norm_keeps_float32_and_normalises(device):
    rng = np.random.default_rng(8)
    x = Variable(on(device, (3 + 2 * rng.standard_normal((16, 4, 5, 5))).astype(np.float32)))
    gamma, beta = Variable(on(device, np.ones(4, np.float32))), Variable(on(device, np.zeros(4, np.float32)))
    running_mean, running_var = on(device, np.zeros(4, np.float32)), on(device, np.ones(4, np.float32))
    y = F.batch_norm(x, gamma, beta, running_mean, running_var)
    (y * y).sum().backward()
    for a in (y.data, x.grad.data, gamma.grad.data, beta.grad.data, running_mean, running_var):
        assert a.dtype == np.float32
    values = host(y.data)
    np.testing.assert_allclose(values.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(values.var(axis=(0, 2, 3)), 1, rtol=1e-3)
    np.testing.assert_allclose(host(running_mean), 0.3, rtol=0.1)  # 0.1 * batch mean, about 3
    with no_grad():  # no graph, but training mode: the running arrays still move
        F.batch_norm(x, gamma, beta, running_mean, running_var)
    np.testing.assert_allclose(host(running_mean), 0.57, rtol=0.1)


def test_batch_norm_keeps_x_s_dtype_with_float64_running_statistics_in_test_mode(device):
    x = Variable(on(device, np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)))
    gamma, beta = Variable(on(device, np.ones(3, np.float32))), Variable(on(device, np.zeros(3, np.float32)))
    running_mean, running_var = on(device, np.full(3, 0.5)), on(device, np.full(3, 4.0))  # float64, as np.zeros gives
    with zero.test_mode():
        y = F.batch_norm(x, gamma, beta, running_mean, running_var)
    y.sum().backward()
    for a in (y.data, x.grad.data, gamma.grad.data, beta.grad.data):
        assert a.dtype == np.float32
    np.testing.assert_allclose(host(y.data), (host(x.data) - 0.5) / np.sqrt(4.0 + 1e-5), rtol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_computes_integer_input_in_float32(train):
    x = np.arange(12, dtype=np.uint8).reshape(4, 3)
    with using_config("train", train):
        y, expected = BatchNorm()(x), BatchNorm()(x.astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-6)


def test_batch_norm_uses_running_statistics_in_test_mode(device):
    x = on(device, np.array([[1.0, 10.0], [3.0, 30.0]]))
    running_mean, running_var = on(device, np.array([2.0, 0.0])), on(device, np.array([4.0, 100.0]))
    gamma, beta = Variable(on(device, np.array([1.0, 2.0]))), Variable(on(device, np.array([0.0, 1.0])))
    with zero.test_mode():
        y = F.batch_norm(x, gamma, beta, running_mean, running_var, eps=0.0)
    np.testing.assert_allclose(host(y.data), [[-0.5, 3.0], [0.5, 7.0]])
    np.testing.assert_array_equal(host(running_mean), [2.0, 0.0])  # not updated
    assert Config.train


def test_batch_norm_bad_input_errors(device):
    x = Variable(on(device, np.zeros((4, 3))))
    ones = on(device, np.ones(3))
    with pytest.raises(ValueError, match=r"BatchNorm: gamma must have shape \(3,\) for x \(4, 3\), got \(2,\)"):
        F.batch_norm(x, on(device, np.ones(2)), ones, ones.copy(), ones.copy())
    with pytest.raises(ValueError, match="BatchNorm: training needs more than one value per channel"):
        F.batch_norm(Variable(on(device, np.zeros((1, 3)))), ones, ones, ones.copy(), ones.copy())
    if device != "cpu":
        with pytest.raises(TypeError, match="BatchNorm: running_mean is on device 'cpu' but x is on 'strict'"):
            F.batch_norm(x, ones, ones, np.zeros(3), np.ones(3))


def test_batch_norm_matches_torch():
    torch = pytest.importorskip("torch")
    for shape in [(8, 3), (4, 3, 5, 6)]:
        x, gamma, beta, running_mean, running_var, weights = random_bn_inputs(shape, 9)
        tensors = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
        running_t = [torch.tensor(running_mean), torch.tensor(running_var)]
        variables = [Variable(a.copy()) for a in (x, gamma, beta)]
        for step in range(2):
            for v in variables:
                v.cleargrad()
            for t in tensors:
                t.grad = None
            y = F.batch_norm(*variables, running_mean, running_var, momentum=0.2, eps=1e-3)
            yt = torch.nn.functional.batch_norm(tensors[0], *running_t, tensors[1], tensors[2],
                                                training=True, momentum=0.2, eps=1e-3)
            (y * Variable(weights)).sum().backward()
            (yt * torch.tensor(weights)).sum().backward()
            np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
            for v, t in zip(variables, tensors):
                np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-8, atol=1e-10)
            np.testing.assert_allclose(running_mean, running_t[0].numpy(), rtol=1e-12)
            np.testing.assert_allclose(running_var, running_t[1].numpy(), rtol=1e-12)
        with zero.test_mode():
            y = F.batch_norm(*variables, running_mean, running_var, eps=1e-3)
        yt = torch.nn.functional.batch_norm(tensors[0], *running_t, tensors[1], tensors[2], training=False, eps=1e-3)
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)


# =============================================================================
# Embedding
# =============================================================================
@FAST
@given(num=st.integers(1, 5), dim=st.integers(1, 3),
       ids_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple), seed=seeds)
def test_embedding_value_and_gradient_with_repeated_ids(device, num, dim, ids_shape, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((num, dim))
    ids = rng.integers(0, num, size=ids_shape)
    upstream = rng.standard_normal(ids_shape + (dim,))
    w = Variable(on(device, weight))
    y = F.embedding(ids, w)
    (y * Variable(on(device, upstream))).sum().backward()
    expected_grad = np.zeros_like(weight)
    for position in np.ndindex(ids_shape):  # each use of a row adds its upstream gradient
        np.testing.assert_array_equal(host(y.data)[position], weight[ids[position]])
        expected_grad[ids[position]] += upstream[position]
    np.testing.assert_allclose(host(w.grad.data), expected_grad, rtol=1e-12)
    ids_on_device = on(device, ids)
    gradient_check(lambda w: F.embedding(ids_on_device, w) * Variable(on(device, upstream)), on(device, weight))


def test_embedding_accepts_ids_in_any_form_and_rejects_bad_ones(device):
    weight = Variable(on(device, np.arange(8, dtype=np.float32).reshape(4, 2)))
    for ids in ([3, 0], np.array([3, 0]), Variable(np.array([3, 0])), on(device, np.array([3, 0]))):
        y = F.embedding(ids, weight)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(host(y.data), [[6, 7], [0, 1]])
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype float64"):
        F.embedding(np.array([0.0, 1.0]), weight)
    with pytest.raises(ValueError, match=r"embedding: ids must lie in \[0, 4\), got values from -1 to 4"):
        F.embedding(np.array([-1, 4]), weight)
    with pytest.raises(ValueError, match=r"embedding: weight must be \(num_embeddings, dim\)"):
        F.embedding(np.array([0]), Variable(on(device, np.zeros(3))))


def test_embedding_rejects_the_first_id_past_the_table():
    """ids == num_embeddings is out of range (the largest valid id is num_embeddings - 1)."""
    weight = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(F.embedding(np.array([3]), weight).data, [[6.0, 7.0]])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\), got values from 0 to 4"):
        F.embedding(np.array([0, 4]), weight)


def test_batch_norm_test_mode_gradient_uses_the_statistics_of_its_forward():
    """A training step between a test-mode forward and its backward moves the running mean in place;
    dgamma must still use xhat = (x - running_mean at forward time) / sqrt(running_var + eps)."""
    x = Variable(np.array([[1.0, 2.0], [3.0, 5.0], [6.0, 4.0]]))
    gamma, beta = Variable(np.array([2.0, 0.5])), Variable(np.array([0.0, 1.0]))
    running_mean, running_var = np.array([0.5, -1.0]), np.array([4.0, 0.25])
    with using_config("train", False):
        y = F.batch_norm(x, gamma, beta, running_mean, running_var, eps=0.0)
    F.batch_norm(Variable(x.data + 10), gamma, beta, running_mean, running_var)   # a training step
    assert running_mean[0] != 0.5
    y.backward(Variable(np.ones((3, 2))))
    xhat = (x.data - [0.5, -1.0]) / np.sqrt([4.0, 0.25])
    np.testing.assert_allclose(gamma.grad.data, xhat.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, np.tile([2.0 / 2.0, 0.5 / 0.5], (3, 1)), rtol=1e-12)


def test_batch_norm_updates_running_statistics_given_as_variables_in_place():
    x = np.array([[1.0, 0.0], [3.0, 4.0], [5.0, 2.0]])
    running_mean, running_var = Variable(np.zeros(2)), Variable(np.ones(2))
    F.batch_norm(Variable(x), Variable(np.ones(2)), Variable(np.zeros(2)), running_mean, running_var, momentum=0.5)
    np.testing.assert_allclose(running_mean.data, 0.5 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(running_var.data, 0.5 + 0.5 * x.var(axis=0, ddof=1), rtol=1e-12)


# --- found by a second mutation audit ---
def test_batch_norm_names_each_bad_argument(device):
    ones = on(device, np.ones(3))
    with pytest.raises(ValueError, match=r"BatchNorm: x must be \(N, C\) or \(N, C, \*spatial\), got shape \(3,\)"):
        F.batch_norm(Variable(ones), ones, ones, ones.copy(), ones.copy())
    x = Variable(on(device, np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm: beta must have shape \(3,\) for x \(4, 3\), got \(4,\)"):
        F.batch_norm(x, ones, on(device, np.ones(4)), ones.copy(), ones.copy())
    with pytest.raises(ValueError, match=r"BatchNorm: running_var must have shape \(3,\) for x \(4, 3\), got \(2,\)"):
        F.batch_norm(x, ones, ones, ones.copy(), on(device, np.ones(2)))
    if device != "cpu":
        with pytest.raises(TypeError, match="BatchNorm: running_var is on device 'cpu' but x is on 'strict'"):
            F.batch_norm(x, ones, ones, ones.copy(), np.ones(3))


@pytest.mark.parametrize("setting, message", [
    ({"eps": -1}, "batch_norm: eps must be a finite number >= 0, got -1"),           # was all NaN
    ({"eps": float("inf")}, "batch_norm: eps must be a finite number >= 0, got inf"),
    ({"momentum": 2}, "batch_norm: momentum must be a finite number in [0, 1], got 2"),   # running_var < 0
    ({"momentum": float("nan")}, "batch_norm: momentum must be a finite number in [0, 1], got nan"),
])
def test_batch_norm_refuses_a_bad_eps_or_momentum_and_changes_nothing(setting, message):
    """Only the BatchNorm layer checked them: the function computed NaN or a negative running variance."""
    x = Variable(np.random.default_rng(0).standard_normal((4, 3)))
    running_mean, running_var = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=re.escape(message)):
        F.batch_norm(x, np.ones(3), np.zeros(3), running_mean, running_var, **setting)
    np.testing.assert_array_equal(running_mean, np.zeros(3))
    np.testing.assert_array_equal(running_var, np.ones(3))


def test_embedding_refuses_negative_and_boolean_ids(device):
    """-1 would silently pick the last row; a boolean array would be read as a mask."""
    weight = Variable(on(device, np.arange(8.0).reshape(4, 2)))
    with pytest.raises(ValueError, match=r"embedding: ids must lie in \[0, 4\), got values from -1 to 0"):
        F.embedding(np.array([-1, 0]), weight)
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype bool"):
        F.embedding(np.array([True, False, True, False]), weight)


def test_embedding_of_a_device_array_and_of_no_ids(device):
    weight = on(device, np.arange(8.0).reshape(4, 2))
    y = F.embedding(np.array([2, 2]), weight)
    assert y.device == device
    np.testing.assert_array_equal(host(y.data), [[4.0, 5.0], [4.0, 5.0]])
    empty = F.embedding(np.zeros((0, 3), np.int64), weight)
    assert empty.shape == (0, 3, 2)
