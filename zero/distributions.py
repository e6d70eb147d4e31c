"""The normal distribution in one and in D dimensions: densities, CDF, MLE.

Everything but normal_quantile works on NumPy and on device arrays: the array module `xp` comes
from the data (`zero.backend.get_array_module`) and results stay where the
data is. Densities are computed in log space (a density of 1e-300 is a log
density of -690, which float arithmetic handles easily); the multivariate
one goes through the Cholesky factor L of the covariance (L L^T = Sigma), so
nothing inverts Sigma itself:

    log N(x | mu, Sigma) = -D/2 log(2 pi) - sum_i log L_ii - 1/2 |L^-1 (x - mu)|^2
"""
import math

import numpy as np

from zero.backend import get_array_module

LOG_2PI = math.log(2.0 * math.pi)
POINTS_PER_BLOCK = 8192   # gaussian_log_pdf_columns: points per block (see there)


def normal_log_pdf(x, mu=0.0, sigma=1.0):
    """log N(x | mu, sigma), sigma the standard deviation, elementwise (x, mu, sigma broadcast)."""
    _check_scale(sigma)
    x = x if _is_scalar(x) else _as_array(x)
    xp = get_array_module(x)
    z = (x - mu) / sigma
    log_sigma = math.log(sigma) if _is_scalar(sigma) else xp.log(sigma)
    return -0.5 * z * z - log_sigma - 0.5 * LOG_2PI  # log of exp(-z^2/2) / (sqrt(2 pi) sigma)


def normal_pdf(x, mu=0.0, sigma=1.0):
    """N(x | mu, sigma) = exp(-(x - mu)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma), sigma the standard
    deviation (as in step 1), elementwise."""
    return get_array_module(x).exp(normal_log_pdf(x, mu, sigma))


def erfc(x):
    """The complementary error function erfc(x) = 1 - erf(x) = 2/sqrt(pi) int_x^inf exp(-t^2) dt.

    Python and NumPy scalars: `math.erfc` (exact to double precision). Arrays of
    any backend: the Chebyshev fit of Numerical Recipes (2nd ed., sec. 6.2),
    relative error below 1.2e-7 wherever erfc(x) is a normal float64 (x below about 26.5;
    beyond, the result is subnormal and loses relative precision, and from x = 27.23 on it is 0),
    built from array operations only so that it runs on the device.
    """
    if _is_scalar(x):
        return math.erfc(float(x))
    xp = get_array_module(x)
    z = xp.minimum(xp.abs(x), 40.0)   # erfc(28) underflows to 0 already: the cap keeps z * z finite (NaN stays NaN)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = 0.17087277
    for coefficient in (-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
                        0.09678418, 0.37409196, 1.00002368, -1.26551223):
        poly = coefficient + t * poly  # Horner's rule
    erfc_abs = t * xp.exp(-z * z + poly)  # erfc(|x|)
    return xp.where(x >= 0, erfc_abs, 2.0 - erfc_abs)  # erfc(-x) = 2 - erfc(x)


def erf(x):
    """The error function erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt = 1 - erfc(x)."""
    if _is_scalar(x):
        return math.erf(float(x))
    xp = get_array_module(x)
    # near 0, 1 - erfc(x) loses everything to cancellation (erfc's 1e-7 error is all that is left):
    # there use the Maclaurin series 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)), converged for |x| < 1/2
    small = xp.minimum(xp.abs(x), 0.5) * xp.sign(x)
    term, series = small, small
    for n in range(1, 12):
        term = -term * small * small / n             # (-1)^n x^(2n+1) / n!
        series = series + term / (2 * n + 1)
    return xp.where(xp.abs(x) < 0.5, series * (2.0 / math.sqrt(math.pi)), 1.0 - erfc(x))


def normal_cdf(x, mu=0.0, sigma=1.0):
    """P(X <= x) for X ~ N(mu, sigma^2) = erfc(-(x - mu) / (sigma sqrt 2)) / 2.

    Written with erfc rather than (1 + erf(.)) / 2 so that the lower tail keeps
    its relative accuracy (no 1 - 0.999... cancellation).
    """
    _check_scale(sigma)
    x = x if _is_scalar(x) else _as_array(x)
    return 0.5 * erfc(-(x - mu) / (sigma * math.sqrt(2.0)))


