"""zero.vae: the ELBO's pieces against hand computation and Monte Carlo, the IWAE estimate
against an exact likelihood, the models on both devices, and a short real training run."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.stats import multivariate_normal, norm

import zero
import zero.functions as F
from zero.functions.gaussian import GaussianKLGrad, ReparameterizeGrad
from conftest import assert_double_backprop_on_strict_matches_cpu, host, on, second_order_check
from test_activations_losses import check_double_backprop
from zero.models import Model
from zero.optimizers import Adam
from zero.training import fit, load_checkpoint, mean_loss, mnist_splits, save_checkpoint
from zero.vae import (VAE, HierarchicalVAE, bernoulli_log_likelihood, book_kl_term, bound_difference,
                      evaluate_bounds, gaussian_kl, gaussian_log_pdf, iwae_from_log_weights, latent_walk,
                      loss_terms, walk_ends)
from zero.utils import gradient_check


def V(array, device="cpu"):
    return zero.Variable(on(device, np.asarray(array)))


def test_gaussian_kl_by_hand_and_book_term_is_twice_it():
    mu = np.array([[0.5, -1.0]])
    logvar = np.array([[0.0, math.log(4.0)]])
    # 1/2 sum (sigma^2 + mu^2 - 1 - log sigma^2) = 1/2 [(1 + .25 - 1 - 0) + (4 + 1 - 1 - log 4)]
    expected = 0.5 * (0.25 + 4 - math.log(4.0))
    assert gaussian_kl(V(mu), V(logvar)).data == pytest.approx([expected])
    assert book_kl_term(V(mu), V(logvar)).data == pytest.approx(2 * expected)
    prior_mean = np.array([[1.5, 0.0]])  # (mu - m) = (-1, -1)
    assert gaussian_kl(V(mu), V(logvar), V(prior_mean)).data == pytest.approx([0.5 * (1 + 4 + 1 - 1 - math.log(4.0))])


latent_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)   # (..., latent)


def _seeded(seed, function, device="cpu"):
    """function with device's generator seeded before each call: the same eps every time."""
    def call(*args):
        zero.backend.seed(seed, device)
        return function(*args)
    return call


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=latent_shapes, seed=st.integers(0, 2**32 - 1))
def test_gaussian_ops_gradients_against_numerical_ones(device, shape, seed):
    """The one-op KL and reparameterized sample (zero.functions.gaussian) on any batch shape."""
    rng = np.random.default_rng(seed)
    mu, logvar = on(device, rng.standard_normal(shape)), on(device, rng.standard_normal(shape))
    kl_weights = V(rng.standard_normal(shape[:-1]), device)
    z_weights = V(rng.standard_normal(shape), device)
    gradient_check(lambda m, lv: F.gaussian_kl_from_standard(m, lv) * kl_weights, mu, logvar)
    gradient_check(_seeded(seed % 2**31, lambda m, lv: F.reparameterize(m, lv) * z_weights, device), mu, logvar)


def test_gaussian_ops_equal_their_formulas_and_keep_float32(device):
    rng = np.random.default_rng(4)
    mu, logvar = (rng.standard_normal((5, 3)).astype(np.float32) for _ in range(2))
    kl = F.gaussian_kl_from_standard(V(mu, device), V(logvar, device))
    zero.backend.seed(9, device)
    z = F.reparameterize(V(mu, device), V(logvar, device))
    zero.backend.seed(9, device)
    eps = host(zero.backend.standard_normal(zero.backend.get_backend(device).xp, (5, 3)))
    assert kl.dtype == z.dtype == np.float32 and kl.shape == (5,)
    mu64, logvar64 = mu.astype(np.float64), logvar.astype(np.float64)
    np.testing.assert_allclose(host(kl.data), 0.5 * (np.exp(logvar64) + mu64 ** 2 - 1 - logvar64).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(host(z.data), mu64 + np.exp(0.5 * logvar64) * eps, rtol=1e-6, atol=1e-7)
    for op, name in [(F.gaussian_kl_from_standard, "GaussianKL"), (F.reparameterize, "Reparameterize")]:
        with pytest.raises(ValueError, match=name + r": mu and logvar must have the same shape.*\(5, 3\)"):
            op(V(mu), V(logvar[:, :2]))


@pytest.mark.parametrize("op", ["kl", "reparameterize"])
def test_gaussian_ops_second_derivatives_by_double_backprop(op):
    """x stacks mu and logvar; tanh makes the loss curved in z, so both of
    ReparameterizeGrad's inputs (logvar and the incoming gradient) get second derivatives."""
    rng = np.random.default_rng(5)
    weights = zero.Variable(rng.standard_normal((3, 4)))
    if op == "kl":
        loss = lambda x: (F.tanh(F.gaussian_kl_from_standard(x[0], x[1])) * weights[:, 0]).sum()
    else:
        loss = _seeded(6, lambda x: (F.tanh(F.reparameterize(x[0], x[1])) * weights).sum())
    check_double_backprop(loss, rng.standard_normal((2, 3, 4)))


@pytest.mark.parametrize("penalized", [0, 1], ids=["mu_gradient_only", "logvar_gradient_only"])
def test_gaussian_kl_double_backprop_through_one_of_its_gradients(penalized):
    """A penalty on dKL/dmu alone (or dKL/dlogvar alone) leaves GaussianKLGrad.backward one of its
    two output gradients None, a branch of its own that no test ran (the test above penalises both)."""
    rng = np.random.default_rng(7)
    second_order_check(F.gaussian_kl_from_standard, [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))],
                       penalized=[penalized])


def test_gaussian_kl_double_backprop_sums_over_the_last_axis_of_three():
    """GaussianKLGrad.backward sums its gradient for gy over the latent (last) axis. On (2, 3, 4)
    inputs that is not axis 1, with which the 2-D inputs of the tests above agree."""
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))]
    for penalized in ([0], [1]):
        second_order_check(F.gaussian_kl_from_standard, arrays, penalized=penalized)


