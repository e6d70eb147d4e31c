"""Activations (zero/functions/activation.py) and losses (zero/functions/loss.py):
numerical gradients in float64 on hypothesis shapes, on both devices;
stability at |x| = 1000; float32 kept; double backprop; PyTorch cross-checks."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import zero.functions as F
from zero.functions.activation import SigmoidGrad, SiLUGrad
from zero.functions.loss import MeanSquaredErrorGrad, SoftmaxCrossEntropyGrad
from zero import Variable, no_grad
from zero.backend import device_of
from zero.utils import gradient_check

from conftest import assert_double_backprop_on_strict_matches_cpu, host, on

# the device fixture is a plain string, so sharing it across examples is safe
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)  # () too: 0-d arrays


def weighted(f, weights):
    """x -> f(x) * weights: a loss whose gradient tests every output (sum(softmax) alone is constant)."""
    return lambda *xs: f(*xs) * Variable(weights)


def away_from_zero(rng, shape):
    """Normal values with |x| >= 0.1, so kinks at 0 stay out of the finite differences."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, 0.1 * np.sign(x) + 0.1 * (x == 0), x)


# =============================================================================
# Activations
# =============================================================================
ELEMENTWISE = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.2),
    "sigmoid": F.sigmoid,
    "softplus": F.softplus,
    "silu": F.silu,
}

ELEMENTWISE_REFERENCE = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.log(1 + np.exp(x)),
    "silu": lambda x: x / (1 + np.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@FAST
@given(shape=shapes, seed=seeds)
def test_elementwise_activation_gradient_and_value(device, name, shape, seed):
    rng = np.random.default_rng(seed)
    x = 3 * away_from_zero(rng, shape)
    weights = on(device, rng.standard_normal(shape))
    y = ELEMENTWISE[name](Variable(on(device, x)))
    assert device_of(y) == device
    np.testing.assert_allclose(host(y.data), ELEMENTWISE_REFERENCE[name](x), rtol=1e-12, atol=1e-14)
    gradient_check(weighted(ELEMENTWISE[name], weights), on(device, x))


AXIS_OPS = {
    "softmax": lambda x, axis: F.softmax(x, axis=axis),
    "log_softmax": lambda x, axis: F.log_softmax(x, axis=axis),
    "logsumexp": lambda x, axis: F.logsumexp(x, axis=axis),
    "logsumexp_keepdims": lambda x, axis: F.logsumexp(x, axis=axis, keepdims=True),
}


def axis_reference(name, x, axis):
    """Plain formulas in float64 (fine for the moderate values used here)."""
    e = np.exp(x)
    total = e.sum(axis=axis, keepdims=True)
    return {"softmax": e / total, "log_softmax": x - np.log(total),
            "logsumexp": np.log(total).squeeze(axis), "logsumexp_keepdims": np.log(total)}[name]


@pytest.mark.parametrize("name", sorted(AXIS_OPS))
@FAST
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_family_gradient_and_value(device, name, shape, seed, data):
    shape = shape or (3,)  # an axis needs at least one dimension
    axis = data.draw(st.one_of(st.integers(-len(shape), len(shape) - 1),   # one axis, several at once, or all
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True).map(tuple),
                               st.none()),
                     label="axis")
    rng = np.random.default_rng(seed)
    x = 2 * rng.standard_normal(shape)
    f = AXIS_OPS[name]
    with no_grad():
        y = f(Variable(on(device, x)), axis)
    np.testing.assert_allclose(host(y.data), axis_reference(name, x, axis), rtol=1e-12, atol=1e-14)
    weights = on(device, rng.standard_normal(y.shape))
    gradient_check(weighted(lambda v: f(v, axis), weights), on(device, x))


@pytest.mark.parametrize("name", sorted(AXIS_OPS))
def test_softmax_family_over_all_axes_at_once(device, name):
    """axis=None on every run (the hypothesis test draws it only now and then)."""
    rng = np.random.default_rng(1)
    x = 2 * rng.standard_normal((2, 3, 2))
    f = AXIS_OPS[name]
    y = f(Variable(on(device, x)), None)
    np.testing.assert_allclose(host(y.data), axis_reference(name, x, None), rtol=1e-12, atol=1e-14)
    gradient_check(weighted(lambda v: f(v, None), on(device, rng.standard_normal(y.shape))), on(device, x))


def test_logsumexp_over_several_axes_and_infinite_rows():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = F.logsumexp(Variable(x), axis=(0, 2))
    np.testing.assert_allclose(y.data, np.log(np.exp(x).sum(axis=(0, 2))), rtol=1e-12)
    gradient_check(lambda v: F.logsumexp(v, axis=(0, 2)) * Variable(np.arange(3.0)), x)
    rows = np.array([[-np.inf, -np.inf], [0.0, -np.inf], [np.inf, 0.0]])
    with np.errstate(divide="ignore"):  # log(0) for the all -inf row
        np.testing.assert_array_equal(F.logsumexp(Variable(rows)).data, [-np.inf, 0.0, np.inf])


