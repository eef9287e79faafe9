"""Regenerate ``course_lib/results/controls.json``: the controls of notebook 12's headline results (``make controls``).

Each control changes one thing of notebook 12's protocol (:mod:`course_lib.labs.where_it_matters`: same workloads,
recipe, steps and seeds 0, 1, 2, so every run is paired with the main file's run of the same seed: same initial
weights, same minibatches) and runs each optimizer at its committed best η (read from
``course_lib/results/where_it_matters.json`` by :func:`course_lib.benchmark.select`):

* ``muon_split`` (LM): Muon's recipe trains the non-matrix parameters (embeddings, head, norms, biases) with AdamW
  at Muon's η, 10× AdamW's tuned η. ``adamw_split``: AdamW with the same split (hidden matrices at AdamW's η, the
  rest at Muon's); ``muon_rest_at_adamw``: Muon with its AdamW half at AdamW's η.
* ``no_decay`` (CNN and LM): Adafactor, Lion and AdamW with λ = 0 (the recipe: λ = 0.1, applied as 1 − η_t λ).
* ``nadam_psi`` (LM): NAdam with momentum_decay ψ = 100, which makes μ_t = β₁(1 − ½·0.96^{tψ}) ≥ 0.99 β₁ from the
  first step (constant β₁, as AlgoPerf's NAdamW; torch's default ψ = 0.004 warms μ_t up from β₁/2 over thousands
  of steps, longer than the run), on NAdam's whole grid (the same 15-run budget); ``nadam_psi_issue``: ψ = 1
  (issue 25's value, μ_t still warming up over the first ~100 steps) at NAdam's committed η.
* ``uniform`` (LM on a language with uniform token frequencies, Zipf exponent 0, otherwise the same generator):
  Nesterov and AdamW on η around their best η on the Zipfian language (3 and 5 points, 3 seeds).
* ``reproduce``: AdamW's LM run and Adafactor's CNN run of seed 0 again, unchanged: the pairing holds only if they
  equal the main file's runs.

The 68 runs took 113 s on the 2-core course machine (``--workers 2``, others working beside it; 2026-12-07) and
print a progress bar; ``--tiny`` is a smoke test (seconds) that writes elsewhere.

    python experiments/controls.py                                  # the controls, default output
    python experiments/controls.py --tiny --output /tmp/c.json      # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib import benchmark
from course_lib.data import zipf_markov_corpus
from course_lib.labs import where_it_matters as lab

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "course_lib" / "results" / "controls.json"
SEEDS = (0, 1, 2)
PSI_CONSTANT = 100.0  # μ_1 = β₁(1 − ½·0.96¹⁰⁰) = 0.992 β₁: constant β₁ from the first step
PSI_ISSUE = 1.0       # the value issue 25 ran: μ_t still warms up over the first ~100 of 240 steps
# Grid points (in steps of 10^(1/3)) around the Zipfian best η: AdamW's best was at the top of (-1, 0, 1) in a
# first run, so its window goes two points further up (every best η strictly inside its window)
UNIFORM_STEPS = {"nesterov": (-1, 0, 1), "adamw": (-1, 0, 1, 2, 3)}


def build_workloads(tiny: bool) -> dict[str, lab.Workload]:
    """The main file's LM and CNN workloads and the uniform-frequency LM (``tiny``: a few steps, for tests)."""
    small = dict(steps=6, warmup_steps=2, eval_every=3) if tiny else {}
    lm_small = dict(small, eval_windows=8) if tiny else {}
    return {"lm": lab.lm_workload(**lm_small), "cnn": lab.cnn_workload(**small),
            "lm_uniform": lab.lm_workload(corpus=zipf_markov_corpus(exponent=0.0), **lm_small)}


