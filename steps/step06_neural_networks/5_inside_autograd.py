"""Step 6.5 - Inside autograd: the graph, double backprop, Newton's method.

`backward()` works because every operation on Variables builds a graph:
variables (ovals) are produced by functions (boxes) from other variables.
Backward visits that graph from the output back to the inputs, each function
multiplying the incoming gradient by its local derivative (the chain rule).
We draw the graph of an expression (with Graphviz if installed, else with
matplotlib).

Because each function's backward is itself written with Variables, the
backward pass can be recorded too (`backward(create_graph=True)`): the
gradient gets a graph, and differentiating it again gives the second
derivative. With it, Newton's method looks for a zero of f'(x), here for
f(x) = x^4 - 2 x^2, by

    x <- x - f'(x) / f''(x)                                               (6.4)

From x = 2, where f'' > 0, it reaches the minimum at x = 1 in a handful of
steps, where gradient descent (6.1) needs over a hundred. Newton only finds
where the slope is zero: this f has another minimum at x = -1 and a maximum
at x = 0. One step maps x to 2x^3 / (3x^2 - 1), which moves closer to 0 only
while |x| < 1/sqrt(5) ~ 0.447: from there it climbs to the maximum. Between
0.447 and 1/sqrt(3) ~ 0.577, where f'' < 0 as well, it overshoots and ends
at either minimum (from x = 0.5 the first step goes to exactly -1).

This engine, graphs and backward and all, is what trains every network from
here on: step 7's VAE, whose encoder and decoder are MLPs like step 6.3's.

    python steps/step06_neural_networks/5_inside_autograd.py [--out OUT] [--show]
"""
import numpy as np

import zero
import zero.functions as F
from zero.cli import check, out_dir, step_parser
from zero.graph import draw_graph
from zero.plot import figures, save, show

args = step_parser(__doc__, seeded=False).parse_args()
folder = out_dir(args, __file__)
plt = figures(args.show)

# ---- the graph of y = tanh(x0 * x1 + sin(x0)) --------------------------------------------------------
x0 = zero.Variable(np.array(1.0), name="x0")
x1 = zero.Variable(np.array(2.0), name="x1")
y = F.tanh(x0 * x1 + F.sin(x0))
y.name = "y"
y.backward()
print(f"y = {y.item():.4f}, dy/dx0 = {x0.grad.item():.4f}, dy/dx1 = {x1.grad.item():.4f}")
print(f"  graph picture: {draw_graph(y, folder / 'graph.png')}")


def f(x):
    return x ** 4 - 2 * x ** 2


# ---- second derivative by double backprop, checked by hand -----------------------------------------------
x = zero.Variable(np.array(2.0), name="x")
y = f(x)
# backward starts from dy/dy = 1 (by default unnamed); named here, it is labelled so in the picture
seed = zero.Variable(np.ones_like(y.data), name="dy/dy = 1")   # y's shape and dtype, as backward requires
y.backward(gradient=seed, create_graph=True)   # x.grad is a Variable with its own graph
gx = x.grad
gx.name = "dy/dx"
print(f"  graph of the gradient: {draw_graph(gx, folder / 'gradient_graph.png')}")
x.cleargrad()
gx.backward()
# f'(x) = 4 x^3 - 4 x = 24,  f''(x) = 12 x^2 - 4 = 44 at x = 2
print(f"at x = 2: f' = {gx.item():.1f} (by hand 24), f'' = {x.grad.item():.1f} (by hand 44)")
check(np.isclose(gx.item(), 4 * 2 ** 3 - 4 * 2, rtol=1e-12, atol=0)
      and np.isclose(x.grad.item(), 12 * 2 ** 2 - 4, rtol=1e-12, atol=0),
      f"at x = 2 double backprop gives f' = {gx.item()!r} and f'' = {x.grad.item()!r}, by hand 24 and 44")

# ---- Newton's method (6.4) against gradient descent (6.1) --------------------------------------------------
x = zero.Variable(np.array(2.0))
newton = [x.item()]
for i in range(10):
    x.cleargrad()
    y = f(x)
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    gx.backward()
    x.data -= gx.data / x.grad.data   # x <- x - f'(x) / f''(x)
    newton.append(x.item())
    print(f"Newton step {i + 1}: x = {newton[-1]:.8f}")
    if abs(newton[-1] - newton[-2]) < 1e-12:   # the step no longer moves x: converged
        break
check(abs(newton[-1] - 1) < 1e-12, f"Newton's method ended at x = {newton[-1]!r}, not at the minimum x = 1")

x = zero.Variable(np.array(2.0))
descent = [x.item()]
for i in range(200):
    x.cleargrad()
    f(x).backward()
    x.data -= 0.01 * x.grad.data
    descent.append(x.item())
close = np.flatnonzero(np.abs(np.array(descent) - 1) < 1e-6)
print(f"gradient descent (lr 0.01): x = {descent[-1]:.8f} after 200 steps; "
      + (f"first within 1e-6 of 1 at step {close[0]}" if close.size else "never within 1e-6 of 1"))

fig, (ax_f, ax_error) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
grid = np.linspace(-1.8, 2.1, 200)
ax_f.plot(grid, f(grid), color="0.3")
ax_f.plot(descent, [f(v) for v in descent], ".", color="tab:blue", label="gradient descent")
ax_f.plot(newton, [f(v) for v in newton], "o-", color="tab:red", label="Newton")
ax_f.set(title="f(x) = x^4 - 2 x^2", xlabel="x")
ax_f.legend()
ax_error.semilogy(np.abs(np.array(newton) - 1) + 1e-16, "o-", color="tab:red", label="Newton")
ax_error.semilogy(np.abs(np.array(descent) - 1) + 1e-16, color="tab:blue", label="gradient descent")
ax_error.set(title="distance to the minimum x = 1", xlabel="step", ylabel="|x - 1|")
ax_error.legend()
save(fig, folder, "newton")
show()
