"""zero.diffusion: the schedule, q(x_t | x_0), the posterior, the samplers, label dropping."""
import re

import numpy as np
import pytest

import zero
from conftest import host, on
from zero.backend import get_backend
from zero.diffusion import Diffusion, drop_labels, sampler_name, to_images, to_model_range
from zero.errors import SamplingDiverged
from zero.optimizers import Adam
from zero.unet import UNet


def test_linear_schedule_values():
    diffusion = Diffusion(1000)
    betas, alpha_bars = host(diffusion.betas), host(diffusion.alpha_bars)
    assert betas.shape == (1000,) and betas.dtype == np.float32
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert np.all(np.diff(betas) > 0)
    assert np.all(np.diff(alpha_bars) < 0), "alpha_bar must fall monotonically"
    assert alpha_bars[0] == pytest.approx(1 - 1e-4)
    # alpha_bar_T = prod (1 - beta_t) ~ exp(-sum beta_t) = exp(-10.05): about 4.0e-5 (exact product below)
    expected = np.prod(1 - np.linspace(1e-4, 0.02, 1000))
    assert alpha_bars[-1] == pytest.approx(expected, rel=1e-3)
    assert 3e-5 < alpha_bars[-1] < 5e-5
    prev = host(diffusion.alpha_bars_prev)
    assert prev[0] == 1.0 and np.allclose(prev[1:], alpha_bars[:-1])
    assert host(diffusion.posterior_variance)[0] == 0.0


def test_q_sample_statistics(device):
    """x_t ~ N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I): check mean and variance over many draws."""
    diffusion = Diffusion(1000, device=device)
    xp = get_backend(device).xp
    xp.random.seed(0)
    n, x0_value = 20000, 0.7
    x0 = on(device, np.full((n, 1, 2, 2), x0_value, np.float32))
    for t_value in (1, 250, 1000):
        t = on(device, np.full(n, t_value, np.int64))
        noise = xp.random.standard_normal(x0.shape).astype(np.float32)
        x_t = host(diffusion.q_sample(x0, t, noise))
        alpha_bar = host(diffusion.alpha_bars)[t_value - 1]
        assert x_t.mean() == pytest.approx(np.sqrt(alpha_bar) * x0_value, abs=0.01)
        assert x_t.var() == pytest.approx(1 - alpha_bar, rel=0.03, abs=1e-5)


def test_step_by_step_chain_matches_closed_form():
    """Running q(x_t | x_{t-1}) t times gives the distribution q(x_t | x_0)."""
    diffusion = Diffusion(100, beta_start=1e-3, beta_end=0.05)
    rng = np.random.default_rng(0)
    x = np.full(50000, -0.5, np.float32)
    for t in range(1, 61):
        x = diffusion.q_step(x, t, rng.standard_normal(x.shape).astype(np.float32))
    alpha_bar = host(diffusion.alpha_bars)[59]
    assert x.mean() == pytest.approx(np.sqrt(alpha_bar) * -0.5, abs=0.01)
    assert x.var() == pytest.approx(1 - alpha_bar, rel=0.02)


def test_posterior_mean_variance_formula(device):
    diffusion = Diffusion(1000, device=device)
    rng = np.random.default_rng(1)
    x0, x_t = rng.standard_normal((2, 3, 1, 4, 4)).astype(np.float32)
    t = np.array([1, 2, 1000])
    mean, variance = diffusion.posterior_mean_variance(on(device, x_t), on(device, x0), on(device, t))
    beta = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - beta)
    for i, step in enumerate(t):
        b, ab = beta[step - 1], alpha_bar[step - 1]
        ab_prev = alpha_bar[step - 2] if step > 1 else 1.0
        expected_mean = np.sqrt(ab_prev) * b / (1 - ab) * x0[i] + np.sqrt(1 - b) * (1 - ab_prev) / (1 - ab) * x_t[i]
        expected_variance = b * (1 - ab_prev) / (1 - ab)
        assert np.allclose(host(mean)[i], expected_mean, atol=1e-5)
        assert host(variance)[i].item() == pytest.approx(expected_variance, rel=1e-4, abs=1e-12)
    assert host(variance)[0].item() == 0.0  # t = 1: no noise, and no wrap-around to alpha_bar_T


def test_mean_from_noise_equals_posterior_mean(device):
    """Ho et al. eq. 11 is eq. 7 with x_0 written through the true noise."""
    diffusion = Diffusion(1000, device=device)
    rng = np.random.default_rng(2)
    x0 = on(device, rng.uniform(-1, 1, (4, 1, 4, 4)).astype(np.float32))
    eps = on(device, rng.standard_normal((4, 1, 4, 4)).astype(np.float32))
    t = on(device, np.array([1, 10, 500, 1000]))
    x_t = diffusion.q_sample(x0, t, eps)
    expected, _ = diffusion.posterior_mean_variance(x_t, x0, t)
    assert np.allclose(host(diffusion.mean_from_noise(x_t, eps, t)), host(expected), atol=2e-4)
    assert np.allclose(host(diffusion.predict_x0(x_t, eps, t)), host(x0), atol=2e-2)  # 1/sqrt(alpha_bar_T) ~ 160


def test_ddpm_last_step_adds_no_noise():
    diffusion = Diffusion(10)
    x, eps = np.ones((2, 1, 4, 4), np.float32), np.zeros((2, 1, 4, 4), np.float32)
    first = diffusion.ddpm_step(x, eps, 1)
    assert np.array_equal(first, diffusion.ddpm_step(x, eps, 1))
    assert np.allclose(first, x / np.sqrt(1 - 1e-4))


def test_ddim_timesteps():
    diffusion = Diffusion(1000)
    steps = diffusion.sampling_timesteps("ddim", 50)
    assert len(steps) == 50 and steps[0] == 1000 and steps[-1] == 1
    assert diffusion.sampling_timesteps("ddpm") == list(range(1000, 0, -1))
    assert diffusion.sampling_timesteps("ddim", 2) == [1000, 1]
    assert diffusion.sampling_timesteps("ddim", 6) == [1000, 800, 600, 401, 201, 1]   # nearest to 1 + 199.8 k
    assert diffusion.sampling_timesteps("ddim", 1) == [1000]   # one jump from pure noise, not from x_1
    assert diffusion.sampling_timesteps("ddim", 5000) == list(range(1000, 0, -1))
    with pytest.raises(ValueError, match="sampler"):
        diffusion.sampling_timesteps("euler")
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            diffusion.sampling_timesteps("ddim", bad)


def test_ddim_with_the_true_noise_recovers_x0():
    """If eps is the noise actually in x_t, one deterministic DDIM jump lands on x_0."""
    diffusion = Diffusion(1000)
    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1, 1, (2, 1, 4, 4)).astype(np.float32)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    x_t = diffusion.q_sample(x0, np.array([300, 300]), eps)
    x_mid = diffusion.ddim_step(x_t, eps, 300, 100)
    assert np.allclose(x_mid, diffusion.q_sample(x0, np.array([100, 100]), eps), atol=1e-5)
    assert np.allclose(diffusion.ddim_step(x_mid, eps, 100, 0), x0, atol=1e-4)


