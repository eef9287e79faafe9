"""Regenerate ``course_lib/results/controls.json``: the controls of notebook 12's headline results (``make controls``).

Each control changes one thing of notebook 12's protocol (:mod:`course_lib.labs.where_it_matters`: same workloads,
recipe, steps and seeds 0, 1, 2, so every run is paired with the main file's run of the same seed: same initial
weights, same minibatches) and runs each optimizer at its committed best η (read from
``course_lib/results/where_it_matters.json`` by :func:`course_lib.benchmark.select`):

* ``muon_split`` (LM): Muon's recipe trains the non-matrix parameters (embeddings, head, norms, biases) with AdamW
  at Muon's η, 10× AdamW's tuned η. ``adamw_split``: AdamW with the same split (hidden matrices at AdamW's η, the
  rest at Muon's); ``muon_rest_at_adamw``: Muon with its AdamW half at AdamW's η.
* ``no_decay`` (CNN and LM): every optimizer at its best η without weight decay (the recipe: the timescale
  τ = T steps for all), the λ = 0 baseline.
* ``clip`` (CNN and LM): SGD + momentum, SGD + Nesterov, AdamW and the language model's three leaders (Adafactor,
  Muon, SOAP) with the gradient clipped at global norm 1 (the course's first protocol), on each one's fine grid and
  one η above it, retuned there (clipping lets a larger η survive its spikes).
* ``uniform`` (LM on a language with uniform token frequencies, Zipf exponent 0, otherwise the same generator):
  Nesterov and AdamW on three η around their best η on the Zipfian language, 3 seeds, each window extended by a
  point while its best sits at an edge (the main search's rule).
* ``reproduce``: AdamW's LM run and Adafactor's CNN run of seed 0 again, unchanged: the pairing holds only if they
  equal the main file's runs.

The runs print a progress bar (the time is in the README's table); ``--tiny`` is a smoke test (seconds) that writes
elsewhere.

    python experiments/controls.py                                  # the controls, default output
    python experiments/controls.py --tiny --output /tmp/c.json      # a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib import benchmark, sweep
from course_lib.data import zipf_markov_corpus
from course_lib.labs import where_it_matters as lab

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "course_lib" / "results" / "controls.json"
SEEDS = (0, 1, 2)
UNIFORM = ("nesterov", "adamw")
CLIPPED = ("momentum", "nesterov", "adamw", "adafactor", "muon", "soap")
CLIP_NORM = 1.0  # the first protocol's clipping threshold
UNIFORM_REACH = 3  # the uniform language's windows may grow to 1 decade from the Zipfian best η


def build_workloads(tiny: bool) -> dict[str, lab.Workload]:
    """The main file's LM and CNN workloads and the uniform-frequency LM (``tiny``: a few steps, for tests)."""
    small = dict(steps=6, warmup_steps=2, eval_every=3) if tiny else {}
    lm_small = dict(small, eval_windows=8) if tiny else {}
    return {"lm": lab.lm_workload(**lm_small), "cnn": lab.cnn_workload(**small),
            "lm_uniform": lab.lm_workload(corpus=zipf_markov_corpus(exponent=0.0), **lm_small)}


def best_lrs(main: dict) -> dict[str, dict[str, float]]:
    """{workload: {optimizer: best η}} of the main file (:func:`course_lib.benchmark.select`)."""
    return {w: {name: choice.lr for name, choice in benchmark.select(
        workload["runs"], {o: s["lr_grid"] for o, s in workload["optimizers"].items()}).items()}
        for w, workload in main["workloads"].items()}


