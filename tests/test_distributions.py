"""Normal densities, CDF and maximum likelihood: the formulas at known points,
densities that integrate to 1, MLEs that really maximise the likelihood, a
cross-check with scipy.stats where installed, and the device path."""
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zero.distributions
from conftest import host, on
from zero.backend import device_of
from zero.distributions import (cholesky, erf, erfc, gaussian_log_pdf_cholesky, multivariate_normal_log_pdf,
                                multivariate_normal_mle, multivariate_normal_pdf, normal_cdf, normal_log_pdf,
                                normal_mle, normal_pdf, normal_quantile)

trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2 renamed trapz

COVARIANCE = np.array([[2.0, 0.8], [0.8, 1.0]])
MEAN = np.array([1.0, -2.0])


def test_normal_pdf_at_known_points():
    assert normal_pdf(0.0) == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert normal_pdf(3.0, mu=3.0, sigma=2.0) == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)))
    # one sigma away the density drops by exp(-1/2)
    assert normal_pdf(5.0, 3.0, 2.0) / normal_pdf(3.0, 3.0, 2.0) == pytest.approx(math.exp(-0.5))
    assert normal_log_pdf(1e3) == pytest.approx(-0.5e6 - 0.5 * math.log(2 * math.pi))  # no underflow


@pytest.mark.parametrize("mu, sigma", [(0.0, 1.0), (170.0, 9.0), (-3.0, 0.05)])
def test_normal_pdf_integrates_to_one(mu, sigma):
    x = np.linspace(mu - 12 * sigma, mu + 12 * sigma, 20001)
    assert trapezoid(normal_pdf(x, mu, sigma), x) == pytest.approx(1.0, abs=1e-9)


def test_normal_pdf_rejects_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma must be positive"):
        normal_pdf(0.0, 0.0, 0.0)


@pytest.mark.parametrize("call", [
    lambda: normal_cdf(0.0, 0.0, -1.0),
    lambda: normal_quantile(0.975, 0.0, -2.0),
    lambda: normal_log_pdf(0.0, 0.0, np.array(0.0)),      # a 0-d array is a number too
], ids=["cdf", "quantile", "0-d sigma"])
def test_non_positive_sigma_is_refused_by_the_cdf_the_quantile_and_as_a_0d_array(call):
    with pytest.raises(ValueError, match="sigma must be positive"):
        call()


@pytest.mark.parametrize("function", [normal_log_pdf, normal_pdf, normal_cdf, normal_quantile])
def test_an_array_of_sigmas_with_a_zero_negative_or_nan_entry_is_refused_by_name(function, device):
    """Only a number sigma was checked: an array with a 0 in it gave NaN (and a RuntimeWarning) where
    the density is not defined. Every entry is checked now, on the device too (normal_quantile takes
    host numbers only); positive ones pass."""
    put = (lambda values: np.array(values)) if function is normal_quantile else (lambda values: on(device, values))
    function(put([0.25, 0.5, 0.75]), 0.0, put([1.0, 2.0, 0.5]))
    for bad, count, first in (([1.0, 0.0, -2.0], 2, "0.0"), ([1.0, 2.0, float("nan")], 1, "nan")):
        with pytest.raises(ValueError, match=rf"^sigma must be positive, got an array where {count} of 3 entries "
                                             rf"are not \(the first: {first}\)$"):
            function(put([0.25, 0.5, 0.75]), 0.0, put(bad))


def test_float32_data_stays_float32_with_python_number_parameters():
    x = np.array([-1.0, 0.5, 3.0], dtype=np.float32)
    log_pdf = normal_log_pdf(x, 1.0, 2.0)
    assert log_pdf.dtype == np.float32
    expected = [-0.5 * ((v - 1.0) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi)) for v in x.tolist()]
    np.testing.assert_allclose(log_pdf, expected, rtol=1e-6)


