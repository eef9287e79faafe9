"""Run one nbval command again under other BLAS kernels, SIMD levels and thread counts (``make test-portable``).

The committed outputs must be the text every machine prints (docs/testing.md). A number that
depends on the BLAS kernel OpenBLAS picks for the CPU, on torch's SIMD level or on the thread count passes
``make test`` on one machine and fails on the next. This script runs the command it is given (the Makefile's
nbval command) once per setting below, each a set of environment variables, and prints one line per setting
with its time and result. Exit status 1 when any setting fails.

A BLAS kernel the CPU cannot execute (``SkylakeX`` needs AVX-512) would kill every kernel with an illegal
instruction; such a setting runs with its ``fallback`` kernel instead, and the summary says so.

Usage: ``python tools/portable_nbval.py [--only NAME ...] -- COMMAND ...``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """Environment variables for one run; ``fallback`` replaces ``OPENBLAS_CORETYPE`` where the CPU lacks it."""

    name: str
    env: dict
    fallback: str | None = None
    note: str = ""


# numpy's and scipy's OpenBLAS picks its kernels from OPENBLAS_CORETYPE; torch's vectorized kernels follow
# ATEN_CPU_CAPABILITY; both read OMP_NUM_THREADS. Plain `make nbval` is the machine's own choice.
SETTINGS = (
    Setting("haswell-1-thread", {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1"},
            note="AVX2 BLAS kernels, one thread"),
    Setting("skylakex-2-threads", {"OPENBLAS_CORETYPE": "SkylakeX", "OMP_NUM_THREADS": "2"}, fallback="Sandybridge",
            note="AVX-512 BLAS kernels (AVX ones where the CPU has no AVX-512), two threads"),
    Setting("prescott", {"OPENBLAS_CORETYPE": "Prescott"}, note="SSE3 BLAS kernels, as on CPUs without AVX"),
    Setting("aten-default", {"ATEN_CPU_CAPABILITY": "default"}, note="torch without SIMD kernels"),
)

_PROBE = "import numpy; a = numpy.full((96, 96), 0.5); assert float((a @ a)[0, 0]) == 24.0"


def cpu_runs(coretype: str) -> bool:
    """True when OpenBLAS's ``coretype`` kernels run on this CPU (a matrix product in a child process)."""
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True).returncode == 0


def environment(setting: Setting) -> tuple[dict, str]:
    """The variables of ``setting`` for this CPU, and a note when its fallback kernel replaced the named one."""
    env = dict(setting.env)
    coretype = env.get("OPENBLAS_CORETYPE")
    if coretype and setting.fallback and not cpu_runs(coretype):
        env["OPENBLAS_CORETYPE"] = setting.fallback
        return env, f"this CPU cannot run OpenBLAS's {coretype} kernels: {setting.fallback} instead"
    return env, ""


def describe(env: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in env.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=[s.name for s in SETTINGS],
                        help="run only this setting (repeatable)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the nbval command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the nbval command after --")
    results = []
    for setting in SETTINGS:
        if args.only and setting.name not in args.only:
            continue
        env, note = environment(setting)
        print(f"\n=== {setting.name}: {describe(env)} ({setting.note}){'; ' + note if note else ''}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, env={**os.environ, **env}).returncode
        results.append((setting.name, describe(env), code, time.perf_counter() - started, note))
    print("\nportability summary:")
    for name, variables, code, seconds, note in results:
        verdict = "passed" if code == 0 else f"FAILED (exit status {code})"
        print(f"  {name:<20} {variables:<50} {seconds:6.0f} s  {verdict}{'  [' + note + ']' if note else ''}")
    print(f"  total {sum(r[3] for r in results):.0f} s")
    return 0 if all(r[2] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
