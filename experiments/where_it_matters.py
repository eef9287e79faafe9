"""Regenerate ``course_lib/results/where_it_matters.json``: notebook 12's sweeps (``make experiments``).

Every optimizer of :data:`course_lib.labs.where_it_matters.OPTIMIZERS` on every workload, its learning rate η
found by a two-stage search in which every run counts towards its budget (the protocol of
:mod:`course_lib.labs.where_it_matters`, whose docstring describes the file's schema):

1. **coarse**: η = 10⁻⁴, 10⁻³, …, 1 on seed 0 (``COARSE_KS``); while any optimizer's best sits at an end, one
   more decade there (at most ``COARSE_EXTENSIONS``), for every optimizer of the workload;
2. **fine**: three η per decade around each optimizer's coarse best k*, η = 10^(k/3) for k = k* + o with the offsets
   o = −1, 0, 1, on every seed (the coarse run at an η of the fine grid is reused, not rerun); while any
   optimizer's best (mean over seeds of the final validation loss) sits at an end, one more offset there (at most
   ``FINE_REACH`` from k*), for every optimizer of the workload.

   The search space is the same for every optimizer of a workload, so every optimizer gets the same number of
   runs: one optimizer's need to look further buys the same look for all.
3. **timing**: the time per step of each optimizer at its best η as a ratio to AdamW's, in a separate run of
   interleaved rounds after the sweep (one process, one thread); ``--retime`` repeats this stage alone on a quiet
   machine.

Seeded: the same command gives the same numbers on the same machine and torch build. Runs are spread over
``--workers`` processes (one thread each on the CPU) and show a progress bar per stage; the script prints its run
time (about 10 minutes on the 2-core course machine, see the README).

    python experiments/where_it_matters.py                     # everything, default output
    python experiments/where_it_matters.py --tiny --output /tmp/x.json   # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib import benchmark, sweep
from course_lib.labs import where_it_matters as lab
from course_lib.training import pick_device

# The repository's copy of the package data that notebooks 12 and 13 read (course_lib ships it in its wheel)
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "course_lib" / "results" / "where_it_matters.json"
SEEDS = (0, 1, 2)
WORKLOADS = ("lm", "cnn")


def build_workloads(tiny: bool, device, names=WORKLOADS) -> dict[str, lab.Workload]:
    """The workloads by name; ``tiny``: a few steps, for tests."""
    built = {}
    if "lm" in names:
        built["lm"] = (lab.lm_workload(steps=6, warmup_steps=2, eval_every=3, eval_windows=8, test_windows=8,
                                       device=device) if tiny else lab.lm_workload(device=device))
    if "cnn" in names:
        built["cnn"] = (lab.cnn_workload(steps=6, warmup_steps=2, eval_every=3, device=device)
                        if tiny else lab.cnn_workload(device=device))
    return built


_WORKLOADS: dict = {}


def _init_worker(tiny: bool, device: str, threads: int, names=WORKLOADS) -> None:
    torch.set_num_threads(threads)
    _WORKLOADS.update(build_workloads(tiny, device, names))


def _one(job):
    workload, optimizer, k, seed = job
    return job, lab.train_run(_WORKLOADS[workload], optimizer, sweep.lr_grid(k, 1)[0], seed)


class Search:
    """Both stages' runs, kept by (workload, optimizer) and k (η = 10^(k/3)) and seed; runs jobs in a pool.

    The search space is shared within a workload: when one optimizer's best sits at an end of its grid, the grid
    grows there for every optimizer (the coarse grid by a decade, the fine offsets around each coarse best by a
    point), so every optimizer of a workload gets the same grid shape and the same number of runs.
    """

    def __init__(self, pool, names: dict[str, list[str]], seeds):
        self.pool, self.names, self.seeds = pool, names, tuple(seeds)
        self.runs: dict[tuple, dict] = {}  # (workload, optimizer, k, seed) -> record
        self.coarse_ks: dict[str, list[int]] = {w: [] for w in names}    # the shared coarse grid per workload
        self.offsets: dict[str, list[int]] = {w: [] for w in names}      # the shared fine offsets per workload
        self.center: dict[tuple, int] = {}

    @property
    def keys(self):
        return [(w, o) for w, opts in self.names.items() for o in opts]

    def coarse(self, key) -> list[int]:
        return self.coarse_ks[key[0]]

    def fine(self, key) -> list[int]:
        return [self.center[key] + o for o in self.offsets[key[0]]]

    def run(self, jobs, desc):
        jobs = [job for job in dict.fromkeys(jobs) if job not in self.runs]
        mapped = self.pool.map(_one, jobs) if self.pool is not None else map(_one, jobs)
        for job, record in tqdm(mapped, total=len(jobs), desc=desc, unit="run"):
            self.runs[job] = record

    def score(self, key, k, seeds) -> float:
        return benchmark.seed_statistic([self.runs[(*key, k, s)][benchmark.METRIC] for s in seeds])

    def coarse_stage(self, ks, extensions, desc="coarse"):
        """Seed 0 on the shared coarse grid ``ks``; while any optimizer's best sits at an end, one more decade
        there for every optimizer of its workload (at most ``extensions`` decades beyond ``ks`` at each end)."""
        seed = self.seeds[0]
        todo = {w: list(ks) for w in self.names}
        lowest, highest = ks[0] - 3 * extensions, ks[-1] + 3 * extensions
        while todo:
            self.run([(w, o, k, seed) for w, new in todo.items() for o in self.names[w] for k in new], desc)
            for w, new in todo.items():
                self.coarse_ks[w] = sorted(self.coarse_ks[w] + new)
            todo = {}
            for key in self.keys:
                grid = self.coarse(key)
                k = sweep.grid_extension(grid, [self.score(key, k, (seed,)) for k in grid], step=3,
                                         lowest=lowest, highest=highest)
                if k is not None and k not in todo.get(key[0], []):
                    todo.setdefault(key[0], []).append(k)

    def fine_stage(self, offsets, reach, desc="fine"):
        """Every seed at η = 10^((k* + o)/3) for the shared offsets o around each optimizer's coarse best k*;
        while any optimizer's best sits at an end, one more offset there for every optimizer of its workload (at
        most ``reach`` from k*)."""
        for key in self.keys:
            grid = self.coarse(key)
            best = sweep.best_lr([10 ** (k / 3) for k in grid], [self.score(key, k, self.seeds[:1]) for k in grid])
            self.center[key] = grid[best.index]
        todo = {w: list(offsets) for w in self.names}
        while todo:
            self.run([(w, o, self.center[(w, o)] + off, s) for w, new in todo.items() for o in self.names[w]
                      for off in new for s in self.seeds], desc)
            for w, new in todo.items():
                self.offsets[w] = sorted(self.offsets[w] + new)
            todo = {}
            for key in self.keys:
                grid, center = self.fine(key), self.center[key]
                k = sweep.grid_extension(grid, [self.score(key, k, self.seeds) for k in grid],
                                         lowest=center - reach, highest=center + reach)
                if k is not None and k - center not in todo.get(key[0], []):
                    todo.setdefault(key[0], []).append(k - center)


def run(output: Path, *, tiny: bool = False, seeds=SEEDS, workers: int | None = None, only=None,
        workloads=WORKLOADS, timing_rounds: int = 15) -> dict:
    """Run the search and the timing, write ``output`` (JSON) and return the results."""
    start = time.perf_counter()
    device = pick_device()
    on_cpu = device.type == "cpu"
    workers = (min(2, os.cpu_count() or 1) if on_cpu else 1) if workers is None else workers
    threads = 1 if on_cpu and workers > 1 else torch.get_num_threads()
    workload_names = tuple(workloads)
    built = build_workloads(tiny, str(device), workload_names)
    names = {w: [name for name in lab.OPTIMIZERS if only is None or name in only] for w in built}
    coarse_ks = lab.COARSE_KS[-2:] if tiny else lab.COARSE_KS
    extensions = 1 if tiny else lab.COARSE_EXTENSIONS
    if workers > 1:
        # A GPU cannot be used again in a forked child of a process that has used it: spawn the workers there.
        context = None if on_cpu else multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(tiny, str(device), threads, workload_names))
    else:
        _init_worker(tiny, str(device), threads, workload_names)
        pool = None
    try:
        search = Search(pool, names, seeds)
        search.coarse_stage(coarse_ks, extensions)
        search.fine_stage(lab.FINE_OFFSETS, lab.FINE_REACH)
    finally:
        if pool is not None:
            pool.shutdown()
    sweep_seconds = time.perf_counter() - start

    torch.set_num_threads(1 if on_cpu else torch.get_num_threads())
    out = {"schema": lab.SCHEMA, "created_by": "experiments/where_it_matters.py",
           "config": {"seeds": list(seeds), "device": str(device), "torch": torch.__version__,
                      "numpy": np.__version__, "python": platform.python_version(), "threads": threads,
                      "workers": workers, "tiny": tiny}, "workloads": {}}
    for w, workload in built.items():
        grids = {o: [sweep.lr_grid(k, 1)[0] for k in search.fine((w, o))] for o in names[w]}
        coarse = {o: [sweep.lr_grid(k, 1)[0] for k in search.coarse((w, o))] for o in names[w]}
        runs = [search.runs[(w, o, k, s)] for o in names[w] for k in search.fine((w, o)) for s in seeds]
        coarse_runs = [search.runs[(w, o, k, seeds[0])] for o in names[w] for k in search.coarse((w, o))]
        summary = lab.summarize(runs, grids)
        lr = {o: summary[o]["best_lr"] for o in names[w]}
        ratios = lab.step_time_ratios(workload, lr, steps=3 if tiny else 20, rounds=timing_rounds)
        out["workloads"][w] = {
            "title": workload.title, "description": workload.description,
            "parameters": sum(p.numel() for p in workload.model(0).parameters()),
            "steps": workload.steps, "warmup_steps": workload.warmup_steps, "batch_size": workload.batch_size,
            "eval_every": workload.eval_every, "eval_steps": workload.eval_steps,
            "target": {"metric": "val_loss", "value": workload.target}, "betas": list(workload.betas),
            "clip_norm": workload.clip_norm, "decay_timescale": workload.decay_timescale,
            "decay_multiplier": lab.decay_multiplier(workload), **workload.extra,
            "optimizers": {o: {"title": lab.OPTIMIZERS[o].title,
                               "options": {key: list(v) if isinstance(v, tuple) else v
                                           for key, v in lab.OPTIMIZERS[o].options_for(workload).items()},
                               "coarse_grid": coarse[o], "lr_grid": grids[o],
                               "center_lr": sweep.lr_grid(search.center[(w, o)], 1)[0]} for o in names[w]},
            "coarse_runs": coarse_runs, "runs": runs, "summary": summary,
            "step_time_ratio": {"baseline": "adamw", "steps": 3 if tiny else 20, "rounds": timing_rounds,
                                "threads": torch.get_num_threads(), "clock": lab.STEP_CLOCK[on_cpu],
                                "ratios": ratios},
            "protocol": lab.protocol_record(grids, coarse, seeds, extra={
                "coarse_ks": search.coarse_ks[w], "coarse_ks_start": list(coarse_ks),
                "coarse_extensions": extensions, "fine_offsets": search.offsets[w],
                "fine_offsets_start": list(lab.FINE_OFFSETS), "fine_reach": lab.FINE_REACH,
                "per_group_lr": "none: one η for all of an optimizer's parameters (Muon's AdamW half runs at Muon's η)",
                "weight_decay": "the recipe's timescale τ = steps for every optimizer", "clipping": "none"})}
    seconds = time.perf_counter() - start
    out["config"]["seconds"] = {"sweep": round(sweep_seconds, 1), "timing": round(seconds - sweep_seconds, 1)}
    lab.check_results(out)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(search.runs)} runs in {sweep_seconds:.0f} s and the timing in {seconds - sweep_seconds:.0f} s "
          f"({device}, {workers} worker(s) × {threads} thread(s)) → {output}")
    return out


def retime(output: Path, *, rounds: int = 15) -> dict:
    """Measure the time per step again (stage 3 alone) into the results at ``output``, at their best η. The CPU
    clock leaves out other processes' time but not their use of the caches and memory: on a busy machine, rerun
    it when the machine is quieter."""
    results = lab.load_results(output)
    torch.set_num_threads(1)
    device = pick_device()
    built = build_workloads(results["config"]["tiny"], str(device), tuple(results["workloads"]))
    for name, workload in results["workloads"].items():
        lr = {o: s["best_lr"] for o, s in workload["summary"].items()}
        steps = workload["step_time_ratio"]["steps"]
        workload["step_time_ratio"] = {"baseline": "adamw", "steps": steps, "rounds": rounds, "threads": 1,
                                       "clock": lab.STEP_CLOCK[device.type == "cpu"],
                                       "ratios": lab.step_time_ratios(built[name], lr, steps=steps, rounds=rounds)}
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"time per step measured again → {output}")
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tiny", action="store_true", help="a smoke test: few steps, a short coarse grid")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 2 on the CPU, 1 on a GPU)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, …)")
    parser.add_argument("--only", default=None, help="comma-separated optimizer names (default: all)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: lm,cnn)")
    parser.add_argument("--retime", action="store_true", help="only measure the time per step again into --output")
    args = parser.parse_args(argv)
    if args.retime:
        retime(args.output)
        return
    if args.tiny and args.output == DEFAULT_OUTPUT:
        parser.error("--tiny needs --output (the committed file holds the full runs)")
    run(args.output, tiny=args.tiny, seeds=tuple(range(args.seeds)), workers=args.workers,
        only=None if args.only is None else args.only.split(","), workloads=args.workloads.split(","))


if __name__ == "__main__":
    main()
