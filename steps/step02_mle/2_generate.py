"""Step 2.2 - Generating new heights from the fitted model.

Step 2.1 fitted N(mu, sigma) to 507 heights. A fitted distribution is a
generative model: it can produce as many new heights as we like,
x = mu + sigma * eps with eps ~ N(0, 1). If the model is good, generated
heights look like real ones; comparing the two histograms (and a few
statistics) is the simplest check of a generative model, and the same check
we will apply to images in the last steps.

    python steps/step02_mle/2_generate.py [--quick] [--out OUT] [--show] [--seed SEED]
"""
import numpy as np

from zero.cli import check_within_standard_errors, out_dir, step_parser
from zero.datasets import load_heights
from zero.distributions import normal_mle
from zero.plot import bin_edges, figures, save, show

args = step_parser(__doc__).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
N_GENERATED = 10_000
BIN_WIDTH = 5.0   # cm; narrower bins show spikes: many heights were measured in whole inches (datasets/README.md)
rng = np.random.default_rng(args.seed)

heights = load_heights().astype(np.float64)
mu, sigma = normal_mle(heights)
print(f"fitted model: N(mu = {mu:.2f} cm, sigma = {sigma:.2f} cm)")

# ---- sampling ---------------------------------------------------------------------------------
generated = mu + sigma * rng.standard_normal(N_GENERATED)   # x = mu + sigma eps, eps ~ N(0, 1)
print(f"{'':10} {'real':>8} {'generated':>10}")
for name, statistic in [("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max),
                        ("5%", lambda v: np.percentile(v, 5)), ("95%", lambda v: np.percentile(v, 95))]:
    print(f"{name:10} {statistic(heights):8.2f} {statistic(generated):10.2f}")
print("(with 20 times more samples the generated extremes reach further than the 507 real ones)")
# the model's mean and std are mu and sigma; the generated heights' mean has the standard error sigma / sqrt(N),
# their std about sigma / sqrt(2 N)
check_within_standard_errors("the generated heights' mean and std", [generated.mean(), generated.std()], [mu, sigma],
                             [sigma / np.sqrt(N_GENERATED), sigma / np.sqrt(2 * N_GENERATED)])

fig, (ax_real, ax_both) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
bins = bin_edges(np.concatenate([heights, generated]), BIN_WIDTH)   # one set of bins that holds both
ax_real.hist(heights, bins=bins, alpha=0.7, color="C0")
ax_real.set(title=f"{len(heights)} real heights", xlabel="height (cm)", ylabel="count")
ax_both.hist(heights, bins=bins, density=True, alpha=0.5, label="real")
ax_both.hist(generated, bins=bins, density=True, alpha=0.5, label="generated")
ax_both.set(title=f"real vs {N_GENERATED} generated (normalised)", xlabel="height (cm)", ylabel="density")
ax_both.legend()
save(fig, folder, "real_vs_generated")
show()
