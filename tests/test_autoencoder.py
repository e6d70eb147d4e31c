"""zero.autoencoder: shapes, the loss by hand, training lowers it, denoising targets the clean
image, the ROC AUC against scikit-learn, the models on both devices."""
import numpy as np
import pytest

import zero
from conftest import host, on
from zero.autoencoder import Autoencoder, add_noise, reconstruction_errors, roc_auc, roc_curve
from zero.optimizers import Adam
from zero.training import fit, load_checkpoint, save_checkpoint


def test_shapes_and_the_loss_by_hand():
    np.random.seed(0)
    model = Autoencoder(12, 8, 3)
    x = np.random.rand(5, 12).astype(np.float32)
    z = model.encode(x)
    x_hat = model(x)
    assert z.shape == (5, 3) and x_hat.shape == (5, 12)
    assert ((x_hat.data > 0) & (x_hat.data < 1)).all()
    expected = ((x - x_hat.data) ** 2).sum() / 5       # sum over pixels, mean over images
    assert model.loss(x).item() == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(reconstruction_errors(model, x, batch_size=2), ((x - x_hat.data) ** 2).sum(axis=1),
                               rtol=1e-6)
    np.testing.assert_array_equal(reconstruction_errors(model, x.astype(np.float64)),  # cast to the model's dtype
                                  reconstruction_errors(model, x))


def test_training_lowers_the_loss_on_held_out_images():
    rng = np.random.default_rng(0)
    basis = rng.random((4, 30))                         # images that live on a 4-D subspace
    x = np.clip(rng.random((600, 4)) @ basis / 2, 0, 1).astype(np.float32)
    np.random.seed(0)
    model = Autoencoder(30, 32, 4)
    optimizer = Adam(model.params(), lr=3e-3)
    history = fit(model, optimizer, x[:500], epochs=15, batch_size=50, x_heldout=x[500:])
    assert history["heldout_loss"][-1] < 0.2 * history["heldout_loss"][0]


def test_denoising_corrupts_the_input_but_targets_the_clean_image():
    np.random.seed(1)
    model = Autoencoder(10, 6, 2, noise_std=0.3)
    x = np.random.rand(4, 10).astype(np.float32)
    np.random.seed(5)
    loss = model.loss(x).item()
    np.random.seed(5)
    noisy = add_noise(x, 0.3)
    assert noisy.min() >= 0 and noisy.max() <= 1 and np.abs(noisy - x).max() > 0.1
    expected = ((x - model(noisy).data) ** 2).sum() / 4
    assert loss == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="noise_std"):
        Autoencoder(10, 6, 2, noise_std=-1)


def test_roc_auc_against_scikit_learn_and_by_hand():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    negative = np.round(rng.normal(0, 1, 300), 1)       # rounding makes ties
    positive = np.round(rng.normal(0.8, 1, 100), 1)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(100)], np.r_[negative, positive])
    assert roc_auc(negative, positive) == pytest.approx(expected, abs=1e-12)
    assert roc_auc([1, 2], [3, 4]) == 1.0 and roc_auc([3, 4], [1, 2]) == 0.0 and roc_auc([1], [1]) == 0.5
    false_positive_rate, true_positive_rate = roc_curve(negative, positive)
    assert (false_positive_rate[0], true_positive_rate[0]) == (0, 0)
    assert (false_positive_rate[-1], true_positive_rate[-1]) == (1, 1)
    # with ties grouped, the area under the curve is the AUC (it came out 1/3 for this one, not 2/3)
    area = np.sum(np.diff(false_positive_rate) * (true_positive_rate[1:] + true_positive_rate[:-1]) / 2)
    assert area == pytest.approx(expected, abs=1e-12)
    tied_fpr, tied_tpr = roc_curve([1, 1, 0], [1, 1])
    assert np.sum(np.diff(tied_fpr) * (tied_tpr[1:] + tied_tpr[:-1]) / 2) == pytest.approx(roc_auc([1, 1, 0], [1, 1]))
    with pytest.raises(ValueError, match="both kinds"):
        roc_auc([], [1.0])


def test_the_autoencoder_runs_on_both_devices(device):
    np.random.seed(2)
    reference = Autoencoder(8, 5, 2, noise_std=0.2)
    np.random.seed(2)
    model = Autoencoder(8, 5, 2, noise_std=0.2).to(device)
    x = np.random.rand(3, 8).astype(np.float32)
    np.testing.assert_allclose(host(model(on(device, x)).data), reference(x).data, rtol=1e-5)
    loss = model.loss(on(device, x))            # the noise is drawn on the device
    loss.backward()
    assert all(param.grad.device == device for param in model.params())
    errors = reconstruction_errors(model, x, device=device, noise_std=0.2)
    assert isinstance(errors, np.ndarray) and errors.shape == (3,)
    assert zero.backend.device_of(add_noise(on(device, x), 0.1)) == device


