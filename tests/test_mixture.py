"""GaussianMixture and EM: the log-likelihood never decreases, Old Faithful
gives its known two-cluster answer, the same run as scikit-learn's, the
device path keeps its results on the device, bad inputs are named."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zero.mixture
from conftest import host, on
from zero.backend import device_of
from zero.datasets import load_old_faithful
from zero.distributions import multivariate_normal_pdf
from zero.mixture import GaussianMixture, logsumexp

FAITHFUL_MEANS = np.array([[2.04, 54.5], [4.29, 80.0]])
FAITHFUL_WEIGHTS = np.array([0.36, 0.64])


def by_first_coordinate(gmm):
    """Fitted (weights, means, covariances) on the host, components sorted by their mean's first coordinate."""
    means = host(gmm.means)
    order = np.argsort(means[:, 0])
    return host(gmm.weights)[order], means[order], host(gmm.covariances)[order]


def test_logsumexp_is_stable():
    a = np.array([[1000.0, 1000.0], [-1000.0, -1000.0 + math.log(3)]])
    np.testing.assert_allclose(logsumexp(a, axis=1), [1000 + math.log(2), -1000 + math.log(4)])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_logsumexp_reduces_the_given_axis(axis):
    a = np.random.default_rng(0).standard_normal((3, 4, 5))
    np.testing.assert_allclose(logsumexp(a, axis), np.log(np.exp(a).sum(axis=axis)), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_old_faithful_converges_to_the_known_two_clusters(seed):
    data = load_old_faithful()
    gmm = GaussianMixture(2, tol=1e-6, max_iter=500, seed=seed).fit(data)
    assert gmm.converged
    weights, means, covariances = by_first_coordinate(gmm)
    assert (np.abs(means - FAITHFUL_MEANS) < [0.02, 0.1]).all(), means  # (eruption, waiting) minutes
    np.testing.assert_allclose(weights, FAITHFUL_WEIGHTS, atol=0.01)
    assert gmm.score(data) == pytest.approx(-4.1554, abs=1e-3)
    # EM moved a long way up from the single broad Gaussians it started from
    assert gmm.log_likelihood_history[-1] - gmm.log_likelihood_history[0] > 0.5


@st.composite
def mixture_problems(draw):
    """Random data (a blob per cluster, random spreads) and random initial parameters."""
    seed = draw(st.integers(0, 2**32 - 1))
    dim = draw(st.integers(1, 3))
    n_components = draw(st.integers(1, 4))
    n_points = draw(st.integers(10 * n_components, 120))
    return _mixture_problem(seed, dim, n_components, n_points, n_clusters=draw(st.integers(1, 4)))


def _mixture_problem(seed, dim, n_components, n_points, n_clusters):
    """x (n_points, dim) in n_clusters blobs, and initial weights, means and covariances for n_components."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(n_clusters, dim))
    x = centres[rng.integers(len(centres), size=n_points)] + rng.normal(size=(n_points, dim)) * rng.uniform(0.2, 2)
    weights = rng.dirichlet(np.ones(n_components))
    means = x[rng.choice(n_points, n_components, replace=False)] + rng.normal(size=(n_components, dim))
    factors = rng.normal(size=(n_components, dim, dim))
    covariances = factors @ factors.transpose(0, 2, 1) + rng.uniform(0.1, 3) * np.eye(dim)
    return x, weights, means, covariances


@pytest.mark.filterwarnings("ignore:EM did not converge")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixture_problems())
def test_em_log_likelihood_never_decreases(problem):
    x, weights, means, covariances = problem
    gmm = GaussianMixture(len(weights), reg_covar=0.0, tol=1e-10, max_iter=60)
    try:
        gmm.fit(x, weights, means, covariances)
    except ValueError as error:  # a component collapsed: allowed, but only with this error
        assert "EM iteration" in str(error)
    history = np.array(gmm.log_likelihood_history)
    assert len(history) >= 1 and np.isfinite(history).all()
    steps = np.diff(history)
    assert (steps >= -1e-9 * (1 + np.abs(history[1:]))).all(), steps.min()


def test_same_iterations_and_answer_as_scikit_learn():
    mixture = pytest.importorskip("sklearn.mixture")
    data = load_old_faithful().astype(np.float64)
    weights = np.array([0.5, 0.5])
    means = data[[0, 1]]
    covariances = np.stack([np.cov(data.T, bias=True)] * 2)
    ours = GaussianMixture(2, tol=1e-5, max_iter=300).fit(data, weights, means, covariances)
    theirs = mixture.GaussianMixture(2, covariance_type="full", tol=1e-5, max_iter=300, weights_init=weights,
                                     means_init=means, precisions_init=np.linalg.inv(covariances),
                                     init_params="random_from_data").fit(data)
    assert ours.n_iter == theirs.n_iter_
    assert ours.score(data) == pytest.approx(theirs.score(data), abs=1e-9)
    np.testing.assert_allclose(ours.means, theirs.means_, rtol=1e-7)
    np.testing.assert_allclose(ours.covariances, theirs.covariances_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict_proba(data), theirs.predict_proba(data), atol=1e-6)


def test_score_predict_proba_and_log_prob_agree_with_the_formula():
    data = load_old_faithful()
    gmm = GaussianMixture(2, tol=1e-4).fit(data)
    weighted = np.stack([host(gmm.weights)[k] * multivariate_normal_pdf(data.astype(np.float64), gmm.means[k],
                                                                         gmm.covariances[k])
                         for k in range(2)], axis=1)  # pi_k N(x_n | mu_k, Sigma_k)
    np.testing.assert_allclose(gmm.log_prob(data), np.log(weighted.sum(axis=1)), rtol=1e-10)
    assert gmm.score(data) == pytest.approx(np.log(weighted.sum(axis=1)).mean())
    resp = gmm.predict_proba(data)
    assert resp.dtype == np.float32
    np.testing.assert_allclose(resp, weighted / weighted.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_array_equal(gmm.predict(data), weighted.argmax(axis=1))


def test_samples_follow_the_fitted_model():
    gmm = GaussianMixture(2, tol=1e-4).fit(load_old_faithful())
    samples, labels = gmm.sample(40_000, seed=5)
    assert samples.shape == (40_000, 2) and samples.dtype == np.float32
    np.testing.assert_allclose(np.bincount(labels) / len(labels), gmm.weights, atol=0.01)
    for k in range(2):
        members = samples[labels == k].astype(np.float64)
        np.testing.assert_allclose(members.mean(axis=0), gmm.means[k], rtol=0.01)
        np.testing.assert_allclose(np.cov(members.T), gmm.covariances[k], rtol=0.05, atol=0.01)
    np.testing.assert_array_equal(gmm.sample(10, seed=6)[0], gmm.sample(10, seed=6)[0])


def test_one_dimensional_data_and_one_component():
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 2.0, size=1000).astype(np.float32)
    gmm = GaussianMixture(1, tol=1e-8).fit(x)
    assert gmm.means.shape == (1, 1) and gmm.covariances.shape == (1, 1, 1)
    assert gmm.means[0, 0] == pytest.approx(x.astype(np.float64).mean())
    assert gmm.covariances[0, 0, 0] == pytest.approx(x.astype(np.float64).var() + gmm.reg_covar)


def test_runs_on_the_device_and_results_stay_there(device):
    data = load_old_faithful()
    gmm = GaussianMixture(2, tol=1e-6, seed=0).fit(on(device, data))
    for value in (gmm.weights, gmm.means, gmm.covariances):
        assert device_of(value) == device
    reference = GaussianMixture(2, tol=1e-6, seed=0).fit(data)
    np.testing.assert_allclose(host(gmm.means), reference.means, rtol=1e-10)
    assert gmm.log_likelihood_history == pytest.approx(reference.log_likelihood_history, rel=1e-12)
    resp = gmm.predict_proba(on(device, data))
    log_prob = gmm.log_prob(on(device, data))
    samples, labels = gmm.sample(100, seed=1)
    for value in (resp, log_prob, samples, labels):
        assert device_of(value) == device
    np.testing.assert_allclose(host(samples), reference.sample(100, seed=1)[0])
    # parameters given on the host are moved to the data's device
    again = GaussianMixture(2, tol=1e-6).fit(on(device, data), reference.weights, reference.means,
                                             reference.covariances)
    assert device_of(again.means) == device


@pytest.mark.parametrize("data, problem", [
    (np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 1.0]]), r"NaN or infinite values in 1 of 3 rows \(first: row 1\)"),
    (np.array([[1.0, 2.0], [2.0, np.inf], [3.0, 1.0]]), "NaN or infinite"),
    (np.array([[1.0, 2.0]]), r"fewer data points \(1\) than components \(2\)"),
    (np.zeros((3, 2, 2)), r"shape \(N, D\) or \(N,\)"),
])
def test_bad_data_is_named(data, problem):
    with pytest.raises(ValueError, match=problem):
        GaussianMixture(2).fit(data)


def test_bad_initial_parameters_are_named():
    data = load_old_faithful()
    good_means, good_covariances = data[:2], np.stack([np.eye(2)] * 2)
    with pytest.raises(ValueError, match=r"means must have shape \(2, 2\).*got \(2, 3\)"):
        GaussianMixture(2).fit(data, means=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"covariances must have shape \(2, 2, 2\)"):
        GaussianMixture(2).fit(data, means=good_means, covariances=np.eye(2))
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        GaussianMixture(2).fit(data, weights=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(2).fit(data, weights=[0.2, 0.3])
    with pytest.raises(ValueError, match=r"initial covariance is not positive definite \(component 1\)"):
        GaussianMixture(2).fit(data, means=good_means, covariances=np.stack([np.eye(2), -np.eye(2)]))
    with pytest.raises(ValueError, match="means contains NaN"):
        GaussianMixture(2).fit(data, means=np.array([[np.nan, 1.0], [2.0, 3.0]]), covariances=good_covariances)
    gmm = GaussianMixture(2).fit(data)
    with pytest.raises(ValueError, match="dimension 3 but the mixture was fitted in dimension 2"):
        gmm.score(np.zeros((4, 3)))
    with pytest.raises(RuntimeError, match="call fit"):
        GaussianMixture(2).sample(3)


def test_collapsing_component_raises_instead_of_nan():
    # two components, but one of them sits on three identical points: its covariance goes to 0 (exactly,
    # at the second iteration), which is named as a collapse onto one point
    data = np.concatenate([np.full((3, 2), 5.0), np.random.default_rng(0).normal(size=(50, 2))])
    means = np.array([[5.0, 5.0], [0.0, 0.0]])
    covariances = np.stack([0.5 * np.eye(2), np.eye(2)])
    with pytest.raises(ValueError, match=r"EM iteration \d+: component 0 collapsed onto a single point "
                                         r".*increase reg_covar"):
        GaussianMixture(2, reg_covar=0.0).fit(data, means=means, covariances=covariances)
    # with the default reg_covar the same fit is well defined: that component becomes a tiny round blob
    gmm = GaussianMixture(2).fit(data, means=means, covariances=covariances)
    assert np.isfinite(gmm.covariances).all()
    np.testing.assert_allclose(gmm.covariances[0], 1e-6 * np.eye(2), rtol=1e-3)


def _log_gaussian(x, mean, cov):
    """log N(x | mean, cov) for rows of x, from the textbook formula (slogdet and solve)."""
    d = x.shape[1]
    centred = x - mean
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("ni,ni->n", centred, np.linalg.solve(cov, centred.T).T)
    return -0.5 * (d * np.log(2 * np.pi) + logdet + maha)


@pytest.mark.parametrize("points_per_block", [8192, 4, 1])
def test_one_em_step_from_given_weights_and_means_and_the_default_covariance(monkeypatch, points_per_block):
    """history[0] uses the given weights renormalised to sum 1, the given means and the biased
    covariance of the data (+ reg_covar I) for every component; one M-step follows the formulas,
    whether the covariances are summed over the 6 points at once or in blocks of 4 + 2 or 1 point."""
    monkeypatch.setattr(zero.mixture, "POINTS_PER_BLOCK", points_per_block)
    x = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0], [5.0, 6.0], [6.0, 5.5], [7.0, 8.0]])
    weights, means, reg = np.array([0.3, 0.700009]), np.array([[1.0, 2.0], [6.0, 6.0]]), 0.01
    mixture = GaussianMixture(2, reg_covar=reg, max_iter=1)
    with pytest.warns(UserWarning, match="did not converge"):
        mixture.fit(x, weights=weights, means=means)
    pi = weights / weights.sum()
    cov = np.cov(x.T, bias=True) + reg * np.eye(2)
    log_joint = np.stack([np.log(pi[k]) + _log_gaussian(x, means[k], cov) for k in range(2)], axis=1)
    log_evidence = np.log(np.exp(log_joint).sum(axis=1))
    assert mixture.log_likelihood_history == pytest.approx([log_evidence.mean()], rel=1e-12, abs=0)
    resp = np.exp(log_joint - log_evidence[:, None])
    counts = resp.sum(axis=0)
    new_means = resp.T @ x / counts[:, None]
    np.testing.assert_allclose(mixture.weights, counts / 6, rtol=1e-12)
    np.testing.assert_allclose(mixture.means, new_means, rtol=1e-12)
    for k in range(2):
        centred = x - new_means[k]
        np.testing.assert_allclose(mixture.covariances[k],
                                   (resp[:, k, None] * centred).T @ centred / counts[k] + reg * np.eye(2), rtol=1e-10)


def test_a_component_left_with_almost_no_responsibility_is_named():
    """A component whose N_k = sum_n r_nk is positive but below 1e-10 has lost its points: EM stops
    with that diagnosis rather than divide by a vanishing count."""
    data = np.random.default_rng(0).normal(scale=0.1, size=(5, 1))
    means = np.array([[0.0], [8.0]])   # r_n1 ~ exp(-32) ~ 1e-14 for every point
    with pytest.raises(ValueError, match=r"EM iteration 1: component 1 lost all its points"):
        GaussianMixture(2).fit(data, means=means, covariances=np.ones((2, 1, 1)))


# =============================================================================
# Settings, seeding, stopping and the fitted model's interface: found by a mutation audit
# =============================================================================
def _fit_quietly(mixture, x, **initial):
    """mixture.fit(x, **initial) when it may stop at max_iter before converging."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mixture.fit(x, **initial)


def test_default_settings():
    mixture = GaussianMixture(2)
    assert (mixture.reg_covar, mixture.tol, mixture.max_iter, mixture.seed) == (1e-6, 1e-3, 100, 0)


@pytest.mark.parametrize("settings, problem", [
    ({"n_components": 0}, "GaussianMixture: n_components must be a whole number >= 1, got 0"),
    ({"n_components": 2, "max_iter": 0}, "GaussianMixture: max_iter must be a whole number >= 1, got 0"),
    ({"n_components": 2, "max_iter": -3}, "max_iter must be a whole number >= 1, got -3"),
    ({"n_components": 2, "reg_covar": -0.5}, "reg_covar must be a finite number >= 0, got -0.5"),
])
def test_bad_settings_are_refused(settings, problem):
    with pytest.raises(ValueError, match=problem):
        GaussianMixture(**settings)


def test_em_stops_at_the_first_change_below_tol():
    """With the default tol 1e-3, history[i] - history[i-1] is at least 1e-3 for every iteration
    but the last, where it falls below: n_iter = len(history)."""
    gmm = GaussianMixture(2).fit(load_old_faithful())
    changes = np.abs(np.diff(gmm.log_likelihood_history))
    assert gmm.converged and gmm.n_iter == len(gmm.log_likelihood_history) >= 3
    assert (changes[:-1] >= 1e-3).all() and changes[-1] < 1e-3, changes


def test_em_without_convergence_runs_max_iter_iterations_and_says_so():
    """tol 0 is never met: the default max_iter of 100 iterations run, then a warning."""
    x = np.random.default_rng(0).normal(size=(20, 1))
    with pytest.warns(UserWarning, match="did not converge in 100 iterations"):
        gmm = GaussianMixture(1, tol=0.0).fit(x)
    assert gmm.n_iter == len(gmm.log_likelihood_history) == 100 and not gmm.converged


def test_the_warning_names_the_last_change_as_the_increase_of_the_log_likelihood():
    """EM raises the log-likelihood: the change the warning names is history[-1] - history[-2], positive."""
    with pytest.warns(UserWarning, match="did not converge in 3 iterations") as caught:
        gmm = GaussianMixture(2, tol=0.0, max_iter=3).fit(load_old_faithful())
    history = gmm.log_likelihood_history
    increase = history[-1] - history[-2]
    assert increase > 0
    assert f"last change in mean log-likelihood {increase:.3g}," in str(caught[0].message)


def test_a_second_fit_that_does_not_converge_is_not_reported_converged():
    data = load_old_faithful()
    gmm = GaussianMixture(2).fit(data)
    assert gmm.converged
    gmm.max_iter = 1
    with pytest.warns(UserWarning, match="did not converge"):
        gmm.fit(data)
    assert not gmm.converged and gmm.n_iter == 1


def test_initial_weights_must_be_non_negative_and_sum_to_one():
    data = load_old_faithful()
    # sums 1 but one is negative; all positive but sums 1.02; sums 1.0001, 10 times the rounding allowed (1e-5)
    for weights in ([1.5, -0.5], [0.5, 0.52], [0.5, 0.5001]):
        with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
            GaussianMixture(2).fit(data, weights=weights)


def test_k_means_plus_plus_seeds_one_mean_in_each_far_apart_cluster():
    """Three clusters of 20 points (unit spread) 100 apart, stored one cluster after the other.
    With unit initial covariances, a cluster left without an initial mean would cost its points
    about 100^2 / 2 nats each: history[0] (the mean log-likelihood of the initial parameters)
    is near -5 only if every cluster got one. The first pick is a random point, so the seeds
    give different starts (the next test checks that pick)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    x = np.concatenate([centre + rng.normal(size=(20, 2)) for centre in centres])
    initial_log_likelihoods = []
    for seed in range(20):
        gmm = _fit_quietly(GaussianMixture(3, seed=seed, max_iter=1), x, covariances=np.stack([np.eye(2)] * 3))
        initial_log_likelihoods.append(gmm.log_likelihood_history[0])
    assert min(initial_log_likelihoods) > -10, initial_log_likelihoods
    assert len(set(initial_log_likelihoods)) > 10


def test_the_first_initial_mean_is_a_data_point_drawn_with_the_seed():
    """K = 1 and unit covariance: history[0] is the mean log N(x_n | x_j, I) of the picked row j,
    which the seeds spread over the data rather than always the same row."""
    x = np.random.default_rng(2).normal(size=(30, 2))
    by_row = [_log_gaussian(x, row, np.eye(2)).mean() for row in x]
    picked_rows = set()
    for seed in range(10):
        gmm = _fit_quietly(GaussianMixture(1, seed=seed, max_iter=1), x, covariances=np.eye(2)[None])
        distances = np.abs(np.array(by_row) - gmm.log_likelihood_history[0])
        assert distances.min() < 1e-9
        picked_rows.add(int(distances.argmin()))
    assert len(picked_rows) >= 5, picked_rows


def test_as_many_points_as_components_is_enough():
    gmm = GaussianMixture(2).fit(np.array([0.0, 10.0]))
    np.testing.assert_allclose(np.sort(gmm.means.ravel()), [0.0, 10.0], atol=1e-6)


@pytest.mark.parametrize("data, dtype", [
    (np.random.default_rng(0).normal(size=(50, 2)), np.float64),
    (np.random.default_rng(0).integers(0, 9, size=(50, 2)), np.float32),
])
def test_predict_proba_and_samples_come_in_the_dtype_of_the_data(data, dtype):
    """Floating data keeps its dtype; integer data gives float32 (the default dtype)."""
    gmm = GaussianMixture(2).fit(data)
    assert gmm.predict_proba(data).dtype == dtype
    assert gmm.sample(5)[0].dtype == dtype
    assert gmm.means.dtype == np.float64   # parameters are float64 whatever the data


@pytest.mark.parametrize("use", [lambda gmm, x: gmm.log_prob(x), lambda gmm, x: gmm.score(x),
                                 lambda gmm, x: gmm.predict(x), lambda gmm, x: gmm.predict_proba(x)],
                         ids=["log_prob", "score", "predict", "predict_proba"])
def test_using_a_mixture_before_fit_says_to_fit_it(use):
    with pytest.raises(RuntimeError, match=r"call fit\(x\) first"):
        use(GaussianMixture(2), np.zeros((3, 2)))


def test_a_one_dimensional_mixture_takes_flat_data_everywhere():
    x = np.random.default_rng(1).normal(size=40)
    gmm = GaussianMixture(2).fit(x)
    column = x[:, None]
    np.testing.assert_array_equal(gmm.log_prob(x), gmm.log_prob(column))
    np.testing.assert_array_equal(gmm.predict_proba(x), gmm.predict_proba(column))
    np.testing.assert_array_equal(gmm.predict(x), gmm.predict(column))


def test_sample_without_a_seed_uses_the_mixtures_seed():
    data = load_old_faithful()
    gmm = GaussianMixture(2, seed=7).fit(data)
    np.testing.assert_array_equal(gmm.sample(20)[0], gmm.sample(20, seed=7)[0])
    assert not np.array_equal(gmm.sample(20)[0], gmm.sample(20, seed=0)[0])


def test_the_first_iteration_has_nothing_to_compare_with_so_em_runs_at_least_two():
    """history[0] has no predecessor: however large tol is, convergence is judged from iteration 2."""
    gmm = GaussianMixture(2, tol=1e9).fit(load_old_faithful())
    assert gmm.converged and gmm.n_iter == len(gmm.log_likelihood_history) == 2


def test_float32_initial_parameters_are_used_in_float64():
    x = np.random.default_rng(3).normal(size=(30, 2)) * [1.0, 5.0] + 100.0
    weights = np.array([0.3, 0.7], np.float32)
    means = (x[[0, 1]] + 0.1).astype(np.float32)
    covariances = np.stack([np.diag([1.1, 20.3]), np.diag([0.7, 30.1])]).astype(np.float32)
    history = []
    for dtype in (np.float32, np.float64):
        gmm = _fit_quietly(GaussianMixture(2, max_iter=1), x, weights=weights.astype(dtype),
                           means=means.astype(dtype), covariances=covariances.astype(dtype))
        history.append(gmm.log_likelihood_history[0])
    assert history[0] == pytest.approx(history[1], rel=1e-14, abs=0)


def test_verbose_prints_the_log_likelihood_of_every_iteration_and_quiet_prints_nothing(capsys):
    data = load_old_faithful()
    gmm = GaussianMixture(2, verbose=True).fit(data)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == gmm.n_iter
    assert lines[0] == f"  EM iteration   1: mean log-likelihood {gmm.log_likelihood_history[0]:.6f}"
    GaussianMixture(2).fit(data)
    assert capsys.readouterr().out == ""


def test_one_point_gives_one_log_probability():
    gmm = GaussianMixture(2).fit(load_old_faithful())
    assert gmm.log_prob(np.array([[3.0, 70.0]])).shape == (1,)
    assert gmm.predict_proba(np.array([[3.0, 70.0]])).shape == (1, 2)


def test_fit_takes_a_list_of_rows():
    rows = np.random.default_rng(5).normal(size=(30, 2)).round(3)
    from_list = GaussianMixture(2).fit(rows.tolist())
    from_array = GaussianMixture(2).fit(rows)   # Python floats are float64: the same numbers
    np.testing.assert_array_equal(from_list.means, from_array.means)
    assert from_list.score(rows.tolist()) == from_array.score(rows)
    assert from_list.predict_proba(rows.tolist()).dtype == np.float32   # what comes back: zero's default


def test_a_fraction_of_a_sample_and_an_empty_score_are_refused_by_name():
    gmm = GaussianMixture(2).fit(load_old_faithful())
    with pytest.raises(ValueError, match=r"GaussianMixture.sample: n must be a whole number >= 1, got 3.7"):
        gmm.sample(3.7)
    with pytest.raises(ValueError, match=r"GaussianMixture.score: no data points to score"):
        gmm.score(np.zeros((0, 2)))


def test_a_list_is_not_rounded_to_float32_before_the_fit():
    values = 1e8 + 0.001 * np.arange(100)   # apart by less than float32's spacing at 1e8 (8)
    gmm = GaussianMixture(1, reg_covar=1e-6).fit(values.tolist())
    np.testing.assert_allclose(gmm.covariances.ravel(), values.var() + 1e-6, rtol=1e-4)
    np.testing.assert_allclose(gmm.score(values.tolist()), gmm.score(values), rtol=1e-12)


@pytest.mark.parametrize("option, value", [("tol", float("nan")), ("tol", -1.0), ("reg_covar", float("nan")),
                                           ("reg_covar", None), ("reg_covar", float("inf"))])
def test_a_tolerance_or_regularisation_that_is_not_a_finite_number_at_least_0_is_refused_by_name(option, value):
    """tol=nan ran all iterations and warned 'tol nan'; reg_covar=nan failed later as an asymmetric covariance."""
    with pytest.raises(ValueError, match=f"GaussianMixture: {option} must be a finite number >= 0"):
        GaussianMixture(2, **{option: value})


def test_negative_weights_that_sum_to_1_are_refused_with_the_smallest_one_named():
    with pytest.raises(ValueError, match="sum 1 and smallest -0.5"):
        GaussianMixture(2).fit(load_old_faithful(), weights=[1.5, -0.5])


def test_data_of_three_dimensions_is_refused_when_scored_as_when_fitted():
    gmm = GaussianMixture(1).fit(load_old_faithful())
    with pytest.raises(ValueError, match=r"shape \(N, D\) or \(N,\), got \(3, 2, 1\)"):
        gmm.log_prob(np.zeros((3, 2, 1)))


def test_predict_is_the_most_responsible_component_weights_included():
    """With unequal weights the likelihood alone picks otherwise: predict must agree with predict_proba."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 900), rng.normal(2, 1, 100)])[:, None]
    gmm = GaussianMixture(2).fit(x, weights=[0.9, 0.1], means=[[0.0], [2.0]],
                                 covariances=[[[1.0]], [[1.0]]])
    grid = np.linspace(-1, 4, 201)[:, None]
    np.testing.assert_array_equal(gmm.predict(grid), gmm.predict_proba(grid).argmax(axis=1))


def test_seeds_are_drawn_with_probability_proportional_to_the_squared_distance():
    """k-means++: after a first pick at 0, points at 1 and 3 (squared distances 1 and 9) come next
    with probabilities 0.1 and 0.9."""
    x = np.array([[0.0], [1.0], [3.0]])
    second = [picks[1] for picks in (GaussianMixture(2, seed=seed)._pick_seeds(x) for seed in range(3000))
              if picks[0] == 0]
    assert len(second) > 700
    assert abs(np.mean(np.array(second) == 1) - 0.1) < 0.03
    assert set(second) == {1, 2}


# ----- a mixture built from given parameters (GaussianMixture.from_parameters) ---------------------------
HAND_WEIGHTS = np.array([0.36, 0.64])
HAND_MEANS = np.array([[2.0, 54.5], [4.3, 80.0]])
HAND_COVARIANCES = np.array([[[0.07, 0.44], [0.44, 33.7]], [[0.17, 0.94], [0.94, 36.0]]])


def test_a_mixture_from_given_parameters_scores_and_predicts_by_the_formula():
    data = load_old_faithful().astype(np.float64)
    gmm = GaussianMixture.from_parameters(HAND_WEIGHTS, HAND_MEANS, HAND_COVARIANCES)
    assert gmm.n_components == 2 and gmm.n_iter == 0 and not gmm.converged
    np.testing.assert_array_equal(gmm.means, HAND_MEANS)
    np.testing.assert_array_equal(gmm.covariances, HAND_COVARIANCES)
    weighted = np.stack([HAND_WEIGHTS[k] * multivariate_normal_pdf(data, HAND_MEANS[k], HAND_COVARIANCES[k])
                         for k in range(2)], axis=1)   # phi_k N(x_n | mu_k, Sigma_k)
    np.testing.assert_allclose(gmm.log_prob(data), np.log(weighted.sum(axis=1)), rtol=1e-12)
    np.testing.assert_allclose(gmm.predict_proba(data), weighted / weighted.sum(axis=1, keepdims=True),
                               rtol=1e-10, atol=1e-300)
    np.testing.assert_array_equal(gmm.predict(data), weighted.argmax(axis=1))


def test_a_mixture_from_given_parameters_samples_from_them():
    gmm = GaussianMixture.from_parameters(HAND_WEIGHTS, HAND_MEANS, HAND_COVARIANCES, seed=3)
    samples, labels = gmm.sample(40_000)
    assert samples.dtype == np.float64   # the means' dtype
    np.testing.assert_allclose(np.bincount(labels) / len(labels), HAND_WEIGHTS, atol=0.01)
    for k in range(2):
        members = samples[labels == k]
        np.testing.assert_allclose(members.mean(axis=0), HAND_MEANS[k], rtol=0.01)
        np.testing.assert_allclose(np.cov(members.T), HAND_COVARIANCES[k], rtol=0.05)
    np.testing.assert_array_equal(gmm.sample(10)[0], gmm.sample(10, seed=3)[0])


def test_a_mixture_from_lists_is_float64_inside_and_samples_float32():
    gmm = GaussianMixture.from_parameters([1.0], [[0.0]], [[[4.0]]])
    assert gmm.means.dtype == np.float64 and gmm.sample(3)[0].dtype == np.float32
    assert gmm.log_prob([0.0])[0] == pytest.approx(-0.5 * np.log(2 * np.pi * 4.0), rel=1e-12)


def test_weights_that_sum_to_1_only_after_rounding_are_normalised():
    gmm = GaussianMixture.from_parameters([0.333333, 0.333333, 0.333333], np.zeros((3, 1)), np.ones((3, 1, 1)))
    assert float(gmm.weights.sum()) == pytest.approx(1.0, abs=1e-15)


def test_a_parameter_on_another_device_is_refused_not_copied_to_the_host():
    """from_parameters and fit's initial parameters moved device arrays to the host without being asked."""
    with pytest.raises(TypeError, match="GaussianMixture: weights on strict and the data on cpu"):
        GaussianMixture.from_parameters(on("strict", HAND_WEIGHTS), HAND_MEANS, HAND_COVARIANCES)
    data = np.random.default_rng(0).standard_normal((40, 2))
    with pytest.raises(TypeError, match="GaussianMixture: means on strict and the data on cpu"):
        GaussianMixture(2).fit(data, means=on("strict", HAND_MEANS))


@pytest.mark.parametrize("method", ["log_prob", "score", "predict_proba", "predict"])
def test_data_on_another_device_than_the_parameters_is_refused_by_name_and_host_data_is_moved(method):
    """Data on another device failed deep inside with 'a numpy.ndarray (shape (2, 2, 2)) was mixed into
    a device computation', naming neither the method nor the data; host data beside parameters on a
    device failed the same way."""
    data = np.random.default_rng(0).standard_normal((5, 2))
    on_the_host = GaussianMixture.from_parameters(HAND_WEIGHTS, HAND_MEANS, HAND_COVARIANCES)
    with pytest.raises(TypeError, match=f"GaussianMixture.{method}: the data on strict and the mixture's "
                                        f"parameters on cpu: move the data to cpu first"):
        getattr(on_the_host, method)(on("strict", data))
    on_the_device = GaussianMixture.from_parameters(HAND_WEIGHTS, on("strict", HAND_MEANS), HAND_COVARIANCES)
    result = getattr(on_the_device, method)(data)
    np.testing.assert_allclose(host(result), getattr(on_the_host, method)(data), rtol=1e-12)


def test_a_component_of_weight_zero_gets_probability_zero_without_a_warning(device):
    """log 0 = -inf is its right log weight, but computing it warned 'divide by zero encountered in log',
    an error under -W error: such a mixture could not score or predict."""
    gmm = GaussianMixture.from_parameters([1.0, 0.0], on(device, [[0.0], [5.0]]), [[[1.0]], [[1.0]]])
    x = on(device, [[0.1], [4.9]])   # the second point sits at the mean of the component of weight 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = gmm.score(x)
        responsibilities = host(gmm.predict_proba(x))
        predicted = host(gmm.predict(x))
    assert score == pytest.approx(np.mean([-0.5 * math.log(2 * math.pi) - 0.5 * point ** 2 for point in (0.1, 4.9)]))
    np.testing.assert_array_equal(responsibilities, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(predicted, [0, 0])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # NumPy's, squaring 1e155
def test_points_too_far_from_every_component_to_compare_them_are_refused_by_name(device):
    """A point about 1e155 standard deviations from every mean has a squared distance beyond float64:
    log density -inf under each component. predict_proba returned NaN responsibilities for it and
    predict component 0, silently; log_prob's -inf is the nearest float64 to its log density."""
    gmm = GaussianMixture.from_parameters(HAND_WEIGHTS, on(device, HAND_MEANS), HAND_COVARIANCES)
    x = on(device, [[0.0, 0.0], [1e155, 0.0], [1e150, 0.0], [0.0, -1e200]])
    for method in ("predict_proba", "predict"):
        with pytest.raises(ValueError, match=rf"GaussianMixture.{method}: 2 of 4 points \(first: row 1\) lie so far "
                                             rf"from every component .*the units of the data the mixture was fitted on"):
            getattr(gmm, method)(x)
    near = x[[0, 2]]   # 1e150: squared, still within float64, and so still compared
    np.testing.assert_allclose(host(gmm.predict_proba(near)).sum(axis=1), 1, rtol=1e-6)
    assert host(gmm.predict(near)).shape == (2,)
    log_prob = host(gmm.log_prob(x))
    assert np.isfinite(log_prob[[0, 2]]).all() and (log_prob[[1, 3]] == -np.inf).all()


def test_a_mixture_from_parameters_on_a_device_stays_there(device):
    gmm = GaussianMixture.from_parameters(HAND_WEIGHTS, on(device, HAND_MEANS), HAND_COVARIANCES)
    for value in (gmm.weights, gmm.means, gmm.covariances):
        assert device_of(value) == device
    reference = GaussianMixture.from_parameters(HAND_WEIGHTS, HAND_MEANS, HAND_COVARIANCES)
    data = load_old_faithful()
    log_prob = gmm.log_prob(on(device, data))
    assert device_of(log_prob) == device
    np.testing.assert_allclose(host(log_prob), reference.log_prob(data), rtol=1e-12)


@pytest.mark.parametrize("weights, means, covariances, problem", [
    (HAND_WEIGHTS, HAND_MEANS[0], HAND_COVARIANCES, r"means must have shape \(K, D\).*got \(2,\)"),
    (HAND_WEIGHTS, np.zeros((0, 2)), HAND_COVARIANCES, r"means must have shape \(K, D\).*got \(0, 2\)"),
    ([0.2, 0.3, 0.5], HAND_MEANS, HAND_COVARIANCES, r"weights must have shape \(2,\) \(K = 2 components"),
    ([0.5, 0.6], HAND_MEANS, HAND_COVARIANCES, r"weights must be non-negative and sum to 1, got sum 1.1"),
    ([1.5, -0.5], HAND_MEANS, HAND_COVARIANCES, r"weights must be non-negative.*smallest -0.5"),
    (HAND_WEIGHTS, HAND_MEANS, HAND_COVARIANCES[0],
     r"covariances must have shape \(2, 2, 2\) \(K = 2 components, D = dimension of the means\), got \(2, 2\)"),
    (HAND_WEIGHTS, [[np.nan, 54.5], [4.3, 80.0]], HAND_COVARIANCES, "means contains NaN or infinite values"),
    (HAND_WEIGHTS, HAND_MEANS, np.stack([HAND_COVARIANCES[0], -HAND_COVARIANCES[1]]),
     r"covariance is not positive definite \(component 1\).*give symmetric positive-definite covariances"),
    (HAND_WEIGHTS, HAND_MEANS, np.stack([HAND_COVARIANCES[0], [[0.17, 0.94], [0.0, 36.0]]]),
     r"covariance is not symmetric.*give symmetric positive-definite covariances"),
], ids=["means-not-2d", "no-components", "weights-shape", "weights-sum", "negative-weight", "covariances-shape",
        "nan-mean", "not-positive-definite", "not-symmetric"])
def test_bad_given_parameters_are_named(weights, means, covariances, problem):
    with pytest.raises(ValueError, match=problem):
        GaussianMixture.from_parameters(weights, means, covariances)


@pytest.mark.parametrize("method", ["score", "log_prob", "predict_proba", "predict"])
def test_a_fitted_mixture_refuses_nan_data_as_fit_does(method):
    """score, log_prob and predict_proba returned NaN for NaN rows (predict, component 0), while fit refused them."""
    mixture = GaussianMixture(2, seed=0).fit(np.random.default_rng(0).standard_normal((50, 2)))
    data = np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, np.inf]])
    with pytest.raises(ValueError, match=rf"GaussianMixture.{method}: data contains NaN or infinite values in 2 of 3 "
                                         rf"rows \(first: row 1\)"):
        getattr(mixture, method)(data)


