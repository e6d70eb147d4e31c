"""Step 1.1 - The normal distribution: one formula, two parameters.

A generative model is a probability distribution p(x) that we can evaluate
(how plausible is this x?) and sample from (give me a new x). The course
starts with the simplest useful one, the normal (Gaussian) distribution:

    N(x | mu, sigma) = 1 / (sqrt(2 pi) sigma) * exp(-(x - mu)^2 / (2 sigma^2))

mu moves the bell left and right, sigma makes it wider and lower (the area
under it stays 1). This script evaluates the formula by hand, checks it
against `zero.distributions.normal_pdf` (the version later steps use), and
plots how mu and sigma change the shape.

    python steps/step01_normal/1_density.py [--quick] [--out OUT] [--show]
"""
import math

import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.distributions import normal_pdf
from zero.plot import figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
X_RANGE = (-5.0, 5.0)
N_GRID = 1001
MUS = [-1.5, 0.0, 2.0]        # sigma = 1
SIGMAS = [0.5, 1.0, 2.0]      # mu = 0


def normal(x, mu=0.0, sigma=1.0):
    """The density written exactly as the formula: (2 pi sigma^2)^(-1/2) exp(-(x - mu)^2 / (2 sigma^2))."""
    return 1.0 / (np.sqrt(2 * np.pi) * sigma) * np.exp(-(x - mu) ** 2 / (2 * sigma ** 2))


x = np.linspace(*X_RANGE, N_GRID)

# ---- the standard normal (mu = 0, sigma = 1) ----------------------------------------------------
y = normal(x)
print("standard normal N(x | 0, 1):")
for point in [0.0, 1.0, 2.0, 3.0]:
    print(f"  N({point:.0f}) = {normal(point):.6f}")
print(f"  peak height 1/sqrt(2 pi) = {1 / math.sqrt(2 * math.pi):.6f}")
print(f"  one sigma away the density is exp(-1/2) = {math.exp(-0.5):.4f} of the peak: "
      f"{normal(1.0) / normal(0.0):.4f}")
check(np.isclose(normal(0.0), 1 / math.sqrt(2 * math.pi), rtol=1e-12, atol=0)
      and np.isclose(normal(1.0) / normal(0.0), math.exp(-0.5), rtol=1e-12, atol=0),
      f"N(0) = {normal(0.0):.12f} and N(1) / N(0) = {normal(1.0) / normal(0.0):.12f}, not 1/sqrt(2 pi) and exp(-1/2)")
print(f"  largest difference to zero.distributions.normal_pdf on the grid: "
      f"{np.abs(y - normal_pdf(x)).max():.2e}")
check(np.allclose(y, normal_pdf(x), rtol=1e-12, atol=0),
      f"the formula and zero.distributions.normal_pdf differ by up to {np.abs(y - normal_pdf(x)).max():.2e}")
dx = x[1] - x[0]
area = (y * dx).sum()  # integral of p(x) dx, approximated by sum_i p(x_i) dx on the grid
print(f"  area under the curve on [{X_RANGE[0]:.0f}, {X_RANGE[1]:.0f}]: {area:.6f}")
check(abs(area - 1) < 1e-5,   # the tails beyond 5 sigma hold 6e-7
      f"the area on [{X_RANGE[0]:.0f}, {X_RANGE[1]:.0f}] is {area:.9f}, not 1")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(x, y)
ax.set(title="Standard normal N(x | 0, 1)", xlabel="x", ylabel="p(x)")
save(fig, folder, "standard_normal")

# ---- what mu and sigma do -----------------------------------------------------------------------
fig, (ax_mu, ax_sigma) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for mu in MUS:
    ax_mu.plot(x, normal(x, mu, 1.0), label=f"mu = {mu}")
for sigma in SIGMAS:
    curve = normal(x, 0.0, sigma)
    ax_sigma.plot(x, curve, label=f"sigma = {sigma}")
    wide = np.linspace(-40.0, 40.0, 40_001)   # a grid that holds the whole bell, tails included
    wide_area = (normal(wide, 0.0, sigma) * (wide[1] - wide[0])).sum()
    print(f"sigma = {sigma}: peak height {curve.max():.4f}, area on [{X_RANGE[0]:.0f}, {X_RANGE[1]:.0f}] "
          f"{(curve * dx).sum():.4f}, on [{wide[0]:.0f}, {wide[-1]:.0f}] {wide_area:.4f}")
    check(abs(wide_area - 1) < 1e-9, f"sigma = {sigma}: the area on [-40, 40] is {wide_area:.12f}, not 1")
ax_mu.set(title="mu shifts the bell (sigma = 1)", xlabel="x", ylabel="p(x)")
ax_sigma.set(title="sigma widens it (mu = 0)", xlabel="x")
ax_mu.legend()
ax_sigma.legend()
save(fig, folder, "mu_and_sigma")
show()
