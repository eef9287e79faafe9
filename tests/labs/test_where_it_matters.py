"""course_lib.labs.where_it_matters: the protocol's pieces (grid, optimizers under the recipe), one run end to end,
and the summary, against closed forms and torch.optim."""

import math
from pathlib import Path

import lion_pytorch
import numpy as np
import pytest
import schedulefree
import torch

from course_lib import data, methods, training
from course_lib.labs import where_it_matters as lab


@pytest.fixture(scope="module")
def tiny():
    corpus = data.zipf_markov_corpus(vocab_size=32, successors=4, train_chains=16, val_chains=4, length=64, seed=0)
    return lab.lm_workload(steps=6, warmup_steps=2, batch_size=4, context=8, width=8, depth=1, heads=2,
                           eval_every=3, eval_windows=8, test_windows=8, corpus=corpus, target=3.4)


def test_lr_grid_has_three_points_per_decade():
    grid = lab.lr_grid(-6, 7)
    assert grid[0] == 0.01 and grid[3] == 0.1 and grid[6] == 1.0
    assert grid[1:3] == [0.0215, 0.0464]
    assert [lab.lr_grid(k, 1)[0] for k in lab.COARSE_KS] == [1e-4, 1e-3, 1e-2, 0.1, 1.0]  # one η per decade
    assert lab.FINE_OFFSETS == (-1, 0, 1)                                                   # three per decade


def test_the_specs_are_the_method_tables_with_the_recipe(tiny):
    """Titles and classes come from course_lib.methods; the committed results were written with the same titles."""
    results = lab.load_results(Path(__file__).resolve().parents[2] / lab.RESULTS_PATH)
    for workload in results["workloads"].values():
        assert {name: spec["title"] for name, spec in workload["optimizers"].items()} == {
            name: lab.OPTIMIZERS[name].title for name in workload["optimizers"]}
    assert lab.OPTIMIZERS["momentum"].title == "SGD + momentum" and lab.OPTIMIZERS["momentum"].options == {
        "momentum": 0.9}
    assert methods.load(lab.OPTIMIZERS["lion"].build) is lion_pytorch.Lion
    assert methods.load(lab.OPTIMIZERS["schedule_free"].build) is schedulefree.AdamWScheduleFree
    (momentum,) = lab.make_optimizers("momentum", tiny.model(0), 0.1, tiny)
    assert type(momentum) is torch.optim.SGD and momentum.param_groups[0]["momentum"] == 0.9
    lm_lion = lab.OPTIMIZERS["lion"].options_for(tiny)
    cnn = lab.cnn_workload(steps=400, dataset=_fake_mnist1d())
    assert lm_lion["betas"] == (0.95, 0.98) and "betas" not in lab.OPTIMIZERS["lion"].options_for(cnn)
    ademamix = lab.OPTIMIZERS["ademamix"].options_for(cnn)           # β₃ sized to the run: 1/(1 − β₃) = T/4
    assert ademamix["t_alpha_beta3"] == 400 and 1 / (1 - ademamix["betas"][2]) == pytest.approx(100)
    (nadamw,) = lab.make_optimizers("nadamw", tiny.model(0), 0.01, tiny)
    assert type(nadamw) is torch.optim.NAdam and nadamw.param_groups[0]["decoupled_weight_decay"]
    assert 0.96 ** nadamw.param_groups[0]["momentum_decay"] == 0.0   # μ_t = β₁(1 − ½·0.96^{tψ}) = β₁ exactly


def _fake_mnist1d(n=50):
    from types import SimpleNamespace

    gen = torch.Generator().manual_seed(0)

    def split(rows):
        return torch.randn(rows, 40, generator=gen), torch.randint(0, 10, (rows,), generator=gen)

    return SimpleNamespace(train=split(n), val=split(20), test=split(20))


def test_every_optimizer_covers_every_parameter_once(tiny):
    model = tiny.model(0)
    everything = {id(p) for p in model.parameters()}
    for name in lab.OPTIMIZERS:
        optimizers = lab.make_optimizers(name, model, 1e-3, tiny)
        seen = [id(p) for o in optimizers for g in o.param_groups for p in g["params"]]
        assert sorted(seen) == sorted(everything), name
        assert len(optimizers) == (2 if name == "muon" else 1)
    muon, adamw = lab.make_optimizers("muon", model, 1e-3, tiny)
    assert all(p.dim() == 2 for g in muon.param_groups for p in g["params"])
    assert muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    assert adamw.param_groups[0]["betas"] == (0.9, 0.95)
    for name in lab.OPTIMIZERS:   # the recipe decays the weights itself: no constructor decays (Schedule-Free aside)
        decays = sorted({g["weight_decay"] for o in lab.make_optimizers(name, model, 1e-3, tiny)
                         for g in o.param_groups})
        assert decays == ([0.0, pytest.approx(lab.schedule_free_decay(tiny) / 1e-3)] if name == "schedule_free"
                          else [0.0]), name


