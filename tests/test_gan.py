"""zero.gan: the losses against hand computation, their logit gradients (the saturation of the
minimax loss), the players' shapes on both devices, a training step that moves both players,
and checkpoints of both."""
import errno
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import zero
import zero.functions as F
import zero.gan
from conftest import host, interrupted_at_call
from zero import Parameter
from zero.errors import CheckpointRefused, SaveFailed
from zero.gan import (DCDiscriminator, DCGenerator, MLPDiscriminator, MLPGenerator, _Generator, discriminator_loss,
                      discriminator_path, generator_gradient_norm, generator_loss, leaky_relu, load_gan,
                      logit_gradient, plot_game, save_gan, score_generator, train_gan,
                      train_gan_or_resume)
from zero.models import Model
from zero.optimizers import SGD, Adam
from zero.plot import moving_average
from zero.vae import latent_walk


def V(values):
    return zero.Variable(np.asarray(values, dtype=np.float64))


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


def test_losses_by_hand():
    real, fake = np.array([2.0, -0.5, 0.3]), np.array([-1.0, 0.7])
    d_real, d_fake = sigmoid(real), sigmoid(fake)
    expected_d = -np.log(d_real).mean() - np.log(1 - d_fake).mean()
    assert discriminator_loss(V(real), V(fake)).item() == pytest.approx(expected_d, rel=1e-12)
    assert generator_loss(V(fake), "non_saturating").item() == pytest.approx(-np.log(d_fake).mean(), rel=1e-12)
    assert generator_loss(V(fake), "minimax").item() == pytest.approx(np.log(1 - d_fake).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="non_saturating"):
        generator_loss(V(fake), "wasserstein")


def test_losses_stay_finite_where_the_naive_formula_takes_log_of_zero():
    logits = V([-800.0, 800.0])
    assert math.isfinite(discriminator_loss(logits, logits).item())
    assert generator_loss(V([-800.0]), "non_saturating").item() == pytest.approx(800.0)   # -log sigmoid(-800)
    assert generator_loss(V([800.0]), "minimax").item() == pytest.approx(-800.0)          # log(1 - sigmoid(800))


@pytest.mark.parametrize("d_fake", [0.5, 0.1, 1e-3, 1e-6])
def test_logit_gradients_saturate_only_for_the_minimax_loss(d_fake):
    # d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -D;  d/dl -log sigmoid(l) = -(1 - D)
    assert logit_gradient(d_fake, "minimax") == pytest.approx(-d_fake, rel=1e-9)
    assert logit_gradient(d_fake, "non_saturating") == pytest.approx(-(1 - d_fake), rel=1e-9)


def test_generator_gradient_is_larger_with_the_non_saturating_loss_when_d_wins():
    np.random.seed(0)
    generator, discriminator = MLPGenerator(4, 16, 10), MLPDiscriminator(16, 10)
    discriminator.out.b.data[...] = -6.0                                  # D(G(z)) ~ sigmoid(-6) ~ 0.0025: D "wins"
    minimax = generator_gradient_norm(generator, discriminator, 64, "minimax")
    non_saturating = generator_gradient_norm(generator, discriminator, 64, "non_saturating")
    assert non_saturating > 50 * minimax
    assert all(param.grad is None for param in generator.params())   # leaves no gradients behind


@pytest.mark.parametrize("models", ["mlp", "dcgan"])
def test_players_shapes_on_both_devices(models, device):
    np.random.seed(0)
    if models == "mlp":
        generator, discriminator = MLPGenerator(8, 32), MLPDiscriminator(32)
    else:
        generator, discriminator = DCGenerator(8, width=4), DCDiscriminator(width=4)
    generator.to(device)
    discriminator.to(device)
    z = generator.latent(5)
    assert zero.backend.device_of(z) == device and z.shape == (5, 8)
    images = generator(z)
    assert images.shape == (5, 784)
    values = host(images.data)
    assert ((values > 0) & (values < 1)).all()
    logits = discriminator(images)
    assert logits.shape == (5,)
    generator_loss(logits).backward()
    assert all(param.grad is not None and param.grad.device == device for param in generator.params())
    samples = latent_walk(generator.eval(), z[0], z[1], 4)
    assert samples.shape == (4, 784) and zero.backend.device_of(samples) == device
    # the end points of the walk are the two codes' images
    np.testing.assert_allclose(host(samples[0]), host(generator(z[:1]).data[0]), atol=1e-6)


