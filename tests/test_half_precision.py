"""float16 through the ops that average over many elements: the losses, F.mean, batch_norm.

float16 is inf past 65504: a sum of more float16 numbers overflows, and so does the element
count itself (np.float16(100352) is inf), so a mean over an MNIST batch of 128 came out 0 or NaN
and its gradients zero. Each test compares float16 with the same float16 numbers computed in
float32, within float16's precision (a relative 2^-11, and 2^-24 absolute below its normal
range, where gradients of a mean over 100000 elements lie)."""
import numpy as np
import pytest

import zero.functions as F
from zero import Variable, using_config

from conftest import host, on

MNIST_BATCH = (128, 1, 28, 28)   # 100352 elements, more than float16's largest number 65504
RTOL, ATOL = 2e-3, 1.2e-7        # float16's rounding, relative and (subnormal) absolute, with room


def half_and_single(device, array):
    """The float16 array, and the same numbers in float32, each on device."""
    half = np.asarray(array).astype(np.float16)
    return on(device, half), on(device, half.astype(np.float32))


def value_and_grads(f, arrays):
    """f(*Variables of arrays) and the gradients of its arrays, on the host."""
    xs = [Variable(a) for a in arrays]
    y = f(*xs)
    y.backward()
    return y, [x.grad for x in xs]


def assert_half_matches_single(f, arrays16, arrays32):
    y16, grads16 = value_and_grads(f, arrays16)
    y32, grads32 = value_and_grads(f, arrays32)
    assert y16.dtype == np.float16 and all(g.dtype == np.float16 for g in grads16)
    np.testing.assert_allclose(host(y16.data).astype(np.float32), host(y32.data), rtol=RTOL, atol=ATOL)
    for g16, g32 in zip(grads16, grads32):
        g16, g32 = host(g16.data).astype(np.float32), host(g32.data)
        assert np.isfinite(g16).all() and (g16 != 0).any()
        np.testing.assert_allclose(g16, g32, rtol=RTOL, atol=ATOL)


LOSSES = {
    "mean_squared_error": (F.mean_squared_error, lambda r: r.random(MNIST_BATCH) * 0.1,
                           lambda r: np.zeros(MNIST_BATCH)),
    "binary_cross_entropy": (F.binary_cross_entropy, lambda r: r.uniform(0.01, 0.99, MNIST_BATCH),
                             lambda r: r.random(MNIST_BATCH) > 0.5),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits,
                                         lambda r: r.standard_normal(MNIST_BATCH) * 3,
                                         lambda r: r.random(MNIST_BATCH) > 0.5),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float16_loss_over_more_than_65504_elements_matches_float32(device, name):
    """mean_squared_error gave 0.0 (true 0.0033), both cross entropies NaN and zero gradients."""
    loss, make_x, make_t = LOSSES[name]
    r = np.random.default_rng(0)
    x16, x32 = half_and_single(device, make_x(r))
    t16, t32 = half_and_single(device, make_t(r))
    assert_half_matches_single(lambda x, t: loss(x, t), [x16, t16], [x32, t32])


def test_float16_softmax_cross_entropy_over_more_than_65504_samples_matches_float32(device):
    """70000 samples of loss about log 3 summed past 65504: the mean was NaN."""
    r = np.random.default_rng(0)
    logits16, logits32 = half_and_single(device, r.standard_normal((70000, 3)))
    labels = r.integers(0, 3, 70000)
    assert_half_matches_single(lambda x: F.softmax_cross_entropy(x, labels), [logits16], [logits32])


@pytest.mark.parametrize("shape, axis", [(MNIST_BATCH, None), ((2, 70000), 1), ((2, 70000), (0, 1))])
def test_float16_mean_over_more_than_65504_elements_matches_float32(device, shape, axis):
    """The gradient gy / n was gy / inf = 0."""
    x16, x32 = half_and_single(device, np.random.default_rng(0).random(shape) * 0.1)
    assert_half_matches_single(lambda x: F.mean(x * x, axis=axis).sum(), [x16], [x32])