def test_muon_takes_the_cnn_s_conv_filters_flattened_and_steps_like_torch_muon_on_the_matrices():
    """On the CNN Muon updates each conv filter bank (out, in, k) as the matrix (out, in·k): the same step as
    torch.optim.Muon given those matrices by hand; AdamW takes the output layer and the biases."""
    cnn = lab.cnn_workload(steps=4, warmup_steps=1, batch_size=5, eval_every=2, dataset=_fake_mnist1d())
    model, reference = cnn.model(0), cnn.model(0)
    muon, adamw = lab.make_optimizers("muon", model, 0.02, cnn)
    filters = [p for n, p in model.named_parameters() if cnn.hidden(n, p)]
    assert [p.dim() for p in filters] == [3, 3, 3] and len(muon.param_groups[0]["params"]) == 3
    assert {id(p) for g in adamw.param_groups for p in g["params"]} == {
        id(p) for n, p in model.named_parameters() if not cnn.hidden(n, p)}
    matrices = [torch.nn.Parameter(p.detach().view(p.shape[0], -1))  # the reference model's filters, by hand
                for n, p in reference.named_parameters() if cnn.hidden(n, p)]
    theirs = torch.optim.Muon(matrices, lr=0.02, weight_decay=0.0, adjust_lr_fn="match_rms_adamw")
    theirs_rest = torch.optim.AdamW([p for n, p in reference.named_parameters() if not cnn.hidden(n, p)], lr=0.02,
                                    betas=cnn.betas, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, y = cnn.batch(gen)
        for o in (muon, adamw):
            o.zero_grad(set_to_none=True)
        cnn.loss(model(x), y).backward()
        muon.step()
        adamw.step()
        theirs.zero_grad()
        theirs_rest.zero_grad()
        cnn.loss(reference(x), y).backward()
        for m, p in zip(matrices, [p for n, p in reference.named_parameters() if cnn.hidden(n, p)]):
            m.grad = p.grad.view(m.shape)
            p.grad = None
        theirs.step()
        theirs_rest.step()
        for p, m in zip(filters, matrices):
            torch.testing.assert_close(p.detach().view(m.shape), m.detach(), rtol=0, atol=0)
            assert p.grad is None                          # the filters' gradients were handed over, not kept


def test_a_run_is_a_plain_torch_adamw_loop_under_the_recipe(tiny):
    """The same run written out by hand with torch.optim.AdamW (λ = 1/(ητ), the recipe's timescale τ = T steps)
    and LambdaLR, without clipping: the same weights."""
    record = lab.train_run(tiny, "adamw", 0.01, seed=0)
    model = tiny.model(0)
    assert tiny.decay_timescale == tiny.steps and tiny.clip_norm is None
    optimizer = torch.optim.AdamW(training.param_groups(model, 1 / (0.01 * tiny.steps)), lr=0.01, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, training.warmup_cosine(2, 6))
    generator = torch.Generator().manual_seed(1000)
    for _ in range(6):
        inputs, targets = tiny.batch(generator)
        loss = torch.nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.eval()
    torch.testing.assert_close(tiny.evaluate(model)["val_loss"], record["val_loss"][-1], rtol=1e-6, atol=0)
    assert tiny.test(model)["test_loss"] == pytest.approx(record["test_loss"], rel=1e-6)
    assert record["lr"] == 0.01 and not record["diverged"]


def test_train_run_record_follows_the_schema(tiny):
    record = lab.train_run(tiny, "schedule_free", 0.01, seed=1)
    evals = len(tiny.eval_steps)
    assert tiny.eval_steps == [0, 3, 6]
    for key in ("val_loss", "val_accuracy", "val_loss_frequent", "val_loss_rare"):
        assert len(record[key]) == evals
    assert record["val_loss"][0] == pytest.approx(math.log(32), abs=0.05)  # ln V at initialization
    assert record["best_val_loss"] == min(record["val_loss"])
    assert record["clipped_fraction"] == 0 and 0 < record["grad_norm_median"] <= record["grad_norm_max"]
    assert 0 < record["step_seconds"] < record["seconds"] and record["test_loss"] > 0
    assert record["steps_to_target"] in (None, 3, 6)
    again = lab.train_run(tiny, "schedule_free", 0.01, seed=1)
    assert again["val_loss"] == record["val_loss"]  # seeded


def test_a_diverging_run_is_marked_and_padded(tiny):
    record = lab.train_run(tiny, "momentum", 1e12, seed=0)
    assert record["diverged"] and record["best_val_loss"] is None
    assert record["val_loss"][-1] is None and len(record["val_loss"]) == len(tiny.eval_steps)


def test_a_run_stopped_early_is_the_first_part_of_the_full_run(tiny):
    full = lab.train_run(tiny, "adamw", 0.01, seed=2)
    first = lab.train_run(tiny, "adamw", 0.01, seed=2, stop_after=3)      # the schedule still spans 6 steps
    assert tiny.eval_steps == [0, 3, 6]
    for key in ("val_loss", "val_accuracy", "val_loss_frequent", "val_loss_rare"):
        assert first[key][:2] == full[key][:2] and first[key][2] is None
    assert not first["diverged"] and first["final_val_loss"] is None
    assert lab.train_run(tiny, "adamw", 0.01, seed=2, stop_after=6)["val_loss"] == full["val_loss"]
    for wrong in (-1, 7, 2.5):
        with pytest.raises(ValueError, match="stop_after"):
            lab.train_run(tiny, "adamw", 0.01, seed=2, stop_after=wrong)


def test_summarize_picks_the_best_mean_and_flags_the_edge():
    def run(lr, seed, best):
        return {"optimizer": "adam", "lr": lr, "seed": seed, "best_val_loss": best, "final_val_loss": best,
                "test_loss": best, "best_val_accuracy": 0.5,
                "steps_to_target": 10 if best is not None and best < 3 else None}

    runs = [run(0.1, 0, 2.0), run(0.1, 1, 4.0), run(0.2, 0, 2.9), run(0.2, 1, 2.95), run(0.5, 0, None),
            run(0.5, 1, 2.0)]
    summary = lab.summarize(runs, {"adam": [0.1, 0.2, 0.5]})["adam"]
    assert summary["best_lr"] == 0.2 and not summary["best_lr_at_edge"]  # mean 2.925 beats 3.0; a divergence is +∞
    assert summary["best_val_loss_mean"] == pytest.approx(2.925)
    assert summary["best_val_loss_std"] == pytest.approx(0.05 / math.sqrt(2))
    assert summary["steps_to_target_median"] == 10 and summary["reached_target"] == 2
    assert summary["lrs_within_0.05"] == 1
    assert lab.summarize(runs[:2], {"adam": [0.1, 0.2]})["adam"]["best_lr_at_edge"]


def test_summarize_chooses_on_the_mean_final_loss_not_the_median_or_the_best_point():
    def run(lr, seed, final, best):
        return {"optimizer": "sgd", "lr": lr, "seed": seed, "best_val_loss": best, "final_val_loss": final,
                "test_loss": final, "best_val_accuracy": 0.5, "steps_to_target": None}

    # η = 0.1: final losses 1.0, 1.0, 1.6 (median 1.0, mean 1.2), best points 0.5; η = 0.2: 1.1 on every seed
    runs = [run(0.1, s, (1.0, 1.0, 1.6)[s], 0.5) for s in range(3)] + [run(0.2, s, 1.1, 1.1) for s in range(3)]
    summary = lab.summarize(runs, {"sgd": [0.05, 0.1, 0.2, 0.4]})["sgd"]
    assert summary["best_lr"] == 0.2 and summary["final_val_loss_mean"] == pytest.approx(1.1)
    assert summary["lrs_within_0.05"] == 1 and not summary["best_lr_at_edge"]


def test_the_committed_summary_is_the_documented_selection_of_the_committed_runs():
    """Notebook 12 prints the stored summary: it must be what summarize (course_lib.benchmark's statistic) gives.
    On these runs the median over seeds would choose another η four times (LM Nesterov, Lion and SOAP, CNN
    Nesterov): the statistic matters."""
    from course_lib import benchmark

    results = lab.load_results()
    for workload in results["workloads"].values():
        grids = {name: spec["lr_grid"] for name, spec in workload["optimizers"].items()}
        assert lab.summarize(workload["runs"], grids) == workload["summary"]
        chosen = benchmark.select(workload["runs"], grids)
        assert {name: c.lr for name, c in chosen.items()} == {n: s["best_lr"] for n, s in workload["summary"].items()}
    def by_median(workload, name):
        grid = workload["optimizers"][name]["lr_grid"]
        scores = [np.median([math.inf if r["final_val_loss"] is None else r["final_val_loss"]
                             for r in lab.runs_at(workload, name, lr)]) for lr in grid]
        return grid[int(np.argmin(scores))]

    moved = {(key, name) for key, w in results["workloads"].items() for name in w["optimizers"]
             if by_median(w, name) != w["summary"][name]["best_lr"]}
    assert moved == {("lm", "nesterov"), ("lm", "lion"), ("lm", "soap"), ("cnn", "nesterov")}


def test_bin_floors_average_the_surprise_of_sampled_tokens(tiny):
    corpus = data.zipf_markov_corpus(vocab_size=32, successors=4, train_chains=64, val_chains=4, length=256, seed=0)
    tokens = corpus.train.numpy()
    previous, target = tokens[:, :-1].ravel(), tokens[:, 1:].ravel()
    everything = np.ones(32, dtype=bool)
    floors = lab.bin_floors(corpus, everything)
    assert floors["entropy_rate"] == pytest.approx(corpus.entropy_rate, rel=1e-12)
    assert floors["unigram"] == pytest.approx(corpus.unigram_entropy, rel=1e-12)
    rare = corpus.frequency_bins()["rare"]
    chosen = rare[target]
    surprise = -np.log(corpus.transition[previous[chosen], target[chosen]])
    assert abs(surprise.mean() - lab.bin_floors(corpus, rare)["entropy_rate"]) < 4 * surprise.std() / np.sqrt(
        chosen.sum() / 4)
    assert lab.bin_floors(corpus, rare)["unigram"] > math.log(32) > floors["unigram"]


def test_lr_sensitivity_plots_the_mean_over_seeds_on_a_log_axis_without_minor_ticks():
    import matplotlib.pyplot as plt

    def run(lr, seed, best):
        return {"optimizer": "adam", "lr": lr, "seed": seed, "best_val_loss": best}

    workload = {"optimizers": {"adam": {"title": "Adam", "lr_grid": [1e-3, 1e-2, 1e-1]}},
                "runs": [run(1e-3, 0, 3.0), run(1e-3, 1, 4.0), run(1e-2, 0, 2.0), run(1e-2, 1, 2.5),
                         run(1e-1, 0, None), run(1e-1, 1, 5.0)],
                "summary": {"adam": {"best_lr": 1e-2}}, "reference_losses": {"uniform": 6.0}}
    fig, ax = plt.subplots()
    lab.plot_lr_sensitivity(workload, ax)
    line, failed = ax.get_lines()
    assert list(line.get_xdata()) == [1e-3, 1e-2] and list(line.get_ydata()) == [3.5, 2.25]
    assert list(failed.get_xdata()) == [1e-1] and list(failed.get_ydata()) == [6.0]     # diverged: × at the top
    fig.canvas.draw()
    assert ax.get_xscale() == "log" and len(ax.xaxis.get_minorticklocs()) == 0
    plt.close(fig)


# --------------------------------------------------------------------------------------
# The protocol's promises, checked where a realistic bug would break them
# --------------------------------------------------------------------------------------
def _recording(workload):
    """``workload`` with its model and batch functions recording what each run got: the initial weights and the
    minibatches, in order."""
    import dataclasses

    seen = {"weights": [], "batches": []}

    def model(seed):
        net = workload.model(seed)
        seen["weights"].append(torch.cat([p.detach().flatten().clone() for p in net.parameters()]))
        return net

    def batch(generator):
        inputs, targets = workload.batch(generator)
        seen["batches"].append(inputs.clone())
        return inputs, targets

    return dataclasses.replace(workload, model=model, batch=batch), seen


def test_the_seed_and_only_the_seed_sets_the_initial_weights_and_the_minibatches(tiny):
    """Module docstring: "the batch order depends on the seed only, not on the optimizer"; a seed's runs start
    from the same weights whatever the optimizer (the seeds are paired), and other seeds start elsewhere."""
    recorded = {}
    for optimizer, seed in [("adamw", 0), ("momentum", 0), ("adamw", 1), ("adamw", 2)]:
        workload, seen = _recording(tiny)
        lab.train_run(workload, optimizer, 0.01, seed=seed)
        assert len(seen["weights"]) == 1 and len(seen["batches"]) == tiny.steps
        recorded[optimizer, seed] = seen
    same, other = recorded["adamw", 0], recorded["momentum", 0]
    assert torch.equal(same["weights"][0], other["weights"][0])
    assert all(torch.equal(a, b) for a, b in zip(same["batches"], other["batches"]))
    for seed in (1, 2):
        assert not torch.equal(recorded["adamw", seed]["weights"][0], same["weights"][0])
        assert not any(torch.equal(a, b) for a, b in zip(recorded["adamw", seed]["batches"], same["batches"]))
    for seed in (0, 1):                                            # the workload's model: seeded, by its seed
        a, b = (torch.cat([p.flatten() for p in tiny.model(s).parameters()]) for s in (seed, seed))
        assert torch.equal(a, b)
    assert not torch.equal(*(torch.cat([p.flatten() for p in tiny.model(s).parameters()]) for s in (0, 1)))


def test_the_cnn_workload_seeds_its_model_and_minibatches_by_the_seed():

    cnn = lab.cnn_workload(steps=4, warmup_steps=1, batch_size=5, eval_every=2, dataset=_fake_mnist1d(),
                           grids={"adamw": [0.01]})
    flat = {s: torch.cat([p.flatten() for p in cnn.model(s).parameters()]) for s in (0, 1)}
    assert torch.equal(flat[0], torch.cat([p.flatten() for p in cnn.model(0).parameters()]))
    assert not torch.equal(flat[0], flat[1])
    workloads = {}
    for seed in (0, 1):
        workload, seen = _recording(cnn)
        lab.train_run(workload, "adamw", 0.01, seed=seed)
        workloads[seed] = seen
    assert torch.equal(workloads[0]["weights"][0], flat[0]) and torch.equal(workloads[1]["weights"][0], flat[1])
    assert not any(torch.equal(a, b) for a, b in zip(workloads[0]["batches"], workloads[1]["batches"]))


def test_schedule_free_is_evaluated_at_its_averaged_point_x(tiny, monkeypatch):
    """Module docstring: Schedule-Free AdamW "is evaluated at its averaged point x (``eval()``)". The stored
    validation loss is the model's loss after ``optimizer.eval()`` (which swaps in x), not at the training point y."""
    captured = {}
    build = lab.make_optimizers

    def capture(name, model, lr, workload):
        optimizers = build(name, model, lr, workload)
        captured.update(model=model, optimizers=optimizers)
        return optimizers

    modes = []
    evaluate = tiny.evaluate

    def evaluate_and_record_mode(net):
        modes.append(captured["optimizers"][0].param_groups[0]["train_mode"])
        return evaluate(net)

    import dataclasses

    monkeypatch.setattr(lab, "make_optimizers", capture)
    record = lab.train_run(dataclasses.replace(tiny, evaluate=evaluate_and_record_mode), "schedule_free", 0.05,
                           seed=0)
    assert modes == [False] * len(tiny.eval_steps)                 # every evaluation in eval mode: at x
    (optimizer,), model = captured["optimizers"], captured["model"]
    model.eval()
    optimizer.eval()
    at_x = tiny.evaluate(model)["val_loss"]
    optimizer.train()
    at_y = tiny.evaluate(model)["val_loss"]
    assert record["val_loss"][-1] == at_x and abs(at_x - at_y) > 1e-4


def test_language_model_minibatches_come_from_the_training_chains_only(tiny):
    corpus = data.zipf_markov_corpus(vocab_size=32, successors=4, train_chains=16, val_chains=4, length=64, seed=0)

    def windows(chains, length):
        return {tuple(row[i:i + length].tolist()) for row in chains for i in range(chains.shape[1] - length + 1)}

    train = windows(corpus.train, 9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        inputs, targets = tiny.batch(generator)
        for x, y in zip(inputs, targets):
            sequence = tuple(x.tolist()) + (int(y[-1]),)
            assert sequence in train and torch.equal(x[1:], y[:-1])     # a window of a training chain, shifted by one


def _two_workloads():
    def run(optimizer, lr, seed, final):
        return {"optimizer": optimizer, "lr": lr, "seed": seed, "final_val_loss": final}

    lm = {"optimizers": {"adamw": {"title": "AdamW"}, "sgd": {"title": "SGD"}, "muon": {"title": "Muon"}},
          "summary": {"adamw": {"best_lr": 0.01}, "sgd": {"best_lr": 0.1}, "muon": {"best_lr": 0.02}},
          "reference_losses": {"entropy_rate": 2.0},
          "runs": [run("adamw", 0.01, s, v) for s, v in enumerate((3.0, 3.2, 3.1))]
          + [run("adamw", 0.1, s, 9.0) for s in range(3)]                              # not the best η: ignored
          + [run("sgd", 0.1, s, v) for s, v in enumerate((3.5, 3.9, 3.6))]
          + [run("muon", 0.02, s, v) for s, v in enumerate((2.5, 2.5, 2.5))]}
    cnn = {"optimizers": {"adamw": {"title": "AdamW"}, "sgd": {"title": "SGD"}},
           "summary": {"adamw": {"best_lr": 0.01}, "sgd": {"best_lr": 0.1}},
           "runs": [run("adamw", 0.01, s, v) for s, v in enumerate((0.3, 0.4, 0.35))]
           + [run("sgd", 0.1, s, v) for s, v in enumerate((0.31, 0.38, 0.36))]}
    return {"workloads": {"lm": lm, "cnn": cnn}}


def test_paired_against_compares_each_best_eta_with_the_baseline_seed_by_seed():
    from scipy import stats

    results = _two_workloads()
    paired = lab.paired_against(results["workloads"]["lm"])
    assert set(paired) == {"sgd", "muon"}
    assert paired["sgd"].differences == pytest.approx((0.5, 0.7, 0.5))
    reference = stats.ttest_rel([3.5, 3.9, 3.6], [3.0, 3.2, 3.1]).confidence_interval(0.95)
    assert (paired["sgd"].low, paired["sgd"].high) == pytest.approx((reference.low, reference.high))
    assert paired["sgd"].verdict == "worse" and paired["muon"].verdict == "better"
    assert lab.paired_against(results["workloads"]["cnn"])["sgd"].verdict == "tie"


def test_excess_losses_feed_the_performance_profile():
    import matplotlib.pyplot as plt

    from course_lib import benchmark

    costs = lab.excess_losses(_two_workloads())
    assert costs["adamw"] == pytest.approx({"lm": 1.1, "cnn": 0.35}) and costs["muon"]["cnn"] is None
    assert costs["sgd"]["lm"] == pytest.approx((3.5 + 3.9 + 3.6) / 3 - 2.0)
    profile = benchmark.performance_profile(costs, taus=[1.0, 2.0])
    assert profile.ratios[profile.optimizers.index("muon")].tolist() == [1.0, math.inf]
    fig, ax = plt.subplots()
    lab.plot_performance_profile(profile, ax, titles={"adamw": "AdamW"}, offset=0.01)
    assert len(ax.get_lines()) == 3 and ax.get_lines()[0].get_label() == "AdamW"
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), profile.rho[1])      # the middle curve: not shifted
    plt.close(fig)


