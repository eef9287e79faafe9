"""The course's optimizer step against torch.optim's, path by path, and both against a floor measured in the same run.

    python benchmarks/optimizer_step.py                   # CPU, one thread: the seed network and a 2M MLP
    python benchmarks/optimizer_step.py --threads 2       # the steps on two threads
    python benchmarks/optimizer_step.py --device cuda     # GPU: the seed network, 50M and 200M parameters
    python benchmarks/optimizer_step.py --sizes seed --optimizers adam --repeats 3   # a smoke run

For each parameter set (the seed network 8 → Linear 32 + ReLU → Linear 1; an MLP of 150 square layers with about
2 M parameters) and each optimizer (Adam, AdamW, SGD with momentum 0.9) it times ``step()`` with gradients preset,
for three pairs, each pair interleaved repeat by repeat so that both see the same machine:

* course_lib's default (per tensor on the CPU)      against torch.optim's default (its for-loop on the CPU),
* course_lib's ``foreach=True`` (multi-tensor)      against torch.optim's ``foreach=True``,
* course_lib's ``fused=True`` (flat, compiled)      against torch.optim's ``fused=True``

(on a GPU torch's default is its foreach path, and so is the course's). Every time is the *minimum* over the
repeats of the mean over ``--steps`` steps: a floor is a bound, and the least disturbed repeat is the one to hold
against it. CPU steps on one thread are timed by default on this process's CPU time (``--clock cpu``), so that
other work on a shared machine, which takes the core away, does not count; ``--clock wall`` times them on the wall
clock (the GPU and several threads always are). The last line lists the course paths above 1.1 × torch's.

The floor is what no step can beat on this machine: the bytes the step must move (θ, g and the state read once,
θ and the state written once: 28 bytes per float32 parameter for Adam, 20 for SGD with momentum) over the peak
memory bandwidth, plus the least cost of launching one operation times the launches the path cannot avoid (one
per tensor per tensor-by-tensor step, one per step otherwise). The peak bandwidth is measured in the same run,
on every core and on the steps' threads (the better of the two), by STREAM's copy (a = b) and triad
(a = b + s·c) kernels, on arrays far larger than the caches and on arrays as large as the step's own (whose data
may sit in the last-level cache), the best of all; STREAM counts each array read or written once, as the floor
does. The launch cost is the fastest of many tiny in-place operations.
"× floor" is a step's time over its floor (≥ 1 up to noise; tests/test_optimizer_step_floor.py checks that).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import time

import torch

from course_lib import fast_paths, optim
from course_lib.labs.fast_steps import CLOCKS, floor_ms, interleaved_ms, least_launch_us, median_ms, step_clock

TENSORS = 300  # "a few hundred tensors": 150 linear layers, each a weight matrix and a bias
SIZES = {"seed": None, "2M": 2_000_000, "50M": 50_000_000, "200M": 200_000_000}

#: name -> (torch class, course class, keyword arguments, bytes per float32 parameter and step)
OPTIMIZERS = {
    "Adam": (torch.optim.Adam, optim.Adam, dict(lr=1e-3), 28),
    "AdamW": (torch.optim.AdamW, optim.AdamW, dict(lr=1e-3), 28),
    "SGD momentum": (torch.optim.SGD, optim.SGD, dict(lr=1e-3, momentum=0.9), 20),
}
#: pair name -> (torch's keywords, the course's keywords, launches per step the path cannot avoid: "tensors" or 1)
PAIRS = {
    "default": ({}, {}, "tensors"),
    "foreach": ({"foreach": True}, {"foreach": True}, 1),
    "fused": ({"fused": True}, {"fused": True}, 1),
}
STREAM_ELEMENTS = 2**24  # 64 MiB float32 arrays: twice the largest last-level caches of the machines used here


# ------------------------------------------------------------------------------------------------------
# Parameter sets
# ------------------------------------------------------------------------------------------------------
def seed_network() -> torch.nn.Module:
    """The seed article's network: 8 inputs → Linear 32 + ReLU → Linear 1 (321 parameters in 4 tensors)."""
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))


def wide_network(parameters: int, tensors: int = TENSORS) -> torch.nn.Module:
    """tensors/2 square linear layers (weight and bias) with about ``parameters`` parameters in all."""
    layers = tensors // 2
    width = round((-1 + math.sqrt(1 + 4 * parameters / layers)) / 2)  # layers · (width² + width) ≈ parameters
    return torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])