@pytest.mark.parametrize("shape", [(70000, 2), (64, 2, 28, 28), (128, 2, 28, 28)])
def test_float16_batch_norm_in_training_matches_float32(device, shape):
    """Values near 3: the per-channel sums passed 65504 (and, from 65505 values a channel, the count),
    so the output was NaN and running_mean inf or NaN."""
    r = np.random.default_rng(0)
    x16, x32 = half_and_single(device, r.standard_normal(shape) * 0.5 + 3)
    w16, w32 = half_and_single(device, r.standard_normal(shape))
    gamma16, gamma32 = half_and_single(device, [1.5, 0.5])
    beta16, beta32 = half_and_single(device, [0.0, 1.0])
    results = {}
    for dtype, x, w, gamma, beta in [(np.float16, x16, w16, gamma16, beta16),
                                     (np.float32, x32, w32, gamma32, beta32)]:
        running_mean, running_var = on(device, np.zeros(2, dtype)), on(device, np.ones(2, dtype))
        xs = [Variable(x), Variable(gamma), Variable(beta)]
        with using_config("train", True):
            y = F.batch_norm(*xs, running_mean, running_var)
        (y * w).sum().backward()   # a loss that weighs each output differently: all gradients nonzero
        assert y.dtype == dtype and all(v.grad.dtype == dtype for v in xs)
        results[dtype] = [host(a).astype(np.float32) for a in
                          [y.data, running_mean, running_var] + [v.grad.data for v in xs]]
    names = ["output", "running_mean", "running_var", "x.grad", "gamma.grad", "beta.grad"]
    for name, half, single in zip(names, results[np.float16], results[np.float32]):
        assert np.isfinite(half).all(), name
        # sums of up to 200000 float16 terms for the parameters' gradients: float16's rounding of their size
        atol = 2e-3 * np.abs(single).max() if name.endswith("grad") else 4e-3
        np.testing.assert_allclose(half, single, rtol=RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float16_binary_cross_entropy_of_saturated_probabilities_is_finite(device, reduction):
    """p was clipped to 1 - 1e-7, which is 1 in float16: log(1 - p) = -inf, a NaN loss and
    infinite gradients. float16 clips to the gap below 1, eps = 2^-11."""
    eps = 2.0 ** -11
    p = Variable(on(device, np.array([0.0, 1.0, 1.0, 0.0, 0.5], np.float16)))
    t = on(device, np.array([0.0, 1.0, 0.0, 1.0, 1.0], np.float16))
    loss = F.binary_cross_entropy(p, t, reduction)
    loss.backward()
    n = 5 if reduction == "mean" else 1
    assert loss.dtype == p.grad.dtype == np.float16
    # right predictions cost -log(1 - eps), wrong ones -log(eps); dL/dp = (p - t) / (p (1 - p))
    expected_loss = (-2 * np.log1p(-eps) - 2 * np.log(eps) + np.log(2)) / n
    expected_grad = np.array([1 / (1 - eps), -1 / (1 - eps), 1 / eps, -1 / eps, -2]) / n
    np.testing.assert_allclose(float(loss.data.item()), expected_loss, rtol=RTOL)
    np.testing.assert_allclose(host(p.grad.data).astype(np.float64), expected_grad, rtol=RTOL)


def test_binary_cross_entropy_clips_by_the_probabilities_dtype_not_the_targets():
    """The float16 eps (2^-11) is for float16 probabilities: float32 ones beside float16 targets keep
    eps = 1e-7, so a probability of 1e-5 costs -log(1e-5), not -log(2^-11)."""
    p = Variable(np.array([1e-5, 0.5], np.float32))
    t = Variable(np.array([1.0, 1.0], np.float16))
    loss = F.binary_cross_entropy(p, t, "sum")
    loss.backward()
    np.testing.assert_allclose(float(loss.data), -np.log(1e-5) - np.log(0.5), rtol=1e-5)
    np.testing.assert_allclose(p.grad.data, [-1e5, -2.0], rtol=1e-4)


def test_float16_beside_float32_gives_float32_as_numpy_would():
    """Computed in float32, the result goes back to the dtype the op would give its inputs: float32
    when a float32 input comes with the float16 one, not float16."""
    half, single = Variable(np.array([0.5, 1.5], np.float16)), Variable(np.array([1.0, 3.0], np.float32))
    loss = F.mean_squared_error(half, single)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), (0.25 + 2.25) / 2, rtol=1e-7)
    loss.backward()
    assert (half.grad.dtype, single.grad.dtype) == (np.float16, np.float32)
