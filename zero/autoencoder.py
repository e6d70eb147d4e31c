"""Deterministic autoencoders (appendix): compression, denoising and anomaly scores.

An autoencoder squeezes an image x (D pixels) through a small code z and back:

    z = encoder(x),   x_hat = sigmoid(decoder(z)),   loss = sum_d (x_d - x_hat_d)^2 per image

It is the VAE of step 7 without the probabilities: one code per image instead of a
distribution q(z | x), and no KL term pulling the codes towards N(0, I). `Autoencoder`
uses the VAE's layer sizes (784-200-20 and 20-200-784, ReLU; the VAE's encoder has two
200 -> 20 heads, mu and log sigma^2, where this one has one) and the reconstruction term of the
book's VAE loss: the two differ only in the VAE's KL term and its sampling of z ~ q(z | x).

A denoising autoencoder (noise_std > 0) sees a corrupted image and is asked for the
clean one: x_tilde = clip(x + noise_std * eps, 0, 1), loss = sum_d (x_d - x_hat(x_tilde)_d)^2.

    model = Autoencoder(784, 200, 20, noise_std=0.5)
    loss = model.loss(x)                                   # scalar, per image
    scores = reconstruction_errors(model, images)          # (N,) anomaly scores
    auc = roc_auc(scores[normal], scores[anomalous])
"""
import numpy as np
from tqdm import tqdm

import zero.functions as F
from zero.backend import floating, get_array_module, standard_normal, to_device_beside, to_numpy
from zero.cli import variant_name
from zero.core import Variable, no_grad
from zero.models import MLP, Model
from zero.utils import check_not_empty, check_number


def add_noise(x, noise_std):
    """x + noise_std * eps, eps ~ N(0, I), clipped to [0, 1]: an array like x (array or Variable data),
    drawn on x's device."""
    data = floating(x.data if isinstance(x, Variable) else x)  # integer images as float32 (else the noise is cut)
    xp = get_array_module(data)
    noisy = data + noise_std * standard_normal(xp, data.shape, data.dtype)
    return xp.clip(noisy, 0, 1)


def checkpoint_variant(hidden_size=200, latent_size=20):
    """What A.1 appends to its checkpoint's name for an autoencoder other than the default 784-200-20
    one: '' for the default, else e.g. '_latent2'. A.1 saves under it and A.2 looks for its plain
    autoencoder under it, so an autoencoder of another size never replaces the default one."""
    return variant_name(("hidden", hidden_size, 200), ("latent", latent_size, 20))


class Autoencoder(Model):
    """x (N, input_size) in [0, 1] -> code z (N, latent_size) -> x_hat (N, input_size) in [0, 1].

    noise_std > 0 makes it a denoising autoencoder: `loss` corrupts its input first.
    """

    def __init__(self, input_size=784, hidden_size=200, latent_size=20, noise_std=0.0):
        super().__init__()
        check_number(type(self).__name__, "noise_std", noise_std, at_least=0)
        self.latent_size = latent_size
        self.noise_std = float(noise_std)
        self.encoder = MLP((input_size, hidden_size, latent_size))
        self.decoder = MLP((latent_size, hidden_size, input_size))

    def encode(self, x):
        """The code z = encoder(x): (N, input_size) -> (N, latent_size)."""
        return self.encoder(x)

    def decode(self, z):
        """x_hat = sigmoid(decoder(z)): (N, latent_size) -> (N, input_size)."""
        return F.sigmoid(self.decoder(z))

    def checkpoint_config(self):
        return {"noise_std": f"{self.noise_std:g}"}  # a denoising autoencoder's weights are another model

    def forward(self, x):
        """The reconstruction x_hat(x), without noise: (N, input_size)."""
        return self.decode(self.encode(x))

    def loss(self, x):
        """sum_d (x_d - x_hat_d)^2 per image, averaged over the batch (a scalar Variable); with
        noise_std > 0 the input is corrupted and the target is the clean x."""
        clean = x.data if isinstance(x, Variable) else x
        seen = add_noise(clean, self.noise_std) if self.noise_std > 0 else clean
        return F.mean_squared_error(self(seen), clean, reduction="sum") / len(clean)


