"""Gaussian mixture models fitted by expectation-maximisation (EM).

The model (K components, full covariances) and its latent variable z:

    p(z = k) = phi_k,   p(x | z = k) = N(x | mu_k, Sigma_k),   p(x) = sum_k phi_k N(x | mu_k, Sigma_k)

EM repeats two steps, and the log-likelihood sum_n log p(x_n) never goes down (exactly so with
reg_covar = 0; the default adds reg_covar I to each Sigma_k after the M-step, a tiny change that
keeps covariances invertible):

    E-step   r_nk = phi_k N(x_n | mu_k, Sigma_k) / sum_j phi_j N(x_n | mu_j, Sigma_j)   (responsibilities)
    M-step   N_k = sum_n r_nk,  phi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
             Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k

The E-step is computed in log space (log r_nk = log phi_k N_k(x_n) - logsumexp_j(...)),
so points far from every component do not underflow to 0/0. All the work is
array operations over all points and components at once, on the array module
of the data (NumPy, CuPy, ...): fitted parameters stay on the data's device,
in float64 whatever the data's dtype.
"""
import math
import warnings

import numpy as np

from zero.backend import DEFAULT_DTYPE, device_of, get_array_module, to_device, to_device_beside, to_numpy
from zero.cli import plural
from zero.distributions import _as_array, cholesky, gaussian_log_pdf_columns
from zero.utils import check_count, check_not_empty, check_number

MIN_RESPONSIBILITY = 1e-10  # a component whose N_k falls below this has lost all its points
POINTS_PER_BLOCK = 8192     # M-step: points per block when summing the covariances


def logsumexp(a, axis):
    """log sum_i exp(a_i) along axis, without overflow: m + log sum_i exp(a_i - m), m = max_i a_i.

    The axis is moved to the front first (a copy only when that view is not contiguous), so that
    the max and the sum combine whole rows, one vectorised pass each: NumPy reduces along a short
    last axis several times slower (100,000 x 5 along its last axis: 1.1 ms against 5.6 on
    2026-12-04, the copy included). This module's callers hold their log densities component-major,
    (K, N) or a transposed view of it, so for them nothing is copied.

    Where every a_i is -inf (a point too far out for any component's density to be a float), the
    result is -inf: m is taken as 0 where it is not finite (as F.logsumexp does), as -inf - (-inf)
    would be NaN.
    """
    xp = get_array_module(a)
    rows = xp.ascontiguousarray(xp.moveaxis(a, axis, 0))  # rows[i] = a's slice i along axis
    peak = rows.max(axis=0)
    peak = xp.where(xp.isfinite(peak), peak, peak.dtype.type(0))
    with np.errstate(divide="ignore"):   # log 0 = -inf there is the answer (CuPy never warns)
        return peak + xp.log(xp.exp(rows - peak).sum(axis=0))


def _as_float64_rows(x):
    """Data (an array of any backend, or lists) as a float64 (N, D) array of its backend; (N,) is N
    points in one dimension. Lists are read as float64 (Python floats are: no rounding to float32 first)."""
    x = _as_array(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"data must have shape (N, D) or (N,), got {x.shape}")
    return x.astype(get_array_module(x).float64)


def _check_finite(x, method):
    """x (N, D) as it is, if every value is finite; else a ValueError naming `method` and the rows."""
    xp = get_array_module(x)
    finite = xp.isfinite(x).all(axis=1)
    if not bool(finite.all()):   # one read by the host
        bad_rows = int((~finite).sum())
        first = int(xp.argmin(finite))
        raise ValueError(f"GaussianMixture.{method}: data contains NaN or infinite values in {bad_rows} of "
                         f"{x.shape[0]} rows (first: row {first})")
    return x


