"""The digits fit (64-256-256-10, Adam, batch 64, 30 epochs) in initlab, scikit-learn, PyTorch (and
JAX when installed): `python bench/bench_fit.py [--threads 1 2] [--quick]`.
A thin wrapper around initlab.bench.fit_digits."""
from initlab.bench.fit_digits import main

if __name__ == "__main__":
    main()
