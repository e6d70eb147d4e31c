"""Step 6.2 - Linear regression by gradient descent.

The same descent now fits a model to data. A line y = W x + b is scored by the
mean squared error over the N points,

    L(W, b) = 1/N sum_n (W x_n + b - y_n)^2,                              (6.2)

and W, b move against its gradient. (This L is, up to a positive factor and a constant, the negative
log-likelihood of the line if its noise is Gaussian: steps 2-3's maximum likelihood again.
The data's noise here is uniform, which the fit does not need to know.) After the loop the
result is set beside the exact minimum of (6.2), which a line also has in closed form.

    python steps/step06_neural_networks/2_linear_regression.py [--lr LR] [--iters N] [--seed SEED] [--show]
"""
import numpy as np

import zero
import zero.functions as F
from zero.cli import out_dir, plural, step_parser
from zero.plot import figures, save, show

args = step_parser(__doc__, lr=0.1, iters=100).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

rng = np.random.default_rng(args.seed)
x = rng.random((100, 1)).astype(np.float32)
y = (5 + 2 * x + rng.random((100, 1))).astype(np.float32)   # true line 5.5 + 2x (noise has mean 0.5)

W = zero.Variable(np.zeros((1, 1), dtype=np.float32), name="W")
b = zero.Variable(np.zeros(1, dtype=np.float32), name="b")
losses = []
# a step size too large overflows to inf and nan: said once after the loop, not by NumPy at every step
with np.errstate(over="ignore", invalid="ignore"):
    for i in range(args.iters):
        y_pred = x @ W + b
        loss = F.mean_squared_error(y_pred, y)                     # (6.2)
        W.cleargrad()
        b.cleargrad()
        loss.backward()
        W.data -= args.lr * W.grad.data
        b.data -= args.lr * b.grad.data
        losses.append(loss.item())
        if i % 10 == 0:
            print(f"iteration {i:3d}: loss {losses[-1]:.4f}")
print(f"fitted y = {W.item():.3f} x + {b.item():.3f} (data made from y = 2 x + 5.5 + noise)")
# the exact minimum of (6.2): least squares, solved for [W, b] in closed form
(W_best, b_best), *_ = np.linalg.lstsq(np.hstack([x, np.ones_like(x)]).astype(np.float64), y[:, 0], rcond=None)
reached = max(abs(W.item() - W_best), abs(b.item() - b_best)) < 5e-3
if not np.isfinite(losses[-1]):
    verdict = "(gradient descent diverged: each step overshot the minimum by more; try a smaller --lr)"
else:
    book = ", the book's number" if args.iters == 100 else ""
    more = "--iters 2000 reaches it" if args.lr == 0.1 and args.iters < 2000 else "more iterations reach it"
    verdict = ("(gradient descent has reached it)" if reached else
               f"(not there yet after {plural(args.iters, 'iteration')}{book}: along one direction, W up "
               f"and b down, the loss is nearly flat, so the steps there are small; {more})")
print(f"exact minimum of (6.2): y = {W_best:.3f} x + {b_best:.3f} {verdict}")

fig, (ax_fit, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
ax_fit.scatter(x[:, 0], y[:, 0], s=10)
line = np.array([[0.0], [1.0]], dtype=np.float32)
ax_fit.plot(line[:, 0], (line @ W.data + b.data)[:, 0], color="tab:red", label="fitted line")
ax_fit.set(title="linear regression", xlabel="x", ylabel="y")
ax_fit.legend()
ax_loss.plot(losses)
ax_loss.set(title="mean squared error", xlabel="iteration", yscale="log")
save(fig, folder, "linear_regression")
show()