def normal_quantile(p, mu=0.0, sigma=1.0):
    """The x with P(X <= x) = p for X ~ N(mu, sigma^2) (the inverse of normal_cdf), p in (0, 1).

    By symmetry only the lower tail is needed: z(p) = -z(1 - p), and 1 - p is exact in floating
    point for p >= 1/2. There, q = min(p, 1 - p) is read off log normal_cdf on a grid of z from
    -37 to 0 (log: the tail probabilities span 300 orders of magnitude), then refined by Newton
    steps on log cdf(z) = log q. As accurate as normal_cdf itself: within 1.1e-7 of SciPy's
    norm.ppf (and within 4e-8 relative where |z| > 1) for every p from 1e-300 to the largest
    float below 1. Smaller p (about 37 standard deviations out) are refused. Host numbers only
    (floats or NumPy arrays: a course's probabilities, not a GPU's data), unlike the rest of this module.
    """
    p = np.asarray(p, dtype=np.float64)   # on a device array this raises, as any implicit copy to the host
    if not np.all((p > 0) & (p < 1)):                # NaN fails this test too
        raise ValueError(f"normal_quantile: p must lie strictly between 0 and 1, got {p}")
    _check_scale(sigma)
    q = np.minimum(p, 1.0 - p)                       # the lower tail's probability
    if np.any(q < TAIL_LIMIT):
        raise ValueError(f"normal_quantile: p = {p[q < TAIL_LIMIT].ravel()[0]:.3g} lies more than about 37 "
                         f"standard deviations out, beyond float64's normal range")
    grid = np.linspace(-37.0, 0.0, 7401)
    z = np.interp(np.log(q), np.log(normal_cdf(grid)), grid)
    for _ in range(3):                               # Newton on f(z) = log cdf(z) - log q, f' = pdf / cdf
        cdf = normal_cdf(z)
        z = z - (np.log(cdf) - np.log(q)) * cdf / normal_pdf(z)
    z = np.where(q == 0.5, 0.0, z)                   # the median, exactly (the fit's cdf(0) is 0.5 to 1e-7 only)
    return mu + sigma * np.where(p < 0.5, z, -z)


TAIL_LIMIT = 1e-300   # normal_cdf(-37): about 5.7e-300


def normal_mle(x):
    """Maximum-likelihood mu and sigma of 1-D samples x (N,):

    mu = 1/N sum_n x_n,   sigma^2 = 1/N sum_n (x_n - mu)^2   (divides by N, not N - 1).
    Returns two 0-d arrays (or NumPy scalars) of x's backend.
    """
    x = _as_array(x)
    _check_samples(x, 1)
    mu = x.mean()
    sigma = get_array_module(x).sqrt(((x - mu) ** 2).mean())
    return mu, sigma


def multivariate_normal_mle(x):
    """Maximum-likelihood mean (D,) and covariance (D, D) of samples x (N, D):

    mu = 1/N sum_n x_n,   Sigma = 1/N sum_n (x_n - mu)(x_n - mu)^T.
    """
    x = _as_array(x)
    _check_samples(x, 2)
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / x.shape[0]
    return mean, covariance


def cholesky(covariance, name="covariance", index_name="index"):
    """Lower-triangular L (..., D, D) with L L^T = covariance (..., D, D).

    Raises ValueError naming `name` (and, for a batch, the first bad matrix as
    "(index_name i)") if a matrix is not square, not symmetric or not positive definite,
    numerically: singular to working precision (a Gaussian collapsed onto a plane, say), where a
    log-density computed from it would be rounding noise, even when the factorisation happens to
    succeed. The test is on the correlation matrix R (C scaled to unit variances), so it does not
    depend on the units: diag(1, 1e-6) is fine in float32 (its factor is exact up to rounding),
    while a 3-D covariance of points on a plane is not, in any units (see _singular).
    """
    xp = get_array_module(covariance)
    if covariance.ndim < 2 or covariance.shape[-1] != covariance.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., D, D), got shape {covariance.shape}")
    asymmetry = xp.abs(covariance - xp.swapaxes(covariance, -1, -2)).max()
    scale = xp.abs(covariance).max()
    if not float(asymmetry) <= 1e-5 * float(scale) + 1e-12:
        raise ValueError(f"{name} is not symmetric (largest |C - C^T| entry {float(asymmetry):.3g})")
    factor = _cholesky_or_none(xp, covariance)
    if factor is None or bool(_singular(xp, covariance, factor).any()):
        raise ValueError(f"{name} is not positive definite{_which_matrix(xp, covariance, index_name)}: "
                         "it is singular or nearly so (a flat or collapsed Gaussian)")
    return factor