# The options of the controls (experiments/controls.py)
def _where(optimizers):
    """{id(param): (lr, weight_decay)} over the param groups of ``optimizers``."""
    out = {}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for p in group["params"]:
                assert id(p) not in out, "a parameter in two groups"
                out[id(p)] = (group["lr"], group["weight_decay"])
    return out


def test_rest_lr_puts_the_hidden_matrices_and_the_rest_at_their_own_learning_rates(tiny):
    model = tiny.model(0)
    where = _where(lab.make_optimizers("adamw", model, 0.01, tiny, rest_lr=0.1))
    assert len(where) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        assert where[id(p)] == ((0.01 if tiny.hidden(name, p) else 0.1), 0.0), name  # the recipe decays, not AdamW
    muon, adamw = lab.make_optimizers("muon", model, 0.1, tiny, rest_lr=0.01)
    assert {id(p) for g in muon.param_groups for p in g["params"]} == {
        id(p) for name, p in model.named_parameters() if tiny.hidden(name, p)}
    assert {g["lr"] for g in muon.param_groups} == {0.1} and {g["lr"] for g in adamw.param_groups} == {0.01}
    default = _where(lab.make_optimizers("muon", model, 0.1, tiny))  # the recipe: one shared η
    assert {lr for lr, _ in default.values()} == {0.1}


