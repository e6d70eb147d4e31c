"""Variational autoencoders (steps 7 and 8): the VAE and the hierarchical VAE.

A VAE models an image x (D pixels) with a continuous latent z:

    p(z) = N(0, I),   p(x | z) = decoder(z),   q(z | x) = N(mu(x), diag exp(logvar(x))) = encoder(x)

and is trained on the ELBO, a lower bound of log p(x):

    log p(x) >= ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)).

Two likelihoods p(x | z) are offered, both on the decoder's mean image x_hat = sigmoid(logits):
- 'gaussian': N(x | x_hat, std^2 I) with a fixed std (default 1). The book trains with
  sum (x - x_hat)^2 + sum(-1 - logvar + mu^2 + e^logvar), which is 2 (-ELBO) - D log(2 pi)
  at std = 1: the same optimum, but not a bound in nats. `loss()` is the book's number;
  `negative_elbo()` is the bound, constants included.
- 'bernoulli': prod_d x_hat_d^x_d (1 - x_hat_d)^(1 - x_d) (binary cross-entropy), the likelihood
  papers use on binarized MNIST; `loss()` is then the negative ELBO itself (for the VAE; the
  hierarchical VAE's loss is the book's close surrogate of it: HierarchicalVAE.loss). Our images
  keep their grey levels in [0, 1], where this is a cross-entropy rather than a normalised density
  (the continuous Bernoulli's normaliser is missing), so its nats are not comparable with papers'.

Every bound here is in nats per image. `evaluate_bounds` gives the held-out negative ELBO and
the importance-weighted estimate of -log p(x) (IWAE, Burda et al. 2016):

    -log p(x) ~= -log (1/K) sum_k p(x, z_k) / q(z_k | x),  z_k ~ q(z | x),

whose expectation is itself an upper bound of -log p(x), never looser than -ELBO, and tight as K grows.
"""
import math

import numpy as np
from tqdm import tqdm

import zero.functions as F
from zero.backend import get_array_module, get_backend, standard_normal, to_device_beside, to_numpy
from zero.cli import variant_name
from zero.core import Variable, no_grad
from zero.layers import Layer, LayerList, Linear
from zero.models import MLP, Model
from zero.utils import check_count, check_not_empty, check_number

LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("gaussian", "bernoulli")


# =============================================================================
# Densities and the pieces of the ELBO (per example: inputs (N, d) -> (N,))
# =============================================================================
def standard_normal_like(a):
    """Array of N(0, 1) draws with the shape, dtype and device of array (or Variable) a."""
    data = a.data if isinstance(a, Variable) else a
    return standard_normal(get_array_module(data), data.shape, data.dtype)


def reparameterize(mu, logvar):
    """z = mu + sigma * eps, eps ~ N(0, I), sigma = exp(logvar / 2): a sample of
    N(mu, sigma^2) through which gradients reach mu and logvar. Shapes (N, d).
    One op (zero.functions.gaussian.Reparameterize), whose backward is
    dz/dmu = 1, dz/dlogvar = eps sigma / 2."""
    return F.reparameterize(mu, logvar)


def gaussian_log_pdf(x, mean=None, logvar=None):
    """log N(x | mean, diag exp(logvar)) summed over the last axis: (N, d) -> (N,).

    mean None means 0, logvar None means unit variance. Each dimension contributes
    -1/2 [log(2 pi) + logvar + (x - mean)^2 / exp(logvar)].
    """
    diff = x if mean is None else x - mean
    d = diff.shape[-1]
    if logvar is None:
        return -0.5 * F.sum(diff * diff, axis=-1) - 0.5 * d * LOG_2PI
    return -0.5 * F.sum(logvar + diff * diff * F.exp(-logvar), axis=-1) - 0.5 * d * LOG_2PI


