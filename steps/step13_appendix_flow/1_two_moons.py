"""Appendix C.1 - A normalizing flow: an exact likelihood from an invertible network.

The VAE (step 7) never computes log p(x): it trains on a lower bound, the ELBO, and
can only estimate the likelihood (IWAE). The diffusion models (steps 9-10) train on a
reweighted form of such a bound, (9.3), and never evaluate log p(x) at all. A
normalizing flow computes it exactly. It
is an invertible network f that maps data x to a latent z of the same size, z ~ N(0, I),
and the change-of-variables formula gives the density of x exactly:

    log p(x) = log N(f(x) | 0, I) + log |det df/dx|                                   (C.1)

So training is step 2's maximum likelihood, on a neural network: minimise -mean log p(x).
f is a RealNVP (zero.flow.RealNVP): a stack of affine couplings. Each keeps half of the
coordinates (mask m = 1) and scales and shifts the other half by amounts computed from
the kept half:

    y = x * exp(s) + t,   (s_raw, t_raw) = net(m * x),                                    (C.2)
    s = (1 - m) * scale * tanh(s_raw),   t = (1 - m) * t_raw   (s = t = 0 on the kept half)
    log |det dy/dx| = sum_d s_d   (the Jacobian is triangular: y_kept = x_kept)          (C.3)
    x = (y - t) * exp(-s)         (the inverse: s and t depend only on the kept half)      (C.4)

Masks alternate between couplings so that every coordinate gets changed. Sampling applies
(C.4) coupling by coupling, last to first, to z ~ N(0, I): one pass, no chain of hundreds of
steps as in diffusion.

What it cannot do: z must have the data's size and every layer must be invertible with a
cheap determinant, which limits the architecture; on images, flows need far more
parameters than a VAE or diffusion model for samples of the same quality.

We fit two moons (points we generate, standardised) and draw the map both ways: data to
normal (forward) and normal to data (inverse).

    python steps/step13_appendix_flow/1_two_moons.py
"""
import numpy as np

import zero
from zero.cli import at_least, check, checkpoint_path, out_dir, parse_options, plural, step_parser
from zero.flow import RealNVP, two_moons
from zero.optimizers import Adam
from zero.plot import figures, save, save_loss_curves, show
from zero.training import fit_or_resume, mean_loss

parser = step_parser(__doc__, training=True, epochs=30, batch_size=128, lr=1e-3, hidden_size=64,
                     couplings=8, points=8000, noise=0.05)
args = parse_options(parser, quick=dict(epochs=2, points=1000))
at_least(parser, args, 8, ("points",), "a quarter of that many is drawn again as held-out points")
folder = out_dir(args, __file__)
checkpoint = checkpoint_path(args, __file__)
plt = figures(args.show)
zero.seed(args.seed, args.device)  # NumPy's generator: the initial weights and the z of the samples below

# ---- data: two moons, standardised with the training set's mean and std ---------------------------
raw_train = two_moons(args.points, args.noise, seed=args.seed)
raw_heldout = two_moons(args.points // 4, args.noise, seed=args.seed + 1)
center, spread = raw_train.mean(axis=0), raw_train.std(axis=0)
x_train, x_heldout = (raw_train - center) / spread, (raw_heldout - center) / spread
print(f"two moons: {len(x_train)} training and {len(x_heldout)} held-out points, noise std {args.noise}")

# ---- model: 8 couplings, masks [1, 0], [0, 1], ... ------------------------------------------------
model = RealNVP(dim=2, hidden_size=args.hidden_size, num_couplings=args.couplings).to(args.device)
optimizer = Adam(model.params(), lr=args.lr)
print(f"RealNVP with {plural(args.couplings, 'coupling')}, {model.num_params():,} parameters")

# ---- maximum likelihood: minimise -mean log p(x), (C.1), by mini-batch Adam ---------------------------
history = fit_or_resume(model, optimizer, x_train, args, checkpoint, x_heldout=x_heldout, description="flow")

# the exact likelihood, in nats per point; the standardisation's Jacobian turns it into the raw units
nll = mean_loss(model, x_heldout, device=args.device)
print(f"held-out -log p(x): {nll:.3f} nats per point (standardised coordinates), "
      f"{nll + np.log(spread).sum():.3f} in the raw coordinates (log p_raw = log p_std - sum_d log std_d)")

# ---- pictures: the map both ways ----------------------------------------------------------------------
model.eval()
to_host = zero.to_numpy
forward_stages = [to_host(points) for points in model.stages(x_heldout)]          # x -> ... -> z
z = np.random.standard_normal((2000, 2)).astype(np.float32)
inverse_stages = [to_host(points) for points in model.stages(z, inverse=True)]   # z -> ... -> x
shown = sorted(set(np.linspace(0, args.couplings, 5).round().astype(int)))

fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), layout="constrained")
colour = x_heldout[:, 0]  # each point keeps its colour (its original x_1) through the map
for ax, index in zip(axes, shown):
    ax.scatter(*forward_stages[index].T, c=colour, cmap="coolwarm", s=3)
    after = f"after {plural(index, 'coupling')}" + (" = z" if index == args.couplings else "")
    ax.set(title="data x" if index == 0 else after, aspect="equal")
fig.suptitle("forward f: held-out data -> standard normal (colour: the point's original x_1)")
save(fig, folder, "forward")

fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), layout="constrained")
angle = np.arctan2(z[:, 1], z[:, 0])
for ax, index in zip(axes, shown):
    ax.scatter(*inverse_stages[index].T, c=angle, cmap="hsv", s=3)
    last = " = samples" if index == args.couplings else ""
    ax.set(title="z ~ N(0, I)" if index == 0 else f"after undoing {plural(index, 'coupling')}{last}", aspect="equal")
fig.suptitle("inverse f^-1: standard normal -> data (colour: the angle of z)")
save(fig, folder, "inverse")

# the density itself, exact on a grid: p(x) = N(f(x)) |det df/dx|
grid = np.linspace(-2.5, 2.5, 80 if args.quick else 200, dtype=np.float32)
grid_x, grid_y = np.meshgrid(grid, grid)
points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
with zero.no_grad():
    log_density = to_host(model.log_prob(zero.to_device(points, args.device)).data).reshape(grid_x.shape)
cell = (grid[1] - grid[0]) ** 2
mass = np.exp(log_density).sum() * cell
print(f"the density sums to {mass:.3f} over the grid [-2.5, 2.5]^2 (1 would mean all mass inside it)")
# at most 1, up to the grid's error in the integral (a 30-epoch flow sums to 1.002 on an 80-point grid)
check(mass < 1.02, f"the density sums to {mass:.4f} over part of the plane: more than 1")
fig, (ax_density, ax_samples) = plt.subplots(1, 2, figsize=(11, 5))
ax_density.imshow(np.exp(log_density), origin="lower", extent=(-2.5, 2.5, -2.5, 2.5), cmap="magma")
ax_density.set(title="p(x) of the flow, exact (C.1)", xlabel="x_1 (standardised)", ylabel="x_2")
ax_samples.scatter(*x_heldout[::2].T, s=3, alpha=0.5, label="held-out data")   # every other point: both moons
ax_samples.scatter(*inverse_stages[-1][:1000].T, s=3, alpha=0.5, label="samples f^-1(z)")
ax_samples.set(title="data and samples", xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal")
ax_samples.legend(loc="upper right")
save(fig, folder, "density_and_samples")

save_loss_curves(history, "flow: -log p(x) per point", folder, ylabel="nats")
show()
