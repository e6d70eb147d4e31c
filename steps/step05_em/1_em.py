"""Step 5.1 - The EM algorithm, written out.

Step 4 set the mixture's parameters by hand. Fitting them by maximum
likelihood, as in steps 2 and 3, has no closed form any more: the
log-likelihood

    log p(D) = sum_n log sum_k phi_k N(x_n | mu_k, Sigma_k)

has a sum inside the log. If we knew which component produced each point
(the latent z of step 4.3), each component would be a plain step-3 fit on
its own points. EM (expectation-maximisation) replaces that missing
knowledge by its expectation under the current parameters, and alternates:

  E-step: responsibilities, the posterior probability that component k produced x_n,
          r_nk = p(z = k | x_n) = phi_k N(x_n | mu_k, Sigma_k) / sum_j phi_j N(x_n | mu_j, Sigma_j)
  M-step: step 3's maximum likelihood with every point counted r_nk times,
          N_k = sum_n r_nk,  phi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
          Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k

Each E-step builds a lower bound of log p(D) that touches it at the current
parameters (the ELBO, which step 7 meets again); each M-step maximises that
bound, so the log-likelihood can never decrease. We run EM by hand on Old
Faithful, print and plot the log-likelihood per iteration, and check the
result against `zero.mixture.GaussianMixture`, the tested library version.

    python steps/step05_em/1_em.py [--quick] [--out OUT] [--show]
"""
import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.datasets import load_old_faithful
from zero.distributions import multivariate_normal_log_pdf
from zero.mixture import GaussianMixture, logsumexp
from zero.plot import figures, plane_grid, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
K = 2
MAX_ITER = 100
TOL = 1e-6                 # stop when the mean log-likelihood changes by less than this
GRID = 80 if args.quick else 200
# a poor start in likelihood: equal weights, both means at duration 0 (minutes from every eruption), round
# unit covariances; the two means do already split the data by waiting time, so EM needs few iterations
INITIAL_WEIGHTS = np.array([0.5, 0.5])
INITIAL_MEANS = np.array([[0.0, 50.0], [0.0, 100.0]])
INITIAL_COVARIANCES = np.array([np.eye(2), np.eye(2)])

data = load_old_faithful().astype(np.float64)   # (N, 2): eruption minutes, waiting minutes
n, dim = data.shape
weights, means, covariances = INITIAL_WEIGHTS.copy(), INITIAL_MEANS.copy(), INITIAL_COVARIANCES.copy()


def log_joint(weights, means, covariances):
    """log phi_k + log N(x_n | mu_k, Sigma_k) for all points and components: (N, K)."""
    return np.stack([np.log(weights[k]) + multivariate_normal_log_pdf(data, means[k], covariances[k])
                     for k in range(K)], axis=1)


history = []
previous = -np.inf
for iteration in range(1, MAX_ITER + 1):
    # ---- E-step, in log space: r_nk = exp(log phi_k N_k(x_n) - log sum_j phi_j N_j(x_n)) ------------
    joint = log_joint(weights, means, covariances)
    # log p(x_n) = log sum_k exp(a_nk), a = joint, taken as m + log sum_k exp(a_nk - m) with m = max_k a_nk.
    # A safeguard for starts that need it: for a point far from every component each exp(a_nk) underflows to 0
    # (in float64 once a_nk is below about -745) and r_nk would be 0/0. This start does not: its point farthest
    # from both components, (4.8, 75), has max_k a_nk = -326.6 (exp 1.5e-142), and a plain E-step, exp(a_nk)
    # divided by its sum over k, gives the same responsibilities within 1e-15 in every iteration.
    log_evidence = logsumexp(joint, axis=1)         # log p(x_n), (N,)
    resp = np.exp(joint - log_evidence[:, None])    # r_nk, (N, K); rows sum to 1
    history.append(log_evidence.mean())             # mean log-likelihood of the current parameters
    print(f"iteration {iteration:3d}: mean log-likelihood {history[-1]:.6f}")
    # ---- M-step: weighted maximum likelihood ----------------------------------------------------
    counts = resp.sum(axis=0)                       # N_k = sum_n r_nk
    weights = counts / n                            # phi_k = N_k / N
    means = resp.T @ data / counts[:, None]         # mu_k = sum_n r_nk x_n / N_k
    for k in range(K):
        centred = data - means[k]
        covariances[k] = (resp[:, k, None] * centred).T @ centred / counts[k]  # Sigma_k
    if abs(history[-1] - previous) < TOL:
        break
    previous = history[-1]