def test_reconstruction_errors_take_images_on_the_models_device_and_refuse_another_devices():
    """Images on another device were copied through the host without being asked (zero.backend.to_device)."""
    np.random.seed(0)
    x = np.random.rand(5, 8).astype(np.float32)
    model = Autoencoder(8, 5, 2)
    with pytest.raises(TypeError, match="reconstruction_errors: the images on strict and the model on cpu"):
        reconstruction_errors(model, on("strict", x))
    model.to("strict")
    with pytest.raises(TypeError, match="reconstruction_errors: the images on strict and the device asked on cpu"):
        reconstruction_errors(model, on("strict", x), device="cpu")
    np.testing.assert_array_equal(reconstruction_errors(model, on("strict", x)), reconstruction_errors(model, x))


def test_add_noise_adds_noise_std_times_unit_normal_draws_then_clips():
    x = np.random.default_rng(3).random((50, 8)).astype(np.float32)
    np.random.seed(6)
    noisy = add_noise(x, 0.4)
    np.random.seed(6)
    expected = np.clip(x + 0.4 * np.random.standard_normal(x.shape), 0, 1)
    assert noisy.shape == x.shape and noisy.dtype == np.float32
    np.testing.assert_allclose(noisy, expected, rtol=1e-6, atol=1e-7)
    inside = (expected > 0) & (expected < 1)
    assert 0.2 < inside.mean() < 0.9                    # both clipped and unclipped pixels checked


def test_reconstruction_errors_of_corrupted_images_score_the_clean_image():
    """noise_std > 0: x_tilde = clip(x + noise_std eps, 0, 1) is reconstructed, and the score is
    sum_d (x_d - x_hat(x_tilde)_d)^2 against the clean x."""
    np.random.seed(7)
    model = Autoencoder(10, 6, 2)
    x = np.random.rand(5, 10).astype(np.float32)
    np.random.seed(8)
    errors = reconstruction_errors(model, x, batch_size=2, noise_std=0.3)
    np.random.seed(8)
    noisy = np.clip(x + 0.3 * np.random.standard_normal(x.shape).astype(np.float32), 0, 1)
    expected = ((x - model(noisy).data) ** 2).sum(axis=1)
    np.testing.assert_allclose(errors, expected, rtol=1e-5)
    assert np.abs(errors - ((x - model(x).data) ** 2).sum(axis=1)).max() > 1e-3   # the noise mattered


def test_the_networks_have_the_documented_layer_sizes():
    """encoder input-hidden-latent, decoder latent-hidden-input, as the VAE's (784-200-20 by default)."""
    shapes = {name: p.data.shape for name, p in Autoencoder(30, 16, 4).named_params()}
    assert shapes == {"encoder.layers.0.W": (30, 16), "encoder.layers.0.b": (16,),
                      "encoder.layers.1.W": (16, 4), "encoder.layers.1.b": (4,),
                      "decoder.layers.0.W": (4, 16), "decoder.layers.0.b": (16,),
                      "decoder.layers.1.W": (16, 30), "decoder.layers.1.b": (30,)}
    default = {name: p.data.shape for name, p in Autoencoder().named_params()}
    assert default["encoder.layers.0.W"] == (784, 200) and default["encoder.layers.1.W"] == (200, 20)


@pytest.mark.parametrize("negative, positive", [([1.0, 2.0], []), ([], [])])
def test_roc_auc_without_positives_is_refused(negative, positive):
    with pytest.raises(ValueError, match=r"roc_auc needs scores of both kinds, got \d negative and 0 positive"):
        roc_auc(negative, positive)


def test_a_denoising_autoencoders_checkpoint_is_refused_by_a_plain_one(tmp_path):
    np.random.seed(0)
    save_checkpoint(tmp_path / "dae.npz", Autoencoder(6, 4, 2, noise_std=0.5))
    with pytest.raises(ValueError, match=r"trained with noise_std '0\.5', but this Autoencoder has noise_std '0'"):
        load_checkpoint(tmp_path / "dae.npz", Autoencoder(6, 4, 2))
    load_checkpoint(tmp_path / "dae.npz", Autoencoder(6, 4, 2, noise_std=0.5))