def gaussian_kl(mu, logvar, prior_mean=None):
    """KL(N(mu, diag e^logvar) || N(prior_mean, I)) per example: (N, d) -> (N,).

    KL = 1/2 sum_j [e^logvar_j + (mu_j - m_j)^2 - 1 - logvar_j]; prior_mean None means 0
    (then one op: zero.functions.gaussian.GaussianKL, the VAE's hot path).
    """
    if prior_mean is None:
        return F.gaussian_kl_from_standard(mu, logvar)
    diff = mu - prior_mean
    return 0.5 * F.sum(F.exp(logvar) + diff * diff - 1 - logvar, axis=-1)


def bernoulli_log_likelihood(x, logits):
    """log prod_d p_d^x_d (1 - p_d)^(1 - x_d), p = sigmoid(logits), per example: (N, D) -> (N,).

    Computed as sum_d [x_d l_d - softplus(l_d)], stable for any logit l.
    """
    return F.sum(x * logits - F.softplus(logits), axis=-1)


def book_kl_term(mu, logvar, prior_mean=None):
    """The book's KL term -sum(1 + logvar - (mu - m)^2 - e^logvar) over the whole batch:
    2 KL(q || N(m, I)) summed over examples (the book drops the 1/2)."""
    return 2 * F.sum(gaussian_kl(mu, logvar, prior_mean))


# =============================================================================
# Building blocks
# =============================================================================
class Encoder(Layer):
    """q(z | x) = N(mu, diag exp(logvar)): x (N, in) -> relu hidden layer -> mu, logvar (N, latent)."""

    def __init__(self, in_size, hidden_size, latent_size):
        super().__init__()
        self.hidden = Linear(hidden_size, in_size=in_size)
        self.to_mu = Linear(latent_size, in_size=hidden_size)
        self.to_logvar = Linear(latent_size, in_size=hidden_size)

    def forward(self, x):
        h = F.relu(self.hidden(x))
        return self.to_mu(h), self.to_logvar(h)


def decoder(latent_size, hidden_size, out_size):
    """z (N, latent) -> relu hidden layer -> (N, out), no output activation (logits or a mean)."""
    return MLP((latent_size, hidden_size, out_size))


def _check_images(x):
    """Refuse integer images (0-255 pixels): a model of values in [0, 1] would give an inf loss from
    them, with only an overflow warning. A dtype test, not a pass over the pixels: this runs every step."""
    if x.dtype.kind != "f":
        raise TypeError(f"images must be floating-point values in [0, 1], got dtype {x.dtype} "
                        f"(divide 0-255 pixels by 255 first)")


class _Likelihood:
    """p(x | z) from the decoder's logits, for both likelihoods; see the module docstring."""

    def __init__(self, kind, std, owner):
        if kind not in LIKELIHOODS:
            raise ValueError(f"{owner}: likelihood must be one of {LIKELIHOODS}, got {kind!r}")
        check_number(owner, "decoder_std", std, above=0)
        self.kind, self.std = kind, float(std)

    def checkpoint_config(self):
        """Saved with a model's weights: the same weights mean another model under another likelihood or std."""
        return {"likelihood": self.kind, "decoder_std": self.std}

    def book_loss(self, x, logits):
        """Reconstruction term of the training loss, summed over the batch. For 'gaussian' it is the
        book's sum (x - x_hat)^2, whatever decoder_std is: the std enters log_prob (and so the
        bounds of evaluate_bounds), not this training number."""
        _check_images(x)
        if self.kind == "gaussian":
            return F.mean_squared_error(F.sigmoid(logits), x, reduction="sum")  # sum (x - x_hat)^2
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")  # -log p(x | z)

    def log_prob(self, x, logits):
        """log p(x | z) in nats per example, constants included: (N,)."""
        _check_images(x)
        if self.kind == "bernoulli":
            return bernoulli_log_likelihood(x, logits)
        # log N(x | x_hat, std^2 I) = -sum (x - x_hat)^2 / (2 std^2) - D/2 log(2 pi std^2)
        diff = x - F.sigmoid(logits)
        d = diff.shape[-1]
        return (-0.5 / self.std ** 2) * F.sum(diff * diff, axis=-1) - 0.5 * d * (LOG_2PI + 2 * math.log(self.std))

    def describe(self):
        if self.kind == "gaussian":
            return f"Gaussian p(x|z) with fixed std {self.std:g}"
        return "Bernoulli p(x|z)"

    @property
    def loss_name(self):
        """What the training loss is, for labels: the Gaussian trains on the book's loss,
        2 (-ELBO) - 784 log(2 pi) with std 1 (not nats); the Bernoulli on -ELBO itself."""
        return "the book's loss" if self.kind == "gaussian" else "-ELBO (nats)"