def test_activations_are_exact_and_finite_at_plus_minus_1000(device):
    x = Variable(on(device, np.array([-1000.0, 1000.0], dtype=np.float32)))
    expected = {  # value, derivative
        F.sigmoid: ([0, 1], [0, 0]),
        F.softplus: ([0, 1000], [0, 1]),
        F.silu: ([0, 1000], [0, 1]),
        F.relu: ([0, 1000], [0, 1]),
    }
    for f, (value, slope) in expected.items():
        x.cleargrad()
        y = f(x)
        y.backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32, f.__name__
        np.testing.assert_array_equal(host(y.data), value, err_msg=f.__name__)
        np.testing.assert_array_equal(host(x.grad.data), slope, err_msg=f.__name__)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_along_an_empty_axis_is_empty(device, name):
    """The max that keeps exp from overflowing raised over a 0-length axis ('zero-size array to reduction
    operation maximum'); torch returns an empty result, and so does zero, with an empty gradient."""
    x = Variable(on(device, np.ones((0, 3), np.float32)))
    y = getattr(F, name)(x, axis=0)
    assert y.shape == (0, 3) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.shape == (0, 3)


def test_softmax_family_is_stable_for_huge_logits(device):
    x = Variable(on(device, np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]], dtype=np.float32)))
    np.testing.assert_allclose(host(F.softmax(x).data), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(host(F.log_softmax(x).data), [[0, -1000, -2000], [-np.log(3)] * 3], rtol=1e-6)
    np.testing.assert_allclose(host(F.logsumexp(x).data), [1000, -1000 + np.log(3)], rtol=1e-6)
    for f in (F.softmax, F.log_softmax, F.logsumexp):
        x.cleargrad()
        y = f(x)
        (y * Variable(on(device, np.ones(y.shape, np.float32)))).sum().backward()
        assert np.isfinite(host(x.grad.data)).all(), f.__name__
    x.cleargrad()
    F.logsumexp(x).sum().backward()  # gradient = softmax = e^(x - y); y = -1000 + log 3 is rounded in float32
    np.testing.assert_allclose(host(x.grad.data), [[1, 0, 0], [1 / 3] * 3], rtol=1e-4)


def check_double_backprop(loss, x0, seed=0):
    """Differentiate <d loss/dx, v> (built with create_graph=True) once more and
    compare with central differences of the first gradient: tests that the
    backward passes are made of differentiable zero ops."""
    directions = Variable(np.random.default_rng(seed).standard_normal(x0.shape))

    def gradient_along(x):
        loss(x).backward(create_graph=True)
        return (x.grad * directions).sum()

    x = Variable(x0.copy())
    gradient_along(x).backward()  # adds d<g, v>/dx to x.grad, which held g
    x_grad = Variable(x0.copy())
    loss(x_grad).backward()
    analytic = x.grad.data - x_grad.grad.data
    eps = 1e-6
    numeric = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        plus, minus = x0.copy(), x0.copy()
        plus[i] += eps
        minus[i] -= eps
        numeric[i] = (gradient_along(Variable(plus)).item() - gradient_along(Variable(minus)).item()) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("f", [F.softplus, F.silu, F.sigmoid, F.leaky_relu, F.softmax, F.log_softmax, F.logsumexp],
                         ids=lambda f: f.__name__)
def test_second_derivatives_by_double_backprop(f):
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((3, 4))
    weights = Variable(rng.standard_normal(f(Variable(x0)).shape))
    # tanh on top: the gradient arriving at f depends on x too, so both paths of f's backward are tested
    check_double_backprop(lambda x: (F.tanh(f(x)) * weights).sum(), x0)


def test_float32_is_kept_and_leaky_relu_slope(device):
    x = Variable(on(device, np.array([[-2.0, 3.0]], dtype=np.float32)))
    for f in (F.relu, F.leaky_relu, F.sigmoid, F.softplus, F.silu, F.softmax, F.log_softmax, F.logsumexp):
        x.cleargrad()
        y = f(x)
        y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32, f.__name__
    x.cleargrad()
    F.leaky_relu(x, negative_slope=0.1).sum().backward()
    np.testing.assert_allclose(host(x.grad.data), [[0.1, 1.0]])
    np.testing.assert_allclose(host(F.leaky_relu(x).data), [[-0.02, 3.0]], rtol=1e-6)
    assert F.leaky_relu(x, negative_slope=np.float64(0.1)).dtype == np.float32   # a NumPy float64 slope too


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0, 3.0, -0.5])
def test_leaky_relu_any_slope_values_and_gradients(slope, device):
    x0 = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    x = Variable(on(device, x0))
    y = F.leaky_relu(x, negative_slope=slope)
    y.sum().backward()
    np.testing.assert_allclose(host(y.data), np.where(x0 > 0, x0, slope * x0), rtol=1e-15)
    np.testing.assert_allclose(host(x.grad.data), np.where(x0 > 0, 1.0, slope), rtol=1e-15)
    x1 = np.random.default_rng(3).standard_normal((3, 4))          # no zeros: the kink has no derivative
    assert gradient_check(lambda v: (F.leaky_relu(v, slope) ** 2).sum(), x1) < 1e-6


def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = 4 * rng.standard_normal((5, 7))
    weights = rng.standard_normal((5, 7))
    pairs = [(F.relu, torch.relu), (lambda v: F.leaky_relu(v, 0.05), lambda t: torch.nn.functional.leaky_relu(t, 0.05)),
             (F.sigmoid, torch.sigmoid), (F.softplus, torch.nn.functional.softplus),
             (F.silu, torch.nn.functional.silu), (F.softmax, lambda t: torch.softmax(t, -1)),
             (lambda v: F.log_softmax(v, axis=0), lambda t: torch.log_softmax(t, 0)),
             (lambda v: F.logsumexp(v, axis=1, keepdims=True), lambda t: torch.logsumexp(t, 1, keepdim=True))]
    for ours, theirs in pairs:
        v = Variable(x.copy())
        t = torch.tensor(x, requires_grad=True)
        y, yt = ours(v), theirs(t)
        w = weights[:, :y.shape[1]]
        (y * Variable(w)).sum().backward()
        (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-12)


