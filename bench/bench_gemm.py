"""GEMM GFLOP/s of initlab next to numpy: `python bench/bench_gemm.py [--threads 1 2] [--quick]`.
A thin wrapper around initlab.bench.gemm (also reachable as `initlab bench`)."""
from initlab.bench.gemm import main

if __name__ == "__main__":
    main()
