"""zero.flow: the coupling flow is invertible, its log-determinant matches a numerical Jacobian,
its density integrates to one, it learns a Gaussian by maximum likelihood, on both devices."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zero
from conftest import host, on
from zero.flow import AffineCoupling, RealNVP, alternating_masks, two_moons
from zero.optimizers import Adam


def random_flow(dim=2, hidden_size=8, num_couplings=4, seed=0, dtype=np.float64):
    """A RealNVP with every parameter random (not the identity it starts as), in float64."""
    np.random.seed(seed)
    flow = RealNVP(dim, hidden_size, num_couplings)
    rng = np.random.default_rng(seed)
    for param in flow.params():
        param.data = (0.5 * rng.standard_normal(param.shape)).astype(dtype)
    for coupling in flow.couplings:
        coupling.mask, coupling.free = coupling.mask.astype(dtype), coupling.free.astype(dtype)
    return flow


def test_a_fresh_flow_is_the_identity():
    np.random.seed(0)
    flow = RealNVP(3, 16, 4)
    x = np.random.standard_normal((5, 3)).astype(np.float32)
    z, log_det = flow(x)
    np.testing.assert_array_equal(z.data, x)
    np.testing.assert_array_equal(log_det.data, np.zeros(5))


def test_masks_alternate_and_every_dimension_gets_changed():
    masks = alternating_masks(3, 2)
    np.testing.assert_array_equal(masks[0], [1, 0, 1])
    np.testing.assert_array_equal(masks[1], [0, 1, 0])
    assert all(mask.dtype == np.float32 for mask in masks)
    with pytest.raises(ValueError, match="at least 2"):
        RealNVP(dim=1)


@pytest.mark.parametrize("dim", [2, 3])
def test_inverse_undoes_forward(dim):
    flow = random_flow(dim)
    x = np.random.default_rng(1).standard_normal((50, dim)) * 2
    z, _ = flow(x)
    assert np.abs(z.data - x).max() > 0.1          # the map really moves the points
    np.testing.assert_allclose(flow.inverse(z.data).data, x, atol=1e-10)
    np.testing.assert_allclose(flow(flow.inverse(x).data)[0].data, x, atol=1e-10)


def test_a_coupling_keeps_its_masked_dimensions():
    np.random.seed(0)
    coupling = AffineCoupling(np.array([1.0, 0.0, 1.0]), 8)
    for param in coupling.params():
        param.data = np.random.standard_normal(param.shape).astype(np.float32)
    x = np.random.standard_normal((4, 3)).astype(np.float32)
    y, _ = coupling(x)
    np.testing.assert_array_equal(y.data[:, [0, 2]], x[:, [0, 2]])
    assert np.abs(y.data[:, 1] - x[:, 1]).max() > 1e-3


def numerical_jacobian(function, x, eps=1e-6):
    """d function(x) / dx for one point x (D,) by central differences: (D, D)."""
    columns = []
    for d in range(len(x)):
        step = np.zeros_like(x)
        step[d] = eps
        columns.append((function(x + step) - function(x - step)) / (2 * eps))
    return np.stack(columns, axis=1)


def test_a_coupling_keeps_its_own_copy_of_the_mask():
    """Two couplings built from one mask array own one copy each: a later change to the caller's
    array changes neither, and each is moved and saved as its own buffer."""
    mask = np.array([1.0, 0.0], np.float32)
    first, second = AffineCoupling(mask, 4), AffineCoupling(mask, 4)
    mask[:] = 0.0
    assert first.mask is not second.mask and first.mask.tolist() == second.mask.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("dim", [2, 4])
def test_log_det_matches_a_numerical_jacobian(dim):
    flow = random_flow(dim, num_couplings=5)
    points = np.random.default_rng(2).standard_normal((6, dim))
    _, log_det = flow(points)

    def forward(point):
        return flow(point[None])[0].data[0]

    for point, analytic in zip(points, log_det.data):
        jacobian = numerical_jacobian(forward, point)
        sign, numeric = np.linalg.slogdet(jacobian)
        assert sign > 0   # couplings with exp(s) > 0 preserve orientation
        assert analytic == pytest.approx(numeric, abs=1e-6)


def test_the_density_integrates_to_one():
    flow = random_flow(2, num_couplings=4, seed=3)
    for param in flow.params():
        param.data = param.data * 0.5   # a gentle map, so the mass stays inside the grid
    grid = np.linspace(-8, 8, 401)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    with zero.no_grad():
        density = np.exp(flow.log_prob(points).data)
    total = density.sum() * (grid[1] - grid[0]) ** 2
    assert total == pytest.approx(1.0, abs=2e-3)


def test_maximum_likelihood_learns_a_correlated_gaussian():
    rng = np.random.default_rng(0)
    covariance = np.array([[1.0, 0.8], [0.8, 1.0]])
    train = rng.multivariate_normal([0, 0], covariance, 2000).astype(np.float32)
    heldout = rng.multivariate_normal([0, 0], covariance, 2000).astype(np.float32)
    # the entropy of N(0, S) is the best possible mean -log p(x): 1/2 log det(2 pi e S)
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * covariance))
    np.random.seed(0)
    flow = RealNVP(2, 16, 4)
    optimizer = Adam(flow.params(), lr=1e-2)
    with zero.no_grad():
        before = flow.loss(heldout).item()
    for step in range(300):
        batch = train[rng.integers(0, len(train), 256)]
        loss = flow.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with zero.no_grad():
        after = flow.loss(heldout).item()
    assert before > entropy + 0.4                 # the identity map is a poor fit (uncorrelated N(0, I))
    assert after == pytest.approx(entropy, abs=0.05)


def test_the_flow_runs_on_both_devices(device):
    reference = random_flow(2, dtype=np.float32)
    flow = random_flow(2, dtype=np.float32).to(device)
    x = np.random.default_rng(4).standard_normal((7, 2)).astype(np.float32)
    log_p = flow.log_prob(on(device, x))
    np.testing.assert_allclose(host(log_p.data), reference.log_prob(x).data, rtol=1e-5)
    flow.loss(on(device, x)).backward()
    for param in flow.params():
        assert param.grad is not None and param.grad.device == device
    samples = flow.sample(5)
    assert zero.backend.device_of(samples) == device and samples.shape == (5, 2)
    stages = flow.stages(on(device, x))
    assert len(stages) == 5 and zero.backend.device_of(stages[-1]) == device
    np.testing.assert_allclose(host(flow.stages(stages[-1], inverse=True)[-1]), x, atol=1e-5)


def test_two_moons_are_two_moons():
    points = two_moons(1000, noise=0.0, seed=0)
    assert points.shape == (1000, 2) and points.dtype == np.float32
    upper, lower = points[:500], points[500:]
    np.testing.assert_allclose(np.hypot(*upper.T), 1, atol=1e-6)                  # on the unit circle
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1, atol=1e-6)
    assert (upper[:, 1] >= 0).all() and (lower[:, 1] <= 0.5).all()
    np.testing.assert_array_equal(two_moons(10, seed=5), two_moons(10, seed=5))


def test_stages_refuse_points_on_another_device_than_the_flows():
    """They were copied through the host without being asked (zero.backend.to_device)."""
    x = on("strict", np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="RealNVP.stages: x on strict and the flow on cpu"):
        RealNVP(dim=2, hidden_size=4, num_couplings=2).stages(x)


def test_a_coupling_log_scale_is_bounded_by_its_scale_which_starts_at_one():
    """s = (1 - m) * scale * tanh(s_raw) with scale initialised to 1: a saturated s_raw gives
    s = 1 on every changed dimension, 0 on the kept ones, log |det| = the number of changed dimensions."""
    mask = np.array([1, 0, 1, 0, 0], np.float32)
    coupling = AffineCoupling(mask, hidden_size=4)
    np.testing.assert_array_equal(coupling.scale.data, np.ones(5, np.float32))
    last = coupling.net.layers[-1]
    last.b.data[:5] = 100.0   # s_raw: tanh(100) = 1 in float32
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    y, log_det = coupling(x)
    np.testing.assert_allclose(log_det.data, np.full(4, 3.0), rtol=1e-6)
    np.testing.assert_allclose(y.data, x * np.exp(1 - mask), rtol=1e-6)


# =============================================================================
# Found by a mutation audit: the coupling against NumPy, sampling, stages, defaults, two moons
# =============================================================================
def coupling_by_hand(coupling, x):
    """y and log |det dy/dx| of one coupling from its parameters, in NumPy: its net is an MLP with
    tanh between the layers, whose 2D outputs are (s_raw, t_raw)."""
    mask = host(coupling.mask)
    hidden = x * mask
    layers = coupling.net.layers
    for i, layer in enumerate(layers):
        hidden = hidden @ layer.W.data + layer.b.data
        if i < len(layers) - 1:
            hidden = np.tanh(hidden)
    dim = len(mask)
    s = (1 - mask) * coupling.scale.data * np.tanh(hidden[:, :dim])
    t = (1 - mask) * hidden[:, dim:]
    return x * np.exp(s) + t, s.sum(axis=1)


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(2, 4), hidden_size=st.integers(1, 6), n_points=st.integers(1, 5), seed=st.integers(0, 100))
def test_each_coupling_matches_its_formula_computed_in_numpy(dim, hidden_size, n_points, seed):
    flow = random_flow(dim, hidden_size=hidden_size, num_couplings=2, seed=seed)
    x = np.random.default_rng(seed).standard_normal((n_points, dim))
    for coupling in flow.couplings:
        assert ([layer.W.shape for layer in coupling.net.layers]
                == [(dim, hidden_size), (hidden_size, hidden_size), (hidden_size, 2 * dim)])
        y, log_det = coupling(x)
        y_expected, log_det_expected = coupling_by_hand(coupling, x)
        np.testing.assert_allclose(y.data, y_expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(log_det.data, log_det_expected, rtol=1e-12, atol=1e-12)


def test_a_couplings_repr_shows_its_mask_as_integers():
    assert repr(AffineCoupling(np.array([1.0, 0.0, 1.0]), 4)).startswith("AffineCoupling(mask=[1, 0, 1]\n")


def test_a_flow_has_eight_couplings_of_width_64_in_two_dimensions_by_default():
    flow = RealNVP()
    assert flow.dim == 2 and len(flow.couplings) == 8
    assert flow.couplings[0].net.layers[0].W.shape == (2, 64)


def test_samples_map_back_to_a_standard_normal():
    """x = f^-1(z) with z ~ N(0, I): f(x) has mean 0 and covariance I, though x itself does not."""
    flow = random_flow(2, dtype=np.float32)
    np.random.seed(0)
    samples = flow.sample(4000)
    assert samples.shape == (4000, 2) and samples.dtype == np.float32
    assert np.abs(np.cov(samples.T) - np.eye(2)).max() > 0.3   # the flow really moves the points
    z = flow(samples)[0].data
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=0.08)
    np.testing.assert_allclose(np.cov(z.T), np.eye(2), atol=0.08)


def test_stages_apply_the_couplings_one_at_a_time():
    flow = random_flow(2, num_couplings=3)
    x = np.random.default_rng(6).standard_normal((5, 2))
    forward = flow.stages(x)
    backward = flow.stages(forward[-1], inverse=True)
    assert len(forward) == len(backward) == 4
    np.testing.assert_array_equal(forward[0], x)
    for coupling, before, after in zip(flow.couplings, forward, forward[1:]):
        np.testing.assert_allclose(after, coupling(before)[0].data, rtol=1e-12)
    for coupling, before, after in zip(reversed(list(flow.couplings)), backward, backward[1:]):
        np.testing.assert_allclose(after, coupling.inverse(before).data, rtol=1e-12)


def test_two_moons_puts_n_over_two_points_on_the_upper_moon_for_odd_n():
    points = two_moons(7, noise=0.0)
    np.testing.assert_allclose(np.hypot(*points[:3].T), 1, atol=1e-6)
    np.testing.assert_allclose(np.hypot(points[3:, 0] - 1, points[3:, 1] - 0.5), 1, atol=1e-6)


@pytest.mark.parametrize("noise", [None, 0.2])
def test_two_moons_noise_has_the_given_std_by_default_five_hundredths(noise):
    """The distance of an upper-moon point to the circle's centre is 1 + the radial part of its
    noise, a N(0, noise^2) number."""
    points = two_moons(8000, seed=1) if noise is None else two_moons(8000, noise=noise, seed=1)
    radial_noise = np.hypot(*points[:4000].T) - 1
    assert radial_noise.std() == pytest.approx(0.05 if noise is None else noise, rel=0.05)


def test_two_moons_seeds_give_different_points():
    assert not np.array_equal(two_moons(10, seed=5), two_moons(10, seed=6))


def test_stages_move_host_points_to_the_models_device(device):
    flow = random_flow(2, dtype=np.float32).to(device)
    x = np.random.default_rng(7).standard_normal((4, 2)).astype(np.float32)
    stages = flow.stages(x)
    assert all(zero.backend.device_of(points) == device for points in stages)
    np.testing.assert_allclose(host(stages[-1]), host(flow(on(device, x))[0].data), rtol=1e-6)


def test_a_three_dimensional_flow_samples_three_dimensional_points():
    np.random.seed(0)
    assert RealNVP(dim=3, hidden_size=4, num_couplings=2).sample(5).shape == (5, 3)


def test_a_float64_flow_samples_from_a_float64_normal():
    """z in the model's dtype: a float32 z was rounded to float32 before a float64 inverse."""
    flow = RealNVP(2, 4, 2).astype(np.float64)
    np.random.seed(0)
    expected = np.random.standard_normal((3, 2))  # a fresh flow is the identity
    np.random.seed(0)
    np.testing.assert_array_equal(flow.sample(3), expected)


@pytest.mark.parametrize("couplings", [0, -1, 2.5])
def test_a_flow_without_a_whole_positive_number_of_couplings_is_refused(couplings):
    """RealNVP(num_couplings=0) built an identity 'flow' that trained and sampled without complaint."""
    with pytest.raises(ValueError, match="RealNVP: num_couplings must be"):
        RealNVP(2, num_couplings=couplings)


def test_two_moons_noise_is_drawn_independently_in_each_coordinate():
    """noise * N(0, I) in two dimensions: the noise of x and of y (the noisy points minus the clean ones of
    the same seed) each have std `noise` and are uncorrelated, not one number added to both."""
    noise = two_moons(8000, noise=0.1, seed=2).astype(np.float64) - two_moons(8000, noise=0.0, seed=2)
    np.testing.assert_allclose(noise.std(axis=0), [0.1, 0.1], rtol=0.05)
    assert abs(np.corrcoef(noise.T)[0, 1]) < 0.05   # standard error of the correlation: about 0.011
