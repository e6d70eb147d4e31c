"""Small CNN on real MNIST: accuracy and training time, zero vs PyTorch CPU.

Data: the MNIST *test* split (the only one assumed present locally): the
first 8,000 images train, the last 2,000 evaluate. Model (both frameworks):

    conv 3x3 (1 -> 16, pad 1) - ReLU - max pool 2   (N, 16, 14, 14)
    conv 3x3 (16 -> 32, pad 1) - ReLU - max pool 2  (N, 32, 7, 7)
    linear 1568 -> 10

Adam lr 2e-3, lowered linearly at each epoch's start (lr (1 - epoch / EPOCHS): 2e-3, 1.5e-3,
1e-3, 5e-4 for 4 epochs), batch 64, EPOCHS epochs. Acceptance:
zero reaches >= 97% held-out accuracy. Skipped (no rows) when MNIST's test split is not
found (workers.mnist_folder: $ZERO_DATA_DIR, zero's download cache, ../shared/datasets/mnist).
Each framework trains in its own subprocess (workers.py), so neither's idle threads slow the other.

    python benchmarks/bench_cnn_mnist.py
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from workers import load_note, main, mnist_folder, mnist_not_found, run_worker

EPOCHS = 4
ROUNDS = 2  # zero then PyTorch, twice: the faster round of each
BATCH = 64
LR = 2e-3
N_TRAIN = 8000


def train_zero(x, t, epochs):
    import zero.functions as F
    from zero import no_grad
    from zero.data import DataLoader, Dataset
    from zero.layers import Conv2d, Linear
    from zero.models import Model
    from zero.optimizers import Adam

    class CNN(Model):
        def __init__(self):
            super().__init__()
            self.conv1 = Conv2d(16, 3, padding=1, in_channels=1)
            self.conv2 = Conv2d(32, 3, padding=1, in_channels=16)
            self.head = Linear(10, in_size=32 * 7 * 7)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            return self.head(F.flatten(x))

    np.random.seed(0)
    model = CNN()
    optimizer = Adam(model.params(), lr=LR)
    loader = DataLoader(Dataset(x[:N_TRAIN], t[:N_TRAIN]), BATCH, seed=0)
    start = time.perf_counter()
    for epoch in tqdm(range(epochs), desc="zero CNN epochs"):
        optimizer.lr = LR * (1 - epoch / epochs)
        for xb, tb in loader:
            loss = F.softmax_cross_entropy(model(xb), tb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    with no_grad():
        accuracy = np.mean([F.accuracy(model(x[i:i + 500]), t[i:i + 500]) for i in range(N_TRAIN, len(x), 500)])
    return float(accuracy), seconds


def train_torch(x, t, epochs):
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x_train, t_train = torch.from_numpy(x[:N_TRAIN]), torch.from_numpy(t[:N_TRAIN])
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in tqdm(range(epochs), desc="torch CNN epochs"):
        for group in optimizer.param_groups:
            group["lr"] = LR * (1 - epoch / epochs)
        order = torch.randperm(N_TRAIN, generator=generator)
        for i in range(0, N_TRAIN, BATCH):
            batch = order[i:i + BATCH]
            loss = nn.functional.cross_entropy(model(x_train[batch]), t_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predictions = model(torch.from_numpy(x[N_TRAIN:])).argmax(dim=1).numpy()
    return float((predictions == t[N_TRAIN:]).mean()), seconds


def run(quick=False):
    folder = mnist_folder()
    if folder is None:
        print(mnist_not_found("bench_cnn_mnist"))
        return []
    epochs = 1 if quick else EPOCHS
    try:
        import torch
    except ImportError:
        torch = None
    # rounds of zero then PyTorch, each in a fresh process: the faster round of each counts (a seeded
    # run gives the same accuracy every round)
    runs = {"zero": [], "torch": []}
    for _ in range(1 if quick else ROUNDS):
        runs["zero"].append(run_worker(__file__, "zero", epochs, zero_allocator=True))
        if torch is not None:
            runs["torch"].append(run_worker(__file__, "torch", epochs, zero_allocator=False))
    accuracy, seconds = min(runs["zero"], key=lambda run: run[1])
    accuracy_row = {"benchmark": f"CNN MNIST held-out accuracy ({epochs} epochs, 8k train / 2k test)",
                    "unit": "accuracy", "zero": accuracy, "reference": None, "reference_name": "torch (not installed)",
                    "ratio": None, "target": None, "ok": None if quick else accuracy >= 0.97,
                    "note": "acceptance: >= 0.97" + (" (quick: 1 epoch, not the acceptance run)" if quick else "")}
    time_row = {"benchmark": f"CNN MNIST training time ({epochs} epochs)", "unit": "s", "zero": seconds,
                "reference": None, "reference_name": "torch (not installed)", "ratio": None, "target": None,
                "note": load_note().lstrip("; ")}
    if torch is None:
        return [accuracy_row, time_row]
    torch_accuracy, torch_seconds = min(runs["torch"], key=lambda run: run[1])
    accuracy_row.update(reference=torch_accuracy, reference_name=f"torch {torch.__version__} CPU")
    time_row.update(reference=torch_seconds, reference_name=f"torch {torch.__version__} CPU",
                    ratio=seconds / torch_seconds,
                    note=f"faster of {len(runs['zero'])} rounds each, alternating; torch threads "
                         f"{torch.get_num_threads()}{load_note()}")
    return [accuracy_row, time_row]


def worker(framework, epochs):
    """In a fresh process: train one framework's CNN, print [held-out accuracy, seconds] (JSON)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from zero.mnist import load_mnist
    x, t = load_mnist("test", data_dir=mnist_folder(), download=False)
    print(json.dumps((train_zero if framework == "zero" else train_torch)(x, t, epochs)))


if __name__ == "__main__":
    main(run, worker)
