"""Step 3.2 - The multivariate normal density.

The normal of step 1 describes one number. For a vector x of D numbers, the
multivariate normal has a mean vector mu (D,) and a covariance matrix
Sigma (D, D), whose diagonal holds the variances and whose off-diagonal
entries say how the variables move together:

    N(x | mu, Sigma) = 1 / sqrt((2 pi)^D |Sigma|) * exp(-1/2 (x - mu)^T Sigma^-1 (x - mu))

With D = 1 and Sigma = sigma^2 this is the formula of step 1. We write it as
printed, compare with `zero.distributions.multivariate_normal_pdf` (which
uses the Cholesky factor of Sigma and log space, for speed and for far-away
points), and draw a 2-D normal as a 3-D surface and as contour lines for a
few covariances.

    python steps/step03_multivariate_normal/2_density.py [--quick] [--out OUT] [--show]
"""
import numpy as np
from matplotlib.ticker import MaxNLocator

from zero.cli import check, out_dir, step_parser
from zero.distributions import multivariate_normal_pdf
from zero.plot import figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
GRID = 60 if args.quick else 150
MEAN = np.array([0.5, -0.2])
COVARIANCES = {
    "round: Sigma = I": np.array([[1.0, 0.0], [0.0, 1.0]]),
    "stretched: variances 2 and 0.5": np.array([[2.0, 0.0], [0.0, 0.5]]),
    "correlated: covariance 0.8": np.array([[1.0, 0.8], [0.8, 1.0]]),
}


def multivariate_normal(x, mu, covariance):
    """The density as printed, for one point x (D,)."""
    dim = len(x)
    diff = x - mu
    normaliser = 1.0 / np.sqrt((2 * np.pi) ** dim * np.linalg.det(covariance))  # 1 / sqrt((2 pi)^D |Sigma|)
    return normaliser * np.exp(-0.5 * diff @ np.linalg.inv(covariance) @ diff)  # exp(-1/2 d^T Sigma^-1 d)


covariance = COVARIANCES["correlated: covariance 0.8"]
print("N(x | mu, Sigma) for the correlated Sigma:")
for point in [MEAN, np.array([1.5, 0.8]), np.array([1.5, -1.2])]:
    by_formula, library = multivariate_normal(point, MEAN, covariance), multivariate_normal_pdf(point, MEAN, covariance)
    print(f"  x = {point}: by the formula {by_formula:.6f}, zero.distributions {library:.6f}")
    check(np.isclose(by_formula, library, rtol=1e-9, atol=0),
          f"x = {point}: the formula gives {by_formula:.12f}, zero.distributions {library:.12f}")
print("  (the last two are equally far from mu, but only [1.5, 0.8] lies along the correlation)")

xs = np.linspace(MEAN[0] - 3.5, MEAN[0] + 3.5, GRID)
ys = np.linspace(MEAN[1] - 3.5, MEAN[1] + 3.5, GRID)
grid_x, grid_y = np.meshgrid(xs, ys)
points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)  # (GRID * GRID, 2): the density of all at once

densities = {name: multivariate_normal_pdf(points, MEAN, covariance).reshape(grid_x.shape)
             for name, covariance in COVARIANCES.items()}
# one set of contour levels for all panels, so that a colour means the same density in each:
# round numbers between 0 and the highest peak
highest = max(density.max() for density in densities.values())
levels = MaxNLocator(nbins=10).tick_values(0, highest)
levels = levels[(levels > 0) & (levels < highest)]

surface_fig = plt.figure(figsize=(5 * len(COVARIANCES), 4.5))
contour_fig, contour_axes = plt.subplots(1, len(COVARIANCES), figsize=(4.5 * len(COVARIANCES), 4.5),
                                         layout="constrained")
for index, (name, density) in enumerate(densities.items()):
    volume = density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])  # sum of p(x) dx1 dx2; < 1: the square cuts the tails
    print(f"{name:32s} peak {density.max():.4f}, volume over the plotted square {volume:.4f}")
    # below 1 (the square cuts the tails) by at most 1.3% here: the stretched x1's tails beyond 3.5 / sqrt(2) stds
    check(0.98 < volume < 1, f"{name}: the volume over the square is {volume:.6f}, not just below 1")
    ax = surface_fig.add_subplot(1, len(COVARIANCES), index + 1, projection="3d")
    ax.plot_surface(grid_x, grid_y, density, cmap="viridis")
    ax.set(title=name, xlabel="x1", ylabel="x2")
    ax.set_zlabel("p(x)", labelpad=12)   # the padding keeps it off the tick labels
    ax = contour_axes[index]
    contours = ax.contour(grid_x, grid_y, density, levels=levels)
    ax.plot(*MEAN, "r+", markersize=12)
    ax.set(title=name, xlabel="x1", ylabel="x2", aspect="equal")
contour_fig.colorbar(contours, ax=contour_axes, label="p(x)", shrink=0.8)
save(surface_fig, folder, "surfaces")
save(contour_fig, folder, "contours")
show()