# =============================================================================
# Losses
# =============================================================================
def cross_entropy_loop(logits, labels):
    """-log softmax(logits_n)[labels_n], summed over n, one row at a time."""
    total = 0.0
    for row, label in zip(logits, labels):
        m = max(row)
        total += -(row[label] - m - np.log(sum(np.exp(v - m) for v in row)))
    return total


@FAST
@given(n=dims, num_classes=st.integers(2, 5), seed=seeds, reduction=st.sampled_from(["mean", "sum"]))
def test_softmax_cross_entropy_gradient_and_value(device, n, num_classes, seed, reduction):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((n, num_classes))
    labels = rng.integers(0, num_classes, size=n)
    loss = F.softmax_cross_entropy(Variable(on(device, logits)), labels, reduction=reduction)
    expected = cross_entropy_loop(logits, labels) / (n if reduction == "mean" else 1)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    labels_on_device = on(device, labels)
    # times 3: the op's backward gets gy = 3, so one that ignored gy fails here too, not only in double backprop
    gradient_check(lambda x: F.softmax_cross_entropy(x, labels_on_device, reduction=reduction) * 3.0,
                   on(device, logits))


def test_softmax_cross_entropy_gradient_formula_and_label_forms(device):
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=np.float32)
    labels = np.array([2, 0])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected_grad = (p - np.eye(3)[labels]) / 2
    for given_labels in (labels, labels.tolist(), Variable(labels), Variable(on(device, labels))):
        x = Variable(on(device, logits))
        loss = F.softmax_cross_entropy(x, given_labels)
        loss.backward()
        assert loss.dtype == np.float32 and x.grad.dtype == np.float32
        np.testing.assert_allclose(host(x.grad.data), expected_grad, rtol=1e-5, atol=1e-7)
    huge = Variable(on(device, np.array([[1000.0, -1000.0]], dtype=np.float32)))
    np.testing.assert_array_equal(host(F.softmax_cross_entropy(huge, [1]).data), 2000.0)


def test_softmax_cross_entropy_bad_input_errors():
    logits = Variable(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy.*integers.*float64"):
        F.softmax_cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\(N, C\).*\(2,\)"):
        F.softmax_cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 4\).*from 1 to 4"):
        F.softmax_cross_entropy(logits, np.array([1, 2, 4]))
    with pytest.raises(ValueError, match="from -1"):
        F.softmax_cross_entropy(logits, np.array([-1, 2, 3]))
    with pytest.raises(ValueError, match="softmax_cross_entropy: reduction"):
        F.softmax_cross_entropy(logits, np.array([0, 1, 2]), reduction="avg")


@FAST
@given(shape=shapes, seed=seeds, reduction=st.sampled_from(["mean", "sum"]))
def test_binary_cross_entropy_gradient_and_value(device, shape, seed, reduction):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, shape)
    targets = rng.uniform(0, 1, shape)
    loss = F.binary_cross_entropy(Variable(on(device, probs)), Variable(on(device, targets)), reduction=reduction)
    terms = -(targets * np.log(probs) + (1 - targets) * np.log(1 - probs))
    np.testing.assert_allclose(loss.item(), terms.mean() if reduction == "mean" else terms.sum(), rtol=1e-12)
    # times 3: the gradient arriving at the loss is not 1, so its backward must scale by it
    f = lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction) * 3.0  # noqa: E731
    gradient_check(f, on(device, probs), on(device, targets))


@FAST
@given(shape=shapes, seed=seeds, reduction=st.sampled_from(["mean", "sum"]))
def test_binary_cross_entropy_with_logits_gradient_and_value(device, shape, seed, reduction):
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal(shape)
    targets = rng.uniform(0, 1, shape)
    loss = F.binary_cross_entropy_with_logits(Variable(on(device, logits)), Variable(on(device, targets)),
                                              reduction=reduction)
    p = 1 / (1 + np.exp(-logits))
    terms = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    np.testing.assert_allclose(loss.item(), terms.mean() if reduction == "mean" else terms.sum(), rtol=1e-10)
    f = lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction) * 3.0  # noqa: E731
    gradient_check(f, on(device, logits), on(device, targets))   # times 3: gy is not 1


