"""course_lib.labs.fast_steps: byte counts from the rules, operation counts from the dispatcher, the time model, the
memory an optimizer keeps; and what notebook 14 gets where torch.compile cannot build a kernel."""

import time
import types
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import fast_paths, optim, rules
from course_lib.labs import fast_steps as speed


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
    compiled = fast_paths.compile_rule(rules.adam(lr=1e-3), torch.float32, "cpu")
    unfused = speed.unfused_bytes_per_parameter(compiled.graph)
    # 13 element-wise operations on the parameter-sized arrays, each reading its inputs and writing its result
    assert unfused == 160 and 5 * speed.bytes_per_parameter(rules.adam()) < unfused < 6 * 28


def test_the_compiled_kernel_serves_optimizer_steps_without_compiling_again(fresh_compile_caches):
    """compile_rule compiles under no_grad, as optimizer steps run: torch.compile guards on grad mode, so a kernel
    compiled with autograd on would be compiled a second time at the first step (notebook 14 pays it once)."""
    import torch._dynamo

    compiled = fast_paths.compile_rule(rules.adam(lr=1e-3), torch.float32, "cpu")
    if compiled.fallback_reason is not None:
        pytest.skip(f"no kernel here: {compiled.fallback_reason}")
    optimizer = optim.Adam(speed.make_parameters(1000, 4), lr=1e-3, fused=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(2):
            optimizer.step()


def _arithmetic(counts):
    # Adam's operations, in place or not, less the step counters' bookkeeping: per tensor a fill_ each (not
    # counted), on the other paths one add_ for all of them (taken off)
    names = {"mul", "add", "div", "sqrt", "sub", "lerp", "addcmul", "addcdiv", "mul_", "add_", "div_", "lerp_",
             "addcmul_", "addcdiv_"}
    counters = 0 if "fill_" in counts else 1
    return sum(n for op, n in counts.items() if op.removeprefix("_foreach_") in names) - counters


def test_operation_counts_match_the_launch_model():
    counts = {}
    for name, kwargs in (("per-tensor", dict(foreach=False)), ("multi-tensor", dict(foreach=True)),
                         ("flat, eager", dict(fused=True))):
        with fast_paths.compile_disabled():  # fused=True runs the flat path eagerly
            opt = optim.Adam(speed.make_parameters(3000, 30), lr=1e-3, **kwargs)
            opt.step()
            counts[name] = speed.count_operations(opt.step)
    assert opt.paths[0].startswith("group 0: flat, eager")
    # Adam in torch.optim's forms: lerp, mul, addcmul, sqrt, div, add, addcdiv (the step counter's add_ aside)
    assert _arithmetic(counts["flat, eager"]) == _arithmetic(counts["multi-tensor"]) == 7
    assert _arithmetic(counts["per-tensor"]) == speed.launches_per_step("per-tensor", 30, 7) == 30 * 7
    assert speed.launches_per_step("flat, compiled", 30, 7) == 1
    with pytest.raises(ValueError, match="path"):
        speed.launches_per_step("fast", 30, 7)


def test_the_eager_flat_path_launches_its_operations_once_per_slice_on_a_cpu():
    parameters = 2 * fast_paths.EAGER_CHUNK_ELEMENTS + 1  # three slices
    with fast_paths.compile_disabled():
        opt = optim.Adam(speed.make_parameters(parameters, 4), lr=1e-3, fused=True)
        opt.step()
        counts = speed.count_operations(opt.step)
    assert speed.eager_slices(parameters) == 3 and speed.eager_slices(parameters, "cuda") == 1
    assert list(speed.eager_slices(np.array([1, 2**17, 2**17 + 1]))) == [1, 1, 2]
    assert _arithmetic(counts) == speed.launches_per_step("flat, eager", 4, 7, slices=3) == 21


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


def test_copy_parameters_copies_values_and_gradients_into_new_memory():
    params = speed.make_parameters(1000, 4)
    copies = speed.copy_parameters(params)
    for param, copy in zip(params, copies):
        assert torch.equal(copy, param) and torch.equal(copy.grad, param.grad)
        assert copy.data_ptr() != param.data_ptr() and copy.grad.data_ptr() != param.grad.data_ptr()
    torch.optim.Adam(copies, lr=0.1).step()  # stepping the copies leaves the start unchanged
    assert all(torch.equal(p, q) for p, q in zip(params, speed.make_parameters(1000, 4)))


def test_median_ms_reports_the_median_or_the_fastest_repeat(monkeypatch):
    clock = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])  # three repeats of one call: 4 ms, 1 ms, 10 ms
    monkeypatch.setattr(speed.time, "perf_counter", lambda: next(clock))
    assert speed.median_ms(lambda: None, steps=1, repeats=3, warmup=0) == pytest.approx(4.0)
    clock = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])
    assert speed.median_ms(lambda: None, steps=1, repeats=3, warmup=0, fastest=True) == pytest.approx(1.0)