def test_erf_and_cdf_match_math():
    for x in [-6.0, -1.3, 0.0, 0.4, 2.0, 5.5]:
        assert erf(x) == math.erf(x) and erfc(x) == math.erfc(x)
    assert normal_cdf(0.0) == 0.5
    assert normal_cdf(1.96) == pytest.approx(0.9750021048517795, rel=1e-15)
    # arrays (any backend) use the Chebyshev fit: relative error below 1.2e-7, tails included
    x = np.linspace(-9, 9, 3001)
    exact_erfc = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(erfc(x), exact_erfc, rtol=1.2e-7)
    np.testing.assert_allclose(erf(x), 1 - exact_erfc, rtol=1.2e-7, atol=1e-7)
    lower_tail = normal_cdf(np.array([-8.0, -5.0]))
    np.testing.assert_allclose(lower_tail, [0.5 * math.erfc(8 / math.sqrt(2)), 0.5 * math.erfc(5 / math.sqrt(2))],
                               rtol=1.2e-7)


def test_cdf_is_the_integral_of_the_pdf():
    x = np.linspace(150.0, 160.0, 10001)
    area = trapezoid(normal_pdf(x, 171.0, 9.4), x)
    assert normal_cdf(160.0, 171.0, 9.4) - normal_cdf(150.0, 171.0, 9.4) == pytest.approx(area, rel=1e-8)


def test_multivariate_density_at_the_mean_and_one_step_away():
    # at the mean: (2 pi)^(-D/2) |Sigma|^(-1/2)
    expected = 1 / (2 * math.pi * math.sqrt(np.linalg.det(COVARIANCE)))
    assert multivariate_normal_pdf(MEAN, MEAN, COVARIANCE) == pytest.approx(expected)
    # the formula with Sigma^-1 written out
    x = np.array([[0.0, 0.0], [3.0, -1.0]])
    diff = x - MEAN
    squared = np.einsum("nd,de,ne->n", diff, np.linalg.inv(COVARIANCE), diff)
    np.testing.assert_allclose(multivariate_normal_pdf(x, MEAN, COVARIANCE), expected * np.exp(-0.5 * squared))


def test_multivariate_density_integrates_to_one_on_a_grid():
    xs = np.linspace(MEAN[0] - 10, MEAN[0] + 10, 801)
    ys = np.linspace(MEAN[1] - 7, MEAN[1] + 7, 601)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    density = multivariate_normal_pdf(points, MEAN, COVARIANCE).reshape(grid_x.shape)
    assert trapezoid(trapezoid(density, xs, axis=1), ys) == pytest.approx(1.0, abs=1e-8)


def test_one_dimensional_case_agrees_with_normal():
    x = np.linspace(-3, 5, 7)[:, None]
    np.testing.assert_allclose(multivariate_normal_log_pdf(x, np.array([1.0]), np.array([[4.0]])),
                               normal_log_pdf(x[:, 0], 1.0, 2.0))


@pytest.mark.parametrize("points_per_block", [8192, 1000, 7])
def test_batched_gaussians_agree_with_one_at_a_time_and_with_scipy(monkeypatch, points_per_block):
    """In one block of points or in several (5000 = 5 x 1000, or 714 x 7 + 2)."""
    from scipy.stats import multivariate_normal
    monkeypatch.setattr(zero.distributions, "POINTS_PER_BLOCK", points_per_block)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 3))
    means = rng.normal(size=(4, 3))
    factors = rng.normal(size=(4, 3, 3))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(3)
    batched = gaussian_log_pdf_cholesky(x, means, cholesky(covariances))
    assert batched.shape == (5000, 4)
    for k in range(4):
        np.testing.assert_allclose(batched[:, k], multivariate_normal_log_pdf(x, means[k], covariances[k]))
        np.testing.assert_allclose(batched[:, k], multivariate_normal(means[k], covariances[k]).logpdf(x), rtol=1e-12)


def test_float32_data_far_from_zero_with_a_narrow_gaussian_keeps_its_accuracy():
    # x W - mu W would cancel here (|x W| ~ 1e4, result ~ 1): the data must be shifted first
    rng = np.random.default_rng(0)
    mean = np.array([1000.0, -500.0], dtype=np.float32)
    covariance = np.array([[0.01, 0.004], [0.004, 0.02]], dtype=np.float32)
    x = (mean + 0.1 * rng.normal(size=(20, 2))).astype(np.float32)
    exact = multivariate_normal_log_pdf(x.astype(np.float64), mean.astype(np.float64), covariance.astype(np.float64))
    np.testing.assert_allclose(multivariate_normal_log_pdf(x, mean, covariance), exact, rtol=1e-5)