def test_rest_lr_steps_like_torch_adamw_given_the_groups_by_hand(tiny):
    model, reference = tiny.model(0), tiny.model(0)
    ours = lab.make_optimizers("adamw", model, 0.01, tiny, rest_lr=0.1)[0]
    named = dict(reference.named_parameters())
    hidden = [p for n, p in named.items() if tiny.hidden(n, p)]
    rest_decay = [p for n, p in named.items() if not tiny.hidden(n, p) and p.ndim >= 2]
    rest_flat = [p for n, p in named.items() if p.ndim < 2]
    theirs = torch.optim.AdamW([{"params": hidden, "lr": 0.01}, {"params": rest_decay, "lr": 0.1},
                                {"params": rest_flat, "lr": 0.1}], betas=tiny.betas, weight_decay=0.0)
    factor = training.warmup_cosine(tiny.warmup_steps, tiny.steps)
    schedules = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (ours, theirs)]
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        x, y = tiny.batch(gen)
        for net, optimizer in ((model, ours), (reference, theirs)):
            optimizer.zero_grad()
            tiny.loss(net(x), y).backward()
            optimizer.step()
        for s in schedules:
            s.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("name", ["momentum", "adamw", "lion", "muon", "soap"])
def test_the_recipe_decays_every_optimizer_by_its_timescale(tiny, name):
    """On a run whose gradients are all zero only the recipe's decay moves the weights: the decaying ones
    (matrices, embeddings) shrink by ∏(1 − f(k)/τ) = decay_multiplier, whatever the optimizer and its η; biases
    and norms do not move; without decay (τ = ∞) nothing moves."""
    import dataclasses

    zero = dataclasses.replace(tiny, loss=lambda output, targets: 0.0 * output.sum())
    for tau, factor in ((None, lab.decay_multiplier(tiny)), (math.inf, 1.0)):
        seen = {}

        def model(seed, seen=seen):
            net = tiny.model(seed)
            seen["net"], seen["before"] = net, {n: p.detach().clone() for n, p in net.named_parameters()}
            return net

        variant = {} if tau is None else {"decay_timescale": tau}
        lab.train_run(dataclasses.replace(zero, model=model), name, 0.05, 0, **variant)
        for n, p in seen["net"].named_parameters():
            expected = seen["before"][n] * (factor if p.ndim >= 2 else 1.0)
            torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7, msg=f"{name}, τ={tau}, {n}")
    assert lab.decay_multiplier(tiny) == pytest.approx(np.prod([1 - training.warmup_cosine(2, 6)(k) / 6
                                                                 for k in range(6)]))


