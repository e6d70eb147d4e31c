"""Normalizing flows (appendix): an invertible network with an exact likelihood.

A flow is a bijection f from data x (D numbers) to a latent z of the same size, with
z ~ N(0, I). The change-of-variables formula gives the density of x exactly:

    log p(x) = log N(f(x) | 0, I) + log |det df/dx|

so the flow is trained by plain maximum likelihood (step 2's idea, no bound as in the VAE),
and sampled by running the inverse: x = f^{-1}(z), z ~ N(0, I).

RealNVP (Dinh et al. 2017) builds f from affine couplings. A binary mask m splits the
dimensions; those with m = 1 pass through and set a scale and shift for the others:

    y = x * exp(s) + t,   (s_raw, t_raw) = net(m * x),
    s = (1 - m) * scale * tanh(s_raw),   t = (1 - m) * t_raw              (s = t = 0 where m = 1)

The Jacobian dy/dx is triangular once the kept dimensions are listed first (they do not depend
on the changed ones; for dim = 2 it is triangular as it stands),
so log |det dy/dx| = sum_d s_d, and the inverse needs no inverse of `net`:
x = (y - t) * exp(-s), with s and t computed from m * y = m * x. tanh bounds every
log-scale by |scale|, which keeps early training stable. Alternating masks let every
dimension be changed by some coupling.

    flow = RealNVP(dim=2, hidden_size=64, num_couplings=8)
    loss = flow.loss(x)               # -mean log p(x), nats per point
    z, log_det = flow(x)              # data -> normal
    x = flow.inverse(z)               # normal -> data
"""
import numpy as np

import zero.functions as F
from zero.backend import DEFAULT_DTYPE, get_backend, standard_normal, to_device_beside, to_numpy
from zero.core import Parameter, Variable, no_grad
from zero.layers import Layer, LayerList
from zero.models import MLP, Model
from zero.utils import check_count
from zero.vae import gaussian_log_pdf


def as_input(x):
    """x as a Variable; a raw array (a batch of data) becomes a constant, which needs no gradient."""
    return x if isinstance(x, Variable) else Variable(x, requires_grad=False)


class AffineCoupling(Layer):
    """One RealNVP coupling y = x * exp(s) + t (see the module docstring).

    mask: (D,) of 0/1, the dimensions that pass through unchanged. net: D -> hidden -> hidden
    -> 2D with tanh, its last layer zero-initialised so the coupling starts as the identity.
    """

    def __init__(self, mask, hidden_size):
        super().__init__()
        mask = np.array(mask, dtype=DEFAULT_DTYPE)   # a copy: the caller's array may change, or be shared
        self.dim = len(mask)
        self.register_buffer("mask", mask)        # m: kept dimensions
        self.register_buffer("free", 1 - mask)    # 1 - m: changed dimensions
        self.net = MLP((self.dim, hidden_size, hidden_size, 2 * self.dim), activation=F.tanh)
        last = self.net.layers[-1]
        last._fill(last.W, np.zeros(last.W.shape))
        last._fill(last.b, np.zeros(last.b.shape))
        self.scale = Parameter(np.ones(self.dim, dtype=DEFAULT_DTYPE), name="scale")

    def _scale_shift(self, kept):
        """s, t (N, D) from the kept part m * x; both are 0 on the kept dimensions."""
        out = self.net(kept)
        s = self.scale * F.tanh(out[:, :self.dim]) * self.free   # s = (1 - m) scale tanh(s_raw)
        t = out[:, self.dim:] * self.free                        # t = (1 - m) t_raw
        return s, t

    def forward(self, x):
        """x (N, D) -> y (N, D) and log |det dy/dx| (N,)."""
        x = as_input(x)
        s, t = self._scale_shift(x * self.mask)
        y = x * F.exp(s) + t                     # y = x exp(s) + t; y = x where m = 1
        return y, F.sum(s, axis=1)               # log |det| = sum_d s_d (triangular Jacobian)

    def inverse(self, y):
        """y (N, D) -> x (N, D): x = (y - t) exp(-s), s and t from m * y = m * x."""
        y = as_input(y)
        s, t = self._scale_shift(y * self.mask)
        return (y - t) * F.exp(-s)

    def describe(self):
        return f"mask={to_numpy(self.mask).astype(int).tolist()}"