def test_step_time_playground_builds_and_redraws():
    controls = speed.step_time_playground()
    tensors, bandwidth, launch, parameters = controls.children[:4]
    assert tensors.value == 300 and bandwidth.value == pytest.approx(40.0)
    tensors.value = 10  # triggers the callback, which must not raise
    assert controls.kwargs["tensors"] == 10
    fig = speed.show_step_time_model(tensors=10)
    assert len(fig.axes[0].lines) == 6
    plt.close("all")


def test_machine_constants_are_positive_and_finite():
    assert 0 < speed.launch_overhead_us(repeats=50) < 1e5
    assert 0 < speed.least_launch_us(calls=20, repeats=3) < 1e5
    measured = speed.stream_gbs(2**15, repeats=2)
    assert set(measured) == {"copy", "triad", "add"} and all(0 < gbs < 1e5 for gbs in measured.values())


def test_stream_counts_each_array_read_or_written_once(monkeypatch):
    """STREAM's convention: copy moves 8 bytes per number, triad and the in-place add 12."""
    monkeypatch.setattr(speed, "median_ms", lambda *args, **kwargs: 2.0)  # every kernel takes 2 ms
    measured = speed.stream_gbs(1000)
    assert measured == pytest.approx({"copy": 8 * 1000 / 2e-3 / 1e9, "triad": 12 * 1000 / 2e-3 / 1e9,
                                      "add": 12 * 1000 / 2e-3 / 1e9})


def test_peak_bandwidth_is_the_best_measurement_beyond_the_caches_and_at_the_step_size(monkeypatch):
    far = {"copy": 20.0, "triad": 25.0, "add": 30.0}
    monkeypatch.setattr(speed, "stream_gbs", lambda *args, **kwargs: pytest.fail("measured again"))
    best, measured = speed.peak_bandwidth_gbs(1000, beyond_caches=far)  # too short to time the memory: not measured
    assert best == 30.0 and set(measured) == {"copy, 64 MiB arrays", "triad, 64 MiB arrays", "add, 64 MiB arrays"}
    monkeypatch.setattr(speed, "stream_gbs", lambda elements, *args, **kwargs: {"copy": elements / 1000, "triad": 1.0})
    best, measured = speed.peak_bandwidth_gbs(100_000, beyond_caches=far)
    assert best == 100.0 and measured["copy, arrays of 100,000"] == 100.0 and measured["add, 64 MiB arrays"] == 30.0


def test_floor_is_bytes_over_bandwidth_plus_least_launches():
    # 28 bytes × 10⁶ parameters at 28 GB/s = 1 ms, plus 300 launches × 2 µs = 0.6 ms
    assert speed.floor_ms(1_000_000, 28, 300, 28.0, 2.0) == pytest.approx(1.6)
    assert speed.floor_ms(1_000_000, 28, 1, 28.0, 2.0) == pytest.approx(1.002)
    assert speed.floor_ms(0, 28, 4, 28.0, 2.5) == pytest.approx(0.01)
    assert list(speed.floor_ms(np.array([0, 1e6]), 28, 1, 28.0, 0.0)) == pytest.approx([0.0, 1.0])


