"""Milliseconds per Adam step: course_lib's three execution paths against torch.optim's three.

    python benchmarks/optimizer_step.py                  # CPU: the seed's tiny network and 2M parameters
    python benchmarks/optimizer_step.py --device cuda    # GPU: the tiny network, 50M and 200M parameters
    python benchmarks/optimizer_step.py --sizes tiny --steps 3 --repeats 1   # a smoke run

For every parameter set it times Adam (lr = 1e-3, float32) through

* torch.optim.Adam with ``foreach=False`` (for-loop), ``foreach=True`` and ``fused=True``, and
* course_lib.optim.Adam per tensor (``foreach=False``), multi-tensor (``foreach=True``), flat and eager
  (``fused=True`` inside :func:`course_lib.fast_paths.compile_disabled`) and flat and compiled (``fused=True``),

in two settings: a *synthetic step* (gradients preset once, only ``step()`` timed) and *real training*
(``zero_grad()``, forward, ``backward()``, ``step()`` on a network whose parameters are the ones of the set,
so autograd writes the gradients; ``step()`` and the whole iteration are timed separately). A row
"flat, compiled, set_to_none=False" keeps the gradient views attached so that autograd accumulates straight
into the flat buffer.

Adam reads θ, g, m, v and writes θ, m, v: 28 bytes per float32 parameter and step. Each time is compared with
the floor of :func:`labs.fast_steps.floor_ms`, measured in the same run before and after the contenders, on the
same threads and over the same footprint: the best bandwidth of one-pass kernels that do no more than an Adam
step (in-place θ += g, m += v, and torch's fused Adam on one tensor). "× floor" is at least 1; the effective
bandwidth 28·N / t is printed too. (A copy is no yardstick: it pays write-allocate traffic that its byte count
leaves out, and on a CPU a single-threaded copy made a compiled step look twice as fast as its "floor".)

On the CPU the default is one thread (``--threads 1``) for every contender: on a shared machine whose cores
are busy, multi-threaded kernels spend most of their time waiting for each other (see notebook 10). Times are
medians over ``--repeats`` runs of ``--steps`` steps, after warm-up steps that include any compilation.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time

import torch

from course_lib import fast_paths, optim
from course_lib.labs import fast_steps as speed

BYTES_PER_PARAMETER = 28  # read θ, g, m, v; write θ, m, v (4 bytes each)
TENSORS = 300  # "a few hundred tensors": 150 linear layers, each a weight matrix and a bias
SIZES = {"tiny": None, "2M": 2_000_000, "50M": 50_000_000, "200M": 200_000_000}


# ------------------------------------------------------------------------------------------------------
# Parameter sets
# ------------------------------------------------------------------------------------------------------
def seed_network() -> torch.nn.Module:
    """The seed article's network: Dense(32, relu, input_dim=8) → Dense(1, sigmoid), 321 parameters."""
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Sigmoid())


def wide_network(parameters: int, tensors: int = TENSORS) -> torch.nn.Module:
    """tensors/2 square linear layers (weight and bias) with about ``parameters`` parameters in all."""
    layers = tensors // 2
    width = round((-1 + math.sqrt(1 + 4 * parameters / layers)) / 2)  # layers · (width² + width) ≈ parameters
    blocks = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*blocks)


