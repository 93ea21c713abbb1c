"""GEMM throughput of initlab's native kernel next to numpy's BLAS (np.matmul), in the same run,
for the three products of a dense layer:

- ``X*W``     C (M, N) = A (M, K) @ B (K, N)            (forward)
- ``dZ*W^T``  C (M, N) = A (M, K) @ B^T, B stored (N, K)  (gradient w.r.t. the input)
- ``X^T*dZ``  C (M, N) = A^T @ B, A stored (K, M)         (gradient w.r.t. the weights)

Figures are GFLOP/s (2*M*N*K flops per product) of the fastest call, with initlab and numpy
timed in turns so that both see the same share of a shared machine's noise. numpy's thread count is limited
with threadpoolctl when it is installed; the BLAS it runs (OpenBLAS core type) is reported.

>>> from initlab.bench import gemm
>>> print(gemm.format_table(gemm.run(threads=(1,), quick=True)))   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from initlab import _core

from .timing import time_interleaved

SQUARE_SIZES = (128, 256, 512, 1024, 2048)
# The products of the train_step networks' widest layers, as (label, M, N, K) of the forward X*W.
MLP_SHAPES = (
    ("tiny", 32, 64, 64),
    ("mnist-in", 128, 512, 784),
    ("mnist-hid", 128, 512, 512),
    ("wide-in", 256, 2048, 784),
    ("wide-hid", 256, 2048, 2048),
    ("deep30", 128, 256, 256),
    ("tanh5-hid", 64, 1000, 1000),
)
VARIANTS = ("X*W", "dZ*W^T", "X^T*dZ")


def _operands(variant: str, m: int, n: int, k: int, dtype, seed: int = 0):
    gen = np.random.default_rng(seed)
    if variant == "X*W":
        a, b = gen.standard_normal((m, k)), gen.standard_normal((k, n))
    elif variant == "dZ*W^T":
        a, b = gen.standard_normal((m, k)), gen.standard_normal((n, k))
    else:
        a, b = gen.standard_normal((k, m)), gen.standard_normal((k, n))
    return a.astype(dtype), b.astype(dtype), np.empty((m, n), dtype)


def blas_info() -> str:
    """Which BLAS numpy runs (from threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "numpy BLAS: unknown (threadpoolctl not installed)"
    for entry in threadpool_info():
        if entry.get("user_api") == "blas":
            return (f"numpy BLAS: {entry.get('internal_api')} {entry.get('version')}, "
                    f"kernel {entry.get('architecture')}")
    return "numpy BLAS: not found by threadpoolctl"


def run(threads: Sequence[int] = (1, 2), quick: bool = False, dtype=np.float32,
        shapes: Sequence[tuple[str, int, int, int]] | None = None) -> list[dict]:
    """One dict per (shape, variant, threads): initlab and numpy GFLOP/s and their ratio.
    `shapes` ((label, M, N, K), ...) replaces the default squares and MLP shapes."""
    from .train_step import thread_limits

    if shapes is None:
        shapes = [(f"square {s}", s, s, s) for s in SQUARE_SIZES if not (quick and s > 1024)]
        shapes += list(MLP_SHAPES)
    min_seconds = 0.15 if quick else 0.6
    rows = []
    for t in threads:
        with thread_limits(t):
            for label, m, n, k in shapes:
                for variant in VARIANTS:
                    a, b, c = _operands(variant, m, n, k, dtype)
                    ta, tb = variant == "X^T*dZ", variant == "dZ*W^T"
                    ours = lambda: _core.gemm(a, b, c, trans_a=ta, trans_b=tb)  # noqa: E731
                    a_op = a.T if ta else a
                    b_op = b.T if tb else b
                    theirs = lambda: np.matmul(a_op, b_op, out=c)  # noqa: E731
                    best = time_interleaved({"initlab": ours, "numpy": theirs}, min_seconds, statistic="min")
                    t_ours, t_numpy = best["initlab"], best["numpy"]
                    flops = 2.0 * m * n * k
                    rows.append({"shape": label, "m": m, "n": n, "k": k, "variant": variant, "threads": t,
                                 "dtype": np.dtype(dtype).name, "initlab_gflops": flops / t_ours / 1e9,
                                 "numpy_gflops": flops / t_numpy / 1e9, "ratio": t_numpy / t_ours})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of run()'s rows, with the BLAS numpy used underneath."""
    lines = ["| shape | M x N x K | product | threads | initlab GFLOP/s | numpy GFLOP/s | initlab/numpy |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['m']}x{r['n']}x{r['k']} | {r['variant']} | {r['threads']} | "
                     f"{r['initlab_gflops']:.1f} | {r['numpy_gflops']:.1f} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n\n" + blas_info()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="skip n=2048 and time shorter")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    print(format_table(run(threads=args.threads, quick=args.quick, dtype=np.dtype(args.dtype))))


if __name__ == "__main__":
    main()
