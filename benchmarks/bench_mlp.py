"""MLP classifier training step: 784-200-10 (ReLU), softmax cross entropy,
Adam (lr 1e-3), batch 32, on MNIST batches (synthetic data if MNIST is absent).

One step = forward, loss, zero_grad, backward, optimizer step. At this size a
step is a few hundred microseconds of arithmetic, so framework overhead
matters. PyTorch CPU runs the same model with torch.optim.Adam as the book writes it (the
target's reference; on the CPU it loops over the parameters) and, in a row of its own without a
target, with Adam(fused=True), its fastest here; each framework with the same number of threads
(workers.worker_threads: PyTorch's default, the physical cores, unless OMP_NUM_THREADS or
OPENBLAS_NUM_THREADS says otherwise; run.py prints it above the table). Each
framework runs in its own subprocesses, taking turns: in one process, NumPy's
OpenBLAS threads keep spinning after zero's products and slowed PyTorch's next
steps, by about half when this was measured (2026-12-02). A third
worker runs the same step in NumPy by hand (gradients and Adam written out, no
graph): NumPy's own time for this arithmetic, the least an engine built on it
could take; the row's note gives it. Profile zero's step with:

    python benchmarks/bench_mlp.py --profile
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from by_hand import adam_by_hand
from workers import load_note, main, mnist_folder, run_worker

SIZES = (784, 200, 10)
BATCH = 32
ROUNDS = 10
STEPS_PER_ROUND = 200
WARMUP = 50


def batches(count, seed=0):
    """count batches (x (count, BATCH, 784) float32, t (count, BATCH) int64).

    Real MNIST images when the test split is found (workers.mnist_folder), else
    standardized Gaussian inputs labelled by a fixed random linear teacher. Either
    way the network keeps learning; with structureless data (e.g. uniform noise
    and random labels) Adam drives every hidden unit dead and its moments into
    float32 denormals, which makes every array op several times slower and the
    timing meaningless.
    """
    rng = np.random.default_rng(seed)
    folder = mnist_folder()
    if folder is not None:
        from zero.mnist import load_mnist
        images, labels = load_mnist("test", data_dir=folder, download=False, flatten=True)
        picks = rng.integers(0, len(images), (count, BATCH))
        return images[picks], labels[picks]
    x = rng.standard_normal((count, BATCH, SIZES[0]), dtype=np.float32)
    teacher = rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)
    return x, (x @ teacher).argmax(axis=-1)


def zero_step_function():
    import zero.functions as F
    from zero.models import MLP
    from zero.optimizers import Adam
    np.random.seed(0)
    model = MLP(SIZES)
    optimizer = Adam(model.params(), lr=1e-3)

    def step(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def numpy_step_function():
    """zero's step (the same initial weights, arithmetic and Adam update) in NumPy by hand:
        h = relu(x W1 + b1),  z = h W2 + b2,  loss = mean_n (log sum_c e^z_nc - z_n,t_n)
        gz = (softmax(z) - onehot(t)) / N,  gW2 = h^T gz,  gb2 = 1^T gz,
        gh = (gz W2^T) [h > 0],  gW1 = x^T gh,  gb1 = 1^T gh,
    then zero.optimizers.Adam's in-place passes (by_hand.adam_by_hand)."""
    from zero.models import MLP
    np.random.seed(0)
    (W1, b1), (W2, b2) = [(layer.W.data.copy(), layer.b.data.copy()) for layer in MLP(SIZES).layers]
    adam = adam_by_hand([W1, b1, W2, b2], lr=1e-3)
    ones = np.ones(BATCH, np.float32)

    def step(x, t):
        n = len(x)
        a = x @ W1
        a += b1
        h = np.maximum(a, 0)
        z = h @ W2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        gz = np.exp(z)
        sum_exp = gz.sum(axis=1, keepdims=True)
        loss = (np.log(sum_exp[:, 0]) - z[np.arange(n), t]).sum() / n
        gz /= sum_exp                       # softmax(z)
        gz[np.arange(n), t] -= 1
        gz *= np.float32(1 / n)
        gh = gz @ W2.T
        gh *= a > 0
        adam([x.T @ gh, ones[:n] @ gh, h.T @ gz, ones[:n] @ gz])
        return loss
    return step


