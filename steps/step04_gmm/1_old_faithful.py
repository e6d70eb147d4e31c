"""Step 4.1 - Data with two peaks: one normal is not enough.

Step 3 fitted one multivariate normal to height and weight, a cloud with a
single centre. Old Faithful, the geyser in Yellowstone, is different: its
eruptions are either short and followed by a short wait, or long and
followed by a long wait. The 272 eruptions (duration, waiting time to the
next one, both in minutes) form two clouds. A single normal has one peak,
so its best fit puts that peak in the sparse gap between the clouds and is
too low on both of them.

This script shows the data, its two-peaked histograms, and the single
normal's maximum-likelihood fit. It prints the density of the data (the
share of eruptions in a small cell, per min^2) beside the normal's, in the
gap and on each cloud, and the mean log-likelihood the mixture of step 4.2 /
step 5 will have to beat.

    python steps/step04_gmm/1_old_faithful.py [--quick] [--out OUT] [--show]
"""
import numpy as np

from zero.cli import out_dir, step_parser
from zero.datasets import load_old_faithful
from zero.distributions import multivariate_normal_log_pdf, multivariate_normal_mle, multivariate_normal_pdf
from zero.plot import figures, plane_grid, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- hyper-parameters -------------------------------------------------------------------------
GRID = 80 if args.quick else 200
BINS = 25
HALF_WIDTHS = (0.5, 5.0)   # min: eruptions are counted in cells of centre +- 0.5 min (duration) by +- 5 min (waiting)

data = load_old_faithful().astype(np.float64)   # (272, 2): eruption minutes, waiting minutes
print(f"{len(data)} eruptions; duration {data[:, 0].min():.2f}-{data[:, 0].max():.2f} min, "
      f"waiting {data[:, 1].min():.0f}-{data[:, 1].max():.0f} min")
short = data[:, 0] < 3.0
print(f"eruptions shorter than 3 min: {short.sum()}, mean wait {data[short, 1].mean():.1f} min; "
      f"longer: {(~short).sum()}, mean wait {data[~short, 1].mean():.1f} min")

mean, covariance = multivariate_normal_mle(data)   # the best single normal (step 3)
single = multivariate_normal_log_pdf(data, mean, covariance).mean()
print(f"single normal: mean {np.round(mean, 2)}, mean log-likelihood {single:.4f} per eruption")
cell_area = (2 * HALF_WIDTHS[0]) * (2 * HALF_WIDTHS[1])   # min^2
print(f"density per min^2 in a cell of {2 * HALF_WIDTHS[0]:.0f} min by {2 * HALF_WIDTHS[1]:.0f} min around")
for name, centre in [("its peak (the mean)", mean), ("short cloud", [2.0, 54.5]), ("long cloud", [4.3, 80.0])]:
    near = (np.abs(data[:, 0] - centre[0]) < HALF_WIDTHS[0]) & (np.abs(data[:, 1] - centre[1]) < HALF_WIDTHS[1])
    data_density = near.sum() / (len(data) * cell_area)    # the share of the eruptions in the cell, per min^2
    _, _, cell_points = plane_grid((centre[0] - HALF_WIDTHS[0], centre[0] + HALF_WIDTHS[0]),
                                   (centre[1] - HALF_WIDTHS[1], centre[1] + HALF_WIDTHS[1]), 401)
    model_density = multivariate_normal_pdf(cell_points, mean, covariance).mean()   # average over the cell, to 0.2%
    print(f"  {name:20s}: {near.sum():3d} eruptions, data {data_density:.4f}, single normal {model_density:.4f}")

grid_x, grid_y, points = plane_grid((1.0, 6.0), (35.0, 105.0), GRID)
density = multivariate_normal_pdf(points, mean, covariance)

fig, (ax_scatter, ax_duration, ax_waiting) = plt.subplots(1, 3, figsize=(15, 4.5))
ax_scatter.scatter(data[:, 0], data[:, 1], s=8)
ax_scatter.contour(grid_x, grid_y, density.reshape(grid_x.shape), levels=7, colors="k", linewidths=0.8)
ax_scatter.plot(*mean, "r+", markersize=14, label="mean of the single normal")
ax_scatter.set(title="Old Faithful and the best single normal", xlabel="eruption (min)", ylabel="waiting (min)")
ax_scatter.legend(loc="upper left")
ax_duration.hist(data[:, 0], bins=BINS)
ax_duration.set(title="eruption durations: two peaks", xlabel="eruption (min)", ylabel="count")
ax_waiting.hist(data[:, 1], bins=BINS)
ax_waiting.set(title="waiting times: two peaks", xlabel="waiting (min)")
save(fig, folder, "old_faithful")
show()