def _check_comparable(log_joint, method):
    """log_joint (N, K) as it is, if each row has a finite entry; else a ValueError naming `method`
    and the rows. A point so far from every component that its squared Mahalanobis distances
    overflow float64 (beyond about 1e154 standard deviations) has log density -inf under each:
    its responsibilities came out NaN, and predict named component 0, without a word."""
    xp = get_array_module(log_joint)
    comparable = (log_joint > -xp.inf).any(axis=1)
    if not bool(comparable.all()):   # one read by the host
        raise ValueError(f"GaussianMixture.{method}: {int((~comparable).sum())} of {log_joint.shape[0]} points "
                         f"(first: row {int(xp.argmin(comparable))}) lie so far from every component that their "
                         f"densities underflow to 0 under each, so the components cannot be compared (are they in "
                         f"the units of the data the mixture was fitted on?)")
    return log_joint


class GaussianMixture:
    """A mixture of K full-covariance Gaussians in D dimensions, fitted by EM.

    n_components: K. reg_covar: added to the diagonal of every covariance in
    each M-step, so that a component sitting on fewer than D+1 distinct
    points keeps a positive-definite covariance (set 0 for exact EM; a
    covariance that then becomes singular, or a component that shrinks onto
    one point, raises ValueError naming the component). tol: stop when
    the mean log-likelihood per point changes by less than tol between two
    iterations. max_iter: at most that many EM iterations. seed: for the
    initial means chosen from the data and for `sample`. verbose: print the
    log-likelihood at every iteration.

    After `fit`: weights (K,), means (K, D), covariances (K, D, D) (float64,
    on the data's device); log_likelihood_history (list of floats: mean log
    p(x_n) before each M-step, history[0] for the initial parameters);
    n_iter; converged. A mixture with parameters chosen by hand, not fitted:
    `GaussianMixture.from_parameters(weights, means, covariances)`. log_prob, score,
    predict_proba and predict take data on the parameters' device, or host data (copied
    there); data on another device is refused (TypeError).
    """

    def __init__(self, n_components, reg_covar=1e-6, tol=1e-3, max_iter=100, seed=0, verbose=False):
        check_count("GaussianMixture", "n_components", n_components)
        check_count("GaussianMixture", "max_iter", max_iter)  # 0 would fit nothing and report no change
        check_number("GaussianMixture", "reg_covar", reg_covar, at_least=0)
        check_number("GaussianMixture", "tol", tol, at_least=0)
        self.n_components = int(n_components)
        self.reg_covar = float(reg_covar)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.seed = seed
        self.verbose = verbose
        self.weights = self.means = self.covariances = None
        self.dtype = np.dtype(DEFAULT_DTYPE)  # of the data fitted on: used by sample, predict_proba
        self.log_likelihood_history = []
        self.n_iter = 0
        self.converged = False

    @classmethod
    def from_parameters(cls, weights, means, covariances, seed=0):
        """A mixture with the given parameters, ready to score, predict and sample without fit.

        weights (K,): phi_k, non-negative and summing to 1; means (K, D): mu_k; covariances
        (K, D, D): Sigma_k, symmetric positive definite. Arrays on the means' device, or host
        arrays and lists (moved there; an array on another device is refused, TypeError);
        stored in float64. Samples and
        responsibilities come in the means' dtype if it is floating, else float32, as after fit.
        seed: for `sample`. A parameter of the wrong shape, with NaN or infinite values, weights
        that are negative or do not sum to 1, a covariance that is not symmetric positive
        definite: a ValueError naming it. (A later fit(x) starts EM afresh, from the data.)
        """
        floating_array = hasattr(means, "shape") and np.issubdtype(means.dtype, np.floating)
        means = _as_array(means)
        if means.ndim != 2 or 0 in means.shape:
            raise ValueError(f"means must have shape (K, D), K components in D dimensions (both at least 1), "
                             f"got {means.shape}")
        mixture = cls(means.shape[0], seed=seed)
        if floating_array:   # the rule of fit's data: a floating array's dtype, float32 for lists and integers
            mixture.dtype = np.dtype(means.dtype)
        n_components, dim = means.shape
        device = device_of(means)
        weights = mixture._check_weights(weights, device)
        means = mixture._check_parameter(means, "means", (n_components, dim), device, "dimension of the means")
        covariances = mixture._check_parameter(covariances, "covariances", (n_components, dim, dim), device,
                                               "dimension of the means")
        mixture._set_parameters(weights, means, covariances, "covariance",
                                "give symmetric positive-definite covariances")
        return mixture

    # ----- fitting -----------------------------------------------------------------------------
    def fit(self, x, weights=None, means=None, covariances=None):
        """Run EM on data x (N, D) (or (N,) for D = 1); returns self.

        Initial parameters: any of weights (K,), means (K, D), covariances
        (K, D, D) may be given (on x's device, or host arrays, moved there). Missing
        ones come from the data: means are K data points picked k-means++
        style (each next one far from those already picked, using `seed`),
        covariances the covariance of all the data (plus reg_covar I), weights 1/K. Data whose
        covariance overflows float64 (values near 1e154 or beyond), or is singular to working precision
        (see zero.distributions.cholesky: a constant feature with reg_covar = 0, or one that is a
        combination of others), is refused with a ValueError saying so. Features in very different
        units are fine: EM gives the same fit in any units (with reg_covar = 0 exactly so).
        """
        x = self._check_data(x)
        x_columns = get_array_module(x).ascontiguousarray(x.T)   # (D, N): the layout both steps work in
        self._initialize(x, weights, means, covariances)
        self.log_likelihood_history = history = []
        self.converged = False
        previous = -math.inf
        for iteration in range(1, self.max_iter + 1):
            log_likelihood, log_resp = self._e_step(x_columns)
            history.append(log_likelihood)
            change = log_likelihood - previous
            if self.verbose:
                print(f"  EM iteration {iteration:3d}: mean log-likelihood {log_likelihood:.6f}")
            self._m_step(x, x_columns, log_resp, iteration)
            self.n_iter = iteration
            if abs(change) < self.tol:  # the criterion of scikit-learn, so both run the same iterations
                self.converged = True
                break
            previous = log_likelihood
        if not self.converged:
            if self.max_iter == 1:   # the first change is measured from -inf: inf
                why = "one iteration measures no change; convergence is judged from the second"
            else:
                why = f"last change in mean log-likelihood {change:.3g}, tol {self.tol:g}"
            warnings.warn(f"EM did not converge in {plural(self.max_iter, 'iteration')} ({why})")
        return self

    def _e_step(self, x_columns):
        """Mean log-likelihood (float) and log responsibilities log r_kn (K, N), from x^T (D, N).

        Both steps work with the N points along the last, contiguous axis, so that every NumPy
        pass runs one long inner loop. With (N, K) and (N, D) arrays instead, each pass ran 5- or
        10-element loops, and EM on 100,000 x 10 points (K = 5, 10 iterations) took 0.46 s (best)
        and 0.54 s (median of 7) instead of 0.31 and 0.37 (2026-12-04, alternating in one process)."""
        log_resp = self._log_joint_columns(x_columns)   # log phi_k + log N(x_n | mu_k, Sigma_k), (K, N)
        log_evidence = logsumexp(log_resp, axis=0)      # log p(x_n) = log sum_k exp(...)
        log_resp -= log_evidence                        # log r_kn
        return float(log_evidence.mean()), log_resp

    def _m_step(self, x, x_columns, log_resp, iteration):
        """Weighted maximum likelihood: new weights, means, covariances from r_kn = exp(log_resp),
        log_resp (K, N) (overwritten); x (N, D) and x_columns, its transpose (D, N)."""
        xp = get_array_module(x)
        n_points, dim = x.shape
        resp = xp.exp(log_resp, out=log_resp)           # r_kn, (K, N)
        counts = resp.sum(axis=1)                       # N_k = sum_n r_kn
        smallest = int(counts.argmin())
        if float(counts[smallest]) < MIN_RESPONSIBILITY:
            raise ValueError(
                f"EM iteration {iteration}: component {smallest} lost all its points (sum of its "
                f"responsibilities {float(counts[smallest]):.3g}); start from other initial "
                "parameters or use fewer components")
        means = (resp @ x) / counts[:, None]            # mu_k = sum_n r_kn x_n / N_k
        # sum_n r_kn (x_n - mu_k)(x_n - mu_k)^T = A A^T with columns a_n = sqrt(r_kn) (x_n - mu_k): a product
        # of a matrix with itself, which NumPy hands to BLAS's symmetric kernel (syrk), faster than r * x
        root_resp = xp.sqrt(resp, out=resp)
        scatter = xp.zeros((self.n_components, dim, dim), dtype=x.dtype)
        for start in range(0, n_points, POINTS_PER_BLOCK):  # blocks of points keep the temporaries in cache
            block = slice(start, start + POINTS_PER_BLOCK)
            for k in range(self.n_components):              # K is small: one (D, points) @ (points, D) product each
                weighted = x_columns[:, block] - means[k][:, None]
                weighted *= root_resp[k, block]             # sqrt(r_kn) (x_n - mu_k), one column per point
                scatter[k] += weighted @ weighted.T
        covariances = scatter / counts[:, None, None] + self.reg_covar * xp.eye(dim, dtype=x.dtype)  # Sigma_k
        hint = f"increase reg_covar (now {self.reg_covar:g}) or use fewer components"
        self._check_spread(xp, means, covariances, f"EM iteration {iteration}", hint)
        self._set_parameters(counts / n_points, means, covariances,  # phi_k = N_k / N
                             f"EM iteration {iteration}: covariance", hint)

    @staticmethod
    def _check_spread(xp, means, covariances, where, hint):
        """Refuse a component collapsed onto one point: a standard deviation sqrt(Sigma_k,ii) at most
        10 D eps |mu_k,i|, below what floating point can tell apart around its mean. Its correlations can
        look fine (cholesky's test does not see it), but x_n - mu_k is rounded by more than the spread,
        so its log-density, and EM's log-likelihood, would be rounding noise (it fell, in a test)."""
        dim = means.shape[1]
        spread = xp.sqrt(xp.diagonal(covariances, axis1=-2, axis2=-1))                 # (K, D)
        collapsed = (spread <= 10 * dim * np.finfo(means.dtype).eps * xp.abs(means)).any(axis=1)
        if bool(collapsed.any()):
            component = int(collapsed.argmax())
            raise ValueError(f"{where}: component {component} collapsed onto a single point (its spread is "
                             f"below the floating-point precision of its mean); {hint}")

    def _set_parameters(self, weights, means, covariances, what, hint):
        """Store parameters and the Cholesky factors of the covariances (the E-step uses those)."""
        try:
            self._scale_trils = cholesky(covariances, name=what, index_name="component")
        except ValueError as error:
            raise ValueError(f"{error}; {hint}") from None
        self.weights, self.means, self.covariances = weights, means, covariances

    # ----- initialisation ----------------------------------------------------------------------
    def _initialize(self, x, weights, means, covariances):
        xp = get_array_module(x)
        dim = x.shape[1]
        n_components = self.n_components
        device = device_of(x)
        if weights is None:
            weights = xp.full(n_components, 1.0 / n_components)
        else:
            weights = self._check_weights(weights, device)
        if covariances is None:   # first: data too large for it is refused before the seeds' distances overflow
            covariances = xp.broadcast_to(self._data_covariance(x), (n_components, dim, dim)).copy()
        else:
            covariances = self._check_parameter(covariances, "covariances", (n_components, dim, dim), device)
        if means is None:
            means = x[self._pick_seeds(x)]
        else:
            means = self._check_parameter(means, "means", (n_components, dim), device)
        self._set_parameters(weights, means, covariances, "initial covariance",
                             "give symmetric positive-definite covariances")

    def _data_covariance(self, x):
        """The covariance of all the data plus reg_covar I (D, D), every component's initial covariance,
        checked here so that its errors speak of the data, not of covariances nobody gave."""
        xp = get_array_module(x)
        n_points, dim = x.shape
        with np.errstate(over="ignore", invalid="ignore"):   # checked right below (CuPy never warns)
            centred = x - x.mean(axis=0)
            covariance = centred.T @ centred / n_points + self.reg_covar * xp.eye(dim)
        if not bool(xp.isfinite(covariance).all()):
            raise ValueError(f"GaussianMixture.fit: the data's covariance overflows float64 (values up to "
                             f"{float(xp.abs(x).max()):.3g}: sums of their squares exceed 1.8e308): rescale the data")
        try:
            cholesky(covariance, name="GaussianMixture.fit: the data's covariance plus reg_covar I "
                                      "(every component's initial covariance)")
        except ValueError as error:
            raise ValueError(f"{error}. The data lie on a subspace (a constant feature, or one that is a "
                             f"combination of others): drop that feature, raise reg_covar (now {self.reg_covar:g}) "
                             "or give initial covariances") from None
        return covariance

    def _pick_seeds(self, x):
        """K row indices of x, k-means++ style: each next point drawn with probability
        proportional to its squared distance to the nearest point already picked."""
        xp = get_array_module(x)
        rng = np.random.default_rng(self.seed)
        n_points = x.shape[0]
        picked = [int(rng.integers(n_points))]
        nearest = ((x - x[picked[0]]) ** 2).sum(axis=1)  # squared distance to the nearest pick, (N,)
        for _ in range(1, self.n_components):
            cumulative = xp.cumsum(nearest)
            total = float(cumulative[-1])
            if total > 0:
                threshold = rng.random() * total
                index = min(int((cumulative < threshold).sum()), n_points - 1)
            else:  # every point coincides with a pick
                index = int(rng.integers(n_points))
            picked.append(index)
            nearest = xp.minimum(nearest, ((x - x[index]) ** 2).sum(axis=1))
        return picked

    def _check_parameter(self, value, name, shape, device, dim_name="data dimension"):
        """value as a float64 array of `shape` on `device`, refused (naming `name`) if it has another
        shape or NaN or infinite values; dim_name says where D comes from, for the message."""
        value = to_device_beside(value, device, f"GaussianMixture: {name}")   # never a silent copy to the host
        value = value.astype(get_array_module(value).float64)
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (K = {self.n_components} components, "
                             f"D = {dim_name}), got {value.shape}")
        if not bool(get_array_module(value).isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return value

    def _check_weights(self, weights, device):
        """Mixing weights phi_k (K,) checked as _check_parameter does, and non-negative summing to 1
        (within 1e-5: rounded values are fine); returned divided by their sum, which makes it 1 to rounding."""
        weights = self._check_parameter(weights, "weights", (self.n_components,), device)
        if not bool((weights >= 0).all()) or abs(float(weights.sum()) - 1.0) > 1e-5:
            raise ValueError(f"weights must be non-negative and sum to 1, got sum {float(weights.sum()):.6g} "
                             f"and smallest {float(weights.min()):.6g}")
        return weights / weights.sum()

    def _check_data(self, x):
        """x as a float64 (N, D) array of its own backend, after checking it. The dtype of samples is
        that of a floating x, float32 for integers and lists."""
        floating_array = hasattr(x, "shape") and np.issubdtype(x.dtype, np.floating)
        dtype = x.dtype if floating_array else np.dtype(DEFAULT_DTYPE)
        x = _check_finite(_as_float64_rows(x), "fit")
        self.dtype = dtype
        if x.shape[0] < self.n_components:
            raise ValueError(f"fewer data points ({x.shape[0]}) than components ({self.n_components})")
        return x

    def _fitted_dim(self):
        return self.means.shape[1]

    # ----- using the fitted model --------------------------------------------------------------
    def _log_joint(self, x, method):
        """log phi_k + log N(x_n | mu_k, Sigma_k), (N, K), for the data x given to `method` (its name,
        for the messages)."""
        x = _check_finite(self._prepare(x, method), method)   # else NaN log-likelihoods, silently
        if x.shape[1] != self._fitted_dim():
            raise ValueError(f"data has dimension {x.shape[1]} but the mixture was fitted in "
                             f"dimension {self._fitted_dim()}")
        return self._log_joint_columns(get_array_module(x).ascontiguousarray(x.T)).T

    def _log_joint_columns(self, x_columns):
        """log phi_k + log N(x_n | mu_k, Sigma_k) as (K, N), from x^T (D, N)."""
        log_joint = gaussian_log_pdf_columns(x_columns, self.means, self._scale_trils)
        with np.errstate(divide="ignore"):   # log 0 = -inf is right for a weight of 0 (CuPy never warns)
            log_weights = get_array_module(log_joint).log(self.weights)
        log_joint += log_weights[:, None]
        return log_joint

    def _prepare(self, x, method):
        """x as float64 rows (N, D) on the parameters' device: host data (arrays, lists) is copied there;
        data on another device is refused, naming `method` and both devices (copying it would be a
        transfer through the host nobody asked for)."""
        if self.means is None:
            raise RuntimeError("the mixture has no parameters yet: call fit(x) first")
        data_device, parameters_device = device_of(x), device_of(self.means)
        if data_device not in ("cpu", parameters_device):
            raise TypeError(f"GaussianMixture.{method}: the data on {data_device} and the mixture's parameters "
                            f"on {parameters_device}: move the data to {parameters_device} first (zero.to_device)")
        return _as_float64_rows(to_device(x, parameters_device))

    def log_prob(self, x):
        """log p(x_n) for each row of x (N, D): (N,), float64."""
        return logsumexp(self._log_joint(x, "log_prob"), axis=1)

    def score(self, x):
        """Mean log-likelihood 1/N sum_n log p(x_n) (a Python float)."""
        log_probs = logsumexp(self._log_joint(x, "score"), axis=1)
        check_not_empty("GaussianMixture.score", log_probs, "data points to score")   # a mean of nothing: NaN
        return float(log_probs.mean())

    def predict_proba(self, x):
        """Responsibilities p(z = k | x_n) (N, K), rows summing to 1, in the data's dtype."""
        log_joint = _check_comparable(self._log_joint(x, "predict_proba"), "predict_proba")
        return get_array_module(log_joint).exp(log_joint - logsumexp(log_joint, axis=1)[:, None]).astype(self.dtype)

    def predict(self, x):
        """The most responsible component for each row of x: (N,) integers."""
        return _check_comparable(self._log_joint(x, "predict"), "predict").argmax(axis=1)

    def sample(self, n, seed=None):
        """Ancestral sampling: z_i ~ Categorical(phi), then x_i = mu_z + L_z eps_i, eps_i ~ N(0, I).

        Returns (x (n, D) in the data's dtype, z (n,) component labels), on the
        parameters' device. The random numbers are drawn on the host from
        `seed` (default: the mixture's seed), so every device gives the same samples.
        """
        if self.means is None:
            raise RuntimeError("the mixture has no parameters yet: call fit(x) first")
        check_count("GaussianMixture.sample", "n", n)   # 3.7 samples would silently be 3
        device = device_of(self.means)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        weights = to_numpy(self.weights)
        labels = rng.choice(self.n_components, size=int(n), p=weights / weights.sum())
        noise = rng.standard_normal((int(n), self.means.shape[1]))
        labels, noise = to_device(labels, device), to_device(noise, device)
        xp = get_array_module(self.means)
        samples = self.means[labels] + xp.einsum("nij,nj->ni", self._scale_trils[labels], noise)
        return samples.astype(self.dtype), labels