def network(size: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return seed_network() if SIZES[size] is None else wide_network(SIZES[size])


def parameters_with_gradients(size: str, device) -> list[torch.nn.Parameter]:
    """The parameters of ``network(size)`` on ``device`` with preset gradients (the same for every call)."""
    params = [torch.nn.Parameter(p.detach().to(device)) for p in network(size).parameters()]
    generator = torch.Generator().manual_seed(2)
    for param in params:
        param.grad = (torch.randn(param.shape, generator=generator) * 1e-3).to(device)
    return params


# ------------------------------------------------------------------------------------------------------
# The floor: peak bandwidth (STREAM, all cores) and the least launch cost, measured here and now
# ------------------------------------------------------------------------------------------------------
def _fastest_ms(run, device, calls: int, repeats: int) -> float:
    """The fastest of ``repeats`` timings of ``calls`` calls of ``run``, in ms per call (after one call)."""
    return median_ms(run, device, calls, repeats, warmup=1, fastest=True)


@contextlib.contextmanager
def all_cores(device):
    """Every core for the block (the bandwidth of the whole machine), then the threads as they were."""
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(os.cpu_count() or threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def stream_bandwidth(elements: int, device="cpu", repeats: int = 5) -> dict[str, float]:
    """GB/s of STREAM's copy (a = b, 8 bytes per element) and triad (a = b + s·c, 12 bytes) on all cores.

    STREAM's convention: every array read or written is counted once (a write-allocate read is not counted).
    """
    a, b, c = (torch.rand(elements, device=device) for _ in range(3))
    calls = max(1, min(50, 2**24 // elements))
    with all_cores(device):
        copy_ms = _fastest_ms(lambda: a.copy_(b), device, calls, repeats)
        triad_ms = _fastest_ms(lambda: torch.add(b, c, alpha=3.0, out=a), device, calls, repeats)
    return {"copy": 8 * elements / copy_ms / 1e6, "triad": 12 * elements / triad_ms / 1e6}


def best_stream_bandwidth(elements: int, device="cpu", repeats: int = 5) -> dict[str, float]:
    """:func:`stream_bandwidth`, on every core and on the steps' threads, the better of the two for each kernel.

    (On a machine whose other cores are busy, threads that wait for each other can make "all cores" the slower
    of the two; the floor needs the faster.)
    """
    best = stream_bandwidth(elements, device, repeats)
    if torch.device(device).type == "cpu" and torch.get_num_threads() != (os.cpu_count() or 1):
        a, b, c = (torch.rand(elements, device=device) for _ in range(3))
        calls = max(1, min(50, 2**24 // elements))
        copy_ms = _fastest_ms(lambda: a.copy_(b), device, calls, repeats)
        triad_ms = _fastest_ms(lambda: torch.add(b, c, alpha=3.0, out=a), device, calls, repeats)
        best = {"copy": max(best["copy"], 8 * elements / copy_ms / 1e6),
                "triad": max(best["triad"], 12 * elements / triad_ms / 1e6)}
    return best


def peak_bandwidth_gbs(footprint_elements: int, device="cpu", repeats: int = 5) -> tuple[float, dict]:
    """The best STREAM bandwidth in GB/s, on arrays larger than the caches and on arrays of the step's size
    (``footprint_elements``, when it is large enough to time the memory rather than the launch), with the
    measurements as ``{"copy, 64M": GB/s, ...}``."""
    sizes = {f"{4 * STREAM_ELEMENTS // 2**20} MiB arrays": STREAM_ELEMENTS}
    if footprint_elements >= 2**16:
        sizes[f"{4 * footprint_elements / 2**20:.0f} MiB arrays"] = footprint_elements
    measured = {}
    for label, elements in sizes.items():
        for kernel, gbs in best_stream_bandwidth(elements, device, repeats).items():
            measured[f"{kernel}, {label}"] = gbs
    return max(measured.values()), measured


# ------------------------------------------------------------------------------------------------------
# Timing a pair, interleaved
# ------------------------------------------------------------------------------------------------------
def choose_clock(clock: str, device) -> str:
    """"auto": the CPU clock for CPU steps on one thread (the machine's other load does not count), else the wall
    (:func:`course_lib.labs.fast_steps.step_clock`)."""
    return step_clock(device) if clock == "auto" else clock


def measure(device, sizes, optimizer_names, pairs, steps: int, repeats: int, clock: str = "wall") -> list[dict]:
    """One row per (size, optimizer, pair): torch's and the course's ms per step, their floor and its parts."""
    rows = []
    for size in sizes:
        params = parameters_with_gradients(size, device)
        parameters, tensors = sum(p.numel() for p in params), len(params)
        bandwidth, streams = peak_bandwidth_gbs(4 * parameters, device)
        cost = least_launch_us(device)
        for name in optimizer_names:
            torch_class, course_class, kwargs, bytes_per_parameter = OPTIMIZERS[name]
            for pair in pairs:
                torch_kw, course_kw, launches = PAIRS[pair]
                if device == "cuda" and pair == "default":
                    torch_kw, course_kw = {}, {}  # both take foreach on a GPU
                contenders = {"torch": torch_class(parameters_with_gradients(size, device), **kwargs, **torch_kw),
                              "course": course_class(parameters_with_gradients(size, device), **kwargs, **course_kw)}
                times = interleaved_ms({who: opt.step for who, opt in contenders.items()},
                                       steps if size == "seed" else max(2, steps // 10), repeats, warmup=3,
                                       device=device, clock=clock)
                launches = tensors if launches == "tensors" else 1
                floor = floor_ms(parameters, bytes_per_parameter, launches, bandwidth, cost)
                rows.append(dict(size=size, parameters=parameters, tensors=tensors, optimizer=name, pair=pair,
                                 torch_ms=times["torch"], course_ms=times["course"], floor_ms=floor,
                                 bandwidth_gbs=bandwidth, streams=streams, launch_us=cost, launches=launches,
                                 course_path=", ".join(line.split(": ", 1)[1].split(" (")[0]
                                                       for line in contenders["course"].paths)))
                del contenders
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------
def print_table(rows) -> None:
    size = None
    for row in rows:
        if row["size"] != size:
            size = row["size"]
            streams = ", ".join(f"{name} {gbs:.1f}" for name, gbs in row["streams"].items())
            print(f"\n== {row['parameters']:,} parameters in {row['tensors']} tensors ({size}) ==")
            print(f"peak bandwidth {row['bandwidth_gbs']:.1f} GB/s (STREAM on all cores, GB/s: {streams}); "
                  f"least launch {row['launch_us']:.2f} µs")
            header = (f"{'optimizer':<14}{'torch path':<12}{'course path':<22}{'torch ms':>10}{'course ms':>11}"
                      f"{'course/torch':>14}{'floor ms':>10}{'torch × floor':>15}{'course × floor':>16}")
            print(header)
            print("-" * len(header))
        print(f"{row['optimizer']:<14}{row['pair']:<12}{row['course_path']:<22}{row['torch_ms']:>10.4f}"
              f"{row['course_ms']:>11.4f}{row['course_ms'] / row['torch_ms']:>14.2f}{row['floor_ms']:>10.4f}"
              f"{row['torch_ms'] / row['floor_ms']:>15.1f}{row['course_ms'] / row['floor_ms']:>16.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default=None, help="comma-separated from: " + ", ".join(SIZES))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        help="comma-separated from: " + ", ".join(OPTIMIZERS) + " (default: all)")
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated from: " + ", ".join(PAIRS))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the steps (default 1)")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed repeat (a tenth of it for big sets)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (the fastest is reported)")
    parser.add_argument("--clock", default="auto", choices=["auto", *CLOCKS],
                        help="the steps' clock: wall, cpu (this process's CPU time), or auto (default: cpu for CPU "
                             "steps on one thread, else wall)")
    args = parser.parse_args(argv)
    device = torch.device(args.device).type
    sizes = args.sizes.split(",") if args.sizes else (["seed", "2M"] if device == "cpu" else ["seed", "50M", "200M"])
    by_lower = {name.lower(): name for name in OPTIMIZERS}  # "adam" and "Adam" alike, as the docstring's example
    names = []
    for name in (name.strip() for name in args.optimizers.split(",")):
        if name.lower() not in by_lower:
            parser.error(f"unknown optimizer {name!r} (expected some of: {', '.join(OPTIMIZERS)})")
        names.append(by_lower[name.lower()])
    if device == "cpu":
        torch.set_num_threads(args.threads)
    where = (torch.cuda.get_device_name() if device == "cuda"
             else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s) per step")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__} · {where} · {os.cpu_count()} cores · load average {load:.1f} · "
          f"compile: {fast_paths.compile_unavailable_reason(device) or 'available'}")
    clock = choose_clock(args.clock, device)
    start = time.perf_counter()
    rows = measure(device, sizes, names, args.pairs.split(","), args.steps, args.repeats, clock=clock)
    print_table(rows)
    above = [f"{row['optimizer']} {row['pair']} ({row['size']}) {row['course_ms'] / row['torch_ms']:.2f}"
             for row in rows if row["course_ms"] > 1.1 * row["torch_ms"]]
    print(f"\n(course/torch: the course's step time over torch's, same run, interleaved, the fastest of "
          f"{args.repeats} repeats on the {clock} clock; × floor: a time over the floor of its row; "
          f"{time.perf_counter() - start:.0f} s)")
    print("course paths above 1.1 × torch's: " + (", ".join(above) or "none"))
    return rows


if __name__ == "__main__":
    main()
