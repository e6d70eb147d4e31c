"""zero.gan: the losses against hand computation, their logit gradients (the saturation of the
minimax loss), the players' shapes on both devices, a training step that moves both players,
and checkpoints of both."""
import math

import numpy as np
import pytest

import zero
import zero.functions as F
from conftest import host
from zero import Parameter
from zero.gan import (DCDiscriminator, DCGenerator, MLPDiscriminator, MLPGenerator, _Generator, discriminator_loss,
                      generator_gradient_norm, generator_loss, interpolate, load_gan, logit_gradient,
                      moving_average, plot_game, save_gan, train_gan)
from zero.models import Model
from zero.optimizers import SGD, Adam


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
    samples = interpolate(generator.eval(), z[0], z[1], 4)
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
    assert len(ax_prob.lines[0].get_ydata()) == 120 - 120 // 4 + 1  # the window: a quarter of a short run
    plt.close(fig)


def test_a_resumed_gan_run_continues_the_uninterrupted_one(tmp_path):
    """1 epoch, save, new players, --resume to 2 epochs: the same generator as 2 epochs straight
    (the codes z come from the saved random state, not a reseed)."""
    from types import SimpleNamespace
    from zero.gan import train_gan_or_resume
    images = np.random.default_rng(1).random((128, 784)).astype(np.float32)

    def players():
        np.random.seed(0)
        generator, discriminator = MLPGenerator(8, 32), MLPDiscriminator(32)
        return (generator, discriminator, Adam(generator.params(), lr=2e-4, betas=(0.5, 0.999)),
                Adam(discriminator.params(), lr=2e-4, betas=(0.5, 0.999)))

    def run(epochs, resume, path, *models):
        args = SimpleNamespace(epochs=epochs, batch_size=64, device="cpu", seed=0, resume=resume)
        train_gan_or_resume(*models, images, args, path, description="test")

    straight = players()
    run(2, False, tmp_path / "a.npz", *straight)
    run(1, False, tmp_path / "b.npz", *players())
    resumed = players()
    run(2, True, tmp_path / "b.npz", *resumed)
    for a, b in zip(straight[0].params(), resumed[0].params()):
        np.testing.assert_array_equal(a.data, b.data)


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


@pytest.mark.parametrize("kind", ["non_saturating", "minimax"])
def test_generator_gradient_norm_by_hand_and_it_leaves_no_gradients_on_either_player(kind):
    generator, discriminator = _ConstantGenerator(0.3), _MeanDiscriminator(0.5, -0.2)
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