def test_a_training_epoch_moves_both_players_and_records_the_curves(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((64, 784)).astype(np.float32)
    np.random.seed(0)
    generator, discriminator = MLPGenerator(8, 32), MLPDiscriminator(32)
    g_optimizer, d_optimizer = Adam(generator.params(), lr=1e-3), Adam(discriminator.params(), lr=1e-3)
    g_before = [param.data.copy() for param in generator.params()]
    d_before = [param.data.copy() for param in discriminator.params()]
    history = train_gan(generator, discriminator, g_optimizer, d_optimizer, images, epochs=2, batch_size=16)
    assert all(len(history[key]) == 8 for key in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert all(0 < value < 1 for value in history["d_real"] + history["d_fake"])
    assert all(not np.array_equal(a, p.data) for a, p in zip(g_before, generator.params()))
    assert all(not np.array_equal(a, p.data) for a, p in zip(d_before, discriminator.params()))
    # checkpoints of both players round-trip
    path = tmp_path / "gan.npz"
    save_gan(path, generator, discriminator, g_optimizer, d_optimizer, 2, history)
    np.random.seed(1)
    other_g, other_d = MLPGenerator(8, 32), MLPDiscriminator(32)
    state = load_gan(path, other_g, other_d, Adam(other_g.params()), Adam(other_d.params()))
    assert state["epoch"] == 2 and state["history"]["d_loss"] == pytest.approx(history["d_loss"])
    for a, b in zip(generator.params(), other_g.params()):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(discriminator.params(), other_d.params()):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="generator loss"):
        train_gan(generator, discriminator, g_optimizer, d_optimizer, images, 1, loss="hinge")
    # fewer images than one full batch trained nothing (NaN curves, an untrained checkpoint saved as trained)
    for batch_size in (len(images) + 1, 1):
        with pytest.raises(ValueError, match=rf"train_gan: batch_size must lie in 2..{len(images)} .* got {batch_size}"):
            train_gan(generator, discriminator, g_optimizer, d_optimizer, images, 1, batch_size=batch_size)


def test_moving_average():
    np.testing.assert_allclose(moving_average(np.arange(1, 9), width=2), np.arange(1, 8) + 0.5)
    # a run shorter than the window still gives a curve: the window shrinks to a quarter of it
    np.testing.assert_allclose(moving_average(np.arange(1, 9), width=50), np.arange(1, 8) + 0.5)
    np.testing.assert_allclose(moving_average([1, 2], width=50), [1, 2])


def test_plot_game_draws_both_players_and_the_discriminators_beliefs():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    history = {key: list(rng.random(120)) for key in ("d_loss", "g_loss", "d_real", "d_fake")}
    fig, (ax_loss, ax_prob) = plt.subplots(1, 2)
    plot_game(ax_loss, ax_prob, history, "losses")
    assert ax_loss.get_title() == "losses" and len(ax_loss.lines) == 2 and len(ax_prob.lines) == 3
    np.testing.assert_allclose(ax_loss.lines[1].get_ydata(), moving_average(history["g_loss"]))
    np.testing.assert_allclose(ax_prob.lines[0].get_ydata(), moving_average(history["d_real"]))
    np.testing.assert_allclose(ax_prob.lines[1].get_ydata(), moving_average(history["d_fake"]))
    assert len(ax_prob.lines[0].get_ydata()) == 120 - 120 // 4 + 1  # the window: a quarter of a short run
    # each mean at the last step of its window: the curves end at the last step, 119, as the runs do
    for line in ax_loss.lines + ax_prob.lines[:2]:
        np.testing.assert_array_equal(line.get_xdata(), np.arange(120 // 4 - 1, 120))
    np.testing.assert_array_equal(ax_prob.lines[2].get_ydata(), [0.5, 0.5])   # "D cannot tell"
    assert ax_prob.get_ylim() == (0, 1)
    plt.close(fig)


SCRIPT_IMAGES = np.random.default_rng(1).random((128, 784)).astype(np.float32)


def script_players(init_seed=0, device="cpu"):
    """Small MLP players on `device` and their Adam optimizers, the weights drawn after
    zero.seed(init_seed, device), as a script starts."""
    zero.seed(init_seed, device)
    generator, discriminator = MLPGenerator(8, 32).to(device), MLPDiscriminator(32).to(device)
    return (generator, discriminator, Adam(generator.params(), lr=2e-4, betas=(0.5, 0.999)),
            Adam(discriminator.params(), lr=2e-4, betas=(0.5, 0.999)))


def run_script(players, checkpoint, epochs, resume=False, **options):
    """The training block of a GAN script (train_gan_or_resume) on SCRIPT_IMAGES."""
    settings = {"batch_size": 64, "device": "cpu", "seed": 0, **options}
    args = SimpleNamespace(epochs=epochs, resume=resume, **settings)
    return train_gan_or_resume(*players, SCRIPT_IMAGES, args, checkpoint, description="test")


def assert_same_weights(model, other):
    params, other_params = list(model.params()), list(other.params())
    assert len(params) == len(other_params)
    for a, b in zip(params, other_params):
        np.testing.assert_array_equal(host(a.data), host(b.data))


def test_a_resumed_gan_run_continues_the_uninterrupted_one(tmp_path, device):
    """1 epoch, save, new players, --resume to 2 epochs: the same generator as 2 epochs straight
    (the codes z come from the saved random state, not a reseed; on a device, from its generator
    reseeded from that state at each epoch's start)."""
    straight = script_players(device=device)
    run_script(straight, tmp_path / "a.npz", epochs=2, device=device)
    run_script(script_players(device=device), tmp_path / "b.npz", epochs=1, device=device)
    resumed = script_players(device=device)
    run_script(resumed, tmp_path / "b.npz", epochs=2, resume=True, device=device)
    assert_same_weights(straight[0], resumed[0])


def test_an_interrupted_gan_run_resumes_from_its_last_epoch_as_if_uninterrupted(tmp_path, device):
    """Ctrl-C in epoch 2 (of 2 batches each) leaves epoch 1's pair of checkpoints (saved after every
    epoch; it was only at the end, and the run was lost), and --resume ends with the generator and
    discriminator of 2 epochs straight."""
    straight = script_players(device=device)
    run_script(straight, tmp_path / "a.npz", epochs=2, device=device)
    interrupted = script_players(device=device)
    interrupted_at_call(interrupted[0], "latent", 3)   # the first batch of epoch 2
    with pytest.raises(KeyboardInterrupt):
        run_script(interrupted, tmp_path / "b.npz", epochs=2, device=device)
    for path in (tmp_path / "b.npz", discriminator_path(tmp_path / "b.npz")):
        assert int(np.load(path)["epoch"]) == 1
    resumed = script_players(device=device)
    run_script(resumed, tmp_path / "b.npz", epochs=2, resume=True, device=device)
    assert_same_weights(straight[0], resumed[0])
    assert_same_weights(straight[1], resumed[1])


# =============================================================================
# A game small enough to play by hand: every real image is ones, G's images are all sigmoid(b),
# D's logit is w * mean(x) + c, so every step of train_gan can be recomputed in NumPy.
# =============================================================================
class _ConstantGenerator(_Generator):
    """Every image of a batch is sigmoid(b + z); latent(n) gives z = 0.1 k for its k-th call."""

    def __init__(self, b):
        super().__init__(latent_size=1)
        self.b = Parameter(np.array([b], np.float32), name="b")
        self.calls = 0

    def latent(self, n):
        self.calls += 1
        return np.full((n, 1), 0.1 * self.calls, np.float32)

    def forward(self, z):
        return F.sigmoid(self.b * np.ones((len(z), 784), np.float32) + z)


class _MeanDiscriminator(Model):
    def __init__(self, w, c):
        super().__init__()
        self.w = Parameter(np.array([w], np.float32), name="w")
        self.c = Parameter(np.array([c], np.float32), name="c")

    def forward(self, x):
        return F.mean(x, axis=1) * self.w + self.c


def _softplus(a):
    return np.logaddexp(0.0, a)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


@pytest.mark.parametrize("loss", ["non_saturating", "minimax"])
def test_train_gan_steps_and_curves_match_a_hand_computed_game(loss):
    """Per batch one code z, one D step on L_D with G's images held fixed, then a G step on the same
    images through the updated D; history records L_D, L_G and the mean D(x), D(G(z)) before the
    D step; drop_last leaves out the partial batch."""
    generator, discriminator = _ConstantGenerator(0.3), _MeanDiscriminator(0.5, -0.2)
    lr = 0.5
    history = train_gan(generator, discriminator, SGD(generator.params(), lr), SGD(discriminator.params(), lr),
                        np.ones((10, 784), np.float32), epochs=2, batch_size=4, loss=loss)
    b, w, c = 0.3, 0.5, -0.2
    expected = {key: [] for key in ("d_loss", "g_loss", "d_real", "d_fake")}
    for step in range(1, 2 * (10 // 4) + 1):   # 2 epochs of 2 full batches
        g = _sigmoid(b + 0.1 * step)
        real, fake = w + c, w * g + c
        expected["d_loss"].append(_softplus(-real) + _softplus(fake))
        expected["d_real"].append(_sigmoid(real))
        expected["d_fake"].append(_sigmoid(fake))
        grad_real, grad_fake = -_sigmoid(-real), _sigmoid(fake)   # d L_D / d logit
        w, c = w - lr * (grad_real + grad_fake * g), c - lr * (grad_real + grad_fake)
        fake = w * g + c
        if loss == "non_saturating":
            expected["g_loss"].append(_softplus(-fake))
            grad_logit = -_sigmoid(-fake)
        else:
            expected["g_loss"].append(-_softplus(fake))
            grad_logit = -_sigmoid(fake)
        b = b - lr * grad_logit * w * g * (1 - g)
    for key, values in expected.items():
        np.testing.assert_allclose(history[key], values, rtol=2e-5, err_msg=key)
    np.testing.assert_allclose([generator.b.data[0], discriminator.w.data[0], discriminator.c.data[0]],
                               [b, w, c], rtol=2e-5)
    assert generator.calls == 4   # one code per step


class _CountingIdentity(zero.core.Function):
    """y = x, counting the backward passes that reach it."""
    backward_calls = 0

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        type(self).backward_calls += 1
        return gy


class _CountedGenerator(_ConstantGenerator):
    """_ConstantGenerator whose images pass through a _CountingIdentity: every backward into G is counted."""

    def forward(self, z):
        return _CountingIdentity()(super().forward(z))


def test_the_discriminator_step_sends_no_gradient_into_the_generator():
    """D learns from G(z) held fixed (fake.data): a backward through G in D's step would cost a whole
    backward pass of G per batch, its gradients only cleared by G's zero_grad before G's own step."""
    _CountingIdentity.backward_calls = 0
    generator, discriminator = _CountedGenerator(0.3), _MeanDiscriminator(0.5, -0.2)
    train_gan(generator, discriminator, SGD(generator.params(), 0.5), SGD(discriminator.params(), 0.5),
              np.ones((8, 784), np.float32), epochs=1, batch_size=4)
    assert generator.calls == 2 and _CountingIdentity.backward_calls == 2   # G's own step, once per batch


@pytest.mark.parametrize("p", [0.3, 0.1])
def test_mlp_discriminator_applies_its_dropout_rate_in_training_only(monkeypatch, p):
    rates = []
    original = F.dropout

    def recording_dropout(x, rate=0.5):
        rates.append((rate, zero.Config.train))
        return original(x, rate)

    monkeypatch.setattr(F, "dropout", recording_dropout)
    # p = 0.3 is the default rate: build that one without the argument
    discriminator = MLPDiscriminator(8, image_size=5, dropout=p) if p != 0.3 else MLPDiscriminator(8, image_size=5)
    discriminator(np.ones((4, 5), np.float32))
    assert rates == [(p, True), (p, True)]
    rates.clear()
    discriminator.eval()
    y = discriminator(np.ones((4, 5), np.float32)).data
    assert rates == [(p, False), (p, False)]
    np.testing.assert_array_equal(y, np.full(4, y[0]))   # no dropout: identical rows give identical logits


@pytest.mark.parametrize("stale_gradients", [False, True])
@pytest.mark.parametrize("kind", ["non_saturating", "minimax"])
def test_generator_gradient_norm_by_hand_and_it_leaves_no_gradients_on_either_player(kind, stale_gradients):
    """stale_gradients: an earlier backward left gradients on G, which the norm must not include."""
    generator, discriminator = _ConstantGenerator(0.3), _MeanDiscriminator(0.5, -0.2)
    if stale_gradients:
        generator_loss(discriminator(generator(np.full((3, 1), 5.0, np.float32))), kind).backward()
    g = _sigmoid(0.3 + 0.1)   # the first code is z = 0.1
    logit = 0.5 * g - 0.2
    grad_logit = -_sigmoid(-logit) if kind == "non_saturating" else -_sigmoid(logit)
    norm = generator_gradient_norm(generator, discriminator, 6, kind)
    assert norm == pytest.approx(abs(grad_logit * 0.5 * g * (1 - g)), rel=1e-5)
    assert all(param.grad is None for param in [*generator.params(), *discriminator.params()])


def test_load_gan_checks_both_files_before_changing_either_player(tmp_path):
    """The discriminator's file is fine, the generator's is from another epoch (or another run):
    neither player nor optimizer changes."""
    from zero.gan import load_gan, save_gan
    from zero.training import save_checkpoint

    def players(seed):
        np.random.seed(seed)
        generator, discriminator = MLPGenerator(8, 32), MLPDiscriminator(32)
        generator(generator.latent(2)), discriminator(np.zeros((2, 784), np.float32))   # create lazy weights
        return generator, discriminator, Adam(generator.params()), Adam(discriminator.params())

    saved = players(0)
    path = tmp_path / "gan.npz"
    save_gan(path, *saved, epoch=3, history={}, settings={"lr": "0.0002"})
    save_checkpoint(path, saved[0], saved[2], epoch=2)                    # G's file now says epoch 2
    target = players(1)
    before = [p.data.copy() for model in target[:2] for p in model.params()]
    with pytest.raises(ValueError, match="different epochs"):
        load_gan(path, *target)
    save_gan(path, *saved, epoch=3, history={}, settings={"lr": "0.0002"})
    with pytest.raises(ValueError, match=r"--lr 0.0002 \(now 0.001\)") as refused:
        load_gan(path, *target, settings={"lr": "0.001"})
    assert str(refused.value).startswith(f"checkpoint {path} ")   # the file the user named, not D's
    after = [p.data for model in target[:2] for p in model.params()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert load_gan(path, *target, settings={"lr": "0.0002"})["epoch"] == 3
    assert all(np.array_equal(a.data, b.data) for a, b in zip(saved[1].params(), target[1].params()))


# =============================================================================
# Found by a mutation audit: the players against NumPy, and what train_gan, the script block,
# the latent walk and score_generator promise
# =============================================================================
def test_leaky_relu_has_slope_two_tenths():
    np.testing.assert_allclose(leaky_relu(V([-1.0, -0.5, 0.0, 2.0])).data, [-0.2, -0.1, 0.0, 2.0])


def test_latent_codes_are_standard_normal_float32():
    np.random.seed(0)
    codes = MLPGenerator(latent_size=5, hidden_size=4).latent(20_000)
    assert codes.shape == (20_000, 5) and codes.dtype == np.float32
    np.testing.assert_allclose(codes.mean(axis=0), 0, atol=0.03)
    np.testing.assert_allclose(codes.std(axis=0), 1, atol=0.03)


def _leaky(h):
    return np.where(h > 0, h, 0.2 * h)


def _batch_norm_by_hand(h, norm):
    """Training-mode batch norm in float64: batch statistics over every axis but 1, then gamma, beta."""
    axes = (0,) + tuple(range(2, h.ndim))
    per_channel = (1, -1) + (1,) * (h.ndim - 2)
    normalised = (h - h.mean(axis=axes, keepdims=True)) / np.sqrt(h.var(axis=axes, keepdims=True) + 1e-5)
    return normalised * norm.gamma.data.reshape(per_channel) + norm.beta.data.reshape(per_channel)


def _linear_by_hand(h, layer):
    return h @ layer.W.data.astype(np.float64) + layer.b.data


def _conv_by_hand(x, layer):
    """Conv2d with a 4x4 kernel, stride 2, padding 1 as a sum over the kernel's 16 offsets."""
    n, _, height, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, layer.W.shape[0], height // 2, width // 2))
    for i in range(4):
        for j in range(4):
            window = padded[:, :, i:i + height - 1:2, j:j + width - 1:2]   # the inputs this offset sees
            out += np.einsum("nchw,oc->nohw", window, layer.W.data[:, :, i, j])
    return out + layer.b.data[None, :, None, None]


def _randomise_batch_norms(model, rng):
    """gamma and beta away from 1 and 0, so that forgetting them shows."""
    for name, param in model.named_params():
        if name.endswith(("gamma", "beta")):
            param.data = rng.uniform(0.5, 1.5, param.shape).astype(np.float32)


def test_mlp_generator_is_linear_batch_norm_relu_twice_then_sigmoid():
    np.random.seed(0)
    generator = MLPGenerator(latent_size=4, hidden_size=8, image_size=10)
    _randomise_batch_norms(generator, np.random.default_rng(0))
    z = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    h = np.maximum(_batch_norm_by_hand(_linear_by_hand(z, generator.hidden1), generator.norm1), 0)
    h = np.maximum(_batch_norm_by_hand(_linear_by_hand(h, generator.hidden2), generator.norm2), 0)
    expected = 1 / (1 + np.exp(-_linear_by_hand(h, generator.out)))
    np.testing.assert_allclose(generator(z).data, expected, rtol=1e-4, atol=1e-6)


def test_mlp_discriminator_in_eval_mode_is_linear_leaky_relu_twice_then_a_logit():
    np.random.seed(0)
    discriminator = MLPDiscriminator(hidden_size=8, image_size=10).eval()
    x = np.random.default_rng(1).random((5, 10)).astype(np.float32)
    h = _leaky(_linear_by_hand(_leaky(_linear_by_hand(x, discriminator.hidden1)), discriminator.hidden2))
    expected = _linear_by_hand(h, discriminator.out)[:, 0]
    np.testing.assert_allclose(discriminator(x).data, expected, rtol=1e-4, atol=1e-5)


def test_dc_discriminator_is_conv_leaky_conv_batch_norm_leaky_then_a_logit():
    np.random.seed(0)
    discriminator = DCDiscriminator(width=2)
    _randomise_batch_norms(discriminator, np.random.default_rng(0))
    x = np.random.default_rng(1).random((3, 784)).astype(np.float32)
    h = _leaky(_conv_by_hand(x.reshape(3, 1, 28, 28).astype(np.float64), discriminator.down1))   # (3, 2, 14, 14)
    h = _leaky(_batch_norm_by_hand(_conv_by_hand(h, discriminator.down2), discriminator.norm2))   # (3, 4, 7, 7)
    expected = _linear_by_hand(h.reshape(3, -1), discriminator.out)[:, 0]
    np.testing.assert_allclose(discriminator(x).data, expected, rtol=1e-4, atol=1e-5)


class _RecordingDiscriminator(_MeanDiscriminator):
    """Records the real batches it judges: the training images are >= 1, G's images sigmoid(...) < 1."""

    def __init__(self):
        super().__init__(0.5, -0.2)
        self.real_batches = []

    def forward(self, x):
        values = np.asarray(getattr(x, "data", x))
        if values.min() >= 1:
            self.real_batches.append(values[:, 0].copy())
        return super().forward(x)


def _hand_game(images, epochs, **options):
    """train_gan on the hand-computable players; returns (history, generator, discriminator)."""
    generator, discriminator = _ConstantGenerator(0.3), _RecordingDiscriminator()
    history = train_gan(generator, discriminator, SGD(generator.params(), 0.1), SGD(discriminator.params(), 0.1),
                        images, epochs, **options)
    return history, generator, discriminator


def _numbered_images(n):
    """Image i is filled with the number i + 1: a batch shows which images it holds."""
    return np.repeat(np.arange(1, n + 1, dtype=np.float32)[:, None], 784, axis=1)


def test_train_gan_shuffles_every_epoch_differently_and_by_its_seed():
    def epoch_orders(seed):
        _, _, discriminator = _hand_game(_numbered_images(12), epochs=2, batch_size=4, seed=seed)
        batches = discriminator.real_batches
        return np.concatenate(batches[:3]), np.concatenate(batches[3:])

    first, second = epoch_orders(seed=0)
    assert sorted(first) == sorted(second) == list(range(1, 13))   # every image once per epoch
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, epoch_orders(seed=1)[0])
    np.testing.assert_array_equal(first, epoch_orders(seed=0)[0])


def test_train_gan_batches_64_images_by_default():
    history, _, _ = _hand_game(np.ones((130, 784), np.float32), epochs=1)
    assert len(history["d_loss"]) == 130 // 64


def test_train_gan_appends_to_a_given_history():
    earlier = {key: [9.0] for key in ("d_loss", "g_loss", "d_real", "d_fake")}
    history, _, _ = _hand_game(np.ones((8, 784), np.float32), epochs=1, batch_size=4, history=earlier)
    assert history is earlier
    assert all(len(values) == 3 and values[0] == 9.0 for values in history.values())


def test_train_gan_prints_each_epochs_own_means(capsys):
    history, _, _ = _hand_game(np.ones((8, 784), np.float32), epochs=2, batch_size=4, description="game")
    second_epoch = {key: np.mean(values[2:]) for key, values in history.items()}
    expected = (f"game epoch 2/2: L_D {second_epoch['d_loss']:.3f}, L_G {second_epoch['g_loss']:.3f}, "
                f"D(x) {second_epoch['d_real']:.2f}, D(G(z)) {second_epoch['d_fake']:.2f}")
    assert expected in capsys.readouterr().out.splitlines()


def test_train_gan_puts_players_left_in_eval_mode_back_in_training_mode():
    np.random.seed(0)
    generator, discriminator = MLPGenerator(4, 8).eval(), MLPDiscriminator(8).eval()
    optimizers = SGD(generator.params(), 0.1), SGD(discriminator.params(), 0.1)
    train_gan(generator, discriminator, *optimizers, np.ones((4, 784), np.float32), epochs=1, batch_size=4)
    assert all(layer.training for player in (generator, discriminator) for layer in player.sublayers())


def test_a_latent_walk_through_a_generator_walks_the_straight_line_between_the_codes_at_even_steps():
    """_ConstantGenerator's images are sigmoid(b + z): the k-th of 5 steps from z = 0 to z = 1 is sigmoid(b + k / 4)."""
    generator = _ConstantGenerator(0.3)
    images = latent_walk(generator, np.zeros(1, np.float32), np.ones(1, np.float32), steps=5)
    assert images.shape == (5, 784)
    np.testing.assert_allclose(images, np.repeat(_sigmoid(0.3 + np.arange(5) / 4)[:, None], 784, axis=1), rtol=1e-6)


def test_latent_walks_are_rows_of_walks_between_pairs_of_fresh_codes(device):
    np.random.seed(0)
    generator = MLPGenerator(4, 8).to(device).eval()
    zero.seed(1, device)
    walks = generator.latent_walks(rows=3, steps=5)
    zero.seed(1, device)
    codes = generator.latent(6)
    expected = np.concatenate([host(latent_walk(generator, codes[2 * row], codes[2 * row + 1], 5)) for row in range(3)])
    assert type(walks) is np.ndarray and walks.shape == (15, 784)
    np.testing.assert_array_equal(walks, expected)
    with zero.no_grad():   # each row runs from G(z_a) to G(z_b) of its own pair of codes
        ends = host(generator(codes).data)
    np.testing.assert_allclose(walks[::5], ends[0::2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(walks[4::5], ends[1::2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="latent_walks: rows must be a whole number >= 1, got 0"):
        generator.latent_walks(rows=0)


@pytest.mark.parametrize("make", [lambda: MLPGenerator(4, 8), lambda: DCGenerator(4, 2)], ids=["mlp", "dc"])
def test_a_generator_in_training_mode_samples_and_walks_in_test_mode(make, device):
    """train_gan leaves G in training mode. Sampling there normalised each batch with its own statistics
    and overwrote batch norm's running ones, so an image depended on the others drawn with it."""
    np.random.seed(0)
    generator = make().to(device)
    running_before = [host(buffer).copy() for _, buffer in generator.named_buffers()]
    zero.seed(1, device)
    codes = generator.latent(4)
    zero.seed(1, device)
    images = host(generator.sample(4))
    zero.seed(1, device)
    walk_ends = generator.latent_walks(rows=2, steps=3)[::3]   # G(z_a) of each walk: codes[0] and codes[2]
    for before, (name, after) in zip(running_before, generator.named_buffers()):
        np.testing.assert_array_equal(before, host(after), err_msg=name)
    assert all(layer.training for layer in generator.sublayers())   # and G stays in training mode
    generator.eval()
    with zero.no_grad():   # each code alone, in test mode
        alone = np.concatenate([host(generator(codes[i:i + 1]).data) for i in range(4)])
    np.testing.assert_allclose(images, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(walk_ends, alone[0::2], rtol=1e-5, atol=1e-6)


def test_the_discriminators_checkpoint_sits_beside_the_generators(tmp_path):
    assert discriminator_path(tmp_path / "runs" / "gan.npz") == tmp_path / "runs" / "gan_discriminator.npz"
    save_gan(tmp_path / "gan.npz", *script_players(), epoch=1, history={})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gan.npz", "gan_discriminator.npz"]


def test_load_gan_refuses_a_discriminator_trained_with_other_settings(tmp_path):
    """Both files keep the run's settings: a discriminator file from another run is caught too."""
    players = script_players()
    for name, lr in [("this.npz", "0.0002"), ("other.npz", "0.001")]:
        save_gan(tmp_path / name, *players, epoch=1, history={}, settings={"lr": lr})
    discriminator_path(tmp_path / "this.npz").write_bytes(discriminator_path(tmp_path / "other.npz").read_bytes())
    with pytest.raises(ValueError, match=r"this_discriminator.npz was trained with --lr 0.001 \(now 0.0002\)"):
        load_gan(tmp_path / "this.npz", *script_players(), settings={"lr": "0.0002"})


def test_a_script_run_without_resume_starts_afresh_over_an_existing_checkpoint(tmp_path):
    run_script(script_players(init_seed=1), tmp_path / "gan.npz", epochs=1)   # another run's checkpoint
    fresh, reference = script_players(), script_players()
    run_script(fresh, tmp_path / "gan.npz", epochs=1)
    run_script(reference, tmp_path / "clean.npz", epochs=1)
    assert_same_weights(fresh[0], reference[0])


def test_a_script_run_resumed_without_a_checkpoint_says_it_trains_from_scratch(tmp_path, capsys):
    run_script(script_players(), tmp_path / "gan.npz", epochs=1, resume=True)
    assert f"no checkpoint at {tmp_path / 'gan.npz'}: training from scratch" in capsys.readouterr().out


def test_a_script_run_draws_its_codes_from_its_seed_whatever_came_before(tmp_path):
    runs = []
    for global_seed, run_seed in [(123, 0), (456, 0), (123, 1)]:
        players = script_players()
        np.random.seed(global_seed)   # whatever the program drew before training
        run_script(players, tmp_path / f"{global_seed}_{run_seed}.npz", epochs=1, seed=run_seed)
        runs.append(players[0])
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(runs[0].out.W.data, runs[2].out.W.data)


def test_a_script_run_trains_with_the_non_saturating_loss(tmp_path):
    """train_gan_or_resume is train_gan after zero.seed(args.seed, device), with G on -mean log D(G(z))
    (L_G > 0 at every step; the minimax loss mean log(1 - D(G(z))) is < 0)."""
    by_script = script_players()
    history = run_script(by_script, tmp_path / "gan.npz", epochs=1)
    by_hand = script_players()
    zero.seed(0, "cpu")
    expected = train_gan(*by_hand, SCRIPT_IMAGES, 1, 64, "cpu", 0, "non_saturating", description="test")
    assert min(history["g_loss"]) > 0 and history == expected
    assert_same_weights(by_script[0], by_hand[0])


def test_a_script_run_may_resume_with_another_heldout_limit(tmp_path):
    """The held-out images only score the result: changing --heldout-limit does not refuse --resume."""
    run_script(script_players(), tmp_path / "gan.npz", epochs=1, heldout_limit=100)
    history = run_script(script_players(), tmp_path / "gan.npz", epochs=2, resume=True, heldout_limit=200)
    assert len(history["d_loss"]) == 2 * (128 // 64)


def test_resuming_a_run_that_is_past_the_requested_epochs_leaves_its_checkpoints_alone(tmp_path):
    path = tmp_path / "gan.npz"
    run_script(script_players(), path, epochs=2)
    saved = {file: file.read_bytes() for file in (path, discriminator_path(path))}
    run_script(script_players(), path, epochs=1, resume=True)
    assert all(file.read_bytes() == content for file, content in saved.items())


def test_resuming_a_run_at_or_past_the_requested_epochs_says_so_and_trains_nothing(tmp_path, capsys):
    path = tmp_path / "gan.npz"
    run_script(script_players(), path, epochs=2)
    assert "trained 2 epochs in " in capsys.readouterr().out
    history = run_script(script_players(), path, epochs=1, resume=True)
    out = capsys.readouterr().out
    assert f"resumed from {path} after epoch 2, past --epochs 1: nothing left to train" in out
    assert "trained" not in out and "saved" not in out and len(history["d_loss"]) == 2 * (128 // 64)
    run_script(script_players(), path, epochs=2, resume=True)
    out = capsys.readouterr().out
    assert f"resumed from {path} after epoch 2\n" in out and "trained" not in out and "saved" not in out
    run_script(script_players(), path, epochs=3, resume=True)
    assert "trained 1 epoch in " in capsys.readouterr().out


def test_a_script_run_refuses_to_resume_another_runs_checkpoint_with_the_reason(tmp_path):
    """A CheckpointRefused ends the script with its message alone (zero.cli.show_setup_errors)."""
    run_script(script_players(), tmp_path / "gan.npz", epochs=1)
    with pytest.raises(CheckpointRefused, match=r"gan\.npz was trained with --batch-size 64 \(now 32\)"):
        run_script(script_players(), tmp_path / "gan.npz", epochs=2, resume=True, batch_size=32)


def test_a_script_run_resumed_without_the_discriminators_file_is_refused_naming_it(tmp_path):
    """gan.npz without gan_discriminator.npz beside it ended the script in a traceback (FileNotFoundError,
    which train_gan_or_resume did not catch): now its message alone, naming the file and what to do."""
    path = tmp_path / "gan.npz"
    run_script(script_players(), path, epochs=1)
    discriminator_path(path).unlink()
    players = script_players()
    before = [p.data.copy() for model in players[:2] for p in model.params()]
    with pytest.raises(CheckpointRefused, match=f"{re.escape(str(path))} has no discriminator beside it: "
                                                f"{re.escape(str(discriminator_path(path)))} is missing. Put that "
                                                f"file back, or start a new run without --resume"):
        run_script(players, path, epochs=2, resume=True)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, (p for model in players[:2] for p in model.params())))


def test_score_generator_scores_n_images_drawn_in_eval_mode(monkeypatch):
    """n = 7 in batches of 3: 3 + 3 + 1 images. In eval mode batch norm reads its running
    statistics, so scoring does not move them."""
    scored = {}

    def fake_score_samples(classifier, images, reference):
        scored.update(classifier=classifier, images=images, reference=reference)
        return {"frechet_distance": 1.0}

    monkeypatch.setattr(zero.gan, "score_samples", fake_score_samples)
    np.random.seed(0)
    generator = MLPGenerator(latent_size=4, hidden_size=8)
    running_before = [host(buffer).copy() for _, buffer in generator.named_buffers()]
    scores = score_generator(generator, "classifier", np.zeros((2, 784), np.float32), n=7, batch_size=3)
    assert scores["images"].shape == (7, 784) and scored["images"].shape == (7, 1, 28, 28)
    assert scored["reference"].shape == (2, 1, 28, 28) and scored["classifier"] == "classifier"
    assert scores["frechet_distance"] == 1.0
    for before, (_, after) in zip(running_before, generator.named_buffers()):
        np.testing.assert_array_equal(before, host(after))


def test_train_gan_refuses_an_unknown_generator_loss_before_any_step():
    generator, discriminator = _ConstantGenerator(0.3), _MeanDiscriminator(0.5, -0.2)
    with pytest.raises(ValueError, match=r"generator loss must be one of .*non_saturating.*got 'wasserstein'"):
        train_gan(generator, discriminator, SGD(generator.params(), 0.1), SGD(discriminator.params(), 0.1),
                  np.ones((8, 784), np.float32), epochs=1, batch_size=4, loss="wasserstein")
    assert (discriminator.w.data[0], discriminator.c.data[0]) == (np.float32(0.5), np.float32(-0.2))
    assert generator.calls == 0


@pytest.mark.parametrize("kind", ["non_saturating", "minimax"])
def test_generator_gradient_norm_sums_over_every_parameter_of_the_generator(kind):
    np.random.seed(0)
    generator, discriminator = MLPGenerator(2, 3), MLPDiscriminator(4).eval()
    np.random.seed(1)
    norm = generator_gradient_norm(generator, discriminator, 5, kind)
    np.random.seed(1)
    generator_loss(discriminator(generator(generator.latent(5))), kind).backward()
    squares = [float((param.grad.data ** 2).sum()) for param in generator.params()]
    assert sum(value > 0 for value in squares) > 1
    assert norm == pytest.approx(math.sqrt(sum(squares)), rel=1e-6)


def test_dc_generator_ends_with_a_biased_transposed_convolution_and_a_sigmoid():
    """With the last layer's weights zero, every pixel of every image is sigmoid(its bias)."""
    np.random.seed(0)
    generator = DCGenerator(latent_size=4, width=2)
    generator.up2.W.data = np.zeros_like(generator.up2.W.data)
    generator.up2.b.data = np.array([1.5], np.float32)
    images = generator(generator.latent(3)).data
    assert images.shape == (3, 784)
    np.testing.assert_allclose(images, np.full((3, 784), sigmoid(1.5)), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: MLPGenerator(4, 8, 784), lambda: DCGenerator(4, 2)], ids=["mlp", "dc"])
def test_a_float64_generator_draws_its_latents_in_float64(make):
    """Its first linear layer refuses a float32 z (it raised TypeError after generator.astype(np.float64))."""
    generator = make().astype(np.float64)
    assert generator.latent(2).dtype == generator.sample(2).dtype == np.float64


@pytest.mark.parametrize("failing_write", [1, 2])
def test_a_gan_save_interrupted_while_writing_leaves_the_previous_pair_loadable(tmp_path, monkeypatch, failing_write):
    """The second player's file failing to save left a new G beside an old D: a pair load_gan refuses
    for ever (different epochs), so --resume could never continue that run again."""
    from zero.gan import discriminator_path, load_gan, save_gan
    np.random.seed(0)
    generator, discriminator = MLPGenerator(4, 8), MLPDiscriminator(8)
    optimizers = Adam(generator.params()), Adam(discriminator.params())
    path = tmp_path / "gan.npz"
    save_gan(path, generator, discriminator, *optimizers, epoch=1, history={"d_loss": [0.5]})
    real_write, writes = zero.utils.write_npz, []

    def write_failing(file, arrays):
        writes.append(file)
        if len(writes) == failing_write:
            raise OSError("disk full")
        real_write(file, arrays)
    monkeypatch.setattr(zero.utils, "write_npz", write_failing)
    with pytest.raises(OSError, match="disk full"):
        save_gan(path, generator, discriminator, *optimizers, epoch=2, history={"d_loss": [0.5, 0.4]})
    monkeypatch.setattr(zero.utils, "write_npz", real_write)
    other_g, other_d = MLPGenerator(4, 8), MLPDiscriminator(8)
    state = load_gan(path, other_g, other_d, Adam(other_g.params()), Adam(other_d.params()))
    assert state["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, discriminator_path(path).name])


def _saved_pair(tmp_path):
    """A GAN saved at epoch 1 in tmp_path: (path, generator, discriminator, their two Adams)."""
    np.random.seed(0)
    generator, discriminator = MLPGenerator(4, 8), MLPDiscriminator(8)
    optimizers = Adam(generator.params()), Adam(discriminator.params())
    path = tmp_path / "gan.npz"
    save_gan(path, generator, discriminator, *optimizers, epoch=1, history={"d_loss": [0.5]})
    return path, generator, discriminator, optimizers


def _load_epoch(path):
    other_g, other_d = MLPGenerator(4, 8), MLPDiscriminator(8)
    return load_gan(path, other_g, other_d, Adam(other_g.params()), Adam(other_d.params()))["epoch"]


def test_a_gan_save_interrupted_between_its_renames_completes_the_new_pair(tmp_path, monkeypatch):
    """Ctrl-C after G's file was renamed into place and before D's: the save finishes D's rename before
    the interrupt goes on (it deleted D's new file, leaving a new G beside an old D: a pair load_gan
    refuses, so --resume could not continue either epoch)."""
    path, generator, discriminator, optimizers = _saved_pair(tmp_path)
    real_replace, renames = zero.utils.os.replace, []

    def replace_interrupted_once(source, target):
        real_replace(source, target)
        renames.append(target)
        if len(renames) == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(zero.utils.os, "replace", replace_interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        save_gan(path, generator, discriminator, *optimizers, epoch=2, history={"d_loss": [0.5, 0.4]})
    monkeypatch.setattr(zero.utils.os, "replace", real_replace)
    assert len(renames) == 2
    assert _load_epoch(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, discriminator_path(path).name])


def _save_gan_failing_to_rename_d(monkeypatch, path, generator, discriminator, optimizers, epoch, history):
    """save_gan where D's rename fails (PermissionError): G's new file is in place, D's new one is left
    beside it as a temporary file, which this returns. The error (SaveFailed, an OSError still) names
    D's file and the rename that completes the pair."""
    real_replace = zero.utils.os.replace

    def replace_failing_for_d(source, target):
        if Path(target) == discriminator_path(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        real_replace(source, target)
    monkeypatch.setattr(zero.utils.os, "replace", replace_failing_for_d)
    with pytest.raises(SaveFailed) as failure:
        save_gan(path, generator, discriminator, *optimizers, epoch=epoch, history=history)
    monkeypatch.setattr(zero.utils.os, "replace", real_replace)
    (leftover,) = path.parent.glob(f".{discriminator_path(path).name}.*.tmp")
    assert failure.value.errno == errno.EACCES
    assert str(failure.value) == (f"cannot save {discriminator_path(path)}: Permission denied, after 1 of the 2 "
                                  f"files saved together was replaced: the set on disk is mixed; to complete "
                                  f"the new one, rename {leftover} to {discriminator_path(path)}")
    return leftover


def test_a_mixed_gan_pair_is_refused_naming_the_file_that_completes_it(tmp_path, monkeypatch):
    """When D's rename cannot be done (here: it always fails), its new file stays beside the pair and
    load_gan's refusal says which rename completes the newer pair."""
    path, generator, discriminator, optimizers = _saved_pair(tmp_path)
    leftover = _save_gan_failing_to_rename_d(monkeypatch, path, generator, discriminator, optimizers, epoch=2,
                                             history={"d_loss": [0.5, 0.4]})
    # partial files of saves killed while writing lie beside it: never to be named (renaming one would lose data)
    (tmp_path / f".{path.name}.0partial.tmp").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / f".{discriminator_path(path).name}.0partial.tmp").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match=f"different epochs \\(2 and 1\\); .*: rename {re.escape(str(leftover))} "
                                         f"to {re.escape(str(discriminator_path(path)))} to complete") as refusal:
        _load_epoch(path)
    assert "0partial" not in str(refusal.value)
    leftover.rename(discriminator_path(path))
    assert _load_epoch(path) == 2


def test_a_first_gan_save_that_renamed_only_the_generator_is_refused_naming_the_file_that_completes_it(
        tmp_path, monkeypatch):
    """No pair before: D's file is missing, and its new one waits beside G's as a temporary file."""
    np.random.seed(0)
    generator, discriminator = MLPGenerator(4, 8), MLPDiscriminator(8)
    path = tmp_path / "gan.npz"
    leftover = _save_gan_failing_to_rename_d(monkeypatch, path, generator, discriminator,
                                             (Adam(generator.params()), Adam(discriminator.params())), epoch=1,
                                             history={})
    with pytest.raises(FileNotFoundError, match=f"is missing; .*: rename {re.escape(str(leftover))} to "
                                                f"{re.escape(str(discriminator_path(path)))} to complete"):
        _load_epoch(path)
    leftover.rename(discriminator_path(path))
    assert _load_epoch(path) == 1


def test_a_mixed_gan_pair_is_not_completed_by_a_discriminator_file_of_another_epoch(tmp_path):
    """Only a temporary file holding G's epoch completes the pair: one of another epoch (a save killed at
    another time) renamed into place would leave the players from two epochs still."""
    from zero.training import save_checkpoint
    path, generator, discriminator, (g_optimizer, d_optimizer) = _saved_pair(tmp_path)
    other = save_checkpoint(tmp_path / "other.npz", discriminator, d_optimizer, epoch=2)
    stray = tmp_path / f".{discriminator_path(path).name}.stray.tmp"
    other.rename(stray)
    save_checkpoint(path, generator, g_optimizer, epoch=3, history={"d_loss": [0.5, 0.4, 0.3]})
    with pytest.raises(ValueError, match=r"different epochs \(3 and 1\)") as refusal:
        _load_epoch(path)
    assert "rename" not in str(refusal.value) and stray.name not in str(refusal.value)


def test_train_gan_refuses_players_on_two_devices():
    generator, discriminator = MLPGenerator(2, 4, 8), MLPDiscriminator(4, 8).to("strict")
    with pytest.raises(ValueError, match="train_gan: the generator is on cpu, the discriminator on strict"):
        train_gan(generator, discriminator, Adam(generator.params()), Adam(discriminator.params()),
                  np.random.rand(6, 8).astype(np.float32), epochs=1, batch_size=3)


def test_train_gan_stops_at_a_nan_loss_naming_the_epoch_batch_and_player():
    from zero.errors import TrainingDiverged
    images = np.random.default_rng(0).random((64, 784)).astype(np.float32)
    images[:, 0] = np.nan
    np.random.seed(0)
    generator, discriminator = MLPGenerator(8, 32), MLPDiscriminator(32)
    with pytest.raises(TrainingDiverged, match=r"^GAN training epoch 1, batch 1 of 4, D's step: the loss is nan"):
        train_gan(generator, discriminator, Adam(generator.params()), Adam(discriminator.params()), images, 2,
                  batch_size=16)