def test_binary_cross_entropies_are_finite_at_the_extremes(device):
    targets = Variable(on(device, np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32)))
    probs = Variable(on(device, np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)))
    loss = F.binary_cross_entropy(probs, targets, reduction="sum")
    loss.backward()
    assert loss.dtype == np.float32 and probs.grad.dtype == np.float32
    assert 30 < loss.item() < 34  # two terms of -log(eps) = 16.1, two of about 0
    assert np.isfinite(host(probs.grad.data)).all() and np.isfinite(host(targets.grad.data)).all()
    assert host(probs.grad.data)[0] < 0 < host(probs.grad.data)[1]  # pushes p towards the target

    logits = Variable(on(device, np.array([-1000.0, 1000.0, 1000.0, -1000.0], dtype=np.float32)))
    targets.cleargrad()
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    loss.backward()
    np.testing.assert_array_equal(host(loss.data), 2000.0)  # 1000 + 1000 + 0 + 0, exactly
    np.testing.assert_array_equal(host(logits.grad.data), [-1, 1, 0, 0])  # sigma(x) - t
    np.testing.assert_array_equal(host(targets.grad.data), [1000, -1000, -1000, 1000])  # -x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_with_logits_keeps_the_small_loss_of_a_confident_right_answer(device, dtype):
    # -log sigma(x) = log(1 + e^-x) for t = 1 (and the mirror for x < 0, t = 0): about 2e-9 at x = 20,
    # which 20 + 2e-9 - 20 would round to 0 (in float64 too, from x = 37 on)
    for x, t in [(10.0, 1), (20.0, 1), (30.0, 1), (40.0, 1), (-20.0, 0), (-40.0, 0)]:
        loss = F.binary_cross_entropy_with_logits(Variable(on(device, np.array([x], dtype))),
                                                  on(device, np.array([t], dtype)))
        exact = np.log1p(np.exp(-abs(x)))
        np.testing.assert_allclose(host(loss.data), exact, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                   err_msg=f"logit {x}, target {t}")


def test_loss_double_backprop():
    rng = np.random.default_rng(3)
    targets, labels = Variable(rng.uniform(0, 1, (2, 3))), rng.integers(0, 3, size=2)
    check_double_backprop(lambda x: F.binary_cross_entropy_with_logits(x, targets), rng.standard_normal((2, 3)))
    check_double_backprop(lambda x: F.binary_cross_entropy(x, targets), rng.uniform(0.1, 0.9, (2, 3)))
    check_double_backprop(lambda x: F.softmax_cross_entropy(x, labels), rng.standard_normal((2, 3)))
    # the fused softmax cross-entropy gradient with an incoming gradient gy that depends on x too
    for reduction in ("mean", "sum"):
        check_double_backprop(lambda x: F.softmax_cross_entropy(x, labels, reduction) * F.tanh(x).sum(),
                              rng.standard_normal((2, 3)))
    # the fused mean-squared-error gradient, with x in either slot
    check_double_backprop(lambda x: F.mean_squared_error(F.tanh(x), targets), rng.standard_normal((2, 3)))
    check_double_backprop(lambda x: F.mean_squared_error(targets, x * x, reduction="sum"), rng.standard_normal((2, 3)))



_rng = np.random.default_rng(11)
_LABELS, _TARGETS = np.array([2, 0, 1]), _rng.uniform(0.1, 0.9, (3, 4))
STRICT_DOUBLE_BACKPROP_CASES = {   # name: f(device, *variables), arrays, penalized, methods that must run
    "sigmoid": (lambda d, x: F.sigmoid(x), [_rng.standard_normal((3, 4))], None, [SigmoidGrad.backward]),
    "silu": (lambda d, x: F.silu(x), [_rng.standard_normal((3, 4))], None, [SiLUGrad.backward]),
    "softmax": (lambda d, x: F.softmax(x, axis=0), [_rng.standard_normal((3, 4))], None, []),
    "log_softmax": (lambda d, x: F.log_softmax(x), [_rng.standard_normal((3, 4))], None, []),
    "logsumexp": (lambda d, x: F.logsumexp(x, axis=(0, 1)), [_rng.standard_normal((3, 4))], None, []),
    "mean_squared_error": (lambda d, a, b: F.mean_squared_error(F.sin(a), b), [_rng.standard_normal((3, 4)),
                           _rng.standard_normal((3, 4))], None, [MeanSquaredErrorGrad.backward]),
    "mean_squared_error_first_gradient_only": (lambda d, a, b: F.mean_squared_error(a, b, reduction="sum"),
                                               [_rng.standard_normal((3, 4)), _rng.standard_normal((3, 4))], [0],
                                               [MeanSquaredErrorGrad.backward]),
    "mean_squared_error_second_gradient_only": (lambda d, a, b: F.mean_squared_error(a, b),
                                                [_rng.standard_normal((3, 4)), _rng.standard_normal((3, 4))], [1],
                                                [MeanSquaredErrorGrad.backward]),
    "mean_squared_error_to_a_target": (lambda d, a: F.mean_squared_error(on(d, _TARGETS), a),
                                       [_rng.standard_normal((3, 4))], None, [MeanSquaredErrorGrad.backward]),
    "softmax_cross_entropy": (lambda d, x: F.softmax_cross_entropy(x, on(d, _LABELS)),
                              [_rng.standard_normal((3, 4))], None, [SoftmaxCrossEntropyGrad.backward]),
    "softmax_cross_entropy_sum": (lambda d, x: F.softmax_cross_entropy(x, on(d, _LABELS), "sum") * F.tanh(x).sum(),
                                  [_rng.standard_normal((3, 4))], None, [SoftmaxCrossEntropyGrad.backward]),
    "binary_cross_entropy": (lambda d, p, t: F.binary_cross_entropy(p, t), [_rng.uniform(0.1, 0.9, (3, 4)),
                             _TARGETS], None, []),
    "binary_cross_entropy_with_logits": (lambda d, x, t: F.binary_cross_entropy_with_logits(x, t),
                                         [_rng.standard_normal((3, 4)), _TARGETS], None, []),
}