def alternating_masks(dim, count):
    """count masks (D,) that alternate: [1, 0, 1, ...], [0, 1, 0, ...], ... (float32)."""
    return [((np.arange(dim) + layer) % 2 == 0).astype(DEFAULT_DTYPE) for layer in range(count)]


class RealNVP(Model):
    """A stack of affine couplings with alternating masks: x (N, D) <-> z (N, D), z ~ N(0, I)."""

    def __init__(self, dim=2, hidden_size=64, num_couplings=8):
        super().__init__()
        if dim < 2:
            raise ValueError(f"RealNVP needs at least 2 dimensions to split, got dim={dim}")
        check_count("RealNVP", "num_couplings", num_couplings)   # 0 or -1 built an identity 'flow'
        self.dim = dim
        self.couplings = LayerList(AffineCoupling(mask, hidden_size) for mask in alternating_masks(dim, num_couplings))

    def forward(self, x):
        """Data -> normal: z = f(x) (N, D) and log |det df/dx| (N,), the sum over the couplings."""
        log_det = 0
        for coupling in self.couplings:
            x, coupling_log_det = coupling(x)
            log_det = log_det + coupling_log_det   # the Jacobian of a composition multiplies
        return x, log_det

    def inverse(self, z):
        """Normal -> data: x = f^{-1}(z), the couplings undone in reverse order. (N, D) -> (N, D)."""
        for coupling in self.couplings[::-1]:
            z = coupling.inverse(z)
        return z

    def log_prob(self, x):
        """log p(x) = log N(f(x) | 0, I) + log |det df/dx|, in nats: (N, D) -> (N,)."""
        z, log_det = self(x)
        return gaussian_log_pdf(z) + log_det

    def loss(self, x):
        """-mean log p(x) over the batch, nats per point (a scalar Variable)."""
        return -F.mean(self.log_prob(x))

    def sample(self, n):
        """n points x = f^{-1}(z), z ~ N(0, I): (n, D) array on the model's device."""
        check_count("RealNVP.sample", "n", n)
        xp = get_backend(self.device).xp
        with no_grad():
            z = standard_normal(xp, (n, self.dim), self.dtype)
            return self.inverse(Variable(z)).data

    def stages(self, x, inverse=False):
        """The points after every coupling, without a graph: [x, f_1(x), f_2(f_1(x)), ..., z]
        (inverse=True: from z back to x). Arrays (N, D) on the model's device; x (N, D) is a host
        array (copied there) or one already there (on another device it is refused: TypeError)."""
        points = [to_device_beside(x, self.device, "RealNVP.stages: x", "the flow")]
        couplings = list(self.couplings)
        with no_grad():
            for coupling in (reversed(couplings) if inverse else couplings):
                current = Variable(points[-1])
                points.append((coupling.inverse(current) if inverse else coupling(current)[0]).data)
        return points


def two_moons(n, noise=0.05, seed=0):
    """n points (n, 2) float32 on two interleaved half circles, plus Gaussian noise of std `noise`:
    upper (cos a, sin a), lower (1 - cos a, 1/2 - sin a), a ~ U(0, pi); n // 2 on the upper one."""
    rng = np.random.default_rng(seed)
    upper = n // 2
    angles = rng.uniform(0, np.pi, n)
    points = np.where(np.arange(n)[:, None] < upper,
                      np.stack([np.cos(angles), np.sin(angles)], axis=1),
                      np.stack([1 - np.cos(angles), 0.5 - np.sin(angles)], axis=1))
    return (points + noise * rng.standard_normal((n, 2))).astype(DEFAULT_DTYPE)
