"""Regenerate ``experiments/results/where_it_matters.json``: notebook 12's sweeps (``make experiments``).

Every optimizer of :data:`course_lib.labs.where_it_matters.OPTIMIZERS` on every workload, at every learning rate of
its grid and every seed, under the protocol stated in :mod:`course_lib.labs.where_it_matters` (whose docstring
describes the file's schema). Seeded: the same command gives the same numbers on the same machine and torch build.
Runs are spread over ``--workers`` processes (one thread each on the CPU). It prints its run time. On the idle
2-core course machine the default configuration takes about 15 minutes; on a GPU (``COURSE_DEVICE=cuda``) it runs
unchanged.

    python experiments/where_it_matters.py                     # everything, default output
    python experiments/where_it_matters.py --tiny --output /tmp/x.json   # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from course_lib.labs import where_it_matters as lab
from course_lib.training import pick_device

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "where_it_matters.json"
SEEDS = (0, 1, 2)


def build_workloads(tiny: bool, device) -> dict[str, lab.Workload]:
    """The workloads by name; ``tiny``: a few steps, two grid points per optimizer, for tests."""
    if tiny:
        grids = {name: grid[1:3] for name, grid in lab.LM_GRIDS.items()}
        return {"lm": lab.lm_workload(steps=6, warmup_steps=2, eval_every=3, eval_windows=8, grids=grids,
                                      device=device)}
    return {"lm": lab.lm_workload(device=device)}


_WORKLOADS: dict = {}


def _init_worker(tiny: bool, device: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKLOADS.update(build_workloads(tiny, device))


def _one(job):
    workload, optimizer, lr, seed = job
    return workload, lab.train_run(_WORKLOADS[workload], optimizer, lr, seed)


def run(output: Path, *, tiny: bool = False, seeds=SEEDS, workers: int | None = None, only=None) -> dict:
    """Run every job, write ``output`` (JSON) and return the results."""
    start = time.perf_counter()
    device = pick_device()
    on_cpu = device.type == "cpu"
    workers = (min(2, os.cpu_count() or 1) if on_cpu else 1) if workers is None else workers
    threads = 1 if on_cpu and workers > 1 else torch.get_num_threads()
    workloads = build_workloads(tiny, str(device))
    names = [name for name in lab.OPTIMIZERS if only is None or name in only]
    jobs = [(w, name, lr, seed) for w, workload in workloads.items() for name in names
            for lr in workload.grids[name] for seed in seeds]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(tiny, str(device), threads)) as pool:
            results = list(pool.map(_one, jobs))
    else:
        _init_worker(tiny, str(device), threads)
        results = [_one(job) for job in jobs]
    out = {"schema": lab.SCHEMA, "created_by": "experiments/where_it_matters.py",
           "config": {"seeds": list(seeds), "device": str(device), "torch": torch.__version__, "threads": threads,
                      "workers": workers, "tiny": tiny}, "workloads": {}}
    for name, workload in workloads.items():
        runs = [record for w, record in results if w == name]
        grids = {opt: workload.grids[opt] for opt in names}
        out["workloads"][name] = {
            "title": workload.title, "description": workload.description,
            "parameters": sum(p.numel() for p in workload.model(0).parameters()),
            "steps": workload.steps, "warmup_steps": workload.warmup_steps, "batch_size": workload.batch_size,
            "eval_every": workload.eval_every, "eval_steps": workload.eval_steps,
            "target": {"metric": "val_loss", "value": workload.target}, "betas": list(workload.betas),
            "clip_norm": workload.clip_norm, "weight_decay": workload.weight_decay, **workload.extra,
            "optimizers": {opt: {"title": lab.OPTIMIZERS[opt].title, "lr_grid": grids[opt]} for opt in names},
            "runs": runs, "summary": lab.summarize(runs, grids)}
    seconds = time.perf_counter() - start
    out["config"]["seconds"] = round(seconds, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(jobs)} runs in {seconds:.0f} s ({device}, {workers} worker(s) × {threads} thread(s)) → {output}")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tiny", action="store_true", help="a smoke test: few steps, two learning rates")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 2 on the CPU, 1 on a GPU)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="number of seeds (0, 1, …)")
    parser.add_argument("--only", default=None, help="comma-separated optimizer names (default: all)")
    args = parser.parse_args(argv)
    run(args.output, tiny=args.tiny, seeds=tuple(range(args.seeds)), workers=args.workers,
        only=None if args.only is None else args.only.split(","))


if __name__ == "__main__":
    main()