def torch_step_function(fused=False):
    """PyTorch's step. fused=False: torch.optim.Adam as the book and most code write it, which on the
    CPU loops over the parameters; fused=True: its one-kernel Adam (the fastest PyTorch has here)."""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(),
                                torch.nn.Linear(SIZES[1], SIZES[2]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)

    def step(x, t):
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(t))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def seconds_per_step(step, x, t):
    """Mean seconds per step over the batches x, t."""
    start = time.perf_counter()
    for i in range(len(x)):
        step(x[i], t[i])
    return (time.perf_counter() - start) / len(x)


ROUNDS_PER_PROCESS = 2


def worker(framework, rounds):
    """In a fresh process: warm up, then print the seconds per step of `rounds` rounds (JSON)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    x, t = batches(STEPS_PER_ROUND)
    step = {"zero": zero_step_function, "numpy": numpy_step_function, "torch": torch_step_function,
            "torch_fused": lambda: torch_step_function(fused=True)}[framework]()
    seconds_per_step(step, x[:WARMUP], t[:WARMUP])
    print(json.dumps([seconds_per_step(step, x, t) for _ in range(rounds)]))


def measure(framework, rounds):
    return run_worker(__file__, framework, rounds, zero_allocator=not framework.startswith("torch"))


def run(quick=False):
    """Zero and torch take turns, each in its own subprocess of ROUNDS_PER_PROCESS rounds of
    STEPS_PER_ROUND steps, so that a burst of load on the machine hits both and neither's idle
    threads steal the other's cores; each reports its median round."""
    rounds = 2 if quick else ROUNDS
    try:
        import torch
    except ImportError:
        torch = None
    frameworks = ["zero", "numpy"] + (["torch", "torch_fused"] if torch is not None else [])
    times = {name: [] for name in frameworks}
    while len(times["zero"]) < rounds:
        for name in frameworks:
            times[name] += measure(name, ROUNDS_PER_PROCESS)
    zero_seconds, numpy_seconds = (float(np.median(times[name])) for name in ("zero", "numpy"))
    best = f"best round zero {min(times['zero']) * 1e3:.3f} ms"
    by_hand = f"NumPy by hand {numpy_seconds * 1e3:.3f} ms"
    row = {"benchmark": f"MLP 784-200-10 train step, batch {BATCH}, Adam", "unit": "s/step",
           "zero": zero_seconds, "reference": None, "reference_name": "torch (not installed)",
           "ratio": None, "target": 0.7}
    if torch is not None:
        torch_seconds = float(np.median(times["torch"]))
        best += f", torch {min(times['torch']) * 1e3:.3f} ms ({torch.get_num_threads()} threads)"
        row.update(reference=torch_seconds, reference_name=f"torch {torch.__version__} CPU",
                   ratio=zero_seconds / torch_seconds)
        by_hand += f" (ratio {numpy_seconds / torch_seconds:.2f} against torch: NumPy's own time, no engine)"
        fused_seconds = float(np.median(times["torch_fused"]))
        fused_row = dict(row, benchmark=row["benchmark"] + ", against PyTorch's fused Adam", reference=fused_seconds,
                         reference_name=f"torch {torch.__version__} CPU, Adam(fused=True)",
                         ratio=zero_seconds / fused_seconds, target=None,
                         note=f"the target row's PyTorch uses torch.optim.Adam's default, a loop over the "
                              f"parameters on the CPU; fused=True is PyTorch's fastest Adam here "
                              f"(median {fused_seconds * 1e3:.3f} ms a step against {torch_seconds * 1e3:.3f} ms)")
    data = "MNIST" if mnist_folder() is not None else "synthetic data"
    row["note"] = (f"{data}; median of {len(times['zero'])} rounds x {STEPS_PER_ROUND} steps, "
                   f"{ROUNDS_PER_PROCESS} per subprocess, taking turns; {by_hand}; {best}{load_note()}")
    return [row] if torch is None else [row, fused_row]


def profile(steps=1000):
    """cProfile of zero's training step, top entries by total time."""
    import cProfile
    import pstats
    x, t = batches(steps)
    step = zero_step_function()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(steps):
        step(x[i], t[i])
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    if "--profile" in sys.argv:
        profile()
    else:
        main(run, worker)