def _cholesky_or_none(xp, covariance):
    """The Cholesky factor, or None where the factorisation fails. NumPy raises; CuPy does not check
    (unless asked) and leaves NaN or what the solver stopped at, so the factor itself is checked:
    finite, with a positive diagonal, as every true Cholesky factor has."""
    try:
        factor = xp.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        return None
    valid = xp.isfinite(factor).all() & (xp.diagonal(factor, axis1=-2, axis2=-1) > 0).all()
    return factor if bool(valid) else None


def _singular(xp, covariance, factor):
    """Per matrix (shape ...): True where the correlation matrix R = S^-1 C S^-1 (S = diag(sqrt(C_ii)))
    is singular to working precision: its smallest eigenvalue, estimated from below as
    1 / ||L_R^-1||_F^2, is at most 10 D eps. L_R = S^-1 L, the factor's rows divided by sqrt(C_ii), is
    R's Cholesky factor; lambda_min(R) = 1 / ||L_R^-1||_2^2, and the Frobenius norm is at most sqrt(D)
    times the 2-norm, so the estimate lies between lambda_min(R) / D and lambda_min(R). The factor's
    rounding is that of an exact factor of R + E with |E| of order D eps: an eigenvalue that small
    could be all rounding. Each pivot alone is not enough: with the variables nearly collinear in a
    chain, rounding in the small pivots before it makes the last one 10-100 times too large, and a
    mixture component collapsed onto a plane passed (EM's log-likelihood then fell, by rounding)."""
    dim = covariance.shape[-1]
    variances = xp.diagonal(covariance, axis1=-2, axis2=-1)   # positive: L_ii > 0 was checked
    scaled_factor = factor / xp.sqrt(variances)[..., :, None]
    try:
        inverse = xp.linalg.inv(scaled_factor)
        smallest = 1 / (inverse * inverse).sum(axis=(-2, -1))
    except np.linalg.LinAlgError:   # exactly singular to NumPy (CuPy does not check: inf or NaN, below)
        smallest = xp.zeros(covariance.shape[:-2], dtype=factor.dtype)
    return ~(smallest > 10 * dim * np.finfo(factor.dtype).eps)   # NaN from an overflowing inverse: singular


def multivariate_normal_log_pdf(x, mean, covariance):
    """log N(x | mean, covariance) for x (N, D) or (D,); mean (D,); covariance (D, D).

    Returns (N,), or for x (D,) one number: a NumPy scalar (a 0-d array on CuPy). See
    `gaussian_log_pdf_cholesky` for several
    Gaussians at once.
    """
    x, mean, covariance = _as_array(x), _as_array(mean), _as_array(covariance)
    single = x.ndim == 1
    x2 = x[None, :] if single else x
    if mean.ndim != 1 or covariance.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"mean must be (D,) and covariance (D, D); got {mean.shape} and {covariance.shape}")
    if x2.ndim != 2 or x2.shape[1] != mean.shape[0]:
        raise ValueError(f"x must be (N, {mean.shape[0]}) or ({mean.shape[0]},) to match the mean, "
                         f"got shape {x.shape}")
    log_pdf = gaussian_log_pdf_cholesky(x2, mean[None], cholesky(covariance)[None])[:, 0]
    return log_pdf[0] if single else log_pdf


def multivariate_normal_pdf(x, mean, covariance):
    """N(x | mean, covariance) for x (N, D) or (D,): exp of `multivariate_normal_log_pdf`."""
    log_pdf = multivariate_normal_log_pdf(x, mean, covariance)
    return get_array_module(log_pdf).exp(log_pdf)


def gaussian_log_pdf_cholesky(x, means, scale_trils):
    """log N(x_n | mean_k, L_k L_k^T) for every point and every Gaussian at once.

    x (N, D), means (K, D), scale_trils (K, D, D) lower Cholesky factors.
    Returns (N, K): gaussian_log_pdf_columns on x^T, transposed back.
    """
    xp = get_array_module(x)
    return gaussian_log_pdf_columns(xp.ascontiguousarray(x.T), means, scale_trils).T