def _reparameterized(device, mu, logvar):
    zero.backend.seed(6, device)   # the same eps on both devices
    return F.reparameterize(mu, logvar)


@pytest.mark.parametrize("penalized", [None, [0], [1]], ids=["both", "mu_gradient_only", "logvar_gradient_only"])
@pytest.mark.parametrize("op", ["kl", "reparameterize"])
def test_gaussian_ops_double_backprop_on_strict_device_matches_cpu(op, penalized):
    """Double backprop never ran on the strict device: a host copy in GaussianKLGrad's or
    ReparameterizeGrad's backward passed every test."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))]
    if op == "kl":
        f, reaches = lambda device, mu, logvar: F.gaussian_kl_from_standard(mu, logvar), [GaussianKLGrad.backward]
    else:   # dz/dmu = 1: a penalty on the mu gradient alone never reaches ReparameterizeGrad
        f, reaches = _reparameterized, [ReparameterizeGrad.backward] if penalized != [0] else []
    assert_double_backprop_on_strict_matches_cpu(f, arrays, penalized, reaches)


def test_gaussian_kl_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mu, logvar, prior_mean = rng.normal(size=(1, 3)), rng.normal(size=(1, 3)) * 0.5, rng.normal(size=(1, 3))
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * rng.standard_normal((200_000, 3))
    # KL = E_q[log q(z) - log p(z)], p = N(prior_mean, I)
    log_q = norm.logpdf(z, mu, sigma).sum(axis=1)
    log_p = norm.logpdf(z, prior_mean, 1.0).sum(axis=1)
    monte_carlo = (log_q - log_p).mean()
    standard_error = (log_q - log_p).std() / math.sqrt(len(z))
    exact = gaussian_kl(V(mu), V(logvar), V(prior_mean)).data[0]
    assert abs(exact - monte_carlo) < 4 * standard_error


def test_log_densities_against_scipy_and_by_hand():
    rng = np.random.default_rng(1)
    x, mean, logvar = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    expected = norm.logpdf(x, mean, np.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(gaussian_log_pdf(V(x), V(mean), V(logvar)).data, expected, rtol=1e-10)
    np.testing.assert_allclose(gaussian_log_pdf(V(x)).data, norm.logpdf(x).sum(axis=1), rtol=1e-10)
    targets, logits = np.array([[1.0, 0.0, 0.3]]), np.array([[2.0, -1.0, 0.5]])
    p = 1 / (1 + np.exp(-logits))
    by_hand = (targets * np.log(p) + (1 - targets) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(bernoulli_log_likelihood(V(targets), V(logits)).data, by_hand, rtol=1e-12)


def _with_seed(seed, function, *args):
    np.random.seed(seed)
    return function(*args)


def test_book_loss_is_twice_the_gaussian_negative_elbo_minus_its_constant():
    np.random.seed(0)
    model = VAE(12, 8, 3)
    x = V(np.random.rand(5, 12).astype(np.float32))
    loss = _with_seed(7, model.loss, x).data            # same eps in both calls
    nelbo = _with_seed(7, model.negative_elbo, x).data  # (N,)
    # book = sum (x - x_hat)^2 + 2 KL = 2 (-ELBO) - D log(2 pi), per image
    assert loss == pytest.approx(2 * nelbo.mean() - 12 * math.log(2 * math.pi), rel=1e-5)


def test_book_loss_by_hand_on_a_tiny_model():
    np.random.seed(3)
    model = VAE(4, 3, 2)
    x = np.random.rand(2, 4).astype(np.float32)
    loss = _with_seed(11, model.loss, V(x)).data
    np.random.seed(11)
    eps = np.random.standard_normal((2, 2)).astype(np.float32)
    W = {name: p.data for name, p in model.named_params()}
    h = np.maximum(x @ W["encoder.hidden.W"] + W["encoder.hidden.b"], 0)
    mu = h @ W["encoder.to_mu.W"] + W["encoder.to_mu.b"]
    logvar = h @ W["encoder.to_logvar.W"] + W["encoder.to_logvar.b"]
    z = mu + np.exp(0.5 * logvar) * eps
    hidden = np.maximum(z @ W["decoder.layers.0.W"] + W["decoder.layers.0.b"], 0)
    x_hat = 1 / (1 + np.exp(-(hidden @ W["decoder.layers.1.W"] + W["decoder.layers.1.b"])))
    by_hand = (((x - x_hat) ** 2).sum() - (1 + logvar - mu ** 2 - np.exp(logvar)).sum()) / 2
    assert loss == pytest.approx(by_hand, rel=1e-5)


def test_iwae_approaches_the_exact_likelihood_of_a_linear_gaussian_model():
    """z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_3): p(x) = N(b, W W^T + s^2 I) exactly.
    With the prior as proposal q, -ELBO > IWAE(K=10) > IWAE(K=2000) ~= -log p(x)."""
    rng = np.random.default_rng(2)
    W, b, s = rng.normal(size=(2, 3)), rng.normal(size=3), 0.7
    x = rng.normal(size=(1, 3)) + b
    exact = -multivariate_normal(b, W.T @ W + s ** 2 * np.eye(3)).logpdf(x[0])

    def log_weights(k):
        z = rng.standard_normal((k, 2))
        mean = z @ W + b
        # log p(x | z) + log p(z) - log q(z), q = p(z): the prior terms cancel
        return gaussian_log_pdf(V(np.repeat(x, k, axis=0)), V(mean), V(np.full((k, 3), 2 * math.log(s)))).data

    def iwae(k, repeats=200):
        return np.mean([iwae_from_log_weights(V(log_weights(k)[:, None])).data[0] for _ in range(repeats)])

    negative_elbo = -np.mean(log_weights(200_000))
    assert negative_elbo > iwae(10) > iwae(2000) > exact - 0.05
    assert iwae(2000, repeats=20) == pytest.approx(exact, abs=0.05)


@pytest.mark.parametrize("make", [lambda: VAE(16, 8, 3), lambda: HierarchicalVAE(16, 8, 3, levels=3),
                                  lambda: VAE(16, 8, 3, likelihood="bernoulli")])
def test_models_train_sample_and_evaluate_on_each_device(make, device):
    np.random.seed(0)
    model = make().to(device)
    x = V(np.random.rand(6, 16).astype(np.float32), device)
    loss = model.loss(x)
    loss.backward()
    assert loss.device == device and np.isfinite(host(loss.data))
    for name, param in model.named_params():
        assert param.grad is not None and param.grad.device == device, name
    assert model.negative_elbo(x).shape == (6,) and model.log_weight(x).shape == (6,)
    samples = model.sample(5)
    assert zero.backend.device_of(samples) == device and samples.shape == (5, 16)
    assert model.reconstruct(x).shape == (6, 16)
    bounds = evaluate_bounds(model, np.random.rand(40, 16).astype(np.float32), samples=30, batch_size=16,
                             device=device, progress=False)
    # independent draws for the two, ordered in expectation only: with 30 draws of 40 images, tighter here
    assert bounds["iwae_nll"] < bounds["negative_elbo"]


def test_one_level_hierarchical_vae_is_the_vae():
    np.random.seed(0)
    vae, hvae = VAE(10, 6, 2), HierarchicalVAE(10, 6, 2, levels=1)
    for (name, p), (_, q) in zip(vae.named_params(), hvae.named_params()):
        q.data = p.data.copy()
    x = V(np.random.rand(4, 10).astype(np.float32))
    for method in ["loss", "negative_elbo", "log_weight"]:
        np.testing.assert_allclose(_with_seed(5, getattr(vae, method), x).data,
                                   _with_seed(5, getattr(hvae, method), x).data, rtol=1e-6)


def test_hierarchical_negative_elbo_and_log_weights_estimate_the_same_bound():
    np.random.seed(1)
    model = HierarchicalVAE(10, 6, 2, levels=2).astype(np.float64)
    x = V(np.repeat(np.random.rand(1, 10), 20_000, axis=0).astype(np.float64))
    nelbo, log_w = model.negative_elbo(x).data, model.log_weight(x).data
    standard_error = math.hypot(nelbo.std(), log_w.std()) / math.sqrt(len(nelbo))
    assert abs(nelbo.mean() + log_w.mean()) < 4 * standard_error


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="levels"):
        HierarchicalVAE(levels=0)


@pytest.mark.parametrize("model_class", [VAE, HierarchicalVAE])
def test_short_training_on_real_mnist_lowers_the_heldout_loss(real_mnist_dir, model_class):
    np.random.seed(0)
    data = mnist_splits(real_mnist_dir, "test", train_limit=1000, heldout_limit=300)
    model = model_class()
    before = mean_loss(model, data.x_heldout)
    history = fit(model, Adam(model.params(), lr=1e-3), data.x_train, epochs=3, x_heldout=data.x_heldout)
    assert history["heldout_loss"][-1] < 0.5 * before
    bounds = evaluate_bounds(model, data.x_heldout, samples=20, progress=False)
    assert bounds["iwae_nll"] < bounds["negative_elbo"]
    # -log N(x | x_hat, I) = |x - x_hat|^2 / 2 + D/2 log(2 pi) and KL >= 0, so -ELBO >= D/2 log(2 pi)
    assert bounds["negative_elbo"] > 392 * math.log(2 * math.pi)


# --- decoder std != 1, the Bernoulli hierarchical VAE, top-down sampling: against hand computation ---
def _float64(model):
    return model.astype(np.float64)


def _mlp_by_hand(W, prefix, z):
    """The decoders' MLP (latent -> relu hidden -> out, no output activation) from its weights."""
    hidden = np.maximum(z @ W[prefix + ".layers.0.W"] + W[prefix + ".layers.0.b"], 0)
    return hidden @ W[prefix + ".layers.1.W"] + W[prefix + ".layers.1.b"]