def network(size: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return seed_network() if SIZES[size] is None else wide_network(SIZES[size])


def input_batch(model: torch.nn.Module, device, batch: int = 32) -> torch.Tensor:
    first = next(module for module in model if isinstance(module, torch.nn.Linear))
    return torch.randn(batch, first.in_features, generator=torch.Generator().manual_seed(1)).to(device)


# ------------------------------------------------------------------------------------------------------
# Contenders
# ------------------------------------------------------------------------------------------------------


CONTENDERS = {
    "torch for-loop": (lambda params: torch.optim.Adam(params, lr=1e-3, foreach=False), contextlib.nullcontext),
    "torch foreach": (lambda params: torch.optim.Adam(params, lr=1e-3, foreach=True), contextlib.nullcontext),
    "torch fused": (lambda params: torch.optim.Adam(params, lr=1e-3, fused=True), contextlib.nullcontext),
    "course per-tensor": (lambda params: optim.Adam(params, lr=1e-3, foreach=False), contextlib.nullcontext),
    "course multi-tensor": (lambda params: optim.Adam(params, lr=1e-3, foreach=True), contextlib.nullcontext),
    "course flat, eager": (lambda params: optim.Adam(params, lr=1e-3, fused=True), fast_paths.compile_disabled),
    "course flat, compiled": (lambda params: optim.Adam(params, lr=1e-3, fused=True), contextlib.nullcontext),
}


# ------------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------------
def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_ms(run, device, steps: int, repeats: int, warmup: int) -> float:
    """Median over ``repeats`` of the mean milliseconds per call of ``run`` over ``steps`` calls."""
    for _ in range(warmup):
        run()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        synchronize(device)
        times.append((time.perf_counter() - start) / steps * 1e3)
    return statistics.median(times)


def floor_ms(parameters: int, device, repeats: int) -> float:
    """The least time an Adam step over ``parameters`` float32 numbers can take here (:func:`speed.floor_ms`)."""
    return speed.floor_ms(parameters, device, repeats=repeats)


def synthetic_ms(size, make, context, device, steps, repeats) -> float:
    """``step()`` alone, with gradients preset once (they are views of the flat buffer after step one)."""
    params = [torch.nn.Parameter(p.detach().to(device)) for p in network(size).parameters()]
    generator = torch.Generator().manual_seed(2)
    for param in params:
        param.grad = (torch.randn(param.shape, generator=generator) * 1e-3).to(device)
    with context():
        optimizer = make(params)
        result = median_ms(optimizer.step, device, steps, repeats, warmup=3)
    del optimizer, params
    return result


def training_ms(size, make, context, device, steps, repeats, set_to_none=True) -> tuple[float, float]:
    """(``step()`` alone, the whole iteration) in milliseconds, gradients written by autograd."""
    model = network(size).to(device)
    inputs = input_batch(model, device)
    step_times = []

    with context():
        optimizer = make(model.parameters())

        def iteration():
            optimizer.zero_grad(set_to_none=set_to_none)
            model(inputs).square().mean().backward()
            synchronize(device)
            start = time.perf_counter()
            optimizer.step()
            synchronize(device)
            step_times.append(time.perf_counter() - start)

        whole = median_ms(iteration, device, steps, repeats, warmup=3)
    step_times = step_times[3:]  # leave out the warm-up (compilation)
    per_repeat = [statistics.fmean(step_times[i:i + steps]) * 1e3 for i in range(0, len(step_times), steps)]
    return statistics.median(per_repeat), whole


# ------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------
def print_table(title, rows, parameters, floor, fastest_torch):
    print(f"\n{title}")
    print(f"floor (one-pass kernels over θ, g, m, v, same threads): {floor:.3f} ms = "
          f"{BYTES_PER_PARAMETER * parameters / floor / 1e6:.1f} GB/s at {BYTES_PER_PARAMETER} B/parameter")
    header = f"{'path':<44}{'ms/step':>10}{'GB/s':>9}{'× floor':>9}{'× torch best':>14}"
    has_iteration = any(len(row) == 3 for row in rows)
    if has_iteration:
        header += f"{'ms/iteration':>14}"
    print(header)
    print("-" * len(header))
    for row in rows:
        name, ms = row[0], row[1]
        bandwidth = BYTES_PER_PARAMETER * parameters / (ms * 1e-3)
        line = f"{name:<44}{ms:>10.3f}{bandwidth / 1e9:>9.1f}{ms / floor:>9.2f}{ms / fastest_torch:>14.2f}"
        if has_iteration:
            line += f"{row[2]:>14.3f}"
        print(line)


def run(device: str, sizes: list[str], steps: int, repeats: int, training: bool) -> dict:
    results = {}
    for size in sizes:
        model = network(size)
        parameters = sum(p.numel() for p in model.parameters())
        tensors = len(list(model.parameters()))
        label = f"{parameters:,} parameters in {tensors} tensors ({'the seed network' if size == 'tiny' else size})"
        floor = floor_ms(parameters, device, repeats)
        rows = [(name, synthetic_ms(size, make, context, device, steps, repeats))
                for name, (make, context) in CONTENDERS.items()]
        floor = min(floor, floor_ms(parameters, device, repeats))  # before and after: the best of both
        fastest_torch = min(ms for name, ms in rows if name.startswith("torch"))
        print_table(f"== {label} · synthetic step (gradients preset) ==", rows, parameters, floor, fastest_torch)
        results[(size, "synthetic")] = dict(rows=rows, floor_ms=floor, parameters=parameters)

        if training:
            rows = [(name, *training_ms(size, make, context, device, steps, repeats))
                    for name, (make, context) in CONTENDERS.items()]
            make, context = CONTENDERS["course flat, compiled"]
            rows.append(("course flat, compiled, set_to_none=False",
                         *training_ms(size, make, context, device, steps, repeats, set_to_none=False)))
            fastest_torch = min(row[1] for row in rows if row[0].startswith("torch"))
            print_table(f"== {label} · real training (autograd writes the gradients; step timed alone) ==",
                        rows, parameters, floor, fastest_torch)
            results[(size, "training")] = dict(rows=rows, floor_ms=floor, parameters=parameters)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
    return results


def summary(results) -> None:
    print("\nfastest course_lib path ÷ torch's fastest Adam, and its time as a multiple of the floor:")
    for (size, setting), result in results.items():
        rows = result["rows"]
        best_ours = min((row for row in rows if row[0].startswith("course")), key=lambda row: row[1])
        best_torch = min((row for row in rows if row[0].startswith("torch")), key=lambda row: row[1])
        print(f"  {size:>5} {setting:<10} {best_ours[0]:<44} {best_ours[1]:8.3f} ms  vs  {best_torch[0]:<14} "
              f"{best_torch[1]:8.3f} ms  → {best_ours[1] / best_torch[1]:.2f}×, {best_ours[1] / result['floor_ms']:.2f}"
              "× the floor")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default=None, help="comma-separated from: " + ", ".join(SIZES))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every contender (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (the median is reported)")
    parser.add_argument("--no-training", action="store_true", help="time the synthetic step only")
    args = parser.parse_args(argv)
    device = torch.device(args.device).type
    sizes = args.sizes.split(",") if args.sizes else (["tiny", "2M"] if device == "cpu" else ["tiny", "50M", "200M"])
    if device == "cpu":
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__} · {name} · {os.cpu_count()} cores · load average {load:.1f} · "
          f"compile available: {optim.compile_unavailable_reason(device) or 'yes'}")
    results = run(device, sizes, args.steps, args.repeats, not args.no_training)
    summary(results)
    return results


if __name__ == "__main__":
    main()
