"""VAE parity with PyTorch: the book's VAE (784-200-20, Adam 3e-4, batch 32, book loss) trained in
zero and in PyTorch CPU from the same initial weights on the same batches, on MNIST's test split
(first 8,000 images train, last 2,000 held out). Reports the held-out loss after the same epochs
(target: within 2% of PyTorch's) and the time per epoch (target: zero/PyTorch <= 0.7, PyTorch with
torch.optim.Adam as the book writes it; a row without a target times PyTorch's fused Adam). A third
worker times the same training in NumPy by hand (numpy_vae_step: the gradients and Adam written
out, no graph), NumPy's own time for this arithmetic; the epoch-time row's note gives it, and what
zero's engine adds to each step (engine_cost: zero and NumPy by hand on a VAE so small that the
arithmetic costs next to nothing), and so the least an engine of zero's design could take: NumPy by
hand plus that. The note also gives each framework's range of epoch times: when zero's, PyTorch's
or NumPy by hand's range wider than 1.3x, the machine changed speed during the run, and the row is
judged 'unsure' (workers.unsteady_timings).

    python benchmarks/run.py vae [--quick]
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the worker subprocesses run this file as a script
import zero  # noqa: E402
from zero.data import DataLoader, Dataset
from zero.optimizers import Adam
from zero.training import mnist_splits
from zero.vae import VAE
from by_hand import adam_by_hand
from workers import mnist_folder, mnist_not_found, run_worker, unsteady_timings

EPOCHS, QUICK_EPOCHS, QUICK_IMAGES = 3, 1, 2000
ROUNDS = 2  # subprocesses per framework, taking turns
ENGINE_VAE = (8, 4, 2)  # the engine's cost: a VAE of 8 pixels, 4 hidden units and 2 latents, arithmetic next to nothing
ENGINE_ROUNDS, QUICK_ENGINE_ROUNDS = 4, 1
BATCH = 32  # the book's batch size, in every trainer here


def _batches(x, seed, epoch):
    return list(DataLoader(Dataset(x), BATCH, seed=(seed, epoch)))


def _steps_per_epoch(images):
    """An epoch's steps: batches of BATCH, the last one partial."""
    return math.ceil(images / BATCH)


def _train_zero(model, x_train, x_heldout, epochs, seed):
    """Yields each epoch's time, then (after the last) the held-out loss."""
    optimizer = Adam(model.params(), lr=3e-4)
    for epoch in range(1, epochs + 1):
        batches = _batches(x_train, seed, epoch)
        start = time.perf_counter()
        for x in batches:
            loss = model.loss(x)  # the batch is a constant: no input gradient
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        yield time.perf_counter() - start
    with zero.no_grad():
        yield model.loss(zero.Variable(x_heldout)).item()