def _encoder_by_hand(W, prefix, x):
    h = np.maximum(x @ W[prefix + ".hidden.W"] + W[prefix + ".hidden.b"], 0)
    return h @ W[prefix + ".to_mu.W"] + W[prefix + ".to_mu.b"], h @ W[prefix + ".to_logvar.W"] + W[prefix + ".to_logvar.b"]


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


@pytest.mark.parametrize("std", [0.5, 2.0, 1.0])
def test_gaussian_log_prob_with_a_decoder_std_matches_scipy(std):
    """log p(x | z) = sum_d log N(x_d | sigmoid(logit_d), std^2), constants included."""
    rng = np.random.default_rng(20)
    x, logits = rng.random((4, 7)), rng.normal(size=(4, 7))
    model = VAE(7, 5, 2, decoder_std=std)
    expected = norm.logpdf(x, _sigmoid(logits), std).sum(axis=1)
    np.testing.assert_allclose(model.likelihood.log_prob(V(x), V(logits)).data, expected, rtol=1e-12)


@pytest.mark.parametrize("std", [0.5, 2.0])
def test_negative_elbo_with_a_decoder_std_by_hand(std):
    """-ELBO = -sum_d log N(x_d | x_hat_d, std^2) + KL(N(mu, e^logvar) || N(0, I)), one z = mu + sigma eps."""
    np.random.seed(21)
    model = _float64(VAE(6, 5, 3, decoder_std=std))
    x = np.random.rand(4, 6)
    nelbo = _with_seed(22, model.negative_elbo, V(x)).data
    log_w = _with_seed(22, model.log_weight, V(x)).data
    np.random.seed(22)
    eps = np.random.standard_normal((4, 3))
    W = {name: p.data for name, p in model.named_params()}
    mu, logvar = _encoder_by_hand(W, "encoder", x)
    z = mu + np.exp(0.5 * logvar) * eps
    x_hat = _sigmoid(_mlp_by_hand(W, "decoder", z))
    log_likelihood = norm.logpdf(x, x_hat, std).sum(axis=1)
    kl = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).sum(axis=1)
    np.testing.assert_allclose(nelbo, -log_likelihood + kl, rtol=1e-10)
    log_q = norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(log_w, log_likelihood + norm.logpdf(z).sum(axis=1) - log_q, rtol=1e-10)