def _model_xp(model):
    return get_backend(model.device).xp


# =============================================================================
# The VAE (step 7)
# =============================================================================
def checkpoint_variant(hidden_size=200, latent_size=20, likelihood="gaussian"):
    """What step 7 appends to its checkpoint's name for a VAE other than the book's 784-200-20
    Gaussian one: '' for the book's, else e.g. '_latent2', '_hidden400_bernoulli'. Step 7 saves
    under it and steps 8 and A.1 look for the VAE of their own size and likelihood under it, so
    a VAE of another size never replaces the book's."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return (variant_name(("hidden", hidden_size, 200), ("latent", latent_size, 20))
            + ("" if likelihood == "gaussian" else f"_{likelihood}"))


class VAE(Model):
    """The book's VAE: encoder 784-200-(20, 20), decoder 20-200-784 (relu hidden layers).

    likelihood: 'gaussian' (the book; fixed decoder_std, default 1) or 'bernoulli'.
    Images x are (N, input_size) with values in [0, 1].
    """

    def __init__(self, input_size=784, hidden_size=200, latent_size=20, likelihood="gaussian", decoder_std=1.0):
        super().__init__()
        self.latent_size = latent_size
        self.likelihood = _Likelihood(likelihood, decoder_std, owner=type(self).__name__)
        self.encoder = Encoder(input_size, hidden_size, latent_size)
        self.decoder = decoder(latent_size, hidden_size, input_size)

    def decode(self, z):
        """Mean image x_hat = sigmoid(decoder(z)): (N, latent) -> (N, input_size)."""
        return F.sigmoid(self.decoder(z))

    def checkpoint_config(self):
        return self.likelihood.checkpoint_config()

    def loss(self, x):
        """The training loss per image, averaged over the batch (a scalar Variable).

        gaussian (the book): L1 + L2 with L1 = sum (x - x_hat)^2,
        L2 = -sum(1 + logvar - mu^2 - e^logvar) = 2 KL; bernoulli: -ELBO = BCE + KL.
        """
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar)
        reconstruction = self.likelihood.book_loss(x, self.decoder(z))
        kl = book_kl_term(mu, logvar) if self.likelihood.kind == "gaussian" else F.sum(gaussian_kl(mu, logvar))
        return (reconstruction + kl) / len(x)

    def negative_elbo(self, x):
        """-ELBO = -log p(x | z) + KL(q(z | x) || N(0, I)) in nats per image, one z each: (N,)."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar)
        return -self.likelihood.log_prob(x, self.decoder(z)) + gaussian_kl(mu, logvar)

    def log_weight(self, x):
        """log p(x, z) - log q(z | x) for one z ~ q(z | x) per image: (N,). Its mean is the ELBO."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar)
        return (self.likelihood.log_prob(x, self.decoder(z)) + gaussian_log_pdf(z)
                - gaussian_log_pdf(z, mu, logvar))

    def reconstruct(self, x):
        """Decoded posterior means: x -> mu(x) -> x_hat, (N, input_size) Variable."""
        mu, _ = self.encoder(x)
        return self.decode(mu)

    def sample(self, n):
        """n images decoded from z ~ N(0, I): (n, input_size) array on the model's device."""
        check_count("VAE.sample", "n", n)
        xp = _model_xp(self)
        with no_grad():
            z = standard_normal(xp, (n, self.latent_size), self.dtype)  # a float64 model: float64 z
            return self.decode(Variable(z)).data


