"""experiments/where_it_matters.py: a tiny configuration end to end, and the committed results file's schema."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from course_lib import benchmark
from course_lib.labs import where_it_matters as lab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "course_lib" / "results" / "where_it_matters.json"  # package data: what notebooks 12 and 13 read


def _script():
    path = ROOT / "experiments" / "where_it_matters.py"
    spec = importlib.util.spec_from_file_location("where_it_matters_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_configuration_end_to_end(tmp_path, capsys, one_thread):
    output = tmp_path / "results.json"
    _script().main(["--tiny", "--output", str(output), "--workers", "1", "--seeds", "2",
                    "--only", "adamw,muon,schedule_free"])
    assert "runs in" in capsys.readouterr().out
    results = json.loads(output.read_text())
    lab.check_results(results)
    assert results["config"]["tiny"] and set(results["config"]["seconds"]) == {"sweep", "timing"}
    for workload in results["workloads"].values():
        assert set(workload["summary"]) == {"adamw", "muon", "schedule_free"}       # Muon on the CNN too
        for optimizer, spec in workload["optimizers"].items():
            coarse, fine = spec["coarse_grid"], spec["lr_grid"]
            assert coarse[-2:] == [0.1, 1.0] or coarse[:2] == [0.1, 1.0] or len(coarse) >= 3
            k = [round(3 * math.log10(lr)) for lr in fine]                   # three η per decade, consecutive
            assert k == list(range(k[0], k[0] + len(k))) and len(k) >= 3
            assert round(3 * math.log10(spec["center_lr"])) in k
            runs = [r for r in workload["runs"] if r["optimizer"] == optimizer]
            assert len(runs) == 2 * len(fine)
            best = workload["summary"][optimizer]
            if best["best_lr_at_edge"]:   # the fine grid stops growing only at its reach
                assert max(abs(x - round(3 * math.log10(spec["center_lr"]))) for x in k) == lab.FINE_REACH
        assert workload["step_time_ratio"]["ratios"]["adamw"] == 1.0
        protocol = workload["protocol"]                    # every distinct run counted, the coarse ones as pilot
        assert protocol["budget_counts_pilot_runs"] and protocol["metric"] == "final_val_loss"
        assert sum(protocol["budget"].values()) == len({(r["optimizer"], r["lr"], r["seed"])
                                                        for r in workload["runs"] + workload["coarse_runs"]})
    lm = results["workloads"]["lm"]
    assert lm["reference_losses"]["uniform"] == pytest.approx(math.log(512))
    cnn = results["workloads"]["cnn"]
    assert cnn["runs"][0]["val_loss"][0] == pytest.approx(math.log(10), abs=0.1)  # ten classes at initialization
    broken = json.loads(output.read_text())
    del broken["workloads"]["lm"]["runs"][0]
    with pytest.raises(ValueError, match="grids × seeds"):
        lab.check_results(broken)
    broken = json.loads(output.read_text())
    broken["workloads"]["lm"]["runs"][1]["val_loss"].pop()
    with pytest.raises(ValueError, match="val_loss has"):
        lab.check_results(broken)
    broken = json.loads(output.read_text())
    broken["workloads"]["lm"]["protocol"]["grids"]["adamw"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="protocol's grids"):
        lab.check_results(broken)
    broken = json.loads(output.read_text())
    del broken["workloads"]["cnn"]["coarse_runs"][0]
    with pytest.raises(ValueError, match="coarse runs"):
        lab.check_results(broken)
    with pytest.raises(SystemExit):  # a smoke test never overwrites the committed file
        _script().main(["--tiny"])
    _script().main(["--retime", "--output", str(output)])     # stage 3 alone: only the ratios change
    retimed = json.loads(output.read_text())
    lab.check_results(retimed)
    for name, workload in retimed["workloads"].items():
        assert workload["runs"] == results["workloads"][name]["runs"]
        assert workload["step_time_ratio"]["ratios"]["adamw"] == 1.0 and workload["step_time_ratio"]["threads"] == 1


def test_the_search_space_is_shared_so_budgets_are_equal(monkeypatch):
    """One optimizer whose best η lies beyond the starting grids makes both grids grow for every optimizer of the
    workload; then every optimizer has run the same number of distinct runs, and each best is inside its grid."""
    script = _script()
    best_k = {"a": -3, "b": 4}        # k of each optimizer's best η: b's lies beyond both stages' starting grids

    def fake(job):
        workload, optimizer, k, seed = job
        return job, {"final_val_loss": (k - best_k[optimizer]) ** 2 + 0.01 * seed, "optimizer": optimizer}

    monkeypatch.setattr(script, "_one", fake)
    search = script.Search(None, {"w": ["a", "b"]}, seeds=(0, 1))
    search.coarse_stage((-6, -3, 0), extensions=2)
    assert search.coarse(("w", "a")) == search.coarse(("w", "b")) == [-6, -3, 0, 3, 6]   # grown for a too
    search.fine_stage((-1, 0, 1), reach=4)
    assert search.center == {("w", "a"): -3, ("w", "b"): 3}
    assert search.offsets["w"] == [-1, 0, 1, 2]                                        # grown for a too
    budgets = {o: len({(k, s) for (w, opt, k, s) in search.runs if opt == o}) for o in "ab"}
    assert budgets["a"] == budgets["b"] == 5 + 4 * 2 - 1      # 5 coarse, 4 fine × 2 seeds, the centre reused
    for o in "ab":
        grid = search.fine(("w", o))
        scores = [search.score(("w", o), k, (0, 1)) for k in grid]
        assert grid[0] < grid[scores.index(min(scores))] < grid[-1]


def test_the_script_writes_the_file_the_labs_read():
    from course_lib.labs import guide

    assert _script().DEFAULT_OUTPUT == RESULTS
    assert Path(lab.RESULTS_PATH) == RESULTS and Path(guide.SWEEP_FILE) == RESULTS
    assert lab.load_results() == json.loads(RESULTS.read_text())


def test_committed_results_follow_the_schema_and_the_search():
    """Every optimizer on both workloads; each fine grid three η per decade around its coarse best; the budget
    counts every distinct run and is the same for every optimizer of a workload (one search space: the same
    coarse grid, the same offsets around each coarse best); every best η strictly inside its fine grid, or flagged
    where the grid reached its limit."""
    results = json.loads(RESULTS.read_text())
    lab.check_results(results)
    assert not results["config"]["tiny"] and len(results["config"]["seeds"]) >= 3
    for name, workload in results["workloads"].items():
        assert list(workload["optimizers"]) == list(lab.OPTIMIZERS), name
        protocol = benchmark.Protocol.from_dict(workload["protocol"])
        assert protocol.metric == benchmark.METRIC and protocol.pilot_runs is not None
        assert workload["clip_norm"] is None and workload["decay_timescale"] == workload["steps"]
        assert len(set(protocol.budget().values())) == 1, (name, protocol.budget())
        offsets = workload["protocol"]["extra"]["fine_offsets"]
        assert len({tuple(spec["coarse_grid"]) for spec in workload["optimizers"].values()}) == 1, name
        for optimizer, spec in workload["optimizers"].items():
            coarse = [r for r in workload["coarse_runs"] if r["optimizer"] == optimizer]
            best_coarse = min(coarse, key=lambda r: math.inf if r["final_val_loss"] is None else r["final_val_loss"])
            assert spec["center_lr"] == best_coarse["lr"], (name, optimizer)
            k = [round(3 * math.log10(lr)) for lr in spec["lr_grid"]]
            center = round(3 * math.log10(spec["center_lr"]))
            assert k == list(range(k[0], k[-1] + 1)) and {center - 1, center, center + 1} <= set(k)
            assert k == [center + o for o in offsets], (name, optimizer)
            summary = workload["summary"][optimizer]
            assert not summary["best_lr_at_edge"] or max(abs(x - center) for x in k) == lab.FINE_REACH


# experiments/controls.py: the controls of notebook 12's headline results
CONTROLS = ROOT / "course_lib" / "results" / "controls.json"


def _controls_script():
    spec = importlib.util.spec_from_file_location("controls_script", ROOT / "experiments" / "controls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_controls_tiny_end_to_end(tmp_path, capsys, one_thread):
    output = tmp_path / "controls.json"
    script = _controls_script()
    script.main(["--tiny", "--output", str(output), "--workers", "1"])
    assert "runs in" in capsys.readouterr().out
    controls = lab.load_controls(output)
    assert controls["config"]["tiny"] and controls["config"]["seeds"] == [0, 1, 2]
    assert {r["control"] for r in controls["runs"]} == {"adamw_split", "muon_rest_at_adamw", "no_decay", "clip",
                                                         "uniform", "reproduce"}
    assert controls["uniform_workload"]["reference_losses"]["unigram_entropy"] == pytest.approx(math.log(512))
    broken = json.loads(output.read_text())
    del broken["runs"][0]
    with pytest.raises(ValueError, match="each once"):
        lab.check_controls(broken)
    broken = json.loads(output.read_text())
    broken["decay_multipliers"]["lm"]["multiplier"] = 1.2
    with pytest.raises(ValueError, match="decay multiplier"):
        lab.check_controls(broken)
    with pytest.raises(SystemExit):  # a smoke test never overwrites the committed file
        script.main(["--tiny"])


def test_committed_controls_run_at_the_main_file_s_best_learning_rates_and_seeds():
    """Each control is paired with the main file: its seeds, each optimizer at the η benchmark.select picks there,
    and the decay multipliers are those of the main file's η."""
    main, controls = lab.load_results(), lab.load_controls()
    assert Path(lab.CONTROLS_PATH) == CONTROLS == _controls_script().DEFAULT_OUTPUT
    assert not controls["config"]["tiny"] and controls["config"]["seeds"] == main["config"]["seeds"]
    best = {w: {name: s.lr for name, s in benchmark.select(
        workload["runs"], {o: spec["lr_grid"] for o, spec in workload["optimizers"].items()}).items()}
        for w, workload in main["workloads"].items()}
    assert lab.control_runs(controls, "adamw_split", "adamw")[0]["lr"] == best["lm"]["adamw"]
    assert lab.control_runs(controls, "adamw_split", "adamw")[0]["variant"] == {"rest_lr": best["lm"]["muon"]}
    assert lab.control_runs(controls, "muon_rest_at_adamw", "muon")[0]["variant"] == {"rest_lr": best["lm"]["adamw"]}
    for w in ("lm", "cnn"):
        for name in lab.OPTIMIZERS:           # λ = 0, the baseline: every optimizer at its best η without decay
            runs = lab.control_runs(controls, "no_decay", name, workload=w)
            assert runs[0]["lr"] == best[w][name] and runs[0]["variant"] == {"decay_timescale": math.inf}
        assert controls["decay_multipliers"][w]["multiplier"] == pytest.approx(main["workloads"][w]["decay_multiplier"])
    uniform = [r for r in controls["runs"] if r["control"] == "uniform"]
    for name, choice in benchmark.select(uniform).items():  # each best η inside its window, or at its reach
        center = round(3 * math.log10(best["lm"][name]))
        ks = [round(3 * math.log10(r["lr"])) for r in uniform if r["optimizer"] == name]
        assert not choice.at_edge or max(abs(k - center) for k in ks) == controls["config"]["uniform_reach"]