def test_the_decay_is_checked(tiny):
    with pytest.raises(ValueError, match="decay_timescale"):
        lab.train_run(tiny, "adamw", 0.01, 0, decay_timescale=0.0)
    with pytest.raises(ValueError, match="rest_lr"):
        lab.make_optimizers("adamw", tiny.model(0), 0.01, tiny, rest_lr=0.0)


def test_options_reach_the_optimizer_nadam_momentum_decay(tiny):
    """ψ reaches torch's NAdam: after one step its ∏μ_i is μ_1 = β₁(1 − ½·0.96^ψ) (torch.optim.NAdam's docs)."""
    beta1 = tiny.betas[0]
    for psi in (0.004, 100.0, lab.NADAMW_PSI):
        model = tiny.model(0)
        (nadam,) = lab.make_optimizers("nadam", model, 0.01, tiny, options={"momentum_decay": psi})
        assert {g["momentum_decay"] for g in nadam.param_groups} == {psi}
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        nadam.step()
        mu_product = float(next(iter(nadam.state.values()))["mu_product"])
        assert mu_product == pytest.approx(beta1 * (1 - 0.5 * 0.96 ** psi), rel=1e-6)
        if psi == lab.NADAMW_PSI:
            assert mu_product == pytest.approx(beta1, rel=1e-7)       # NAdamW: constant β₁ from the first step
    assert 0.99 * beta1 < beta1 * (1 - 0.5 * 0.96 ** 100.0)  # ψ = 100: constant β₁ to 1 % from the first step