steps = np.diff(history)
converged = len(steps) > 0 and abs(steps[-1]) < TOL
outcome = "converged" if converged else f"stopped (not converged: MAX_ITER = {MAX_ITER})"
if len(steps) == 0:
    print(f"{outcome} after 1 iteration: no change between iterations to check")
else:
    # EM never decreases the log-likelihood; float64 rounding can show a change of about -1e-15 near the end
    rounding = 1e-12 * max(1.0, abs(history[-1]))
    print(f"{outcome} after {len(history)} iterations; smallest change between iterations {steps.min():.2e} "
          + ("(never negative beyond rounding: EM does not decrease the log-likelihood)" if steps.min() >= -rounding
             else "(negative: a decrease, which EM cannot make: check the updates)"))
    check(steps.min() >= -rounding, f"the mean log-likelihood fell by {-steps.min():.2e} from iteration "
          f"{steps.argmin() + 1} to {steps.argmin() + 2}: EM never decreases it")
order = np.argsort(means[:, 0])
for k in order:
    print(f"component: phi = {weights[k]:.3f}, mu = ({means[k, 0]:.3f}, {means[k, 1]:.2f}), "
          f"Sigma = {np.round(covariances[k], 3).tolist()}")

# ---- the same fit with the library, from the same start ---------------------------------------------
library = GaussianMixture(K, reg_covar=0.0, tol=TOL, max_iter=MAX_ITER).fit(
    data, INITIAL_WEIGHTS, INITIAL_MEANS, INITIAL_COVARIANCES)
print(f"zero.mixture.GaussianMixture from the same start: mean log-likelihood {library.score(data):.6f}, "
      f"largest difference in the means {np.abs(library.means - means).max():.1e} min")
check(np.allclose(library.means, means, rtol=0, atol=1e-9),
      f"EM by hand ends with the means {means.tolist()}, zero.mixture.GaussianMixture with {library.means.tolist()}")

# ---- figures: the log-likelihood per iteration, the fitted mixture ---------------------------------------
grid_x, grid_y, points = plane_grid((1.0, 6.0), (35.0, 105.0), GRID)
fitted = GaussianMixture.from_parameters(weights, means, covariances)   # the mixture EM by hand ended with
density = np.exp(fitted.log_prob(points))                               # p(x) = sum_k phi_k N(x | mu_k, Sigma_k)
labels = resp.argmax(axis=1)

fig, (ax_history, ax_fit) = plt.subplots(1, 2, figsize=(11, 4.5))
ax_history.plot(np.arange(2, len(history) + 1), history[1:], "o-", markersize=3)  # iteration 1 is far below
ax_history.set(title=f"EM: mean log-likelihood (iteration 1: {history[0]:.1f}, off the scale)",
               xlabel="iteration", ylabel="1/N log p(D)")
for k in range(K):
    ax_fit.scatter(data[labels == k, 0], data[labels == k, 1], s=8, alpha=0.7, label=f"most responsible: {k + 1}")
ax_fit.contour(grid_x, grid_y, density.reshape(grid_x.shape), levels=10, colors="k", linewidths=0.8)
ax_fit.set(title="fitted mixture over Old Faithful", xlabel="eruption (min)", ylabel="waiting (min)")
ax_fit.legend(loc="upper left")
save(fig, folder, "em_fit")
show()