def test_a_single_point_gives_a_single_number():
    assert multivariate_normal_log_pdf(MEAN, MEAN, COVARIANCE).shape == ()
    assert multivariate_normal_log_pdf(MEAN[None], MEAN, COVARIANCE).shape == (1,)


def test_float32_data_far_from_zero_keeps_its_accuracy():
    heights = np.array([[170.1, 70.3], [160.0, 55.0]], dtype=np.float32)
    mean, covariance = np.array([171.0, 69.0]), np.array([[0.5, 0.1], [0.1, 0.4]])
    exact = multivariate_normal_log_pdf(heights.astype(np.float64), mean, covariance)
    np.testing.assert_allclose(multivariate_normal_log_pdf(heights, mean.astype(np.float32),
                                                           covariance.astype(np.float32)), exact, rtol=1e-5)


def test_matches_scipy_stats():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.normal(size=200) * 4
    np.testing.assert_allclose(normal_log_pdf(x, 1.5, 2.5), stats.norm.logpdf(x, 1.5, 2.5), rtol=1e-12)
    np.testing.assert_allclose(normal_cdf(x, 1.5, 2.5), stats.norm.cdf(x, 1.5, 2.5), rtol=1.2e-7)
    points = rng.normal(size=(200, 2)) * 3
    np.testing.assert_allclose(multivariate_normal_log_pdf(points, MEAN, COVARIANCE),
                               stats.multivariate_normal(MEAN, COVARIANCE).logpdf(points), rtol=1e-12)


def test_normal_mle_is_the_closed_form():
    x = np.array([1.0, 2.0, 4.0, 9.0])
    mu, sigma = normal_mle(x)
    assert mu == 4.0
    assert sigma == pytest.approx(math.sqrt((9 + 4 + 0 + 25) / 4))  # divides by N, not N - 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=3, max_size=40).filter(lambda v: np.ptp(v) > 1e-3),
       st.floats(-1, 1), st.floats(-0.5, 0.5))
def test_normal_mle_maximises_the_likelihood(values, shift, log_scale):
    x = np.array(values)
    mu, sigma = normal_mle(x)
    best = normal_log_pdf(x, mu, sigma).sum()
    other = normal_log_pdf(x, mu + shift * sigma, sigma * math.exp(log_scale)).sum()
    assert other <= best + 1e-9 * abs(best)


def test_multivariate_mle_is_the_closed_form_and_a_maximum():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 3)) + 5
    mean, covariance = multivariate_normal_mle(x)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    np.testing.assert_allclose(covariance, np.cov(x.T, bias=True))
    best = multivariate_normal_log_pdf(x, mean, covariance).sum()
    for _ in range(20):
        nudge = rng.normal(size=(3, 3)) * 0.05
        other_cov = covariance + nudge @ nudge.T
        other_mean = mean + rng.normal(size=3) * 0.05
        assert multivariate_normal_log_pdf(x, other_mean, other_cov).sum() < best


def test_bad_covariances_and_shapes_are_named():
    with pytest.raises(ValueError, match="not positive definite"):
        multivariate_normal_pdf(MEAN, MEAN, np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="not symmetric"):
        multivariate_normal_pdf(MEAN, MEAN, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"index 1"):
        cholesky(np.stack([np.eye(2), np.zeros((2, 2))]))
    with pytest.raises(ValueError, match="must be"):
        multivariate_normal_pdf(np.zeros((4, 3)), MEAN, COVARIANCE)
    with pytest.raises(ValueError, match="samples must have shape"):
        multivariate_normal_mle(np.zeros(5))


def test_mismatched_or_empty_inputs_are_named():
    with pytest.raises(ValueError, match=r"mean must be \(D,\) and covariance \(D, D\)"):
        multivariate_normal_pdf(MEAN, MEAN, np.eye(3))
    with pytest.raises(ValueError, match="must be a square matrix"):
        cholesky(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"samples must have shape \(N,\)"):
        normal_mle(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="no samples"):
        normal_mle(np.zeros(0))
    with pytest.raises(ValueError, match="no samples"):
        multivariate_normal_mle(np.zeros((0, 2)))


