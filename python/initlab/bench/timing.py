"""The one timing helper of the benchmarks: libraries take turns, each turn preceded by a pause.

Taking turns gives each library the same share of a shared machine's noise; the pause before a turn
lets the previous library's spinning worker threads go to sleep (idle OpenMP and OpenBLAS workers
spin for a while after their last parallel region, OpenBLAS for about 0.1 s, and on a machine with
as many threads as cores they would steal the next library's cores).

`run_pinned` runs one thread count's measurements in a fresh Python process restricted to that many
CPUs from its first instruction. That is how JAX gets a thread count: XLA's CPU client sizes its
thread pool from the process's CPU affinity when it starts, and this jaxlib (0.10.2) has no flag
for it (`--xla_cpu_multi_thread_eigen=false` still runs 2-3 threads at once on a 2-core machine,
and `intra_op_parallelism_threads` is not an XLA_FLAGS flag: "Unknown flag in XLA_FLAGS"). Every
library of that thread count runs in the same pinned process, taking turns as above.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, List, Mapping, Optional

SETTLE_SECONDS = 0.3

STATISTICS: dict[str, Callable[[list], float]] = {"median": statistics.median, "min": min}


def time_interleaved(fns: Mapping[str, Optional[Callable[[], object]]], min_seconds: float, *,
                     statistic: str = "median", rounds: int = 3, warmup: int = 2, calls: int = 3) -> dict[str, float]:
    """Seconds per call of each function: `rounds` turns in which each function (None: skipped,
    reported as NaN) is called `warmup` times untimed, then timed call by call for min_seconds/rounds
    and at least `calls` calls. `statistic` reduces the calls of all turns: "median" (training steps:
    robust to outliers both ways) or "min" (kernels: the fastest call, the least disturbed one)."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    reduce = STATISTICS[statistic]
    live = {name: fn for name, fn in fns.items() if fn is not None}
    times: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(rounds):
        for name, fn in live.items():
            time.sleep(SETTLE_SECONDS)
            for _ in range(warmup):  # caches, thread pools
                fn()
            start = time.perf_counter()
            done = 0
            while True:
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                times[name].append(t1 - t0)
                done += 1
                if done >= calls and t1 - start >= min_seconds / rounds:
                    break
    return {name: (reduce(times[name]) if name in times else float("nan")) for name in fns}


def allowed_cpus() -> Optional[List[int]]:
    """The CPUs this process may run on (its affinity), or None where that is unknown (not Linux)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def pinned_cpus(threads: int) -> Optional[List[int]]:
    """The first `threads` CPUs this process may run on, or None where CPU affinity cannot be set
    (not Linux) or fewer CPUs are allowed."""
    allowed = allowed_cpus()
    if allowed is None or not hasattr(os, "sched_setaffinity"):
        return None
    return allowed[:threads] if len(allowed) >= threads else None


_CHILD = """
import json, os, sys
cpus = json.loads(sys.argv[1])
if cpus is not None:
    os.sched_setaffinity(0, cpus)  # before numpy, torch or jax start a thread pool
import importlib
module = importlib.import_module(sys.argv[2])
rows = getattr(module, sys.argv[3])(**json.loads(sys.argv[4]))
print("ROWS " + json.dumps(rows))
"""


def run_pinned(module: str, function: str, threads: int, **kwargs: Any) -> list:
    """`module.function(threads=(threads,), **kwargs)` (JSON-able arguments and rows) in a fresh
    Python process pinned to `threads` CPUs (pinned_cpus; unpinned where that is None): its rows."""
    cpus = pinned_cpus(threads)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    args = dict(kwargs, threads=[threads])
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cpus), module, function, json.dumps(args)],
                          env=env, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{module}.{function} (threads {threads}) failed in its pinned process "
                           f"(exit status {done.returncode}; its error is printed above)")
    return json.loads(lines[-1][5:])
