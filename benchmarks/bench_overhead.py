"""Framework overhead: the book's step-6 exercise.

A 1-10-1 MLP with a sigmoid hidden layer fitted to 100 noisy sine points by
plain SGD (lr 0.2) for 10,000 iterations. The arrays are tiny, so the time
is almost all framework overhead: graph building, backward bookkeeping,
optimizer loop. PyTorch CPU is timed on the same model in the same run, each side with its
fastest way of writing the update (PyTorch's `p -= LR * p.grad` is two ops,
`p.sub_(p.grad, alpha=LR)` one: about 20% of its iteration; a review found it).

A third trainer does the same arithmetic in NumPy by hand, the gradients written out, no graph:
the least time any engine built on NumPy could take here (its ratio against PyTorch is in the
row's note). What zero takes beyond it is the engine's own cost: building the graph, ordering the
backward pass, wrapping arrays in Variables. A fourth trainer measures that cost alone: zero's
engine running the same graph (the same four ops and four gradient ops, the same Variables and
backward pass) with ops that do no arithmetic. NumPy by hand plus the skeleton is about what any
engine of zero's design would take, however lean its ops.
"""
import time

import numpy as np

ITERS = 10_000
LR = 0.2


def sine_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((100, 1)).astype(np.float32)
    y = (np.sin(2 * np.pi * x) + rng.random((100, 1))).astype(np.float32)
    return x, y


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return [(0.01 * rng.standard_normal((1, 10))).astype(np.float32), np.zeros(10, np.float32),
            (0.01 * rng.standard_normal((10, 1))).astype(np.float32), np.zeros(1, np.float32)]


CHUNKS = 25  # the iterations run in short chunks, alternating frameworks; best chunk counts


def zero_trainer():
    import zero.functions as F
    from zero import Parameter
    x, y = sine_data()  # data stays plain arrays: constants, no gradient computed
    W1, b1, W2, b2 = params = [Parameter(p) for p in init_params()]

    def train(iters):
        for _ in range(iters):
            y_pred = F.linear(F.sigmoid(F.linear(x, W1, b1)), W2, b2)
            loss = F.mean_squared_error(y, y_pred)
            for p in params:
                p.cleargrad()
            loss.backward()
            for p in params:
                p.data -= LR * p.grad.data
        return loss.item()
    return train


def torch_trainer():
    import torch
    x, y = (torch.from_numpy(a) for a in sine_data())
    params = [torch.tensor(p, requires_grad=True) for p in init_params()]
    W1, b1, W2, b2 = params

    def train(iters):
        for _ in range(iters):
            # addmm(b, x, W) = x W + b in one op, as zero's F.linear (x @ W + b was two, and slower)
            y_pred = torch.addmm(b2, torch.sigmoid(torch.addmm(b1, x, W1)), W2)
            loss = torch.nn.functional.mse_loss(y_pred, y)
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.sub_(p.grad, alpha=LR)  # p - LR g in one in-place op, as torch.optim.SGD does
        return loss.item()
    return train


def numpy_trainer():
    """The same model, loss and update in NumPy alone, each gradient written out by hand:
        h = sigmoid(x W1 + b1),  y_pred = h W2 + b2,  loss = mean((y_pred - y)^2)
        g_pred = 2 (y_pred - y) / n,  gW2 = h^T g_pred,  gb2 = 1^T g_pred,
        g_a = (g_pred W2^T) h (1 - h),  gW1 = x^T g_a,  gb1 = 1^T g_a."""
    x, y = sine_data()
    W1, b1, W2, b2 = params = init_params()
    ones = np.ones(len(x), np.float32)

    def train(iters):
        for _ in range(iters):
            a = x @ W1
            a += b1
            h = np.exp(-a)                 # sigmoid(a) = 1 / (1 + e^-a)
            h += 1
            np.reciprocal(h, out=h)
            y_pred = h @ W2
            y_pred += b2
            diff = y_pred - y
            loss = np.vdot(diff, diff) / diff.size
            g_pred = diff * np.float32(2 / diff.size)
            g_a = g_pred @ W2.T
            g_a *= h
            g_a *= 1 - h
            grads = (x.T @ g_a, ones @ g_a, h.T @ g_pred, ones @ g_pred)
            for p, g in zip(params, grads):
                p -= LR * g
        return float(loss)
    return train