def jobs(main: dict, seeds=SEEDS) -> list[dict]:
    """Every run of the controls: {control, workload, optimizer, lr, seed, variant}, η from the main file."""
    best = {w: {name: choice.lr for name, choice in benchmark.select(
        workload["runs"], {o: s["lr_grid"] for o, s in workload["optimizers"].items()}).items()}
        for w, workload in main["workloads"].items()}
    out = []

    def add(control, workload, optimizer, lr, variant, run_seeds=seeds):
        out.extend({"control": control, "workload": workload, "optimizer": optimizer, "lr": lr, "seed": seed,
                    "variant": variant} for seed in run_seeds)

    lm = best["lm"]
    add("adamw_split", "lm", "adamw", lm["adamw"], {"rest_lr": lm["muon"]})
    add("muon_rest_at_adamw", "lm", "muon", lm["muon"], {"rest_lr": lm["adamw"]})
    for w in ("cnn", "lm"):
        for name in ("adafactor", "lion", "adamw"):
            add("no_decay", w, name, best[w][name], {"weight_decay": 0.0})
    for lr in main["workloads"]["lm"]["optimizers"]["nadam"]["lr_grid"]:  # retuned on NAdam's own grid
        add("nadam_psi", "lm", "nadam", lr, {"options": {"momentum_decay": PSI_CONSTANT}})
    add("nadam_psi_issue", "lm", "nadam", lm["nadam"], {"options": {"momentum_decay": PSI_ISSUE}})
    for name, offsets in UNIFORM_STEPS.items():
        k = round(3 * np.log10(lm[name]))
        for offset in offsets:
            add("uniform", "lm_uniform", name, float(lab.lr_grid(k + offset, 1)[0]), {})
    add("reproduce", "lm", "adamw", lm["adamw"], {}, seeds[:1])
    add("reproduce", "cnn", "adafactor", best["cnn"]["adafactor"], {}, seeds[:1])
    return out


_WORKLOADS: dict = {}


def _init_worker(tiny: bool, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKLOADS.update(build_workloads(tiny))


def _one(job: dict) -> dict:
    record = lab.train_run(_WORKLOADS[job["workload"]], job["optimizer"], job["lr"], job["seed"], **job["variant"])
    record.pop("variant", None)
    return {"control": job["control"], "workload": job["workload"], "variant": job["variant"], **record}


def run(output: Path, *, tiny: bool = False, workers: int = 2, main_path=None) -> dict:
    """Run every control job, write ``output`` (JSON, schema of :func:`course_lib.labs.where_it_matters.
    check_controls`) and return it."""
    start = time.perf_counter()
    main = lab.load_results(main_path)
    seeds = tuple(main["config"]["seeds"])
    todo = jobs(main, seeds)
    threads = 1 if workers > 1 else torch.get_num_threads()
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tiny, threads)) as pool:
            results = list(tqdm(pool.map(_one, todo), total=len(todo), desc="controls", unit="run"))
    else:
        _init_worker(tiny, threads)
        results = [_one(job) for job in tqdm(todo, desc="controls", unit="run")]
    workloads = build_workloads(tiny)
    decay = {w: {name: {"lr": s["best_lr"], "weight_decay": main["workloads"][w]["weight_decay"],
                        "multiplier": lab.decay_multiplier(workloads[w], s["best_lr"])}
                 for name, s in main["workloads"][w]["summary"].items() if name in lab.DECAYING}
             for w in ("lm", "cnn")}
    uniform = workloads["lm_uniform"].extra
    seconds = time.perf_counter() - start
    out = {"schema": lab.CONTROLS_SCHEMA, "created_by": "experiments/controls.py",
           "config": {"seeds": list(seeds), "tiny": tiny, "workers": workers, "threads": threads,
                      "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                      "device": "cpu", "seconds": round(seconds, 1), "main_results": "where_it_matters.json",
                      "psi_constant": PSI_CONSTANT, "psi_issue": PSI_ISSUE},
           "uniform_workload": {"reference_losses": uniform["reference_losses"], "token_bins": uniform["token_bins"],
                                "corpus": {**uniform["corpus"], "zipf_exponent": 0.0}},
           "decay_multipliers": decay, "runs": results}
    lab.check_controls(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(todo)} runs in {seconds:.0f} s ({workers} worker(s) × {threads} thread(s), "
          f"{os.cpu_count()} CPUs) → {output}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tiny", action="store_true", help="a smoke test: a few steps per run")
    parser.add_argument("--workers", type=int, default=2, help="processes, one thread each (default: 2)")
    args = parser.parse_args(argv)
    if args.tiny and args.output == DEFAULT_OUTPUT:
        parser.error("--tiny needs --output (the committed controls.json holds the full runs)")
    run(args.output, tiny=args.tiny, workers=args.workers)


if __name__ == "__main__":
    main()