def test_the_reconstruction_is_relu_layers_then_a_sigmoid_computed_in_numpy():
    np.random.seed(0)
    model = Autoencoder(6, 5, 2)
    x = np.random.rand(3, 6).astype(np.float32)
    (W0, b0), (W1, b1) = [(layer.W.data, layer.b.data) for layer in model.encoder.layers]
    (V0, c0), (V1, c1) = [(layer.W.data, layer.b.data) for layer in model.decoder.layers]
    z = np.maximum(x @ W0 + b0, 0) @ W1 + b1
    x_hat = 1 / (1 + np.exp(-(np.maximum(z @ V0 + c0, 0) @ V1 + c1)))
    assert (z < 0).any() and (z > 0).any()                 # the code itself is not passed through a ReLU
    np.testing.assert_allclose(model.encode(x).data, z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x).data, x_hat, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
def test_noise_on_integer_images_is_not_cut_to_their_dtype(dtype):
    """uint8 truncated the Gaussian noise to whole numbers (and bool made it a constant +0.3)."""
    np.random.seed(0)
    noisy = add_noise(np.zeros((100, 50), dtype), 0.3)
    assert noisy.dtype == np.float32
    assert len(np.unique(noisy)) > 1000 and abs(noisy.mean() - 0.3 * 0.3989) < 0.01  # E[max(0, 0.3 z)]


@pytest.mark.parametrize("negative, positive", [([0.1, np.nan], [0.5]), ([0.1, 0.2], [np.inf])])
def test_scores_with_nan_or_inf_are_refused(negative, positive):
    for score in (roc_auc, roc_curve):
        with pytest.raises(ValueError, match=rf"{score.__name__}: the scores hold NaN or inf"):
            score(np.array(negative), np.array(positive))


def test_roc_curve_needs_scores_of_both_kinds():
    with pytest.raises(ValueError, match="roc_curve needs scores of both kinds, got 0 negative and 2 positive"):
        roc_curve(np.array([]), np.array([1.0, 2.0]))


def test_reconstruction_errors_of_no_images_are_refused_by_name():
    with pytest.raises(ValueError, match=r"reconstruction_errors: no images to reconstruct \(an empty array"):
        reconstruction_errors(Autoencoder(), np.zeros((0, 784), np.float32))


@pytest.mark.parametrize("noise_std", [-0.1, float("nan")])
def test_a_negative_or_nan_noise_level_is_refused(noise_std):
    with pytest.raises(ValueError, match="Autoencoder: noise_std must be a finite number >= 0"):
        Autoencoder(12, 6, 2, noise_std=noise_std)


def test_a_plain_autoencoder_draws_no_noise_in_its_loss_or_its_reconstruction_errors():
    """With noise_std=0 nothing is corrupted, so nothing may be drawn: `noise_std > 0` turned into
    `>= 0` went unnoticed, and then every loss and every anomaly score advanced NumPy's generator
    (shifting the noise and initial weights of whatever the script does next)."""
    np.random.seed(0)
    model = Autoencoder(12, 8, 3)
    x = np.random.rand(5, 12).astype(np.float32)
    state = np.random.get_state()
    model.loss(x)
    reconstruction_errors(model, x, batch_size=2)
    after = np.random.get_state()
    assert after[2] == state[2] and np.array_equal(after[1], state[1]), \
        "a plain autoencoder's loss or reconstruction_errors drew random numbers"


def test_an_autoencoder_other_than_the_default_is_named_by_what_differs():
    """A.1 saves under this suffix and A.2 looks for its plain autoencoder under it."""
    from zero.autoencoder import checkpoint_variant
    assert checkpoint_variant() == checkpoint_variant(200, 20) == ""
    assert checkpoint_variant(latent_size=2) == "_latent2"
    assert checkpoint_variant(400, 2) == "_hidden400_latent2"


@pytest.mark.parametrize("function", [roc_auc, roc_curve])
def test_scores_that_are_not_one_per_image_are_refused_by_name(function):
    """Columns of scores (N, 1) made roc_curve return a false positive rate of 1.67 and a true positive
    rate of 0, silently, and roc_auc fail with NumPy's 'shape mismatch'; a scalar failed on len().
    Found probing the scores' shapes."""
    name = function.__name__
    for negative, positive in [(np.array([[1.0], [2.0], [3.0]]), np.array([[2.5], [4.0]])),
                               (np.array([1.0, 2.0, 3.0]), np.array([[2.5], [4.0]])), (1.0, 2.0)]:
        with pytest.raises(ValueError, match=rf"^{name} takes one score per image, arrays of shape \(N,\)"):
            function(negative, positive)
    assert function([1.0, 2.0, 3.0], [2.5, 4.0]) is not None