# =============================================================================
# The hierarchical VAE (step 8)
# =============================================================================
class HierarchicalVAE(Model):
    """A Markov chain of latents x <- z1 <- z2 <- ... <- zL (the book has L = 2).

    Generation (top-down): zL ~ N(0, I); z_l ~ N(decoder_l(z_{l+1}), I) for l = L-1..1;
    x ~ p(x | z1) from decoders[0]. Inference (bottom-up): q(z1 | x), q(z2 | z1), ...,
    each a Gaussian Encoder. encoders[l] and decoders[l] belong to level l + 1.
    """

    def __init__(self, input_size=784, hidden_size=100, latent_size=20, levels=2, likelihood="gaussian",
                 decoder_std=1.0):
        super().__init__()
        check_count("HierarchicalVAE", "levels", levels)   # at least one level; 1.5, True or '2' refused by name
        self.levels, self.latent_size = levels, latent_size
        self.likelihood = _Likelihood(likelihood, decoder_std, owner=type(self).__name__)
        self.encoders = LayerList(Encoder(input_size if level == 0 else latent_size, hidden_size, latent_size)
                                  for level in range(levels))
        self.decoders = LayerList(decoder(latent_size, hidden_size, input_size if level == 0 else latent_size)
                                  for level in range(levels))

    def infer(self, x):
        """Bottom-up samples: [(mu_l, logvar_l, z_l) for l = 1..L], z_l ~ q(z_l | z_{l-1}), z_0 = x."""
        chain, below = [], x
        for encoder in self.encoders:
            mu, logvar = encoder(below)
            below = reparameterize(mu, logvar)
            chain.append((mu, logvar, below))
        return chain

    def decode(self, z1):
        """Mean image sigmoid(decoders[0](z1)): (N, latent) -> (N, input_size)."""
        return F.sigmoid(self.decoders[0](z1))

    def checkpoint_config(self):
        return self.likelihood.checkpoint_config()

    @property
    def loss_name(self):
        """What loss() is, for labels: the likelihood's name (the book's loss, or -ELBO in nats),
        except that with two levels or more the Bernoulli loss is the book's surrogate of -ELBO (see loss)."""
        if self.likelihood.kind == "bernoulli" and self.levels > 1:
            return "surrogate -ELBO (nats)"
        return self.likelihood.loss_name

    def loss(self, x):
        """The book's loss per image, averaged over the batch (a scalar Variable), for L levels:

            L1 = sum (x - x_hat)^2,  x_hat from z1;
            top:   -sum(1 + logvar_L - mu_L^2 - e^logvar_L)                  = 2 KL(q(zL|.) || N(0, I))
            l < L: -sum(1 + logvar_l - (mu_l - zhat_l)^2 - e^logvar_l)       = 2 KL(q(z_l|.) || N(zhat_l, I)),
                   zhat_l = decoders[l](z_{l+1}).
        (bernoulli: BCE and the KLs without the factor 2.)

        A surrogate, as in the book: z_{l+1} is drawn from q(z_{l+1} | z_l), so it depends on z_l,
        and the ELBO's term E_q[log q(z_l | .) - log p(z_l | z_{l+1})] is not the analytic KL at the
        drawn zhat_l; the two differ by tr Cov(z_l, zhat_l) (0.37 nats per image on a Bernoulli
        model trained 8 epochs on 2,000 images, 200 draws on 500 held-out ones: 207.51 against
        207.14). negative_elbo() and the IWAE bound use the exact Monte-Carlo form.
        """
        chain = self.infer(x)
        total = self.likelihood.book_loss(x, self.decoders[0](chain[0][2]))
        for level, (mu, logvar, _) in enumerate(chain):
            prior_mean = self.decoders[level + 1](chain[level + 1][2]) if level + 1 < self.levels else None
            if self.likelihood.kind == "gaussian":
                total = total + book_kl_term(mu, logvar, prior_mean)
            else:
                total = total + F.sum(gaussian_kl(mu, logvar, prior_mean))
        return total / len(x)

    def log_weight(self, x):
        """log p(x, z1..zL) - log q(z1..zL | x) for one bottom-up sample per image: (N,)."""
        chain = self.infer(x)
        log_w = self.likelihood.log_prob(x, self.decoders[0](chain[0][2]))
        for level, (mu, logvar, z) in enumerate(chain):
            prior_mean = self.decoders[level + 1](chain[level + 1][2]) if level + 1 < self.levels else None
            log_w = log_w + gaussian_log_pdf(z, prior_mean) - gaussian_log_pdf(z, mu, logvar)
        return log_w

    def negative_elbo(self, x):
        """-ELBO in nats per image from one bottom-up sample: (N,), -log p(x | z1) plus each level's
        term (level_kls). A level below the top adds its log q, then subtracts its log p, rather than
        adding their difference: equal in exact arithmetic, but float32 rounds the two orders
        differently (in a check, the last bit of about a quarter of the per-image values), and the
        numbers recorded in README were computed in this order: kept so that they reproduce."""
        chain, terms = self._level_terms(x)
        nelbo = -self.likelihood.log_prob(x, self.decoders[0](chain[0][2]))
        for log_q_or_kl, log_p in terms:
            nelbo = nelbo + log_q_or_kl
            if log_p is not None:
                nelbo = nelbo - log_p
        return nelbo

    def level_kls(self, x):
        """Each level's term of -ELBO in nats per image, from one bottom-up sample: [(N,) for l = 1..L].
        The top level's is KL(q(zL | z_{L-1}) || N(0, I)), analytic; a level l below it costs
        log q(z_l | z_{l-1}) - log p(z_l | z_{l+1}) at the drawn z (a Monte-Carlo term: its mean is
        this level's term of -ELBO, not the KL of two fixed Gaussians, as z_{l+1} depends on z_l).
        A level whose term stays near 0 nats carries no information about x: its q has collapsed
        onto its prior (posterior collapse), and the levels above it are not used."""
        _, terms = self._level_terms(x)
        return [term if log_p is None else term - log_p for term, log_p in terms]

    def _level_terms(self, x):
        """(chain, [(KL, None) at the top level, (log q(z_l | .), log p(z_l | z_{l+1})) below it])."""
        chain, terms = self.infer(x), []
        for level, (mu, logvar, z) in enumerate(chain):
            if level + 1 == self.levels:
                terms.append((gaussian_kl(mu, logvar), None))
            else:
                prior_mean = self.decoders[level + 1](chain[level + 1][2])
                terms.append((gaussian_log_pdf(z, mu, logvar), gaussian_log_pdf(z, prior_mean)))
        return chain, terms

    def reconstruct(self, x):
        """x -> mu_1(x) -> x_hat (no sampling): (N, input_size) Variable."""
        mu, _ = self.encoders[0](x)
        return self.decode(mu)

    def sample(self, n):
        """n images generated top-down: zL ~ N(0, I), z_l ~ N(zhat_l, I), x_hat from z1."""
        check_count("HierarchicalVAE.sample", "n", n)
        xp = _model_xp(self)
        with no_grad():
            z = Variable(standard_normal(xp, (n, self.latent_size), self.dtype))
            for level in range(self.levels - 1, 0, -1):
                z_hat = self.decoders[level](z)
                z = z_hat + standard_normal_like(z_hat)  # z_l ~ N(zhat_l, I)
            return self.decode(z).data


