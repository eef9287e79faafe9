"""What an optimizer step costs: bytes moved, operations launched, memory kept, and a two-term time model
(notebook 14).

An element-wise update such as Adam does a handful of arithmetic operations per parameter, far too few to keep a
processor busy, so its time is set by two things only:

* **bytes**: every step reads θ, g and the state and writes θ and the state back. For Adam in float32 that is
  7 arrays × 4 bytes = 28 bytes per parameter (:func:`bytes_per_parameter`), the least a step that runs after
  the backward pass on float32 state can move; an implementation that runs each operation as its own kernel
  moves several times more (:func:`unfused_bytes_per_parameter`);
* **launches**: each operation started from Python costs a fixed overhead (microseconds), whatever its size.

:func:`step_time_ms` adds the two: ``launches × overhead + bytes / bandwidth``. Tiny models sit on the flat,
launch-bound part of that curve; large ones on the bandwidth-bound line. :func:`floor_ms` is the time no step can
beat on this machine: its bytes over the peak bandwidth (STREAM's copy and triad, :func:`peak_bandwidth_gbs`,
measured in the same run) plus the launches it cannot avoid times the least launch cost
(:func:`least_launch_us`). :func:`memory_per_parameter` counts the memory an optimizer keeps between steps.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import rules
from ..fast_paths import EAGER_CHUNK_ELEMENTS

__all__ = [
    "PATH_COLORS",
    "traffic",
    "bytes_per_parameter",
    "unfused_bytes_per_parameter",
    "state_arrays",
    "memory_per_parameter",
    "count_operations",
    "eager_slices",
    "launches_per_step",
    "step_time_ms",
    "make_parameters",
    "copy_parameters",
    "median_ms",
    "median_step_ms",
    "CLOCKS",
    "step_clock",
    "interleaved_ms",
    "least_launch_us",
    "launch_overhead_us",
    "STREAM_ELEMENTS",
    "stream_gbs",
    "peak_bandwidth_gbs",
    "floor_ms",
    "PRECISIONS",
    "show_step_time_model",
]

#: One colour per execution path (the methods keep their course colours; these are the ways to run them).
PATH_COLORS = {
    "per-tensor": "#999999",
    "multi-tensor": "#56B4E9",
    "flat, eager": "#E69F00",
    "flat, compiled": "#009E73",
    "torch fused": "#CC79A7",
}


def state_arrays(rule: rules.Rule) -> int:
    """How many arrays as large as θ the rule keeps as state (Adam: m and v, 2; SGD without momentum: 0)."""
    return len([name for name in rule.init(np.zeros(1)) if name != "step"])  # None entries become arrays later


def traffic(rule: rules.Rule) -> tuple[int, int]:
    """(arrays read, arrays written) per parameter and step: θ, g and the state in; θ and the state out."""
    state = state_arrays(rule)
    return 2 + state, 1 + state


PRECISIONS = ("float32", "autocast", "master copy")
"""The layouts :func:`memory_per_parameter` knows: all float32; ``torch.autocast`` (parameters, gradients and state
in float32, 16-bit numbers only inside the forward and backward passes); 16-bit weights and gradients with a float32
master copy (apex's O2 level, DeepSpeed and the ZeRO paper's accounting)."""


def memory_per_parameter(rule: rules.Rule, precision: str = "float32") -> dict[str, int]:
    """Bytes per parameter that training keeps in memory between steps, by kind (activations not included).

    * ``"float32"``: weights θ, gradients g and every state array in float32, 4 bytes each:
      4 + 4 + 4·k for a rule with k state arrays (:func:`state_arrays`);
    * ``"autocast"`` (``torch.autocast``, notebook 07): the parameters stay float32 and so do their gradients and
      the state; the 16-bit copies of the weights exist only during the forward and backward passes, so between
      steps the memory is the float32 one, 4 + 4 + 4·k;
    * ``"master copy"`` (mixed precision as in Micikevicius et al. 2018, apex's O2 level and the ZeRO paper,
      Rajbhandari et al. 2020): weights and gradients kept in 16 bits (2 bytes each), a float32 master copy of the
      weights that the optimizer updates, and the state in float32: 2 + 2 + 4 + 4·k (Adam: 16 bytes, ZeRO's
      "2 + 2 + 12").

    Returns ``{"weights": ..., "gradients": ..., "master weights": ..., "optimizer state": ...}``.
    """
    k = state_arrays(rule)
    if precision in ("float32", "autocast"):
        return {"weights": 4, "gradients": 4, "master weights": 0, "optimizer state": 4 * k}
    if precision == "master copy":
        return {"weights": 2, "gradients": 2, "master weights": 4, "optimizer state": 4 * k}
    raise ValueError(f"Invalid precision: {precision!r} (expected one of {', '.join(map(repr, PRECISIONS))})")


def bytes_per_parameter(rule: rules.Rule, dtype=torch.float32) -> int:
    """Bytes one step must move per parameter when every array is read once and written once."""
    reads, writes = traffic(rule)
    return (reads + writes) * torch.empty((), dtype=dtype).element_size()


def unfused_bytes_per_parameter(graph: torch.fx.GraphModule, itemsize: int = 4) -> int:
    """Bytes per parameter when each operation of a traced rule runs as its own kernel.

    Every operation on full-length tensors reads its full-length inputs and writes its output (an in-place
    ``copy_`` reads one and writes one); operations on single numbers are free. ``graph`` is a traced rule,
    :attr:`course_lib.fast_paths.CompiledRule.graph`.
    """
    total = 0
    long = _long_nodes(graph)
    for node in graph.graph.nodes:
        if node.op == "call_function" and node in long:
            total += sum(1 for n in node.all_input_nodes if n in long) + 1
    return total * itemsize


def _long_nodes(graph):
    """The nodes of a traced rule that are as long as the parameters (the others hold single numbers)."""
    long = set()
    for node in graph.graph.nodes:
        value = node.meta.get("val", node.meta.get("tensor_meta"))
        if node.op in ("placeholder", "call_function") and value is not None and _numel(value) > 1:
            long.add(node)
    return long


def _numel(value):
    shape = getattr(value, "shape", ())
    return int(np.prod(shape)) if len(shape) else 1


def count_operations(step) -> Counter:
    """The torch operations (by name) that run when ``step()`` is called, as the dispatcher sees them.

    Each one is a kernel launched from Python (or C++), with its fixed overhead. A kernel compiled by
    ``torch.compile`` is called directly and does not pass through the dispatcher.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.counts = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with _Count() as counter:
        step()
    return counter.counts


