"""What each optimizer of the method table costs per step and in memory, as a ratio to AdamW measured in the same run.

    python benchmarks/preconditioner_cost.py              # CPU, one thread: the seed network and an MLP, ~30 s
    python benchmarks/preconditioner_cost.py --quick      # fewer repeats, a few seconds
    python benchmarks/preconditioner_cost.py --threads 2 --models mlp

Every row of :data:`course_lib.methods.METHODS` (a method added to the table joins without an edit here) is built with
its row's options (``Method.make_optimizer``: course_lib's class, not the reference) on two parameter sets with
gradients preset: the seed network (8 inputs → Linear 32 + ReLU → Linear 1, 321 parameters) and an MLP
256 → 512 → 512 → 10 (399,370 parameters). Muon takes the 2-D weights and AdamW the biases, as its title "Muon + AdamW"
says (both steps are timed). The methods are timed in turn within every repeat (interleaved, so that all see the same
machine), each repeat the mean of ``--steps`` steps after ``--warmup`` steps; printed are the median and the minimum
over the repeats, and each as a ratio to AdamW's median and minimum. Shampoo's row computes its inverse roots every 4
steps from step 4 (its options): keep ``--steps`` a multiple of 4 so that every repeat holds the same number of roots.

"state B/param" is the optimizer's memory: the bytes of every tensor in ``optimizer.state_dict()["state"]`` after the
warm-up (tensors inside lists and tuples too: Shampoo's factors and roots), over the number of parameters (float32
parameters: Adam's two moments are 8 bytes per parameter).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from course_lib import methods, optim

MODELS = {
    "seed": "the seed network 8 → 32 → 1",
    "mlp": "an MLP 256 → 512 → 512 → 10",
}


def network(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "seed":
        return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    return torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                               torch.nn.Linear(512, 10))


def parameters_with_gradients(name: str) -> list[torch.nn.Parameter]:
    """The parameters of ``network(name)`` with preset gradients (the same for every call)."""
    params = [torch.nn.Parameter(p.detach().clone()) for p in network(name).parameters()]
    generator = torch.Generator().manual_seed(2)
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator) * 1e-3
    return params


def optimizers_for(method: methods.Method, params) -> list[torch.optim.Optimizer]:
    """The method's optimizer(s) for ``params``: Muon on the matrices with AdamW on the rest, else one optimizer."""
    if method.optimizer == "Muon":
        return [method.make_optimizer([p for p in params if p.ndim == 2], lr=1e-3),
                optim.AdamW([p for p in params if p.ndim != 2], lr=1e-3)]
    made = method.make_optimizer(params, lr=1e-3)
    if hasattr(made, "train"):  # Schedule-Free: steps in train mode
        made.train()
    return [made]


def state_bytes(optimizers) -> int:
    """The bytes of every tensor in the optimizers' state dicts, inside lists, tuples and dicts too."""
    def walk(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(walk(v) for v in value)
        return 0

    return sum(walk(optimizer.state_dict()["state"]) for optimizer in optimizers)


def _run(optimizers, steps: int) -> float:
    """ms per step of ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        for optimizer in optimizers:
            optimizer.step()
    return (time.perf_counter() - start) / steps * 1e3


def measure(model: str, steps: int, repeats: int, warmup: int) -> list[dict]:
    """One row per method: median and minimum ms per step over the interleaved repeats, state bytes per parameter."""
    contenders = {}
    for name, method in methods.METHODS.items():
        params = parameters_with_gradients(model)
        contenders[name] = (optimizers_for(method, params), sum(p.numel() for p in params))
        _run(contenders[name][0], warmup)
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, (optimizers, _) in contenders.items():
            times[name].append(_run(optimizers, steps))
    rows = []
    for name, (optimizers, count) in contenders.items():
        rows.append(dict(model=model, method=name, label=methods.label(name), median_ms=statistics.median(times[name]),
                         min_ms=min(times[name]), bytes_per_param=state_bytes(optimizers) / count, parameters=count))
    return rows


def print_table(rows) -> None:
    baseline = {row["model"]: row for row in rows if row["method"] == "adamw"}
    model = None
    for row in rows:
        if row["model"] != model:
            model = row["model"]
            print(f"\n== {MODELS[model]}: {row['parameters']:,} parameters ==")
            header = (f"{'method':<22}{'median ms':>11}{'min ms':>10}{'median/AdamW':>14}{'min/AdamW':>11}"
                      f"{'state B/param':>15}")
            print(header)
            print("-" * len(header))
        adamw = baseline[model]
        print(f"{row['label']:<22}{row['median_ms']:>11.4f}{row['min_ms']:>10.4f}"
              f"{row['median_ms'] / adamw['median_ms']:>14.2f}{row['min_ms'] / adamw['min_ms']:>11.2f}"
              f"{row['bytes_per_param']:>15.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated from: " + ", ".join(MODELS))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the steps (default 1)")
    parser.add_argument("--steps", type=int, default=8, help="steps per timed repeat (default 8: twice Shampoo's 4)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median and minimum are reported)")
    parser.add_argument("--warmup", type=int, default=4, help="steps before timing (Shampoo's first roots at 4)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 steps, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 4, 2
    models = [name.strip() for name in args.models.split(",")]
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r} (expected some of: {', '.join(MODELS)})")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__} · CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"thread(s) · {os.cpu_count()} cores · load average {load:.1f} · {args.steps} steps × {args.repeats} repeats")
    start = time.perf_counter()
    rows = [row for model in models for row in measure(model, args.steps, args.repeats, args.warmup)]
    print_table(rows)
    print(f"\n(ratios: a method's ms per step over AdamW's, same run, interleaved repeats; {len(methods.METHODS)} "
          f"methods of course_lib.methods; {time.perf_counter() - start:.0f} s)")
    return rows


if __name__ == "__main__":
    main()