def _bottom_up_chain_by_hand(W, x, levels, seed):
    """[(mu_l, logvar_l, z_l)] for l = 1..L: each encoder reads the level below (x, then z_1, ...),
    z_l = mu_l + sigma_l eps_l, the eps drawn bottom-up from the global generator seeded with seed."""
    np.random.seed(seed)
    chain, below = [], x
    for level in range(levels):
        mu, logvar = _encoder_by_hand(W, f"encoders.{level}", below)
        below = mu + np.exp(0.5 * logvar) * np.random.standard_normal(mu.shape)
        chain.append((mu, logvar, below))
    return chain


@pytest.mark.parametrize("levels", [2, 3])
def test_bernoulli_hierarchical_loss_by_hand(levels):
    """Bernoulli: loss = (BCE(x, x_hat(z_1)) + sum_l KL(q(z_l | .) || N(zhat_l, I))) / N, where
    zhat_l = decoders[l](z_{l+1}) for l < L and zhat_L = 0; z_l = mu_l + sigma_l eps_l, drawn bottom-up."""
    np.random.seed(23)
    model = _float64(HierarchicalVAE(8, 5, 3, levels=levels, likelihood="bernoulli"))
    x = (np.random.rand(5, 8) > 0.5).astype(np.float64)
    loss = _with_seed(24, model.loss, V(x)).data
    W = {name: p.data for name, p in model.named_params()}
    chain = _bottom_up_chain_by_hand(W, x, levels, seed=24)
    p = _sigmoid(_mlp_by_hand(W, "decoders.0", chain[0][2]))
    total = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum()
    for level, (mu, logvar, _) in enumerate(chain):
        prior = _mlp_by_hand(W, f"decoders.{level + 1}", chain[level + 1][2]) if level + 1 < levels else 0.0
        total += 0.5 * (np.exp(logvar) + (mu - prior) ** 2 - 1 - logvar).sum()
    assert loss == pytest.approx(total / len(x), rel=1e-10)


@pytest.mark.parametrize("levels", [2, 3])
def test_hierarchical_sample_is_the_documented_top_down_chain(levels):
    """z_L ~ N(0, I); z_l = zhat_l(z_{l+1}) + N(0, I) noise for l = L-1..1; image = sigmoid(decoders[0](z_1)),
    the draws made in that order from the global generator."""
    np.random.seed(25)
    model = HierarchicalVAE(9, 6, 4, levels=levels)
    samples = _with_seed(26, model.sample, 5)
    np.random.seed(26)
    W = {name: p.data for name, p in model.named_params()}
    z = np.random.standard_normal((5, 4)).astype(np.float32)
    for level in range(levels - 1, 0, -1):
        z_hat = _mlp_by_hand(W, f"decoders.{level}", z)
        z = z_hat + np.random.standard_normal(z_hat.shape).astype(np.float32)
    expected = _sigmoid(_mlp_by_hand(W, "decoders.0", z))
    assert samples.shape == (5, 9) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)


# --- the Gaussian hierarchical loss, the Bernoulli VAE loss, reconstruct and sample: by hand ----------
def test_book_kl_term_with_a_prior_mean_by_hand():
    """-sum(1 + logvar - (mu - m)^2 - e^logvar) over the batch: twice the KL to N(m, I), summed."""
    mu, logvar = np.array([[0.5, -1.0], [0.0, 2.0]]), np.array([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    prior_mean = np.array([[1.5, 0.0], [-1.0, 1.0]])   # mu - m = (-1, -1), (1, 1)
    expected = (1 + 1 - 1 - 0) + (4 + 1 - 1 - math.log(4.0)) + (0.25 + 1 - 1 - math.log(0.25)) + (1 + 1 - 1 - 0)
    assert book_kl_term(V(mu), V(logvar), V(prior_mean)).data == pytest.approx(expected)


@pytest.mark.parametrize("levels", [2, 3])
def test_gaussian_hierarchical_loss_by_hand(levels):
    """The book's loss: (sum (x - x_hat(z_1))^2 + sum_l -sum(1 + logvar_l - (mu_l - zhat_l)^2 - e^logvar_l)) / N,
    zhat_l = decoders[l](z_{l+1}) for l < L and zhat_L = 0."""
    np.random.seed(27)
    model = _float64(HierarchicalVAE(8, 5, 3, levels=levels))
    x = np.random.rand(5, 8)
    loss = _with_seed(28, model.loss, V(x)).data
    W = {name: p.data for name, p in model.named_params()}
    chain = _bottom_up_chain_by_hand(W, x, levels, seed=28)
    total = ((x - _sigmoid(_mlp_by_hand(W, "decoders.0", chain[0][2]))) ** 2).sum()
    for level, (mu, logvar, _) in enumerate(chain):
        prior = _mlp_by_hand(W, f"decoders.{level + 1}", chain[level + 1][2]) if level + 1 < levels else 0.0
        total += -(1 + logvar - (mu - prior) ** 2 - np.exp(logvar)).sum()
    assert loss == pytest.approx(total / len(x), rel=1e-10)


def test_bernoulli_vae_loss_is_its_negative_elbo_by_hand():
    """Bernoulli: loss = (BCE(x, x_hat(z)) + KL(q(z | x) || N(0, I))) / N with the KL's 1/2 kept (no factor 2),
    the mean of negative_elbo for the same draw of z."""
    np.random.seed(29)
    model = _float64(VAE(6, 5, 3, likelihood="bernoulli"))
    x = (np.random.rand(4, 6) > 0.5).astype(np.float64)
    loss = _with_seed(30, model.loss, V(x)).data
    np.random.seed(30)
    W = {name: p.data for name, p in model.named_params()}
    mu, logvar = _encoder_by_hand(W, "encoder", x)
    z = mu + np.exp(0.5 * logvar) * np.random.standard_normal(mu.shape)
    p = _sigmoid(_mlp_by_hand(W, "decoder", z))
    nelbo = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1) + 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).sum(axis=1)
    assert loss == pytest.approx(nelbo.mean(), rel=1e-10)
    np.testing.assert_allclose(_with_seed(30, model.negative_elbo, V(x)).data, nelbo, rtol=1e-10)


