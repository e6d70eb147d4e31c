"""Step 3.3 - Maximum likelihood in matrix form: height and weight together.

Step 2 fitted a normal to heights alone, so it knew nothing about weight,
and two separate normals for height and weight would miss that they rise
together. The multivariate normal of step 3.2 captures that through its
covariance. Its maximum-likelihood estimate has the same closed form as in
one dimension, written with vectors:

    mu_hat = 1/N sum_n x_n,     Sigma_hat = 1/N sum_n (x_n - mu_hat)(x_n - mu_hat)^T

We fit it to the 507 (height, weight) pairs, compare with two independent
normals, and draw the fitted contours over the scatter plot.

    python steps/step03_multivariate_normal/3_fit.py [--quick] [--out OUT] [--show] [--seed SEED]
"""
import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.datasets import load_height_weight
from zero.distributions import cholesky, multivariate_normal_log_pdf, multivariate_normal_mle, multivariate_normal_pdf
from zero.plot import figures, plane_grid, save, show

args = step_parser(__doc__).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
GRID = 80 if args.quick else 200
N_GENERATED = 507

data = load_height_weight().astype(np.float64)   # (507, 2): height cm, weight kg
n = len(data)

# ---- MLE by hand and from the library ---------------------------------------------------------
mean = data.sum(axis=0) / n                     # mu_hat = 1/N sum_n x_n
centred = data - mean                           # rows x_n - mu_hat
covariance = centred.T @ centred / n            # Sigma_hat = 1/N sum_n (x_n - mu_hat)(x_n - mu_hat)^T, as one product
library_mean, library_covariance = multivariate_normal_mle(data)
print(f"mu_hat    = {np.round(mean, 3)} (height cm, weight kg)")
print(f"Sigma_hat =\n{np.round(covariance, 3)}")
print(f"largest difference to zero.distributions.multivariate_normal_mle: in mu_hat "
      f"{np.abs(mean - library_mean).max():.1e}, in Sigma_hat {np.abs(covariance - library_covariance).max():.1e}")
check(np.allclose(mean, library_mean, rtol=1e-9, atol=0)
      and np.allclose(covariance, library_covariance, rtol=1e-9, atol=0),
      f"MLE by hand\n{mean}\n{covariance}\nand zero.distributions\n{library_mean}\n{library_covariance}\ndiffer")
correlation = covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1])
print(f"correlation of height and weight: {correlation:.3f}")

joint = multivariate_normal_log_pdf(data, mean, covariance).mean()
independent = multivariate_normal_log_pdf(data, mean, np.diag(np.diag(covariance))).mean()  # Sigma without off-diagonal
print(f"mean log-likelihood per person: correlated normal {joint:.4f}, independent normals {independent:.4f}")
# the independent normals are one of the covariances the MLE chose from: they cannot score higher
check(joint >= independent, f"independent normals score {independent:.6f}, above the MLE's {joint:.6f}")

# ---- the fitted contours over the data, and data generated from the model -------------------------------
grid_x, grid_y, points = plane_grid((data[:, 0].min() - 5, data[:, 0].max() + 5),     # height (cm)
                                    (data[:, 1].min() - 10, data[:, 1].max() + 10), GRID)  # weight (kg)
density = multivariate_normal_pdf(points, mean, covariance).reshape(grid_x.shape)
# new data by step 3.1's fact: z ~ N(0, I) and x = mu + L z has covariance L L^T = Sigma (L: Cholesky factor)
scale_tril = cholesky(covariance)
noise = np.random.default_rng(args.seed).standard_normal((N_GENERATED, 2))   # rows z_n ~ N(0, I)
generated = mean + noise @ scale_tril.T                                        # rows x_n = mu + L z_n

fig, (ax_fit, ax_new) = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True, sharey=True)
ax_fit.scatter(data[:, 0], data[:, 1], s=6, alpha=0.6, label="data")
ax_fit.contour(grid_x, grid_y, density, levels=8, colors="k", linewidths=0.8)
ax_fit.set(title="fitted 2-D normal over 507 adults", xlabel="height (cm)", ylabel="weight (kg)")
ax_fit.legend()
ax_new.scatter(generated[:, 0], generated[:, 1], s=6, alpha=0.6, color="C1", label="generated")
ax_new.contour(grid_x, grid_y, density, levels=8, colors="k", linewidths=0.8)
ax_new.set(title=f"{N_GENERATED} points generated from it", xlabel="height (cm)")
ax_new.legend()
save(fig, folder, "fitted_contours")
show()
