"""The diffusion U-Net (zero.unet.UNet) against the same architecture in PyTorch CPU.

Two tasks at two sizes: one training step (forward, MSE on the noise, backward, Adam) and one
DDPM denoising step (a forward pass without gradients in test mode, then the update (9.4)), for
the CPU default (channels 32/64/128, batch 32) and the book (64/128/256, batch 128).
Time: the median of several repetitions after a warm-up, from the faster of ROUNDS rounds that
alternate the frameworks (target zero/PyTorch <= 1.3).
Peak memory: the peak resident set size of a fresh process running only that measurement, above
its peak before the first step (the framework's import, the model and the inputs: importing torch
alone takes about 220 MB, zero about 40; the whole process's peak is in the row's note).
Every measurement runs in its own subprocess, so neither framework's memory pollutes the other.
A third measurement times PyTorch with the C allocator settings that importing zero makes
(workers.py), as a second reference.

    python benchmarks/run.py unet [--quick]
    python benchmarks/bench_unet.py --worker zero --config cpu --task train   # one measurement, JSON
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from workers import peak_rss_kb, run_worker, unsteady_timings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"cpu": ((32, 64, 128), 32), "book": ((64, 128, 256), 128)}  # channels, batch size
ROUNDS = 2  # alternating zero/PyTorch measurement rounds; the fastest counts
TIME_EMBED_DIM = 100
T = 1000


def _zero_worker(channels, batch_size, task, repeats):
    sys.path.insert(0, str(ROOT))
    import zero
    import zero.functions as F
    from zero.diffusion import Diffusion
    from zero.optimizers import Adam
    from zero.unet import UNet

    np.random.seed(0)
    model = UNet(channels=channels, time_embed_dim=TIME_EMBED_DIM)
    diffusion = Diffusion(T)
    optimizer = Adam(model.params(), lr=1e-3)
    x = np.random.standard_normal((batch_size, 1, 28, 28)).astype(np.float32)
    t = np.random.randint(1, T + 1, batch_size)

    def train_step():
        loss = F.mean_squared_error(model(x, t), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def denoise_step():
        with zero.no_grad(), zero.test_mode():
            eps = model(x, np.full(batch_size, 500)).data
        diffusion.ddpm_step(x, eps, 500)

    return _time(train_step if task == "train" else denoise_step, repeats)


def _torch_worker(channels, batch_size, task, repeats):
    import torch
    import torch.nn as nn
    import torch.nn.functional as TF

    def encoding(t, dim):
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2).float() / dim)
        angles = t.float()[:, None] * frequencies[None]
        v = torch.empty(len(t), dim)
        v[:, 0::2], v[:, 1::2] = torch.sin(angles), torch.cos(angles[:, :dim // 2])
        return v

    class Block(nn.Module):
        def __init__(self, c_in, c_out):
            super().__init__()
            self.c_in = c_in
            self.convs = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                       nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(c_out), nn.ReLU())
            self.mlp = nn.Sequential(nn.Linear(TIME_EMBED_DIM, c_in), nn.ReLU(), nn.Linear(c_in, c_in))

        def forward(self, x, v):
            return self.convs(x + self.mlp(v).view(len(v), self.c_in, 1, 1))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            c1, c2, c3 = channels
            self.down1, self.down2, self.bottleneck = Block(1, c1), Block(c1, c2), Block(c2, c3)
            self.up2, self.up1, self.out = Block(c3 + c2, c2), Block(c2 + c1, c1), nn.Conv2d(c1, 1, 1)

        def forward(self, x, t):
            v = encoding(t, TIME_EMBED_DIM)
            x1 = self.down1(x, v)
            x2 = self.down2(TF.max_pool2d(x1, 2), v)
            h = self.bottleneck(TF.max_pool2d(x2, 2), v)
            h = self.up2(torch.cat([TF.interpolate(h, scale_factor=2, mode="bilinear"), x2], 1), v)
            h = self.up1(torch.cat([TF.interpolate(h, scale_factor=2, mode="bilinear"), x1], 1), v)
            return self.out(h)

    torch.manual_seed(0)
    model = UNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, 28, 28)
    t = torch.randint(1, T + 1, (batch_size,))
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bars = torch.cumprod(1 - betas, 0)
    beta, alpha, alpha_bar = float(betas[499]), float(1 - betas[499]), float(alpha_bars[499])
    sigma = math.sqrt(beta * (1 - float(alpha_bars[498])) / (1 - alpha_bar))

    def train_step():
        loss = TF.mse_loss(model(x, t), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def denoise_step():
        model.eval()
        with torch.no_grad():
            eps = model(x, torch.full((batch_size,), 500))
            (x - beta / math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha) + sigma * torch.randn_like(x)

    return _time(train_step if task == "train" else denoise_step, repeats)


def _time(step, repeats):
    """Median seconds of `repeats` steps after a warm-up, and the peak RSS (kB) before the first
    step: the framework, the model and the inputs, which the step's own peak is measured above."""
    before_kb = peak_rss_kb()
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), before_kb


