"""The one timing helper of the benchmarks: libraries take turns, each turn preceded by a pause.

Taking turns gives each library the same share of a shared machine's noise; the pause before a turn
lets the previous library's spinning worker threads go to sleep (idle OpenMP and OpenBLAS workers
spin for a while after their last parallel region, OpenBLAS for about 0.1 s, and on a machine with
as many threads as cores they would steal the next library's cores).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping, Optional

SETTLE_SECONDS = 0.3

STATISTICS: dict[str, Callable[[list], float]] = {"median": statistics.median, "min": min}


def time_interleaved(fns: Mapping[str, Optional[Callable[[], object]]], min_seconds: float, *,
                     statistic: str = "median", rounds: int = 3, warmup: int = 2) -> dict[str, float]:
    """Seconds per call of each function: `rounds` turns in which each function (None: skipped,
    reported as NaN) is called `warmup` times untimed, then timed call by call for min_seconds/rounds
    and at least 3 calls. `statistic` reduces the calls of all turns: "median" (training steps:
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
            calls = 0
            while True:
                t0 = time.perf_counter()
                fn()
                t1 = time.perf_counter()
                times[name].append(t1 - t0)
                calls += 1
                if calls >= 3 and t1 - start >= min_seconds / rounds:
                    break
    return {name: (reduce(times[name]) if name in times else float("nan")) for name in fns}