# =============================================================================
# Held-out evaluation in nats
# =============================================================================
def iwae_from_log_weights(log_weights):
    """-log (1/K) sum_k exp(log w_k) per image from log weights (K, N) -> (N,), in log space."""
    k = log_weights.shape[0]
    return -(F.logsumexp(log_weights, axis=0) - math.log(k))


def evaluate_bounds(model, images, samples=100, batch_size=500, device=None, progress=True):
    """Held-out bounds in nats per image, averaged over `images` (N, D), a host array (or one on `device`):

        negative_elbo: -ELBO, its expectations estimated with all `samples` draws of z per image
                       (analytic KL where the model has one);
        iwae_nll:      -log (1/K) sum_k w_k, K = samples: the importance-weighted bound, from K other draws.

    The bounds, expectations over the draws, are ordered: -log p(x) <= IWAE bound <= -ELBO for every
    K (Burda et al. 2016). The numbers returned estimate them from independent draws, and only their
    expectations are sure to keep that order: with few samples and images, iwae_nll can come out
    above negative_elbo (7 of 20 seeds did with K = 2 and 10 images, for an untrained VAE).

    Returns {'negative_elbo': float, 'iwae_nll': float, 'samples': K, 'images': N, 'negative_elbo_se':
    float, 'iwae_nll_se': float, 'per_image': {'negative_elbo': (N,), 'iwae_nll': (N,)}}: the *_se
    are the standard errors of the two means over the images, sd / sqrt(N) of each image's number
    (None for one image); they measure how much another set of N images (and draws of z) would move
    each mean, not how far a bound lies from -log p(x). per_image holds each image's two numbers
    (float64 host arrays), for comparing two models on the same images (bound_difference). The
    batches go to `device`, by default the model's; images on another device are refused
    (TypeError), not copied through the host (only each image's two numbers are, explicitly).
    """
    beside = "the model" if device is None else "the device asked"   # for an error's message
    device = model.device if device is None else device
    check_count("evaluate_bounds", "samples", samples)
    check_count("evaluate_bounds", "batch_size", batch_size)
    check_not_empty("evaluate_bounds", images, "images to evaluate")
    if images.ndim != 2:
        raise ValueError(f"evaluate_bounds: images must be (N, D) flattened images, got shape {tuple(images.shape)}")
    training = model.training
    model.eval()
    nelbo_images, iwae_images = [], []   # each batch's numbers per image, on the host
    batches = range(0, len(images), batch_size)
    try:
        with no_grad():
            for start in tqdm(batches, desc=f"held-out bounds (K={samples})", leave=False, disable=not progress):
                batch = images[start:start + batch_size].astype(model.dtype, copy=False)
                x = Variable(to_device_beside(batch, device, "evaluate_bounds: the images", beside))
                nelbo = sum(model.negative_elbo(x).data for _ in range(samples)) / samples
                log_w = F.stack([model.log_weight(x) for _ in range(samples)], axis=0)
                nelbo_images.append(to_numpy(nelbo))                          # explicit host copies
                iwae_images.append(to_numpy(iwae_from_log_weights(log_w).data))
    finally:
        model.train(training)
    n = len(images)
    per_image = {"negative_elbo": np.concatenate(nelbo_images).astype(np.float64),
                 "iwae_nll": np.concatenate(iwae_images).astype(np.float64)}
    nelbo_total, iwae_total = (sum(float(batch.sum()) for batch in per_batch)   # each batch summed in its dtype
                               for per_batch in (nelbo_images, iwae_images))
    return {"negative_elbo": nelbo_total / n, "iwae_nll": iwae_total / n, "samples": samples, "images": n,
            "negative_elbo_se": _standard_error(per_image["negative_elbo"]),
            "iwae_nll_se": _standard_error(per_image["iwae_nll"]), "per_image": per_image}


