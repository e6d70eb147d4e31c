"""The hot non-convolution ops of the course models, forward + backward, against PyTorch CPU.

- batch_norm in training mode at U-Net sizes (batch 128, 28x28 maps, 64 and 256 channels);
- relu and silu on a (128, 64, 28, 28) feature map;
- softmax_cross_entropy on (128, 10) logits (MNIST classifier);
- binary_cross_entropy_with_logits on (32, 784) (VAE decoder output, batch 32);
- linear on an input with two leading axes, (4, 32, 784) -> 200: guards the path that
  must not go through NumPy's dot (which reaches BLAS with 2-D operands only).

Each row is the best of REPEATS runs of one forward + backward in float32, over ROUNDS
rounds in which zero and PyTorch take turns, each in its own subprocess (workers.py). The rows are
diagnostics without a target (the targets are on whole training steps: mlp, vae, conv, unet);
on the large ones zero took 1.4-6.6 times PyTorch's time (SiLU the most) in the runs of
2026-12-05. Those ops are memory-bound: NumPy makes one single-threaded pass over the array per
elementwise operation, while PyTorch fuses each forward and backward into one kernel run on all
cores.

    python benchmarks/run.py nn_ops [--quick]
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from workers import main, run_worker

REPEATS, QUICK_REPEATS = 10, 3
ROUNDS = 2


def _best_seconds(step, repeats):
    step()  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def _cases(torch):
    """(name, target ratio or None, zero step, torch step or None); these op timings are informational: the targets of issue 3 and 6 are on whole training steps."""
    import zero.functions as F
    from zero import Parameter, Variable

    rng = np.random.default_rng(0)
    cases = []

    for channels in (64, 256):
        x = rng.standard_normal((128, channels, 28, 28), dtype=np.float32)
        gy = rng.standard_normal(x.shape, dtype=np.float32)
        gamma, beta = Parameter(np.ones(channels, np.float32)), Parameter(np.zeros(channels, np.float32))
        mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)

        def zero_bn(x=Variable(x), gamma=gamma, beta=beta, mean=mean, var=var, gy=gy):
            x.cleargrad(), gamma.cleargrad(), beta.cleargrad()
            y = F.batch_norm(x, gamma, beta, mean, var)
            y.backward(gy)

        torch_bn = None
        if torch is not None:
            def torch_bn(x=torch.tensor(x, requires_grad=True), gy=torch.from_numpy(gy),
                         gamma=torch.ones(channels, requires_grad=True), beta=torch.zeros(channels, requires_grad=True),
                         mean=torch.zeros(channels), var=torch.ones(channels)):
                x.grad = gamma.grad = beta.grad = None
                torch.nn.functional.batch_norm(x, mean, var, gamma, beta, training=True).backward(gy)
        cases.append((f"batch_norm train fwd+bwd (128, {channels}, 28, 28)", None, zero_bn, torch_bn))

    x = rng.standard_normal((128, 64, 28, 28), dtype=np.float32)
    gy = rng.standard_normal(x.shape, dtype=np.float32)
    for name, ours, theirs in [("relu", F.relu, "relu"), ("silu", F.silu, "silu")]:
        def zero_act(x=Variable(x), f=ours, gy=gy):
            x.cleargrad()
            y = f(x)
            y.backward(gy)

        torch_act = None
        if torch is not None:
            def torch_act(x=torch.tensor(x, requires_grad=True), f=getattr(torch.nn.functional, theirs),
                          gy=torch.from_numpy(gy)):
                x.grad = None
                f(x).backward(gy)
        cases.append((f"{name} fwd+bwd (128, 64, 28, 28)", None, zero_act, torch_act))

    logits = rng.standard_normal((128, 10), dtype=np.float32)
    labels = rng.integers(0, 10, size=128)

    def zero_ce(x=Variable(logits)):
        x.cleargrad()
        F.softmax_cross_entropy(x, labels).backward()

    torch_ce = None
    if torch is not None:
        def torch_ce(x=torch.tensor(logits, requires_grad=True), t=torch.from_numpy(labels)):
            x.grad = None
            torch.nn.functional.cross_entropy(x, t).backward()
    cases.append(("softmax_cross_entropy fwd+bwd (128, 10)", None, zero_ce, torch_ce))

    logits = rng.standard_normal((32, 784), dtype=np.float32)
    targets = rng.random((32, 784), dtype=np.float32)

    def zero_bce(x=Variable(logits)):
        x.cleargrad()
        F.binary_cross_entropy_with_logits(x, targets, reduction="sum").backward()

    torch_bce = None
    if torch is not None:
        def torch_bce(x=torch.tensor(logits, requires_grad=True), t=torch.from_numpy(targets)):
            x.grad = None
            torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
    cases.append(("bce_with_logits fwd+bwd (32, 784)", None, zero_bce, torch_bce))

    x = rng.standard_normal((4, 32, 784), dtype=np.float32)
    W = (0.03 * rng.standard_normal((784, 200))).astype(np.float32)
    gy = rng.standard_normal((4, 32, 200), dtype=np.float32)

    def zero_linear(x=Variable(x), W=Parameter(W), b=Parameter(np.zeros(200, np.float32)), gy=gy):
        x.cleargrad(), W.cleargrad(), b.cleargrad()
        y = F.linear(x, W, b)
        y.backward(gy)

    torch_linear = None
    if torch is not None:
        def torch_linear(x=torch.tensor(x, requires_grad=True), W=torch.tensor(W.T.copy(), requires_grad=True),
                         b=torch.zeros(200, requires_grad=True), gy=torch.from_numpy(gy)):
            x.grad = W.grad = b.grad = None
            torch.nn.functional.linear(x, W, b).backward(gy)
    cases.append(("linear fwd+bwd (4, 32, 784) -> 200", None, zero_linear, torch_linear))
    return cases


def worker(framework, repeats):
    """In a fresh process: the best seconds of each case for one framework, printed as JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch = None
    if framework == "torch":
        import torch
    seconds = {}
    for name, _, zero_step, torch_step in _cases(torch):
        seconds[name] = _best_seconds(zero_step if framework == "zero" else torch_step, repeats)
    print(json.dumps(seconds))


def run(quick=False):
    try:
        import torch
    except ImportError:
        torch = None
    repeats = QUICK_REPEATS if quick else REPEATS
    frameworks = ["zero"] + (["torch"] if torch is not None else [])
    best = {framework: {} for framework in frameworks}
    for _ in range(1 if quick else ROUNDS):
        for framework in frameworks:
            for name, seconds in run_worker(__file__, framework, repeats, zero_allocator=framework == "zero").items():
                best[framework][name] = min(seconds, best[framework].get(name, float("inf")))
    rows = []
    for name, zero_seconds in best["zero"].items():
        torch_seconds = best["torch"][name] if torch is not None else None
        rows.append({"benchmark": name, "unit": "s", "zero": zero_seconds, "reference": torch_seconds,
                     "reference_name": f"torch {torch.__version__} CPU" if torch else "torch (not installed)",
                     "ratio": zero_seconds / torch_seconds if torch_seconds else None, "target": None,
                     "note": f"best of {repeats} x {1 if quick else ROUNDS} rounds, float32, each framework "
                             f"in its own subprocess" + (f", torch threads {torch.get_num_threads()}" if torch else "")})
    return rows


if __name__ == "__main__":
    main(run, worker)