def test_a_failed_factor_that_cupy_returns_without_an_error_is_refused(monkeypatch):
    """CuPy's cholesky raises nothing by default: a failed factorisation leaves NaN or, as LAPACK's
    potrf stops, a finite factor with a pivot <= 0, whose square passed the pivot-size check."""
    def stopped_at_a_negative_pivot(matrix):
        return np.array([[1.0, 0.0], [2.0, -1.7320508]])
    monkeypatch.setattr(np.linalg, "cholesky", stopped_at_a_negative_pivot)
    with pytest.raises(ValueError, match="is not positive definite"):
        cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_a_covariance_singular_to_working_precision_is_refused_even_when_cholesky_succeeds():
    # three points span only a plane in 3-D: their covariance has rank 2, and rounding leaves a pivot
    # of ~1e-17 that np.linalg.cholesky accepts; a log-density from it would be rounding noise
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.3, 0.7], [0.2, 1.0, 0.5]])
    centred = points - points.mean(axis=0)
    flat = centred.T @ centred / 3
    flat_in_a_batch = np.stack([np.eye(3), flat + np.diag([0.0, 0.0, 1e-17])])
    np.linalg.cholesky(flat_in_a_batch[1])                                # NumPy does not notice
    with pytest.raises(ValueError, match=r"not positive definite \(index 1\)"):
        cholesky(flat_in_a_batch)
    cholesky(np.diag([1.0, 1e-6, 1e-9]))                                  # ill-conditioned but fine in float64


def test_a_covariance_nearly_collinear_in_a_chain_is_refused_though_each_pivot_passes():
    """EM collapsed a component onto 3 points in 3-D (a plane) and the per-pivot test passed it: the second
    variable nearly a multiple of the first, rounding in that small pivot made the last one 1e-13 of its
    variance instead of ~1e-16, above 10 D eps, and EM's log-likelihood then fell by 1 nat a point
    (rounding noise). The smallest eigenvalue of the correlation matrix catches it."""
    rng = np.random.default_rng(4)
    first = rng.normal(size=3)
    second = 3 * first + 1e-2 * rng.normal(size=3)         # the pair: correlation about 1 - 3e-4
    points = np.stack([first, second, rng.normal(size=3)], axis=1)
    centred = points - points.mean(axis=0)
    flat = centred.T @ centred / 3                          # 3 points: rank 2
    variances = np.diag(flat)
    pivots = np.diag(np.linalg.cholesky(flat)) ** 2 / variances
    assert pivots.min() > 10 * 3 * np.finfo(np.float64).eps, pivots   # each pivot alone would pass it
    for units in (np.ones(3), np.array([1e-3, 1.0, 1e4])):
        with pytest.raises(ValueError, match="not positive definite: it is singular or nearly so"):
            cholesky(flat * np.outer(units, units))


def test_a_covariance_is_judged_singular_in_any_units_and_in_float32():
    """The pivot test compared L_ii^2 with the largest variance, so diag(1, 1e-6) in float32 (a feature in
    units 1000 times smaller) was refused as singular, though its factor and log density are exact up to
    rounding. Compared with each variable's own variance, the test depends on correlations only: the same
    nearly collinear pair is refused in any units, and a well-conditioned one is accepted in any units."""
    x = np.array([[0.5, 1e-3], [-1.0, 2e-3]])
    for units in (np.array([1.0, 1e-3]), np.array([1e-3, 1.0]), np.array([1.0, 1e4])):
        scaled = np.diag(units ** 2).astype(np.float32)
        log_pdf = multivariate_normal_log_pdf((x * units).astype(np.float32), np.zeros(2, np.float32), scaled)
        assert log_pdf.dtype == np.float32
        np.testing.assert_allclose(log_pdf, multivariate_normal_log_pdf(x * units, np.zeros(2), np.diag(units ** 2)),
                                   rtol=1e-6)
        # correlation 1 - 5e-7: what the second variable adds is 1e-6 of its variance, under 10 D eps (float32)
        collinear = np.array([[1.0, 1 - 5e-7], [1 - 5e-7, 1.0]]) * np.outer(units, units)
        cholesky(collinear)                                              # float64 keeps it
        with pytest.raises(ValueError, match="not positive definite: it is singular or nearly so"):
            cholesky(collinear.astype(np.float32))


