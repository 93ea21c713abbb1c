"""Fill throughput: initlab's initializers next to numpy's Generator and torch.nn.init, same run.

Fills a size x size float32 array (4096 x 4096 by default) in place with he_normal, he_uniform and
truncated_normal and reports millions of values per second (median of `repeats` fills) for each
thread count, with the ratios. Peers, measured in the same process:
- numpy: ``Generator(PCG64).standard_normal(out=, dtype=float32)`` for the normal-based schemes and
  ``Generator.random(out=, dtype=float32)`` (raw U[0, 1), no scaling) for the uniform one; numpy's
  generators are single-threaded, so its figures do not change with the thread count.
- torch (when installed): ``kaiming_normal_``, ``kaiming_uniform_``, ``trunc_normal_`` with
  ``torch.set_num_threads`` set to the same count.

>>> from initlab.bench.init_fill import run, format_table
>>> print(format_table(run(threads=(1,), size=256, repeats=1)))  # doctest: +ELLIPSIS
| scheme | threads | initlab M/s | initlab M/s (CPU time) | numpy M/s | ...
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import initlab as il

SCHEMES = ("he_normal", "he_uniform", "truncated_normal")


def _median_seconds(fill: Callable[[], object], repeats: int) -> float:
    return _median_wall_and_cpu(fill, repeats)[0]


def _median_wall_and_cpu(fill: Callable[[], object], repeats: int) -> Tuple[float, float]:
    """Median wall-clock and process CPU seconds (all threads) of one fill."""
    fill()  # warm-up: page in the array, spin up the thread pool
    walls, cpus = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fill()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls), statistics.median(cpus)


def _torch_fill(scheme: str, tensor) -> Callable[[], object]:
    import torch.nn.init as tinit

    if scheme == "he_normal":
        return lambda: tinit.kaiming_normal_(tensor, nonlinearity="relu")
    if scheme == "he_uniform":
        return lambda: tinit.kaiming_uniform_(tensor, nonlinearity="relu")
    return lambda: tinit.trunc_normal_(tensor, std=0.05, a=-0.1, b=0.1)


def run(threads: Sequence[int] = (1, 2), size: int = 4096, repeats: int = 5) -> List[Dict[str, object]]:
    """One row per (scheme, thread count): M values/s of initlab, numpy and torch, and the ratios."""
    try:
        import torch
    except ImportError:  # torch is optional
        torch = None
    values = size * size
    array = np.empty((size, size), dtype=np.float32)
    generator = np.random.Generator(np.random.PCG64(0))
    tensor = torch.empty((size, size), dtype=torch.float32) if torch is not None else None
    old_threads = il.get_num_threads()
    old_torch_threads = torch.get_num_threads() if torch is not None else None
    rows: List[Dict[str, object]] = []
    try:
        for n_threads in threads:
            il.set_num_threads(n_threads)
            if torch is not None:
                torch.set_num_threads(n_threads)
            for scheme in SCHEMES:
                ours = il.init.get(scheme + "_")
                initlab_s, initlab_cpu = _median_wall_and_cpu(lambda: ours(array, seed=1), repeats)
                if scheme == "he_uniform":
                    numpy_fill = lambda: generator.random(out=array, dtype=np.float32)  # noqa: E731
                else:
                    numpy_fill = lambda: generator.standard_normal(out=array, dtype=np.float32)  # noqa: E731
                numpy_s = _median_seconds(numpy_fill, repeats)
                torch_s: Optional[float] = None
                if tensor is not None:
                    torch_s = _median_seconds(_torch_fill(scheme, tensor), repeats)
                row: Dict[str, object] = {
                    "scheme": scheme,
                    "threads": n_threads,
                    "initlab": values / initlab_s / 1e6,
                    # what the wall clock would show with every thread on its own idle core:
                    # values per (CPU seconds / threads); robust to a machine shared with others
                    "initlab_cpu": values / (initlab_cpu / n_threads) / 1e6 if initlab_cpu > 0 else None,
                    "numpy": values / numpy_s / 1e6,
                    "torch": values / torch_s / 1e6 if torch_s else None,
                }
                row["vs_numpy"] = numpy_s / initlab_s
                row["vs_torch"] = torch_s / initlab_s if torch_s else None
                rows.append(row)
    finally:
        il.set_num_threads(old_threads)
        if torch is not None:
            torch.set_num_threads(old_torch_threads)
    return rows


def format_table(rows: Sequence[Dict[str, object]]) -> str:
    """A markdown table of run()'s rows (M values/s of wall-clock time; ratios are initlab's
    speed-up). "CPU time" is values / (process CPU seconds / threads): the rate on idle cores."""
    def cell(x: object, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    lines = ["| scheme | threads | initlab M/s | initlab M/s (CPU time) | numpy M/s | torch M/s "
             "| initlab/numpy | initlab/torch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['scheme']} | {r['threads']} | {cell(r['initlab'], '.0f')} | "
                     f"{cell(r.get('initlab_cpu'), '.0f')} | "
                     f"{cell(r['numpy'], '.0f')} | {cell(r['torch'], '.0f')} | "
                     f"{cell(r['vs_numpy'], '.1f')}x | {cell(r['vs_torch'], '.1f')}x |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="initlab fill throughput vs numpy and torch")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=4096, help="fill a size x size float32 array")
    parser.add_argument("--repeats", type=int, default=5, help="fills per measurement (median)")
    args = parser.parse_args(argv)
    print(f"{args.size}x{args.size} float32, median of {args.repeats} fills, {il.info()['simd']}")
    print(format_table(run(threads=args.threads, size=args.size, repeats=args.repeats)))


if __name__ == "__main__":
    main()
