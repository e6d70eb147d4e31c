"""The two Gaussian ops of a VAE (step 7), each one op instead of a chain of small ones: a
sample of the encoder's q(z | x) = N(mu, diag e^logvar) through which gradients flow (the
reparameterization trick), and its KL divergence from the prior N(0, I).

Written with +, *, exp and sum (z = mu + exp(0.5 logvar) eps; the KL as in GaussianKL's
docstring) they take 4 and 7 ops forward and more backward, each a Python call around an array
of only (batch, latent) numbers; as one op each, step 7's training step makes 33 op calls
instead of 52 (forward and backward, counted on VAE(784, 200, 20).loss)."""

__all__ = ['gaussian_kl_from_standard', 'reparameterize']
from zero import backend
from zero.core import Function, Variable
from zero.functions.math import exp
from zero.functions.reduction import sum
from zero.functions.shape import reshape


def _check_same_shape(mu, logvar):
    """One mean and one log-variance per latent dimension (no broadcasting: each gradient has its input's shape)."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {mu.shape} and {logvar.shape}")


class Reparameterize(Function):
    """z = mu + sigma eps with sigma = e^(logvar / 2) and eps ~ N(0, I) drawn here, once:

        dz/dmu = 1,   dz/dlogvar = eps sigma / 2.
    """

    def forward(self, mu, logvar):
        _check_same_shape(mu, logvar)
        self.eps = backend.standard_normal(self.xp, mu.shape, mu.dtype)  # on mu's device, in its dtype
        self.sigma_eps = self.xp.exp(logvar * mu.dtype.type(0.5))         # sigma, then in place sigma eps
        self.sigma_eps *= self.eps                                        # (kept: the backward needs it)
        return self.sigma_eps + mu

    def backward(self, gz):
        logvar = self.inputs[1]
        return gz, ReparameterizeGrad(self.eps, self.sigma_eps)(logvar, gz)


class ReparameterizeGrad(Function):
    """g_logvar = gz eps e^(logvar / 2) / 2, as one op, from the forward's eps and sigma eps; its
    own backward (double backprop): d/dlogvar = g_logvar / 2 (times the incoming gradient),
    d/dgz = eps e^(logvar / 2) / 2."""

    def __init__(self, eps, sigma_eps):
        self.eps, self.sigma_eps = eps, sigma_eps

    def forward(self, logvar, gz):
        g_logvar = self.sigma_eps * gz
        g_logvar *= 0.5
        return g_logvar

    def backward(self, gg):
        logvar, gz = self.inputs
        g_logvar = self.outputs[0]()
        half_eps = Variable(self.eps * self.eps.dtype.type(0.5), requires_grad=False)
        return gg * g_logvar * 0.5, gg * half_eps * exp(0.5 * logvar)


class GaussianKL(Function):
    """KL(N(mu, diag e^logvar) || N(0, I)), summed over the last axis (the latent dimensions):

        KL = 1/2 sum_j (e^logvar_j + mu_j^2 - 1 - logvar_j),
        dKL/dmu = mu,   dKL/dlogvar = (e^logvar - 1) / 2.
    """

    def forward(self, mu, logvar):
        _check_same_shape(mu, logvar)
        terms = self.xp.exp(logvar)
        terms += mu * mu
        terms -= 1
        terms -= logvar
        return terms.sum(axis=-1) * mu.dtype.type(0.5)

    def backward(self, gy):
        mu, logvar = self.inputs
        return GaussianKLGrad()(mu, logvar, gy)


class GaussianKLGrad(Function):
    """(g_mu, g_logvar) = (gy mu, gy (e^logvar - 1) / 2), gy spread over the last axis, as one
    op; its own backward (double backprop) differentiates those two products."""

    def forward(self, mu, logvar, gy):
        gy = gy[..., None]
        g_logvar = self.xp.exp(logvar)
        g_logvar -= 1
        g_logvar *= 0.5
        g_logvar *= gy
        return mu * gy, g_logvar

    def backward(self, gg_mu, gg_logvar):
        mu, logvar, gy = self.inputs
        gy = reshape(gy, gy.shape + (1,))
        g_mu = g_logvar = g_gy = None
        if gg_mu is not None:          # from g_mu = gy mu
            g_mu = gg_mu * gy
            g_gy = sum(gg_mu * mu, axis=-1)
        if gg_logvar is not None:      # from g_logvar = gy (e^logvar - 1) / 2
            variance = exp(logvar)
            g_logvar = gg_logvar * gy * variance * 0.5
            from_logvar = sum(gg_logvar * (variance - 1) * 0.5, axis=-1)
            g_gy = from_logvar if g_gy is None else g_gy + from_logvar
        return g_mu, g_logvar, g_gy


def reparameterize(mu, logvar):
    """A sample z = mu + e^(logvar / 2) eps of N(mu, diag e^logvar), eps ~ N(0, I), through which
    gradients reach mu and logvar (one op; see Reparameterize). mu and logvar: same shape."""
    return Reparameterize()(mu, logvar)


def gaussian_kl_from_standard(mu, logvar):
    """KL(N(mu, diag e^logvar) || N(0, I)) over the last axis, in nats: (..., d) -> (...)."""
    return GaussianKL()(mu, logvar)