def test_a_point_too_far_out_for_any_density_to_be_a_float_has_log_probability_minus_inf_not_nan():
    """log N at 1e160 standard deviations is about -5e319, below the floats: -inf is its value.
    With two components or more, the squared distances were summed by a product with a 0/1 matrix,
    whose zeros met the other components' inf (0 * inf = NaN), and logsumexp of all -inf was
    -inf - (-inf) = NaN: log_prob and score came out NaN. Found probing far points."""
    mixture = GaussianMixture.from_parameters([0.5, 0.5], [[0.0, 0.0], [3.0, 0.0]], [np.eye(2), 2 * np.eye(2)])
    near, far = [1.0, 2.0], [1e160, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # NumPy says the squares overflowed: they did
        log_probs = mixture.log_prob(np.array([near, far]))
        score = mixture.score(np.array([far]))
    expected_near = math.log(0.5 * multivariate_normal_pdf(np.array(near), np.zeros(2), np.eye(2))
                             + 0.5 * multivariate_normal_pdf(np.array(near), np.array([3.0, 0.0]), 2 * np.eye(2)))
    assert log_probs[0] == pytest.approx(expected_near, rel=1e-12)
    assert log_probs[1] == -np.inf and score == -np.inf


def test_logsumexp_of_nothing_but_minus_inf_is_minus_inf():
    a = np.array([[-np.inf, -np.inf], [-np.inf, 0.0]])
    np.testing.assert_array_equal(logsumexp(a, axis=1), [-np.inf, 0.0])


def test_data_whose_covariance_overflows_is_refused_by_fit_saying_to_rescale_it():
    """Data of finite values near 1e160 have squares beyond float64: the data's covariance, every component's
    initial one, was inf - inf = NaN, and fit said 'initial covariance is not symmetric (largest |C - C^T|
    entry nan); give symmetric positive-definite covariances', though none were given. Found probing huge scales."""
    x = np.random.default_rng(0).normal(size=(50, 2)) * 1e160
    with pytest.raises(ValueError, match=r"^GaussianMixture.fit: the data's covariance overflows float64 "
                                         r"\(values up to 2.\d+e\+160.*rescale the data"):
        GaussianMixture(2).fit(x)


def test_features_in_very_different_units_fit_as_in_any_other_units_and_a_constant_feature_is_refused():
    """Millimetres beside megametres (variances 1e16 apart) were refused as 'singular to working precision':
    the test compared every pivot with the largest variance, not its own. EM is equivariant under a change
    of units, and with reg_covar = 0 the fit in these units is the fit of the rescaled data, rescaled. A
    constant feature is refused by name, about the data, not about covariances nobody gave."""
    rng = np.random.default_rng(0)
    unit_data = np.vstack([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) * 0.5 + 4])
    units = np.array([1e-3, 1e5])
    start = unit_data[[0, 150]]   # the same initial means (k-means++ seeding measures distances in the units)
    in_units = GaussianMixture(2, reg_covar=0).fit(unit_data * units, means=start * units)
    plain = GaussianMixture(2, reg_covar=0).fit(unit_data, means=start)
    assert in_units.n_iter == plain.n_iter
    np.testing.assert_allclose(in_units.weights, plain.weights, rtol=1e-9)
    np.testing.assert_allclose(in_units.means, plain.means * units, rtol=1e-9)
    np.testing.assert_allclose(in_units.covariances, plain.covariances * np.outer(units, units), rtol=1e-9)
    GaussianMixture(2).fit(unit_data * units)   # with the default reg_covar too
    with pytest.raises(ValueError, match=r"^GaussianMixture.fit: the data's covariance plus reg_covar I .* is not "
                                         r"positive definite: .*The data lie on a subspace \(a constant feature.*"
                                         r"raise reg_covar \(now 0\)"):
        GaussianMixture(2, reg_covar=0).fit(np.column_stack([unit_data[:, 0] * 1e-3, np.full(200, 3.0)]))


