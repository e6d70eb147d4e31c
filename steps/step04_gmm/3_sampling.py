"""Step 4.3 - Generating data from a mixture: ancestral sampling.

Step 4.2 evaluated the mixture density p(x). To generate new eruptions we
follow the model's story in order, parents before children (hence
"ancestral"):

    1. z ~ Categorical(phi_1, ..., phi_K)      pick a component
    2. x ~ N(mu_z, Sigma_z)                    draw from that component

Every generated x comes with the z that produced it, which real data never
tells us: step 5 has to infer it. Here we sample with the hand-set
parameters of step 4.2 and show the samples, coloured by z, beside the data.

    python steps/step04_gmm/3_sampling.py [--quick] [--out OUT] [--show] [--seed SEED]
"""
import numpy as np

from zero.cli import out_dir, step_parser
from zero.datasets import load_old_faithful
from zero.plot import figures, save, show

args = step_parser(__doc__).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters: the same mixture as step 4.2 (written out again, so that this script reads alone) ----
N_SAMPLES = 1_000
WEIGHTS = np.array([0.36, 0.64])
MEANS = np.array([[2.0, 54.5], [4.3, 80.0]])
COVARIANCES = np.array([[[0.07, 0.44], [0.44, 33.7]],
                        [[0.17, 0.94], [0.94, 36.0]]])
rng = np.random.default_rng(args.seed)

data = load_old_faithful()

# ---- ancestral sampling, one point at a time (as the story is told) -----------------------------------
for _ in range(5):
    z = rng.choice(len(WEIGHTS), p=WEIGHTS)                     # z ~ Categorical(phi)
    x = rng.multivariate_normal(MEANS[z], COVARIANCES[z])       # x ~ N(mu_z, Sigma_z)
    print(f"z = {z + 1}: x = ({x[0]:.2f} min, {x[1]:.1f} min)")

# ---- the same, for all samples at once ---------------------------------------------------------
labels = rng.choice(len(WEIGHTS), size=N_SAMPLES, p=WEIGHTS)           # (N,) component of each sample
noise = rng.standard_normal((N_SAMPLES, 2))                            # eps ~ N(0, I)
scale_trils = np.linalg.cholesky(COVARIANCES)                          # L_k with L_k L_k^T = Sigma_k
# x = mu_z + L_z eps (step 3.1's fact); zero.mixture.GaussianMixture.sample, used from step 5 on, is this line
samples = MEANS[labels] + np.einsum("nij,nj->ni", scale_trils[labels], noise)
# The share of samples from component k is itself random: its std over N draws is sqrt(phi (1 - phi) / N),
# and a share lands within 2 of those stds of phi_k in about 96 runs out of 100, outside in about 4 (95.6 and
# 4.4 for 1000 draws and phi = 0.36, from the binomial distribution of the count; try other --seed values).
for k in range(len(WEIGHTS)):
    members = samples[labels == k]
    share = len(members) / N_SAMPLES
    spread = np.sqrt(WEIGHTS[k] * (1 - WEIGHTS[k]) / N_SAMPLES)
    distance = (share - WEIGHTS[k]) / spread   # in stds of the share
    band = "within 2 stds" if abs(distance) <= 2 else "outside 2 stds, as in about 4 runs out of 100"
    print(f"component {k + 1}: {len(members)} samples, share {share:.3f} (phi = {WEIGHTS[k]}: "
          f"{distance:+.2f} stds of the share, {spread:.3f}: {band}), "
          f"mean ({members[:, 0].mean():.2f}, {members[:, 1].mean():.1f})")

fig, (ax_data, ax_samples) = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True, sharey=True)
ax_data.scatter(data[:, 0], data[:, 1], s=8, color="gray")
ax_data.set(title=f"{len(data)} real eruptions (no z known)", xlabel="eruption (min)", ylabel="waiting (min)")
for k in range(len(WEIGHTS)):
    ax_samples.scatter(samples[labels == k, 0], samples[labels == k, 1], s=8, label=f"z = {k + 1}")
ax_samples.set(title=f"{N_SAMPLES} samples, coloured by their z", xlabel="eruption (min)")
ax_samples.legend()
save(fig, folder, "ancestral_sampling")
show()