def test_train_run_records_its_variant_and_the_default_run_has_none(tiny):
    plain = lab.train_run(tiny, "adamw", 0.01, 0, stop_after=2)
    assert "variant" not in plain
    varied = lab.train_run(tiny, "adamw", 0.01, 0, stop_after=2, decay_timescale=math.inf)
    assert varied["variant"] == {"decay_timescale": math.inf}
    assert varied["val_loss"][0] == plain["val_loss"][0]  # the same seed: the same initial weights


def test_decay_multiplier_equals_torch_adamw_at_lambda_one_over_eta_tau_on_a_zero_gradient(tiny):
    """The recipe's timescale τ is decoupled decay λ = 1/(ητ): torch's AdamW at that λ shrinks a weight with zero
    gradient by decay_multiplier over the run, at any η."""
    for lr in (0.2, 0.002):
        weight = torch.nn.Parameter(torch.ones(3))
        adamw = torch.optim.AdamW([weight], lr=lr, weight_decay=1 / (lr * tiny.decay_timescale))
        schedule = torch.optim.lr_scheduler.LambdaLR(adamw, training.warmup_cosine(tiny.warmup_steps, tiny.steps))
        for _ in range(tiny.steps):
            weight.grad = torch.zeros(3)
            adamw.step()
            schedule.step()
        assert lab.decay_multiplier(tiny) == pytest.approx(weight[0].item(), rel=1e-5)
    assert lab.decay_multiplier(tiny, math.inf) == 1.0