def test_ddim_with_eta_one_on_consecutive_steps_is_the_ddpm_step(device):
    """Song et al. 2021: eta = 1 and t_prev = t - 1 give the DDPM posterior mean and variance."""
    diffusion = Diffusion(1000, device=device)
    rng = np.random.default_rng(4)
    x_t = on(device, rng.standard_normal((2, 1, 4, 4)).astype(np.float32))
    eps = on(device, rng.standard_normal((2, 1, 4, 4)).astype(np.float32))
    for t in (2, 10, 500, 1000):
        mean, sigma = diffusion.ddim_mean_std(x_t, eps, t, t - 1, eta=1.0)
        expected = diffusion.mean_from_noise(x_t, eps, diffusion.timesteps_like(2, t))
        assert np.allclose(host(mean), host(expected), rtol=1e-4, atol=1e-5), t
        assert sigma ** 2 == pytest.approx(float(host(diffusion.posterior_variance)[t - 1]), rel=1e-5)
    assert diffusion.ddim_mean_std(x_t, eps, 500, 300)[1] == 0.0           # eta = 0: no fresh noise
    half, full = (diffusion.ddim_mean_std(x_t, eps, 500, 300, eta=eta)[1] for eta in (0.5, 1.0))
    assert half == pytest.approx(full / 2) and full > 0
    with pytest.raises(ValueError, match=r"DDIM: eta must be a finite number in \[0, 1\]"):
        diffusion.ddim_mean_std(x_t, eps, 500, 300, eta=1.5)


def test_sampler_names_and_eta_checked_before_sampling():
    assert sampler_name("ddpm") == "ddpm" and sampler_name("ddim", 1.0) == "ddim eta 1"
    with pytest.raises(ValueError, match=r"DDIM: eta must be a finite number in \[0, 1\]"):
        Diffusion(10).sample(None, (1, 1, 4, 4), sampler="ddim", steps=2, eta=-0.1, progress=False)


def test_stochastic_ddim_step_adds_noise_of_the_stated_size():
    diffusion = Diffusion(1000)
    np.random.seed(5)
    x_t = np.zeros((4000, 1, 2, 2), np.float32)
    eps = np.random.standard_normal(x_t.shape).astype(np.float32)
    mean, sigma = diffusion.ddim_mean_std(x_t, eps, 800, 760, eta=1.0)
    assert np.array_equal(diffusion.ddim_step(x_t, eps, 800, 760), diffusion.ddim_step(x_t, eps, 800, 760))
    step = diffusion.ddim_step(x_t, eps, 800, 760, eta=1.0)
    assert np.std(step - mean) == pytest.approx(sigma, rel=0.03) and abs(np.mean(step - mean)) < 0.01


def test_drop_labels_is_per_example(device):
    xp = get_backend(device).xp
    xp.random.seed(0)
    labels = on(device, np.arange(2000) % 10)
    dropped = host(drop_labels(labels, 0.1, 10))
    is_dropped = dropped == 10
    assert 140 < is_dropped.sum() < 260, "about 10% of the labels, not all or none"
    assert np.array_equal(dropped[~is_dropped], (np.arange(2000) % 10)[~is_dropped])
    # within one batch of 128, some examples keep their label and some lose it (not the whole batch)
    batches = is_dropped[:1920].reshape(15, 128)
    assert np.all(batches.any(axis=1) & ~batches.all(axis=1))


def test_range_helpers():
    images = np.array([0.0, 0.5, 1.0], np.float32)
    assert np.allclose(to_model_range(images), [-1, 0, 1])
    assert np.allclose(to_images(np.array([-3.0, 0.0, 3.0])), [0, 0.5, 1])


def _tiny_data(n=64):
    """Blobs: a bright square at one of two places, in [-1, 1]."""
    rng = np.random.default_rng(0)
    x = -np.ones((n, 1, 8, 8), np.float32)
    for i in range(n):
        r = 1 if i % 2 else 5
        x[i, 0, r:r + 2, 2:6] = 1.0
    return x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), np.arange(n) % 2