@pytest.mark.parametrize("make, prefix", [(lambda: VAE(6, 5, 3), "encoder"),
                                          (lambda: HierarchicalVAE(6, 5, 3, levels=2), "encoders.0")])
def test_reconstruct_decodes_the_posterior_mean_without_sampling(make, prefix):
    """reconstruct(x) = sigmoid(decoder(mu(x))): deterministic, no z drawn."""
    np.random.seed(31)
    model = _float64(make())
    x = np.random.rand(4, 6)
    W = {name: p.data for name, p in model.named_params()}
    mu, _ = _encoder_by_hand(W, prefix, x)
    decoder = "decoder" if prefix == "encoder" else "decoders.0"
    expected = _sigmoid(_mlp_by_hand(W, decoder, mu))
    np.testing.assert_allclose(_with_seed(1, model.reconstruct, V(x)).data, expected, rtol=1e-10)
    np.testing.assert_allclose(_with_seed(2, model.reconstruct, V(x)).data, expected, rtol=1e-10)


def test_vae_sample_decodes_standard_normal_draws():
    """z ~ N(0, I) (latent_size numbers per image, from the global generator); image = sigmoid(decoder(z))."""
    np.random.seed(32)
    model = VAE(9, 6, 4)
    samples = _with_seed(33, model.sample, 5)
    np.random.seed(33)
    W = {name: p.data for name, p in model.named_params()}
    z = np.random.standard_normal((5, 4)).astype(np.float32)
    expected = _sigmoid(_mlp_by_hand(W, "decoder", z))
    assert samples.shape == (5, 9) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)


def test_a_latent_walk_decodes_the_straight_line_between_two_codes_at_even_steps(device):
    """Steps 7 and 8 (and the GANs): image k of `steps` is decode((1 - s) z_a + s z_b), s = k / (steps - 1),
    on the codes' device and in their dtype; the ends are the two codes' own images."""
    np.random.seed(34)
    model = VAE(9, 6, 4).to(device)
    z_a, z_b = (on(device, np.random.standard_normal(4).astype(np.float32)) for _ in range(2))
    walk = latent_walk(model.decode, z_a, z_b, steps=5)
    assert walk.shape == (5, 9) and walk.dtype == np.float32 and zero.backend.device_of(walk) == device
    W = {name: host(p.data) for name, p in model.named_params()}
    s = np.arange(5, dtype=np.float32)[:, None] / 4
    expected = _sigmoid(_mlp_by_hand(W, "decoder", (1 - s) * host(z_a) + s * host(z_b)))
    np.testing.assert_allclose(host(walk), expected, rtol=1e-5, atol=1e-6)