def _measure(framework, config, task, repeats):
    """Run one measurement in a fresh process: (seconds, peak RSS in MB), or None if it failed.
    framework 'torch-zero-allocator': PyTorch with the C allocator settings zero makes (workers.py)."""
    zero_allocator = framework in ("zero", "torch-zero-allocator")
    framework = "torch" if framework == "torch-zero-allocator" else framework
    try:
        return run_worker(__file__, framework, "--config", config, "--task", task, "--repeats", repeats,
                          zero_allocator=zero_allocator)
    except RuntimeError as error:
        if framework == "torch" and "No module named 'torch'" in str(error):
            return None
        raise


def _measure_alternating(config, task, repeats, rounds):
    """zero, PyTorch, zero, PyTorch, ... (rounds of each), so that a slow spell of the machine
    hits both alike: per framework the fastest round's result, None for PyTorch if missing, and
    unsteady_timings' text on zero's and PyTorch's rounds."""
    results = {"zero": [], "torch": [], "torch-zero-allocator": []}
    for _ in range(rounds):
        for framework in results:
            result = _measure(framework, config, task, repeats)
            if result is not None:
                results[framework].append(result)
    fastest = {framework: min(found, key=lambda result: result["seconds"]) if found else None
               for framework, found in results.items()}
    unsteady = unsteady_timings({framework: [result["seconds"] for result in results[framework]]
                                 for framework in ("zero", "torch")})
    return fastest["zero"], fastest["torch"], fastest["torch-zero-allocator"], unsteady


def run(quick=False):
    rows = []
    for config in ("cpu", "book"):
        channels, batch_size = CONFIGS[config]
        for task in ("train", "denoise"):
            repeats = 2 if quick else (5 if config == "book" else 10)
            rounds = 1 if quick else ROUNDS
            zero_result, torch_result, kept_result, unsteady = _measure_alternating(config, task, repeats, rounds)
            name = f"unet {'/'.join(map(str, channels))} batch {batch_size} {task} step"
            reference_name = "pytorch cpu" if torch_result else "pytorch cpu (not installed)"
            note = (f"median of {repeats} after a warm-up, each framework in its own process; "
                    f"best of {rounds} such rounds, alternating zero and PyTorch")
            rows.append({"benchmark": name, "unit": "s", "zero": zero_result["seconds"],
                         "reference": torch_result and torch_result["seconds"], "reference_name": reference_name,
                         "ratio": torch_result and zero_result["seconds"] / torch_result["seconds"],
                         "target": 1.3, "note": note, "unsteady": unsteady})
            if kept_result:
                rows.append({"benchmark": name + ", PyTorch with zero's allocator settings", "unit": "s",
                             "zero": zero_result["seconds"], "reference": kept_result["seconds"],
                             "reference_name": "pytorch cpu, GLIBC_TUNABLES",
                             "ratio": zero_result["seconds"] / kept_result["seconds"], "target": None,
                             "note": f"PyTorch started with the malloc settings importing zero makes (workers.py); "
                                     f"peak RSS above model and inputs {kept_result['step_peak_mb']:.0f} MB"})
            whole = f"whole process: zero {zero_result['peak_rss_mb']:.0f} MB" + (
                f", PyTorch {torch_result['peak_rss_mb']:.0f} MB" if torch_result else "")
            rows.append({"benchmark": name + " peak RSS above model and inputs", "unit": "MB",
                         "zero": zero_result["step_peak_mb"],
                         "reference": torch_result and torch_result["step_peak_mb"], "reference_name": reference_name,
                         "ratio": torch_result and zero_result["step_peak_mb"] / torch_result["step_peak_mb"],
                         "target": None, "note": f"peak RSS (VmHWM) above the peak before the first step; {whole}"})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["zero", "torch"], required=True)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--task", choices=["train", "denoise"], default="train")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    channels, batch_size = CONFIGS[args.config]
    worker = _zero_worker if args.worker == "zero" else _torch_worker
    seconds, before_kb = worker(channels, batch_size, args.task, args.repeats)
    peak_kb = peak_rss_kb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "step_peak_mb": (peak_kb - before_kb) / 1024}))


if __name__ == "__main__":
    main()