def test_device_results_stay_on_the_device(device):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    x_dev = on(device, x)
    log_pdf = multivariate_normal_log_pdf(x_dev, on(device, MEAN), on(device, COVARIANCE))
    assert device_of(log_pdf) == device
    np.testing.assert_allclose(host(log_pdf), multivariate_normal_log_pdf(x, MEAN, COVARIANCE), rtol=1e-6)
    cdf = normal_cdf(x_dev[:, 0], 0.5, 2.0)
    assert device_of(cdf) == device
    np.testing.assert_allclose(host(cdf), normal_cdf(x[:, 0], 0.5, 2.0))
    mean, covariance = multivariate_normal_mle(x_dev)
    assert device_of(mean) == device and device_of(covariance) == device
    np.testing.assert_allclose(host(covariance), np.cov(x.T, bias=True), rtol=1e-5)
    mu, sigma = normal_mle(x_dev[:, 1])
    assert device_of(sigma) == device
    assert float(sigma) == pytest.approx(x[:, 1].std(), rel=1e-6)


def test_normal_quantile_inverts_the_cdf():
    from scipy.stats import norm
    p = np.linspace(1e-6, 1 - 1e-6, 1001)
    np.testing.assert_allclose(normal_quantile(p), norm.ppf(p), atol=2e-7)
    assert normal_quantile(0.975, mu=1.0, sigma=2.0) == pytest.approx(1 + 2 * norm.ppf(0.975), abs=1e-6)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        normal_quantile([0.5, 1.0])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        normal_quantile(0.0)


def test_normal_quantile_is_accurate_deep_in_both_tails():
    from scipy.stats import norm
    lower = np.logspace(-6, math.log10(0.5), 4001)           # the tails, densely
    p = np.concatenate([lower, 1 - lower])
    np.testing.assert_allclose(normal_quantile(p), norm.ppf(p), rtol=0, atol=1.1e-7)  # the documented bound


def test_normal_quantile_far_in_both_tails_and_beyond():
    """From p = 1e-300 to the largest float below 1 (1e-30 was read off a clamped grid: -9.2
    instead of -11.46; 1 - 1e-15 was 6.5e-3 off), and a clear error past about 37 sigma."""
    from scipy.stats import norm
    lower = np.logspace(-300, -6, 2000)
    upper = 1 - np.logspace(-6, -16, 500)
    p = np.concatenate([lower, upper, [np.nextafter(1.0, 0.0)]])
    reference = norm.ppf(p)
    np.testing.assert_allclose(normal_quantile(p), reference, rtol=4e-8, atol=0)
    with pytest.raises(ValueError, match="37 standard deviations"):
        normal_quantile([0.5, 1e-310])