def test_quick_training_lowers_the_loss_and_samples_are_finite(device):
    np.random.seed(0)
    get_backend(device).xp.random.seed(0)
    x, labels = _tiny_data()
    x, labels = on(device, x), on(device, labels)
    model = UNet(channels=(8, 16, 16), time_embed_dim=16, num_classes=2).to(device)
    diffusion = Diffusion(50, beta_start=1e-3, beta_end=0.2, device=device)
    optimizer = Adam(model.params(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = diffusion.loss(model, x, drop_labels(labels, 0.1, model.no_label))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5]), losses
    asked = on(device, np.array([0, 1, 0, 1]))
    for sampler, eta in (("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)):
        every = 10 if sampler == "ddpm" else 3
        samples, snapshots = diffusion.sample(model, (4, 1, 8, 8), labels=asked, guidance_scale=3.0,
                                              sampler=sampler, steps=10, snapshot_every=every, progress=False,
                                              eta=eta)
        samples = host(samples)
        assert samples.shape == (4, 1, 8, 8)
        assert np.all(np.isfinite(samples)) and samples.min() >= -1 and samples.max() <= 1
        # every `every`-th step of the sampler, from x_T, then x_0 (DDIM's grid is not T - k every)
        assert sorted(snapshots, reverse=True) == diffusion.sampling_timesteps(sampler, 10)[::every] + [0]
    unconditional = UNet(channels=(4, 8, 8), time_embed_dim=8).to(device)
    assert host(diffusion.sample(unconditional, (2, 1, 8, 8), progress=False)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("guidance_scale", [None, 0.0, 3.0])
def test_labels_for_an_unconditional_model_are_refused_at_every_guidance_scale(guidance_scale):
    unconditional = UNet(channels=(2, 2, 2), time_embed_dim=4)
    with pytest.raises(ValueError, match=r"unconditional \(num_classes=None\) but labels were given"):
        Diffusion(10).sample(unconditional, (2, 1, 4, 4), labels=np.array([0, 1]), guidance_scale=guidance_scale,
                             progress=False)


def test_guidance_combines_conditional_and_unconditional_predictions():
    """eps = eps_uncond + gamma (eps_cond - eps_uncond), checked against two separate calls."""
    np.random.seed(1)
    model = UNet(channels=(4, 8, 8), time_embed_dim=8, num_classes=3).eval()
    diffusion = Diffusion(20)
    x = np.random.standard_normal((3, 1, 8, 8)).astype(np.float32)
    t, labels = np.array([5, 10, 20]), np.array([0, 1, 2])
    guided = diffusion.predict_noise(model, x, t, labels, guidance_scale=2.5)
    conditional = model(x, t, labels).data
    unconditional = model(x, t, np.full(3, model.no_label)).data
    assert np.allclose(guided, unconditional + 2.5 * (conditional - unconditional), atol=1e-5)
    assert np.allclose(diffusion.predict_noise(model, x, t, labels, guidance_scale=1.0), conditional)


# --- the training loss and the ancestral step against the documented formulas -------------------
def _schedule(num_timesteps, beta_start=1e-4, beta_end=0.02):
    """beta_t, alpha_t, alpha_bar_t, alpha_bar_{t-1} (alpha_bar_0 = 1) in float64, from the documented
    linear schedule (independently of Diffusion); index t - 1 holds time step t."""
    betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
    alphas = 1 - betas
    alpha_bars = np.cumprod(alphas)
    return betas, alphas, alpha_bars, np.concatenate([[1.0], alpha_bars[:-1]])


class _SpyModel:
    """A stand-in noise predictor eps_theta(x_t, t[, y]) = 0.5 x_t + 0.01 t (+ 0.1 y) that records
    its inputs, so a test sees exactly which x_t, t and labels the loss fed it."""

    dtype = np.dtype(np.float32)   # a Model's parameter dtype: sample draws x_T in it

    def __init__(self):
        self.calls = []

    def __call__(self, x_t, t, labels=None):
        self.calls.append((np.array(x_t), np.array(t), None if labels is None else np.array(labels)))
        out = 0.5 * x_t + np.float32(0.01) * t.reshape(-1, 1, 1, 1).astype(np.float32)
        if labels is not None:
            out = out + np.float32(0.1) * labels.reshape(-1, 1, 1, 1).astype(np.float32)
        return zero.Variable(out, requires_grad=False)


@pytest.mark.parametrize("with_labels", [False, True])
def test_loss_is_the_documented_noise_prediction_mse(with_labels):
    """L = mean ||eps - eps_theta(x_t, t[, y])||^2 with t ~ U{1..T} drawn first, then eps ~ N(0, I),
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and the labels passed on as given
    (dropping them is drop_labels' job, before the call)."""
    T = 1000
    diffusion = Diffusion(T)
    rng = np.random.default_rng(10)
    x0 = rng.uniform(-1, 1, (64, 1, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 10, 64) if with_labels else None
    model = _SpyModel()
    np.random.seed(123)
    loss = diffusion.loss(model, x0, labels)
    # the same random state, the documented recipe by hand
    np.random.seed(123)
    t = np.random.randint(1, T + 1, size=64)
    noise = np.random.standard_normal(x0.shape).astype(np.float32)
    _, _, alpha_bars, _ = _schedule(T)
    a = np.sqrt(alpha_bars[t - 1]).astype(np.float32).reshape(-1, 1, 1, 1)
    s = np.sqrt(1 - alpha_bars[t - 1]).astype(np.float32).reshape(-1, 1, 1, 1)
    x_t = a * x0 + s * noise
    eps = 0.5 * x_t + 0.01 * t.reshape(-1, 1, 1, 1)
    if with_labels:
        eps = eps + 0.1 * labels.reshape(-1, 1, 1, 1)
    expected = np.mean((eps.astype(np.float64) - noise) ** 2)
    (seen_x_t, seen_t, seen_labels), = model.calls
    np.testing.assert_array_equal(seen_t, t)
    np.testing.assert_allclose(seen_x_t, x_t, rtol=1e-6, atol=1e-7)
    if with_labels:
        np.testing.assert_array_equal(seen_labels, labels)
    else:
        assert seen_labels is None
    assert loss.shape == () and loss.item() == pytest.approx(expected, rel=1e-6)
    # not the error against x_0 (or anything else that ignores the drawn noise)
    assert abs(np.mean((eps - x0) ** 2) - expected) > 0.1


@pytest.mark.parametrize("with_labels", [False, True])
def test_image_losses_are_the_loss_of_each_image_with_the_same_draws(with_labels):
    """image_losses: loss()'s t, eps and x_t from the same random state, and each image's own mean over its
    pixels (so their mean is the loss); the labels passed on; no graph."""
    diffusion = Diffusion(1000)
    rng = np.random.default_rng(11)
    x0 = rng.uniform(-1, 1, (6, 3, 4, 4)).astype(np.float32)   # three channels: each image's mean covers all
    labels = rng.integers(0, 10, 6) if with_labels else None
    model = _SpyModel()
    np.random.seed(5)
    loss = diffusion.loss(model, x0, labels).item()
    np.random.seed(5)
    losses = diffusion.image_losses(model, x0, labels)
    assert isinstance(losses, np.ndarray) and losses.shape == (6,) and losses.dtype == np.float32
    np.testing.assert_allclose(losses.mean(), loss, rtol=1e-5)
    first, second = model.calls
    for seen, again in zip(first, second):   # the same x_t, t and labels both times
        np.testing.assert_array_equal(seen, again)
    np.random.seed(5)   # by hand: the draws again, and the spy model's eps_theta
    t = np.random.randint(1, 1001, size=6)
    noise = np.random.standard_normal(x0.shape).astype(np.float32)
    x_t, seen_t, _ = second
    np.testing.assert_array_equal(seen_t, t)
    eps = 0.5 * x_t + 0.01 * t.reshape(-1, 1, 1, 1) + (0 if labels is None else 0.1 * labels.reshape(-1, 1, 1, 1))
    np.testing.assert_allclose(losses, ((eps - noise) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_image_losses_stay_on_the_device_of_a_u_net(device):
    """On the strict device (CuPy's rules): image_losses of a conditional U-Net, (N,) on the device, no host copy."""
    model = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=3).to(device).eval()
    diffusion = Diffusion(10, device=device)
    zero.seed(0, device)
    x0 = on(device, np.random.default_rng(0).uniform(-1, 1, (3, 1, 8, 8)).astype(np.float32))
    losses = diffusion.image_losses(model, x0, on(device, np.array([0, 1, 3])))
    assert zero.backend.device_of(losses) == device and losses.shape == (3,)
    assert np.isfinite(host(losses)).all() and (host(losses) > 0).all()


def test_loss_draws_time_steps_uniformly_from_1_to_T():
    """Over many draws every t in 1..T occurs, both ends and both halves, about equally often."""
    T = 10
    diffusion = Diffusion(T, beta_start=1e-3, beta_end=0.2)
    model = _SpyModel()
    np.random.seed(0)
    diffusion.loss(model, np.zeros((20000, 1, 1, 1), np.float32))
    t = model.calls[0][1]
    assert t.dtype == np.int64 and t.min() == 1 and t.max() == T
    counts = np.bincount(t, minlength=T + 1)
    assert counts[0] == 0 and len(counts) == T + 1
    # each of the 10 steps: 2000 expected, binomial sd ~ 42
    assert np.all(np.abs(counts[1:] - 2000) < 250), counts
    assert abs((t > T // 2).mean() - 0.5) < 0.02


@pytest.mark.parametrize("t", [2, 3, 10, 100])
def test_ddpm_step_adds_noise_with_the_posterior_standard_deviation(t):
    """x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z,
    sigma_t^2 = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) (not beta_t), z ~ N(0, I)."""
    T = 1000
    diffusion = Diffusion(T)
    rng = np.random.default_rng(11)
    x_t = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    eps = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.random.seed(7)
    x_prev = diffusion.ddpm_step(x_t, eps, t)
    np.random.seed(7)
    z = np.random.standard_normal(x_t.shape).astype(np.float32)
    betas, alphas, alpha_bars, alpha_bars_prev = _schedule(T)
    b, a, ab, ab_prev = betas[t - 1], alphas[t - 1], alpha_bars[t - 1], alpha_bars_prev[t - 1]
    mean = (x_t.astype(np.float64) - b / np.sqrt(1 - ab) * eps) / np.sqrt(a)
    sigma = np.sqrt(b * (1 - ab_prev) / (1 - ab))
    assert x_prev.dtype == np.float32
    np.testing.assert_allclose(x_prev, mean + sigma * z, rtol=1e-5, atol=1e-6)
    # the noise's size, read off the step itself: sigma_t, well below sqrt(beta_t) at small t
    large = np.abs(z) > 0.5
    assert large.sum() > 10
    np.testing.assert_allclose(((x_prev - mean) / z)[large], sigma, rtol=1e-3)
    assert sigma < np.sqrt(b)


# --- the samplers' loops and guidance, against the documented recipes with a stand-in network ---
class _ConditionalSpyModel(_SpyModel):
    """_SpyModel with the label 3 meaning "no label", as a class-conditional UNet(num_classes=3)."""
    no_label = 3


def test_guidance_scale_zero_is_the_unconditional_model():
    """gamma = 0 in eps_uncond + gamma (eps_cond - eps_uncond): the prediction with the "no label" label."""
    diffusion = Diffusion(20)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 1, 2, 2)).astype(np.float32)
    t, labels = np.array([4, 9, 20]), np.array([0, 1, 2])
    model = _ConditionalSpyModel()
    unguided = diffusion.predict_noise(model, x, t, labels, guidance_scale=0)
    expected = 0.5 * x + 0.01 * t.reshape(-1, 1, 1, 1) + 0.1 * 3     # the spy's formula with label 3
    np.testing.assert_allclose(unguided, expected, rtol=1e-6)
    guided = diffusion.predict_noise(model, x, t, labels, guidance_scale=4.0)
    conditional = 0.5 * x + 0.01 * t.reshape(-1, 1, 1, 1) + 0.1 * labels.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(guided, expected + 4.0 * (conditional - expected), rtol=1e-5, atol=1e-6)


def _chain_by_hand(sampler, eta, grid, x_T, schedule, predict):
    """The reverse chain written out from the papers in float64, drawing z from the global generator
    after each prediction exactly where the documented step adds noise. Returns (states before each
    step, final x_0 clipped to [-1, 1])."""
    betas, alphas, alpha_bars, alpha_bars_prev = schedule
    x, states = x_T.astype(np.float64), []
    for index, t in enumerate(grid):
        states.append(x)
        eps = predict(x, t)
        b, a, ab, ab_prev = betas[t - 1], alphas[t - 1], alpha_bars[t - 1], alpha_bars_prev[t - 1]
        if sampler == "ddpm":      # Ho et al. 2020, Algorithm 2: no noise at t = 1
            x = (x - b / np.sqrt(1 - ab) * eps) / np.sqrt(a)
            if t > 1:
                x = x + np.sqrt(b * (1 - ab_prev) / (1 - ab)) * np.random.standard_normal(x.shape)
            continue
        x0_hat = (x - np.sqrt(1 - ab) * eps) / np.sqrt(ab)   # Song et al. 2021, eq. 12
        t_prev = grid[index + 1] if index + 1 < len(grid) else 0
        if t_prev == 0:
            x = x0_hat
            continue
        ab_to = alpha_bars[t_prev - 1]
        sigma = eta * np.sqrt((1 - ab_to) / (1 - ab) * (1 - ab / ab_to))
        x = np.sqrt(ab_to) * x0_hat + np.sqrt(1 - ab_to - sigma ** 2) * eps
        if sigma > 0:
            x = x + sigma * np.random.standard_normal(x.shape)
    return states, np.clip(x, -1, 1)


@pytest.mark.parametrize("sampler, eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_sample_runs_the_documented_reverse_chain(sampler, eta):
    """From x_T ~ N(0, I), the network is asked at t = T .. 1 (DDPM) or at the DDIM grid 21, 16, 11, 6, 1,
    each step follows its paper's update (DDIM with eta's fresh noise), the last one lands on x0_hat
    (t_prev = 0), and the snapshots are the states x_t the network saw."""
    T = 21
    schedule = _schedule(T, 0.02, 0.3)
    diffusion = Diffusion(T, beta_start=0.02, beta_end=0.3)
    model = _SpyModel()
    np.random.seed(13)
    samples, snapshots = diffusion.sample(model, (3, 1, 2, 2), sampler=sampler, steps=5, eta=eta,
                                          snapshot_every=1, progress=False)
    grid = list(range(T, 0, -1)) if sampler == "ddpm" else [21, 16, 11, 6, 1]
    assert [int(t[0]) for _, t, _ in model.calls] == grid
    assert all(np.all(t == t[0]) and labels is None for _, t, labels in model.calls)
    np.random.seed(13)
    x_T = np.random.standard_normal((3, 1, 2, 2)).astype(np.float32)
    states, expected = _chain_by_hand(sampler, eta, grid, x_T, schedule,
                                      lambda x, t: 0.5 * x + 0.01 * t)
    np.testing.assert_array_equal(snapshots[T], x_T)            # x_T itself: unit variance, not rescaled
    for t, state in zip(grid, states):
        np.testing.assert_allclose(snapshots[t], state, rtol=1e-4, atol=1e-4, err_msg=f"x_{t}")
    np.testing.assert_allclose(samples, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(snapshots[0], samples)
    assert (np.abs(expected) < 0.99).sum() >= 3, "the comparison must not be of clipped values only"


def test_sample_with_guidance_uses_the_guided_noise_at_every_step():
    """sample(labels, guidance_scale=gamma) steps with eps_uncond + gamma (eps_cond - eps_uncond)."""
    T = 21
    schedule = _schedule(T, 0.02, 0.3)
    diffusion = Diffusion(T, beta_start=0.02, beta_end=0.3)
    labels = np.array([0, 2, 1])
    np.random.seed(14)
    samples = diffusion.sample(_ConditionalSpyModel(), (3, 1, 2, 2), labels=labels, guidance_scale=2.0,
                               sampler="ddim", steps=5, progress=False)
    np.random.seed(14)
    x_T = np.random.standard_normal((3, 1, 2, 2)).astype(np.float32)

    def guided(x, t):
        base = 0.5 * x + 0.01 * t
        conditional, unconditional = base + 0.1 * labels.reshape(-1, 1, 1, 1), base + 0.1 * 3
        return unconditional + 2.0 * (conditional - unconditional)

    _, expected = _chain_by_hand("ddim", 0.0, [21, 16, 11, 6, 1], x_T, schedule, guided)
    np.testing.assert_allclose(samples, expected, rtol=1e-4, atol=1e-4)
    _, plain = _chain_by_hand("ddim", 0.0, [21, 16, 11, 6, 1], x_T, schedule,
                              lambda x, t: 0.5 * x + 0.01 * t + 0.1 * labels.reshape(-1, 1, 1, 1))
    assert np.abs(plain - expected).max() > 0.05, "guidance must make a visible difference here"


@pytest.mark.parametrize("options, message", [
    (dict(num_timesteps=0), "num_timesteps must be a whole number >= 1, got 0"),
    (dict(num_timesteps=10.5), "num_timesteps must be a whole number >= 1, got 10.5"),
    (dict(beta_start=0.0), "beta_start and beta_end must lie in (0, 1), got 0.0 and 0.02"),
    (dict(beta_end=1.5), "beta_start and beta_end must lie in (0, 1), got 0.0001 and 1.5"),
])
def test_a_schedule_that_is_not_a_diffusion_is_refused(options, message):
    """beta_end 1.5 gave NaN coefficients (sqrt of negative alpha_bar) with only a warning."""
    import re
    with pytest.raises(ValueError, match=re.escape("Diffusion: " + message)):
        Diffusion(**options)


def test_sample_refuses_a_shape_without_images():
    """--samples 0 ran the whole reverse chain and failed later, in scoring or plotting."""
    with pytest.raises(ValueError, match=r"sample: shape must hold at least one image.*got \(0, 1, 28, 28\)"):
        Diffusion(10).sample(lambda x, t: x * 0, (0, 1, 28, 28), progress=False)


def test_a_final_beta_of_one_is_refused():
    """beta_T = 1 makes alpha_bar_T = 0, and every step that divides by sqrt(alpha_bar_T) infinite."""
    import re
    with pytest.raises(ValueError, match=re.escape("Diffusion: beta_start and beta_end must lie in (0, 1), "
                                                   "got 0.0001 and 1.0")):
        Diffusion(10, beta_end=1.0)


def test_q_sample_of_flat_data_broadcasts_per_example():
    """x0 (N, D): alpha_bar_t is taken per row, whatever the number of axes."""
    diffusion = Diffusion(100)
    rng = np.random.default_rng(20)
    x0, noise = rng.standard_normal((2, 3, 5)).astype(np.float32)
    t = np.array([1, 100, 40])
    x_t = diffusion.q_sample(x0, t, noise)
    _, _, alpha_bars, _ = _schedule(100)
    expected = (np.sqrt(alpha_bars[t - 1])[:, None] * x0 + np.sqrt(1 - alpha_bars[t - 1])[:, None] * noise)
    assert x_t.shape == (3, 5)
    np.testing.assert_allclose(x_t, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", [1, 2, 10])
def test_q_step_uses_the_coefficients_of_its_own_time_step(t):
    diffusion = Diffusion(10, beta_start=0.01, beta_end=0.5)
    x_prev = np.array([1.0, -2.0], np.float32)
    noise = np.array([0.5, 1.0], np.float32)
    beta = np.linspace(0.01, 0.5, 10)[t - 1]
    np.testing.assert_allclose(diffusion.q_step(x_prev, t, noise),
                               np.sqrt(1 - beta) * x_prev + np.sqrt(beta) * noise, rtol=1e-6)


def test_q_step_takes_one_time_step_per_image_as_q_sample_does(device):
    diffusion = Diffusion(10, beta_start=0.01, beta_end=0.5, device=device)
    rng = np.random.default_rng(0)
    x_prev, noise = rng.standard_normal((2, 4, 1, 3, 5)).astype(np.float32)   # width 5: no accidental match
    t = np.array([1, 3, 7, 10])
    x_t = host(diffusion.q_step(on(device, x_prev), on(device, t), on(device, noise)))
    for image, step in enumerate(t):   # each image as a batch of its own, with an int time step
        expected = host(diffusion.q_step(on(device, x_prev[image:image + 1]), int(step), on(device, noise[image:image + 1])))
        np.testing.assert_allclose(x_t[image:image + 1], expected, rtol=1e-6)


def test_posterior_variance_is_shaped_to_broadcast_over_images(device):
    diffusion = Diffusion(10, device=device)
    x = on(device, np.zeros((3, 2, 4, 4), np.float32))
    mean, variance = diffusion.posterior_mean_variance(x, x, on(device, np.array([1, 5, 10])))
    assert mean.shape == (3, 2, 4, 4) and variance.shape == (3, 1, 1, 1)


def test_loss_feeds_the_model_float32_images():
    diffusion = Diffusion(10)
    model = _SpyModel()
    np.random.seed(0)
    loss = diffusion.loss(model, np.zeros((4, 1, 2, 2), np.float32))
    (seen_x_t, _, _), = model.calls
    assert seen_x_t.dtype == np.float32 and loss.dtype == np.float32


@pytest.mark.parametrize("guidance_scale", [0, 1])
def test_guidance_scales_zero_and_one_need_a_single_plain_batch(guidance_scale):
    """gamma = 0 and gamma = 1 are the unconditional and the conditional model: one call on the N
    images, not the doubled batch."""
    diffusion = Diffusion(20)
    x = np.ones((3, 1, 2, 2), np.float32)
    model = _ConditionalSpyModel()
    diffusion.predict_noise(model, x, np.array([4, 9, 20]), np.array([0, 1, 2]), guidance_scale=guidance_scale)
    (seen_x, _, seen_labels), = model.calls
    assert seen_x.shape == (3, 1, 2, 2)
    assert list(seen_labels) == ([3, 3, 3] if guidance_scale == 0 else [0, 1, 2])


def test_ddpm_last_step_draws_no_noise():
    """t = 1 returns the mean without drawing z: the generator is left where it was."""
    diffusion = Diffusion(10)
    x = np.ones((2, 1, 4, 4), np.float32)
    np.random.seed(3)
    diffusion.ddpm_step(x, np.zeros_like(x), 1)
    after = np.random.random_sample()
    np.random.seed(3)
    assert after == np.random.random_sample()


def test_ddim_takes_50_steps_by_default():
    steps = Diffusion(1000).sampling_timesteps("ddim")
    assert len(steps) == 50 and steps[0] == 1000 and steps[-1] == 1


def test_sample_moves_host_labels_to_the_device(device):
    np.random.seed(0)
    model = UNet(channels=(4, 8, 8), time_embed_dim=8, num_classes=3).to(device)
    diffusion = Diffusion(10, device=device)
    samples = diffusion.sample(model, (2, 1, 4, 4), labels=np.array([0, 2]), guidance_scale=2.0,
                               sampler="ddim", steps=2, progress=False)
    assert samples.shape == (2, 1, 4, 4) and zero.backend.device_of(samples) == device


def test_a_stochastic_ddim_step_stays_in_float32():
    diffusion = Diffusion(10)
    np.random.seed(0)
    x = np.ones((2, 1, 2, 2), np.float32)
    assert diffusion.ddim_step(x, np.zeros_like(x), 8, 4, eta=1.0).dtype == np.float32


def test_snapshot_every_zero_takes_no_snapshots():
    samples = Diffusion(3).sample(_SpyModel(), (1, 1, 2, 2), snapshot_every=0, progress=False)
    assert isinstance(samples, np.ndarray) and samples.shape == (1, 1, 2, 2)


def test_the_progress_bar_shows_only_when_asked(capsys):
    Diffusion(3).sample(_SpyModel(), (1, 1, 2, 2), progress=False)
    assert capsys.readouterr().err == ""
    Diffusion(3).sample(_SpyModel(), (1, 1, 2, 2), progress=True)
    assert "ddpm sampling" in capsys.readouterr().err


def test_integer_images_are_refused_by_to_model_range():
    """uint8 pixels wrapped around: 0 * 2 - 1 became 255."""
    with pytest.raises(TypeError, match=r"to_model_range expects floating-point images .* got dtype uint8"):
        to_model_range(np.array([0, 1], np.uint8))
    # float pixels 0-255 became data up to 509 (the same mistake, in a float array)
    with pytest.raises(ValueError, match=r"to_model_range expects images in \[0, 1\], got values from 0 to 255"):
        to_model_range(np.array([0.0, 255.0], np.float32))


@pytest.mark.parametrize("t", [0, 11, -1])
def test_time_steps_outside_one_to_t_are_refused(device, t):
    """t = 0 read values[-1], the last step's coefficients, silently."""
    diffusion = Diffusion(10, device=device)
    x = on(device, np.zeros((2, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=rf"q_sample: time steps must lie in 1..10, got values from {min(t, 1)} "
                                         rf"to {max(t, 1)}"):
        diffusion.q_sample(x, on(device, np.array([1, t])), x)
    with pytest.raises(ValueError, match="q_step: time steps must lie in 1..10"):
        diffusion.q_step(x, t, x)


def test_the_reverse_process_keeps_the_shape_of_a_flat_batch():
    """_at shaped every coefficient (N, 1, 1, 1): a (2, 3) batch came back (2, 1, 2, 3), each row mixed with
    every other."""
    diffusion, x, eps = Diffusion(10), np.ones((2, 3), np.float32), np.full((2, 3), 0.5, np.float32)
    t = np.array([3, 7])
    mean, variance = diffusion.posterior_mean_variance(x, x, t)
    assert mean.shape == (2, 3) and variance.shape == (2, 1)
    for row in range(2):  # each row with its own time step, as a batch of one
        one = diffusion.mean_from_noise(x[row:row + 1], eps[row:row + 1], t[row:row + 1])
        np.testing.assert_array_equal(diffusion.mean_from_noise(x, eps, t)[row], one[0])
    assert diffusion.predict_x0(x, eps, t).shape == (2, 3)
    assert diffusion.ddpm_step(x, eps, 5).shape == (2, 3)


@pytest.mark.parametrize("method", ["posterior_mean_variance", "mean_from_noise", "predict_x0"])
def test_the_reverse_process_refuses_time_steps_outside_one_to_t(method):
    diffusion, x = Diffusion(10), np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=rf"{method}: time steps must lie in 1..10, got values from 0 to 0"):
        getattr(diffusion, method)(x, x, np.array([0]))
    with pytest.raises(ValueError, match="ddpm_step: time steps must lie in 1..10, got values from 11 to 11"):
        diffusion.ddpm_step(x, x, 11)
    with pytest.raises(ValueError, match=r"ddim_mean_std: needs 1 <= t_prev < t <= 10, got t = 5, t_prev = 0"):
        diffusion.ddim_mean_std(x, x, 5, 0)


def test_sample_needs_one_label_per_image():
    """One label for two images was broadcast without guidance, and failed in an Add with it."""
    with pytest.raises(ValueError, match="sample: 1 labels for 2 images; give one per image"):
        Diffusion(10).sample(lambda x, t, labels: x, (2, 1, 2, 2), labels=np.array([3]))


def test_a_numpy_float64_guidance_scale_keeps_sampling_in_float32():
    """A scale from np.linspace is a NumPy float64: it made eps float64, then x, and the next U-Net call refused it."""
    np.random.seed(0)
    model = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=3).eval()
    for sampler in ("ddim", "ddpm"):
        x = Diffusion(4).sample(model, (2, 1, 8, 8), labels=np.array([1, 2]), guidance_scale=np.float64(2.0),
                                sampler=sampler, steps=3 if sampler == "ddim" else None)
        assert x.dtype == np.float32


@pytest.mark.parametrize("scale, labels, message", [
    (float("nan"), np.array([1, 2]), "classifier-free guidance: guidance_scale must be a finite number, got nan"),
    (np.inf, np.array([1, 2]), "classifier-free guidance: guidance_scale must be a finite number, got inf"),
    (3.0, None, r"classifier-free guidance \(scale 3.0\) needs labels"),   # ran unguided, silently
])
def test_guidance_without_labels_or_with_a_scale_that_is_not_finite_is_refused(scale, labels, message):
    model = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=3).eval()
    with pytest.raises(ValueError, match=message):
        Diffusion(4).sample(model, (2, 1, 8, 8), labels=labels, guidance_scale=scale, sampler="ddim", steps=2)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_chain_that_leaves_float_range_is_refused_not_clipped_into_images(sampler):
    """A guidance scale of 1e39 turns eps into inf in float32, then x into NaN, which clip kept: the
    samples came back NaN, and a referee read each as some digit. A scale that large fails by name now,
    with a SetupError that a step script shows as its message alone."""
    labels = np.array([0, 1])
    common = dict(labels=labels, sampler=sampler, steps=3 if sampler == "ddim" else None, progress=False)
    with pytest.raises(SamplingDiverged, match=rf"sample: the {sampler} chain ended with NaN or infinite values "
                                                 rf"\(float32, guidance scale 1e\+39\)"):
        with np.errstate(all="ignore"):
            Diffusion(5).sample(_ConditionalSpyModel(), (2, 1, 2, 2), guidance_scale=1e39, **common)
    x = Diffusion(5).sample(_ConditionalSpyModel(), (2, 1, 2, 2), guidance_scale=1e3, **common)
    assert np.isfinite(x).all() and np.abs(x).max() <= 1   # a large scale within range: clipped images, as before


@pytest.mark.parametrize("probability", [10, -1, float("nan")])
def test_drop_labels_refuses_a_probability_outside_0_1(probability):
    """10 (a percentage) dropped every label: the conditional model was never trained."""
    with pytest.raises(ValueError, match=r"drop_labels: probability must be a finite number in \[0, 1\]"):
        drop_labels(np.arange(4), probability, 10)


@pytest.mark.parametrize("t, t_prev", [(5, 5), (5, 6)])
def test_a_ddim_step_that_does_not_go_back_in_time_is_refused(t, t_prev):
    diffusion, x = Diffusion(10), np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="needs 1 <= t_prev < t"):
        diffusion.ddim_mean_std(x, x, t, t_prev)
    with pytest.raises(ValueError, match="needs 1 <= t_prev < t"):
        diffusion.ddim_step(x, x, t, t_prev)


def test_time_steps_given_on_the_host_or_as_a_list_are_used_on_the_schedules_device(device):
    """The schedule reads per-image time steps from where it lives: NumPy steps (or a list) beside
    device images were checked on the device and then indexed from the host (the strict device, as
    CuPy would not, refused that)."""
    diffusion = Diffusion(100, device=device)
    x0, noise = on(device, np.full((2, 1, 2, 2), 0.5, np.float32)), on(device, np.ones((2, 1, 2, 2), np.float32))
    expected = host(diffusion.q_sample(x0, on(device, np.array([3, 70])), noise))
    for t in (np.array([3, 70]), [3, 70]):
        np.testing.assert_array_equal(host(diffusion.q_sample(x0, t, noise)), expected)
        mean, variance = diffusion.posterior_mean_variance(x0, x0, t)
        assert host(variance).shape == (2, 1, 1, 1)
    with pytest.raises(ValueError, match=r"q_sample: time steps must lie in 1..100, got values from 0 to 70"):
        diffusion.q_sample(x0, [0, 70], noise)


def test_sample_starts_from_a_given_x_T_on_its_device(device):
    """x_T given: DDIM (eta 0) gives the same images from it whatever the random generator's state,
    DDPM draws fresh noise after it; drawn here, x_T is the generator's next N(0, I) draw."""
    from zero.backend import standard_normal
    np.random.seed(0)
    model = UNet(channels=(4, 8, 8), time_embed_dim=8).to(device).eval()
    diffusion, shape, xp = Diffusion(30, device=device), (2, 1, 8, 8), get_backend(device).xp
    xp.random.seed(4)
    x_T = host(standard_normal(xp, shape))
    xp.random.seed(4)
    drawn_here = host(diffusion.sample(model, shape, sampler="ddim", steps=5, progress=False))
    xp.random.seed(9)
    given = host(diffusion.sample(model, shape, sampler="ddim", steps=5, progress=False, x_T=x_T))  # a host x_T
    np.testing.assert_array_equal(given, drawn_here)
    on_device = host(diffusion.sample(model, shape, sampler="ddim", steps=5, progress=False, x_T=on(device, x_T)))
    np.testing.assert_array_equal(on_device, drawn_here)
    first, second = (host(diffusion.sample(model, shape, progress=False, x_T=x_T)) for _ in range(2))
    assert np.abs(first - second).max() > 0.01   # DDPM: other fresh noise, other images
    for wrong in (x_T[:1], x_T.astype(np.float64)):
        with pytest.raises(ValueError, match=r"sample: x_T must be noise of the images' shape \(2, 1, 8, 8\) in the "
                                             r"model's dtype float32, as sample draws it, got float(32|64) of shape"):
            diffusion.sample(model, shape, progress=False, x_T=wrong)
    if device != "cpu":   # the schedule decides where the chain runs: x_T on another device is refused
        with pytest.raises(TypeError, match=f"sample: x_T on {device} and the schedule on cpu"):
            Diffusion(10).sample(model, shape, progress=False, x_T=on(device, x_T))


def test_a_float64_model_samples_from_float64_noise(device):
    """x_T was drawn in float32 whatever the model's dtype, and a float64 x_T refused: a float64 U-Net's
    first step used float32-rounded noise. The snapshot at t = T is the x_T the network saw."""
    from zero.backend import standard_normal
    np.random.seed(0)
    model = UNet(channels=(2, 2, 2), time_embed_dim=4).astype(np.float64).to(device)
    diffusion, shape, xp = Diffusion(3, device=device), (2, 1, 8, 8), get_backend(device).xp
    xp.random.seed(4)
    x_T = host(standard_normal(xp, shape, np.float64))
    assert not np.array_equal(x_T, x_T.astype(np.float32))   # float32 would have rounded it
    xp.random.seed(4)
    drawn_here, snapshots = diffusion.sample(model, shape, sampler="ddim", steps=2, snapshot_every=1, progress=False)
    assert snapshots[3].dtype == np.float64 and drawn_here.dtype == np.float64
    np.testing.assert_array_equal(snapshots[3], x_T)
    given = diffusion.sample(model, shape, sampler="ddim", steps=2, progress=False, x_T=x_T)
    np.testing.assert_array_equal(host(given), host(drawn_here))
    with pytest.raises(ValueError, match=r"in the model's dtype float64, as sample draws it, got float32"):
        diffusion.sample(model, shape, progress=False, x_T=x_T.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_a_float16_or_float64_models_images_keep_their_dtype_through_training_and_both_samplers(device, dtype):
    """The schedule's float32 coefficients (and DDIM's np.float32 scalars) turned float16 images into
    float32, so that a float16 U-Net refused its own x_t in Diffusion.loss and at the second sampling step."""
    np.random.seed(0)
    model = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=3).astype(dtype).to(device)
    diffusion, shape = Diffusion(6, device=device), (2, 1, 8, 8)
    x0 = on(device, np.random.rand(*shape).astype(dtype))
    loss = diffusion.loss(model, to_model_range(x0), np.array([0, 2]))
    assert loss.dtype == dtype and np.isfinite(loss.item())
    loss.backward()
    assert all(p.grad.dtype == dtype for p in model.params())
    t, noise = np.array([1, 6]), on(device, np.random.standard_normal(shape).astype(dtype))
    assert diffusion.q_sample(x0, t, noise).dtype == dtype and diffusion.q_step(x0, 3, noise).dtype == dtype
    for sampler, eta in [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)]:
        images = diffusion.sample(model, shape, labels=np.array([1, 3]), guidance_scale=2.0, sampler=sampler,
                                  steps=3, eta=eta, progress=False)
        assert images.dtype == dtype and np.isfinite(host(images)).all(), (sampler, eta)


def test_inputs_on_another_device_than_the_data_are_refused_not_copied_to_the_host():
    """Labels, targets, indices and time steps given on a device beside host data: moving them would
    copy device data to the host unasked (np.asarray on CuPy raises for that reason)."""
    import zero.functions as F
    from zero.backend import to_device
    from zero.layers import Embedding
    diffusion, on_device = Diffusion(10), to_device(np.array([1, 2]), "strict")
    logits, images = zero.Variable(np.zeros((2, 3), np.float32)), np.zeros((2, 1, 4, 4), np.float32)
    refusals = {
        "q_sample: the time steps on strict and the schedule on cpu":
            lambda: diffusion.q_sample(images, on_device, images),
        "softmax_cross_entropy: the labels on strict": lambda: F.softmax_cross_entropy(logits, on_device),
        "accuracy: the labels on strict": lambda: F.accuracy(logits, on_device),
        "mean_squared_error: the targets on strict": lambda: F.mean_squared_error(
            logits, to_device(np.zeros((2, 3), np.float32), "strict")),
        "embedding: the ids on strict": lambda: Embedding(3, 2)(on_device),
        "get_item: the index arrays on strict": lambda: logits[on_device],
        "where: the condition on strict": lambda: F.where(to_device(np.array([True, False]), "strict"), logits[0, :2],
                                                          logits[1, :2]),
        "UNet: the time steps on strict": lambda: UNet(channels=(2, 2, 2), time_embed_dim=4)(images, on_device),
    }
    for message, call in refusals.items():
        with pytest.raises(TypeError, match=re.escape(message) + r".*move one to the other's device first"):
            call()


# ---- fit_diffusion: step 9.2's loop as a library piece (step 10.2 trains with it) -----------------------------
def _tiny_run(num_classes=None):
    np.random.seed(0)
    images = np.random.default_rng(1).random((20, 1, 8, 8), dtype=np.float32)   # 3 batches of 8: the last short
    model = UNet(channels=(2, 4, 4), time_embed_dim=4, num_classes=num_classes)
    return images, model, Diffusion(50), Adam(model.params(), lr=1e-2)


@pytest.mark.parametrize("conditional", [False, True], ids=["step 9.2", "step 10.2"])
def test_fit_diffusion_is_the_loop_steps_9_2_and_10_2_wrote_out(conditional):
    from zero.backend import reseed_device, standard_normal
    from zero.data import DataLoader, Dataset
    from zero.diffusion import fit_diffusion
    labels = np.arange(20) % 3 if conditional else None
    images, model, diffusion, optimizer = _tiny_run(3 if conditional else None)
    history = fit_diffusion(model, diffusion, optimizer, images, 2, labels=labels, label_drop=0.5, batch_size=8, seed=3)
    by_library = [p.data.copy() for p in model.params()]

    images, model, diffusion, optimizer = _tiny_run(3 if conditional else None)
    step_losses = []
    for epoch in (1, 2):
        loader = DataLoader(Dataset(images) if labels is None else Dataset(images, labels), 8, seed=(3, epoch),
                            device="cpu")
        reseed_device("cpu")
        for batch in loader:
            if conditional:                              # step 10.2's loop before fit_diffusion
                x, y = batch
                loss = diffusion.loss(model, to_model_range(x), drop_labels(y, 0.5, model.no_label))
            else:                                        # steps/step09_diffusion/2_ddpm.py's loop
                x0 = to_model_range(batch)
                t = np.random.randint(1, 51, size=len(x0))
                noise = standard_normal(np, x0.shape, np.float32)
                loss = zero.functions.mean_squared_error(model(diffusion.q_sample(x0, t, noise), t), noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step_losses.append(loss.item())
    assert history["step_loss"] == step_losses and len(step_losses) == 6
    assert history["train_loss"] == [np.mean(step_losses[:3]), np.mean(step_losses[3:])]
    for library, by_hand in zip(by_library, model.params()):
        np.testing.assert_array_equal(library, by_hand.data)


def test_fit_diffusion_resumed_from_its_checkpoint_ends_where_an_uninterrupted_run_does(tmp_path, capsys):
    from zero.diffusion import fit_diffusion
    from zero.optimizers import cosine_lr
    from zero.training import load_checkpoint, restore_random_state
    labels = np.arange(20) % 3
    calls = []

    def schedule(step, total):
        calls.append((step, total))
        return cosine_lr(1e-2, step, total)

    images, model, diffusion, optimizer = _tiny_run(num_classes=3)
    fit_diffusion(model, diffusion, optimizer, images, 2, labels=labels, label_drop=0.5, batch_size=8, seed=3,
                  lr_schedule=schedule, checkpoint=tmp_path / "uninterrupted.npz", settings={"seed": "3"})
    assert calls == [(step, 6) for step in range(6)]
    uninterrupted = [p.data.copy() for p in model.params()]

    images, model, diffusion, optimizer = _tiny_run(num_classes=3)
    path = tmp_path / "interrupted.npz"
    fit_diffusion(model, diffusion, optimizer, images, 1, labels=labels, label_drop=0.5, batch_size=8, seed=3,
                  lr_schedule=lambda step, total: cosine_lr(1e-2, step, 2 * 3), checkpoint=path)
    images, model, diffusion, optimizer = _tiny_run(num_classes=3)
    model.eval()                                            # as after sampling: fit_diffusion trains in train mode
    np.random.seed(99)                                      # a new process: another generator state
    state = load_checkpoint(path, model, optimizer)
    restore_random_state(state)
    history = fit_diffusion(model, diffusion, optimizer, images, 2, labels=labels, label_drop=0.5, batch_size=8,
                            seed=3, history=state["history"], start_epoch=state["epoch"], lr_schedule=schedule)
    assert len(history["step_loss"]) == 6 and len(history["train_loss"]) == 2 and model.training
    for resumed, straight in zip(model.params(), uninterrupted):
        np.testing.assert_array_equal(resumed.data, straight)
    printed = capsys.readouterr().out
    assert "epoch 1/1: mean loss" in printed and "checkpoint " + str(path) in printed
    assert re.search(r"epoch 2/2: mean loss \d\.\d{4} \(\d+ s so far\)\n", printed)   # no checkpoint asked: none named


def test_fit_diffusion_hands_a_float64_model_float64_batches(monkeypatch):
    """As zero's other training loops do: its batches were float32 whatever the model's dtype, so a float64
    U-Net's noise and x_t were drawn in float32."""
    from zero.diffusion import fit_diffusion
    images, model, diffusion, optimizer = _tiny_run()
    model.astype(np.float64)
    seen = []
    original = Diffusion.loss
    monkeypatch.setattr(Diffusion, "loss", lambda self, net, x0, labels=None: seen.append(x0.dtype)
                        or original(self, net, x0, labels))
    fit_diffusion(model, diffusion, optimizer, images, 1, batch_size=8)
    assert seen == [np.float64] * 3


def test_fit_diffusion_refuses_no_images_and_a_negative_epoch_count():
    from zero.diffusion import fit_diffusion
    images, model, diffusion, optimizer = _tiny_run()
    with pytest.raises(ValueError, match="fit_diffusion: no training images"):
        fit_diffusion(model, diffusion, optimizer, images[:0], 1)
    with pytest.raises(ValueError, match="fit_diffusion: epochs must be a whole number >= 0, got -1"):
        fit_diffusion(model, diffusion, optimizer, images, -1)


def test_fit_diffusion_saves_the_run_settings_with_its_checkpoint(tmp_path):
    """A --resume checks them against its own options: a checkpoint saved without them would be
    resumed with any learning rate or seed."""
    from zero.diffusion import fit_diffusion
    from zero.training import load_checkpoint, read_checkpoint
    images, model, diffusion, optimizer = _tiny_run()
    path = tmp_path / "run.npz"
    fit_diffusion(model, diffusion, optimizer, images, 1, batch_size=8, checkpoint=path,
                  settings={"seed": "3", "lr": "0.01"})
    stored = read_checkpoint(path)
    assert str(stored["settings/seed"]) == "3" and str(stored["settings/lr"]) == "0.01"
    images, model, diffusion, optimizer = _tiny_run()
    with pytest.raises(ValueError, match=r"--seed 3 \(now 4\)"):
        load_checkpoint(path, model, optimizer, settings={"seed": "4", "lr": "0.01"})


def test_q_sample_and_q_step_refuse_noise_or_time_steps_that_would_broadcast():
    """Noise of a batch of one was spread over the whole batch (every image got the same noise), and a
    spatial mismatch raised NumPy's bare broadcasting error; one time step per image, or one int."""
    diffusion = Diffusion(num_timesteps=10)
    x = np.zeros((2, 1, 4, 4), np.float32)
    for noise, said in [(np.zeros((1, 1, 4, 4), np.float32), r"\(1, 1, 4, 4\)"),
                        (np.zeros((2, 1, 8, 8), np.float32), r"\(2, 1, 8, 8\)")]:
        with pytest.raises(ValueError, match=r"q_sample: noise must have the images' shape \(2, 1, 4, 4\), got " + said):
            diffusion.q_sample(x, np.array([1, 2]), noise)
        with pytest.raises(ValueError, match="q_step: noise must have the images' shape"):
            diffusion.q_step(x, 3, noise)
    with pytest.raises(ValueError, match=r"q_sample: t must be one time step or one per image, shape \(2,\); got shape \(1,\)"):
        diffusion.q_sample(x, np.array([3]), x)
    assert diffusion.q_sample(x, 3, x).shape == x.shape   # one int for the whole batch is fine


def test_fit_diffusion_stops_at_a_nan_loss_before_the_epochs_checkpoint(tmp_path):
    """A run that diverged saved its NaN weights over the last good epoch's checkpoint, every epoch."""
    from zero.diffusion import fit_diffusion
    from zero.errors import TrainingDiverged
    images, model, diffusion, optimizer = _tiny_run()
    path = tmp_path / "ddpm.npz"
    history = fit_diffusion(model, diffusion, optimizer, images, 1, batch_size=8, checkpoint=path)
    before = path.read_bytes()
    broken = images.copy()
    broken[:, 0, 0, 0] = np.nan   # every image: the first batch's loss is NaN
    with pytest.raises(TrainingDiverged, match=r"^diffusion training epoch 2, batch 1 of 3: the loss is nan"):
        fit_diffusion(model, diffusion, optimizer, broken, 2, batch_size=8, checkpoint=path, history=history,
                      start_epoch=1)
    assert path.read_bytes() == before


def test_ddim_refuses_a_schedule_whose_sqrt_alpha_bar_underflows_instead_of_returning_nan_or_clipped_inf():
    """Betas from 0.5 to 0.9 are allowed, and make alpha_bar_T 0 (in float64 already). DDIM predicts x_0 by
    dividing by sqrt(alpha_bar_t): one step gave x_0 = inf, clipped to images of nothing but -1 and 1, and
    50 steps gave NaN (0/0 in sigma), silently. Found probing schedules at their bounds. Early steps of that
    schedule, and a schedule that keeps sqrt(alpha_bar_T) a normal float32 (2e-47), still run."""
    class Zero:
        dtype = np.dtype(np.float32)

        def __call__(self, x, t):
            return zero.Variable(np.zeros_like(x))

    strong = Diffusion(1000, beta_start=0.5, beta_end=0.9)
    for steps, eta in ((1, 0.0), (50, 0.0), (50, 1.0)):
        with pytest.raises(ValueError, match=r"^sample: DDIM divides by sqrt\(alpha_bar_t\), and at t = 1000 this "
                                             r"schedule's alpha_bar_t is 0, .*float32: use sampler 'ddpm'"):
            strong.sample(Zero(), (1, 1, 4, 4), sampler="ddim", steps=steps, eta=eta, progress=False)
    x_t = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="^ddim_mean_std: DDIM divides"):
        strong.ddim_step(x_t, x_t, 1000, 500)
    with pytest.raises(ValueError, match="^ddim_step: DDIM divides"):
        strong.ddim_step(x_t, x_t, 1000, 0)
    assert strong.ddim_step(x_t, x_t, 20, 0).dtype == np.float32          # early steps are fine
    steep = Diffusion(1000, beta_end=0.2)                                   # alpha_bar_T = 2e-47
    assert np.isfinite(steep.sample(Zero(), (1, 1, 4, 4), sampler="ddim", steps=50, progress=False)).all()