def test_a_latent_walk_refuses_codes_of_other_shapes_and_a_bad_step_count():
    model = VAE(9, 6, 4)
    with pytest.raises(ValueError, match=r"latent_walk: z_start and z_end .* got \(4,\) and \(3,\)"):
        latent_walk(model.decode, np.zeros(4, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"latent_walk: z_start and z_end .* got \(1, 4\) and \(1, 4\)"):
        latent_walk(model.decode, np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"latent_walk: steps must be a whole number >= 1, got 0"):
        latent_walk(model.decode, np.zeros(4, np.float32), np.zeros(4, np.float32), steps=0)


class _KnownBounds(Model):
    """A stand-in model whose k-th draw (k = 0..K-1, cycling) for image x is
    negative_elbo = s(x) + c_k and log_weight = -s(x) - c_k, s(x) = sum_d x_d; it records the mode it ran in."""

    def __init__(self, offsets):
        super().__init__()
        self.offsets, self.draws, self.modes = offsets, {"negative_elbo": 0, "log_weight": 0}, []

    def _next(self, kind, x):
        self.modes.append(self.training)
        offset = self.offsets[self.draws[kind] % len(self.offsets)]
        self.draws[kind] += 1
        return x.data.sum(axis=1) + offset

    def negative_elbo(self, x):
        return zero.Variable(self._next("negative_elbo", x))

    def log_weight(self, x):
        return zero.Variable(-self._next("log_weight", x))


def test_evaluate_bounds_averages_k_draws_per_image_and_all_images():
    """negative_elbo: mean over images of the mean over K draws; iwae_nll: mean over images of
    -log (1/K) sum_k w_k; batches of unequal size weigh by their images; the model runs in eval mode
    and is handed back in the mode it came in."""
    offsets = np.array([0.0, 1.0, 3.0])
    model = _KnownBounds(offsets)
    images = np.random.default_rng(34).random((7, 3))
    bounds = evaluate_bounds(model, images, samples=3, batch_size=3, progress=False)
    s = images.sum(axis=1)
    expected_nelbo = np.mean(s + offsets.mean())
    expected_iwae = np.mean(s - np.log(np.mean(np.exp(-offsets))))
    standard_error = np.std(s, ddof=1) / np.sqrt(7)   # each image's numbers differ from s by a constant here
    per_image = bounds.pop("per_image")
    np.testing.assert_allclose(per_image["negative_elbo"], s + offsets.mean(), rtol=1e-6)   # float32 images
    np.testing.assert_allclose(per_image["iwae_nll"], s - np.log(np.mean(np.exp(-offsets))), rtol=1e-6)
    assert all(per_image[key].dtype == np.float64 and per_image[key].shape == (7,) for key in per_image)
    assert bounds == {"negative_elbo": pytest.approx(expected_nelbo, rel=1e-6),
                      "iwae_nll": pytest.approx(expected_iwae, rel=1e-6), "samples": 3, "images": 7,
                      "negative_elbo_se": pytest.approx(standard_error, rel=1e-5),
                      "iwae_nll_se": pytest.approx(standard_error, rel=1e-5)}
    one = evaluate_bounds(_KnownBounds(offsets), images[:1], samples=3, progress=False)
    assert one["negative_elbo_se"] is None and one["iwae_nll_se"] is None   # no spread from one image
    assert expected_iwae < expected_nelbo - 0.5
    assert model.draws == {"negative_elbo": 9, "log_weight": 9}      # K draws for each of the 3 batches
    assert model.modes and not any(model.modes) and model.training


def test_bound_difference_is_paired_over_the_images():
    """The difference of the means, with the standard error of each image's difference: what the two
    models share per image cancels (here all of it but a constant and a small per-image part), so
    it is far below either bound's own error; mismatched image counts and unknown keys are refused."""
    rng = np.random.default_rng(35)
    images = rng.random((9, 3))
    reference = evaluate_bounds(_KnownBounds(np.array([0.0, 2.0])), images, samples=2, progress=False)
    bounds = evaluate_bounds(_KnownBounds(np.array([0.5, 1.5])), images, samples=2, progress=False)
    difference, error = bound_difference(bounds, reference)
    assert difference == pytest.approx(0.0, abs=1e-5) and error == pytest.approx(0.0, abs=1e-5)   # float32 sums
    shifted = dict(bounds, per_image={key: values + 0.1 * images[:, 0] for key, values in bounds["per_image"].items()},
                   iwae_nll=bounds["iwae_nll"] + 0.1 * images[:, 0].mean())
    difference, error = bound_difference(shifted, reference, "iwae_nll")
    assert difference == pytest.approx(bounds["iwae_nll"] - reference["iwae_nll"] + 0.1 * images[:, 0].mean())
    assert error == pytest.approx(0.1 * np.std(images[:, 0], ddof=1) / 3)
    assert error < reference["iwae_nll_se"] / 3
    one = evaluate_bounds(_KnownBounds(np.array([0.0])), images[:1], samples=1, progress=False)
    assert bound_difference(one, one)[1] is None
    with pytest.raises(ValueError, match="different numbers of images \\(1 and 9\\)"):
        bound_difference(one, reference)
    with pytest.raises(ValueError, match="key must be 'negative_elbo' or 'iwae_nll', got 'elbo'"):
        bound_difference(bounds, reference, "elbo")


def test_decoder_std_must_be_positive():
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="VAE: decoder_std must be a finite number > 0"):
            VAE(decoder_std=bad)
    with pytest.raises(ValueError, match="HierarchicalVAE: decoder_std must be a finite number > 0, got 0"):
        HierarchicalVAE(decoder_std=0)


def test_evaluate_bounds_refuses_zero_samples_and_an_empty_image_array():
    model = VAE(784, 8, 2)
    with pytest.raises(ValueError, match="evaluate_bounds: samples must be a whole number >= 1, got 0"):
        evaluate_bounds(model, np.random.default_rng(0).random((2, 784), dtype=np.float32), samples=0)
    with pytest.raises(ValueError, match="evaluate_bounds: no images"):  # was a bare ZeroDivisionError
        evaluate_bounds(model, np.zeros((0, 784), np.float32), progress=False)


@pytest.mark.parametrize("levels", [2, 3])
def test_hierarchical_negative_elbo_below_the_top_is_the_monte_carlo_term_of_its_draw(levels):
    """For one draw: -ELBO + log w = KL(q(z_L | .) || N(0, I)) + log N(z_L | 0, I) - log q(z_L | .); the levels
    below the top cancel only if negative_elbo uses log q(z_l | .) - log N(z_l | zhat_l, I) of the drawn z_l."""
    np.random.seed(35)
    model = _float64(HierarchicalVAE(8, 5, 3, levels=levels))
    x = V(np.random.rand(4, 8))
    nelbo = _with_seed(36, model.negative_elbo, x).data
    log_w = _with_seed(36, model.log_weight, x).data
    W = {name: p.data for name, p in model.named_params()}
    mu, logvar, z = _bottom_up_chain_by_hand(W, x.data, levels, seed=36)[-1]
    kl = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).sum(axis=1)
    top = kl + norm.logpdf(z).sum(axis=1) - norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(nelbo + log_w, top, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_level_kls_are_each_levels_term_of_the_negative_elbo_by_hand(levels):
    """Top: KL(q(z_L | .) || N(0, I)) analytic; below: log q(z_l | .) - log N(z_l | zhat_l(z_{l+1}), I) of the
    drawn z; with -log p(x | z1) they add up to negative_elbo (same draws)."""
    np.random.seed(37)
    model = _float64(HierarchicalVAE(8, 5, 3, levels=levels))
    x = V(np.random.rand(4, 8))
    kls = [kl.data for kl in _with_seed(38, model.level_kls, x)]
    W = {name: p.data for name, p in model.named_params()}
    chain = _bottom_up_chain_by_hand(W, x.data, levels, seed=38)
    assert len(kls) == levels and all(kl.shape == (4,) for kl in kls)
    for level, (mu, logvar, z) in enumerate(chain):
        if level + 1 == levels:
            expected = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).sum(axis=1)
        else:
            prior_mean = _mlp_by_hand(W, f"decoders.{level + 1}", chain[level + 1][2])
            expected = (norm.logpdf(z, mu, np.exp(0.5 * logvar)).sum(axis=1)
                        - norm.logpdf(z, prior_mean).sum(axis=1))
        np.testing.assert_allclose(kls[level], expected, rtol=1e-8, atol=1e-10, err_msg=f"level {level + 1}")
    x_hat = _sigmoid(_mlp_by_hand(W, "decoders.0", chain[0][2]))
    log_likelihood = norm.logpdf(x.data, x_hat).sum(axis=1)
    np.testing.assert_allclose(_with_seed(38, model.negative_elbo, x).data, -log_likelihood + sum(kls),
                               rtol=1e-8, atol=1e-10)


