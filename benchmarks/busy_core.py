"""What a busy core costs: zero's training steps with BLAS's default threads and with one thread,
on an idle machine and beside one busy process (a Python loop that keeps one core at 100%).

OpenBLAS, NumPy's BLAS, splits each matrix product over every core and waits for the slowest
part, so a core taken by another program slows every product. Not a target: a measurement for
README's advice (on a machine doing something else, OPENBLAS_NUM_THREADS = the free cores).

    python benchmarks/busy_core.py            # the autoencoder and the CPU-default U-Net step
                                              # (and PyTorch's autoencoder, when torch is installed)
    python benchmarks/busy_core.py --quick    # smaller workloads (smoke test)

Each measurement runs in a fresh process, since OpenBLAS reads its thread count when it starts:
`busy_core.py --worker autoencoder|torch_autoencoder`, or `bench_unet.py --worker zero` for the U-Net.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))


def autoencoder_seconds(images, epochs):
    """Seconds to fit the autoencoder 784-200-20-200-784 (Adam, batch 64) for `epochs` on random images."""
    import contextlib
    import io

    import numpy as np
    from zero.autoencoder import Autoencoder
    from zero.optimizers import Adam
    from zero.training import fit
    x = np.random.default_rng(0).random((images, 784), dtype=np.float32)
    model = Autoencoder(784, 200, 20)
    optimizer = Adam(model.params(), lr=1e-3)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # fit's lines
        fit(model, optimizer, x, epochs, 64)
    return time.perf_counter() - start


def torch_autoencoder_seconds(images, epochs):
    """The same autoencoder, loss and batches' size in PyTorch CPU (the reference's own slowdown)."""
    import numpy as np
    import torch
    x = torch.from_numpy(np.random.default_rng(0).random((images, 784), dtype=np.float32))
    model = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.ReLU(), torch.nn.Linear(200, 20),
                                torch.nn.Linear(20, 200), torch.nn.ReLU(), torch.nn.Linear(200, 784), torch.nn.Sigmoid())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(images)
        for begin in range(0, images, 64):
            batch = x[order[begin:begin + 64]]
            loss = ((model(batch) - batch) ** 2).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
    return time.perf_counter() - start


# every variable that limits OpenBLAS's threads (OPENBLAS_, GOTO_, OMP_), PyTorch's (OMP_, MKL_) or zero's
# convolutions' (ZERO_THREADS; they take OpenBLAS's count without it): unset, so that "default threads" are
# the libraries' own defaults
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ZERO_THREADS")
# the busy process: a Python loop at 100% of one core, which stops when its parent does (even a killed one)
SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass"


def measure(workload, quick, one_thread):
    """Seconds of one workload in a fresh process, with OpenBLAS's default threads or one."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.pop(name, None)
    if one_thread:
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")   # OpenMP: PyTorch's threads
    if workload == "unet":   # bench_unet's zero worker: the CPU-default U-Net's training step, batch 32
        command = [sys.executable, str(HERE.parent / "bench_unet.py"), "--worker", "zero", "--repeats",
                   "1" if quick else "5"]
    else:
        command = [sys.executable, str(HERE), "--worker", workload] + (["--quick"] if quick else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=["autoencoder", "torch_autoencoder"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        images, epochs = (512, 1) if args.quick else (4000, 2)
        seconds = (autoencoder_seconds if args.worker == "autoencoder" else torch_autoencoder_seconds)(images, epochs)
        print(json.dumps({"seconds": seconds}))
        return
    size = " (quick)" if args.quick else ", 2 epochs of 4,000 images"
    workloads = {"autoencoder": f"autoencoder{size}", "unet": "U-Net training step, batch 32"}
    if importlib.util.find_spec("torch") is not None:
        workloads["torch_autoencoder"] = f"PyTorch autoencoder{size}"
    rows = {}
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
        try:
            if spinner:
                time.sleep(1)   # let it take its core
            for workload in workloads:
                for one_thread in (False, True):
                    rows[workload, busy, one_thread] = measure(workload, args.quick, one_thread)
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
    print(f"{'seconds':<48}{'idle':>10}{'idle, 1 thread':>16}{'busy core':>12}{'busy, 1 thread':>16}"
          f"{'busy/idle':>11}{'busy/idle, 1 thread':>21}")
    for workload, name in workloads.items():
        idle, idle_one, busy, busy_one = (rows[workload, b, o] for b in (False, True) for o in (False, True))
        print(f"{name:<48}{idle:>10.3f}{idle_one:>16.3f}{busy:>12.3f}{busy_one:>16.3f}"
              f"{busy / idle:>11.2f}{busy_one / idle_one:>21.2f}")


if __name__ == "__main__":
    main()