def test_gap_by_bin_recovers_the_middle_bin_and_sums_to_the_gap():
    weights = {"frequent": 0.6, "rare": 0.1}   # middle: 0.3
    losses = {"sgd": {"frequent": 2.0, "middle": 5.0, "rare": 7.0}, "adamw": {"frequent": 1.5, "middle": 3.0,
                                                                             "rare": 6.0}}

    def run(name, seed):
        bins = losses[name]
        total = 0.6 * bins["frequent"] + 0.3 * bins["middle"] + 0.1 * bins["rare"]
        return {"optimizer": name, "lr": 1.0, "seed": seed, "val_loss": [9.0, total],
                "val_loss_frequent": [9.0, bins["frequent"]], "val_loss_rare": [9.0, bins["rare"]]}

    workload = {"token_bins": {key: {"tokens": tokens, "share_of_val_targets": weights[key]}
                               for key, tokens in (("frequent", 5), ("rare", 25))},
                "corpus": {"vocab_size": 50}, "summary": {"sgd": {"best_lr": 1.0}, "adamw": {"best_lr": 1.0}},
                "runs": [run(name, seed) for name in losses for seed in (0, 1)]}
    split = lab.gap_by_bin(workload, "sgd", "adamw")
    assert split["middle"]["gap"] == pytest.approx(2.0) and split["middle"]["tokens"] == 20
    assert split["frequent"]["contribution"] == pytest.approx(0.3)
    assert split["rare"]["contribution"] == pytest.approx(0.1)
    assert split["total"]["gap"] == pytest.approx(0.3 + 0.6 + 0.1)
    assert math.fsum(split[key]["share"] for key in ("frequent", "middle", "rare")) == pytest.approx(1.0)