def test_evaluate_bounds_leaves_a_model_in_eval_mode_in_eval_mode():
    model = _KnownBounds(np.array([0.0]))
    model.eval()
    evaluate_bounds(model, np.ones((2, 3)), samples=1, progress=False)
    assert not model.training


def test_the_likelihood_describes_itself_with_its_std():
    assert VAE(6, 4, 2, decoder_std=0.5).likelihood.describe() == "Gaussian p(x|z) with fixed std 0.5"
    assert HierarchicalVAE(6, 4, 2, likelihood="bernoulli").likelihood.describe() == "Bernoulli p(x|z)"
    assert VAE(6, 4, 2).likelihood.loss_name == "the book's loss"   # labels of steps 7 and 8
    assert HierarchicalVAE(6, 4, 2, likelihood="bernoulli").likelihood.loss_name == "-ELBO (nats)"


class _DtypeRecorder(_KnownBounds):
    def __init__(self, offsets):
        super().__init__(offsets)
        self.dtypes = []

    def negative_elbo(self, x):
        self.dtypes.append(x.data.dtype)
        return super().negative_elbo(x)


def test_evaluate_bounds_hands_the_model_float32_images():
    model = _DtypeRecorder(np.array([0.0]))
    evaluate_bounds(model, np.ones((3, 2), np.float64), samples=1, progress=False)
    assert model.dtypes == [np.float32]


def test_evaluate_bounds_refuses_a_batch_size_of_zero_by_name():
    with pytest.raises(ValueError, match="evaluate_bounds: batch_size must be a whole number >= 1, got 0"):
        evaluate_bounds(VAE(6, 5, 2), np.zeros((3, 6), np.float32), samples=2, batch_size=0)


def test_evaluate_bounds_takes_images_on_the_models_device_and_refuses_another_devices():
    """Images on another device were copied through the host without being asked (zero.backend.to_device)."""
    np.random.seed(0)
    images = np.random.rand(4, 6).astype(np.float32)
    model = VAE(6, 5, 2)
    with pytest.raises(TypeError, match="evaluate_bounds: the images on strict and the model on cpu"):
        evaluate_bounds(model, on("strict", images), samples=2, progress=False)
    model.to("strict")
    with pytest.raises(TypeError, match="evaluate_bounds: the images on strict and the device asked on cpu"):
        evaluate_bounds(model, on("strict", images), samples=2, progress=False, device="cpu")
    zero.seed(1, "strict")
    from_the_host = evaluate_bounds(model, images, samples=2, progress=False)
    zero.seed(1, "strict")
    on_the_device = evaluate_bounds(model, on("strict", images), samples=2, progress=False)
    for key in ("negative_elbo", "iwae_nll"):   # each image's numbers are host arrays in both
        np.testing.assert_array_equal(on_the_device["per_image"].pop(key), from_the_host["per_image"].pop(key))
    assert on_the_device == from_the_host


@pytest.mark.parametrize("model_class", [VAE, HierarchicalVAE])
def test_a_checkpoint_of_another_decoder_std_is_refused(tmp_path, model_class):
    """The std does not enter the book's training loss, but it changes the model's bounds: the same
    weights under another std are another model."""
    model = model_class(6, 5, 2, decoder_std=0.1)
    save_checkpoint(tmp_path / "vae.npz", model)
    with pytest.raises(ValueError, match=r"trained with decoder_std '0.1', but this .* has decoder_std '1.0'"):
        load_checkpoint(tmp_path / "vae.npz", model_class(6, 5, 2))


@pytest.mark.parametrize("labels, expected", [
    ([4, 3, 9, 8, 3, 8], (1, 3, "from a 3 to an 8")),
    ([4, 9, 9, 7, 1, 1, 9, 0, 7, 8], (0, 9, "from a 4 to an 8")),     # held-out images 8000-8009: no 3
    ([4, 9, 9, 7, 1], (0, 1, "from a 4 to a 9")),                      # neither a 3 nor an 8
    ([3, 3, 1], (0, 2, "from a 3 to a 1")),
    ([8, 8, 8], (0, 1, "from an 8 to an 8")),                          # one digit only: two of its images
    ([5], (0, 0, "from a 5 to a 5")),
])
def test_the_latent_walk_names_the_digits_it_joins(labels, expected):
    """Steps 7 and 8 titled the walk 'from a 3 to an 8' when a small --heldout-limit left no 3 or no 8."""
    assert walk_ends(np.array(labels)) == expected


def test_the_latent_walk_names_each_digit_with_its_article_whichever_digits_it_looks_for():
    assert walk_ends(np.array([7, 1, 8]), digits=(1, 7)) == (1, 0, "from a 1 to a 7")
    assert walk_ends(np.array([8, 1]), digits=(1, 7)) == (1, 0, "from a 1 to an 8")


def test_the_latent_walk_refuses_no_labels_naming_what_is_missing():
    with pytest.raises(ValueError, match=r"walk_ends: no labels to choose the walk's ends from"):
        walk_ends(np.array([], dtype=np.int64))


def test_the_loss_title_names_one_term_per_level_after_the_reconstruction():
    """Step 8's loss curve was titled 'L1 + L2 + L3' whatever --levels was."""
    assert loss_terms(2) == "L1 + L2 + L3"    # the book's
    assert loss_terms(1) == "L1 + L2"
    assert loss_terms(4) == "L1 + L2 + L3 + L4 + L5"


@pytest.mark.parametrize("labels, expected", [([8, 8, 5], (2, 0, "from a 5 to an 8")),
                                              ([8, 2, 8, 1], (1, 0, "from a 2 to an 8"))])