def _standard_error(values):
    """The standard error of the mean of `values` (N,): sd / sqrt(N), None for N = 1 (no spread)."""
    return None if len(values) < 2 else float(values.std(ddof=1) / math.sqrt(len(values)))


def bound_difference(bounds, reference, key="negative_elbo"):
    """How much lower (< 0) or higher one model's bound is than another's on the same images, and how
    sure that is: (difference, standard error). bounds, reference: what evaluate_bounds returned for
    the two models on the same images in the same order; key: 'negative_elbo' or 'iwae_nll'.

    difference = bounds[key] - reference[key], the difference of the two means. Its standard error
    is paired: sd / sqrt(N) of each image's difference d_n = b_n - r_n (None for one image). An image
    that is hard to encode is hard for both models, so most of the spread of the b_n is shared with
    the r_n and cancels in d_n: the paired error is far smaller than either bound's own. It measures
    the noise of evaluating on these N images with these draws of z, not the noise of training (a
    model trained with another seed moves its bound too)."""
    if key not in ("negative_elbo", "iwae_nll"):
        raise ValueError(f"bound_difference: key must be 'negative_elbo' or 'iwae_nll', got {key!r}")
    if bounds["images"] != reference["images"]:
        raise ValueError(f"bound_difference: the two bounds were evaluated on different numbers of images "
                         f"({bounds['images']} and {reference['images']}); compare them on the same images")
    differences = bounds["per_image"][key] - reference["per_image"][key]
    return bounds[key] - reference[key], _standard_error(differences)


