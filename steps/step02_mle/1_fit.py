"""Step 2.1 - Maximum likelihood: fitting a normal to real heights.

Step 1 had the normal distribution but chose mu and sigma by hand. Real data
comes without parameters: which normal describes the heights of 507 adults
(datasets/height_weight.txt, men and women together)? Maximum likelihood
answers: choose the parameters that make the observed data most probable.
For independent samples the log-likelihood is

    log p(D | mu, sigma) = sum_n log N(x_n | mu, sigma)
                         = -N/2 log(2 pi sigma^2) - 1/(2 sigma^2) sum_n (x_n - mu)^2

and setting its derivatives to zero gives a closed form:

    mu_hat = 1/N sum_n x_n,   sigma_hat^2 = 1/N sum_n (x_n - mu_hat)^2

(the sample mean and the sample variance dividing by N). We compute it by
hand, compare with `zero.distributions.normal_mle`, check on a grid that no
other (mu, sigma) scores higher, and draw the fitted density over the histogram.

    python steps/step02_mle/1_fit.py [--quick] [--out OUT] [--show]
"""
import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.datasets import load_heights
from zero.distributions import normal_log_pdf, normal_mle, normal_pdf
from zero.plot import bin_edges, figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
BIN_WIDTH = 5.0   # cm; narrower bins show spikes: many heights were measured in whole inches (datasets/README.md)
GRID_POINTS = 81 if args.quick else 201   # (mu, sigma) grid for the log-likelihood surface

# ---- the data -----------------------------------------------------------------------------------
heights = load_heights().astype(np.float64)  # (507,) cm
n = len(heights)
print(f"{n} heights: min {heights.min():.1f} cm, max {heights.max():.1f} cm")

# ---- maximum likelihood, by hand and from the library -------------------------------------------
mu = heights.sum() / n                                # mu_hat = 1/N sum_n x_n
sigma = np.sqrt(((heights - mu) ** 2).sum() / n)      # sigma_hat = sqrt(1/N sum_n (x_n - mu_hat)^2)
library_mu, library_sigma = normal_mle(heights)
print(f"MLE by hand:           mu = {mu:.3f} cm, sigma = {sigma:.3f} cm")
print(f"zero.distributions:    mu = {library_mu:.3f} cm, sigma = {library_sigma:.3f} cm")
check(np.isclose(mu, library_mu, rtol=1e-9, atol=0) and np.isclose(sigma, library_sigma, rtol=1e-9, atol=0),
      f"MLE by hand (mu {mu:.9f}, sigma {sigma:.9f}) and normal_mle ({library_mu:.9f}, {library_sigma:.9f}) differ")
best_log_likelihood = normal_log_pdf(heights, mu, sigma).sum()  # sum_n log N(x_n | mu, sigma)
print(f"log-likelihood at the MLE: {best_log_likelihood:.2f} ({best_log_likelihood / n:.4f} per height)")

# ---- no other (mu, sigma) on a grid does better ---------------------------------------------------
mus = np.linspace(166.0, 176.0, GRID_POINTS)
sigmas = np.linspace(7.0, 12.0, GRID_POINTS)
grid_mu, grid_sigma = np.meshgrid(mus, sigmas)
# one row of the grid (one sigma, every mu) at a time: all rows at once would hold 507 x 201 x 201 numbers
log_likelihood = np.stack([normal_log_pdf(heights[:, None], mus, s).sum(axis=0) for s in sigmas])
row, column = np.unravel_index(log_likelihood.argmax(), log_likelihood.shape)
print(f"best point of a {GRID_POINTS} x {GRID_POINTS} grid: mu = {grid_mu[row, column]:.3f}, "
      f"sigma = {grid_sigma[row, column]:.3f}, log-likelihood {log_likelihood[row, column]:.2f}")
check(log_likelihood.max() <= best_log_likelihood + 1e-9 * abs(best_log_likelihood),
      f"a grid point scores {log_likelihood.max():.9f}, above the MLE's {best_log_likelihood:.9f}")

fig, ax = plt.subplots(figsize=(6, 4.5))
contours = ax.contourf(grid_mu, grid_sigma, log_likelihood, levels=30, cmap="viridis")
ax.plot(mu, sigma, "r*", markersize=14, label="closed-form MLE")
fig.colorbar(contours, label="log-likelihood")
ax.set(title="log p(heights | mu, sigma)", xlabel="mu (cm)", ylabel="sigma (cm)")
ax.legend()
save(fig, folder, "log_likelihood")

# ---- the fitted density over the histogram ------------------------------------------------------------
grid = np.linspace(heights.min() - 5, heights.max() + 5, 400)
fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(heights, bins=bin_edges(heights, BIN_WIDTH), density=True, alpha=0.6, label="507 heights")
ax.plot(grid, normal_pdf(grid, mu, sigma), "r", label=f"N(x | {mu:.1f}, {sigma:.1f})")
ax.set(title="Heights and the maximum-likelihood normal", xlabel="height (cm)", ylabel="density")
ax.legend()
save(fig, folder, "fitted_normal")
show()