@pytest.mark.parametrize("case", sorted(STRICT_DOUBLE_BACKPROP_CASES))
def test_double_backprop_on_strict_device_matches_cpu(case):
    """Double backprop never ran on the strict device: a host copy in a backward built with
    create_graph (SoftmaxCrossEntropyGrad's, say) passed every test."""
    f, arrays, penalized, reaches = STRICT_DOUBLE_BACKPROP_CASES[case]
    assert_double_backprop_on_strict_matches_cpu(f, arrays, penalized, reaches)

def test_loss_bad_input_errors():
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: shapes differ: \(2, 3\) vs \(3, 2\)"):
        F.binary_cross_entropy(np.full((2, 3), 0.5), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropyWithLogits: shapes differ"):
        F.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="binary_cross_entropy: reduction"):
        F.binary_cross_entropy(np.full(3, 0.5), np.zeros(3), reduction="none")
    with pytest.raises(ValueError, match="MeanSquaredError: shapes differ"):
        F.mean_squared_error(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("probs", [[0.5, 1.5], [-0.25, 0.5], [-3.0, 2.0]], ids=["above 1", "below 0", "logits"])
def test_binary_cross_entropy_refuses_values_that_are_not_probabilities(device, probs):
    """Logits passed by mistake were clipped to [eps, 1 - eps] into a finite, wrong loss."""
    probs = Variable(on(device, np.array(probs, np.float32)))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: probs must be probabilities in \[0, 1\], got values "
                                         r"from .* \(for logits use binary_cross_entropy_with_logits\)"):
        F.binary_cross_entropy(probs, on(device, np.array([1.0, 0.0], np.float32)))
    assert np.isfinite(F.binary_cross_entropy(Variable(on(device, np.array([0.0, 1.0], np.float32))),
                                              on(device, np.array([1.0, 0.0], np.float32))).item())


def test_binary_cross_entropy_checks_its_probabilities_with_one_read_by_the_host():
    """Its range check reads the lowest and highest probability: one wait for a GPU, not one for each."""
    import zero.testing
    probs = Variable(on("strict", np.array([0.2, 0.9], np.float32)))
    before = zero.testing.host_reads
    loss = F.binary_cross_entropy(probs, on("strict", np.array([1.0, 0.0], np.float32)))
    assert zero.testing.host_reads - before == 1
    loss.backward()
    assert zero.testing.host_reads - before == 1


def test_mean_squared_error_gradient_and_sum(device):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction, expected in [("mean", ((a - b) ** 2).mean()), ("sum", ((a - b) ** 2).sum())]:
        loss = F.mean_squared_error(Variable(on(device, a)), Variable(on(device, b)), reduction=reduction)
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
        gradient_check(lambda x, y: F.mean_squared_error(x, y, reduction=reduction), on(device, a), on(device, b))