def test_max_iter_1_warns_that_one_iteration_measures_no_change_not_a_change_of_inf():
    """The first change is measured from -inf: with max_iter=1 the warning read 'did not converge in 1
    iterations (last change in mean log-likelihood inf, tol 0.001)'. Found probing max_iter=1."""
    with pytest.warns(UserWarning) as caught:
        gmm = GaussianMixture(2, max_iter=1).fit(load_old_faithful())
    assert str(caught[0].message) == ("EM did not converge in 1 iteration (one iteration measures no change; "
                                      "convergence is judged from the second)")
    assert gmm.n_iter == 1 and not gmm.converged


def test_em_stops_on_the_size_of_the_change_even_where_the_log_likelihood_falls():
    """With a large reg_covar the M-step no longer maximises and the log-likelihood can fall: EM stops at
    the first change below tol in size, |change| < tol (scikit-learn's criterion), not at the first fall."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, (100, 2)), rng.normal(3, 0.3, (100, 2))])
    gmm = GaussianMixture(2, reg_covar=3.0, tol=1e-6, max_iter=50, seed=0).fit(x)
    changes = np.diff(gmm.log_likelihood_history)
    assert changes.min() < -1e-4, changes   # the log-likelihood fell on the way
    assert gmm.converged and gmm.n_iter == len(gmm.log_likelihood_history)
    assert (np.abs(changes[:-1]) >= 1e-6).all() and abs(changes[-1]) < 1e-6, changes


def test_a_component_collapsed_onto_one_point_is_named_before_its_log_likelihood_is_rounding_noise():
    """One of test_em_log_likelihood_never_decreases' problems (found by a random search over them): EM's
    second M-step shrinks component 3 onto one data point, standard deviations of 4e-15 to 3e-14 around a
    mean about 9 from the origin, where float64 numbers are 2e-15 apart. Its correlations looked fine, so
    cholesky passed it, and the next E-step's log-likelihood fell (-6.90 to -7.11): x_n - mu_k rounded by
    more than the spread. EM stops at the M-step that collapses it, naming it, with a history that never fell."""
    x, weights, means, covariances = _mixture_problem(288384775, dim=3, n_components=4, n_points=67, n_clusters=3)
    mixture = GaussianMixture(4, reg_covar=0.0, tol=1e-10, max_iter=60)
    with pytest.raises(ValueError, match=r"^EM iteration 2: component 3 collapsed onto a single point .*increase "
                                         r"reg_covar"):
        mixture.fit(x, weights, means, covariances)
    assert len(mixture.log_likelihood_history) == 2
    assert np.diff(mixture.log_likelihood_history).min() > 0
    fitted = GaussianMixture(4, reg_covar=1e-6, max_iter=300).fit(x, weights, means, covariances)  # the usual fix
    assert np.diff(fitted.log_likelihood_history).min() > -1e-12


@pytest.mark.parametrize("offset, scale", [(0.0, 1e-20), (1e6, 1.0), (-1e6, 1e-3)])
def test_small_spreads_that_floating_point_resolves_are_not_collapsed(offset, scale):
    """Only a spread below what float64 can resolve around the mean counts as collapsed: data of any scale
    (1e-20 around 0) or far from the origin (1e6, spread 1e-3: 1e-9 of it, far above 2e-16) fits as before."""
    rng = np.random.default_rng(3)
    x = offset + scale * np.concatenate([rng.normal(-2, 0.5, (60, 2)), rng.normal(2, 0.5, (60, 2))])
    mixture = GaussianMixture(2, reg_covar=0.0, max_iter=200, seed=1).fit(x)
    assert mixture.converged
    np.testing.assert_allclose(np.sort(mixture.means[:, 0]), offset + scale * np.array([-2, 2]), atol=0.3 * scale)