def eager_slices(parameters, device="cpu"):
    """Slices the flat eager path cuts a buffer of ``parameters`` numbers into: ⌈N / 2¹⁷⌉ on a CPU (each
    slice's temporaries fit in the cache), one elsewhere (:data:`course_lib.fast_paths.EAGER_CHUNK_ELEMENTS`)."""
    if torch.device(device).type != "cpu":
        return np.ones_like(np.asarray(parameters), dtype=int) if np.ndim(parameters) else 1
    slices = np.maximum(1, np.ceil(np.asarray(parameters, dtype=float) / EAGER_CHUNK_ELEMENTS)).astype(int)
    return slices if np.ndim(parameters) else int(slices)


def launches_per_step(path: str, tensors: int, operations: int, slices=1):
    """Kernels started per step: per tensor, ``operations`` for each tensor; multi-tensor, ``operations``
    (each over all tensors); flat and eager, ``operations`` per slice of the buffer (``slices``, see
    :func:`eager_slices`); flat and compiled, one."""
    if path == "per-tensor":
        return operations * tensors
    if path == "multi-tensor":
        return operations
    if path == "flat, eager":
        return operations * slices
    if path == "flat, compiled":
        return 1
    raise ValueError(f"Invalid path: {path!r} (expected per-tensor, multi-tensor, 'flat, eager' or 'flat, compiled')")


def step_time_ms(parameters, launches, bytes_per_param, bandwidth_gbs, launch_us):
    """The two-term model: ``launches × launch_us + parameters × bytes_per_param / bandwidth``, in ms."""
    parameters = np.asarray(parameters, dtype=float)
    return launches * launch_us * 1e-3 + parameters * bytes_per_param / (bandwidth_gbs * 1e9) * 1e3