def test_mean_squared_error_with_a_constant_target_in_either_slot(device):
    # a plain array is a constant: the fused gradient then computes only the
    # other slot's gradient (each slot has its own branch)
    rng = np.random.default_rng(6)
    a, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction, n in [("mean", a.size), ("sum", 1)]:
        for target_first in (False, True):
            def loss(x):
                pair = (on(device, target), x) if target_first else (x, on(device, target))
                return F.mean_squared_error(*pair, reduction=reduction)
            x = Variable(on(device, a))
            loss(x).backward()
            np.testing.assert_allclose(host(x.grad.data), 2 * (a - target) / n, rtol=1e-12)
            gradient_check(loss, on(device, a))
    targets = rng.standard_normal((2, 3))
    check_double_backprop(lambda x: F.mean_squared_error(targets, F.tanh(x)), rng.standard_normal((2, 3)))
    check_double_backprop(lambda x: F.mean_squared_error(x * x, targets, reduction="sum"), rng.standard_normal((2, 3)))


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, size=6)
    probs, targets = rng.uniform(0.01, 0.99, (6, 4)), rng.uniform(0, 1, (6, 4))
    cases = [
        (lambda x, r: F.softmax_cross_entropy(x, labels, reduction=r),
         lambda t, r: tf.cross_entropy(t, torch.tensor(labels), reduction=r), logits),
        (lambda x, r: F.binary_cross_entropy(x, targets, reduction=r),
         lambda t, r: tf.binary_cross_entropy(t, torch.tensor(targets), reduction=r), probs),
        (lambda x, r: F.binary_cross_entropy_with_logits(x, targets, reduction=r),
         lambda t, r: tf.binary_cross_entropy_with_logits(t, torch.tensor(targets), reduction=r), 4 * logits),
        (lambda x, r: F.mean_squared_error(x, targets, reduction=r),
         lambda t, r: tf.mse_loss(t, torch.tensor(targets), reduction=r), logits),
    ]
    for ours, theirs, x in cases:
        for reduction in ("mean", "sum"):
            v, t = Variable(x.copy()), torch.tensor(x, requires_grad=True)
            loss, loss_t = ours(v, reduction), theirs(t, reduction)
            loss.backward()
            loss_t.backward()
            np.testing.assert_allclose(loss.item(), loss_t.item(), rtol=1e-10)
            np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_accuracy(device):
    logits = on(device, np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32))
    labels = np.array([1, 0, 0, 1])
    for given_logits in (logits, Variable(logits)):
        result = F.accuracy(given_logits, labels)
        assert type(result) is float and result == 0.5
    assert F.accuracy(logits, on(device, np.array([1, 0, 1, 0]))) == 1.0
    with pytest.raises(ValueError, match=r"accuracy: .*labels \(3,\)"):
        F.accuracy(logits, np.array([1, 0, 1]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_its_relative_precision_deep_in_the_lower_tail(device, dtype):
    """0.5 tanh(x/2) + 0.5 rounded sigmoid(-20) to 0 in float32 (and sigmoid(-40) in float64), so that
    log(sigmoid(-20)) was -inf; 1 / (1 + e^-x) written with e = exp(-|x|) keeps every digit."""
    x = np.array([-80.0, -40.0, -20.0, -15.0, -5.0, 0.0, 3.0, 30.0], dtype=dtype)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    y = F.sigmoid(Variable(on(device, x)))
    assert y.dtype == dtype
    np.testing.assert_allclose(host(y.data), exact, rtol=4 * np.finfo(dtype).eps)
    tail = x[x <= 0]   # log(sigmoid(x)) = -log(1 + e^-x): finite, e.g. -20.0 at x = -20
    np.testing.assert_allclose(host(F.log(F.sigmoid(Variable(on(device, tail)))).data),
                               -np.log1p(np.exp(-tail.astype(np.float64))), rtol=16 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_keeps_its_relative_precision_deep_in_the_lower_tail(device, dtype):
    """softplus(x) = e^x (1 - e^x / 2 + ...) for x << 0: log(1 + e^x) rounds 1 + e^x to 1 and gives 0."""
    x = np.array([-80.0, -40.0, -20.0, -5.0, 0.0, 5.0, 40.0], dtype=dtype)
    exact = np.log1p(np.exp(x.astype(np.float64)))
    np.testing.assert_allclose(host(F.softplus(Variable(on(device, x))).data), exact, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("name", ["sigmoid", "silu"])
def test_sigmoid_overflowing_far_below_zero_gives_its_limit_without_a_warning(name):
    """e^-x overflows to inf below x = -88 in float32; 1 / (1 + inf) = 0 is the right limit, silently."""
    x = Variable(np.array([-1000.0, -100.0], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # NumPy's RuntimeWarning: overflow encountered in exp
        y = getattr(F, name)(x)
    np.testing.assert_array_equal(y.data, [0.0, 0.0])


# --- integer and float64 inputs: no truncated constants, no float64 leaking into float32 ---
@pytest.mark.parametrize("name, expected", [
    ("sigmoid", 1 / (1 + np.exp(-np.array([1.0, 2.0, -3.0])))),
    ("silu", np.array([1.0, 2.0, -3.0]) / (1 + np.exp(-np.array([1.0, 2.0, -3.0])))),
])
def test_activations_of_integer_input_are_not_truncated(name, expected):
    """An integer dtype once turned the 0.5 of sigmoid = 0.5 tanh(x/2) + 0.5 into 0."""
    y = getattr(F, name)(np.array([1, 2, -3]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


_INTEGERS = np.array([[1, 2, 3], [0, 4, 1]])
_AS_FLOATS = _INTEGERS.astype(np.float64)


@pytest.mark.parametrize("name, reference", [
    ("exp", np.exp), ("log", np.log), ("sin", np.sin), ("cos", np.cos), ("tanh", np.tanh),
    ("sqrt", np.sqrt), ("softplus", lambda x: np.log1p(np.exp(x))),
    ("softmax", lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)),
    ("log_softmax", lambda x: x - np.log(np.exp(x).sum(axis=-1, keepdims=True))),
    ("logsumexp", lambda x: np.log(np.exp(x).sum(axis=-1))),
    ("mean", np.mean),
])
def test_float_valued_ops_give_float32_for_integer_input(name, reference):
    """As torch does: NumPy computed these in float64 (one more float64 array leaking into a
    float32 model), and log_softmax crashed (x - max(x) kept the integer dtype, then a float
    was subtracted from it in place)."""
    with np.errstate(divide="ignore"):  # log 0 = -inf is part of the check
        y = getattr(F, name)(Variable(_INTEGERS))
        expected = reference(_AS_FLOATS)
    assert y.dtype == np.float32, name
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


def test_softmax_cross_entropy_gives_float32_for_integer_logits():
    logits = np.array([[2, 0, -1], [0, 3, 1]])
    loss = F.softmax_cross_entropy(Variable(logits), np.array([0, 2]))
    expected = F.softmax_cross_entropy(Variable(logits.astype(np.float64)), np.array([0, 2]))
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.data, expected.data, rtol=1e-6)


def test_leaky_relu_of_integer_input_keeps_its_slope():
    np.testing.assert_allclose(F.leaky_relu(np.array([-300, 5]), 0.1).data, [-30, 5])


@pytest.mark.parametrize("target", [np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])], ids=["int", "float64"])
def test_mean_squared_error_takes_a_constant_target_in_either_order(target):
    """(target, prediction), as scikit-learn orders them: the gradient was 0 for an integer
    target (2/n truncated), and float64 for a float64 one."""
    for order in (lambda p: (target, p), lambda p: (p, target)):
        prediction = Variable(np.array([1.5, 2.5, 2.0], np.float32))
        loss = F.mean_squared_error(*order(prediction))
        loss.backward()
        assert loss.dtype == prediction.grad.dtype == np.float32
        np.testing.assert_allclose(prediction.grad.data, 2 / 3 * (prediction.data - target), rtol=1e-6)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_binary_cross_entropy_keeps_float32_with_integer_or_float64_targets(loss):
    for targets in (np.array([[0, 1]] * 4), np.array([[0.0, 1.0]] * 4)):
        W = Variable(np.full((3, 2), 0.1, np.float32))
        outputs = F.linear(np.ones((4, 3), np.float32), W)
        value = getattr(F, loss)(F.sigmoid(outputs) if loss == "binary_cross_entropy" else outputs, targets)
        value.backward()
        assert value.dtype == W.grad.dtype == np.float32


# --- found by a mutation audit ---
def test_relu_has_slope_zero_at_zero(device):
    """As PyTorch: relu'(0) = 0 (the mask is x > 0, not x >= 0)."""
    x = Variable(on(device, np.array([-1.0, 0.0, 2.0])))
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(host(x.grad.data), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("loss", ["mean_squared_error", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "softmax_cross_entropy"])
def test_every_loss_refuses_an_unknown_reduction(loss):
    args = (np.zeros((2, 3)), np.array([0, 1])) if loss == "softmax_cross_entropy" else (np.full(3, 0.5), np.zeros(3))
    with pytest.raises(ValueError, match=rf"{loss}: reduction must be 'mean' or 'sum', got 'none'"):
        getattr(F, loss)(*args, reduction="none")


def test_mean_squared_error_of_a_scalar_against_a_python_number():
    for x in (Variable(np.array(3.0, np.float32)), Variable(np.array(3.0))):
        loss = F.mean_squared_error(x, 1.0)
        loss.backward()
        assert loss.dtype == x.grad.dtype == x.dtype
        assert loss.item() == 4.0 and x.grad.item() == 4.0  # (3 - 1)^2, 2 (3 - 1)


def test_mean_squared_error_double_backprop_when_its_own_gradient_depends_on_x():
    """tanh on top of the loss: the gradient arriving at the fused MSE gradient depends on x, so its
    derivative with respect to that incoming gradient is tested too."""
    rng = np.random.default_rng(7)
    targets = rng.standard_normal((2, 3))
    check_double_backprop(lambda x: F.tanh(F.mean_squared_error(x, targets)), rng.standard_normal((2, 3)))
    check_double_backprop(lambda x: F.tanh(F.mean_squared_error(targets, x, reduction="sum") / 10),
                          rng.standard_normal((2, 3)))


def test_softmax_cross_entropy_takes_unsigned_labels(device):
    """MNIST labels are uint8."""
    logits = np.random.default_rng(8).standard_normal((4, 3))
    labels = np.array([2, 0, 1, 2])
    expected = cross_entropy_loop(logits, labels) / 4
    loss = F.softmax_cross_entropy(Variable(on(device, logits)), on(device, labels.astype(np.uint8)))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_softmax_cross_entropy_of_an_empty_batch_sums_to_zero():
    logits = Variable(np.zeros((0, 3)))
    loss = F.softmax_cross_entropy(logits, np.zeros(0, np.int64), reduction="sum")
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 3)


@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_binary_cross_entropy_of_an_empty_batch_sums_to_zero(loss):
    """The range check of binary_cross_entropy took the minimum of no values (a NumPy error)."""
    probs = Variable(np.zeros((0, 4), np.float32))
    total = loss(probs, np.zeros((0, 4), np.float32), reduction="sum")
    total.backward()
    assert total.item() == 0.0 and probs.grad.shape == (0, 4)


def test_accuracy_refuses_logits_that_are_not_two_dimensional():
    with pytest.raises(ValueError, match=r"accuracy: expected logits \(N, C\).*logits \(4, 2, 3\)"):
        F.accuracy(np.zeros((4, 2, 3)), np.zeros(4, np.int64))


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_binary_cross_entropy_input_gradient_stays_float32(loss):
    """Integer or float64 targets take the input's dtype: the gradient reaching the input itself
    (not only one passed through a float32 op below it) is float32."""
    for targets in (np.array([0, 1, 1]), np.array([0.0, 1.0, 1.0])):
        x = Variable(np.array([0.2, 0.6, 0.9], np.float32))
        value = getattr(F, loss)(x, targets)
        value.backward()
        assert value.dtype == x.grad.dtype == np.float32, targets.dtype


# --- found by a second mutation audit ---
def test_relu_of_integer_input_stays_integer():
    """As torch.relu: max(x, 0) of integers is an integer, not a float64 array."""
    y = F.relu(np.array([-3, 0, 4]))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.data, [0, 0, 4])


def test_mean_squared_error_does_not_truncate_a_float_target_to_an_integer_prediction():
    for order in (lambda p, t: (p, t), lambda p, t: (t, p)):
        prediction, target = Variable(np.array([1, 2])), np.array([0.5, 0.5])
        assert F.mean_squared_error(*order(prediction, target)).item() == (0.5 ** 2 + 1.5 ** 2) / 2


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mean_squared_error_double_backprop_through_both_gradients(reduction):
    """A penalty on the gradients of both inputs: the fused gradient's backward combines the two
    incoming gradients as ggx0 - ggx1 (since gx1 = -gx0)."""
    rng = np.random.default_rng(9)

    def penalty(a, b):
        a.cleargrad(), b.cleargrad()
        F.mean_squared_error(F.sin(a), b, reduction=reduction).backward(create_graph=True)
        ga, gb = a.grad, b.grad
        a.cleargrad(), b.cleargrad()
        return F.sum(ga * ga) + F.sum(gb * gb * gb)

    gradient_check(penalty, rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rtol=1e-5, atol=1e-7)


def test_binary_cross_entropy_is_accurate_for_small_probabilities_in_float32():
    """-log(1 - p) ~ p for small p: log1p(-p) keeps it, log(1 - p) rounds 1 - p first (1% off at p = 1e-6)."""
    for p in (1e-6, 1e-4):
        loss = F.binary_cross_entropy(np.array([p], np.float32), np.array([0.0], np.float32))
        np.testing.assert_allclose(loss.item(), -np.log1p(-np.float64(np.float32(p))), rtol=1e-5)


def test_softmax_cross_entropy_double_backprop_keeps_float32():
    x = Variable(np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 0.5]], np.float32))
    (F.softmax_cross_entropy(x, [1, 0]) * F.tanh(x).sum()).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    F.sum(g * g).backward()
    assert g.dtype == x.grad.dtype == np.float32


