"""Regenerate the figures the README shows (``images/*.png``) from ``course_lib``.

=========================  =====================================================================================
``x_squared_descent.png``  gradient descent on x² with η = 0.1: ``gradient_descent.show_x_squared_descent`` (nb 01)
``x_squared_regimes.png``  the learning-rate regimes on x², all runs at once with ``descend`` (notebook 01)
``rosenbrock_methods.png`` five methods on Rosenbrock from (−1.2, 1): paths on the contours, f(θ_t) − f* against t
=========================  =====================================================================================

The files carry no timestamp or version, so regenerating them with the same libraries rewrites the same bytes.
Usage: ``python tools/make_images.py [--output-dir images]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib import methods, plotting, rules  # noqa: E402
from course_lib.descent import descend  # noqa: E402
from course_lib.functions import rosenbrock, x_squared  # noqa: E402
from course_lib.labs import gradient_descent  # noqa: E402
from tools.course import ROOT  # noqa: E402

DPI = 100
MAX_BYTES = 200_000

# The regimes of notebook 01 (learning rate η for f(x) = x², where L = 2).
# The five regimes of notebook 01 (monotone, one step, oscillating, bouncing, divergent), monotone at two rates.
REGIMES = {"monotone, tiny η": 0.01, "monotone": 0.1, "one step": 0.5, "oscillating": 0.8, "bouncing": 1.0,
           "divergent": 1.05}

# Rosenbrock: one hand-picked learning rate per method (a picture, not a fair race: notebooks 02-07 tune them).
ROSENBROCK_START = (-1.2, 1.0)
ROSENBROCK_STEPS = 2000
ROSENBROCK_LRS = {"gd": 2e-3, "momentum": 5e-4, "adagrad": 0.5, "rmsprop": 3e-3, "adam": 0.05}
#: Each method's rule from the method table (its options and toy defaults), at its learning rate.
ROSENBROCK_RULES = {name: methods.get(name).toy_rule(lr) for name, lr in ROSENBROCK_LRS.items()}


def x_squared_descent_figure():
    """The iterates of gradient descent on x² (η = 0.1) and |x_t| on a log scale."""
    return gradient_descent.show_x_squared_descent(lr=0.1, steps=30)


def x_squared_regimes_figure():
    """x_t and |x_t| for the six learning rates of notebook 01's regimes table, from one batched run."""
    lrs = np.array(list(REGIMES.values()))[:, None]
    xs = descend(x_squared, x0=5.0, rule=rules.sgd(lr=lrs), steps=40).points[:, :, 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    styles = ["-", "-", "--", "-", ":", "-"]
    shades = plt.cm.viridis(np.linspace(0, 0.9, len(REGIMES)))
    for (name, lr), x_run, style, shade in zip(REGIMES.items(), xs.T, styles, shades):
        left.plot(x_run[:16], style, marker=".", color=shade, label=f"{name} (η = {lr})")
        right.semilogy(np.abs(x_run) + 1e-300, style, color=shade, label=f"{name} (η = {lr})")
    left.set(xlabel="step t", ylabel="x_t", title="the iterates (first 15 steps)", ylim=(-8, 8))
    right.set(xlabel="step t", ylabel="|x_t|", title="distance to the minimum (log scale)", ylim=(1e-12, 1e3))
    left.axhline(0, color="k", lw=0.8)
    right.legend(loc="lower left", ncol=2, fontsize=8)
    fig.suptitle("Gradient descent on f(x) = x² from x₀ = 5: the learning rate picks the regime")
    return fig


def rosenbrock_runs():
    """One run per method of :data:`ROSENBROCK_RULES` (name → Trajectory)."""
    return {name: descend(rosenbrock, ROSENBROCK_START, rule, ROSENBROCK_STEPS)
            for name, rule in ROSENBROCK_RULES.items()}


def rosenbrock_methods_figure():
    """Paths of five methods on the Rosenbrock contours, and f(θ_t) − f* against t."""
    runs = rosenbrock_runs()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    plotting.plot_contours(rosenbrock, ax=left, bounds=((-1.6, 1.6), (-0.4, 1.6)), levels=20,
                           resolution=200)
    for name, run in runs.items():
        plotting.plot_path(run, ax=left, method=name, markers=False)
        plotting.plot_loss(np.maximum(run.suboptimality(rosenbrock.minimum), 1e-10), ax=right, method=name)
    left.set_title(f"paths from θ₀ = {ROSENBROCK_START}, {ROSENBROCK_STEPS} steps")
    left.legend(loc="lower right", fontsize=8)
    right.set_title("f(θ_t) − f* (log scale)")
    right.set_ylim(1e-10, 1e2)
    right.legend(loc="lower left", fontsize=8)
    fig.suptitle("Rosenbrock's banana valley, one hand-picked learning rate per method")
    return fig


FIGURES = {
    "x_squared_descent.png": x_squared_descent_figure,
    "x_squared_regimes.png": x_squared_regimes_figure,
    "rosenbrock_methods.png": rosenbrock_methods_figure,
}


def make_images(output_dir: Path | str = ROOT / "images", names=None) -> list[Path]:
    """Draw and save the README figures (all of them, or those in ``names``); return the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plotting.use_course_style()  # the notebooks' look
    written = []
    for name in names or FIGURES:
        fig = FIGURES[name]()
        target = output_dir / name
        fig.savefig(target, dpi=DPI, metadata={"Software": None})
        plt.close(fig)
        size = target.stat().st_size
        if size > MAX_BYTES:
            raise ValueError(f"{name} is {size} bytes, over the {MAX_BYTES}-byte budget for README images")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "images")
    args = parser.parse_args(argv)
    for path in make_images(args.output_dir):
        print(f"{path} ({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