def test_the_library_and_the_course_do_not_need_scipy_or_scikit_learn():
    """They are test-only references (setup.py's 'test' extra): README's first command installs
    zero without them, so no module of zero/ and no step script may import them."""
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "zero").rglob("*.py")) + sorted((root / "steps").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for module in ("scipy", "sklearn"):
            assert f"import {module}" not in text and f"from {module}" not in text, f"{path} imports {module}"


def test_a_bad_matrix_in_a_two_dimensional_batch_is_named_by_its_plain_index():
    batch = np.broadcast_to(np.eye(2), (2, 3, 2, 2)).copy()
    batch[1, 2] = 0.0
    with pytest.raises(ValueError, match=r"\(component \(1, 2\)\)"):
        cholesky(batch, index_name="component")


@pytest.mark.parametrize("matrix", [np.ones(3), np.array(2.0)], ids=["1-d", "0-d"])
def test_cholesky_of_a_vector_or_a_number_is_named_not_square(matrix):
    with pytest.raises(ValueError, match=r"covariance must be a square matrix \(\.\.\., D, D\), got shape"):
        cholesky(matrix)


def test_a_covariance_asymmetric_beyond_rounding_is_refused():
    with pytest.raises(ValueError, match="covariance is not symmetric"):
        cholesky(np.array([[2.0, 0.5], [0.5 + 2e-4, 1.0]]))      # |C - C^T| = 1e-4 of the largest entry
    rounded = np.array([[2.0, 0.5], [0.5 + 1e-12, 1.0]])
    np.testing.assert_allclose(cholesky(rounded), np.linalg.cholesky(rounded))


def test_a_factor_of_nans_as_cupy_returns_it_is_refused_and_named(monkeypatch):
    """CuPy's cholesky does not raise on a matrix that is not positive definite: it returns NaNs."""
    numpy_cholesky = np.linalg.cholesky

    def cupy_like(matrix):
        try:
            return numpy_cholesky(matrix)
        except np.linalg.LinAlgError:
            return np.full(np.shape(matrix), np.nan)

    monkeypatch.setattr(np.linalg, "cholesky", cupy_like)
    with pytest.raises(ValueError, match="covariance is not positive definite"):
        cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"not positive definite \(index 1\)"):
        cholesky(np.stack([np.eye(2), -np.eye(2)]))


def test_one_bad_matrix_is_named_without_an_index():
    with pytest.raises(ValueError, match=r"^covariance is not positive definite: it is singular"):
        cholesky(np.zeros((2, 2)))


def test_the_singularity_threshold_is_10_d_eps_on_the_correlation_matrix_estimate():
    """L = [[2, 0], [a, b]]: C = L L^T, and s^2 = b^2 / C_22 is the share of the second variable's variance
    the first does not explain. R's factor is [[1, 0], [rho, s]], so 1 / ||L_R^-1||_F^2 = s^2 / (s^2 + 1 +
    rho^2) = s^2 / 2 exactly: just below 10 D eps it is refused, just above accepted, whatever C_22's size."""
    eps = np.finfo(np.float64).eps
    for a in (1e-3, 1.0, 1e3):
        for share, refused in ((0.8, True), (1.5, False)):
            b = a * math.sqrt(2 * share * 10 * 2 * eps)  # s^2 / 2 = share x 10 D eps, to first order
            factor = np.array([[2.0, 0.0], [a, b]])
            covariance = factor @ factor.T
            if refused:
                with pytest.raises(ValueError, match="not positive definite"):
                    cholesky(covariance)
            else:
                np.testing.assert_allclose(cholesky(covariance) @ cholesky(covariance).T, covariance, rtol=1e-12)


def test_float32_gaussians_give_float32_log_densities():
    x = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    log_pdf = multivariate_normal_log_pdf(x, MEAN.astype(np.float32), COVARIANCE.astype(np.float32))
    assert log_pdf.dtype == np.float32
    np.testing.assert_allclose(log_pdf, multivariate_normal_log_pdf(x.astype(np.float64), MEAN, COVARIANCE), rtol=1e-6)


def test_erf_of_arrays_is_accurate_near_zero_where_one_minus_erfc_cancels():
    """erf of an array was 1 - erfc(x): near 0 only erfc's 1e-7 error was left (erf(1e-8) came out
    -1.9e-8, the wrong sign). A series takes |x| < 1/2; float32 stays float32."""
    points = np.array([-3.0, -0.6, -0.5, -0.3, -1e-6, 1e-12, 1e-8, 1e-4, 0.1, 0.49, 0.5, 0.51, 1.0, 4.0])
    expected = np.array([math.erf(v) for v in points])
    np.testing.assert_allclose(erf(points), expected, rtol=2e-7, atol=0)
    assert erf(points.astype(np.float32)).dtype == np.float32


def test_erf_of_large_arrays_is_plus_or_minus_one_without_overflow_in_the_unused_series():
    """The series is evaluated for every entry (np.where picks afterwards): with x itself in it rather
    than x clipped to [-1/2, 1/2], x^23 overflows for |x| ~ 1e14 and beyond, and inf - inf warns."""
    points = np.array([-1e100, -1e20, -30.0, 30.0, 1e20, 1e100])
    with np.errstate(over="raise", invalid="raise"):  # an overflow or an invalid value is an error here
        values = erf(points)
    np.testing.assert_array_equal(values, np.sign(points))