def reconstruction_errors(model, images, batch_size=500, device=None, noise_std=0.0):
    """Per-image squared error sum_d (x_d - x_hat_d)^2 of images (N, D): host array (N,).

    noise_std > 0: reconstruct corrupted images (the clean ones are the targets). The batches go
    to `device`, by default the model's: images are a host array, or one already there (on another
    device they are refused, TypeError, not copied through the host).
    """
    beside = "the model" if device is None else "the device asked"   # for an error's message
    device = model.device if device is None else device
    check_not_empty("reconstruction_errors", images, "images to reconstruct")
    errors = []
    with no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="reconstruction errors", leave=False):
            batch = images[start:start + batch_size].astype(model.dtype, copy=False)
            x = to_device_beside(batch, device, "reconstruction_errors: the images", beside)
            seen = add_noise(x, noise_std) if noise_std > 0 else x
            diff = model(Variable(seen, requires_grad=False)).data - x
            errors.append(to_numpy((diff * diff).sum(axis=1)))   # explicit host copy of N numbers
    return np.concatenate(errors)


def roc_auc(negative_scores, positive_scores):
    """Area under the ROC curve of a score meant to be higher for positives (anomalies); host arrays
    (as reconstruction_errors returns).

    Equals the probability that a random positive scores higher than a random negative (ties
    count one half), the Mann-Whitney statistic: computed from the ranks of all scores.
    1 = perfect separation, 0.5 = chance.
    """
    negative, positive = _check_scores("roc_auc", negative_scores, positive_scores)
    ranks = _average_ranks(np.concatenate([negative, positive]))
    positive_rank_sum = ranks[len(negative):].sum()
    wins = positive_rank_sum - len(positive) * (len(positive) + 1) / 2  # pairs where a positive is above
    return float(wins / (len(negative) * len(positive)))


def _check_scores(owner, negative_scores, positive_scores):
    """Both score arrays as float64, refused (naming owner) if either is not one score per image (N,),
    is empty or holds NaN or inf."""
    negative, positive = np.asarray(negative_scores, np.float64), np.asarray(positive_scores, np.float64)
    if negative.ndim != 1 or positive.ndim != 1:   # columns (N, 1) gave a false positive rate of 1.67, silently
        raise ValueError(f"{owner} takes one score per image, arrays of shape (N,); got shapes {negative.shape} "
                         f"and {positive.shape} (flatten a column of scores with .ravel())")
    if len(negative) == 0 or len(positive) == 0:
        raise ValueError(f"{owner} needs scores of both kinds, got {len(negative)} negative and "
                         f"{len(positive)} positive")
    if not (np.isfinite(negative).all() and np.isfinite(positive).all()):
        raise ValueError(f"{owner}: the scores hold NaN or inf (a diverged model?); they cannot be ranked")
    return negative, positive


def _average_ranks(scores):
    """Ranks 1..N of the scores, tied scores sharing the mean of their ranks ([5, 7, 5] -> [1.5, 3, 1.5])."""
    order = np.argsort(scores, kind="stable")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)  # a tie group at 0-based first..first+c-1
    return ranks


def roc_curve(negative_scores, positive_scores):
    """False and true positive rates (host arrays) for every threshold, from (0, 0) to (1, 1).

    One point per distinct score: images with equal scores are flagged together, so the area under
    the curve (trapezoids) equals roc_auc, ties counting one half."""
    negative_scores, positive_scores = _check_scores("roc_curve", negative_scores, positive_scores)
    scores = np.concatenate([negative_scores, positive_scores])
    is_positive = np.concatenate([np.zeros(len(negative_scores)), np.ones(len(positive_scores))])
    order = np.argsort(-scores, kind="stable")
    last_of_tie = np.append(scores[order][1:] != scores[order][:-1], True)  # thresholds between scores
    true_positives = np.concatenate([[0], np.cumsum(is_positive[order])[last_of_tie]])
    false_positives = np.concatenate([[0], np.cumsum(1 - is_positive[order])[last_of_tie]])
    return false_positives / len(negative_scores), true_positives / len(positive_scores)