def numpy_vae_step(weights):
    """zero's VAE training step in NumPy by hand, no graph: loss(x) computes the book loss of a
    batch, its gradients and an Adam step (lr 3e-4) on copies of `weights` (zero's named params),
    drawing eps from NumPy's global generator as zero does. The forward pass, per batch of N:
        h = relu(x We + be),  mu = h Wm + bm,  logvar = h Wl + bl,  s = e^(logvar/2),
        z = mu + s eps,  d = relu(z W1 + b1),  x_hat = sigmoid(d W2 + b2),
        L = [sum (x_hat - x)^2 + sum (e^logvar + mu^2 - 1 - logvar)] / N
    and backward, each gradient from the one after it:
        g_logits = 2 (x_hat - x) x_hat (1 - x_hat) / N,  g_d = (g_logits W2^T) [d > 0],
        g_z = g_d W1^T,  g_mu = g_z + 2 mu / N,  g_logvar = g_z eps s / 2 + (e^logvar - 1) / N,
        g_h = (g_mu Wm^T + g_logvar Wl^T) [h > 0],  and g_W = input^T g_out, g_b = 1^T g_out per layer."""
    names = ["encoder.hidden", "encoder.to_mu", "encoder.to_logvar", "decoder.layers.0", "decoder.layers.1"]
    (We, be), (Wm, bm), (Wl, bl), (W1, b1), (W2, b2) = layers = [
        (weights[name + ".W"].copy(), weights[name + ".b"].copy()) for name in names]
    adam = adam_by_hand([array for layer in layers for array in layer], lr=3e-4)

    def loss(x):
        n = len(x)
        ones = np.ones(n, np.float32)
        a = x @ We
        a += be
        h = np.maximum(a, 0)
        mu = h @ Wm
        mu += bm
        logvar = h @ Wl
        logvar += bl
        s = np.exp(0.5 * logvar)
        eps = np.random.standard_normal(mu.shape).astype(np.float32)
        z = s * eps
        z += mu
        c = z @ W1
        c += b1
        d = np.maximum(c, 0)
        x_hat = d @ W2
        x_hat += b2
        np.negative(x_hat, out=x_hat)    # sigmoid = 1 / (1 + e^-logits)
        np.exp(x_hat, out=x_hat)
        x_hat += 1
        np.reciprocal(x_hat, out=x_hat)
        diff = x_hat - x
        var = np.exp(logvar)
        kl = var + mu * mu
        kl -= 1
        kl -= logvar
        value = (np.vdot(diff, diff) + kl.sum()) / n

        g_logits = diff * np.float32(2 / n)
        g_logits *= x_hat
        g_logits *= 1 - x_hat
        g_d = g_logits @ W2.T
        g_d *= c > 0
        g_z = g_d @ W1.T
        g_mu = mu * np.float32(2 / n)
        g_mu += g_z
        g_logvar = g_z * eps
        g_logvar *= s
        g_logvar *= np.float32(0.5)
        var -= 1
        var *= np.float32(1 / n)
        g_logvar += var
        g_h = g_mu @ Wm.T
        g_h += g_logvar @ Wl.T
        g_h *= a > 0
        adam([x.T @ g_h, ones @ g_h, h.T @ g_mu, ones @ g_mu, h.T @ g_logvar, ones @ g_logvar,
              z.T @ g_d, ones @ g_d, d.T @ g_logits, ones @ g_logits])
        return value
    return loss


def _train_numpy(weights, x_train, epochs, seed):
    """Yields each epoch's time of numpy_vae_step over the same batches as zero's."""
    loss = numpy_vae_step(weights)
    for epoch in range(1, epochs + 1):
        batches = _batches(x_train, seed, epoch)
        start = time.perf_counter()
        for x in batches:
            loss(x)
        yield time.perf_counter() - start


def engine_cost(images, rounds):
    """(zero's step, NumPy by hand's step) in seconds, the best epoch of each over `rounds`, taking turns
    in this one process, on random images of ENGINE_VAE's 8 pixels, as many as `images`, in batches of BATCH:
    both run the same NumPy calls, on arrays this small that the arithmetic costs next to nothing, so
    the difference is zero's engine around them (Function objects, Variables, the walk backwards),
    which it adds to every step at any size."""
    x_train = np.random.default_rng(0).random((images, ENGINE_VAE[0]), dtype=np.float32)
    np.random.seed(0)
    model = VAE(*ENGINE_VAE)
    weights = {name: p.data.copy() for name, p in model.named_params()}
    zero_epochs = _train_zero(model, x_train, x_train[:BATCH], rounds, seed=0)
    numpy_epochs = _train_numpy(weights, x_train, rounds, seed=0)
    zero_times, numpy_times = [], []
    for _ in range(rounds):   # an epoch of each, by turns
        zero_times.append(next(zero_epochs))
        numpy_times.append(next(numpy_epochs))
    steps = _steps_per_epoch(images)
    return min(zero_times) / steps, min(numpy_times) / steps


