"""Step 5.2 - A fitted mixture as a generative model.

Step 5.1 wrote EM out by hand. From here on the course uses the tested
library version, `zero.mixture.GaussianMixture`: the same E- and M-steps,
vectorised over points and components, on NumPy or on the GPU, starting
from the data itself (K data points as means, drawn so that they are likely
far apart: k-means++) instead of hand-chosen parameters. With the mixture
fitted we do what a generative model is for: score data (the mean
log-likelihood, to compare with step 4's single normal) and generate new
eruptions by ancestral sampling (step 4.3), which should be hard to tell
from the real ones.

The limit that step 6 onwards removes: every component is a normal, and
the number of them grows with the complexity of the data. Images would need
absurdly many; neural networks will give far more flexible p(x).

    python steps/step05_em/2_generate.py [--quick] [--out OUT] [--show] [--seed SEED]
"""
import numpy as np
from matplotlib.ticker import MaxNLocator

from zero.cli import out_dir, step_parser
from zero.datasets import load_old_faithful
from zero.distributions import multivariate_normal_log_pdf, multivariate_normal_mle
from zero.mixture import GaussianMixture
from zero.plot import figures, plane_grid, save, show

args = step_parser(__doc__).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
K = 2
TOL = 1e-6
MAX_ITER = 200
GRID = 80 if args.quick else 200

data = load_old_faithful()   # (272, 2) float32

gmm = GaussianMixture(K, tol=TOL, max_iter=MAX_ITER, seed=args.seed, verbose=True).fit(data)
print(f"converged: {gmm.converged} after {gmm.n_iter} iterations")
for k in np.argsort(gmm.means[:, 0]):
    print(f"component: phi = {gmm.weights[k]:.3f}, mu = ({gmm.means[k, 0]:.3f}, {gmm.means[k, 1]:.2f})")

mean, covariance = multivariate_normal_mle(data.astype(np.float64))
single = multivariate_normal_log_pdf(data.astype(np.float64), mean, covariance).mean()
print(f"mean log-likelihood: mixture {gmm.score(data):.4f}, single normal (step 4.1) {single:.4f}")

# ---- new eruptions from the fitted model -------------------------------------------------------------
generated, labels = gmm.sample(len(data), seed=args.seed)   # z ~ Categorical(phi), x ~ N(mu_z, Sigma_z)
print(f"{'':22} {'real':>14} {'generated':>14}")
for name, statistic in [("mean", lambda v: v.mean(axis=0)), ("std", lambda v: v.std(axis=0))]:
    real, new = statistic(data), statistic(generated)
    print(f"{name + ' (eruption, wait)':22} {real[0]:6.2f} {real[1]:7.2f} {new[0]:6.2f} {new[1]:7.2f}")
real_share = np.mean(data[:, 0] < 3)
spread = np.sqrt(real_share * (1 - real_share) / len(generated))   # std of a share of N draws (step 4.3)
print(f"share of short eruptions (< 3 min): real {real_share:.3f}, generated {np.mean(generated[:, 0] < 3):.3f} "
      f"(a share of {len(generated)} draws varies by about {spread:.3f})")

grid_x, grid_y, points = plane_grid((1.0, 6.0), (35.0, 105.0), GRID)
density = np.exp(gmm.log_prob(points)).reshape(grid_x.shape)

fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
axes[0].plot(np.arange(1, len(gmm.log_likelihood_history) + 1), gmm.log_likelihood_history, "o-", markersize=3)
axes[0].set(title="EM from a data-based start", xlabel="iteration", ylabel="mean log-likelihood")
axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))   # iterations are whole numbers
axes[1].scatter(data[:, 0], data[:, 1], s=8, color="gray")
axes[1].contour(grid_x, grid_y, density, levels=10, colors="k", linewidths=0.8)
axes[1].set(title="real eruptions and the fitted mixture", xlabel="eruption (min)", ylabel="waiting (min)")
axes[2].scatter(generated[:, 0], generated[:, 1], s=8, color="C1")
axes[2].contour(grid_x, grid_y, density, levels=10, colors="k", linewidths=0.8)
axes[2].set(title=f"{len(generated)} generated eruptions", xlabel="eruption (min)",
            xlim=axes[1].get_xlim(), ylim=axes[1].get_ylim())
save(fig, folder, "generated")
show()
