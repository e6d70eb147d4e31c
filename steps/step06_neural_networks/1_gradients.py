"""Step 6.1 - Tensors and gradients: descending the Rosenbrock function.

Steps 2-5 fitted models whose best parameters had a formula (MLE) or an
update rule (EM). A neural network has neither: its parameters are found by
following the gradient downhill. The gradient comes from backpropagation,
here from our own engine `zero`: every operation on a `Variable` is recorded,
and `y.backward()` fills `x.grad` with dy/dx.

The Rosenbrock function  y = 100 (x1 - x0^2)^2 + (x0 - 1)^2  has its minimum 0
at (1, 1) at the bottom of a long curved valley. Gradient descent repeats

    x <- x - lr * dy/dx                                                   (6.1)

    python steps/step06_neural_networks/1_gradients.py [--lr LR] [--iters N] [--show]
"""
import numpy as np

import zero
from zero.cli import check, out_dir, parse_options, plural, step_parser
from zero.plot import figures, save, show

args = parse_options(step_parser(__doc__, seeded=False, lr=0.001, iters=10000), quick=dict(iters=1000))
folder = out_dir(args, __file__)
plt = figures(args.show)


def rosenbrock(x0, x1):
    return 100 * (x1 - x0 ** 2) ** 2 + (x0 - 1) ** 2


# ---- one gradient by backward, checked against the derivative by hand ------------------------------
x0, x1 = zero.Variable(np.array(0.0)), zero.Variable(np.array(2.0))
y = rosenbrock(x0, x1)
y.backward()
a, b = x0.item(), x1.item()
by_hand = (-400 * a * (b - a ** 2) + 2 * (a - 1), 200 * (b - a ** 2))   # dy/dx0, dy/dx1 at (a, b)
print(f"at ({a:g}, {b:g}): y = {y.item():.1f}, gradient by backward ({x0.grad.item():.1f}, {x1.grad.item():.1f}), "
      f"by hand ({by_hand[0]:.1f}, {by_hand[1]:.1f})")
check(np.allclose([x0.grad.item(), x1.grad.item()], by_hand, rtol=1e-12, atol=0),
      f"at ({a:g}, {b:g}) backward gives ({x0.grad.item()!r}, {x1.grad.item()!r}), the derivative by hand {by_hand}")

# ---- gradient descent (6.1) ---------------------------------------------------------------------------
path = [(x0.item(), x1.item())]
# a step size too large overflows to inf and nan: said once after the loop, not by NumPy at every step
with np.errstate(over="ignore", invalid="ignore"):
    for i in range(args.iters):
        x0.cleargrad()
        x1.cleargrad()
        y = rosenbrock(x0, x1)
        y.backward()
        x0.data -= args.lr * x0.grad.data
        x1.data -= args.lr * x1.grad.data
        path.append((x0.item(), x1.item()))
y = rosenbrock(x0, x1)   # at the final x (the loop's y was computed before its last step)
print(f"after {plural(args.iters, 'step')} of lr {args.lr}: x = ({x0.item():.4f}, {x1.item():.4f}), y = {y.item():.2e} "
      f"(minimum at (1, 1))")
if not np.isfinite(y.item()):   # a step too large for the valley's curvature lands further out each time
    print("gradient descent diverged: each step overshot the minimum by more; try a smaller --lr")

path = np.array(path)
a, b = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1, 3, 200))
fig, ax = plt.subplots(figsize=(6, 5))
ax.contour(a, b, rosenbrock(a, b), levels=np.logspace(-1, 3.5, 15), cmap="viridis")
ax.plot(path[:, 0], path[:, 1], ".-", color="tab:red", markersize=2, label="gradient descent")
ax.plot(1, 1, "*", color="black", markersize=12, label="minimum (1, 1)")
ax.set(title="gradient descent on the Rosenbrock function", xlabel="x0", ylabel="x1")
ax.legend()
save(fig, folder, "rosenbrock")
show()
