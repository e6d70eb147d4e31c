"""Step 6.3 - A neural network fitted to a curve.

A line cannot follow y = sin(2 pi x). A neural network can: a linear layer to
10 hidden units, a nonlinearity (sigmoid), a linear layer back to 1 output,

    y_hat = sigmoid(x W1 + b1) W2 + b2,                                   (6.3)

fitted by the same gradient descent on the mean squared error. From here on the
parameters live in layers (`zero.layers.Linear`, owning W and b, stacked by
`zero.models.MLP`) and an optimizer (`zero.optimizers.SGD`) applies (6.1) to
all of them.

    python steps/step06_neural_networks/3_neural_network.py [--lr LR] [--iters N] [--hidden-size H] [--seed SEED] [--show]
"""
import numpy as np
from tqdm import tqdm

import zero
import zero.functions as F
from zero.cli import out_dir, parse_options, plural, step_parser
from zero.models import MLP
from zero.optimizers import SGD
from zero.plot import figures, save, show

args = parse_options(step_parser(__doc__, lr=0.2, iters=10000, hidden_size=10), quick=dict(iters=1000))
folder = out_dir(args, __file__)
plt = figures(args.show)
np.random.seed(args.seed)   # Linear draws its initial weights from NumPy's global generator

rng = np.random.default_rng(args.seed)
x = rng.random((100, 1)).astype(np.float32)
y = (np.sin(2 * np.pi * x) + rng.random((100, 1))).astype(np.float32)

model = MLP((1, args.hidden_size, 1), activation=F.sigmoid)   # (6.3)
optimizer = SGD(model.params(), lr=args.lr)
losses = []
# a step size too large overflows to inf and nan: said once after the loop, not by NumPy at every step
with np.errstate(over="ignore", invalid="ignore"):
    for i in tqdm(range(args.iters), desc="training"):
        loss = F.mean_squared_error(model(zero.Variable(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
print(f"loss after {plural(args.iters, 'iteration')}: {losses[-1]:.4f} (noise U(0, 1) alone has variance 1/12 = 0.083)")

# The loss curve's spikes are gradient descent overshooting. Where the loss curves more sharply
# than 2 / lr (10 at lr 0.2) along some direction, a step of lr lands past the minimum on that
# direction, each next step lands farther out and the loss climbs, until the parameters reach a
# flatter spot and the descent resumes. Measured on the default run (seed 0, by power iteration
# on Hessian-vector products): the Hessian's largest eigenvalue was 10.5 at iteration 4900, just
# before the first spike, and 9.4 at 4990, after it; `--lr 0.1 --iters 20000` (the same total
# step) gives no spikes and ends at 0.0878.
losses = np.array(losses)
high = losses > 1.5 * np.minimum.accumulate(losses)   # the loss 50% above its best so far
spike_starts = np.flatnonzero(high[1:] & ~high[:-1]) + 1
if not np.isfinite(losses[-1]):
    print("gradient descent diverged: each step overshot the minimum by more; try a smaller --lr")
elif len(spike_starts):
    print(f"spikes in the loss: {len(spike_starts)} (the first at iteration {spike_starts[0]}, the highest "
          f"{losses[high].max():.2f}): steps of lr {args.lr:g} overshooting; "
          f"try --lr {args.lr / 2:g} --iters {2 * args.iters}")

grid = np.linspace(0, 1, 200, dtype=np.float32)[:, None]
with zero.no_grad():
    curve = model(zero.Variable(grid)).data
fig, (ax_fit, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
ax_fit.scatter(x[:, 0], y[:, 0], s=10)
ax_fit.plot(grid[:, 0], curve[:, 0], color="tab:red", label=f"1-{args.hidden_size}-1 network")
ax_fit.plot(grid[:, 0], np.sin(2 * np.pi * grid[:, 0]) + 0.5, "--", color="0.5", label="sin(2 pi x) + 0.5")
ax_fit.set(title="a neural network fitted to noisy sine data", xlabel="x", ylabel="y")
ax_fit.legend()
ax_loss.plot(losses)
ax_loss.set(title="mean squared error", xlabel="iteration", yscale="log")
save(fig, folder, "neural_network")
show()