def make_parameters(total: int, tensors: int, device="cpu", seed: int = 0) -> list[torch.nn.Parameter]:
    """``tensors`` float32 parameters (half matrices, half short vectors) with ``total`` numbers and gradients."""
    generator = torch.Generator().manual_seed(seed)
    vectors, matrices = tensors // 2, tensors - tensors // 2
    vector_size = max(1, min(64, total // (10 * tensors)))
    sizes = [vector_size] * vectors
    rest = total - sum(sizes)
    sizes += [rest // matrices + (1 if i < rest % matrices else 0) for i in range(matrices)]
    params = []
    for size in sizes:
        param = torch.nn.Parameter(torch.randn(size, generator=generator).to(device))
        param.grad = (torch.randn(size, generator=generator) * 1e-3).to(device)
        params.append(param)
    return params


def copy_parameters(params) -> list[torch.nn.Parameter]:
    """Fresh copies of ``params`` with copies of their gradients: one start made by :func:`make_parameters`,
    stepped by several optimizers in turn without drawing the random numbers again."""
    copies = []
    for param in params:
        copy = torch.nn.Parameter(param.detach().clone())
        copy.grad = None if param.grad is None else param.grad.detach().clone()
        copies.append(copy)
    return copies


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_ms(run, device="cpu", steps: int = 10, repeats: int = 3, warmup: int = 2, fastest: bool = False) -> float:
    """Median over ``repeats`` of the mean wall-clock milliseconds of ``run()`` (GPU work waited for).

    ``fastest=True`` returns the fastest repeat instead of the median: on a machine shared with other work, a short
    measurement is slowed down whenever the scheduler hands the core to someone else, and the fastest of a few
    repeats is the one least disturbed (the advice of Python's ``timeit``).
    """
    for _ in range(warmup):
        run()
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        _synchronize(device)
        times.append((time.perf_counter() - start) / steps * 1e3)
    return min(times) if fastest else statistics.median(times)


def median_step_ms(optimizer, steps: int = 10, repeats: int = 3, warmup: int = 2, fastest: bool = False) -> float:
    """Median over ``repeats`` of the mean wall-clock milliseconds of ``optimizer.step()`` (the fastest repeat with
    ``fastest=True``, see :func:`median_ms`)."""
    device = next(p.device for group in optimizer.param_groups for p in group["params"])
    return median_ms(optimizer.step, device, steps, repeats, warmup, fastest)


#: The clocks :func:`interleaved_ms` can time with: the wall clock (``time.perf_counter``) and this process's CPU
#: time (``time.process_time``), which on one thread does not count the moments a busy machine gives the core to
#: another program.
CLOCKS = {"wall": "perf_counter", "cpu": "process_time"}


def step_clock(device="cpu") -> str:
    """``"cpu"`` for work on a CPU on one thread where the process's CPU-time clock is fine-grained (Linux and macOS:
    nanoseconds), else ``"wall"`` (a GPU, several threads, or Windows, whose CPU-time clock ticks every 15.6 ms)."""
    fine = time.get_clock_info("process_time").resolution <= 1e-6
    one_thread = torch.get_num_threads() == 1
    return "cpu" if torch.device(device).type == "cpu" and one_thread and fine else "wall"


def interleaved_ms(runs: dict, steps: int = 10, repeats: int = 5, warmup: int = 2, device="cpu",
                   clock: str = "wall") -> dict[str, float]:
    """``{name: ms per call}`` for several callables timed in turn within every repeat, each the fastest repeat.

    Within a repeat each ``run()`` is called ``steps`` times in a row; the order of the runs alternates between
    repeats (first to last, then last to first), so that none always follows another and all of them see the same
    moments of a shared machine. A ratio of two of these times is what a comparison should report: the load that
    slows one slows the other. (``warmup`` calls of each first: compilation, first allocations.) ``clock``:
    ``"wall"`` or ``"cpu"`` (:data:`CLOCKS`, :func:`step_clock`).
    """
    if clock not in CLOCKS:
        raise ValueError(f"Invalid clock: {clock!r} (expected one of {', '.join(map(repr, CLOCKS))})")
    now = getattr(time, CLOCKS[clock])
    for run in runs.values():
        for _ in range(warmup):
            run()
    _synchronize(device)
    best = {name: float("inf") for name in runs}
    order = list(runs.items())
    for repeat in range(repeats):
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            start = now()
            for _ in range(steps):
                run()
            _synchronize(device)
            best[name] = min(best[name], (now() - start) / steps * 1e3)
    return best


def least_launch_us(device="cpu", calls: int = 200, repeats: int = 20) -> float:
    """The least microseconds one tiny in-place operation takes from Python: the fastest of ``repeats`` timings of
    ``calls`` calls of ``x.add_(1)`` on a one-number tensor. No operation started from Python costs less."""
    one = torch.zeros(1, device=device)
    return median_ms(lambda: one.add_(1), device, calls, repeats, warmup=10, fastest=True) * 1e3


def launch_overhead_us(device="cpu", repeats: int = 2000) -> float:
    """Microseconds of one tiny in-place operation, the median of three timings (a typical launch, where
    :func:`least_launch_us` is the least one)."""
    one = torch.zeros(1, device=device)
    return median_ms(lambda: one.add_(1), device, repeats, 3) * 1e3


#: STREAM's arrays beyond the caches: 2²⁴ float32 numbers (64 MiB) each, twice the last-level cache of the
#: course's machines.
STREAM_ELEMENTS = 2**24


@contextlib.contextmanager
def _threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stream_gbs(elements: int, device="cpu", repeats: int = 5) -> dict[str, float]:
    """GB/s of three one-pass kernels on arrays of ``elements`` float32 numbers, each the fastest of ``repeats``
    timings: STREAM's *copy* (a = b: 8 bytes per number) and *triad* (a = b + s·c: 12 bytes), and an in-place
    *add* (a += b: 12 bytes), which like an optimizer step writes only what it has just read (a kernel that writes
    into another array makes the processor read each of its lines first, traffic that STREAM's count leaves out).
    STREAM's convention: every array read or written counts once, as in the step's byte count.

    On a CPU the arrays of at least 2²⁰ numbers are measured on every core as well as on the current threads, the
    better of the two (threads that wait for each other on a busy machine can make "every core" the slower; on
    shorter arrays they would mostly wait).
    """
    a, b, c = (torch.full((elements,), value, device=device) for value in (0.0, 1.0, 2.0))
    calls = max(1, min(50, 2**22 // elements))
    kernels = {"copy": (lambda: a.copy_(b), 8), "triad": (lambda: torch.add(b, c, alpha=3.0, out=a), 12),
               "add": (lambda: a.add_(b), 12)}
    counts = {torch.get_num_threads()}
    if torch.device(device).type == "cpu" and elements >= 2**20:
        counts.add(os.cpu_count() or 1)
    best = {name: 0.0 for name in kernels}
    for count in sorted(counts):
        with _threads(count) if torch.device(device).type == "cpu" else contextlib.nullcontext():
            for name, (run, moved) in kernels.items():
                ms = median_ms(run, device, calls, repeats, warmup=1, fastest=True)
                best[name] = max(best[name], moved * elements / (ms * 1e-3) / 1e9)
    return best


def peak_bandwidth_gbs(parameters: int, device="cpu", repeats: int = 5,
                       beyond_caches: dict[str, float] | None = None) -> tuple[float, dict[str, float]]:
    """The machine's peak memory bandwidth in GB/s as a step of ``parameters`` numbers can see it, with the
    measurements it is the best of, ``{"copy, 64 MiB arrays": GB/s, ...}``: STREAM's copy and triad
    (:func:`stream_gbs`) on arrays larger than the caches (:data:`STREAM_ELEMENTS`; pass an earlier
    ``stream_gbs(STREAM_ELEMENTS)`` as ``beyond_caches`` to measure them once per run), and on arrays as long as
    the step's, whose data the caches may hold as they may hold the step's: a floor must get the same help."""
    if beyond_caches is None:
        beyond_caches = stream_gbs(STREAM_ELEMENTS, device, repeats)
    measured = {f"{kernel}, {4 * STREAM_ELEMENTS // 2**20} MiB arrays": gbs for kernel, gbs in beyond_caches.items()}
    if parameters >= 2**14:  # below it the timing measures the launch, not the memory
        measured.update({f"{kernel}, arrays of {parameters:,}": gbs
                         for kernel, gbs in stream_gbs(parameters, device, repeats).items()})
    return max(measured.values()), measured


def floor_ms(parameters, bytes_per_param: int, launches, bandwidth_gbs: float, launch_us: float):
    """The least time of a step, in ms: its bytes over the peak bandwidth plus the launches it cannot avoid times
    the least launch cost,

        t_floor = b·N / BW + K_min · t_launch,min,

    with b ``bytes_per_param``, N ``parameters``, BW ``bandwidth_gbs`` (:func:`peak_bandwidth_gbs`), K_min
    ``launches`` (one per tensor for a step that goes tensor by tensor, one otherwise) and t_launch,min
    ``launch_us`` (:func:`least_launch_us`). Both terms are lower bounds, so no step beats their sum: a measured
    step below it means the bandwidth or the launch cost was measured too low.
    """
    parameters = np.asarray(parameters, dtype=float)
    return parameters * bytes_per_param / (bandwidth_gbs * 1e9) * 1e3 + launches * launch_us * 1e-3


def show_step_time_model(tensors: int = 300, bandwidth_gbs: float = 40.0, launch_us: float = 5.0,
                         operations: int = 7, bytes_per_param: int = 28, unfused_bytes: int = 160,
                         parameters: float = 2e6):
    """Predicted ms per step against the number of parameters for the four paths (log-log), with a marker.

    The eager paths move ``unfused_bytes`` per parameter (each operation is its own pass over memory); the
    compiled one moves ``bytes_per_param``. The playground of notebook 14 redraws this figure.
    """
    sizes = np.logspace(2, 9, 200)
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for path in ("per-tensor", "multi-tensor", "flat, eager", "flat, compiled"):
        moved = bytes_per_param if path == "flat, compiled" else unfused_bytes
        launches = launches_per_step(path, tensors, operations)
        ax.plot(sizes, step_time_ms(sizes, launches, moved, bandwidth_gbs, launch_us), color=PATH_COLORS[path],
                ls="--" if path == "multi-tensor" else "-", label=f"{path}: {launches:,} launches, {moved} B/parameter")
    ax.plot(sizes, step_time_ms(sizes, 0, bytes_per_param, bandwidth_gbs, launch_us), color="k", ls=":",
            lw=1, label=f"bytes alone: {bytes_per_param} B/parameter at {bandwidth_gbs:g} GB/s")
    ax.axvline(parameters, color="k", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="parameters $N$", ylabel="predicted ms per step",
           title=f"launch-bound left, bandwidth-bound right ({tensors} tensors, {launch_us:g} µs per launch)")
    ax.minorticks_off()  # seven decades by ten: minor ticks would double the time the figure takes to draw
    ax.legend(loc="upper left", fontsize=8)
    return fig


def step_time_playground(operations: int = 7, bytes_per_param: int = 28, unfused_bytes: int = 160):
    """Notebook 14: sliders for tensors, bandwidth, launch overhead and model size over the step-time model.

    The view is :func:`show_step_time_model`.
    """
    import ipywidgets as ipw

    from ..widgets import playground

    return playground(
        lambda tensors, bandwidth_gbs, launch_us, parameters: show_step_time_model(
            tensors=tensors, bandwidth_gbs=bandwidth_gbs, launch_us=launch_us, operations=operations,
            bytes_per_param=bytes_per_param, unfused_bytes=unfused_bytes, parameters=parameters),
        tensors=ipw.IntSlider(value=300, min=1, max=2000, description="tensors", continuous_update=False),
        bandwidth_gbs=ipw.FloatLogSlider(value=40.0, base=10, min=0, max=3.7, description="GB/s",
                                         continuous_update=False),
        launch_us=ipw.FloatLogSlider(value=5.0, base=10, min=-0.5, max=2, description="µs/launch",
                                     continuous_update=False),
        parameters=ipw.FloatLogSlider(value=2e6, base=10, min=2, max=9, description="N", continuous_update=False),
    )


__all__ += ["step_time_playground"]