def jobs(main: dict, seeds=SEEDS) -> list[dict]:
    """The runs of the controls that do not depend on other controls' results: {control, workload, optimizer,
    lr, seed, variant}, η from the main file (the uniform language's windows are grown by :func:`run`)."""
    best = best_lrs(main)
    out = []

    def add(control, workload, optimizer, lr, variant, run_seeds=seeds):
        out.extend({"control": control, "workload": workload, "optimizer": optimizer, "lr": lr, "seed": seed,
                    "variant": variant} for seed in run_seeds)

    lm = best["lm"]
    add("adamw_split", "lm", "adamw", lm["adamw"], {"rest_lr": lm["muon"]})
    add("muon_rest_at_adamw", "lm", "muon", lm["muon"], {"rest_lr": lm["adamw"]})
    for w in ("cnn", "lm"):
        for name, lr in best[w].items():
            add("no_decay", w, name, lr, {"decay_timescale": math.inf})
    for w, workload in main["workloads"].items():
        for name in CLIPPED:
            grid = workload["optimizers"][name]["lr_grid"]
            above = lab.lr_grid(round(3 * np.log10(grid[-1])) + 1, 1)[0]
            for lr in grid + [above]:
                add("clip", w, name, lr, {"clip_norm": CLIP_NORM})
    add("reproduce", "lm", "adamw", lm["adamw"], {}, seeds[:1])
    add("reproduce", "cnn", "muon", best["cnn"]["muon"], {}, seeds[:1])
    return out


def uniform_jobs(k: int, name: str, seeds=SEEDS) -> list[dict]:
    """The uniform language's runs of ``name`` at η = 10^(k/3)."""
    return [{"control": "uniform", "workload": "lm_uniform", "optimizer": name, "lr": lab.lr_grid(k, 1)[0],
             "seed": seed, "variant": {}} for seed in seeds]


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
    pool = (ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tiny, threads)) if workers > 1
            else None)
    if pool is None:
        _init_worker(tiny, threads)

    def execute(batch, desc):
        mapped = pool.map(_one, batch) if pool is not None else map(_one, batch)
        return list(tqdm(mapped, total=len(batch), desc=desc, unit="run"))

    try:
        results = execute(todo, "controls")
        lm = best_lrs(main)["lm"]
        center = {name: round(3 * np.log10(lm[name])) for name in UNIFORM}
        grids = {name: [center[name] + o for o in (-1, 0, 1)] for name in UNIFORM}
        new = dict(grids)
        while new:
            results += execute([job for name, ks in new.items() for k in ks for job in uniform_jobs(k, name, seeds)],
                               "uniform language")
            new = {}
            for name, ks in grids.items():
                scores = [benchmark.seed_statistic([r[benchmark.METRIC] for r in results if r["control"] == "uniform"
                                                    and r["optimizer"] == name and r["lr"] == lab.lr_grid(k, 1)[0]])
                          for k in ks]
                k = sweep.grid_extension(ks, scores, lowest=center[name] - UNIFORM_REACH,
                                         highest=center[name] + UNIFORM_REACH)
                if k is not None:
                    new[name] = [k]
                    grids[name] = sorted(ks + [k])
    finally:
        if pool is not None:
            pool.shutdown()
    workloads = build_workloads(tiny)
    decay = {w: {"decay_timescale": workloads[w].decay_timescale,
                 "multiplier": lab.decay_multiplier(workloads[w])} for w in ("lm", "cnn")}
    uniform = workloads["lm_uniform"].extra
    seconds = time.perf_counter() - start
    out = {"schema": lab.CONTROLS_SCHEMA, "created_by": "experiments/controls.py",
           "config": {"seeds": list(seeds), "tiny": tiny, "workers": workers, "threads": threads,
                      "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                      "device": "cpu", "seconds": round(seconds, 1), "main_results": "where_it_matters.json",
                      "uniform_reach": UNIFORM_REACH},
           "uniform_workload": {"reference_losses": uniform["reference_losses"], "token_bins": uniform["token_bins"],
                                "corpus": {**uniform["corpus"], "zipf_exponent": 0.0}},
           "decay_multipliers": decay, "runs": results}
    lab.check_controls(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(results)} runs in {seconds:.0f} s ({workers} worker(s) × {threads} thread(s), "
          f"{os.cpu_count()} CPUs) → {output}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tiny", action="store_true", help="a smoke test: a few steps per run")
    parser.add_argument("--workers", type=int, default=2, help="processes, one thread each (default: 2)")
    parser.add_argument("--main", type=Path, default=None, help="the main results (default: the committed file)")
    args = parser.parse_args(argv)
    if args.tiny and args.output == DEFAULT_OUTPUT:
        parser.error("--tiny needs --output (the committed controls.json holds the full runs)")
    run(args.output, tiny=args.tiny, workers=args.workers, main_path=args.main)


if __name__ == "__main__":
    main()
