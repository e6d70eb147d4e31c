"""Step 2.3 - Probabilities from the model: the cumulative distribution function.

A density is not a probability: p(170 cm) = 0.04 means "0.04 per cm". The
probability of a range is the area under the density, and for the normal
that area has a name, the cumulative distribution function

    F(x) = P(X <= x) = int_-inf^x N(t | mu, sigma) dt = 1/2 (1 + erf((x - mu) / (sigma sqrt 2)))

Step 2.2 set generated heights beside real ones, and the histograms could only be compared
by eye. The fitted model also answers questions in numbers. With the model fitted in
step 2.1 we ask: how likely is an adult shorter
than 160 cm, taller than 180 cm? The model's answers are compared with the
fraction of the 507 real heights in those ranges.

    python steps/step02_mle/3_probabilities.py [--quick] [--out OUT] [--show]
"""
import numpy as np

from zero.cli import check, out_dir, step_parser
from zero.datasets import load_heights
from zero.distributions import normal_cdf, normal_mle, normal_pdf
from zero.plot import figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
SHORT = 160.0   # cm
TALL = 180.0    # cm

heights = load_heights().astype(np.float64)
mu, sigma = normal_mle(heights)
print(f"fitted model: N(mu = {mu:.2f} cm, sigma = {sigma:.2f} cm)")

p_short = normal_cdf(SHORT, mu, sigma)          # P(X <= 160) = F(160)
p_tall = 1.0 - normal_cdf(TALL, mu, sigma)      # P(X > 180) = 1 - F(180)
p_between = 1.0 - p_short - p_tall              # P(160 < X <= 180)
print(f"P(height < {SHORT:.0f} cm)  model {p_short:.4f}   data {np.mean(heights < SHORT):.4f}"
      f" (<= {SHORT:.0f}: {np.mean(heights <= SHORT):.4f})")
print(f"P(height > {TALL:.0f} cm)  model {p_tall:.4f}   data {np.mean(heights > TALL):.4f}"
      f" (>= {TALL:.0f}: {np.mean(heights >= TALL):.4f})")
print(f"P(in between)        model {p_between:.4f}   data {np.mean((heights >= SHORT) & (heights <= TALL)):.4f}")
# The model gives any single value probability 0, so P(X < 160) = P(X <= 160). The data do not: many
# heights were measured in whole inches and written in cm, and 63 inches is 160.0 cm.
print(f"{np.sum(heights == SHORT)} heights are exactly {SHORT:.1f} cm ({SHORT / 2.54:.1f} inches): for the data, < and <= differ")

left = np.linspace(mu - 10 * sigma, SHORT, 100_001)
area = (normal_pdf(left, mu, sigma) * (left[1] - left[0])).sum()   # int_-inf^160 N(t | mu, sigma) dt, numerically
print(f"check: area under the density left of {SHORT:.0f} cm on a grid = {area:.4f}")
check(abs(area - p_short) < 1e-4,   # the grid's steps leave about 1e-5
      f"the area on the grid, {area:.6f}, and F({SHORT:.0f}) = {p_short:.6f} differ")

grid = np.linspace(mu - 4 * sigma, mu + 4 * sigma, 400)

fig, (ax_pdf, ax_cdf) = plt.subplots(1, 2, figsize=(11, 4))
density = normal_pdf(grid, mu, sigma)
ax_pdf.plot(grid, density, "k")
ax_pdf.fill_between(grid, density, where=grid <= SHORT, alpha=0.5, label=f"P(< {SHORT:.0f}) = {p_short:.3f}")
ax_pdf.fill_between(grid, density, where=grid >= TALL, alpha=0.5, label=f"P(> {TALL:.0f}) = {p_tall:.3f}")
ax_pdf.set(title="probability = area under the density", xlabel="height (cm)", ylabel="density")
ax_pdf.legend()
cdf = normal_cdf(grid, mu, sigma)
ax_cdf.plot(grid, cdf, "k", label="model F(x)")
ax_cdf.plot(np.sort(heights), np.arange(1, len(heights) + 1) / len(heights), drawstyle="steps-post",
            color="C2", label="data: fraction <= x")
ax_cdf.axvline(SHORT, color="C0", ls="--")   # the dashed lines take the colours of the areas on the left
ax_cdf.axvline(TALL, color="C1", ls="--")
ax_cdf.set(title="cumulative distribution function", xlabel="height (cm)", ylabel="P(X <= x)")
ax_cdf.legend()
save(fig, folder, "cdf")
show()
