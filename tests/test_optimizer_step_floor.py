"""benchmarks/optimizer_step.py's floor is a floor: no step measured in the same run beats it by more than noise.

The floor (bytes over the peak STREAM bandwidth plus the least launch cost times the launches a path cannot avoid)
is a lower bound on every step, torch.optim's included; this checks the bound, not a speed.
"""

import importlib.util
import pathlib

import pytest
import torch

NOISE = 0.8  # a step may come out at most 20 % under its floor (timer and scheduling noise) before it counts


@pytest.fixture(scope="module")
def benchmark():
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "optimizer_step.py"
    spec = importlib.util.spec_from_file_location("optimizer_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_step_beats_the_floor(benchmark, monkeypatch):
    monkeypatch.setitem(benchmark.SIZES, "300k", 300_000)  # big enough that the bytes count, small enough to be quick
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = benchmark.measure("cpu", ["seed", "300k"], ["Adam", "SGD momentum"], ["default", "foreach"],
                                 steps=10, repeats=3)
    finally:
        torch.set_num_threads(threads)
    assert len(rows) == 8
    for row in rows:
        for who in ("torch_ms", "course_ms"):
            assert row[who] >= NOISE * row["floor_ms"], (row["size"], row["optimizer"], row["pair"], who, row)


def test_the_floor_adds_bytes_over_bandwidth_and_launches(benchmark):
    # 1 M parameters × 28 bytes at 28 GB/s is 1 ms; 300 launches of 2 µs are 0.6 ms
    assert benchmark.floor_ms(1_000_000, 28, 300, 28.0, 2.0) == pytest.approx(1.6)
    bandwidth, measured = benchmark.peak_bandwidth_gbs(2**18)
    assert bandwidth == max(measured.values()) and len(measured) == 4 and bandwidth > 0