def _train_torch(torch, weights, x_train, x_heldout, epochs, seed, fused=False):
    """fused: torch.optim.Adam(fused=True), PyTorch's fastest Adam on the CPU, instead of its default
    (a loop over the parameters there), which the book writes and the target's row measures."""
    nn, functional = torch.nn, torch.nn.functional

    class TorchVAE(nn.Module):  # the book's step-7 model, with log-variance outputs as zero's
        def __init__(self):
            super().__init__()
            self.hidden, self.to_mu, self.to_logvar = nn.Linear(784, 200), nn.Linear(200, 20), nn.Linear(200, 20)
            self.dec1, self.dec2 = nn.Linear(20, 200), nn.Linear(200, 784)

        def loss(self, x, generator):
            h = functional.relu(self.hidden(x))
            mu, logvar = self.to_mu(h), self.to_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
            x_hat = torch.sigmoid(self.dec2(functional.relu(self.dec1(z))))
            l1 = functional.mse_loss(x_hat, x, reduction="sum")
            l2 = -torch.sum(1 + logvar - mu ** 2 - logvar.exp())
            return (l1 + l2) / len(x)

    model = TorchVAE()
    names = {"hidden": "encoder.hidden", "to_mu": "encoder.to_mu", "to_logvar": "encoder.to_logvar",
             "dec1": "decoder.layers.0", "dec2": "decoder.layers.1"}
    with torch.no_grad():
        for torch_name, zero_name in names.items():
            layer = getattr(model, torch_name)
            layer.weight.copy_(torch.from_numpy(weights[zero_name + ".W"].T.copy()))  # zero's W is (in, out)
            layer.bias.copy_(torch.from_numpy(weights[zero_name + ".b"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=fused)
    generator = torch.Generator().manual_seed(seed)  # its own: the runs alternate epochs
    for epoch in range(1, epochs + 1):
        batches = [torch.from_numpy(x) for x in _batches(x_train, seed, epoch)]
        start = time.perf_counter()
        for x in batches:
            loss = model.loss(x, generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        yield time.perf_counter() - start
    with torch.no_grad():
        yield model.loss(torch.from_numpy(x_heldout), generator).item()


def worker(framework, quick):
    """In a fresh process: train zero's or PyTorch's VAE from the same initial weights (zero's,
    seed 0) on the same batches; print the epoch times and the held-out loss (JSON)."""
    data = mnist_splits(mnist_folder(), source="test")
    x_train, x_heldout = data.x_train, data.x_heldout
    epochs = QUICK_EPOCHS if quick else EPOCHS
    if quick:
        x_train = x_train[:QUICK_IMAGES]
    if framework == "engine":
        zero_step, numpy_step = engine_cost(len(x_train), QUICK_ENGINE_ROUNDS if quick else ENGINE_ROUNDS)
        print(json.dumps({"zero_step": zero_step, "numpy_step": numpy_step}))
        return
    np.random.seed(0)
    model = VAE()
    if framework == "zero":
        trainer = _train_zero(model, x_train, x_heldout, epochs, seed=0)
    elif framework == "numpy":
        weights = {name: p.data.copy() for name, p in model.named_params()}
        times = list(_train_numpy(weights, x_train, epochs, seed=0))
        print(json.dumps({"epoch_times": times}))
        return
    else:
        import torch  # as many threads as zero's BLAS (workers.worker_threads)
        weights = {name: p.data.copy() for name, p in model.named_params()}
        trainer = _train_torch(torch, weights, x_train, x_heldout, epochs, seed=0, fused=framework == "torch_fused")
    times = [next(trainer) for _ in range(epochs)]
    print(json.dumps({"epoch_times": times, "heldout_loss": next(trainer), "train_images": len(x_train),
                      "heldout_images": len(x_heldout)}))


def _measure(framework, quick):
    return run_worker(__file__, framework, *(["--quick"] if quick else []), zero_allocator=not framework.startswith("torch"))


def run(quick=False):
    """zero and PyTorch take turns, each training in its own subprocess (ROUNDS each): in one
    process NumPy's idle OpenBLAS threads slowed PyTorch's epochs by about a fifth. Skipped (no
    rows) when MNIST's test split is not found (workers.mnist_folder)."""
    if mnist_folder() is None:
        print(mnist_not_found("bench_vae"))
        return []
    try:
        import torch
    except ImportError:
        torch = None
    frameworks = ["zero", "numpy"] + (["torch", "torch_fused"] if torch is not None else [])
    results = {name: [] for name in frameworks}
    for _ in range(1 if quick else ROUNDS):
        for name in frameworks:
            results[name].append(_measure(name, quick))
    engine = _measure("engine", quick)
    zero_loss, zero_time = results["zero"][0]["heldout_loss"], min(t for r in results["zero"] for t in r["epoch_times"])
    torch_loss = torch_time = None
    if torch is not None:
        torch_loss = results["torch"][0]["heldout_loss"]
        torch_time = min(t for r in results["torch"] for t in r["epoch_times"])
    first = results["zero"][0]
    epochs = len(first["epoch_times"])
    note = (f"{epochs} epochs on {first['train_images']} images, held-out {first['heldout_images']}; epoch time: "
            f"best of {epochs * len(results['zero'])}, each framework in its own subprocess, taking turns")
    numpy_time = min(t for r in results["numpy"] for t in r["epoch_times"])
    by_hand = f"; NumPy by hand {numpy_time:.3f} s" + (
        "" if torch_time is None else f" (ratio {numpy_time / torch_time:.2f} against torch: NumPy's own time, no engine)")
    engine_step = engine["zero_step"] - engine["numpy_step"]
    steps = _steps_per_epoch(first["train_images"])
    by_hand += (f"; on a VAE of {ENGINE_VAE[0]} pixels, {ENGINE_VAE[1]} hidden units and {ENGINE_VAE[2]} latents "
                f"(arithmetic next to nothing) "
                f"zero's step took {engine['zero_step'] * 1e6:.0f} us, NumPy by hand's {engine['numpy_step'] * 1e6:.0f}"
                f" us: zero's engine adds {engine_step * 1e6:.0f} us to each of an epoch's {steps} steps")
    if torch_time is not None:
        engine_share = engine_step * steps / torch_time
        by_hand += (f", {engine_share:.2f} of torch's epoch, so NumPy by hand plus zero's engine come to "
                    f"{numpy_time / torch_time + engine_share:.2f}")
    reference_name = "pytorch cpu" if torch is not None else "pytorch cpu (not installed)"
    loss_ratio = None if torch_loss is None else zero_loss / torch_loss
    epoch_times = {name: [t for r in found for t in r["epoch_times"]] for name, found in results.items()}
    ranges = "; epoch times " + ", ".join(f"{name} {min(times):.3f}-{max(times):.3f} s"
                                          for name, times in epoch_times.items())
    rows = [
        {"benchmark": "vae held-out loss", "unit": "book loss/image", "zero": zero_loss, "reference": torch_loss,
         "reference_name": reference_name, "ratio": loss_ratio, "target": 1.02,
         "ok": None if loss_ratio is None else abs(loss_ratio - 1) <= 0.02, "note": note + "; target |ratio - 1| <= 0.02"},
        {"benchmark": "vae epoch time", "unit": "s", "zero": zero_time, "reference": torch_time,
         "reference_name": reference_name, "ratio": None if torch_time is None else zero_time / torch_time,
         "target": 0.7, "note": note + by_hand + ranges + "; PyTorch with torch.optim.Adam's default (a loop over "
                                                           "the parameters on the CPU)",
         # NumPy by hand too: the same arithmetic between the two, it shows a slow spell that fell on one side's turns
         "unsteady": unsteady_timings({name: epoch_times[name] for name in ("zero", "torch", "numpy")
                                       if name in epoch_times})},
    ]
    if torch is not None:
        fused_time = min(t for r in results["torch_fused"] for t in r["epoch_times"])
        rows.append({"benchmark": "vae epoch time, against PyTorch's fused Adam", "unit": "s", "zero": zero_time,
                     "reference": fused_time, "reference_name": "pytorch cpu, Adam(fused=True)",
                     "ratio": zero_time / fused_time, "target": None,
                     "note": f"{note}; PyTorch's fastest Adam here (its held-out loss "
                             f"{results['torch_fused'][0]['heldout_loss']:.4f})"})
    return rows


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(sys.argv[sys.argv.index("--worker") + 1], quick="--quick" in sys.argv)
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
