"""course_lib.speed: byte counts from the rules, operation counts from the dispatcher, the time model."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import optim, rules, speed, widgets


@pytest.mark.parametrize("rule, expected", [
    (rules.sgd(lr=0.1), 12),                         # read θ, g; write θ
    (rules.sgd(lr=0.1, momentum=0.9), 20),           # + momentum buffer in and out
    (rules.adagrad(), 20),
    (rules.rmsprop(momentum=0.9, centered=True), 36),
    (rules.adam(), 28),                              # read θ, g, m, v; write θ, m, v
    (rules.adam(amsgrad=True), 36),
    (rules.adamw(), 28),
])
def test_bytes_per_parameter_counts_each_array_once(rule, expected):
    assert speed.bytes_per_parameter(rule) == expected
    assert speed.bytes_per_parameter(rule, torch.float64) == 2 * expected


def test_unfused_adam_moves_six_times_the_bytes():
    compiled = optim.compile_rule(rules.adam(lr=1e-3), torch.float32, "cpu")
    unfused = speed.unfused_bytes_per_parameter(compiled.graph)
    assert unfused == 168 and unfused == 6 * speed.bytes_per_parameter(rules.adam())


def test_operation_counts_match_the_launch_model():
    counts = {}
    for name, kwargs in (("per-tensor", dict(foreach=False)), ("multi-tensor", dict(foreach=True)),
                         ("flat, eager", dict(fused=True))):
        with optim.compile_min_elements(float("inf")):  # the flat path (fused=True), kept eager
            opt = optim.Adam(speed.make_parameters(3000, 30), lr=1e-3, **kwargs)
            opt.step()
            counts[name] = speed.count_operations(opt.step)
    arithmetic = {"mul", "add", "div", "sqrt", "sub"}
    per_tensor = sum(counts["per-tensor"][op] for op in arithmetic)
    flat = sum(counts["flat, eager"][op] for op in arithmetic)
    multi = sum(n for op, n in counts["multi-tensor"].items() if op.removeprefix("_foreach_") in arithmetic)
    assert flat == multi == 14  # Adam's rule: 14 element-wise operations
    assert per_tensor == speed.launches_per_step("per-tensor", 30, 14) == 30 * 14
    assert speed.launches_per_step("flat, compiled", 30, 14) == 1
    with pytest.raises(ValueError, match="path"):
        speed.launches_per_step("fast", 30, 14)


def test_step_time_model_has_a_launch_floor_and_a_bandwidth_slope():
    sizes = np.array([1e2, 1e3, 1e8, 1e9])
    times = speed.step_time_ms(sizes, launches=100, bytes_per_param=28, bandwidth_gbs=28.0, launch_us=5.0)
    assert times[0] == pytest.approx(0.5, rel=1e-3)      # 100 launches × 5 µs
    assert times[-1] / times[-2] == pytest.approx(10, rel=1e-2)  # linear in N when large
    assert times[-1] == pytest.approx(0.5 + 1e9 * 28 / 28e9 * 1e3)


def test_make_parameters_has_the_requested_size_and_gradients():
    params = speed.make_parameters(10_000, 7)
    assert len(params) == 7 and sum(p.numel() for p in params) == 10_000
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)
    assert speed.median_step_ms(torch.optim.SGD(params, lr=0.1), steps=2, repeats=1, warmup=1) > 0


def test_step_time_playground_builds_and_redraws():
    controls = widgets.step_time_playground()
    tensors, bandwidth, launch, parameters = controls.children[:4]
    assert tensors.value == 300 and bandwidth.value == pytest.approx(40.0)
    tensors.value = 10  # triggers the callback, which must not raise
    assert controls.kwargs["tensors"] == 10
    fig = speed.show_step_time_model(tensors=10)
    assert len(fig.axes[0].lines) == 6
    plt.close("all")


def test_machine_constants_are_positive_and_finite():
    assert 0 < speed.launch_overhead_us(repeats=50) < 1e5
    assert 0 < speed.copy_bandwidth_gbs(10_000) < 1e5