def test_binary_cross_entropy_slope_is_exact_where_p_is_0_or_1_and_equals_the_target():
    """-log(1 - p) has slope 1 at p = 0 and -log p slope -1 at p = 1: the gradient at the clipped p
    (not 0, as (probs - t) in the numerator would give)."""
    probs = Variable(np.array([1.0, 0.0], np.float32))
    F.binary_cross_entropy(probs, np.array([1.0, 0.0], np.float32), reduction="sum").backward()
    np.testing.assert_allclose(probs.grad.data, [-1.0, 1.0], rtol=1e-5)


@pytest.mark.parametrize("loss, expected", [
    ("mean_squared_error", [-0.25, 0.25]),                               # -2 (x - t) / n
    ("binary_cross_entropy", [np.log(3) / 2, -np.log(3) / 2]),           # (log(1 - p) - log p) / n
    ("binary_cross_entropy_with_logits", [-0.125, -0.375]),              # -x / n
])
def test_a_target_variable_of_another_dtype_still_gets_its_gradient(loss, expected):
    x, targets = Variable(np.array([0.25, 0.75], np.float32)), Variable(np.array([0.0, 1.0]))
    getattr(F, loss)(x, targets).backward()
    np.testing.assert_allclose(targets.grad.data, expected, rtol=1e-6)