def skeleton_trainer():
    """zero's engine with the overhead graph and no arithmetic: each op hands back an array made
    in advance, of the shape the real op returns. The graph, its Variables, the backward pass
    and the gradients' bookkeeping are zero's own; no parameter is updated (the arrays would
    not change anyway), and the returned "loss" is 0."""
    from zero import Parameter
    from zero.core import Function
    x, y = sine_data()
    W1, b1, W2, b2 = params = [Parameter(p) for p in init_params()]
    hidden, prediction, loss = np.zeros((100, 10), np.float32), np.zeros_like(y), np.zeros((), np.float32)

    class Ready(Function):
        """An op whose results are given: forward returns `result`; backward, as zero's ops do,
        calls one gradient op (a Ready too) that returns `grads` (an array, or a tuple of them),
        the gradients of the inputs after the first `skip` (data inputs: no gradient)."""

        def __init__(self, result, grads=None, skip=0):
            self.result, self.grads, self.skip = result, grads, (None,) * skip

        def forward(self, *xs):
            return self.result

        def backward(self, gy):
            grads = Ready(self.grads)(*self.inputs, gy)
            return self.skip + (grads if type(grads) is tuple else (grads,))

    def train(iters):
        for _ in range(iters):
            a = Ready(hidden, (W1.data, b1.data), skip=1)(x, W1, b1)         # linear (x is data: no gx)
            h = Ready(hidden, hidden)(a)                                      # sigmoid
            y_pred = Ready(prediction, (hidden, W2.data, b2.data))(h, W2, b2)  # linear
            value = Ready(loss, prediction, skip=1)(y, y_pred)                # mean squared error
            for p in params:
                p.cleargrad()
            value.backward()
        return float(value.data)
    train.params = params  # for the test that the backward pass reaches every parameter
    return train


def best_time_per_iter(trainers, iters):
    """Run each trainer for iters in CHUNKS alternating chunks; for each, the
    fastest chunk's time per iteration and the final loss."""
    best = [float("inf")] * len(trainers)
    losses = [None] * len(trainers)
    for _ in range(CHUNKS):
        for i, train in enumerate(trainers):
            start = time.perf_counter()
            losses[i] = train(iters // CHUNKS)
            best[i] = min(best[i], (time.perf_counter() - start) / (iters // CHUNKS))
    return best, losses


def run(quick=False):
    iters = 1000 if quick else ITERS
    trainers = [zero_trainer(), numpy_trainer(), skeleton_trainer()]
    try:
        import torch
        trainers.append(torch_trainer())
    except ImportError:
        torch = None
    seconds, losses = best_time_per_iter(trainers, iters)
    (zero_seconds, numpy_seconds, skeleton_seconds), (zero_loss, numpy_loss) = seconds[:3], losses[:2]
    by_hand = f"NumPy by hand {numpy_seconds * 1e6:.1f} us"
    skeleton = f"zero's engine alone (same graph, no arithmetic) {skeleton_seconds * 1e6:.1f} us"
    row = {"benchmark": f"sine MLP 1-10-1, SGD, {iters} iters (best of {CHUNKS} chunks, per iter)", "unit": "s",
           "zero": zero_seconds, "reference": None, "reference_name": "torch (not installed)",
           "ratio": None, "target": 0.5,
           "note": f"final loss zero {zero_loss:.4f}, by hand {numpy_loss:.4f}; {by_hand}; {skeleton}"}
    if torch is None:
        return [row]
    torch_seconds, torch_loss = seconds[3], losses[3]
    row.update(reference=torch_seconds, reference_name=f"torch {torch.__version__} CPU",
               ratio=zero_seconds / torch_seconds,
               note=(f"final loss zero {zero_loss:.4f}, by hand {numpy_loss:.4f}, torch {torch_loss:.4f}; "
                     f"{by_hand}, ratio {numpy_seconds / torch_seconds:.2f} against torch: NumPy's own time "
                     f"for this arithmetic, with no engine around it; {skeleton}, "
                     f"{skeleton_seconds / torch_seconds:.2f} of torch's"))
    return [row]