def test_erfc_of_huge_arrays_is_two_or_zero_without_overflow():
    """erfc's exp(-z * z + ...) overflowed in z * z for |x| above about 1.3e154 ('overflow in multiply', an
    error under -W error) before giving the right 0 or 2; |x| is now capped where erfc is 0 already."""
    points = np.array([-np.inf, -1e300, -1e155, -40.0, 40.0, 1e155, 1e300, np.inf])
    with np.errstate(over="raise", invalid="raise"):
        tails = erfc(points)
    np.testing.assert_array_equal(tails, 1 - np.sign(points))   # 2 far left, 0 far right
    assert np.isnan(erfc(np.array([np.nan, 1.0]))[0])


def test_the_median_of_a_normal_is_exactly_mu():
    """The grid and Newton steps run on the Chebyshev fit of erfc, whose cdf(0) is 1/2 to within 1e-7:
    normal_quantile(0.5) came out 3.8e-8 (arrays) or 3e-17, not 0."""
    assert normal_quantile(0.5) == 0.0
    np.testing.assert_array_equal(normal_quantile(np.array([0.5, 0.5])), [0.0, 0.0])
    np.testing.assert_array_equal(normal_quantile(np.array([0.5]), mu=3.0, sigma=2.0), [3.0])  # was 3 + 7.5e-8
    np.testing.assert_allclose(normal_quantile(np.array([0.5, 0.25]))[1], -0.6744897501960817, rtol=1e-7)


def test_normal_quantile_refuses_nan():
    """NaN failed neither p <= 0 nor p >= 1, and came back as a NaN quantile."""
    with pytest.raises(ValueError, match="normal_quantile: p must lie strictly between 0 and 1"):
        normal_quantile(float("nan"))


def test_lists_are_taken_as_float64_arrays_as_gaussian_mixture_takes_them():
    heights, rows = [170.0, 180.0, 175.0], [[1, 2], [3, 1], [0, 4]]
    assert normal_mle(heights) == pytest.approx(normal_mle(np.array(heights)))
    np.testing.assert_allclose(normal_pdf([0.0, 1.0]), normal_pdf(np.array([0.0, 1.0])))
    np.testing.assert_allclose(normal_cdf([0.0, 1.0]), normal_cdf(np.array([0.0, 1.0])))
    mean, covariance = multivariate_normal_mle(rows)
    np.testing.assert_allclose(mean, np.mean(rows, axis=0))
    expected = multivariate_normal_pdf(np.array([2.0, 1.5]), mean, covariance)
    assert multivariate_normal_pdf([2.0, 1.5], mean.tolist(), covariance.tolist()) == pytest.approx(expected)
    assert multivariate_normal_log_pdf([[2.0, 1.5]], mean, covariance)[0] == pytest.approx(np.log(expected))


def test_normal_quantile_takes_host_numbers_and_refuses_a_device_array():
    """Its documented exception to the module's device rule: it never copies device data to the host."""
    from zero.backend import to_device
    from zero.testing import HostConversionError
    with pytest.raises(HostConversionError, match="implicit conversion of a device array"):
        normal_quantile(to_device(np.array([0.3]), "strict"))


def test_normal_log_pdf_with_arrays_of_means_and_sigmas_is_the_formula_elementwise(device):
    """sigma an array (on the data's device): log N(x | mu, sigma) = -z^2/2 - log sigma - log(2 pi)/2 for
    each entry, z = (x - mu) / sigma, by hand; the pdf is its exp."""
    x, mu, sigma = np.array([-1.0, 0.3, 2.5, 4.0]), np.array([0.0, 1.0, -1.0, 4.0]), np.array([0.5, 2.0, 3.0, 1.0])
    z = (x - mu) / sigma
    expected = -0.5 * z * z - np.log(sigma) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(host(normal_log_pdf(on(device, x), on(device, mu), on(device, sigma))), expected,
                               rtol=1e-12)
    np.testing.assert_allclose(host(normal_pdf(on(device, x), on(device, mu), on(device, sigma))), np.exp(expected),
                               rtol=1e-12)
