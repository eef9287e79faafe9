"""How fast is course_lib.descent.descend? Prints figures; asserts nothing about time.

1. A 100 × 100 grid of (learning rate, momentum) for 200 steps on a 2-D quadratic (κ = 100),
   all 10,000 runs in ONE vectorized ``descend`` call (target: under a second on one CPU core),
   against a Python loop that calls ``descend`` once per run, measured in the same process.
2. A playground redraw: the compute behind notebook 04's and notebook 05's views (target: under
   50 ms), and, for information, the whole redraw with matplotlib rendering to an Agg canvas.

The process pins itself to one CPU core (where the OS allows it) and asks BLAS/OpenMP for one
thread before NumPy is imported. The per-run loop is slow, so by default it runs on an evenly
spaced sample of the grid and the figure is scaled to all runs (the script says so); pass
``--full-loop`` to time the loop over every run. Each timing is the best of ``--repeats`` runs.

    python benchmarks/descent_speed.py [--repeats 5] [--loop-sample 500] [--full-loop]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from course_lib import rules  # noqa: E402
from course_lib.descent import descend  # noqa: E402
from course_lib.functions import quadratic  # noqa: E402
from course_lib.labs import adaptive, momentum  # noqa: E402

GRID = 100
STEPS = 200
START = np.array([-12.0, 2.5])


def pin_to_one_core() -> str:
    """Restrict this process to a single CPU (Linux); say what was done."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity on this OS); BLAS limited to one thread"


def best_time(function, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def grid_hyperparameters():
    lr, beta = np.meshgrid(np.linspace(0.02, 4.5, GRID), np.linspace(0.0, 0.99, GRID))
    return lr.reshape(-1, 1), beta.reshape(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions; the best is reported")
    parser.add_argument("--loop-sample", type=int, default=500, help="runs timed one by one (scaled to all)")
    parser.add_argument("--full-loop", action="store_true", help="time the per-run loop over every run")
    args = parser.parse_args()

    pinned = pin_to_one_core()
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, matplotlib {matplotlib.__version__}; "
          f"{pinned}")

    objective = quadratic(kappa=100.0)
    lr, beta = grid_hyperparameters()
    runs = len(lr)
    rule = rules.sgd(lr=lr, momentum=beta)

    # 1. The grid in one call, against a loop over runs.
    def vectorized():
        return descend(objective, START, rule, STEPS)

    vectorized_s = best_time(vectorized, args.repeats)
    grid_run = vectorized()

    sample = np.arange(runs) if args.full_loop else np.linspace(0, runs - 1, args.loop_sample).astype(int)

    def loop():
        return [descend(objective, START, rules.sgd(lr=float(lr[k, 0]), momentum=float(beta[k, 0])), STEPS)
                for k in sample]

    loop_repeats = 1 if args.full_loop else max(1, min(args.repeats, 3))
    loop_s = best_time(loop, loop_repeats) * runs / len(sample)
    for k, alone in zip(sample, loop()):  # same numbers either way (a correctness check, not a timing)
        np.testing.assert_allclose(grid_run.points[:, k], alone.points, rtol=1e-12, atol=1e-300)

    how = "every run" if args.full_loop else f"{len(sample)} of the {runs} runs, scaled to all"
    print(f"\n1. {GRID} x {GRID} grid of (lr, momentum), {STEPS} steps on quadratic(kappa=100), {runs} runs")
    print(f"   one vectorized descend call : {vectorized_s * 1e3:8.1f} ms  (target < 1000 ms)")
    print(f"   Python loop over runs       : {loop_s * 1e3:8.1f} ms  ({how})")
    print(f"   speed-up of the batched call: {loop_s / vectorized_s:8.0f} x")

    # 2. Playground redraws: compute only, then compute + drawing to an Agg canvas.
    print("\n2. playground redraw (default view)")
    for name, compute, draw in [
        ("notebook 04, momentum_view  ", lambda: momentum.momentum_view(lr=1.0, momentum=0.9),
         lambda: momentum.show_momentum_descent(lr=1.0, momentum=0.9)),
        ("notebook 05, adaptive_view  ", lambda: adaptive.adaptive_view(angle=20.0, kappa=100.0),
         lambda: adaptive.show_adaptive_descent(angle=20.0, kappa=100.0)),
    ]:
        compute_s = best_time(compute, args.repeats)

        def full_redraw(draw=draw):
            fig = draw()
            fig.canvas.draw()
            plt.close(fig)

        full_redraw()  # warm up fonts and caches
        redraw_s = best_time(full_redraw, max(1, min(args.repeats, 3)))
        print(f"   {name}: compute {compute_s * 1e3:6.1f} ms  (target < 50 ms); "
              f"with matplotlib rendering {redraw_s * 1e3:6.0f} ms")


if __name__ == "__main__":
    main()