def test_clip_norm_variant_clips_and_records_the_clipped_fraction(tiny):
    """``clip_norm`` clips the global gradient norm before the step, as clip_grad_norm_ does, and the record says
    which share of the steps it bit; the default (None) clips nothing."""
    plain = lab.train_run(tiny, "adamw", 0.01, 0)
    tight = lab.train_run(tiny, "adamw", 0.01, 0, clip_norm=1e-3)
    assert plain["clipped_fraction"] == 0 and tight["clipped_fraction"] == 1.0
    assert tight["variant"] == {"clip_norm": 1e-3} and tight["val_loss"] != plain["val_loss"]
    loose = lab.train_run(tiny, "adamw", 0.01, 0, clip_norm=1e9)          # never bites: the unclipped run
    assert loose["clipped_fraction"] == 0 and loose["val_loss"] == plain["val_loss"]
    with pytest.raises(ValueError, match="clip_norm"):
        lab.train_run(tiny, "adamw", 0.01, 0, clip_norm=0.0)


def test_quick_controls_rerun_four_controls_small_with_their_variants(monkeypatch):
    """Each entry pairs a control run with its baseline at the main file's best η, one seed, the given steps; the
    variants are those of experiments/controls.py (checked by recording what train_run gets)."""
    calls = []
    real = lab.train_run

    def recording(workload, optimizer, lr, seed, **variant):
        calls.append((workload.name, workload.steps, optimizer, lr, seed, variant))
        return real(workload, optimizer, lr, seed, stop_after=1, **variant)

    monkeypatch.setattr(lab, "train_run", recording)
    results = lab.load_results()
    out = lab.quick_controls(results, steps=4)
    best = {k: {n: s["best_lr"] for n, s in w["summary"].items()} for k, w in results["workloads"].items()}
    assert [e["control"].split(" (")[-1] for e in out] == ["LM)", "LM)", "CNN)", "uniform language)"]
    assert all(steps == 4 and seed == 0 for _, steps, _, _, seed, _ in calls) and len(calls) == 8
    assert calls[0][2:] == ("adamw", best["lm"]["adamw"], 0, {"rest_lr": best["lm"]["muon"]})
    assert calls[2][5] == {"decay_timescale": math.inf} and calls[4][5] == {"clip_norm": 1.0}
    assert calls[6][2] == "nesterov" and calls[7][2] == "adamw"
