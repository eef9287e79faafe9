"""Regenerate ``course_lib/results/where_it_matters.json``: notebook 12's sweeps (``make experiments``).

Every optimizer of :data:`course_lib.labs.where_it_matters.OPTIMIZERS` on every workload, at every learning rate of
its grid and every seed, under the protocol stated in :mod:`course_lib.labs.where_it_matters` (whose docstring
describes the file's schema). Seeded: the same command gives the same numbers on the same machine and torch build.
Runs are spread over ``--workers`` processes (one thread each on the CPU). It prints its run time. The default
configuration (285 runs) took 391 s (6.5 minutes, 13 CPU-minutes) on the idle 2-core course machine on
2026-11-26, and reproduced every number of the committed file except the timings (12,688 of them, identical); the
committed file was made in 44 minutes while other work shared the machine. On a GPU (``COURSE_DEVICE=cuda``) it
runs unchanged: on an NVIDIA H200 (torch 2.11+cu130, ``--workers 8``) all 285 runs took 158 s, and every optimizer
was tuned to the same learning rate as in the committed CPU file (``experiments/results/where_it_matters_cuda.json``;
``tests/test_experiments.py`` compares the two).

    python experiments/where_it_matters.py                     # everything, default output
    python experiments/where_it_matters.py --tiny --output /tmp/x.json   # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from course_lib.labs import where_it_matters as lab
from course_lib.training import pick_device

# The repository's copy of the package data that notebooks 12 and 13 read (course_lib ships it in its wheel)
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "course_lib" / "results" / "where_it_matters.json"
SEEDS = (0, 1, 2)


WORKLOADS = ("lm", "cnn")


def build_workloads(tiny: bool, device, names=WORKLOADS) -> dict[str, lab.Workload]:
    """The workloads by name; ``tiny``: a few steps, two grid points per optimizer, for tests."""
    built = {}
    if "lm" in names:
        built["lm"] = (lab.lm_workload(steps=6, warmup_steps=2, eval_every=3, eval_windows=8, device=device,
                                       grids={name: grid[1:3] for name, grid in lab.LM_GRIDS.items()})
                       if tiny else lab.lm_workload(device=device))
    if "cnn" in names:
        built["cnn"] = (lab.cnn_workload(steps=6, warmup_steps=2, eval_every=3, device=device,
                                         grids={name: grid[1:3] for name, grid in lab.CNN_GRIDS.items()})
                        if tiny else lab.cnn_workload(device=device))
    return built


_WORKLOADS: dict = {}


def _init_worker(tiny: bool, device: str, threads: int, names=WORKLOADS) -> None:
    torch.set_num_threads(threads)
    _WORKLOADS.update(build_workloads(tiny, device, names))


def _one(job):
    workload, optimizer, lr, seed = job
    return workload, lab.train_run(_WORKLOADS[workload], optimizer, lr, seed)


def run(output: Path, *, tiny: bool = False, seeds=SEEDS, workers: int | None = None, only=None,
        workloads=WORKLOADS, merge: bool = False) -> dict:
    """Run every job, write ``output`` (JSON) and return the results.

    With ``merge``, the workloads not run now are kept from the file already at ``output`` (same seeds)."""
    start = time.perf_counter()
    device = pick_device()
    on_cpu = device.type == "cpu"
    workers = (min(2, os.cpu_count() or 1) if on_cpu else 1) if workers is None else workers
    threads = 1 if on_cpu and workers > 1 else torch.get_num_threads()
    workload_names = tuple(workloads)
    workloads = build_workloads(tiny, str(device), workload_names)
    names = {w: [name for name in lab.OPTIMIZERS if name in workload.grids and (only is None or name in only)]
             for w, workload in workloads.items()}
    jobs = [(w, name, lr, seed) for w, workload in workloads.items() for name in names[w]
            for lr in workload.grids[name] for seed in seeds]
    if workers > 1:
        # A GPU cannot be used again in a forked child of a process that has used it: spawn the workers there.
        context = None if on_cpu else multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(tiny, str(device), threads, workload_names)) as pool:
            results = list(pool.map(_one, jobs))
    else:
        _init_worker(tiny, str(device), threads, workload_names)
        results = [_one(job) for job in jobs]
    out = {"schema": lab.SCHEMA, "created_by": "experiments/where_it_matters.py",
           "config": {"seeds": list(seeds), "device": str(device), "torch": torch.__version__, "threads": threads,
                      "workers": workers, "tiny": tiny}, "workloads": {}}
    for name, workload in workloads.items():
        runs = [record for w, record in results if w == name]
        grids = {opt: workload.grids[opt] for opt in names[name]}
        out["workloads"][name] = {
            "title": workload.title, "description": workload.description,
            "parameters": sum(p.numel() for p in workload.model(0).parameters()),
            "steps": workload.steps, "warmup_steps": workload.warmup_steps, "batch_size": workload.batch_size,
            "eval_every": workload.eval_every, "eval_steps": workload.eval_steps,
            "target": {"metric": "val_loss", "value": workload.target}, "betas": list(workload.betas),
            "clip_norm": workload.clip_norm, "weight_decay": workload.weight_decay, **workload.extra,
            "optimizers": {opt: {"title": lab.OPTIMIZERS[opt].title, "lr_grid": grids[opt]} for opt in names[name]},
            "runs": runs, "summary": lab.summarize(runs, grids), "protocol": lab.protocol_record(grids, seeds)}
    seconds = time.perf_counter() - start
    out["config"]["seconds"] = {name: round(seconds, 1) for name in workload_names}
    if merge and output.exists():
        previous = json.loads(output.read_text())
        if previous["config"]["seeds"] != out["config"]["seeds"]:
            raise ValueError(f"{output} holds other seeds; run without --merge")
        kept_seconds = previous["config"]["seconds"]
        if not isinstance(kept_seconds, dict):  # a file written by one workload's run
            kept_seconds = {name: kept_seconds for name in previous["workloads"]}
        for name, kept in previous["workloads"].items():
            if name not in out["workloads"]:
                out["workloads"][name] = kept
                out["config"]["seconds"][name] = kept_seconds[name]
        out["workloads"] = {name: out["workloads"][name] for name in WORKLOADS if name in out["workloads"]}
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
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: lm,cnn)")
    parser.add_argument("--merge", action="store_true", help="keep the other workloads of the existing --output")
    args = parser.parse_args(argv)
    run(args.output, tiny=args.tiny, seeds=tuple(range(args.seeds)), workers=args.workers,
        only=None if args.only is None else args.only.split(","), workloads=args.workloads.split(","),
        merge=args.merge)


if __name__ == "__main__":
    main()
