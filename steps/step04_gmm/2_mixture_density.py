"""Step 4.2 - The Gaussian mixture: a weighted sum of normals.

Step 4.1 showed that one normal cannot have two peaks. A Gaussian mixture
model (GMM) adds K normals, each with its own mean and covariance, weighted
by mixing coefficients phi_k >= 0 that sum to 1 (so the total still
integrates to 1):

    p(x) = sum_k phi_k N(x | mu_k, Sigma_k)

Read as a story it has a hidden (latent) variable z: first pick which
component to use, p(z = k) = phi_k, then draw x from that component,
p(x | z = k) = N(x | mu_k, Sigma_k); p(x) = sum_k p(z = k) p(x | z = k).

Here the parameters are set by hand (the values EM will find in step 5,
rounded). We compute the mixture density in 1-D (eruption durations) and
2-D, check that it integrates to 1, check the 2-D density by hand against
the library's, `zero.mixture.GaussianMixture` given the same parameters, and
compare the mixture's log-likelihood on the data with the single normal's.

    python steps/step04_gmm/2_mixture_density.py [--quick] [--out OUT] [--show]
"""
import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.datasets import load_old_faithful
from zero.distributions import multivariate_normal_log_pdf, multivariate_normal_mle, multivariate_normal_pdf, normal_pdf
from zero.mixture import GaussianMixture
from zero.plot import figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters: the mixture, by hand -------------------------------------------------------
GRID = 80 if args.quick else 200
WEIGHTS = np.array([0.36, 0.64])                          # phi_k
MEANS = np.array([[2.0, 54.5], [4.3, 80.0]])              # mu_k: (eruption, waiting) minutes
COVARIANCES = np.array([[[0.07, 0.44], [0.44, 33.7]],     # Sigma_k
                        [[0.17, 0.94], [0.94, 36.0]]])


def mixture_pdf(x):
    """p(x) = sum_k phi_k N(x | mu_k, Sigma_k) for points x (N, 2)."""
    return sum(WEIGHTS[k] * multivariate_normal_pdf(x, MEANS[k], COVARIANCES[k]) for k in range(len(WEIGHTS)))


data = load_old_faithful().astype(np.float64)

# ---- 1-D: the eruption durations alone (the first coordinate of each component) ------------------------
durations = np.linspace(1.0, 6.0, 500)
components = [WEIGHTS[k] * normal_pdf(durations, MEANS[k, 0], np.sqrt(COVARIANCES[k, 0, 0])) for k in range(2)]
mixture_1d = components[0] + components[1]
area = mixture_1d.sum() * (durations[1] - durations[0])       # sum_i p(x_i) dx
print(f"1-D mixture: area under p(x) on [1, 6] = {area:.4f}")
check(abs(area - 1) < 1e-3, f"the 1-D mixture's area on [1, 6] is {area:.6f}, not 1")   # the tails outside hold 4e-5

# ---- 2-D: the full mixture -------------------------------------------------------------------------
xs = np.linspace(1.0, 6.0, GRID)
ys = np.linspace(30.0, 110.0, GRID)
grid_x, grid_y = np.meshgrid(xs, ys)
points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)   # (GRID * GRID, 2), as in step 3.2
density = mixture_pdf(points).reshape(grid_x.shape)
volume = density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])   # sum_ij p(x_ij) dx1 dx2
print(f"2-D mixture: volume under p(x) on the grid = {volume:.4f}")
check(abs(volume - 1) < 1e-3, f"the 2-D mixture's volume on the grid is {volume:.6f}, not 1")
library = GaussianMixture.from_parameters(WEIGHTS, MEANS, COVARIANCES)   # the same mixture, as steps 5 on hold it
library_density = np.exp(library.log_prob(points)).reshape(grid_x.shape)
relative_difference = (np.abs(density - library_density) / library_density).max()
print(f"2-D mixture: largest relative difference to zero.mixture.GaussianMixture on the grid: "
      f"{relative_difference:.1e}")
check(relative_difference < 1e-9,
      f"the 2-D mixture by hand and zero.mixture.GaussianMixture differ by up to {relative_difference:.2e} of p(x)")

mixture_score = np.log(mixture_pdf(data)).mean()       # 1/N sum_n log p(x_n)
mean, covariance = multivariate_normal_mle(data)
single_score = multivariate_normal_log_pdf(data, mean, covariance).mean()
print(f"mean log-likelihood on Old Faithful: mixture {mixture_score:.4f}, best single normal {single_score:.4f}")

fig, (ax_1d, ax_contour) = plt.subplots(1, 2, figsize=(11, 4.5))
ax_1d.hist(data[:, 0], bins=25, density=True, alpha=0.4, color="gray", label="data")
for k, curve in enumerate(components):
    ax_1d.plot(durations, curve, lw=5, alpha=0.5, label=f"phi_{k + 1} N(x | mu_{k + 1}, sigma_{k + 1})")
ax_1d.plot(durations, mixture_1d, "k", lw=1, label="p(x): their sum")
ax_1d.set(title="a 1-D mixture of two normals", xlabel="eruption (min)", ylabel="density")
ax_1d.legend(fontsize=8)
ax_contour.scatter(data[:, 0], data[:, 1], s=6, color="gray", alpha=0.6)
ax_contour.contour(grid_x, grid_y, density, levels=10, cmap="viridis")
ax_contour.set(title="2-D mixture density over Old Faithful", xlabel="eruption (min)", ylabel="waiting (min)")
save(fig, folder, "mixture_density")

surface = plt.figure(figsize=(6, 5))
ax = surface.add_subplot(projection="3d")
ax.plot_surface(grid_x, grid_y, density, cmap="viridis")
ax.set(title="p(x) of the mixture", xlabel="eruption (min)", ylabel="waiting (min)")
save(surface, folder, "mixture_surface")
show()