def test_interleaved_ms_alternates_the_order_and_keeps_the_fastest_repeat(monkeypatch):
    calls = []
    runs = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    speed.interleaved_ms(runs, steps=1, repeats=3, warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    # a: 4, 1, 3 ms and b: 2, 6, 5 ms over three repeats (b runs first in the second)
    ticks = iter(np.cumsum([0, 4e-3, 0, 2e-3, 0, 6e-3, 0, 1e-3, 0, 3e-3, 0, 5e-3]))
    monkeypatch.setattr(speed.time, "perf_counter", lambda: float(next(ticks)))
    best = speed.interleaved_ms({"a": lambda: None, "b": lambda: None}, steps=1, repeats=3, warmup=0)
    assert best == pytest.approx({"a": 1.0, "b": 2.0})
    ticks = iter(np.cumsum([0, 4e-3, 0, 2e-3]))
    monkeypatch.setattr(speed.time, "process_time", lambda: float(next(ticks)))
    best = speed.interleaved_ms({"a": lambda: None, "b": lambda: None}, steps=1, repeats=1, warmup=0, clock="cpu")
    assert best == pytest.approx({"a": 4.0, "b": 2.0})
    with pytest.raises(ValueError, match="clock"):
        speed.interleaved_ms({}, clock="process")


def test_step_clock_takes_the_cpu_clock_only_for_one_fine_grained_cpu_thread(monkeypatch):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        fine = time.get_clock_info("process_time").resolution <= 1e-6
        assert speed.step_clock("cpu") == ("cpu" if fine else "wall") and speed.step_clock("cuda") == "wall"
        torch.set_num_threads(2)
        assert speed.step_clock("cpu") == "wall"
        torch.set_num_threads(1)
        coarse = types.SimpleNamespace(resolution=0.015625)  # Windows' CPU-time clock
        monkeypatch.setattr(speed.time, "get_clock_info", lambda name: coarse)
        assert speed.step_clock("cpu") == "wall"
    finally:
        torch.set_num_threads(threads)


# --- the memory an optimizer keeps --------------------------------------------------------------------------

MAKERS = {
    "gd": (rules.sgd(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "momentum": (rules.sgd(lr=0.1, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "adam": (rules.adam(), lambda ps: torch.optim.Adam(ps)),
    "amsgrad": (rules.adam(amsgrad=True), lambda ps: torch.optim.Adam(ps, amsgrad=True)),
    "adamw": (rules.adamw(), lambda ps: torch.optim.AdamW(ps)),
}


def _tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("name", list(MAKERS))
def test_memory_per_parameter_matches_what_torch_optim_keeps(name):
    rule, make = MAKERS[name]
    parameters = 1000
    master = speed.make_parameters(parameters, 4)  # float32
    optimizer = make(master)
    optimizer.step()
    state = [value for entry in optimizer.state_dict()["state"].values() for key, value in entry.items()
             if key != "step" and isinstance(value, torch.Tensor)]  # a step counter per tensor, not per number
    fp32 = speed.memory_per_parameter(rule)
    assert fp32["weights"] * parameters == _tensor_bytes(master)
    assert fp32["gradients"] * parameters == _tensor_bytes(p.grad for p in master)
    assert fp32["optimizer state"] * parameters == _tensor_bytes(state)
    assert fp32["master weights"] == 0
    # mixed precision with a master copy: the model in bfloat16, the optimizer on a float32 master copy
    model = [p.detach().to(torch.bfloat16).requires_grad_() for p in master]
    for p, m in zip(model, master):
        p.grad = m.grad.to(torch.bfloat16)
    mixed = speed.memory_per_parameter(rule, "master copy")
    assert mixed["weights"] * parameters == _tensor_bytes(model)
    assert mixed["gradients"] * parameters == _tensor_bytes(p.grad for p in model)
    assert mixed["master weights"] * parameters == _tensor_bytes(master)
    assert mixed["optimizer state"] == fp32["optimizer state"]


@pytest.mark.parametrize("name", ["momentum", "adam", "amsgrad"])
def test_autocast_keeps_the_float32_memory(name):
    """torch.autocast computes in bfloat16 but keeps parameters, gradients and state in float32."""
    rule, make = MAKERS[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    optimizer = make(model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(torch.randn(5, 16))
    assert output.dtype == torch.bfloat16  # the passes do run in 16 bits
    output.float().sum().backward()
    optimizer.step()
    params = list(model.parameters())
    parameters = sum(p.numel() for p in params)
    state = [value for entry in optimizer.state_dict()["state"].values() for key, value in entry.items()
             if key != "step" and isinstance(value, torch.Tensor)]
    kept = speed.memory_per_parameter(rule, "autocast")
    assert kept == speed.memory_per_parameter(rule, "float32")
    assert kept["weights"] * parameters == _tensor_bytes(params)
    assert kept["gradients"] * parameters == _tensor_bytes(p.grad for p in params)
    assert kept["optimizer state"] * parameters == _tensor_bytes(state) and kept["master weights"] == 0


def test_memory_per_parameter_totals_and_errors():
    totals = {name: sum(speed.memory_per_parameter(rule, "master copy").values())
              for name, (rule, _) in MAKERS.items()}
    assert totals["adam"] == 16  # ZeRO's "2 + 2 + 12" for mixed-precision Adam
    assert totals == {"gd": 8, "momentum": 12, "adam": 16, "amsgrad": 20, "adamw": 16}
    assert speed.PRECISIONS == ("float32", "autocast", "master copy")
    with pytest.raises(ValueError, match="precision"):
        speed.memory_per_parameter(rules.adam(), "float16")
    with pytest.raises(ValueError, match="precision"):
        speed.memory_per_parameter(rules.adam(), "mixed")


# --- without torch.compile -----------------------------------------------------------------------------------

def _start_and_gradient():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(50, generator=generator, dtype=torch.float64),
            torch.randn(50, generator=generator, dtype=torch.float64))


def _two_steps_through(compiled):
    """θ after two Adam steps (η = 0.1) through ``compiled(param, grad, step, m, v, lr, β₁, β₂, ε)``."""
    param, grad = _start_and_gradient()
    state = [torch.zeros(1, dtype=torch.float64), torch.zeros(50, dtype=torch.float64),
             torch.zeros(50, dtype=torch.float64)]
    hyper = [torch.full((1,), value, dtype=torch.float64) for value in (0.1, 0.9, 0.999, 1e-8)]
    for _ in range(2):
        compiled(param, grad, *state, *hyper)
    return param


def _two_steps_of_the_rule():
    param, grad = _start_and_gradient()
    rule = rules.adam(lr=0.1)
    state = rule.init(param)
    for _ in range(2):
        param, state = rule.update(param, grad, state)
    return param


def test_switched_off_compilation_gives_the_eager_rule_and_warns_once(monkeypatch, fresh_compile_caches):
    monkeypatch.setenv("COURSE_NO_COMPILE", "1")
    assert "COURSE_NO_COMPILE" in fast_paths.compile_unavailable_reason("cpu")
    with pytest.warns(fast_paths.CompileFallbackWarning, match="unavailable for cpu .COURSE_NO_COMPILE is set"):
        fallback = fast_paths.compile_rule(rules.adam(lr=0.1), torch.float64, "cpu")
    assert fallback.fallback_reason.startswith("COURSE_NO_COMPILE is set")
    assert fallback.kernel_count() == 0 and fallback.source == ""
    assert fallback.operation_count() == 27 and "aten.sqrt" in fallback.graph.code  # the same traced rule
    # eager: the rule's numbers, to float64 rounding (the trace takes η, β₁, β₂, ε as tensors, so it writes out the
    # lerp/addcmul/addcdiv that the rule uses with numbers)
    torch.testing.assert_close(_two_steps_through(fallback), _two_steps_of_the_rule(), rtol=1e-14, atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        assert fast_paths.compile_rule(rules.adam(lr=0.5), torch.float64, "cpu") is fallback
        # and the optimizer's flat path, asked to compile, runs eagerly without a second warning
        params = speed.make_parameters(1000, 3)
        reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p, r in zip(params, reference):
            r.grad = p.grad.clone()
        ours, theirs = optim.Adam(params, lr=0.1, fused=True), torch.optim.Adam(reference, lr=0.1)
        for _ in range(3):
            ours.step()
            theirs.step()
    assert ours.paths[0].startswith("group 0: flat, eager")
    assert max((a - b).abs().max().item() for a, b in zip(params, reference)) < 1e-6


def test_without_a_cpp_compiler_compile_rule_falls_back(monkeypatch, fresh_compile_caches):
    import torch._inductor.cpp_builder

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found (simulated)")

    monkeypatch.delenv("COURSE_NO_COMPILE", raising=False)
    monkeypatch.setattr(torch._inductor.cpp_builder, "get_cpp_compiler", no_compiler)
    reason = fast_paths.compile_unavailable_reason("cpu")
    assert reason.startswith("no working C++ compiler was found") and "simulated" in reason
    with pytest.warns(fast_paths.CompileFallbackWarning, match="no working C.. compiler"):
        fallback = fast_paths.compile_rule(rules.adam(lr=0.1), torch.float64, "cpu")
    assert fallback.fallback_reason == reason and fallback.kernel_count() == 0
    torch.testing.assert_close(_two_steps_through(fallback), _two_steps_of_the_rule(), rtol=1e-14, atol=1e-15)


def test_a_failing_compilation_is_remembered_and_falls_back(monkeypatch, fresh_compile_caches):
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("C++ compile error\nerror: 'at::vec' has not been declared (simulated)")

    monkeypatch.delenv("COURSE_NO_COMPILE", raising=False)
    monkeypatch.setattr(fast_paths, "compile_unavailable_reason", lambda device="cpu": None)  # a compiler, say
    monkeypatch.setattr(fast_paths, "_trace_and_compile", broken)
    with pytest.warns(fast_paths.CompileFallbackWarning,
                      match="compiling adam failed: RuntimeError: C.. compile error"):
        fallback = fast_paths.compile_rule(rules.adam(lr=0.1), torch.float64, "cpu")
    assert "at::vec" in fallback.fallback_reason
    assert fast_paths.compile_rule(rules.adam(lr=0.2), torch.float64, "cpu") is fallback and len(calls) == 1


def test_compile_disabled_is_silent_and_temporary(fresh_compile_caches):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fast_paths.compile_disabled():
            assert fast_paths.compile_unavailable_reason("cpu") == "compilation switched off by compile_disabled()"
            assert fast_paths.compile_rule(rules.sgd(lr=0.1), torch.float32, "cpu").fallback_reason
    assert fast_paths.compile_unavailable_reason("cpu") != "compilation switched off by compile_disabled()"