# =============================================================================
# Latent walks, and what the figures of steps 7 and 8 name
# =============================================================================
def latent_walk(decode, z_start, z_end, steps=10):
    """The images decoded along the straight line z(s) = (1 - s) z_start + s z_end, at `steps`
    even steps of s from 0 to 1: (steps, ...) array on the codes' device, computed without a graph.

    decode maps a batch of codes (N, latent) to images: a VAE's decode (steps 7 and 8), a GAN's
    generator (appendix B). z_start, z_end: (latent,) arrays on the model's device, e.g. the
    encoder's means mu(x) of two images."""
    if z_start.shape != z_end.shape or z_start.ndim != 1:
        raise ValueError(f"latent_walk: z_start and z_end must be two codes of the same shape (latent,), "
                         f"got {tuple(z_start.shape)} and {tuple(z_end.shape)}")
    check_count("latent_walk", "steps", steps)
    xp = get_array_module(z_start)
    s = xp.linspace(0, 1, steps).astype(z_start.dtype)[:, None]   # (steps, 1): one row per point of the line
    with no_grad():
        return decode(Variable((1 - s) * z_start + s * z_end)).data


def loss_terms(levels):
    """'L1 + L2 + L3', the terms of the book's loss of a HierarchicalVAE with `levels` levels: the
    reconstruction term L1, then one KL term per level."""
    return " + ".join(f"L{term}" for term in range(1, levels + 2))


def walk_ends(labels, digits=(3, 8)):
    """The two images a latent walk joins, as (first, second, words): the first image of digits[0] and
    the first of digits[1] among `labels`; where one is missing, the first image of another digit than
    the other end (of any digit if all are the same). words names what was walked between,
    'from a 3 to an 8' (or 'from a 3 to a 5' when there was no 8), for the figure's title."""
    labels = np.asarray(labels)
    check_not_empty("walk_ends", labels, "labels to choose the walk's ends from")
    indices = range(len(labels))
    first = min(indices, key=lambda i: (labels[i] != digits[0], labels[i] == digits[1], i))
    others = [i for i in indices if i != first] or [first]   # a single image is walked to itself
    second = min(others, key=lambda i: (labels[i] != digits[1], labels[i] == labels[first], i))

    def named(digit):
        return f"an {digit}" if digit == 8 else f"a {digit}"
    return first, second, f"from {named(labels[first])} to {named(labels[second])}"
