"""How fast is course_lib.training.fit? The seed article's workload, three ways, in one run.

Workload: 768 samples × 8 features (the shape of the table the seed's network was written for),
the seed network 8 → 32 (ReLU) → 1, torch.optim.Adam(lr=1e-3), 50 epochs, batch 32 (1,200 steps).

1. ``fit`` (course_lib.training), progress bar off;
2. a hand-written PyTorch loop over shuffled tensors (randperm, index, forward, loss, backward, step);
3. a DataLoader loop (TensorDataset, shuffle=True, batch 32).

Each is timed ``--repeats`` times, interleaved. The fastest run measures the work itself (other processes can only
add time), the median shows what a busy machine adds; ratios are fastest against fastest, against the hand-written
loop measured in the same run, so they compare like with like on whatever machine runs this. Then the cost of one
optimizer step of course_lib.optim.Adam against torch.optim.Adam on the same network.

    .venv/bin/python benchmarks/train_speed.py [--repeats 5] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from course_lib import optim
from course_lib.data import synthetic_binary
from course_lib.training import epoch_generator, fit, pick_device, seed_classifier

EPOCHS, BATCH = 50, 32


def _setup(device, seed=0):
    torch.manual_seed(seed)
    model = seed_classifier(8).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_fit(X, y, device):
    model, optimizer = _setup(device)
    _sync(device)
    started = time.perf_counter()
    fit(model, optimizer, (X, y), epochs=EPOCHS, batch_size=BATCH, device=device, progress=False, seed=0)
    _sync(device)
    return time.perf_counter() - started, model


def run_hand_loop(X, y, device):
    """The loop most tutorials write: a fresh permutation per epoch, index a batch, step."""
    model, optimizer = _setup(device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    X, y = X.to(device), y.to(device)
    n = X.shape[0]
    _sync(device)
    started = time.perf_counter()
    for epoch in range(EPOCHS):
        # the same shuffles as fit (so both must end with the same weights)
        order = torch.randperm(n, generator=epoch_generator(0, epoch)).to(device)
        for start in range(0, n, BATCH):
            rows = order[start:start + BATCH]
            inputs, targets = X[rows], y[rows]
            loss = loss_fn(model(inputs).squeeze(1), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - started, model


def run_dataloader(X, y, device):
    model, optimizer = _setup(device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=BATCH, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    _sync(device)
    started = time.perf_counter()
    for _ in range(EPOCHS):
        for inputs, targets in loader:
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            loss = loss_fn(model(inputs).squeeze(1), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - started, model


def optimizer_step_cost(device, steps=200, repeats=25):
    """Microseconds per optimizer.step() on the seed network, gradients fixed (only the update is timed)."""
    costs = {}
    for name, make in (("course_lib.optim.Adam", optim.Adam), ("torch.optim.Adam", torch.optim.Adam)):
        timings = []
        for _ in range(repeats):
            torch.manual_seed(0)
            model = seed_classifier(8).to(device)
            optimizer = make(model.parameters(), lr=1e-3)
            for param in model.parameters():
                param.grad = torch.randn_like(param)
            for _ in range(20):  # warm-up (state allocation)
                optimizer.step()
            _sync(device)
            started = time.perf_counter()
            for _ in range(steps):
                optimizer.step()
            _sync(device)
            timings.append((time.perf_counter() - started) / steps * 1e6)
        costs[name] = min(timings)
    return costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: course_lib.training.pick_device)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: a 321-parameter network gains nothing from more, and on a "
                             "busy machine a second thread that waits for a core makes every step stall)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dataset = synthetic_binary(768, 8, seed=0, val_fraction=0, test_fraction=0)
    X, y = dataset.train
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"workload: {X.shape[0]} × {X.shape[1]}, seed network, Adam(lr=1e-3), {EPOCHS} epochs, batch {BATCH} "
          f"({EPOCHS * -(-X.shape[0] // BATCH)} steps); {args.repeats} runs of each\n")

    runners = {"hand-written loop": run_hand_loop, "course_lib fit": run_fit, "DataLoader loop": run_dataloader}
    for runner in runners.values():  # warm-up: imports, allocator, kernels
        runner(X, y, device)
    seconds = {name: [] for name in runners}
    models = {}
    for _ in range(args.repeats):
        for name, runner in runners.items():
            elapsed, models[name] = runner(X, y, device)
            seconds[name].append(elapsed)

    baseline = min(seconds["hand-written loop"])
    print(f"{'method':<20}{'fastest s':>10}{'median s':>10}{'× hand loop':>14}")
    for name, values in seconds.items():
        print(f"{name:<20}{min(values):>10.3f}{statistics.median(values):>10.3f}{min(values) / baseline:>14.2f}")
    same = all(torch.equal(a, b) for a, b in zip(models["course_lib fit"].parameters(),
                                                 models["hand-written loop"].parameters()))
    print(f"\nfit and the hand-written loop end with identical weights: {same}")
    ratio = min(seconds["course_lib fit"]) / baseline
    print(f"target: fit within 1.15× of the hand-written loop -> {'met' if ratio <= 1.15 else 'NOT met'} "
          f"({ratio:.2f}×)")

    costs = optimizer_step_cost(device)
    ours, theirs = costs["course_lib.optim.Adam"], costs["torch.optim.Adam"]
    print("\ncost of one optimizer step on the seed network (gradients fixed, fastest of 25 × 200 steps):")
    for name, cost in costs.items():
        print(f"  {name:<24}{cost:>8.1f} µs/step")
    print(f"  ratio course_lib / torch: {ours / theirs:.2f}×")


if __name__ == "__main__":
    main()