def gaussian_log_pdf_columns(x_columns, means, scale_trils):
    """log N(x_n | mean_k, L_k L_k^T) as (K, N), from the points as columns: x_columns (D, N).

    The K whitening maps W_k = L_k^-T are applied to the data in one matrix
    product, (K*D, D) @ (D, points), and the squared lengths of the K whitened
    vectors are sums over groups of D rows, so there is no loop over Gaussians.
    A point so far out that its squared distance overflows (|L_k^-1 (x - mu_k)| above
    about 1e154) gets log density -inf, which is the float value of the true one.
    With the points along the contiguous axis, every pass between the products
    runs one long inner loop (with D = 10 along it, each ran 10-element loops:
    14.9-15.4 ms instead of 8.5-11.1 on 100,000 x 10 points, K = 5, 2026-12-04).
    Points go in blocks of POINTS_PER_BLOCK so that the (K*D, points)
    intermediate stays in the CPU cache.
    """
    xp = get_array_module(x_columns)
    dim, n_points = x_columns.shape
    n_gaussians = means.shape[0]
    centre = means.mean(axis=0)  # shifting x and all means alike keeps x - mu_k, and keeps
    means = means - centre       # W_k^T x - W_k^T mu_k free of cancellation for data far from 0
    whitening = xp.linalg.inv(scale_trils)                                    # W_k^T = L_k^-1, (K, D, D)
    stacked = whitening.reshape(n_gaussians * dim, dim)                       # [W_1^T; ...; W_K^T], (K*D, D)
    shift = xp.einsum("ked,kd->ke", whitening, means).reshape(n_gaussians * dim, 1)  # W_k^T mu_k
    log_det = 2.0 * xp.log(xp.diagonal(scale_trils, axis1=-2, axis2=-1)).sum(axis=1)  # log|Sigma_k|
    log_pdf = xp.empty((n_gaussians, n_points), dtype=stacked.dtype)
    for start in range(0, n_points, POINTS_PER_BLOCK):
        block = slice(start, start + POINTS_PER_BLOCK)
        whitened = stacked @ (x_columns[:, block] - centre[:, None])
        whitened -= shift                                 # L_k^-1 (x_n - mu_k) stacked, one column per point
        whitened *= whitened
        # |L_k^-1 (x_n - mu_k)|^2: the sum over each group of D rows. (A matrix product with a 0/1
        # matrix would take 0 * inf = NaN from the other groups' rows when a distance overflows.)
        squared_distances = whitened.reshape(n_gaussians, dim, -1).sum(axis=1)
        log_pdf[:, block] = -0.5 * squared_distances      # (K, points)
    log_pdf += (-0.5 * (dim * LOG_2PI + log_det))[:, None]   # - D/2 log(2 pi) - 1/2 log|Sigma_k|
    return log_pdf


def _as_array(x):
    """Arrays of any backend as they are; lists, tuples and numbers as float64 NumPy arrays."""
    return x if hasattr(x, "shape") else np.asarray(x, dtype=np.float64)


def _is_scalar(x):
    return isinstance(x, (int, float, np.generic)) or (isinstance(x, np.ndarray) and x.ndim == 0)


def _check_scale(sigma):
    """sigma > 0 (NaN refused too); for an array, every entry (on a device, one host read of a bool)."""
    if _is_scalar(sigma):
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        return
    sigma = _as_array(sigma)
    positive = sigma > 0
    if not bool(positive.all()):
        bad = sigma[~positive]
        raise ValueError(f"sigma must be positive, got an array where {bad.size} of {sigma.size} entries "
                         f"are not (the first: {float(bad[0])})")


def _check_samples(x, ndim):
    shape = "(N,)" if ndim == 1 else "(N, D)"
    if x.ndim != ndim:
        raise ValueError(f"samples must have shape {shape}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("no samples: cannot estimate parameters from an empty array")


def _which_matrix(xp, matrices, index_name):
    """' (index k)' naming the first bad matrix of a batch, '' for one matrix."""
    if matrices.ndim == 2:
        return ""
    flat = matrices.reshape((-1,) + matrices.shape[-2:])
    for index in range(flat.shape[0]):
        factor = _cholesky_or_none(xp, flat[index])
        if factor is None or bool(_singular(xp, flat[index], factor)):
            position = tuple(int(i) for i in np.unravel_index(index, matrices.shape[:-2]))
            return f" ({index_name} {position[0] if len(position) == 1 else position})"
    return ""