def test_the_latent_walk_without_a_3_starts_from_another_digit_than_its_8(labels, expected):
    """With no 3 and an 8 first, the walk joined two 8s although other digits were there."""
    assert walk_ends(labels) == expected


# --- a model converted with astype keeps working (its own draws in its dtype) ---
@pytest.mark.parametrize("make", [lambda: VAE(6, 5, 3), lambda: HierarchicalVAE(8, 5, 3, levels=2)],
                         ids=["vae", "hierarchical"])
def test_a_float64_model_samples_and_evaluates_in_float64(make):
    """Its linear layers refuse float32 inputs: z ~ N(0, I) and the held-out images must come in
    the model's dtype (a float32 z raised TypeError after model.astype(np.float64))."""
    np.random.seed(0)
    model = make().astype(np.float64)
    assert model.sample(3).dtype == np.float64
    images = np.random.rand(4, model.sample(1).shape[1]).astype(np.float32)
    assert math.isfinite(evaluate_bounds(model, images, samples=2, progress=False)["iwae_nll"])


@pytest.mark.parametrize("call, message", [
    (lambda: HierarchicalVAE(levels=1.5), "HierarchicalVAE: levels must be"),
    (lambda: HierarchicalVAE(levels=True), "HierarchicalVAE: levels must be"),
    (lambda: VAE(decoder_std=float("inf")), "VAE: decoder_std must be a finite number > 0, got inf"),
    (lambda: VAE(decoder_std="1"), "VAE: decoder_std must be a finite number > 0, got '1'"),
    (lambda: mean_loss(VAE(), np.zeros((4, 784), np.float32), batch_size=-5), "mean_loss: batch_size must be"),
    (lambda: evaluate_bounds(VAE(), np.zeros(784, np.float32), samples=2), r"images must be \(N, D\)"),
])
def test_bad_sizes_and_settings_are_refused_by_name(call, message):
    """batch_size -5 made mean_loss return 0.0; decoder_std inf gave infinite bounds; one image of
    shape (784,) was cut into batches of pixels; levels True counted as one level."""
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_the_hierarchical_vaes_loss_is_named_a_surrogate_where_it_is_one():
    """With the Bernoulli likelihood and two levels or more, loss() is the book's surrogate of -ELBO
    (0.4 nats per image above it), which step 8's loss curve had titled -ELBO."""
    assert HierarchicalVAE(levels=2, likelihood="bernoulli").loss_name == "surrogate -ELBO (nats)"
    assert HierarchicalVAE(levels=1, likelihood="bernoulli").loss_name == "-ELBO (nats)"
    assert HierarchicalVAE(levels=2).loss_name == "the book's loss"


def test_a_vae_other_than_the_books_is_named_by_what_differs():
    """Step 7 saves under this suffix and steps 8 and A.1 look for their VAE under it."""
    from zero.vae import checkpoint_variant
    assert checkpoint_variant() == checkpoint_variant(200, 20, "gaussian") == ""
    assert checkpoint_variant(latent_size=2) == "_latent2"
    assert checkpoint_variant(400, 20, "bernoulli") == "_hidden400_bernoulli"
    assert checkpoint_variant(400, 2) == "_hidden400_latent2"
    with pytest.raises(ValueError, match="likelihood must be one of"):
        checkpoint_variant(likelihood="poisson")


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_integer_images_are_refused_with_the_fix_named(likelihood):
    """uint8 pixels gave an inf loss with only an overflow warning (a VAE of values in [0, 1])."""
    pixels = np.random.default_rng(0).integers(0, 256, (4, 784)).astype(np.uint8)
    model = VAE(likelihood=likelihood)
    for method in (model.loss, model.negative_elbo):
        with pytest.raises(TypeError, match="images must be floating-point values in \\[0, 1\\], got dtype uint8 "
                                            "\\(divide 0-255 pixels by 255 first\\)"):
            method(pixels)


@pytest.mark.parametrize("n", [0, -1, 2.0, "3"])
def test_sample_counts_that_are_not_whole_numbers_from_one_up_are_refused_by_name(n):
    """VAE().sample(-1) said 'negative dimensions are not allowed', sample(2.0) that a float is no integer."""
    from zero.flow import RealNVP
    from zero.gan import DCGenerator, MLPGenerator
    for model in (VAE(), HierarchicalVAE(), RealNVP(2), MLPGenerator(), DCGenerator()):
        with pytest.raises(ValueError, match=rf"{type(model).__name__}.sample: n must be a whole number >= 1, got {n!r}"):
            model.sample(n)


class _SpreadBounds(_KnownBounds):
    """As _KnownBounds, but log_weight = -2 s(x) - c_k: each image's IWAE number is 2 s(x) plus a constant,
    so the IWAE numbers spread twice as much over the images as the -ELBO ones."""

    def log_weight(self, x):
        return zero.Variable(-self._next("log_weight", x) - x.data.sum(axis=1))


def test_each_bounds_standard_error_is_that_of_its_own_per_image_numbers():
    """negative_elbo_se and iwae_nll_se are sd / sqrt(N) of each bound's own per-image numbers: where the
    two spread differently over the images (here by a factor of 2), so do their standard errors."""
    images = np.random.default_rng(36).random((8, 3))
    bounds = evaluate_bounds(_SpreadBounds(np.array([0.0, 1.0])), images, samples=2, progress=False)
    spread = np.std(images.sum(axis=1), ddof=1) / np.sqrt(8)
    assert bounds["negative_elbo_se"] == pytest.approx(spread, rel=1e-5)
    assert bounds["iwae_nll_se"] == pytest.approx(2 * spread, rel=1e-5)
    for key in ("negative_elbo", "iwae_nll"):
        assert bounds[f"{key}_se"] == pytest.approx(np.std(bounds["per_image"][key], ddof=1) / np.sqrt(8), rel=1e-9)