def test_softmax_cross_entropy_of_an_empty_batch_backprops_an_empty_gradient():
    """With reduction 'sum' (the mean of an empty batch is refused: see the test of all four losses)."""
    x = Variable(np.zeros((0, 3), np.float32))
    loss = F.softmax_cross_entropy(x, np.zeros(0, np.int64), "sum")
    loss.backward()
    assert x.grad.shape == (0, 3) and x.grad.dtype == np.float32


@pytest.mark.parametrize("loss", [F.mean_squared_error, F.binary_cross_entropy, F.binary_cross_entropy_with_logits],
                         ids=["mse", "bce", "bce_with_logits"])
def test_a_host_target_goes_to_the_predictions_device(loss):
    """As softmax_cross_entropy's labels: a NumPy target beside a prediction on a device is moved there
    (it raised 'inputs are on different devices'); the loss and gradient are the CPU's."""
    rng = np.random.default_rng(9)
    probs, target = rng.uniform(0.1, 0.9, (3, 4)).astype(np.float32), rng.uniform(0, 1, (3, 4)).astype(np.float32)
    on_cpu, on_device = Variable(probs), Variable(on("strict", probs))
    expected, value = loss(on_cpu, target), loss(on_device, target)
    assert value.device == "strict"
    value.backward()
    expected.backward()
    np.testing.assert_allclose(host(value.data), expected.data, rtol=1e-6)
    np.testing.assert_allclose(host(on_device.grad.data), on_cpu.grad.data, rtol=1e-6)


@pytest.mark.parametrize("loss", ["mean_squared_error", "softmax_cross_entropy", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
def test_a_mean_loss_over_an_empty_batch_is_refused_and_a_summed_one_is_zero(loss):
    """The mean over no examples was 0 / 0: a NaN loss with only NumPy's RuntimeWarning."""
    empty = Variable(np.zeros((0, 3), np.float32))
    target = np.zeros(0, np.int64) if loss == "softmax_cross_entropy" else np.zeros((0, 3), np.float32)
    prediction = F.sigmoid(empty) if loss == "binary_cross_entropy" else empty
    with pytest.raises(ValueError, match=r"reduction 'mean' over no elements \(an empty batch\).*inputs: \(0, 3\)"):
        getattr(F, loss)(prediction, target)
    assert float(getattr(F, loss)(prediction, target, reduction="sum").data) == 0.0


@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_binary_cross_entropy_refuses_targets_outside_zero_to_one(loss):
    """0-255 pixels as targets gave a loss of -253.8: a number without meaning, unbounded below."""
    probs = Variable(np.full((2, 3), 0.5, np.float32))
    pixels = np.array([[0.0, 128.0, 255.0], [0.0, 0.0, 1.0]], np.float32)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\], got values from 0 to 255 .*divide by 255"):
        loss(probs, pixels)
    loss(probs, pixels / 255).backward()   # the same, scaled: fine
